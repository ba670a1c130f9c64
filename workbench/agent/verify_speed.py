"""Verification speed on the target: every-byte verification against a numba streaming
read of the same buffer (a ratio, for ``workbench bench verify``; never a test)."""

from __future__ import annotations

import time

import numpy as np

from . import pattern
from .syscalls import MADV_NOHUGEPAGE, AnonRegion


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def verify_speed(size: int = 256 << 20, repeats: int = 5, seed: int = 3) -> dict:
    """Verification GB/s over a numba streaming read (sum) of the same buffer; goal >= 0.9."""
    k = pattern.numba_kernels()
    with AnonRegion(size, 4096) as region:
        region.madvise(MADV_NOHUGEPAGE)
        words = region.words()
        t_fill = _best(lambda: pattern.fill(words, seed), 1)
        t_sum = _best(lambda: k.stream_sum(words), repeats)
        t_verify = _best(lambda: k.verify(words, np.uint64(seed), np.uint64(0)), repeats)
        del words
    return {"bytes": size, "fill_gbps": size / t_fill / 1e9, "sum_gbps": size / t_sum / 1e9,
            "verify_gbps": size / t_verify / 1e9, "ratio": t_sum / t_verify, "goal": 0.9}
