"""/proc/vmstat counters that say what migration did.

``pgmigrate_success``/``pgmigrate_fail`` count base pages (v3.8, commit 5647bc293ab1);
``thp_migration_success``/``_fail``/``_split`` count THPs (v5.9, commit 1a5bae25e3cf).
"""

from __future__ import annotations

from .kernelfs import KernelFS

VMSTAT = "/proc/vmstat"
PREFIXES = ("pgmigrate_", "thp_migration_", "compact_migrate")


def read_migration_counters(fs: KernelFS) -> dict[str, int]:
    out = {}
    for line in fs.read(VMSTAT).splitlines():
        name, _, value = line.partition(" ")
        if name.startswith(PREFIXES):
            out[name] = int(value)
    return out


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after}
