"""The command line: ``workbench`` (:mod:`.main`: the parser and the commands that run
and read trials) and one module per family of commands (kernel builds and lab boxes,
notebooks, the store, conformance, bisect, doctor), with :mod:`.console` for what a
command shows while a VM boots and :mod:`.dispatch` for how a command is chosen."""
