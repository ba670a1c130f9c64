"""A separate process that holds the pattern while the kernel migrates its memory.

Some ways pages migrate act on a process rather than an address range the caller owns:
``migrate_pages(2)`` moves a whole process, NUMA balancing moves what a task touches from
where it runs, reclaim demotes what a memory cgroup holds. :class:`Holder` forks a child
(it shares the agent's compiled numba kernels, nothing is imported again) that maps
private anonymous memory, fills it with the pattern and then answers commands over a
pipe, one JSON line each way:

==================  =========================================================  ==================
command             what the child does                                        answer
==================  =========================================================  ==================
(start)             join a cgroup, pin to CPUs, map, bind, fill, check folios  ``ready``
``nodes``           count its pages per node                                   ``nodes``
``cpus``            pin itself (and threads started later) to CPUs            ``ok``
``access``          start checked reader/writer threads (:mod:`.access`)      ``ok``
``access_stop``     stop them                                                  their summary
``wait``            poll its pages until all are on given nodes, or a time     moved, timeline
                    (from now, or from when its threads started)
``verify``          placement of every page and every byte verified            record fields
``exit``            leave                                                      -
==================  =========================================================  ==================

The child verifies its own memory: the parent never reads it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
import traceback

import numpy as np

from ..errors import WorkbenchError
from ..protocol import PAGE
from . import access as access_mod
from . import pagemap, pattern
from ..kernelio.kernelfs import RealFS
from .syscalls import MADV_HUGEPAGE, MADV_NOHUGEPAGE, MPOL_DEFAULT, AnonRegion, page_nodes


def node_counts(nodes: np.ndarray) -> dict[str, int]:
    """{node: pages} of a page_nodes() answer (negative: not present, as -errno)."""
    values, counts = np.unique(nodes, return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(values, counts)}


class _Child:
    """What runs in the forked process."""

    def __init__(self, rfd: int, wfd: int, spec: dict):
        self.rf = os.fdopen(rfd, "r")
        self.wf = os.fdopen(wfd, "w")
        self.spec = spec
        self.access: access_mod.Access | None = None
        self.access_started = 0.0
        self.summary: dict | None = None

    def send(self, msg: dict):
        self.wf.write(json.dumps(msg) + "\n")
        self.wf.flush()

    def main(self):
        s = self.spec
        if s.get("cgroup"):
            RealFS().write(f"{s['cgroup']}/cgroup.procs", str(os.getpid()))
        if s.get("cpus"):
            os.sched_setaffinity(0, s["cpus"])
        size, folio = s["size"], s["folio_size"]
        self.region = AnonRegion(size, max(folio, PAGE))
        self.region.madvise(MADV_HUGEPAGE if folio > PAGE else MADV_NOHUGEPAGE)
        self.region.bind(s["src"])
        self.words = self.region.words()
        pattern.fill(self.words, s["seed"])
        if s.get("unbind"):
            # the pages stay where they are; later faults and NUMA balancing follow the task
            self.region.mbind(MPOL_DEFAULT)
        self.npages = size // PAGE
        match = pagemap.folio_match(self.region.addr, size, folio)
        before = page_nodes(self.region.addr, self.npages)
        self.send({"ready": {"folio_check": match["method"], "folio_match_share": match["share"],
                             "folios_matched": match.get("matched"), "thp_pages": match.get("thp_pages"),
                             "on_src_before_share": float((before == s["src"]).mean()),
                             "pid": os.getpid()}})
        for line in self.rf:
            cmd = json.loads(line)
            op = cmd["cmd"]
            if op == "exit":
                return
            self.send(getattr(self, f"do_{op}")(cmd))

    def do_nodes(self, cmd):
        return {"nodes": node_counts(page_nodes(self.region.addr, self.npages))}

    def do_cpus(self, cmd):
        os.sched_setaffinity(0, cmd["cpus"])
        return {"ok": True}

    def do_access(self, cmd):
        self.access = access_mod.Access(self.words, self.spec["seed"], cmd["mode"], cmd["threads"])
        self.access_started = time.monotonic()
        self.access.start(wait=cmd.get("wait", True))
        return {"ok": True}

    def do_access_stop(self, cmd):
        self.summary = self.access.stop() if self.access else None
        return {"summary": self.summary}

    def do_wait(self, cmd):
        """Poll every ``interval`` s until every page is on one of ``nodes`` or ``seconds`` pass."""
        want = np.array(cmd["nodes"])
        # from when the threads started touching (what NUMA balancing reacts to), or now
        t0 = self.access_started if cmd.get("since_access") and self.access else time.monotonic()
        timeline, done_at = [], None
        while True:
            now = time.monotonic() - t0
            there = int(np.isin(page_nodes(self.region.addr, self.npages), want).sum())
            if not timeline or timeline[-1][1] != there:
                timeline.append([round(now, 3), there])
            if there == self.npages:
                done_at = now
                break
            if now >= cmd["seconds"]:
                break
            time.sleep(cmd.get("interval", 0.1))
        return {"seconds": done_at if done_at is not None else time.monotonic() - t0, "all": done_at is not None,
                "moved": there, "timeline": timeline[-50:]}

    def do_verify(self, cmd):
        nodes = page_nodes(self.region.addr, self.npages)
        if cmd.get("corrupt"):
            page, offset = int(cmd["corrupt"]["page"]), int(cmd["corrupt"]["offset"])
            self.words.view(np.uint8)[page * PAGE + offset] ^= 0xFF
        gens = self.access.expected_generations() if self.access else [(0, self.npages, 0)]
        result = access_mod.verify(self.words, self.spec["seed"], gens, stale=cmd.get("stale", False))
        return {"nodes": node_counts(nodes), "verification": result.as_record()}


class Holder:
    """The parent's handle on the child: ``Holder(spec)`` forks, fills and waits for
    ``ready``; :meth:`ask` sends a command and returns the answer; :meth:`close` ends it.

    ``spec``: size, folio_size, src, seed, and optionally cgroup (a cgroup v2 directory to
    join first), cpus (CPUs to run on), unbind (drop the MPOL_BIND policy after the fill).
    """

    def __init__(self, spec: dict, timeout: float = 600.0):
        self.spec = spec
        p_read, c_write = os.pipe()
        c_read, p_write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns into the agent
            code = 0
            try:
                os.close(p_read)
                os.close(p_write)
                child = _Child(c_read, c_write, spec)
                try:
                    child.main()
                except BaseException as exc:  # noqa: BLE001 - reported to the parent, then exit
                    child.send({"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
                    code = 1
            finally:
                os._exit(code)
        os.close(c_read)
        os.close(c_write)
        self.rf = os.fdopen(p_read, "r")
        self.wf = os.fdopen(p_write, "w")
        try:
            self.ready = self._recv(timeout)["ready"]
        except BaseException:
            self.close()
            raise

    def _recv(self, timeout: float) -> dict:
        r, _, _ = select.select([self.rf], [], [], timeout)
        line = self.rf.readline() if r else ""
        if not r:
            raise WorkbenchError(f"the process holding the pattern (pid {self.pid}) did not answer in {timeout:.0f} s")
        if not line:
            raise WorkbenchError(f"the process holding the pattern (pid {self.pid}) died")
        msg = json.loads(line)
        if "error" in msg:
            raise WorkbenchError(f"the process holding the pattern failed: {msg['error']}", detail=msg.get("traceback"))
        return msg

    def ask(self, cmd: str, timeout: float = 600.0, **args) -> dict:
        self.wf.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.wf.flush()
        return self._recv(timeout)

    def close(self):
        """End the child (politely, then with SIGKILL) and reap it."""
        if self.pid <= 0:
            return
        try:
            self.wf.write(json.dumps({"cmd": "exit"}) + "\n")
            self.wf.flush()
        except OSError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.05)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        for f in (self.rf, self.wf):
            try:
                f.close()
            except OSError:
                pass
        self.pid = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
