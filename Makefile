# The two commands of the README.
#   make demo   set everything up, boot the 2-node VM, run the small sweep, print the table
#   make test   set everything up, run the whole test suite (.ci/run calls this)
WB := .venv/bin/workbench

.PHONY: setup demo test
setup:
	bash scripts/setup.sh

demo: setup
	$(WB) run --target vm --folio-size 4K,64K,2M --size 64M --repeats 3 --label demo

test: setup
	.venv/bin/python -m pytest -ra tests
