"""Summaries of repeated trials and comparisons between groups."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from ...protocol import WORKER_KNOB
from . import clocks
from ...units import parse_size


def workers(df: pd.DataFrame) -> pd.Series:
    """Each row's worker count: its threads or channels, whichever its migrator takes
    (:data:`workbench.protocol.WORKER_KNOB`); NaN for the kernel's own copy."""
    out = pd.Series(np.nan, index=df.index, dtype=float)
    if "migrator" not in df.columns:
        return out
    for migrator, knob in WORKER_KNOB.items():
        if knob in df.columns:
            rows = df["migrator"].astype(str) == migrator
            out[rows] = pd.to_numeric(df.loc[rows, knob], errors="coerce").astype(float)
    return out


def unclean(df: pd.DataFrame) -> pd.Series:
    """Rows of trials during which the kernel logged an oops, BUG or WARN (or became
    tainted by one): ``kernel_clean`` is False. Rows that were not checked count as clean."""
    if "kernel_clean" not in df.columns:
        return pd.Series(False, index=df.index)
    return df["kernel_clean"].astype("boolean").eq(False).fillna(False).astype(bool)


def clean(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The trials on a kernel that reported no problem, and how many were left out."""
    bad = unclean(df)
    return df[~bad], int(bad.sum())


def excluded_note(n: int) -> str:
    """The line a table or figure carries when it leaves unclean trials out."""
    return (f"({n} trial{'s' if n != 1 else ''} left out: the kernel logged an oops, BUG or WARN during "
            f"{'them' if n != 1 else 'it'}; see their kernel_report)")


def summarize(df: pd.DataFrame, by=("migrator", "folio"), value: str = "gbps") -> pd.DataFrame:
    """Per group: n, mean, std (n-1), coefficient of variation, harmonic mean (the right
    mean for rates over equal amounts of work), min, max."""
    by = list(by)

    def agg(x: pd.Series) -> pd.Series:
        x = x.dropna().astype(float)
        n = len(x)
        mean = x.mean() if n else math.nan
        std = x.std(ddof=1) if n > 1 else math.nan
        return pd.Series({
            "n": n, "mean": mean, "std": std,
            "cv": std / mean if n > 1 and mean else math.nan,
            "hmean": sps.hmean(x) if n and (x > 0).all() else math.nan,
            "min": x.min() if n else math.nan, "max": x.max() if n else math.nan,
        })

    out = df.groupby(by, sort=False)[value].apply(agg).unstack()
    out["n"] = out["n"].astype(int)
    return out.reset_index()


def welch(a, b) -> dict:
    """Welch's t-test (unequal variances) of mean(b) against mean(a)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    t, p = sps.ttest_ind(b, a, equal_var=False)
    return {"n_a": len(a), "n_b": len(b), "mean_a": a.mean(), "mean_b": b.mean(),
            "diff": b.mean() - a.mean(), "ratio": b.mean() / a.mean() if a.mean() else math.nan,
            "t": float(t), "p": float(p)}


#: resamples of :func:`ratio_interval` (its half-lengths move by about 1% of themselves
#: between seeds at this many)
BOOTSTRAP_RESAMPLES = 2000


def ratio_interval(new: list, base: list, alpha: float = 0.05, resamples: int = BOOTSTRAP_RESAMPLES,
                   seed: int = 0) -> tuple[float, float, float]:
    """(ratio, low, high): the ratio of the medians of ``new`` to ``base`` and its
    ``1 - alpha`` percentile interval from a two-level bootstrap. Each side is a list of
    groups (the trials of one boot); a resample draws as many boots as there are, with
    replacement, then each drawn boot's trials with replacement. So the interval carries
    the variation between boots as well as within one, and a single slow trial moves the
    medians (and the interval) little, where a range-based spread grows with it."""
    new = [np.asarray(g, float) for g in new if len(g)]
    base = [np.asarray(g, float) for g in base if len(g)]
    if not new or not base:
        return math.nan, math.nan, math.nan
    ratio = float(np.median(np.concatenate(new)) / np.median(np.concatenate(base)))
    rng = np.random.default_rng(seed)

    def medians(groups):
        out = np.empty(resamples)
        for i in range(resamples):
            picked = rng.integers(len(groups), size=len(groups))
            out[i] = np.median(np.concatenate([rng.choice(groups[j], len(groups[j])) for j in picked]))
        return out
    r = medians(new) / medians(base)
    low, high = np.quantile(r, [alpha / 2, 1 - alpha / 2])
    return ratio, float(low), float(high)


def mean_pm_std(mean: float, std: float, digits: int = 2) -> str:
    """'10.67±0.36' as the series writes it; a single measurement has no ±."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f}±{std:.{digits}f}"


def series_table(df: pd.DataFrame, rows=("migrator",), value: str = "gbps", digits: int = 2,
               title: str | None = None, exclude_unclean: bool = True) -> str:
    """The series' table layout: folio size across, ``rows`` down, cells mean±std; the
    title says what the cells are (default: the value's label and unit from the record
    schema).

    Plain text that pastes into a mailing-list post. Trials during which the kernel
    logged an oops, BUG or WARN (``kernel_clean`` False) are left out, and the table says
    how many (``exclude_unclean=False`` keeps them)."""
    rows = list(rows)
    clocks.require_one_clock(df, "this table")
    if title is None:       # what the cells are, from the record schema
        from ..running.record_schema import phrase
        title = f"{phrase(value)} (mean±std)"
    left_out = 0
    if exclude_unclean:
        df, left_out = clean(df)
        if df.empty:
            return "\n".join(([title] if title else []) + [excluded_note(left_out)])
    s = summarize(df, by=rows + ["folio"], value=value)
    folios = sorted(s["folio"].unique(), key=parse_size)
    s["cell"] = [mean_pm_std(m, sd, digits) for m, sd in zip(s["mean"], s["std"])]
    grid = s.pivot_table(index=rows, columns="folio", values="cell", aggfunc="first", sort=False)
    grid = grid.reindex(columns=folios)
    head = " x ".join(rows)
    row_labels = [" ".join(str(v) for v in (idx if isinstance(idx, tuple) else (idx,))) for idx in grid.index]
    w0 = max([len(head)] + [len(r) for r in row_labels])
    widths = [max(len(str(f)), *(len(str(c)) for c in grid[f].fillna("-"))) for f in folios]
    lines = []
    if title:
        lines.append(title)
    header = f"{head:<{w0}} | " + " | ".join(f"{str(f):<{w}}" for f, w in zip(folios, widths)) + " |"
    lines += [header, "=" * len(header)]
    for label, (_, row) in zip(row_labels, grid.iterrows()):
        cells = [str(row[f]) if isinstance(row[f], str) else "-" for f in folios]
        lines.append(f"{label:<{w0}} | " + " | ".join(f"{c:<{w}}" for c, w in zip(cells, widths)) + " |")
    if left_out:
        lines.append(excluded_note(left_out))
    return "\n".join(lines)
