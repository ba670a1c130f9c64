"""``compaction``: a node fragmented on purpose, then compacted; what compaction moved.

Two regions on the source node get their folios faulted in alternately (A0 B0 A1 B1
...), so consecutive physical pages belong to A and B in turn; A is filled with the
pattern and B unmapped, leaving a free hole beside every folio of A. Writing 1 to
``/sys/devices/system/node/node<src>/compact`` (what ``/proc/sys/vm/compact_memory``
does for every node) compacts that node synchronously. The record says what the kernel
scanned, isolated and migrated (``vmstat_compact_*``, ``pgmigrate_success``, the trace's
``compaction`` calls), how many pages of A compaction moved (their PFNs changed,
``pages_moved``), and verifies every byte of A and that every page is still on the
source node — compaction moves pages within a node. Reason MR_COMPACTION
(``compaction``). Proactive compaction (``compaction_proactiveness``, v5.9) compacts in
the background on a schedule of its own; this workload triggers it directly instead.

Kernel versions: memory compaction and the per-node ``compact`` file, v2.6.35
(CONFIG_COMPACTION).
"""

from __future__ import annotations

import numpy as np

from ...protocol import PAGE
from .. import access, pagemap, pattern
from ..kernelfs import KernelFS
from ..syscalls import page_nodes
from . import register
from .base import Trial, Workload, counts_of

COMPACT_ALL = "/proc/sys/vm/compact_memory"
NODE_COMPACT = "/sys/devices/system/node/node{}/compact"


@register
class CompactionWorkload(Workload):
    name = "compaction"
    title = "compaction"
    reason = "compaction"
    kernel_reason = "MR_COMPACTION"
    brought_by = "memory compaction, v2.6.35 (CONFIG_COMPACTION)"
    summary = "a fragmented node compacted (node<N>/compact); pages stay on their node"
    needs_dst = False
    needs_two_nodes = False

    def missing(self, fs: KernelFS):
        if not fs.exists(COMPACT_ALL):
            return f"compaction is compiled out (no {COMPACT_ALL}: CONFIG_COMPACTION is off)"
        return None

    def run(self, t: Trial) -> None:
        spec, record, fs = t.spec, t.record, t.fs
        folio = spec.folio_size
        nfolios = spec.total_size // folio
        trigger = NODE_COMPACT.format(spec.src)
        if not fs.exists(trigger):
            trigger = COMPACT_ALL
        with t.map_region() as region, t.map_region() as hole:
            a, b = region.words(), hole.words()
            step = folio // 8
            for i in range(nfolios):        # A0 B0 A1 B1 ...: physically interleaved
                a[i * step] = 1
                b[i * step] = 1
            del b
            pattern.fill(a, spec.trial_seed)
            hole.close()                    # a free hole beside every folio of A
            t.check_folios(region.addr)
            pfns0 = pagemap.read_pfns(region.addr, t.npages)
            threads = access.Access(a, spec.trial_seed, spec.access, spec.access_threads)
            t.start_trace()
            threads.start()
            try:
                with t.observe():
                    _, seconds = t.timed(lambda: fs.write(trigger, "1"))
            finally:
                record.update(threads.stop())
            pfns1 = pagemap.read_pfns(region.addr, t.npages)
            moved = int(((pfns0 != pfns1) & (pfns0 != 0)).sum()) if pfns0.any() else None
            record.update(zone_position(fs, spec.src, pfns0))
            t.placement(counts_of(page_nodes(region.addr, t.npages)), spec.src, moved=moved)
            record.update({"seconds": seconds, "compact_trigger": trigger, "dst": spec.src,
                           "folios": nfolios,
                           "gbps": (moved or 0) * PAGE / seconds / 1e9 if seconds > 0 else float("nan")})
            if spec.inject_corruption:
                page, offset = int(spec.inject_corruption["page"]), int(spec.inject_corruption["offset"])
                a.view(np.uint8)[page * PAGE + offset] ^= 0xFF
            t.verification(access.verify(a, spec.trial_seed, threads.expected_generations(),
                                         stale=spec.inject_stale))
            del a


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
