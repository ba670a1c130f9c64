"""One benchmark trial: a verified ``move_pages(2)`` of one region between two nodes.

This runs on the target (inside the agent). The order of a repeat:

1. enable only the requested folio size (every THP knob restored afterwards);
2. map private anonymous memory aligned to the folio size, madvise, bind to ``src``;
3. fill every page with the (seed, page) pattern (numba) — this faults the memory in;
4. check which folio sizes the kernel gave (kpageflags) and that every page is on ``src``;
5. time one ``move_pages()`` call, one address per folio, prepared beforehand;
6. take the /proc/vmstat migration deltas, check every page is on ``dst``;
7. verify every byte (numba) and locate the first bad page.

Around all of it the kernel log and taint are watched (:mod:`.kernellog`): a trial
during which the kernel reported an oops, BUG or WARN gets ``kernel_clean: False`` and
the report's first lines. ``TrialSpec.inject_fault`` makes a fault happen on purpose
(test hooks: a panic, a power-off, a WARN, a hung migration, a cut SSH link).
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from ..protocol import PAGE, TrialSpec
from ..units import format_size
from . import migrators, pagemap, pattern, thp, vmstat
from .kernellog import TrialLog
from .kernelfs import KernelFS, KnobGuard
from .syscalls import MADV_HUGEPAGE, MADV_NOHUGEPAGE, AnonRegion, MovePages, NullCall, page_nodes


def timer_overhead_ns(tries: int = 25) -> int:
    """What the timed region costs besides moving pages: the same timer around the same
    prepared ctypes call of a trivial system call (best of ``tries``)."""
    empty = NullCall()
    best = None
    for _ in range(tries):
        t0 = time.perf_counter_ns()
        empty()
        dt = time.perf_counter_ns() - t0
        best = dt if best is None else min(best, dt)
    return int(best)


class FirstFolioWatch:
    """Time from the start of move_pages() until the first folio is on the destination.

    A thread polls the node of the region's first page (move_pages with nodes=NULL,
    which takes no locks the migration holds for long). With the copy batched, no folio
    is remapped before the whole batch is copied, so this grows with the batch size —
    the downside of big batches a reviewer of the series asked to see."""

    def __init__(self, addr: int, dst: int):
        import threading
        self.dst = dst
        self.query = MovePages(np.array([addr], dtype=np.uint64), None)
        self.go = threading.Event()
        self.done = threading.Event()
        self.t0 = 0
        self.seen_ns: int | None = None
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self):
        self.go.wait()
        while True:
            self.query()
            if self.query.status[0] == self.dst:
                self.seen_ns = time.perf_counter_ns() - self.t0
                return
            if self.done.is_set() and self.query.status[0] != self.dst:
                return

    def start(self):
        self.t0 = time.perf_counter_ns()
        self.go.set()

    def result(self, timeout: float = 10.0) -> int | None:
        self.done.set()
        self.thread.join(timeout)
        return self.seen_ns


def run_trial(spec: TrialSpec, fs: KernelFS) -> dict:
    """Run one repeat and return its record (a flat dict of plain values)."""
    record: dict = {"trial_key": spec.key(), "repeat": spec.repeat, "seed": spec.seed,
                    "trial_seed": spec.trial_seed, "migrator": spec.migrator,
                    "threads": spec.threads, "channels": spec.channels, "batch_size": spec.batch_size,
                    "batch_kernel_copy": spec.batch_kernel_copy,
                    "folio_size": spec.folio_size, "folio": format_size(spec.folio_size),
                    "total_bytes": spec.total_size, "src": spec.src, "dst": spec.dst,
                    "dma_engine": spec.dma_engine,
                    "settings": " ".join(f"{k}={v}" for k, v in sorted((spec.settings or {}).items())) or None}
    npages = spec.total_size // PAGE
    nfolios = spec.total_size // spec.folio_size
    log = TrialLog(fs)
    guard = KnobGuard(fs)
    try:
        thp.enable_only(fs, guard, spec.folio_size)
        control = migrators.detect(fs)
        if spec.dma_engine:
            control.load(spec.dma_engine, what="DMA engine module")
        control.configure(guard, spec.migrator, **spec.interface_knobs())
        for path, value in (spec.settings or {}).items():
            guard.set(path, str(value))
        record["dma_channels_held"] = control.held_channels() if spec.migrator == "dcbm" else None
        with AnonRegion(spec.total_size, max(spec.folio_size, PAGE)) as region:
            region.madvise(MADV_HUGEPAGE if spec.folio_size > PAGE else MADV_NOHUGEPAGE)
            region.bind(spec.src)
            words = region.words()
            pattern.fill(words, spec.trial_seed)

            match = pagemap.folio_match(region.addr, spec.total_size, spec.folio_size)
            record.update({"folio_check": match["method"], "folio_match_share": match["share"],
                           "folios_matched": match.get("matched"), "thp_pages": match.get("thp_pages")})
            before = page_nodes(region.addr, npages)
            record["on_src_before_share"] = float((before == spec.src).mean())

            move = MovePages(region.addr + np.arange(nfolios, dtype=np.uint64) * np.uint64(spec.folio_size),
                             spec.dst)
            timer_ns = timer_overhead_ns()
            counters0 = vmstat.read_migration_counters(fs)
            offload0 = control.counters()
            watch = FirstFolioWatch(region.addr, spec.dst) if spec.first_folio else None
            if spec.inject_fault:
                inject_before_move(spec.inject_fault, fs, move)
            t0 = time.perf_counter_ns()
            if watch:
                watch.start()
            not_moved = move()
            t1 = time.perf_counter_ns()
            record["first_folio_ns"] = watch.result() if watch else None
            offload1 = control.counters()
            counters1 = vmstat.read_migration_counters(fs)

            after = page_nodes(region.addr, npages)
            on_dst = int((after == spec.dst).sum())
            seconds = (t1 - t0) / 1e9
            record.update({
                "seconds": seconds,
                "gbps": spec.total_size / seconds / 1e9 if seconds > 0 else float("nan"),
                "folios": nfolios, "pages": npages,
                "pages_moved": on_dst, "pages_failed": npages - on_dst,
                "syscall_not_moved": int(not_moved),
                "folio_errors": int((move.status < 0).sum()),
                "timer_overhead_ns": timer_ns,
                "harness_overhead_share": timer_ns / max(t1 - t0, 1),
            })
            record.update({f"vmstat_{k}": v for k, v in vmstat.delta(counters0, counters1).items()})
            offload = vmstat.delta(offload0, offload1)
            # totals always; a reason's own counters (<migrator>.<reason>.<counter>) where they moved
            record.update({f"mig_{k.replace('.', '_')}": v for k, v in offload.items()
                           if k.count(".") == 1 or v})
            record["copy_share"] = control.copy_share(offload, spec.migrator)
            record["copy_share_all"] = control.copy_share_all(offload, spec.migrator)
            record["interface"] = control.name
            if spec.inject_fault == "warn":
                fs.log_write(INJECTED_WARN)

            if spec.inject_corruption:
                page, offset = int(spec.inject_corruption["page"]), int(spec.inject_corruption["offset"])
                words.view(np.uint8)[page * PAGE + offset] ^= 0xFF
            result = pattern.verify(words, spec.trial_seed)
            record.update(result.as_record())
            record["verified"] = result.ok and on_dst == npages
            del words
    finally:
        problems = guard.restore()
        if problems:
            record["restore_problems"] = "; ".join(problems)
    record.update(log.verdict())
    return record


#: what the ``warn`` hook writes into the kernel log: the shape of a kernel WARN report
#: (the stock kernel has no way to WARN on demand: no LKDTM, no fault injection)
INJECTED_WARN = ["------------[ cut here ]------------",
                 f"WARNING: CPU: 0 PID: {os.getpid()} at workbench/agent/trial.py: injected by the warn test hook",
                 "Call Trace:", " <TASK>", " workbench_injected_warn", " </TASK>",
                 "---[ end trace 0000000000000000 ]---"]


def inject_before_move(fault: str, fs: KernelFS, move: MovePages) -> None:
    """The test hooks that act just before the timed ``move_pages()``."""
    if fault == "panic":
        fs.write("/proc/sysrq-trigger", "c")          # does not return
    elif fault == "poweroff":
        fs.write("/proc/sysrq-trigger", "o")          # asynchronous: wait for it
        while True:
            time.sleep(60)
    elif fault == "hold":
        while True:                                   # until the host does what it means to
            time.sleep(60)
    elif fault == "hang":
        move.stall()
    elif fault == "cut_link":
        cut_ssh_link(fs)


def cut_ssh_link(fs: KernelFS) -> int | None:
    """Kill the sshd session this agent runs under (the link cut from the box's side);
    returns its pid, or None when the agent does not run under sshd."""
    pid = os.getpid()
    while pid > 1:
        stat = fs.read(f"/proc/{pid}/stat")
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if comm.startswith("sshd") and pid != os.getpid():
            os.kill(pid, signal.SIGKILL)
            return pid
        pid = ppid
    return None
