"""Run parameters: a trial's knobs (:class:`workbench.protocol.Knobs`) plus the folio sizes
and repeats a run covers; checked on their own, then against what the target offers,
then expanded into trials."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields, replace

from ...catalogue import knobs, workloads
from ...catalogue.migrators import TEST_DMA_ENGINE
from ...kernelio.thp import describe_sizes
from ...errors import WorkbenchError
from ...protocol import Knobs, TrialSpec, check_folio_size, check_knob_bounds
from ...units import format_size


#: the most trials one run holds: a run's plan is one list, held by the host and sent to
#: the agent whole (again after each fault), about 440 bytes of JSON a trial, so 10,000
#: trials are 4 MB sent in well under a second, and at a second or more a trial (a VM
#: moving a few MiB) hours of work; more is a typo, or several runs (a sweep)
MAX_TRIALS = 10_000


def check_trial_count(repeats: int, folio_sizes: int) -> None:
    """Refuse a plan larger than :data:`MAX_TRIALS` before anything is expanded."""
    if repeats * folio_sizes > MAX_TRIALS:
        raise WorkbenchError(f"repeats {repeats} x {folio_sizes} folio size{'s' if folio_sizes != 1 else ''} is "
                             f"{repeats * folio_sizes} trials; a run holds at most {MAX_TRIALS} (use fewer repeats, "
                             "or several runs)")


@dataclass(kw_only=True)
class RunParams(Knobs):
    """A trial's knobs, and the run's own (catalogue scope ``run``): its folio sizes and repeats."""
    folio_sizes: list[int]
    repeats: int = knobs.default("repeats")

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        """What can be judged before a target is reached (a VM booted): one line each."""
        super().check()
        if not self.folio_sizes:
            raise WorkbenchError("no folio size given; for example --folio-size 4K,64K,2M")
        for size in self.folio_sizes:
            check_folio_size(size)
            if self.total_size % size or self.total_size < size:
                raise WorkbenchError(f"size {format_size(self.total_size)} is not a multiple of the folio size "
                                     f"{format_size(size)}")
        if not isinstance(self.repeats, int) or self.repeats < 1:
            raise WorkbenchError(f"repeats {self.repeats} must be at least 1")
        check_trial_count(self.repeats, len(self.folio_sizes))

    def trials(self) -> list[TrialSpec]:
        """Repeats outermost, so slow drift of the machine spreads over every folio size."""
        knobs = self.knob_values()
        for key in ("settings", "extra"):
            knobs[key] = dict(knobs[key]) if knobs[key] else knobs[key]
        return [TrialSpec(**knobs, folio_size=size, repeat=r)
                for r in range(self.repeats) for size in self.folio_sizes]


#: A VM has no DMA engine: dcbm there runs on the test-only engine of kernel patch 0011
VM_DMA_ENGINE = TEST_DMA_ENGINE


def with_defaults(params: RunParams, target_kind: str) -> RunParams:
    """Fill in what the target implies: dcbm in a VM gets the test-only DMA engine,
    which the records then name (column ``dma_engine``)."""
    if params.migrator == "dcbm" and params.dma_engine is None and target_kind == "vm":
        return replace(params, dma_engine=VM_DMA_ENGINE)
    return params


def same_params(old: dict | None, new: dict) -> bool:
    """Whether a stored run's parameters are ``new``: knobs added since the run was made
    count as equal when ``new`` has them at their defaults (so older runs resume)."""
    if old is None:
        return False
    defaults = {f.name: f.default for f in fields(RunParams) if f.default is not MISSING}
    return all(old[k] == v if k in old else v == defaults.get(k, object()) for k, v in new.items())


#: --kernel-expect words that say whether the series' interface is there (anything else:
#: a piece of the kernel release)
KERNEL_WORDS = {"patched": True, "vanilla": False, "stock": False}


def check_kernel_expect(expect: str | None) -> None:
    """A --kernel-expect value on its own (before a target is reached)."""
    if expect is not None and not str(expect).strip():
        raise WorkbenchError("--kernel-expect is empty; give patched, vanilla, stock, or a piece of the kernel "
                             "release (e.g. 6.12.117-wb-patched)")


def kernel_mismatch(expect: str | None, facts: dict, where: str) -> str | None:
    """Why the target's kernel is not the one ``expect`` names, in one line, or None.

    ``patched``: the kernel has a copy-offload interface (ours, /sys/kernel/mm/migration,
    or a posted RFC version's, as :func:`workbench.agent.migrators.detect` finds them);
    ``vanilla``/``stock``: it has none; anything else: a substring of ``uname -r``."""
    if expect is None:
        return None
    release = facts.get("kernel_release") or "?"
    interface = facts.get("interface")
    series = interface not in (None, "none")
    if expect in KERNEL_WORDS:
        ok, what = KERNEL_WORDS[expect] == series, expect
    else:
        ok, what = expect in release, f"release containing {expect!r}"
    if ok:
        return None
    state = f"series interface {interface}" if series else "no copy-offload interface"
    return f"target {where} runs kernel {release} ({state}), not the expected {what}"


def validate(params: RunParams, facts: dict, target_kind: str, kernel_expect: str | None = None) -> None:
    """Raise a one-line WorkbenchError for the first thing the target cannot do (or,
    with ``kernel_expect``, for a kernel that is not the one expected)."""
    params.check()
    check_kernel_expect(kernel_expect)
    mismatch = kernel_mismatch(kernel_expect, facts, facts.get("target", target_kind))
    if mismatch:
        raise WorkbenchError(mismatch)
    workload = workloads.get(params.workload)
    where = facts.get("target", target_kind)
    nodes = facts["numa"]["memory_nodes"]
    if len(nodes) < 2 and workload.needs_two_nodes:
        hint = "; use --target vm for a VM with two nodes" if target_kind == "local" else ""
        raise WorkbenchError(f"target {where} has {len(nodes)} NUMA node with memory "
                             f"(node {', '.join(map(str, nodes))}); {workload.title} needs two{hint}")
    workloads.check_against_facts(params, {"target": where, **facts})
    for role, node in (("source", params.src), ("destination", params.dst)):
        if node is None:
            continue
        if node not in nodes:
            raise WorkbenchError(f"{role} node {node} does not exist on {where}; "
                                 f"nodes with memory: {', '.join(map(str, nodes))}")
    offered = facts["folio_sizes"]
    for size in params.folio_sizes:
        if size not in offered:
            raise WorkbenchError(f"folio size {format_size(size)} is not offered by kernel "
                                 f"{facts.get('kernel_release')}; it offers: {describe_sizes(offered)}")
    migrators = facts.get("offered") or facts.get("migrators", ["kernel"])
    if params.migrator not in migrators:
        raise WorkbenchError(f"migrator {params.migrator!r} is not offered by this kernel; it offers: "
                             f"{', '.join(migrators)}")
    check_knob_bounds({k: getattr(params, k) for k in ("threads", "channels", "batch_size")},
                      facts.get("knobs") or {}, facts.get("interface"), facts.get("kernel_release"))
    by_node = {n["node"]: n.get("mem_total_kb") for n in facts["numa"]["nodes"]}
    for node in (params.src, params.dst):
        if node is None:
            continue
        kb = by_node.get(node)
        if kb and params.total_size > kb * 1024 * 0.7:
            raise WorkbenchError(f"size {format_size(params.total_size)} does not fit node {node} "
                                 f"({kb // 1024} MiB); use at most 70% of a node")


def expand(params: RunParams) -> list[TrialSpec]:
    return params.trials()
