"""Folio-size classification from PFNs and kpageflags."""

import numpy as np

from workbench.agent.pagemap import KPF_COMPOUND_HEAD as H, KPF_COMPOUND_TAIL as T, classify


def folio(pfn, n):
    pfns = np.arange(pfn, pfn + n, dtype=np.uint64)
    flags = np.array([0] if n == 1 else [H] + [T] * (n - 1), dtype=np.uint64)
    return pfns, flags


def build(*folios):
    pf, fl = zip(*(folio(p, n) for p, n in folios))
    return np.concatenate(pf), np.concatenate(fl)


def test_exact_folios_match():
    pfns, flags = build((1000, 16), (2000, 16), (5000, 16))
    assert classify(pfns, flags, 16).tolist() == [True, True, True]


def test_smaller_folios_do_not_match():
    pfns, flags = build((1000, 16), (2000, 8), (3000, 8), (5000, 16))
    assert classify(pfns, flags, 16).tolist() == [True, False, True]


def test_order0_pages():
    pfns, flags = build((10, 1), (99, 1), (3, 1))
    assert classify(pfns, flags, 1).tolist() == [True, True, True]
    pfns, flags = build((1000, 4))
    assert classify(pfns, flags, 1).tolist() == [False] * 4


def test_larger_folio_than_asked_does_not_match():
    pfns, flags = build((4096, 32))
    assert classify(pfns, flags, 16).tolist() == [False, False]
    # ... also at the very end, from the flags of the page after the region
    pfns, flags = build((1000, 16))
    assert classify(pfns, flags, 16, next_flags=T).tolist() == [False]


def test_not_present_pages_do_not_match():
    pfns, flags = build((1000, 16))
    pfns[:] = 0
    assert classify(pfns, flags, 16).tolist() == [False]


def test_non_contiguous_pfns_do_not_match():
    pfns, flags = build((1000, 16))
    pfns[7] += 100
    assert classify(pfns, flags, 16).tolist() == [False]
