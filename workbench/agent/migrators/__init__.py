"""Kernel control of copy-offload migrators, whatever interface a kernel has.

A registry of interfaces (:mod:`.base`); :func:`detect` returns the one the running
kernel offers, or :class:`~.base.KernelCopyOnly` for a kernel without any (every stock
kernel), so callers never branch on kernel versions themselves.
"""

from __future__ import annotations

from ...kernelio.kernelfs import KernelFS
from .base import INTERFACES, KernelCopyOnly, MigrationControl, register  # noqa: F401


def detect(fs: KernelFS) -> MigrationControl:
    # each registers itself; the detection rules of our series v3 and v2 exclude each other
    from . import series_v3  # noqa: F401
    from . import mm_migration as unified  # noqa: F401
    from . import rfc  # noqa: F401  (the public RFC series' interfaces, in their detection order
    for cls in INTERFACES:
        if cls.detect(fs):
            return cls(fs)
    return KernelCopyOnly(fs)
