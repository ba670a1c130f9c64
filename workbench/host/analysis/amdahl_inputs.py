"""Where Amdahl's ``F`` and ``S`` come from, per folio size (and batch size).

``F`` (the copy's share of a ``move_pages()`` call) is about 0.54 at 4K and 0.99 at 2M in
this project's own instruction-time runs and depends on the batch size (the seed's table:
<1% at 4K one folio at a time, ~97% at 2M in batches of 512), so one ``F`` for every folio
size draws a line that is wrong everywhere but where it came from. Each folio size takes
its inputs from the first of three sources that has them, and says which:

``counters``
    the records' own: ``F`` is the ``copy_share`` of the kernel's batched copy (its copy
    time over its batch time), ``S`` the kernel's copy time per byte over the migrator's.
    A kernel's counters count only batched copies: a patched kernel on its serial path
    (batching off) has none, a stock kernel has no counters at all.
``cost``
    stored ``workbench bench cost`` runs of the same kernel (the same release and
    migration interface; their bench build): ``F`` of the batched kernel copy at the batch
    size nearest the records', ``S`` from copy time per byte as above. Those runs use the
    icount clock, so their ``F`` is a share of instruction-time.
``seed``
    the RFC V3 cover letter's shares (4K and 2M, one folio and 512 at a time), and ``S``
    solved from its throughput at that folio size with that share (other hardware).

Where no source has a figure the value is None and the panel keeps its slider.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import amdahl, clocks, reference
from ..studies import cost
from ..running import store
from ...units import format_size

#: the sources, in the order they are tried
SOURCES = ("counters", "cost", "seed")

#: how a set of records copied: the kernel with no offload interface, a patched kernel
#: on its serial path, its batched kernel copy, or a migrator other than the kernel's
PATHS = ("stock", "serial", "batched", "offload")


def _num(s) -> pd.Series:
    return pd.to_numeric(s, errors="coerce")


def copy_path(records: pd.DataFrame) -> str:
    """Which of :data:`PATHS` the records took (the most telling one when they mix)."""
    if records is None or records.empty:
        return "stock"
    if (records["migrator"] != "kernel").any():
        return "offload"
    if "batch_kernel_copy" in records and records["batch_kernel_copy"].fillna(False).astype(bool).any():
        return "batched"
    interface = records["interface"].dropna() if "interface" in records else pd.Series(dtype=object)
    if interface.empty or (interface == "none").all():
        return "stock"
    return "serial"


def _batch(records: pd.DataFrame) -> int | None:
    b = _num(records["batch_size"]).dropna() if "batch_size" in records else pd.Series(dtype=float)
    return int(b.iloc[-1]) if len(b) else None


def _ns_per_byte(rows: pd.DataFrame, migrator: str) -> float | None:
    col = f"mig_{migrator}_copy_ns"
    if rows.empty or col not in rows or "total_bytes" not in rows:
        return None
    ns = _num(rows[col])
    ok = ns.notna() & (ns > 0)
    return float(ns[ok].sum() / _num(rows.loc[ok, "total_bytes"]).sum()) if ok.any() else None


def _s_from(rows: pd.DataFrame, migrator: str, workers: int | None, baseline: str) -> float | None:
    """S from copy time per byte, the baseline's over the migrator's (same workers if any)."""
    base = rows[rows["migrator"] == baseline]
    mine = rows[rows["migrator"] == migrator]
    if workers is not None and not mine.empty:
        w = _num(mine["threads"]).fillna(_num(mine["channels"])) if "threads" in mine else pd.Series(dtype=float)
        same = mine[w == workers] if len(w) else mine
        mine = same if not same.empty else mine
    b, m = _ns_per_byte(base, baseline), _ns_per_byte(mine, migrator)
    return b / m if b and m else None


def _nearest(values, want: int) -> int:
    return min(values, key=lambda v: (abs(math.log(v / want)), -v))


def stored_cost_records(records: pd.DataFrame, root=None) -> pd.DataFrame:
    """The records of stored `bench cost` runs of the kernel ``records`` came from: the
    same release and migration interface (the runs' bench build of that source); not a
    per-patch or bisect study's trees, each a part of a series."""
    releases = set(records["kernel_release"].dropna()) if "kernel_release" in records else set()
    interfaces = set(records["interface"].dropna()) - {"none"} if "interface" in records else set()
    if not releases or not interfaces:
        return pd.DataFrame()
    frames = []
    for run in store.list_runs(root):
        if not cost.benchmark_run(run) or run.manifest["cost"].get("latency_trial") \
                or run.manifest.get("kernel_release") not in releases:
            continue
        meta = run.manifest["cost"]
        df = store.load_runs(root, [run.id])
        if df.empty or "interface" not in df or not set(df["interface"].dropna()) & interfaces:
            continue
        frames.append(df.assign(config=meta["config"], cost_run=run.id))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _from_counters(g: pd.DataFrame, migrator, workers, baseline):
    base = g[g["migrator"] == baseline]
    shares = _num(base["copy_share"]).dropna() if "copy_share" in base else pd.Series(dtype=float)
    F = float(shares.mean()) if len(shares) else None
    S = _s_from(g, migrator, workers, baseline) if migrator != baseline else None
    return F, S


def _from_cost(cost: pd.DataFrame, folio_size: int, batch: int, migrator, workers, baseline):
    """(F, batch it was measured at, its runs, S, its runs) from stored cost runs at one folio size."""
    if cost.empty:
        return None, None, [], None, []
    g = cost[cost["folio_size"] == folio_size]
    batched = g[g["config"].str.startswith("batched kernel copy")]
    F = at = None
    f_runs, s_runs = [], []
    shares = batched.assign(share=_num(batched.get("copy_share")), b=_num(batched["batch_size"])) \
        .dropna(subset=["share", "b"]) if not batched.empty and "copy_share" in batched else pd.DataFrame()
    if not shares.empty:
        at = _nearest(sorted({int(b) for b in shares["b"]}), batch)
        pick = shares[shares["b"] == at]
        F = float(pick["share"].median())
        f_runs = sorted(set(pick["cost_run"]))
    S = None
    if migrator != baseline:
        S = _s_from(pd.concat([batched, g[g["migrator"] == migrator]]), migrator, workers, baseline)
        if S is not None:
            s_runs = sorted(set(g.loc[g["migrator"] == migrator, "cost_run"]))
    return F, at, f_runs, S, s_runs


def _runs(ids: list[str]) -> str:
    return ids[0] if len(ids) == 1 else f"{len(ids)} runs: {ids[0]}, ..."


def _from_seed(folio_size: int, batch: int, migrator, workers):
    """(F, batch it was published at, S, what S was solved from) from the cover letter."""
    share = reference.copy_share()
    mine = share[share["folio_size"] == folio_size]
    if mine.empty:
        return None, None, None, None
    at = _nearest(sorted(mine["pages"]), batch)
    F = float(mine.loc[mine["pages"] == at, "copy_share"].iloc[0])
    # its throughput tables move 1 GB at the series' batch of 512: S from the share at 512
    F512 = mine.loc[mine["pages"] == amdahl.DEFAULT_BATCH, "copy_share"]
    tp = reference.throughput()
    tp = tp[tp["folio_size"] == folio_size]
    base, other = tp[tp["migrator"] == "kernel"], tp[tp["migrator"] == migrator]
    S = what = None
    if len(F512) and not base.empty and not other.empty:
        k = workers if workers in set(other["workers"]) else int(other["workers"].max())
        ratio = float(other.loc[other["workers"] == k, "gbps_mean"].iloc[0] / base["gbps_mean"].iloc[0])
        s = float(amdahl.copy_speedup_for(ratio, float(F512.iloc[0])))
        if np.isfinite(s) and s > 0:
            unit = ("channel" if migrator == "dcbm" else "thread") + ("s" if k != 1 else "")
            S, what = s, f"{migrator} {k} {unit}, {ratio:.2f}x"
    return F, at, S, what


def inputs(records: pd.DataFrame, migrator: str, workers: int | None = None, root=None,
           baseline: str = "kernel", cost: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per folio size of ``records``: ``F``, ``F_from``, ``S``, ``S_from`` (a
    source of :data:`SOURCES` and what exactly, or None), with the batch size each was
    taken at. ``migrator`` is the one ``S`` is for (``workers`` its threads or channels);
    ``cost``: the stored cost records to use (default: :func:`stored_cost_records`,
    read only when the records' own counters leave something open)."""
    rows = []
    if records is None or records.empty:
        return pd.DataFrame(columns=["folio_size", "folio", "batch_size", "F", "F_from", "S", "S_from"])
    clocks.require_one_clock(records, "Amdahl's F and S from these records")
    batch = _batch(records[records["migrator"] == baseline]) or _batch(records) or amdahl.DEFAULT_BATCH
    for fs, g in records.groupby("folio_size", sort=True):
        fs = int(fs)
        F, S = _from_counters(g, migrator, workers, baseline)
        row = {"folio_size": fs, "folio": format_size(fs), "batch_size": batch, "F": F, "S": S,
               "F_from": "counters: this panel's records" if F is not None else None,
               "S_from": f"counters: {baseline} over {migrator} copy time per byte" if S is not None else None}
        if F is None or (S is None and migrator != baseline):
            if cost is None:
                cost = stored_cost_records(records, root)
            cF, cat, f_runs, cS, s_runs = _from_cost(cost, fs, batch, migrator, workers, baseline)
            if F is None and cF is not None:
                row["F"], row["F_from"] = cF, f"cost: bench cost runs of this kernel, batch {cat}, icount " \
                                              f"({_runs(f_runs)})"
            if row["S"] is None and cS is not None:
                row["S"], row["S_from"] = cS, f"cost: bench cost runs of this kernel, {migrator}, icount " \
                                              f"({_runs(s_runs)})"
        if row["F"] is None or (row["S"] is None and migrator != baseline):
            sF, sat, sS, what = _from_seed(fs, batch, migrator, workers)
            if row["F"] is None and sF is not None:
                row["F"], row["F_from"] = sF, f"seed: RFC V3 cover letter, {sat} folio{'s' if sat > 1 else ''} " \
                                              "at a time (other hardware)"
            if row["S"] is None and sS is not None:
                row["S"], row["S_from"] = sS, f"seed: RFC V3 throughput, {what} (other hardware)"
        rows.append(row)
    return pd.DataFrame(rows)


def path_note(records: pd.DataFrame) -> str | None:
    """One sentence on what the records' copy path means for F, where it matters."""
    path = copy_path(records)
    release = ", ".join(sorted(set(records["kernel_release"].dropna()))) if "kernel_release" in records else "?"
    if path == "serial":
        return (f"patched kernel {release} on its serial path (batching off): it copies folio by folio and its "
                "copy counters count nothing, so F is not measured here; turn batching on to measure it")
    if path == "stock":
        return f"kernel {release} has no copy-offload interface, so no copy counters: F and S come from elsewhere"
    return None
