"""``workbench bisect GOOD BAD --metric cost``: the commit of a kernel branch that added a cost.

The commits between GOOD and BAD are BAD's first-parent line back to GOOD (a merge is one
step, as ``git bisect --first-parent`` takes it). GOOD and BAD are measured first, each
``ends`` times (default 3): their medians and the *spread*, the largest distance of any of
those measurements from its own end's median, give the threshold, the midpoint between
the two medians. A commit whose one measurement is above it is bad. So that the ends'
own measurements fall on their side of it, BAD's median must be above GOOD's by more
than twice the spread, else the bisect is refused in one line (nothing to find at this
noise: measure the ends more often, or a larger effect). Then a binary search over the
line, one measurement per step, finds the first bad commit in ceil(log2(commits)) steps.

Every measurement is stored as it lands, one JSON file per measurement written whole
(a temporary name, then renamed, as the store's records), under
``data/bisect/<GOOD>-<BAD>-<metric>-<hash of the parameters>/``: the same command again
resumes an interrupted bisect, taking what is stored instead of measuring it again.

How a commit is measured is a function ``measure(commit, n) -> value`` (or a dict with
``value`` and whatever else is worth keeping), ``n`` counting that commit's measurements
from 0; the tests give a stand-in. The ``cost`` metric (:func:`cost_metric`) builds the
tree at the commit with kernel/build.sh in the bench profile and measures the icount
cost benchmark's instruction-time per folio on a fresh boot of it
(:func:`workbench.host.studies.cost.measure_tree`): the median of ``repeats`` trials.

The tree of a commit is GOOD's source (``git archive``, once, into the cache) with the
whole change from GOOD to that commit (``git diff --binary``, merges included) applied as
one patch, named ``bisect-<commit>``: all the trees of one bisect are then of one source,
so each is seeded from the built tree of the nearest commit and only what differs is
compiled (a full bench build of a 7.3 tree is about 9 minutes on two cores; a seeded one
a minute or two). As for any series, the Kconfig options that the change adds and that
have a prompt are turned on (kernel/offload-options.py), in every tree of the bisect alike.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ... import paths
from ...errors import WorkbenchError
from ..running import store

#: how often GOOD and BAD are each measured by default (their spread needs two at least)
ENDS = 3


def bisect_dir() -> Path:
    """Where bisects keep their measurements (``$WORKBENCH_BISECT``, default data/bisect)."""
    return Path(os.environ.get("WORKBENCH_BISECT", paths.REPO / "data" / "bisect"))


# ---- the git tree --------------------------------------------------------------------

@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str = ""

    @property
    def short(self) -> str:
        return self.sha[:12]


def _git(tree: Path, *args: str, binary: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=not binary)


def git_tree(path) -> Path:
    """The git tree ``--ksrc`` names (a work tree or a bare repository)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise WorkbenchError(f"kernel tree {str(path)!r} does not exist; --ksrc takes a git tree of the branch "
                             "to bisect")
    if _git(p, "rev-parse", "--git-dir").returncode != 0:
        raise WorkbenchError(f"kernel tree {str(path)!r} is not a git tree; --ksrc takes a git tree of the branch "
                             "to bisect (a work tree or a bare repository)")
    return p.resolve()


def resolve(tree: Path, rev: str, role: str) -> Commit:
    """``rev`` (a sha, branch, tag, ``HEAD~3``) as a commit of ``tree``; ``role`` is GOOD or BAD."""
    if not rev or rev.startswith("-"):
        raise WorkbenchError(f"{role} {rev!r} is not a commit of {tree}")
    res = _git(tree, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    if res.returncode != 0:
        raise WorkbenchError(f"{role} {rev!r} is not a commit of {tree}")
    sha = res.stdout.strip()
    return Commit(sha, _git(tree, "log", "-1", "--format=%s", sha).stdout.strip())


def first_parent_line(tree: Path, good: Commit, bad: Commit) -> list[Commit]:
    """The commits after GOOD up to BAD on BAD's first-parent line, oldest first (BAD last)."""
    if good.sha == bad.sha:
        raise WorkbenchError(f"GOOD and BAD are the same commit ({good.short}): there is nothing between them "
                             "to bisect")
    if _git(tree, "merge-base", "--is-ancestor", good.sha, bad.sha).returncode != 0:
        raise WorkbenchError(f"GOOD {good.short} is not an ancestor of BAD {bad.short}: a bisect looks for the "
                             "first bad commit after GOOD on BAD's history (were GOOD and BAD swapped?)")
    res = _git(tree, "log", "--first-parent", "--reverse", "--format=%H%x00%P%x00%s", f"{good.sha}..{bad.sha}")
    if res.returncode != 0:
        raise WorkbenchError(f"git log {good.short}..{bad.short} failed in {tree}: "
                             f"{(res.stderr.strip().splitlines() or ['?'])[-1]}")
    line, parents = [], []
    for row in res.stdout.splitlines():
        sha, parent, subject = row.split("\x00", 2)
        line.append(Commit(sha, subject))
        parents.append(parent.split()[0] if parent else "")
    if not line or parents[0] != good.sha:
        raise WorkbenchError(f"GOOD {good.short} is not on BAD {bad.short}'s first-parent line (it came in through "
                             "a merge): give a GOOD on that line, e.g. the merge's first parent")
    return line


# ---- the stored measurements ---------------------------------------------------------

class Study:
    """One bisect's directory: ``bisect.json`` (what is bisected, how) and ``steps/``, one
    file per measurement, each written whole."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.steps_dir = self.dir / "steps"

    @classmethod
    def open(cls, root: Path | None, about: dict, notes: dict | None = None) -> "Study":
        """The study of ``about`` (tree, GOOD, BAD, metric, parameters: what keys it), made
        if new, with ``notes`` (how the metric describes itself) beside them."""
        key = hashlib.sha256(json.dumps(about, sort_keys=True, default=str).encode()).hexdigest()[:8]
        study = cls(Path(root or bisect_dir()) / f"{about['good'][:12]}-{about['bad'][:12]}-{about['metric']}-{key}")
        study.steps_dir.mkdir(parents=True, exist_ok=True)
        if not (study.dir / "bisect.json").exists():
            store.atomic_write(study.dir / "bisect.json", json.dumps({**about, **(notes or {}), "started": time.strftime(
                "%Y-%m-%dT%H:%M:%S%z")}, indent=1, default=str))
        return study

    def measurements(self) -> dict[tuple[str, int], dict]:
        """Every stored measurement by (commit, n); a file that cannot be read is moved
        aside (its measurement is taken again) with one line on stderr."""
        from ..running import store
        out = {}
        for path in sorted(self.steps_dir.glob("*.json")):
            try:
                doc = store.read_json(path, "bisect step")
                out[(doc["commit"], int(doc["n"]))] = doc
            except (store.DamagedFile, KeyError, TypeError, ValueError) as exc:
                moved = store.move_aside(path)
                sys.stderr.write(f"bisect: {getattr(exc, 'damage', path)}; moved aside to {moved.name}, "
                                 "measured again\n")
        return out

    def add(self, doc: dict) -> Path:
        n = len(list(self.steps_dir.glob("*.json")))
        path = self.steps_dir / f"{n:05d}-{doc['commit'][:12]}-m{doc['n']}.json"
        store.atomic_write(path, json.dumps(doc, indent=1, default=str))
        return path


# ---- the search ----------------------------------------------------------------------

@dataclass
class Step:
    commit: Commit
    position: int            # 1..len(line): where on the line from GOOD (0) to BAD
    value: float
    verdict: str             # good | bad
    close: bool              # within the spread of the threshold: the least certain verdicts
    stored: bool             # taken from an earlier invocation, not measured now


@dataclass
class Result:
    tree: str
    metric: str
    unit: str
    describe: str
    good: Commit
    bad: Commit
    commits: int             # on the line after GOOD, BAD included
    good_values: list[float]
    bad_values: list[float]
    spread: float
    threshold: float
    steps: list[Step] = field(default_factory=list)
    first_bad: Commit | None = None
    first_bad_value: float | None = None
    before_value: float | None = None      # the measurement of the commit before it (GOOD's median if GOOD)
    before: Commit | None = None
    directory: str = ""
    measured: int = 0        # measurements taken by this invocation
    reused: int = 0          # measurements found stored

    def to_dict(self) -> dict:
        return asdict(self)


Measure = Callable[[Commit, int], "float | dict"]


def _number(got, commit: Commit) -> tuple[float, dict]:
    detail = dict(got) if isinstance(got, dict) else {}
    value = detail.pop("value", None) if isinstance(got, dict) else got
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise WorkbenchError(f"the measurement of {commit.short} gave {got!r}, not a number")
    return value, detail


def run(tree, good: str, bad: str, measure: Measure | None = None, *, metric: str = "cost",
        params: dict | None = None, ends: int = ENDS, root: Path | None = None, unit: str = "",
        describe: str = "", say: Callable[[str], None] | None = None,
        metric_factory: Callable | None = None) -> Result:
    """Bisect ``good``..``bad`` of the git tree ``tree`` with ``measure`` (or the one
    ``metric_factory(tree, good, line)`` makes, once the line is known: the cost metric's
    builds need it); ``params`` are what else makes two bisects different (they key the
    stored measurements). ``say`` hears each measurement as it lands."""
    say = say or (lambda text: None)
    if ends < 2:
        raise WorkbenchError(f"--end-measurements {ends} must be at least 2: the spread needs two measurements "
                             "of each end")
    tree = git_tree(tree)
    g, b = resolve(tree, good, "GOOD"), resolve(tree, bad, "BAD")
    line = [g] + first_parent_line(tree, g, b)
    if measure is None:
        measure, unit, describe = metric_factory(tree, g, line)
    study = Study.open(root, {"tree": str(tree), "good": g.sha, "bad": b.sha, "metric": metric,
                              "params": params or {}, "ends": ends, "commits": [c.sha for c in line[1:]]},
                       {"unit": unit, "describe": describe})
    stored = study.measurements()
    result = Result(str(tree), metric, unit, describe, g, b, len(line) - 1, [], [], 0.0, 0.0,
                    directory=str(study.dir))

    def which(commit: Commit, role: str, n: int) -> str:
        return f" (measurement {n + 1} of {ends})" if role != "step" else f" {commit.subject[:50]!r}"

    def value(commit: Commit, n: int, role: str) -> tuple[float, bool]:
        doc = stored.get((commit.sha, n))
        if doc is not None:
            result.reused += 1
            say(f"{role} {commit.short}{which(commit, role, n)}: {doc['value']:.6g} {unit} (stored)")
            return float(doc["value"]), True
        v, detail = _number(measure(commit, n), commit)
        study.add({"commit": commit.sha, "subject": commit.subject, "n": n, "role": role, "value": v,
                   "unit": unit, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **({"detail": detail} if detail else {})})
        result.measured += 1
        say(f"{role} {commit.short}{which(commit, role, n)}: {v:.6g} {unit}")
        return v, False

    for n in range(ends):      # alternately, so that a drift of the machine touches both ends alike
        result.good_values.append(value(g, n, "GOOD")[0])
        result.bad_values.append(value(b, n, "BAD")[0])
    g_med, b_med = statistics.median(result.good_values), statistics.median(result.bad_values)
    result.spread = max([abs(v - g_med) for v in result.good_values] + [abs(v - b_med) for v in result.bad_values])
    result.threshold = (g_med + b_med) / 2
    if b_med - g_med <= 2 * result.spread:
        raise WorkbenchError(
            f"BAD {b.short} ({b_med:.6g}{' ' + unit if unit else ''}) is not above GOOD {g.short} ({g_med:.6g}) "
            "by more than twice "
            f"the spread of their {ends} measurements each ({result.spread:.6g}): no threshold separates them; "
            f"measure the ends more often (--end-measurements) or bisect a larger effect")
    lo, hi = 0, len(line) - 1
    known = {0: g_med, hi: b_med}
    while hi - lo > 1:
        mid = (lo + hi) // 2
        v, was_stored = value(line[mid], 0, "step")
        known[mid] = v
        verdict = "bad" if v > result.threshold else "good"
        result.steps.append(Step(line[mid], mid, v, verdict, abs(v - result.threshold) < result.spread, was_stored))
        lo, hi = (lo, mid) if verdict == "bad" else (mid, hi)
    result.first_bad, result.first_bad_value = line[hi], known[hi]
    result.before, result.before_value = line[lo], known[lo]
    return result


def format_text(r: Result) -> str:
    med_g, med_b = statistics.median(r.good_values), statistics.median(r.bad_values)
    rel = (lambda x: f" ({x / med_g:.2%} of GOOD)") if med_g else (lambda x: "")
    figures = ", ".join
    lines = [f"bisect of {r.commits} commit{'s' if r.commits != 1 else ''} (first-parent line) after "
             f"{r.good.short} up to {r.bad.short} in {r.tree}",
             f"metric {r.metric}: {r.describe or r.unit}",
             f"GOOD {r.good.short}: {figures(f'{v:.6g}' for v in r.good_values)} {r.unit} (median {med_g:.6g})",
             f"BAD  {r.bad.short}: {figures(f'{v:.6g}' for v in r.bad_values)} {r.unit} (median {med_b:.6g}, "
             f"{(med_b - med_g) / med_g:+.2%})" if med_g else
             f"BAD  {r.bad.short}: {figures(f'{v:.6g}' for v in r.bad_values)} {r.unit} (median {med_b:.6g})",
             f"spread {r.spread:.6g}{rel(r.spread)}: the largest distance of an end's measurement from its median; "
             f"threshold {r.threshold:.6g} {r.unit}, the midpoint: above it is bad",
             ""]
    width = len(str(r.commits))
    for i, s in enumerate(r.steps, 1):
        lines.append(f"step {i}: {s.position:>{width}}/{r.commits} {s.commit.short} {s.value:>12.6g} {r.unit}  "
                     f"{s.verdict:<4}{' (within the spread of the threshold)' if s.close else ''}"
                     f"{' [stored]' if s.stored else ''}  {s.commit.subject}")
    if not r.steps:
        lines.append("no step: BAD is GOOD's next commit on the line")
    fb = r.first_bad
    change = ((r.first_bad_value - r.before_value) / r.before_value) if r.before_value else None
    lines += ["", f"first bad commit: {fb.sha} {fb.subject}",
              f"  {r.first_bad_value:.6g} {r.unit} against {r.before_value:.6g} at {r.before.short}"
              + (f" ({change:+.2%})" if change is not None else "")
              + (" (medians of the ends)" if not r.steps else ""),
              f"{len(r.steps)} step{'s' if len(r.steps) != 1 else ''} after {2 * len(r.good_values)} end measurements; "
              f"{r.measured} measured now, {r.reused} stored; kept in {r.directory} (the same command resumes it)"]
    return "\n".join(lines)


# ---- the cost metric: build the commit's tree, measure instruction-time per folio ------

def _archive(tree: Path, good: Commit) -> Path:
    """GOOD's source as a tar in the cache (linux/ inside), made once."""
    out = paths.cache_dir() / "bisect" / "src" / f"{good.sha}.tar"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        res = _git(tree, "archive", "--format=tar", "--prefix=linux/", "-o", str(tmp), good.sha)
        if res.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise WorkbenchError(f"git archive of {good.short} failed: {(res.stderr.strip().splitlines() or ['?'])[-1]}")
        os.replace(tmp, out)
    return out


def commit_patch(tree: Path, good: Commit, commit: Commit) -> Path | None:
    """The whole change from GOOD to ``commit`` as one patch git am applies (None: the
    commit's tree is GOOD's), written once into the cache."""
    res = _git(tree, "diff", "--binary", "--full-index", "--no-renames", good.sha, commit.sha, binary=True)
    if res.returncode != 0:
        raise WorkbenchError(f"git diff {good.short} {commit.short} failed: "
                             f"{res.stderr.decode(errors='replace').strip()}")
    if not res.stdout:
        return None
    head = (f"From {commit.sha} Mon Sep 17 00:00:00 2001\nFrom: workbench bisect <workbench@localhost>\n"
            f"Subject: [PATCH] the tree of {commit.short} ({good.short}..{commit.short})\n\n"
            f"{commit.subject}\n---\n").encode()
    out = paths.cache_dir() / "bisect" / "patches" / good.sha / f"bisect-{commit.short}.patch"
    body = head + res.stdout
    if not out.exists() or out.read_bytes() != body:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_bytes(body)
        os.replace(tmp, out)
    return out


def build_commit(tree: Path, good: Commit, commit: Commit, seed_from: Path | None = None,
                 profile: str = "bench") -> tuple[str, Path]:
    """Build the tree of ``commit`` (GOOD's source with the change up to it) with
    kernel/build.sh; returns (its kernel name, its tree)."""
    from ...targets import kernel_images
    base = _archive(tree, good)
    patch = None if commit.sha == good.sha else commit_patch(tree, good, commit)
    built = kernel_images.build(ksrc=str(base), vanilla=patch is None, series=str(patch) if patch else None,
                                name=f"bisect-{commit.short}", profile=profile, seed_from=seed_from)
    return kernel_images.tree_info(built).get("name", f"bisect-{commit.short}-{profile}"), built


def cost_metric(folio_size: int = 4096, size: int = 8 << 20, repeats: int = 3, knobs: dict | None = None,
                runs_root=None, progress: bool = True, build=None, target_factory=None):
    """The ``cost`` metric: a factory ``(tree, good, line) -> (measure, unit, describe)``.
    ``build(tree, good, commit, seed_from) -> (kernel name, tree path)`` and
    ``target_factory(kernel, n)`` (an icount target) are injectable."""
    from ...units import format_size
    from . import cost
    build = build or build_commit
    factory = target_factory or (lambda kernel, n: cost.icount_target(kernel, "cost-bisect"))
    knobs = {k: v for k, v in (knobs or {}).items() if v is not None}
    label = "defaults" if not knobs else ", ".join(f"{k} {v}" for k, v in sorted(knobs.items()))

    def make(tree: Path, good: Commit, line: list[Commit]):
        position = {c.sha: i for i, c in enumerate(line)}
        built: dict[str, tuple[str, Path]] = {}

        def measure(commit: Commit, n: int) -> dict:
            if commit.sha not in built:
                # seeded from the built tree of the nearest commit: only what differs is compiled
                near = min(built, key=lambda sha: abs(position[sha] - position[commit.sha]), default=None)
                built[commit.sha] = build(tree, good, commit, built[near][1] if near else None)
            name = built[commit.sha][0]
            target = factory(name, n)
            ids = cost.measure_tree(target, [cost.CostConfig(label, "patched", knobs)], "bisect", name, n,
                                    [folio_size], size, repeats, runs_root, progress,
                                    study={"kind": "bisect", "commit": commit.sha}, prefix=f"bisect-{commit.short}")
            if hasattr(target, "vm"):
                target.vm.down()
            df = cost.load(ids, runs_root)
            if not bool(df["verified"].all()):
                raise WorkbenchError(f"a trial on {commit.short} failed its verification (run {ids[0]}): this "
                                     "commit's migration is broken, which a cost bisect cannot judge")
            return {"value": float(df["cost_ns"].median()), "run_id": ids[0], "kernel": name, "trials": len(df),
                    "kernel_release": str(df["kernel_release"].iloc[0]) if "kernel_release" in df else None}

        describe = (f"instruction-time per {format_size(folio_size)} folio (icount), median of {repeats} "
                    f"move_pages() of {format_size(size)} on a fresh boot of the commit's bench build ({label})")
        return measure, "ns/folio", describe
    return make


#: the metrics ``--metric`` offers: a name -> a function of the command's options that
#: makes a metric factory (``(tree, good, line) -> (measure, unit, describe)``)
METRICS = {"cost": cost_metric}


def parse_folio(text: str) -> int:
    from ...units import parse_size
    value = parse_size(text, "folio size")
    if value <= 0 or value & (value - 1):
        raise WorkbenchError(f"folio size {text} is not a power of two")
    return value

