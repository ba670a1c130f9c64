"""The numba fill/verify kernels against their numpy definitions."""

import numpy as np
import pytest

from workbench.agent import pattern

PAGES = 64


@pytest.fixture
def filled():
    w = np.zeros(PAGES * pattern.WORDS, dtype=np.uint64)
    pattern.fill(w, seed=42)
    return w


def test_numba_fill_equals_numpy_reference(filled):
    ref = np.zeros_like(filled)
    pattern.reference_fill(ref, seed=42)
    assert np.array_equal(filled, ref)
    assert pattern.verify(filled, 42).ok and pattern.reference_verify(filled, 42).ok


def test_pattern_depends_on_seed_page_and_word(filled):
    other = np.zeros_like(filled)
    pattern.fill(other, seed=43)
    assert not np.any(other == filled)
    pages = filled.reshape(PAGES, pattern.WORDS)
    assert len({tuple(p[:4]) for p in pages}) == PAGES          # every page differs
    assert len(np.unique(pages[7])) == pattern.WORDS             # every word in a page differs


def test_one_flipped_byte_is_found_with_page_and_offset(filled):
    filled.view(np.uint8)[13 * 4096 + 1234] ^= 0x10
    for v in (pattern.verify(filled, 42), pattern.reference_verify(filled, 42)):
        assert (v.bad_pages, v.first_bad_page, v.first_bad_offset) == (1, 13, 1234)
        assert int(v.expected, 16) ^ int(v.actual, 16) == 0x10 << (8 * (1234 % 8))
    assert pattern.verify(filled, 42) == pattern.reference_verify(filled, 42)


def test_two_swapped_pages_are_caught(filled):
    pages = filled.reshape(PAGES, pattern.WORDS)
    pages[[5, 9]] = pages[[9, 5]]
    v = pattern.verify(filled, 42)
    assert (v.bad_pages, v.first_bad_page, v.first_bad_offset) == (2, 5, 0)
    assert v == pattern.reference_verify(filled, 42)


def test_zeroed_page_and_wrong_seed(filled):
    filled.reshape(PAGES, pattern.WORDS)[PAGES - 1] = 0
    v = pattern.verify(filled, 42)
    assert (v.bad_pages, v.first_bad_page, v.actual) == (1, PAGES - 1, "0" * 16)
    assert pattern.verify(filled, 41).bad_pages == PAGES


def test_first_page_offset_continues_the_sequence():
    whole = np.zeros(8 * pattern.WORDS, dtype=np.uint64)
    pattern.fill(whole, 5)
    tail = np.zeros(4 * pattern.WORDS, dtype=np.uint64)
    pattern.fill(tail, 5, first_page=4)
    assert np.array_equal(whole[4 * pattern.WORDS:], tail)


def test_stream_sum_matches_numpy(filled):
    with np.errstate(over="ignore"):
        assert int(pattern.numba_kernels().stream_sum(filled)) == int(filled.sum(dtype=np.uint64))
