"""The lab-machine VM (issue 14): a Debian 12 box booted from its own disk
(:mod:`.lab_image`), reached only by SSH, exactly as a lab box would be.

The VM (``LabVM``)
    ``qemu-system-x86_64`` from the disk (virtio-blk, a qcow2 overlay per VM name, so the
    cached image stays pristine and ``reset()`` gives a clean box), two NUMA nodes of
    1536M with one CPU each, TCG unless KVM really works (``/dev/kvm`` usable *and* the
    CPU shows vmx/svm), user-mode networking with ``restrict=on`` (the guest reaches
    nothing) and one ``hostfwd`` from 127.0.0.1:PORT (a free port) to the guest's 22,
    serial console to ``console.log``, a pvpanic device. QEMU runs under the workbench's
    watcher (:mod:`.qemu_watch`), which keeps its QMP events (``GUEST_PANICKED`` when the
    box's kernel panics) and how it ended; ``lab status`` shows both. A guest reboot
    resets the machine and boots the disk again (what ``grub-reboot`` needs); a guest
    poweroff ends QEMU.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from pathlib import Path

from ..errors import WorkbenchError
from . import qemu_watch, qmp
from .config import TCG_ACCEL
from .lab_image import NODES, USER, LabImage, _run, accelerator, build_image, lab_dir
from .process import QemuProcess, alive


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpus(spec) -> list[int]:
    """0 -> [0]; "0-1" -> [0, 1] (QEMU's -numa cpus= syntax)."""
    a, _, b = str(spec).partition("-")
    return list(range(int(a), int(b or a) + 1))


class LabVM(QemuProcess):
    """One lab-machine VM by name. State lives in ``$WORKBENCH_CACHE/lab/vms/<name>/``."""

    def __init__(self, name: str = "lab", accel: str = "auto", nodes=NODES, boot_timeout: float = 900.0):
        if not name or "/" in name or name.startswith("."):
            raise WorkbenchError(f"lab VM name {name!r} is not a plain name")
        super().__init__(name, lab_dir() / "vms" / name)
        self.accel_choice, self.nodes, self.boot_timeout = accel, nodes, boot_timeout
        self.overlay = self.dir / "disk.qcow2"
        self.known_hosts = self.dir / "known_hosts"

    # -- state ----------------------------------------------------------------------
    def running(self) -> bool:
        """The recorded QEMU is alive and is the one booting this VM's disk."""
        st = self.state()
        if not self.process_alive(st):
            return False
        try:
            cmdline = Path(f"/proc/{st['pid']}/cmdline").read_bytes()
        except OSError:
            return False
        return str(self.overlay).encode() in cmdline

    def status(self) -> dict:
        st = self.state() or {}
        running = self.running()
        return {"name": self.name, "running": running, "console": str(self.console), "qemu": self.qemu_record(),
                **({k: st[k] for k in ("pid", "port", "accel", "image", "kernel_release", "started")
                    if k in st} if running else {}),
                **(self.info() if running else {})}

    def info(self) -> dict:
        """How to reach the box: an ordinary SSH target."""
        st = self.state()
        if not st:
            raise WorkbenchError(f"lab VM {self.name} is not up (workbench lab up)")
        return {"target": f"ssh://{USER}@127.0.0.1:{st['port']}", "user": USER, "host": "127.0.0.1",
                "port": st["port"], "identity": st["identity"], "known_hosts": str(self.known_hosts),
                "console": str(self.console)}

    def target(self, **options):
        """The box as an ``SSHTarget`` (nothing lab-specific in it)."""
        from ..targets import make_target
        i = self.info()
        return make_target(i["target"], **{"identity": i["identity"], "known_hosts": i["known_hosts"], **options})

    # -- lifecycle --------------------------------------------------------------------
    def command(self, image: LabImage, port: int, accel: str) -> list[str]:
        mem = sum(int(m.rstrip("M")) for m, _ in self.nodes)
        ncpus = sum(len(_cpus(c)) for _, c in self.nodes)
        cmd = ["qemu-system-x86_64", "-name", f"lab-{self.name}", "-machine", "pc",
               "-accel", TCG_ACCEL if accel == "tcg" else accel,
               "-cpu", "host" if accel == "kvm" else "max",
               "-smp", f"{ncpus},sockets={ncpus},cores=1,threads=1", "-m", f"{mem}M"]
        for i, (m, cpu) in enumerate(self.nodes):
            cmd += ["-object", f"memory-backend-ram,id=mem{i},size={m}",
                    "-numa", f"node,nodeid={i},cpus={cpu},memdev=mem{i}"]
        cmd += ["-drive", f"file={self.overlay},if=virtio,format=qcow2,cache=writeback",
                "-netdev", f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22",
                "-device", "virtio-net-pci,netdev=net0",
                "-device", "virtio-rng-pci",
                "-display", "none", "-vga", "none", "-monitor", "none",
                "-serial", f"file:{self.console}",
                "-qmp", f"unix:{self.dir / 'qmp.sock'},server=on,wait=off",
                # a panic is told to QEMU (GUEST_PANICKED in events.jsonl); the box then
                # does what its kernel's panic= says, as a lab box would
                "-device", "pvpanic-pci", "-action", "panic=none",
                *qemu_watch.events_option(self.dir).split(),
                "-pidfile", str(self.dir / "qemu.pid")]
        return cmd

    def up(self, progress=None) -> dict:
        """Boot the box (building the image first if needed) and wait for its sshd.
        Returns ``{target, user, host, port, identity, known_hosts, console}``."""
        progress = progress or (lambda msg: None)
        if self.running():
            return self.info()
        if not shutil.which("qemu-system-x86_64"):
            raise WorkbenchError("the lab VM needs QEMU (apt-get install qemu-system-x86)")
        image = build_image(progress=progress)
        self.dir.mkdir(parents=True, exist_ok=True)
        st = self.state() or {}
        if not self.overlay.exists() or st.get("image") != image.key:
            self.overlay.unlink(missing_ok=True)
            _run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image.disk, self.overlay],
                 "qemu-img create (lab VM overlay)")
        identity = self.dir / "id_ed25519"
        shutil.copy(image.identity, identity)
        identity.chmod(0o600)
        accel = accelerator(self.accel_choice)
        for attempt in range(3):
            port = free_port()
            (self.dir / "qmp.sock").unlink(missing_ok=True)
            (self.dir / "qemu.pid").unlink(missing_ok=True)
            started = self._start(self.command(image, port, accel))
            if started is None:
                break
            if "hostfwd" not in started and "Could not set up host forwarding" not in started:
                raise WorkbenchError(f"QEMU did not start the lab VM {self.name}: "
                                     + (started.strip().splitlines() or ["?"])[-1])
        else:
            raise WorkbenchError(f"QEMU could not forward a port on 127.0.0.1 for lab VM {self.name}")
        pid = int((self.dir / "qemu.pid").read_text())
        self.known_hosts.write_text(f"[127.0.0.1]:{port} {image.host_key_pub}\n")
        self.save_state({
            **self.identity(pid), "port": port, "accel": accel, "image": image.key, "identity": str(identity),
            "kernel_release": image.kernel_release, "started": time.time()})
        progress(f"booting lab VM {self.name} ({accel}) on 127.0.0.1:{port}")
        t0 = time.monotonic()
        self.wait_ssh(self.boot_timeout)
        st = self.state()
        st["boot_seconds"] = round(time.monotonic() - t0, 1)
        self.save_state(st)
        if not image.lsmod.exists():
            # the modules the stock kernel loads on this box, once per image: a fixed
            # input for localmodconfig, so a kernel package built for it stays cached
            from ..targets.remote import Remote
            out = Remote(self.target()).out("lsmod", timeout=120)
            if out.startswith("Module"):
                image.lsmod.write_text(out + "\n")
        return self.info()

    def _start(self, cmd: list[str], timeout: float = 60.0) -> str | None:
        """Start QEMU under its watcher (:mod:`.qemu_watch`: QMP events and QEMU's
        ending in this VM's directory), detached from this process. None once QEMU
        answers on QMP; what it said if it exited first."""
        proc = self.launch(qemu_watch.command(self.dir, cmd))
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if proc.poll() is not None:
                return self.qemu_log.read_text(errors="replace")
            if (self.dir / "qemu.pid").exists() and qmp.run_state(self.dir / "qmp.sock", timeout=2) is not None:
                return None
            time.sleep(0.2)
        proc.kill()
        return f"QEMU did not answer on QMP within {timeout:.0f} s"

    def wait_ssh(self, timeout: float) -> float:
        """Until ``ssh true`` works (host key checked), QEMU dies, or ``timeout``."""
        from ..targets.remote import Remote
        remote = Remote(self.target(), connect_timeout=10)
        t0 = time.monotonic()
        while True:
            if not self.running():
                raise WorkbenchError(f"lab VM {self.name} stopped while booting", detail=self.log.tail(30))
            if remote.ok("true", timeout=30):
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise WorkbenchError(f"lab VM {self.name}: no SSH within {timeout:.0f}s (console: {self.console})",
                                     detail=self.log.tail(30))
            time.sleep(3)

    def _qmp(self, *commands: str, timeout: float = 10.0) -> bool:
        return qmp.execute(self.dir / "qmp.sock", *commands, timeout=timeout) is not None

    def down(self, timeout: float = 120.0) -> bool:
        """ACPI power-off, then kill QEMU if the guest did not stop within ``timeout``.
        Returns True if something was running."""
        st = self.state()
        if not st or not self.running():
            return False
        pid = st["pid"]
        if self._qmp("system_powerdown"):
            end = time.monotonic() + timeout
            while time.monotonic() < end and alive(pid):
                time.sleep(1)
        if alive(pid):
            self.terminate(pid)
        return True

    def power_cycle(self, timeout: float | None = None) -> float:
        """Press reset (as a lab box's BMC would) and wait for SSH again; returns seconds."""
        if not self.running():
            raise WorkbenchError(f"lab VM {self.name} is not running")
        self._qmp("system_reset")
        time.sleep(2)
        return self.wait_ssh(timeout or self.boot_timeout)

    def kill(self) -> None:
        """Pull the plug (no shutdown)."""
        st = self.state()
        if st and self.running():
            os.kill(st["pid"], signal.SIGKILL)
            while alive(st["pid"]):
                time.sleep(0.1)

    def reset(self) -> None:
        """Stop the VM and drop its disk overlay: the next ``up`` is a clean box."""
        self.kill()
        self.overlay.unlink(missing_ok=True)
        self.state_file.unlink(missing_ok=True)
