"""Every numba kernel of the workbench, in one place, compiled lazily.

Import this module only through :func:`workbench.agent.pattern.numba_kernels` so that the CLI and
the test-suite start without paying for numba. Compiled code is cached on disk in a
directory keyed by numba's version and the CPU's name and features: a VM guest
(QEMU's TCG CPU) and its host get separate caches, so neither loads code built for
the other, and a second boot of the same guest reuses its own.

Each kernel has a numpy reference in :mod:`workbench.agent.pattern` and a test that
compares the two.
"""

from __future__ import annotations

import hashlib
import os


def _cache_dir() -> str:
    import llvmlite.binding as llvm  # light: does not load numba

    from .. import paths

    cpu = llvm.get_host_cpu_name()
    features = llvm.get_host_cpu_features().flatten()
    try:
        from importlib.metadata import version
        numba_version = version("numba")
    except Exception:  # pragma: no cover - metadata missing
        numba_version = "unknown"
    key = hashlib.sha256(f"{numba_version}|{cpu}|{features}".encode()).hexdigest()[:16]
    path = paths.cache_dir() / "numba" / f"{cpu}-{key}"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


os.environ.setdefault("NUMBA_CACHE_DIR", _cache_dir())

import numba  # noqa: E402
import numpy as np  # noqa: E402

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
PAGE_MUL = np.uint64(0xD1B54A32D192ED03)
WORDS_PER_PAGE = 512  # 4096-byte base pages
# (w + 1) * GOLDEN for every word of a page, as a table: AVX2 has no 64-bit vector
# multiply, so a table lookup (4 KiB, stays in L1) keeps the inner loops vectorised.
STEPS = np.arange(1, WORDS_PER_PAGE + 1, dtype=np.uint64) * GOLDEN
#: what one generation adds to every word (odd, so generations never repeat within 2^64)
GEN_STEP = np.uint64(0xD6E8FEB86659FD93)


@numba.njit(cache=True, inline="always")
def page_key(seed, page):
    """splitmix64 of (seed, page index): a per-page key, so swapped pages differ."""
    z = np.uint64(seed) * GOLDEN + np.uint64(page) * PAGE_MUL + np.uint64(1)
    z = (z ^ (z >> np.uint64(30))) * MIX1
    z = (z ^ (z >> np.uint64(27))) * MIX2
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True)
def fill(words, seed, first_page):
    """Word w of page p holds key(seed, first_page + p) + (w + 1) * GOLDEN."""
    npages = words.size // WORDS_PER_PAGE
    for p in range(npages):
        key = page_key(seed, first_page + p)
        base = p * WORDS_PER_PAGE
        for w in range(WORDS_PER_PAGE):
            words[base + w] = key + STEPS[w]


@numba.njit(cache=True, nogil=True)
def check(words, seed, first_page, gen):
    """Returns (bad pages, first bad page, its first bad word, expected, actual) for
    generation ``gen``: word w of page p must hold key(seed, first_page + p) + (w + 1) *
    GOLDEN + gen * GEN_STEP (gen 0 is what :func:`fill` writes). A page is checked with
    one OR-reduction of XORs (memory-bound, vectorisable); only a bad page is searched
    again for its first bad word. Releases the GIL, so reader threads run beside a
    migration."""
    npages = words.size // WORDS_PER_PAGE
    shift = np.uint64(gen) * GEN_STEP
    nbad = 0
    first_page_bad = -1
    first_word = -1
    expected = np.uint64(0)
    actual = np.uint64(0)
    for p in range(npages):
        key = page_key(seed, first_page + p) + shift
        base = p * WORDS_PER_PAGE
        acc = np.uint64(0)
        for w in range(WORDS_PER_PAGE):
            acc |= words[base + w] ^ (key + STEPS[w])
        if acc != 0:
            nbad += 1
            if first_page_bad < 0:
                first_page_bad = p
                for w in range(WORDS_PER_PAGE):
                    want = key + STEPS[w]
                    if words[base + w] != want:
                        first_word = w
                        expected = want
                        actual = words[base + w]
                        break
    return nbad, first_page_bad, first_word, expected, actual


@numba.njit(cache=True)
def verify(words, seed, first_page):
    """:func:`check` of what :func:`fill` wrote (generation 0)."""
    return check(words, seed, first_page, np.uint64(0))


@numba.njit(cache=True, nogil=True)
def stamp(words, seed, first_page, gen):
    """One writer pass: every word must still hold generation ``gen - 1`` (what this
    writer wrote last, or the fill for gen 1) — a word that does not is a lost write or
    a stale read — and then gets generation ``gen``. Returns what :func:`check` returns,
    about the words read before each was written. Releases the GIL."""
    npages = words.size // WORDS_PER_PAGE
    old = (np.uint64(gen) - np.uint64(1)) * GEN_STEP
    new = np.uint64(gen) * GEN_STEP
    nbad = 0
    first_page_bad = -1
    first_word = -1
    expected = np.uint64(0)
    actual = np.uint64(0)
    for p in range(npages):
        key = page_key(seed, first_page + p)
        base = p * WORDS_PER_PAGE
        bad = False
        for w in range(WORDS_PER_PAGE):
            want = key + STEPS[w] + old
            got = words[base + w]
            words[base + w] = key + STEPS[w] + new
            if got != want and not bad:
                bad = True
                if first_page_bad < 0:
                    first_page_bad = p
                    first_word = w
                    expected = want
                    actual = got
        if bad:
            nbad += 1
    return nbad, first_page_bad, first_word, expected, actual


@numba.njit(cache=True)
def stream_sum(words):
    """A plain streaming read of every word: the speed verification is measured against."""
    s = np.uint64(0)
    for i in range(words.size):
        s += words[i]
    return s


#: every kernel, for warming up (compiling or loading from the cache) before timing
KERNELS = (fill, verify, check, stamp, stream_sum)
