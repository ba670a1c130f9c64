"""``workbench conformance``: the kernel's own migration tests and a stressor under every
migrator (:mod:`workbench.host.studies.conformance`), stored as a run, printed as a matrix.

Wired into :func:`workbench.host.cli.build_parser` with ``cli_conformance.add_parsers(sub)``.
"""

from __future__ import annotations

import json
import sys

from ..studies import conformance
from .console import BootProgress, note


def cmd_conformance(args) -> int:
    from ...targets import make_target
    migrators = conformance.parse_list(args.migrators, conformance.CONFIGS, "migrator configuration",
                                       conformance.CONFIGS)
    tests = conformance.parse_suites(args.suites)
    target = make_target(args.target, kernel=args.kernel, vm_name=args.vm_name,
                         nodes=args.nodes or (conformance.default_nodes() if args.target == "vm" else None),
                         progress=None if args.json else BootProgress(), notify=None if args.json else note)
    say = (lambda text: sys.stderr.write(text + "\n")) if args.json else print
    only = [c.strip() for c in args.cases.split(",") if c.strip()] if args.cases else None
    run, records, cannot = conformance.run(target, migrators, tests, label=args.label, progress=say, only=only)
    for line in cannot:
        say(f"not run: {line}")
    df = run.records()
    if args.json:
        cols = [c for c in ("suite", "test", "case", "config", "migrator", "status", "verdict", "skip_reason",
                            "copied", "kernel_clean", "kernel_report", "seconds") if c in df]
        print(json.dumps({"run_id": run.id, "cannot_run": cannot,
                          "records": json.loads(df[cols].to_json(orient="records"))}, indent=1))
    else:
        print(f"run {run.id} ({len(df)} records)")
        print(conformance.matrix(df))
    failed = df["verdict"].eq("fail").any() or conformance.unclean(df).any()
    return 1 if failed else 0


def add_parsers(sub) -> None:
    """Add ``conformance`` to the ``workbench`` subparsers."""
    configs = ", ".join(conformance.CONFIGS)
    suites = ", ".join(f"{s}:{t}" for s in conformance.SUITES for t in conformance.SUITES[s].tests)
    c = sub.add_parser("conformance", help="the kernel's own migration tests and a stressor under every migrator",
                       description="Build the kernel's mm selftests from the tree of the kernel under test, run "
                                   "them and Debian's stress-ng under each migrator configuration in the VM "
                                   "(4 CPUs, two nodes, unless --nodes says otherwise), store every (test, "
                                   "migrator) as a record of a run, and print the matrix. A pass during which "
                                   "an offloading migrator copied nothing is 'not exercised'. Exit status 1 if "
                                   "anything failed or the kernel log was not clean.")
    c.add_argument("--target", default="vm", help="vm, vm:KERNEL, ssh://..., local (default: vm)")
    c.add_argument("--kernel", help="the VM's kernel (a built tree's name: patched, patched-6.12, ...)")
    c.add_argument("--vm-name", default="conformance", help="the VM's name (default: conformance)")
    c.add_argument("--nodes", help=f"VM NUMA nodes (default {conformance.default_nodes()})")
    c.add_argument("--migrators", help=f"comma-separated configurations, or all (default all): {configs}")
    c.add_argument("--suites", help=f"comma-separated suites or SUITE:TEST, or all (default all): {suites}")
    c.add_argument("--cases", help="only these cases of the chosen tests, comma separated "
                                   "(e.g. migration.private_anon_thp,numa)")
    c.add_argument("--label", default="conformance", help="the run's label")
    c.add_argument("--json", action="store_true", help="the records as JSON on stdout")
    c.set_defaults(fn=cmd_conformance)
