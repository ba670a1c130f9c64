"""Threads that keep reading or writing memory while the kernel migrates it — checked.

``selftests/mm/migration.c`` migrates pages while threads read and write them, and
checks nothing but that the kernel survives. Here every access is checked:

* ``read``: each thread reads its share of the pages over and over and compares every
  word with the pattern (generation 0); a word that differs is a stale or wrong read;
* ``write``: each thread owns a contiguous share of the pages and stamps one generation
  per pass over it (:func:`workbench.agent.pattern.stamp`): every word must still hold
  the generation this thread wrote in its previous pass — else a write was lost or a
  read was stale — and gets the next. When the threads stop, every word of a share must
  hold the generation of its writer's last pass: :meth:`Access.verify` checks every
  byte against exactly that.

Both kinds of kernel run in numba with the GIL released, so the threads run while the
main thread sits in the migrating system call (ctypes releases the GIL too).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from . import pattern
from .pattern import WORDS, Verification

MODES = ("none", "read", "write")


@dataclass
class _Share:
    first: int          # first page of the share, within the region
    pages: int
    gen: int = 0        # the last generation completed over the whole share
    passes: int = 0
    bad: Verification = field(default_factory=lambda: Verification(0))
    bad_passes: int = 0
    error: str | None = None


class Access:
    """``threads`` threads accessing ``words`` (a region filled with the pattern of
    ``seed``) in ``mode``; use as a context manager or :meth:`start` / :meth:`stop`."""

    def __init__(self, words: np.ndarray, seed: int, mode: str, threads: int = 1, first_page: int = 0):
        if mode not in MODES:
            raise ValueError(f"access {mode!r}; allowed: {', '.join(MODES)}")
        self.words, self.seed, self.mode, self.first_page = words, seed, mode, first_page
        npages = words.size // WORDS
        n = max(1, min(int(threads), npages)) if mode != "none" else 0
        bounds = np.linspace(0, npages, n + 1).astype(int) if n else []
        self.shares = [_Share(int(a), int(b - a)) for a, b in zip(bounds[:-1], bounds[1:])] if n else []
        self._stop = threading.Event()
        self._active = [threading.Event() for _ in self.shares]
        self._threads: list[threading.Thread] = []

    # -- running ---------------------------------------------------------------------
    def _run(self, i: int):
        share = self.shares[i]
        view = self.words[share.first * WORDS:(share.first + share.pages) * WORDS]
        first = self.first_page + share.first
        try:
            while True:
                if self.mode == "write":
                    result = pattern.stamp(view, self.seed, first, share.gen + 1)
                    share.gen += 1
                else:
                    result = pattern.check(view, self.seed, first, 0)
                share.passes += 1
                if not result.ok:
                    share.bad_passes += 1
                    if share.bad.ok:
                        share.bad = Verification(result.bad_pages, share.first + result.first_bad_page,
                                                 result.first_bad_offset, result.expected, result.actual)
                    else:
                        share.bad.bad_pages += result.bad_pages
                self._active[i].set()
                if self._stop.is_set():
                    return
        except Exception as exc:  # reported by stop(), never lost in a thread
            share.error = f"{type(exc).__name__}: {exc}"
            self._active[i].set()

    def start(self, timeout: float = 600.0, wait: bool = True) -> "Access":
        """Start the threads and (``wait``) return once each has finished one whole pass,
        so they are really running when the migration starts."""
        for i in range(len(self.shares)):
            t = threading.Thread(target=self._run, args=(i,), name=f"access-{self.mode}-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        for ev in self._active if wait else ():
            ev.wait(timeout)
        return self

    def stop(self) -> dict:
        """Stop after each thread's current pass; returns the summary (record fields)."""
        self._stop.set()
        for t in self._threads:
            t.join()
        self._threads = []
        return self.summary()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self._threads:
            self.stop()
        return False

    # -- results ---------------------------------------------------------------------
    def summary(self) -> dict:
        """What the threads saw while they ran: passes, and the mismatches they met
        (a lost write or a stale read, with the first page and byte offset)."""
        first = next((s.bad for s in self.shares if not s.bad.ok), Verification(0))
        errors = [s.error for s in self.shares if s.error]
        return {"access": self.mode, "access_threads": len(self.shares),
                "access_passes": sum(s.passes for s in self.shares),
                "access_generations": ",".join(str(s.gen) for s in self.shares) if self.mode == "write" else None,
                "access_bad_pages": sum(s.bad.bad_pages for s in self.shares),
                "access_bad_passes": sum(s.bad_passes for s in self.shares),
                "access_first_bad_page": first.first_bad_page, "access_first_bad_offset": first.first_bad_offset,
                "access_expected": first.expected, "access_actual": first.actual,
                "access_error": "; ".join(errors) or None}

    def expected_generations(self) -> list[tuple[int, int, int]]:
        """(first page, pages, generation) that every byte must hold now."""
        if self.mode != "write":
            return [(0, self.words.size // WORDS, 0)]
        return [(s.first, s.pages, s.gen) for s in self.shares]


def verify(words: np.ndarray, seed: int, generations: list[tuple[int, int, int]], first_page: int = 0,
           stale: bool = False) -> Verification:
    """Every byte of ``words`` against the generation each share must hold; ``stale``
    (a test hook) checks against the generation before — a verifier fed a stale
    expectation, which must fail wherever anything was written."""
    total, first = 0, None
    for start, pages, gen in generations:
        view = words[start * WORDS:(start + pages) * WORDS]
        v = pattern.check(view, seed, first_page + start, (gen - 1) % (1 << 64) if stale else gen)
        total += v.bad_pages
        if not v.ok and first is None:
            first = Verification(0, start + v.first_bad_page, v.first_bad_offset, v.expected, v.actual)
    if first is None:
        return Verification(0)
    first.bad_pages = total
    return first
