"""`workbench compare --all`: every measured field of two sides, its means (harmonic for
rates), its marks (Welch, exact counters, the subsample-median option), the geometric-mean
summary, the layout and the CLI."""

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from workbench.errors import WorkbenchError
from workbench.host.cli import main as cli
from workbench.host.analysis import compare_all
from workbench.host.running import store

CONTEXT = {"target": "fake", "accelerator": "tcg"}


def side(root, kernel, trials):
    """A run of ``kernel`` with one record per dict of ``trials`` (migrator kernel, 4K
    unless a trial says otherwise)."""
    run = store.create_run({**CONTEXT, "kernel_release": kernel, "label": kernel}, root)
    for i, t in enumerate(trials):
        run.append({"trial_key": f"{kernel}-{i}", "repeat": i, "seed": 1000 + i, "migrator": "kernel", "folio": "4K",
                    "folio_size": 4096, "total_bytes": 1 << 20, "verified": True, **t})
    return run


def table(tmp_path, base, new, **kw):
    side(tmp_path, "base", base)
    side(tmp_path, "new", new)
    df = store.load_runs(tmp_path)
    return compare_all.compare_all(df[df["kernel_release"] == "base"], df[df["kernel_release"] == "new"],
                                   by="kernel_release", **kw)


def row(t, field, folio="4K"):
    (r,) = t[(t["field"] == field) & (t["folio"] == folio)].to_dict("records")
    return r


def test_rates_are_averaged_harmonically_the_rest_arithmetically(tmp_path):
    t = table(tmp_path, [{"gbps": 1.0, "seconds": 1.0}, {"gbps": 2.0, "seconds": 3.0}],
              [{"gbps": 2.0, "seconds": 2.0}, {"gbps": 2.0, "seconds": 2.0}])
    gbps, secs = row(t, "gbps"), row(t, "seconds")
    assert (gbps["mean"], gbps["base"], gbps["new"]) == ("harmonic", pytest.approx(4 / 3), 2.0)
    assert gbps["change_pct"] == pytest.approx(50.0)
    assert (secs["mean"], secs["base"], secs["new"]) == ("arithmetic", 2.0, 2.0)
    assert secs["base_std"] == pytest.approx(math.sqrt(2))


def test_identifiers_are_not_fields_and_fields_zero_on_both_sides_are_counted(tmp_path):
    t = table(tmp_path, [{"gbps": 1.0, "mig_kernel_errors": 0}] * 3, [{"gbps": 1.1, "mig_kernel_errors": 0}] * 3)
    assert set(t["field"]) == {"gbps"}                   # not repeat, seed, folio_size, total_bytes
    assert t.attrs["zero_fields"] == ["mig_kernel_errors"]


def test_welch_marks_a_change_and_not_noise(tmp_path):
    base = [{"gbps": v, "seconds": s} for v, s in ((3.0, 1.0), (3.2, 1.5), (3.4, 1.2))]
    new = [{"gbps": v, "seconds": s} for v, s in ((4.0, 1.1), (4.1, 1.3), (4.3, 1.4))]
    t = table(tmp_path, base, new)
    g = row(t, "gbps")
    x, y = np.array([3.0, 3.2, 3.4]), np.array([4.0, 4.1, 4.3])
    assert g["p"] == pytest.approx(sps.ttest_ind(y, x, equal_var=False).pvalue) and g["significant"]
    assert not row(t, "seconds")["significant"]


def test_exact_counters_that_differ_are_a_change_without_a_test(tmp_path):
    # the instruction-counted clock gives the same count every repeat
    t = table(tmp_path, [{"gbps": 1.0, "mig_kernel_batches": 4}] * 3,
              [{"gbps": 1.0, "mig_kernel_batches": 8}] * 3)
    b = row(t, "mig_kernel_batches")
    assert b["significant"] and math.isnan(b["p"]) and b["change_pct"] == pytest.approx(100.0)
    assert not row(t, "gbps")["significant"]


def test_a_counter_only_the_new_side_has_is_new(tmp_path):
    t = table(tmp_path, [{"gbps": 1.0, "mig_kernel_fallbacks": 0}] * 3, [{"gbps": 1.0, "mig_kernel_fallbacks": 5}] * 3)
    assert math.isinf(row(t, "mig_kernel_fallbacks")["change_pct"])
    assert "new  *" in compare_all.format_text(t, "base", "new")


def test_subsample_median_centres_and_intervals(tmp_path):
    rng = np.random.default_rng(1)
    # one boot of many trials: the centre is the mean, the half-length z*s/sqrt(0.8 n) or so
    x = rng.normal(10.0, 1.0, 400)
    c, half = compare_all.subsample_interval([x], False, 0.05, np.random.default_rng(0))
    assert c == pytest.approx(x.mean(), abs=0.05)
    assert half == pytest.approx(1.96 * x.std(ddof=1) / math.sqrt(320), rel=0.15)
    # constant trials: no interval at all
    assert compare_all.subsample_interval([np.full(6, 3.0)], False, 0.05, rng) == (3.0, 0.0)
    # boots that disagree widen it beyond what the same trials as one boot give
    boots = [rng.normal(10.0, 0.1, 8), rng.normal(11.0, 0.1, 8)]
    _, apart = compare_all.subsample_interval(boots, False, 0.05, np.random.default_rng(0))
    _, pooled = compare_all.subsample_interval([np.concatenate(boots)], False, 0.05, np.random.default_rng(0))
    assert apart > pooled


def test_subsample_median_marks_a_shift_beyond_both_intervals(tmp_path):
    base = [{"seconds": s} for s in (10, 10.1, 9.9, 10, 10.05, 9.95, 10, 10)]
    moved = [{"seconds": s} for s in (11, 11.1, 10.9, 11, 11.05, 10.95, 11, 11)]
    t = table(tmp_path, base, moved, method="subsample-median")
    r = row(t, "seconds")
    assert r["significant"] and r["half_base"] + r["half_new"] < 1.0
    for d in tmp_path.iterdir():
        import shutil
        shutil.rmtree(d)
    noisy = [{"seconds": s} for s in (9, 11.5, 10, 12, 8.5, 10.5, 9.5, 11)]
    t = table(tmp_path, base, noisy, method="subsample-median")
    assert not row(t, "seconds")["significant"]


def test_subsample_median_needs_four_trials_a_side(tmp_path):
    t = table(tmp_path, [{"seconds": 1.0}, {"seconds": 1.1}], [{"seconds": 2.0}, {"seconds": 2.1}],
              method="subsample-median")
    r = row(t, "seconds")
    assert (r["note"], r["significant"]) == ("n<4", False)


def test_the_geometric_mean_sums_a_field_up_over_configurations(tmp_path):
    t = table(tmp_path, [{"gbps": 1.0, "folio": "4K"}] * 2 + [{"gbps": 4.0, "folio": "2M"}] * 2,
              [{"gbps": 2.0, "folio": "4K"}] * 2 + [{"gbps": 2.0, "folio": "2M"}] * 2)
    (g,) = t[t["mean"] == "geometric"].to_dict("records")
    assert g["field"] == "gbps" and g["change_pct"] == pytest.approx(0.0, abs=1e-9)   # x2 and x0.5
    text = compare_all.format_text(t, "base", "new")
    assert "geometric mean of new/base over the configurations" in text and "(gmean of 2 configurations)" in text
    assert sum("   gbps [GB/s]" in ln for ln in text.splitlines()) == 3    # its unit: per folio, and the gmean


def test_changed_only_shows_the_marked_rows_and_counts_the_rest(tmp_path):
    t = table(tmp_path, [{"gbps": 1.0, "mig_kernel_batches": 4}] * 3, [{"gbps": 1.0, "mig_kernel_batches": 8}] * 3)
    text = compare_all.format_text(t, "a-long-run-identifier-of-the-base", "new", changed_only=True)
    lines = text.splitlines()
    assert lines[1:3] == ["base: a-long-run-identifier-of-the-base", "new:  new"]
    assert any(ln.split()[-1] == "mig_kernel_batches" and "+100.0% *" in ln for ln in lines)
    assert not any(ln.split()[-1] == "gbps" for ln in lines if ln.strip())
    assert lines[-1] == "(1 rows without a significant change not shown)"


def test_the_cli_all_json_and_bad_flags(tmp_path, capsys):
    side(tmp_path, "base", [{"gbps": 1.0, "mig_kernel_batches": 4}] * 3)
    side(tmp_path, "new", [{"gbps": 1.0, "mig_kernel_batches": 8}] * 3)
    args = ["compare", "base", "new", "--by", "kernel_release", "--runs-dir", str(tmp_path)]
    assert cli.main(args + ["--all", "--json"]) == 0
    (out,) = json.loads(capsys.readouterr().out)
    assert {r["field"] for r in out["rows"]} == {"gbps", "mig_kernel_batches"} and out["zero_fields"] == []
    assert cli.main(args + ["--method", "subsample-median"]) == 2
    assert "--method subsample-median is for --all" in capsys.readouterr().err
    assert cli.main(args + ["--changed"]) == 2
    assert "--changed is for --all" in capsys.readouterr().err
    with pytest.raises(WorkbenchError, match="--method 'median' is not one of welch, subsample-median"):
        compare_all.compare_all(*[store.load_runs(tmp_path)] * 2, method="median")
