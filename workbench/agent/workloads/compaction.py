"""``compaction``: a node fragmented on purpose, then compacted; what compaction moved.

Two regions on the source node get their folios faulted in alternately (A0 B0 B0' B0''
A1 B1 ...), so consecutive physical pages belong to A and B in turn; A is filled with
the pattern and B (three folios per folio of A) unmapped, leaving free holes beside
every folio of A. The holes must reach the buddy allocator, where compaction's free
scanner looks: since v6.7 a CPU's free-page list (pcp) tunes its own size up to an
eighth of the zone under heavy freeing, so B's pages would mostly wait there, unseen, and
compaction would find nowhere to move A (whether it did depended on timing). The trial
pins the lists small with ``vm.percpu_pagelist_high_fraction`` (v5.14; restored after
it) before B is freed. Writing 1 to
``/sys/devices/system/node/node<src>/compact`` (what ``/proc/sys/vm/compact_memory``
does for every node) compacts that node synchronously. The record says what the kernel
scanned, isolated and migrated (``vmstat_compact_*``, ``pgmigrate_success``, the trace's
``compaction`` calls), how many pages of A compaction moved (their PFNs changed,
``pages_moved``), and verifies every byte of A and that every page is still on the
source node — compaction moves pages within a node. Reason MR_COMPACTION
(``compaction``). ``proactive-compaction`` leaves the same node to kcompactd with
``compaction_proactiveness`` at 100 (v5.9), the background compaction the series'
reason policy is also about.

Kernel versions: memory compaction and the per-node ``compact`` file, v2.6.35
(CONFIG_COMPACTION).
"""

from __future__ import annotations

import numpy as np

from ...protocol import PAGE
from .. import access, pagemap, pattern
from ...kernelio.kernelfs import KernelFS
from ..syscalls import page_nodes
from ...catalogue import workloads as catalogue
from . import register
from .base import Trial, Workload, counts_of

COMPACT_ALL = "/proc/sys/vm/compact_memory"
#: v5.14; a large fraction pins every CPU's free-page list at its floor (4 batches, about
#: 1 MiB), with the size auto-tuning of v6.7 off, so freed pages reach the buddy lists
PCP_HIGH_FRACTION = "/proc/sys/vm/percpu_pagelist_high_fraction"
PCP_SMALL = "1000000"
NODE_COMPACT = "/sys/devices/system/node/node{}/compact"


@register
class CompactionWorkload(Workload):
    info = catalogue.get("compaction")
    #: folios freed beside each folio of the region: enough that the node is fragmented
    #: past where a small region alone would leave it (see frag_score_before)
    holes = 3

    def missing(self, fs: KernelFS):
        if not fs.exists(COMPACT_ALL):
            return f"compaction is compiled out (no {COMPACT_ALL}: CONFIG_COMPACTION is off)"
        return None

    def run(self, t: Trial) -> None:
        spec, record, fs = t.spec, t.record, t.fs
        folio = spec.folio_size
        nfolios = spec.total_size // folio
        holes = self.holes
        if fs.exists(PCP_HIGH_FRACTION):
            t.guard.set(PCP_HIGH_FRACTION, PCP_SMALL)
        record["pcp_high_fraction"] = int(PCP_SMALL) if fs.exists(PCP_HIGH_FRACTION) else None
        with t.map_region() as region, t.map_region(spec.total_size * holes) as hole:
            a, b = region.words(), hole.words()
            step = folio // 8
            for i in range(nfolios):        # A0 B0 A1 B1 ...: physically interleaved
                a[i * step] = 1
                for j in range(holes):
                    b[(i * holes + j) * step] = 1
            del b
            pattern.fill(a, spec.trial_seed)
            hole.close()                    # a free hole beside every folio of A
            t.check_folios(region.addr)
            record.update(fragmentation(fs, spec.src, "before"))
            pfns0 = pagemap.read_pfns(region.addr, t.npages)
            threads = access.Access(a, spec.trial_seed, spec.access, spec.access_threads)
            t.start_trace()
            threads.start()
            try:
                with t.observe():
                    seconds, trigger = self.compact(t)
            finally:
                record.update(threads.stop())
            pfns1 = pagemap.read_pfns(region.addr, t.npages)
            moved = int(((pfns0 != pfns1) & (pfns0 != 0)).sum()) if pfns0.any() else None
            record.update(zone_position(fs, spec.src, pfns0))
            record.update(fragmentation(fs, spec.src, "after"))
            t.placement(counts_of(page_nodes(region.addr, t.npages)), spec.src, moved=moved)
            record.update({"seconds": seconds, "compact_trigger": trigger, "dst": spec.src,
                           "folios": nfolios,
                           "gbps": (moved or 0) * PAGE / seconds / 1e9 if seconds > 0 else float("nan")})
            t.verify_words(a, threads)
            del a


    def compact(self, t: Trial) -> tuple[float, str]:
        """Compact the source node now; (seconds, what was written where)."""
        trigger = NODE_COMPACT.format(t.spec.src)
        if not t.fs.exists(trigger):
            trigger = COMPACT_ALL
        _, seconds = t.timed(lambda: t.fs.write(trigger, "1"))
        return seconds, trigger


PROACTIVENESS = "/proc/sys/vm/compaction_proactiveness"
DAEMON_SCANNED = "compact_daemon_migrate_scanned"


@register
class ProactiveCompactionWorkload(CompactionWorkload):
    """``proactive-compaction``: the same fragmented node, but nobody asks: with
    ``compaction_proactiveness`` at 100, kcompactd finds the node fragmented on its own
    check (every 500 ms) and compacts it in the background. The trial waits until
    kcompactd has started and then scanned nothing new for a second (or
    ``wait_seconds``, default 30); ``seconds`` is that time.

    kcompactd acts only on a node whose fragmentation score (the share of its free memory
    in blocks smaller than a THP) is above ``min(max(100 - proactiveness, 5) + 10, 100)``
    = 15: three holes are freed beside every folio, as for ``compaction``, and the record
    has the score before and after (``frag_score_*``), so a node too big for the region
    to fragment enough shows as such (``proactive_started`` false)."""

    info = catalogue.get("proactive-compaction")

    def missing(self, fs: KernelFS):
        why = super().missing(fs)
        if why:
            return why
        if not fs.exists(PROACTIVENESS):
            return f"no {PROACTIVENESS} (proactive compaction, v5.9)"
        return None

    def compact(self, t: Trial) -> tuple[float, str]:
        from .. import vmstat
        import time
        wait = t.spec.wait_seconds or 30.0
        t0 = time.monotonic()
        t.guard.set(PROACTIVENESS, "100")
        last, started, quiet_since = None, None, None
        while time.monotonic() - t0 < wait:
            now = vmstat.read_migration_counters(t.fs).get(DAEMON_SCANNED, 0)
            if last is not None and now != last:
                started = started or time.monotonic()
                quiet_since = None
            elif started is not None:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= 1.0:
                    break
            last = now
            time.sleep(0.1)
        t.record["proactive_started"] = started is not None
        end = quiet_since if quiet_since is not None else time.monotonic()
        return end - t0, f"{PROACTIVENESS}=100 (kcompactd)"


def zone_position(fs: KernelFS, node: int, pfns: np.ndarray) -> dict:
    """Where the region sat in its zone before compaction, 0 (start) .. 1 (end): the
    migrate scanner walks up from the start, the free scanner down from the end, and
    only pages below where they meet move — so this says why few or many moved."""
    pfns = pfns[pfns != 0]
    if not len(pfns) or not fs.exists("/proc/zoneinfo"):
        return {"region_zone": None, "region_zone_position": None}
    zones, current = [], None
    for line in fs.read("/proc/zoneinfo").splitlines():
        if line.startswith("Node "):
            n, _, zone = line.replace(",", "").split()[1:4]
            current = {"node": int(n), "zone": zone}
        elif current is not None and "spanned" in line.split():
            current["spanned"] = int(line.split()[-1])
        elif current is not None and line.strip().startswith("start_pfn:"):
            current["start"] = int(line.split()[-1])
            zones.append(current)
            current = None
    median = int(np.median(pfns))
    for z in zones:
        if z["node"] == node and z.get("spanned") and z["start"] <= median < z["start"] + z["spanned"]:
            return {"region_zone": z["zone"], "region_zone_position": round((median - z["start"]) / z["spanned"], 3)}
    return {"region_zone": None, "region_zone_position": None}


def fragmentation(fs: KernelFS, node: int, when: str, order: int = 9) -> dict:
    """The node's fragmentation score as compaction computes it (mm/compaction.c,
    fragmentation_score_node(): per zone, the share of free pages not in blocks of at
    least ``order``, weighted by the zone's size), from /proc/buddyinfo."""
    if not fs.exists("/proc/buddyinfo"):
        return {f"frag_score_{when}": None}
    zones = []
    for line in fs.read("/proc/buddyinfo").splitlines():
        parts = line.replace(",", " ").split()
        if len(parts) < 5 or parts[0] != "Node" or int(parts[1]) != node:
            continue
        counts = [int(c) for c in parts[4:]]
        free = sum(c << o for o, c in enumerate(counts))
        big = sum(c << o for o, c in enumerate(counts) if o >= order)
        zones.append((free, big))
    total_free = sum(f for f, _ in zones)
    if not total_free:
        return {f"frag_score_{when}": None}
    # buddyinfo has no zone sizes: weight by free pages (the zones of one VM node are one)
    score = sum((f - b) * 100 / f * (f / total_free) for f, b in zones if f)
    return {f"frag_score_{when}": round(score, 1)}
