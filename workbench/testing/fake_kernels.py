"""Fake sysfs trees of the kernels the public RFC series posted, with their value rules.

``fake_tree("v3")`` and friends return a :class:`FakeKernel`: a
:class:`~workbench.kernelio.kernelfs.FakeFS` holding the control files that version's posting added (the
paths and value rules :mod:`workbench.agent.migrators.rfc` states per class) that also models what user space cannot read back: which migrator the copy
``static_call`` points at (:attr:`FakeKernel.offload`). Every driver's ``offloading``
store handler calls ``start_offloading()`` on 1 (that driver becomes active, whoever was
before) and ``stop_offloading()`` on 0 (back to the kernel's copy, whoever was active);
the file itself keeps reading the driver's own flag. :meth:`FakeKernel.migrate` moves the
counters as a batch through the active migrator would.

The rules, by version (assumptions, where the record says nothing, marked *). V6's were
checked against the real kernel: every write recorded from V6 booted over Linux 7.2.13
(``tests/data/sysfs-rfc-v6-7.2.13-vm.json``) is replayed on this fake in
tests/test_published_interfaces.py.

======== ===================================== ===============================================
version  file                                  rule
======== ===================================== ===============================================
v1       dcbm/offloading                       0 or 1, else EINVAL
v2       dcbm/offloading, cpu_mt/offloading    0 or 1, else EINVAL
v2       dcbm/nr_dma_chan                      1..16; outside: not EINVAL (that is V3's), *clamped
v2       cpu_mt/threads                        1..64 else EINVAL*, default 4
v3       dcbm/offloading                       kstrtobool (1/0, y/n, on/off)
v3       cpu_mt/offloading                     0 or 1, else EINVAL
v3       dcbm/nr_dma_chan                      1..16, else EINVAL
v3       cpu_mt/threads                        1..32, else EINVAL (default 4*)
v3       cpu_mt/cpuselect (``cpuselect=True``) any number: 1 fills one die first, else spread
padata   cpu_mt_copy/{offloading,threads}      as v2's cpu_mt; dcbm as v3 with ``dcbm=True``
v4       dcbm/{offloading,nr_dma_chan}         as v3*
v4       dcbm/folios_{migrated,failures}       read-only (EACCES)
v6       parameters/offloading             kstrtobool, reads back 1/0 (recorded)
v6       parameters/nr_dma_chan            kstrtouint 1..16, no leading space (recorded)
v6       parameters/reason_mask                a number (raw mask) or comma-separated
                                               migrate_reason_names[], all, none; reads back
                                               as names or none (:func:`reason_mask_rule`)
v6       parameters/folios_{migrated,failures} any write resets to 0
======== ===================================== ===============================================

``nr_dma_chan`` defaults to 1*, ``reason_mask`` to every reason, every flag to 0.
:attr:`FakeKernel.bounds` holds the threads and channels ranges the tree enforces, so
tests read them from the fake instead of hard-coding them.
"""

from __future__ import annotations

import errno

from workbench.kernelio.kernelfs import FakeFS, bool_rule, int_rule

DCBM = "/sys/kernel/dcbm"
CPU_MT = "/sys/kernel/cpu_mt"
CPU_MT_COPY = "/sys/kernel/cpu_mt_copy"
DCBM_PARAMS = "/sys/module/dcbm/parameters"
#: migrate_reason_names[], in MR_* order (V6's reason_mask bits)
REASONS = ("compaction", "memory_failure", "memory_hotplug", "syscall_or_cpuset", "mempolicy_mbind",
           "numa_misplaced", "contig_range", "longterm_pin", "demotion", "damon")
VERSIONS = ("v1", "v2", "v3", "padata", "v4", "v6")

#: files every tree has, so that no detection can succeed on an empty tree by accident
STOCK = {
    "/sys/kernel/mm/transparent_hugepage/enabled": "always [madvise] never",
    "/proc/vmstat": "pgmigrate_success 0\npgmigrate_fail 0",
}

strict01 = int_rule(0, 1)


def clamp_rule(lo: int, hi: int):
    def rule(current: str, value: str) -> str:
        try:
            n = int(value.strip(), 0)
        except ValueError:
            raise OSError(errno.EINVAL, "not a number") from None
        return str(min(max(n, lo), hi))
    return rule


def any_write_resets(current: str, value: str) -> str:
    return "0"


def reason_mask_rule(current: str, value: str) -> str:
    """V6's reason_mask: a number (kstrtoul, base 0) is a raw mask, bits beyond the ten
    reasons dropped; else comma-separated tokens, each ``none`` (clears), ``all`` (sets
    every reason) or a migrate_reason_names[] name, empty tokens skipped, anything else
    EINVAL. It reads back as the set reasons' names, comma-separated, or ``none``."""
    v = value.strip()
    try:
        mask = int(v, 0) if v and not v.startswith("-") else None
    except ValueError:
        mask = None
    if mask is None:
        mask = 0
        for tok in (t.strip() for t in v.split(",")):
            if not tok:
                continue
            if tok == "none":
                mask = 0
            elif tok == "all":
                mask = (1 << len(REASONS)) - 1
            elif tok in REASONS:
                mask |= 1 << REASONS.index(tok)
            else:
                raise OSError(errno.EINVAL, "unknown reason")
    mask &= (1 << len(REASONS)) - 1
    return ",".join(r for i, r in enumerate(REASONS) if mask >> i & 1) or "none"


def kstrtouint_rule(lo: int, hi: int):
    """kstrtouint (a module parameter's own set function): digits (base 0), one trailing
    newline at most, no other space; then the function's own range check."""
    def rule(current: str, value: str) -> str:
        text = value[:-1] if value.endswith("\n") else value
        try:
            if not text or text != text.strip() or text.startswith(("-", "+")):
                raise ValueError
            n = int(text, 0)
        except ValueError:
            raise OSError(errno.EINVAL, "not a number") from None
        if not lo <= n <= hi:
            raise OSError(errno.EINVAL, "out of range")
        return str(n)
    return rule


class FakeKernel(FakeFS):
    def __init__(self, version: str):
        super().__init__(dict(STOCK))
        self.version = version
        #: the migrator the static call points at: "kernel", "mtcopy" or "dcbm"
        self.offload = "kernel"
        #: knob -> (lo, hi) this tree accepts
        self.bounds: dict[str, tuple[int, int]] = {}
        #: directory of the dcbm counters, if any
        self.counter_root: str | None = None

    def add_flag(self, path: str, migrator: str, parse=strict01):
        def rule(current: str, value: str) -> str:
            new = parse(current, value)  # raises OSError (EINVAL) on a bad value
            self.offload = migrator if new == "1" else "kernel"  # start_offloading() / stop_offloading()
            return new
        self.add(path, "0", rule=rule)

    def migrate(self, folios: int, failed: int = 0) -> None:
        """A migration of ``folios`` folios, ``failed`` of which dcbm failed to copy."""
        if self.offload == "dcbm" and self.counter_root:
            for name, n in (("folios_migrated", folios - failed), ("folios_failures", failed)):
                path = f"{self.counter_root}/{name}"
                self.files[path] = str(int(self.files[path]) + n)

    def state(self) -> tuple[dict[str, str], str]:
        """Everything a guard must restore: the files and the hidden active migrator."""
        return dict(self.files), self.offload


def fake_tree(version: str, *, mtcopy: bool = True, dcbm: bool | None = None,
              cpuselect: bool = False) -> FakeKernel:
    """A tree of ``version`` (one of :data:`VERSIONS`). ``mtcopy=False`` / ``dcbm=False``
    leave that driver's module unloaded (V2/V3, padata); ``dcbm`` defaults to on except
    for padata; ``cpuselect`` adds V3 test patch 9/9's file (v3 only)."""
    if version not in VERSIONS:
        raise ValueError(f"unknown version {version!r}; known: {', '.join(VERSIONS)}")
    if dcbm is None:
        dcbm = version != "padata"
    fs = FakeKernel(version)
    if version == "v1":
        fs.add_flag(f"{DCBM}/offloading", "dcbm")
    elif version in ("v2", "v3"):
        v3 = version == "v3"
        if dcbm:
            fs.add_flag(f"{DCBM}/offloading", "dcbm", bool_rule if v3 else strict01)
            fs.add(f"{DCBM}/nr_dma_chan", "1", rule=int_rule(1, 16) if v3 else clamp_rule(1, 16))
            fs.bounds["channels"] = (1, 16)
        if mtcopy:
            fs.bounds["threads"] = (1, 32) if v3 else (1, 64)
            fs.add_flag(f"{CPU_MT}/offloading", "mtcopy")
            fs.add(f"{CPU_MT}/threads", "4", rule=int_rule(*fs.bounds["threads"]))
            if cpuselect:
                if not v3:
                    raise ValueError("cpuselect is V3's test patch 9/9")
                fs.add(f"{CPU_MT}/cpuselect", "0", rule=int_rule())
    elif version == "padata":
        fs.bounds["threads"] = (1, 64)
        fs.add_flag(f"{CPU_MT_COPY}/offloading", "mtcopy")
        fs.add(f"{CPU_MT_COPY}/threads", "4", rule=int_rule(1, 64))
        if dcbm:
            fs.add_flag(f"{DCBM}/offloading", "dcbm", bool_rule)
            fs.add(f"{DCBM}/nr_dma_chan", "1", rule=int_rule(1, 16))
            fs.bounds["channels"] = (1, 16)
    elif version == "v4":
        fs.add_flag(f"{DCBM}/offloading", "dcbm", bool_rule)
        fs.add(f"{DCBM}/nr_dma_chan", "1", rule=int_rule(1, 16))
        fs.bounds["channels"] = (1, 16)
        for name in ("folios_migrated", "folios_failures"):
            fs.add(f"{DCBM}/{name}", "0", readonly=True)
        fs.counter_root = DCBM
    elif version == "v6":
        fs.add_flag(f"{DCBM_PARAMS}/offloading", "dcbm", bool_rule)
        fs.add(f"{DCBM_PARAMS}/nr_dma_chan", "1", rule=kstrtouint_rule(1, 16))
        fs.bounds["channels"] = (1, 16)
        fs.add(f"{DCBM_PARAMS}/reason_mask", ",".join(REASONS), rule=reason_mask_rule)
        for name in ("folios_migrated", "folios_failures"):
            fs.add(f"{DCBM_PARAMS}/{name}", "0", rule=any_write_resets)
        fs.counter_root = DCBM_PARAMS
    return fs
