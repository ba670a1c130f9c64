"""Processes that migrate through the same DMA channels at once (issue 20).

Several workers (each :func:`workbench.agent.stress._worker`: its own region, moved back and
forth between two nodes, every page's node and every byte checked after each move) run
with dcbm selected on ``channels`` channels of a DMA engine whose knobs ``settings`` sets
(a small ring, a slow time model, ...). Optionally one worker is killed with SIGKILL while
it waits inside the kernel for its DMA copies, found by its wait channel: the others must
go on, and every page they moved must still verify. Knobs are put back afterwards.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import time

from . import migrators
from ..kernelio import thp
from ..errors import WorkbenchError
from ..kernelio.kernelfs import KernelFS, KnobGuard
from ..kernelio.blocked import _stack
from .stress import _worker

#: wait channels of a task inside dcbm's copy (6.12: the killable completion wait)
DMA_WAIT_CHANNELS = ("dcbm", "wait_for_completion", "do_wait_for_common", "__wait_for_common")


def _wchan(fs: KernelFS, pid: int) -> str:
    try:
        return fs.read(f"/proc/{pid}/wchan").strip()
    except (OSError, WorkbenchError):
        return ""


def _kill_in_wait(fs: KernelFS, proc, within: float) -> dict:
    """SIGKILL ``proc`` as soon as it waits in dcbm's copy (polled), or after ``within``
    seconds whatever it does; say where it was."""
    end = time.time() + within
    seen = ""
    while time.time() < end and proc.is_alive():
        seen = _wchan(fs, proc.pid)
        if any(w in seen for w in DMA_WAIT_CHANNELS):
            break
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    return {"wchan": seen, "in_dma_wait": any(w in seen for w in DMA_WAIT_CHANNELS),
            "exitcode": proc.exitcode}


def run(fs: KernelFS, seconds: float = 20, size: int = 4 << 20, folio_size: int = 64 << 10, workers: int = 2,
        channels: int = 1, settings: dict | None = None, kill: int | None = None, kill_after: float = 1.0,
        dma_engine: str = "test_dma_engine", seed: int = 21, nodes=(0, 1)) -> dict:
    control = migrators.detect(fs)
    if "dcbm" not in control.modules:
        raise WorkbenchError(f"the DMA contention test needs a kernel whose interface has dcbm (the workbench's "
                             f"series v2 or v3); this kernel has {control.name}")
    if kill is not None and not 0 <= kill < workers:
        raise WorkbenchError(f"kill={kill}: no such worker; allowed 0 to {workers - 1}")
    if dma_engine:
        control.load(dma_engine, what="DMA engine module")
    if "dcbm" not in control.migrators():
        control.load("dcbm")
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    # one stop event each: a worker killed while it held an event's lock cannot block another
    stops = [ctx.Event() for _ in range(workers)]
    guard = KnobGuard(fs)
    result: dict = {"killed": None}
    counters_before = control.counters()
    try:
        thp.enable_only(fs, guard, folio_size)
        control.apply_settings(guard, settings)
        control.configure(guard, "dcbm", channels=channels)
        procs = [ctx.Process(target=_worker, args=(i, size, folio_size, nodes, stops[i], seed + i, out))
                 for i in range(workers)]
        for p in procs:
            p.start()
        if kill is not None:
            time.sleep(kill_after)
            result["killed"] = {"worker": kill, **_kill_in_wait(fs, procs[kill], seconds)}
        time.sleep(max(0.0, seconds - (kill_after if kill is not None else 0)))
        for stop in stops:
            stop.set()
        survivors = [i for i in range(workers) if i != kill]
        reports = []
        for _ in survivors:
            try:
                reports.append(out.get(timeout=max(120, 10 * seconds)))
            except queue.Empty:
                reports.append({"worker": None, "rounds": 0, "bad_pages": 0, "misplaced_pages": 0, "errors": 1,
                                "last_error": "no report: the worker never finished (hung?)"})
        for p in procs:
            p.join(30)
        result["hung_workers"] = [i for i, p in enumerate(procs) if p.is_alive()]
        # where a hung worker is stuck, in the kernel's words
        result["hung_where"] = {i: {"wchan": _wchan(fs, procs[i].pid),
                                    "stack": _stack(fs, procs[i].pid, procs[i].pid)}
                                for i in result["hung_workers"]}
        for i in result["hung_workers"]:
            os.kill(procs[i].pid, signal.SIGKILL)
    finally:
        for stop in stops:
            stop.set()
        counters_after = control.counters()
        problems = guard.restore()
    result.update({
        "workers": sorted(reports, key=lambda r: (r["worker"] is None, r["worker"] or 0)),
        "restore_problems": problems,
        "counters": {k: v - counters_before.get(k, 0) for k, v in counters_after.items()
                     if k.startswith(("dcbm.", "test_dma_engine.")) and k.count(".") == 1},
    })
    return result
