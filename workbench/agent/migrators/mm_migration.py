"""This project's interface: /sys/kernel/mm/migration/ (kernel/patches, on 6.12.117).

The unified file the RFC V3 cover letter proposed in its open question 1 and no posted
version built, plus a run-time batch size, per-reason enablement, the batched kernel
copy on request, and per-migrator copy-time counters, in total and per migration reason.
See kernel/README.md for every file and its rules (series v2).
"""

from __future__ import annotations

from ...catalogue.migrators import DCBM, MM_MIGRATION as ROOT, MTCOPY
from ...kernelio.kernelfs import parse_choices
from . import dma_test_engine
from .base import MigrationControl, register

#: every migrator's counters, in stats/<migrator>/ (the sum over reasons) and in
#: stats/<migrator>/<reason>/; wait_ns, fallback_ns, declined and nomem_batches came with v2
COUNTERS = ("batches", "folios", "bytes", "copy_ns", "wait_ns", "batch_ns", "fallbacks", "fallback_ns", "declined",
            "nomem_batches")
#: migration reasons, as the kernel names them in `reasons` and stats/<migrator>/<reason>/
REASONS = ("compaction", "memory_failure", "memory_hotplug", "syscall", "mempolicy_mbind", "numa_misplaced",
           "contig_range", "longterm_pin", "demotion", "damon")
#: 1: the kernel migrator copies through the batched path too (default 0: the unchanged
#: serial path unless an offload migrator is active), so the batch path's own cost can be
#: measured (kernel series v2)
BATCH_KERNEL_COPY = f"{ROOT}/batch_kernel_copy"
#: batch_size's bound: 1 GiB of base pages (series v2), 262144 with x86-64's 4K pages
MAX_BATCH_PAGES = (1 << 30) // 4096


@register
class MmMigrationInterface(MigrationControl):
    name = "workbench /sys/kernel/mm/migration"
    brought_by = "migration workbench kernel series (kernel/patches), Linux 6.12.117"
    modules = ("mtcopy", "dcbm")

    @classmethod
    def detect(cls, fs):
        # series v3 has the same file and a settings directory per migrator (series_v3.py)
        return fs.exists(f"{ROOT}/migrator") and not fs.exists(f"{ROOT}/kernel/min_folios")

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
        out = {"threads": threads, "channels": channels, "batch_size": (1, MAX_BATCH_PAGES)}
        if self.fs.exists(BATCH_KERNEL_COPY):       # series v2
            out["batch_kernel_copy"] = (0, 1)
        return out

    def _configure(self, guard, migrator, knobs):
        for knob, path in (("batch_size", f"{ROOT}/batch_size"), ("batch_kernel_copy", BATCH_KERNEL_COPY),
                           ("threads", f"{MTCOPY}/threads"), ("channels", f"{DCBM}/channels")):
            if knobs[knob] is not None:
                guard.set(path, str(knobs[knob]))
        dma_test_engine.select_migrator(guard, self.fs, ROOT, migrator)

    def held_channels(self) -> str | None:
        return dma_test_engine.held_channels(self.fs, ROOT)

    def _loadable(self) -> list[str]:
        if not hasattr(self, "_loadable_cache"):
            self._loadable_cache = self.loadable()
        return self._loadable_cache

    # direct changes, for churn tests (the caller's guard must hold the originals)
    def select(self, migrator: str):
        self.fs.write(f"{ROOT}/migrator", migrator)

    def set_threads(self, threads: int):
        self.fs.write(f"{MTCOPY}/threads", str(threads))

    def composite_knobs(self):
        return dma_test_engine.composite_knobs()

    def set_channels(self, channels: int):
        self.fs.write(f"{DCBM}/channels", str(channels))

    def counters(self):
        """``<migrator>.<counter>`` (the sum over reasons) and ``<migrator>.<reason>.<counter>``."""
        out = {}
        base = f"{ROOT}/stats"
        if not self.fs.isdir(base):
            return out
        for mig in self.fs.listdir(base):
            out.update(self._counters_in(f"{base}/{mig}", mig))
            for reason in REASONS:
                if self.fs.isdir(f"{base}/{mig}/{reason}"):
                    out.update(self._counters_in(f"{base}/{mig}/{reason}", f"{mig}.{reason}"))
        out.update(dma_test_engine.counters(self.fs))
        return out

    def _counters_in(self, directory: str, prefix: str) -> dict:
        # the framework's first, then a migrator's own (dcbm's folios_migrated, mtcopy's cpu_ns, ...)
        names = [n for n in self.fs.listdir(directory) if n not in REASONS]
        out = {}
        for c in [n for n in COUNTERS if n in names] + [n for n in names if n not in COUNTERS]:
            path = f"{directory}/{c}"
            if not self.fs.isdir(path):
                out[f"{prefix}.{c}"] = self.fs.read_int(path)
        return out

    def reason_layout(self) -> str | None:
        """Where this kernel keeps per-reason counters — series v2 (kernel/patches 0006,
        "count per migrator and migration reason"): ``stats/<migrator>/<reason>/<counter>``,
        which :meth:`counters` reads as ``<migrator>.<reason>.<counter>`` — or None (series
        v1 has none). A kernel with another layout gets its reader here and in counters()."""
        base = f"{ROOT}/stats"
        if self.fs.isdir(base) and any(self.fs.isdir(f"{base}/{mig}/{reason}")
                                       for mig in self.fs.listdir(base) for reason in REASONS):
            return "stats/<migrator>/<reason>/<counter>"
        return None

    def offer_everything(self, guard, migrator):
        # series v2 has one reasons file for every migrator and no minimum
        if self.fs.exists(f"{ROOT}/reasons"):
            guard.set(f"{ROOT}/reasons", "all")
            return "reasons=all"
        return None

    def folios_copied(self, delta, migrator):
        # v2 counts the folios offered and those that fell back to the CPU
        return delta.get(f"{migrator}.folios", 0) - delta.get(f"{migrator}.fallbacks", 0)

    def copy_share(self, delta, migrator):
        """F of the migrator's copy: copy_ns / batch_ns (the per-folio CPU fallback copies
        are apart, in fallback_ns: see :meth:`copy_share_all`)."""
        batch = delta.get(f"{migrator}.batch_ns", 0)
        return delta.get(f"{migrator}.copy_ns", 0) / batch if batch > 0 else None

    def copy_share_all(self, delta, migrator):
        """F of all copying in the batches: (copy_ns + fallback_ns) / batch_ns."""
        batch = delta.get(f"{migrator}.batch_ns", 0)
        return (delta.get(f"{migrator}.copy_ns", 0) + delta.get(f"{migrator}.fallback_ns", 0)) / batch \
            if batch > 0 else None


def reason_delta(delta: dict[str, int], reason: str) -> dict[str, int]:
    """{'<migrator>.<counter>': n} of one reason out of a counters() delta."""
    out = {}
    for key, value in delta.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[1] == reason:
            out[f"{parts[0]}.{parts[2]}"] = value
    return out
