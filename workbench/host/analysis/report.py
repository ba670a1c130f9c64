"""The report (``notebooks/04-report.ipynb``): tables, plots and a self-contained HTML file.

Text tables in the series' layout (value±std, folio sizes across, migrator x
threads/channels down) that paste into a mailing-list post; seaborn plots of throughput
against folio size, speedup against threads/channels, measured against predicted
(the extended model of :mod:`workbench.host.analysis.amdahl`), our runs beside the RFC's published
figures (labelled as other hardware), and first-folio latency against batch size when
the runs set batch sizes. :func:`render` executes the notebook with papermill and
exports HTML with nbconvert, the widget state embedded and every script inlined, so the
file opens offline.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import amdahl, clocks, reference, stats, workload_view
from ..running import notebooks, record_schema, store
from ... import paths
from ...errors import WorkbenchError
from ...targets.base import clock_of
from ...units import parse_size

NOTEBOOK = paths.REPO / "notebooks" / "04-report.ipynb"
STATIC = Path(__file__).resolve().parents[2] / "static"
#: @jupyter-widgets/html-manager's standalone bundle (BSD-3-Clause, see static/LICENSE-html-manager)
EMBED_JS = STATIC / "html-manager-1.0.15-embed.js"
WORKERS = "threads/channels"


# -- data --------------------------------------------------------------------------

def load(run_ids=None, root=None) -> pd.DataFrame:
    """Records of the chosen runs (default: all) with a ``workers`` column (threads or
    channels, '-' for the kernel's serial copy) and a ``setup`` label per target/kernel."""
    df = store.load_runs(root, list(run_ids) if run_ids else None)
    if df.empty:
        where = root or paths.runs_dir()
        if run_ids and not store.load_runs(root, list(run_ids), kind="conformance").empty:
            raise WorkbenchError(f"{', '.join(run_ids)}: conformance runs only; the report shows them beside "
                                 "migration trials (add a trial run, or give no run for all); `workbench "
                                 "summary RUN` prints a conformance run's matrix")
        raise WorkbenchError(f"no runs to report in {where}" + (f" among {', '.join(run_ids)}" if run_ids else ""))
    left_out = df.attrs.get("left_out", [])
    df = prepare(df)
    df.attrs["left_out"] = left_out      # damaged files, which summary_line names
    return df


def prepare(df: pd.DataFrame) -> pd.DataFrame:
    df = workload_view.with_workload(df)
    for col in ("threads", "channels", "batch_size", "total_bytes"):
        if col not in df.columns:
            df[col] = np.nan
    if df["total_bytes"].isna().any() and {"seconds", "gbps"} <= set(df.columns):
        # gbps = bytes / seconds / 1e9, so the amount moved follows from the two
        df["total_bytes"] = df["total_bytes"].fillna((df["seconds"] * df["gbps"] * 1e9).round())
    w = stats.workers(df)
    df["workers_n"] = w.fillna(1).astype(int)
    df[WORKERS] = w.map(lambda v: "-" if pd.isna(v) else str(int(v)))
    df["batch"] = pd.to_numeric(df["batch_size"], errors="coerce").map(lambda v: "-" if pd.isna(v) else str(int(v)))
    if "functional" not in df.columns:
        df["functional"] = df.get("accelerator", pd.Series("", index=df.index)).eq("tcg")
    if "clock" not in df.columns:
        df["clock"] = [clock_of(a) for a in df.get("accelerator", pd.Series("", index=df.index))]
    df["setup"] = [f"{t}, kernel {k}, {a}" for t, k, a in
                   zip(df.get("target", "?"), df.get("kernel_release", "?"), df.get("accelerator", "?"))]
    return df


def row_keys(df: pd.DataFrame) -> list[str]:
    keys = ["migrator"]
    if (df[WORKERS] != "-").any():
        keys.append(WORKERS)
    if (df["batch"] != "-").any():
        keys.append("batch")
    return keys


# -- text tables -------------------------------------------------------------------

def text_tables(df: pd.DataFrame, value: str = "gbps") -> str:
    """One seed-layout table per setup (target, kernel, accelerator), ready to paste."""
    df = df if WORKERS in df.columns else prepare(df)
    out = []
    for (setup, workload, access), g in df.groupby(["setup", "workload", "access"], sort=False):
        g = ordered(g)
        title = f"{workload_view.title(workload, g['reason'].iloc[0], access, value)} — {setup}"
        if clocks.frame_note(g):
            title += f" [{clocks.frame_note(g)}]"
        table = stats.series_table(g, rows=row_keys(g), value=value, title=title)
        n = len(g)
        ok = int(g["verified"].fillna(False).astype(bool).sum()) if "verified" in g.columns else 0
        total = g["total_bytes"].dropna()
        moved = f"{int(total.iloc[0]) >> 20} MiB moved per trial; " if len(total) and total.nunique() == 1 else ""
        out.append(f"{table}\n{moved}verified: {ok}/{n} trials byte-exact")
    return "\n\n".join(out)


MIGRATOR_ORDER = {"kernel": 0, "mtcopy": 1, "dcbm": 2}


def ordered(df: pd.DataFrame) -> pd.DataFrame:
    """Rows as the series orders them: kernel, mtcopy, dcbm, then by workers and batch size."""
    key = pd.DataFrame({"m": df["migrator"].map(lambda m: MIGRATOR_ORDER.get(m, 9)), "n": df["migrator"],
                        "w": df["workers_n"], "b": pd.to_numeric(df["batch_size"], errors="coerce").fillna(-1)})
    return df.loc[key.sort_values(["m", "n", "w", "b"], kind="stable").index]


def reference_table() -> str:
    return reference.series_table(reference.throughput(),
                                title=f"RFC V3 published figures, GB/s — {reference.V3_HARDWARE}")


def summary_line(df: pd.DataFrame) -> str:
    """How many runs and trials, of which setups, and what their timings mean (Markdown)."""
    notes = sorted({n for n in (clocks.note(a, c) for a, c in zip(df["accelerator"], df["clock"])) if n})
    left_out = int(stats.unclean(df).sum())
    if left_out:
        notes.append(f"{left_out} trial{'s are' if left_out != 1 else ' is'} left out of every table and figure: "
                     "the kernel logged an oops, BUG or WARN during " + ("them" if left_out != 1 else "it"))
    damaged = df.attrs.get("left_out") or []
    if damaged:
        notes.append(f"{len(damaged)} damaged file{'s are' if len(damaged) != 1 else ' is'} left out (a record "
                     "or manifest that cannot be read; `workbench store check` lists them): " + ", ".join(damaged))
    return (f"**{df['run_id'].nunique()} runs, {len(df)} trials**: " + "; ".join(sorted(df["setup"].unique()))
            + "".join(f"  \n**{n[0].upper() + n[1:]}.**" for n in notes))


def workload_panels(df: pd.DataFrame) -> str:
    """Per workload: what the kernel reported for its migration reason (trace calls,
    pages succeeded and failed, time from start to end event, the series' per-reason
    counters, other reasons seen meanwhile) and what tracing cost, as a plain table."""
    df = df if "workload" in df.columns else workload_view.with_workload(df)
    return workload_view.text_table(df)


def figure(fn, df: pd.DataFrame):
    """Draw ``fn(df)``; a figure that cannot be drawn for these runs (mixed clocks, ...)
    says why in one line instead of stopping the report."""
    try:
        return fn(df)
    except WorkbenchError as exc:
        print(f"{fn.__name__}: {exc}")
        return None


def comparisons(df: pd.DataFrame, by: str = "kernel_release", base: str | None = None,
                every_field: bool = False) -> str:
    """Each other value of ``by`` against ``base`` (default: the one that names a vanilla
    or stock kernel, else the first in sort order), configuration by
    configuration, in :mod:`workbench.host.analysis.compare`'s layout; one line saying why when the
    runs cannot be compared (one side only, mixed clocks or accelerators). ``every_field``:
    every measured field whose change is marked (:mod:`workbench.host.analysis.compare_all`)."""
    from . import compare, compare_all
    if by not in df.columns:
        return f"no comparison: these runs have no {by} column"
    values = sorted(set(df[by].dropna().astype(str)))
    if len(values) < 2:
        return f"no comparison: every run has the same {by} ({', '.join(values) or '-'})"
    base = base or next((v for v in values if "vanilla" in v or "stock" in v), values[0])
    out = []
    for other in (v for v in values if v != base):
        try:
            sides = compare.select(df, base, by), compare.select(df, other, by)
            if every_field:
                out.append(compare_all.format_text(compare_all.compare_all(*sides, by=by), base, other,
                                                   changed_only=True))
            else:
                out.append(compare.format_text(compare.compare(*sides, by=by), base, other))
        except WorkbenchError as exc:
            out.append(f"{base} against {other}: {exc}")
    return "\n\n".join(out)


# -- plots ---------------------------------------------------------------------------

def _sns():
    import seaborn as sns
    sns.set_theme(style="whitegrid", context="notebook")
    return sns


def _folio_order(df):
    return sorted(df["folio"].unique(), key=parse_size)


def _title(base, g):
    note = clocks.frame_note(g)
    return base + (f"\n({note})" if note else "")


def fig_throughput(df: pd.DataFrame):
    """Throughput against folio size, one line per migrator (x threads/channels); one
    panel per setup and workload (its migration reason in the title)."""
    sns = _sns()
    import matplotlib.pyplot as plt
    df = stats.clean(df)[0]
    df = df if "workload" in df.columns else workload_view.with_workload(df)
    d = df.assign(config=df["migrator"] + np.where(df[WORKERS] != "-", " x" + df[WORKERS], "")
                  + np.where(df["access"] != "none", ", " + df["access"] + " access", ""))
    panels = list(dict.fromkeys(zip(d["setup"], d["workload"])))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4), squeeze=False)
    for ax, (setup, workload) in zip(axes[0], panels):
        g = d[(d["setup"] == setup) & (d["workload"] == workload)]
        order = _folio_order(g)
        sns.pointplot(data=g, x="folio", y="gbps", hue="config", order=order, errorbar="sd", capsize=0.1,
                      dodge=0.2 if g["config"].nunique() > 1 else False, ax=ax)
        name = setup if len(panels) == 1 or d["workload"].nunique() == 1 else \
            f"{workload_view.TITLES.get(workload, workload)} (reason {g['reason'].iloc[0]})\n{setup}"
        ax.set(xlabel=record_schema.heading("folio"), ylabel=record_schema.heading("gbps"), title=_title(name, g))
    fig.tight_layout()
    return fig


def speedups(df: pd.DataFrame) -> pd.DataFrame:
    """Mean throughput per (setup, migrator, workers, folio) over the same setup's kernel
    baseline at that folio size (or, without one, over the migrator's fewest workers)."""
    df = stats.clean(df)[0]
    s = stats.summarize(df, by=("setup", "migrator", "workers_n", "folio", "folio_size"))
    rows = []
    for (setup, mig), g in s.groupby(["setup", "migrator"], sort=False):
        base = s[(s["setup"] == setup) & (s["migrator"] == "kernel")].set_index("folio")["mean"]
        for _, r in g.iterrows():
            if mig != "kernel" and r["folio"] in base.index:
                ref, against = base[r["folio"]], "kernel"
            else:
                low = g[g["folio"] == r["folio"]].sort_values("workers_n").iloc[0]
                ref, against = low["mean"], f"{mig} x{low['workers_n']}"
            rows.append({**r.to_dict(), "speedup": r["mean"] / ref, "against": against})
    return pd.DataFrame(rows)


def fig_speedup(df: pd.DataFrame):
    """Speedup against threads/channels per folio size (None without offload runs)."""
    if not (df["migrator"] != "kernel").any():
        return None
    sns = _sns()
    import matplotlib.pyplot as plt
    sp = speedups(df)
    sp = sp[sp["migrator"] != "kernel"]
    setups = list(sp["setup"].unique())
    fig, axes = plt.subplots(1, len(setups), figsize=(6.5 * len(setups), 4), squeeze=False)
    for ax, setup in zip(axes[0], setups):
        g = sp[sp["setup"] == setup]
        sns.lineplot(data=g, x="workers_n", y="speedup", hue="folio", style="migrator", marker="o", ax=ax,
                     hue_order=_folio_order(g), errorbar=None)
        ax.axhline(1.0, color="grey", lw=0.8)
        against = "kernel's copy" if (g["against"] == "kernel").all() else "baseline (kernel, else fewest workers)"
        ax.set(xlabel="threads / channels", ylabel=f"speedup over the {against}",
               title=_title(f"speedup vs threads/channels\n{setup}", df[df["setup"] == setup]))
    fig.tight_layout()
    return fig


def predicted(df: pd.DataFrame) -> pd.DataFrame | None:
    """Measured means beside the extended model fitted to them (None if too few points)."""
    df = stats.clean(df)[0]
    if df["total_bytes"].isna().any():
        return None
    s = stats.summarize(df, by=("setup", "migrator", "workers_n", "folio", "folio_size", "total_bytes"))
    s = s.rename(columns={"mean": "gbps", "workers_n": "workers"})
    if s["total_bytes"].isna().any() or len(s) < 4 or not (s["migrator"] == "kernel").any():
        return None
    out = []
    for setup, g in s.groupby("setup", sort=False):
        n_params = len(amdahl.SHARED) + 1 + len(amdahl.PER_MIGRATOR) * (g["migrator"].nunique() - 1)
        if len(g) <= n_params or not (g["migrator"] == "kernel").any():
            continue
        fit = amdahl.fit_extended(g, anchored=False)
        out.append(fit.data.assign(setup=setup))
    return pd.concat(out, ignore_index=True) if out else None


def fig_predicted(df: pd.DataFrame):
    """Measured against predicted: ours when there are enough points, always the RFC V3
    tables (other hardware) with the extended model and pure Amdahl fitted to them."""
    sns = _sns()
    import matplotlib.pyplot as plt
    ours = predicted(df)
    ref = reference.throughput().rename(columns={"gbps_mean": "gbps"})
    ext, pure = amdahl.fit_extended(ref), amdahl.fit_amdahl(ref)
    panels = ([("ours", ours)] if ours is not None else []) + [("ref", None)]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.6), squeeze=False)
    for ax, (kind, data) in zip(axes[0], panels):
        if kind == "ours":
            sns.scatterplot(data=data, x="observed", y="predicted", hue="migrator", style="folio", ax=ax)
            title = _title("ours: extended model fitted to these runs", df)
        else:
            both = pd.concat([ext.data.assign(model="extended"), pure.data.assign(model="pure Amdahl")])
            sns.scatterplot(data=both, x="observed", y="predicted", hue="model", style="migrator", ax=ax, alpha=0.8)
            offload = sorted(set(pure.data["migrator"]))
            title = (f"RFC V3 — OTHER HARDWARE (Zen 3 EPYC, PTDMA)\nrms over {'/'.join(offload)}: extended "
                     f"{ext.rms(offload, relative=False):.2f}, pure Amdahl {pure.rms(offload, relative=False):.2f} GB/s")
            data = both
        hi = float(max(data["observed"].max(), data["predicted"].max())) * 1.05
        ax.plot([0, hi], [0, hi], color="grey", lw=0.8)
        ax.set(xlabel=f"measured {record_schema.heading('gbps')}", ylabel=f"predicted {record_schema.heading('gbps')}", title=title)
    fig.tight_layout()
    return fig


def fig_reference(df: pd.DataFrame):
    """Our throughput beside the RFC V3 figures, in separate panels: other hardware."""
    sns = _sns()
    import matplotlib.pyplot as plt
    clocks.require_one_clock(df, "this plot of all runs beside the published figures")
    ref = reference.all_throughput()
    ref = ref[(ref["workers"] == 16) | (ref["migrator"] == "kernel")]
    ref = ref.assign(config=ref["series"] + " " + ref["migrator"] + np.where(ref["migrator"] != "kernel", " x16", ""))
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.2))
    sns.pointplot(data=df, x="folio", y="gbps", hue="migrator", order=_folio_order(df), errorbar="sd", ax=a)
    a.set(xlabel=record_schema.heading("folio"), ylabel=record_schema.heading("gbps"), title=_title("these runs", df))
    order = [f for f in reference.FOLIO_ORDER if f in set(ref["folio"])]
    sns.pointplot(data=ref, x="folio", y="gbps_mean", hue="config", order=order, ax=b, linestyles="--")
    b.set(xlabel=record_schema.heading("folio"), ylabel=record_schema.heading("gbps"),
          title="RFC V3/V5 published — OTHER HARDWARE\n(AMD Zen 3 EPYC 2S/32C, PTDMA; 6.16-rc6 / 7.1-rc1)")
    fig.tight_layout()
    return fig


def latency(df: pd.DataFrame) -> pd.DataFrame | None:
    """First-folio latency per batch size: measured ``first_folio_ns`` where records have
    it, otherwise estimated as the call's time x (folios in one batch / folios moved) —
    the first folio is complete only when its batch is (batch sizes in base pages)."""
    df = stats.clean(df)[0]
    d = df[df["batch"] != "-"]
    if d.empty:
        return None
    d = d.copy()
    pages_per_folio = (d["folio_size"] // 4096).clip(lower=1)
    folios = (d["total_bytes"] // d["folio_size"]).clip(lower=1)
    batch_folios = (pd.to_numeric(d["batch_size"]) // pages_per_folio).clip(lower=1)
    estimate = d["seconds"] * np.minimum(batch_folios / folios, 1.0) * 1e6
    if "first_folio_ns" in d.columns and d["first_folio_ns"].notna().any():
        d["first_folio_us"] = (d["first_folio_ns"] / 1e3).fillna(estimate)
        d["latency_kind"] = np.where(d["first_folio_ns"].notna(), "measured", "estimated")
    else:
        d["first_folio_us"] = estimate
        d["latency_kind"] = "estimated"
    d["batch_size_n"] = pd.to_numeric(d["batch_size"]).astype(int)
    return d


def fig_latency(df: pd.DataFrame):
    lat = latency(df)
    if lat is None:
        return None
    clocks.require_one_clock(lat, "the first-folio latency plot")
    sns = _sns()
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4))
    sns.lineplot(data=lat, x="batch_size_n", y="first_folio_us", hue="folio", style="migrator", marker="o",
                 errorbar="sd", ax=ax, hue_order=_folio_order(lat))
    ax.set_xscale("log", base=2)
    kinds = " and ".join(sorted(set(lat["latency_kind"])))
    ax.set(xlabel=record_schema.heading("batch_size"), ylabel="first-folio latency, µs",
           title=_title(f"first-folio latency vs batch size ({kinds})", lat))
    fig.tight_layout()
    return fig


def tabs(df: pd.DataFrame):
    """An ipywidgets Tab per setup with its table: the report's interactive part, which
    nbconvert embeds as widget state (it works in the offline HTML)."""
    import ipywidgets as W

    def box(text):
        lines = text.splitlines()
        width = max(len(ln) for ln in lines)
        return W.Textarea(value=text, layout=W.Layout(width=f"{width + 4}ch", height=f"{1.3 * len(lines) + 1.5}em"))
          
    children, titles = [], []
    df = df if "workload" in df.columns else workload_view.with_workload(df)
    several = df["workload"].nunique() > 1
    for (setup, workload), g in df.groupby(["setup", "workload"], sort=False):
        children.append(box(text_tables(g) + "\n\n" + "\n".join(workload_view.workload_lines(g))))
        where = (f"{g['kernel_release'].iloc[0]} ({g['accelerator'].iloc[0]})"
                 if {"kernel_release", "accelerator"} <= set(g.columns) else setup[:40])
        titles.append(f"{workload}: {where}" if several else where)
    children.append(box(reference_table()))
    titles.append("RFC V3 (other hardware)")
    tab = W.Tab(children=children)
    tab.titles = tuple(titles)
    return tab


# -- rendering -----------------------------------------------------------------------

def render(run_ids=None, runs_root=None, out: Path | None = None, out_root: Path | None = None,
           jupyter_kernel: str = "python3", timeout: float | None = 600, no_input: bool = False) -> Path:
    """Execute 04-report for the runs and write a self-contained HTML file (``no_input``:
    without the code cells); returns its path."""
    notebooks.require(what="workbench report")
    run_ids = list(run_ids or [])
    load(run_ids, runs_root)                      # a clear error before starting a kernel
    stamp = time.strftime("%Y%m%d-%H%M%S")
    directory = Path(out_root or notebooks.papermill_runs_dir()) / f"{time.strftime('%Y%m%d')}-report"
    directory.mkdir(parents=True, exist_ok=True)
    executed = directory / f"report-{stamp}.ipynb"
    try:
        notebooks.execute(NOTEBOOK, executed, {"run_ids": run_ids, "runs_root": str(runs_root or "")},
                          jupyter_kernel=jupyter_kernel, timeout=timeout)
    except Exception as e:  # noqa: BLE001 - papermill raises many kinds; the user gets one line
        raise WorkbenchError(f"the report notebook failed: {notebooks.error_line(e)} "
                             f"(executed notebook: {executed})") from None
    out = Path(out) if out else directory / f"report-{stamp}.html"
    out.write_text(to_html(executed, no_input=no_input))
    return out


def to_html(notebook_path: Path, no_input: bool = False) -> str:
    """nbconvert's HTML with the widget state embedded and no external script (no CDN, no
    MathJax): opens offline. The code cells show how each table and plot was made;
    ``no_input`` leaves them out (for a mailing-list reviewer)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook_path), as_version=4)
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = no_input
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    return make_offline(body)


_SCRIPT_SRC = re.compile(r'<script[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>', re.S)
_WIDGET_LOADER = re.compile(r"<script>\s*\(function\(\) \{\s*function addWidgetsRenderer\(\).*?</script>", re.S)
_MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)


def make_offline(body: str) -> str:
    """Drop every remote script and MathJax; replace the CDN widget loader with the
    vendored standalone html-manager, inlined, which renders the embedded state on load."""
    has_widgets = "application/vnd.jupyter.widget-state+json" in body
    body = _MATHJAX.sub("", body)
    body = _WIDGET_LOADER.sub("", body)
    body = _SCRIPT_SRC.sub("", body)
    if has_widgets:
        if not EMBED_JS.exists():
            raise WorkbenchError(f"the widget renderer {EMBED_JS} is missing from this checkout")
        js = EMBED_JS.read_text().replace("</script", "<\\/script")
        # webpack's automatic publicPath reads the src of the page's first <script>: an
        # empty data: script first in <head> gives it one (the core controls load no assets)
        body = re.sub(r"<head>", '<head>\n<script src="data:text/javascript,"></script>', body, count=1)
        body = body.replace("</body>", f"<script>\n{js}\n</script>\n</body>", 1)
    return body
