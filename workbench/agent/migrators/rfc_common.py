"""What the public RFC series' user-space controls have in common.

Every posted version of "Accelerate page migration with batch copying and hardware
offload" controls its migrators through one directory per driver, each with an
``offloading`` flag and at most one tuning file (threads or DMA channels), sometimes
with counters. There is no file that names the active migrator: a driver's store
handler calls ``start_offloading()`` on ``1`` and ``stop_offloading()`` on ``0``, so the
last driver turned on wins and turning any driver off goes back to the kernel's copy.
:class:`RfcControl` therefore selects a migrator by

1. writing the tuning knobs first (a value the kernel refuses then changes nothing),
2. turning every *other* driver that is on, off,
3. turning the chosen driver on last;

and :class:`~workbench.kernelio.kernelfs.KnobGuard` undoes it in reverse order, which turns the
chosen driver off before the previously active one is turned back on.

The version-specific classes are in :mod:`.rfc`, each with the paths and values its
posting added.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import WorkbenchError
from ...kernelio.kernelfs import KnobRejected
from . import dma_test_engine
from .base import MigrationControl

#: what every posted version lacks compared with /sys/kernel/mm/migration/
NO_BATCH_SIZE = ("no batch size knob (compile-time NR_MAX_BATCHED_MIGRATION: HPAGE_PMD_NR = 512, "
                 "unless a test patch raised it)")
NO_COUNTERS = "no counters at all (neither folios copied nor copy time), so F cannot be measured"
NO_COPY_TIME = ("no copy-time counters (only folios_migrated and folios_failures), "
                "so F cannot be measured")
NO_REASONS = "no reason knob: which migration reasons are batched and offloaded cannot be chosen"
NO_SELECTOR = ("no file names the active migrator: each driver has its own offloading flag, "
               "the workbench infers the active one from them")
NO_THREAD_TIME = "no copy-thread time counter, so the copy threads' CPU time cannot be charged to the caller"


def flag_is_on(text: str) -> bool:
    """An offloading flag as read back: ``1``/``0`` (sysfs) or ``Y``/``N`` (a bool
    module parameter); any other non-zero number counts as on."""
    v = text.strip().lower()
    if v in ("y", "yes", "on", "true"):
        return True
    try:
        return int(v, 0) != 0
    except ValueError:
        return False


@dataclass(frozen=True)
class Driver:
    """One driver's control directory."""

    #: the migrator name the workbench shows for it
    migrator: str
    #: its directory (``/sys/kernel/dcbm``, ``/sys/module/dcbm/parameters``, ...)
    root: str
    #: the uniform knob its tuning file sets (``threads`` / ``channels``), if any
    knob: str | None = None
    #: that tuning file's name under ``root``
    knob_file: str | None = None
    #: counter files under ``root``, shown as ``<migrator>.<file>``
    counters: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return f"{self.root}/offloading"

    def knob_path(self) -> str | None:
        return f"{self.root}/{self.knob_file}" if self.knob_file else None


class RfcControl(MigrationControl):
    """A posted version's control: a set of :class:`Driver` directories."""

    #: the drivers this version can have (each present only when its module is loaded)
    DRIVERS: tuple[Driver, ...] = ()
    #: knob -> (lo, hi): the workbench's check before writing; the kernel has the last word
    BOUNDS: dict[str, tuple[int, int]] = {}
    #: knob -> plain words on what the versions allow, for the error when the kernel refuses
    ALLOWED: dict[str, str] = {}
    #: what this version lacks whichever drivers are loaded
    LACKS: tuple[str, ...] = ()
    #: the series' module names are not in the record, so the workbench never modprobes them
    modules: tuple[str, ...] = ()

    # what the kernel offers ------------------------------------------------------
    def present(self) -> list[Driver]:
        return [d for d in self.DRIVERS if self.fs.exists(d.flag)]

    def driver(self, migrator: str) -> Driver | None:
        return next((d for d in self.present() if d.migrator == migrator), None)

    def migrators(self):
        return ["kernel"] + [d.migrator for d in self.present()]

    def flags(self) -> dict[str, bool]:
        return {d.migrator: flag_is_on(self.fs.read(d.flag)) for d in self.present()}

    def active(self):
        on = [m for m, v in self.flags().items() if v]
        if not on:
            return "kernel"
        if len(on) == 1:
            return on[0]
        # several flags on: the last one turned on is active, and sysfs cannot say which
        return "unknown"

    def bounds(self, knob: str) -> tuple[int, int] | None:
        return self.BOUNDS.get(knob)

    def knobs(self):
        out = {"threads": None, "channels": None, "batch_size": None}
        for d in self.present():
            if d.knob and self.fs.exists(d.knob_path()):
                out[d.knob] = self.bounds(d.knob)
        # a driver that is a module not loaded yet (V6's dcbm): its knob as modinfo lists it
        for d in self.DRIVERS:
            if (d.knob and out[d.knob] is None and d.migrator in self.modules and d.migrator in self.loadable()
                    and d.knob_file in (self.fs.module_params(d.migrator) or ())):
                out[d.knob] = self.bounds(d.knob)
        return out

    def lacks(self):
        out = list(self.LACKS)
        have = {d.migrator for d in self.present()}
        for mig in dict.fromkeys(d.migrator for d in self.DRIVERS):
            if mig not in have:
                roots = " or ".join(d.root for d in self.DRIVERS if d.migrator == mig)
                out.append(f"no {mig} now: {roots} is absent (its module is not loaded, or not built)")
        return out

    # changing it -----------------------------------------------------------------
    def _set_knob(self, guard, knob: str, value: int):
        d = next(d for d in self.present() if d.knob == knob)
        path = d.knob_path()
        try:
            guard.set(path, str(value))
        except KnobRejected:
            raise WorkbenchError(f"{knob} {value} was refused by the kernel ({path}); "
                                 f"allowed: {self.ALLOWED.get(knob) or '%d..%d' % self.bounds(knob)}") from None
        stored = self.fs.read(path).strip()
        if stored != str(value):
            raise WorkbenchError(f"{knob} {value} was not taken by the kernel: {path} reads {stored!r} "
                                 f"after writing {value}; allowed: "
                                 f"{self.ALLOWED.get(knob) or '%d..%d' % self.bounds(knob)}")

    def _configure(self, guard, migrator, knobs):
        # base.configure has checked the migrator is offered and each knob exists and is in bounds;
        # batch_size and batch_kernel_copy are never set here (no version has them, so
        # base.configure refused them)
        for knob, value in (("threads", knobs["threads"]), ("channels", knobs["channels"])):
            if value is not None:
                self._set_knob(guard, knob, value)
        for d in self.present():
            if d.migrator != migrator and flag_is_on(self.fs.read(d.flag)):
                guard.set(d.flag, "0")
        chosen = self.driver(migrator)
        if chosen is not None:
            guard.set(chosen.flag, "1")

    # counters --------------------------------------------------------------------
    def counters(self):
        out = {}
        for d in self.present():
            for c in d.counters:
                path = f"{d.root}/{c}"
                if self.fs.exists(path):
                    out[f"{d.migrator}.{c}"] = self.fs.read_int(path)
        out.update(dma_test_engine.counters(self.fs))
        return out

    #: the counter of folios a driver copied itself (V4 to V6's dcbm); where a driver
    #: lacks it, what it copied cannot be told
    COPIED = "folios_migrated"

    def folios_copied(self, delta, migrator):
        """Folios ``migrator`` copied (not given back to the CPU), from a counters() delta,
        where the posting counts them: ``folios_migrated`` (V4-V6 dcbm); else None."""
        key = f"{migrator}.{self.COPIED}"
        return delta.get(key, 0) if any(self.COPIED in d.counters for d in self.present()
                                         if d.migrator == migrator) else None

    def composite_knobs(self):
        return dma_test_engine.composite_knobs()
