"""The fault-injection helpers of notebook 05, on records shaped as dcbm's are."""

import pandas as pd
import pytest

from workbench.host.studies import dma_offload
from workbench.errors import WorkbenchError


def records():
    base = {"folio": "4K", "pages": 2048, "pages_moved": 2048, "mig_test_dma_engine_descriptors": 2048,
            "mig_test_dma_engine_failed": 0, "mig_test_dma_engine_corrupted": 0, "mig_test_dma_engine_hung": 0,
            "mig_dcbm_folios_failures": 0, "mig_dcbm_fallbacks": 0, "mig_dcbm_timeouts": 0,
            "mig_dcbm_folios_migrated": 2048, "verify_bad_pages": 0, "verify_first_bad_page": None,
            "verify_first_bad_offset": None, "verified": True, "accelerator": "tcg"}
    fail = dict(base, fault="fail_every", every=7, mig_test_dma_engine_failed=293, mig_dcbm_folios_failures=293,
                mig_dcbm_fallbacks=293, mig_dcbm_folios_migrated=1755)
    bad = dict(base, fault="corrupt_every", every=50, mig_test_dma_engine_corrupted=41, verify_bad_pages=41,
               verify_first_bad_page=20, verify_first_bad_offset=2339, verified=False)
    rev = dict(base, fault="reverse", every=1)
    return pd.DataFrame([fail, bad, rev])


def test_fault_table_lines_up_engine_dcbm_and_verification():
    t = dma_offload.fault_table(records())
    assert list(t["fault"]) == ["fail_every=7", "corrupt_every=50", "reverse=1"]
    assert list(t["injected"]) == [293, 41, 0]
    assert list(t["cpu fallbacks"]) == [293, 0, 0]
    assert list(t["bad pages"]) == [0, 41, 0]
    assert list(t["first bad"]) == ["-", "page 20 +2339 (0x923)", "-"]
    assert list(t["verified"]) == [True, False, True]


def test_fault_figure_is_labelled_functional_under_tcg():
    fig = dma_offload.fig_faults(records())
    assert "functional, not performance" in fig.axes[0].get_title()


def test_fault_params_go_through_the_guarded_settings():
    p = dma_offload.fault_params("hang_every", 40, 4096, 8 << 20, channels=4, timeout_ms=300)
    assert p.migrator == "dcbm" and p.channels == 4 and p.dma_engine == "test_dma_engine"
    assert p.settings == {"/sys/module/test_dma_engine/parameters/hang_every": "40",
                          "/sys/kernel/mm/migration/dcbm/timeout_ms": "300"}
    with pytest.raises(WorkbenchError, match="fault 'explode' is not one of fail_every, corrupt_every"):
        dma_offload.fault_params("explode", 1, 4096, 8 << 20, channels=1)
    with pytest.raises(WorkbenchError, match="fail_every=0: N must be at least 1"):
        dma_offload.fault_params("fail_every", 0, 4096, 8 << 20, channels=1)
