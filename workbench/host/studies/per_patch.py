"""``workbench bench cost --per-patch``: what each patch of a series costs, in instruction-time.

The series is built cumulatively on its base: the base itself (no patch), then the base
with patch 1, with patches 1..2, ... up to the whole series, each a bench-profile tree of
kernel/build.sh, named ``<series>-pNN`` (the base of a kernel line keeps its line's name:
``vanilla-bench`` on the default line, ``vanilla-6.12-bench`` on 6.12) and cached by its
inputs like every tree. Each tree is seeded from the one before (``--seed-from``), so
only what the next patch touches is compiled.

Each tree is then booted afresh under the instruction-counted clock ``boots`` times
(:func:`workbench.host.studies.cost.measure_tree`) and measured at each folio size with its
defaults and, where the tree has the knob, with the batched kernel copy on
(``batch_kernel_copy=1``, the kernel's own batch size). The summary gives, per tree and
configuration, the median instruction-time per moved folio, its range (the larger of
the range across repeats within a boot and across boots, relative to the median, as the
cost benchmark's), and the change against the tree before: the same configuration, or
for the patch that brings the knob, the tree before with its defaults (the path the
batched one replaces), as the ratio of the medians with its 95% bootstrap interval over
boots and the trials within each (:func:`workbench.host.analysis.stats.ratio_interval`); an
interval that holds no change is "no difference". Every trial is a stored run of the study (``cost.study`` in its manifest),
so an interrupted measurement is resumed: a tree and boot whose runs are complete is not
booted again.
"""

from __future__ import annotations

import hashlib
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ... import paths
from ...errors import WorkbenchError
from ...units import format_size
from . import cost
from ..analysis import stats
from ..running import store

#: the configurations measured on every tree; the batched one where the tree has the knob
DEFAULTS = cost.CostConfig("defaults", "patched")
BATCHED = cost.CostConfig("batched kernel copy", "patched", {"batch_kernel_copy": True})
CONFIGS = (DEFAULTS, BATCHED)


# ---- the series ------------------------------------------------------------------------

def read_series(path) -> list[Path]:
    """The patches of a directory, in order: its ``series`` file (quilt's: one name a line,
    ``#`` comments), else its ``*.patch`` files by name."""
    d = Path(path).expanduser()
    if not d.is_dir():
        raise WorkbenchError(f"series {str(path)!r} is not a directory; --per-patch takes a directory of patches "
                             "(git format-patch files, or a series file naming them)")
    listed = d / "series"
    if listed.is_file():
        names = [ln.split("#", 1)[0].strip() for ln in listed.read_text().splitlines()]
        patches = [d / n for n in names if n]
        missing = [p.name for p in patches if not p.is_file()]
        if missing:
            raise WorkbenchError(f"series {listed} names missing patch {missing[0]}")
    else:
        patches = sorted(d.glob("*.patch"))
    if not patches:
        raise WorkbenchError(f"series {path} has no patches (a series file or *.patch files)")
    return patches


def subject(patch: Path) -> str:
    """A patch's subject without its ``[PATCH n/m]``, else its file name."""
    try:
        head = patch.read_text(errors="replace").split("\n\n", 1)[0]
    except OSError:
        return patch.stem
    m = re.search(r"^Subject: (.*(?:\n[ \t].*)*)", head, re.M)
    if not m:
        return patch.stem
    text = re.sub(r"\s*\n[ \t]+", " ", m.group(1))
    return re.sub(r"^\[[^\]]*PATCH[^\]]*\]\s*", "", text).strip()


def series_name(path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(path).expanduser().resolve().name).strip("-.") or "series"


@dataclass(frozen=True)
class Tree:
    index: int               # patches applied: 0 is the base
    patch: str               # the last patch's file name ("" for the base)
    subject: str             # its subject ("base")
    name: str                # the kernel name to boot (bench profile)
    path: Path | None = None


def cumulative_dir(patches: list[Path], k: int, name: str) -> Path:
    """A directory in the cache with patches 1..k and a series file naming them (what
    kernel/build.sh applies for the k-th tree); rewritten only when a patch changed."""
    digest = hashlib.sha256(b"".join(p.name.encode() + b"\0" + p.read_bytes() for p in patches)).hexdigest()[:10]
    out = paths.cache_dir() / "kernel" / "per-patch" / f"{name}-{digest}" / f"p{k:02d}"
    if not (out / "series").is_file():
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for p in patches[:k]:
            shutil.copyfile(p, tmp / p.name)
        (tmp / "series").write_text("".join(p.name + "\n" for p in patches[:k]))
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return out


def default_build(patches: list[Path], k: int, name: str, base: str | None, line: str | None,
                  seed_from: Path | None) -> tuple[str, Path]:
    """The k-th cumulative tree, bench profile, seeded from ``seed_from``: (its kernel name, its path)."""
    from ...targets import kernel_images
    if k == 0:
        tree = kernel_images.build(ksrc=base, line=line, vanilla=True, profile="bench",
                                   name=f"{name}-p00" if base else None)
    else:
        tree = kernel_images.build(ksrc=base, line=line, series=str(cumulative_dir(patches, k, name)),
                                   profile="bench", name=f"{name}-p{k:02d}", seed_from=seed_from)
    return kernel_images.tree_info(tree).get("name") or f"{name}-p{k:02d}-bench", tree


def default_target_factory(kernel: str, boot: int):
    return cost.icount_target(kernel, "cost-per-patch")


# ---- measuring -------------------------------------------------------------------------

def study_id(name: str, patches: list[Path], base: str | None, line: str | None, params: dict) -> str:
    h = hashlib.sha256()
    for p in patches:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    h.update(repr((str(Path(base).resolve()) if base else None, line, sorted(params.items()))).encode())
    return f"{name}-{h.hexdigest()[:10]}"


def _stored(root, study: str) -> dict[tuple[int, int], dict]:
    """The complete stored runs of a study: {(tree index, boot): {config: run id, ...,
    "batching_offered": bool}}."""
    out: dict[tuple[int, int], dict] = {}
    for run in store.list_runs(root):
        try:
            meta = run.manifest.get("cost") or {}
        except store.DamagedFile:
            continue
        s = meta.get("study") or {}
        if s.get("kind") != "per-patch" or s.get("id") != study or meta.get("superseded_by"):
            continue
        if run.count() < s.get("trials", math.inf):
            continue                       # cut short: measured again
        slot = out.setdefault((s["index"], meta["boot"]), {})
        slot[meta["config"]] = run.id
        slot["batching_offered"] = s.get("batching_offered", False)
    return out


def measure(series, base: str | None = None, line: str | None = None, folio_sizes=(4096, 64 << 10, 2 << 20),
            size: int = 8 << 20, repeats: int = 3, boots: int = 2, root=None, progress: bool = True,
            build=None, target_factory=None, say=None, monitor_ms: float | None = None) -> pd.DataFrame:
    """Build the cumulative trees of ``series`` (a directory) on ``base`` (a tree or .tar)
    or ``line`` (a kernel line's Debian source; default the first line's), then measure
    each ``boots`` times; returns the records (:func:`load`). ``build(patches, k, name,
    base, line, seed_from) -> (kernel name, tree)`` and ``target_factory(kernel, boot)``
    are injectable (the tests give fakes). ``monitor_ms``: sample the kernel's counters
    during each trial (off by default: the monitor's own instructions would count)."""
    say = say or (lambda text: None)
    patches = read_series(series)
    name = series_name(series)
    build = build or default_build
    factory = target_factory or default_target_factory
    params = {"folio_sizes": tuple(folio_sizes), "size": size, "repeats": repeats, "monitor_ms": monitor_ms}
    sid = study_id(name, patches, base, line, params)
    trees, seed = [], None
    for k in range(len(patches) + 1):
        say(f"tree {k} of {len(patches)}: " + (f"+ {patches[k - 1].name}" if k else "the base"))
        kernel, path = build(patches, k, name, base, line, seed)
        seed = path
        trees.append(Tree(k, patches[k - 1].name if k else "", subject(patches[k - 1]) if k else "base", kernel,
                          path))
    stored = _stored(root, sid)
    ids = []
    for boot in range(boots):
        for t in trees:
            done = stored.get((t.index, boot), {})
            want = [DEFAULTS.label] + ([BATCHED.label] if done.get("batching_offered") else [])
            if done and all(c in done for c in want):
                say(f"tree {t.index} boot {boot}: stored")
                ids += [done[c] for c in want]
                continue
            target = factory(t.name, boot)
            offered = bool(((target.facts() or {}).get("knobs") or {}).get("batch_kernel_copy"))
            configs = [DEFAULTS] + ([BATCHED] if offered else [])
            study = {"kind": "per-patch", "id": sid, "series": name, "index": t.index, "patch": t.patch,
                     "subject": t.subject, "trees": len(trees), "batching_offered": offered,
                     "trials": repeats * len(folio_sizes)}
            say(f"tree {t.index} ({t.name}) boot {boot}: " + ", ".join(c.label for c in configs))
            ids += cost.measure_tree(target, configs, "vanilla" if t.index == 0 else "patched", t.name, boot,
                                     folio_sizes, size, repeats, root, progress, study=study,
                                     prefix=f"per-patch-{name}-p{t.index:02d}", monitor_ms=monitor_ms)
            if hasattr(target, "vm"):
                target.vm.down()
    return load(ids, root)


def studies(root=None) -> dict[str, list[str]]:
    """Every per-patch study stored: {study id: [run ids]}, oldest study first."""
    out: dict[str, list[str]] = {}
    for run in store.list_runs(root):
        try:
            s = (run.manifest.get("cost") or {}).get("study") or {}
        except store.DamagedFile:
            continue
        if s.get("kind") == "per-patch":
            out.setdefault(s["id"], []).append(run.id)
    return out


def load(run_ids=None, root=None, study: str | None = None) -> pd.DataFrame:
    """The records of per-patch runs (``run_ids``; else the study ``study``; else the
    study stored last), with ``index``, ``patch``, ``subject``, ``series`` and ``study``
    beside the cost benchmark's columns."""
    if not run_ids:
        found = studies(root)
        if not found:
            raise WorkbenchError("no per-patch cost runs stored: run `workbench bench cost --per-patch`")
        if study is not None and study not in found:
            raise WorkbenchError(f"no per-patch study {study!r} stored; there are: {', '.join(found)}")
        run_ids = found[study] if study else max(found.values(), key=lambda ids: max(ids))
    df = cost.load(list(run_ids), root)
    meta = {}
    for r in set(df["run_id"]):
        m = store.open_run(r, root).manifest["cost"]
        if (m.get("study") or {}).get("kind") != "per-patch":
            raise WorkbenchError(f"run {r} is not a per-patch cost run")
        meta[r] = {**m["study"], "tree": m.get("tree")}
    for col in ("index", "patch", "subject", "series", "id", "tree"):
        df[col if col != "id" else "study"] = df["run_id"].map(lambda r, c=col: meta[r].get(c))
    return df


# ---- the summary -----------------------------------------------------------------------

def summarize(df: pd.DataFrame) -> dict:
    """Per tree, configuration and folio size: the median instruction-time per folio, its
    spread, its ratio to the base and its change against the tree before."""
    cost_df = df[~df["latency_trial"]]
    cells, groups = {}, {}
    for (index, cfg, folio_size), g in cost_df.groupby(["index", "config", "folio_size"]):
        med, within, across = cost._spread(g, "cost_ns")
        groups[(int(index), cfg, int(folio_size))] = cost.boot_groups(g, "cost_ns")
        cells[(int(index), cfg, int(folio_size))] = {
            "index": int(index), "patch": g["patch"].iloc[0], "subject": g["subject"].iloc[0],
            "tree": g["tree"].iloc[0], "config": cfg,
            "folio_size": int(folio_size), "folio": format_size(int(folio_size)), "cost_ns_per_folio": med,
            "spread": max(within, 0.0 if math.isnan(across) else across), "n": len(g),
            "verified": bool(g["verified"].all())}
    rows = []
    for (index, cfg, fs), c in sorted(cells.items(), key=lambda kv: (kv[0][1] != DEFAULTS.label, kv[0][2], kv[0][0])):
        base = cells.get((0, DEFAULTS.label, fs))
        prev, against = cells.get((index - 1, cfg, fs)), "previous"
        if prev is None and index > 0:
            prev, against = cells.get((index - 1, DEFAULTS.label, fs)), "previous, defaults"
        c = dict(c)
        mine = groups[(index, cfg, fs)]
        if base is None:
            c.update(ratio_to_base=None, base_low=None, base_high=None)
        else:
            _, low, high = stats.ratio_interval(mine, groups[(0, DEFAULTS.label, fs)])
            c.update(ratio_to_base=c["cost_ns_per_folio"] / base["cost_ns_per_folio"], base_low=low, base_high=high)
        if prev is None:
            c.update(delta=None, against=None, difference="-" if index == 0 else "no tree before")
        else:
            key = (prev["index"], prev["config"], fs)
            ratio, low, high = stats.ratio_interval(mine, groups[key])
            c.update(delta=ratio - 1, delta_low=low - 1, delta_high=high - 1, against=against,
                     difference=cost.verdict(ratio, low, high))
        rows.append(c)
    trees = [{"index": int(t["index"]), "patch": t["patch"], "subject": t["subject"], "tree": t["tree"]}
             for t in df.drop_duplicates("index").sort_values("index").to_dict("records")]
    return {"series": df["series"].iloc[0], "study": df["study"].iloc[0],
            "trees": trees, "rows": rows, "verified": bool(df["verified"].all()),
            "trials": len(df), "boots": int(df["boot"].nunique()),
            "folio_sizes": sorted({int(f) for f in cost_df["folio_size"]}),
            "kernels": sorted(set(df["kernel_release"].dropna())) if "kernel_release" in df else []}


def format_text(s: dict) -> str:
    lines = ["instruction-time (icount): deterministic path cost, not speed",
             f"what each patch of {s['series']} costs: {len(s['trees'])} cumulative trees (the base, then one "
             f"more patch each), {s['trials']} trials over {s['boots']} boot(s) of each; every trial verified "
             f"byte-exact: {s['verified']}",
             "per folio: median ns, change against the tree before (of the medians; 'no difference' when "
             "its 95% bootstrap interval over boots and trials holds 0), range of single trials", ""]
    folios = s["folio_sizes"]
    for cfg in dict.fromkeys(r["config"] for r in s["rows"]):
        mine = {(r["index"], r["folio_size"]): r for r in s["rows"] if r["config"] == cfg}
        lines.append(cfg + (" (batching off: the kernel's own path)" if cfg == DEFAULTS.label else
                            " (batch_kernel_copy=1; against the defaults of the tree before where that had no knob)"))
        head = f"{'tree':<44}" + "".join(f" | {format_size(f) + ' ns':>10} {'change':>13} {'range':>7}" for f in folios)
        lines += [head, "-" * len(head)]
        for t in s["trees"]:
            if not any((t["index"], f) in mine for f in folios):
                continue
            what = f"{t['index']:>2} " + ("base" + (f" ({t['tree']})" if t.get("tree") else "") if t["index"] == 0
                                          else t["subject"])
            cells = []
            for f in folios:
                r = mine.get((t["index"], f))
                if r is None:
                    cells.append(f" | {'-':>10} {'':>13} {'':>7}")
                    continue
                diff = r["difference"] + ("*" if r.get("against") == "previous, defaults" else "")
                cells.append(f" | {r['cost_ns_per_folio']:>10.0f} {diff:>13} {r['spread']:>7.2%}")
            lines.append(f"{what[:44]:<44}" + "".join(cells))
        if any(r.get("against") == "previous, defaults" for r in mine.values()):
            lines.append("* against the tree before with its defaults (it had no batching knob)")
        lines.append("")
    return "\n".join(lines).rstrip()


def fig_cost(s: dict):
    """Instruction-time per folio relative to the base after each patch, one panel per
    folio size (stacked, the patches on a shared axis), a line per configuration with the
    95% interval of its ratio to the base as error bars (a bootstrap over boots and trials)."""
    import matplotlib.pyplot as plt
    rows = pd.DataFrame(s["rows"])
    folios = s["folio_sizes"]
    n = len(s["trees"])
    fig, axes = plt.subplots(len(folios), 1, figsize=(max(6.0, 0.6 * n + 2.5), 2.6 * len(folios) + 0.8),
                             squeeze=False, sharex=True)
    for ax, fs in zip(axes[:, 0], folios):
        g = rows[rows["folio_size"] == fs]
        for i, (cfg, c) in enumerate(g.groupby("config", sort=False)):
            c = c.sort_values("index")
            yerr = [(c["ratio_to_base"] - c["base_low"]).clip(lower=0), (c["base_high"] - c["ratio_to_base"]).clip(lower=0)]
            ax.errorbar(c["index"], c["ratio_to_base"], yerr=yerr, marker="o", capsize=3, color=f"C{i}", label=cfg)
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set(ylabel="per folio / base", title=f"{format_size(fs)} folios")
        ax.legend(fontsize=7, loc="upper left")
    axes[-1, 0].set_xticks(range(n))
    axes[-1, 0].set_xticklabels([str(t["index"]) for t in s["trees"]])
    axes[-1, 0].set_xlabel("patches applied (0: the base; the table names each)")
    fig.suptitle(f"what each patch of {s['series']} costs\n"
                 "instruction-time (icount): deterministic path cost, not speed", fontsize=10)
    fig.tight_layout()
    return fig
