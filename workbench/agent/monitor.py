"""What the kernel did during a trial, sampled at a fixed interval (mmtests' monitors).

A thread reads, every ``interval`` seconds, through the kernel-facing I/O layer:

* ``/proc/vmstat``: migration, compaction, NUMA balancing, THP and demotion counters
  (:data:`workbench.agent.vmstat.PREFIXES`, and ``thp_``);
* ``/proc/interrupts``: TLB shootdowns (``TLB``), function-call IPIs (``CAL``) and the
  lines of DMA engines (a description naming dma, ioat, idxd, ptdma or ae4dma), each
  summed over the CPUs;
* ``/proc/stat``: each CPU's busy time (everything but idle and iowait), in USER_HZ ticks
  (10 ms: a sample at 10 ms says busy or not, the sum over a phase says how busy).

Each sample holds cumulative values and its time since the trial started; the trial marks
its phases (``setup``, then ``migrate`` and ``migrated`` around the kernel's migration, ``end``). The sampler's
own cost is measured on the target: its thread's CPU time, and that over the trial's time.
"""

from __future__ import annotations

import re
import threading
import time

from ..protocol import MONITOR_MIN_MS
from ..kernelio.kernelfs import KernelFS
from .vmstat import PREFIXES, VMSTAT
INTERRUPTS = "/proc/interrupts"
STAT = "/proc/stat"
VMSTAT_PREFIXES = PREFIXES + ("thp_",)
#: interrupt lines kept: the named IPIs, and DMA engines by their description
NAMED_IRQS = {"TLB": "tlb_shootdowns", "CAL": "function_call_ipis"}
DMA_LINE = re.compile(r"dma|ioat|idxd|ptdma|ae4dma", re.I)


_VMSTAT_LINE = re.compile(r"^((?:%s)\S*) (\d+)$" % "|".join(map(re.escape, VMSTAT_PREFIXES)), re.M)


def parse_vmstat(text: str) -> dict[str, int]:
    return {f"vmstat_{name}": int(value) for name, value in _VMSTAT_LINE.findall(text)}


def parse_interrupts(text: str) -> dict[str, int]:
    """{irq_<name>: count over all CPUs} of the named IPIs and the DMA engines' lines."""
    head, _, body = text.partition("\n")
    ncpu = len(head.split())
    out = {}
    for line in body.splitlines():
        label, _, rest = line.partition(":")
        label = label.strip()
        if label in NAMED_IRQS:
            out[f"irq_{NAMED_IRQS[label]}"] = sum(int(f) for f in rest.split()[:ncpu])
        elif DMA_LINE.search(rest) and label.isdigit():
            fields = rest.split()
            desc = " ".join(fields[ncpu:])
            if DMA_LINE.search(desc):
                name = re.sub(r"[^A-Za-z0-9]+", "_", desc.split()[-1]).strip("_").lower()
                out[f"irq_dma_{name}_{label}"] = sum(int(f) for f in fields[:ncpu])
    return out


def parse_cpu_busy(text: str) -> dict[str, int]:
    """{cpu<N>_busy_ticks: user+nice+system+irq+softirq+steal} per CPU, USER_HZ ticks."""
    out = {}
    for line in text.splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *values = line.split()
        v = [int(x) for x in values]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        out[f"{name}_busy_ticks"] = sum(v[:8]) - idle
    return out


#: trace events put on the timeline (the series' batches, and each call's end)
TRACE_ON_TIMELINE = ("mm_migrate_copy_end", "mm_migrate_batch_end", "mm_migrate_pages")

#: what a sample reads: {file: its parser}
SOURCES = {VMSTAT: parse_vmstat, INTERRUPTS: parse_interrupts, STAT: parse_cpu_busy}


def parse(texts: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for path, text in texts.items():
        out.update(SOURCES[path](text))
    return out


def sample(fs: KernelFS, sources=tuple(SOURCES)) -> dict[str, int]:
    """One sample, read and parsed at once."""
    return parse({path: fs.read(path) for path in sources})


class Monitor:
    """Samples the :data:`SOURCES` every ``interval_ms`` in a thread, from :meth:`start`
    to :meth:`stop`; :meth:`mark` names the phase that begins now.

    A sample only reads: each file is kept open (:meth:`KernelFS.reader`) and its text
    kept as it is; the text is parsed after the trial, in :meth:`stop`. Under TCG,
    parsing each sample in Python cost most of a 10 ms interval of one guest CPU."""

    def __init__(self, fs: KernelFS, interval_ms: float):
        self.fs, self.interval = fs, max(float(interval_ms), MONITOR_MIN_MS) / 1000.0
        self.raw: list[tuple[int, str, list[str]]] = []
        self.phase = "setup"
        self.cpu_ns = 0
        self.cpu_ns_marks = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0
        self._lock = threading.Lock()
        #: the files this kernel has (a fake kernel may lack some); the record names the others
        self.sources = [p for p in SOURCES if fs.exists(p)]
        self.missing = [p for p in SOURCES if p not in self.sources]
        self._readers = []
        #: the series' batch events from the trial's trace, on this timeline's clock
        self.events: list[tuple[int, str, dict]] = []
        self.trace_note: str | None = None

    def _take(self):
        with self._lock:
            t = time.monotonic_ns() - self._t0
            try:
                self.raw.append((t, self.phase, [read() for read in self._readers]))
            except Exception as exc:  # noqa: BLE001 - a monitor that fails must not fail the trial
                self.error = self.error or f"{type(exc).__name__}: {exc}"

    def _run(self):
        c0 = time.thread_time_ns()
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._take()
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        self.cpu_ns = time.thread_time_ns() - c0

    def start(self) -> "Monitor":
        try:
            self._readers = [self.fs.reader(p) for p in self.sources]
        except Exception as exc:  # noqa: BLE001
            self.error, self._readers = f"{type(exc).__name__}: {exc}", []
        self._t0 = time.monotonic_ns()
        self._thread = threading.Thread(target=self._run, name="workbench-monitor", daemon=True)
        self._thread.start()
        return self

    def mark(self, phase: str) -> None:
        """The phase from now on; a sample is taken at once so the edge is in the timeline."""
        self.phase = phase
        if self._thread is not None and not self._stop.is_set():
            c0 = time.thread_time_ns()
            self._take()
            self.cpu_ns_marks += time.thread_time_ns() - c0

    def add_trace(self, events: list[dict], clock: str | None) -> None:
        """Put the trace's batch events (series v3: ``mm_migrate_copy_end``,
        ``mm_migrate_batch_end``) and the calls' ends on the timeline, as rows of phase
        ``trace``. Only the ``mono`` trace clock is this timeline's (CLOCK_MONOTONIC);
        with another the events stay out and the record says why."""
        kept = [e for e in events if e.get("event") in TRACE_ON_TIMELINE]
        if not kept:
            return
        if clock != "mono":
            self.trace_note = f"trace clock {clock or 'local'} is not CLOCK_MONOTONIC: its events are not drawn"
            return
        for e in kept:
            fields = {f"trace_{k}": e[k] for k in ("folios", "copied", "fallbacks", "copy_ns")
                      if isinstance(e.get(k), int)}
            self.events.append((int(e["ts"] * 1e9) - self._t0, "trace",
                                {"trace_event": e["event"].removeprefix("mm_migrate_"), **fields}))

    def stop(self) -> dict:
        """Stop, take a last sample, parse them all; the record's fields: the timeline
        (``monitor``, columns and rows, for the host to store beside the record), its
        summary and its cost (the sampling's CPU time; parsing after the trial apart)."""
        wall = time.monotonic_ns() - self._t0
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.phase = "end"
        c0 = time.thread_time_ns()
        self._take()
        cpu = self.cpu_ns + self.cpu_ns_marks + time.thread_time_ns() - c0
        for reader in self._readers:
            reader.close()
        p0 = time.thread_time_ns()
        rows = sorted(((t, phase, parse(dict(zip(self.sources, texts)))) for t, phase, texts in self.raw),
                      key=lambda row: row[0])
        names = sorted({k for _, _, s in rows for k in s})
        # counters that never moved say nothing over time: the record's deltas have them
        moving = [k for k in names if len({s.get(k) for _, _, s in rows}) > 1 or k.startswith("cpu")]
        traced = sorted({k for _, _, e in self.events for k in e})
        columns = moving + traced
        timeline = sorted(rows + self.events, key=lambda row: row[0])
        out = {**summarize(rows, moving),
               "monitor": {"columns": ["t_ns", "phase", *columns],
                           "rows": [[t, p, *(s.get(k) for k in columns)] for t, p, s in timeline]},
               "monitor_trace_events": len(self.events), "monitor_trace_note": self.trace_note,
               "monitor_interval_ms": self.interval * 1000.0, "monitor_samples": len(rows),
               "monitor_cpu_ns": cpu, "monitor_cost_share": cpu / wall if wall > 0 else None,
               "monitor_error": self.error, "monitor_missing": " ".join(self.missing) or None}
        out["monitor_parse_ns"] = time.thread_time_ns() - p0
        return out


#: USER_HZ: the unit of /proc/stat's times
TICK_NS = 10_000_000


def summarize(rows: list[tuple[int, str, dict]], names: list[str]) -> dict:
    """The record's summary of a timeline: during the migration (``migrate`` to
    ``migrated``), each CPU's busy share and the peak rate of base pages migrated; over
    the trial, the interrupts of each kept line."""
    out: dict = {}
    if len(rows) < 2:
        return out
    first, last = rows[0][2], rows[-1][2]
    for k in names:
        if k.startswith("irq_"):
            out[f"monitor_{k}"] = last.get(k, 0) - first.get(k, 0)
    mig = [(t, s) for t, p, s in rows if p in ("migrate", "migrated")]
    if len(mig) >= 2:
        (t0, s0), (t1, s1) = mig[0], mig[-1]
        if t1 > t0:
            for k in names:
                if k.endswith("_busy_ticks"):
                    cpu = k[:-len("_busy_ticks")]
                    out[f"monitor_{cpu}_busy_share"] = min(1.0, (s1.get(k, 0) - s0.get(k, 0)) * TICK_NS / (t1 - t0))
        peak = 0.0
        for (ta, a), (tb, b) in zip(mig, mig[1:]):
            if tb > ta:
                peak = max(peak, (b.get("vmstat_pgmigrate_success", 0) - a.get("vmstat_pgmigrate_success", 0))
                           * 1e9 / (tb - ta))
        out["monitor_pgmigrate_peak_per_s"] = peak
    return out
