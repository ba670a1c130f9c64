"""Run parameters: checked against what the target offers, expanded into trials."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import WorkbenchError
from ..agent.migrators.mm_migration import TEST_DMA_ENGINE
from ..agent.thp import describe_sizes
from ..agent.trial import TrialSpec
from ..units import format_size


@dataclass
class RunParams:
    folio_sizes: list[int]
    total_size: int
    src: int = 0
    dst: int = 1
    repeats: int = 3
    seed: int = 1
    migrator: str = "kernel"
    threads: int | None = None
    channels: int | None = None
    batch_size: int | None = None
    first_folio: bool = False
    #: module providing DMA memcpy channels for dcbm (see TrialSpec.dma_engine)
    dma_engine: str | None = None
    #: more sysfs settings per trial, {path: value}, restored after each trial
    settings: dict | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


#: A VM has no DMA engine: dcbm there runs on the test-only engine of kernel patch 0011
VM_DMA_ENGINE = TEST_DMA_ENGINE


def with_defaults(params: RunParams, target_kind: str) -> RunParams:
    """Fill in what the target implies: dcbm in a VM gets the test-only DMA engine,
    which the records then name (column ``dma_engine``)."""
    if params.migrator == "dcbm" and params.dma_engine is None and target_kind == "vm":
        from dataclasses import replace
        return replace(params, dma_engine=VM_DMA_ENGINE)
    return params


def validate(params: RunParams, facts: dict, target_kind: str) -> None:
    """Raise a one-line WorkbenchError for the first thing the target cannot do."""
    nodes = facts["numa"]["memory_nodes"]
    if len(nodes) < 2:
        hint = "; use --target vm for a VM with two nodes" if target_kind == "local" else ""
        raise WorkbenchError(f"target {facts.get('target', target_kind)} has {len(nodes)} NUMA node with memory "
                             f"(node {', '.join(map(str, nodes))}); move_pages needs two{hint}")
    for role, node in (("source", params.src), ("destination", params.dst)):
        if node not in nodes:
            raise WorkbenchError(f"{role} node {node} does not exist on {facts.get('target', target_kind)}; "
                                 f"nodes with memory: {', '.join(map(str, nodes))}")
    if params.src == params.dst:
        raise WorkbenchError(f"source and destination are both node {params.src}; choose two different nodes")
    offered = facts["folio_sizes"]
    for size in params.folio_sizes:
        if size not in offered:
            raise WorkbenchError(f"folio size {format_size(size)} is not offered by kernel "
                                 f"{facts.get('kernel_release')}; it offers: {describe_sizes(offered)}")
        if params.total_size % size or params.total_size < size:
            raise WorkbenchError(f"size {format_size(params.total_size)} is not a multiple of the folio size "
                                 f"{format_size(size)}")
    migrators = facts.get("offered") or facts.get("migrators", ["kernel"])
    if params.migrator not in migrators:
        raise WorkbenchError(f"migrator {params.migrator!r} is not offered by this kernel; it offers: "
                             f"{', '.join(migrators)}")
    knobs = facts.get("knobs") or {}
    for knob in ("threads", "channels", "batch_size"):
        value = getattr(params, knob)
        if value is None:
            continue
        bounds = knobs.get(knob)
        name = knob.replace("_", " ")
        if not bounds:
            raise WorkbenchError(f"{name} {value} cannot be set on kernel {facts.get('kernel_release')}: its "
                                 f"migration interface ({facts.get('interface')}) has no {name} knob")
        if not bounds[0] <= value <= bounds[1]:
            raise WorkbenchError(f"{name} {value} is out of range; allowed: {bounds[0]}..{bounds[1]}")
    for path in params.settings or {}:
        if not str(path).startswith("/sys/") or ".." in str(path):
            raise WorkbenchError(f"setting {path!r} is not a sysfs path; allowed: absolute paths under /sys/")
    if params.dma_engine is not None and (not params.dma_engine or "/" in params.dma_engine
                                          or params.dma_engine.startswith("-")):
        raise WorkbenchError(f"DMA engine {params.dma_engine!r} is not a module name; allowed: a name such as "
                             f"{VM_DMA_ENGINE} or ioatdma")
    if params.repeats < 1:
        raise WorkbenchError(f"repeats {params.repeats} must be at least 1")
    by_node = {n["node"]: n.get("mem_total_kb") for n in facts["numa"]["nodes"]}
    for node in (params.src, params.dst):
        kb = by_node.get(node)
        if kb and params.total_size > kb * 1024 * 0.7:
            raise WorkbenchError(f"size {format_size(params.total_size)} does not fit node {node} "
                                 f"({kb // 1024} MiB); use at most 70% of a node")


def expand(params: RunParams) -> list[TrialSpec]:
    """Repeats outermost, so slow drift of the machine spreads over every folio size."""
    return [TrialSpec(folio_size=size, total_size=params.total_size, src=params.src, dst=params.dst,
                      seed=params.seed, repeat=r, migrator=params.migrator, threads=params.threads,
                      channels=params.channels, batch_size=params.batch_size, first_folio=params.first_folio,
                      dma_engine=params.dma_engine, settings=dict(params.settings) if params.settings else None,
                      extra=dict(params.extra))
            for r in range(params.repeats) for size in params.folio_sizes]
