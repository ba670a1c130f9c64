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
#: what one generation adds to every word (see :func:`reference_check`)
GEN_STEP = 0xD6E8FEB86659FD93


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


def reference_generation(npages: int, seed: int, first_page: int = 0, gen: int = 0) -> np.ndarray:
    """The pattern of generation ``gen``: the fill (generation 0) plus gen * GEN_STEP in
    every word. Writers during a migration stamp one generation per pass, so the value
    every word must hold afterwards is known: the generation of its writer's last pass."""
    with np.errstate(over="ignore"):
        return reference_pattern(npages, seed, first_page) + np.uint64((gen * GEN_STEP) & _M64)


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
    return reference_check(words, seed, first_page, 0)


def reference_check(words: np.ndarray, seed: int, first_page: int = 0, gen: int = 0) -> Verification:
    """Every word against generation ``gen`` (numpy twin of ``_jit.check``)."""
    want = reference_generation(words.size // WORDS, seed, first_page, gen)
    return _compare(words, want)


def reference_stamp(words: np.ndarray, seed: int, first_page: int = 0, gen: int = 1) -> Verification:
    """One writer pass (numpy twin of ``_jit.stamp``): what was read is checked against
    generation ``gen - 1``, then every word gets generation ``gen``."""
    old = words.copy()
    result = _compare(old, reference_generation(words.size // WORDS, seed, first_page, gen - 1))
    words[:] = reference_generation(words.size // WORDS, seed, first_page, gen)
    return result


def _compare(words: np.ndarray, want: np.ndarray) -> Verification:
    want, got = want.reshape(-1, WORDS), words.reshape(-1, WORDS)
    bad = got != want
    bad_pages = np.flatnonzero(bad.any(axis=1))
    if len(bad_pages) == 0:
        return Verification(0)
    p = bad_pages[0]
    w = int(np.flatnonzero(bad[p])[0])
    return _located(len(bad_pages), p, w, want[p, w], got[p, w])


def check(words: np.ndarray, seed: int, first_page: int = 0, gen: int = 0) -> Verification:
    """Every byte against generation ``gen`` (numba; releases the GIL)."""
    return _located(*numba_kernels().check(words, np.uint64(seed), np.uint64(first_page), np.uint64(gen)))


def stamp(words: np.ndarray, seed: int, first_page: int = 0, gen: int = 1) -> Verification:
    """One checked writer pass of generation ``gen`` (numba; releases the GIL)."""
    return _located(*numba_kernels().stamp(words, np.uint64(seed), np.uint64(first_page), np.uint64(gen)))


def fill(words: np.ndarray, seed: int, first_page: int = 0) -> None:
    numba_kernels().fill(words, np.uint64(seed), np.uint64(first_page))


def verify(words: np.ndarray, seed: int, first_page: int = 0) -> Verification:
    return _located(*numba_kernels().verify(words, np.uint64(seed), np.uint64(first_page)))
