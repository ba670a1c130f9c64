"""How results of the different workloads are shown: titles that name the workload and
its migration reason (every table says both), one summary line per workload of what the
kernel reported (trace events per reason, the series' per-reason counters, what the
trace cost), and a table of those figures for the report."""

from __future__ import annotations

import math

import pandas as pd

from ...catalogue import workloads
from ..running import record_schema

#: how each workload's throughput is named in a table title
TITLES = {"move-pages": "move_pages()", "migrate-pages": "migrate_pages()", "mbind": "mbind(MPOL_MF_MOVE)",
          "numa-balancing": "NUMA balancing", "demotion": "demotion (memory.reclaim)",
          "kswapd-demotion": "demotion (kswapd)", "compaction": "compaction"}


def with_workload(df: pd.DataFrame) -> pd.DataFrame:
    """Records from before workloads existed are move-pages, reason syscall (frames not
    read through the store too: :func:`workbench.host.running.record_schema.upgrade`)."""
    return record_schema.upgrade(df)


def title(workload: str, reason: str | None = None, access: str | None = None, value: str = "gbps") -> str:
    """'move_pages() throughput, GB/s (mean±std), reason syscall': the value's words and
    unit from the record schema."""
    reason = reason or workloads.get(workload).reason
    extra = f", {access} access during the migration" if access and access != "none" else ""
    return f"{TITLES.get(workload, workload)} {record_schema.phrase(value)} (mean±std), reason {reason}{extra}"


def workload_title(df: pd.DataFrame, value: str = "gbps") -> str:
    """The title of a table of these records' ``value``: their workload, reason and
    access (all of them when several are mixed)."""
    df = with_workload(df)
    combos = list(dict.fromkeys(zip(df["workload"], df["reason"], df["access"])))
    if len(combos) == 1:
        return title(*combos[0], value=value)
    return f"{record_schema.phrase(value)} (mean±std), by workload: " + "; ".join(
        f"{w} (reason {r}{'' if a == 'none' else ', ' + a + ' access'})" for w, r, a in combos)


def placement_words(df: pd.DataFrame) -> str:
    """'every page on node 1' — where every page had to be, as the records say."""
    col = "expect_node" if "expect_node" in df.columns else "dst"
    nodes = sorted({int(n) for n in df[col].dropna()}) if col in df.columns else []
    if not nodes:
        return "every page where it must be"
    return f"every page on node {', '.join(map(str, nodes))}"


def _num(x) -> float:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return math.nan
    return x


def reason_summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per workload (and access, migrator): the mean per trial of what the
    kernel reported for the workload's reason — trace calls, pages succeeded and failed,
    time from the start to the end event — the series' per-reason counters where the
    kernel has them, other reasons seen meanwhile, and what tracing cost."""
    df = with_workload(df)
    rows = []
    for (workload, reason, access, migrator), g in df.groupby(["workload", "reason", "access", "migrator"],
                                                              sort=False, dropna=False):
        def mean(col):
            return g[col].map(_num).mean() if col in g.columns else math.nan
        others = set()
        if "trace_reasons" in g.columns:
            for text in g["trace_reasons"].dropna():
                others.update(r for r in str(text).split(",") if r and r != reason)
        rows.append({
            "workload": workload, "reason": reason, "access": access, "migrator": migrator, "trials": len(g),
            "verified": int(g["verified"].fillna(False).astype(bool).sum()) if "verified" in g.columns else None,
            "pages": mean("pages"), "pages_moved": mean("pages_moved"), "seconds": mean("seconds"),
            "trace_calls": mean(f"trace_{reason}_calls"), "trace_succeeded": mean(f"trace_{reason}_succeeded"),
            "trace_failed": mean(f"trace_{reason}_failed"), "trace_ms": mean(f"trace_{reason}_ns") / 1e6,
            "reason_folios": mean("reason_folios"), "reason_batches": mean("reason_batches"),
            "other_reasons": ",".join(sorted(others)) or "-",
            "trace_event_ns": mean("trace_event_ns"), "trace_overhead_share": mean("trace_overhead_share"),
            "trace_event_ns_spread": mean("trace_event_ns_spread"),
            "trace_overhead_bound_share": mean("trace_overhead_bound_share"),
            "trace_resolved": bool(g["trace_event_ns_resolved"].fillna(False).astype(bool).all())
            if "trace_event_ns_resolved" in g.columns else True,
            "access_bad_pages": mean("access_bad_pages"),
        })
    return pd.DataFrame(rows)


def _fmt(x, spec=".0f", unit=""):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:{spec}}{unit}"


def workload_lines(df: pd.DataFrame) -> list[str]:
    """One line per workload (x access x migrator) for the command line's summary."""
    out = []
    for _, r in reason_summary(df).iterrows():
        line = (f"{r['workload']} ({r['migrator']}, reason {r['reason']}"
                + (f", {r['access']} access" if r["access"] != "none" else "") + "): "
                + f"{_fmt(r['pages_moved'])}/{_fmt(r['pages'])} pages moved per trial")
        if not math.isnan(r["trace_calls"]):
            line += (f"; trace {_fmt(r['trace_calls'], '.1f')} calls, {_fmt(r['trace_succeeded'])} pages succeeded, "
                     f"{_fmt(r['trace_failed'])} failed, {_fmt(r['trace_ms'], '.2f')} ms start to end")
        elif "trace" in df.columns:
            line += "; no migrate_pages() trace event of this reason"
        if not math.isnan(r["reason_folios"]):
            line += f"; series counters: {_fmt(r['reason_folios'])} folios in {_fmt(r['reason_batches'])} batches"
        if r["other_reasons"] != "-":
            line += f"; meanwhile also: {r['other_reasons']}"
        if not math.isnan(r["trace_event_ns"]) and r["trace_resolved"]:
            line += (f"; tracing cost {_fmt(r['trace_event_ns'], '.0f')} ns/event, "
                     f"{_fmt(100 * r['trace_overhead_share'], '.3f', '%')} of the trial")
        elif not math.isnan(r["trace_event_ns"]):
            bound = max(r["trace_event_ns"], 0) + 2 * (r["trace_event_ns_spread"] or 0)
            line += (f"; tracing cost below this machine's noise: at most {_fmt(bound, '.0f')} ns/event, "
                     f"{_fmt(100 * r['trace_overhead_bound_share'], '.3f', '%')} of the trial")
        out.append(line)
    return out


def text_table(df: pd.DataFrame) -> str:
    """:func:`reason_summary` as plain text (the report's per-workload panel)."""
    s = reason_summary(df)
    if s.empty:
        return ""
    cols = ["workload", "reason", "access", "migrator", "trials", "verified", "pages_moved", "seconds",
            "trace_calls", "trace_succeeded", "trace_failed", "trace_ms", "reason_folios", "other_reasons",
            "trace_event_ns", "trace_overhead_share", "trace_overhead_bound_share"]
    show = s[cols].copy()
    for c in ("pages_moved", "trace_calls", "trace_succeeded", "trace_failed", "reason_folios", "trace_event_ns"):
        show[c] = show[c].map(lambda v: _fmt(v, ".0f"))
    show["seconds"] = show["seconds"].map(lambda v: _fmt(v, ".3f"))
    show["trace_ms"] = show["trace_ms"].map(lambda v: _fmt(v, ".2f"))
    for c in ("trace_overhead_share", "trace_overhead_bound_share"):
        show[c] = show[c].map(lambda v: _fmt(100 * v, ".3f", "%"))
    return show.to_string(index=False)
