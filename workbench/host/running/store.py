"""Results on disk: ``data/runs/<run-id>/`` with a manifest and one Parquet file per trial.

A record is written (to a temporary name, then renamed) as soon as its trial
finishes, so a crash loses at most the trial in flight, and an interrupted run can be
resumed: the trials whose files exist are skipped. :func:`load_runs` returns every
run's records as one tidy DataFrame, one row per repeat, with the run's context.

What went wrong on the way (a VM that died, a hung trial, a lost link, a configuration
given up) is kept beside the records in ``faults/``, one JSON file per fault, written the
same way: a trial that failed that way is a fault, never a record, so a table never
counts it and a resumed run runs it again.

A file that cannot be read (a truncated record, a half-written manifest: a full disk, a
copy cut short) is :class:`Damage`. Reading skips it with one line on stderr naming it
(the run of a damaged manifest goes with it) and :func:`reading` counts what a command
left out, or, strict, refuses with that line (:class:`DamagedFile`); a resumed run moves
a damaged record aside and runs its trial again; :func:`check_run` and
:func:`move_aside` are ``workbench store check``.
"""

from __future__ import annotations

import json
import re
import sys
import time
import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd

from ... import paths
from ...errors import WorkbenchError
from . import record_schema

#: manifest fields copied onto every row by load_runs
CONTEXT = ("target", "accelerator", "clock", "kernel_release", "kernel_config_hash", "kernel", "kernel_series",
           "kernel_inputs", "kernel_line", "kernel_source")


#: what a damaged file is renamed to by :func:`move_aside` (``<name>.damaged``): no
#: reader globs it, so later reads are clean, and nothing is deleted
DAMAGED_SUFFIX = ".damaged"


@dataclass(frozen=True)
class Damage:
    """A file of the store that cannot be read: ``what`` is record, manifest or fault."""
    path: Path
    what: str
    reason: str

    def __str__(self):
        return f"damaged {self.what} {self.path}: {self.reason}"


class DamagedFile(WorkbenchError):
    """A damaged file where the store could not go on without it (or was told not to)."""

    def __init__(self, damage: Damage, hint: str = "`workbench store check --move-aside` sets it aside"):
        super().__init__(f"{damage}; {hint}")
        self.damage = damage


def _stderr(text: str):
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


class Reading:
    """How one command reads the store: a damaged file is left out with one line (once
    per file) and counted in ``left_out``, or, ``strict``, refused (:class:`DamagedFile`)."""

    def __init__(self, strict: bool = False, warn: Callable[[str], None] | None = None):
        self.strict = strict
        self.warn = warn or _stderr
        self.left_out: dict[Path, Damage] = {}

    def skip(self, damage: Damage) -> None:
        if self.strict:
            raise DamagedFile(damage, hint="refused (--strict); `workbench store check --move-aside` sets it aside")
        if damage.path not in self.left_out:
            self.left_out[damage.path] = damage
            self.warn(f"skipped {damage}" + ("; its run is left out" if damage.what == "manifest" else ""))

    def summary(self) -> str | None:
        """The command's count of what it left out, or None."""
        n = len(self.left_out)
        return (f"left out {n} damaged file{'s' if n != 1 else ''} (`workbench store check` lists them; "
                "--strict refuses instead)") if n else None


class SetAside(Reading):
    """A resumed run's reading: a damaged record is moved aside, so its trial counts as
    not done and runs again."""

    def skip(self, damage: Damage) -> None:
        moved = move_aside(damage.path)
        self.left_out[damage.path] = damage
        self.warn(f"{damage}; moved aside to {moved.name}, its trial runs again")


_ACTIVE: ContextVar[Reading | None] = ContextVar("workbench_store_reading", default=None)


@contextmanager
def reading(strict: bool = False, warn: Callable[[str], None] | None = None) -> Iterator[Reading]:
    """Every read of the store inside shares one :class:`Reading` (a command's: each
    damaged file named once, and at the end how many were left out)."""
    r = Reading(strict, warn)
    token = _ACTIVE.set(r)
    try:
        yield r
    finally:
        _ACTIVE.reset(token)
        if r.summary():
            r.warn(r.summary())


def _active() -> Reading:
    return _ACTIVE.get() or Reading()


def _why(exc: BaseException, path: Path) -> str:
    """A short reason from what a reader raised (no path, no second sentence)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = re.sub(r"^Could not open Parquet input source '[^']*': ", "", str(exc).splitlines()[0] if str(exc) else "")
    text = text.replace(str(path), "").split(". ")[0].rstrip(".")
    return text or type(exc).__name__


def read_record(path: Path) -> pd.DataFrame:
    """One trial's record file; :class:`DamagedFile` if it cannot be read."""
    try:
        if path.stat().st_size == 0:
            raise DamagedFile(Damage(path, "record", "empty file"))
        df = pd.read_parquet(path)
    except DamagedFile:
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds; a damaged file is one line
        raise DamagedFile(Damage(path, "record", f"not readable Parquet: {_why(exc, path)}")) from None
    if "trial_key" not in df.columns or df.empty:
        raise DamagedFile(Damage(path, "record", "no trial in it (no trial_key)"))
    return df


def read_json(path: Path, what: str) -> dict:
    """A manifest or a fault; :class:`DamagedFile` if it is not a JSON object."""
    try:
        data = path.read_bytes()
        if not data:
            raise DamagedFile(Damage(path, what, "empty file"))
        doc = json.loads(data)
    except DamagedFile:
        raise
    except (OSError, ValueError) as exc:
        raise DamagedFile(Damage(path, what, f"not JSON: {_why(exc, path)}")) from None
    if not isinstance(doc, dict):
        raise DamagedFile(Damage(path, what, f"not a JSON object but {type(doc).__name__}"))
    return doc


def move_aside(path: Path) -> Path:
    """Rename a damaged file to ``<name>.damaged`` (``.damaged.1``, ... if taken); returns the new path."""
    target = path.with_name(path.name + DAMAGED_SUFFIX)
    n = 0
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}{DAMAGED_SUFFIX}.{n}")
    path.rename(target)
    return target


def _next_number(directory: Path) -> int:
    """The next file number in a directory of ``NNNNN-...`` files (any moved aside count too,
    so a new file never takes an old one's name)."""
    numbers = [int(m.group(1)) for p in directory.iterdir() if (m := re.match(r"(\d+)-", p.name))] \
        if directory.is_dir() else []
    return max(numbers) + 1 if numbers else 0


class _Numbers:
    """The next number of each directory a run writes to, counted once (a run has one writer)."""

    def __init__(self):
        self.next: dict[Path, int] = {}

    def take(self, directory: Path) -> int:
        n = self.next.get(directory)
        n = _next_number(directory) if n is None else n
        self.next[directory] = n + 1
        return n


def new_run_id(label: str = "run") -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}-{uuid.uuid4().hex[:4]}"


class Run:
    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.id = self.dir.name
        self.records_dir = self.dir / "records"
        self.faults_dir = self.dir / "faults"
        self.monitor_dir = self.dir / "monitor"
        self._numbers = _Numbers()

    @property
    def manifest(self) -> dict:
        """The run's manifest; :class:`DamagedFile` (one line) if it cannot be read."""
        return read_json(self.dir / "manifest.json", "manifest")

    def update_manifest(self, **fields):
        m = self.manifest
        m.update(fields)
        atomic_write(self.dir / "manifest.json", json.dumps(m, indent=1, default=str))

    def append(self, record: dict) -> Path:
        """Keep one finished trial's record; its monitor's timeline, if it has one, goes
        beside it (``monitor/`` under the same name), written first so that a record
        never names a timeline that is not there."""
        problems = record_schema.check({k: v for k, v in record.items() if k != "monitor"})
        if problems:
            raise WorkbenchError(f"record of trial {record.get('trial_key')!r} not stored: {problems[0]}"
                                 + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                                 + f"; kept as {self._reject(record)}")
        n = self._numbers.take(self.records_dir)
        key = re.sub(r"[^A-Za-z0-9_.-]+", "_", record["trial_key"])
        path = self.records_dir / f"{n:05d}-{key}.parquet"
        record = dict(record)
        timeline = record.pop("monitor", None)
        if timeline:
            self.monitor_dir.mkdir(exist_ok=True)
            where = self.monitor_dir / path.name
            frame = pd.DataFrame(timeline["rows"], columns=timeline["columns"])
            _atomic_parquet(frame.assign(trial_key=record["trial_key"]), where)
            record["monitor_file"] = f"monitor/{where.name}"
        _atomic_parquet(pd.DataFrame([{**record, "run_id": self.id}]), path)
        return path

    def _reject(self, record: dict) -> Path:
        """Keep a record that does not fit the schema as JSON under ``rejected/`` (what was
        measured is not lost; no table reads it)."""
        where = self.dir / "rejected"
        where.mkdir(exist_ok=True)
        key = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(record.get("trial_key") or "record"))
        path = where / f"{self._numbers.take(where):05d}-{key}.json"
        atomic_write(path, json.dumps(record, indent=1, default=str))
        return path

    def monitor(self, reading: Reading | None = None) -> pd.DataFrame:
        """Every readable monitor timeline of this run, one row per sample (``t_ns``,
        ``phase``, cumulative counters), with its ``trial_key``."""
        files = sorted(self.monitor_dir.glob("*.parquet")) if self.monitor_dir.is_dir() else []
        frames = self._read_each(files, read_record, reading)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def add_fault(self, fault: dict) -> Path:
        """Keep one fault (kind, trial_key, config, cause, detail, ...) for good."""
        self.faults_dir.mkdir(exist_ok=True)
        n = self._numbers.take(self.faults_dir)
        path = self.faults_dir / f"{n:05d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', fault.get('kind', 'fault'))}.json"
        atomic_write(path, json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run_id": self.id, **fault},
                                       indent=1, default=str))
        return path

    def faults(self, reading: Reading | None = None) -> list[dict]:
        """Every readable fault of this run, oldest first (a damaged one: ``reading``'s, see :class:`Reading`)."""
        return self._read_each(sorted(self.faults_dir.glob("*.json")) if self.faults_dir.is_dir() else [],
                               lambda p: read_json(p, "fault"), reading)

    def completed_keys(self, reading: Reading | None = None) -> set[str]:
        df = self.records(reading)
        return set(df["trial_key"]) if not df.empty else set()

    def count(self) -> int:
        return len(list(self.records_dir.glob("*.parquet")))

    def records(self, reading: Reading | None = None) -> pd.DataFrame:
        """Every readable record of this run (a damaged one: ``reading``'s, see :class:`Reading`)."""
        frames = self._read_each(sorted(self.records_dir.glob("*.parquet")), read_record, reading)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    @staticmethod
    def _read_each(files, read, reading: Reading | None) -> list:
        reading = reading or _active()
        out = []
        for f in files:
            try:
                out.append(read(f))
            except DamagedFile as exc:
                reading.skip(exc.damage)
        return out

    def check(self) -> list[Damage]:
        """Every damaged file of this run: its manifest, records and faults, each read whole."""
        found = []
        for path, read in ([(self.dir / "manifest.json", lambda p: read_json(p, "manifest"))]
                           + [(p, read_record) for p in sorted(self.records_dir.glob("*.parquet"))]
                           + [(p, read_record) for p in (sorted(self.monitor_dir.glob("*.parquet"))
                                                         if self.monitor_dir.is_dir() else [])]
                           + [(p, lambda p: read_json(p, "fault")) for p in sorted(self.faults_dir.glob("*.json"))]):
            try:
                read(path)
            except DamagedFile as exc:
                found.append(exc.damage)
        return found


def _atomic_parquet(frame: pd.DataFrame, path: Path):
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.rename(path)


def atomic_write(path: Path, text: str):
    """Write ``text`` to ``path`` whole: a temporary name beside it, then a rename."""
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
    atomic_write(run.dir / "manifest.json", json.dumps({**manifest, "run_id": run_id}, indent=1, default=str))
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


def _chosen(root, run_ids) -> list[Run]:
    return [open_run(r, root) for r in run_ids] if run_ids else list_runs(root)


def _readable_runs(runs: list[Run], reading: Reading) -> Iterator[tuple[Run, dict]]:
    """The runs whose manifest can be read, with it."""
    for run in runs:
        try:
            yield run, run.manifest
        except DamagedFile as exc:
            reading.skip(exc.damage)


def load_faults(root: Path | None = None, run_ids: list[str] | None = None) -> list[dict]:
    """Every fault of the chosen (default: all) runs, oldest first within each run."""
    r = _active()
    return [f for run, _ in _readable_runs(_chosen(root, run_ids), r) for f in run.faults(r)]


def load_monitor(root: Path | None = None, run_ids: list[str] | None = None) -> pd.DataFrame:
    """Every monitor sample of the chosen (default: all) runs: ``run_id``, ``trial_key``,
    ``t_ns`` since the trial began, ``phase`` and cumulative counters (see
    :mod:`workbench.agent.monitor`); empty when no trial was monitored."""
    r = _active()
    frames = [run.monitor(r).assign(run_id=run.id) for run, _ in _readable_runs(_chosen(root, run_ids), r)]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_runs(root: Path | None = None, run_ids: list[str] | None = None, kind: str = "trials") -> pd.DataFrame:
    """Every record of the chosen (default: all) runs of ``kind`` (``trials``: the
    migration trials every table and plot reads; ``conformance``: the kernel's tests under
    migrators, a record per case and configuration), with each run's context columns;
    a damaged file is left out (or refused) as the :func:`reading` in force says, and
    ``attrs["left_out"]`` lists the damaged files of these runs it met."""
    r = _active()
    runs, frames = _chosen(root, run_ids), []
    for run, m in _readable_runs(runs, r):
        if m.get("kind", "trials") != kind:
            continue
        df = run.records(r)
        if df.empty:
            continue
        # the run's context, added in one step (column by column fragments a wide frame)
        context = {col: m.get(col) for col in CONTEXT if col not in df.columns}
        context.update({k: v for k, v in (("run_id", run.id), ("label", m.get("label"))) if k not in df.columns})
        df = pd.concat([df, pd.DataFrame(context, index=df.index)], axis=1)
        frames.append(record_schema.upgrade(df))   # what older runs lack, filled in one place
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    dirs = {run.dir for run in runs}
    out.attrs["left_out"] = [str(p) for p in r.left_out if dirs & set(p.parents)]
    return out


def check_runs(root: Path | None = None, run_ids: list[str] | None = None) -> tuple[list[Run], list[Damage]]:
    """The chosen (default: all) runs and every damaged file among them."""
    runs = _chosen(root, run_ids)
    return runs, [d for run in runs for d in run.check()]
