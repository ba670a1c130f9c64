"""Every way pages migrate, as a registry (like targets and migration interfaces).

A workload prepares memory with the pattern, makes the kernel migrate it by one of the
kernel's entry points, and fills the trial's record: the verification of every byte,
the placement of every page, the migration reason, the /proc/vmstat deltas, the series'
counters (per reason where the kernel has them) and the trace summary. ``--workload``
names one:

=======================  ===================  ==============================================
workload                 reason (kernel)      how
=======================  ===================  ==============================================
``move-pages``           syscall              move_pages(2) of one region, one call (default)
``migrate-pages``        syscall              migrate_pages(2) of a separate process, whole
``mbind``                mempolicy_mbind      mbind(MPOL_BIND, MPOL_MF_MOVE) of a region
``numa-balancing``       numa_misplaced       the task runs on the other node's CPUs
``demotion``             demotion             memory.reclaim of a cgroup, to a lower tier
``kswapd-demotion``      demotion             the top node below its low watermark: kswapd
``compaction``           compaction           a fragmented node compacted
``proactive-compaction`` compaction           the same, left to kcompactd (proactiveness 100)
=======================  ===================  ==============================================

:func:`support` says which of them the running kernel can run and, for each it cannot,
what is missing (one line); the probe reports it, the host refuses before anything
runs, and the agent checks again when a trial arrives.
"""

from __future__ import annotations

from ...catalogue import workloads as catalogue
from ...kernelio.kernelfs import KernelFS
from .base import Workload

#: the classes that run them, by name (each takes its properties from the catalogue)
WORKLOADS: dict[str, type[Workload]] = {}
DEFAULT = catalogue.DEFAULT


def register(cls: type[Workload]) -> type[Workload]:
    WORKLOADS[cls.name] = cls
    return cls


def _load():
    # registration order is the order everything lists them in
    from . import move_pages  # noqa: F401
    from . import migrate_pages  # noqa: F401
    from . import mbind  # noqa: F401
    from . import numa_balancing  # noqa: F401
    from . import demotion  # noqa: F401
    from . import kswapd_demotion  # noqa: F401
    from . import compaction  # noqa: F401  (compaction, then proactive-compaction)


def names() -> list[str]:
    _load()
    return list(WORKLOADS)


def get(name: str) -> Workload:
    """The class that runs workload ``name`` (an unknown name: the catalogue's one line)."""
    _load()
    return WORKLOADS[catalogue.get(name).name]()


def support(fs: KernelFS) -> dict[str, dict]:
    """{workload: {'ok', 'missing', 'reason', 'brought_by', 'summary'}} on this kernel."""
    _load()
    out = {}
    for name, cls in WORKLOADS.items():
        w = cls()
        why = w.missing(fs)
        out[name] = {"ok": why is None, "missing": why, "reason": w.reason, "brought_by": w.brought_by,
                     "summary": w.summary}
    return out
