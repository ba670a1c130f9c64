"""The ``workbench`` command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ...targets import kernel_images
from ... import paths
from ..running import store
from .console import BootProgress, note
from .dispatch import add_strict, dispatch
from ...catalogue import knobs
from ...catalogue.knobs import parse_monitor
from ...errors import WorkbenchError
from ...units import format_size, parse_size, parse_size_list


def _target_args(p: argparse.ArgumentParser, default: str | None = "vm"):
    g = p.add_argument_group("target")
    g.add_argument("--target", default=default,
                   help="local, vm, vm:KERNEL, or ssh://[user@]host[:port] (default: %(default)s)")
    g.add_argument("--kernel",
                   help="VM kernel: stock, patched, vanilla, or a path to an image or built tree (default: the "
                        "kernel of the VM that is up, else stock)")
    g.add_argument("--vm-name", help="name of the VM (its state lives in the cache; default: default)")
    g.add_argument("--nodes",
                   help="VM NUMA nodes as MEM[:CPUS],... (CPUS like 0 or 0-1; none = a memory-only node, "
                        "like CXL memory; default 1536M:0,1536M:1)")
    g.add_argument("--distance", action="append", metavar="SRC,DST=VAL",
                   help="VM node distance, repeatable")
    g.add_argument("--accel", help="VM accelerator: auto, kvm, tcg, or icount (TCG with an instruction-counted "
                                   "clock: deterministic path cost, not speed; auto never picks it; default auto)")
    g.add_argument("--ssh-identity", help="ssh target: private key file")
    g.add_argument("--ssh-known-hosts", help="ssh target: known_hosts file to check the host key against")
    g.add_argument("--remote-python",
                   help="ssh target: python with this package installed (default: the venv `workbench target "
                        "prepare` installed it into on that box, else python3)")


def target_from_args(args, quiet: bool = False, spec: str | None = None, kernel: str | None = None):
    """The target the command line names (``spec``/``kernel`` override the flags)."""
    from ...targets import make_target
    return make_target(spec or args.target, kernel=kernel or args.kernel, vm_name=args.vm_name, nodes=args.nodes,
                       distances=args.distance, accel=args.accel, identity=args.ssh_identity,
                       known_hosts=args.ssh_known_hosts, remote_python=args.remote_python,
                       progress=None if quiet else BootProgress(), notify=None if quiet else note)


def cmd_doctor(args):
    from .doctor import format_report, host_report
    report = host_report()
    target_facts = None
    if args.target != "none":
        target_facts = target_from_args(args, quiet=args.json).facts()
        report["target"] = target_facts
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        if target_facts and not args.json:
            sys.stderr.write("\n")
        print(format_report(report, target_facts))
    return 0


def cmd_vm(args):
    from ...vm.numa_vm import VM
    name = args.vm_name or "default"
    vm = VM(name)
    if args.action == "up":
        target = target_from_args(args, spec="vm")
        st = target.ensure_up()
        sys.stderr.write("\n")
        print(f"VM {name!r} up: kernel {st['facts']['kernel_release']} ({st['config']['kernel']}), "
              f"{st['accelerator']}, nodes {st['facts']['numa']['memory_nodes']}, booted in "
              f"{st.get('boot_seconds', 0):.0f} s")
    elif args.action == "status":
        status = vm.status()
        if args.json:
            print(json.dumps(status, indent=1))
        elif status["running"]:
            print(f"VM {status['name']!r} running: pid {status['pid']}, kernel {status['kernel_release']} "
                  f"({status['kernel']}), {status['accelerator']}, up {status['uptime_s']} s, nodes {status['nodes']}"
                  + ("; paused while idle (no plan on it)" if status.get("paused_while_idle") else ""))
            if status.get("startup"):
                su = status["startup"]
                print(f"  booted in {status['boot_seconds']:.1f} s; on the guest's clock the agent started at "
                      f"{su['process']:.1f} s, imported by {su['imports']:.1f}, numba ready by {su['numba']:.1f}, "
                      f"ready at {su['probe']:.1f}")
        else:
            print(f"VM {status['name']!r} is down")
    else:
        print(f"VM {name!r} " + ("stopped" if vm.down() else "was not running"))
    return 0


def cmd_run(args):
    from ...catalogue import workloads
    from ..analysis import clocks, stats, workload_view
    from ..running import runner
    from ..running.plan import RunParams
    values = knobs.from_args(args)
    values["dst"] = workloads.default_dst(values["workload"], values["dst"])
    params = RunParams(**values)
    policy = runner.RunPolicy(resume=args.resume, label=args.label or args.target, max_reboots=args.max_reboots,
                              trial_timeout=args.trial_timeout, kernel_expect=args.kernel_expect)
    params.check()  # everything that can be judged before a VM boots
    policy.check()
    target = target_from_args(args, quiet=args.json)
    the_run = runner.run(target, params, policy=policy, root=args.runs_dir, progress=not args.json)
    df = the_run.records()
    m = the_run.manifest
    given_up = m.get("given_up") or {}
    complete = not given_up and (df.empty or bool(df["verified"].all()))
    if args.json:
        print(json.dumps({"run_id": the_run.id, "dir": str(the_run.dir), "manifest": m,
                          "records": json.loads(df.to_json(orient="records")), "faults": the_run.faults()},
                         default=str))
        return 0 if complete else 1
    if df.empty:
        for line in runner.describe_faults(the_run.faults()):
            print(f"  {line}")
        print(f"no trial finished; resume with --resume {the_run.id} to try the given-up configurations again")
        return 1
    note = clocks.note(m["accelerator"], m.get("clock"))
    print(f"\nrun {the_run.id}: {m['target']}, kernel {m['kernel_release']}, accelerator {m['accelerator']}, "
          f"clock {m.get('clock', 'wall')}" + (f"  [{note}]" if note else ""))
    print(stats.series_table(df, rows=("migrator",), title=workload_view.workload_title(df)))
    bad = df[~df["verified"]]
    print(f"verified: {len(df) - len(bad)}/{len(df)} trials byte-exact with {workload_view.placement_words(df)}; "
          f"folio sizes obtained: {df['folio_match_share'].mean():.0%} of folios as asked")
    for line in workload_view.workload_lines(df):
        print(line)
    for _, r in bad.iterrows():
        print(f"  FAILED {r['trial_key']}: {r['pages_failed']} pages not moved, {r['verify_bad_pages']} bad pages"
              + (f", first page {r['verify_first_bad_page']} offset {r['verify_first_bad_offset']}"
                 if r['verify_bad_pages'] else "")
              + (f"; the {r['access']} threads saw {r['access_bad_pages']} bad pages while it migrated, first "
                 f"page {r['access_first_bad_page']} offset {r['access_first_bad_offset']}"
                 if r.get('access_bad_pages') else ""))
    for line in runner.describe_unclean(df) + runner.describe_faults(the_run.faults()):
        print(f"  {line}")
    print(f"saved in {the_run.dir}")
    if given_up:
        print(f"{len(given_up)} configuration(s) given up; resume with --resume {the_run.id} to try them again")
    return 0 if complete else 1


def cmd_summary(args):
    from ..analysis import stats, workload_view
    from ..running.runner import describe_faults, describe_unclean
    df = store.load_runs(args.runs_dir, args.runs or None)
    conf = store.load_runs(args.runs_dir, args.runs or None, kind="conformance")
    if df.empty and conf.empty:
        raise WorkbenchError(f"no runs in {args.runs_dir or paths.runs_dir()}")
    if not df.empty:
        df = workload_view.with_workload(df)
        tables = [stats.series_table(g, rows=tuple(args.rows.split(",")), value=args.value,
                                     title=workload_view.workload_title(g, args.value))
                  for _, g in df.groupby(["workload", "access"], sort=False)]
        print("\n\n".join(tables))
        for line in describe_unclean(df) + describe_faults(store.load_faults(args.runs_dir, args.runs or None)):
            print(f"  {line}")
    from ..studies.conformance import matrix
    for run_id, g in (conf.groupby("run_id", sort=False) if not conf.empty else ()):
        print(f"\nconformance run {run_id}: kernel {g['kernel_release'].iloc[0]}\n{matrix(g)}")
    return 0


def cmd_compare(args):
    from ..analysis import compare
    from ..studies import conformance
    if args.by == "run" and conformance.is_conformance_run(args.base, args.runs_dir):
        sides = [store.load_runs(args.runs_dir, [r], kind="conformance") for r in [args.base, *args.new]]
        for name, side in zip([args.base, *args.new], sides):
            if side.empty:
                raise WorkbenchError(f"run {name!r} is not a conformance run with readable records, and "
                                     f"{args.base} is one: compare conformance runs with each other")
        for name, side in zip(args.new, sides[1:]):
            print(conformance.compare_runs(sides[0], side, args.base, name))
        return 0
    base, news = compare.load_sides(args.base, args.new, by=args.by, root=args.runs_dir)
    if args.all:
        from ..analysis import compare_all
        tables = [compare_all.compare_all(base, new, by=args.by, alpha=args.alpha, method=args.method,
                                          across_accelerators=args.across_accelerators) for new in news]
        def text(table, base, new):
            return compare_all.format_text(table, base, new, changed_only=args.changed)
    else:
        if args.method != "welch" or args.changed:
            flag = "--changed" if args.changed else f"--method {args.method}"
            raise WorkbenchError(f"{flag} is for --all; one field's comparison prints every configuration, "
                                 "marked by Welch's t-test")
        tables = [compare.compare(base, new, by=args.by, value=args.value, alpha=args.alpha,
                                  across_accelerators=args.across_accelerators) for new in news]
        text = compare.format_text
    if args.json:
        print(json.dumps([{"base": args.base, "new": n, "rows": json.loads(t.to_json(orient="records")),
                           **({"zero_fields": t.attrs.get("zero_fields", [])} if args.all else {})}
                          for n, t in zip(args.new, tables)], indent=1))
        return 0
    for name, table in zip(args.new, tables):
        print(text(table, args.base, name))
        print()
    return 0


def cmd_kernel(args):
    if args.action == "fetch-stock":
        from ...targets import kernel_lines
        line = kernel_lines.get(args.line) if args.line else kernel_lines.default()
        image = kernel_images.fetch_stock(progress=lambda m: sys.stderr.write(m + "\n"), line=line)
        print(f"stock kernel {image.release}: {image.run_arg}")
        print(f"boot it with --kernel stock{line.suffix}")
        return 0
    if args.action == "build":
        if args.source and (args.base or args.series or args.line):
            raise WorkbenchError("--source builds a tree as it is; --line, --base and --series build a base with a series "
                                 "on it: give one or the other")
        seed = kernel_images.named_trees().get(args.seed_from, args.seed_from) if args.seed_from else None
        if args.source:
            name = args.name or Path(args.source.rstrip("/")).name
            tree = kernel_images.build(ksrc=args.source, vanilla=True, profile=args.profile, name=name,
                                       seed_from=seed)
        else:
            tree = kernel_images.build(ksrc=args.base, vanilla=args.vanilla, profile=args.profile,
                                       series=args.series, name=args.name, line=args.line, seed_from=seed)
        info = kernel_images.tree_info(tree)
        print(f"kernel {info.get('name', tree.name)} ({info.get('version', '?')}, series {info.get('series', '?')}, "
              f"{args.profile} build): {tree}")
        print(f"boot it with --kernel {info.get('name', tree)}")
        return 0
    raise WorkbenchError(f"kernel action {args.action!r} is not known; allowed: fetch-stock, build")


def cmd_bench(args):
    from ..analysis import clocks
    # verify measures this host's numba unless told otherwise; migrators need the patched VM
    spec = args.target or ("local" if args.what == "verify" else "vm")
    if args.what == "verify":
        target = target_from_args(args, spec=spec)
        r = target.ask({"op": "bench_verify", "args": {"size": parse_size(args.size or "256M")}})["result"]
        note = clocks.note(target.accelerator(), target.clock())
        print(f"target {target.label} ({target.accelerator()}" + (f"; {note}" if note else "") + "), "
              f"{format_size(r['bytes'])} buffer")
        print(f"streaming read (numba sum)  {r['sum_gbps']:7.2f} GB/s")
        print(f"verify every byte (numba)   {r['verify_gbps']:7.2f} GB/s")
        clock = target.clock()
        judged = (f"(goal >= {r['goal']})" if clock == "wall" else
                  f"(the goal >= {r['goal']} is about memory bandwidth; this clock counts instructions)")
        print(f"ratio verify/read           {r['ratio']:7.2f}   {judged}")
        return 0
    if args.what == "migrators":
        from ..studies import bench
        kernel = args.kernel or ("patched" if spec == "vm" else None)
        target = target_from_args(args, spec=spec, kernel=kernel)
        r = bench.migrator_speedups(target, size=parse_size(args.size or "64M", "size"), repeats=args.repeats,
                                    root=args.runs_dir, monitor_ms=parse_monitor(args.monitor))
        note = clocks.note(r["accelerator"], target.clock())
        print(f"\n2M folios, {format_size(r['size'])} x {r['repeats']} repeats on {target.label}, accelerator "
              f"{r['accelerator']}" + (f"  [{note}]" if note else ""))
        print(f"{'ratio':<56} {'copy phase':>10} {'whole call':>10}")
        for row in r["rows"]:
            cp = f"{row['copy_phase']:.2f}x" if row["copy_phase"] is not None else "-"
            goal = f"   (goal >= {row['goal']})" if row.get("goal") else ""
            print(f"{row['what']:<56} {cp:>10} {row['whole_call']:>9.2f}x{goal}")
        print("every trial verified byte-exact" if r["verified"] else "SOME TRIALS FAILED VERIFICATION")
        return 0 if r["verified"] else 1
    if args.what == "cost":
        from ..studies import cost
        for flag in ("target", "kernel", "accel"):
            if getattr(args, flag):
                raise WorkbenchError(f"bench cost boots its own VMs (vanilla-bench and patched-bench, --accel "
                                     f"icount); --{flag} does not apply")
        if args.per_patch:
            return cmd_cost_per_patch(args)
        for flag in ("series", "base", "line"):
            if getattr(args, flag):
                raise WorkbenchError(f"--{flag} is for --per-patch; bench cost compares two built trees (--trees)")
        batch_sizes = "fixed" if str(args.batch_sizes or "1,16,64,512").strip() == "fixed" else \
            [int(b) for b in str(args.batch_sizes or "1,16,64,512").split(",") if b.strip()]
        args.trees = args.trees or "vanilla,patched"
        args.channels = args.channels or "1"
        trees = tuple(t.strip() for t in str(args.trees).split(","))
        if len(trees) != 2 or not all(trees):
            raise WorkbenchError(f"--trees {args.trees!r} must name two trees, vanilla first: e.g. vanilla,patched "
                                 f"or vanilla-6.12,patched-6.12")
        channels = () if str(args.channels).strip() == "none" else \
            tuple(int(c) for c in str(args.channels).split(",") if c.strip())
        if args.distance:
            raise WorkbenchError("bench cost boots its own VMs; --distance does not apply (--nodes does)")
        df = cost.measure(folio_sizes=parse_size_list(args.folio_size, "folio size"),
                          size=parse_size(args.size or "8M", "size"), repeats=args.repeats, boots=args.boots,
                          batch_sizes=batch_sizes, root=args.runs_dir, progress=not args.json, trees=trees,
                          channels=channels, monitor_ms=parse_monitor(args.monitor), nodes=args.nodes)
        summary = cost.summarize(df)
        print(json.dumps(summary, indent=1, default=str) if args.json else cost.format_text(summary))
        return 0 if summary["verified"] else 1
    raise WorkbenchError(f"benchmark {args.what!r} is not known; allowed: verify, migrators, cost")


def cmd_cost_per_patch(args) -> int:
    """``bench cost --per-patch``: the series' cumulative trees, what each patch costs."""
    from ...targets import kernel_lines
    from ..studies import per_patch
    from ..running.plan import RunParams
    for flag in ("trees", "batch_sizes", "channels", "nodes"):
        if getattr(args, flag) is not None:
            raise WorkbenchError(f"--{flag.replace('_', '-')} does not apply to --per-patch: its trees are the "
                                 "series' cumulative trees, each measured with its defaults and with the batched "
                                 "kernel copy")
    if args.base and args.line:
        raise WorkbenchError("--line and --base both name the base: give one")
    line = kernel_lines.get(args.line) if args.line else kernel_lines.default()
    series = args.series
    if series is None:
        if line.series is None:
            raise WorkbenchError(f"kernel line {line.name} has no series of ours yet: give --series "
                                 "(e.g. --series kernel/v3)")
        series = str(paths.REPO / "kernel" / line.series)
    if args.base and not Path(args.base).exists():
        raise WorkbenchError(f"kernel source {args.base!r} does not exist; allowed: a kernel tree or a .tar of one")
    folio_sizes = parse_size_list(args.folio_size, "folio size")
    size = parse_size(args.size or "8M", "size")
    RunParams(folio_sizes=folio_sizes, total_size=size, repeats=args.repeats).check()
    if args.boots < 1:
        raise WorkbenchError(f"--boots {args.boots} must be at least 1")
    per_patch.read_series(series)       # one line if it is not a series, before anything is built
    df = per_patch.measure(series, base=args.base, line=args.line, folio_sizes=folio_sizes, size=size,
                           repeats=args.repeats, boots=args.boots, root=args.runs_dir, progress=not args.json,
                           say=lambda text: sys.stderr.write(f"per-patch: {text}\n"),
                           monitor_ms=parse_monitor(args.monitor))
    summary = per_patch.summarize(df)
    print(json.dumps(summary, indent=1, default=str) if args.json else per_patch.format_text(summary))
    return 0 if summary["verified"] else 1


def parse_write(text: str) -> list[str]:
    path, sep, value = text.partition("=")
    if not sep or not path.startswith("/sys/"):
        raise WorkbenchError(f"--write {text!r} is not PATH=VALUE with PATH under /sys/")
    return [path, value]


def cmd_sysfs(args):
    target = target_from_args(args)
    writes = [parse_write(w) for w in args.write or ()]
    snap = target.ask({"op": "snapshot", "roots": args.root, "modules": args.load or [],
                       "writes": writes})["snapshot"]
    snap["kernel_release"] = target.facts()["kernel_release"]
    text = json.dumps(snap, indent=1, sort_keys=True)
    if args.out == "-":
        print(text)
    else:
        with open(args.out, "w") as f:
            f.write(text + "\n")
        print(f"recorded {len(snap['files'])} files from {target.label} into {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workbench", description="Verified page-migration benchmarks on NUMA targets")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("doctor", help="what this host and a target can do")
    _target_args(d, default="none")
    d.add_argument("--json", action="store_true")
    d.set_defaults(fn=cmd_doctor)

    v = sub.add_parser("vm", help="bring the VM target up or down")
    v.add_argument("action", choices=["up", "status", "down"])
    _target_args(v)
    v.add_argument("--json", action="store_true")
    v.set_defaults(fn=cmd_vm)

    r = sub.add_parser("run", help="run verified migration trials (move_pages() and every other way pages migrate)")
    _target_args(r)
    knobs.add_arguments(r.add_argument_group("what each trial does"))
    r.add_argument("--kernel-expect", metavar="WHAT",
                   help="refuse to run, before any trial, unless the target's kernel is this one: patched (it has "
                        "the series' copy-offload interface), vanilla or stock (it has none), or any other word: "
                        "a piece of its release (uname -r), e.g. wb-patched")
    r.add_argument("--label", help="a name for the run directory")
    r.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run, skipping finished trials")
    r.add_argument("--max-reboots", type=int, default=2, metavar="N",
                   help="give a configuration up after N faults in a row during its trials (the VM died, a trial "
                        "hung, the link dropped); the target is rebooted or reconnected after each (default 2)")
    r.add_argument("--trial-timeout", type=float, metavar="SECONDS",
                   help="a trial that takes longer counts as hung: its blocked tasks are recorded, the VM "
                        "rebooted (default: 300 s + 4 s per MiB moved, twice that at 4K)")
    r.add_argument("--runs-dir", help="where runs are stored (default data/runs)")
    r.add_argument("--json", action="store_true", help="print the run as JSON instead of a table")
    r.set_defaults(fn=cmd_run)

    s = sub.add_parser("summary", help="print the seed-style table of stored runs")
    s.add_argument("runs", nargs="*", help="run ids (default: all)")
    s.add_argument("--rows", default="migrator")
    s.add_argument("--value", default="gbps")
    s.add_argument("--runs-dir")
    add_strict(s)
    s.set_defaults(fn=cmd_summary)

    c = sub.add_parser("compare", help="compare runs configuration by configuration (Welch's t-test)",
                       description="For each configuration both sides measured: mean ±%%std of each side, the "
                                   "change in %%, and * where Welch's t-test says it is significant (LKP ncompare "
                                   "layout). Sides are run ids, or values of --by.")
    c.add_argument("base", help="the base side: a run id, or a value of --by")
    c.add_argument("new", nargs="+", help="one or more sides to compare with the base")
    c.add_argument("--by", default="run", help="what a side names: run (default), kernel_release, kernel, target, "
                                               "accelerator, migrator, label, workload")
    c.add_argument("--value", default="gbps", help="the column compared (default %(default)s)")
    c.add_argument("--all", action="store_true",
                   help="every measured field (times, vmstat deltas, the series' counters, trace summaries) as "
                        "%%change ± %%stddev, LKP's layout; harmonic means of rates, geometric means over "
                        "configurations")
    c.add_argument("--method", default="welch", choices=("welch", "subsample-median"),
                   help="what marks a change significant with --all: Welch's t-test (default) or the "
                        "outlier-resistant subsample-median ranges (4+ trials a side)")
    c.add_argument("--changed", action="store_true", help="with --all: only the fields whose change is marked")
    c.add_argument("--alpha", type=float, default=0.05, help="significance level (default %(default)s)")
    c.add_argument("--across-accelerators", action="store_true",
                   help="compare runs of different accelerators (never different clocks)")
    c.add_argument("--runs-dir")
    c.add_argument("--json", action="store_true")
    add_strict(c)
    c.set_defaults(fn=cmd_compare)

    f = sub.add_parser("sysfs", help="record a target's sysfs/procfs tree for replay in tests")
    f.add_argument("action", choices=["snapshot"])
    f.add_argument("out", help="JSON file to write, or - for stdout")
    f.add_argument("--root", action="append", required=True, help="directory to record (repeatable)")
    f.add_argument("--load", action="append", metavar="MODULE",
                   help="load this module first, recording its parameters as modinfo gives them (repeatable)")
    f.add_argument("--write", action="append", metavar="PATH=VALUE",
                   help="write VALUE to PATH and record the kernel's answer, before the files are recorded "
                        "(repeatable, in order; what a fake's value rules are checked against)")
    _target_args(f)
    f.set_defaults(fn=cmd_sysfs)

    from . import (bisect as cli_bisect, conformance as cli_conformance, lab as cli_lab, notebooks as cli_notebooks,
                   store as cli_store)
    k = sub.add_parser("kernel", help="kernel images for the VM, and packages for boxes")
    ksub = k.add_subparsers(dest="action", required=True)
    from ...targets import kernel_lines
    line_names = ", ".join(l.name for l in kernel_lines.lines())
    kf = ksub.add_parser("fetch-stock", help="download and unpack a line's stock Debian kernel (for the VM)")
    kf.add_argument("--line", help=f"the kernel line ({line_names}; default {kernel_lines.default().name}): "
                                   "its Debian image, from the suite kernel/lines names")
    kf.set_defaults(fn=cmd_kernel)
    kb = ksub.add_parser("build", help="build a kernel for the VM: our series (default), vanilla, another "
                                        "series on a base, or any source tree")
    kb.add_argument("--line", help=f"the kernel line whose Debian source is the base ({line_names}; default "
                                   f"{kernel_lines.default().name}); trees on another line are named after it "
                                   "(patched-6.12)")
    kb.add_argument("--base", "--ksrc", dest="base",
                    help="the tree (or .tar of one) to patch instead of a line's Debian source")
    kb.add_argument("--series", help="the patches to apply to --base (default the line's Debian source) instead of ours: an mbox (b4 am), one patch, "
                                     "a directory of git format-patch files or one with a series file")
    kb.add_argument("--source", help="a kernel source tree to build as it is (a researcher's branch)")
    kb.add_argument("--name", help="what --kernel calls the result (default: patched, vanilla, the series' "
                                   "file name or the source's directory name)")
    kb.add_argument("--vanilla", action="store_true", help="the base without any patches")
    kb.add_argument("--seed-from", metavar="TREE",
                    help="a tree not built yet starts as a copy of this built tree of the same source (a name "
                         "or a path), so that only what differs is compiled (default: build.sh picks one)")
    kb.add_argument("--profile", default="test", choices=kernel_images.PROFILES,
                    help="test (debug checks on; default) or bench (without the debug options that change "
                         "the migration path's cost; boot it as --kernel patched-bench / vanilla-bench)")
    kb.set_defaults(fn=cmd_kernel)
    cli_lab.add_kernel_parsers(ksub)  # package, install

    cli_lab.add_parsers(sub)        # target, lab
    cli_notebooks.add_parsers(sub)  # sweep, report
    cli_store.add_parsers(sub)      # store check
    cli_conformance.add_parsers(sub)  # conformance
    cli_bisect.add_parsers(sub)     # bisect

    b = sub.add_parser("bench", help="benchmarks that print ratios")
    b.add_argument("what", choices=["verify", "migrators", "cost"],
                   help="verify: verification speed; migrators: mtcopy/batched ratios (patched VM); cost: "
                        "instruction-time per folio of the series against vanilla (icount VMs, bench builds)")
    _target_args(b, default=None)
    b.add_argument("--size", help="verify: buffer size (default 256M); migrators: bytes per trial (default 64M); "
                                  "cost: bytes per trial (default 8M)")
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--folio-size", default="4K,64K,2M", help="cost: folio sizes (default %(default)s)")
    b.add_argument("--batch-sizes",
                   help="cost: batched kernel copy batch sizes, or 'fixed' for a series without a batch size knob "
                        "(the kernel's 512; default 1,16,64,512)")
    b.add_argument("--trees",
                   help="cost: the vanilla and the patched tree whose bench builds boot (default vanilla,patched: the "
                        "default line, series v3 on 7.3; the LTS line: vanilla-6.12,patched-6.12)")
    b.add_argument("--channels", help="cost: dcbm channel counts, or 'none' (default 1)")
    b.add_argument("--per-patch", action="store_true",
                   help="cost: what each patch of a series costs: build the series cumulatively on its base (a "
                        "bench tree after each patch, each seeded from the one before, cached) and measure each "
                        "with its defaults and with the batched kernel copy")
    b.add_argument("--series", metavar="DIR",
                   help="cost --per-patch: the series, a directory of patches (default the line's own, "
                        "kernel/lines: kernel/v3 on 7.3, kernel/patches on 6.12)")
    b.add_argument("--base", "--ksrc", dest="base", metavar="TREE",
                   help="cost --per-patch: the tree (or .tar of one) the series applies to, instead of a line's "
                        "Debian source")
    b.add_argument("--line", help="cost --per-patch: the kernel line whose Debian source is the base (default "
                                  f"{kernel_lines.default().name})")
    b.add_argument("--boots", type=int, default=2, help="cost: fresh boots of each tree (default %(default)s)")
    b.add_argument("--monitor", default="off", metavar="off|INTERVAL",
                   help="migrators, cost: sample the kernel's counters during each trial, as `run --monitor` "
                        "does (default off: a benchmark measures the migration alone)")
    b.add_argument("--json", action="store_true", help="cost: the figures as JSON")
    b.add_argument("--runs-dir", help="migrators, cost: where their runs are stored (default data/runs)")
    b.set_defaults(fn=cmd_bench)
    return p


def main(argv=None) -> int:
    return dispatch(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
