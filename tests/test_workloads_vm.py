"""Integration: every way pages migrate, in QEMU guests, verified byte by byte.

The stock kernel (the default line's Debian image) on two nodes (``vm_target``) and on
three, the third CPU-less and a lower memory tier through ACPI HMAT (``tiered_vm``); the
kernel series (``patched``, ``patched_tiered_vm``) for mtcopy, dcbm, the ``reasons`` file
and per-reason counters — those skip (or, under WORKBENCH_REQUIRE_VM=1, fail) until the
patched kernel is built. The kernel log is scanned after every test: a WARN, BUG or oops
fails it. Sizes are small and no timing is asserted (TCG).
"""

from __future__ import annotations

import pytest

from workbench.agent.migrators.mm_migration import REASONS
from workbench.errors import WorkbenchError
from workbench.host.running import runner
from workbench.host.running.plan import RunParams
from workbench.protocol import PAGE, TrialSpec

pytestmark = pytest.mark.vm
SIZE = 8 << 20
PAGES = SIZE // PAGE
MOVERS = ("move-pages", "migrate-pages", "mbind")
#: compaction fragments a node with three free folios beside each of the region's: 32M
#: of pages among 96M of holes give a node of a VM work to do
COMPACT_SIZE = 32 << 20
MM = "/sys/kernel/mm/migration"


class KernelLog:
    """WARN/BUG/oops lines the guest's kernel printed during a test. The serial console
    reaches vng's stderr, so both of the VM's logs are scanned."""

    def __init__(self, target):
        self.vm = target.vm
        self.offsets = {p: self._size(p) for p in (self.vm.console, self.vm.qemu_log)}

    @staticmethod
    def _size(path):
        try:
            return path.stat().st_size
        except OSError:
            return 0

    def lines(self, words) -> list[str]:
        out = []
        for path, offset in self.offsets.items():
            try:
                text = path.read_bytes()[offset:].decode(errors="replace")
            except OSError:
                continue
            out += [ln for ln in text.splitlines() if any(w in ln for w in words)]
        return out

    def problems(self):
        from workbench.vm.console import PROBLEMS as CONSOLE_PROBLEMS
        return self.lines(CONSOLE_PROBLEMS)


@pytest.fixture
def stock(vm_target):
    log = KernelLog(vm_target)
    yield vm_target
    assert not log.problems(), "kernel log:\n" + "\n".join(log.problems()[:20])


@pytest.fixture
def tiered(tiered_vm):
    log = KernelLog(tiered_vm)
    yield tiered_vm
    assert not log.problems(), "kernel log:\n" + "\n".join(log.problems()[:20])


#: the running test's kernel log on the patched VM, for assertion messages
CURRENT_LOG: list = [None]


@pytest.fixture
def patched_log(patched):
    log = CURRENT_LOG[0] = KernelLog(patched)
    yield patched
    CURRENT_LOG[0] = None
    assert not log.problems(), "kernel log:\n" + "\n".join(log.problems()[:20])


@pytest.fixture
def patched_tiered(patched_tiered_vm):
    log = KernelLog(patched_tiered_vm)
    yield patched_tiered_vm
    assert not log.problems(), "kernel log:\n" + "\n".join(log.problems()[:20])


def trial(target, **kw):
    kw.setdefault("total_size", SIZE)
    kw.setdefault("folio_size", 4096)
    from workbench.catalogue import workloads
    kw.setdefault("dst", workloads.default_dst(kw.get("workload", "move-pages"), None))
    records = []
    for event in target.run_plan({"op": "trials", "trials": [TrialSpec(**kw).to_dict()]}):
        assert event["type"] != "error", event
        if event["type"] == "record":
            records.append(event["record"])
    (r,) = records
    assert not r.get("restore_problems"), r["restore_problems"]
    return r


def sysfs(target, reads):
    for event in target.run_plan({"op": "sysfs", "reads": reads}):
        assert event["type"] != "error", event
        if event["type"] == "sysfs":
            return event["results"]["reads"]


def sysfs_write(target, path, value):
    for event in target.run_plan({"op": "sysfs", "writes": [[path, value]]}):
        assert event["type"] != "error", event
        if event["type"] == "sysfs":
            (w,) = event["results"]["writes"]
            assert w["error"] is None, w


def assert_moved_by_reason(r, reason=None):
    """The migration ran under the workload's reason: the trace saw it, the counters moved."""
    reason = reason or r["reason"]
    assert not r.get("trace_error")
    assert r[f"trace_{reason}_calls"] >= 1, r.get("trace_reasons")
    assert r[f"trace_{reason}_succeeded"] >= r["pages_moved"]        # base pages, THPs included
    assert r[f"trace_{reason}_failed"] == 0 or reason == "compaction"
    assert r["trace_event_ns"] is not None and r["trace_overhead_share"] is not None   # its cost is stated,
    assert r["trace_overhead_bound_share"] >= r["trace_overhead_share"]               # a bound where noise rules
    assert r["trace_clock"] in ("mono", "global")      # one clock for every CPU: durations across CPUs hold


# -- the stock kernel, two nodes --------------------------------------------------------------

def test_the_target_says_which_workloads_it_can_run(stock):
    facts = stock.facts()
    w = facts["workloads"]
    assert [n for n, v in w.items() if v["ok"]] == ["move-pages", "migrate-pages", "mbind", "numa-balancing",
                                                      "compaction", "proactive-compaction"]
    assert w["demotion"]["missing"].startswith("no lower memory tier: every node with memory is in one tier")
    assert facts["trace_missing"] is None


@pytest.mark.parametrize("folio", [4096, 2 << 20], ids=["4K", "2M"])
@pytest.mark.parametrize("workload", MOVERS)
def test_every_mover_moves_every_page_byte_exact_under_its_reason(stock, workload, folio):
    r = trial(stock, workload=workload, folio_size=folio)
    assert r["verified"] and r["verify_bad_pages"] == 0
    assert r["pages_placed"] == PAGES and r["page_nodes"] == f"1:{PAGES}" and r["on_src_before_share"] == 1.0
    assert r["folio_match_share"] == 1.0
    assert r["vmstat_pgmigrate_success"] >= PAGES
    if folio == 2 << 20:
        assert r["vmstat_thp_migration_success"] >= SIZE // folio
    assert_moved_by_reason(r)
    assert r["reason"] == {"mbind": "mempolicy_mbind"}.get(workload, "syscall")


def test_migrate_pages_moves_the_process_without_the_agent(stock):
    r = trial(stock, workload="migrate-pages")
    assert r["migrate_flags"] == "MPOL_MF_MOVE" and r["holder_pid"]
    # the holder's own pages move with it, not the agent's (shared copy-on-write) memory
    assert PAGES <= r["trace_syscall_succeeded"] < PAGES + 2048


def test_numa_balancing_moves_the_pages_to_the_task(stock):
    r = trial(stock, workload="numa-balancing", wait_seconds=300)
    assert r["verified"] and r["verify_bad_pages"] == 0 and r["touch"] == "read"
    assert r["balance_all_moved"] and r["pages_placed"] == PAGES, r["balance_timeline"]
    assert r["vmstat_numa_pages_migrated"] >= PAGES and r["vmstat_numa_hint_faults"] > 0
    assert_moved_by_reason(r, "numa_misplaced")
    assert r["balance_timeline"]


def compaction_facts(r):
    """What a compaction trial's record says about what compaction did, for a failure: a
    string, which pytest prints whole (a dict's repr is cut short), with the series'
    counters and the kernel log's report beside compaction's own."""
    facts = {k: v for k, v in r.items() if k.startswith(("vmstat_compact", "trace_compaction", "frag_score",
                                                         "region_zone", "pgmigrate", "vmstat_pgmigrate", "mig_",
                                                         "pcp_"))
             or k in ("pages_moved", "pages_placed", "verified", "verify_bad_pages", "seconds", "compact_trigger",
                      "proactive_started", "kernel_clean", "kernel_report")}
    return "compaction facts: " + ", ".join(f"{k}={v!r}" for k, v in sorted(facts.items()))


def assert_compacted_the_region(r):
    """The holes reached the buddy lists (the node was fragmented, then less so) and
    compaction moved pages of the region itself, not only whatever else lay on the node.
    Before the trial pinned the free-page lists small, the holes could wait on a CPU's list
    unseen, and a run compacted nothing at random (a CI failure)."""
    assert r["pcp_high_fraction"], compaction_facts(r)
    assert r["frag_score_before"] > r["frag_score_after"], compaction_facts(r)
    assert r["trace_compaction_succeeded"] > 0 and r["pages_moved"] > 0, compaction_facts(r)


def test_compaction_compacts_a_fragmented_node_and_leaves_every_page_on_it(stock):
    r = trial(stock, workload="compaction", src=1, total_size=COMPACT_SIZE)
    assert r["verified"] and r["verify_bad_pages"] == 0
    assert r["pages_placed"] == COMPACT_SIZE // PAGE and r["expect_node"] == 1   # pages stay on their node
    assert r["vmstat_compact_migrate_scanned"] > 0 and r["vmstat_compact_isolated"] > 0, compaction_facts(r)
    assert r["trace_compaction_calls"] >= 1, compaction_facts(r)
    assert r["region_zone_position"] is not None
    assert_compacted_the_region(r)


def test_proactive_compaction_is_done_by_kcompactd(stock):
    """Three 4K holes beside each page of 128M fragment node 1 past kcompactd's threshold
    (a score of 15 with proactiveness 100); kcompactd then compacts it by itself.
    kcompactd leaves a node alone while kswapd runs on it: the page cache earlier tests left
    on the shared VM is dropped first, so that 512M of region and holes fit in node 1's
    free memory (once in CI the daemon never started, with the cause unrecorded)."""
    sysfs_write(stock, "/proc/sys/vm/drop_caches", "3")
    r = trial(stock, workload="proactive-compaction", src=1, total_size=128 << 20, wait_seconds=120)
    assert r["frag_score_before"] > 15, r["frag_score_before"]
    assert r["verified"] and r["pages_placed"] == (128 << 20) // PAGE, compaction_facts(r)
    assert r["proactive_started"], compaction_facts(r)
    assert r["vmstat_compact_daemon_migrate_scanned"] > 0, compaction_facts(r)
    assert r["trace_compaction_calls"] >= 1 and r["trace_compaction_succeeded"] > 0, compaction_facts(r)


@pytest.mark.parametrize("workload", ["move-pages", "migrate-pages"])
@pytest.mark.parametrize("mode", ["write", "read"])
def test_concurrent_access_during_the_migration_loses_nothing(stock, workload, mode):
    r = trial(stock, workload=workload, access=mode, access_threads=2)
    assert r["verified"] and r["verify_bad_pages"] == 0 and r["pages_placed"] == PAGES
    assert r["access"] == mode and r["access_threads"] == 2 and r["access_passes"] >= 2
    assert r["access_bad_pages"] == 0 and r["access_error"] is None
    if mode == "write":
        gens = [int(g) for g in r["access_generations"].split(",")]
        assert min(gens) >= 1, "every writer stamped at least one generation"


@pytest.mark.parametrize("workload", ["move-pages", "migrate-pages"])
def test_a_verifier_fed_a_stale_expectation_fails(stock, workload):
    """The check can fail: against the generation before the writers' last, every page
    is wrong, and the first is located."""
    r = trial(stock, workload=workload, access="write", access_threads=2, inject_stale=True)
    assert not r["verified"] and r["access_bad_pages"] == 0          # the migration itself was fine
    assert r["verify_bad_pages"] == PAGES and (r["verify_first_bad_page"], r["verify_first_bad_offset"]) == (0, 0)


def test_corruption_in_the_holder_is_reported_with_page_and_offset(stock):
    r = trial(stock, workload="migrate-pages", inject_corruption={"page": 1500, "offset": 777})
    assert not r["verified"] and r["pages_placed"] == PAGES
    assert (r["verify_bad_pages"], r["verify_first_bad_page"], r["verify_first_bad_offset"]) == (1, 1500, 777)


def test_a_workload_the_target_cannot_run_is_refused_in_one_line(stock, tmp_path):
    with pytest.raises(WorkbenchError) as e:
        runner.run(stock, RunParams(folio_sizes=[4096], total_size=SIZE, workload="demotion", dst=None),
                   root=tmp_path, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"workload 'demotion' cannot run on {stock.label}")
    assert "no lower memory tier" in msg
    assert not list(tmp_path.iterdir()), "nothing ran, nothing was stored"
    # the agent refuses too, when reached without the host's checks
    events = list(stock.run_plan({"op": "trials", "trials": [TrialSpec(
        total_size=SIZE, folio_size=4096, workload="demotion", dst=None).to_dict()]}))
    (err,) = [e for e in events if e["type"] == "error"]
    assert "\n" not in err["message"] and "cannot run on this kernel: no lower memory tier" in err["message"]


def test_every_knob_and_object_a_workload_touches_is_put_back(stock):
    reads = ["/proc/sys/kernel/numa_balancing", "/sys/kernel/debug/sched/numa_balancing/scan_delay_ms",
             "/sys/kernel/debug/sched/numa_balancing/scan_period_min_ms", "/sys/kernel/mm/numa/demotion_enabled",
             "/sys/fs/cgroup/cgroup.subtree_control", "/sys/kernel/mm/transparent_hugepage/enabled"]
    before = sysfs(stock, reads)
    trial(stock, workload="numa-balancing", wait_seconds=300)
    trial(stock, workload="compaction", access="write")
    assert sysfs(stock, reads) == before
    snap = next(e for e in stock.run_plan({"op": "snapshot", "roots": ["/sys/kernel/tracing/instances"]})
                if e["type"] == "snapshot")
    assert not any("workbench-" in p for p in snap["snapshot"]["files"]), "a tracing instance was left behind"


# -- the stock kernel with a lower memory tier -----------------------------------------------------

def test_the_cpu_less_node_is_a_lower_tier(tiered):
    facts = tiered.facts()
    assert facts["numa"]["memory_nodes"] == [0, 1, 2]
    tiers = {int(k): v for k, v in facts["memory_tiers"].items()}
    assert len(tiers) == 2 and tiers[max(tiers)] == [2] and tiers[min(tiers)] == [0, 1]
    assert facts["workloads"]["demotion"]["ok"], facts["workloads"]["demotion"]


@pytest.mark.parametrize("folio", [4096, 2 << 20], ids=["4K", "2M"])
def test_demotion_moves_every_page_to_the_lower_tier_and_promotion_brings_them_back(tiered, folio):
    r = trial(tiered, workload="demotion", folio_size=folio, wait_seconds=300)
    assert r["verified"] and r["verify_bad_pages"] == 0
    assert r["dst"] == 2 and r["pages_placed"] == PAGES, r["page_nodes"]
    # memory.reclaim's demotions: pgdemote_direct on 6.12, pgdemote_proactive where the
    # kernel counts proactive reclaim apart (7.3 does)
    assert sum(r.get(f"vmstat_pgdemote_{k}", 0) for k in ("direct", "kswapd", "proactive")) >= PAGES
    assert_moved_by_reason(r, "demotion")
    assert r["reclaim_writes"] >= 1
    # promotion, where the kernel has NUMA balancing's tiering mode (6.12 does)
    assert r["promotion"].startswith("numa_balancing=2")
    assert r["promote_vmstat_pgpromote_success"] > 0 and r["pages_promoted"] > 0, r["promote_timeline"]


def test_demotion_with_writers_keeps_every_write(tiered):
    r = trial(tiered, workload="demotion", access="write", access_threads=2, wait_seconds=60)
    assert r["verify_bad_pages"] == 0 and r["access_bad_pages"] == 0 and r["verified"]


def test_the_other_workloads_run_on_the_tiered_vm_too(tiered):
    for workload in MOVERS:
        r = trial(tiered, workload=workload, dst=2)         # to the CPU-less node
        assert r["verified"] and r["pages_placed"] == PAGES


# -- the kernel series (patched kernel) ---------------------------------------------------------

def migrator_kw(migrator):
    return {"kernel": {}, "mtcopy": {"migrator": "mtcopy", "threads": 1},
            "dcbm": {"migrator": "dcbm", "channels": 1, "dma_engine": "test_dma_engine"}}[migrator]


def series_v3(r) -> bool:
    """Whether the record is of series v3 (kernel/v3, 7.3), whose defaults differ from v2's."""
    return str(r.get("interface", "")).startswith("workbench series v3")


def assert_not_offered_by_v3(r, migrator):
    """Series v3 never offers this batch to a migrator (0002: a NUMA hinting fault's one
    folio; compaction, not among the default reasons; reclaim's PF_MEMALLOC batches other
    than kswapd's): the migrator copied none of the workload's folios, and said so."""
    assert r.get("reason_folios", 0) == 0, r
    assert r.get(f"mig_{migrator}_{r['reason']}_not_offered", 0) > 0, \
        {k: v for k, v in r.items() if k.startswith(f"mig_{migrator}_") and v}


def assert_series_counted(r, migrator, expect_folios):
    """The batch path of the chosen migrator copied the workload's folios, for its reason."""
    if r.get("reason_counters"):
        assert r["reason_folios"] >= expect_folios, r
    # on failure, the migrator's totals and the engine's counters say which path fell back
    reasons = tuple(f"mig_{migrator}_{name}_" for name in REASONS)
    counters = {k: v for k, v in r.items() if k.startswith((f"mig_{migrator}_", "mig_test_dma_engine_"))
                and not k.startswith(reasons) and v}
    if CURRENT_LOG[0] is not None:        # and what the migrators and the engine said
        counters["kernel log"] = CURRENT_LOG[0].lines(("dcbm", "mtcopy", "test_dma_engine", "migrat"))[-20:]
    assert r[f"mig_{migrator}_folios"] >= expect_folios, counters
    assert r[f"mig_{migrator}_fallbacks"] == 0, counters


@pytest.mark.parametrize("migrator", ["mtcopy", "dcbm"])
@pytest.mark.parametrize("workload", MOVERS + ("numa-balancing",))
def test_patched_every_workload_with_each_offload_migrator(patched_log, workload, migrator):
    r = trial(patched_log, workload=workload, wait_seconds=300, **migrator_kw(migrator))
    assert r["verified"] and r["verify_bad_pages"] == 0 and r["pages_placed"] == PAGES
    assert_moved_by_reason(r)
    if series_v3(r) and workload == "numa-balancing":
        assert_not_offered_by_v3(r, migrator)
    else:
        assert_series_counted(r, migrator, PAGES)


@pytest.mark.parametrize("migrator", ["kernel", "mtcopy", "dcbm"])
def test_patched_compaction_with_each_migrator(patched_log, migrator):
    r = trial(patched_log, workload="compaction", src=1, total_size=COMPACT_SIZE, **migrator_kw(migrator))
    assert r["verified"] and r["pages_placed"] == COMPACT_SIZE // PAGE
    assert_compacted_the_region(r)
    if migrator != "kernel" and series_v3(r):
        assert_not_offered_by_v3(r, migrator)
    elif migrator != "kernel":
        assert_series_counted(r, migrator, 1)


@pytest.mark.parametrize("migrator", ["kernel", "mtcopy", "dcbm"])
def test_patched_demotion_with_each_migrator(patched_tiered, migrator):
    r = trial(patched_tiered, workload="demotion", wait_seconds=300, **migrator_kw(migrator))
    assert r["verified"] and r["pages_placed"] == PAGES
    assert_moved_by_reason(r, "demotion")
    if migrator != "kernel" and series_v3(r):
        # memory.reclaim demotes with PF_MEMALLOC and is not kswapd: no migrator is offered it
        assert_not_offered_by_v3(r, migrator)
    elif migrator == "mtcopy":
        # reclaim runs with PF_MEMALLOC: mtcopy declines those batches (kernel/patches 0009)
        # and the CPU copies their folios one by one — counted, under the demotion reason
        assert r["reason_folios"] >= PAGES and r["mig_mtcopy_demotion_declined"] >= 1
        assert r["mig_mtcopy_demotion_fallbacks"] == r["mig_mtcopy_demotion_folios"]
    elif migrator == "dcbm":
        assert_series_counted(r, migrator, PAGES)


@pytest.mark.parametrize("migrator", ["mtcopy", "dcbm"])
@pytest.mark.parametrize("workload", ["move-pages", "migrate-pages"])
def test_patched_concurrent_writers_with_each_migrator(patched_log, workload, migrator):
    r = trial(patched_log, workload=workload, access="write", access_threads=2, **migrator_kw(migrator))
    assert r["verified"] and r["access_bad_pages"] == 0 and r["pages_placed"] == PAGES
    assert_series_counted(r, migrator, PAGES)


@pytest.mark.parametrize("workload", MOVERS)
def test_patched_a_reason_left_out_of_reasons_takes_the_serial_path(patched_log, workload):
    """``reasons`` without the workload's reason: its migrations are not batched, so the
    offload migrator copies nothing (the counters show it) — and with it, they are."""
    from workbench.catalogue import workloads
    reason = workloads.get(workload).reason
    if sysfs(patched_log, [f"{MM}/mtcopy/reasons"]).get(f"{MM}/mtcopy/reasons") is not None:
        return v3_reasons_of_the_migrator(patched_log, workload)
    names = sysfs(patched_log, [f"{MM}/reasons"])[f"{MM}/reasons"].replace("[", "").replace("]", "").split()
    others = ",".join(n for n in names if n != reason)
    excluded = trial(patched_log, workload=workload, settings={f"{MM}/reasons": others}, **migrator_kw("mtcopy"))
    assert excluded["verified"] and excluded["pages_placed"] == PAGES
    # the shared VM migrates a few folios of its own meanwhile (kcompactd after earlier tests):
    # mtcopy may count those, each under its own reason, and none under the excluded one
    background = {r: excluded.get(f"mig_mtcopy_{r}_folios", 0) for r in REASONS if r != reason}
    assert excluded.get("reason_folios", 0) == 0, excluded
    assert excluded["mig_mtcopy_folios"] == sum(background.values()) < PAGES, background
    assert excluded[f"trace_{reason}_succeeded"] >= PAGES            # the kernel still moved them, serially
    included = trial(patched_log, workload=workload, settings={f"{MM}/reasons": reason}, **migrator_kw("mtcopy"))
    assert included["verified"] and included["mig_mtcopy_folios"] >= PAGES
    assert sysfs(patched_log, [f"{MM}/reasons"])[f"{MM}/reasons"].count("[") == len(names)   # restored: all


def v3_reasons_of_the_migrator(target, workload):
    """Series v3: each migrator has its own ``reasons``, in the kernel's names (0002).
    Without the workload's reason mtcopy is offered none of its batches (each counted as
    not offered, the kernel moving them itself); with it, every folio."""
    from workbench.catalogue import workloads
    from workbench.agent.migrators.series_v3 import REASON_NAMES
    w = workloads.get(workload)
    kernel_name = next((k for k, v in REASON_NAMES.items() if v == w.reason), w.reason)
    path = f"{MM}/mtcopy/reasons"
    before = sysfs(target, [path])[path]
    other = "demotion" if kernel_name != "demotion" else "syscall_or_cpuset"
    excluded = trial(target, workload=workload, settings={path: other}, **migrator_kw("mtcopy"))
    assert excluded["verified"] and excluded["pages_placed"] == PAGES
    assert excluded.get("reason_folios", 0) == 0, excluded
    assert excluded.get(f"mig_mtcopy_{w.reason}_not_offered", 0) >= 1, excluded
    assert excluded[f"trace_{w.reason}_succeeded"] >= PAGES            # the kernel still moved them
    included = trial(target, workload=workload, settings={path: kernel_name}, **migrator_kw("mtcopy"))
    assert included["verified"] and included["reason_folios"] >= PAGES, included
    assert sysfs(target, [path])[path] == before                        # restored
