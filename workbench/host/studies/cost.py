"""``workbench bench cost``: what the series costs, in instruction-time.

Under QEMU's instruction-counted clock (``--accel icount``) the guest's time is the
number of guest instructions executed, reproducible to a fraction of a percent on a
loaded machine. That is not speed (no memory system, no parallel speedup: vCPUs take
turns, so helper threads add their instructions instead of finishing sooner), but it
is exactly the work a code path does, which is what the series' overhead questions are
about. The benchmark boots the vanilla and the patched tree of the *bench* build
profile (the same source and config without the debug options that change these
paths' cost), twice each, and measures per folio size:

1. the patched kernel as shipped (the kernel migrator, default knobs);
2. the batched kernel copy forced on, at several batch sizes;
3. mtcopy with 1 and 2 threads (total work: the helpers' instructions count too);
4. dcbm with 1 channel on the test DMA engine;

each as instruction-time per moved folio and its ratio to vanilla (of the medians), with
a 95% interval from a bootstrap over boots and the trials within each: an interval
holding 1 is "no difference", and a goal is met when the whole interval lies within it
(not decided when it straddles a bound). The range beside it (the largest spread of
single trials within a boot, or of the boots' medians) shows outliers, which move the
interval little — under icount one slow trial in fifteen made the range 2-9% and hid
differences of a few tenths of a percent that the medians showed across boots. It also
measures first-folio latency against batch size (from the series' batch tracepoints where
the kernel has them, series v3; else from a polling thread, whose instructions count) and
the copy share F from the series' own counters, in instruction-time. Every trial is a
stored run, so nothing measured is lost.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field, replace

import pandas as pd

from ...errors import WorkbenchError
from ...units import format_size
from ...protocol import check_knob_bounds
from ..analysis import clocks, stats
from ..running import plan, record_schema, runner, store
from ..running.plan import RunParams

#: the goals a series' ratios to vanilla are held to: {configuration: (folio size or None
#: for every size, lowest change, highest change)}; series v2's from the first cost
#: benchmark, series v3's from issue 19 (defaults within +-0.2% at every size; the batched
#: kernel copy at most +0.5% at batch 512, +1% at 16 and +3% at 1, at 4K)
GOALS = {
    "v2": {"patched, defaults": (None, -0.005, 0.005), "batched kernel copy, batch 512": (None, -0.02, 0.02)},
    "v3": {"patched, defaults": (None, -0.002, 0.002),
           "batched kernel copy, batch 512": (4096, -math.inf, 0.005),
           "batched kernel copy, batch 16": (4096, -math.inf, 0.01),
           "batched kernel copy, batch 1": (4096, -math.inf, 0.03)},
}


def series_of(interface) -> str | None:
    """Which of our series' goals hold for records of this migration interface: none for
    another series' (the RFC postings', V6 among them), which our goals do not bind."""
    if str(interface).startswith("RFC "):
        return None
    return "v3" if str(interface).startswith("workbench series v3") else "v2"


def goal_words(low: float, high: float) -> str:
    return f"within {high:.1%}" if low == -high else f"at most {high:+.1%}"


#: how a goal's verdict reads: the ratio's whole interval within it, wholly outside, neither
GOAL_WORDS = {True: "met", False: "NOT met", None: "not decided"}


@dataclass
class CostConfig:
    """One configuration of the benchmark: a kernel tree and the knobs of its trials."""

    label: str
    kernel: str                     # "vanilla" or "patched"
    knobs: dict = field(default_factory=dict)
    first_folio: bool = False       # a latency trial
    #: how a latency trial sees the first folio: "trace", the series' batch tracepoints
    #: (call start to the end of its first batch: nothing added to the guest but the trace);
    #: "poller", a polling thread (its instructions count), for kernels without them
    latency_by: str = "trace"

    def params(self, folio_sizes, size, repeats, monitor_ms: float | None = None) -> RunParams:
        # no trace events and no monitor in cost trials (unless asked): the benchmark
        # counts the migration path's instructions, nothing else
        trace = self.first_folio and self.latency_by == "trace"
        return RunParams(folio_sizes=list(folio_sizes), total_size=size, repeats=repeats,
                         first_folio=self.first_folio and not trace, trace=trace, monitor_ms=monitor_ms,
                         **self.knobs)


#: ``--batch-sizes fixed``: a series without a batch size knob (v3 so far) batches at the
#: kernel's compile-time NR_MAX_BATCHED_MIGRATION, 512 base pages with 4K pages
FIXED_BATCH = 512


def configurations(batch_sizes=(1, 16, 64, 512), threads=(1, 2), channels=(1,), latency=True) -> list[CostConfig]:
    """``batch_sizes`` may be ``"fixed"``: the batched kernel copy at the kernel's own batch
    size (:data:`FIXED_BATCH`), for a series without a batch size knob."""
    out = [CostConfig("vanilla", "vanilla"), CostConfig("patched, defaults", "patched")]
    fixed = batch_sizes == "fixed"
    batch_knobs = {FIXED_BATCH: {}} if fixed else {b: {"batch_size": b} for b in batch_sizes}
    for b, knob in batch_knobs.items():
        out.append(CostConfig(f"batched kernel copy, batch {b}", "patched", {**knob, "batch_kernel_copy": True}))
    out += [CostConfig(f"mtcopy, {t} thread{'s' if t > 1 else ''}", "patched", {"migrator": "mtcopy", "threads": t})
            for t in threads]
    out += [CostConfig(f"dcbm, {c} channel{'s' if c > 1 else ''}", "patched", {"migrator": "dcbm", "channels": c})
            for c in channels]
    if latency:
        out += [CostConfig(f"first-folio latency, batch {b}", "patched",
                           {**knob, "batch_kernel_copy": True}, first_folio=True)
                for b, knob in batch_knobs.items()]
    return out


def icount_target(kernel: str, vm_name: str, nodes: str | None = None):
    """A fresh icount VM (single-threaded TCG, instruction-counted clock) of a built tree,
    ``kernel`` its full name (``patched-bench``), with ``nodes`` as ``--nodes`` takes them
    (default: the VM's two nodes, a CPU each); the VM ``vm_name`` is stopped first, so
    that every boot starts afresh."""
    from ...targets import make_target
    target = make_target("vm", kernel=kernel, vm_name=vm_name, accel="icount", nodes=nodes)
    target.vm.down()
    return target


def default_target_factory(kernel: str, boot: int, nodes: str | None = None):
    """The icount VM of one tree (bench profile), booted afresh for each boot; ``kernel``
    is the tree's name without the profile (vanilla, patched, vanilla-6.12, patched-6.12)."""
    return icount_target(f"{kernel}-bench", f"cost-{kernel}", nodes)


def require_icount(target) -> None:
    if target.clock() != "icount":
        raise WorkbenchError(f"the cost benchmark needs the icount clock; target {target.label} has "
                             f"{target.clock()}")


def _run_config(target, cfg: CostConfig, kernel, tree, boot, folio_sizes, size, repeats, root, progress,
                study=None, prefix="cost", monitor_ms=None):
    meta = {"cost": {"config": cfg.label, "kernel_tree": kernel, "tree": tree, "boot": boot,
                     "latency_trial": cfg.first_folio, "latency_by": cfg.latency_by if cfg.first_folio else None,
                     **({"study": study} if study else {})}}
    suffix = "-poller" if cfg.first_folio and cfg.latency_by == "poller" else ""
    label = f"{prefix}-boot{boot}-{cfg.label.replace(', ', '-').replace(' ', '')}{suffix}"
    return runner.run(target, cfg.params(folio_sizes, size, repeats, monitor_ms), policy=runner.RunPolicy(label=label),
                      root=root, progress=progress, manifest_extra=meta)


def _has_trace_latency(run) -> bool:
    df = store.load_runs(run.dir.parent, [run.id]) if run.count() else pd.DataFrame()
    return "trace_first_batch_ns" in df and pd.to_numeric(df["trace_first_batch_ns"], errors="coerce").notna().any()


def not_offered(target, params: RunParams) -> str | None:
    """Why the target's kernel cannot run a configuration (a migrator, knob or folio size
    it does not offer), or None."""
    facts = target.facts()
    try:
        plan.validate(params, facts, target.kind)
        check_knob_bounds(params.interface_knobs(), facts.get("knobs") or {}, facts.get("interface"),
                          facts.get("kernel_release"))
    except WorkbenchError as e:
        return str(e)
    return None


def measure_tree(target, configs: list[CostConfig], kernel: str, tree: str, boot: int, folio_sizes, size: int,
                 repeats: int, root=None, progress: bool = True, study: dict | None = None,
                 prefix: str = "cost", monitor_ms: float | None = None) -> list[str]:
    """One boot of one tree: an untimed trial, then each configuration as a stored run;
    returns the runs' ids. ``kernel`` is the configurations' side (vanilla or patched),
    ``tree`` the tree's name; ``study`` is kept in each run's manifest (``cost.study``: the
    per-patch or bisect study a run belongs to, which :func:`load` leaves out unless asked)."""
    require_icount(target)
    # one untimed trial first: the first migration after boot also warms the allocator
    runner.run(target, RunParams(folio_sizes=[folio_sizes[0]], total_size=size, repeats=1, trace=False,
                                 monitor_ms=None),
               policy=runner.RunPolicy(label=f"{prefix}-warmup-{kernel}-boot{boot}"), root=root, progress=False)
    ids = []
    for cfg in configs:
        why = not_offered(target, cfg.params(folio_sizes, size, repeats))
        if why:
            # another series (RFC V6 has neither mtcopy nor a batched kernel copy) is
            # measured on what it has; the rest is said, not failed
            print(f"bench cost: {tree}: leaving out '{cfg.label}': {why}", file=sys.stderr)
            continue
        run = _run_config(target, cfg, kernel, tree, boot, folio_sizes, size, repeats, root, progress, study, prefix,
                          monitor_ms)
        if cfg.first_folio and cfg.latency_by == "trace" and not _has_trace_latency(run):
            # a kernel without the batch tracepoints (series v2): the polling thread;
            # the traced run stays stored, marked as superseded (load() skips it)
            traced = run
            run = _run_config(target, replace(cfg, latency_by="poller"), kernel, tree, boot, folio_sizes, size,
                              repeats, root, progress, study, prefix, monitor_ms)
            traced.update_manifest(cost={**traced.manifest["cost"], "superseded_by": run.id})
        ids.append(run.id)
    return ids


def measure(folio_sizes=(4096, 64 << 10, 2 << 20), size: int = 8 << 20, repeats: int = 3, boots: int = 2,
            batch_sizes=(1, 16, 64, 512), root=None, progress: bool = True, target_factory=None,
            configs: list[CostConfig] | None = None, trees: tuple[str, str] = ("vanilla", "patched"),
            channels=(1,), monitor_ms: float | None = None, nodes: str | None = None) -> pd.DataFrame:
    """Run every configuration, ``boots`` times on fresh boots; returns their records
    (columns ``config``, ``boot``, ``cost_ns`` per folio besides the usual ones).
    ``nodes`` (``--nodes``' form, e.g. ``1536M:0,1536M:none`` for one vCPU) boots the VMs
    with those nodes; such runs are a study (left out of the stored benchmark's reports).
    ``trees``: the names of the vanilla and the patched tree (their bench builds boot),
    e.g. ``("vanilla-6.12", "patched-6.12")`` for the LTS line's series v2."""
    factory = target_factory or (lambda kernel, boot: default_target_factory(kernel, boot, nodes=nodes))
    configs = configs or configurations(batch_sizes, channels=channels)
    tree_of = dict(zip(("vanilla", "patched"), trees))
    ids = []
    for boot in range(boots):
        for kernel in ("vanilla", "patched"):
            mine = [c for c in configs if c.kernel == kernel]
            if not mine:
                continue
            target = factory(tree_of[kernel], boot)
            ids += measure_tree(target, mine, kernel, tree_of[kernel], boot, folio_sizes, size, repeats, root,
                                progress, monitor_ms=monitor_ms,
                                # another node layout is a study of its own: kept out of the default reports
                                study={"name": "nodes", "nodes": nodes} if nodes else None)
            if hasattr(target, "vm"):
                target.vm.down()
    return load(ids, root)


def _numeric(df: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(df[column], errors="coerce").dropna() if column in df else pd.Series(dtype=float)


def benchmark_run(run: store.Run) -> bool:
    """Whether a stored run is one of `bench cost`'s own, as its reports take them: not
    a per-patch or bisect study's (read by their ids), not superseded by a rerun."""
    meta = run.manifest.get("cost")
    return bool(meta) and not meta.get("superseded_by") and not meta.get("study")


def load(run_ids=None, root=None) -> pd.DataFrame:
    """The records of stored cost runs (default: every run the benchmark made, without
    those of a per-patch or bisect study, which are read by their ids), with the
    columns ``config``, ``kernel_tree``, ``boot``, ``latency_trial`` and ``cost_ns``
    (instruction-time per moved folio)."""
    runs = [store.open_run(r, root) for r in run_ids] if run_ids else store.list_runs(root)
    frames = []
    for run in runs:
        meta = run.manifest.get("cost")
        if not meta or not run.count() or meta.get("superseded_by") or (not run_ids and not benchmark_run(run)):
            continue
        df = store.load_runs(root, [run.id])
        frames.append(df.assign(config=meta["config"], kernel_tree=meta["kernel_tree"], boot=meta["boot"],
                                latency_trial=meta["latency_trial"], tree=meta.get("tree") or meta["kernel_tree"]))
    if not frames:
        raise WorkbenchError("no cost benchmark runs " + (f"among {', '.join(run_ids)}" if run_ids else
                                                           "stored: run `workbench bench cost`"))
    df = pd.concat(frames, ignore_index=True)
    clocks.require_one_clock(df, "the cost benchmark")
    df["cost_ns"] = df["seconds"] * 1e9 / df["folios"]
    return df


def require_one_pair(df: pd.DataFrame) -> None:
    """Refuse records of more than one vanilla or patched tree: a ratio of one line's
    patched tree to another line's vanilla (7.3's v3 against 7.2.13) is no figure."""
    for side, g in df.groupby("kernel_tree"):
        trees = sorted(set(g["tree"].astype(str)))
        if len(trees) > 1:
            raise WorkbenchError(f"the cost runs hold {len(trees)} {side} trees ({', '.join(trees)}): a ratio needs "
                                 "one pair; give the run ids of one `bench cost --trees` measurement")


def _spread(g: pd.DataFrame, value: str) -> tuple[float, float, float]:
    """(median, spread across repeats within a boot, spread across boots), relative."""
    med = float(g[value].median())
    within = max(((b[value].max() - b[value].min()) for _, b in g.groupby("boot")), default=0.0) / med
    boots = g.groupby("boot")[value].median()
    across = float(boots.max() - boots.min()) / med if len(boots) > 1 else math.nan
    return med, within, across


def boot_groups(g: pd.DataFrame, value: str) -> list:
    """``value`` of each boot's trials, one array per boot (what the bootstrap resamples)."""
    return [b[value].to_numpy(float) for _, b in g.groupby("boot")]


def verdict(ratio: float, low: float, high: float) -> str:
    """'no difference' when the ratio's interval holds 1, else the change."""
    return "no difference" if low <= 1 <= high else f"{ratio - 1:+.2%}"


def goal_verdict(low: float, high: float, least: float, most: float) -> bool | None:
    """True when the ratio's whole interval [low, high] lies within the change the goal
    allows [1 + least, 1 + most], False when it lies wholly outside, None (not decided)
    when it straddles a bound."""
    if 1 + least <= low and high <= 1 + most:
        return True
    if high < 1 + least or low > 1 + most:
        return False
    return None


def _batch_size(g: pd.DataFrame, cfg: str) -> int | None:
    """A configuration's batch size: its trials' knob, else (``--batch-sizes fixed``, no
    knob set) the one its label names."""
    value = g["batch_size"].iloc[0]
    if not pd.isna(value):
        return int(value)
    m = re.search(r"\bbatch (\d+)$", cfg)
    return int(m.group(1)) if m else None


def summarize(df: pd.DataFrame) -> dict:
    """The benchmark's figures: a row per (configuration, folio size), latency rows and F."""
    if "tree" in df:
        require_one_pair(df)
    cost = df[~df["latency_trial"]]
    rows = []
    base, groups = {}, {}
    for (cfg, folio_size), g in cost.groupby(["config", "folio_size"], sort=False):
        groups[(cfg, folio_size)] = g
        med, within, across = _spread(g, "cost_ns")
        spread = max(within, 0.0 if math.isnan(across) else across)
        share = pd.to_numeric(g.get("copy_share"), errors="coerce").dropna() if "copy_share" in g else pd.Series()
        row = {"config": cfg, "kernel": g["kernel_tree"].iloc[0], "migrator": g["migrator"].iloc[0],
               "series": series_of(g["interface"].iloc[0] if "interface" in g else None),
               "folio_size": int(folio_size), "folio": format_size(int(folio_size)),
               "batch_size": _batch_size(g, cfg),
               "cost_ns_per_folio": med, "spread": spread, "spread_repeats": within, "spread_boots": across,
               "n": len(g), "copy_share": float(share.median()) if len(share) else None,
               "verified": bool(g["verified"].all())}
        if cfg == "vanilla":
            base[folio_size] = row
        rows.append(row)
    for row in rows:
        v = base.get(row["folio_size"])
        if v is None:
            row.update(ratio=None, difference="no vanilla row")
            continue
        if row is v:
            row.update(ratio=1.0, ratio_low=1.0, ratio_high=1.0, difference="no difference")
        else:
            ratio, low, high = stats.ratio_interval(boot_groups(groups[(row["config"], row["folio_size"])], "cost_ns"),
                                                    boot_groups(groups[(v["config"], v["folio_size"])], "cost_ns"))
            row.update(ratio=ratio, ratio_low=low, ratio_high=high, difference=verdict(ratio, low, high))
        size, least, most = GOALS.get(row["series"], {}).get(row["config"], (None, None, None))
        if least is not None and size in (None, row["folio_size"]):
            row["goal"] = goal_words(least, most)
            row["goal_met"] = goal_verdict(row["ratio_low"], row["ratio_high"], least, most)
    lat = df[df["latency_trial"]]
    latency = []
    for (cfg, folio_size), g in lat.groupby(["config", "folio_size"], sort=False):
        # the batch tracepoints' figure where the kernel has them, else the polling thread's
        traced = _numeric(g, "trace_first_batch_ns")
        ns = traced if len(traced) else _numeric(g, "first_folio_ns")
        call = _numeric(g, "trace_syscall_ns") / 1e3 if len(traced) else g["seconds"] * 1e6
        latency.append({"config": cfg, "folio": format_size(int(folio_size)), "folio_size": int(folio_size),
                        "batch_size": _batch_size(g, cfg), "by": "trace" if len(traced) else "poller",
                        "first_folio_us": float(ns.median()) / 1e3 if len(ns) else None,
                        "call_us": float(call.median()) if len(call) else None, "n": len(ns)})
    overhead = pd.to_numeric(df.get("harness_overhead_share"), errors="coerce").dropna() \
        if "harness_overhead_share" in df else pd.Series(dtype=float)
    return {"rows": rows, "latency": latency, "verified": bool(df["verified"].all()),
            "harness_overhead_share": float(overhead.median()) if len(overhead) else None,
            "trials": len(df), "boots": int(df["boot"].nunique()),
            "kernels": sorted(set(df["kernel_release"].dropna())) if "kernel_release" in df else []}


def format_text(summary: dict) -> str:
    lines = ["instruction-time (icount): deterministic path cost, not speed",
             f"{summary['trials']} trials over {summary['boots']} boot(s) of each tree "
             f"({', '.join(summary['kernels'])}); every trial verified byte-exact: {summary['verified']}"]
    if summary.get("harness_overhead_share") is not None:
        lines.append(f"harness overhead inside the timed call (median): {summary['harness_overhead_share']:.4%} "
                     "(goal < 1%)")
    lines.append("")
    head = (f"{'configuration':<34} {'folio':>5} {'ns/folio':>12} {'ratio':>8} {'95% interval':>17} "
            f"{'range':>7}  vs vanilla")
    lines += [head, "-" * len(head)]
    for r in summary["rows"]:
        ratio = f"{r['ratio']:.4f}" if r.get("ratio") is not None else "-"
        interval = f"{r['ratio_low']:.4f}-{r['ratio_high']:.4f}" if r.get("ratio_low") is not None else "-"
        goal = ""
        if "goal" in r:
            goal = f"   (goal {r['goal']}: {GOAL_WORDS[r['goal_met']]})"
        lines.append(f"{r['config']:<34} {r['folio']:>5} {r['cost_ns_per_folio']:>12.0f} {ratio:>8} "
                     f"{interval:>17} {r['spread']:>7.2%}  {r['difference']}{goal}")
    lines += ["", "ratio: of the medians; its interval: a bootstrap over boots and the trials within each "
                  "(stats.ratio_interval), which decides 'no difference' and a goal; range: the largest "
                  "spread of single trials within a boot or of boots' medians, relative"]
    shares = [r for r in summary["rows"] if r.get("copy_share") is not None]
    if shares:
        lines += ["", "copy share F = copy_ns / batch_ns (the series' counters, instruction-time):"]
        lines += [f"  {r['config']:<34} {r['folio']:>5}  F = {r['copy_share']:.3f}" for r in shares]
    if summary["latency"]:
        by = {r.get("by", "poller") for r in summary["latency"]}
        how = {"trace": "from the batch tracepoints: call start to its first batch's end",
               "poller": "its polling thread's instructions included"}
        lines += ["", "first-folio latency against batch size (" + "; ".join(how[b] for b in sorted(by)) + "):"]
        lines += [f"  batch {r['batch_size']:>6} {r['folio']:>5}: first folio after {r['first_folio_us']:.1f} us "
                  f"of a {r['call_us']:.1f} us call" if r["first_folio_us"] is not None else
                  f"  batch {r['batch_size']:>6} {r['folio']:>5}: not seen" for r in summary["latency"]]
    return "\n".join(lines)


# -- plots (notebooks/06-cost) ----------------------------------------------------------

def _fixed_configs(rows: pd.DataFrame) -> list[str]:
    return [c for c in dict.fromkeys(rows["config"]) if not c.startswith("batched kernel copy")]


def fig_cost(summary: dict):
    """Instruction-time per folio against batch size, one panel per folio size: the
    batched kernel copy as a line over its batch sizes with the 95% interval of its ratio to
    vanilla as error bars, every other configuration (vanilla, patched defaults, mtcopy,
    dcbm) as a level."""
    import matplotlib.pyplot as plt
    rows = pd.DataFrame(summary["rows"])
    folios = list(dict.fromkeys(rows.sort_values("folio_size")["folio"]))
    fig, axes = plt.subplots(1, len(folios), figsize=(5.2 * len(folios), 4), squeeze=False)
    for ax, folio in zip(axes[0], folios):
        g = rows[rows["folio"] == folio]
        batched = g[g["config"].str.startswith("batched kernel copy")].sort_values("batch_size")
        if not batched.empty:
            us = batched["cost_ns_per_folio"] / 1e3
            vanilla = us / batched["ratio"].astype(float)
            yerr = [(us - vanilla * batched["ratio_low"].astype(float)).clip(lower=0),
                    (vanilla * batched["ratio_high"].astype(float) - us).clip(lower=0)]
            ax.errorbar(batched["batch_size"], us, yerr=yerr, marker="o", capsize=3,
                        label="batched kernel copy (95% interval)", color="C0")
        for i, cfg in enumerate(_fixed_configs(g)):
            r = g[g["config"] == cfg].iloc[0]
            ax.axhline(r["cost_ns_per_folio"] / 1e3, ls="--" if cfg != "vanilla" else "-", lw=1.2,
                       color="black" if cfg == "vanilla" else f"C{i + 1}", label=cfg)
        ax.set_xscale("log", base=2)
        ax.set(xlabel=record_schema.heading("batch_size"), ylabel="instruction-time per folio, µs",
               title=f"{folio} folios\n(instruction-time (icount): path cost, not speed)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def fig_amdahl(summary: dict, speedups=(1, 1.5, 2, 4, 8, 16, 64)):
    """Amdahl beside the measurement: whole-call speedup against copy speedup S for the
    copy share F the series' counters measured in instruction-time, per folio size."""
    import matplotlib.pyplot as plt
    import numpy as np

    from ..analysis.amdahl import max_speedup, speedup
    rows = [r for r in summary["rows"] if r.get("copy_share") is not None
            and r["config"].startswith("batched kernel copy")]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    s = np.geomspace(1, max(speedups), 64)
    seen = set()
    for r in sorted(rows, key=lambda r: (r["folio_size"], -(r["batch_size"] or 0))):
        if r["folio"] in seen:
            continue        # the largest batch of each folio size: the series' default shape
        seen.add(r["folio"])
        F = r["copy_share"]
        ax.plot(s, speedup(F, s), label=f"{r['folio']}: F = {F:.2f} (limit {max_speedup(F):.1f}x)")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="copy speedup S", ylabel="predicted move_pages() speedup",
           title="Amdahl with F measured in instruction-time\n(what an engine S times faster at copying would buy)")
    if rows:
        ax.legend(fontsize=8)
    else:   # series v3 counts no batch time (kernel/v3 0003): say so rather than draw nothing
        ax.text(0.5, 0.5, "no copy share F: the patched tree's counters have no batch time\n"
                "(series v3 counts copy time, not the batch's)", ha="center", va="center",
                transform=ax.transAxes, fontsize=9)
    fig.tight_layout()
    return fig
