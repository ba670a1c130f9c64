"""Faults made on purpose inside a trial (``TrialSpec.inject_fault``), for the tests
that prove a run survives them: a guest panic or power-off, a kernel WARN, a migration
that hangs in the kernel, the SSH link cut from the box's side, and a trial held until
the host acts. Nothing here runs unless a test asks for it."""

from __future__ import annotations

import os
import signal
import time

from ..errors import WorkbenchError
from ..kernelio import procstat
from ..kernelio.kernelfs import KernelFS

#: what the ``warn`` hook writes into the kernel log: the shape of a kernel WARN report
#: (the stock kernel has no way to WARN on demand: no LKDTM, no fault injection)
INJECTED_WARN = ["------------[ cut here ]------------",
                 f"WARNING: CPU: 0 PID: {os.getpid()} at workbench/agent/fault_hooks.py: injected by the warn test hook",
                 "Call Trace:", " <TASK>", " workbench_injected_warn", " </TASK>",
                 "---[ end trace 0000000000000000 ]---"]


def before_migration(fault: str, fs: KernelFS, stall=None) -> None:
    """The test hooks that act just before the kernel is made to migrate. ``stall``
    makes the coming migration block in the kernel for good (the ``hang`` hook);
    a workload that cannot stall its migration passes None and ``hang`` is refused."""
    if fault == "panic":
        fs.write("/proc/sysrq-trigger", "c")          # does not return
    elif fault == "poweroff":
        fs.write("/proc/sysrq-trigger", "o")          # asynchronous: wait for it
        while True:
            time.sleep(60)
    elif fault == "hold":
        while True:                                   # until the host does what it means to
            time.sleep(60)
    elif fault == "hang":
        if stall is None:
            raise WorkbenchError("injected fault 'hang' needs a workload whose migration can be stalled "
                                 "(move-pages)")
        stall()
    elif fault == "cut_link":
        cut_ssh_link(fs)


def after_migration(fault: str, fs: KernelFS) -> None:
    """The test hooks that act once the kernel has migrated."""
    if fault == "warn":
        fs.log_write(INJECTED_WARN)


def cut_ssh_link(fs: KernelFS) -> int | None:
    """Kill the sshd session this agent runs under (the link cut from the box's side);
    returns its pid, or None when the agent does not run under sshd."""
    pid = os.getpid()
    while pid > 1:
        stat = fs.read(f"/proc/{pid}/stat")
        comm, fields = procstat.parse(stat)
        ppid = int(fields[1])
        if comm.startswith("sshd") and pid != os.getpid():
            os.kill(pid, signal.SIGKILL)
            return pid
        pid = ppid
    return None
