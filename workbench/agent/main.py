"""The target-side agent: ``python -m workbench.agent``.

The same package runs on every target. It takes a JSON plan and answers with JSON
lines, one per event, flushed as each trial finishes:

* ``{"op": "probe"}`` -> ``{"type": "facts", "facts": {...}}``
* ``{"op": "trials", "trials": [TrialSpec dicts]}`` -> ``{"type": "start"}`` before and
  ``{"type": "record"}`` after each trial; ``{"type": "error", "message": ...}`` stops the plan
* ``{"op": "blocked", "pids": [...]}`` -> ``{"type": "blocked"}``: the tasks stuck in the kernel
* always ends with ``{"type": "done"}``

Modes: ``run`` reads one plan on stdin and answers on stdout (local, SSH);
``serve --spool DIR`` keeps answering plans dropped as files in DIR until it gets
``{"op": "shutdown"}`` (the VM target, which keeps one VM up for a session). It runs
one plan at a time in a worker thread and meanwhile still answers ``blocked`` and
``cancel``; idle, it looks at the spool less and less often (a poll every
:data:`IDLE_POLL_MAX` seconds at most), so a VM that waits costs little host CPU.

Only one agent on a machine runs trials at a time (:data:`TRIALS_LOCK`): a plan sent
again after a lost link waits for the old agent to finish its trial.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from . import panic_record, probe, timed_call
from ..errors import WorkbenchError
from ..kernelio.kernelfs import RealFS
from ..protocol import Event, Op, TrialSpec
from .trial import run_trial

Emit = Callable[[dict], None]

#: held while a plan runs trials; a second agent's trials wait for it
TRIALS_LOCK = Path(tempfile.gettempdir()) / "workbench-agent-trials.lock"
#: the spool is looked at every POLL seconds while busy or just after a plan, then less
#: and less often, at most every IDLE_POLL_MAX seconds
POLL, IDLE_POLL_MAX, IDLE_AFTER = 0.2, 2.0, 10.0
#: how long the poller waits for a trial's timed call to end before it looks at the spool
#: all the same (a hung call's ``blocked`` is answered after at most this)
QUIET_MAX = 3.0


#: how long a plan waits for another agent's trials before it gives up
TRIALS_LOCK_WAIT = 600.0


@contextmanager
def _trials_lock(path: Path | None = None, wait: float | None = None):
    path = path or TRIALS_LOCK
    wait = TRIALS_LOCK_WAIT if wait is None else wait
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError:
        yield  # no place for the lock: run unguarded rather than not at all
        return
    try:
        end = time.time() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.time() > end:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    raise WorkbenchError(f"another agent (pid {holder}) has been running trials on this machine "
                                         f"for more than {wait:.0f} s (stuck in the kernel?); see {path}") from None
                time.sleep(1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def execute(plan: dict, emit: Emit, fs=None, cancelled: Callable[[], bool] | None = None) -> None:
    fs = fs or RealFS()
    op = plan.get("op")
    try:
        if op == "probe":
            emit({"type": "facts", "facts": probe.collect(fs)})
        elif op == "trials":
            with _trials_lock():
                _trials(plan, emit, fs, cancelled)
        elif op == Op.BLOCKED:
            from ..kernelio.blocked import blocked_tasks
            emit({"type": Event.BLOCKED, **blocked_tasks(fs, plan.get("pids", ()), plan.get("sysrq", True),
                                                         plan.get("tids", ()))})
        elif op == "snapshot":
            emit({"type": "snapshot", "snapshot": _snapshot(fs, plan)})
        elif op == "stress":
            from . import stress
            emit({"type": "stress", "result": stress.run(fs, **plan.get("args", {}))})
        elif op == "contention":
            from . import contention
            emit({"type": "contention", "result": contention.run(fs, **plan.get("args", {}))})
        elif op == "sysfs":
            emit({"type": "sysfs", "results": _sysfs_ops(fs, plan.get("writes", []), plan.get("reads", []))})
        elif op == "conformance":
            from . import conformance
            conformance.run(fs, plan["cases"], plan["configs"], emit)
        elif op == "bench_verify":
            from .verify_speed import verify_speed
            emit({"type": "bench", "result": verify_speed(**plan.get("args", {}))})
        else:
            emit({"type": "error", "message": f"unknown plan op {op!r}; allowed: probe, trials, blocked, snapshot, "
                                              "stress, contention, sysfs, conformance, bench_verify, cancel, "
                                              "shutdown"})
    except WorkbenchError as exc:
        emit({"type": "error", "message": str(exc)})
    except Exception as exc:  # an op that breaks must not take the agent (and a VM) down with it
        emit({"type": "error", "message": f"{op} failed: {exc.__class__.__name__}: {exc}",
              "traceback": traceback.format_exc()})
    finally:
        emit({"type": "done"})


def _trials(plan: dict, emit: Emit, fs, cancelled) -> None:
    if plan.get("warmup", True):
        _warm_up()
    for index, spec in enumerate(plan["trials"]):
        if cancelled and cancelled():
            emit({"type": "error", "message": "plan cancelled by its host"})
            return
        trial = TrialSpec.from_dict(spec)
        emit({"type": Event.START, "trial_key": trial.key(), "index": index, "pid": os.getpid(),
              "tid": threading.get_native_id()})
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


def _snapshot(fs, plan: dict) -> dict:
    """The files under ``roots``; with ``modules``, each one's parameters as modinfo says
    before it is loaded, then loaded; with ``writes``, the kernel's answer to each (a
    recorded transcript a fake's value rules are checked against), the files last."""
    from ..kernelio.kernelfs import snapshot
    modules = {}
    for name in plan.get("modules", ()):
        modules[name] = {"params": list(fs.module_params(name) or ()), "loaded_before": fs.exists(f"/sys/module/{name}")}
        if not modules[name]["loaded_before"]:
            fs.load_module(name)
    writes = _sysfs_ops(fs, plan.get("writes", []), [])["writes"]
    snap = snapshot(fs, plan["roots"])
    if modules:
        snap["modules"] = modules
    if writes:
        snap["writes"] = writes
    return snap


def _sysfs_ops(fs, writes, reads) -> dict:
    """Raw knob writes for tests of the kernel's own checks: each write's outcome and
    the file before and after."""
    out = {"writes": [], "reads": {}}

    def current(path):
        """The file's value, or None where it is missing or write-only (drop_caches)."""
        try:
            return fs.read(path) if fs.exists(path) else None
        except PermissionError:
            return None
    for path, value in writes:
        before = current(path)
        try:
            fs.write(path, value)
            error = None
        except WorkbenchError as exc:
            error = str(exc)
        out["writes"].append({"path": path, "value": value, "error": error, "before": before,
                              "after": current(path)})
    for path in reads:
        out["reads"][path] = fs.read(path) if fs.exists(path) else None
    return out


def _uptime() -> float | None:
    """Seconds since this machine booted (/proc/uptime): when each step of an agent's
    start ended, on the guest's own clock."""
    try:
        with open("/proc/uptime") as f:
            return round(float(f.read().split()[0]), 2)
    except (OSError, ValueError, IndexError):
        return None


def _process_started() -> float | None:
    """Seconds after boot at which this process started (/proc/self/stat, field 22)."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        return round(ticks / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, ValueError, IndexError):
        return None


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
            "numba_cache_misses": sum(sum(f.stats.cache_misses.values()) for f in fns),
            "scipy_loaded": sys.modules.get("scipy") is not None}


class HostGone(BaseException):
    """The host end of stdout went away (a lost SSH link): stop quietly (a BaseException,
    so that no trial reports it as its own failure; every ``finally`` still runs)."""


def _stdout_emit(event: dict) -> None:
    try:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, OSError) as exc:
        raise HostGone(str(exc)) from None


def _hang_up(signum, frame):
    raise HostGone(f"signal {signum}")


def run_stdin() -> None:
    """One plan on stdin, events on stdout. A lost link (SIGHUP, a broken pipe) stops
    the plan through the normal path, so every knob is put back."""
    signal.signal(signal.SIGHUP, _hang_up)
    try:
        execute(json.loads(sys.stdin.read()), _stdout_emit)
    except HostGone:
        try:
            sys.stdout = open(os.devnull, "w")  # nothing more can be said
        except OSError:
            pass


class _FileEmit:
    def __init__(self, path: Path):
        self.f = open(path, "a")

    def __call__(self, event: dict) -> None:
        self.f.write(json.dumps(event) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self):
        self.f.close()


def serve(spool: Path, token: str) -> None:
    """Answer plan files in ``spool/requests`` until a shutdown plan arrives."""
    requests, responses = spool / "requests", spool / "responses"
    requests.mkdir(parents=True, exist_ok=True)
    responses.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    startup = {"process": _process_started(), "imports": _uptime()}
    armed = panic_record.arm(RealFS())      # first: a death during warm-up is named too
    startup["panic_record"] = _uptime()
    warm = _warm_up()
    startup["numba"] = _uptime()
    facts = probe.collect(RealFS())
    startup["probe"] = _uptime()
    facts["panic_record"] = armed
    facts.update(warm, warmup_seconds=round(time.time() - t0, 1), startup=startup)
    tmp = spool / "ready.json.tmp"
    tmp.write_text(json.dumps({"token": token, "pid": os.getpid(), "facts": facts}))
    tmp.rename(spool / "ready.json")
    worker: threading.Thread | None = None
    cancelled: set[str] = set()
    last_active, poll = time.time(), POLL

    def run(plan, request_id):
        emit = _FileEmit(responses / f"{request_id}.jsonl")
        try:
            execute(plan, emit, cancelled=lambda: request_id in cancelled)
        finally:
            emit.close()

    while True:
        if worker is not None and not worker.is_alive():
            worker = None
            last_active = time.time()
        for path in sorted(requests.glob("*.json")):
            try:
                plan = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            op = plan.get("op")
            if op not in (Op.BLOCKED, Op.CANCEL, Op.SHUTDOWN) and worker is not None:
                continue  # waits for the plan in flight (the control ops do not)
            path.unlink()
            last_active = time.time()
            if op == Op.SHUTDOWN:
                (spool / "stopped").write_text(token)
                return
            if op == Op.CANCEL:
                cancelled.add(str(plan.get("request")))
            elif op == Op.BLOCKED:
                run(plan, path.stem)
            else:
                worker = threading.Thread(target=run, args=(plan, path.stem), name=f"plan-{path.stem}",
                                          daemon=True)
                worker.start()
        idle = time.time() - last_active
        poll = POLL if worker is not None or idle < IDLE_AFTER else min(IDLE_POLL_MAX, poll * 1.5)
        time.sleep(poll)
        timed_call.wait_outside(QUIET_MAX)   # not inside a trial's timed call (icount counts us)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.agent")
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("run", help="read one JSON plan on stdin, answer JSON lines on stdout")
    s = sub.add_parser("serve", help="answer plan files dropped in a spool directory")
    s.add_argument("--spool", required=True, type=Path)
    s.add_argument("--token", required=True)
    s.add_argument("--module-dir", help="modules built out of tree for this kernel (the test DMA engine), "
                                        "loaded with insmod when modprobe does not know them")
    args = parser.parse_args(argv)
    if getattr(args, "module_dir", None):
        from ..kernelio.kernelfs import MODULE_DIR_ENV
        os.environ[MODULE_DIR_ENV] = args.module_dir    # worker processes inherit it
    if args.mode == "run":
        run_stdin()
    else:
        serve(args.spool, args.token)
    return 0
