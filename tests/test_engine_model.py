"""The engine-model sweep's tables (workbench/host/studies/engine_model.py), on records made up
for the purpose: no VM. The sweep itself runs in notebook 05 under the icount clock."""

import pandas as pd
import pytest

from workbench.errors import WorkbenchError
from workbench.host.studies import engine_model


def records():
    rows = []
    for size, kernel_s in ((4096, 1.0), (2 << 20, 1.0)):
        rows += [{"migrator": "kernel", "folio_size": size, "seconds": kernel_s, "verified": True,
                  "model_bandwidth_mbps": float("nan"), "model_latency_ns": float("nan")}] * 2
    # 4K: dcbm never wins; 2M: it wins from 4000 MB/s, but at 16000 the model did not hold
    for size, points in ((4096, {1000: 3.0, 4000: 2.0, 16000: 1.5}), (2 << 20, {1000: 1.4, 4000: 0.9, 16000: 0.5})):
        for bw, s in points.items():
            late = 0.2e9 if (size, bw) == (2 << 20, 16000) else 0
            rows += [{"migrator": "dcbm", "folio_size": size, "seconds": s, "verified": True,
                      "mig_dcbm_fallbacks": 0, "mig_test_dma_engine_late_ns": late,
                      "model_bandwidth_mbps": bw, "model_latency_ns": 1000}] * 2
    return pd.DataFrame(rows)


def test_the_table_divides_dcbm_by_the_kernel_copy_and_says_where_the_model_held():
    t = engine_model.crossover_table(records())
    row = t[(t["folio"] == "2M") & (t["model_bandwidth_mbps"] == 4000)].iloc[0]
    assert row["dcbm_over_kernel"] == pytest.approx(0.9) and bool(row["model_held"])
    late = t[(t["folio"] == "2M") & (t["model_bandwidth_mbps"] == 16000)].iloc[0]
    assert not late["model_held"] and late["late_share"] == pytest.approx(0.4)


def test_the_crossover_is_the_lowest_bandwidth_that_wins_with_the_model_holding():
    c = engine_model.crossover(engine_model.crossover_table(records())).set_index("folio")
    assert c.loc["2M", "wins_from_mbps"] == 4000
    assert c.loc["4K", "wins_from_mbps"] is None or pd.isna(c.loc["4K", "wins_from_mbps"])


@pytest.mark.parametrize("bws,lats,message", [
    ([0], [1000], "model bandwidth 0 MB/s: allowed an integer from 1 to 1000000"),
    ([2000], [-5], "model latency -5 ns: allowed an integer from 0 to 1000000000"),
    ([], [1000], "needs at least one bandwidth and one latency"),
])
def test_bad_model_points_are_one_line_errors(bws, lats, message):
    with pytest.raises(WorkbenchError, match=message.replace("(", r"\(")) as err:
        engine_model.sweep(None, [4096], 1 << 20, bws, lats)
    assert "\n" not in str(err.value)


def test_a_table_without_the_kernel_copy_is_refused():
    df = records()
    with pytest.raises(WorkbenchError, match="needs both the kernel copy and dcbm runs"):
        engine_model.crossover_table(df[df["migrator"] == "dcbm"])
