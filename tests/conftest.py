"""Shared fixtures.

Tests that need the QEMU VM (or sshd, or root) skip with the reason when it is missing;
``WORKBENCH_REQUIRE_VM=1`` (set by .ci/run) turns every such skip into a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
REQUIRE = os.environ.get("WORKBENCH_REQUIRE_VM") == "1"


def need(condition: bool, reason: str):
    """Skip (or, under WORKBENCH_REQUIRE_VM=1, fail) when ``condition`` is false."""
    if condition:
        return
    if REQUIRE:
        pytest.fail(f"required but unavailable (WORKBENCH_REQUIRE_VM=1): {reason}")
    pytest.skip(reason)


@pytest.fixture
def recorded_fs():
    """The THP and NUMA sysfs of Debian's 6.12 kernel in a 2-node QEMU guest, recorded
    with `workbench sysfs snapshot` and replayed with the kernel's value rules."""
    from workbench.kernelfs import FakeFS
    return FakeFS.from_snapshot(DATA / "sysfs-debian-6.12-vm.json")


@pytest.fixture(scope="session")
def vm_target():
    """One VM (stock Debian 6.12, 2 nodes) for the whole session, torn down after."""
    from workbench import kernels
    from workbench.targets.vm import VMTarget
    from workbench.vm import VMConfig
    need(shutil.which("qemu-system-x86_64") is not None, "QEMU is not installed (apt-get install qemu-system-x86)")
    need(bool(kernels.installed_stock()), "the stock kernel is not fetched (workbench kernel fetch-stock)")
    target = VMTarget(VMConfig(name="pytest"))
    target.ensure_up()
    yield target
    target.vm.down()
