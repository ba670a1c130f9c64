"""QEMU's parent: it starts QEMU, writes down every event QEMU announces over QMP and,
once QEMU has ended, how it ended (its exit code, or the signal that killed it).

Why a process of our own between the launcher and QEMU: only a process's parent learns
its wait status, and vng's ``virtme-run`` (QEMU's parent otherwise) turns every ending of
a ``--exec`` guest into status 255. So vng runs this module as its QEMU binary
(``vng --qemu <vm dir>/qemu``, a two-line script :func:`write_shim` makes), and the lab
VM runs it in front of ``qemu-system-x86_64``. Both then leave in the VM's directory:

``events.jsonl``
    one line per QMP event as QEMU sent it (``event``, ``data``, QEMU's ``timestamp``)
    with ``host_time``: ``GUEST_PANICKED`` (pvpanic), ``SHUTDOWN`` with its ``reason``
    (``guest-shutdown``, ``guest-reset``, ``guest-panic``, ``host-signal``,
    ``host-qmp-quit``), ``STOP``, ``RESUME``, ``RESET``. Read from a QMP socket of its own
    (:func:`events_socket`), so the one-shot clients of :mod:`.qmp` never compete for it.
``exit.json``
    written once QEMU has been reaped, so its files (the console) are closed by then:
    ``{"pid", "code"}`` or ``{"pid", "signal", "signal_name"}``, and ``ended``.

A signal that asks QEMU to stop (TERM, INT, HUP) is passed on to QEMU; this process
stays to record the outcome. A call that is not a VM's (``--version``, a probe for
devices, all without the events socket) is QEMU itself, exec'd at once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

EVENTS = "events.jsonl"
EXIT = "exit.json"
SHIM = "qemu"


def events_socket(vm_dir: Path) -> Path:
    return Path(vm_dir) / "events.sock"


def events_option(vm_dir: Path) -> str:
    """QEMU's option for the watcher's own QMP socket (it does not wait for a client)."""
    return f"-qmp unix:{events_socket(vm_dir)},server=on,wait=off"


def write_shim(vm_dir: Path, qemu: str) -> Path:
    """The script vng runs as its QEMU binary: this module, in front of ``qemu``."""
    Path(vm_dir).mkdir(parents=True, exist_ok=True)
    shim = Path(vm_dir) / SHIM
    shim.write_text("#!/bin/sh\n# QEMU under the workbench's watcher (workbench/vm/qemu_watch.py)\n"
                    f"exec {sys.executable} -m workbench.vm.qemu_watch --dir {vm_dir} --qemu {qemu} -- \"$@\"\n")
    shim.chmod(0o755)
    return shim


def command(vm_dir: Path, qemu_cmd: list[str]) -> list[str]:
    """``qemu_cmd`` (QEMU's binary and options) run under the watcher."""
    return [sys.executable, "-m", "workbench.vm.qemu_watch", "--dir", str(vm_dir), "--qemu", qemu_cmd[0],
            "--", *qemu_cmd[1:]]


def clear(vm_dir: Path) -> None:
    """Forget the last boot's events and exit (before a new boot)."""
    for name in (EVENTS, EXIT):
        (Path(vm_dir) / name).unlink(missing_ok=True)
    events_socket(vm_dir).unlink(missing_ok=True)


def read_events(vm_dir: Path) -> list[dict]:
    try:
        lines = (Path(vm_dir) / EVENTS).read_text().splitlines()
    except OSError:
        return []
    out = []
    for ln in lines:
        try:
            out.append(json.loads(ln))
        except ValueError:
            continue            # a line cut short by a watcher that was killed
    return out


def read_exit(vm_dir: Path) -> dict | None:
    try:
        return json.loads((Path(vm_dir) / EXIT).read_text())
    except (OSError, ValueError):
        return None


def wait_exit(vm_dir: Path, timeout: float) -> dict | None:
    """QEMU's ending once the watcher has written it down, or None after ``timeout``."""
    end = time.monotonic() + timeout
    while True:
        st = read_exit(vm_dir)
        if st is not None or time.monotonic() >= end:
            return st
        time.sleep(0.05)


# -- the watcher itself --------------------------------------------------------------
def _listen(sock_path: Path, log: Path, child_alive, connected: threading.Event) -> None:
    """Connect to QEMU's events socket (it appears early in QEMU's start) and append every
    event to ``log`` until QEMU closes the connection."""
    s = None
    while child_alive():
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(sock_path))
            break
        except OSError:
            s.close()
            s = None
            time.sleep(0.02)
    if s is None:
        return
    with s, open(log, "a") as out:
        f = s.makefile("rw")
        try:
            f.readline()                                  # the greeting
            f.write(json.dumps({"execute": "qmp_capabilities"}) + "\n")
            f.flush()
            connected.set()
            for line in f:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if "event" in msg:
                    msg["host_time"] = time.time()
                    out.write(json.dumps(msg) + "\n")
                    out.flush()
        except OSError:
            pass


def _write_exit(vm_dir: Path, record: dict) -> None:
    tmp = vm_dir / (EXIT + ".tmp")
    tmp.write_text(json.dumps(record))
    tmp.rename(vm_dir / EXIT)


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print("usage: python -m workbench.vm.qemu_watch --dir VM_DIR --qemu QEMU -- QEMU_ARGS...",
              file=sys.stderr)
        return 2
    own, qemu_args = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    opts = dict(zip(own[::2], own[1::2]))
    vm_dir, qemu = Path(opts["--dir"]), opts["--qemu"]
    sock = events_socket(vm_dir)
    if not any(str(sock) in a for a in qemu_args):
        os.execvp(qemu, [qemu, *qemu_args])               # a probe (--version ...), not a VM
    pid = os.fork()
    if pid == 0:                                           # QEMU, with every descriptor it was given
        try:
            os.execvp(qemu, [qemu, *qemu_args])
        finally:
            os._exit(127)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: os.kill(pid, s))
    done = threading.Event()
    connected = threading.Event()
    listener = threading.Thread(target=_listen, args=(sock, vm_dir / EVENTS, lambda: not done.is_set(),
                                                      connected), daemon=True)
    listener.start()
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    done.set()
    listener.join(timeout=3.0)          # the events QEMU sent before it closed the socket
    record: dict = {"pid": pid, "ended": time.time(), "events_connected": connected.is_set()}
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        record.update(signal=sig, signal_name=signal.Signals(sig).name)
        code = 128 + sig
    else:
        code = os.WEXITSTATUS(status)
        record["code"] = code
    _write_exit(vm_dir, record)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
