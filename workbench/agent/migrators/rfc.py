"""The user-space controls the public RFC series posted, one class per version.

Paths and values are the ones each posting of "Accelerate page migration with batch
copying and hardware offload" (linux-mm, RFC V1 2024-06 to RFC V6 2026-06) added, as
each class below spells out. Each class is registered here, in this order, which is the detection order
(after the workbench's own interface, which :func:`workbench.agent.migrators.detect` tries
first); every predicate is also written to exclude the others, so the order only
matters for trees no posted kernel has:

1. RFC V6   ``/sys/module/dcbm/parameters/{offloading,reason_mask}``, or a loadable ``dcbm``
            module with those parameters (``modinfo``): its own location.
2. RFC V4   ``/sys/kernel/dcbm/folios_migrated``: V4's dcbm is V3's plus counters.
3. padata   ``/sys/kernel/cpu_mt_copy/offloading``: its own directory.
4. V2/V3    ``/sys/kernel/cpu_mt/offloading`` or ``/sys/kernel/dcbm/nr_dma_chan``
            (without V4's counters or the padata directory).
5. RFC V1   ``/sys/kernel/dcbm/offloading`` and nothing else.

Where the record leaves a value open, the class says so (``ALLOWED``) and the kernel's
own refusal (-EINVAL) is taken as the truth; see :class:`RfcV2V3` for threads.
"""

from __future__ import annotations

from collections.abc import Iterable

from ...errors import WorkbenchError
from ...kernelio.kernelfs import KnobRejected
from . import mm_migration as unified  # noqa: F401  (registered before these, whichever module is imported first
from .base import register
from .rfc_common import (NO_BATCH_SIZE, NO_COPY_TIME, NO_COUNTERS, NO_REASONS, NO_SELECTOR, NO_THREAD_TIME, Driver, RfcControl)

DCBM = "/sys/kernel/dcbm"
CPU_MT = "/sys/kernel/cpu_mt"
CPU_MT_COPY = "/sys/kernel/cpu_mt_copy"
DCBM_PARAMS = "/sys/module/dcbm/parameters"
DCBM_COUNTERS = ("folios_migrated", "folios_failures")
CHANNELS = (1, 16)
#: RFC V2 takes 1..64 threads, RFC V3 1..32
THREADS_V2 = (1, 64)
THREADS_V3 = (1, 32)
#: V6's reason_mask takes the kernel's own migrate_reason_names[] (match_string), all ten
#: MR_* reasons in their order (bit i = reason i), and reads back as them, comma-separated,
#: or "none"; default: every reason. Read from V6's mm/migrate_copy_offload.c and checked on
#: V6 booted over Linux 7.2.13.
V6_REASONS = ("compaction", "memory_failure", "memory_hotplug", "syscall_or_cpuset", "mempolicy_mbind",
              "numa_misplaced", "contig_range", "longterm_pin", "demotion", "damon")
#: the workbench's names (as our series' ``reasons`` spells them) where the kernel's differ
V6_REASON_ALIASES = {"syscall": "syscall_or_cpuset"}
#: the parameters that make a module named dcbm V6's, before it is loaded
V6_DCBM_PARAMS = {"offloading", "nr_dma_chan", "reason_mask"}


@register
class RfcV6(RfcControl):
    """dcbm as module parameters; counters reset by any write (the workbench never writes
    them: it takes deltas); ``reason_mask`` chooses which migration reasons are offloaded.

    dcbm is a module (``CONFIG_DCBM_DMA=m``): the kernel shows nothing of V6 until it is
    loaded, so a loadable dcbm with V6's parameters is V6 too, and the workbench loads it
    when dcbm is chosen. One provider at a time: turning ``offloading`` on while another is
    registered fails with EBUSY (no "last one turned on wins" as in V1-V4)."""

    name = "RFC V6 /sys/module/dcbm/parameters"
    brought_by = "RFC V6 (2026-06)"
    DRIVERS = (Driver("dcbm", DCBM_PARAMS, "channels", "nr_dma_chan", DCBM_COUNTERS),)
    BOUNDS = {"channels": CHANNELS}
    LACKS = ("no mtcopy (dropped in V4)", NO_BATCH_SIZE, NO_COPY_TIME,
             "dcbm's counters are its totals over every reason (none per reason)",
             "a batch dcbm cannot start for want of a DMA channel (ENODEV) goes back to the CPU copy "
             "and counts in neither folios_migrated nor folios_failures")
    modules = ("dcbm",)

    @classmethod
    def detect(cls, fs):
        if fs.exists(f"{DCBM_PARAMS}/offloading") and fs.exists(f"{DCBM_PARAMS}/reason_mask"):
            return True
        return not fs.exists(DCBM_PARAMS) and V6_DCBM_PARAMS <= set(fs.module_params("dcbm") or ())

    def reasons(self) -> str:
        return self.fs.read(f"{DCBM_PARAMS}/reason_mask").strip()

    def set_reasons(self, guard, names: str | int | Iterable[str]) -> str:
        """Offload only for these migration reasons: names (``["compaction", "demotion"]``
        or ``"compaction,demotion"``; ``MR_`` prefix and case ignored; the workbench's
        ``syscall`` is the kernel's ``syscall_or_cpuset``), ``"all"``, ``"none"``, or a
        number (bit i = the i-th of :data:`V6_REASONS`; the kernel drops bits beyond them).
        Returns what was written; the guard puts the old mask back."""
        value = _reason_mask(names)
        path = f"{DCBM_PARAMS}/reason_mask"
        try:
            guard.set(path, value)
        except KnobRejected:
            raise WorkbenchError(f"reason mask {value!r} was refused by the kernel ({path}); allowed: "
                                 f"{_REASONS_ALLOWED}") from None
        return value


_REASONS_ALLOWED = f"comma-separated {', '.join(V6_REASONS)}; all; none; or a number"


def _reason_mask(names) -> str:
    if isinstance(names, bool):
        raise WorkbenchError(f"reason mask {names!r} is not valid; allowed: {_REASONS_ALLOWED}")
    if isinstance(names, int):
        if names < 0:
            raise WorkbenchError(f"reason mask {names} is negative; allowed: {_REASONS_ALLOWED}")
        return str(names)
    if isinstance(names, str):
        text = names.strip().lower()
        if text in ("all", "none"):
            return text
        if text.isdigit():
            return str(int(text))
        names = text.split(",")
    out = []
    for raw in names:
        name = str(raw).strip().lower()
        name = name[3:] if name.startswith("mr_") else name
        name = V6_REASON_ALIASES.get(name, name)
        if name not in V6_REASONS:
            raise WorkbenchError(f"migration reason {str(raw).strip()!r} is not known to RFC V6's reason_mask; "
                                 f"allowed: {_REASONS_ALLOWED}")
        if name not in out:
            out.append(name)
    return ",".join(out) if out else "none"


@register
class RfcV4(RfcControl):
    """V3's dcbm directory plus two counters (read-only as far as the record says:
    the workbench only takes deltas); mtcopy dropped."""

    name = "RFC V4 /sys/kernel/dcbm"
    brought_by = "RFC V4 (2026-03)"
    DRIVERS = (Driver("dcbm", DCBM, "channels", "nr_dma_chan", DCBM_COUNTERS),)
    BOUNDS = {"channels": CHANNELS}
    LACKS = ("no mtcopy (dropped in V4)", NO_BATCH_SIZE, NO_COPY_TIME,
             "no reason knob: V4's migration-reason policy is built in")

    @classmethod
    def detect(cls, fs):
        return (fs.exists(f"{DCBM}/offloading") and fs.exists(f"{DCBM}/folios_migrated")
                and not fs.exists(f"{CPU_MT_COPY}/offloading"))


@register
class PadataMtCopy(RfcControl):
    """Zi Yan's variant of mtcopy on ``padata_do_multithreaded()``: ``cpu_mt_copy/`` with
    the V2/V3 cpu_mt files; dcbm too when ``/sys/kernel/dcbm`` is there."""

    name = "padata /sys/kernel/cpu_mt_copy"
    brought_by = "Zi Yan's padata variant of the series' mtcopy"
    DRIVERS = (Driver("mtcopy", CPU_MT_COPY, "threads", "threads"),
               Driver("dcbm", DCBM, "channels", "nr_dma_chan", DCBM_COUNTERS))
    BOUNDS = {"threads": THREADS_V2, "channels": CHANNELS}
    ALLOWED = {"threads": "at most 1..64 (the variant's own bound is not in the record: the kernel decides)",
               "channels": "1..16"}
    LACKS = (NO_BATCH_SIZE, NO_REASONS, NO_THREAD_TIME, "no thread placement knob (padata places the threads)")

    @classmethod
    def detect(cls, fs):
        return fs.exists(f"{CPU_MT_COPY}/offloading")

    def lacks(self):
        out = super().lacks()
        have_counters = any(k.startswith("dcbm.") for k in self.counters())
        out.insert(1, NO_COPY_TIME if have_counters else NO_COUNTERS)
        if len(self.present()) > 1:
            out.append(NO_SELECTOR)
        return out


@register
class RfcV2V3(RfcControl):
    """RFC V2 (2025-03) and V3 (2025-09): ``cpu_mt/`` (mtcopy) and ``dcbm/``.

    The two look the same in sysfs; only V3's test patch 9/9 adds ``cpu_mt/cpuselect``.
    The threads bound differs: V2 takes 1..64, V3 1..32. So :attr:`threads_bound` is
    1..32 when ``cpuselect`` proves V3, else V2's 1..64; a V3 kernel refuses 33..64
    itself with -EINVAL, and :meth:`configure` reports that refusal with both bounds.
    The workbench never probes the bound by writing.
    """

    name = "RFC V2/V3 /sys/kernel/{cpu_mt,dcbm}"
    brought_by = "RFC V2 (2025-03) or V3 (2025-09)"
    DRIVERS = (Driver("mtcopy", CPU_MT, "threads", "threads"),
               Driver("dcbm", DCBM, "channels", "nr_dma_chan"))
    ALLOWED = {"threads": "1..64 on RFC V2, 1..32 on RFC V3", "channels": "1..16"}
    LACKS = (NO_BATCH_SIZE, NO_COUNTERS, NO_REASONS)

    @classmethod
    def detect(cls, fs):
        return ((fs.exists(f"{CPU_MT}/offloading") or fs.exists(f"{DCBM}/nr_dma_chan"))
                and not fs.exists(f"{DCBM}/folios_migrated") and not fs.exists(f"{CPU_MT_COPY}/offloading"))

    def has_cpuselect(self) -> bool:
        return self.fs.exists(f"{CPU_MT}/cpuselect")

    def variant(self) -> str:
        return "V3 (test patch 9/9's cpu_mt/cpuselect is present)" if self.has_cpuselect() else "V2 or V3"

    @property
    def threads_bound(self) -> tuple[int, int]:
        return THREADS_V3 if self.has_cpuselect() else THREADS_V2

    def bounds(self, knob):
        return {"threads": self.threads_bound, "channels": CHANNELS}.get(knob)

    def describe(self):
        return {**super().describe(), "variant": self.variant()}

    def lacks(self):
        out = super().lacks()
        if "mtcopy" in self.migrators():
            out.append(NO_THREAD_TIME)
            out.append("thread placement only fill-one-die or spread-across-dies (cpuselect, V3 test patch 9/9), "
                       "no node or LLC choice" if self.has_cpuselect() else "no thread placement knob")
        if len(self.present()) > 1:
            out.append(NO_SELECTOR)
        return out

    def set_cpuselect(self, guard, fill_one_die: bool) -> None:
        """V3 test patch 9/9: fill one die with copy threads first, or spread them across dies."""
        path = f"{CPU_MT}/cpuselect"
        if not self.fs.exists(path):
            raise WorkbenchError(f"thread placement cannot be set: {path} is absent (only RFC V3 with test "
                                 f"patch 9/9 has it)")
        guard.set(path, "1" if fill_one_die else "0")


@register
class RfcV1(RfcControl):
    """RFC V1 (2024-06): dcbm on or off, one DMA channel, order-0 folios only."""

    name = "RFC V1 /sys/kernel/dcbm"
    brought_by = "RFC V1 (2024-06)"
    DRIVERS = (Driver("dcbm", DCBM),)
    LACKS = ("order-0 only: dcbm offloads 4K (order-0) folios only, never large folios",
             "one DMA channel and no channels knob", "no mtcopy (V1 has dcbm only)",
             NO_BATCH_SIZE, NO_COUNTERS, NO_REASONS)

    @classmethod
    def detect(cls, fs):
        return (fs.exists(f"{DCBM}/offloading") and not fs.exists(f"{DCBM}/nr_dma_chan")
                and not fs.exists(f"{DCBM}/folios_migrated") and not fs.exists(f"{CPU_MT}/offloading")
                and not fs.exists(f"{CPU_MT_COPY}/offloading"))
