"""The cost benchmark's arithmetic and plumbing against a fake icount target (the real
one is `workbench bench cost`, a benchmark that prints ratios, never a test)."""

import pytest

from workbench.errors import WorkbenchError
from workbench.host.running import store
from workbench.host.studies import cost
from workbench.testing.fake_icount import IcountFake
from workbench.testing.fake_target import FakeTarget


def test_cost_per_folio_ratios_and_no_difference(tmp_path):
    made = []

    def factory(kernel, boot):
        made.append((kernel, boot))
        return IcountFake(kernel, boot)
    df = cost.measure(folio_sizes=[4096, 2 << 20], size=4 << 20, repeats=3, boots=2, batch_sizes=(1, 512),
                      root=tmp_path, progress=False, target_factory=factory)
    assert made == [("vanilla", 0), ("patched", 0), ("vanilla", 1), ("patched", 1)]
    s = cost.summarize(df)
    rows = {(r["config"], r["folio"]): r for r in s["rows"]}
    assert rows[("vanilla", "4K")]["cost_ns_per_folio"] == pytest.approx(10_000 * 1.00025, rel=1e-3)
    same = rows[("patched, defaults", "4K")]
    assert same["ratio"] == pytest.approx(1.0) and same["difference"] == "no difference" and same["goal_met"]
    b1 = rows[("batched kernel copy, batch 1", "2M")]
    assert b1["ratio"] == pytest.approx(1.5, rel=1e-3) and b1["difference"] == "+50.00%"
    assert rows[("batched kernel copy, batch 512", "4K")]["goal_met"]
    assert rows[("mtcopy, 2 threads", "4K")]["ratio"] == pytest.approx(2.2, rel=1e-3)
    # spread: repeats 0..2 differ by 0.04%, boots by 0.01%
    assert same["spread_repeats"] == pytest.approx(0.0004, rel=0.05)
    assert same["spread_boots"] == pytest.approx(0.0001, rel=0.05)
    lat = {(r["batch_size"], r["folio"]): r for r in s["latency"]}
    assert lat[(512, "4K")]["first_folio_us"] == pytest.approx(512.0)
    text = cost.format_text(s)
    assert "instruction-time (icount): deterministic path cost, not speed" in text
    assert "goal within 0.5%: met" in text and "first-folio latency" in text and "F = 0.500" in text
    assert s["verified"] and s["boots"] == 2


def test_cost_refuses_a_wall_clock_target(tmp_path):
    with pytest.raises(WorkbenchError, match="needs the icount clock; target fake has wall"):
        cost.measure(folio_sizes=[4096], size=1 << 20, repeats=1, boots=1, root=tmp_path, progress=False,
                     target_factory=lambda kernel, boot: FakeTarget())


def test_bench_cost_takes_no_target(capsys):
    from workbench.host.cli import main as cli
    assert cli.main(["bench", "cost", "--target", "local"]) == 2
    assert "bench cost boots its own VMs" in capsys.readouterr().err


def test_a_series_without_a_batch_size_knob_is_measured_at_its_fixed_batch_on_its_own_trees(tmp_path):
    labels = [c.label for c in cost.configurations("fixed", channels=())]
    assert "batched kernel copy, batch 512" in labels and not any("dcbm" in label for label in labels)
    fixed = next(c for c in cost.configurations("fixed", channels=()) if c.label == "batched kernel copy, batch 512")
    assert fixed.knobs == {"batch_kernel_copy": True}        # no batch_size: the kernel's own 512
    booted = []
    df = cost.measure(folio_sizes=[4096], size=1 << 20, repeats=1, boots=1, root=tmp_path, progress=False,
                      batch_sizes="fixed", channels=(), trees=("vanilla-7.3", "v3-wip"),
                      target_factory=lambda tree, boot: booted.append(tree) or IcountFake(tree, boot))
    assert booted == ["vanilla-7.3", "v3-wip"] and set(df["config"]) >= {"vanilla", "batched kernel copy, batch 512"}
    # no batch_size knob in the records: the summary takes the batch from the label
    summary = cost.summarize(df)
    assert {r["batch_size"] for r in summary["rows"] if r["config"].startswith("batched")} == {512}
    assert [r["batch_size"] for r in summary["latency"]] == [512]


def test_a_series_without_mtcopy_or_a_batched_copy_is_measured_on_what_it_has(tmp_path, capsys):
    """RFC V6 has dcbm alone and no batching knob: its tree is measured with its defaults
    (the cost of the series on the default path) and each configuration it lacks is named,
    not failed."""
    def factory(tree, boot):
        t = IcountFake(tree, boot)
        if tree == "v6":
            t._facts_template.update(interface="RFC V6 /sys/module/dcbm/parameters", offered=["kernel", "dcbm"], migrators=["kernel", "dcbm"],
                            knobs={"threads": None, "channels": [1, 16], "batch_size": None,
                                   "batch_kernel_copy": None})
        return t
    df = cost.measure(folio_sizes=[4096], size=1 << 20, repeats=1, boots=1, root=tmp_path, progress=False,
                      batch_sizes=(512,), channels=(), trees=("vanilla-7.2", "v6"), target_factory=factory)
    assert set(df["config"]) == {"vanilla", "patched, defaults"}
    err = capsys.readouterr().err
    for label in ("mtcopy, 1 thread", "mtcopy, 2 threads", "batched kernel copy, batch 512",
                  "first-folio latency, batch 512"):
        assert f"bench cost: v6: leaving out '{label}':" in err
    assert "migrator 'mtcopy' is not offered by this kernel" in err and "has no batch size knob" in err
    s = cost.summarize(df)
    assert [r["ratio"] for r in s["rows"] if r["config"] == "patched, defaults"] == [pytest.approx(1.0)]
    # our series' goals do not bind another series: no verdict against them
    assert "goal within" not in cost.format_text(s)


def test_bench_cost_trees_must_be_two(capsys):
    from workbench.host.cli import main as cli
    assert cli.main(["bench", "cost", "--trees", "v3-wip"]) == 2
    assert "--trees 'v3-wip' must name two trees, vanilla first" in capsys.readouterr().err


@pytest.mark.parametrize("batch_trace", [True, False], ids=["tracepoints", "poller"])
def test_first_folio_latency_comes_from_the_batch_tracepoints_else_a_poller(tmp_path, batch_trace):
    configs = [c for c in cost.configurations((16,), channels=()) if c.first_folio]
    df = cost.measure(folio_sizes=[4096], size=1 << 20, repeats=2, boots=1, root=tmp_path, progress=False,
                      configs=configs, target_factory=lambda tree, boot: IcountFake(tree, boot, batch_trace))
    (lat,) = cost.summarize(df)["latency"]
    runs = sorted(p.name for p in tmp_path.iterdir() if "latency" in p.name)
    if batch_trace:      # no polling thread in the guest: the trace's figure, one run
        assert lat["by"] == "trace" and lat["first_folio_us"] == pytest.approx(700 * 16 / 1e3)
        call_ns = 10_000 * (1 + 0.5 / 16) * 256          # the fake's batched copy of 256 folios
        assert lat["call_us"] == pytest.approx(call_ns / 1e3, rel=0.01) and len(runs) == 1, runs
    else:                # a kernel without the tracepoints: a second run with the poller is kept
        assert lat["by"] == "poller" and lat["first_folio_us"] == pytest.approx(16.0)
        assert len(runs) == 2 and sum(r.rsplit("-", 1)[0].endswith("-poller") for r in runs) == 1, runs
        assert len(cost.load(root=tmp_path)) == 2, "the superseded traced run is not read again"
    assert "first-folio latency against batch size" in cost.format_text(cost.summarize(df))


def test_one_slow_trial_does_not_hide_a_small_difference():
    """The range of single trials grows with one outlier; the bootstrap interval of the
    ratio of medians does not: a steady +0.5% stays decided with a 9% slow trial among
    fifteen (what icount runs on 7.3 showed), and an equal pair holds 1."""
    import numpy as np
    from workbench.host.analysis import stats
    rng = np.random.default_rng(3)
    base = [10_000 + rng.normal(0, 5, 15) for _ in range(2)]
    new = [10_050 + rng.normal(0, 5, 15) for _ in range(2)]
    new[1][7] = 10_900                                  # one slow trial: a 9% range
    ratio, low, high = stats.ratio_interval(new, base)
    assert ratio == pytest.approx(1.005, abs=5e-4) and 1.003 < low < ratio < high < 1.007
    assert cost.verdict(ratio, low, high) == f"{ratio - 1:+.2%}"
    same = stats.ratio_interval([g + 0 for g in base], [10_000 + rng.normal(0, 5, 15) for _ in range(2)])
    assert same[1] <= 1 <= same[2] and cost.verdict(*same) == "no difference"
    # a goal is met by the whole interval, missed by all of it, else not decided
    assert cost.goal_verdict(low, high, -0.01, 0.01) is True
    assert cost.goal_verdict(low, high, -0.002, 0.002) is False
    assert cost.goal_verdict(0.999, 1.004, -0.002, 0.002) is None
    assert cost.goal_verdict(0.5, 1.004, -float("inf"), 0.005) is True      # "at most +0.5%"
    # series v3's goals are issue 19's; any other interface's are v2's
    assert cost.series_of("workbench series v3 /sys/kernel/mm/migration") == "v3"
    assert cost.series_of("workbench /sys/kernel/mm/migration") == cost.series_of("ours") == "v2"
    assert cost.goal_words(-0.002, 0.002) == "within 0.2%" and cost.goal_words(-float("inf"), 0.005) == "at most +0.5%"


def test_the_interval_carries_the_spread_between_boots():
    """Two boots whose medians differ by 1% give an interval about as wide, however many
    trials each has: a boot is the unit of repetition, not a trial."""
    from workbench.host.analysis import stats
    base = [[10_000.0] * 30, [10_100.0] * 30]
    new = [[10_050.0] * 30, [10_050.0] * 30]
    _, low, high = stats.ratio_interval(new, base)
    assert low < 0.996 and high > 1.004


def test_another_node_layout_boots_with_it_and_is_a_study_of_its_own(tmp_path, monkeypatch):
    """bench cost --nodes 1536M:0,1536M:none: one vCPU, so no other CPU's work counts in
    the icount clock; its runs stay out of the stored benchmark's reports."""
    booted = []

    def factory(kernel, boot, nodes=None):
        booted.append((kernel, nodes))
        return IcountFake(kernel, boot)
    monkeypatch.setattr(cost, "default_target_factory", factory)
    configs = [c for c in cost.configurations(latency=False) if c.label in ("vanilla", "patched, defaults")]
    df = cost.measure(folio_sizes=[4096], size=1 << 20, repeats=1, boots=1, root=tmp_path, progress=False,
                      configs=configs, nodes="1536M:0,1536M:none")
    assert booted == [("vanilla", "1536M:0,1536M:none"), ("patched", "1536M:0,1536M:none")]
    assert set(df["config"]) == {"vanilla", "patched, defaults"}
    with pytest.raises(WorkbenchError, match="no cost benchmark runs stored"):
        cost.load(root=tmp_path)       # a study: read by its ids, not in the default reports


@pytest.mark.parametrize("argv, message", [
    (["--per-patch", "--nodes", "1536M:0,1536M:none"], "--nodes does not apply to --per-patch"),
    (["--distance", "0,1=30"], "bench cost boots its own VMs; --distance does not apply (--nodes does)"),
])
def test_bench_cost_says_which_vm_options_apply(capsys, argv, message):
    from workbench.host.cli import main as cli
    assert cli.main(["bench", "cost", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_summary_of_two_lines_runs_is_refused_in_one_line(tmp_path):
    """Runs of 7.3 (vanilla-7.3, v3) and of 7.2 (vanilla-7.2, v6) stored side by side: a
    summary of both would set one line's series against the other's vanilla."""
    for trees in (("vanilla-7.3", "v3"), ("vanilla-7.2", "v6")):
        cost.measure(folio_sizes=[4096], size=1 << 20, repeats=1, boots=1, root=tmp_path, progress=False,
                     batch_sizes=(512,), channels=(), trees=trees, configs=cost.configurations((512,), channels=())[:2],
                     target_factory=lambda tree, boot: IcountFake(tree, boot))
    with pytest.raises(WorkbenchError, match=r"^the cost runs hold 2 patched trees \(v3, v6\): a ratio needs one pair"):
        cost.summarize(cost.load(None, tmp_path))
    one = [r.id for r in store.list_runs(tmp_path) if (r.manifest.get("cost") or {}).get("tree") in ("vanilla-7.2", "v6")]
    assert cost.summarize(cost.load(one, tmp_path))["verified"]
