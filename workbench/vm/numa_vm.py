"""A QEMU VM with several NUMA nodes, booted through virtme-ng, kept up for a session.

``up`` boots the chosen kernel with ``vng --run`` in the background; the guest sees the
host's files, so it runs this very package: ``python -m workbench.agent serve``, which
answers plans dropped as files in a spool directory shared read-write with the host
(:mod:`.spool`). The process, its directory and logs are :class:`~.process.QemuProcess`'s
and :class:`~.console.Console`'s, as for the lab VM.
``down`` asks the agent to stop (the guest then powers off), killing QEMU if it does not.

Acceleration: KVM only where it really works (``/dev/kvm`` usable *and* the CPU shows
vmx or svm); otherwise TCG, single-threaded (see :mod:`.config`), and every result says
so (TCG timings are functional only).
vng's own exit status is not trusted (1.42 exits 255 even on success): the agent's
ready file and the plan's ``done`` event are the status.

The guest's kernel console goes to ``console.log`` (a virtio console of its own; vng
sends its serial console, mixed with its and QEMU's messages, to their stderr, kept in
``qemu.log``).
QEMU runs under a watcher of ours (:mod:`.qemu_watch`, vng's ``--qemu``) that writes down
QEMU's QMP events and its wait status; the guest has a pvpanic device and a ramoops
region the host can read (:mod:`.pstore`). A VM that dies during a plan raises
:class:`~workbench.targets.base.TargetLost` with the cause QEMU named (a panic, a signal that killed it, a
shutdown and its reason; :mod:`.death` has the rules) and the source that named it,
the panic's text from the console, its serial copy or pstore, and keeps that boot's
console, QEMU log, events and panic record under ``deaths/`` (the next boot starts them
afresh). A plan whose
host went away (killed, Ctrl-C) is cancelled by the next command that uses the VM, so a
VM left behind is reused as it is; one whose boot was interrupted is stopped and booted
again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import shutil
import signal
import sys
import time
import uuid
from dataclasses import asdict
from pathlib import Path

from . import death as vm_death, pstore, qemu_watch, qmp
from .config import (ICOUNT_QEMU_OPTS, PAUSED_WHEN_IDLE, TCG_ACCEL, UNUSED_GUEST_MODULES, VMConfig,
                     crash_reporting_options, hmat_options, qemu_binary, vng_can_use_virtiofs)
from .process import QemuProcess, alive, descendant, stat_fields
from .spool import Answer, Spool
from ..targets import kernel_images
from ..targets.base import TargetLost, clock_of
from .. import paths
from ..errors import WorkbenchError
from ..units import format_size, parse_size

#: a ``tick`` event after this many seconds without news from the guest
TICK = 2.0


class VM(QemuProcess):
    """One named VM: its state lives in ``<cache>/vm/<name>/``; :attr:`spool` is where
    its host and guest talk, :attr:`log` reads its console and QEMU's messages."""

    #: how long a dead VM's watcher may take to write QEMU's ending down
    EXIT_WAIT = 10.0

    def __init__(self, name: str = "default"):
        super().__init__(name, paths.cache_dir() / "vm" / name)
        self.spool = Spool(self.dir / "spool")
        #: QEMU's QMP socket (VMs that pause when idle, :data:`PAUSED_WHEN_IDLE`)
        self.qmp_sock = self.dir / "qmp.sock"
        #: the file behind the guest's ramoops region (:mod:`.pstore`)
        self.pstore = self.dir / "pstore.img"

    # -- state ---------------------------------------------------------------------
    def running(self) -> bool:
        """The recorded boot's launcher is alive and its agent said it is ready."""
        st = self.state()
        if not self.process_alive(st):
            return False
        ready = self.spool.ready()
        return ready is not None and ready.get("token") == st["token"]

    def explain_death(self, since: int = 0) -> vm_death.Death:
        """Why the VM died, once QEMU has ended (its watcher wrote the ending down, so
        QEMU's files are closed): what QEMU named, and the panic's text from the console
        since byte ``since``, the serial copy or the pstore record."""
        watched = "--qemu" in (self.state() or {}).get("command", [])   # booted before the watcher: none
        ended = qemu_watch.wait_exit(self.dir, self.EXIT_WAIT if watched else 0)
        return vm_death.explain(qemu_watch.read_events(self.dir), ended,
                             self.log.since(since) or self.log.since(0)[-200:],
                             serial=self.log.serial_lines(), pstore=pstore.panic_log(self.pstore),
                             qemu_said=self.log.qemu_messages())

    def death(self, since: int = 0) -> TargetLost:
        """What to raise for a VM that died (see :meth:`explain_death`)."""
        died = self.explain_death(since)
        kept = self.keep_logs()
        return TargetLost(f"VM {self.name!r} died during a plan: {died.cause} (named by {died.named_by}; "
                          f"console: {kept / self.console.name}, QEMU's own messages: {kept / self.qemu_log.name})",
                          kind="vm_died", cause=died.cause, logs=str(kept), record=died.fields(),
                          detail=(died.report + "\n---\n" if died.report else "") + self.log.failure_detail())

    def kept_extras(self) -> dict[str, str]:
        log = pstore.panic_log(self.pstore)
        return {"pstore.txt": log} if log else {}

    # -- lifecycle -----------------------------------------------------------------
    def command(self, config: VMConfig, image: kernel_images.KernelImage, token: str) -> list[str]:
        vng = shutil.which("vng", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        if not vng:
            raise WorkbenchError("vng (virtme-ng) is not installed: pip install virtme-ng (the setup does this)")
        # the guest does not inherit the host's environment: the cache (writable in the guest
        # through --rwdir, numba's cache among it) is named on the command line
        agent = (f"env WORKBENCH_CACHE={shlex.quote(str(paths.cache_dir()))} "
                 f"{shlex.quote(sys.executable)} -m workbench.agent serve "
                 f"--spool {shlex.quote(str(self.spool.dir))} --token {token}"
                 + (f" --module-dir {shlex.quote(image.module_dir)}" if image.module_dir else ""))
        cmd = [vng, "--run", image.run_arg, "-v", "--qemu", str(qemu_watch.write_shim(self.dir, qemu_binary())),
               "--memory", format_size(config.memory),
               "--cpus", str(config.ncpus), f"--rwdir={paths.cache_dir()}", "--cwd", str(paths.REPO)]
        if not vng_can_use_virtiofs():
            cmd.append("--force-9p")
        accel = config.accelerator()
        if accel in ("tcg", "icount"):
            cmd.append("--disable-kvm")
        initiators, hmat = hmat_options(config.nodes, config.all_distances()) if config.hmat is not False else ({}, [])
        for i, (mem, cpus) in enumerate(config.nodes):
            # vng passes what follows the size on to QEMU's -numa node (a CPU-less node needs
            # its initiator once HMAT is on)
            cmd += ["--numa", f"{format_size(parse_size(mem))}" + (f",cpus={cpus}" if cpus else "")
                    + (f",initiator={initiators[i]}" if i in initiators else "")]
        for src, dst, val in config.all_distances():
            cmd += ["--numa-distance", f"{src},{dst}={val}"]
        qemu_opts = list(hmat)
        sockets = config.sockets()
        if sockets > 1:
            qemu_opts.append(f"-smp {config.ncpus},sockets={sockets},cores={config.ncpus // sockets},threads=1")
        if accel == "icount":
            qemu_opts.append(ICOUNT_QEMU_OPTS)
        elif accel == "tcg":
            qemu_opts.append(f"-accel {TCG_ACCEL}")
        if accel in PAUSED_WHEN_IDLE:
            qemu_opts.append(qmp.option(self.qmp_sock))
        # the kernel console also on a virtio console of its own (hvc0), written by QEMU into
        # console.log: vng sends its serial console (ttyS0) to QEMU's stderr, mixed with
        # vng's and QEMU's own messages, and a second serial port cannot be a second
        # console (one 8250 console per kernel)
        cmd += ["--append", "console=hvc0"]
        # what names a death from outside the guest: pvpanic, QMP events, ramoops in a file
        cmd += ["--append", "pstore.compress=none"]
        cmd += ["--append", "modprobe.blacklist=" + ",".join(UNUSED_GUEST_MODULES)]
        qemu_opts += crash_reporting_options(self.pstore)
        qemu_opts.append(qemu_watch.events_option(self.dir))
        qemu_opts.append(f"-chardev file,id=wbconsole,path={self.console} -device virtio-serial-pci,id=wbconsole-bus "
                         "-device virtconsole,bus=wbconsole-bus.0,chardev=wbconsole")
        cmd += ["--exec", agent]
        # vng takes --qemu-opts last (it swallows what follows)
        return cmd + ([f"--qemu-opts={' '.join(qemu_opts)}"] if qemu_opts else [])

    @staticmethod
    def _rebuilt(config: VMConfig, st: dict) -> list[str]:
        """A kernel asked for by name whose tree was rebuilt from other inputs since the VM
        booted it: the VM runs an image that no longer is that kernel."""
        booted = (st.get("kernel") or {}).get("inputs")
        if config.kernel is None or not booted:
            return []
        try:
            now = kernel_images.resolve(config.kernel).inputs
        except WorkbenchError:
            return []
        return [f"an older build of kernel {config.kernel!r} (inputs {booted[:12]}; the tree is now "
                f"{now[:12]})"] if now and now != booted else []

    def up(self, config: VMConfig, progress=None, notify=None) -> dict:
        """Boot (or reuse) the VM; returns its state. Raises with the console tail on failure.

        A VM that is up is reused when nothing asked for differs from it (a field of
        ``config`` left None asks for nothing); ``notify`` then hears which kernel it runs."""
        config.validate()
        st = self.state()
        if self.running():
            diff = config.differences(st) + self._rebuilt(config, st)
            if diff:
                raise WorkbenchError(f"VM {self.name!r} is already up with {'; '.join(diff)}: run "
                                     f"`workbench vm down --vm-name {self.name}` first, or leave the option out "
                                     "to use it as it is")
            if notify:
                facts = st.get("facts", {})
                notify(f"using VM {self.name!r}, already up: kernel {st['config']['kernel']} "
                       f"({facts.get('kernel_release', '?')}), {st.get('accelerator')}")
            # (a VM asked for by the kernel's name, not its tree, keeps the image it booted)
            return st
        config = config.resolved()
        image = kernel_images.with_engine(kernel_images.resolve(config.kernel), notify)
        self.down(quiet=True)
        self.spool.reset()
        self.qmp_sock.unlink(missing_ok=True)
        pstore.clear(self.pstore)
        token = uuid.uuid4().hex[:12]
        cmd = self.command(config, image, token)
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        proc = self.launch(cmd, env=env, cwd=str(paths.REPO))
        state = {**self.identity(proc.pid), "token": token, "config": asdict(config), "kernel": asdict(image),
                 "kernel_config_hash": image.config_hash(), "accelerator": config.accelerator(),
                 "clock": clock_of(config.accelerator()),
                 "started": time.time(), "command": cmd}
        self.save_state(state)
        deadline = time.time() + config.boot_timeout
        while True:
            ready = self.spool.ready()
            if ready and ready.get("token") == token:
                state["boot_seconds"] = round(time.time() - state["started"], 1)
                state["facts"] = ready["facts"]
                state["qemu_pid"] = descendant(proc.pid, "qemu-system")
                self.save_state(state)
                self.pause_if_idle(state)
                return state
            if proc.poll() is not None or time.time() > deadline:
                why = "exited" if proc.poll() is not None else f"was not ready after {config.boot_timeout:.0f} s"
                self.down(quiet=True)
                kept = self.keep_logs()
                raise WorkbenchError(f"VM {self.name!r} failed to boot kernel {config.kernel!r}: QEMU {why} "
                                     f"(console: {kept / self.console.name}, "
                                     f"QEMU's own messages: {kept / self.qemu_log.name})",
                                     detail=self.log.failure_detail())
            if progress:
                progress(time.time() - state["started"])
            time.sleep(0.5)

    def down(self, quiet: bool = False, timeout: float = 60.0, force: bool = False) -> bool:
        """Stop the VM: ask its agent to stop (the guest then powers off), and kill QEMU
        if it does not (at once with ``force``: a guest stuck in a trial)."""
        st = self.state()
        if not st:
            return False
        was_alive = self.process_alive(st)
        if was_alive and self.spool.ready() and not force:
            self.resume(st)                 # a paused guest cannot read its shutdown
            self.spool.drop({"op": "shutdown"}, "zz-shutdown")
            end = time.time() + timeout
            while self.process_alive(st) and time.time() < end:
                time.sleep(0.5)
        if self.process_alive(st):
            self.terminate(st["pid"], group=True, grace=1.0)
        self.state_file.unlink(missing_ok=True)
        return was_alive

    def status(self) -> dict:
        st = self.state()
        if not st or not self.running():
            return {"name": self.name, "running": False}
        return {"name": self.name, "running": True, "pid": st["pid"], "kernel": st["config"]["kernel"],
                "kernel_release": st.get("facts", {}).get("kernel_release"),
                "accelerator": st["accelerator"], "uptime_s": round(time.time() - st["started"]),
                "nodes": st["config"]["nodes"], "console": str(self.console),
                "boot_seconds": st.get("boot_seconds"), "startup": st.get("facts", {}).get("startup"),
                **({"paused_while_idle": self.run_state() == "paused"}
                   if st["accelerator"] in PAUSED_WHEN_IDLE else {})}

    def qemu_pid(self) -> int | None:
        st = self.state() or {}
        pid = st.get("qemu_pid")
        if pid and alive(pid):
            return pid
        return descendant(st["pid"], "qemu-system") if st.get("pid") and self.process_alive(st) else None

    def cpu_seconds(self) -> float:
        """CPU time QEMU has used so far (user + system), e.g. to see what an idle VM costs."""
        pid = self.qemu_pid()
        if not pid:
            raise WorkbenchError(f"VM {self.name!r} is not up: no QEMU process")
        fields = stat_fields(pid)
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill_qemu(self, sig: int = signal.SIGKILL) -> int:
        """Test hook: kill the VM's QEMU process (as the OOM killer or a careless
        ``kill`` would); returns its pid."""
        pid = self.qemu_pid()
        if not pid:
            raise WorkbenchError(f"VM {self.name!r} has no QEMU process to kill")
        os.kill(pid, sig)
        return pid

    # -- pausing an idle VM ----------------------------------------------------------
    @contextlib.contextmanager
    def _pause_lock(self):
        """Serialises resume and pause between host processes: a process that ends its
        plan pauses only if no other process has put an owner file down first."""
        with open(self.dir / "pause.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def resume(self, st: dict | None = None) -> None:
        """Let a VM paused while idle run again (before a plan). Nothing for VMs that are
        never paused; a QEMU that cannot be reached is left to the plan's own checks."""
        st = st or self.state() or {}
        if st.get("accelerator") in PAUSED_WHEN_IDLE:
            with self._pause_lock():
                qmp.execute(self.qmp_sock, "cont")

    def pause_if_idle(self, st: dict | None = None) -> bool:
        """Pause a VM of :data:`PAUSED_WHEN_IDLE` once no host process has a plan on it
        (no owner file; an owner whose process died keeps it running until the next
        command cancels its plan). Returns whether it was paused."""
        st = st or self.state() or {}
        if st.get("accelerator") not in PAUSED_WHEN_IDLE:
            return False
        with self._pause_lock():
            if self.spool.has_owners():
                return False
            return qmp.execute(self.qmp_sock, "stop") is not None

    def run_state(self) -> str | None:
        """QEMU's own run state ("running", "paused"), where it has a QMP socket."""
        return qmp.run_state(self.qmp_sock) if self.qmp_sock.exists() else None

    # -- plans ---------------------------------------------------------------------
    def run_plan(self, plan: dict, timeout: float | None = None):
        """Drop a plan and yield its events (and a ``tick`` every :data:`TICK` seconds of
        silence). A VM that dies raises :class:`TargetLost` with the cause; ``timeout``
        bounds the wait for the next event. A consumer that stops early cancels the plan."""
        st = self.state()
        if not st or not self.running():
            raise WorkbenchError(f"VM {self.name!r} is not up: run `workbench vm up`")
        self.spool.cancel_orphans()
        request_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        finished = False
        try:
            with self.spool.owned(request_id):
                self.resume(st)
                console_at = self.log.size()
                answer = Answer(self.spool.drop(plan, request_id))
                last = last_tick = time.time()
                try:
                    while True:
                        for event in answer.new_events():
                            last = last_tick = time.time()
                            if event.get("type") == "start":  # the cause of a death is after this
                                console_at = self.log.size()
                            finished = event.get("type") == "done"
                            yield event
                            if finished:
                                return
                        if not self.process_alive(st):
                            finished = True
                            raise self.death(console_at)
                        now = time.time()
                        if timeout is not None and now - last > timeout:
                            raise WorkbenchError(f"VM {self.name!r} did not answer the {plan.get('op')} plan "
                                                 f"within {timeout:.0f} s (console: {self.console})")
                        if now - last_tick >= TICK:
                            last_tick = now
                            yield {"type": "tick"}
                        time.sleep(0.2)
                finally:
                    if not finished and self.process_alive(st):
                        self.spool.cancel(request_id)     # left running, so that the agent reads it
        finally:
            if finished and self.process_alive(st):         # (its owner file is gone by now)
                self.pause_if_idle(st)

    def blocked(self, pids=(), timeout: float = 120.0, tids=()) -> dict:
        for event in self.run_plan({"op": "blocked", "pids": list(pids), "tids": list(tids)}, timeout=timeout):
            if event.get("type") == "error":
                raise WorkbenchError(event["message"])
            if event.get("type") == "blocked":
                return event
        raise WorkbenchError(f"VM {self.name!r} did not answer the blocked plan")


