"""``migrate-pages``: a separate process holding the pattern, moved as a whole with
``migrate_pages(2)``, as ``migratepages(8)`` does; the process verifies its own memory.

The holder (:mod:`workbench.agent.holder`) is forked from the agent, maps and fills its
region on the source node, optionally keeps reading or writing it, and waits; the agent
times one ``migrate_pages(pid, src → dst)`` call. Reason MR_SYSCALL (``syscall``).
migrate_pages(2) came in v2.6.16.

The call is made without CAP_SYS_NICE (dropped from the calling thread for that call
only): with it the kernel moves every page the process maps (MPOL_MF_MOVE_ALL), the
pages it still shares copy-on-write with the agent and shared library page cache
included, which would move the agent itself; without it (MPOL_MF_MOVE, what a
non-root migratepages(8) does) only the pages the process has to itself move.
"""

from __future__ import annotations

from ..holder import Holder
from ..syscalls import CAP_SYS_NICE, MigratePages, without_capability
from ...catalogue import workloads as catalogue
from . import register
from .base import Trial, Workload


@register
class MigratePagesWorkload(Workload):
    info = catalogue.get("migrate-pages")

    def run(self, t: Trial) -> None:
        spec, record = t.spec, t.record
        with Holder({"size": spec.total_size, "folio_size": spec.folio_size, "src": spec.src,
                     "seed": spec.trial_seed}) as holder:
            ready = dict(holder.ready)
            record["holder_pid"] = ready.pop("pid", None)
            record.update(ready)
            if spec.access != "none":
                holder.ask("access", mode=spec.access, threads=spec.access_threads)
            call = MigratePages(holder.pid, [spec.src], [spec.dst])
            t.start_trace()
            with t.observe():
                with without_capability(CAP_SYS_NICE) as cap:
                    not_moved, seconds = t.timed(call)
            record["migrate_flags"] = "MPOL_MF_MOVE" if cap.dropped else "as the caller's capabilities allow"
            if spec.access != "none":
                record.update(holder.ask("access_stop")["summary"])
            else:
                record.update({"access": "none", "access_threads": 0})
            result = holder.ask("verify", stale=spec.inject_stale, corrupt=spec.inject_corruption)
            t.placement(result["nodes"], spec.dst)
            t.verification(result["verification"])
            moved = record["pages_placed"]
            record.update({"seconds": seconds, "syscall_not_moved": int(not_moved),
                           "folios": spec.total_size // spec.folio_size,
                           "gbps": spec.total_size / seconds / 1e9 if seconds > 0 else float("nan"),
                           "pages_moved": moved})
