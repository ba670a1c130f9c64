"""What every workload is, and the pieces of a trial they share."""

from __future__ import annotations

from dataclasses import fields

import time
from contextlib import contextmanager

import numpy as np

from ...catalogue.workloads import WorkloadInfo
from ...kernelio.machine import current_cpu
from ...errors import WorkbenchError
from ...protocol import PAGE, TrialSpec
from .. import access, fault_hooks, pagemap, timed_call, tracing, vmstat
from ...kernelio import numa
from ...kernelio.kernelfs import KernelFS, KnobGuard
from ..migrators.base import MigrationControl
from ..migrators.mm_migration import reason_delta
from ..pattern import Verification
from ..syscalls import MADV_HUGEPAGE, MADV_NOHUGEPAGE, AnonRegion, NullCall


class Workload:
    """One way the kernel migrates pages. A subclass names its entry in the shared
    catalogue (``info``: name, reason, what it needs, the checks of a plan against a
    target's facts), which become its class attributes; it says what a kernel lacks for
    it (:meth:`missing`) and runs a trial (:meth:`run`)."""

    #: its entry in :mod:`workbench.catalogue.workloads`
    info: WorkloadInfo

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        for f in fields(cls.info):
            if f.name != "extra_check":
                setattr(cls, f.name, getattr(cls.info, f.name))

    def missing(self, fs: KernelFS) -> str | None:
        """What this kernel lacks to run the workload (one line), or None."""
        if len(numa.memory_nodes(fs)) < 2:
            return "one NUMA node with memory; pages can only migrate between two"
        return None

    def requires_placement(self, spec: TrialSpec) -> bool:
        """Whether every page must end on the expected node for this trial to pass."""
        return self.placement_required

    def check_facts(self, knobs, facts: dict) -> None:
        """Judge ``knobs`` against a target's facts (the catalogue's checks)."""
        self.info.check_facts(knobs, facts)

    def check_target(self, spec: TrialSpec, fs: KernelFS) -> None:
        """The same on the target, when the trial arrives (the agent may be reached
        without the host's checks)."""
        why = self.missing(fs)
        if why:
            raise WorkbenchError(f"workload {self.name!r} cannot run on this kernel: {why}")
        self.check_facts(spec, {"numa": numa.topology(fs), "memory_tiers": memory_tiers(fs)})

    def run(self, t: "Trial") -> None:
        raise NotImplementedError


# -- memory tiers --------------------------------------------------------------------------

TIERS = "/sys/devices/virtual/memory_tiering"


def memory_tiers(fs: KernelFS) -> dict[int, list[int]]:
    """{tier id: [nodes]} (v6.1, "mm/demotion: add support for explicit memory tiers");
    a larger id is a slower tier. {} when the kernel has no tiers directory."""
    from ...units import parse_cpulist
    if not fs.isdir(TIERS):
        return {}
    out = {}
    for name in fs.listdir(TIERS):
        if name.startswith("memory_tier") and fs.exists(f"{TIERS}/{name}/nodelist"):
            text = fs.read(f"{TIERS}/{name}/nodelist").strip()
            out[int(name[len("memory_tier"):])] = parse_cpulist(text) if text else []
    return dict(sorted(out.items()))


# -- a trial ------------------------------------------------------------------------------

class Trial:
    """What a workload gets: the spec, the kernel, the guard that undoes every change,
    the migration interface, the record it fills, and the steps every workload shares."""

    def __init__(self, spec: TrialSpec, fs: KernelFS, guard: KnobGuard, control: MigrationControl,
                 record: dict, workload: Workload, monitor=None):
        self.spec, self.fs, self.guard, self.control, self.record = spec, fs, guard, control, record
        self.workload = workload
        #: the trial's monitor (workbench.agent.monitor), told where the migration starts and ends
        self.monitor = monitor
        self.npages = spec.total_size // PAGE
        self.trace: tracing.TraceSession | None = None

    # memory ---------------------------------------------------------------------------
    def map_region(self, size: int | None = None, bind: int | None = -1) -> AnonRegion:
        """Private anonymous memory aligned to the folio size, advised for it, bound to
        ``bind`` (default: the source node; None: no policy)."""
        spec = self.spec
        region = AnonRegion(size or spec.total_size, max(spec.folio_size, PAGE))
        region.madvise(MADV_HUGEPAGE if spec.folio_size > PAGE else MADV_NOHUGEPAGE)
        node = spec.src if bind == -1 else bind
        if node is not None:
            region.bind(node)
        return region

    def check_folios(self, addr: int, size: int | None = None) -> None:
        """Which folios the kernel gave, and the share of pages on the source node."""
        size = size or self.spec.total_size
        match = pagemap.folio_match(addr, size, self.spec.folio_size)
        from ..syscalls import page_nodes
        before = page_nodes(addr, size // PAGE)
        self.record.update({"folio_check": match["method"], "folio_match_share": match["share"],
                            "folios_matched": match.get("matched"), "thp_pages": match.get("thp_pages"),
                            "on_src_before_share": float((before == self.spec.src).mean())})

    # what the kernel did --------------------------------------------------------------
    def start_trace(self) -> None:
        """Open the trace session and measure what its events cost (once per agent)."""
        if not self.spec.trace:
            return
        why = tracing.missing(self.fs)
        if why:
            self.record["trace_error"] = why
            return
        self.trace = tracing.TraceSession(self.fs, self.guard)
        self.record["trace_clock"] = self.trace.clock
        other = self.spec.dst if self.spec.dst is not None and self.spec.dst != self.spec.src else \
            next((n for n in numa.memory_nodes(self.fs) if n != self.spec.src), None)
        if other is None:   # one node: nothing to move back and forth, so nothing to measure with
            self.record.update({"trace_event_ns": None, "trace_event_ns_spread": None,
                                "trace_calibration_calls": 0})
        else:
            self.record.update(tracing.event_cost_ns(self.fs, self.trace, (self.spec.src, other)))

    @contextmanager
    def observe(self, stall=None):
        """Counters and trace around the part where the kernel migrates: /proc/vmstat
        deltas, the interface's counters (per reason where it has them), trace events.
        A fault the spec injects (test hooks) happens at its edges; ``stall`` is how this
        workload's migration can be made to hang, where it can."""
        fault = self.spec.inject_fault
        if fault:
            fault_hooks.before_migration(fault, self.fs, stall)
        if self.trace:
            self.trace.start()
        vm0 = vmstat.read_migration_counters(self.fs)
        c0 = self.control.counters()
        if self.monitor:
            self.monitor.mark("migrate")
        try:
            yield
        finally:
            if self.monitor:
                self.monitor.mark("migrated")
            c1 = self.control.counters()
            vm1 = vmstat.read_migration_counters(self.fs)
            if self.trace:
                self.trace.stop()
            self._counters(vm0, vm1, c0, c1)
            if fault:
                fault_hooks.after_migration(fault, self.fs)
            if self.trace:
                t0 = time.perf_counter()
                events = tracing.parse(self.trace.read())
                self.record.update(tracing.summarize(events, self.trace.lost()))
                if self.monitor:
                    self.monitor.add_trace(events, self.trace.clock)
                self.record["trace_read_s"] = time.perf_counter() - t0

    def _counters(self, vm0, vm1, c0, c1):
        r = self.record
        r.update({f"vmstat_{k}": v for k, v in vmstat.delta(vm0, vm1).items()})
        delta = vmstat.delta(c0, c1)
        # totals always; a reason's own counters (<migrator>.<reason>.<counter>) where they moved
        r.update({f"mig_{k.replace('.', '_')}": v for k, v in delta.items() if k.count(".") == 1 or v})
        r["copy_share"] = self.control.copy_share(delta, self.spec.migrator)
        r["copy_share_all"] = self.control.copy_share_all(delta, self.spec.migrator)
        r["interface"] = self.control.name
        layout = getattr(self.control, "reason_layout", lambda: None)()
        r["reason_counters"] = layout
        if layout:
            mine = reason_delta(delta, self.workload.reason)
            r["reason_batches"] = sum(v for k, v in mine.items() if k.endswith(".batches"))
            r["reason_folios"] = sum(v for k, v in mine.items() if k.endswith(".folios"))
            r["reason_fallbacks"] = sum(v for k, v in mine.items() if k.endswith(".fallbacks"))

    def timed(self, call) -> tuple[object, float]:
        """(call(), seconds) with nothing else inside the timer; the timer's own cost
        (the same timer around a prepared trivial system call) goes into the record."""
        self.record["timer_overhead_ns"] = timer_overhead_ns()
        # which CPU the call started and ended on (outside the timer): a trial's cost can
        # depend on it, e.g. a node's own CPU against the other's
        self.record["call_cpu_start"] = current_cpu(self.fs)
        with timed_call.section():    # the agent's poller stays quiet meanwhile
            t0 = time.perf_counter_ns()
            result = call()
            t1 = time.perf_counter_ns()
        self.record["call_cpu_end"] = current_cpu(self.fs)
        self.record["harness_overhead_share"] = self.record["timer_overhead_ns"] / max(t1 - t0, 1)
        return result, (t1 - t0) / 1e9

    # outcome --------------------------------------------------------------------------
    def placement(self, counts: dict, expect: int, moved: int | None = None) -> None:
        """Every page's node (``counts``: {node: pages}, from page_nodes()) against the
        node every page must be on."""
        placed = int(counts.get(str(expect), counts.get(expect, 0)))
        self.record.update({"expect_node": expect, "pages": self.npages, "pages_placed": placed,
                            "pages_failed": self.npages - placed,
                            "pages_moved": placed if moved is None else moved,
                            "page_nodes": " ".join(f"{k}:{v}" for k, v in sorted(counts.items(), key=str))})

    def verification(self, v: Verification | dict) -> None:
        self.record.update(v.as_record() if isinstance(v, Verification) else v)

    def verify_words(self, words: np.ndarray, threads: "access.Access") -> None:
        """Every byte of ``words`` (mapped here) against what it must hold: the fill, or
        the generation each word's writer stamped last. The corruption test hook flips its
        byte first and the stale hook feeds the check an old generation, so the check is
        shown to fail where it must."""
        spec = self.spec
        if spec.inject_corruption:
            page, offset = int(spec.inject_corruption["page"]), int(spec.inject_corruption["offset"])
            words.view(np.uint8)[page * PAGE + offset] ^= 0xFF
        self.verification(access.verify(words, spec.trial_seed, threads.expected_generations(),
                                        stale=spec.inject_stale))

    def finish(self) -> None:
        """The trial's verdict: every byte as expected, no access saw a stale value, and
        every page where it must be (where the workload requires it)."""
        r = self.record
        bytes_ok = r.get("verify_bad_pages") == 0
        access_ok = not r.get("access_bad_pages") and not r.get("access_error")
        placed_ok = r.get("pages_failed") == 0 or not self.workload.requires_placement(self.spec)
        r["verified"] = bool(bytes_ok and access_ok and placed_ok)
        events, cost, seconds = r.get("trace_events"), r.get("trace_event_ns"), r.get("seconds")
        if events is not None and cost is not None and seconds:
            # a cost below the calibration's noise (under TCG, usually) is stated as a bound
            spread = r.get("trace_event_ns_spread") or 0.0
            r["trace_event_ns_resolved"] = cost > 2 * spread
            r["trace_overhead_ns"] = events * max(cost, 0.0)
            r["trace_overhead_share"] = r["trace_overhead_ns"] / (seconds * 1e9)
            r["trace_overhead_bound_share"] = events * (max(cost, 0.0) + 2 * spread) / (seconds * 1e9)


def timer_overhead_ns(tries: int = 25) -> int:
    """What the timed region costs besides the migrating call: the same timer around the
    same prepared ctypes call of a trivial system call (best of ``tries``)."""
    empty = NullCall()
    best = None
    for _ in range(tries):
        t0 = time.perf_counter_ns()
        empty()
        dt = time.perf_counter_ns() - t0
        best = dt if best is None else min(best, dt)
    return int(best)


def counts_of(nodes: np.ndarray) -> dict[str, int]:
    from ..holder import node_counts
    return node_counts(nodes)
