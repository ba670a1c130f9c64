"""``numa-balancing``: memory on the source node, the task running on the destination
node's CPUs, automatic NUMA balancing on with short scan periods; the trial runs until
every page has moved (or ``wait_seconds``) and says how many moved and how fast.

A holder process (:mod:`workbench.agent.holder`) fills its region on the source node
(bound there, then its policy reset to the default so the pages may move), is pinned to
the destination node's CPUs and keeps touching its memory — reading it, or with
``--access write`` stamping it — while NUMA balancing's scanner unmaps its pages and the
hinting faults migrate them. Reason MR_NUMA_MISPLACED (``numa_misplaced``).

Kernel versions: automatic NUMA balancing, v3.8 (``/proc/sys/kernel/numa_balancing``,
CONFIG_NUMA_BALANCING); its scan knobs moved from /proc/sys/kernel/numa_balancing_scan_*
to debugfs ``sched/numa_balancing/`` in v5.13 ("sched: Move SCHED_DEBUG sysctl to
debugfs"); both places are handled.
"""

from __future__ import annotations

from ..holder import Holder
from ...kernelio.kernelfs import KernelFS, KnobGuard
from ...catalogue import workloads as catalogue
from ...catalogue.workloads import node_cpus
from . import register
from .base import Trial, Workload

SYSCTL = "/proc/sys/kernel/numa_balancing"
SCAN_DIRS = ("/sys/kernel/debug/sched/numa_balancing", "/proc/sys/kernel")
#: short scans so a small region moves in seconds, not minutes: {knob: value}
FAST_SCANS = {"scan_delay_ms": "0", "scan_period_min_ms": "100", "scan_period_max_ms": "500"}
DEFAULT_WAIT = 120.0


def missing_balancing(fs: KernelFS) -> str | None:
    if not fs.exists(SYSCTL):
        return f"NUMA balancing is compiled out (no {SYSCTL}: CONFIG_NUMA_BALANCING is off)"
    return None


def fast_scans(fs: KernelFS, guard: KnobGuard) -> str | None:
    """Short scan delay and periods, through the guard; returns where the knobs are
    (None when this kernel shows neither place: the defaults then apply)."""
    for d in SCAN_DIRS:
        prefix = "" if d.startswith("/sys") else "numa_balancing_"
        if fs.exists(f"{d}/{prefix}scan_delay_ms"):
            for knob, value in FAST_SCANS.items():
                guard.set(f"{d}/{prefix}{knob}", value)
            return d
    return None


@register
class NumaBalancingWorkload(Workload):
    info = catalogue.get("numa-balancing")

    def missing(self, fs):
        return super().missing(fs) or missing_balancing(fs)

    def run(self, t: Trial) -> None:
        spec, record, fs = t.spec, t.record, t.fs
        from ...kernelio import numa
        topo = numa.topology(fs)
        facts = {"numa": topo}
        dst_cpus = node_cpus(facts, spec.dst)
        src_cpus = node_cpus(facts, spec.src)
        t.guard.set(SYSCTL, "1")
        record["numa_scan_knobs"] = fast_scans(fs, t.guard)   # before the fork: the child's first scan
        wait = spec.wait_seconds or DEFAULT_WAIT
        touch = spec.access if spec.access != "none" else "read"
        with Holder({"size": spec.total_size, "folio_size": spec.folio_size, "src": spec.src,
                     "seed": spec.trial_seed, "unbind": True, "cpus": src_cpus or None}) as holder:
            ready = dict(holder.ready)
            record["holder_pid"] = ready.pop("pid", None)
            record.update(ready)
            t.start_trace()
            with t.observe():
                holder.ask("cpus", cpus=dst_cpus)
                holder.ask("access", mode=touch, threads=spec.access_threads, wait=False)
                res = holder.ask("wait", nodes=[spec.dst], seconds=wait, interval=0.1, since_access=True,
                                 timeout=wait + 300)
                summary = holder.ask("access_stop")["summary"]
            record.update(summary)
            record.update({"access": spec.access, "touch": touch})
            result = holder.ask("verify", stale=spec.inject_stale, corrupt=spec.inject_corruption)
            t.placement(result["nodes"], spec.dst)
            t.verification(result["verification"])
            moved = record["pages_placed"]
            seconds = res["seconds"]
            record.update({"seconds": seconds, "balance_all_moved": res["all"], "wait_seconds": wait,
                           "balance_timeline": " ".join(f"{s}s:{n}" for s, n in res["timeline"]),
                           "folios": spec.total_size // spec.folio_size,
                           "gbps": moved * 4096 / seconds / 1e9 if seconds > 0 else float("nan")})
