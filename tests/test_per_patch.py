"""``workbench bench cost --per-patch``: the cumulative trees, each seeded from the one
before, and what each patch costs, on a fake build and a fake icount target (the real
one builds a bench tree per patch and boots each: a benchmark, never a test)."""

import json

import pytest

from workbench.errors import WorkbenchError
from workbench.host.studies import per_patch
from workbench.host.running import store
from workbench.testing.cli import one_line_error, run_cli
from workbench.testing.fake_icount import SeriesIcountFake
from workbench.testing.fake_per_patch import SUBJECTS, make_series
from workbench.testing.fake_per_patch import FakeBuilds as Builds

def test_what_each_patch_costs_from_cumulative_trees_each_seeded_from_the_one_before(tmp_path):
    series = make_series(tmp_path)
    builds, boots, said = Builds(tmp_path), [], []

    def factory(kernel, boot):
        boots.append((kernel, boot))
        return SeriesIcountFake(kernel, boot)
    df = per_patch.measure(series, folio_sizes=[4096, 2 << 20], size=4 << 20, repeats=3, boots=2,
                           root=tmp_path / "runs", progress=False, build=builds, target_factory=factory,
                           say=said.append)
    # the base, then one more patch each; each tree seeded from the tree before
    assert builds.calls == [(0, None)] + [(k, tmp_path / "trees" / f"p{k - 1:02d}") for k in range(1, 5)]
    assert boots == [(k, b) for b in (0, 1) for k in ["vanilla-bench"] + [f"v9-p{i:02d}-bench" for i in range(1, 5)]]
    s = per_patch.summarize(df)
    assert [t["index"] for t in s["trees"]] == [0, 1, 2, 3, 4] and s["series"] == "v9"
    assert s["trees"][2]["subject"] == SUBJECTS[1], "the subject, its folded line joined"
    rows = {(r["config"], r["index"], r["folio"]): r for r in s["rows"]}
    assert rows[("defaults", 0, "4K")]["cost_ns_per_folio"] == pytest.approx(10_000, rel=1e-3)
    assert rows[("defaults", 1, "4K")]["difference"] == "no difference"
    assert rows[("defaults", 2, "4K")]["delta"] == pytest.approx(0.02, rel=1e-3)
    assert rows[("defaults", 2, "2M")]["difference"] == "+2.00%"
    assert rows[("defaults", 4, "4K")]["ratio_to_base"] == pytest.approx(1.02, rel=1e-3)
    # the batched kernel copy from the patch that brings the knob: against the tree before's defaults
    assert ("batched kernel copy", 2, "4K") not in rows
    knob = rows[("batched kernel copy", 3, "4K")]
    assert knob["against"] == "previous, defaults" and knob["difference"] == "+5.00%"
    assert rows[("batched kernel copy", 4, "4K")]["against"] == "previous"
    assert rows[("batched kernel copy", 4, "4K")]["difference"] == "no difference"
    # the spread: repeats 0..2 differ by 0.04%, boots by 0.01%
    assert rows[("defaults", 2, "4K")]["spread"] == pytest.approx(0.0004, rel=0.05)
    text = per_patch.format_text(s)
    assert "instruction-time (icount): deterministic path cost, not speed" in text
    assert "what each patch of v9 costs: 5 cumulative trees" in text
    line2 = next(ln for ln in text.splitlines() if ln.startswith(" 2 mm/migrate: count every batch"))
    assert "+2.00%" in line2 and "0.04%" in line2
    assert "+5.00%*" in text and "* against the tree before with its defaults" in text
    assert " 0 base (vanilla-bench)" in text
    assert s["verified"] and s["boots"] == 2 and s["trials"] == 2 * (5 + 2) * 2 * 3
    import matplotlib
    matplotlib.use("Agg")
    fig = per_patch.fig_cost(s)
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "4K folios"
    # the study's runs are the benchmark's only when asked for by id
    from workbench.host.studies import cost
    with pytest.raises(WorkbenchError, match="no cost benchmark runs stored"):
        cost.load(root=tmp_path / "runs")
    assert len(per_patch.load(root=tmp_path / "runs")) == len(df)


def test_a_measurement_cut_short_is_resumed_without_booting_what_is_stored(tmp_path):
    series = make_series(tmp_path, with_file=False)         # *.patch by name: the same order
    runs = tmp_path / "runs"
    kw = dict(folio_sizes=[4096], size=1 << 20, repeats=2, boots=2, root=runs, progress=False)
    first = per_patch.measure(series, build=Builds(tmp_path), target_factory=SeriesIcountFake, **kw)
    boots = []

    def factory(kernel, boot):
        boots.append((kernel, boot))
        return SeriesIcountFake(kernel, boot)
    again = per_patch.measure(series, build=Builds(tmp_path), target_factory=factory, **kw)
    assert boots == [] and len(again) == len(first), "every tree and boot is stored: nothing is booted"
    # a run cut short (a record lost): only its tree and boot are measured again
    (victim,) = [r for r in store.list_runs(runs) if r.manifest.get("cost", {}).get("study", {}).get("index") == 3
                 and r.manifest["cost"]["boot"] == 1 and r.manifest["cost"]["config"] == "defaults"]
    next(victim.records_dir.glob("*.parquet")).unlink()
    third = per_patch.measure(series, build=Builds(tmp_path), target_factory=factory, **kw)
    assert boots == [("v9-p03-bench", 1)] and len(third) == len(first)
    # another size is another study, measured afresh
    per_patch.measure(series, build=Builds(tmp_path), target_factory=factory, **{**kw, "size": 2 << 20})
    assert len(boots) == 1 + 5 * 2
    assert len(per_patch.studies(runs)) == 2


def test_the_trees_kernel_build_is_asked_for(tmp_path, monkeypatch):
    """What the real build passes to kernel/build.sh: the base of a line (its vanilla
    tree, by its usual name) or of a given tree (named after the series), then a
    directory with patches 1..k for tree k, seeded from the tree before."""
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    from workbench.targets import kernel_images
    asked = []
    monkeypatch.setattr(kernel_images, "build", lambda **kw: asked.append(kw) or tmp_path / "t")
    patches = per_patch.read_series(make_series(tmp_path))
    assert per_patch.default_build(patches, 0, "v9", None, "7.3", None)[0] == "v9-p00-bench"
    assert asked[-1] == {"ksrc": None, "line": "7.3", "vanilla": True, "profile": "bench", "name": None}
    per_patch.default_build(patches, 0, "v9", "/src/linux", None, None)
    assert asked[-1]["name"] == "v9-p00" and asked[-1]["ksrc"] == "/src/linux"
    per_patch.default_build(patches, 2, "v9", None, "7.3", tmp_path / "t1")
    kw = asked[-1]
    assert kw["name"] == "v9-p02" and kw["seed_from"] == tmp_path / "t1" and kw["profile"] == "bench"
    d = tmp_path / "cache" / "kernel" / "per-patch"
    (p02,) = d.glob("v9-*/p02")
    assert kw["series"] == str(p02)
    assert (p02 / "series").read_text().split() == [p.name for p in patches[:2]]
    assert sorted(f.name for f in p02.iterdir()) == sorted([p.name for p in patches[:2]] + ["series"])


def test_a_series_that_is_not_one_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "holey").mkdir()
    (tmp_path / "holey" / "series").write_text("0001-there.patch\n")
    (tmp_path / "one.patch").write_text("From: x\n")
    for path, expect in ((tmp_path / "nope", "is not a directory; --per-patch takes a directory of patches"),
                         (tmp_path / "one.patch", "is not a directory"),
                         (tmp_path / "empty", "has no patches"),
                         (tmp_path / "holey", "names missing patch 0001-there.patch")):
        with pytest.raises(WorkbenchError, match=expect):
            per_patch.read_series(path)


@pytest.mark.parametrize("argv,expect", [
    (["--per-patch", "--trees", "a,b"], "--trees does not apply to --per-patch"),
    (["--per-patch", "--batch-sizes", "16"], "--batch-sizes does not apply to --per-patch"),
    (["--per-patch", "--line", "8.0"], "kernel line 8.0 has no series of ours yet: give --series"),
    (["--per-patch", "--line", "7.3", "--base", "{tmp}"], "--line and --base both name the base: give one"),
    (["--per-patch", "--series", "{tmp}/nope"], "series '{tmp}/nope' is not a directory"),
    (["--per-patch", "--series", "{series}", "--base", "/no/such"], "kernel source '/no/such' does not exist"),
    (["--per-patch", "--series", "{series}", "--folio-size", "2M", "--size", "3M"],
     "size 3M is not a multiple of the folio size 2M"),
    (["--per-patch", "--series", "{series}", "--boots", "0"], "--boots 0 must be at least 1"),
    (["--series", "{series}"], "--series is for --per-patch"),
    (["--line", "7.3"], "--line is for --per-patch"),
])
def test_bad_per_patch_input_is_one_line_and_builds_nothing(capsys, monkeypatch, tmp_path, argv, expect):
    from workbench.testing.fake_lines import add_line_without_series
    add_line_without_series(monkeypatch)
    monkeypatch.setattr(per_patch, "default_build", lambda *a, **k: pytest.fail("a kernel was built"))
    monkeypatch.setattr(per_patch, "default_target_factory", lambda *a, **k: pytest.fail("a VM was booted"))
    from workbench.host.studies import cost
    monkeypatch.setattr(cost, "default_target_factory", lambda *a, **k: pytest.fail("a VM was booted"))
    series = make_series(tmp_path)
    argv = [a.format(tmp=tmp_path, series=series) for a in argv]
    rc, out, err = run_cli(capsys, "bench", "cost", "--runs-dir", str(tmp_path / "runs"), *argv)
    assert rc == 2 and out == ""
    assert expect.format(tmp=tmp_path) in one_line_error(err)


def test_the_command_prints_what_each_patch_costs(capsys, monkeypatch, tmp_path):
    series = make_series(tmp_path)
    monkeypatch.setattr(per_patch, "default_build", Builds(tmp_path))
    monkeypatch.setattr(per_patch, "default_target_factory", SeriesIcountFake)
    rc, out, err = run_cli(capsys, "bench", "cost", "--per-patch", "--series", str(series), "--folio-size", "4K",
                           "--size", "1M", "--repeats", "2", "--boots", "1", "--runs-dir", str(tmp_path / "runs"))
    assert rc == 0, err
    assert "what each patch of v9 costs" in out and "+2.00%" in out and "per-patch: tree 4 of 4" in err
    rc, out, err = run_cli(capsys, "bench", "cost", "--per-patch", "--series", str(series), "--folio-size", "4K",
                           "--size", "1M", "--repeats", "2", "--boots", "1", "--runs-dir", str(tmp_path / "runs"),
                           "--json")
    doc = json.loads(out)
    assert rc == 0 and doc["series"] == "v9" and len(doc["trees"]) == 5 and "stored" in err
