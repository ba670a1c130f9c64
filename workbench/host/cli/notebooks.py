"""``workbench sweep`` and ``workbench report``: the notebook-driven subcommands.

Wired into :func:`workbench.host.cli.build_parser` with ``cli_notebooks.add_parsers(sub)``;
each subcommand sets ``fn`` like the others, returns the exit status, and raises
:class:`~workbench.errors.WorkbenchError` for bad input (one line, status 2).
"""

from __future__ import annotations

import argparse
import sys

from .dispatch import add_strict


def cmd_sweep(args) -> int:
    from ..running import sweep
    status = sweep.run_sweep(args.grid, runs_root=args.runs_dir, out_root=args.out_dir,
                             jupyter_kernel=args.jupyter_kernel, progress=not args.quiet,
                             timeout=args.timeout, notebook_timeout=args.notebook_timeout,
                             scheduler=args.scheduler, retries=args.retries)
    configs = status["configurations"]
    failed = {n: c for n, c in configs.items() if c.get("state") == "failed"}
    given_up = {n: c for n, c in configs.items() if c.get("state") == "given_up"}
    runs = sum(len(c.get("run_ids", [])) for c in configs.values())
    done = len(configs) - len(failed) - len(given_up)
    print(f"sweep {status['name']}: {done}/{len(configs)} configurations done, {runs} runs"
          + (f", {len(given_up)} given up" if given_up else "") + (f", {len(failed)} failed" if failed else "")
          + f"; executed notebooks in {status['dir']}")
    for name, c in configs.items():
        for line in c.get("faults", []):
            print(f"  {name}: {line}")
        if c.get("kernel_unclean"):
            print(f"  {name}: the kernel logged an oops, BUG or WARN during {c['kernel_unclean']} trial(s), "
                  "left out of its tables")
    for name, c in given_up.items():
        for config, why in c["given_up"].items():
            print(f"  given up: {name}: {config}: {why}")
    for name, c in failed.items():
        print(f"  failed: {name}: {c.get('error')} (notebook {c.get('notebook')})")
    if failed or given_up:
        print("rerun the same command to retry the failed and given-up configurations (finished ones are skipped)")
    return 1 if failed or given_up else 0


def cmd_report(args) -> int:
    from ..analysis import report
    path = report.render(args.runs, runs_root=args.runs_dir, out=args.out, out_root=args.out_dir,
                         jupyter_kernel=args.jupyter_kernel, no_input=args.no_input)
    print(f"report: {path}")
    return 0


def add_parsers(sub) -> None:
    """Add ``sweep`` and ``report`` to the ``workbench`` subparsers."""
    s = sub.add_parser("sweep", help="run a grid of configurations through notebooks/03-sweep.ipynb (papermill)",
                       description="Execute notebooks/03-sweep.ipynb once per configuration (x target) of GRID.yaml "
                                   "into papermill-runs/<date>-<name>/, on Dask distributed: one configuration at a "
                                   "time per target, the targets in parallel; results go to the runs directory. A "
                                   "failing configuration keeps its executed notebook and the sweep goes on; "
                                   "rerunning the same grid skips the configurations that finished.")
    s.add_argument("grid", help="grid file (YAML: name, defaults, matrix, configurations)")
    s.add_argument("--runs-dir", help="where runs are stored (default data/runs)")
    s.add_argument("--out-dir", help="where executed notebooks go (default papermill-runs/)")
    s.add_argument("--jupyter-kernel", default="python3", help="Jupyter kernel to execute with (default %(default)s)")
    s.add_argument("--timeout", type=float, help="seconds one notebook cell may take (default: no limit)")
    s.add_argument("--notebook-timeout", type=float,
                   help="seconds one configuration's notebook may take in all (default: no limit)")
    s.add_argument("--scheduler", metavar="ADDRESS",
                   help="an existing Dask scheduler (tcp://host:8786) whose workers offer one resource per target "
                        "(default: a local cluster, one worker per target, started and stopped by the sweep)")
    s.add_argument("--retries", type=int, default=1,
                   help="how often a configuration whose worker died is retried on a fresh one (default 1)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_sweep)

    r = sub.add_parser("report", help="render notebooks/04-report.ipynb as self-contained HTML",
                       description="Execute notebooks/04-report.ipynb for the runs (default: all) and write an "
                                   "HTML file with the widget state embedded that opens offline.")
    r.add_argument("runs", nargs="*", help="run ids (default: every run)")
    r.add_argument("--runs-dir", help="where runs are stored (default data/runs)")
    r.add_argument("--out", help="HTML file to write (default papermill-runs/<date>-report/report-<time>.html)")
    r.add_argument("--out-dir", help="where the executed notebook goes (default papermill-runs/)")
    r.add_argument("--jupyter-kernel", default="python3", help="Jupyter kernel to execute with (default %(default)s)")
    r.add_argument("--no-input", action="store_true",
                   help="leave the code cells out (outputs only: for a mailing-list reviewer)")
    add_strict(r)
    r.set_defaults(fn=cmd_report)


def main(argv=None) -> int:
    """Run the two subcommands on their own (``python -m workbench.host.cli.notebooks ...``)."""
    from .dispatch import dispatch
    p = argparse.ArgumentParser(prog="workbench")
    add_parsers(p.add_subparsers(dest="command", required=True))
    return dispatch(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
