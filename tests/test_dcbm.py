"""Integration: dcbm (kernel patch 0010) on the test-only DMA engine (patch 0011) in the
patched 2-node VM. QEMU has no DMA engine; test-dma-engine's channels are kernel threads,
so the whole dcbm path runs — channel requests, sg mapping, descriptors, callbacks,
termination — and faults can be injected. The console is scanned after every test (any
WARN, BUG or oops fails it). Timings are never asserted (TCG)."""

import pytest

from workbench.protocol import TrialSpec

pytestmark = pytest.mark.vm
ROOT = "/sys/kernel/mm/migration"
ENGINE = "/sys/module/test_dma_engine/parameters"
SIZE = 8 << 20
PAGE = 4096
#: where test-dma-engine flips a byte: len/2 + 0x123 of a descriptor (one per folio up to
#: the engine's max_seg_size, 64K by default as on PCI DMA engines)
CORRUPT_AT = 0x123
MAX_SEG = 64 << 10


def run_trials(target, *specs):
    records, errors = [], []
    for event in target.run_plan({"op": "trials", "trials": [s.to_dict() for s in specs]}):
        if event["type"] == "record":
            records.append(event["record"])
        elif event["type"] == "error":
            errors.append(event["message"])
    return records, errors


def dcbm(target, folio=4096, channels=2, settings=None, size=SIZE):
    records, errors = run_trials(target, TrialSpec(folio_size=folio, total_size=size, migrator="dcbm",
                                                   channels=channels, dma_engine="test_dma_engine",
                                                   settings=settings))
    assert not errors, errors
    return records[0]


def sysfs_reads(target, paths):
    for event in target.run_plan({"op": "sysfs", "reads": paths}):
        assert event["type"] != "error", event
        if event["type"] == "sysfs":
            return event["results"]["reads"]


@pytest.mark.parametrize("folio", [4096, 64 << 10, 2 << 20], ids=["4K", "64K", "2M"])
@pytest.mark.parametrize("channels", [1, 2, 4])
def test_dcbm_moves_every_page_byte_exact(patched, channels, folio):
    r = dcbm(patched, folio=folio, channels=channels)
    nfolios = SIZE // folio
    assert r["verified"] and r["pages_moved"] == r["pages"] and r["folio_match_share"] == 1.0
    assert r["dma_engine"] == "test_dma_engine"
    assert len(r["dma_channels_held"].split()) == channels, r["dma_channels_held"]
    assert r["mig_dcbm_folios"] == nfolios and r["mig_dcbm_bytes"] == SIZE
    assert r["mig_dcbm_folios_migrated"] == nfolios, "every folio was copied by DMA"
    assert (r["mig_dcbm_fallbacks"], r["mig_dcbm_folios_failures"], r["mig_dcbm_timeouts"]) == (0, 0, 0)
    pieces = max(1, folio // MAX_SEG)
    assert r["mig_dcbm_descriptors"] == r["mig_test_dma_engine_descriptors"] == nfolios * pieces, \
        "one descriptor per folio, or per 64K piece of a larger one"
    assert 1 <= r["mig_dcbm_interrupts"] <= channels * r["mig_dcbm_batches"], "one interrupt per channel per batch"
    assert 0 < r["copy_share"] <= 1
    assert r.get("mig_kernel_folios", 0) == 0


def test_knobs_and_channels_are_given_back_after_a_run(patched):
    reads = [f"{ROOT}/migrator", f"{ROOT}/dcbm/channels", f"{ROOT}/dcbm/timeout_ms", f"{ENGINE}/fail_every"]
    dcbm(patched, channels=1)  # loads dcbm and the engine
    before = sysfs_reads(patched, reads + [f"{ROOT}/dcbm/held"])
    r = dcbm(patched, channels=4, settings={f"{ROOT}/dcbm/timeout_ms": "500", f"{ENGINE}/fail_every": "1000"})
    assert r["verified"] and len(r["dma_channels_held"].split()) == 4
    after = sysfs_reads(patched, reads + [f"{ROOT}/dcbm/held"])
    assert after == before
    assert after[f"{ROOT}/dcbm/held"].strip() == "", "dcbm holds no channel once another migrator is selected"


def fault_delta(r, kind):
    return r[f"mig_test_dma_engine_{kind}"]


@pytest.mark.parametrize("folio", [4096, 64 << 10], ids=["4K", "64K"])
def test_failed_descriptors_fall_back_to_the_cpu(patched, folio):
    r = dcbm(patched, folio=folio, channels=2, settings={f"{ENGINE}/fail_every": "7"})
    nfolios = SIZE // folio
    failed = fault_delta(r, "failed")
    assert failed == nfolios // 7 or failed == nfolios // 7 + 1, "every 7th descriptor failed"
    assert r["verified"] and r["pages_moved"] == r["pages"], "the CPU copied what the engine failed"
    assert r["mig_dcbm_fallbacks"] == r["mig_dcbm_folios_failures"] == failed
    assert r["mig_dcbm_folios_migrated"] == nfolios - failed
    assert r["mig_dcbm_timeouts"] == 0


def test_descriptors_that_never_complete_time_out_and_fall_back(patched):
    r = dcbm(patched, folio=64 << 10, channels=2,
             settings={f"{ENGINE}/hang_every": "20", f"{ROOT}/dcbm/timeout_ms": "1000"})
    hung = fault_delta(r, "hung")
    assert hung >= (SIZE // (64 << 10)) // 20
    assert r["verified"] and r["pages_moved"] == r["pages"]
    assert r["mig_dcbm_fallbacks"] == r["mig_dcbm_folios_failures"] == hung
    assert 1 <= r["mig_dcbm_timeouts"] <= r["mig_dcbm_batches"]


def test_out_of_order_completion_is_handled(patched):
    r = dcbm(patched, folio=64 << 10, channels=4, settings={f"{ENGINE}/reverse": "1"})
    assert r["verified"] and r["mig_dcbm_folios_migrated"] == SIZE // (64 << 10)
    assert r["mig_dcbm_fallbacks"] == 0


@pytest.mark.parametrize("folio", [4096, 64 << 10], ids=["4K", "64K"])
def test_silent_corruption_is_caught_by_the_verification(patched, folio):
    """The engine reports success for a copy it corrupted: dcbm cannot know, only a check
    of every byte finds it — and must say which page and offset."""
    r = dcbm(patched, folio=folio, channels=2, settings={f"{ENGINE}/corrupt_every": "30"})
    corrupted = fault_delta(r, "corrupted")
    assert corrupted >= (SIZE // folio) // 30 > 0
    assert r["mig_dcbm_folios_failures"] == 0 and r["mig_dcbm_fallbacks"] == 0, "dcbm saw nothing wrong"
    assert not r["verified"]
    assert r["verify_bad_pages"] == corrupted, "one bad page per corrupted descriptor"
    pages_per_folio = folio // PAGE
    offset = (folio // 2 + CORRUPT_AT) % PAGE
    assert r["verify_first_bad_offset"] == offset
    assert r["verify_first_bad_page"] % pages_per_folio == (folio // 2) // PAGE
    assert r["verify_expected"] != r["verify_actual"]


def test_selecting_dcbm_without_enough_channels_fails_cleanly(patched):
    dcbm(patched, channels=1)
    reads = [f"{ROOT}/migrator", f"{ROOT}/dcbm/channels", f"{ROOT}/dcbm/held"]
    before = sysfs_reads(patched, reads)
    # the engine offers 4 channels; 16 cannot be had
    records, errors = run_trials(patched, TrialSpec(folio_size=4096, total_size=1 << 20, migrator="dcbm",
                                                    channels=16, dma_engine="test_dma_engine"))
    assert not records and len(errors) == 1
    assert "No such device" in errors[0] and "no free DMA memcpy channel (it wants 16)" in errors[0]
    assert "\n" not in errors[0]
    assert sysfs_reads(patched, reads) == before


def test_unloading_dcbm_and_the_engine_during_migration(patched):
    res = None
    for event in patched.run_plan({"op": "stress", "args": {
            "seconds": 45, "size": 8 << 20, "folio_size": 64 << 10, "workers": 2, "min_switches": 5,
            "unload": ["dcbm", "test_dma_engine"]}}):
        assert event["type"] != "error", event
        if event["type"] == "stress":
            res = event["result"]
    assert res["rounds"] > 4, res
    assert res["unloaded"]["dcbm"] >= 1 and res["unloaded"]["test_dma_engine"] >= 1, res
    held = res["provider_unload_while_held"]
    assert held["refused"] >= 1 and held["succeeded"] == 0, \
        f"the engine must not go while dcbm holds its channels: {res}"
    assert res["switches"] >= 5 and res["channel_changes"] >= 5, res
    assert (res["bad_pages"], res["misplaced_pages"], res["errors"]) == (0, 0, 0), res
    assert res["restore_problems"] == []


DCBM_BAD_WRITES = [
    ("dcbm/channels", ["0", "17", "-1", "x", "\n"]),
    ("dcbm/timeout_ms", ["0", "60001", "1.5", "\n"]),
    ("stats/dcbm/folios_migrated", ["1", "x"]),
    ("stats/dcbm/folios_failures", ["7"]),
    ("stats/dcbm/timeouts", ["-1"]),
]


@pytest.mark.parametrize("knob,values", DCBM_BAD_WRITES, ids=[k for k, _ in DCBM_BAD_WRITES])
def test_bad_dcbm_writes_are_refused_and_change_nothing(patched, knob, values):
    dcbm(patched, channels=1, size=1 << 20)  # loads dcbm and the engine
    writes = [[f"{ROOT}/{knob}", v] for v in values]
    for event in patched.run_plan({"op": "sysfs", "writes": writes}):
        assert event["type"] != "error", event
        if event["type"] == "sysfs":
            for w in event["results"]["writes"]:
                assert w["error"] and "rejected" in w["error"], f"{knob} accepted {w['value']!r}"
                assert w["after"] == w["before"], f"{knob} changed after refusing {w['value']!r}"
