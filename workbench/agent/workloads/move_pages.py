"""``move-pages``: one verified ``move_pages(2)`` call of one region (the default).

The series' benchmark: private anonymous memory bound to the source node and filled
with the pattern, then **one** ``move_pages()`` call with one address per folio, the
address, node and status arrays prepared before the timer, which wraps only the system
call. Reason MR_SYSCALL (``syscall``). move_pages(2) came in v2.6.18.
"""

from __future__ import annotations

import time

import numpy as np

from .. import access, pattern
from ..syscalls import MovePages, page_nodes
from ...catalogue import workloads as catalogue
from . import register
from .base import Trial, Workload, counts_of


class FirstFolioWatch:
    """Time from the start of move_pages() until the first folio is on the destination.

    A thread polls the node of the region's first page (move_pages with nodes=NULL,
    which takes no locks the migration holds for long). With the copy batched, no folio
    is remapped before the whole batch is copied, so this grows with the batch size —
    the downside of big batches a reviewer of the series asked to see."""

    def __init__(self, addr: int, dst: int):
        import threading
        self.dst = dst
        self.query = MovePages(np.array([addr], dtype=np.uint64), None)
        self.go = threading.Event()
        self.done = threading.Event()
        self.t0 = 0
        self.seen_ns: int | None = None
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self):
        self.go.wait()
        while True:
            self.query()
            if self.query.status[0] == self.dst:
                self.seen_ns = time.perf_counter_ns() - self.t0
                return
            if self.done.is_set() and self.query.status[0] != self.dst:
                return

    def start(self):
        self.t0 = time.perf_counter_ns()
        self.go.set()

    def result(self, timeout: float = 10.0) -> int | None:
        self.done.set()
        self.thread.join(timeout)
        return self.seen_ns


@register
class MovePagesWorkload(Workload):
    info = catalogue.get("move-pages")

    def run(self, t: Trial) -> None:
        spec, record = t.spec, t.record
        nfolios = spec.total_size // spec.folio_size
        with t.map_region() as region:
            words = region.words()
            pattern.fill(words, spec.trial_seed)
            t.check_folios(region.addr)
            move = MovePages(region.addr + np.arange(nfolios, dtype=np.uint64) * np.uint64(spec.folio_size),
                             spec.dst)
            threads = access.Access(words, spec.trial_seed, spec.access, spec.access_threads)
            t.start_trace()
            threads.start()
            try:
                with t.observe(stall=move.stall):
                    watch = FirstFolioWatch(region.addr, spec.dst) if spec.first_folio else None
                    if watch:
                        # the watch starts with the timer: inside timed(), around the same call
                        def call():
                            watch.start()
                            return move()
                    else:
                        call = move
                    not_moved, seconds = t.timed(call)
                    record["first_folio_ns"] = watch.result() if watch else None
            finally:
                record.update(threads.stop())
            t.placement(counts_of(page_nodes(region.addr, t.npages)), spec.dst)
            record.update({
                "seconds": seconds,
                "gbps": spec.total_size / seconds / 1e9 if seconds > 0 else float("nan"),
                "folios": nfolios, "syscall_not_moved": int(not_moved),
                "folio_errors": int((move.status < 0).sum()),
            })
            t.verify_words(words, threads)
            del words
