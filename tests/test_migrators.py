"""Migrator control against a fake tree with the rules of kernel/README.md (series v2)."""

import pytest

from workbench.agent import migrators
from workbench.errors import WorkbenchError
from workbench.kernelio.kernelfs import FakeFS, KnobGuard, bool_rule, int_rule, reset_rule
from workbench.agent.migrators.base import KernelCopyOnly
from workbench.agent.migrators.mm_migration import COUNTERS, MmMigrationInterface
from workbench.testing.fake_series import unified_tree

ROOT = "/sys/kernel/mm/migration"


def test_detects_the_unified_interface_or_none():
    assert isinstance(migrators.detect(unified_tree()), MmMigrationInterface)
    assert isinstance(migrators.detect(FakeFS({"/proc/vmstat": ""})), KernelCopyOnly)


def test_configure_and_restore(monkeypatch):
    fs = unified_tree()
    ctl = migrators.detect(fs)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert ctl.migrators() == ["kernel", "mtcopy"] and ctl.active() == "kernel"
    assert ctl.knobs() == {"threads": (1, 2), "channels": None, "batch_size": (1, 262144),
                           "batch_kernel_copy": (0, 1)}
    before = dict(fs.files)
    with KnobGuard(fs) as g:
        ctl.configure(g, "mtcopy", threads=1, batch_size=1024)
        assert ctl.active() == "mtcopy"
        assert fs.read(f"{ROOT}/mtcopy/threads") == "1" and fs.read(f"{ROOT}/batch_size") == "1024"
    assert fs.files == before
    with KnobGuard(fs) as g:
        ctl.configure(g, "kernel", batch_kernel_copy=True)
        assert fs.read(f"{ROOT}/batch_kernel_copy") == "1"
    assert fs.files == before


@pytest.mark.parametrize("kw,msg", [
    ({"migrator": "nosuch"}, "migrator 'nosuch' is not offered by this kernel"),
    ({"migrator": "dcbm"}, "cannot load dcbm"),
    ({"migrator": "kernel", "batch_size": 0}, "batch size 0 is out of range; allowed: 1..262144"),
    ({"migrator": "kernel", "channels": 2}, "channels 2 cannot be set"),
])
def test_bad_settings_change_nothing(kw, msg, monkeypatch):
    fs = unified_tree()
    ctl = migrators.detect(fs)
    monkeypatch.setattr(ctl, "load", lambda m: (_ for _ in ()).throw(WorkbenchError(f"cannot load {m}")))
    before = dict(fs.files)
    with pytest.raises(WorkbenchError) as e:
        with KnobGuard(fs) as g:
            ctl.configure(g, **kw)
    assert msg in str(e.value)
    assert fs.files == before


def test_counters_and_copy_share():
    fs = unified_tree()
    ctl = migrators.detect(fs)
    c0 = ctl.counters()
    fs.files[f"{ROOT}/stats/mtcopy/copy_ns"] = "600"
    fs.files[f"{ROOT}/stats/mtcopy/fallback_ns"] = "100"
    fs.files[f"{ROOT}/stats/mtcopy/batch_ns"] = "1000"
    fs.files[f"{ROOT}/stats/mtcopy/cpu_ns"] = "1100"
    fs.files[f"{ROOT}/stats/mtcopy/syscall/copy_ns"] = "600"
    c1 = ctl.counters()
    delta = {k: c1[k] - c0[k] for k in c1}
    assert delta["mtcopy.copy_ns"] == 600 and delta["mtcopy.cpu_ns"] == 1100
    assert delta["mtcopy.syscall.copy_ns"] == 600 and delta["mtcopy.compaction.copy_ns"] == 0
    assert ctl.copy_share(delta, "mtcopy") == pytest.approx(0.6)
    assert ctl.copy_share_all(delta, "mtcopy") == pytest.approx(0.7)
    assert ctl.copy_share(delta, "kernel") is None


def test_stock_kernel_offers_only_the_kernel_copy():
    ctl = KernelCopyOnly(FakeFS())
    assert ctl.describe()["migrators"] == ["kernel"] and ctl.counters() == {}
    with pytest.raises(WorkbenchError, match="threads 4 cannot be set"):
        ctl.configure(KnobGuard(FakeFS()), "kernel", threads=4)


def test_a_loadable_mtcopy_offers_its_threads_knob(monkeypatch):
    """Host-side checks run before the trial loads the module: the knob must be offered."""
    fs = unified_tree(with_mtcopy=False)
    ctl = migrators.detect(fs)
    monkeypatch.setattr(ctl, "loadable", lambda: ["mtcopy"])
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert ctl.knobs()["threads"] == (1, 2)
    monkeypatch.setattr(ctl, "_loadable_cache", [])
    assert ctl.knobs()["threads"] is None  # neither loaded nor loadable


def dcbm_tree(free_channels: int) -> FakeFS:
    """The unified tree with dcbm loaded (kernel patch 0010): selecting dcbm takes
    ``channels`` DMA channels, and fails with ENODEV when fewer are free."""
    import errno

    from workbench.kernelio.kernelfs import choice_rule
    fs = unified_tree()
    fs.files[f"{ROOT}/migrator"] = "[kernel] mtcopy dcbm"
    fs.add(f"{ROOT}/dcbm/channels", "1", rule=int_rule(1, 16))
    fs.add(f"{ROOT}/dcbm/timeout_ms", "10000", rule=int_rule(1, 60000))
    fs.add(f"{ROOT}/dcbm/held", "", readonly=True)
    for c in COUNTERS + ("folios_migrated", "folios_failures", "timeouts", "descriptors", "interrupts",
                         "concurrent"):
        fs.add(f"{ROOT}/stats/dcbm/{c}", "0", rule=reset_rule)

    def select(current, value):
        if value.strip() == "dcbm" and int(fs.files[f"{ROOT}/dcbm/channels"]) > free_channels:
            raise OSError(errno.ENODEV, "no free DMA memcpy channel")
        return choice_rule(current, value)
    fs.add_rule(f"{ROOT}/migrator", select)
    return fs


def test_dcbm_offers_channels_and_its_own_counters():
    fs = dcbm_tree(free_channels=4)
    fs.add("/sys/module/test_dma_engine/parameters/failed", "0")
    for c in ("descriptors", "corrupted", "hung"):
        fs.add(f"/sys/module/test_dma_engine/parameters/{c}", "0")
    ctl = migrators.detect(fs)
    assert ctl.knobs()["channels"] == (1, 16)
    before = dict(fs.files)
    with KnobGuard(fs) as g:
        ctl.configure(g, "dcbm", channels=4)
        assert ctl.active() == "dcbm" and fs.read(f"{ROOT}/dcbm/channels") == "4"
    assert fs.files == before
    c0 = ctl.counters()
    fs.files[f"{ROOT}/stats/dcbm/folios_failures"] = "3"
    fs.files[f"{ROOT}/stats/dcbm/fallbacks"] = "3"
    fs.files["/sys/module/test_dma_engine/parameters/failed"] = "3"
    c1 = ctl.counters()
    delta = {k: c1[k] - c0[k] for k in c1}
    assert delta["dcbm.folios_failures"] == delta["dcbm.fallbacks"] == delta["test_dma_engine.failed"] == 3
    assert {"dcbm.folios_migrated", "dcbm.timeouts", "test_dma_engine.hung"} <= set(c1)


# -- series v3 (kernel/v3 on 7.3) ------------------------------------------------------------

V3_STATS = """reason batches folios bytes copied fallbacks declined errors copy_ns cpu_ns not_offered serial
compaction 0 0 0 0 0 0 0 0 0 0 0
memory_failure 0 0 0 0 0 0 0 0 0 0 3
syscall_or_cpuset 2 1024 4194304 1020 4 0 1 900 0 0 0
mempolicy_mbind 0 0 0 0 0 0 0 0 0 7 0
total 2 1024 4194304 1020 4 0 1 900 0 7 3
"""


def v3_tree(with_mtcopy=True) -> FakeFS:
    from workbench.agent.migrators import series_v3
    fs = FakeFS()
    fs.add(f"{ROOT}/migrator", "[kernel] mtcopy" if with_mtcopy else "[kernel]")
    fs.add(f"{ROOT}/batch_kernel_copy", "0", rule=bool_rule)
    for mig in ("kernel", "mtcopy") if with_mtcopy else ("kernel",):
        fs.add(f"{ROOT}/{mig}/reasons", "syscall_or_cpuset,mempolicy_mbind")
        fs.add(f"{ROOT}/{mig}/min_folios", "1", rule=int_rule(1, 1 << 32))
        fs.add(f"{ROOT}/{mig}/min_bytes", "0")
        fs.add(f"{series_v3.STATS}/{mig}/stats", V3_STATS)
    if with_mtcopy:
        fs.add(f"{ROOT}/mtcopy/threads", "2", rule=int_rule(1, 2))
    return fs


def test_series_v3_is_told_from_v2_and_configured_and_restored(monkeypatch):
    from workbench.agent.migrators.series_v3 import SeriesV3Interface
    fs = v3_tree()
    ctl = migrators.detect(fs)
    assert isinstance(ctl, SeriesV3Interface)
    assert isinstance(migrators.detect(unified_tree()), MmMigrationInterface)   # v2 stays v2
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert ctl.knobs() == {"threads": (1, 2), "channels": None, "batch_size": None, "batch_kernel_copy": (0, 1)}
    before = dict(fs.files)
    with KnobGuard(fs) as g:
        ctl.configure(g, "mtcopy", threads=1, batch_kernel_copy=True)
        assert ctl.active() == "mtcopy" and fs.read(f"{ROOT}/mtcopy/threads") == "1"
        assert fs.read(f"{ROOT}/batch_kernel_copy") == "1"
    assert fs.files == before
    with pytest.raises(WorkbenchError, match="batch size"):
        with KnobGuard(fs) as g:
            ctl.configure(g, "kernel", batch_size=1024)     # no batch size knob before 0007
    assert fs.files == before
    fs.add(f"{ROOT}/batch_size", "512", rule=int_rule(1, 16384))       # kernel/v3 0007
    assert ctl.knobs()["batch_size"] == (1, 16384) and not any("batch size" in x for x in ctl.lacks())
    before = dict(fs.files)
    with KnobGuard(fs) as g:
        ctl.configure(g, "kernel", batch_size=16, batch_kernel_copy=True)
        assert fs.read(f"{ROOT}/batch_size") == "16"
    assert fs.files == before


def test_series_v3_counters_come_from_the_debugfs_tables():
    ctl = migrators.detect(v3_tree())
    c = ctl.counters()
    assert (c["kernel.copied"], c["kernel.fallbacks"], c["kernel.errors"], c["kernel.serial"]) == (1020, 4, 1, 3)
    # the kernel's syscall_or_cpuset is the workbench's syscall, as in the trace
    assert c["mtcopy.syscall.folios"] == 1024 and c["mtcopy.mempolicy_mbind.not_offered"] == 7
    assert "kernel.syscall_or_cpuset.folios" not in c
    assert ctl.reason_layout().startswith("debugfs migrate_copy/")
    assert ctl.lacks() and any("batch size" in item for item in ctl.lacks())


def test_a_v3_stats_table_with_a_short_row_is_an_error():
    from workbench.agent.migrators.series_v3 import parse_stats
    with pytest.raises(ValueError, match="kernel stats row 'compaction' has 2 values for 3 counters"):
        parse_stats("reason a b c\ncompaction 1 2\n", "kernel")


def v3_dcbm_tree(free_channels: int) -> FakeFS:
    """Series v3 with dcbm loaded (kernel/v3 0008): selecting it takes ``channels``
    channels (ENODEV when fewer are free); ``channels`` is refused (EBUSY) while dcbm is
    active; its events are a debugfs table of ``name value`` lines."""
    import errno

    from workbench.kernelio.kernelfs import choice_rule
    from workbench.agent.migrators import series_v3
    fs = v3_tree()
    fs.files[f"{ROOT}/migrator"] = "[kernel] mtcopy dcbm"
    for name, value in (("reasons", "syscall_or_cpuset"), ("min_folios", "1"), ("min_bytes", "1048576")):
        fs.add(f"{ROOT}/dcbm/{name}", value)
    fs.add(f"{series_v3.STATS}/dcbm/stats", V3_STATS)
    fs.add(f"{ROOT}/dcbm/wait_us", "50000", rule=int_rule(1, 1000000))
    fs.add(f"{ROOT}/dcbm/min_mbps", "100", rule=int_rule(10, 1000000))
    fs.add(f"{ROOT}/dcbm/held", "", readonly=True)
    fs.add(series_v3.DCBM_EVENTS, "descriptors 96\ndesc_errors 2\nbusy 0\ntimeouts 1\nkilled 0\n", readonly=True)
    fs.add("/sys/module/test_dma_engine/parameters/failed", "2")

    def channels(current, value):
        if "[dcbm]" in fs.files[f"{ROOT}/migrator"]:
            raise OSError(errno.EBUSY, "dcbm is active")
        return int_rule(1, 16)(current, value)

    def select(current, value):
        if value.strip() == "dcbm" and int(fs.files[f"{ROOT}/dcbm/channels"]) > free_channels:
            raise OSError(errno.ENODEV, "no free DMA memcpy channel")
        return choice_rule(current, value)
    fs.add(f"{ROOT}/dcbm/channels", "1", rule=channels)
    fs.add_rule(f"{ROOT}/migrator", select)
    return fs


def test_series_v3_dcbm_channels_are_set_before_it_is_selected_and_restored():
    fs = v3_dcbm_tree(free_channels=4)
    ctl = migrators.detect(fs)
    assert ctl.knobs()["channels"] == (1, 16) and not any("DMA migrator" in x for x in ctl.lacks())
    before = dict(fs.files)
    with KnobGuard(fs) as g:
        ctl.configure(g, "dcbm", channels=4)
        assert ctl.active() == "dcbm" and fs.read(f"{ROOT}/dcbm/channels") == "4"
        with pytest.raises(WorkbenchError, match="Device or resource busy"):
            ctl.set_channels(2)                     # not under an active dcbm
    assert fs.files == before, "the migrator is put back before the channel count"
    c = ctl.counters()
    assert (c["dcbm.descriptors"], c["dcbm.desc_errors"], c["dcbm.timeouts"]) == (96, 2, 1)
    assert c["dcbm.copied"] == 1020 and c["test_dma_engine.failed"] == 2


@pytest.mark.parametrize("tree", [dcbm_tree, v3_dcbm_tree], ids=["v2", "v3"])
def test_dcbm_without_free_channels_says_what_to_load(tree):
    fs = tree(free_channels=1)
    ctl = migrators.detect(fs)
    before = dict(fs.files)
    with pytest.raises(WorkbenchError) as e:
        with KnobGuard(fs) as g:
            ctl.configure(g, "dcbm", channels=2)
    msg = str(e.value)
    assert "\n" not in msg and "No such device" in msg
    assert "no free DMA memcpy channel (it wants 2)" in msg and "--dma-engine test_dma_engine" in msg
    assert fs.files == before, "the channel count written before the refusal is put back"
