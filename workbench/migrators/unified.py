"""This project's interface: /sys/kernel/mm/migration/ (kernel/patches, on 6.12.117).

The unified file the RFC V3 cover letter proposed in its open question 1 and no posted
version built, plus a run-time batch size, per-reason enablement and per-migrator
copy-time counters. See kernel/README.md for every file and its rules.
"""

from __future__ import annotations

from ..kernelfs import parse_choices
from .base import MigrationControl, register

ROOT = "/sys/kernel/mm/migration"
COUNTERS = ("batches", "folios", "bytes", "copy_ns", "batch_ns", "fallbacks")
MTCOPY = f"{ROOT}/mtcopy"
HPAGE_PUD_NR = 262144


@register
class UnifiedMigration(MigrationControl):
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
        channels = (1, 16) if self.fs.exists(f"{ROOT}/dcbm/channels") else None
        return {"threads": threads, "channels": channels, "batch_size": (1, HPAGE_PUD_NR)}

    def _configure(self, guard, migrator, threads, channels, batch_size):
        if batch_size is not None:
            guard.set(f"{ROOT}/batch_size", str(batch_size))
        if threads is not None:
            guard.set(f"{MTCOPY}/threads", str(threads))
        if channels is not None:
            guard.set(f"{ROOT}/dcbm/channels", str(channels))
        guard.set(f"{ROOT}/migrator", migrator)

    def _loadable(self) -> list[str]:
        if not hasattr(self, "_loadable_cache"):
            self._loadable_cache = self.loadable()
        return self._loadable_cache

    # direct changes, for churn tests (the caller's guard must hold the originals)
    def select(self, migrator: str):
        self.fs.write(f"{ROOT}/migrator", migrator)

    def set_threads(self, threads: int):
        self.fs.write(f"{MTCOPY}/threads", str(threads))

    def counters(self):
        out = {}
        base = f"{ROOT}/stats"
        if not self.fs.isdir(base):
            return out
        for mig in self.fs.listdir(base):
            for c in COUNTERS:
                path = f"{base}/{mig}/{c}"
                if self.fs.exists(path):
                    out[f"{mig}.{c}"] = self.fs.read_int(path)
        if self.fs.exists(f"{MTCOPY}/thread_ns"):
            out["mtcopy.thread_ns"] = self.fs.read_int(f"{MTCOPY}/thread_ns")
        return out

    def copy_share(self, delta, migrator):
        batch = delta.get(f"{migrator}.batch_ns", 0)
        return delta.get(f"{migrator}.copy_ns", 0) / batch if batch > 0 else None
