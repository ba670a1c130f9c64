"""Running a parsed command the way every workbench command ends: a WorkbenchError is
one line on stderr (its detail below it) and exit status 2; Ctrl-C says what is saved."""

from __future__ import annotations

import sys

from ..errors import WorkbenchError


def dispatch(args) -> int:
    """Run a parsed command: a WorkbenchError is one line (and its detail) and status 2."""
    try:
        return args.fn(args)
    except WorkbenchError as exc:
        sys.stderr.write(f"\nworkbench: error: {exc}\n")
        if exc.detail:
            sys.stderr.write(exc.detail.rstrip() + "\n")
        return 2
    except KeyboardInterrupt as exc:
        sys.stderr.write(f"\nworkbench: {exc if str(exc) else 'interrupted (finished trials are saved)'}\n")
        return 130
