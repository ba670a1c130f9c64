"""Which folio sizes the kernel really gave: /proc/self/pagemap + /proc/kpageflags.

pagemap (v2.6.25) gives each virtual page's PFN (PFNs need CAP_SYS_ADMIN since v4.2);
kpageflags (v2.6.26) gives each PFN's flags. A folio of N base pages shows as one
COMPOUND_HEAD page followed by N-1 COMPOUND_TAIL pages on consecutive PFNs (an order-0
folio has neither flag). The check is per folio-aligned chunk of the region.
"""

from __future__ import annotations

import os

import numpy as np

PAGE = 4096
PFN_MASK = (1 << 55) - 1
PRESENT = 1 << 63
KPF_COMPOUND_HEAD = 1 << 15
KPF_COMPOUND_TAIL = 1 << 16
KPF_THP = 1 << 22


def read_pfns(addr: int, npages: int, pagemap: str = "/proc/self/pagemap") -> np.ndarray:
    """PFN of each page (0 when not present or not visible to this user)."""
    fd = os.open(pagemap, os.O_RDONLY)
    try:
        raw = os.pread(fd, npages * 8, (addr // PAGE) * 8)
    finally:
        os.close(fd)
    entries = np.frombuffer(raw, dtype=np.uint64)
    present = (entries & np.uint64(PRESENT)) != 0
    return np.where(present, entries & np.uint64(PFN_MASK), np.uint64(0))


def read_kpageflags(pfns: np.ndarray, kpageflags: str = "/proc/kpageflags") -> np.ndarray:
    """Flags of each PFN, reading each run of consecutive PFNs with one pread."""
    flags = np.zeros(len(pfns), dtype=np.uint64)
    if len(pfns) == 0:
        return flags
    breaks = np.flatnonzero(np.diff(pfns.astype(np.int64)) != 1) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [len(pfns)]))
    fd = os.open(kpageflags, os.O_RDONLY)
    try:
        for s, e in zip(starts, ends):
            raw = os.pread(fd, int(e - s) * 8, int(pfns[s]) * 8)
            flags[s:s + len(raw) // 8] = np.frombuffer(raw, dtype=np.uint64)
    finally:
        os.close(fd)
    return flags


def classify(pfns: np.ndarray, flags: np.ndarray, folio_pages: int, next_flags: int = 0) -> np.ndarray:
    """Boolean per folio-aligned chunk: is it exactly one folio of ``folio_pages`` pages?

    ``next_flags`` are the flags of the PFN just after the last chunk's folio, so a
    folio larger than asked for is caught at the end too.
    """
    nfolios = len(pfns) // folio_pages
    pf = pfns[: nfolios * folio_pages].reshape(nfolios, folio_pages).astype(np.int64)
    fl = flags[: nfolios * folio_pages].reshape(nfolios, folio_pages)
    head = (fl & np.uint64(KPF_COMPOUND_HEAD)) != 0
    tail = (fl & np.uint64(KPF_COMPOUND_TAIL)) != 0
    present = pf[:, 0] != 0
    if folio_pages == 1:
        return present & ~head[:, 0] & ~tail[:, 0]
    ok = present & head[:, 0] & tail[:, 1:].all(axis=1)
    ok &= (pf[:, 1:] == pf[:, :1] + np.arange(1, folio_pages)).all(axis=1)
    # the chunk after each folio must start a new folio, else ours is larger than asked
    following_is_tail = np.append(tail[1:, 0] & (pf[1:, 0] == pf[:-1, 0] + folio_pages),
                                  bool(next_flags & KPF_COMPOUND_TAIL))
    return ok & ~following_is_tail


def folio_match(addr: int, size: int, folio_size: int) -> dict:
    """Share of folio-sized chunks of [addr, addr+size) that are exactly one such folio."""
    npages = size // PAGE
    try:
        pfns = read_pfns(addr, npages)
        if not pfns.any():
            return {"method": "unavailable (no PFNs: needs CAP_SYS_ADMIN)", "share": None, "folios": 0}
        flags = read_kpageflags(pfns)
        last = int(pfns[-1])
        next_flags = int(read_kpageflags(np.array([last + 1], dtype=np.uint64))[0]) if last else 0
    except OSError as exc:
        return {"method": f"unavailable ({exc.strerror})", "share": None, "folios": 0}
    ok = classify(pfns, flags, folio_size // PAGE, next_flags)
    thp = int(((flags & np.uint64(KPF_THP)) != 0).sum())
    return {"method": "kpageflags", "folios": int(len(ok)), "matched": int(ok.sum()),
            "share": float(ok.mean()) if len(ok) else None, "thp_pages": thp}
