"""Facts about the machine the agent runs on: what a plan is checked against and what
a run's manifest records."""

from __future__ import annotations

import gzip
import hashlib
import os
import platform

from ..protocol import agent_code_digest
from . import numa, thp
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


def migration_interfaces(fs: KernelFS) -> dict:
    """Which copy-offload interface this kernel has, its migrators (registered, and
    loadable modules) and knobs; the kernel's own copy is always there."""
    from . import migrators
    d = migrators.detect(fs).describe()
    d["offered"] = d["migrators"] + [m for m in d["loadable"] if m not in d["migrators"]]
    return d


def collect(fs: KernelFS) -> dict:
    release = os.uname().release
    facts = {
        "hostname": os.uname().nodename,
        "kernel_release": release,
        "kernel_config_hash": kernel_config_hash(release),
        "cpu_model": cpu_model(fs),
        "virtualization": virtualization(fs),
        "cpus": os.cpu_count(),
        "numa": numa.topology(fs),
        "thp": thp.has_thp(fs),
        "folio_sizes": thp.offered_folio_sizes(fs),
        "is_root": os.geteuid() == 0,
        "python": platform.python_version(),
        "agent_code": agent_code_digest(),
    }
    facts.update(migration_interfaces(fs))
    facts.update(workload_facts(fs))
    return facts


def workload_facts(fs: KernelFS) -> dict:
    """Which ways of migrating this kernel can run (and what it lacks for the others),
    its memory tiers, and whether it can trace migrations."""
    from . import tracing, workloads
    from .workloads.base import memory_tiers
    return {"workloads": workloads.support(fs), "memory_tiers": memory_tiers(fs),
            "trace_missing": tracing.missing(fs)}
