"""Integration: series v3 on Linux 7.3 (kernel/v3), the default line's series, in the 2-node
VM. Built by ``make kernels`` as ``patched`` (``workbench kernel build``, seeded from the
``vanilla`` tree of the same source; test_kernel_lines.py boots that).

What its patches promise and these tests hold them to:
  0001  copy first, then move: a destination copied ahead carries a mark that the move
        consumes; every folio still byte-exact, writers lose nothing.
  0002  one place to choose the migrator (/sys/kernel/mm/migration/): with the defaults no
        batch is formed; ``batch_kernel_copy=1`` copies every eligible folio ahead; a batch
        whose reason or size a migrator's settings leave out is copied by its moves; bad
        writes are refused and change nothing.
  0003  per-CPU counters per migrator and reason (debugfs ``migrate_copy/<name>/stats``,
        rows named as the kernel names its reasons) account for every folio of a batched
        call; the tracepoints ``mm_migrate_copy_{start,end}`` mark each batch copy and
        ``mm_migrate_batch_end`` every batch's end, whence the first-folio latency."""

import time

import pytest

from workbench.catalogue import workloads
from workbench.protocol import TrialSpec
from workbench.testing.vm_plans import sysfs

from .conftest import ConsoleWatch

pytestmark = pytest.mark.vm

ROOT = "/sys/kernel/mm/migration"
STATS = "/sys/kernel/debug/migrate_copy/kernel/stats"
SIZE = 4 << 20


@pytest.fixture
def v3(v3_vm):
    return v3_vm


def counters(target) -> dict[str, dict[str, int]]:
    """The kernel migrator's stats table: {reason or 'total': {counter: value}}."""
    header, *rows = sysfs(target, [STATS])["reads"][STATS].splitlines()
    names = header.split()[1:]
    return {row.split()[0]: dict(zip(names, map(int, row.split()[1:]))) for row in rows}


def trial(target, settings=None, reason="syscall_or_cpuset", **kw):
    """One trial with ``settings`` applied for it (and restored after it): its record and
    what the kernel migrator's counters of ``reason`` gained meanwhile."""
    kw.setdefault("total_size", SIZE)
    kw.setdefault("dst", workloads.default_dst(kw.get("workload", "move-pages"), None))
    kw["settings"] = {f"{ROOT}/{k}": v for k, v in (settings or {}).items()}
    before = counters(target)
    records = [e["record"] for e in target.run_plan({"op": "trials", "trials": [TrialSpec(**kw).to_dict()]})
               if e["type"] == "record"]
    after = counters(target)
    (record,) = records
    assert record["verified"] and record["pages_moved"] == record["pages"], record
    # a row per reason the kernel names (migrate_reason_names[]), but never_migrated, and total
    assert set(after) == {"compaction", "memory_failure", "memory_hotplug", "syscall_or_cpuset", "mempolicy_mbind",
                          "numa_misplaced", "contig_range", "longterm_pin", "demotion", "damon", "total"}, after
    # (other reasons' rows are not checked: kcompactd may migrate during a trial)
    return record, {k: after[reason][k] - before[reason][k] for k in after[reason]}


ZERO = dict.fromkeys(["batches", "folios", "bytes", "copied", "fallbacks", "declined", "errors", "copy_ns", "cpu_ns",
                      "not_offered", "serial"], 0)


def folios(record) -> int:
    return record["pages"] * 4096 // record["folio_size"]


def test_the_series_is_there(v3):
    facts = v3.facts()
    assert facts["interface"].startswith("workbench series v3"), facts["interface"]
    assert facts["kernel_release"].startswith("7.3."), facts["kernel_release"]
    assert facts["migrators"][0] == "kernel" and "mtcopy" in facts["offered"], facts["offered"]
    # our VM configuration builds pvpanic in and ramoops as a module (00-vm-base.config)
    assert facts["panic_record"]["pvpanic"] == "on", facts["panic_record"]
    assert facts["panic_record"]["pstore"].startswith("on: ramoops"), facts["panic_record"]


def test_defaults_form_no_batch(v3):
    reads = sysfs(v3, [f"{ROOT}/migrator", f"{ROOT}/batch_kernel_copy", f"{ROOT}/kernel/reasons",
                       f"{ROOT}/kernel/min_folios", f"{ROOT}/kernel/min_bytes"])["reads"]
    assert reads == {
        f"{ROOT}/migrator": "[kernel]",
        f"{ROOT}/batch_kernel_copy": "0",
        f"{ROOT}/kernel/reasons": "memory_hotplug,syscall_or_cpuset,mempolicy_mbind,contig_range,"
                                  "longterm_pin,demotion,damon",
        f"{ROOT}/kernel/min_folios": "1",
        f"{ROOT}/kernel/min_bytes": "0",
    }
    watch = ConsoleWatch(v3)
    for fs in (4096, 2 << 20):
        record, moved = trial(v3, folio_size=fs)
        assert moved == ZERO, (fs, moved)
        # every batch ends with mm_migrate_batch_end, batched copy or not: first-folio latency
        assert record["trace_batches"] >= 1 and record["trace_first_batch_ns"] > 0, record
        assert not any(k.startswith("trace_copy_") for k in record), record
    watch.check()


@pytest.mark.parametrize("workload, reason", [("move-pages", "syscall_or_cpuset"),
                                              ("migrate-pages", "syscall_or_cpuset"),
                                              ("mbind", "mempolicy_mbind")])
def test_batch_kernel_copy_copies_every_folio_ahead(v3, workload, reason):
    watch = ConsoleWatch(v3)
    for fs in (4096, 64 << 10, 2 << 20):
        record, moved = trial(v3, {"batch_kernel_copy": "1"}, reason, workload=workload, folio_size=fs)
        assert record["folio_match_share"] == 1.0, record
        n, size = folios(record), record["pages"] * 4096
        assert moved["batches"] >= 1 and moved["copy_ns"] > 0, moved
        assert moved["copied"] == moved["folios"] and moved["fallbacks"] == moved["declined"] == 0, moved
        # the batch tracepoints saw the same copies, and time each call's first batch's end
        assert record["trace_copy_kernel_copied"] == moved["copied"], record
        assert record["trace_first_batch_calls"] >= 1 and record["trace_first_batch_ns"] > 0, record
        if workload == "migrate-pages":
            # migrate_pages(2) moves the process's other folios too (its file pages), and
            # some of those are not the test's to copy ahead (extra references): serial
            assert moved["copied"] >= n and moved["bytes"] >= size, (fs, moved)
        else:
            assert (moved["copied"], moved["bytes"], moved["serial"], moved["not_offered"]) == (n, size, 0, 0), \
                (fs, moved)
    watch.check()


def test_writers_lose_nothing_while_batches_are_copied_ahead(v3):
    record, moved = trial(v3, {"batch_kernel_copy": "1"}, folio_size=4096, access="write", access_threads=2)
    assert record["access_bad_pages"] == 0, record
    assert moved["copied"] > 0 and moved["copied"] + moved["fallbacks"] + moved["serial"] == folios(record), moved


@pytest.mark.parametrize("settings, copied", [
    ({"kernel/reasons": "mempolicy_mbind"}, False),       # move_pages is syscall_or_cpuset
    ({"kernel/reasons": "none"}, False),
    ({"kernel/reasons": "syscall_or_cpuset"}, True),
    ({"kernel/reasons": "all"}, True),
    ({"kernel/min_folios": "513"}, False),                # a batch is at most 512 folios
    ({"kernel/min_folios": "512"}, True),
    ({"kernel/min_bytes": str((2 << 20) + 1)}, False),   # 512 4K folios = 2 MiB
    ({"kernel/min_bytes": str(2 << 20)}, True),
])
def test_a_batch_outside_the_migrators_settings_is_copied_by_its_moves(v3, settings, copied):
    record, moved = trial(v3, {"batch_kernel_copy": "1", **settings}, folio_size=4096)
    n = folios(record)
    if copied:
        assert (moved["copied"], moved["folios"], moved["not_offered"]) == (n, n, 0), (settings, moved)
    else:
        assert moved == {**ZERO, "not_offered": n}, (settings, moved)


def test_mbind_batches_follow_their_own_reason(v3):
    record, moved = trial(v3, {"batch_kernel_copy": "1", "kernel/reasons": "mempolicy_mbind"}, "mempolicy_mbind",
                          workload="mbind", folio_size=64 << 10)
    assert (moved["copied"], moved["not_offered"]) == (folios(record), 0), moved


@pytest.mark.parametrize("folio_size", [4096, 2 << 20], ids=["4K", "2M"])
def test_a_numa_hinting_fault_never_offers_its_one_folio(v3, folio_size):
    # 0002: a hinting fault migrates one folio and the faulting task waits for it, so its
    # batch is never offered, even with numa_misplaced chosen and no minimum in the way
    settings = {"batch_kernel_copy": "1", "kernel/reasons": "all", "kernel/min_folios": "1"}
    record, moved = trial(v3, settings, "numa_misplaced", workload="numa-balancing", folio_size=folio_size,
                          total_size=SIZE, wait_seconds=120)
    print(f"\n[numa-balancing {folio_size >> 10}K: {record['pages_moved']} of {record['pages']} pages moved in "
          f"{record.get('seconds', float('nan')):.1f} s; numa_misplaced row {moved}]")
    assert record["pages_moved"] > 0, record
    # every folio the faults moved went through a batch of one, none offered, none copied ahead
    assert moved["not_offered"] >= record["pages_moved"] * 4096 // folio_size, moved
    assert moved == {**ZERO, "not_offered": moved["not_offered"]}, moved
    # the same settings copy a one-folio batch of another reason ahead: the rule, not a minimum
    one, moved = trial(v3, settings, folio_size=folio_size, total_size=folio_size)
    assert (moved["copied"], moved["folios"], moved["not_offered"]) == (1, 1, 0), moved


# (an empty write never reaches the kernel's store(); a bare newline, as `echo > file`, does)
BAD_WRITES = [
    ("migrator", ["nosuch", "\n", "[kernel]", "KERNEL", "kernel mtcopy"]),
    ("batch_kernel_copy", ["2", "-1", "abc", "\n"]),
    ("kernel/reasons", ["bogus", "syscall_or_cpuset,bogus", "memory_failure", "never_migrated", "\n",
                        "all,none"]),
    ("kernel/min_folios", ["0", "-1", "abc", "\n"]),
    ("kernel/min_bytes", ["-1", "abc", "\n"]),
    ("batch_size", ["0", "16385", "-1", "abc", "\n"]),
]


@pytest.mark.parametrize("knob, values", BAD_WRITES, ids=[k for k, _ in BAD_WRITES])
def test_bad_writes_are_refused_and_change_nothing(v3, knob, values):
    results = sysfs(v3, writes=[(f"{ROOT}/{knob}", v) for v in values])["writes"]
    for w in results:
        assert w["error"] and "rejected" in w["error"], f"{knob} accepted {w['value']!r}"
        assert w["after"] == w["before"], f"{knob} changed after refusing {w['value']!r}"


def test_settings_are_restored_after_a_trial(v3):
    reads = [f"{ROOT}/batch_kernel_copy", f"{ROOT}/kernel/reasons", f"{ROOT}/kernel/min_folios"]
    before = sysfs(v3, reads)["reads"]
    trial(v3, {"batch_kernel_copy": "1", "kernel/reasons": "none", "kernel/min_folios": "7"}, folio_size=4096)
    assert sysfs(v3, reads)["reads"] == before


# -- 0004/0005: mtcopy -------------------------------------------------------------------------

def mtcopy_trial(target, **kw):
    """A trial with mtcopy (loaded on demand by the workbench's v3 control): its record and
    mtcopy's syscall counters, as the record has them (mig_mtcopy_syscall_*)."""
    kw.setdefault("total_size", SIZE)
    kw.setdefault("dst", workloads.default_dst("move-pages", None))
    records = [e["record"] for e in target.run_plan({"op": "trials", "trials": [
        TrialSpec(migrator="mtcopy", **kw).to_dict()]}) if e["type"] == "record"]
    (record,) = records
    assert record["verified"] and record["pages_moved"] == record["pages"], record
    assert record["interface"].startswith("workbench series v3"), record["interface"]
    return record, {k[len("mig_mtcopy_syscall_"):]: v for k, v in record.items()
                    if k.startswith("mig_mtcopy_syscall_")}


@pytest.mark.parametrize("threads", [1, 2])
def test_mtcopy_copies_every_folio_and_counts_its_workers_cpu_time(v3, threads):
    watch = ConsoleWatch(v3)
    for fs in (4096, 2 << 20):
        record, c = mtcopy_trial(v3, threads=threads, folio_size=fs)
        n = folios(record)
        assert (c.get("copied"), c.get("folios"), c.get("fallbacks", 0)) == (n, n, 0), (threads, fs, c)
        assert record["mig_mtcopy_copied"] == n and record["trace_copy_mtcopy_copied"] == n, record
        # one thread: the migrating task copies, charged to it; two: the workers' CPU time
        assert (c.get("cpu_ns", 0) > 0) == (threads > 1), (threads, fs, c)
    watch.check()


def test_mtcopy_is_not_offered_a_batch_below_its_minimum(v3):
    # 256 KiB in all: one batch of 64 4K folios, below mtcopy's default 1 MiB
    record, c = mtcopy_trial(v3, threads=2, folio_size=4096, total_size=256 << 10)
    assert c.get("not_offered") == 64 and not c.get("copied") and not c.get("batches"), c


def test_switching_migrators_and_removing_mtcopy_under_load_is_bounded(v3):
    # two processes migrate 2M folios back and forth while the migrator switches and mtcopy
    # is removed and loaded again: the SRCU read section covers only a batch's copy, so a
    # switch or an rmmod waits for copies in progress, not for whole migrations (0002)
    watch = ConsoleWatch(v3)
    t0 = time.time()
    res = None
    for event in v3.run_plan({"op": "stress", "args": {"seconds": 30, "size": 8 << 20, "workers": 2,
                                                         "min_switches": 6, "unload": ["mtcopy"]}}):
        assert event["type"] != "error", event
        if event["type"] == "stress":
            res = event["result"]
    print(f"\n[churn {time.time() - t0:.0f} s: {res['switches']} switches (longest {res['select_max_s']:.2f} s), "
          f"{res['unloads']} removals of mtcopy (longest {res['unload_max_s']:.2f} s), {res['rounds']} rounds]")
    assert res["bad_pages"] == res["misplaced_pages"] == res["errors"] == 0, res
    assert res["switches"] >= 6 and res["unloads"] >= 1 and res["restore_problems"] == [], res
    # (the longest switch and removal are printed, not asserted: tests assert no times; one
    # that waited for whole migrations would hang the churn, not slow it)
    watch.check()


def test_demotion_by_proactive_reclaim_keeps_the_cpu_copy(v3):
    # memory.reclaim demotes with PF_MEMALLOC set and is not kswapd: the one PF_MEMALLOC rule
    # of 0002 keeps its batches from every migrator, although demotion is one of the reasons
    record, moved = trial(v3, {"batch_kernel_copy": "1"}, "demotion", workload="demotion", folio_size=4096,
                          dst=None, wait_seconds=120)
    assert record["dst"] == 2 and record["pages_placed"] == record["pages"], record
    kswapd = record.get("vmstat_pgdemote_kswapd", 0)
    print(f"\n[demotion: {moved}; pgdemote kswapd {kswapd}, direct {record.get('vmstat_pgdemote_direct')}, "
          f"proactive {record.get('vmstat_pgdemote_proactive')}]")
    assert moved["not_offered"] > 0, moved
    # only kswapd's batches may have been copied ahead
    assert moved["copied"] <= kswapd, (moved, kswapd)


def test_demotion_by_kswapd_is_offered_to_the_migrator(v3):
    # kswapd runs with PF_MEMALLOC too, but no allocation waits on it: 0002 offers its
    # batches (the tiering use case), and the kernel migrator copies them ahead
    record, moved = trial(v3, {"batch_kernel_copy": "1"}, "demotion", workload="kswapd-demotion", folio_size=4096,
                          dst=None, wait_seconds=120)
    kswapd = record.get("vmstat_pgdemote_kswapd", 0)
    print(f"\n[kswapd demotion: {record['pressure_rounds']} rounds, {record['pressure_bytes'] >> 20} MiB of "
          f"pressure, {record['seconds']:.1f} s; pgdemote kswapd {kswapd}, direct "
          f"{record.get('vmstat_pgdemote_direct')}; demotion row {moved}]")
    assert record["dst"] == 2 and record["pages_placed"] == record["pages"], record
    assert kswapd > 0 and moved["batches"] >= 1, (kswapd, moved)
    # what was offered was copied ahead; what was left out is direct reclaim's (PF_MEMALLOC)
    assert moved["copied"] == moved["folios"] > 0 and moved["fallbacks"] == moved["declined"] == 0, moved
    assert moved["copied"] <= kswapd and moved["not_offered"] <= record.get("vmstat_pgdemote_direct", 0), \
        (moved, record.get("vmstat_pgdemote_direct"))


# -- 0007: batch_size ---------------------------------------------------------------------------

def test_batch_size_sets_the_batch_only_while_batching(v3):
    # batching off (the defaults): migrate_pages() keeps its own batches (512 base pages)
    # whatever batch_size says; mm_migrate_batch_end counts them. Not equal to the count of a
    # trial without the knob: a trial's trace sometimes holds a batch more (seen once, in a
    # rehearsal of CI: 3 against 2; where it came from was not found). What would show the
    # knob applied is the batch count of 16-page batches, n/16
    own, _ = trial(v3, folio_size=4096)
    small, moved = trial(v3, {"batch_size": "16"}, folio_size=4096)
    n = folios(small)
    assert moved == ZERO, moved
    ours, theirs = own["trace_batches"], small["trace_batches"]
    assert abs(theirs - ours) <= 2 and max(ours, theirs) < n // 16, (ours, theirs, n)
    # batching on: batches of 16 base pages, every folio copied ahead
    record, moved = trial(v3, {"batch_kernel_copy": "1", "batch_size": "16"}, folio_size=4096)
    assert moved["batches"] >= n // 16 and moved["copied"] == n, moved
    assert record["trace_batches"] >= n // 16 > own["trace_batches"], record["trace_batches"]
    # the bound: 64 MiB of 4K pages
    w = sysfs(v3, writes=[(f"{ROOT}/batch_size", "16384"), (f"{ROOT}/batch_size", "512")])["writes"]
    assert [x["error"] for x in w] == [None, None] and w[0]["after"] == "16384" and w[1]["after"] == "512", w
