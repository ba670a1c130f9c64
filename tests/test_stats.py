import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from workbench.host.analysis.stats import mean_pm_std, series_table, summarize, welch


def frame():
    rows = []
    for folio, vals in (("4K", [3.5, 3.7, 4.0]), ("2M", [10.3, 10.67, 11.04]), ("64K", [5.9])):
        rows += [{"migrator": "kernel", "folio": folio, "gbps": v} for v in vals]
    rows += [{"migrator": "mtcopy", "folio": "2M", "gbps": v} for v in (30.0, 36.0)]
    return pd.DataFrame(rows)


def test_summary_numbers():
    s = summarize(frame()).set_index(["migrator", "folio"])
    k4 = s.loc[("kernel", "4K")]
    vals = np.array([3.5, 3.7, 4.0])
    assert k4["n"] == 3
    assert k4["mean"] == pytest.approx(vals.mean())
    assert k4["std"] == pytest.approx(vals.std(ddof=1))
    assert k4["cv"] == pytest.approx(vals.std(ddof=1) / vals.mean())
    assert k4["hmean"] == pytest.approx(3 / (1 / 3.5 + 1 / 3.7 + 1 / 4.0))
    assert k4["hmean"] < k4["mean"]
    single = s.loc[("kernel", "64K")]
    assert single["n"] == 1 and math.isnan(single["std"])


def test_welch_against_hand_computation():
    a, b = [10.3, 10.67, 11.04], [30.0, 36.0, 33.0]
    r = welch(a, b)
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 3
    assert r["t"] == pytest.approx((np.mean(b) - np.mean(a)) / math.sqrt(va + vb))
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
    assert r["p"] == pytest.approx(2 * sps.t.sf(abs(r["t"]), df))
    assert r["ratio"] == pytest.approx(33.0 / np.mean(a))


def test_pm_layout():
    assert mean_pm_std(10.67, 0.36) == "10.67±0.36"
    assert mean_pm_std(5.9, float("nan")) == "5.90"
    assert mean_pm_std(float("nan"), 1.0) == "-"


def test_seed_table_layout():
    text = series_table(frame(), title="GB/s")
    lines = text.splitlines()
    assert lines[0] == "GB/s"
    assert [c.strip() for c in lines[1].split("|")][:4] == ["migrator", "4K", "64K", "2M"]
    assert set(lines[2]) == {"="}
    kernel = [c.strip() for c in lines[3].split("|")]
    assert kernel[:4] == ["kernel", "3.73±0.25", "5.90", "10.67±0.37"]
    mt = [c.strip() for c in lines[4].split("|")]
    assert mt[:4] == ["mtcopy", "-", "-", "33.00±4.24"]


def test_a_table_without_a_title_says_what_its_cells_are_from_the_record_schema():
    from workbench.host.running import record_schema
    from workbench.host.analysis import workload_view
    assert series_table(frame()).splitlines()[0] == "throughput, GB/s (mean±std)"
    assert record_schema.phrase("seconds") == "time, s" and record_schema.phrase("something_new") == "something new"
    assert workload_view.title("move-pages", value="seconds") == "move_pages() time, s (mean±std), reason syscall"
