"""A fake target whose kernel offers dcbm on the test DMA engine, for notebook 05 and the
fault study (:mod:`workbench.host.studies.dma_offload`) without a VM.

It plays what the patched kernel and ``test_dma_engine`` report, by the engine's module
parameters in a trial's ``settings``: one descriptor per folio; ``fail_every=N`` fails
every Nth and dcbm copies it again on the CPU; ``hang_every=N`` never completes every Nth,
the batch times out and its failed folios go back to the CPU; ``corrupt_every=N``
completes every Nth with one byte flipped at ``len / 2 + 0x123``, which dcbm cannot see
and the verification finds; ``reverse`` completes out of order, harmlessly. The figures
are the fake's arithmetic, not the kernel's: the notebook's plumbing, not its findings."""

from __future__ import annotations

import copy
import math

from workbench.agent.migrators.dma_test_engine import TEST_DMA_ENGINE, TEST_ENGINE_PARAMS
from workbench.protocol import TrialSpec
from workbench.targets import register

from .fake_target import FACTS, FakeTarget

PAGE = 4096
#: folios per batch (the series' default batch)
BATCH = 512

DCBM_FACTS = {**copy.deepcopy(FACTS), "interface": "workbench /sys/kernel/mm/migration",
              "kernel_release": "6.12.117-fake-dcbm", "migrators": ["kernel", "mtcopy"],
              "offered": ["kernel", "mtcopy", "dcbm"], "loadable": [TEST_DMA_ENGINE],
              "knobs": {"threads": (1, 2), "channels": (1, 16), "batch_size": (1, 262144),
                        "batch_kernel_copy": (0, 1)}}


def engine_counters(spec: TrialSpec) -> dict:
    """The engine's and dcbm's counters, and the verification, of one dcbm trial."""
    settings = {k.rsplit("/", 1)[-1]: int(v) for k, v in (spec.settings or {}).items()
                if k.startswith(TEST_ENGINE_PARAMS)}
    folios = spec.total_size // spec.folio_size
    every = {name: settings.get(f"{name}_every", 0) for name in ("fail", "corrupt", "hang")}
    failed = folios // every["fail"] if every["fail"] else 0
    corrupted = folios // every["corrupt"] if every["corrupt"] else 0
    hung = folios // every["hang"] if every["hang"] else 0
    pages_per_folio = spec.folio_size // PAGE
    flip = spec.folio_size // 2 + 0x123
    out = {"dma_engine": spec.dma_engine,
           "dma_channels_held": " ".join(f"dma0chan{i}" for i in range(spec.channels or 1)),  # as dcbm/held
           f"mig_{TEST_DMA_ENGINE}_descriptors": folios, f"mig_{TEST_DMA_ENGINE}_failed": failed,
           f"mig_{TEST_DMA_ENGINE}_corrupted": corrupted, f"mig_{TEST_DMA_ENGINE}_hung": hung,
           "mig_dcbm_folios_migrated": folios - failed - hung, "mig_dcbm_folios_failures": failed + hung,
           "mig_dcbm_fallbacks": failed + hung,
           "mig_dcbm_timeouts": min(hung, math.ceil(folios / BATCH)),
           "verify_bad_pages": corrupted, "verified": corrupted == 0}
    if corrupted:
        out.update(verify_first_bad_page=(every["corrupt"] - 1) * pages_per_folio + flip // PAGE,
                   verify_first_bad_offset=flip % PAGE)
    return out


@register("fake-dcbm")
class DcbmFake(FakeTarget):
    """``fake-dcbm``: the fake target with the patched kernel's dcbm and the test engine."""

    def __init__(self, facts=None, **options):
        super().__init__(facts=facts or DCBM_FACTS, **options)

    @property
    def label(self):
        return f"fake-dcbm:{self.name}" if self.name else "fake-dcbm"

    def run_plan(self, plan):
        for event in super().run_plan(plan):
            if event["type"] == "record":
                spec = TrialSpec.from_dict(self.seen[-1])
                record = event["record"]
                record.update({"threads": spec.threads, "channels": spec.channels, "total_bytes": spec.total_size,
                               "interface": self._facts_template["interface"]})
                if spec.migrator == "dcbm":
                    record.update(engine_counters(spec))
                    record["gbps"] *= 1 + 0.25 * (spec.channels or 1)
                    record["seconds"] = spec.total_size / record["gbps"] / 1e9
            yield event
