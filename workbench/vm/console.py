"""A VM's two logs as the host reads them: the guest kernel's console (``console.log``)
and what the launcher and QEMU wrote to their stderr (``qemu.log``; for the NUMA VM it
also holds vng's serial console, the kernel's lines in it written synchronously by the
guest, so they can hold what the virtio console lost).

Offsets are bytes into the console log, so a caller notes :meth:`Console.size` before a
plan and reads only what came after it.
"""

from __future__ import annotations

from pathlib import Path

from ..kernelio import kernellog

#: what starts a kernel problem report on the console (one list, :mod:`workbench.kernelio.kernellog`)
PROBLEMS = kernellog.PROBLEMS


class Console:
    def __init__(self, console: Path, qemu_log: Path):
        self.path = console
        self.qemu_log = qemu_log

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def since(self, offset: int) -> list[str]:
        """The console's lines from byte ``offset`` on (carriage returns dropped)."""
        try:
            return self.path.read_bytes()[offset:].decode(errors="replace").replace("\r", "").splitlines()
        except OSError:
            return []

    def tail(self, lines: int = 25) -> str:
        if not self.path.exists():
            return "(no console log)"
        return "\n".join(self.since(0)[-lines:])

    def problems(self, since: int = 0) -> list[str]:
        """Kernel WARN/BUG/oops lines on the console (from byte offset ``since``)."""
        return [ln for ln in self.since(since) if any(p in ln for p in PROBLEMS)]

    def _qemu_lines(self) -> list[str]:
        try:
            return self.qemu_log.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def qemu_messages(self) -> list[str]:
        """What the launcher and QEMU said themselves: their stderr without the copy of
        the kernel console that vng sends there too."""
        return [ln for ln in self._qemu_lines() if ln.strip() and not kernellog._STAMP.match(ln)]

    def serial_lines(self) -> list[str]:
        """The kernel's lines in QEMU's stderr (vng's serial console, ttyS0)."""
        return [ln for ln in self._qemu_lines() if kernellog._STAMP.match(ln)]

    def failure_detail(self, lines: int = 25) -> str:
        """The console's tail, then what vng/QEMU wrote to their stderr (the guest's
        console cannot say why QEMU itself went away)."""
        qemu = "\n".join(self.qemu_messages()[-lines:]) if self.qemu_log.exists() else "(no log)"
        return f"{self.tail(lines)}\n--- vng/QEMU stderr ({self.qemu_log}) ---\n{qemu or '(nothing)'}"
