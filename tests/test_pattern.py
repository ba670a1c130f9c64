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


# -- generations: what writers stamp while pages migrate ------------------------------

@pytest.mark.parametrize("gen", [0, 1, 7, (1 << 64) - 1])
def test_check_of_a_generation_equals_numpy(filled, gen):
    """check() of generation 0 is verify(); of generation g it wants fill + g * GEN_STEP."""
    ref = pattern.reference_generation(PAGES, 42, 0, gen)
    assert pattern.check(ref.copy(), 42, 0, gen).ok and pattern.reference_check(ref.copy(), 42, 0, gen).ok
    if gen:
        assert pattern.check(filled, 42, 0, gen).bad_pages == PAGES          # the fill is generation 0
        assert pattern.check(filled, 42, 0, gen) == pattern.reference_check(filled, 42, 0, gen)
    else:
        assert np.array_equal(ref, filled)


def test_stamp_writes_the_next_generation_and_checks_the_last(filled):
    a, b = filled.copy(), filled.copy()
    for gen in (1, 2, 3):
        va, vb = pattern.stamp(a, 42, 0, gen), pattern.reference_stamp(b, 42, 0, gen)
        assert va.ok and vb.ok and np.array_equal(a, b)
        assert pattern.check(a, 42, 0, gen).ok
    # a lost write: one page keeps generation 2 while its neighbours have 3
    a.reshape(PAGES, pattern.WORDS)[11] = pattern.reference_generation(1, 42, 11, 2)
    b = a.copy()
    va, vb = pattern.stamp(a, 42, 0, 4), pattern.reference_stamp(b, 42, 0, 4)
    assert va == vb and (va.bad_pages, va.first_bad_page, va.first_bad_offset) == (1, 11, 0)
    assert (int(va.expected, 16) - int(va.actual, 16)) % (1 << 64) == pattern.GEN_STEP
    assert np.array_equal(a, b) and pattern.check(a, 42, 0, 4).ok       # the pass still wrote everything


def test_a_stale_expectation_fails_the_check(filled):
    """The check can fail: memory at generation 5 checked against generation 4 is all bad."""
    pattern.stamp(filled, 42, 0, 1)
    v = pattern.check(filled, 42, 0, 0)
    assert (v.bad_pages, v.first_bad_page, v.first_bad_offset) == (PAGES, 0, 0)
    assert v == pattern.reference_check(filled, 42, 0, 0)


def test_every_kernel_is_listed_for_warm_up():
    k = pattern.numba_kernels()
    import numba
    assert {f.__name__ for f in k.KERNELS} == {n for n, v in vars(k).items()
                                               if isinstance(v, numba.core.registry.CPUDispatcher)
                                               and n != "page_key"}
