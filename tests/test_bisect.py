"""``workbench bisect``: the search, its threshold, resuming, the one-line refusals and the
cost metric's plumbing, on a small git repository made here and a stand-in measurement
(the real one builds and boots a kernel per commit: a benchmark, never a test)."""

import hashlib
import json
import os
import random
import subprocess
import tarfile

import pytest

from workbench.errors import WorkbenchError
from workbench.host.studies import bisect
from workbench.testing.cli import one_line_error, run_cli
from workbench.testing.fake_icount import IcountFake

#: the stand-in's figure at each commit: commit 5 adds 10% of work
COSTS = [1000, 1000, 1001, 999, 1100, 1100, 1101, 1100]


#: fixed commit dates: a commit's sha, and so the stand-in's noise at it, is the same on every
#: run (with the clock's dates, the noise=0.2 case below was told apart by chance once in a while)
DATES = {"GIT_AUTHOR_DATE": "2026-12-05T10:00:00+0000", "GIT_COMMITTER_DATE": "2026-12-05T10:00:00+0000"}


def git(repo, *args):
    res = subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                         capture_output=True, text=True, check=True, env={**os.environ, **DATES})
    return res.stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """Eight commits on main, each writing the work it does into ``cost`` and touching
    ``mm/migrate.c``; commit 5 adds the cost. Returns (path, [sha of commit 1..8])."""
    repo = tmp_path / "linux"
    (repo / "mm").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    shas = []
    for i, value in enumerate(COSTS, 1):
        (repo / "cost").write_text(f"{value}\n")
        (repo / "mm" / "migrate.c").write_text(f"int migrate_{i};\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"commit {i}" + (": add work to the migration path" if i == 5 else ""))
        shas.append(git(repo, "rev-parse", "HEAD"))
    return repo, shas


def stand_in(repo, noise=0.005, calls=None):
    """A measurement of a commit: the figure in its ``cost`` file, with a reproducible
    noise of up to ``noise`` (relative) per (commit, measurement)."""
    def measure(commit, n):
        if calls is not None:
            calls.append((commit.sha, n))
        base = float(git(repo, "show", f"{commit.sha}:cost"))
        rng = random.Random(hashlib.sha256(f"{commit.sha}-{n}".encode()).digest())
        return {"value": base * (1 + rng.uniform(-noise, noise)), "note": "stand-in"}
    return measure


def test_the_bisect_finds_the_commit_that_added_the_cost(repo, tmp_path):
    path, shas = repo
    calls, said = [], []
    r = bisect.run(path, shas[0], shas[-1], stand_in(path, calls=calls), root=tmp_path / "bisect", unit="ns/folio",
                   say=said.append)
    assert r.first_bad.sha == shas[4] and r.first_bad.subject == "commit 5: add work to the migration path"
    assert r.commits == 7
    # seven commits after GOOD: three steps (ceil(log2 7)), one measurement each
    assert [s.commit.sha for s in r.steps] == [shas[3], shas[5], shas[4]]
    assert [s.verdict for s in r.steps] == ["good", "bad", "bad"]
    assert len(calls) == 3 + 3 + 3 and r.measured == 9 and r.reused == 0
    # the ends, alternately; the threshold is the midpoint of their medians
    assert [c[0] for c in calls[:6]] == [shas[0], shas[-1]] * 3
    assert r.threshold == pytest.approx(1050, abs=10) and 0 < r.spread < 10
    assert r.before.sha == shas[3] and r.first_bad_value > r.threshold > r.before_value
    text = bisect.format_text(r)
    assert f"first bad commit: {shas[4]} commit 5: add work to the migration path" in text
    assert text.count("\nstep ") == 3 and "threshold" in text and "spread" in text
    assert len(said) == 9
    # every measurement is a file of its own, written whole
    steps = sorted((tmp_path / "bisect").glob("*/steps/*.json"))
    assert len(steps) == 9 and json.loads(steps[-1].read_text())["detail"] == {"note": "stand-in"}
    about = json.loads(next((tmp_path / "bisect").glob("*/bisect.json")).read_text())
    assert about["commits"] == shas[1:] and about["good"] == shas[0]


def test_an_interrupted_bisect_resumes_without_measuring_again(repo, tmp_path):
    path, shas = repo
    calls = []
    measure = stand_in(path, calls=calls)

    def interrupted(commit, n):
        if len(calls) == 7:          # during the second step
            raise KeyboardInterrupt
        return measure(commit, n)
    with pytest.raises(KeyboardInterrupt):
        bisect.run(path, shas[0], shas[-1], interrupted, root=tmp_path)
    assert len(calls) == 7
    again = []
    r = bisect.run(path, shas[0], shas[-1], stand_in(path, calls=again), root=tmp_path)
    assert r.first_bad.sha == shas[4] and r.reused == 7 and r.measured == 2
    assert again == [(shas[5], 0), (shas[4], 0)]
    assert [s.stored for s in r.steps] == [True, False, False]
    # done: a third time measures nothing; a damaged file is set aside and measured again
    (damaged,) = [p for p in tmp_path.glob("*/steps/*.json") if json.loads(p.read_text())["commit"] == shas[3]]
    damaged.write_text('{"commit": "')
    third = []
    r = bisect.run(path, shas[0], shas[-1], stand_in(path, calls=third), root=tmp_path)
    assert third == [(shas[3], 0)] and r.first_bad.sha == shas[4]
    assert damaged.with_name(damaged.name + ".damaged").exists()
    # other parameters are another bisect, measured afresh
    fourth = []
    bisect.run(path, shas[0], shas[-1], stand_in(path, calls=fourth), root=tmp_path, params={"folio_size": 65536})
    assert len(fourth) == 9


def test_ends_that_noise_cannot_tell_apart_are_refused(repo, tmp_path):
    path, shas = repo
    with pytest.raises(WorkbenchError, match=r"^BAD [0-9a-f]{12} \(.*\) is not above GOOD [0-9a-f]{12} \(.*\) by more "
                                             r"than twice the spread of their 3 measurements each"):
        bisect.run(path, shas[0], shas[-1], stand_in(path, noise=0.2), root=tmp_path)
    with pytest.raises(WorkbenchError, match="is not above GOOD"):      # BAD cheaper than GOOD
        bisect.run(path, shas[4], shas[-1], stand_in(path, noise=0.0001), root=tmp_path)
    with pytest.raises(WorkbenchError, match=r"gave 'x', not a number"):
        bisect.run(path, shas[0], shas[-1], lambda commit, n: "x", root=tmp_path / "other")


def test_a_merge_is_one_step_of_the_first_parent_line(repo, tmp_path):
    """The cost comes in with a side branch: the merge is the first bad commit, the side
    branch's own commits are not steps, and a GOOD on the side branch is refused."""
    path, shas = repo
    git(path, "checkout", "-q", "-b", "side", shas[1])
    (path / "cost").write_text("1200\n")
    git(path, "commit", "-q", "-am", "side: the work")
    side = git(path, "rev-parse", "HEAD")
    (path / "side.c").write_text("int side;\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "side: more")
    git(path, "checkout", "-q", "main")
    git(path, "reset", "-q", "--hard", shas[3])       # main: commits 1..4, all cheap
    git(path, "merge", "-q", "--no-ff", "-X", "theirs", "-m", "merge side", "side")
    merge = git(path, "rev-parse", "HEAD")
    (path / "mm" / "migrate.c").write_text("int after;\n")
    git(path, "commit", "-q", "-am", "after the merge")
    tip = git(path, "rev-parse", "HEAD")
    r = bisect.run(path, shas[0], tip, stand_in(path), root=tmp_path)
    assert r.commits == 5 and r.first_bad.sha == merge and r.first_bad.subject == "merge side"
    assert side not in {s.commit.sha for s in r.steps}
    with pytest.raises(WorkbenchError, match=f"GOOD {side[:12]} is not on BAD {tip[:12]}'s first-parent line"):
        bisect.run(path, side, tip, stand_in(path), root=tmp_path)


def test_the_cost_metric_builds_each_commit_seeded_from_the_nearest_and_measures_it(repo, tmp_path):
    """The cost metric's plumbing with its build and its icount target injected: one
    fresh boot per measurement, the median instruction-time per folio of its trials,
    every run stored as part of the bisect study."""
    path, shas = repo
    builds, boots = [], []

    def build(tree, good, commit, seed_from):
        builds.append((commit.sha, seed_from))
        return f"bisect-{commit.short}-bench", tmp_path / "trees" / commit.short

    scale = {f"bisect-{sha[:12]}-bench": cost / 1000 for sha, cost in zip(shas, COSTS)}

    def factory(kernel, n):
        boots.append((kernel, n))
        return IcountFake(kernel, n, scale=scale[kernel])
    runs = tmp_path / "runs"
    make = bisect.cost_metric(folio_size=4096, size=1 << 20, repeats=3, runs_root=runs, progress=False,
                              build=build, target_factory=factory)
    r = bisect.run(path, shas[0], shas[-1], metric_factory=make, root=tmp_path / "bisect", params={"size": 1 << 20})
    assert r.first_bad.sha == shas[4] and r.unit == "ns/folio" and "instruction-time per 4K folio" in r.describe
    assert r.good_values[0] == pytest.approx(10_000, rel=1e-3) and r.bad_values[0] == pytest.approx(11_000, rel=1e-3)
    assert len(builds) == 5 and builds[0] == (shas[0], None), "each commit is built once, GOOD first"
    built = {sha: tmp_path / "trees" / sha[:12] for sha, _ in builds}
    assert all(seed in built.values() for _, seed in builds[1:]), "every later tree is seeded from a built one"
    assert builds[2] == (shas[3], built[shas[0]]), "the first step is seeded from the nearer end"
    assert len(boots) == 9 and boots[:2] == [(f"bisect-{shas[0][:12]}-bench", 0), (f"bisect-{shas[-1][:12]}-bench", 0)]
    from workbench.host.studies import cost
    from workbench.host.running import store
    stored = store.list_runs(runs)
    studies = [run.manifest["cost"]["study"] for run in stored if "cost" in run.manifest]
    assert len(studies) == 9 and {s["kind"] for s in studies} == {"bisect"}
    with pytest.raises(WorkbenchError, match="no cost benchmark runs stored"):
        cost.load(root=runs)         # a study's runs stay out of the benchmark's table


def test_a_commits_tree_is_goods_source_with_the_change_up_to_it(repo, tmp_path, monkeypatch):
    """What build_commit gives kernel/build.sh: GOOD's source as a tar and the whole change
    from GOOD to the commit as one patch, which git am turns into the commit's tree."""
    path, shas = repo
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    (path / "drivers").mkdir()
    (path / "drivers" / "blob.bin").write_bytes(bytes(range(256)))
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "a binary file")
    tip = bisect.resolve(path, "HEAD", "BAD")
    good = bisect.resolve(path, shas[0], "GOOD")
    asked = []
    from workbench.targets import kernel_images

    def fake_build(**kw):
        asked.append(kw)
        return tmp_path / "no-tree"
    monkeypatch.setattr(kernel_images, "build", fake_build)
    name, _ = bisect.build_commit(path, good, tip, seed_from=tmp_path / "seed")
    assert name == f"bisect-{tip.short}-bench"
    (kw,) = asked
    assert kw["name"] == f"bisect-{tip.short}" and kw["profile"] == "bench" and kw["seed_from"] == tmp_path / "seed"
    assert kw["ksrc"].endswith(f"{good.sha}.tar") and kw["series"].endswith(f"bisect-{tip.short}.patch")
    work = tmp_path / "applied"
    work.mkdir()
    with tarfile.open(kw["ksrc"]) as tar:
        tar.extractall(work, filter="data")
    tree = work / "linux"
    git(tree, "init", "-q")
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", "base")
    git(tree, "am", "-q", kw["series"])
    assert git(tree, "rev-parse", "HEAD^{tree}") == git(path, "rev-parse", "HEAD^{tree}"), "the commit's tree, exactly"
    # GOOD itself: its source, no patch
    bisect.build_commit(path, good, good)
    assert asked[-1]["vanilla"] and asked[-1]["series"] is None


# ---- the command line: one line per refusal, nothing built ------------------------------

@pytest.fixture
def no_build(monkeypatch, repo):
    """The cost metric replaced by one that fails the test if it is ever set to work on a
    line of commits: every refusal below comes before anything is built or measured."""
    monkeypatch.setitem(bisect.METRICS, "cost", lambda **kw: lambda tree, good, line: pytest.fail("a metric ran"))
    return repo


@pytest.mark.parametrize("argv,expect", [
    (["{c1}", "{c8}", "--ksrc", "/no/such/tree"], "kernel tree '/no/such/tree' does not exist"),
    (["{c1}", "{c8}", "--ksrc", "{plain}"], "kernel tree '{plain}' is not a git tree"),
    (["nope", "{c8}"], "GOOD 'nope' is not a commit of {repo}"),
    (["{c1}", "main~99"], "BAD 'main~99' is not a commit of {repo}"),
    (["{c8}", "{c1}"], "GOOD {c8s} is not an ancestor of BAD {c1s}"),
    (["{c1}", "{c1}"], "GOOD and BAD are the same commit ({c1s})"),
    (["{c1}", "{c8}", "--end-measurements", "1"], "--end-measurements 1 must be at least 2"),
    (["{c1}", "{c8}", "--metric", "speed"], "metric 'speed' is not known; allowed: cost"),
    (["{c1}", "{c8}", "--folio-size", "3K"], "folio size 3K is not a power of two"),
    (["{c1}", "{c8}", "--size", "12Q"], "size '12Q' is not a size"),
    (["{c1}", "{c8}", "--threads", "2"], "threads 2 does not apply to migrator 'kernel'"),
    (["{c1}", "{c8}", "--folio-size", "2M", "--size", "3M"], "size 3M is not a multiple of the folio size 2M"),
])
def test_bad_bisect_input_is_one_line(capsys, no_build, tmp_path, argv, expect):
    path, shas = no_build
    (tmp_path / "plain").mkdir()
    words = {"c1": shas[0], "c8": shas[-1], "c1s": shas[0][:12], "c8s": shas[-1][:12], "repo": path,
             "plain": tmp_path / "plain"}
    argv = [a.format(**words) for a in argv]
    rc, out, err = run_cli(capsys, "bisect", *argv, "--dir", str(tmp_path / "bisect"),
                           *(["--ksrc", str(path)] if "--ksrc" not in argv else []))
    assert rc == 2 and out == ""
    assert expect.format(**words) in one_line_error(err)
    assert not (tmp_path / "bisect").exists() or not list((tmp_path / "bisect").iterdir()), "nothing was stored"


def test_the_command_prints_every_step_and_the_first_bad_commit(capsys, monkeypatch, repo, tmp_path):
    path, shas = repo
    seen = {}

    def metric(**kw):
        seen.update(kw)
        return lambda tree, good, line: (stand_in(path), "ns/folio", "the stand-in's figure")
    monkeypatch.setitem(bisect.METRICS, "cost", metric)
    rc, out, err = run_cli(capsys, "bisect", shas[0], shas[-1], "--ksrc", str(path), "--dir", str(tmp_path),
                           "--batch-kernel-copy", "--folio-size", "64K")
    assert rc == 0, err
    assert seen["folio_size"] == 65536 and seen["knobs"] == {"batch_kernel_copy": True}
    assert f"first bad commit: {shas[4]} commit 5" in out and out.count("\nstep ") == 3
    assert err.count("bisect: ") == 9
    # again: everything is stored, nothing is measured, the same answer
    rc, out, err = run_cli(capsys, "bisect", shas[0], "main", "--ksrc", str(path), "--dir", str(tmp_path),
                           "--batch-kernel-copy", "--folio-size", "64K", "--json")
    doc = json.loads(out)
    assert rc == 0 and doc["first_bad"]["sha"] == shas[4] and doc["measured"] == 0 and doc["reused"] == 9
    # ends too close: refused in one line after measuring them (kept for the next try)
    monkeypatch.setitem(bisect.METRICS, "cost", lambda **kw: lambda tree, good, line: (
        stand_in(path, noise=0.3), "ns/folio", "noisy"))
    rc, out, err = run_cli(capsys, "bisect", shas[0], shas[-1], "--ksrc", str(path), "--dir", str(tmp_path / "2"))
    assert rc == 2 and "by more than twice the spread" in one_line_error(err)
