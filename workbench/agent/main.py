"""The target-side agent: ``python -m workbench.agent``.

The same package runs on every target. It takes a JSON plan and answers with JSON
lines, one per event, flushed as each trial finishes:

* ``{"op": "probe"}`` -> ``{"type": "facts", "facts": {...}}``
* ``{"op": "trials", "trials": [TrialSpec dicts]}`` -> one ``{"type": "record"}`` per
  finished trial; ``{"type": "error", "message": ...}`` stops the plan
* always ends with ``{"type": "done"}``

Modes: ``run`` reads one plan on stdin and answers on stdout (local, SSH);
``serve --spool DIR`` keeps answering plans dropped as files in DIR until it gets
``{"op": "shutdown"}`` (the VM target, which keeps one VM up for a session).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

from . import probe
from ..errors import WorkbenchError
from .kernelfs import RealFS
from ..protocol import TrialSpec
from .trial import run_trial

Emit = Callable[[dict], None]


def execute(plan: dict, emit: Emit, fs=None) -> None:
    fs = fs or RealFS()
    op = plan.get("op")
    try:
        if op == "probe":
            emit({"type": "facts", "facts": probe.collect(fs)})
        elif op == "trials":
            if plan.get("warmup", True):
                _warm_up()
            for spec in plan["trials"]:
                trial = TrialSpec.from_dict(spec)
                try:
                    trial.check()
                    record = run_trial(trial, fs)
                except WorkbenchError as exc:
                    emit({"type": "error", "message": str(exc), "trial_key": trial.key()})
                    return
                except Exception as exc:  # report it, with where, instead of dying silently
                    emit({"type": "error", "trial_key": trial.key(),
                          "message": f"trial {trial.key()} failed: {exc.__class__.__name__}: {exc}",
                          "traceback": traceback.format_exc()})
                    return
                emit({"type": "record", "record": record})
        elif op == "snapshot":
            from .kernelfs import snapshot
            emit({"type": "snapshot", "snapshot": snapshot(fs, plan["roots"])})
        elif op == "stress":
            from . import stress
            emit({"type": "stress", "result": stress.run(fs, **plan.get("args", {}))})
        elif op == "sysfs":
            emit({"type": "sysfs", "results": _sysfs_ops(fs, plan.get("writes", []), plan.get("reads", []))})
        elif op == "bench_verify":
            from .verify_speed import verify_speed
            emit({"type": "bench", "result": verify_speed(**plan.get("args", {}))})
        else:
            emit({"type": "error", "message": f"unknown plan op {op!r}; allowed: probe, trials, snapshot, stress, sysfs, bench_verify, "
                                              "shutdown"})
    except WorkbenchError as exc:
        emit({"type": "error", "message": str(exc)})
    except Exception as exc:  # an op that breaks must not take the agent (and a VM) down with it
        emit({"type": "error", "message": f"{op} failed: {exc.__class__.__name__}: {exc}",
              "traceback": traceback.format_exc()})
    finally:
        emit({"type": "done"})


def _sysfs_ops(fs, writes, reads) -> dict:
    """Raw knob writes for tests of the kernel's own checks: each write's outcome and
    the file before and after."""
    out = {"writes": [], "reads": {}}
    for path, value in writes:
        before = fs.read(path) if fs.exists(path) else None
        try:
            fs.write(path, value)
            error = None
        except WorkbenchError as exc:
            error = str(exc)
        out["writes"].append({"path": path, "value": value, "error": error, "before": before,
                              "after": fs.read(path) if fs.exists(path) else None})
    for path in reads:
        out["reads"][path] = fs.read(path) if fs.exists(path) else None
    return out


def _warm_up() -> dict:
    """Compile (or load from cache) the numba kernels before any timing; says which."""
    import numpy as np

    from . import pattern
    w = np.zeros(512, dtype=np.uint64)
    pattern.fill(w, 1)
    pattern.verify(w, 1)
    pattern.stamp(w, 1, 0, 1)
    pattern.check(w, 1, 0, 1)
    k = pattern.numba_kernels()
    k.stream_sum(w)
    fns = k.KERNELS
    return {"numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR"),
            "numba_cache_hits": sum(sum(f.stats.cache_hits.values()) for f in fns),
            "numba_cache_misses": sum(sum(f.stats.cache_misses.values()) for f in fns)}


def _stdout_emit(event: dict) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def serve(spool: Path, token: str) -> None:
    """Answer plan files in ``spool/requests`` until a shutdown plan arrives."""
    requests, responses = spool / "requests", spool / "responses"
    requests.mkdir(parents=True, exist_ok=True)
    responses.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    warm = _warm_up()
    facts = probe.collect(RealFS())
    facts.update(warm, warmup_seconds=round(time.time() - t0, 1))
    tmp = spool / "ready.json.tmp"
    tmp.write_text(json.dumps({"token": token, "pid": os.getpid(), "facts": facts}))
    tmp.rename(spool / "ready.json")
    while True:
        pending = sorted(requests.glob("*.json"))
        if not pending:
            time.sleep(0.2)
            continue
        path = pending[0]
        plan = json.loads(path.read_text())
        path.unlink()
        if plan.get("op") == "shutdown":
            (spool / "stopped").write_text(token)
            return
        out = responses / (path.stem + ".jsonl")
        with open(out, "a") as f:
            def emit(event, f=f):
                f.write(json.dumps(event) + "\n")
                f.flush()
                os.fsync(f.fileno())
            execute(plan, emit)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.agent")
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("run", help="read one JSON plan on stdin, answer JSON lines on stdout")
    s = sub.add_parser("serve", help="answer plan files dropped in a spool directory")
    s.add_argument("--spool", required=True, type=Path)
    s.add_argument("--token", required=True)
    args = parser.parse_args(argv)
    if args.mode == "run":
        execute(json.loads(sys.stdin.read()), _stdout_emit)
    else:
        serve(args.spool, args.token)
    return 0
