"""What every VM of the workbench is to the host: a QEMU process started detached from
the command that booted it, and a directory that outlives both.

:class:`QemuProcess` is the base of the NUMA VM (:mod:`.numa_vm`, QEMU under virtme-ng)
and the lab VM (:mod:`.lab_vm`, QEMU booting a disk). It owns the directory's common
files — ``state.json`` (what was started, and how to know it is still that process),
``console.log`` and ``qemu.log`` (read through :class:`~.console.Console`), and the
watcher's record of QEMU's events and ending (:mod:`.qemu_watch`) — and the rules for
whether a recorded process is still alive: a pid of a machine that has rebooted since, a
pid reused by another process and a zombie are not.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from ..kernelio import procstat
from ..kernelio.kernelfs import RealFS
from . import qemu_watch
from .console import Console


class QemuProcess:
    """A VM's directory and the QEMU (or launcher of QEMU) process recorded in it."""

    #: how many died or failed boots keep their logs under ``deaths/``
    KEEP_DEATHS = 10

    def __init__(self, name: str, directory: Path):
        self.name = name
        self.dir = directory
        self.state_file = directory / "state.json"
        #: the guest's kernel console
        self.console = directory / "console.log"
        #: what the launcher and QEMU themselves say (their stderr)
        self.qemu_log = directory / "qemu.log"
        self.log = Console(self.console, self.qemu_log)

    # -- state ---------------------------------------------------------------------
    def state(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    def save_state(self, state: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, default=str))
        tmp.rename(self.state_file)

    def process_alive(self, state: dict | None = None) -> bool:
        """Whether the process ``state`` (default: the recorded one) names still runs."""
        st = state if state is not None else self.state()
        return bool(st) and alive(st.get("pid", 0), st.get("boot_id"), st.get("pid_start"))

    # -- starting and stopping --------------------------------------------------------
    def launch(self, cmd: list[str], **popen) -> subprocess.Popen:
        """Start ``cmd`` detached (its own session), its output in ``qemu.log`` (emptied),
        with a fresh console log and no watcher record of an earlier boot."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.console.write_bytes(b"")
        qemu_watch.clear(self.dir)
        with open(self.qemu_log, "wb") as out:
            return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    start_new_session=True, **popen)

    @staticmethod
    def identity(pid: int) -> dict:
        """What :meth:`process_alive` checks later: the pid, this machine's boot and the
        process's start time."""
        return {"pid": pid, "boot_id": boot_id(), "pid_start": start_time(pid)}

    def terminate(self, pid: int, group: bool = False, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if ``pid`` (its process group with ``group``) is still
        there after ``grace`` seconds."""
        send = os.killpg if group else os.kill
        try:
            send(pid, signal.SIGTERM)
        except OSError:
            return
        end = time.monotonic() + grace
        while time.monotonic() < end and alive(pid):
            time.sleep(0.2)
        try:
            send(pid, signal.SIGKILL)
        except OSError:
            pass

    # -- what QEMU said ---------------------------------------------------------------
    def qemu_record(self) -> dict:
        """What QEMU said of this boot: its QMP events (names, oldest first) and, once it
        has ended, how (exit code or signal)."""
        return {"events": [e.get("event") for e in qemu_watch.read_events(self.dir)],
                "exit": qemu_watch.read_exit(self.dir)}

    def kept_extras(self) -> dict[str, str]:
        """More files of this boot to keep with its logs (name: text); none by default."""
        return {}

    def keep_logs(self) -> Path:
        """Copy this boot's console, QEMU log and QEMU's events and ending to
        ``deaths/<time>/``, where the next boot (which starts them afresh) cannot
        overwrite them; the oldest beyond ``KEEP_DEATHS`` go. Returns the directory."""
        root, stamp, n = self.dir / "deaths", time.strftime("%Y%m%d-%H%M%S"), 1
        kept = root / stamp
        while kept.exists():
            n += 1
            kept = root / f"{stamp}-{n:03d}"
        kept.mkdir(parents=True)
        for f in (self.console, self.qemu_log, self.dir / qemu_watch.EVENTS, self.dir / qemu_watch.EXIT):
            try:
                shutil.copyfile(f, kept / f.name)
            except OSError:
                pass
        for name, text in self.kept_extras().items():
            (kept / name).write_text(text)
        for old in sorted(p for p in root.iterdir() if p.is_dir())[:-self.KEEP_DEATHS]:
            shutil.rmtree(old, ignore_errors=True)
        return kept


# ---- processes of this machine ---------------------------------------------------------

def stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (field 3 is [0])."""
    return procstat.parse(RealFS().read(f"/proc/{pid}/stat"))[1]


def boot_id() -> str | None:
    try:
        return RealFS().read("/proc/sys/kernel/random/boot_id")
    except OSError:
        return None


def start_time(pid: int) -> int | None:
    try:
        return int(stat_fields(pid)[19])
    except (OSError, IndexError, ValueError):
        return None


def descendant(pid: int, prefix: str) -> int | None:
    """The first process below ``pid`` whose command name starts with ``prefix``."""
    fs = RealFS()
    children: dict[int, list[int]] = {}
    comms: dict[int, str] = {}
    for entry in fs.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = fs.read(f"/proc/{entry}/stat")
        except OSError:
            continue
        comm, fields = procstat.parse(text)
        comms[int(entry)] = comm
        children.setdefault(int(fields[1]), []).append(int(entry))
    todo = list(children.get(pid, []))
    while todo:
        p = todo.pop(0)
        if comms.get(p, "").startswith(prefix):
            return p
        todo += children.get(p, [])
    return None


def alive(pid: int, boot: str | None = None, start: int | None = None) -> bool:
    """Whether ``pid`` is a live process, and the same one that was recorded: a pid of a
    machine that has rebooted since (``boot``, its boot id) or reused by another process
    (``start``, its start time) is not, nor is a zombie."""
    if not pid:
        return False
    if boot is not None and boot != boot_id():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        fields = stat_fields(pid)
    except (OSError, ValueError):
        return True
    if fields[0] == "Z":
        return False
    return start is None or int(fields[19]) == start
