"""A QEMU VM with several NUMA nodes, booted through virtme-ng, kept up for a session.

``up`` boots the chosen kernel with ``vng --run`` in the background; the guest sees the
host's files, so it runs this very package: ``python -m workbench.agent serve``, which
answers plans dropped as files in a spool directory shared read-write with the host.
``down`` asks the agent to stop (the guest then powers off), killing QEMU if it does not.

Acceleration: KVM only where it really works (``/dev/kvm`` usable *and* the CPU shows
vmx or svm); otherwise TCG, single-threaded (see ``TCG_ACCEL``), and every result says
so (TCG timings are functional only).
vng's own exit status is not trusted (1.42 exits 255 even on success): the agent's
ready file and the plan's ``done`` event are the status.

The guest's kernel console goes to ``console.log`` (a virtio console of its own; vng
sends its serial console, mixed with its and QEMU's messages, to their stderr, kept in
``qemu.log``).
A VM that dies during a plan raises :class:`~.base.TargetLost` with the cause read from
its console (the panic's message, a power-off) or QEMU's own last word, and keeps that
boot's console and QEMU log under ``deaths/`` (the next boot starts both afresh). A plan whose
host went away (killed, Ctrl-C) is cancelled by the next command that uses the VM, so a
VM left behind is reused as it is; one whose boot was interrupted is stopped and booted
again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from . import kernel_images, qmp
from .base import TargetLost, clock_of
from .. import paths
from ..agent import kernellog
from ..agent.kernelfs import RealFS
from ..errors import WorkbenchError
from ..units import format_size, parse_cpulist, parse_size

#: what starts a kernel problem report on the console (one list, :mod:`workbench.agent.kernellog`)
CONSOLE_PROBLEMS = kernellog.PROBLEMS
#: a ``tick`` event after this many seconds without news from the guest
TICK = 2.0


def icount_supported(qemu: str = "qemu-system-x86_64") -> tuple[bool, str]:
    """Whether this QEMU can run the instruction-counted clock (``-icount`` and TCG)."""
    exe = shutil.which(qemu)
    if not exe:
        return False, f"{qemu} not found (apt-get install qemu-system-x86)"
    try:
        helptext = subprocess.run([exe, "-help"], capture_output=True, text=True, timeout=30).stdout
        accels = subprocess.run([exe, "-accel", "help"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{qemu} did not answer: {exc}"
    if "-icount" not in helptext:
        return False, f"{qemu} has no -icount option"
    if "tcg" not in accels.split():
        return False, f"{qemu} has no TCG accelerator (icount needs it)"
    return True, "-icount shift=0 with single-threaded TCG"


def kvm_usable(fs=None) -> tuple[bool, str]:
    """Whether KVM can run a guest on this host: /dev/kvm usable *and* the CPU shows vmx or
    svm (a paravirtual /dev/kvm without them fails with "KVM internal error")."""
    from ..agent.kernelfs import RealFS
    from ..agent.probe import cpu_flags
    if not os.path.exists("/dev/kvm"):
        return False, "no /dev/kvm"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is not accessible to this user"
    flags = cpu_flags(fs or RealFS())
    if "vmx" not in flags and "svm" not in flags:
        return False, "/dev/kvm exists but the CPU shows neither vmx nor svm (paravirtual KVM cannot run a guest)"
    return True, "kvm usable"


#: two nodes of 1536M with one CPU each: the layout the series' benchmark needs, small
DEFAULT_NODES = (("1536M", "0"), ("1536M", "1"))
#: what a workload that needs a lower memory tier (demotion) boots when nothing else was
#: asked for: the default nodes and a CPU-less one, which HMAT makes a lower tier
TIERED_NODES = DEFAULT_NODES + (("768M", ""),)
ACCELERATORS = ("auto", "kvm", "tcg", "icount")
#: QEMU options of the instruction-counted clock: single-threaded TCG, the guest's clock
#: advancing one nanosecond per executed guest instruction (shift=0), and no real-time
#: sleeping when every vCPU is idle (sleep=off: the clock jumps to the next timer), so
#: guest time is a function of the instructions executed, the same on every run
ICOUNT_QEMU_OPTS = "-accel tcg,thread=single -icount shift=0,sleep=off"
#: QEMU's TCG accelerator as every TCG guest here runs: one host thread for all vCPUs.
#: Multi-threaded TCG (QEMU's default for x86 guests on x86 hosts) lets one vCPU run a stale
#: translation of kernel text that another vCPU is live-patching: QEMU 7.2 (Debian 12) with
#: Linux 6.12 then dies with "Oops: int3" at a static-key site (ttwu_do_activate,
#: __schedule). Every trial switches trace events on and off, which patches such sites; the
#: series' static call, switched when the migrator changes, is patched the same way. A
#: guest toggling one migrate event while both vCPUs woke tasks died in 3 of 3 boots
#: multi-threaded (3 to 56 s into the loop) and survived 15 min (1362 toggles)
#: single-threaded. The price: a 2-vCPU guest gets one host core, which under TCG only
#: moves timings that are functional anyway.
TCG_ACCEL = "tcg,thread=single"
#: accelerators whose VM is paused (QMP ``stop``) while no host process has a plan on it:
#: with ``sleep=off`` an idle icount guest's clock jumps from timer to timer, so its
#: agent's idle polling runs flat out and kept 60-80% of a host core busy; paused, the
#: guest costs nothing and its clock stands still until the next plan resumes it
PAUSED_WHEN_IDLE = ("icount",)


#: ACPI HMAT figures QEMU gives the guest when a node has no CPUs (``-machine hmat=on``):
#: memory nodes with CPUs are DRAM (100 ns, 20 GB/s from their own CPUs; 150 ns, 15 GB/s
#: from the others), a CPU-less node is slower memory behind a link, like CXL (250 ns,
#: 8 GB/s from its initiator; 300 ns, 6 GB/s from the others). Linux computes each node's
#: abstract distance from these (drivers/acpi/numa/hmat.c, hmat_calculate_adistance(),
#: since v6.7: "acpi, hmat: calculate abstract distance with HMAT") and puts the CPU-less
#: node in a lower memory tier, so
#: reclaim demotes to it; without HMAT, 6.12 puts a CPU-less node in the DRAM tier.
HMAT_DRAM = {"local": (100, "20G"), "remote": (150, "15G")}
HMAT_SLOW = {"local": (250, "8G"), "remote": (300, "6G")}


def hmat_options(nodes: list, distances: list) -> tuple[dict, list]:
    """({cpu-less node: its initiator node}, QEMU options) describing every CPU-less node of
    ``nodes`` as a lower memory tier; ({}, []) when every node has CPUs. The initiator of
    a CPU-less node is the CPU node nearest to it (``distances``; default the first)."""
    cpu_nodes = [i for i, (_, cpus) in enumerate(nodes) if cpus]
    slow = [i for i, (_, cpus) in enumerate(nodes) if not cpus]
    if not slow or not cpu_nodes:
        return {}, []
    dist = {(min(s, d), max(s, d)): v for s, d, v in distances or ()}
    initiator = {n: min(cpu_nodes, key=lambda c: (dist.get((min(c, n), max(c, n)), 20), c)) for n in slow}
    opts = ["-machine hmat=on"]
    for i in cpu_nodes:
        for t in range(len(nodes)):
            table = HMAT_SLOW if t in initiator else HMAT_DRAM
            latency, bandwidth = table["local" if i == initiator.get(t, t) else "remote"]
            opts += [f"-numa hmat-lb,initiator={i},target={t},hierarchy=memory,data-type=access-latency,"
                     f"latency={latency}",
                     f"-numa hmat-lb,initiator={i},target={t},hierarchy=memory,data-type=access-bandwidth,"
                     f"bandwidth={bandwidth}"]
    return initiator, opts


def parse_nodes(text: str) -> list:
    """'1536M:0,1536M:1' (MEM[:CPUS] per node; no CPUS = a memory-only node) -> [[mem, cpus], ...]."""
    nodes = []
    for part in str(text).split(","):
        mem, _, cpus = part.partition(":")
        nodes.append([format_size(parse_size(mem, f"node memory in {part!r} (MEM[:CPUS], e.g. 1536M:0)")), cpus])
    return nodes


def parse_distances(items) -> list:
    """['0,1=30', ...] -> [[0, 1, 30], ...]."""
    out = []
    for d in items or ():
        try:
            pair, val = d.split("=")
            src, dst = pair.split(",")
            out.append([int(src), int(dst), int(val)])
        except ValueError:
            raise WorkbenchError(f"distance {d!r} is not SRC,DST=VAL (e.g. 0,1=20)") from None
    return out


@dataclass
class VMConfig:
    """What a VM is booted with. A field left None was not asked for: a VM that is
    already up is used as it is, and a VM booted anew gets the default."""

    #: stock, patched, vanilla, or a path to an image or built tree (default stock)
    kernel: str | None = None
    #: one (memory, cpu list) per node, e.g. ("1536M", "0") (default: DEFAULT_NODES)
    nodes: list | None = None
    #: [src, dst, distance] triples; empty means QEMU's defaults (10 local, 20 remote)
    distances: list | None = None
    #: auto, kvm, tcg or icount (default auto: KVM only where it really works, else TCG;
    #: icount, never chosen by auto, is TCG with an instruction-counted clock)
    accel: str | None = None
    name: str = "default"
    boot_timeout: float = 900.0
    #: describe CPU-less nodes as a lower memory tier through ACPI HMAT (see hmat_options);
    #: None: yes whenever a node has no CPUs
    hmat: bool | None = None

    def resolved(self) -> "VMConfig":
        """This config with every field that was not asked for at its default."""
        return replace(self, kernel=self.kernel or "stock",
                       nodes=[list(n) for n in (self.nodes or DEFAULT_NODES)],
                       distances=list(self.distances or []), accel=self.accel or "auto")

    def differences(self, state: dict) -> list[str]:
        """What was asked for explicitly and differs from the VM that is up (its state)."""
        up = state["config"]
        out = []
        if self.kernel is not None and self.kernel != up["kernel"]:
            out.append(f"kernel {up['kernel']!r}, not {self.kernel!r}")
        if self.nodes is not None and [list(n) for n in self.nodes] != up["nodes"]:
            out.append(f"nodes {up['nodes']}, not {[list(n) for n in self.nodes]}")
        if self.distances is not None and list(self.distances) != up["distances"]:
            out.append(f"distances {up['distances']}, not {list(self.distances)}")
        if self.accel is not None and self.accel != "auto" and self.accel != state.get("accelerator"):
            out.append(f"accelerator {state.get('accelerator')}, not {self.accel}")
        return out

    def validate(self):
        accel = self.accel or "auto"
        if accel not in ACCELERATORS:
            raise WorkbenchError(f"accelerator {accel!r} is not one of {', '.join(ACCELERATORS)}")
        nodes = self._nodes
        if len(nodes) < 1:
            raise WorkbenchError("a VM needs at least one NUMA node")
        for mem, cpus in nodes:
            parse_size(mem, "node memory")
            if cpus and not all(p.replace("-", "").isdigit() for p in str(cpus).split(",")):
                raise WorkbenchError(f"node cpus {cpus!r} is not a cpu list like 0 or 0-1")
        if self.ncpus == 0:
            raise WorkbenchError("no VM node has CPUs; give at least one node MEM:CPUS (e.g. 1536M:0)")
        for d in self.distances or ():
            if len(d) != 3 or not all(isinstance(x, int) for x in d) or d[2] < 10:
                raise WorkbenchError(f"node distance {d!r} must be [src, dst, value>=10]")

    @property
    def _nodes(self) -> list:
        return [list(n) for n in (self.nodes or DEFAULT_NODES)]

    def all_distances(self) -> list:
        """The given distances, completed with 20 for every other pair: QEMU wants a
        distance for each pair as soon as one is given."""
        if not self.distances:
            return []
        given = {(min(s, d), max(s, d)) for s, d, _ in self.distances}
        n = len(self._nodes)
        return list(self.distances) + [[i, j, 20] for i in range(n) for j in range(i + 1, n)
                                       if (i, j) not in given]

    @property
    def memory(self) -> int:
        return sum(parse_size(m) for m, _ in self._nodes)

    @property
    def ncpus(self) -> int:
        return len({c for _, cpus in self._nodes for c in parse_cpulist(str(cpus))})

    def sockets(self) -> int:
        """One socket per node with CPUs when they split evenly. QEMU's default puts every
        CPU in one socket sharing one LLC across nodes, which the kernel WARNs about at
        boot (topology_sane: "llc-sibling ... is not on the same node")."""
        per_node = [len(parse_cpulist(str(c))) for _, c in self._nodes if c]
        if per_node and len(set(per_node)) == 1 and sum(per_node) == self.ncpus:
            return len(per_node)
        return 1

    def accelerator(self) -> str:
        if self.accel not in (None, "auto"):
            return self.accel
        return "kvm" if kvm_usable()[0] else "tcg"


class VM:
    """One named VM: its state lives in ``<cache>/vm/<name>/``."""

    def __init__(self, name: str = "default"):
        self.name = name
        self.dir = paths.cache_dir() / "vm" / name
        self.spool = self.dir / "spool"
        self.console = self.dir / "console.log"
        #: what vng and QEMU themselves say (their stderr), apart from the guest's console
        self.qemu_log = self.dir / "qemu.log"
        self.state_file = self.dir / "state.json"
        #: QEMU's QMP socket (VMs that pause when idle, :data:`PAUSED_WHEN_IDLE`)
        self.qmp_sock = self.dir / "qmp.sock"

    # -- state ---------------------------------------------------------------------
    def state(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        st = self.state()
        if not st:
            return False
        if not _alive(st["pid"], st.get("boot_id"), st.get("pid_start")):
            return False
        ready = self.ready()
        return ready is not None and ready.get("token") == st["token"]

    def _vng_alive(self, st: dict) -> bool:
        return _alive(st["pid"], st.get("boot_id"), st.get("pid_start"))

    def ready(self) -> dict | None:
        try:
            return json.loads((self.spool / "ready.json").read_text())
        except (OSError, ValueError):
            return None

    def console_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.console.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no console log)"

    def qemu_messages(self) -> list[str]:
        """What vng and QEMU said themselves: their stderr without the copy of the
        kernel console that vng sends there too."""
        try:
            text = self.qemu_log.read_text(errors="replace")
        except OSError:
            return []
        return [ln for ln in text.splitlines() if ln.strip() and not kernellog._STAMP.match(ln)]

    def failure_detail(self, lines: int = 25) -> str:
        """The console's tail, then what vng/QEMU wrote to their stderr (the guest's
        console cannot say why QEMU itself went away)."""
        qemu = "\n".join(self.qemu_messages()[-lines:]) if self.qemu_log.exists() else "(no log)"
        return f"{self.console_tail(lines)}\n--- vng/QEMU stderr ({self.qemu_log}) ---\n{qemu or '(nothing)'}"

    def console_since(self, offset: int) -> list[str]:
        try:
            return self.console.read_bytes()[offset:].decode(errors="replace").splitlines()
        except OSError:
            return []

    def death(self, since: int = 0) -> TargetLost:
        """What to raise for a VM that died: the cause from its console since byte
        ``since`` (a panic, a power-off) or QEMU's own last message."""
        cause, report = kernellog.death_cause(self.console_since(since) or self.console_since(0)[-200:],
                                              self.qemu_messages())
        kept = self.keep_logs()
        return TargetLost(f"VM {self.name!r} died during a plan: {cause} (console: {kept / self.console.name}, "
                          f"QEMU's own messages: {kept / self.qemu_log.name})", kind="vm_died", cause=cause, logs=str(kept),
                          detail=(report + "\n---\n" if report else "") + self.failure_detail())

    #: how many died or failed boots keep their console and QEMU log under ``deaths/``
    KEEP_DEATHS = 10

    def keep_logs(self) -> Path:
        """Copy this boot's console and QEMU log to ``deaths/<time>/``, where the next boot
        (which starts both afresh) cannot overwrite them; the oldest beyond ``KEEP_DEATHS``
        go. Returns the directory the message should name."""
        root = self.dir / "deaths"
        kept = root / time.strftime("%Y%m%d-%H%M%S")
        n = 1
        while kept.exists():
            n += 1
            kept = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{n:03d}"
        kept.mkdir(parents=True)
        for f in (self.console, self.qemu_log):
            try:
                shutil.copyfile(f, kept / f.name)
            except OSError:
                pass
        for old in sorted(p for p in root.iterdir() if p.is_dir())[:-self.KEEP_DEATHS]:
            shutil.rmtree(old, ignore_errors=True)
        return kept

    def console_problems(self, since: int = 0) -> list[str]:
        """Kernel WARN/BUG/oops lines on the console (from byte offset ``since``)."""
        try:
            text = self.console.read_bytes()[since:].decode(errors="replace")
        except OSError:
            return []
        return [ln for ln in text.splitlines() if any(p in ln for p in CONSOLE_PROBLEMS)]

    def console_size(self) -> int:
        try:
            return self.console.stat().st_size
        except OSError:
            return 0

    # -- lifecycle -----------------------------------------------------------------
    def command(self, config: VMConfig, image: kernel_images.KernelImage, token: str) -> list[str]:
        vng = shutil.which("vng", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        if not vng:
            raise WorkbenchError("vng (virtme-ng) is not installed: pip install virtme-ng (the setup does this)")
        agent = (f"{shlex.quote(sys.executable)} -m workbench.agent serve "
                 f"--spool {shlex.quote(str(self.spool))} --token {token}")
        cmd = [vng, "--run", image.run_arg, "-v", "--memory", format_size(config.memory),
               "--cpus", str(config.ncpus), f"--rwdir={paths.cache_dir()}", "--cwd", str(paths.REPO)]
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
        if accel in PAUSED_WHEN_IDLE:
            qemu_opts.append(qmp.option(self.qmp_sock))
        elif accel == "tcg":
            qemu_opts.append(f"-accel {TCG_ACCEL}")
        # the kernel console also on a virtio console of its own (hvc0), written by QEMU into
        # console.log: vng sends its serial console (ttyS0) to QEMU's stderr, mixed with
        # vng's and QEMU's own messages, and a second serial port cannot be a second
        # console (one 8250 console per kernel)
        cmd += ["--append", "console=hvc0"]
        qemu_opts.append(f"-chardev file,id=wbconsole,path={self.console} -device virtio-serial-pci,id=wbconsole-bus "
                         "-device virtconsole,bus=wbconsole-bus.0,chardev=wbconsole")
        cmd += ["--exec", agent]
        # vng takes --qemu-opts last (it swallows what follows)
        return cmd + ([f"--qemu-opts={' '.join(qemu_opts)}"] if qemu_opts else [])

    def up(self, config: VMConfig, progress=None, notify=None) -> dict:
        """Boot (or reuse) the VM; returns its state. Raises with the console tail on failure.

        A VM that is up is reused when nothing asked for differs from it (a field of
        ``config`` left None asks for nothing); ``notify`` then hears which kernel it runs."""
        config.validate()
        st = self.state()
        if self.running():
            diff = config.differences(st)
            if diff:
                raise WorkbenchError(f"VM {self.name!r} is already up with {'; '.join(diff)}: run "
                                     f"`workbench vm down --vm-name {self.name}` first, or leave the option out "
                                     "to use it as it is")
            if notify:
                facts = st.get("facts", {})
                notify(f"using VM {self.name!r}, already up: kernel {st['config']['kernel']} "
                       f"({facts.get('kernel_release', '?')}), {st.get('accelerator')}")
            return st  # the image it booted stays what it is, even if the tree is rebuilt meanwhile
        config = config.resolved()
        image = kernel_images.resolve(config.kernel)
        self.down(quiet=True)
        for d in (self.spool / "requests", self.spool / "responses"):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
        for f in ("ready.json", "stopped"):
            (self.spool / f).unlink(missing_ok=True)
        self.qmp_sock.unlink(missing_ok=True)
        token = uuid.uuid4().hex[:12]
        cmd = self.command(config, image, token)
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.console.write_bytes(b"")
        with open(self.qemu_log, "wb") as qemu_log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=qemu_log, stderr=qemu_log,
                                    env=env, start_new_session=True, cwd=str(paths.REPO))
        state = {"pid": proc.pid, "boot_id": _boot_id(), "pid_start": _start_time(proc.pid),
                 "token": token, "config": asdict(config), "kernel": asdict(image),
                 "kernel_config_hash": image.config_hash(), "accelerator": config.accelerator(),
                 "clock": clock_of(config.accelerator()),
                 "started": time.time(), "command": cmd}
        self.state_file.write_text(json.dumps(state, indent=1, default=str))
        deadline = time.time() + config.boot_timeout
        while True:
            ready = self.ready()
            if ready and ready.get("token") == token:
                state["boot_seconds"] = round(time.time() - state["started"], 1)
                state["facts"] = ready["facts"]
                state["qemu_pid"] = _descendant(proc.pid, "qemu-system")
                self.state_file.write_text(json.dumps(state, indent=1, default=str))
                self.pause_if_idle(state)
                return state
            if proc.poll() is not None or time.time() > deadline:
                why = "exited" if proc.poll() is not None else f"was not ready after {config.boot_timeout:.0f} s"
                self.down(quiet=True)
                kept = self.keep_logs()
                raise WorkbenchError(f"VM {self.name!r} failed to boot kernel {config.kernel!r}: QEMU {why} "
                                     f"(console: {kept / self.console.name}, "
                                     f"QEMU's own messages: {kept / self.qemu_log.name})",
                                     detail=self.failure_detail())
            if progress:
                progress(time.time() - state["started"])
            time.sleep(0.5)

    def down(self, quiet: bool = False, timeout: float = 60.0, force: bool = False) -> bool:
        """Stop the VM: ask its agent to stop (the guest then powers off), and kill QEMU
        if it does not (at once with ``force``: a guest stuck in a trial)."""
        st = self.state()
        if not st:
            return False
        pid = st["pid"]
        alive = self._vng_alive(st)
        if alive and self.ready() and not force:
            self.resume(st)                 # a paused guest cannot read its shutdown
            self._drop({"op": "shutdown"}, "zz-shutdown")
            end = time.time() + timeout
            while self._vng_alive(st) and time.time() < end:
                time.sleep(0.5)
        if self._vng_alive(st):
            try:
                os.killpg(pid, signal.SIGTERM)
                time.sleep(1)
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        self.state_file.unlink(missing_ok=True)
        return alive

    def status(self) -> dict:
        st = self.state()
        if not st or not self.running():
            return {"name": self.name, "running": False}
        return {"name": self.name, "running": True, "pid": st["pid"], "kernel": st["config"]["kernel"],
                "kernel_release": st.get("facts", {}).get("kernel_release"),
                "accelerator": st["accelerator"], "uptime_s": round(time.time() - st["started"]),
                "nodes": st["config"]["nodes"], "console": str(self.console),
                **({"paused_while_idle": self.run_state() == "paused"}
                   if st["accelerator"] in PAUSED_WHEN_IDLE else {})}

    def qemu_pid(self) -> int | None:
        st = self.state() or {}
        pid = st.get("qemu_pid")
        if pid and _alive(pid):
            return pid
        return _descendant(st["pid"], "qemu-system") if st.get("pid") and self._vng_alive(st) else None

    def cpu_seconds(self) -> float:
        """CPU time QEMU has used so far (user + system), e.g. to see what an idle VM costs."""
        pid = self.qemu_pid()
        if not pid:
            raise WorkbenchError(f"VM {self.name!r} is not up: no QEMU process")
        fields = _stat(pid)
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
            owners = self.spool / "owners"
            if owners.is_dir() and any(owners.glob("*.json")):
                return False
            return qmp.execute(self.qmp_sock, "stop") is not None

    def run_state(self) -> str | None:
        """QEMU's own run state ("running", "paused"), where it has a QMP socket."""
        return qmp.run_state(self.qmp_sock) if self.qmp_sock.exists() else None

    # -- plans ---------------------------------------------------------------------
    def _drop(self, plan: dict, request_id: str) -> Path:
        req = self.spool / "requests" / f"{request_id}.json"
        tmp = req.with_suffix(".tmp")
        tmp.write_text(json.dumps(plan))
        tmp.rename(req)
        return self.spool / "responses" / f"{request_id}.jsonl"

    def cancel(self, request_id: str) -> None:
        """Stop a plan between two trials (the agent answers it with an error)."""
        self._drop({"op": "cancel", "request": request_id}, f"{request_id}-cancel")

    def cancel_orphans(self) -> list[str]:
        """Cancel the plans whose host process is gone (killed, its machine rebooted), so
        the guest does not go on with trials nobody reads; returns their ids."""
        owners = self.spool / "owners"
        gone = []
        for f in sorted(owners.glob("*.json")) if owners.is_dir() else ():
            try:
                o = json.loads(f.read_text())
            except (OSError, ValueError):
                o = {}
            if not _alive(o.get("pid", 0), o.get("boot_id"), o.get("start")):
                done = self.spool / "responses" / f"{f.stem}.jsonl"
                if not (done.exists() and '"done"' in done.read_text()[-200:]):
                    self.cancel(f.stem)
                    gone.append(f.stem)
                f.unlink(missing_ok=True)
        return gone

    def run_plan(self, plan: dict, timeout: float | None = None):
        """Drop a plan and yield its events (and a ``tick`` every :data:`TICK` seconds of
        silence). A VM that dies raises :class:`TargetLost` with the cause; ``timeout``
        bounds the wait for the next event. A consumer that stops early cancels the plan."""
        st = self.state()
        if not st or not self.running():
            raise WorkbenchError(f"VM {self.name!r} is not up: run `workbench vm up`")
        self.cancel_orphans()
        request_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        owner = self.spool / "owners" / f"{request_id}.json"
        owner.parent.mkdir(exist_ok=True)
        owner.write_text(json.dumps({"pid": os.getpid(), "boot_id": _boot_id(), "start": _start_time(os.getpid())}))
        self.resume(st)
        console_at = self.console_size()
        out = self._drop(plan, request_id)
        offset, buffer, finished = 0, "", False
        last = last_tick = time.time()
        try:
            while True:
                if out.exists():
                    with open(out) as f:
                        f.seek(offset)
                        chunk = f.read()
                        offset = f.tell()
                    buffer += chunk
                    *lines, buffer = buffer.split("\n")
                    for line in lines:
                        if line.strip():
                            event = json.loads(line)
                            last = last_tick = time.time()
                            if event.get("type") == "start":  # the cause of a death is after this
                                console_at = self.console_size()
                            if event.get("type") == "done":
                                finished = True
                            yield event
                            if finished:
                                return
                if not self._vng_alive(st):
                    finished = True
                    raise self.death(console_at)
                now = time.time()
                if timeout is not None and now - last > timeout:
                    raise WorkbenchError(f"VM {self.name!r} did not answer the {plan.get('op')} plan within "
                                         f"{timeout:.0f} s (console: {self.console})")
                if now - last_tick >= TICK:
                    last_tick = now
                    yield {"type": "tick"}
                time.sleep(0.2)
        finally:
            owner.unlink(missing_ok=True)
            if not finished and self._vng_alive(st):
                self.cancel(request_id)     # left running, so that the agent reads it
            elif finished and self._vng_alive(st):
                self.pause_if_idle(st)

    def blocked(self, pids=(), timeout: float = 120.0, tids=()) -> dict:
        for event in self.run_plan({"op": "blocked", "pids": list(pids), "tids": list(tids)}, timeout=timeout):
            if event.get("type") == "error":
                raise WorkbenchError(event["message"])
            if event.get("type") == "blocked":
                return event
        raise WorkbenchError(f"VM {self.name!r} did not answer the blocked plan")


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (field 3 is [0])."""
    text = RealFS().read(f"/proc/{pid}/stat")
    return text[text.rindex(")") + 2:].split()


def _boot_id() -> str | None:
    try:
        return RealFS().read("/proc/sys/kernel/random/boot_id")
    except OSError:
        return None


def _start_time(pid: int) -> int | None:
    try:
        return int(_stat(pid)[19])
    except (OSError, IndexError, ValueError):
        return None


def _descendant(pid: int, prefix: str) -> int | None:
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
        comms[int(entry)] = text[text.index("(") + 1:text.rindex(")")]
        children.setdefault(int(text[text.rindex(")") + 2:].split()[1]), []).append(int(entry))
    todo = list(children.get(pid, []))
    while todo:
        p = todo.pop(0)
        if comms.get(p, "").startswith(prefix):
            return p
        todo += children.get(p, [])
    return None


def _alive(pid: int, boot_id: str | None = None, start: int | None = None) -> bool:
    """Whether ``pid`` is a live process, and the same one that was recorded: a pid of a
    machine that has rebooted since (``boot_id``) or reused by another process
    (``start``, its start time) is not."""
    if not pid:
        return False
    if boot_id is not None and boot_id != _boot_id():
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie child of this process is not alive
        fields = _stat(pid)
    except (OSError, ValueError):
        return True
    if fields[0] == "Z":
        return False
    return start is None or int(fields[19]) == start
