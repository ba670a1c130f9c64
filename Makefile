# The commands of the README.
#   make demo   set everything up, boot the 2-node VM, run the small sweep, print the table
#   make check  the tests that need no kernel build, VM, sshd, browser or root, on every
#               core (pytest-xdist; about 2.5 CPU-minutes, made for under 2 minutes on an
#               idle 2-core machine): the one to run while working
#   make test   set everything up (kernels too), run the whole test suite (.ci/run calls this)
WB := .venv/bin/workbench
# the tiers (pyproject.toml's markers) that need more than this checkout and its packages
TIERS := vm or ssh or browser or root

.PHONY: setup kernels demo check test
setup:
	bash scripts/setup.sh

# the default line's trees (kernel/lines: 7.3), our series v3 (patched) and vanilla, and the
# LTS line's series v2 on 6.12 (patched-6.12, its smoke test); cached by source, patches
# and config (cold on 2 cores: about 13 minutes for the first 7.3 tree, 2 for the one
# seeded from it, 11 for 6.12; nothing when the inputs are unchanged)
kernels: setup
	$(WB) kernel build
	$(WB) kernel build --vanilla
	$(WB) kernel build --line 6.12

demo: setup
	$(WB) run --target vm --folio-size 4K,64K,2M --size 64M --repeats 3 --label demo

# WORKBENCH_REQUIRE_VM=1: a test left in that skips for want of a VM, sshd, browser or
# root lacks its marker, and fails here instead of passing unseen
check: setup
	WORKBENCH_REQUIRE_VM=1 .venv/bin/python -m pytest -ra -n auto --dist worksteal -m "not ($(TIERS))" tests

test: setup kernels
	.venv/bin/python -m pytest -ra tests
