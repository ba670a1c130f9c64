"""workbench compare on stored fixture runs: the numbers against scipy by hand, the layout,
and comparisons that must be refused."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from workbench.errors import WorkbenchError
from workbench.host.cli import main as cli
from workbench.host.analysis import compare
from workbench.testing.runs import MANIFEST, make_runs

BASE = [("kernel", None, None, None, "4K", [1.0, 1.1, 1.2]),
        ("kernel", None, None, None, "2M", [3.0, 3.2, 3.4]),
        ("mtcopy", 2, None, None, "2M", [5.0, 6.0]),
        ("mtcopy", 4, None, None, "2M", [8.0, 8.0, 8.1])]        # only in base
NEW = [("kernel", None, None, None, "4K", [1.02, 1.12, 1.18]),
       ("kernel", None, None, None, "2M", [4.0, 4.1, 4.3]),
       ("mtcopy", 2, None, None, "2M", [5.5, 6.5])]


@pytest.fixture
def two_kernels(tmp_path):
    a = make_runs(tmp_path, BASE, label="vanilla", manifest={**MANIFEST, "kernel_release": "6.12-vanilla"})
    b = make_runs(tmp_path, NEW, label="patched", manifest={**MANIFEST, "kernel_release": "6.12-patched"})
    return tmp_path, a.id, b.id


def test_numbers_are_welch_by_hand(two_kernels):
    root, a, b = two_kernels
    base, (new,) = compare.load_sides(a, [b], root=root)
    t = compare.compare(base, new)
    assert list(zip(t["migrator"], t["workers"], t["folio"])) == [("kernel", "-", "4K"), ("kernel", "-", "2M"),
                                                                  ("mtcopy", "2", "2M")]
    row = t.iloc[1]
    x, y = np.array([3.0, 3.2, 3.4]), np.array([4.0, 4.1, 4.3])
    assert row["base_mean"] == pytest.approx(x.mean()) and row["new_std"] == pytest.approx(y.std(ddof=1))
    assert row["change_pct"] == pytest.approx((y.mean() / x.mean() - 1) * 100)
    va, vb = x.var(ddof=1) / 3, y.var(ddof=1) / 3
    tval = (y.mean() - x.mean()) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
    assert row["t"] == pytest.approx(tval) and row["p"] == pytest.approx(2 * sps.t.sf(abs(tval), dof))
    assert row["significant"] and row["note"] == ""
    small = t.iloc[2]
    assert small["note"] == "n<3" and not small["significant"]
    assert not t.iloc[0]["significant"]            # 1.1 vs 1.107: noise


def test_text_layout_and_the_cli(two_kernels, capsys):
    root, a, b = two_kernels
    assert cli.main(["compare", "6.12-vanilla", "6.12-patched", "--by", "kernel_release", "--runs-dir", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("throughput (GB/s), mean of n trials; * = Welch's t-test p < 0.05; TCG: timings are "
                             "functional")
    assert out[1].split() == ["6.12-vanilla", "%change", "6.12-patched"]
    line = next(ln for ln in out if ln.rstrip().endswith("kernel 2M"))
    assert line.split()[:8] == ["3.20", "±", "6%", "+29.2%", "*", "4.13", "±", "4%"]   # ncompare: "±  6%"
    assert "(n<3: too few trials to tell)" in next(ln for ln in out if "mtcopy 2 2M" in ln)


def test_mixed_clocks_and_accelerators_are_refused(tmp_path):
    a = make_runs(tmp_path, BASE[:1], label="wall", manifest={**MANIFEST, "clock": "wall"})
    b = make_runs(tmp_path, NEW[:1], label="icount", manifest={**MANIFEST, "accelerator": "icount",
                                                                 "clock": "icount"})
    base, (new,) = compare.load_sides(a.id, [b.id], root=tmp_path)
    with pytest.raises(WorkbenchError, match=r"^this comparison mixes clocks \(icount, wall\)"):
        compare.compare(base, new)
    c = make_runs(tmp_path, NEW[:1], label="kvm", manifest={**MANIFEST, "accelerator": "kvm"})
    base, (new,) = compare.load_sides(a.id, [c.id], root=tmp_path)
    with pytest.raises(WorkbenchError, match=r"mixes accelerators \(kvm, tcg\).*--across-accelerators"):
        compare.compare(base, new)
    t = compare.compare(base, new, across_accelerators=True)
    assert compare.format_text(t, "tcg", "kvm").startswith("NOTE: across accelerators (kvm, tcg)")


def test_bad_sides_are_one_line(two_kernels, capsys):
    root, a, b = two_kernels
    for argv, msg in ((["compare", a, "nosuch"], "no run 'nosuch'"),
                      (["compare", "x", "y", "--by", "colour"], "--by 'colour' is not one of"),
                      (["compare", "6.12-vanilla", "6.13", "--by", "kernel_release"],
                       "no runs with kernel_release '6.13'; there are: 6.12-patched, 6.12-vanilla")):
        assert cli.main([*argv, "--runs-dir", str(root)]) == 2
        assert msg in capsys.readouterr().err


def test_the_report_has_the_comparison_section(two_kernels):
    from workbench.host.analysis import report
    root, a, b = two_kernels
    df = report.load(root=root)
    text = report.comparisons(df, by="kernel_release")
    assert text.splitlines()[1].split() == ["6.12-vanilla", "%change", "6.12-patched"] and "*" in text
    assert report.comparisons(df, by="target").startswith("no comparison: every run has the same target")
