"""Every way pages migrate, as the host and the agent both know it.

One entry per workload: its ``--workload`` name, the migration reason it runs under,
which kernel version brought its entry point, whether the caller names the destination,
and the checks of a plan against a target's facts (NUMA nodes and their CPUs, memory
tiers), which the host makes before anything runs and the agent again when the trial
arrives. How a workload runs, and what a kernel lacks for it, is the agent's
(:mod:`workbench.agent.workloads`), whose classes take everything here from their entry.

The order here is the order every list shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import WorkbenchError

DEFAULT = "move-pages"


def node_cpus(facts: dict, node: int) -> list[int]:
    """The CPUs of ``node`` in a target's facts ([] for a CPU-less node)."""
    return next((n.get("cpus") or [] for n in facts["numa"]["nodes"] if n["node"] == node), [])


def lower_tier_nodes(tiers: dict, node: int) -> list[int]:
    """Nodes in tiers below the tier of ``node`` (where reclaim demotes its pages)."""
    mine = next((t for t, nodes in tiers.items() if node in nodes), None)
    if mine is None:
        return []
    return sorted(n for t, nodes in tiers.items() if t > mine for n in nodes)


@dataclass(frozen=True)
class WorkloadInfo:
    #: the name --workload takes
    name: str
    #: what it is called in a sentence ("move_pages needs two nodes")
    title: str
    #: the migration reason its migrations run under, as the series' ``reasons`` file
    #: names it (the trace's syscall_or_cpuset is ``syscall``)
    reason: str
    #: the kernel's enum migrate_reason value
    kernel_reason: str
    #: which kernel version brought the entry point
    brought_by: str
    summary: str
    #: the caller names the destination node (else the kernel picks it, or pages stay)
    needs_dst: bool = True
    #: pages move between two nodes (compaction moves them within one)
    needs_two_nodes: bool = True
    #: needs a node in a lower memory tier (a VM target boots one for it)
    wants_lower_tier: bool = False
    #: measures first-folio latency (--first-folio-latency)
    first_folio: bool = False
    #: every page must end on the expected node for the trial to pass (False where the
    #: kernel decides how much to move, and the record says how much it did)
    placement_required: bool = True
    #: a further check of (this entry, knobs, facts) beyond those every workload has
    extra_check: Callable[["WorkloadInfo", object, dict], None] | None = None

    def check_facts(self, knobs, facts: dict) -> None:
        """Judge ``knobs`` against a target's facts: one line naming what does not fit."""
        if self.needs_dst and knobs.dst is None:
            raise WorkbenchError(f"workload {self.name!r} needs a destination node (--dst)")
        if knobs.first_folio and not self.first_folio:
            raise WorkbenchError(f"first-folio latency is measured around one move_pages() call; workload "
                                 f"{self.name!r} has none (use --workload move-pages)")
        if self.extra_check is not None:
            self.extra_check(self, knobs, facts)


def _runs_on_the_destinations_cpus(w: WorkloadInfo, knobs, facts: dict) -> None:
    if not node_cpus(facts, knobs.dst):
        with_cpus = [str(n["node"]) for n in facts["numa"]["nodes"] if n.get("cpus")]
        raise WorkbenchError(f"workload {w.name!r} runs the task on the CPUs of the destination node "
                             f"{knobs.dst}, which has none; nodes with CPUs: {', '.join(with_cpus)}")


def _demotes_to_a_lower_tier(w: WorkloadInfo, knobs, facts: dict) -> None:
    tiers = {int(k): v for k, v in (facts.get("memory_tiers") or {}).items()}
    lower = lower_tier_nodes(tiers, knobs.src)
    if not lower:
        raise WorkbenchError(f"workload {w.name!r}: node {knobs.src} has no lower memory tier to demote to "
                             f"(memory tiers: {tiers or 'none'})")
    if knobs.dst is not None and knobs.dst not in lower:
        raise WorkbenchError(f"workload {w.name!r} moves pages from node {knobs.src} to its lower tier "
                             f"(node {', '.join(map(str, lower))}), not node {knobs.dst}; leave --dst out")
    if not node_cpus(facts, knobs.src):
        raise WorkbenchError(f"workload {w.name!r} runs the task on node {knobs.src}'s CPUs, and it has none")
    kb = next((n.get("mem_total_kb") for n in facts["numa"]["nodes"] if n["node"] == lower[0]), None)
    if kb and knobs.total_size > kb * 1024 * 0.7:
        raise WorkbenchError(f"size {knobs.total_size >> 20}M does not fit the lower tier, node {lower[0]} "
                             f"({kb // 1024} MiB); use at most 70% of it")


_DEMOTION_BROUGHT_BY = "demotion in reclaim v5.15, memory tiers v6.1"

WORKLOADS: dict[str, WorkloadInfo] = {w.name: w for w in (
    WorkloadInfo(
        "move-pages", "move_pages", "syscall", "MR_SYSCALL", "move_pages(2), v2.6.18",
        "move_pages(2) of one region to the destination node, one call, one address per folio",
        first_folio=True),
    WorkloadInfo(
        "migrate-pages", "migrate_pages", "syscall", "MR_SYSCALL", "migrate_pages(2), v2.6.16",
        "migrate_pages(2) of a separate process holding the pattern, moved whole (MPOL_MF_MOVE)"),
    WorkloadInfo(
        "mbind", "mbind", "mempolicy_mbind", "MR_MEMPOLICY_MBIND", "mbind(2) with MPOL_MF_MOVE, v2.6.16",
        "mbind(MPOL_BIND, MPOL_MF_MOVE) of a filled region to the destination node"),
    WorkloadInfo(
        "numa-balancing", "NUMA balancing", "numa_misplaced", "MR_NUMA_MISPLACED",
        "automatic NUMA balancing, v3.8 (CONFIG_NUMA_BALANCING)",
        "a task on the destination node's CPUs touching memory on the source node, NUMA balancing on",
        placement_required=False, extra_check=_runs_on_the_destinations_cpus),
    WorkloadInfo(
        "demotion", "demotion", "demotion", "MR_DEMOTION", f"{_DEMOTION_BROUGHT_BY}, memory.reclaim v5.19",
        "memory.reclaim of a cgroup on the top tier demotes its pages to a lower memory tier; promotion back",
        needs_dst=False, wants_lower_tier=True, extra_check=_demotes_to_a_lower_tier),
    WorkloadInfo(
        "kswapd-demotion", "demotion by kswapd", "demotion", "MR_DEMOTION",
        f"{_DEMOTION_BROUGHT_BY}, vm.swappiness up to 200 v5.8",
        "the top node filled below its low watermark: kswapd demotes its coldest pages to a lower tier",
        needs_dst=False, wants_lower_tier=True, extra_check=_demotes_to_a_lower_tier),
    WorkloadInfo(
        "compaction", "compaction", "compaction", "MR_COMPACTION", "memory compaction, v2.6.35 (CONFIG_COMPACTION)",
        "a fragmented node compacted (node<N>/compact); pages stay on their node",
        needs_dst=False, needs_two_nodes=False),
    WorkloadInfo(
        "proactive-compaction", "proactive compaction", "compaction", "MR_COMPACTION",
        "proactive compaction, v5.9 (/proc/sys/vm/compaction_proactiveness)",
        "a fragmented node compacted by kcompactd in the background (compaction_proactiveness=100)",
        needs_dst=False, needs_two_nodes=False),
)}


def names() -> list[str]:
    return list(WORKLOADS)


def get(name: str) -> WorkloadInfo:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise WorkbenchError(f"workload {name!r} is not known; allowed: {', '.join(WORKLOADS)}") from None


def default_dst(name: str, dst: int | None) -> int | None:
    """The destination node a run asks for: ``dst`` if given, else node 1 for a workload
    that moves pages to a node the caller names, None where the kernel picks (demotion)
    or pages stay on their node (compaction)."""
    if dst is not None:
        return dst
    return 1 if get(name).needs_dst else None


def check_against_facts(knobs, facts: dict) -> None:
    """What the host can judge from the target's facts: a workload it cannot run (one
    line saying what is missing), a destination the workload cannot use."""
    w = get(knobs.workload)
    reported = (facts.get("workloads") or {}).get(knobs.workload)
    if reported is None and w.name != DEFAULT:
        raise WorkbenchError(f"target {facts.get('target', '?')} did not say whether it can run workload "
                             f"{w.name!r} (an agent from before workloads); only {DEFAULT} runs there")
    if reported is not None and not reported["ok"]:
        raise WorkbenchError(f"workload {w.name!r} cannot run on {facts.get('target', 'this target')} "
                             f"(kernel {facts.get('kernel_release', '?')}): {reported['missing']}")
    w.check_facts(knobs, facts)
