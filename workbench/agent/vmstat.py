"""/proc/vmstat counters that say what migration did.

``pgmigrate_success``/``pgmigrate_fail`` count base pages (v3.8, commit 5647bc293ab1);
``thp_migration_success``/``_fail``/``_split`` count THPs (v5.9, commit 1a5bae25e3cf);
``compact_*`` what compaction scanned, isolated and migrated; ``numa_*`` NUMA balancing's
PTE updates, hinting faults and ``numa_pages_migrated`` (with CONFIG_NUMA_BALANCING);
``pgdemote_kswapd``/``_direct`` (and ``_khugepaged``, later) pages reclaim demoted to a
lower memory tier (demotion came in v5.15, "mm/migrate: demote pages during reclaim";
6.12 has no ``pgdemote_proactive``, so ``memory.reclaim`` counts as ``_direct``);
``pgpromote_success`` pages NUMA balancing promoted back in its tiering mode (v5.18,
"NUMA balancing: optimize page placement for memory tiering system"), and
``pgpromote_candidate`` the pages it considered (added later).
"""

from __future__ import annotations

from ..kernelio.kernelfs import KernelFS

VMSTAT = "/proc/vmstat"
PREFIXES = ("pgmigrate_", "thp_migration_", "compact_", "numa_", "pgdemote_", "pgpromote_")


def read_migration_counters(fs: KernelFS) -> dict[str, int]:
    out = {}
    for line in fs.read(VMSTAT).splitlines():
        name, _, value = line.partition(" ")
        if name.startswith(PREFIXES):
            out[name] = int(value)
    return out


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after}
