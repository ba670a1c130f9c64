"""``workbench bisect GOOD BAD --metric cost``: the commit of a kernel branch that added a
cost (:mod:`workbench.host.studies.bisect`).

Wired into :func:`workbench.host.cli.build_parser` with ``cli_bisect.add_parsers(sub)``.
Everything that can be judged without building a kernel (the tree, the commits, the
knobs) is judged before the first build.
"""

from __future__ import annotations

import json
import sys

from ...errors import WorkbenchError
from ..studies import bisect


def cmd_bisect(args) -> int:
    from ...units import parse_size
    from ..running.plan import RunParams
    folio = bisect.parse_folio(args.folio_size)
    size = parse_size(args.size, "size")
    knobs = {"migrator": args.migrator, "threads": args.threads, "channels": args.channels,
             "batch_size": args.batch_size, "batch_kernel_copy": args.batch_kernel_copy}
    # the trials' knobs are judged before any kernel is built (a build takes minutes)
    RunParams(folio_sizes=[folio], total_size=size, repeats=args.repeats, trace=False,
              **{k: v for k, v in knobs.items() if v is not None}).check()
    if args.metric not in bisect.METRICS:
        raise WorkbenchError(f"metric {args.metric!r} is not known; allowed: {', '.join(bisect.METRICS)}")
    params = {"folio_size": folio, "size": size, "repeats": args.repeats,
              "knobs": {k: v for k, v in knobs.items() if v is not None}}
    factory = bisect.METRICS[args.metric](folio_size=folio, size=size, repeats=args.repeats,
                                          knobs=params["knobs"], runs_root=args.runs_dir, progress=False)
    say = (lambda text: sys.stderr.write(f"bisect: {text}\n"))
    result = bisect.run(args.ksrc, args.good, args.bad, metric=args.metric, params=params,
                        ends=args.end_measurements, root=args.dir, say=say, metric_factory=factory)
    print(json.dumps(result.to_dict(), indent=1, default=str) if args.json else bisect.format_text(result))
    return 0


def add_parsers(sub) -> None:
    """Add ``bisect`` to the ``workbench`` subparsers."""
    b = sub.add_parser("bisect", help="find the commit of a kernel branch that added a cost",
                       description="Measure GOOD and BAD several times each, take the midpoint of their medians "
                                   "as the threshold (refused unless BAD is above GOOD by more than twice the "
                                   "spread of those measurements), then binary-search BAD's first-parent line "
                                   "with one measurement per commit and print the first bad commit with every "
                                   "step's figure. Every measurement is stored as it lands: the same command "
                                   "again resumes. --metric cost builds each commit's tree (bench profile, "
                                   "seeded from the nearest commit's) and measures instruction-time per folio "
                                   "on a fresh icount boot.")
    b.add_argument("good", metavar="GOOD", help="a commit without the cost (sha, branch, tag)")
    b.add_argument("bad", metavar="BAD", help="a later commit with it, GOOD among its first-parent ancestors")
    b.add_argument("--metric", default="cost", help=f"what is measured ({', '.join(bisect.METRICS)}; default "
                                                    "%(default)s)")
    b.add_argument("--ksrc", default=".", metavar="GIT_TREE",
                   help="the git tree of the kernel branch (default: the current directory)")
    b.add_argument("--folio-size", default="4K", help="cost: the folio size moved (default %(default)s)")
    b.add_argument("--size", default="8M", help="cost: bytes moved per trial (default %(default)s)")
    b.add_argument("--repeats", type=int, default=3,
                   help="cost: trials per measurement, of which the median is the figure (default %(default)s)")
    b.add_argument("--end-measurements", type=int, default=bisect.ENDS, metavar="N",
                   help="measurements of GOOD and of BAD each, for their spread (default %(default)s)")
    b.add_argument("--migrator", help="cost: the migrator of the trials (default the kernel's)")
    b.add_argument("--threads", type=int, help="cost: mtcopy threads")
    b.add_argument("--channels", type=int, help="cost: dcbm channels")
    b.add_argument("--batch-size", type=int, help="cost: the batch size knob")
    b.add_argument("--batch-kernel-copy", action="store_true", default=None,
                   help="cost: the batched kernel copy on (every commit measured must have the knob)")
    b.add_argument("--dir", help="where bisects keep their measurements (default data/bisect)")
    b.add_argument("--runs-dir", help="cost: where the trials' runs are stored (default data/runs)")
    b.add_argument("--json", action="store_true", help="the result as JSON")
    b.set_defaults(fn=cmd_bisect)
