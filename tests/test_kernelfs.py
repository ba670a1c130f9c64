"""The sysfs layer, against the recorded tree of Debian 6.12 in a 2-node guest."""

import pytest

from workbench.kernelio import numa, thp
from workbench.errors import WorkbenchError
from workbench.kernelio.kernelfs import FakeFS, KnobGuard, KnobPermission, KnobRejected, RecordingFS, int_rule, parse_choices, reset_rule, snapshot

THP = "/sys/kernel/mm/transparent_hugepage"
MTHP = ["16kB", "32kB", "64kB", "128kB", "256kB", "512kB", "1024kB", "2048kB"]


def enabled(fs):
    return {name: fs.read_choice(f"{THP}/hugepages-{name}/enabled") for name in MTHP}


def test_recorded_tree_offers_4k_and_every_mthp_size(recorded_fs):
    assert thp.offered_folio_sizes(recorded_fs) == [4096 << i for i in range(10) if i != 1]
    assert thp.describe_sizes(thp.offered_folio_sizes(recorded_fs)) == "4K, 16K, 32K, 64K, 128K, 256K, 512K, 1M, 2M"


def test_topology_from_recorded_tree(recorded_fs):
    topo = numa.topology(recorded_fs)
    assert topo["memory_nodes"] == [0, 1]
    assert [n["cpus"] for n in topo["nodes"]] == [[0], [1]]
    assert topo["nodes"][0]["distances"] == [10, 20]
    assert topo["nodes"][1]["mem_total_kb"] > 1_000_000


@pytest.mark.parametrize("size,expect", [(2 << 20, "2048kB"), (64 << 10, "64kB"), (4096, None)])
def test_enable_only_one_size_then_restore_everything(recorded_fs, size, expect):
    before = dict(recorded_fs.files)
    rec = RecordingFS(recorded_fs)
    guard = KnobGuard(rec)
    thp.enable_only(rec, guard, size)
    now = enabled(recorded_fs)
    assert [n for n, v in now.items() if v == "madvise"] == ([expect] if expect else [])
    assert all(v == "never" for n, v in now.items() if n != expect)
    assert recorded_fs.read_choice(f"{THP}/enabled") == ("never" if expect is None else "madvise")
    assert guard.restore() == []
    assert recorded_fs.files == before
    # every knob written was put back, last set first
    writes = rec.writes()
    assert len(writes) == 2 * (len(MTHP) + 1)
    assert [p for p, _ in writes[len(writes) // 2:]] == [p for p, _ in writes[:len(writes) // 2]][::-1]


def test_guard_restores_even_when_the_block_fails(recorded_fs):
    before = dict(recorded_fs.files)
    with pytest.raises(RuntimeError):
        with KnobGuard(recorded_fs) as g:
            thp.enable_only(recorded_fs, g, 2 << 20)
            raise RuntimeError("trial died")
    assert recorded_fs.files == before


def test_kernel_rules_refuse_bad_values(recorded_fs):
    path = f"{THP}/hugepages-64kB/enabled"
    with pytest.raises(KnobRejected) as e:
        recorded_fs.write(path, "sometimes")
    assert "'sometimes'" in str(e.value) and path in str(e.value)
    assert recorded_fs.read_choice(path) == "never"


def test_non_root_write_gives_one_clear_line(recorded_fs):
    recorded_fs.root = False
    with pytest.raises(KnobPermission) as e:
        with KnobGuard(recorded_fs) as g:
            thp.enable_only(recorded_fs, g, 2 << 20)
    msg = str(e.value)
    assert "no permission" in msg and "run as root" in msg and "\n" not in msg


def test_missing_file_and_custom_rules():
    fs = FakeFS({"/sys/x/threads": "4", "/sys/x/count": "17"})
    fs.add_rule("/sys/x/threads", int_rule(1, 8))
    fs.add_rule(r"/sys/x/c.*", reset_rule, regex=True)
    fs.write("/sys/x/threads", "8")
    with pytest.raises(KnobRejected):
        fs.write("/sys/x/threads", "9")
    assert fs.read("/sys/x/threads") == "8"
    with pytest.raises(KnobRejected):
        fs.write("/sys/x/count", "5")
    fs.write("/sys/x/count", "0")
    assert fs.read_int("/sys/x/count") == 0
    with pytest.raises(WorkbenchError, match="does not exist"):
        fs.write("/sys/x/nope", "1")
    assert fs.listdir("/sys/x") == ["count", "threads"] and fs.isdir("/sys") and not fs.isdir("/sys/x/count")


def test_snapshot_round_trip(recorded_fs):
    snap = snapshot(recorded_fs, [THP])
    again = FakeFS.from_snapshot(snap)
    assert thp.offered_folio_sizes(again) == thp.offered_folio_sizes(recorded_fs)
    assert all(p.startswith(THP) for p in snap["files"])


def test_parse_choices():
    assert parse_choices("always [madvise] never") == (["always", "madvise", "never"], "madvise")
    assert parse_choices("42") == (["42"], None)


def test_modules_load_and_unload_through_the_layer_and_are_recorded():
    from workbench.kernelio.kernelfs import ModuleError
    fs = FakeFS({"/sys/kernel/mm/migration/migrator": "[kernel]"})
    fs.add_module("mtcopy", {"/sys/kernel/mm/migration/mtcopy/threads": "4"})
    rec = RecordingFS(fs)
    assert rec.module_loadable("mtcopy") and not rec.module_loadable("nosuch")
    assert not rec.exists("/sys/kernel/mm/migration/mtcopy/threads")
    rec.load_module("mtcopy")
    assert rec.read("/sys/kernel/mm/migration/mtcopy/threads") == "4"
    fs.busy.add("mtcopy")
    with pytest.raises(ModuleError, match=r"cannot remove module 'mtcopy': .*in use"):
        rec.unload_module("mtcopy")
    fs.busy.clear()
    rec.unload_module("mtcopy")
    assert not rec.exists("/sys/kernel/mm/migration/mtcopy/threads")
    with pytest.raises(ModuleError, match=r"cannot load module 'nosuch': .*not found"):
        rec.load_module("nosuch")
    assert [(e["op"], e["path"], "error" in e) for e in rec.log if e["op"] in ("modprobe", "rmmod")] == [
        ("modprobe", "mtcopy", False), ("rmmod", "mtcopy", True), ("rmmod", "mtcopy", False),
        ("modprobe", "nosuch", True)]


def test_a_migrator_module_is_found_and_loaded_through_the_layer():
    from workbench.agent import migrators
    from workbench.kernelio.kernelfs import KnobGuard
    fs = FakeFS({"/sys/kernel/mm/migration/migrator": "[kernel]", "/sys/kernel/mm/migration/batch_size": "512"})
    fs.add_module("mtcopy", {"/sys/kernel/mm/migration/mtcopy/threads": "2"})
    ctl = migrators.detect(fs)
    assert ctl.loadable() == ["mtcopy"]
    # loading makes the module's files appear; its registration is the kernel's part, faked here
    ctl.load("mtcopy")
    fs.files["/sys/kernel/mm/migration/migrator"] = "[kernel] mtcopy"
    assert ctl.loadable() == [] and ctl.migrators() == ["kernel", "mtcopy"]
    guard = KnobGuard(fs)
    ctl.configure(guard, "mtcopy", threads=1)
    assert fs.read("/sys/kernel/mm/migration/mtcopy/threads") == "1"
    guard.restore()
    assert fs.read("/sys/kernel/mm/migration/mtcopy/threads") == "2"


def test_guard_restores_a_file_that_selects_several():
    """The series' `reasons` brackets every enabled reason; restoring it must enable them
    all again, not only the last one."""
    from workbench.kernelio.kernelfs import FakeFS, KnobGuard
    names = ["compaction", "syscall", "demotion"]
    path = "/sys/kernel/mm/migration/reasons"

    def rule(current, value):
        chosen = names if value.strip() == "all" else [v.strip() for v in value.split(",")]
        if any(c not in names for c in chosen):
            raise OSError(22, "invalid")
        return " ".join(f"[{n}]" if n in chosen else n for n in names)
    fs = FakeFS({path: "[compaction] [syscall] [demotion]"})
    fs.add_rule(path, rule)
    with KnobGuard(fs) as g:
        g.set(path, "compaction,demotion")
        assert fs.read(path) == "[compaction] syscall [demotion]"
    assert fs.read(path) == "[compaction] [syscall] [demotion]"


def test_a_preset_and_the_fields_it_set_are_all_put_back():
    """The test engine's ``preset`` sets every mode field (patch 0011); restoring the preset
    alone ("custom" reads back when the fields match no preset) would leave them changed, so
    the fields it changes are kept first and restored after it."""
    from workbench.agent.migrators.base import MigrationControl
    from workbench.agent.migrators.mm_migration import MmMigrationInterface
    from workbench.agent.migrators.dma_test_engine import TEST_ENGINE_PARAMS
    presets = {"kind": {"order": "in_order", "ring": "0"}, "dsa": {"order": "within", "ring": "32"}}
    p = TEST_ENGINE_PARAMS

    class EngineFS(FakeFS):
        def write(self, path, value):
            if path == f"{p}/preset":
                if value.strip() != "custom":
                    for field, v in presets[value.strip()].items():
                        self.files[f"{p}/{field}"] = v
            else:
                super().write(path, value)

        def read(self, path):
            if path == f"{p}/preset":
                now = {f: self.files[f"{p}/{f}"] for f in ("order", "ring")}
                return next((n for n, m in presets.items() if m == now), "custom")
            return super().read(path)

    fs = EngineFS({f"{p}/order": "in_order", f"{p}/ring": "8", f"{p}/preset": ""})
    fs.add_rule(f"{p}/order", lambda cur, v: v.strip())
    fs.add_rule(f"{p}/ring", lambda cur, v: v.strip())
    assert fs.read(f"{p}/preset") == "custom"

    class Control:
        composite_knobs = MmMigrationInterface.composite_knobs
        apply_settings = MigrationControl.apply_settings

    control = Control()
    control.fs = fs
    assert f"{p}/ring" in control.composite_knobs()[f"{p}/preset"]
    with KnobGuard(fs) as g:
        control.apply_settings(g, {f"{p}/preset": "dsa"})
        assert (fs.read(f"{p}/order"), fs.read(f"{p}/ring")) == ("within", "32")
    assert (fs.read(f"{p}/order"), fs.read(f"{p}/ring"), fs.read(f"{p}/preset")) == ("in_order", "8", "custom")


def test_a_snapshot_records_modules_before_loading_and_the_answers_to_writes():
    """What `workbench sysfs snapshot --load M --write P=V` records, replayed: the module
    loadable with the parameters modinfo gave, each write's answer in order."""
    from workbench.agent.main import _snapshot
    fs = FakeFS({"/sys/kernel/mm/transparent_hugepage/enabled": "always [madvise] never"})
    fs.add_module("dcbm", {"/sys/module/dcbm/parameters/offloading": "0",
                           "/sys/module/dcbm/parameters/nr_dma_chan": "1"}, params=["offloading", "nr_dma_chan"])
    fs.add_rule("/sys/module/dcbm/parameters/nr_dma_chan", int_rule(1, 16))
    snap = _snapshot(fs, {"roots": ["/sys/module/dcbm"], "modules": ["dcbm"],
                          "writes": [["/sys/module/dcbm/parameters/nr_dma_chan", "17"],
                                     ["/sys/module/dcbm/parameters/nr_dma_chan", "4"]]})
    assert snap["modules"] == {"dcbm": {"params": ["offloading", "nr_dma_chan"], "loaded_before": False}}
    refused, taken = snap["writes"]
    assert refused["error"] and (refused["before"], refused["after"]) == ("1", "1")
    assert taken["error"] is None and (taken["before"], taken["after"]) == ("1", "4")
    assert snap["files"]["/sys/module/dcbm/parameters/nr_dma_chan"] == "4"
    replay = FakeFS.from_snapshot(snap, modules_loaded=False)
    assert not replay.exists("/sys/module/dcbm/parameters/offloading")
    assert replay.module_params("dcbm") == ("offloading", "nr_dma_chan")
    replay.load_module("dcbm")
    assert replay.read("/sys/module/dcbm/parameters/nr_dma_chan") == "4"
