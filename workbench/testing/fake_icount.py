"""A fake target under the instruction-counted clock (``accelerator() == "icount"``), for
the cost benchmark's arithmetic and plumbing (:mod:`workbench.host.studies.cost`) and the 06-cost
notebook: each trial takes a known instruction-time per folio."""

import copy
import re

from ..host.studies import cost
from workbench.protocol import TrialSpec

from .fake_target import FACTS, FakeTarget

#: instruction-time per folio of each (kernel, migrator, batch) in the fake: patched with
#: defaults costs what vanilla costs; the batched copy costs more at small batches
BASE_NS = {4096: 10_000, 2 << 20: 400_000}


class IcountFake(FakeTarget):
    """``scale``: how much more work the tree's migration path does than the fake's base
    (the bisect's commits)."""

    #: what the batched kernel copy adds per folio, over the batch size (the per-batch cost)
    batched_per_batch = 0.5

    def __init__(self, kernel, boot, batch_trace=False, scale=1.0):
        facts = copy.deepcopy(FACTS)
        facts.update(interface="ours", offered=["kernel", "mtcopy", "dcbm"], migrators=["kernel", "mtcopy", "dcbm"],
                     knobs={"threads": [1, 2], "channels": [1, 16], "batch_size": [1, 262144],
                            "batch_kernel_copy": [0, 1]},
                     kernel_release=f"6.12.117-{kernel}")
        super().__init__(facts=facts)
        self.kernel, self.boot, self.batch_trace, self.scale = kernel, boot, batch_trace, scale

    def accelerator(self):
        return "icount"

    def run_plan(self, plan):
        for event in super().run_plan(plan):
            if event["type"] == "record":
                spec = TrialSpec.from_dict(self.seen[-1])
                ns = BASE_NS.get(spec.folio_size, 50_000) * self.scale
                if spec.batch_kernel_copy:       # the batched kernel copy: a per-batch cost
                    ns *= 1 + self.batched_per_batch / (spec.batch_size or cost.FIXED_BATCH)
                if spec.migrator == "mtcopy":
                    ns *= 1.10 * spec.threads
                ns *= 1 + 0.0002 * spec.repeat + 0.0001 * self.boot      # a tiny, realistic spread
                folios = spec.total_size // spec.folio_size
                event["record"].update({"seconds": ns * folios / 1e9, "folios": folios, "batch_size": spec.batch_size,
                                        "threads": spec.threads, "channels": spec.channels,
                                        "first_folio_ns": 1000 * (spec.batch_size or 1) if spec.first_folio else None,
                                        "copy_share": 0.5, "harness_overhead_share": 1e-4,
                                        "interface": self._facts_template.get("interface")})
                if spec.trace and self.batch_trace:      # series v3's mm_migrate_batch_end
                    event["record"].update({"trace_first_batch_ns": 700 * (spec.batch_size or 1),
                                            "trace_syscall_ns": ns * folios})
            yield event


#: the fake series of ``bench cost --per-patch``: what each patch adds to every path,
#: relative (patch 2 costs 2%), and the patch that brings the batching knob (3), whose
#: batched kernel copy costs 5% more than the defaults at the kernel's own batch size
PATCH_COST = {2: 0.02}
KNOB_FROM = 3


def tree_index(kernel: str) -> int:
    """The patches a cumulative tree's name says it has (``v3-p02-bench``: 2; the base: 0)."""
    m = re.search(r"-p(\d+)(-bench)?$", kernel)
    return int(m.group(1)) if m else 0


class SeriesIcountFake(IcountFake):
    """The cumulative trees of a fake series under the instruction-counted clock: tree k
    costs what patches 1..k add (:data:`PATCH_COST`); the trees before :data:`KNOB_FROM`
    have no migration interface, so no batching knob."""

    batched_per_batch = 0.05 * cost.FIXED_BATCH

    def __init__(self, kernel, boot):
        k = tree_index(kernel)
        scale = 1.0
        for i in range(1, k + 1):
            scale *= 1 + PATCH_COST.get(i, 0.0)
        super().__init__(kernel, boot, scale=scale)
        if k < KNOB_FROM:
            self._facts_template.update(interface="none", offered=["kernel"], migrators=["kernel"],
                                        knobs={"threads": None, "channels": None, "batch_size": None})
