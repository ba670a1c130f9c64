"""Series v3's interface (kernel/v3, on Linux 7.3; in progress, issue 19).

The same directory as series v2, /sys/kernel/mm/migration/, with another layout:

* ``migrator`` (choices) and ``batch_kernel_copy`` as in v2 (patch 0002);
* a directory per registered migrator with the settings that decide which batches it is
  offered: ``reasons`` (the kernel's reason names, comma separated), ``min_folios``,
  ``min_bytes`` (0002), and a migrator's own settings beside them (mtcopy's ``threads``,
  0005);
* ``batch_size`` (0007): the batch in base pages while batching, 1 to 64 MiB worth, with
  no effect while batching is off;
* dcbm (0008, module dcbm): ``dcbm/channels`` (1 to 16, written while dcbm is not
  active), ``dcbm/wait_us`` and ``dcbm/min_mbps`` (the bound of its wait), ``dcbm/held``;
  what it did in debugfs ``/sys/kernel/debug/dcbm/events`` (a ``name value`` line each),
  read as ``dcbm.<event>`` beside the framework's counters;
* no stats/ in sysfs:
  the counters are per-CPU, read-only, one table per migrator in debugfs,
  ``/sys/kernel/debug/migrate_copy/<migrator>/stats``: a header row of counter names, a
  row per migrate reason (the kernel's names) and a ``total`` row (0003).

What it does not have (yet) compared with v2 is in :meth:`SeriesV3Interface.lacks`.
"""

from __future__ import annotations

import os

from ...catalogue.migrators import DCBM, MM_MIGRATION as ROOT
from ...kernelio.kernelfs import parse_choices
from . import dma_test_engine
from .base import MigrationControl, register

STATS = "/sys/kernel/debug/migrate_copy"
#: dcbm's own events (kernel/v3 0008): descriptors, desc_errors, busy, too_large,
#: ring_waits, map_errors, prep_errors, timeouts, killed
DCBM_EVENTS = "/sys/kernel/debug/dcbm/events"
#: dcbm's channel bound (kernel/v3 0008)
DCBM_MAX_CHANNELS = 16
#: the workbench's name for a reason where the kernel's differs (as in tracing.py)
REASON_NAMES = {"syscall_or_cpuset": "syscall"}
#: mtcopy's bound besides the online CPUs (kernel/v3 0005)
MTCOPY_MAX_THREADS = 32
#: batch_size's bound (kernel/v3 0007): 64 MiB of base pages, 16384 with 4K pages
MAX_BATCH_PAGES = (64 << 20) // 4096


@register
class SeriesV3Interface(MigrationControl):
    name = "workbench series v3 /sys/kernel/mm/migration"
    brought_by = "migration workbench kernel series v3 (kernel/v3 0002), Linux 7.3.4"
    modules = ("mtcopy", "dcbm")

    @classmethod
    def detect(cls, fs):
        # a migrator's own directory of settings: v3 only (v2 has stats/ and a global reasons)
        return fs.exists(f"{ROOT}/migrator") and fs.exists(f"{ROOT}/kernel/min_folios")

    def migrators(self):
        return parse_choices(self.fs.read(f"{ROOT}/migrator"))[0]

    def active(self):
        return parse_choices(self.fs.read(f"{ROOT}/migrator"))[1]

    def knobs(self):
        threads = None
        if self.fs.exists(f"{ROOT}/mtcopy/threads") or "mtcopy" in self.loadable():
            threads = (1, min(os.cpu_count() or 1, MTCOPY_MAX_THREADS))
        channels = (1, DCBM_MAX_CHANNELS) if self.fs.exists(f"{DCBM}/channels") or "dcbm" in self.loadable() \
            else None
        batch = (1, MAX_BATCH_PAGES) if self.fs.exists(f"{ROOT}/batch_size") else None
        return {"threads": threads, "channels": channels, "batch_size": batch, "batch_kernel_copy": (0, 1)}

    def lacks(self):
        lacks = [] if self.fs.exists(f"{ROOT}/batch_size") else \
            ["no batch size knob (compile-time NR_MAX_BATCHED_MIGRATION, 512 base pages; kernel/v3 0007 adds it)"]
        if not (self.fs.exists(DCBM) or "dcbm" in self.loadable()):
            lacks.append("no DMA migrator (dcbm: kernel/v3 0008, CONFIG_MIGRATE_DCBM)")
        return lacks + ["no batch time counter: F (the copy's share of migration time) is not in the counters"]

    def _configure(self, guard, migrator, knobs):
        if knobs["batch_size"] is not None:
            guard.set(f"{ROOT}/batch_size", str(knobs["batch_size"]))
        if knobs["batch_kernel_copy"] is not None:
            guard.set(f"{ROOT}/batch_kernel_copy", str(knobs["batch_kernel_copy"]))
        if knobs["threads"] is not None:
            guard.set(f"{ROOT}/mtcopy/threads", str(knobs["threads"]))
        if knobs["channels"] is not None:
            # written while dcbm is not active (EBUSY otherwise); the guard restored the
            # migrator of an earlier trial already
            guard.set(f"{DCBM}/channels", str(knobs["channels"]))
        dma_test_engine.select_migrator(guard, self.fs, ROOT, migrator)

    def held_channels(self) -> str | None:
        return dma_test_engine.held_channels(self.fs, ROOT)

    def composite_knobs(self):
        return dma_test_engine.composite_knobs()

    # direct changes, for churn tests (the caller's guard must hold the originals)
    def select(self, migrator: str):
        self.fs.write(f"{ROOT}/migrator", migrator)

    def set_threads(self, threads: int):
        self.fs.write(f"{ROOT}/mtcopy/threads", str(threads))

    def set_channels(self, channels: int):
        """Refused (EBUSY) while dcbm is the active migrator."""
        self.fs.write(f"{DCBM}/channels", str(channels))

    def counters(self):
        """``<migrator>.<counter>`` (the total row) and ``<migrator>.<reason>.<counter>``."""
        out = {}
        for migrator in self.migrators():
            path = f"{STATS}/{migrator}/stats"
            if self.fs.exists(path):
                out.update(parse_stats(self.fs.read(path), migrator))
        if self.fs.exists(DCBM_EVENTS):
            out.update({f"dcbm.{name}": int(value) for name, value in
                        (line.split() for line in self.fs.read(DCBM_EVENTS).splitlines() if line.strip())})
        out.update(dma_test_engine.counters(self.fs))
        return out

    def offer_everything(self, guard, migrator):
        # 0002's settings of what a migrator is offered; "all" is every reason it may take
        wanted = {"reasons": "all", "min_folios": "1", "min_bytes": "0"}
        done = []
        for name, value in wanted.items():
            path = f"{ROOT}/{migrator}/{name}"
            if self.fs.exists(path):
                guard.set(path, value)
                done.append(f"{name}={value}")
        return " ".join(done) or None

    def folios_copied(self, delta, migrator):
        return delta.get(f"{migrator}.copied", 0)

    def reason_layout(self) -> str | None:
        return "debugfs migrate_copy/<migrator>/stats (a row per reason)" if self.fs.isdir(STATS) else None


def parse_stats(text: str, migrator: str) -> dict[str, int]:
    """One migrator's stats table as flat counters (see the module's docstring)."""
    header, *rows = text.strip().splitlines()
    names = header.split()[1:]
    out = {}
    for row in rows:
        reason, *values = row.split()
        if len(values) != len(names):
            raise ValueError(f"{migrator} stats row {reason!r} has {len(values)} values for {len(names)} counters")
        prefix = migrator if reason == "total" else f"{migrator}.{REASON_NAMES.get(reason, reason)}"
        out.update({f"{prefix}.{name}": int(v) for name, v in zip(names, values)})
    return out
