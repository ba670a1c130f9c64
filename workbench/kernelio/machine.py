"""What a machine is, read from inside it: its kernel's configuration, CPU model and
flags, and what it runs on (bare metal, KVM, QEMU's TCG). Both sides read it: the agent
in its probe, the host to tell whether its own KVM can run a guest."""

from __future__ import annotations

import gzip
import hashlib
import platform

from . import procstat
from .kernelfs import KernelFS


def kernel_config_hash(release: str) -> str | None:
    """sha256 (first 16 hex digits) of the running kernel's config, when one is visible."""
    for path, opener in (("/proc/config.gz", gzip.open), (f"/boot/config-{release}", open)):
        try:
            with opener(path, "rb") as f:
                return hashlib.sha256(f.read()).hexdigest()[:16]
        except OSError:
            continue
    return None


def cpu_model(fs: KernelFS) -> str:
    try:
        for line in fs.read("/proc/cpuinfo").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags(fs: KernelFS) -> list[str]:
    """The first CPU's flags in /proc/cpuinfo (vmx/svm say whether KVM can run a guest)."""
    try:
        return next((ln.split(":", 1)[1].split() for ln in fs.read("/proc/cpuinfo").splitlines()
                     if ln.startswith("flags")), [])
    except OSError:
        return []


def virtualization(fs: KernelFS) -> str:
    """What this machine runs on, as far as it can tell from inside: ``none`` (no
    hypervisor CPUID bit: bare metal), ``kvm`` (a hypervisor offering kvm-clock), ``tcg``
    (QEMU without KVM: an emulated CPU, so its timings are functional only; e.g. the
    lab-machine VM on a host without usable KVM) or ``other`` (another hypervisor)."""
    if "hypervisor" not in cpu_flags(fs):
        return "none"

    def read(path):
        try:
            return fs.read(path)
        except OSError:
            return ""
    if "kvm-clock" in read("/sys/devices/system/clocksource/clocksource0/available_clocksource").split():
        return "kvm"
    return "tcg" if read("/sys/class/dmi/id/sys_vendor").strip() == "QEMU" else "other"


def current_cpu(fs: KernelFS) -> int | None:
    """The CPU the calling thread runs on now: field 39 of /proc/thread-self/stat (v3.17),
    None where that is not readable (a fake kernel)."""
    try:
        stat = fs.read("/proc/thread-self/stat")
    except OSError:
        return None
    fields = procstat.parse(stat)[1]
    return int(fields[36]) if len(fields) > 36 else None
