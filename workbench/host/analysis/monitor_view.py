"""Monitor timelines as rates against time, with the migration marked (report, panel).

A timeline (:func:`workbench.host.running.store.load_monitor`) holds cumulative counters per
sample; here each becomes a rate between samples (per second of the target's clock —
instruction-time under icount), and each CPU's busy ticks a busy share. The migration is
the span from the ``migrate`` mark to the ``migrated`` mark.
"""

from __future__ import annotations

import pandas as pd

#: USER_HZ ticks of /proc/stat, in seconds
TICK_S = 0.01
#: the counters drawn first when a timeline has them (migration, then what drives it)
MIGRATION = ("vmstat_pgmigrate_success", "vmstat_thp_migration_success", "vmstat_pgmigrate_fail",
             "vmstat_numa_pages_migrated", "vmstat_compact_migrate_scanned", "vmstat_pgdemote_kswapd",
             "vmstat_pgdemote_direct", "vmstat_pgpromote_success")


def rates(timeline: pd.DataFrame) -> pd.DataFrame:
    """Long form: ``run_id``, ``trial_key``, ``t_s`` (the interval's end), ``phase``,
    ``series`` (a counter, or ``cpuN busy``), ``value`` (per second, or a share)."""
    rows = []
    if timeline.empty:
        return pd.DataFrame(columns=["run_id", "trial_key", "t_s", "phase", "series", "value"])
    counters = [c for c in timeline.columns if c.startswith(("vmstat_", "irq_", "cpu"))]
    samples = timeline[timeline["phase"] != "trace"]
    for (run, key), g in samples.groupby(["run_id", "trial_key"], sort=False):
        g = g.sort_values("t_ns")
        dt = g["t_ns"].diff() / 1e9
        for c in counters:
            d = pd.to_numeric(g[c], errors="coerce").diff()
            if c.endswith("_busy_ticks"):
                value, name = (d * TICK_S / dt).clip(upper=1.0), f"{c[:-len('_busy_ticks')]} busy"
            else:
                value, name = d / dt, c.removeprefix("vmstat_")
            ok = dt > 0
            rows.append(pd.DataFrame({"run_id": run, "trial_key": key, "t_s": g["t_ns"][ok] / 1e9,
                                      "phase": g["phase"][ok], "series": name, "value": value[ok]}))
    return pd.concat(rows, ignore_index=True)


def trace_marks(timeline: pd.DataFrame) -> pd.DataFrame:
    """The trace's events on the timeline (series v3's batches; each call's end):
    ``t_s``, ``event`` and the batch's ``trace_folios``/``_copied``/``_fallbacks`` where
    the event has them."""
    if "trace_event" not in timeline:
        return pd.DataFrame(columns=["t_s", "event"])
    ev = timeline[timeline["phase"] == "trace"]
    return ev.assign(t_s=ev["t_ns"] / 1e9, event=ev["trace_event"])


def migration_span(timeline: pd.DataFrame) -> tuple[float, float] | None:
    """(start, end) seconds of the migration in one trial's timeline."""
    t = timeline.set_index("phase")["t_ns"]
    starts, ends = t[t.index == "migrate"], t[t.index == "migrated"]
    if starts.empty or ends.empty:
        return None
    return float(starts.min()) / 1e9, float(ends.min()) / 1e9


def pick(timeline: pd.DataFrame, records: pd.DataFrame | None = None, trial_key: str | None = None) -> pd.DataFrame:
    """One trial's timeline: ``trial_key``'s, else the last trial's."""
    if timeline.empty:
        return timeline
    key = trial_key or timeline["trial_key"].iloc[-1]
    run = timeline.loc[timeline["trial_key"] == key, "run_id"].iloc[-1]
    return timeline[(timeline["trial_key"] == key) & (timeline["run_id"] == run)]


def fig_timeline(timeline: pd.DataFrame, trial_key: str | None = None, title: str | None = None):
    """One trial: what migrated per second, interrupts per second and each CPU's busy
    share against time, the migration shaded. None when there is no timeline."""
    import matplotlib.pyplot as plt
    one = pick(timeline, trial_key=trial_key)
    if one.empty:
        return None
    r = rates(one)
    span = migration_span(one)
    panels = [("migrated and scanned per second", r[r["series"].isin([m.removeprefix("vmstat_") for m in MIGRATION])]),
              ("interrupts per second", r[r["series"].str.startswith("irq_")]),
              ("busy share", r[r["series"].str.endswith(" busy")])]
    panels = [(label, d) for label, d in panels if not d.empty]
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.5, 2.2 * len(panels)), sharex=True, squeeze=False)
    for ax, (label, d) in zip(axes[:, 0], panels):
        for name, g in d.groupby("series", sort=True):
            ax.step(g["t_s"] * 1e3, g["value"], where="pre", label=name.removeprefix("irq_"))
        if span:
            ax.axvspan(span[0] * 1e3, span[1] * 1e3, color="0.85", zorder=0, label="migration")
        for (event, g), color in zip(trace_marks(one).groupby("event", sort=True), ("C3", "C4", "C5")):
            ax.vlines(g["t_s"] * 1e3, 0, 1, transform=ax.get_xaxis_transform(), colors=color, lw=0.6,
                      linestyles="dashed", label=f"{event} (trace)")
        ax.set_ylabel(label, fontsize=8)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("time since the trial began, ms (the target's clock)")
    key = one["trial_key"].iloc[0]
    fig.suptitle(title or f"monitor: {key}", fontsize=9)
    fig.tight_layout()
    return fig


def cost_line(records: pd.DataFrame) -> str | None:
    """What the monitor cost on the target, from the records: one line, or None."""
    if "monitor_cost_share" not in records:
        return None
    share = pd.to_numeric(records["monitor_cost_share"], errors="coerce").dropna()
    if share.empty:
        return None
    ms = pd.to_numeric(records.get("monitor_interval_ms"), errors="coerce").dropna()
    every = f"every {ms.iloc[0]:g} ms, " if len(ms) else ""
    return (f"monitor: {every}{len(share)} trials; its sampling thread used {share.median():.1%} of the trial's "
            f"time (median; max {share.max():.1%}) on the target")


def chosen_trials(records: pd.DataFrame, limit: int = 6) -> list[tuple[str, str]]:
    """(run_id, trial_key) of the monitored trials to draw: the first repeat of each
    configuration and folio size, at most ``limit``."""
    if "monitor_file" not in records:
        return []
    mon = records[records["monitor_file"].notna()]
    if mon.empty:
        return []
    keys = [c for c in ("run_id", "workload", "migrator", "threads", "channels", "batch_size", "folio_size")
            if c in mon]
    firsts = mon.sort_values("repeat" if "repeat" in mon else "trial_key").groupby(keys, dropna=False, sort=False).head(1)
    return list(zip(firsts["run_id"], firsts["trial_key"]))[:limit]


def show(records: pd.DataFrame, root=None, limit: int = 6) -> None:
    """The report's section: what the monitor cost, and a timeline per configuration."""
    import matplotlib.pyplot as plt

    from ..running import store
    chosen = chosen_trials(records, limit)
    if not chosen:
        print("no trial in these runs was monitored (runs made before monitors, or with --monitor off)")
        return
    print(cost_line(records))
    timeline = store.load_monitor(root, sorted({run for run, _ in chosen}))
    for run, key in chosen:
        one = timeline[(timeline["run_id"] == run) & (timeline["trial_key"] == key)]
        fig = fig_timeline(one, title=f"{run}: {key}")
        if fig is not None:
            plt.show()
