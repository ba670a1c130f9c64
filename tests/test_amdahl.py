"""Amdahl's law and the extended cost model, against the RFC V3 cover letter's numbers."""

import math

import numpy as np
import pandas as pd
import pytest

from workbench.host.analysis import amdahl, reference


def test_worked_example_dma_512_x_2M():
    # S = 7.5 for DMA copying 512 x 2M, F ~ 0.97: the cover letter predicts (and saw) 6.3x
    assert round(amdahl.speedup(0.97, 7.5), 1) == 6.3


@pytest.mark.parametrize("folio,pages,F,limit", [("4K", 512, 0.35, 1.54), ("2M", 1, 0.66, 3.0),
                                                 ("2M", 512, 0.97, 33.0)])
def test_the_copy_share_table_limits(folio, pages, F, limit):
    cs = reference.copy_share().set_index(["folio", "pages"])["copy_share"]
    assert cs[(folio, pages)] == F
    assert amdahl.max_speedup(F) == pytest.approx(limit, rel=0.02)


def test_4K_single_page_gains_nothing():
    # <1%: even an infinitely fast copy gives at most ~1%
    assert amdahl.max_speedup(0.01) < 1.011
    assert amdahl.speedup(0.01, 1e6) == pytest.approx(amdahl.max_speedup(0.01), rel=1e-5)


def test_inverses_round_trip():
    F, S = np.array([0.1, 0.35, 0.66, 0.97]), np.array([2.0, 7.5, 16.0, 100.0])
    sp = amdahl.speedup(F, S)
    assert np.allclose(amdahl.share_for(sp, S), F)
    assert np.allclose(amdahl.copy_speedup_for(sp, F), S)
    assert math.isnan(amdahl.copy_speedup_for(2.0, 0.3))        # above the 1/(1-F) limit: unreachable
    assert math.isinf(amdahl.copy_speedup_for(amdahl.max_speedup(0.5), 0.5))
    assert amdahl.speedup(0.5, 1.0) == 1.0                      # no copy speedup, no speedup
    with pytest.raises(ValueError):
        amdahl.speedup(1.2, 2.0)


def _v3():
    return reference.throughput().rename(columns={"gbps_mean": "gbps"})


@pytest.mark.parametrize("migrator", ["mtcopy", "dcbm"])
def test_extended_model_fits_each_table_better_than_pure_amdahl(migrator):
    df = _v3()
    df = df[df.migrator.isin(["kernel", migrator])]
    ext, pure = amdahl.fit_extended(df), amdahl.fit_amdahl(df)
    assert len(pure.data) == 48 and set(pure.data.migrator) == {migrator}
    # same points, both relative and absolute residuals lower, with fewer parameters
    assert ext.rms([migrator]) < pure.rms([migrator])
    assert ext.rms([migrator], relative=False) < pure.rms([migrator], relative=False)
    n_ext = 1 + len(amdahl.PER_MIGRATOR)
    n_pure = len(pure.params["F"]) + len(pure.params["s1"])
    assert n_ext < n_pure
    assert np.allclose(ext.data["residual"], ext.data["predicted"] - ext.data["observed"])


def test_extended_model_reproduces_one_dma_channel_slower_than_cpu_at_4K():
    ext = amdahl.fit_extended(_v3())
    d = ext.data.set_index(["migrator", "workers", "folio"])["predicted"]
    assert d[("dcbm", 1.0, "4K")] < d[("kernel", 1.0, "4K")]      # per-folio offload cost
    assert d[("dcbm", 1.0, "2M")] > d[("dcbm", 1.0, "4K")] * 2      # large folios still gain
    # pure Amdahl with S = s1*k cannot: one channel is either slower everywhere or nowhere
    pure = amdahl.fit_amdahl(_v3())
    p = pure.data.set_index(["migrator", "workers", "folio"])["predicted"]
    base = _v3().query("migrator == 'kernel'").set_index("folio")["gbps"]
    slower = [p[("dcbm", 1.0, f)] < base[f] for f in ("4K", "2M")]
    assert slower[0] == slower[1]
    # and the extended model saturates: 12 -> 16 threads gains far less than 1 -> 4
    gain = lambda a, b: d[("mtcopy", b, "2M")] / d[("mtcopy", a, "2M")]
    assert gain(12.0, 16.0) < 1.1 < gain(1.0, 4.0)


def test_extended_fit_recovers_known_parameters():
    truth = {"t0": 2e-5, "a": 4e-7, "p": 2e-8, "baseline": "kernel",
             "migrators": {"kernel": {"e": 0, "q": 0, "c": 1e-10, "r": 0, "g": 0},
                           "dcbm": {"e": 2e-7, "q": 0, "c": 8e-11, "r": 1.5e-11, "g": 1e-6}}}
    rows = [dict(migrator=m, workers=k, folio_size=f, total_bytes=1 << 28)
            for m, ks in (("kernel", [1]), ("dcbm", [1, 2, 4, 8, 16]))
            for k in ks for f in (4096, 16384, 65536, 262144, 1 << 20, 2 << 20)]
    df = pd.DataFrame(rows)
    df["gbps"] = amdahl.predict_gbps(truth, df)
    fit = amdahl.fit_extended(df, anchored=False)
    assert fit.rms() < 1e-3
    got = fit.params["migrators"]["dcbm"]
    assert got["e"] == pytest.approx(2e-7, rel=0.05) and got["c"] == pytest.approx(8e-11, rel=0.05)
    assert fit.params["a"] == pytest.approx(4e-7, rel=0.05)


def test_model_copy_share_grows_with_folio_size():
    ext = amdahl.fit_extended(_v3())
    F = amdahl.copy_share_model(ext.params, np.array([4096, 65536, 2 << 20]), 1 << 30)
    assert 0 < F[0] < F[1] < F[2] <= 1
