"""Integration: the LTS line, series v2 on Linux 6.12 (kernel/patches), frozen.

All new kernel work is series v3 on the default line (kernel/v3 on 7.3: test_kernel_v3*.py,
and every ``patched`` test). v2 stays buildable (``workbench kernel build --line 6.12``,
named ``patched-6.12``) and is held to one smoke test: it boots, the workbench recognises
its interface, and each of its migrators (the kernel's batched copy, mtcopy with two
threads, dcbm on the test DMA engine) moves every page byte-exact at 4K and 2M with its
counters showing that it copied. The second test keeps the evidence v3's dcbm was
rewritten for: v2's dcbm waits out its timeout on an engine that completes out of order
and calls back only where asked (test_kernel_v3_dcbm.py passes the same case).
Timings are never asserted (TCG)."""

import pytest

from workbench.catalogue.migrators import DCBM, TEST_ENGINE_PARAMS as ENGINE
from workbench.protocol import TrialSpec
from workbench.testing.vm_plans import run_trials

from .conftest import ConsoleWatch

pytestmark = pytest.mark.vm
SIZE = 4 << 20


def test_series_v2_on_6_12_boots_and_every_migrator_moves_every_page(lts_vm):
    watch = ConsoleWatch(lts_vm)
    facts = lts_vm.facts()
    assert facts["kernel_release"].startswith("6.12."), facts["kernel_release"]
    assert facts["interface"] == "workbench /sys/kernel/mm/migration", facts["interface"]  # series v2's
    assert facts["migrators"][0] == "kernel" and {"mtcopy", "dcbm"} <= set(facts["offered"]), facts["offered"]
    specs = []
    for folio in (4096, 2 << 20):
        specs += [TrialSpec(folio_size=folio, total_size=SIZE, batch_kernel_copy=True),
                  TrialSpec(folio_size=folio, total_size=SIZE, migrator="mtcopy", threads=2),
                  TrialSpec(folio_size=folio, total_size=SIZE, migrator="dcbm", channels=2,
                            dma_engine="test_dma_engine", settings={f"{ENGINE}/preset": "kind"})]
    records, errors = run_trials(lts_vm, *specs)
    assert not errors and len(records) == len(specs), errors
    for spec, r in zip(specs, records):
        migrator = spec.migrator or "kernel"
        what = f"{migrator} at {spec.folio_size >> 10}K"
        n = SIZE // spec.folio_size
        assert r["verified"] and r["pages_moved"] == r["pages"] and r["folio_match_share"] == 1.0, what
        assert r[f"mig_{migrator}_folios"] == n and r[f"mig_{migrator}_bytes"] == SIZE, what
        if migrator == "mtcopy":
            assert r["mig_mtcopy_cpu_ns"] > 0, f"{what}: the helper threads' copy time is counted"
        if migrator == "dcbm":
            assert r["mig_dcbm_folios_migrated"] == n and r["mig_dcbm_timeouts"] == 0, f"{what}: all by DMA"
            assert r["mig_test_dma_engine_descriptors"] >= n, what
    watch.check()


def test_v2_dcbm_waits_out_its_timeout_on_an_engine_that_calls_back_only_where_asked(lts_vm):
    """The review's prediction for DSA, reproduced on v2: dcbm asks for an interrupt on each
    chunk's last descriptor and counts every descriptor's callback, so on an engine that
    calls back only where asked each batch waits for timeout_ms, then the CPU copies it."""
    watch = ConsoleWatch(lts_vm)
    settings = {f"{ENGINE}/order": "within", f"{ENGINE}/callbacks": "asked", f"{DCBM}/timeout_ms": "200"}
    records, errors = run_trials(lts_vm, TrialSpec(folio_size=64 << 10, total_size=SIZE, migrator="dcbm",
                                                   channels=2, dma_engine="test_dma_engine", settings=settings))
    assert not errors, errors
    r = records[0]
    assert r["verified"] and r["pages_moved"] == r["pages"]
    assert r["mig_dcbm_timeouts"] == r["mig_dcbm_batches"] >= 1, "every batch waited for its timeout"
    assert r["mig_test_dma_engine_interrupts"] >= 1, "the engine did call back where asked"
    assert r["mig_dcbm_fallbacks"] >= SIZE // (64 << 10) - 2 * r["mig_dcbm_batches"]
    watch.check()
