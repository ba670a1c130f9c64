"""Integration: series v3's dcbm (kernel/v3 0008) on the test DMA engine (0009, the same
engine as series v2's), in the VM test_kernel_v3.py boots (shared).

What 0008 promises and these tests hold it to, on every mode of the engine (issue 20):
  * every descriptor asks for its interrupt and reports its own result, so an engine that
    completes out of order and calls back only where asked (DSA-like) copies every folio
    with no timeout (series v2's dcbm waits out its timeout there: test_lts_line.py);
  * a folio the engine failed, aborted or never completed is copied by the CPU, and the
    framework's fallbacks are exactly those folios;
  * a channel copies one batch at a time: a killed task's batch is terminated without
    aborting another's, and a batch that finds every channel busy is declined;
  * a full ring makes a batch wait for its descriptors, then go on (no timeout);
  * the wait is bounded by the batch's size (wait_us + bytes at min_mbps), and tasks
    writing the pages meanwhile lose nothing;
  * the settings refuse bad values and ``channels`` is not changed under an active dcbm.
Unless a test says otherwise the engine is the most demanding realistic one (DSA-like:
``DEMANDING``); the mode matrix puts each mode on the kind engine, as kernel/README.md
describes the modes. Timings are never asserted (TCG)."""

import pytest

from workbench.protocol import TrialSpec
from workbench.testing.vm_plans import assert_writes_refused, contention, run_trials, sysfs, sysfs_reads

from .conftest import MAP_FAIL_WARNING, ConsoleWatch

pytestmark = pytest.mark.vm
ROOT = "/sys/kernel/mm/migration"
DCBM = f"{ROOT}/dcbm"
ENGINE = "/sys/module/test_dma_engine/parameters"
#: one batch of the default 512 base pages at every folio size, two at 4 MiB
SIZE = 4 << 20
#: the engine's descriptor limit: a 2M folio is 32 pieces
MAX_SEG = 64 << 10
FOLIOS = {"4K": 4096, "64K": 64 << 10, "2M": 2 << 20}


@pytest.fixture
def v3(v3_vm):
    watch = ConsoleWatch(v3_vm)
    yield v3_vm
    watch.check()


#: dcbm's wait bound in these tests unless one says otherwise: 1 s. The default (50 ms + 21
#: ms per 2 MiB) is for hardware; a TCG guest's engine thread copies at tens of MB/s when the
#: guest is busy (test_writers_... shows both), and these tests are about what completes.
TCG_BOUND = {f"{DCBM}/wait_us": "1000000"}


#: the engine these tests run on unless one says otherwise: the most demanding realistic
#: one, DSA-like (out of order, callbacks only where asked, a ring of 32, 8 GB/s and 1 µs a
#: descriptor); the preset is written first, a test's own fields go on top of it
DEMANDING = {f"{ENGINE}/preset": "dsa"}
KIND = {f"{ENGINE}/preset": "kind"}


def dcbm_trials(target, settings=None, folios=(4096, 64 << 10, 2 << 20), channels=(1, 2, 4), size=SIZE,
                base=DEMANDING):
    settings = {**base, **TCG_BOUND, **(settings or {})}
    specs = [TrialSpec(folio_size=f, total_size=size, migrator="dcbm", channels=c, dma_engine="test_dma_engine",
                       settings=settings) for f in folios for c in channels]
    records, errors = run_trials(target, *specs)
    assert not errors and len(records) == len(specs), errors
    return list(zip(specs, records))


def counts(r) -> str:
    keys = ("batches", "folios", "copied", "fallbacks", "errors", "declined", "descriptors", "desc_errors",
            "ring_waits", "map_errors", "timeouts", "busy")
    engine = ("descriptors", "interrupts", "failed", "aborted", "hung", "terminated", "ring_full", "reordered")
    return (f"{r['folio']} x {r['channels']} channel(s): dcbm "
            + " ".join(f"{k}={r.get('mig_dcbm_' + k)}" for k in keys) + "; engine "
            + " ".join(f"{k}={r.get('mig_test_dma_engine_' + k)}" for k in engine))


def check_accounting(r):
    """Every folio offered is copied once, by DMA or by the CPU, and byte-exact."""
    n = r["total_bytes"] // r["folio_size"]
    assert r["verified"] and r["pages_moved"] == r["pages"] and r["folio_match_share"] == 1.0, counts(r)
    assert r["mig_dcbm_folios"] == n and r["mig_dcbm_copied"] + r["mig_dcbm_fallbacks"] == n, counts(r)
    return n


# ---- every engine mode that completes what it is given: all by DMA, no timeout ------------
# (a mode: the engine's parameters for every channel; see kernel/README.md, test DMA engine)
COMPLETING_MODES = {
    "kind": {"preset": "kind"},
    "order=within": {"order": "within"},
    "order=across": {"order": "across", "job_delay_ns": "300000"},
    "callbacks=every": {"callbacks": "every"},
    # the review's case: out of order, callbacks only where asked (v2 stalls here)
    "callbacks=asked": {"order": "within", "callbacks": "asked"},
    "preset=dsa": {"preset": "dsa"},
    # rings of 32 and 8 descriptors: a 4K batch of 512 folios fills them
    "preset=ptdma": {"preset": "ptdma"},
    "ring=8": {"order": "within", "callbacks": "asked", "ring": "8"},
    "time model": {"bandwidth_mbps": "2000", "latency_ns": "2000"},
}


@pytest.mark.parametrize("mode", list(COMPLETING_MODES))
def test_every_completing_engine_mode_copies_every_folio_with_1_2_4_channels(v3, mode):
    settings = {f"{ENGINE}/{k}": v for k, v in COMPLETING_MODES[mode].items()}
    results = dcbm_trials(v3, settings, base=KIND)      # each mode on the kind engine
    for spec, r in results:
        n = check_accounting(r)
        pieces = max(1, spec.folio_size // MAX_SEG)
        assert (r["mig_dcbm_copied"], r["mig_dcbm_timeouts"], r["mig_dcbm_errors"]) == (n, 0, 0), counts(r)
        assert r["mig_dcbm_descriptors"] == r["mig_test_dma_engine_descriptors"] == n * pieces, counts(r)
        assert r["mig_dcbm_desc_errors"] == r["mig_test_dma_engine_failed"] == 0, counts(r)
        assert len(r["dma_channels_held"].split()) == spec.channels, r["dma_channels_held"]
        if mode in ("callbacks=asked", "preset=dsa"):
            assert r["mig_test_dma_engine_interrupts"] == n * pieces, "every descriptor asked for its interrupt"
        if mode == "order=within" and n * pieces > spec.channels:
            assert r["mig_test_dma_engine_reordered"] > 0, counts(r)
    if mode in ("preset=ptdma", "ring=8"):
        full = [r for _, r in results if r["mig_test_dma_engine_ring_full"]]
        assert full and all(r["mig_dcbm_ring_waits"] >= 1 for r in full), \
            "the ring filled and dcbm waited for it: " + "; ".join(counts(r) for _, r in results)


def test_dcbm_copies_everything_without_a_timeout_on_a_dsa_like_engine(v3):
    """The review's prediction for v2, answered: out-of-order completion with callbacks only
    where asked (test_lts_line.py: series v2 waits out its timeout on each batch)."""
    ((_, r),) = dcbm_trials(v3, {f"{ENGINE}/preset": "dsa"}, folios=(64 << 10,), channels=(2,))
    n = check_accounting(r)
    assert (r["mig_dcbm_copied"], r["mig_dcbm_timeouts"]) == (n, 0), counts(r)
    assert r["mig_test_dma_engine_reordered"] > 0, "descriptors completed out of order"


@pytest.mark.parametrize("wait_us", ["50000", "1000000"], ids=["default-bound", "1s-bound"])
def test_writers_touching_the_pages_during_a_slow_dma_copy_lose_nothing(v3, wait_us):
    """Two threads write the region while dcbm copies it on an engine modelled at 500 MB/s:
    they wait on the migration entries of the unmapped batch, bounded by dcbm's wait, and
    no write is lost, at 4K and 2M. With the default bound (50 ms + 21 ms for 2 MiB) a TCG
    guest may time out when the host is busy too (seen with another test run on the second
    core: every batch did): then the CPU copies, and still nothing is lost. With 1 s the
    DMA copies."""
    settings = {**DEMANDING, f"{ENGINE}/bandwidth_mbps": "500", f"{ENGINE}/latency_ns": "5000",
                f"{DCBM}/wait_us": wait_us}
    specs = [TrialSpec(folio_size=f, total_size=SIZE, migrator="dcbm", channels=2, dma_engine="test_dma_engine",
                       settings=settings, access="write", access_threads=2) for f in (4096, 2 << 20)]
    records, errors = run_trials(v3, *specs)
    assert not errors and len(records) == 2, errors
    for r in records:
        # a folio a writer holds at unmap time is retried, so the offered folios may exceed n
        assert r["verified"] and r["pages_moved"] == r["pages"], counts(r)
        assert r["access_bad_pages"] == 0 and r["access_passes"] > 0, r
        # how much DMA copies in time depends on how much CPU the guest's engine thread gets
        # beside the writers (a loaded host: 1 s ran out once too); what is not copied in
        # time is copied by the CPU, and nothing may be lost either way
        assert r["mig_dcbm_copied"] > 0 or r["mig_dcbm_timeouts"] > 0, counts(r)
        assert r["mig_dcbm_timeouts"] <= r["mig_dcbm_batches"], counts(r)
        print(f"\n[writers, wait_us {wait_us}: {counts(r)}]")


# ---- faults: exactly the folios the engine did not copy go to the CPU ----------------------
@pytest.mark.parametrize("on_error", ["continue", "abort"])
def test_failed_and_aborted_descriptors_fall_back_folio_by_folio(v3, on_error):
    settings = {f"{ENGINE}/fail_every": "7", f"{ENGINE}/on_error": on_error}
    for spec, r in dcbm_trials(v3, settings):
        n = check_accounting(r)
        bad = r["mig_test_dma_engine_failed"] + r["mig_test_dma_engine_aborted"]
        assert r["mig_test_dma_engine_failed"] > 0 and r["mig_dcbm_timeouts"] == 0, counts(r)
        assert r["mig_dcbm_desc_errors"] == bad, f"every failed or aborted descriptor called back: {counts(r)}"
        if spec.folio_size <= MAX_SEG:     # one descriptor per folio
            assert r["mig_dcbm_fallbacks"] == bad, counts(r)
        else:
            assert 0 < r["mig_dcbm_fallbacks"] <= bad, counts(r)
        assert r["mig_dcbm_errors"] >= 1 and r["mig_dcbm_copied"] == n - r["mig_dcbm_fallbacks"], counts(r)


def test_descriptors_that_never_complete_time_out_within_the_bound(v3):
    """hang_every: the wait runs out (wait_us 20 ms + 2 MiB at min_mbps), the channels
    are terminated and the CPU copies the folios whose descriptors had not completed."""
    settings = {f"{ENGINE}/hang_every": "20", f"{DCBM}/wait_us": "20000", f"{DCBM}/min_mbps": "1000"}
    for spec, r in dcbm_trials(v3, settings, folios=(4096, 64 << 10), channels=(1, 2)):
        check_accounting(r)
        hung, submitted = r["mig_test_dma_engine_hung"], r["mig_dcbm_descriptors"]
        assert hung >= 1 and 1 <= r["mig_dcbm_timeouts"] <= r["mig_dcbm_batches"], counts(r)
        # one descriptor a folio: every folio submitted and completed is copied; a hung or
        # terminated one is not; and a full ring that waits for a hung descriptor stops the
        # batch at its bound, so what was never submitted is the CPU's too
        lost = hung + r["mig_test_dma_engine_terminated"]
        assert submitted - lost <= r["mig_dcbm_copied"] <= submitted - hung, counts(r)


def test_unmappable_memory_is_left_to_the_cpu(v3_vm):
    # dma-direct WARNs once per boot of a mapping beyond the device's limit: the one
    # expected WARN (so the console is watched here, not by the v3 fixture)
    v3, watch = v3_vm, ConsoleWatch(v3_vm)
    for spec, r in dcbm_trials(v3, {f"{ENGINE}/map_fail": "1"}, channels=(1, 2)):
        n = check_accounting(r)
        assert (r["mig_dcbm_copied"], r["mig_dcbm_descriptors"], r["mig_dcbm_fallbacks"]) == (0, 0, n), counts(r)
        assert r["mig_dcbm_map_errors"] >= r["mig_dcbm_batches"], counts(r)
    watch.check(allow=MAP_FAIL_WARNING)


def test_silent_corruption_is_caught_by_the_verification(v3):
    ((_, r),) = dcbm_trials(v3, {f"{ENGINE}/corrupt_every": "30"}, folios=(4096,), channels=(2,))
    corrupted = r["mig_test_dma_engine_corrupted"]
    assert corrupted >= 1 and r["mig_dcbm_fallbacks"] == 0, "dcbm cannot see a copy the engine corrupted"
    assert not r["verified"] and r["verify_bad_pages"] == corrupted, counts(r)


# ---- channels: one batch at a time, killed tasks, full rings ---------------------------
def test_a_process_killed_in_its_dma_wait_aborts_nobody_else(v3):
    """Two processes share one slow channel; one gets SIGKILL while it waits for its
    copies. Its wait ends (killable), its channel is terminated; the other never had
    descriptors on that channel (one batch per channel), completes and verifies."""
    res = contention(v3, seconds=10, size=2 << 20, folio_size=64 << 10, workers=2, channels=1, kill=1,
                     kill_after=2.0, settings={**DEMANDING, f"{ENGINE}/bandwidth_mbps": "20",
                                               f"{ENGINE}/latency_ns": "20000",
                                               f"{DCBM}/wait_us": "1000000", f"{DCBM}/min_mbps": "10"})
    killed = res["killed"]
    assert killed["in_dma_wait"] and killed["exitcode"] == -9, killed
    (survivor,) = res["workers"]
    assert survivor["rounds"] >= 2, res
    assert (survivor["bad_pages"], survivor["misplaced_pages"], survivor["errors"]) == (0, 0, 0), survivor
    assert res["hung_workers"] == [] and res["restore_problems"] == []
    c = res["counters"]
    # a timeout is possible when the host is loaded (the engine's thread starves under TCG;
    # seen once in a rehearsal with a kernel build beside it): the CPU copies then
    print(f"\n[kill: {c}]")
    assert c["dcbm.killed"] >= 1, c
    assert c["dcbm.busy"] >= 1, f"a batch found the channel taken and was declined: {c}"
    # terminating a channel dropped no more than the descriptors of the batches that ended
    # that way: a 2 MiB batch of 64K folios is 32 descriptors (no other task's among them)
    assert c["test_dma_engine.terminated"] <= 32 * (c["dcbm.killed"] + c["dcbm.timeouts"]), c


def test_a_full_ring_under_concurrent_migrations_makes_progress(v3):
    """Three processes, two channels whose rings hold 32 descriptors, 4K folios (512
    descriptors a batch): every batch that gets a channel fills its ring and waits for it.
    The wait is bounded high here: three processes verifying on two vCPUs starve the
    engine's thread under TCG, and a timeout is not what this test is about (on a loaded
    host some batches may still run out: the CPU copies them)."""
    res = contention(v3, seconds=12, size=2 << 20, folio_size=4096, workers=3, channels=2,
                     settings={f"{ENGINE}/preset": "ptdma", f"{DCBM}/wait_us": "1000000"})
    assert len(res["workers"]) == 3 and res["hung_workers"] == [], res
    for w in res["workers"]:
        assert w["rounds"] >= 2 and (w["bad_pages"], w["misplaced_pages"], w["errors"]) == (0, 0, 0), w
    c = res["counters"]
    assert c["test_dma_engine.ring_full"] > 0 and c["dcbm.ring_waits"] > 0, c
    assert c["dcbm.copied"] > 0 and c["dcbm.timeouts"] < c["dcbm.batches"], c
    assert res["restore_problems"] == []


def test_removing_dcbm_and_the_engine_during_migration(v3):
    res = None
    for event in v3.run_plan({"op": "stress", "args": {
            "seconds": 30, "size": 8 << 20, "folio_size": 64 << 10, "workers": 2, "min_switches": 5,
            "unload": ["dcbm", "test_dma_engine"]}}):
        assert event["type"] != "error", event
        if event["type"] == "stress":
            res = event["result"]
    print(f"\n[churn: {res['switches']} switches (longest {res['select_max_s']:.2f} s), "
          f"{res['unloads']} unloads (longest {res['unload_max_s']:.2f} s), refused {res['refused']}]")
    assert res["rounds"] > 4 and res["switches"] >= 5, res
    assert res["unloaded"]["dcbm"] >= 1 and res["unloaded"]["test_dma_engine"] >= 1, res
    held = res["provider_unload_while_held"]
    assert held["refused"] >= 1 and held["succeeded"] == 0, f"the engine must not go while dcbm holds it: {res}"
    assert (res["bad_pages"], res["misplaced_pages"], res["errors"]) == (0, 0, 0), res
    assert res["restore_problems"] == []


# ---- settings ----------------------------------------------------------------------------
def test_selecting_dcbm_without_enough_channels_is_one_line_and_changes_nothing(v3):
    dcbm_trials(v3, folios=(4096,), channels=(1,), size=2 << 20)     # loads dcbm and the engine
    reads = [f"{ROOT}/migrator", f"{DCBM}/channels", f"{DCBM}/held"]
    before = sysfs_reads(v3, reads)
    records, errors = run_trials(v3, TrialSpec(folio_size=4096, total_size=2 << 20, migrator="dcbm",
                                               channels=16, dma_engine="test_dma_engine"))
    assert not records and len(errors) == 1 and "\n" not in errors[0], errors
    assert "No such device" in errors[0] and "no free DMA memcpy channel (it wants 16)" in errors[0], errors
    assert sysfs_reads(v3, reads) == before


def test_channels_are_not_changed_under_an_active_dcbm_and_given_back_after(v3):
    dcbm_trials(v3, folios=(4096,), channels=(1,), size=2 << 20)
    res = sysfs(v3, reads=[f"{DCBM}/held"], writes=[(f"{DCBM}/channels", "2"), (f"{ROOT}/migrator", "dcbm"),
                                                    (f"{DCBM}/channels", "1")])
    try:
        w = res["writes"]
        assert [x["error"] is None for x in w] == [True, True, False], w
        assert "Device or resource busy" in w[2]["error"] and w[2]["after"] == "2", w
    finally:
        back = sysfs(v3, reads=[f"{DCBM}/held"], writes=[(f"{ROOT}/migrator", "kernel"), (f"{DCBM}/channels", "1")])
    assert len(res["reads"][f"{DCBM}/held"].split()) in (0, 2)
    assert [x["error"] for x in back["writes"]] == [None, None], back
    assert back["reads"][f"{DCBM}/held"].strip() == "", "no channel held once another migrator is active"


@pytest.mark.parametrize("knob, values", [("channels", ["0", "17", "-1", "x", "\n"]),
                                          ("wait_us", ["0", "1000001", "1.5"]),
                                          ("min_mbps", ["9", "1000001", "fast"])])
def test_bad_dcbm_writes_are_refused_and_change_nothing(v3, knob, values):
    dcbm_trials(v3, folios=(4096,), channels=(1,), size=2 << 20)
    assert_writes_refused(v3, f"{DCBM}/{knob}", values)


# ---- the test engine's own settings (0009) -----------------------------------------------
ENGINE_BAD_WRITES = [
    ("preset", ["fast", "\n", "DSA "]),
    ("order", ["sideways", "2", "in order"]),
    ("callbacks", ["some", "0"]),
    ("on_error", ["retry"]),
    ("ring", ["-1", "65537", "x"]),
    ("bandwidth_mbps", ["1000001", "1.5"]),
    ("latency_ns", ["1000000001"]),
]


@pytest.mark.parametrize("knob, values", ENGINE_BAD_WRITES, ids=[k for k, _ in ENGINE_BAD_WRITES])
def test_bad_engine_mode_writes_are_refused_and_change_nothing(v3, knob, values):
    dcbm_trials(v3, folios=(4096,), channels=(1,), size=1 << 20)     # loads the engine
    assert_writes_refused(v3, f"{ENGINE}/{knob}", values)


def test_a_preset_sets_every_channel_and_a_channel_can_differ(v3):
    dcbm_trials(v3, folios=(4096,), channels=(1,), size=1 << 20)
    chan0, chan1 = "/sys/kernel/debug/test_dma_engine/dma0chan0", "/sys/kernel/debug/test_dma_engine/dma0chan1"
    try:
        res = sysfs(v3, writes=[(f"{ENGINE}/preset", "dsa"), (f"{chan0}/order", "in_order")],
                    reads=[f"{ENGINE}/preset", f"{ENGINE}/order", f"{ENGINE}/ring", f"{chan0}/order",
                           f"{chan0}/callbacks", f"{chan0}/ring", f"{chan1}/order"])
    finally:
        back = sysfs(v3, writes=[(f"{ENGINE}/preset", "kind")])
    assert all(not w["error"] for w in res["writes"]), res["writes"]
    reads = {k.rsplit("/", 2)[-2] + "/" + k.rsplit("/", 1)[-1]: v.strip() for k, v in res["reads"].items()}
    assert reads["parameters/preset"] == "dsa" and reads["parameters/order"] == "within"
    assert reads["parameters/ring"] == "32"
    assert reads["dma0chan0/order"] == "in_order", "one channel set on its own"
    assert reads["dma0chan0/callbacks"] == "asked" and reads["dma0chan0/ring"] == "32"
    assert reads["dma0chan1/order"] == "within"
    assert [w["error"] for w in back["writes"]] == [None]
