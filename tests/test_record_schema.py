"""The record schema (workbench.host.running.record_schema): every stored record fits it, the
agent's record keys are declared, a record that does not fit is refused in one line and
kept, and older runs are upgraded in one place."""

from __future__ import annotations

import ast
import glob
import json

import pandas as pd
import pytest

from workbench import paths
from workbench.errors import WorkbenchError
from workbench.host.running import record_schema as rs
from workbench.host.running import store


def test_every_stored_run_s_records_fit_and_are_declared():
    """The first and the last record of every stored run (a run's trials share their
    columns; all 3,000 files take half a minute)."""
    runs = sorted(glob.glob(str(paths.REPO / "data" / "runs" / "*" / "records")))
    files = [f for r in runs for f in dict.fromkeys(sorted(glob.glob(f"{r}/*.parquet"))[::-1][:1]
                                                       + sorted(glob.glob(f"{r}/*.parquet"))[:1])]
    assert len(runs) > 250 and len(files) >= len(runs)
    for f in files:
        record = pd.read_parquet(f).iloc[0].to_dict()
        assert rs.check(record) == [], f
        assert rs.undeclared(record) == [], f


def _is_record(node, names=("record",)) -> bool:
    """``record`` or ``<something>.record``: what the agent calls a trial's record (and
    ``r``, the workloads' short name for ``self.record``)."""
    return getattr(node, "id", None) in names or getattr(node, "attr", None) == "record"


def _literal_record_keys() -> set[str]:
    """The keys the agent's code writes into a record by name (record["x"] = ...,
    self.record.update({"x": ...}), r["x"] = ...)."""
    keys = set()
    for f in (paths.REPO / "workbench" / "agent").rglob("*.py"):
        names = ("record", "r") if f.parent.name == "workloads" else ("record",)
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store) \
                    and _is_record(node.value, names) and isinstance(node.slice, ast.Constant):
                keys.add(node.slice.value)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "update" \
                    and _is_record(node.func.value, names):
                keys |= {k.value for a in node.args if isinstance(a, ast.Dict) for k in a.keys
                         if isinstance(k, ast.Constant)}
    return keys


def test_the_agent_s_record_keys_are_declared():
    keys = _literal_record_keys()
    assert {"gbps", "seconds", "pages_moved", "first_folio_ns", "trace_error", "reason_counters"} <= keys
    assert rs.undeclared(sorted(keys)) == []


def test_a_record_that_does_not_fit_is_refused_in_one_line_and_kept(tmp_path):
    run = store.create_run({"target": "fake", "label": "x"}, tmp_path)
    with pytest.raises(WorkbenchError) as exc:
        run.append({"trial_key": "kernel-4K-4M-n0to1-s1-r0", "gbps": "fast", "pages_moved": 1024})
    line = str(exc.value)
    assert "\n" not in line
    assert line.startswith("record of trial 'kernel-4K-4M-n0to1-s1-r0' not stored: gbps is \"fast\" (str); "
                           "allowed: float in GB/s; kept as ")
    kept = line.rsplit("kept as ", 1)[1]
    assert json.loads(open(kept).read())["gbps"] == "fast"
    assert run.count() == 0
    run.append({"trial_key": "kernel-4K-4M-n0to1-s1-r0", "gbps": 1.5, "pages_moved": 1024, "verified": True})
    assert run.count() == 1
    with pytest.raises(WorkbenchError, match=r"not stored: speedup is declared nowhere \(workbench/host/running/"
                                             r"record_schema.py: .*\); kept as "):
        run.append({"trial_key": "kernel-4K-4M-n0to1-s1-r1", "gbps": 1.5, "speedup": 2.0})
    assert run.count() == 1


def test_headings_and_units_come_from_the_declarations():
    assert rs.heading("gbps") == "throughput (GB/s)"
    assert rs.heading("batch_size") == "batch size (base pages)"      # from the knob catalogue
    assert rs.unit("mig_dcbm_copy_ns") == "ns" and rs.unit("vmstat_pgmigrate_success") == "events"
    assert rs.heading("something_new") == "something new"


def test_older_runs_are_upgraded_in_one_place():
    old = pd.DataFrame({"accelerator": ["tcg", "kvm"], "clock": [None, "wall"], "gbps": [1.0, 2.0]})
    new = rs.upgrade(old)
    assert list(new["clock"]) == ["wall", "wall"] and list(new["functional"]) == [True, False]
    assert list(new["workload"]) == ["move-pages"] * 2 and list(new["reason"]) == ["syscall"] * 2
    assert list(new["access"]) == ["none"] * 2
