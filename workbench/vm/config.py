"""What a QEMU VM is asked to be, and what this host's QEMU can run: the accelerators
(KVM only where it really works, TCG single-threaded, the instruction-counted clock), the
NUMA nodes and distances, and the ACPI HMAT that makes a CPU-less node a lower memory
tier. :mod:`workbench.vm.numa_vm` boots and runs a VM from a :class:`VMConfig`."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass, replace

from ..errors import WorkbenchError
from ..units import format_size, parse_cpulist, parse_size


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


def qemu_binary() -> str:
    """The QEMU every VM here runs (the system's ``qemu-system-x86_64``)."""
    exe = shutil.which("qemu-system-x86_64")
    if not exe:
        raise WorkbenchError("qemu-system-x86_64 not found: apt-get install qemu-system-x86 (the setup does this)")
    return exe


def crash_reporting_options(pstore_file) -> list[str]:
    """The QEMU options by which a guest's death is named from outside it: a pvpanic
    device (the guest's panic notifier tells QEMU, which sends ``GUEST_PANICKED``) whose
    action is ``none``, so the guest still dumps its log (ramoops), flushes its consoles
    and reboots (``panic=-1``) as it would without one; and the ramoops region, an
    ``ivshmem-plain`` BAR backed by ``pstore_file`` (shared, so the host can read what the
    guest wrote once QEMU has exited; :mod:`workbench.vm.pstore`)."""
    from ..protocol import PSTORE_SIZE
    return ["-device pvpanic-pci", "-action panic=none",
            f"-object memory-backend-file,id=wbpstore,size={PSTORE_SIZE},mem-path={pstore_file},share=on",
            "-device ivshmem-plain,memdev=wbpstore,id=wbpstore"]


def kvm_usable(fs=None) -> tuple[bool, str]:
    """Whether KVM can run a guest on this host: /dev/kvm usable *and* the CPU shows vmx or
    svm (a paravirtual /dev/kvm without them fails with "KVM internal error")."""
    from ..kernelio.kernelfs import RealFS
    from ..kernelio.machine import cpu_flags
    if not os.path.exists("/dev/kvm"):
        return False, "no /dev/kvm"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is not accessible to this user"
    flags = cpu_flags(fs or RealFS())
    if "vmx" not in flags and "svm" not in flags:
        return False, "/dev/kvm exists but the CPU shows neither vmx nor svm (paravirtual KVM cannot run a guest)"
    return True, "kvm usable"


#: modules that udev loads in a vng guest for what QEMU's q35 machine and ``-cpu max``
#: bring (KVM for the emulated SVM, the ICH9 chipset's watchdog and SMBus, AHCI and the
#: CD-ROM, the CPU's crypto and CRC instructions, PS/2 input, the PC speaker) and no
#: trial uses. Named on the guest's command line as ``modprobe.blacklist=``, which
#: libkmod applies to udev's loading by device alias, so a module can still be loaded by
#: name. Under TCG, loading them held the stock 6.12 guest's start (udev settling) for
#: 10 of its 15.5 s before the agent ran; blacklisted, the agent ran at 8.5 s.
UNUSED_GUEST_MODULES = ("kvm_amd", "kvm_intel", "kvm", "irqbypass", "ccp",
                        "iTCO_wdt", "iTCO_vendor_support", "intel_pmc_bxt", "lpc_ich", "i6300esb",
                        "i2c_i801", "i2c_smbus", "ahci", "libahci", "libata", "sr_mod", "cdrom", "sg",
                        "aesni_intel", "ghash_clmulni_intel", "sha1_ssse3", "sha256_ssse3", "sha512_ssse3",
                        "crc32_pclmul", "crc32c_intel", "crct10dif_pclmul", "polyval_clmulni",
                        "evdev", "psmouse", "serio_raw", "joydev", "pcspkr", "qemu_fw_cfg", "powernow_k8")

#: where vng looks for a virtiofsd (virtme/commands/run.py, VirtioFS._get_virtiofsd_path)
VIRTIOFSD_PATHS = ("/usr/libexec/virtiofsd", "/usr/lib/virtiofsd/virtiofsd", "/usr/lib/virtiofsd",
                   "/usr/lib/qemu/virtiofsd")


@functools.lru_cache(maxsize=1)
def vng_can_use_virtiofs() -> bool:
    """Whether vng will share the host's root through virtio-fs: only with the Rust
    virtiofsd (its options are ``--shared-dir``, ``--socket-path``). Debian 12 has only
    QEMU 7.2's C daemon in /usr/lib/qemu, which answers ``--version`` (so vng picks it)
    but not those options; vng then waited 3.1 s for it once per shared directory (6.3 of
    the 6.7 s vng took to start QEMU here) before it fell back to 9p. Without a Rust
    daemon the VM asks for 9p at once (``--force-9p``)."""
    for path in (shutil.which("virtiofsd"), *VIRTIOFSD_PATHS):
        if not path or not os.access(path, os.X_OK):
            continue
        try:
            out = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if "--shared-dir" in out.stdout + out.stderr:
            return True
    return False


#: two nodes of 1536M with one CPU each: the layout the series' benchmark needs, small
DEFAULT_NODES = (("1536M", "0"), ("1536M", "1"))
#: what a workload that needs a lower memory tier (demotion) boots when nothing else was
#: asked for: the default nodes and a CPU-less one, which HMAT makes a lower tier
TIERED_NODES = DEFAULT_NODES + (("768M", ""),)
ACCELERATORS = ("auto", "kvm", "tcg", "icount")
#: QEMU's TCG accelerator as every TCG guest here runs: one host thread for all vCPUs.
#: Multi-threaded TCG (QEMU's default for x86 guests on x86 hosts) lets one vCPU run a stale
#: translation of kernel text that another vCPU is live-patching: QEMU 7.2 (Debian 12) with
#: Linux 6.12 then dies with "Oops: int3" at a static-key site (ttwu_do_activate,
#: __schedule). Every trial switches trace events on and off, which patches such sites; the
#: series' static call, switched when the migrator changes, is patched the same way. A
#: guest toggling one migrate event while both vCPUs woke tasks died in 3 of 3 boots
#: multi-threaded (3 to 56 s into the loop) and survived 15 min (1362 toggles)
#: single-threaded. QEMU 10.0.2 (bookworm-backports) is no cure: multi-threaded, the
#: same guest died with the same oops in 3 of 3 boots, 57.5 to 268 s (437 to 4382
#: toggles) into the loop (scripts/tcg-int3-reproducer.sh). The price: a 2-vCPU guest gets one host core, which
#: under TCG only moves timings that are functional anyway.
TCG_ACCEL = "tcg,thread=single"
#: QEMU options of the instruction-counted clock: single-threaded TCG, the guest's clock
#: advancing one nanosecond per executed guest instruction (shift=0), and no real-time
#: sleeping when every vCPU is idle (sleep=off: the clock jumps to the next timer), so
#: guest time is a function of the instructions executed, the same on every run
ICOUNT_QEMU_OPTS = f"-accel {TCG_ACCEL} -icount shift=0,sleep=off"
#: accelerators whose VM is paused (QMP ``stop``) while no host process has a plan on it:
#: with ``sleep=off`` an idle icount guest's clock jumps from timer to timer, so its
#: agent's idle polling runs flat out (a booted, idle icount VM used 1.31 host cores);
#: paused, it used none, and its clock stands still until the next plan resumes it
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
    """'1536M:0,1536M:1' (MEM[:CPUS] per node; no CPUS, or ``none``, = a memory-only node,
    as ``--nodes``' help says) -> [[mem, cpus], ...]."""
    nodes = []
    for part in str(text).split(","):
        mem, _, cpus = part.partition(":")
        cpus = "" if cpus.strip().lower() == "none" else cpus
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
