"""A fake target under the instruction-counted clock (``accelerator() == "icount"``), for
the cost benchmark's arithmetic and plumbing (:mod:`workbench.host.cost`) and the 06-cost
notebook: each trial takes a known instruction-time per folio."""

import copy

from workbench.host import cost
from workbench.protocol import TrialSpec

from .fake_target import FACTS, FakeTarget

#: instruction-time per folio of each (kernel, migrator, batch) in the fake: patched with
#: defaults costs what vanilla costs; the batched copy costs more at small batches
BASE_NS = {4096: 10_000, 2 << 20: 400_000}


class IcountFake(FakeTarget):
    """``scale``: how much more work the tree's migration path does than the fake's base
    (the bisect's commits)."""

    def __init__(self, kernel, boot, batch_trace=False, scale=1.0):
        facts = copy.deepcopy(FACTS)
        facts.update(interface="ours", offered=["kernel", "mtcopy", "dcbm"], migrators=["kernel", "mtcopy", "dcbm"],
                     knobs={"threads": [1, 2], "channels": [1, 16], "batch_size": [1, 262144]},
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
                    ns *= 1 + 0.5 / (spec.batch_size or cost.FIXED_BATCH)
                if spec.migrator == "mtcopy":
                    ns *= 1.10 * spec.threads
                ns *= 1 + 0.0002 * spec.repeat + 0.0001 * self.boot      # a tiny, realistic spread
                folios = spec.total_size // spec.folio_size
                event["record"].update({"seconds": ns * folios / 1e9, "folios": folios, "batch_size": spec.batch_size,
                                        "threads": spec.threads, "channels": spec.channels,
                                        "first_folio_ns": 1000 * (spec.batch_size or 1) if spec.first_folio else None,
                                        "copy_share": 0.5, "harness_overhead_share": 1e-4})
                if spec.trace and self.batch_trace:      # series v3's mm_migrate_batch_end
                    event["record"].update({"trace_first_batch_ns": 700 * (spec.batch_size or 1),
                                            "trace_syscall_ns": ns * folios})
            yield event
