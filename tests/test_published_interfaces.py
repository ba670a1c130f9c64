"""The public RFC series' controls (workbench.agent.migrators.rfc) against fake trees built
from the reference file's paths and value rules (workbench/testing/fake_kernels.py)."""

import json
from contextlib import nullcontext
from pathlib import Path

import pytest

from workbench.agent import migrators, vmstat
from workbench.errors import WorkbenchError
from workbench.kernelio.kernelfs import FakeFS, KnobGuard, KnobPermission, KnobRejected, RecordingFS
from workbench.agent.migrators.base import KernelCopyOnly
from workbench.agent.migrators.rfc import V6_REASONS, PadataMtCopy, RfcV1, RfcV2V3, RfcV4, RfcV6
from workbench.agent.migrators.mm_migration import MmMigrationInterface
from workbench.testing.fake_kernels import FakeKernel, fake_tree
from workbench.testing.fake_series import unified_tree

RFC = (RfcV6, RfcV4, PadataMtCopy, RfcV2V3, RfcV1)

# (id, fake_tree kwargs, interface, migrators offered)
TREES = [
    ("v1", dict(version="v1"), RfcV1, ["kernel", "dcbm"]),
    ("v2", dict(version="v2"), RfcV2V3, ["kernel", "mtcopy", "dcbm"]),
    ("v2-dcbm-only", dict(version="v2", mtcopy=False), RfcV2V3, ["kernel", "dcbm"]),
    ("v3", dict(version="v3"), RfcV2V3, ["kernel", "mtcopy", "dcbm"]),
    ("v3-cpuselect", dict(version="v3", cpuselect=True), RfcV2V3, ["kernel", "mtcopy", "dcbm"]),
    ("v3-mtcopy-only", dict(version="v3", dcbm=False), RfcV2V3, ["kernel", "mtcopy"]),
    ("padata", dict(version="padata"), PadataMtCopy, ["kernel", "mtcopy"]),
    ("padata-dcbm", dict(version="padata", dcbm=True), PadataMtCopy, ["kernel", "mtcopy", "dcbm"]),
    ("v4", dict(version="v4"), RfcV4, ["kernel", "dcbm"]),
    ("v6", dict(version="v6"), RfcV6, ["kernel", "dcbm"]),
]
TREE_IDS = [t[0] for t in TREES]
CHOICES = [(tid, kw, start, mig) for tid, kw, _, migs in TREES for start in migs for mig in migs]


def tree(kw):
    return fake_tree(**kw)


# detection ---------------------------------------------------------------------------

@pytest.mark.parametrize("tid,kw,cls,migs", TREES, ids=TREE_IDS)
def test_detects_each_version(tid, kw, cls, migs):
    fs = tree(kw)
    ctl = migrators.detect(fs)
    assert type(ctl) is cls
    assert ctl.migrators() == migs and ctl.active() == "kernel"
    # the predicates exclude each other, so the registry's order cannot change the answer
    assert [c for c in RFC if c.detect(fs)] == [cls]


def test_v3_is_told_from_v2_only_by_cpuselect():
    assert migrators.detect(fake_tree("v3", cpuselect=True)).describe()["variant"].startswith("V3")
    for version in ("v2", "v3"):
        assert migrators.detect(fake_tree(version)).describe()["variant"] == "V2 or V3"


def test_our_tree_and_stock_trees_are_not_taken_for_a_published_one(recorded_fs):
    assert type(migrators.detect(unified_tree())) is MmMigrationInterface
    assert type(migrators.detect(recorded_fs)) is KernelCopyOnly  # Debian 6.12, recorded
    assert type(migrators.detect(FakeKernel("stock"))) is KernelCopyOnly
    # ours is tried first even if a tree also had a published interface's files
    both = unified_tree()
    for path, content in fake_tree("v3").files.items():
        both.add(path, content)
    assert type(migrators.detect(both)) is MmMigrationInterface
    # a dcbm module with other parameters is not V6
    other = FakeFS({"/sys/module/dcbm/parameters/debug": "0"})
    assert type(migrators.detect(other)) is KernelCopyOnly
    for cls in RFC:
        assert not cls.detect(unified_tree()) and not cls.detect(recorded_fs)


@pytest.mark.parametrize("cls,text", [(RfcV1, "RFC V1 (2024-06)"), (RfcV2V3, "RFC V2 (2025-03) or V3 (2025-09)"),
                                      (PadataMtCopy, "Zi Yan's padata variant"), (RfcV4, "RFC V4 (2026-03)"),
                                      (RfcV6, "RFC V6 (2026-06)")])
def test_brought_by_names_the_version(cls, text):
    assert text in cls.brought_by


# the uniform choice ------------------------------------------------------------------

@pytest.mark.parametrize("tid,kw,start,mig", CHOICES, ids=[f"{c[0]}-{c[2]}-to-{c[3]}" for c in CHOICES])
def test_select_any_migrator_from_any_state(tid, kw, start, mig):
    fs = tree(kw)
    ctl = migrators.detect(fs)
    if start != "kernel":
        fs.write(ctl.driver(start).flag, "1")
    assert fs.offload == ctl.active() == start
    before = fs.state()
    with KnobGuard(fs) as g:
        ctl.configure(g, mig)
        assert fs.offload == mig, "the kernel's static call points elsewhere"
        assert ctl.active() == mig
        assert [m for m, on in ctl.flags().items() if on] == ([] if mig == "kernel" else [mig])
    assert fs.state() == before


@pytest.mark.parametrize("tid,kw,cls,migs", TREES, ids=TREE_IDS)
def test_knobs_are_the_same_choice_everywhere(tid, kw, cls, migs):
    fs = tree(kw)
    ctl = migrators.detect(fs)
    knobs = ctl.knobs()
    assert set(knobs) == {"threads", "channels", "batch_size"} and knobs["batch_size"] is None
    assert (knobs["threads"] is not None) == ("mtcopy" in migs)
    assert knobs["channels"] == fs.bounds.get("channels")
    if knobs["threads"]:
        # the control's bound is never narrower than the kernel's; where it is wider
        # (V3 without cpuselect), the kernel's EINVAL decides (next tests)
        assert knobs["threads"][0] == fs.bounds["threads"][0] and knobs["threads"][1] >= fs.bounds["threads"][1]
    if tid == "v3-cpuselect":
        assert knobs["threads"] == fs.bounds["threads"] == ctl.threads_bound == (1, 32)


@pytest.mark.parametrize("tid,kw,cls,migs", [t for t in TREES if t[2] is not RfcV1], ids=TREE_IDS[1:])
def test_threads_and_channels_reach_their_files(tid, kw, cls, migs):
    fs = tree(kw)
    ctl = migrators.detect(fs)
    knobs = ctl.knobs()
    threads = fs.bounds["threads"][1] if knobs["threads"] else None
    channels = fs.bounds["channels"][1] if knobs["channels"] else None
    mig = migs[1]
    with KnobGuard(fs) as g:
        ctl.configure(g, mig, threads=threads, channels=channels)
        if threads:
            assert fs.read(ctl.driver("mtcopy").knob_path()) == str(threads)
        if channels:
            assert fs.read(ctl.driver("dcbm").knob_path()) == str(channels)
        assert fs.offload == mig
    assert fs.read(f"{ctl.driver(mig).root}/offloading") == "0"


def test_v2_takes_up_to_64_threads_and_v3_refuses_them():
    ctl2 = migrators.detect(fs2 := fake_tree("v2"))
    with KnobGuard(fs2) as g:
        ctl2.configure(g, "mtcopy", threads=48)
        assert fs2.read("/sys/kernel/cpu_mt/threads") == "48" and fs2.offload == "mtcopy"
    ctl3 = migrators.detect(fs3 := fake_tree("v3"))
    with pytest.raises(WorkbenchError, match="threads 48 was refused by the kernel"):
        with KnobGuard(fs3) as g:
            ctl3.configure(g, "mtcopy", threads=48)


# bad values: one clear line, nothing changed ------------------------------------------

BAD = [
    ("v1", {}, dict(migrator="dcbm", channels=2), "channels 2 cannot be set: this kernel's interface (RFC V1"),
    ("v1", {}, dict(migrator="mtcopy"), "migrator 'mtcopy' is not offered by this kernel (RFC V1 /sys/kernel/dcbm); "
                                        "it offers: kernel, dcbm"),
    ("v4", {}, dict(migrator="mtcopy"), "migrator 'mtcopy' is not offered by this kernel (RFC V4 /sys/kernel/dcbm); "
                                        "it offers: kernel, dcbm"),
    ("v3", {}, dict(migrator="mtcopy", threads=0), "threads 0 is out of range; allowed: 1..64"),
    ("v3", {"cpuselect": True}, dict(migrator="mtcopy", threads=33), "threads 33 is out of range; allowed: 1..32"),
    ("v3", {}, dict(migrator="mtcopy", threads=33, channels=2),
     "threads 33 was refused by the kernel (/sys/kernel/cpu_mt/threads); allowed: 1..64 on RFC V2, 1..32 on RFC V3"),
    ("v3", {}, dict(migrator="dcbm", channels=17), "channels 17 is out of range; allowed: 1..16"),
    ("v2", {}, dict(migrator="dcbm", channels=17), "channels 17 is out of range; allowed: 1..16"),
    ("v2", {}, dict(migrator="mtcopy", threads=65), "threads 65 is out of range; allowed: 1..64"),
    ("v3", {"dcbm": False}, dict(migrator="dcbm"), "migrator 'dcbm' is not offered"),
    ("padata", {}, dict(migrator="kernel", channels=4), "channels 4 cannot be set"),
    ("v6", {}, dict(migrator="dcbm", channels=0), "channels 0 is out of range; allowed: 1..16"),
    ("v4", {}, dict(migrator="dcbm", batch_size=1024), "batch size 1024 cannot be set"),
    ("v2", {}, dict(migrator="mtcopy", batch_size=512), "batch size 512 cannot be set"),
]


@pytest.mark.parametrize("version,extra,kw,msg", BAD, ids=[f"{b[0]}-{'-'.join(map(str, b[2].values()))}" for b in BAD])
@pytest.mark.parametrize("start", ["kernel", "on"])
def test_bad_settings_are_one_line_and_change_nothing(version, extra, kw, msg, start):
    fs = fake_tree(version, **extra)
    if start == "on":  # a migrator already active must stay active
        fs.write(migrators.detect(fs).present()[-1].flag, "1")
    before = fs.state()
    rec = RecordingFS(fs)
    ctl = migrators.detect(rec)
    with pytest.raises(WorkbenchError) as e:
        ctl.configure(KnobGuard(rec), **kw)  # no restore: nothing may have been written at all
    assert msg in str(e.value) and "\n" not in str(e.value)
    assert rec.writes() == []
    assert fs.state() == before


@pytest.mark.parametrize("names,msg", [
    (["compaction", "bogus"], "migration reason 'bogus' is not known to RFC V6's reason_mask; allowed: "
                              "comma-separated compaction, memory_failure, memory_hotplug, syscall_or_cpuset, "
                              "mempolicy_mbind, numa_misplaced, contig_range, longterm_pin, demotion, damon; all; "
                              "none; or a number"),
    ("compaction;demotion", "migration reason 'compaction;demotion' is not known"),
    (-1, "reason mask -1 is negative; allowed:"),
])
def test_bad_reasons_are_refused_before_writing(names, msg):
    fs = fake_tree("v6")
    before = fs.state()
    rec = RecordingFS(fs)
    with pytest.raises(WorkbenchError) as e:
        migrators.detect(rec).set_reasons(KnobGuard(rec), names)
    assert msg in str(e.value) and "\n" not in str(e.value)
    assert rec.writes() == [] and fs.state() == before


def test_a_refused_reason_mask_is_one_line_and_restored():
    fs = fake_tree("v6")
    fs.add_rule("/sys/module/dcbm/parameters/reason_mask", lambda cur, v: (_ for _ in ()).throw(OSError(22, "x")))
    with pytest.raises(WorkbenchError, match=r"^reason mask 'demotion' was refused by the kernel .*; allowed: "):
        migrators.detect(fs).set_reasons(KnobGuard(fs), ["demotion"])
    assert fs.read("/sys/module/dcbm/parameters/reason_mask") == ",".join(V6_REASONS), "every reason, as before"


def test_a_kernel_that_stores_another_value_is_caught():
    fs = fake_tree("v3")
    fs.add_rule("/sys/kernel/cpu_mt/threads", lambda cur, v: str(min(int(v), 8)))  # silently clamps
    before = fs.state()
    ctl = migrators.detect(fs)
    with pytest.raises(WorkbenchError, match="threads 12 was not taken by the kernel: .* reads '8' after writing 12"):
        with KnobGuard(fs) as g:
            ctl.configure(g, "mtcopy", threads=12)
    assert fs.state() == before and fs.offload == "kernel"


# the guard restores every knob -------------------------------------------------------

@pytest.mark.parametrize("tid,kw,cls,migs", TREES, ids=TREE_IDS)
@pytest.mark.parametrize("fail", [False, True])
def test_guard_restores_every_knob(tid, kw, cls, migs, fail):
    fs = tree(kw)
    fs.write(migrators.detect(fs).present()[0].flag, "1")  # something active beforehand
    before = fs.state()
    rec = RecordingFS(fs)
    ctl = migrators.detect(rec)
    knobs = ctl.knobs()
    threads = 2 if knobs["threads"] else None
    channels = 3 if knobs["channels"] else None
    originals = {}
    with pytest.raises(RuntimeError) if fail else nullcontext():
        with KnobGuard(rec) as g:
            for mig in migs[::-1]:
                ctl.configure(g, mig, threads=threads, channels=channels)
            if isinstance(ctl, RfcV6):
                ctl.set_reasons(g, ["compaction", "demotion"])
                assert fs.read("/sys/module/dcbm/parameters/reason_mask") == "compaction,demotion"
            if isinstance(ctl, RfcV2V3) and ctl.has_cpuselect():
                ctl.set_cpuselect(g, fill_one_die=True)
                assert fs.read("/sys/kernel/cpu_mt/cpuselect") == "1"
            originals = {path: before[0][path] for path, _ in g.saved}
            assert fs.state() != before
            if fail:
                raise RuntimeError("the trial failed")
    written = {path for path, _ in rec.writes()}
    assert written == set(originals) and written
    last = {path: value for path, value in rec.writes()}
    assert last == originals  # each knob's last write put its original back
    assert fs.state() == before


def test_both_flags_on_is_reported_as_unknown_and_resolved():
    fs = fake_tree("v3")
    fs.write("/sys/kernel/dcbm/offloading", "1")
    fs.write("/sys/kernel/cpu_mt/offloading", "1")  # mtcopy started last: it is the active one
    before = fs.state()
    ctl = migrators.detect(fs)
    assert fs.offload == "mtcopy" and ctl.active() == "unknown"
    for mig in ("dcbm", "kernel", "mtcopy"):
        with KnobGuard(fs) as g:
            ctl.configure(g, mig)
            assert fs.offload == ctl.active() == mig
        # the files come back; which of the two then runs depends on the order of the
        # restoring writes, as sysfs never said which one it was (the lacks() item)
        assert fs.files == before[0] and ctl.active() == "unknown" and fs.offload in ("dcbm", "mtcopy")
    assert "no file names the active migrator" in " ".join(ctl.lacks())


ALL_V6 = ",".join(V6_REASONS)


@pytest.mark.parametrize("names,written,reads", [
    (["compaction", "demotion"], "compaction,demotion", "compaction,demotion"),
    ("demotion, compaction", "demotion,compaction", "compaction,demotion"),      # the kernel's order
    (["MR_SYSCALL", "mr_numa_misplaced"], "syscall_or_cpuset,numa_misplaced", "syscall_or_cpuset,numa_misplaced"),
    ("all", "all", ALL_V6), ("NONE", "none", "none"), ([], "none", "none"),
    (9, "9", "compaction,syscall_or_cpuset"),                                  # bits 0 and 3
    (1 << 12, "4096", "none"),                                                 # beyond the ten: dropped
    ("0x10", None, None),
])
def test_set_reasons_forms(names, written, reads):
    fs = fake_tree("v6")
    ctl = migrators.detect(fs)
    if written is None:  # hex is not a form the workbench passes on
        with pytest.raises(WorkbenchError, match="migration reason '0x10' is not known"):
            ctl.set_reasons(KnobGuard(fs), names)
        return
    with KnobGuard(fs) as g:
        assert ctl.set_reasons(g, names) == written
        assert ctl.reasons() == reads
    assert ctl.reasons() == ALL_V6


def test_cpuselect_is_refused_where_absent():
    fs = fake_tree("v2")
    with pytest.raises(WorkbenchError, match="thread placement cannot be set: /sys/kernel/cpu_mt/cpuselect is absent"):
        migrators.detect(fs).set_cpuselect(KnobGuard(fs), True)


# counters ----------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["v4", "v6"])
def test_counter_deltas(version):
    fs = fake_tree(version)
    fs.write(fs.counter_root + "/offloading", "1")
    fs.migrate(1000, failed=10)  # history before the trial
    fs.write(fs.counter_root + "/offloading", "0")
    rec = RecordingFS(fs)
    ctl = migrators.detect(rec)
    c0 = ctl.counters()
    assert c0 == {"dcbm.folios_migrated": 990, "dcbm.folios_failures": 10}
    with KnobGuard(rec) as g:
        ctl.configure(g, "dcbm", channels=4)
        fs.migrate(512, failed=3)
        c1 = ctl.counters()
        assert vmstat.delta(c0, c1) == {"dcbm.folios_migrated": 509, "dcbm.folios_failures": 3}
        ctl.configure(g, "kernel")
        fs.migrate(512)  # the kernel's copy: dcbm counts nothing
        assert vmstat.delta(c1, ctl.counters()) == {"dcbm.folios_migrated": 0, "dcbm.folios_failures": 0}
    assert ctl.copy_share(vmstat.delta(c0, c1), "dcbm") is None  # no copy time, no F
    assert not any("folios_" in path for path, _ in rec.writes())  # counters are never written


def test_counters_before_any_migration_read_zero_and_count_from_there():
    fs = fake_tree("v4")
    ctl = migrators.detect(fs)
    assert ctl.counters() == {"dcbm.folios_migrated": 0, "dcbm.folios_failures": 0}
    fs.write("/sys/kernel/dcbm/offloading", "1")
    fs.migrate(7, failed=2)
    assert ctl.counters() == {"dcbm.folios_migrated": 5, "dcbm.folios_failures": 2}


@pytest.mark.parametrize("kw", [dict(version="v1"), dict(version="v2"), dict(version="v3"),
                                dict(version="padata", dcbm=True)])
def test_versions_without_counters_have_none(kw):
    fs = fake_tree(**kw)
    ctl = migrators.detect(fs)
    fs.write(ctl.driver("dcbm").flag, "1")
    fs.migrate(100)
    assert ctl.counters() == {}


# the fakes follow the reference's rules ------------------------------------------------

@pytest.mark.parametrize("version,path,value,outcome", [
    ("v1", "/sys/kernel/dcbm/offloading", "y", KnobRejected),
    ("v2", "/sys/kernel/dcbm/offloading", "y", KnobRejected),
    ("v3", "/sys/kernel/dcbm/offloading", "y", "1"),
    ("v3", "/sys/kernel/dcbm/offloading", "off", "0"),
    ("v3", "/sys/kernel/cpu_mt/offloading", "2", KnobRejected),
    ("v3", "/sys/kernel/dcbm/nr_dma_chan", "17", KnobRejected),
    ("v3", "/sys/kernel/dcbm/nr_dma_chan", "0", KnobRejected),
    ("v3", "/sys/kernel/dcbm/nr_dma_chan", "16", "16"),
    ("v2", "/sys/kernel/dcbm/nr_dma_chan", "17", "16"),
    ("v2", "/sys/kernel/cpu_mt/threads", "64", "64"),
    ("v2", "/sys/kernel/cpu_mt/threads", "65", KnobRejected),
    ("v3", "/sys/kernel/cpu_mt/threads", "32", "32"),
    ("v3", "/sys/kernel/cpu_mt/threads", "33", KnobRejected),
    ("padata", "/sys/kernel/cpu_mt_copy/threads", "64", "64"),
    ("v4", "/sys/kernel/dcbm/folios_migrated", "0", KnobPermission),
    ("v6", "/sys/module/dcbm/parameters/folios_failures", "5", "0"),
    ("v6", "/sys/module/dcbm/parameters/reason_mask", "compaction,demotion", "compaction,demotion"),
    ("v6", "/sys/module/dcbm/parameters/reason_mask", "none", "none"),
    ("v6", "/sys/module/dcbm/parameters/reason_mask", "12", "memory_hotplug,syscall_or_cpuset"),
    ("v6", "/sys/module/dcbm/parameters/reason_mask", "bogus", KnobRejected),
])
def test_fake_rules(version, path, value, outcome):
    fs = fake_tree(version)
    if fs.files.get(path, "").isdigit() and "folios" in path:
        fs.files[path] = "41"
    if isinstance(outcome, str):
        fs.write(path, value)
        assert fs.read(path) == outcome
    else:
        old = fs.read(path)
        with pytest.raises(outcome):
            fs.write(path, value)
        assert fs.read(path) == old


def test_fake_models_one_active_migrator():
    fs = fake_tree("v3")
    fs.write("/sys/kernel/dcbm/offloading", "1")
    fs.write("/sys/kernel/cpu_mt/offloading", "1")
    assert fs.offload == "mtcopy"
    fs.write("/sys/kernel/dcbm/offloading", "0")  # stop_offloading() whoever is active
    assert fs.offload == "kernel" and fs.read("/sys/kernel/cpu_mt/offloading") == "1"


# what a kernel lacks -----------------------------------------------------------------

@pytest.mark.parametrize("kw,has,has_not", [
    (dict(version="v1"), ["order-0 only", "no mtcopy (V1 has dcbm only)", "one DMA channel and no channels knob",
                          "no batch size knob (compile-time NR_MAX_BATCHED_MIGRATION",
                          "no counters at all (neither folios copied nor copy time), so F cannot be measured",
                          "no reason knob"], ["no file names the active migrator"]),
    (dict(version="v2"), ["no batch size knob", "no counters at all", "no reason knob", "no file names the active",
                          "no thread placement knob", "no copy-thread time counter"], ["no mtcopy", "no dcbm"]),
    (dict(version="v3", cpuselect=True), ["only fill-one-die or spread-across-dies (cpuselect"],
     ["no thread placement knob"]),
    (dict(version="v2", mtcopy=False), ["no mtcopy now: /sys/kernel/cpu_mt is absent"],
     ["no file names the active", "copy-thread"]),
    (dict(version="padata"), ["no dcbm now: /sys/kernel/dcbm is absent", "no counters at all",
                              "no thread placement knob (padata"], ["no file names the active"]),
    (dict(version="padata", dcbm=True), ["no file names the active", "no counters at all"], ["no dcbm"]),
    (dict(version="v4"), ["no mtcopy (dropped in V4)", "no copy-time counters (only folios_migrated and "
                          "folios_failures), so F cannot be measured", "no batch size knob", "no reason knob"],
     ["no counters at all"]),
    (dict(version="v6"), ["no mtcopy (dropped in V4)", "no copy-time counters", "no batch size knob"],
     ["no reason knob", "no counters at all"]),
])
def test_lacks_says_what_is_missing(kw, has, has_not):
    ctl = migrators.detect(fake_tree(**kw))
    lacks = ctl.lacks()
    assert ctl.describe()["lacks"] == lacks
    text = "\n".join(lacks)
    for phrase in has:
        assert phrase in text, phrase
    for phrase in has_not:
        assert phrase not in text, phrase
    assert all(item and "\n" not in item for item in lacks) and len(set(lacks)) == len(lacks)


def test_ours_lacks_nothing_and_a_stock_kernel_lacks_offload():
    assert migrators.detect(unified_tree()).lacks() == []
    assert migrators.detect(unified_tree()).describe()["lacks"] == []
    assert migrators.detect(FakeFS()).describe()["lacks"] == [
        "no copy-offload interface: only the kernel's own folio-by-folio copy, no knobs, no counters"]


# V6 as the real kernel answers (recorded from V6 booted over Linux 7.2.13) -------------
V6_RECORDED = Path(__file__).parent / "data" / "sysfs-rfc-v6-7.2.13-vm.json"


def v6_recording():
    return json.loads(V6_RECORDED.read_text())


@pytest.mark.parametrize("write", v6_recording()["writes"],
                         ids=[f"{w['path'].rsplit('/', 1)[1]}={w['value']!r}" for w in v6_recording()["writes"]])
def test_the_v6_fake_answers_each_write_as_the_real_kernel_did(write):
    """Every write recorded from the real V6 guest (workbench sysfs snapshot --write),
    replayed on the fake from the same value: refused or taken alike, the same value after."""
    fs = fake_tree("v6")
    fs.files[write["path"]] = write["before"]
    try:
        fs.write(write["path"], write["value"])
        refused = False
    except KnobRejected:
        refused = True
    assert refused == (write["error"] is not None)
    assert fs.read(write["path"]) == write["after"]


def test_v6_is_found_before_its_module_is_loaded_and_loaded_when_chosen():
    """V6 shows nothing until dcbm is loaded: a loadable dcbm with V6's parameters (as
    modinfo listed them on the real guest) is V6, with its channels knob; choosing dcbm loads it."""
    fs = FakeFS.from_snapshot(v6_recording(), modules_loaded=False)
    assert not fs.exists("/sys/module/dcbm/parameters")
    ctl = migrators.detect(fs)
    assert type(ctl) is RfcV6
    assert ctl.migrators() == ["kernel"] and ctl.loadable() == ["dcbm"]
    assert ctl.knobs()["channels"] == (1, 16)
    with KnobGuard(fs) as g:
        ctl.configure(g, "dcbm", channels=2)
        assert fs.read("/sys/module/dcbm/parameters/offloading") == "1"
        assert fs.read("/sys/module/dcbm/parameters/nr_dma_chan") == "2"
    assert fs.read("/sys/module/dcbm/parameters/offloading") == "0"
    # another module named dcbm (V1-V4's were too) is not taken for V6
    other = FakeFS({})
    other.add_module("dcbm", params=["offloading", "nr_dma_chan"])
    assert type(migrators.detect(other)) is KernelCopyOnly


def test_the_fake_v6_starts_as_the_recorded_v6_ended():
    """The recording's last writes put every parameter back to its default (counters reset
    to 0): the fake's defaults are those values, file for file."""
    rec = v6_recording()["files"]
    fake = fake_tree("v6")
    params = [p for p in rec if p.startswith("/sys/module/dcbm/parameters/")]
    assert len(params) == 5
    assert {p: fake.read(p) for p in params} == {p: rec[p] for p in params}


@pytest.mark.parametrize("version", ["v4", "v6", "v3"])
def test_what_dcbm_copied_is_read_where_the_posting_counts_it(version):
    """V4 to V6 count the folios dcbm copied (folios_migrated); the conformance matrix
    needs it to tell a pass that exercised dcbm from one that did not. V2/V3 count nothing."""
    ctl = migrators.detect(fake_tree(version))
    counts = "dcbm.folios_migrated" in ctl.counters()
    assert counts == (version != "v3")
    assert ctl.folios_copied({"dcbm.folios_migrated": 64, "dcbm.folios_failures": 3}, "dcbm") == (64 if counts else None)
    assert ctl.folios_copied({}, "dcbm") == (0 if counts else None)
