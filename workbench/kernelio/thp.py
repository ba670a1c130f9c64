"""Transparent huge page control: which folio sizes a kernel offers, and enabling one.

Kernel versions:
* ``/sys/kernel/mm/transparent_hugepage/enabled`` and ``hpage_pmd_size``: THP, v2.6.38.
* ``hugepages-<N>kB/enabled`` per-size (multi-size THP, "mTHP") directories: v6.8
  (commit 3485b88390b0, "mm: thp: introduce multi-size THP sysfs interface").
  Before v6.8 only the PMD size (2M on x86-64) is offered besides 4K.
"""

from __future__ import annotations

import re

from .kernelfs import KernelFS, KnobGuard
from ..units import format_size

THP_DIR = "/sys/kernel/mm/transparent_hugepage"
BASE_PAGE = 4096
_SIZE_DIR = re.compile(r"hugepages-(\d+)kB")


def has_thp(fs: KernelFS) -> bool:
    return fs.exists(f"{THP_DIR}/enabled")


def mthp_dirs(fs: KernelFS) -> dict[int, str]:
    """{folio size in bytes: its hugepages-<N>kB directory} (v6.8+), else {}."""
    if not fs.isdir(THP_DIR):
        return {}
    out = {}
    for name in fs.listdir(THP_DIR):
        m = _SIZE_DIR.fullmatch(name)
        if m and fs.exists(f"{THP_DIR}/{name}/enabled"):
            out[int(m.group(1)) * 1024] = f"{THP_DIR}/{name}"
    return dict(sorted(out.items()))


def offered_folio_sizes(fs: KernelFS) -> list[int]:
    """Folio sizes a trial can ask for: the base page plus every THP size the kernel has."""
    sizes = {BASE_PAGE}
    dirs = mthp_dirs(fs)
    if dirs:
        sizes.update(dirs)
    elif has_thp(fs) and fs.exists(f"{THP_DIR}/hpage_pmd_size"):
        sizes.add(fs.read_int(f"{THP_DIR}/hpage_pmd_size"))
    return sorted(sizes)


def describe_sizes(sizes: list[int]) -> str:
    return ", ".join(format_size(s) for s in sizes)


def enable_only(fs: KernelFS, guard: KnobGuard, folio_size: int) -> None:
    """Let anonymous faults in MADV_HUGEPAGE regions get exactly ``folio_size`` folios.

    Every other size is set to ``never``; the chosen one to ``madvise``. For 4K all are
    ``never``. The guard restores every knob afterwards.
    """
    dirs = mthp_dirs(fs)
    if has_thp(fs):
        guard.set(f"{THP_DIR}/enabled", "never" if folio_size == BASE_PAGE else "madvise")
    for size, path in dirs.items():
        guard.set(f"{path}/enabled", "madvise" if size == folio_size else "never")
