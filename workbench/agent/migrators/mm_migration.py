"""This project's interface: /sys/kernel/mm/migration/ (kernel/patches, on 6.12.117).

The unified file the RFC V3 cover letter proposed in its open question 1 and no posted
version built, plus a run-time batch size, per-reason enablement and per-migrator
copy-time counters. See kernel/README.md for every file and its rules.
"""

from __future__ import annotations

from ..kernelfs import KnobRejected, parse_choices
from .base import MigrationControl, register

ROOT = "/sys/kernel/mm/migration"
COUNTERS = ("batches", "folios", "bytes", "copy_ns", "batch_ns", "fallbacks")
#: 1: the kernel migrator copies through the batched path too (default 0: the unchanged
#: serial path unless an offload migrator is active), so the batch path's own cost can be
#: measured (kernel series v2)
BATCH_KERNEL_COPY = f"{ROOT}/batch_kernel_copy"
MTCOPY = f"{ROOT}/mtcopy"
DCBM = f"{ROOT}/dcbm"
#: the test-only DMA engine of patch 0011 (drivers/dma/test-dma-engine.c): what it did
TEST_DMA_ENGINE = "test_dma_engine"
TEST_ENGINE_PARAMS = f"/sys/module/{TEST_DMA_ENGINE}/parameters"
TEST_ENGINE_COUNTERS = ("descriptors", "failed", "corrupted", "hung")
HPAGE_PUD_NR = 262144


@register
class MmMigrationInterface(MigrationControl):
    name = "workbench /sys/kernel/mm/migration"
    brought_by = "migration workbench kernel series (kernel/patches), Linux 6.12.117"
    modules = ("mtcopy", "dcbm")

    @classmethod
    def detect(cls, fs):
        return fs.exists(f"{ROOT}/migrator")

    def migrators(self):
        return parse_choices(self.fs.read(f"{ROOT}/migrator"))[0]

    def active(self):
        return parse_choices(self.fs.read(f"{ROOT}/migrator"))[1]

    def knobs(self):
        threads = None
        # mtcopy's knob exists once the module is loaded; a trial loads it on demand, so a
        # loadable mtcopy offers the knob too (bounds: 1..online CPUs, as the module has)
        if self.fs.exists(f"{MTCOPY}/threads") or "mtcopy" in self._loadable():
            import os
            threads = (1, os.cpu_count() or 1)
        # dcbm (patch 0010): 1..16 channels; a loadable dcbm offers the knob too
        channels = (1, 16) if self.fs.exists(f"{DCBM}/channels") or "dcbm" in self._loadable() else None
        return {"threads": threads, "channels": channels, "batch_size": (1, HPAGE_PUD_NR)}

    def _configure(self, guard, migrator, threads, channels, batch_size):
        if batch_size is not None:
            guard.set(f"{ROOT}/batch_size", str(batch_size))
        if threads is not None:
            guard.set(f"{MTCOPY}/threads", str(threads))
        if channels is not None:
            guard.set(f"{DCBM}/channels", str(channels))
        try:
            guard.set(f"{ROOT}/migrator", migrator)
        except KnobRejected as exc:
            if migrator != "dcbm":
                raise
            raise KnobRejected(f"{exc}: dcbm found no free DMA memcpy channel (it wants "
                               f"{self.fs.read(f'{DCBM}/channels').strip()}); load a DMA engine driver first "
                               f"(in a VM: --dma-engine {TEST_DMA_ENGINE}, a test-only engine)") from None

    def held_channels(self) -> str | None:
        """The DMA channels dcbm holds, by name (None without dcbm)."""
        path = f"{DCBM}/held"
        return self.fs.read(path).strip() if self.fs.exists(path) else None

    def _loadable(self) -> list[str]:
        if not hasattr(self, "_loadable_cache"):
            self._loadable_cache = self.loadable()
        return self._loadable_cache

    # direct changes, for churn tests (the caller's guard must hold the originals)
    def select(self, migrator: str):
        self.fs.write(f"{ROOT}/migrator", migrator)

    def set_threads(self, threads: int):
        self.fs.write(f"{MTCOPY}/threads", str(threads))

    def set_channels(self, channels: int):
        self.fs.write(f"{DCBM}/channels", str(channels))

    def counters(self):
        out = {}
        base = f"{ROOT}/stats"
        if not self.fs.isdir(base):
            return out
        for mig in self.fs.listdir(base):
            # the framework's six first, then a migrator's own (dcbm's folios_migrated, ...)
            names = list(COUNTERS) + [n for n in self.fs.listdir(f"{base}/{mig}") if n not in COUNTERS]
            for c in names:
                path = f"{base}/{mig}/{c}"
                if self.fs.exists(path):
                    out[f"{mig}.{c}"] = self.fs.read_int(path)
        if self.fs.exists(f"{MTCOPY}/thread_ns"):
            out["mtcopy.thread_ns"] = self.fs.read_int(f"{MTCOPY}/thread_ns")
        if self.fs.isdir(TEST_ENGINE_PARAMS):
            for c in TEST_ENGINE_COUNTERS:
                out[f"{TEST_DMA_ENGINE}.{c}"] = self.fs.read_int(f"{TEST_ENGINE_PARAMS}/{c}")
        return out

    def copy_share(self, delta, migrator):
        batch = delta.get(f"{migrator}.batch_ns", 0)
        return delta.get(f"{migrator}.copy_ns", 0) / batch if batch > 0 else None
