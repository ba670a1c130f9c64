"""Results on disk: ``data/runs/<run-id>/`` with a manifest and one Parquet file per trial.

A record is written (to a temporary name, then renamed) as soon as its trial
finishes, so a crash loses at most the trial in flight, and an interrupted run can be
resumed: the trials whose files exist are skipped. :func:`load_runs` returns every
run's records as one tidy DataFrame, one row per repeat, with the run's context.

What went wrong on the way (a VM that died, a hung trial, a lost link, a configuration
given up) is kept beside the records in ``faults/``, one JSON file per fault, written the
same way: a trial that failed that way is a fault, never a record, so a table never
counts it and a resumed run runs it again.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import pandas as pd

from .. import paths
from ..errors import WorkbenchError

#: manifest fields copied onto every row by load_runs
CONTEXT = ("target", "accelerator", "clock", "kernel_release", "kernel_config_hash", "kernel", "kernel_series",
           "kernel_inputs", "kernel_line", "kernel_source")


def new_run_id(label: str = "run") -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}-{uuid.uuid4().hex[:4]}"


class Run:
    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.id = self.dir.name
        self.records_dir = self.dir / "records"
        self.faults_dir = self.dir / "faults"

    @property
    def manifest(self) -> dict:
        return json.loads((self.dir / "manifest.json").read_text())

    def update_manifest(self, **fields):
        m = self.manifest
        m.update(fields)
        _atomic_write(self.dir / "manifest.json", json.dumps(m, indent=1, default=str))

    def append(self, record: dict) -> Path:
        n = len(list(self.records_dir.glob("*.parquet")))
        key = re.sub(r"[^A-Za-z0-9_.-]+", "_", record["trial_key"])
        path = self.records_dir / f"{n:05d}-{key}.parquet"
        tmp = path.with_suffix(".tmp")
        pd.DataFrame([{**record, "run_id": self.id}]).to_parquet(tmp, index=False)
        tmp.rename(path)
        return path

    def add_fault(self, fault: dict) -> Path:
        """Keep one fault (kind, trial_key, config, cause, detail, ...) for good."""
        self.faults_dir.mkdir(exist_ok=True)
        n = len(list(self.faults_dir.glob("*.json")))
        path = self.faults_dir / f"{n:05d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', fault.get('kind', 'fault'))}.json"
        _atomic_write(path, json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run_id": self.id, **fault},
                                       indent=1, default=str))
        return path

    def faults(self) -> list[dict]:
        """Every fault of this run, oldest first."""
        if not self.faults_dir.is_dir():
            return []
        return [json.loads(p.read_text()) for p in sorted(self.faults_dir.glob("*.json"))]

    def completed_keys(self) -> set[str]:
        return {k for k in self.records()["trial_key"]} if self.count() else set()

    def count(self) -> int:
        return len(list(self.records_dir.glob("*.parquet")))

    def records(self) -> pd.DataFrame:
        files = sorted(self.records_dir.glob("*.parquet"))
        if not files:
            return pd.DataFrame()
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def _atomic_write(path: Path, text: str):
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.rename(path)


def create_run(manifest: dict, root: Path | None = None, run_id: str | None = None) -> Run:
    root = Path(root or paths.runs_dir())
    run_id = run_id or new_run_id(manifest.get("label", "run"))
    run = Run(root / run_id)
    if run.dir.exists():
        raise WorkbenchError(f"run {run_id!r} already exists in {root}; use --resume {run_id} to continue it")
    run.records_dir.mkdir(parents=True)
    _atomic_write(run.dir / "manifest.json", json.dumps({**manifest, "run_id": run_id}, indent=1, default=str))
    return run


def open_run(run_id: str, root: Path | None = None) -> Run:
    root = Path(root or paths.runs_dir())
    run = Run(root / run_id)
    if not (run.dir / "manifest.json").exists():
        known = ", ".join(sorted(p.parent.name for p in root.glob("*/manifest.json"))[-5:]) if root.exists() else ""
        raise WorkbenchError(f"no run {run_id!r} in {root}" + (f"; recent runs: {known}" if known else ""))
    return run


def list_runs(root: Path | None = None) -> list[Run]:
    root = Path(root or paths.runs_dir())
    return [Run(p.parent) for p in sorted(root.glob("*/manifest.json"))] if root.exists() else []


def load_faults(root: Path | None = None, run_ids: list[str] | None = None) -> list[dict]:
    """Every fault of the chosen (default: all) runs, oldest first within each run."""
    runs = [open_run(r, root) for r in run_ids] if run_ids else list_runs(root)
    return [f for run in runs for f in run.faults()]


def load_runs(root: Path | None = None, run_ids: list[str] | None = None) -> pd.DataFrame:
    """Every record of the chosen (default: all) runs, with each run's context columns."""
    runs = [open_run(r, root) for r in run_ids] if run_ids else list_runs(root)
    frames = []
    for run in runs:
        df = run.records()
        if df.empty:
            continue
        m = run.manifest
        for col in CONTEXT:
            if col not in df.columns:
                df[col] = m.get(col)
        df["clock"] = df["clock"].fillna("wall")   # runs from before clocks were recorded
        df["functional"] = df["accelerator"].eq("tcg")
        if "run_id" not in df.columns:
            df["run_id"] = run.id
        if "label" not in df.columns:
            df["label"] = m.get("label")
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
