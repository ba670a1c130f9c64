# The two commands of the README.
#   make demo   set everything up, boot the 2-node VM, run the small sweep, print the table
#   make test   set everything up (kernels too), run the whole test suite (.ci/run calls this)
WB := .venv/bin/workbench

.PHONY: setup kernels demo test
setup:
	bash scripts/setup.sh

# the kernel series, patched and vanilla, vanilla 7.3 (kernel/lines) and series v3 as far
# as it is written (kernel/v3, seeded from vanilla 7.3, under a minute); cached by
# source, patches and config (about 11 minutes cold on 2 cores for 6.12, 13 for
# 7.3; nothing when the inputs are unchanged)
kernels: setup
	$(WB) kernel build
	$(WB) kernel build --vanilla
	$(WB) kernel build --line 7.3 --vanilla
	$(WB) kernel build --line 7.3 --series kernel/v3 --name v3-wip

demo: setup
	$(WB) run --target vm --folio-size 4K,64K,2M --size 64M --repeats 3 --label demo

test: setup kernels
	.venv/bin/python -m pytest -ra tests
