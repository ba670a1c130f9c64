"""Shared fixtures.

Tests that need the QEMU VM, a real sshd, a browser or root are marked ``vm``, ``ssh``,
``browser`` or ``root`` (pyproject.toml; `make check` leaves them out) and skip with the
reason when it is missing; ``WORKBENCH_REQUIRE_VM=1`` (set by .ci/run) turns every such
skip into a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
REQUIRE = os.environ.get("WORKBENCH_REQUIRE_VM") == "1"
#: VM names of the tests start with this, so two checkouts can test side by side
VM_PREFIX = os.environ.get("WORKBENCH_TEST_VM_PREFIX", "pytest")
#: the kernel the stock VM's tests boot (the chaos sweep, the notebooks, the workloads):
#: the default line's Debian image (kernel/lines: 7.3); WORKBENCH_TEST_STOCK_KERNEL=stock-6.12
#: runs them on Debian 12's own kernel
STOCK_KERNEL = os.environ.get("WORKBENCH_TEST_STOCK_KERNEL", "stock")
#: the kernel the ``patched`` tests boot: our series on the default line (v3 on 7.3)
PATCHED_KERNEL = os.environ.get("WORKBENCH_TEST_PATCHED_KERNEL", "patched")
#: its vanilla tree, where a test wants both
VANILLA_KERNEL = os.environ.get("WORKBENCH_TEST_VANILLA_KERNEL", "vanilla")
#: the LTS line's patched tree (series v2 on 6.12, frozen): one smoke test boots it
LTS_KERNEL = os.environ.get("WORKBENCH_TEST_LTS_KERNEL", "patched-6.12")


def need(condition: bool, reason: str):
    """Skip (or, under WORKBENCH_REQUIRE_VM=1, fail) when ``condition`` is false."""
    if condition:
        return
    if REQUIRE:
        pytest.fail(f"required but unavailable (WORKBENCH_REQUIRE_VM=1): {reason}")
    pytest.skip(reason)


def pytest_runtest_setup(item):
    """A test marked ``root`` needs root on this host, whatever else it checks itself."""
    if item.get_closest_marker("root"):
        need(os.geteuid() == 0, "needs root on this host")


@pytest.fixture
def recorded_fs():
    """The THP and NUMA sysfs of Debian's 6.12 kernel in a 2-node QEMU guest, recorded
    with `workbench sysfs snapshot` and replayed with the kernel's value rules."""
    from workbench.kernelio.kernelfs import FakeFS
    return FakeFS.from_snapshot(DATA / "sysfs-debian-6.12-vm.json")


def _boot(kernel: str, name: str, accel: str | None = None, nodes: list | None = None):
    from workbench.targets import kernel_images
    from workbench.errors import WorkbenchError
    from workbench.targets.vm import VMTarget
    from workbench.vm.config import VMConfig
    need(shutil.which("qemu-system-x86_64") is not None, "QEMU is not installed (apt-get install qemu-system-x86)")
    try:
        kernel_images.resolve(kernel)
    except WorkbenchError as exc:
        need(False, f"no {kernel} kernel: {exc}")
    if accel == "icount":
        from workbench.vm.config import icount_supported
        ok, why = icount_supported()
        need(ok, f"this QEMU cannot run the icount clock: {why}")
    target = VMTarget(VMConfig(kernel=kernel, name=name, accel=accel, nodes=nodes))
    try:
        target.ensure_up()
    except WorkbenchError as first:
        # One retry: under TCG on a loaded 2-core machine a guest has been seen to die
        # while booting. A kernel that really cannot boot fails the second time too.
        import warnings
        saved = target.vm.console.with_suffix(".failed-boot.log")
        shutil.copy(target.vm.console, saved)
        if target.vm.qemu_log.exists():
            shutil.copy(target.vm.qemu_log, target.vm.qemu_log.with_suffix(".failed-boot.log"))
        warnings.warn(f"VM {name} failed to boot once ({first}); console kept in {saved}; retrying")
        target.ensure_up()
    return target


@pytest.fixture(scope="session")
def vm_target():
    """One VM (the default line's stock Debian kernel, 2 nodes) for the whole session, torn
    down after; WORKBENCH_TEST_STOCK_KERNEL boots another kernel in its place."""
    target = _boot(STOCK_KERNEL, VM_PREFIX if STOCK_KERNEL == "stock" else f"{VM_PREFIX}-{STOCK_KERNEL}")
    yield target
    target.vm.down()


#: the one WARN the test engine's map_fail causes (dma-direct, once per boot; test_kernel_v3_dcbm)
MAP_FAIL_WARNING = ("kernel/dma/direct.h", "kernel/dma/swiotlb.c", "dma_direct_map", "swiotlb_map")


class ConsoleWatch:
    """Fails a test whose kernel printed a WARN, BUG or oops on the VM console."""

    def __init__(self, target):
        self.target = target
        self.offset = target.vm.log.size()

    def check(self, allow: tuple[str, ...] = ()):
        """``allow``: a WARN expected of the test, named by what its WARNING line says (a
        file or function); that line and the call trace after it are not problems."""
        problems = self.target.vm.log.problems(self.offset)
        self.offset = self.target.vm.log.size()
        kept, skip_trace = [], False
        for line in problems:
            if "WARNING:" in line and any(a in line for a in allow):
                skip_trace = True
                continue
            if skip_trace and "Call Trace:" in line:
                skip_trace = False
                continue
            kept.append(line)
        assert not kept, "kernel console:\n" + "\n".join(kept[:20])


class KnobWatch:
    """Fails a test that leaves a kernel knob of the shared VM changed: the series' knobs
    and the test DMA engine's mode and faults are read before and after it (counters and
    statistics left out). A knob a test does not restore would otherwise fail a later,
    innocent test on the same VM — as an engine fault left set did once in CI."""

    ROOTS = ("/sys/kernel/mm/migration", "/sys/module/test_dma_engine/parameters",
             "/sys/kernel/debug/test_dma_engine")

    def __init__(self, target):
        self.target = target
        self.before = self._knobs()

    def _knobs(self) -> dict[str, str]:
        from workbench.agent.migrators.dma_test_engine import TEST_ENGINE_COUNTERS
        snap = next(e for e in self.target.run_plan({"op": "snapshot", "roots": list(self.ROOTS)})
                    if e["type"] == "snapshot")["snapshot"]["files"]
        counters = tuple(f"/test_dma_engine/parameters/{c}" for c in TEST_ENGINE_COUNTERS)
        # a choice file ("[kernel] dcbm") lists what is loaded: only the choice is a knob
        return {p: " ".join(re.findall(r"\[[^\]]*\]", v)) if "[" in v else v.strip()
                for p, v in snap.items() if "/stats/" not in p and not p.endswith(counters)}

    def check(self):
        after = self._knobs()
        changed = {p: (self.before[p], after[p]) for p in self.before.keys() & after.keys()
                   if self.before[p] != after[p]}
        assert not changed, "knobs left changed by this test (before, after): " + "; ".join(
            f"{p}: {b!r} -> {a!r}" for p, (b, a) in sorted(changed.items()))


@pytest.fixture(scope="session")
def patched_vm():
    """The kernel series (kernel/build.sh) in a 2-node VM."""
    target = _boot(PATCHED_KERNEL, f"{VM_PREFIX}-{PATCHED_KERNEL}")
    yield target
    target.vm.down()


@pytest.fixture(scope="session")
def lts_vm():
    """The LTS line's patched tree (series v2 on 6.12) in a 2-node VM: its smoke test, and
    the chaos test that needs a kernel whose dcbm really hangs (v2 waits up to 60 s a batch)."""
    t0 = time.time()
    target = _boot(LTS_KERNEL, f"{VM_PREFIX}-{LTS_KERNEL}")
    print(f"\n[{LTS_KERNEL} boot: {time.time() - t0:.0f} s]")
    yield target
    target.vm.down()


@pytest.fixture
def patched(patched_vm):
    """The patched VM, with its console scanned and its knobs compared after the test."""
    watch, knobs = ConsoleWatch(patched_vm), KnobWatch(patched_vm)
    yield patched_vm
    watch.check()
    knobs.check()


# The icount VMs live for their module only: an icount VM is paused between plans, but
# one that is never used again still holds 3 GiB of host memory for the rest of the suite.
@pytest.fixture(scope="module")
def icount_vm():
    """The default line's stock Debian kernel under the instruction-counted clock (--accel icount)."""
    target = _boot("stock", f"{VM_PREFIX}-icount", accel="icount")
    yield target
    target.vm.down()


@pytest.fixture(scope="module")
def patched_icount_vm():
    """The kernel series under the instruction-counted clock."""
    target = _boot("patched", f"{VM_PREFIX}-patched-icount", accel="icount")
    yield target
    target.vm.down()


#: two small DRAM nodes and a CPU-less node that ACPI HMAT makes a lower memory tier
TIERED_NODES = [["1G", "0"], ["1G", "1"], ["512M", ""]]


@pytest.fixture(scope="session")
def tiered_vm():
    """The stock kernel (or WORKBENCH_TEST_STOCK_KERNEL's) with a third, CPU-less node in
    a lower memory tier (demotion)."""
    name = f"{VM_PREFIX}-tiered" if STOCK_KERNEL == "stock" else f"{VM_PREFIX}-{STOCK_KERNEL}-tiered"
    target = _boot(STOCK_KERNEL, name, nodes=TIERED_NODES)
    yield target
    target.vm.down()


#: the series v3 tree under test (tests/test_kernel_v3*.py): ``patched``, the default line's
#: series; WORKBENCH_TEST_V3_KERNEL names another (a v3 being written, say)
V3_KERNEL = os.environ.get("WORKBENCH_TEST_V3_KERNEL", PATCHED_KERNEL)


@pytest.fixture(scope="session")
def v3_vm(request):
    """Series v3 with two nodes with CPUs and a CPU-less lower tier (demotion), shared by
    the v3 test modules, which run one after the other. When it is the patched kernel, it
    is the patched tiered VM itself: one boot, not two of the same kernel."""
    if V3_KERNEL == PATCHED_KERNEL:
        return request.getfixturevalue("patched_tiered_vm")
    return request.getfixturevalue("_other_v3_vm")


@pytest.fixture(scope="session")
def _other_v3_vm():
    t0 = time.time()
    target = _boot(V3_KERNEL, f"{VM_PREFIX}-{V3_KERNEL}-v3", nodes=TIERED_NODES)
    print(f"\n[{V3_KERNEL} boot: {time.time() - t0:.0f} s]")
    yield target
    target.vm.down()


@pytest.fixture(scope="session")
def patched_tiered_vm():
    """The kernel series with the same lower-tier topology."""
    t0 = time.time()
    target = _boot(PATCHED_KERNEL, f"{VM_PREFIX}-{PATCHED_KERNEL}-tiered", nodes=TIERED_NODES)
    print(f"\n[{PATCHED_KERNEL} (tiered) boot: {time.time() - t0:.0f} s]")
    yield target
    target.vm.down()
