"""``workbench compare``: two sides, configuration by configuration, with significance.

A side is a set of stored runs: run ids, or with ``by`` the runs whose ``by`` column
(``kernel_release``, ``kernel``, ``target``, ``migrator``, ...) has a given value. For
every configuration both sides measured (migrator, workers, batch size, workload, folio
size, ... — whatever is not ``by``), it gives each side's n, mean and standard deviation,
the change of the new mean in percent of the base, and Welch's t-test, in the layout
kernel developers read in LKP's ncompare and mmtests' compare-kernels::

           base           %change            new
     ---------------- ---------------- ----------------
          3.73 ±  2%      +27.9%  *        4.77 ±  1%   kernel 4K

``*`` marks a change whose p-value is under ``alpha`` (default 0.05); a configuration
with fewer than ``MIN_N`` trials on a side is marked ``n<3`` (too few to tell). Times of
different clocks are never compared; runs of different accelerators only when asked
(``across_accelerators``), and the header then says so.
"""

from __future__ import annotations

import math

import pandas as pd

from ...catalogue import knobs
from ...errors import WorkbenchError
from ...units import parse_size
from . import clocks, stats
from ..running import record_schema, store

MIN_N = 3
#: what identifies a configuration, in this order (columns a frame lacks are skipped)
CONFIG_COLUMNS = knobs.config_columns()
BY_CHOICES = ("run", "kernel_release", "kernel", "target", "accelerator", "migrator", "label", "workload")


def select(df: pd.DataFrame, selector: str, by: str) -> pd.DataFrame:
    """The rows of one side: ``selector`` is a run id (by='run') or a value of column ``by``."""
    col = "run_id" if by == "run" else by
    if col not in df.columns:
        raise WorkbenchError(f"--by {by}: these runs have no {col} column; allowed: {', '.join(BY_CHOICES)}")
    side = df[df[col].astype(str) == str(selector)]
    if side.empty:
        known = ", ".join(sorted(map(str, df[col].dropna().unique()))[:8])
        raise WorkbenchError(f"no runs with {col} {selector!r}; there are: {known}")
    return side


def _configs(df: pd.DataFrame, by: str) -> pd.DataFrame:
    from .workload_view import with_workload
    d = with_workload(df)      # runs from before workloads are move-pages: they compare with the new ones
    d["workload"] = d["workload"] + "/" + d["reason"]      # the migration reason in every row
    if (d["access"] == "none").all():
        d["access"] = None     # no column of 'none's
    d["workers"] = stats.workers(d)
    for col in CONFIG_COLUMNS:
        if col in d.columns:
            d[col] = d[col].map(lambda v: "-" if v is None or (isinstance(v, float) and math.isnan(v))
                                else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)))
    return d


def accelerators(both: pd.DataFrame) -> list[str]:
    return sorted(set(both["accelerator"].dropna())) if "accelerator" in both.columns else []


def configurations(both: pd.DataFrame, by: str, across_accelerators: bool = False) -> tuple[list[str], pd.DataFrame]:
    """The two sides (``_side`` base/new) with their configuration columns, and the columns
    that tell configurations apart; refuses mixed clocks, and mixed accelerators unless
    ``across_accelerators``."""
    clocks.require_one_clock(both, "this comparison")
    accels = accelerators(both)
    if len(accels) > 1 and not across_accelerators:
        raise WorkbenchError(f"this comparison mixes accelerators ({', '.join(accels)}): TCG, KVM and bare-metal "
                             "timings are not the same kind of number; compare runs of one accelerator, or pass "
                             "--across-accelerators to compare them anyway (the table then says so)")
    d = _configs(both, by)
    keys = [c for c in CONFIG_COLUMNS if c in d.columns and c != by and d[c].nunique() > 0]
    return [c for c in keys if not (d[c] == "-").all()] or ["folio"], d


def compare(base: pd.DataFrame, new: pd.DataFrame, by: str = "run", value: str = "gbps", alpha: float = 0.05,
            across_accelerators: bool = False) -> pd.DataFrame:
    """One row per configuration both sides measured."""
    both = pd.concat([base.assign(_side="base"), new.assign(_side="new")], ignore_index=True)
    if value not in both.columns:
        clocks.require_one_clock(both, "this comparison")
        raise WorkbenchError(f"value {value!r} is not a column of these runs; for example gbps or seconds")
    keys, d = configurations(both, by, across_accelerators)
    accels = accelerators(both)
    rows = []
    for cfg, g in d.groupby(keys, sort=False):
        cfg = cfg if isinstance(cfg, tuple) else (cfg,)
        a = pd.to_numeric(g.loc[g["_side"] == "base", value], errors="coerce").dropna().to_numpy(float)
        b = pd.to_numeric(g.loc[g["_side"] == "new", value], errors="coerce").dropna().to_numpy(float)
        if not len(a) or not len(b):
            continue
        row = dict(zip(keys, cfg))
        row.update(base_n=len(a), base_mean=a.mean(), base_std=a.std(ddof=1) if len(a) > 1 else math.nan,
                   new_n=len(b), new_mean=b.mean(), new_std=b.std(ddof=1) if len(b) > 1 else math.nan)
        row["change_pct"] = (b.mean() / a.mean() - 1) * 100 if a.mean() else math.nan
        if len(a) >= 2 and len(b) >= 2 and (a.std() > 0 or b.std() > 0):
            w = stats.welch(a, b)
            row["t"], row["p"] = w["t"], w["p"]
        else:
            row["t"], row["p"] = math.nan, math.nan
        row["significant"] = bool(row["p"] < alpha) if not math.isnan(row["p"]) else False
        row["note"] = f"n<{MIN_N}" if min(len(a), len(b)) < MIN_N else ""
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        raise WorkbenchError("the two sides have no configuration in common (same migrator, workers, batch size "
                             "and folio size); nothing to compare")
    if "folio" in out.columns:
        out = out.assign(_f=out["folio"].map(lambda f: parse_size(f) if f != "-" else 0)).sort_values(
            [k for k in keys if k != "folio"] + ["_f"], kind="stable").drop(columns="_f")
    out.attrs.update(keys=keys, value=value, alpha=alpha, accelerators=accels, clock=clocks.clocks_of(both))
    return out.reset_index(drop=True)


def _pct_std(mean, std) -> str:
    if std is None or (isinstance(std, float) and math.isnan(std)) or not mean:
        return "      "
    return f"±{abs(std / mean) * 100:3.0f}%"


def format_text(table: pd.DataFrame, base_label: str, new_label: str) -> str:
    """The ncompare layout: base ±%std, %change (* if significant), new ±%std, configuration."""
    keys, value = table.attrs.get("keys", []), table.attrs.get("value", "gbps")
    lines = []
    if len(table.attrs.get("accelerators", [])) > 1:
        lines.append(f"NOTE: across accelerators ({', '.join(table.attrs['accelerators'])}): not like for like")
    accels = table.attrs.get("accelerators", [])
    note = clocks.note(accels[0] if len(accels) == 1 else None, (table.attrs.get("clock") or ["wall"])[0])
    lines.append(f"{record_schema.heading(value)}, mean of n trials; * = Welch's t-test p < "
                 f"{table.attrs.get('alpha', 0.05)}"
                 + (f"; {note}" if note else ""))
    w = max(16, len(base_label), len(new_label))
    lines.append(f"{base_label:>{w}} {'%change':>16} {new_label:>{w}}")
    lines.append(f"{'-' * w} {'-' * 16} {'-' * w}")
    for _, r in table.iterrows():
        base = f"{r['base_mean']:.2f} {_pct_std(r['base_mean'], r['base_std'])}"
        new = f"{r['new_mean']:.2f} {_pct_std(r['new_mean'], r['new_std'])}"
        star = "*" if r["significant"] else " "
        change = f"{r['change_pct']:+.1f}% {star}" if not math.isnan(r["change_pct"]) else "-"
        cfg = " ".join(str(r[k]) for k in keys if str(r[k]) != "-")
        tail = f"  ({r['note']}: too few trials to tell)" if r["note"] else ""
        lines.append(f"{base:>{w}} {change:>16} {new:>{w}}   {cfg}{tail}")
    return "\n".join(lines)


def load_sides(base: str, new: list[str], by: str = "run", root=None) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """The base side and each new side from the stored runs."""
    if by not in BY_CHOICES:
        raise WorkbenchError(f"--by {by!r} is not one of {', '.join(BY_CHOICES)}")
    if by == "run":
        frames = [store.load_runs(root, [s]) for s in [base, *new]]
        for side, frame in zip([base, *new], frames):
            if frame.empty:
                raise WorkbenchError(f"run {side!r} has no readable record to compare")
        return frames[0], frames[1:]
    df = store.load_runs(root)
    if df.empty:
        raise WorkbenchError(f"no runs stored in {root or 'data/runs'}")
    return select(df, base, by), [select(df, s, by) for s in new]
