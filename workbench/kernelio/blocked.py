"""The tasks stuck in the kernel, for a trial that went past its time limit.

Every task in uninterruptible sleep (state D: what ``sysrq w`` shows) and every thread
of the pids asked for (the agent running the trial, which may wait interruptibly in the
kernel), each with its kernel stack from ``/proc/<pid>/task/<tid>/stack``; then ``w``
is written to ``/proc/sysrq-trigger`` so the kernel's own report of its blocked tasks
is in its log (and on a VM's console) too, and those lines are returned.
"""

from __future__ import annotations

from ..errors import WorkbenchError
from . import procstat
from .kernelfs import KernelFS


def _task(fs: KernelFS, pid: str, tid: str) -> dict | None:
    try:
        stat = fs.read(f"/proc/{pid}/task/{tid}/stat")
    except OSError:
        return None  # gone meanwhile
    comm, fields = procstat.parse(stat)
    return {"pid": int(pid), "tid": int(tid), "comm": comm, "state": fields[0]}


def _stack(fs: KernelFS, pid: int, tid: int) -> str:
    try:
        return fs.read(f"/proc/{pid}/task/{tid}/stack")
    except OSError as exc:
        return f"(no stack: {exc})"


def blocked_tasks(fs: KernelFS, pids=(), sysrq: bool = True, tids=()) -> dict:
    """{"tasks": [{pid, tid, comm, state, stack}], "sysrq_w": [kernel log lines] or None}:
    every task in state D, and the threads ``tids`` of ``pids`` (all their threads if no
    tid is given)."""
    wanted = {int(p) for p in pids or ()}
    threads = {int(t) for t in tids or ()}
    tasks = []
    for pid in fs.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            tids = fs.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            task = _task(fs, pid, tid)
            if task and (task["state"] == "D" or (task["pid"] in wanted and (not threads or task["tid"] in threads))):
                task["stack"] = _stack(fs, task["pid"], task["tid"])
                tasks.append(task)
    report = None
    if sysrq:
        cursor = fs.log_cursor()
        try:
            fs.write("/proc/sysrq-trigger", "w")
            report = fs.log_since(cursor)
        except (OSError, WorkbenchError) as exc:
            report = [f"(sysrq w failed: {exc})"]
    return {"tasks": tasks, "sysrq_w": report}


def format_blocked(answer: dict, limit: int = 60) -> str:
    """The tasks as text: a header per task, then its kernel stack."""
    out = []
    for t in answer.get("tasks", []):
        out.append(f"{t['comm']} pid {t['pid']} tid {t['tid']} state {t['state']}:")
        out += ["  " + ln for ln in (t.get("stack") or "").splitlines()]
    if answer.get("sysrq_w"):
        out.append("--- sysrq w (the kernel's report of its blocked tasks) ---")
        out += answer["sysrq_w"]
    return "\n".join(out[:limit] + ([f"... ({len(out) - limit} more lines)"] if len(out) > limit else []))
