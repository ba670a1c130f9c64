"""Running a parsed command the way every workbench command ends: a WorkbenchError is
one line on stderr (its detail below it) and exit status 2; Ctrl-C says what is saved.
Every command reads the store through one :func:`workbench.host.running.store.reading`: a damaged
file is named once on stderr and the count of what was left out ends the command, or,
with ``--strict`` (:func:`add_strict`), the first one refuses it."""

from __future__ import annotations

import sys

from ...errors import WorkbenchError


def add_strict(parser) -> None:
    """``--strict`` on a command that reads stored runs."""
    parser.add_argument("--strict", action="store_true",
                        help="refuse (one line, status 2) if a stored file is damaged, instead of leaving it out "
                             "and saying so on stderr")


def dispatch(args) -> int:
    """Run a parsed command: a WorkbenchError is one line (and its detail) and status 2."""
    from ..running import store
    try:
        with store.reading(strict=getattr(args, "strict", False)):
            return args.fn(args)
    except WorkbenchError as exc:
        sys.stderr.write(f"\nworkbench: error: {exc}\n")
        if exc.detail:
            sys.stderr.write(exc.detail.rstrip() + "\n")
        return 2
    except KeyboardInterrupt as exc:
        sys.stderr.write(f"\nworkbench: {exc if str(exc) else 'interrupted (finished trials are saved)'}\n")
        return 130
