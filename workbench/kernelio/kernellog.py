"""What in a kernel log is a problem report, and what a trial's kernel log says.

A report (an oops, a BUG, a WARN, a panic, a lockup, an RCU stall, a hung task) starts
with a line that contains one of :data:`PROBLEMS`. The agent reads the kernel log
around every trial (:class:`TrialLog`): a trial during which the kernel reported a
problem, or became newly tainted by one, is marked ``kernel_clean: False`` with the
first lines of the report, however well its bytes verified. The host reads a VM's
console with the same rules to say why a guest died (:func:`death_cause`).
"""

from __future__ import annotations

import re

#: a line that contains one of these starts (or is) a kernel problem report
PROBLEMS = ("WARNING:", "BUG:", "kernel BUG at", "Oops", "Kernel panic", "general protection fault",
            "Call Trace:", "INFO: task", "rcu: INFO:", "page allocation failure")
#: how many lines of a report a record keeps
REPORT_LINES = 12
#: taint bits that only a problem sets: 5 B bad page, 7 D died (oops), 9 W warning,
#: 14 L soft lockup (not O/E, which loading any out-of-tree module sets)
PROBLEM_TAINTS = {5: "B (bad page)", 7: "D (oops)", 9: "W (warning)", 14: "L (soft lockup)"}
TAINTED = "/proc/sys/kernel/tainted"
_STAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?")


def strip_stamp(line: str) -> str:
    """A console line without its ``[  12.345678]`` time stamp."""
    return _STAMP.sub("", line)


def is_problem(line: str) -> bool:
    return any(p in line for p in PROBLEMS)


def problem_lines(lines) -> list[str]:
    return [ln for ln in lines if is_problem(ln)]


def first_report(lines, n: int = REPORT_LINES) -> str | None:
    """The first ``n`` lines of the first problem report in ``lines`` (time stamps
    removed), or None if there is none."""
    lines = [strip_stamp(ln) for ln in lines]
    for i, line in enumerate(lines):
        if is_problem(line):
            return "\n".join(lines[i:i + n])
    return None


def new_taints(before: int | None, after: int | None) -> list[str]:
    """The problem taints set between two readings of /proc/sys/kernel/tainted."""
    if before is None or after is None:
        return []
    return [name for bit, name in PROBLEM_TAINTS.items() if after & (1 << bit) and not before & (1 << bit)]


class TrialLog:
    """The kernel log and taint around one trial, through a :class:`~.kernelfs.KernelFS`."""

    def __init__(self, fs):
        self.fs = fs
        self.cursor = fs.log_cursor()
        self.taint0 = self._taint()

    def _taint(self) -> int | None:
        try:
            return int(self.fs.read(TAINTED))
        except (OSError, ValueError):  # a kernel without the file (or a fake): unknown
            return None

    def verdict(self) -> dict:
        """``kernel_clean`` (None: the log could not be read), ``kernel_report`` (the
        first lines of the first report) and ``kernel_problems`` (how many report lines)."""
        lines = self.fs.log_since(self.cursor)
        taints = new_taints(self.taint0, self._taint())
        if lines is None and not taints:
            return {"kernel_clean": None, "kernel_report": None, "kernel_problems": None}
        problems = problem_lines(lines or [])
        report = first_report(lines or [])
        if taints:
            note = f"kernel newly tainted: {', '.join(taints)}"
            report = f"{report}\n{note}" if report else note
        return {"kernel_clean": not problems and not taints, "kernel_report": report,
                "kernel_problems": len(problems)}


def death_cause(console_lines, qemu_lines=()) -> tuple[str, str | None]:
    """Why a guest died, from its console (and QEMU's own messages): a one-line cause
    and the report's first lines, if the console has one."""
    lines = [strip_stamp(ln) for ln in console_lines]
    panic = next((ln for ln in reversed(lines) if "Kernel panic - not syncing" in ln), None)
    report = first_report(lines)
    if panic:
        return f"guest kernel panic: {panic.split('Kernel panic - not syncing:', 1)[-1].strip() or panic}", report
    if any("reboot: Power down" in ln or "reboot: System halted" in ln for ln in lines):
        return "the guest powered off", report
    if any("reboot: Restarting system" in ln for ln in lines):
        return "the guest rebooted (QEMU runs with -no-reboot, so it stopped)", report
    said = [ln.strip() for ln in qemu_lines if "qemu" in ln.lower() and not _STAMP.match(ln)]
    if said:
        return f"QEMU exited: {said[-1]}", report
    return "QEMU exited with no panic or power-off on the guest console and no message (killed?)", report
