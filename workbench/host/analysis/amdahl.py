"""Amdahl's law for migration copy offload, and an extended cost model fitted to data.

Pure Amdahl (the RFC V3 cover letter's model)::

    speedup = 1 / ((1 - F) + F / S)

``F`` is the share of ``move_pages()`` time spent in ``folio_copy()`` and ``S`` the
speedup of the copy alone. With ``S = 7.5`` (one DMA engine copying 512 x 2M) and
``F ~ 0.97`` it predicts ~6.3x, which the series observed.

Why pure Amdahl fits the measurements poorly, and what the extended model adds:

* **One DMA channel is slower than the CPU for small folios** (V3: 2.75 vs 3.73 GB/s at
  4K; V5: 2.16 vs 3.31). Offloading has a fixed cost *per folio* (a scatter-gather
  entry, DMA mapping, descriptor) that the CPU copy does not pay. Pure Amdahl with
  ``S >= 1`` can never be slower than the baseline, and with ``S < 1`` it would also
  make 2M slower — but one channel is *faster* at 2M (12.50 vs 10.67).
* **Saturation past 8-12 threads or channels.** Every extra worker costs a dispatch
  (queue a work item / prepare a channel, wait for its completion) per batch, and the
  copies share one memory system. Throughput then flattens or drops, while Amdahl with
  ``S`` proportional to the worker count only ever rises.

The extended model gives the time of one ``move_pages()`` call that moves ``B`` bytes
in ``n = B / f`` folios of size ``f`` with migrator ``m`` and ``k`` workers (threads or
channels), in batches of ``batch`` folios (the kernel's ``NR_MAX_BATCHED_MIGRATION``, 512)::

    T = t0 + n * a + n * ptes(f) * p        the kernel's own work: per call, per folio, per PTE
                                            (ptes = f/4K for a PTE-mapped folio, 1 for a PMD-mapped 2M)
      + n * e_m                             the offload path's fixed cost per folio
      + ((W_m / k)**H + (B * r_m)**H)**(1/H) the copy: W_m = B * c_m + n * ptes(f) * q_m is one
                                            worker's work (per byte, per base page); B * r_m is a
                                            bandwidth ceiling the workers share (H = 2: a smooth max)
      + ceil(n / batch) * k * g_m           dispatch: per worker per batch

For the serial baseline (``kernel``) only ``c`` is used of the per-migrator terms, and
Amdahl's ``F`` is its copy ``B * c`` over its time. :func:`fit_extended` fits the
parameters with :func:`scipy.optimize.least_squares` on relative throughput residuals.
By default the offload rows are *anchored* like Amdahl: the kernel's non-copy work at a
folio size is the measured baseline time less its modelled copy. :func:`fit_amdahl`
fits pure Amdahl to the same points with a free ``F`` per folio size and ``S = s1 * k``
per migrator, so the two compare like for like (Amdahl gets the more parameters).

On the RFC V3 tables the fit puts the saturation on the shared ceiling ``r`` and the
dispatch cost ``g`` near zero (PTDMA and the 32-core EPYC show no drop past the peak);
the per-folio cost ``e`` of dcbm is what makes one channel slower than the CPU at 4K.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from . import stats

PAGE = 4096
H = 2.0
PMD_SIZE = 2 << 20
DEFAULT_BATCH = 512


# -- pure Amdahl ----------------------------------------------------------------------

def speedup(F, S):
    """Whole-operation speedup when a share ``F`` of the time is sped up ``S`` times.
    ``S = inf`` gives the limit ``1 / (1 - F)``. Works elementwise on arrays."""
    F, S = np.asarray(F, float), np.asarray(S, float)
    _check_share(F)
    if np.any(S <= 0):
        raise ValueError("copy speedup S must be positive")
    with np.errstate(divide="ignore"):
        out = 1.0 / ((1.0 - F) + F / S)
    return out.item() if out.ndim == 0 else out


def max_speedup(F):
    """The limit of :func:`speedup` for an infinitely fast copy: ``1 / (1 - F)``."""
    return speedup(F, math.inf)


def share_for(total_speedup, S):
    """The copy share ``F`` that yields ``total_speedup`` with a copy speedup ``S``
    (the inverse of :func:`speedup` in ``F``)."""
    sp, S = np.asarray(total_speedup, float), np.asarray(S, float)
    out = (1.0 - 1.0 / sp) / (1.0 - 1.0 / S)
    return out.item() if out.ndim == 0 else out


def copy_speedup_for(total_speedup, F):
    """The copy speedup ``S`` needed for ``total_speedup`` at share ``F``; ``inf`` when it
    is exactly the limit, ``nan`` when even an infinitely fast copy cannot reach it."""
    sp, F = np.asarray(total_speedup, float), np.asarray(F, float)
    _check_share(F)
    rest = 1.0 / sp - (1.0 - F)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(rest > 0, F / np.where(rest > 0, rest, 1.0), np.where(np.isclose(rest, 0), np.inf, np.nan))
    return out.item() if out.ndim == 0 else out


def _check_share(F):
    if np.any((F < 0) | (F > 1)):
        raise ValueError("copy share F must be between 0 and 1")


# -- the extended model ---------------------------------------------------------------

SHARED = ("t0", "a", "p")
PER_MIGRATOR = ("e", "q", "c", "r", "g")
#: starting values and bounds: seconds per call, folio, PTE, byte (c, and r: the ceiling), dispatch
_START = {"t0": 1e-5, "a": 3e-7, "p": 1e-8, "e": 1e-7, "q": 1e-7, "c": 1e-10, "r": 2e-11, "g": 1e-6}
_UPPER = {"t0": 1.0, "a": 1e-3, "p": 1e-4, "e": 1e-3, "q": 1e-4, "c": 1e-7, "r": 1e-7, "g": 1e-2}
#: parameters that stay zero for a serial migrator (the kernel's own copy)
_SERIAL_FIXED = ("e", "q", "r", "g")


def ptes(folio_size):
    """Page-table entries that map one folio: one per base page for a PTE-mapped folio,
    one for a PMD-mapped 2M THP."""
    f = np.asarray(folio_size, float)
    return np.where(f >= PMD_SIZE, 1.0, f / PAGE)


def _points(df: pd.DataFrame, value: str) -> pd.DataFrame:
    """Normalise a frame of measurements: migrator, workers, folio_size, total_bytes, batch, value."""
    d = pd.DataFrame({"migrator": df["migrator"].astype(str).values,
                      "folio_size": df["folio_size"].astype(float).values})
    w = df["workers"] if "workers" in df.columns else stats.workers(df)
    d["workers"] = pd.to_numeric(w, errors="coerce").fillna(1).astype(float).values
    tb = df["total_bytes"] if "total_bytes" in df.columns else pd.Series(1 << 30, index=df.index)
    d["total_bytes"] = tb.astype(float).values
    bs = df["batch_size"] if "batch_size" in df.columns else pd.Series(np.nan, index=df.index)
    d["batch"] = pd.to_numeric(bs, errors="coerce").fillna(DEFAULT_BATCH).astype(float).values
    d["value"] = df[value].astype(float).values if value in df.columns else np.nan
    return d


def model_seconds(params: dict, migrator, workers, folio_size, total_bytes, batch=DEFAULT_BATCH,
                  baseline_seconds=None):
    """Time of one move_pages() call under the extended model (see the module docstring).

    ``baseline_seconds`` (optional, per row; NaN where unknown): the measured time of the
    serial baseline for the same folio size and amount. Where given, the kernel's own
    non-copy work is taken from it (its time less its modelled copy) instead of from
    ``t0``, ``a`` and ``p`` — anchored like Amdahl, which also starts from the baseline."""
    migrator = np.atleast_1d(np.asarray(migrator, dtype=object))
    ones = np.ones(len(migrator))
    k = np.asarray(workers, float) * ones
    f = np.asarray(folio_size, float) * ones
    B = np.asarray(total_bytes, float) * ones
    nb_size = np.asarray(batch, float) * ones
    n = B / f
    per = {name: np.array([params["migrators"][m][name] for m in migrator], float) for name in PER_MIGRATOR}
    noncopy = params["t0"] + n * params["a"] + n * ptes(f) * params["p"]
    if baseline_seconds is not None:
        base_copy = B * params["migrators"][params.get("baseline", "kernel")]["c"]
        anchored = np.maximum(np.asarray(baseline_seconds, float) * ones - base_copy, 0.0)
        noncopy = np.where(np.isfinite(anchored), anchored, noncopy)
    copy = (((B * per["c"] + n * ptes(f) * per["q"]) / k) ** H + (B * per["r"]) ** H) ** (1 / H)
    return noncopy + n * per["e"] + copy + np.ceil(n / nb_size) * k * per["g"]


def _baseline_seconds(d: pd.DataFrame, baseline: str) -> np.ndarray:
    """Per row: the mean measured baseline time at the row's folio size and amount (NaN if none)."""
    b = d[d["migrator"] == baseline].assign(sec=lambda x: x["total_bytes"] / (x["value"] * 1e9))
    means = b.groupby(["folio_size", "total_bytes"])["sec"].mean()
    idx = pd.MultiIndex.from_arrays([d["folio_size"], d["total_bytes"]])
    return means.reindex(idx).to_numpy(dtype=float)


def predict_gbps(params: dict, df: pd.DataFrame, measured_baseline: pd.DataFrame | None = None) -> np.ndarray:
    """Predicted GB/s (1e9 bytes/s, as our records) for every row of ``df``. With
    ``measured_baseline`` (rows of the serial migrator with ``gbps``), offload rows are
    anchored to it; baseline rows are always predicted from the cost parameters."""
    d = _points(df, "gbps")
    base = None
    if measured_baseline is not None and not measured_baseline.empty:
        ref = _points(measured_baseline, "gbps")
        both = pd.concat([ref, d.assign(value=np.nan)], ignore_index=True)
        base = _baseline_seconds(both, params.get("baseline", "kernel"))[len(ref):]
        base = np.where(d["migrator"].values == params.get("baseline", "kernel"), np.nan, base)
    t = model_seconds(params, d["migrator"].values, d["workers"].values, d["folio_size"].values,
                      d["total_bytes"].values, d["batch"].values, baseline_seconds=base)
    return d["total_bytes"].values / t / 1e9


@dataclass
class Fit:
    """A fitted model: its parameters, the data with predictions and residuals."""
    kind: str
    params: dict
    data: pd.DataFrame          # input rows + 'predicted' + 'residual' (GB/s) + 'rel_residual'
    cost: float                 # sum of squared relative residuals
    extra: dict = field(default_factory=dict)

    @property
    def rms_rel(self) -> float:
        return float(np.sqrt(np.mean(self.data["rel_residual"] ** 2)))

    @property
    def rms_gbps(self) -> float:
        return float(np.sqrt(np.mean(self.data["residual"] ** 2)))

    def rms(self, migrators=None, relative: bool = True) -> float:
        """Root-mean-square residual (relative, or in GB/s) over the rows of ``migrators``."""
        d = self.data if migrators is None else self.data[self.data["migrator"].isin(list(migrators))]
        col = "rel_residual" if relative else "residual"
        return float(np.sqrt(np.mean(d[col] ** 2)))

    def summary(self) -> str:
        return f"{self.kind}: rms residual {self.rms_gbps:.2f} GB/s ({100 * self.rms_rel:.1f}% relative), {len(self.data)} points"


def _layout(migrators: list[str], serial: set[str]):
    names = list(SHARED)
    for m in migrators:
        for p in PER_MIGRATOR:
            if m in serial and p in _SERIAL_FIXED:
                continue
            names.append(f"{m}.{p}")
    return names


def _unpack(x, names, migrators):
    vals = dict(zip(names, x))
    params = {k: float(vals[k]) for k in SHARED}
    params["migrators"] = {m: {p: float(vals.get(f"{m}.{p}", 0.0)) for p in PER_MIGRATOR} for m in migrators}
    return params


def fit_extended(df: pd.DataFrame, value: str = "gbps", baseline: str = "kernel", anchored: bool = True) -> Fit:
    """Fit the extended model to measurements (one row per point or per repeat) with
    columns migrator, folio_size, threads/channels (or workers), total_bytes and
    ``value`` (GB/s). Residuals are relative, so 4K and 2M weigh alike.

    The ``baseline`` (serial) rows fit the kernel's own costs (``t0``, ``a``, ``p``, its
    copy ``c``). With ``anchored`` (default), the offload rows start from the measured
    baseline at their folio size, as pure Amdahl does, so the two compare like for like."""
    d = _points(df, value).dropna(subset=["value"]).reset_index(drop=True)
    if d.empty:
        raise ValueError("no measurements to fit")
    migrators = list(dict.fromkeys([baseline] + list(d["migrator"])))
    names = _layout(migrators, {baseline})
    scale = np.array([_START[n.split(".")[-1]] for n in names])
    lo = np.zeros(len(names))
    hi = np.array([_UPPER[n.split(".")[-1]] for n in names]) / scale
    obs = d["value"].values
    base = _baseline_seconds(d, baseline) if anchored else None
    if base is not None:
        base = np.where(d["migrator"].values == baseline, np.nan, base)

    def residuals(z):
        params = _unpack(z * scale, names, migrators)
        params["baseline"] = baseline
        t = model_seconds(params, d["migrator"].values, d["workers"].values, d["folio_size"].values,
                          d["total_bytes"].values, d["batch"].values, baseline_seconds=base)
        return (d["total_bytes"].values / t / 1e9) / obs - 1.0

    best = None
    # the bandwidth ceiling starts at three scales: guards against a poor local minimum
    for m0 in (0.3, 1.0, 3.0):
        start = np.array([m0 if n.endswith(".r") else 1.0 for n in names])
        res = least_squares(residuals, start, bounds=(lo, hi), x_scale="jac", max_nfev=20000)
        if best is None or res.cost < best.cost:
            best = res
    params = _unpack(best.x * scale, names, migrators)
    params["baseline"] = baseline
    measured = df[d["migrator"].values == baseline] if anchored else None
    return _finish("extended", params, df, d, best.cost, predict_gbps(params, df, measured))


def fit_amdahl(df: pd.DataFrame, value: str = "gbps", baseline: str = "kernel") -> Fit:
    """Pure Amdahl fitted to the same measurements: a free copy share ``F`` per folio
    size (shared by every migrator) and a copy speedup ``S = s1 * k`` per migrator,
    applied to the measured baseline at that folio size. Fits the non-baseline rows."""
    d = _points(df, value).dropna(subset=["value"]).reset_index(drop=True)
    base = d[d["migrator"] == baseline].groupby("folio_size")["value"].mean()
    if base.empty:
        raise ValueError(f"pure Amdahl needs {baseline!r} rows as the baseline")
    rows = d[(d["migrator"] != baseline) & d["folio_size"].isin(base.index)].reset_index(drop=True)
    sizes = sorted(rows["folio_size"].unique())
    migs = list(dict.fromkeys(rows["migrator"]))
    fi = rows["folio_size"].map({s: i for i, s in enumerate(sizes)}).values
    mi = rows["migrator"].map({m: i for i, m in enumerate(migs)}).values
    b = rows["folio_size"].map(base).values
    k = rows["workers"].values
    obs = rows["value"].values

    def pred(x):
        F = x[:len(sizes)][fi]
        S = x[len(sizes):][mi] * k
        return b / ((1 - F) + F / S)

    x0 = np.r_[np.full(len(sizes), 0.5), np.ones(len(migs))]
    lo = np.r_[np.zeros(len(sizes)), np.full(len(migs), 1e-3)]
    hi = np.r_[np.ones(len(sizes)), np.full(len(migs), 1e3)]
    res = least_squares(lambda x: pred(x) / obs - 1.0, x0, bounds=(lo, hi), x_scale="jac")
    params = {"F": {int(s): float(v) for s, v in zip(sizes, res.x[:len(sizes)])},
              "s1": {m: float(v) for m, v in zip(migs, res.x[len(sizes):])}}
    src = df.reset_index(drop=True)
    keep = (d["migrator"] != baseline) & d["folio_size"].isin(base.index)
    return _finish("amdahl", params, src[keep.values].reset_index(drop=True), rows, res.cost, pred(res.x))


def _finish(kind, params, df, d, cost, predicted) -> Fit:
    out = df.reset_index(drop=True).copy()
    out["workers"] = d["workers"].values
    out["observed"] = d["value"].values
    out["predicted"] = predicted
    out["residual"] = out["predicted"] - out["observed"]
    out["rel_residual"] = out["residual"] / out["observed"]
    return Fit(kind, params, out, float(cost))


def copy_share_model(params: dict, folio_size, total_bytes, migrator: str = "kernel"):
    """The model's Amdahl F: the copy's share of the serial migrator's call time."""
    f = np.asarray(folio_size, float)
    B = np.asarray(total_bytes, float) * np.ones_like(f)
    t = model_seconds(params, np.array([migrator] * f.size, dtype=object), 1, f, B)
    copy = B * params["migrators"][migrator]["c"]
    out = copy / t
    return out.item() if np.ndim(out) == 0 or out.size == 1 else out
