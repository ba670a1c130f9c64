"""Facts about the machine the agent runs on: what a plan is checked against and what
a run's manifest records."""

from __future__ import annotations

import os
import platform

from ..protocol import agent_code_digest
from ..kernelio import numa, thp
from ..kernelio.kernelfs import KernelFS
from ..kernelio.machine import cpu_model, kernel_config_hash, virtualization


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
