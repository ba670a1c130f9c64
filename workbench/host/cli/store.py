"""``workbench store check``: the damaged files of stored runs, and moving them aside.

Wired into :func:`workbench.host.cli.build_parser` with ``cli_store.add_parsers(sub)``.
Every manifest, record and fault of the chosen runs (default: every run in the runs
directory) is read whole; each one that cannot be read is one line on stdout and the
status is 1. ``--move-aside`` renames each to ``<name>.damaged`` (nothing is deleted),
after which the other commands read the runs cleanly and ``--resume`` runs the trials of
the records moved aside again.
"""

from __future__ import annotations

import json

from ... import paths
from ..running import store


def cmd_store(args) -> int:
    runs, damaged = store.check_runs(args.runs_dir, args.runs or None)
    moved = {d.path: store.move_aside(d.path) for d in damaged} if args.move_aside else {}
    where = args.runs_dir or paths.runs_dir()
    if args.json:
        print(json.dumps({"root": str(where), "runs": len(runs),
                          "damaged": [{"path": str(d.path), "what": d.what, "reason": d.reason,
                                       "moved_to": str(moved[d.path]) if d.path in moved else None}
                                      for d in damaged]}, indent=1))
        return 1 if damaged else 0
    for d in damaged:
        print(f"{d}" + (f" (moved aside to {moved[d.path].name})" if d.path in moved else ""))
    print(f"{len(runs)} run{'s' if len(runs) != 1 else ''} checked in {where}: "
          + (f"{len(damaged)} damaged file{'s' if len(damaged) != 1 else ''}"
             + (", moved aside" if moved else "; --move-aside sets them aside") if damaged else "no damaged file"))
    return 1 if damaged else 0


def add_parsers(sub) -> None:
    """Add ``store`` to the ``workbench`` subparsers."""
    s = sub.add_parser("store", help="check the stored runs for damaged files",
                       description="Read every manifest, record and fault of the runs (default: every run in the "
                                   "runs directory) and list each file that cannot be read, one per line; exit "
                                   "status 1 if there is any. --move-aside renames them to <name>.damaged, so "
                                   "that the other commands read the runs cleanly and --resume runs those "
                                   "trials again.")
    s.add_argument("action", choices=["check"])
    s.add_argument("runs", nargs="*", help="run ids (default: every run)")
    s.add_argument("--move-aside", action="store_true", help="rename each damaged file to <name>.damaged")
    s.add_argument("--runs-dir", help="where runs are stored (default data/runs)")
    s.add_argument("--json", action="store_true", help="the damaged files as JSON")
    s.set_defaults(fn=cmd_store)
