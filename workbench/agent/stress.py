"""Migration under churn: processes move memory back and forth between two nodes while
the migrator, its threads and the module itself change underneath them.

Each worker fills its own region with its own pattern, then loops: move every base page
to the other node (so a folio the kernel split on the way still moves whole), check every
page arrived, verify every byte. The controller meanwhile
switches the migrator, its thread and channel counts, and (optionally) unloads and
reloads modules: every few seconds the ``unload`` modules are removed in the order given
and loaded again in reverse, so ``["dcbm", "test_dma_engine"]`` takes the migrator away
in the middle of its batches and then the DMA engine under it. Before each such round
dcbm, when offered, is selected and each module that is not a migrator (a DMA engine)
is removed once while dcbm holds its channels: the kernel must refuse that.
Any corruption, misplaced page or failed call is counted; the kernel's console is for
the caller to scan (a WARN or oops is a failure too).
"""

from __future__ import annotations

import multiprocessing as mp
import random
import time

import numpy as np

from . import migrators, pattern
from ..kernelio import thp
from ..errors import WorkbenchError
from ..kernelio.kernelfs import KernelFS, KnobGuard
from .syscalls import MADV_HUGEPAGE, AnonRegion, MovePages, page_nodes

PAGE = 4096


def _worker(idx: int, size: int, folio_size: int, nodes: tuple[int, int], stop, seed: int, out):
    stats = {"worker": idx, "rounds": 0, "bad_pages": 0, "misplaced_pages": 0, "errors": 0, "last_error": None}
    try:
        with AnonRegion(size, max(folio_size, PAGE)) as region:
            region.madvise(MADV_HUGEPAGE)
            region.bind(nodes[0])
            words = region.words()
            pattern.fill(words, seed)
            # every base page, not one address per folio: a large folio that the kernel
            # split on the way (no large folio free on the other node) still moves whole
            npages = size // PAGE
            addrs = region.addr + np.arange(npages, dtype=np.uint64) * np.uint64(PAGE)
            moves = [MovePages(addrs, nodes[1]), MovePages(addrs, nodes[0])]
            while not stop.is_set():
                target = moves[stats["rounds"] % 2]
                try:
                    target()
                except OSError as exc:
                    stats["errors"] += 1
                    stats["last_error"] = str(exc)
                where = nodes[1] if stats["rounds"] % 2 == 0 else nodes[0]
                stats["misplaced_pages"] += int((page_nodes(region.addr, npages) != where).sum())
                v = pattern.verify(words, seed)
                stats["bad_pages"] += v.bad_pages
                if v.bad_pages and stats["last_error"] is None:
                    stats["last_error"] = f"corruption: page {v.first_bad_page} offset {v.first_bad_offset}"
                stats["rounds"] += 1
            del words
    except Exception as exc:  # reported, not lost
        stats["errors"] += 1
        stats["last_error"] = f"{exc.__class__.__name__}: {exc}"
    out.put(stats)


def _attempt(result: dict, what: str, fn) -> bool:
    """Try one change the churn makes; the kernel may refuse it (a module went away between
    reading and writing, no free DMA channel, a module in use) and that is counted by
    kind, with the last reason, never hidden. Anything else is a bug and propagates."""
    try:
        fn()
        return True
    except WorkbenchError as exc:
        result["refused"][what] = result["refused"].get(what, 0) + 1
        result["last_refusal"][what] = str(exc)
        return False


def run(fs: KernelFS, seconds: float = 60, size: int = 16 << 20, folio_size: int = 2 << 20, workers: int = 2,
        min_switches: int = 0,
        switch_every: float = 0.5, unload: list[str] | None = None, seed: int = 11, nodes=(0, 1)) -> dict:
    control = migrators.detect(fs)
    if not callable(getattr(control, "select", None)):   # our series (v2, v3) select by name
        raise WorkbenchError(f"the churn test needs the workbench kernel interface; this kernel has {control.name}")
    unload = list(unload or [])
    # every migrator the kernel can offer takes part, loaded or not yet
    for mod in dict.fromkeys(control.loadable() + unload):
        if mod not in control.migrators():
            control.load(mod)
    deadline = time.time() + seconds
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    stop = ctx.Event()   # the workers migrate until the controller is done (or fails)
    guard = KnobGuard(fs)
    result = {"switches": 0, "thread_changes": 0, "channel_changes": 0, "unloads": 0, "unload_busy": 0,
              "reloads": 0, "unloaded": {m: 0 for m in unload},
              "provider_unload_while_held": {"refused": 0, "succeeded": 0}, "refused": {}, "last_refusal": {},
              # the longest a migrator switch and a module removal took while batches ran
              "select_max_s": 0.0, "unload_max_s": 0.0}
    providers = [m for m in unload if m not in control.modules]
    try:
        thp.enable_only(fs, guard, folio_size)
        # let the guard hold the originals of every knob the loop below changes
        knobs = control.knobs()
        control.configure(guard, "kernel", threads=knobs["threads"][0] if knobs.get("threads") else None,
                          channels=1 if knobs.get("channels") else None)
        procs = [ctx.Process(target=_worker, args=(i, size, folio_size, nodes, stop, seed + i, out))
                 for i in range(workers)]
        for p in procs:
            p.start()
        rng = random.Random(seed)
        last_unload = time.time()
        # at least `seconds`, and on a slow machine until `min_switches` migrator switches
        # happened too (within four times `seconds`): the amount of churn, not its speed
        hard_stop = deadline + 3 * seconds
        while time.time() < deadline or (result["switches"] < min_switches and time.time() < hard_stop):
            time.sleep(switch_every)
            offered = control.migrators()
            choice = rng.choice(offered)
            t0 = time.monotonic()
            if _attempt(result, "select", lambda: control.select(choice)):
                result["switches"] += 1
                result["select_max_s"] = max(result["select_max_s"], time.monotonic() - t0)
            bounds = control.knobs().get("threads")
            if bounds and "mtcopy" in offered:
                if _attempt(result, "threads", lambda: control.set_threads(rng.randint(*bounds))):
                    result["thread_changes"] += 1
            if "dcbm" in offered and control.knobs().get("channels"):
                if _attempt(result, "channels", lambda: control.set_channels(rng.randint(1, 2))):
                    result["channel_changes"] += 1
            if unload and time.time() - last_unload > 3:
                last_unload = time.time()
                if providers and "dcbm" in control.migrators():
                    _attempt(result, "select", lambda: control.select("dcbm"))
                    if control.held_channels():
                        for mod in providers:
                            ok = _attempt(result, "provider_unload", lambda: fs.unload_module(mod))
                            result["provider_unload_while_held"]["succeeded" if ok else "refused"] += 1
                            if ok:
                                fs.load_module(mod)
                for mod in unload:
                    t0 = time.monotonic()
                    if _attempt(result, "unload", lambda: fs.unload_module(mod)):
                        result["unloads"] += 1
                        result["unloaded"][mod] += 1
                        result["unload_max_s"] = max(result["unload_max_s"], time.monotonic() - t0)
                    else:
                        result["unload_busy"] += 1
                for mod in reversed(unload):
                    if _attempt(result, "reload", lambda: fs.load_module(mod)):
                        result["reloads"] += 1
        stop.set()
        workers_out = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(30)
    finally:
        stop.set()
        for mod in reversed(unload):
            if mod not in control.migrators():
                _attempt(result, "reload", lambda: fs.load_module(mod))
        problems = guard.restore()
    result.update({"workers": workers_out, "restore_problems": problems,
                   "rounds": sum(w["rounds"] for w in workers_out),
                   "bad_pages": sum(w["bad_pages"] for w in workers_out),
                   "misplaced_pages": sum(w["misplaced_pages"] for w in workers_out),
                   "errors": sum(w["errors"] for w in workers_out)})
    return result
