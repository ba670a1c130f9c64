"""``mbind``: ``mbind(MPOL_BIND, dst, MPOL_MF_MOVE)`` of a mapped, filled region.

The policy of the range changes to the destination node and the pages already there
move with it, in one call. Reason MR_MEMPOLICY_MBIND (``mempolicy_mbind``); mbind(2)
came in v2.6.7, MPOL_MF_MOVE in v2.6.16.
"""

from __future__ import annotations

from .. import access, pattern
from ..syscalls import MPOL_BIND, MPOL_MF_MOVE, page_nodes
from ...catalogue import workloads as catalogue
from . import register
from .base import Trial, Workload, counts_of


@register
class MbindWorkload(Workload):
    info = catalogue.get("mbind")

    def run(self, t: Trial) -> None:
        spec, record = t.spec, t.record
        with t.map_region() as region:
            words = region.words()
            pattern.fill(words, spec.trial_seed)
            t.check_folios(region.addr)
            threads = access.Access(words, spec.trial_seed, spec.access, spec.access_threads)
            t.start_trace()
            threads.start()
            try:
                call = region.prepared_mbind(MPOL_BIND, [spec.dst], MPOL_MF_MOVE)
                with t.observe():
                    _, seconds = t.timed(call)
            finally:
                record.update(threads.stop())
            t.placement(counts_of(page_nodes(region.addr, t.npages)), spec.dst)
            record.update({"seconds": seconds, "folios": spec.total_size // spec.folio_size,
                           "gbps": spec.total_size / seconds / 1e9 if seconds > 0 else float("nan")})
            t.verify_words(words, threads)
            del words
