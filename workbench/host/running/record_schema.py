"""What a stored trial record's columns are: each with its kind, unit and label, checked
as a record is stored, named by tables; and what older runs lack, filled in one place.

A record is one flat dict per trial (:func:`workbench.agent.trial.run_trial`). Its
columns are declared here three ways:

- the knob columns (what the trial was asked to do) come from the knob catalogue
  (:mod:`workbench.catalogue.knobs`), with its units and labels;
- :data:`COLUMNS`: the columns every trial has or may have (what it measured, how it
  was verified, where its pages went, the run's context);
- :data:`FAMILIES`: columns named after what the kernel offers (``vmstat_<counter>``,
  ``mig_<migrator>_<counter>``, ``trace_*``, ...), by pattern.

:func:`check` judges a record against the kinds (``Run.append`` refuses a record that
does not fit, keeping it aside as JSON, so a measured trial is never lost);
:func:`heading` gives tables their column heading and unit; :func:`upgrade` is where the
records of older runs get what they lack. A column declared nowhere is refused like a
value of the wrong kind (a new column is declared here first), and a test holds the
agent's literal record keys against the declarations.
"""

from __future__ import annotations

import json
import math
import re
import typing
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...catalogue import knobs, workloads

INT, FLOAT, BOOL, TEXT, ANY = "int", "float", "bool", "text", "any"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    unit: str | None = None
    label: str | None = None

    @property
    def heading(self) -> str:
        label = self.label or self.name.replace("_", " ")
        return f"{label} ({self.unit})" if self.unit else label


def _c(name, kind, unit=None, label=None):
    return Column(name, kind, unit, label)


#: the columns of a trial besides its knobs (kinds, units, labels)
COLUMNS = {c.name: c for c in (
    _c("trial_key", TEXT, label="trial"), _c("repeat", INT), _c("trial_seed", INT, label="trial seed"),
    _c("folio_size", INT, "bytes", "folio size"), _c("folio", TEXT, label="folio size"),
    _c("reason", TEXT, label="migration reason"), _c("kernel_reason", TEXT, label="kernel's reason"),
    _c("seconds", FLOAT, "s", "time"), _c("gbps", FLOAT, "GB/s", "throughput"),
    _c("cost_ns", FLOAT, "ns", "instruction-time"),
    _c("first_folio_ns", INT, "ns", "first folio"), _c("call_cpu_start", FLOAT), _c("call_cpu_end", FLOAT),
    _c("timer_overhead_ns", INT, "ns", "timer overhead"), _c("harness_overhead_share", FLOAT, "share"),
    _c("verified", BOOL), _c("verify_bad_pages", INT, "pages", "bad pages"),
    _c("verify_first_bad_page", INT), _c("verify_first_bad_offset", INT), _c("verify_expected", TEXT),
    _c("verify_actual", TEXT),
    _c("pages", INT, "pages"), _c("pages_moved", INT, "pages", "pages moved"),
    _c("pages_failed", INT, "pages", "pages failed"), _c("pages_placed", INT, "pages"),
    _c("syscall_not_moved", INT, "pages"), _c("expect_node", INT, label="expected node"),
    _c("page_nodes", TEXT, label="pages per node"), _c("final_page_nodes", TEXT),
    _c("on_src_before_share", FLOAT, "share"),
    _c("folios", INT, "folios"), _c("folios_matched", INT, "folios"), _c("folio_errors", INT),
    _c("folio_match_share", FLOAT, "share", "folios as asked"), _c("folio_check", TEXT),
    _c("thp_pages", INT, "pages"),
    _c("copy_share", FLOAT, "share", "copy share F"), _c("copy_share_all", FLOAT, "share"),
    _c("interface", TEXT, label="migration interface"), _c("dma_channels_held", TEXT),
    _c("kernel_clean", BOOL, label="kernel clean"), _c("kernel_report", TEXT), _c("kernel_problems", INT),
    _c("kernel_report_expected", BOOL), _c("restore_problems", TEXT), _c("monitor_file", TEXT),
    # what a workload records of how it ran (workbench.agent.workloads)
    _c("wait_seconds", FLOAT, "s", "waited at most"), _c("holder_pid", INT), _c("lower_tier_nodes", TEXT),
    _c("migrate_flags", TEXT), _c("numa_scan_knobs", TEXT), _c("pcp_high_fraction", INT),
    _c("proactive_started", BOOL), _c("touch", TEXT),
    _c("region_zone", TEXT, label="zone of the compacted region"),
    _c("region_zone_position", FLOAT, "share", "position of the region in its zone"),
    _c("pages_promoted", INT, "pages", "pages promoted"), _c("reclaim_writes", INT), _c("reclaim_eagain", INT),
    _c("pressure_rounds", INT), _c("pressure_settled_rounds", INT), _c("pressure_bytes", INT, "bytes"),
    _c("watermark_scale_factor", INT),
    _c("balance_all_moved", BOOL), _c("balance_timeline", TEXT), _c("compact_trigger", TEXT),
    _c("promote_all", BOOL), _c("promote_seconds", FLOAT, "s"), _c("promote_timeline", TEXT), _c("promotion", TEXT),
    # the run's context (from its manifest)
    _c("run_id", TEXT, label="run"), _c("label", TEXT), _c("target", TEXT), _c("accelerator", TEXT),
    _c("clock", TEXT), _c("kernel", TEXT), _c("kernel_release", TEXT, label="kernel release"),
    _c("kernel_line", TEXT), _c("kernel_series", TEXT), _c("kernel_source", TEXT), _c("kernel_inputs", TEXT),
    _c("kernel_config_hash", TEXT), _c("functional", BOOL),
    _c("host_started", FLOAT, "s"), _c("host_finished", FLOAT, "s"),
    # a conformance run's records (workbench conformance): one per test case and migrator
    _c("suite", TEXT), _c("test", TEXT), _c("case", TEXT), _c("config", TEXT, label="configuration"),
    _c("status", TEXT), _c("verdict", TEXT), _c("skip_reason", TEXT), _c("returncode", INT),
    _c("output", TEXT), _c("argv", TEXT), _c("cpus", INT), _c("engine_preset", TEXT), _c("engine_fault", TEXT),
    _c("offer_everything", TEXT), _c("copied", INT, "folios"), _c("exercised_by", TEXT), _c("case_settings", TEXT),
    _c("conditions", TEXT), _c("missing_config", TEXT),
    # the text and flags among the families below (the rest of each family is numeric)
    _c("trace_reasons", TEXT), _c("trace_clock", TEXT), _c("trace_event", TEXT), _c("trace_error", TEXT),
    _c("trace_missing", TEXT),
    _c("trace_event_ns_resolved", BOOL), _c("reason_counters", TEXT, label="per-reason counters"),
    _c("access_generations", TEXT),
    _c("access_error", TEXT), _c("access_expected", TEXT), _c("access_actual", TEXT),
    _c("monitor_trace_note", TEXT), _c("monitor_error", TEXT), _c("monitor_missing", TEXT),
)}

#: columns named after what the kernel or a workload offers: (pattern, kind, unit)
FAMILIES = (
    (re.compile(r"vmstat_\w+"), INT, "events"),
    (re.compile(r"mig_\w+_ns"), INT, "ns"),
    (re.compile(r"mig_\w+_bytes"), INT, "bytes"),
    (re.compile(r"mig_\w+"), INT, None),                # a migrator's counters over the trial
    (re.compile(r"trace_\w+_ns(_spread)?"), FLOAT, "ns"),
    (re.compile(r"trace_\w+_share"), FLOAT, "share"),
    (re.compile(r"trace_\w+"), FLOAT, None),            # counts, seconds and shares of the trace
    (re.compile(r"reason_\w+"), INT, None),             # the trial's reason's counters
    (re.compile(r"access_\w+"), INT, None),             # the access threads' passes and bad pages
    (re.compile(r"monitor_\w+_ns"), FLOAT, "ns"),
    (re.compile(r"monitor_\w+_share"), FLOAT, "share"),
    (re.compile(r"monitor_\w+_ms"), FLOAT, "ms"),
    (re.compile(r"monitor_\w+"), FLOAT, None),
    (re.compile(r"irq_\w+"), INT, "interrupts"),
    (re.compile(r"frag_score_\w+"), FLOAT, None),       # compaction's fragmentation score, before and after
    (re.compile(r"promote_vmstat_\w+"), INT, "events"),    # demotion's promotion phase, vmstat deltas
)


#: a knob's type -> its record column's kind: a trial records one of a run's folio sizes
#: (list -> int) and its settings as "path=value ..." text (dict -> text)
_KIND_OF_TYPE = {bool: BOOL, int: INT, float: FLOAT, str: TEXT, dict: TEXT, list: INT}


def _knob_kind(k: knobs.Knob) -> str:
    """The kind of a knob's column from its type (``int | None`` is an int)."""
    base = next((a for a in typing.get_args(k.type) if a is not type(None)), k.type)
    return _KIND_OF_TYPE.get(base, ANY)


KNOB_COLUMNS = {k.column: Column(k.column, _knob_kind(k), k.unit, k.label) for k in knobs.KNOBS if k.column}


def column(name: str) -> Column | None:
    """The declaration of ``name``, or None."""
    if name in KNOB_COLUMNS:
        return KNOB_COLUMNS[name]
    if name in COLUMNS:
        return COLUMNS[name]
    for pattern, kind, unit in FAMILIES:
        if pattern.fullmatch(name):
            return Column(name, kind, unit)
    return None


def heading(name: str) -> str:
    """A table's heading for ``name``: its label and unit ('throughput (GB/s)')."""
    c = column(name)
    return c.heading if c else name.replace("_", " ")


def phrase(name: str) -> str:
    """How a title names ``name``'s values: its label and unit in running text
    ('throughput, GB/s')."""
    c = column(name)
    label = (c.label if c and c.label else name.replace("_", " "))
    return f"{label}, {c.unit}" if c and c.unit else label


def unit(name: str) -> str | None:
    c = column(name)
    return c.unit if c else None


def _fits(kind: str, value) -> bool:
    if value is None or kind == ANY:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if kind == BOOL:      # or the kernel knob's own 0/1
        return isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1))
    if kind == INT:
        return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) or \
            (isinstance(value, (float, np.floating)) and float(value).is_integer())
    if kind == FLOAT:
        return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if kind == TEXT:
        return isinstance(value, str)
    return True


def check(record: dict) -> list[str]:
    """What in ``record`` does not fit its declaration, one line each (empty: it fits)."""
    problems = []
    if not isinstance(record.get("trial_key"), str) or not record["trial_key"]:
        problems.append(f"trial_key {record.get('trial_key')!r} is not a trial key")
    for name, value in record.items():
        c = column(name)
        if c is None:
            problems.append(f"{name} is declared nowhere (workbench/host/running/record_schema.py: a column, a "
                            "family or a knob of the catalogue)")
        elif not _fits(c.kind, value):
            shown = json.dumps(value, default=str)
            problems.append(f"{name} is {shown[:60]} ({type(value).__name__}); allowed: {c.kind}"
                            + (f" in {c.unit}" if c.unit else ""))
    return problems


def undeclared(columns) -> list[str]:
    """The columns among ``columns`` that no declaration covers."""
    return [c for c in columns if column(c) is None]


def upgrade(df: pd.DataFrame) -> pd.DataFrame:
    """Records of older runs as today's: the one place for what runs from before a column
    existed lack. Before clocks were recorded: the wall clock; before workloads:
    move-pages, reason syscall, no access threads. ``functional`` is derived here (a TCG
    run's figures are functional, not speed)."""
    df = df.copy()
    if "clock" in df:
        df["clock"] = df["clock"].fillna("wall")
    if "accelerator" in df:
        df["functional"] = df["accelerator"].eq("tcg")
    df["workload"] = df["workload"].fillna(workloads.DEFAULT) if "workload" in df else workloads.DEFAULT
    reasons = df["reason"] if "reason" in df else pd.Series([None] * len(df), index=df.index)
    df["reason"] = [r if isinstance(r, str) else workloads.get(w).reason for w, r in zip(df["workload"], reasons)]
    df["access"] = df["access"].fillna("none") if "access" in df else "none"
    return df
