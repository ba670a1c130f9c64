"""dcbm on a model DMA engine under the instruction-counted clock (notebook 05, section 3).

The test DMA engine (kernel patch 0011) has a time model: a descriptor of ``len`` bytes
completes ``latency_ns + len / bandwidth_mbps`` after its channel is free, on a timer. Under
``--accel icount`` (``-icount shift=0,sleep=off``) an idle guest jumps to its next timer, so
that time is exact and the same on every run, whatever the host does. Sweeping the model's
bandwidth and per-descriptor latency at each folio size, and comparing dcbm on one channel
with the kernel's own copy on the same clock, shows where one channel stops losing to the
CPU copy — the shape RFC V5 published (one channel slower than the CPU below 1M).

**A model of an engine, not a measurement of one.** The engine's own ``memcpy()`` is done
first and costs guest instructions like any copy, so the model holds only while it is
slower than that copy; the engine sums in ``late_ns`` how much later than the model its
completions came, and :func:`crossover_table` says for each point whether the model held.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..running import runner
from ...catalogue.migrators import TEST_DMA_ENGINE, TEST_ENGINE_PARAMS
from ...errors import WorkbenchError
from ..running.plan import RunParams

#: engine knobs (module parameters of test_dma_engine) the sweep sets
BANDWIDTH, LATENCY = "bandwidth_mbps", "latency_ns"
#: a completion later than the model by less than this share of the run counts as on time
LATE_TOLERANCE = 0.01


def sweep(target, folio_sizes: list[int], total_size: int, bandwidths_mbps: list[int], latencies_ns: list[int],
          channels: int = 1, repeats: int = 1, root=None, progress: bool = False) -> pd.DataFrame:
    """The kernel copy once, then dcbm at every (bandwidth, latency) of the model: one stored
    run each; records with ``model_bandwidth_mbps`` and ``model_latency_ns`` (NaN for the
    kernel copy)."""
    if not bandwidths_mbps or not latencies_ns:
        raise WorkbenchError("the engine model sweep needs at least one bandwidth and one latency")
    for bw in bandwidths_mbps:
        if not isinstance(bw, int) or not 1 <= bw <= 1_000_000:
            raise WorkbenchError(f"model bandwidth {bw!r} MB/s: allowed an integer from 1 to 1000000")
    for lat in latencies_ns:
        if not isinstance(lat, int) or not 0 <= lat <= 1_000_000_000:
            raise WorkbenchError(f"model latency {lat!r} ns: allowed an integer from 0 to 1000000000")
    frames = []
    # no monitor: the model's time is the engine's and the kernel's, nothing sampling beside them
    base = RunParams(folio_sizes=list(folio_sizes), total_size=total_size, repeats=repeats, migrator="kernel",
                     monitor_ms=None)
    run = runner.run(target, base, policy=runner.RunPolicy(label="model-baseline-kernel"), root=root,
                     progress=progress)
    frames.append(run.records().assign(model_bandwidth_mbps=np.nan, model_latency_ns=np.nan, run_id=run.id))
    for lat in latencies_ns:
        for bw in bandwidths_mbps:
            settings = {f"{TEST_ENGINE_PARAMS}/{BANDWIDTH}": str(bw), f"{TEST_ENGINE_PARAMS}/{LATENCY}": str(lat)}
            params = RunParams(folio_sizes=list(folio_sizes), total_size=total_size, repeats=repeats,
                               migrator="dcbm", channels=channels, dma_engine=TEST_DMA_ENGINE, settings=settings,
                               monitor_ms=None)
            run = runner.run(target, params, policy=runner.RunPolicy(label=f"model-dcbm-{bw}MBps-{lat}ns"), root=root,
                             progress=progress)
            frames.append(run.records().assign(model_bandwidth_mbps=bw, model_latency_ns=lat, run_id=run.id))
    return pd.concat(frames, ignore_index=True)


def crossover_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per folio size and model point: dcbm's time over the kernel copy's (medians over the
    repeats; below 1 dcbm wins), how many folios fell back, and whether the model held (the
    engine's completions were not later than the model by more than 1 % of the run)."""
    df = df.copy()
    base = (df[df["migrator"] == "kernel"].groupby("folio_size")["seconds"].median().rename("kernel_s"))
    d = df[df["migrator"] == "dcbm"].copy()
    if d.empty or base.empty:
        raise WorkbenchError("the engine model table needs both the kernel copy and dcbm runs")
    late = d.get(f"mig_{TEST_DMA_ENGINE}_late_ns", pd.Series(0, index=d.index)).fillna(0)
    d["late_share"] = late / (d["seconds"] * 1e9)
    g = d.groupby(["folio_size", "model_latency_ns", "model_bandwidth_mbps"]).agg(
        dcbm_s=("seconds", "median"), fallbacks=("mig_dcbm_fallbacks", "max"),
        late_share=("late_share", "max"), verified=("verified", "all")).reset_index()
    g = g.join(base, on="folio_size")
    g["dcbm_over_kernel"] = g["dcbm_s"] / g["kernel_s"]
    g["model_held"] = g["late_share"] <= LATE_TOLERANCE
    g["folio"] = g["folio_size"].map(_folio_label)
    return g[["folio", "folio_size", "model_latency_ns", "model_bandwidth_mbps", "kernel_s", "dcbm_s",
              "dcbm_over_kernel", "fallbacks", "model_held", "late_share", "verified"]]


def crossover(table: pd.DataFrame) -> pd.DataFrame:
    """Per folio size and latency: the lowest model bandwidth at which one channel no longer
    loses to the CPU copy (``dcbm_over_kernel`` <= 1 with the model holding), or none."""
    rows = []
    for (size, lat), g in table.groupby(["folio_size", "model_latency_ns"]):
        wins = g[(g["dcbm_over_kernel"] <= 1) & g["model_held"]].sort_values("model_bandwidth_mbps")
        rows.append({"folio": _folio_label(size), "folio_size": size, "model_latency_ns": lat,
                     "wins_from_mbps": int(wins["model_bandwidth_mbps"].iloc[0]) if len(wins) else None})
    return pd.DataFrame(rows)


def fig_crossover(table: pd.DataFrame):
    """dcbm's time over the kernel copy's against the model bandwidth, a line per folio size,
    a panel per latency; hollow markers where the model did not hold."""
    import matplotlib.pyplot as plt
    lats = sorted(table["model_latency_ns"].unique())
    fig, axes = plt.subplots(1, len(lats), figsize=(6 * len(lats), 4), squeeze=False, sharey=True)
    for ax, lat in zip(axes[0], lats):
        g = table[table["model_latency_ns"] == lat]
        for size, s in g.groupby("folio_size"):
            s = s.sort_values("model_bandwidth_mbps")
            line, = ax.plot(s["model_bandwidth_mbps"], s["dcbm_over_kernel"], marker="o", label=_folio_label(size))
            bad = s[~s["model_held"]]
            ax.plot(bad["model_bandwidth_mbps"], bad["dcbm_over_kernel"], "o", mfc="white", color=line.get_color())
        ax.axhline(1.0, color="grey", lw=1, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("model engine bandwidth (MB/s)")
        ax.set_title(f"model: {int(lat)} ns per descriptor, 1 channel")
    axes[0][0].set_ylabel("dcbm time / kernel copy time (icount)")
    axes[0][-1].legend(title="folio")
    fig.suptitle("A MODEL of a DMA engine under the instruction-counted clock, not a measurement of one "
                 "(hollow: the model did not hold)", fontsize=9)
    fig.tight_layout()
    return fig


def _folio_label(size) -> str:
    size = int(size)
    return f"{size >> 20}M" if size >= 1 << 20 else f"{size >> 10}K"
