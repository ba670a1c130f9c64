"""The kernel's migration trace events, per trial, through tracefs (via :mod:`.kernelfs`).

``migrate:mm_migrate_pages_start`` (mode, reason) and ``migrate:mm_migrate_pages``
(pages succeeded and failed, THPs succeeded, failed and split, large folios split, mode,
reason) bracket every ``migrate_pages()`` call in the kernel, whoever makes it: our
system call, kcompactd, NUMA balancing, reclaim. A :class:`TraceSession` records them in
a tracing instance of its own (``instances/workbench-<pid>``, since v3.10; other users of
tracefs are not disturbed) and :func:`summarize` turns the buffer into flat record
fields: calls, pages succeeded/failed and time from start to end event, per reason.

Where the kernel has them (our series v3 on 7.3, ``kernel/v3`` patch 0003),
``migrate:mm_migrate_copy_start`` and ``migrate:mm_migrate_copy_end`` bracket each batch
a migrator copies ahead of its moves (migrator, reason, folios, bytes; at the end the
folios copied, fallbacks, return code and copy time), and ``migrate:mm_migrate_batch_end``
ends every batch of ``migrate_pages()``, batched copy or not, once its folios are moved.
They are recorded too, per migrator, with each call's **first-folio latency**: from the
call's start event to the end of its first batch, on the trace clock, so it holds under
icount and needs no poller.

Kernel versions: ``mm_migrate_pages`` exists since v3.8 (Mel Gorman's "mm: migrate: Add a
tracepoint for migrate_pages"), ``mm_migrate_pages_start`` since v5.12 (absent from 5.11
builds, present in 5.13); the THP and split counts were added to the end event later —
the parser takes whichever fields the running kernel prints. tracefs is at
``/sys/kernel/tracing`` since v4.1, else under debugfs.

**Its own cost.** Enabled tracepoints cost time inside the very calls a trial times.
:func:`event_cost_ns` measures it on the target: the same one-page ``move_pages()`` back
and forth between two nodes, timed call by call with the events on and off, in
alternating blocks; the difference of the blocks' fastest calls over two events per call. Every
record states that estimate, the events the trial produced and their share of the
trial's time (``trace_overhead_share``).
"""

from __future__ import annotations

import os
import re
import statistics
import time

import numpy as np

from ..errors import WorkbenchError
from ..kernelio.kernelfs import KernelFS, KnobGuard, parse_choices

TRACEFS_ROOTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
EVENTS = ("migrate/mm_migrate_pages_start", "migrate/mm_migrate_pages")
#: enabled where present: series v3 (kernel/v3 0003), not in any released kernel
COPY_EVENTS = ("migrate/mm_migrate_copy_start", "migrate/mm_migrate_copy_end", "migrate/mm_migrate_batch_end")
#: the trace prints MR_SYSCALL as syscall_or_cpuset; everything else by the name the
#: series' ``reasons`` file uses too
TRACE_REASON = {"syscall_or_cpuset": "syscall"}
#: the numeric fields of mm_migrate_pages, in record names
FIELDS = {"nr_succeeded": "succeeded", "nr_failed": "failed", "nr_thp_succeeded": "thp_succeeded",
          "nr_thp_failed": "thp_failed", "nr_thp_split": "thp_split", "nr_split": "split"}
BUFFER_KB = 4096
#: trace clocks that are one clock for every CPU, best first (mono: CLOCK_MONOTONIC, v3.19)
CLOCKS = ("mono", "global")

_LINE = re.compile(r"^\s*(?P<task>.*?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\].*?\s(?P<ts>\d+\.\d+):\s+"
                   r"(?P<event>mm_migrate_(?:pages|pages_start|copy_start|copy_end|batch_end)):\s+(?P<body>.*)$")


def tracefs_root(fs: KernelFS) -> str | None:
    for root in TRACEFS_ROOTS:
        if fs.exists(f"{root}/events/migrate/mm_migrate_pages/enable"):
            return root
    return None


def missing(fs: KernelFS) -> str | None:
    """Why this kernel cannot trace migrations, or None."""
    root = tracefs_root(fs)
    if root is None:
        return ("no migrate:mm_migrate_pages trace event in tracefs (/sys/kernel/tracing not mounted, or a kernel "
                "without CONFIG_TRACEPOINTS)")
    if not fs.exists(f"{root}/instances"):
        return f"{root} has no instances directory"
    return None


class TraceSession:
    """The migration events in a tracing instance of their own, for the length of a trial.

    Made through the guard, so the instance is removed when the trial's knobs are
    restored, whatever happens."""

    def __init__(self, fs: KernelFS, guard: KnobGuard, name: str | None = None):
        root = tracefs_root(fs)
        why = missing(fs)
        if why:
            raise WorkbenchError(f"cannot trace migrations: {why}")
        self.fs = fs
        self.dir = f"{root}/instances/{name or f'workbench-{os.getpid()}'}"
        if fs.exists(self.dir):  # left by an agent that was killed: take it over
            fs.rmdir(self.dir)
        fs.mkdir(self.dir)
        guard.defer(lambda: fs.rmdir(self.dir), f"rmdir {self.dir}")
        fs.write(f"{self.dir}/tracing_on", "0")
        fs.write(f"{self.dir}/buffer_size_kb", str(BUFFER_KB))
        # the default clock, 'local', is per CPU and not comparable across CPUs: a call that
        # starts on one and ends on another would get a wrong duration (badly so under TCG)
        self.clock = None
        if fs.exists(f"{self.dir}/trace_clock"):
            choices, _ = parse_choices(fs.read(f"{self.dir}/trace_clock"))
            self.clock = next((c for c in CLOCKS if c in choices), None)
            if self.clock:
                fs.write(f"{self.dir}/trace_clock", self.clock)
        for event in EVENTS:
            fs.write(f"{self.dir}/events/{event}/enable", "1")
        self.copy_events = all(fs.exists(f"{self.dir}/events/{e}/enable") for e in COPY_EVENTS)
        if self.copy_events:
            for event in COPY_EVENTS:
                fs.write(f"{self.dir}/events/{event}/enable", "1")

    def start(self):
        self.fs.write(f"{self.dir}/trace", "")  # empties the buffer
        self.fs.write(f"{self.dir}/tracing_on", "1")

    def stop(self):
        self.fs.write(f"{self.dir}/tracing_on", "0")

    def set_enabled(self, on: bool):
        self.fs.write(f"{self.dir}/tracing_on", "1" if on else "0")

    def read(self) -> str:
        return self.fs.read(f"{self.dir}/trace")

    def lost(self) -> int:
        """Events the ring buffer dropped (its ``overrun`` per CPU)."""
        total = 0
        per_cpu = f"{self.dir}/per_cpu"
        if not self.fs.isdir(per_cpu):
            return 0
        for cpu in self.fs.listdir(per_cpu):
            stats = f"{per_cpu}/{cpu}/stats"
            if self.fs.exists(stats):
                for line in self.fs.read(stats).splitlines():
                    if line.startswith("overrun:"):
                        total += int(line.split()[1])
        return total


def parse(text: str) -> list[dict]:
    """The migration events of a ``trace`` buffer: [{'pid', 'ts', 'event', fields...}]."""
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        ev = {"pid": int(m["pid"]), "task": m["task"].strip(), "ts": float(m["ts"]), "event": m["event"]}
        for key, value in (kv.split("=", 1) for kv in m["body"].split() if "=" in kv):
            ev[key] = int(value) if value.lstrip("-").isdigit() else value
        ev["reason"] = TRACE_REASON.get(ev.get("reason"), ev.get("reason"))
        out.append(ev)
    return out


def summarize(events: list[dict], lost: int = 0) -> dict:
    """Flat record fields: ``trace_events``, ``trace_calls``, ``trace_unpaired``,
    ``trace_lost``, ``trace_reasons`` (comma separated), and per reason R
    ``trace_R_calls``, ``trace_R_<field>`` (succeeded, failed, thp_succeeded, ...),
    ``trace_R_ns`` (sum of start→end times) and ``trace_R_max_ns``.

    A start is paired with the next end event of the same task (migrate_pages() calls of
    one task do not nest, except when allocating a target folio compacts memory: then the
    inner pair is matched first).

    With batch copy events (series v3), per migrator M: ``trace_copy_M_batches``,
    ``_folios``, ``_bytes``, ``_copied``, ``_fallbacks``, ``_errors`` (batches ending
    with an error or declined) and ``_ns`` (the kernel's copy time); with batch end events,
    over the calls that ended a batch, ``trace_batches`` (all batches),
    ``trace_first_batch_calls``, ``trace_first_batch_ns`` (median of call start → end of
    its first batch: the first-folio latency) and ``trace_first_batch_max_ns``."""
    open_starts: dict[int, list[dict]] = {}
    per: dict[str, dict] = {}
    copies: dict[str, dict] = {}
    first_batch: list[int] = []
    timed_calls: set[int] = set()     # the starts whose first batch is timed
    batches = 0
    unpaired = 0
    for ev in sorted(events, key=lambda e: e["ts"]):
        if ev["event"] == "mm_migrate_pages_start":
            open_starts.setdefault(ev["pid"], []).append(ev)
            continue
        if ev["event"] == "mm_migrate_copy_start":
            continue
        if ev["event"] == "mm_migrate_batch_end":
            batches += 1
            stack = open_starts.get(ev["pid"])
            if stack and id(stack[-1]) not in timed_calls:
                timed_calls.add(id(stack[-1]))
                first_batch.append(int(round((ev["ts"] - stack[-1]["ts"]) * 1e9)))
            continue
        if ev["event"] == "mm_migrate_copy_end":
            c = copies.setdefault(str(ev.get("migrator")), dict.fromkeys(
                ("batches", "folios", "bytes", "copied", "fallbacks", "errors", "ns"), 0))
            c["batches"] += 1
            for key, name in (("folios", "folios"), ("bytes", "bytes"), ("copied", "copied"),
                              ("fallbacks", "fallbacks"), ("copy_ns", "ns")):
                if isinstance(ev.get(key), int):
                    c[name] += ev[key]
            c["errors"] += ev.get("rc", 0) != 0
            continue
        reason = ev.get("reason") or "unknown"
        r = per.setdefault(reason, {"calls": 0, "ns": 0, "max_ns": 0, **{v: 0 for v in FIELDS.values()}})
        r["calls"] += 1
        for key, name in FIELDS.items():
            if isinstance(ev.get(key), int):
                r[name] += ev[key]
        stack = open_starts.get(ev["pid"])
        if stack and stack[-1].get("reason") == ev.get("reason"):
            start = stack.pop()
            ns = int(round((ev["ts"] - start["ts"]) * 1e9))
            r["ns"] += ns
            r["max_ns"] = max(r["max_ns"], ns)
        else:
            unpaired += 1
    unpaired += sum(len(s) for s in open_starts.values())
    out = {"trace_events": len(events), "trace_calls": sum(r["calls"] for r in per.values()),
           "trace_unpaired": unpaired, "trace_lost": lost, "trace_reasons": ",".join(sorted(per)) or None}
    for reason, r in sorted(per.items()):
        out.update({f"trace_{reason}_{k}": v for k, v in r.items()})
    for migrator, c in sorted(copies.items()):
        out.update({f"trace_copy_{migrator}_{k}": v for k, v in c.items()})
    if batches:
        out["trace_batches"] = batches
    if first_batch:
        out.update({"trace_first_batch_calls": len(first_batch),
                    "trace_first_batch_ns": int(statistics.median(first_batch)),
                    "trace_first_batch_max_ns": max(first_batch)})
    return out


# -- the cost of tracing ---------------------------------------------------------------

_COST: dict[tuple, dict] = {}


def event_cost_ns(fs: KernelFS, session: TraceSession, nodes: tuple[int, int], calls: int = 40,
                  blocks: int = 8) -> dict:
    """What one enabled migration event costs the call that emits it, measured here.

    One 4K page moves back and forth between ``nodes`` with ``move_pages()`` (one
    ``migrate_pages()`` call, so one start and one end event, each time), each call
    timed, in ``blocks`` alternating blocks of ``calls`` with the session's events on and
    off. A block's fastest call is its cost with the least interference from everything
    else the machine does (under TCG on a busy host, the median of a block moves by
    milliseconds); the estimate is the median over pairs of blocks of (fastest on −
    fastest off) / 2 events, ``trace_event_ns_spread`` the spread of those pair
    differences (per event), so a reader can tell an estimate from noise. Measured once
    per agent and pair of nodes."""
    key = tuple(nodes)
    if key in _COST:
        return _COST[key]
    from .syscalls import MADV_NOHUGEPAGE, AnonRegion, MovePages
    diffs = []
    with AnonRegion(4096, 4096) as region:
        region.madvise(MADV_NOHUGEPAGE)
        region.words()[:] = 1
        moves = [MovePages(np.array([region.addr], dtype=np.uint64), n) for n in nodes]
        moves[0]()
        for b in range(blocks):
            fastest = {}
            for on in ((True, False) if b % 2 == 0 else (False, True)):
                session.set_enabled(on)
                best = None
                for i in range(calls):
                    move = moves[(i + 1) % 2]
                    t0 = time.perf_counter_ns()
                    move()
                    dt = time.perf_counter_ns() - t0
                    best = dt if best is None else min(best, dt)
                fastest[on] = best
            diffs.append((fastest[True] - fastest[False]) / 2)
    session.set_enabled(False)
    _COST[key] = {"trace_event_ns": round(statistics.median(diffs), 1),
                  "trace_event_ns_spread": round(statistics.pstdev(diffs), 1) if len(diffs) > 1 else None,
                  "trace_calibration_calls": 2 * calls * blocks}
    return _COST[key]
