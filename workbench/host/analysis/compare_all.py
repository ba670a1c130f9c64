"""``workbench compare --all``: every measured field of two sides, configuration by
configuration, as LKP prints a commit against its parent (``%change ± %stddev``)::

           base             %change             new
     ----------------   ---------------   ----------------
          3.73 ±  2%        +27.9%  *         4.77 ±  1%   gbps [GB/s]
        512.00             -100.0%  *            0          mig_mtcopy_fallbacks

Each field is named with its unit from the record schema. A field is every numeric column that measures something (throughput and times, the
kernel's vmstat deltas, the series' counters, trace and monitor summaries), not one that
identifies a trial (seeds, repeat, sizes asked for, nodes). A rate (``gbps``, ``*_mbps``,
``*_per_s``) is averaged harmonically, everything else arithmetically. A field that is
zero on both sides everywhere is left out and counted. Where a configuration has more than
one field, and over the configurations, the geometric mean of the ratios new/base sums up
each field (``gmean``).

Significance, marked ``*``: Welch's t-test at ``alpha`` (the default); or ``--method
subsample-median``, the sub-selection method mmtests' compare-kernels offers (Kalibera,
Bulej and Tůma, 2005): each side's centre is the median of re-sampled means, each run
(boot) counted as one, with a confidence interval that adds the spread between boots to
the variance within them; a change counts when the two intervals do not overlap (needs 4
trials a side). It is the honest test when trials come from several boots. Two sides whose trials all agree exactly (counters
under the instruction-counted clock) and differ are a change without a test.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pandas as pd
from scipy import stats as sps

from ...errors import WorkbenchError
from . import clocks, compare, stats
from ..running import record_schema

#: numeric columns that identify or configure a trial rather than measure it
NOT_MEASURED = frozenset({
    "repeat", "seed", "trial_seed", "folio_size", "total_bytes", "src", "dst", "expect_node", "access_threads",
    "host_started", "host_finished", "functional", "verified", "threads", "channels", "batch_size", "workers_n",
    "batch_kernel_copy", "cpus", "first_folio", "monitor_interval_ms", "call_cpu_start", "call_cpu_end"})
RATE = re.compile(r"(gbps|mbps|_per_s)$")
#: fields shown first in a configuration's block, in this order
HEADLINE = ("gbps", "seconds", "cost_ns")
METHODS = ("welch", "subsample-median")
SUBSAMPLES = 200


def measures(df: pd.DataFrame) -> list[str]:
    """The numeric columns of ``df`` that measure something, headline fields first."""
    cols = [c for c in df.columns if c not in NOT_MEASURED and not c.startswith("_")
            and pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    return [c for c in HEADLINE if c in cols] + sorted(c for c in cols if c not in HEADLINE)


def is_rate(field: str) -> bool:
    return bool(RATE.search(field))


def centre(x: np.ndarray, rate: bool) -> float:
    """The harmonic mean of a rate (when every value is positive), else the mean."""
    if not len(x):
        return math.nan
    if rate and (x > 0).all():
        return len(x) / float(np.sum(1.0 / x))
    return float(x.mean())


def subsample_interval(runs: list[np.ndarray], rate: bool, alpha: float, rng) -> tuple[float, float]:
    """(centre, confidence half-length) of one side from sub-selections, after Kalibera,
    Bulej and Tůma, "Automated detection of performance regressions: the Mono experience"
    (2005), the method mmtests' compare-kernels offers: in each run (a boot), the median
    over ``SUBSAMPLES`` re-samples (80%, with replacement) of their centre and of their
    variance; the side's centre is the mean of the runs' medians, and its half-length
    combines the variance within runs with the spread between them."""
    meds, variances, lens = [], [], []
    for x in runs:
        m = max(2, int(0.8 * len(x)))
        picks = rng.choice(x, (SUBSAMPLES, m), replace=True)
        centres = m / (1.0 / picks).sum(axis=1) if rate and (x > 0).all() else picks.mean(axis=1)
        meds.append(float(np.median(centres)))
        variances.append(float(np.median(picks.var(axis=1, ddof=1))))
        lens.append(m)
    mean = float(np.mean(meds))
    between = sum((md - mean) ** 2 * n for md, n in zip(meds, lens)) / (len(runs) - 1) if len(runs) > 1 else 0.0
    z = float(sps.norm.ppf(1 - alpha / 2))
    return mean, z * math.sqrt((between + float(np.mean(variances))) / sum(lens))


def _one(runs_a: list[np.ndarray], runs_b: list[np.ndarray], field: str, alpha: float, method: str, rng) -> dict:
    a, b = np.concatenate(runs_a), np.concatenate(runs_b)
    rate = is_rate(field)
    row = {"field": field, "mean": "harmonic" if rate else "arithmetic", "base_n": len(a), "new_n": len(b),
           "base": centre(a, rate), "new": centre(b, rate),
           "base_std": float(a.std(ddof=1)) if len(a) > 1 else math.nan,
           "new_std": float(b.std(ddof=1)) if len(b) > 1 else math.nan, "p": math.nan, "note": ""}
    exact = len(a) > 1 and len(b) > 1 and a.std() == 0 and b.std() == 0
    if method == "subsample-median":
        if min(len(a), len(b)) < 4:
            row["note"] = "n<4"
            row["significant"] = False
        else:
            row["base"], half_a = subsample_interval(runs_a, rate, alpha, rng)
            row["new"], half_b = subsample_interval(runs_b, rate, alpha, rng)
            row["half_base"], row["half_new"] = half_a, half_b
            # the intervals do not overlap (mmtests' cidiff beyond 1)
            row["significant"] = bool(abs(row["new"] - row["base"]) > half_a + half_b)
    elif exact:
        row["significant"] = bool(a[0] != b[0])
    elif len(a) >= 2 and len(b) >= 2:
        with warnings.catch_warnings():       # one side constant: scipy warns of lost precision, p stands
            warnings.simplefilter("ignore", RuntimeWarning)
            row["p"] = stats.welch(a, b)["p"]
        row["significant"] = bool(row["p"] < alpha)
    else:
        row["significant"] = False
    if min(len(a), len(b)) < compare.MIN_N and not row["note"]:
        row["note"] = f"n<{compare.MIN_N}"
    base, new = row["base"], row["new"]
    row["change_pct"] = (new / base - 1) * 100 if base else (math.inf if new else 0.0)
    return row


def compare_all(base: pd.DataFrame, new: pd.DataFrame, by: str = "run", alpha: float = 0.05,
                method: str = "welch", across_accelerators: bool = False) -> pd.DataFrame:
    """A row per (configuration, field) both sides measured, then a ``gmean`` row per field
    measured in more than one configuration."""
    if method not in METHODS:
        raise WorkbenchError(f"--method {method!r} is not one of {', '.join(METHODS)}")
    both = pd.concat([base.assign(_side="base"), new.assign(_side="new")], ignore_index=True).copy()
    # the same checks as one field's comparison: one clock, one accelerator unless asked
    keys, d = compare.configurations(both, by, across_accelerators)
    fields = measures(both)
    rng = np.random.default_rng(0)
    rows, zero = [], set(fields)
    for cfg, g in d.groupby(keys, sort=False):
        cfg = cfg if isinstance(cfg, tuple) else (cfg,)
        sides = {s: g[g["_side"] == s] for s in ("base", "new")}
        for field in fields:
            per_run = {s: [v for v in (pd.to_numeric(r[field], errors="coerce").dropna().to_numpy(float)
                                       for _, r in sides[s].groupby("run_id", sort=True)) if len(v)]
                       for s in sides}
            if not per_run["base"] or not per_run["new"]:
                continue
            if not any(v.any() for s in per_run.values() for v in s):
                continue
            zero.discard(field)
            rows.append({**dict(zip(keys, cfg)), **_one(per_run["base"], per_run["new"], field, alpha, method, rng)})
    if not rows:
        raise WorkbenchError("the two sides have no configuration and field in common with a non-zero value; "
                             "nothing to compare")
    out = pd.DataFrame(rows)
    gmeans = []
    for field, g in out.groupby("field", sort=False):
        ratios = (g["new"] / g["base"]).to_numpy(float)
        ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
        if len(g) > 1 and len(ratios):
            gmeans.append({**{k: "-" for k in keys}, "field": field, "mean": "geometric", "base_n": len(g),
                           "new_n": len(g), "change_pct": (math.exp(np.log(ratios).mean()) - 1) * 100,
                           "significant": False, "note": f"gmean of {len(ratios)} configurations"})
    out = pd.concat([out, pd.DataFrame(gmeans)], ignore_index=True) if gmeans else out
    out.attrs.update(keys=keys, alpha=alpha, method=method, zero_fields=sorted(zero),
                     accelerators=compare.accelerators(both), clock=clocks.clocks_of(both))
    return out


def _num(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    v = float(v)
    return f"{int(v)}" if v.is_integer() and abs(v) < 1e9 else f"{v:.4g}"


def format_text(table: pd.DataFrame, base_label: str, new_label: str, changed_only: bool = False) -> str:
    """LKP's layout: base ±%stddev, %change (* significant), new ±%stddev, field; a block
    per configuration, then the fields' geometric means over configurations.
    ``changed_only``: only the rows marked significant (and a count of the others)."""
    keys = table.attrs.get("keys", [])
    hidden = 0
    if changed_only:
        marked = table["significant"].astype(bool)
        rows = table["mean"] != "geometric"
        hidden = int((~marked & rows).sum())
        moved = set(table.loc[marked & rows, "field"])
        table = table[marked | (~rows & table["field"].isin(moved))]
    how = ("Welch's t-test p < {a}" if table.attrs.get("method", "welch") == "welch"
           else "subsample-median {p:.0f}% intervals apart").format(a=table.attrs.get("alpha", 0.05),
                                                                     p=(1 - table.attrs.get("alpha", 0.05)) * 100)
    w = 16
    lines = [f"every field: harmonic means of rates, arithmetic of the rest; * = {how}"]
    if max(len(base_label), len(new_label)) > w:
        lines += [f"base: {base_label}", f"new:  {new_label}"]
        base_label, new_label = "base", "new"
    lines += [f"{base_label:>{w}} {'%change':>16} {new_label:>{w}}", f"{'-' * w} {'-' * 16} {'-' * w}"]
    per_cfg = table[table["mean"] != "geometric"]
    for cfg, g in per_cfg.groupby(keys, sort=False) if keys else [((), per_cfg)]:
        cfg = cfg if isinstance(cfg, tuple) else (cfg,)
        lines.append("  " + (" ".join(str(c) for c in cfg if str(c) != "-") or "all"))
        for _, r in g.iterrows():
            lines.append(_line(r, w))
    gm = table[table["mean"] == "geometric"]
    if not gm.empty:
        lines.append("  geometric mean of new/base over the configurations")
        for _, r in gm.iterrows():
            lines.append(f"{'':>{w}} {_change(r):>16} {'':>{w}}   {_field(r['field'])}  ({r['note']})")
    zero = table.attrs.get("zero_fields") or []
    if zero:
        lines.append(f"({len(zero)} fields zero on both sides left out)")
    if hidden:
        lines.append(f"({hidden} rows without a significant change not shown)")
    return "\n".join(lines)


def _change(r) -> str:
    c = r["change_pct"]
    if c is None or (isinstance(c, float) and math.isnan(c)):
        return "-"
    if math.isinf(c):
        return "new  " + ("*" if r["significant"] else " ")
    return f"{c:+.1f}% " + ("*" if r["significant"] else " ")


def _line(r, w: int) -> str:
    base = f"{_num(r['base'])} {compare._pct_std(r['base'], r['base_std'])}"
    new = f"{_num(r['new'])} {compare._pct_std(r['new'], r['new_std'])}"
    note = f"  ({r['note']})" if r["note"] else ""
    return f"{base:>{w}} {_change(r):>16} {new:>{w}}   {_field(r['field'])}{note}"


def _field(name: str) -> str:
    """A field as LKP names it, with its unit from the record schema: 'gbps [GB/s]'."""
    unit = record_schema.unit(name)
    return f"{name} [{unit}]" if unit else name
