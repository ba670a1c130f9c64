"""``kswapd-demotion``: the top node runs short of free memory and its kswapd demotes the
coldest pages to a lower memory tier — demotion as memory tiering does it, where
``demotion`` asks a cgroup to reclaim instead (``memory.reclaim``).

The holder fills its region on the source node in a memory cgroup of its own, as in
``demotion``. Then, in rounds, a filler process joins the same cgroup and fills, bound to
the source node, as much memory as takes the node's free pages halfway between its
``min`` and ``low`` watermarks (/proc/zoneinfo): below ``low`` the allocation wakes the
node's kswapd, which demotes from the cgroup's oldest pages — the holder's first — until
the node is back above ``high``; staying above ``min`` keeps the filler out of direct
reclaim. When kswapd has settled the filler leaves, and another round starts while some
of the holder's pages are still on top (at most ``ROUNDS``). ``vm.watermark_scale_factor``
is raised for the trial to widen the gaps between the watermarks (each a tenth of the
node), ``vm.swappiness`` to 200 so reclaim looks at anonymous pages first, and the page
cache is dropped before, so kswapd has file pages to drop instead only where new ones came.
These are restored when the pressure ends, before promotion. Reason MR_DEMOTION (``demotion``); the record's
``vmstat_pgdemote_kswapd`` says how much kswapd demoted (the filler's pages included).

kswapd runs with PF_MEMALLOC like any reclaim, but it is not an allocation waiting for
the memory: a series that keeps PF_MEMALLOC batches on the CPU may still offer kswapd's
(our v3 does; its test holds it).

Kernel versions: as ``demotion``; ``vm.watermark_scale_factor`` v4.6, ``vm.swappiness``
above 100, v5.8.
"""

from __future__ import annotations

import time

from ...protocol import PAGE
from ..holder import Holder
from ...kernelio.kernelfs import KnobGuard
from ...kernelio.numa import node_watermarks, topology
from ...catalogue import workloads as catalogue
from . import register
from .base import Trial
from .demotion import DemotionWorkload, on_top

WATERMARK_SCALE = "/proc/sys/vm/watermark_scale_factor"
SWAPPINESS = "/proc/sys/vm/swappiness"
DROP_CACHES = "/proc/sys/vm/drop_caches"
VMSTAT = "/proc/vmstat"
#: a tenth of the node between min and low, and between low and high (the kernel's bound: 3000)
SCALE = "1000"
ROUNDS = 6
#: how long one round waits for kswapd to settle
ROUND_SECONDS = 60.0
#: kswapd has settled when the node is above ``high`` and its counters have not moved for this long
QUIET_SECONDS = 0.5


def kswapd_work(fs) -> int:
    """What kswapd has done so far: pages it stole, scanned or demoted."""
    total = 0
    for line in fs.read(VMSTAT).splitlines():
        name, _, value = line.partition(" ")
        if name.endswith("_kswapd") and name.startswith(("pgsteal", "pgscan", "pgdemote")):
            total += int(value)
    return total


@register
class KswapdDemotionWorkload(DemotionWorkload):
    info = catalogue.get("kswapd-demotion")

    def missing(self, fs):
        why = super().missing(fs)
        if why:
            return why
        for path in (WATERMARK_SCALE, SWAPPINESS, "/proc/zoneinfo"):
            if not fs.exists(path):
                return f"no {path}"
        return None

    def _demote(self, t: Trial, holder: Holder, cg: str, lower: list[int]) -> tuple[float, dict]:
        """Rounds of pressure until the holder's pages are all in a lower tier; returns
        (seconds of pressure, record fields)."""
        fs, guard = t.fs, t.guard
        # the pressure's settings last as long as the pressure (the promotion after it must
        # not push the node under a raised watermark again); the trial's guard restores them
        # too, should anything fail
        guard.keep(WATERMARK_SCALE)
        guard.keep(SWAPPINESS)
        with KnobGuard(fs) as pressure:
            pressure.set(WATERMARK_SCALE, SCALE)
            pressure.set(SWAPPINESS, "200")
            fs.write(DROP_CACHES, "1")
            return self._rounds(t, holder, cg, lower)

    def _rounds(self, t: Trial, holder: Holder, cg: str, lower: list[int]) -> tuple[float, dict]:
        fs, spec = t.fs, t.spec
        nodes = topology(fs)["nodes"]
        others = [c for n in nodes if n["node"] != spec.src for c in n["cpus"]]
        cpus = others or next(n["cpus"] for n in nodes if n["node"] == spec.src)
        seconds, rounds, filled, settled = 0.0, 0, 0, 0
        for _ in range(ROUNDS):
            if on_top(holder, lower) == 0:
                break
            wm = node_watermarks(fs, spec.src)
            pages = wm["free"] - (wm["min"] + wm["low"]) // 2
            if pages <= 0:
                break
            rounds += 1
            t0 = time.perf_counter()
            with Holder({"size": pages * PAGE, "folio_size": PAGE, "src": spec.src,
                         "seed": spec.trial_seed + rounds, "cgroup": cg, "cpus": cpus}):
                settled += self._settle(fs, spec.src)
            seconds += time.perf_counter() - t0
            filled += pages * PAGE
        return seconds, {"pressure_rounds": rounds, "pressure_bytes": filled, "pressure_settled_rounds": settled,
                         "watermark_scale_factor": int(SCALE)}

    @staticmethod
    def _settle(fs, node: int) -> bool:
        """Wait for kswapd to bring the node back above its high watermark and go quiet
        (True), or for ROUND_SECONDS (False)."""
        deadline = time.monotonic() + ROUND_SECONDS
        work, quiet_since = kswapd_work(fs), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = kswapd_work(fs)
            if now != work:
                work, quiet_since = now, time.monotonic()
                continue
            wm = node_watermarks(fs, node)
            if wm["free"] >= wm["high"] and time.monotonic() - quiet_since >= QUIET_SECONDS:
                return True
        return False
