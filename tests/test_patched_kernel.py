"""Integration: the kernel series in a 2-node VM. The console is scanned after every test:
any WARN, BUG or oops fails it. Timings are never asserted (TCG)."""

import pytest

from workbench.host import runner
from workbench.host.plan import RunParams
from workbench.agent.migrators.mm_migration import REASONS
from workbench.protocol import TrialSpec

from .conftest import MAP_FAIL_WARNING, VM_PREFIX, ConsoleWatch, _boot

pytestmark = pytest.mark.vm
ROOT = "/sys/kernel/mm/migration"
SIZE = 8 << 20


def events(target, plan, kind):
    for event in target.run_plan(plan):
        assert event["type"] != "error", event
        if event["type"] == kind:
            return event


def trial(target, **kw):
    out = []
    for event in target.run_plan({"op": "trials", "trials": [TrialSpec(**kw).to_dict()]}):
        assert event["type"] != "error", event
        if event["type"] == "record":
            out.append(event["record"])
    return out[0]


def test_the_series_is_there(patched):
    # from the start of the console: the VM is shared, so map_fail's WARN (test_dcbm) may be there
    watch = ConsoleWatch(patched)
    watch.offset = 0
    watch.check(allow=MAP_FAIL_WARNING)
    facts = patched.facts()
    assert facts["interface"].startswith("workbench")
    assert facts["migrators"][0] == "kernel" and "mtcopy" in facts["offered"]
    assert facts["knobs"]["batch_size"] == [1, 262144] and facts["knobs"]["batch_kernel_copy"] == [0, 1]
    # our VM configuration builds pvpanic in and ramoops as a module (00-vm-base.config)
    assert facts["panic_record"]["pvpanic"] == "on", facts["panic_record"]
    assert facts["panic_record"]["pstore"].startswith("on: ramoops"), facts["panic_record"]


def test_no_change_by_default_the_kernel_migrator_keeps_the_serial_path(patched):
    """Review item 1: with the kernel migrator and default knobs, no migration goes through
    the batched path (no batch is counted anywhere)."""
    r = trial(patched, folio_size=4096, total_size=SIZE)
    assert r["verified"] and r["pages_moved"] == r["pages"]
    assert r["mig_kernel_batches"] == r["mig_kernel_folios"] == 0
    assert r["vmstat_pgmigrate_success"] == SIZE // 4096


@pytest.mark.parametrize("folio", [4096, 64 << 10, 2 << 20])
@pytest.mark.parametrize("migrator,threads,batched", [("kernel", None, True), ("mtcopy", 1, None),
                                                      ("mtcopy", 2, None)])
def test_every_migrator_moves_every_page_byte_exact(patched, migrator, threads, batched, folio):
    r = trial(patched, folio_size=folio, total_size=SIZE, migrator=migrator, threads=threads,
              batch_kernel_copy=batched)
    nfolios = SIZE // folio
    assert r["verified"] and r["pages_moved"] == r["pages"] and r["folio_match_share"] == 1.0
    m = f"mig_{migrator}_"
    assert r[m + "folios"] == nfolios, "every folio went through the batch copy of the chosen migrator"
    assert r[m + "bytes"] == SIZE
    assert r[m + "batches"] >= 1 and r[m + "fallbacks"] == 0 and r[m + "nomem_batches"] == 0
    assert 0 < r[m + "copy_ns"] <= r[m + "batch_ns"]
    assert 0 < r["copy_share"] <= r["copy_share_all"] <= 1
    # counted under the reason move_pages(2) migrates for, and under no other
    assert r[m + "syscall_folios"] == nfolios and r[m + "syscall_batches"] == r[m + "batches"]
    assert not [k for k in r if any(k.startswith(f"{m}{x}_") for x in REASONS if x != "syscall")]
    other = "mtcopy" if migrator == "kernel" else "kernel"
    assert r.get(f"mig_{other}_folios", 0) == 0
    if migrator == "mtcopy":
        if threads == 1:
            assert r["mig_mtcopy_cpu_ns"] == 0, "one thread copies inline: no helper time"
        else:
            assert r["mig_mtcopy_cpu_ns"] > 0, "the helpers' copy time is reported"


def test_batch_size_cuts_batches(patched):
    r = trial(patched, folio_size=4096, total_size=SIZE, batch_size=64, batch_kernel_copy=True)
    assert r["verified"] and r["mig_kernel_folios"] == SIZE // 4096
    assert r["mig_kernel_batches"] >= (SIZE // 4096) // 64


def test_a_reason_left_out_takes_the_serial_path(patched):
    r = trial(patched, folio_size=4096, total_size=SIZE, batch_kernel_copy=True,
              settings={f"{ROOT}/reasons": "compaction,demotion"})
    assert r["verified"] and r["pages_moved"] == r["pages"]
    assert r["mig_kernel_batches"] == 0, "syscall is not enabled: move_pages took the serial path"


def test_knobs_are_restored_after_a_run(patched):
    reads = [f"{ROOT}/migrator", f"{ROOT}/batch_size", f"{ROOT}/batch_kernel_copy", f"{ROOT}/mtcopy/threads"]
    before = events(patched, {"op": "sysfs", "reads": reads}, "sysfs")["results"]["reads"]
    trial(patched, folio_size=2 << 20, total_size=SIZE, migrator="mtcopy", threads=1, batch_size=1024)
    after = events(patched, {"op": "sysfs", "reads": reads}, "sysfs")["results"]["reads"]
    assert after == before


# (an empty write never reaches the kernel's store(); a bare newline, as `echo > file`, does)
BAD_WRITES = [
    ("migrator", ["nosuch", "\n", "[kernel]", "KERNEL", "kernel mtcopy"]),
    ("batch_size", ["0", "262145", "-1", "abc", "\n", "1.5"]),
    ("reasons", ["bogus", "syscall,bogus", "\n"]),
    ("stats/kernel/copy_ns", ["1", "abc", "-1"]),
    ("mtcopy/threads", ["0", "3", "-2", "x"]),
    ("mtcopy/spread", ["die", "\n", "[none]"]),
    ("batch_kernel_copy", ["2", "x", "\n", "-1"]),
    ("stats/mtcopy/cpu_ns", ["5", "x"]),
    ("stats/kernel/syscall/folios", ["3", "x"]),
]


@pytest.mark.parametrize("knob,values", BAD_WRITES, ids=[k for k, _ in BAD_WRITES])
def test_bad_writes_are_refused_and_change_nothing(patched, knob, values):
    trial(patched, folio_size=4096, total_size=1 << 20, migrator="mtcopy")  # loads mtcopy
    writes = [[f"{ROOT}/{knob}", v] for v in values]
    results = events(patched, {"op": "sysfs", "writes": writes}, "sysfs")["results"]["writes"]
    for w in results:
        assert w["error"] and "rejected" in w["error"], f"{knob} accepted {w['value']!r}"
        assert w["after"] == w["before"], f"{knob} changed after refusing {w['value']!r}"


def test_churn_switching_and_unloading_mtcopy(patched):
    res = events(patched, {"op": "stress", "args": {"seconds": 60, "size": 8 << 20, "workers": 2, "min_switches": 11,
                                                     "unload": ["mtcopy"]}}, "stress")["result"]
    assert res["rounds"] > 4, res
    assert res["switches"] > 10 and res["thread_changes"] > 10 and res["unloads"] + res["unload_busy"] > 0, res
    assert (res["bad_pages"], res["misplaced_pages"], res["errors"]) == (0, 0, 0), res
    assert res["restore_problems"] == []


def test_vanilla_kernel_passes_the_default_trials(tmp_path):
    target = _boot("vanilla", f"{VM_PREFIX}-vanilla")
    watch = ConsoleWatch(target)
    try:
        facts = target.facts()
        assert facts["interface"] == "none" and facts["offered"] == ["kernel"]
        run = runner.run(target, RunParams(folio_sizes=[4096, 64 << 10, 2 << 20], total_size=SIZE, repeats=1),
                         root=tmp_path, progress=False)
        df = run.records()
        assert df["verified"].all() and (df["folio_match_share"] == 1.0).all()
        watch.check()
    finally:
        target.vm.down()


def test_first_folio_latency_is_measured_per_batch_size(patched):
    """The reviewers' question: how long until the first folio lands, against the batch
    size. Only that it is measured is checked here (TCG: no timing is asserted)."""
    for batch in (16, 2048):
        r = trial(patched, folio_size=4096, total_size=SIZE, batch_size=batch, batch_kernel_copy=True,
                  first_folio=True)
        assert r["verified"] and r["batch_size"] == batch
        assert r["first_folio_ns"] is not None and r["first_folio_ns"] > 0
