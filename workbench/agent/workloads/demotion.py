"""``demotion``: memory pressure on the top tier demotes pages to a lower memory tier,
and NUMA balancing promotes them back where the kernel can.

A holder process joins a memory cgroup of its own (cgroup v2), is pinned to the source
node's CPUs and fills its region there; with ``demotion_enabled`` on, the agent asks the
cgroup to reclaim the region's size through ``memory.reclaim`` until every page is in a
lower tier (a few writes at most; a write that could not reclaim it all answers EAGAIN,
counted in ``reclaim_eagain``). Anonymous pages with no swap are demoted rather than
reclaimed. Reason MR_DEMOTION (``demotion``). Then, where the kernel has NUMA balancing's
tiering mode, the holder keeps touching its memory with ``numa_balancing`` = 2 until its
pages are back on the source node (or ``wait_seconds``): ``pgpromote_success``,
``pages_promoted``, ``promote_seconds``.

A lower tier needs a node the kernel puts in a slower memory tier: on 6.12 a CPU-less
node is in the DRAM tier unless something says it is slower — ACPI HMAT latency and
bandwidth (the VM target describes its CPU-less nodes so) or a driver such as dax/kmem.

Kernel versions: demotion in reclaim, v5.15 ("mm/migrate: demote pages during
reclaim"), ``/sys/kernel/mm/numa/demotion_enabled`` with it; memory tiers and
``/sys/devices/virtual/memory_tiering/``, v6.1; HMAT-derived tiers, v6.7; cgroup v2
``memory.reclaim``, v5.19; NUMA balancing's tiering mode (promotion), v5.18.
"""

from __future__ import annotations

import os
import time

from ...errors import WorkbenchError
from ...protocol import PAGE
from .. import vmstat
from ..holder import Holder
from ...kernelio.kernelfs import KernelFS, KnobRejected
from ...catalogue import workloads as catalogue
from ...catalogue.workloads import lower_tier_nodes, node_cpus
from . import register
from .base import TIERS, Trial, Workload, memory_tiers
from .numa_balancing import SYSCTL, fast_scans

DEMOTION = "/sys/kernel/mm/numa/demotion_enabled"
CGROUP = "/sys/fs/cgroup"
RECLAIM_TRIES = 8
DEFAULT_WAIT = 120.0
#: NUMA balancing's modes (kernel/sched/sched.h): 1 normal, 2 memory tiering
TIERING = "2"
HOT_THRESHOLD = "hot_threshold_ms"


def on_top(holder: Holder, lower: list[int]) -> int:
    """The holder's pages not yet in a lower tier."""
    counts = holder.ask("nodes")["nodes"]
    return sum(v for k, v in counts.items() if int(k) >= 0 and int(k) not in lower)


def cgroup_missing(fs: KernelFS) -> str | None:
    """Whether a memory cgroup can be made. memory.reclaim (v5.19) shows in a child
    cgroup, not always in the root (a kernel built from allnoconfig has no memory.* file
    there): the trial checks it in the cgroup it makes."""
    if not fs.exists(f"{CGROUP}/cgroup.controllers"):
        return f"no cgroup v2 hierarchy at {CGROUP}"
    if "memory" not in fs.read(f"{CGROUP}/cgroup.controllers").split():
        return f"the memory controller is not available in {CGROUP} (CONFIG_MEMCG)"
    return None


@register
class DemotionWorkload(Workload):
    info = catalogue.get("demotion")

    def missing(self, fs):
        why = super().missing(fs)
        if why:
            return why
        if not fs.exists(DEMOTION):
            return f"no {DEMOTION} (demotion in reclaim, v5.15)"
        tiers = {t: n for t, n in memory_tiers(fs).items() if n}
        if not fs.isdir(TIERS):
            return f"no memory tiers ({TIERS}, v6.1)"
        if len(tiers) < 2:
            where = "; ".join(f"tier {t}: nodes {','.join(map(str, n))}" for t, n in tiers.items())
            return (f"no lower memory tier: every node with memory is in one tier ({where}); needs a node the "
                    "kernel ranks slower, e.g. a CPU-less node with ACPI HMAT figures (the VM: --nodes "
                    "1536M:0,1536M:1,768M)")
        return cgroup_missing(fs)

    def requires_placement(self, spec) -> bool:
        # pages that threads keep touching are hot: reclaim rightly keeps them on top
        return spec.access == "none"

    def run(self, t: Trial) -> None:
        spec, record, fs, guard = t.spec, t.record, t.fs, t.guard
        from ...kernelio import numa
        facts = {"numa": numa.topology(fs)}
        lower = lower_tier_nodes(memory_tiers(fs), spec.src)
        expect = spec.dst if spec.dst is not None else lower[0]
        record["dst"] = expect
        record["lower_tier_nodes"] = ",".join(map(str, lower))
        guard.set(DEMOTION, "true")
        guard.set(SYSCTL, "0")           # no NUMA balancing while pages go down (it would bring them back)
        record["numa_scan_knobs"] = fast_scans(fs, guard)   # before the fork: the holder's scans for promotion
        cg = self._cgroup(fs, guard, spec)
        wait = spec.wait_seconds or DEFAULT_WAIT
        with Holder({"size": spec.total_size, "folio_size": spec.folio_size, "src": spec.src,
                     "seed": spec.trial_seed, "unbind": True, "cgroup": cg,
                     "cpus": node_cpus(facts, spec.src)}) as holder:
            ready = dict(holder.ready)
            record["holder_pid"] = ready.pop("pid", None)
            record.update(ready)
            if spec.access != "none":
                holder.ask("access", mode=spec.access, threads=spec.access_threads)
            t.start_trace()
            with t.observe():
                seconds, how = self._demote(t, holder, cg, lower)
            counts = holder.ask("nodes")["nodes"]
            placed = sum(int(counts.get(str(n), 0)) for n in lower)
            t.placement({**counts, str(expect): placed}, expect)
            record.update({"seconds": seconds, **how, "folios": spec.total_size // spec.folio_size,
                           "gbps": placed * PAGE / seconds / 1e9 if seconds > 0 else float("nan")})
            record.update(self._promote(t, holder, wait))
            if spec.access != "none":
                record.update(holder.ask("access_stop")["summary"])
            else:
                record.update({"access": "none", "access_threads": 0})
            result = holder.ask("verify", stale=spec.inject_stale, corrupt=spec.inject_corruption)
            record["final_page_nodes"] = " ".join(f"{k}:{v}" for k, v in sorted(result["nodes"].items()))
            t.verification(result["verification"])

    @staticmethod
    def _cgroup(fs: KernelFS, guard, spec) -> str:
        control = f"{CGROUP}/cgroup.subtree_control"
        if "memory" not in fs.read(control).split():
            fs.write(control, "+memory")
            guard.defer(lambda: fs.write(control, "-memory"), f"{control} -memory")
        cg = f"{CGROUP}/workbench-{os.getpid()}-r{spec.repeat}"
        if fs.exists(cg):            # left by an agent that was killed
            fs.rmdir(cg)
        fs.mkdir(cg)
        guard.defer(lambda: fs.rmdir(cg), f"rmdir {cg}")
        if not fs.exists(f"{cg}/memory.reclaim"):
            raise WorkbenchError(f"workload 'demotion' cannot run on this kernel: its memory cgroups have no "
                                 "memory.reclaim (cgroup v2 proactive reclaim, v5.19)")
        return cg

    def _demote(self, t: Trial, holder: Holder, cg: str, lower: list[int]) -> tuple[float, dict]:
        """memory.reclaim of what is still on top, until nothing is (or RECLAIM_TRIES
        writes); returns (seconds inside the writes, record fields)."""
        fs = t.fs
        seconds, eagain, writes = 0.0, 0, 0
        for _ in range(RECLAIM_TRIES):
            top = on_top(holder, lower)
            if top == 0:
                break
            writes += 1
            t0 = time.perf_counter()
            try:
                fs.write(f"{cg}/memory.reclaim", str(top * PAGE))
            except KnobRejected:
                eagain += 1           # could not reclaim all of it this time (EAGAIN)
            seconds += time.perf_counter() - t0
        return seconds, {"reclaim_writes": writes, "reclaim_eagain": eagain}

    def _promote(self, t: Trial, holder: Holder, wait: float) -> dict:
        """NUMA balancing's tiering mode brings touched pages back up, where the kernel has it."""
        fs, guard, spec = t.fs, t.guard, t.spec
        try:
            guard.set(SYSCTL, TIERING)
        except KnobRejected as exc:
            return {"promotion": f"unsupported: {exc}"}
        scan_dir = t.record.get("numa_scan_knobs")
        if scan_dir and fs.exists(f"{scan_dir}/{HOT_THRESHOLD}"):
            # a page counts as hot when its hinting fault comes within this time of the scan;
            # an emulated CPU is slow, so be generous
            guard.set(f"{scan_dir}/{HOT_THRESHOLD}", "10000")
        v0 = vmstat.read_migration_counters(fs)
        touching = spec.access == "none"      # promotion needs accesses: read, checked, if nobody writes
        if touching:
            holder.ask("access", mode="read", threads=spec.access_threads, wait=False)
        res = holder.ask("wait", nodes=[spec.src], seconds=wait, interval=0.1, since_access=touching,
                         timeout=wait + 300)
        seen = holder.ask("access_stop")["summary"] if touching else {}
        v1 = vmstat.read_migration_counters(fs)
        d = vmstat.delta(v0, v1)
        guard.set(SYSCTL, "0")
        return {**{k: v for k, v in seen.items() if k.startswith("access_") and k != "access_threads"},
                "touch": "read while promoting" if touching else spec.access,
                "promotion": "numa_balancing=2 (memory tiering)", "promote_seconds": res["seconds"],
                "promote_all": res["all"], "pages_promoted": res["moved"],
                "promote_timeline": " ".join(f"{s}s:{n}" for s, n in res["timeline"]),
                **{f"promote_vmstat_{k}": d.get(k, 0) for k in ("pgpromote_success", "pgpromote_candidate",
                                                                  "numa_pages_migrated", "pgmigrate_success",
                                                                  "numa_hint_faults")}}
