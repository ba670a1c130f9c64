"""papermill's command line for a sweep's notebook process (``python -m
workbench.host.running.papermill_process``, the arguments of ``python -m papermill``), without the
imports nothing in it uses.

jsonschema, which nbformat imports, compiles the Lark grammar of ``rfc3987_syntax`` on
import whenever that is installed (jupyter-events installs ``jsonschema[format-nongpl]``):
more than a second of CPU in every notebook process of a sweep — most of papermill's own
start — for IRI format checks that nbformat, validating without a format checker, never
makes. Left unimported, jsonschema does without those checkers; everything else is
papermill's command as it is."""

import sys

#: optional imports of papermill's dependencies that nothing in the process uses
UNUSED = ("rfc3987_syntax",)


def main() -> None:
    for name in UNUSED:
        sys.modules.setdefault(name, None)   # `import name` raises ImportError: the module is left out
    from papermill.cli import papermill
    papermill()


if __name__ == "__main__":
    main()
