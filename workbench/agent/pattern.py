"""Fill memory with a (seed, page)-derived pattern and verify every byte of it.

The pattern is a per-page key (splitmix64 of seed and page index) plus a per-word
progression, so a flipped byte, a page swapped with another, a page shifted within
itself and a page left zero are all caught and located. The fast path is numba
(:mod:`workbench.agent._jit`, loaded on first use); :func:`reference_fill` and
:func:`reference_verify` are the numpy definitions the numba kernels are tested against.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

PAGE = 4096
WORDS = PAGE // 8
_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def numba_kernels():
    """The numba module, imported (and compiled from cache) on first call."""
    from . import _jit
    return _jit


def _page_key_np(seed: int, pages: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = (np.uint64(seed) * np.uint64(_GOLDEN) + pages.astype(np.uint64) * np.uint64(0xD1B54A32D192ED03)
             + np.uint64(1))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def reference_pattern(npages: int, seed: int, first_page: int = 0) -> np.ndarray:
    keys = _page_key_np(seed, np.arange(first_page, first_page + npages, dtype=np.uint64))
    steps = np.arange(1, WORDS + 1, dtype=np.uint64) * np.uint64(_GOLDEN)
    with np.errstate(over="ignore"):
        return (keys[:, None] + steps[None, :]).reshape(-1)


def reference_fill(words: np.ndarray, seed: int, first_page: int = 0) -> None:
    words[:] = reference_pattern(words.size // WORDS, seed, first_page)


@dataclass
class Verification:
    bad_pages: int
    first_bad_page: int | None = None
    first_bad_offset: int | None = None   # byte offset within that page
    expected: str | None = None           # the 8-byte word at that offset, hex
    actual: str | None = None

    @property
    def ok(self) -> bool:
        return self.bad_pages == 0

    def as_record(self) -> dict:
        return {f"verify_{k}": v for k, v in asdict(self).items()}


def _located(nbad, page, word, expected, actual) -> Verification:
    if nbad == 0:
        return Verification(0)
    exp, act = int(expected), int(actual)
    diff = exp ^ act
    byte = (diff & -diff).bit_length() - 1 >> 3 if diff else 0  # lowest differing byte (little-endian)
    return Verification(int(nbad), int(page), int(word) * 8 + byte, f"{exp:016x}", f"{act:016x}")


def reference_verify(words: np.ndarray, seed: int, first_page: int = 0) -> Verification:
    want = reference_pattern(words.size // WORDS, seed, first_page).reshape(-1, WORDS)
    got = words.reshape(-1, WORDS)
    bad = (got != want)
    bad_pages = np.flatnonzero(bad.any(axis=1))
    if len(bad_pages) == 0:
        return Verification(0)
    p = bad_pages[0]
    w = int(np.flatnonzero(bad[p])[0])
    return _located(len(bad_pages), p, w, want[p, w], got[p, w])


def fill(words: np.ndarray, seed: int, first_page: int = 0) -> None:
    numba_kernels().fill(words, np.uint64(seed), np.uint64(first_page))


def verify(words: np.ndarray, seed: int, first_page: int = 0) -> Verification:
    return _located(*numba_kernels().verify(words, np.uint64(seed), np.uint64(first_page)))
