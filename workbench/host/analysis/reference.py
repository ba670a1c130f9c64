"""Published figures of the RFC series (``data/reference/``), as tidy DataFrames.

Measured on OTHER HARDWARE (AMD Zen 3 EPYC, 2 sockets, 32 cores, PTDMA; V3 on
6.16-rc6, V5 on 7.1-rc1): every frame says so in ``hardware`` and
``other_hardware``, and plots/tables built from it must keep that label.

Columns match our records where they mean the same thing: ``migrator`` (``kernel``
for the vanilla baseline, ``mtcopy``, ``dcbm``), ``threads``, ``channels``, ``folio``,
``folio_size``; the posting's mean and std are ``gbps_mean`` and ``gbps_std``.
``workers`` is the thread or channel count (1 for the kernel's serial copy).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ... import paths
from . import stats

DIR = paths.REPO / "data" / "reference"

V3_SOURCE = "RFC V3 cover letter, linux-mm 2025-09-23"
V3_HARDWARE = "AMD Zen 3 EPYC, 2 sockets, 32 cores, PTDMA, Linux 6.16.0-rc6 (other hardware)"
V5_SOURCE = "RFC V5 (7.1-rc1)"
V5_HARDWARE = "AMD EPYC, Linux 7.1-rc1 (other hardware)"
#: what the V3 benchmark moved at each folio size in result 1 (the cover letter: 1GB)
V3_TOTAL_BYTES = 1 << 30

FOLIO_ORDER = ["4K", "16K", "64K", "128K", "256K", "512K", "1M", "2M"]


def _read(name: str, source: str, hardware: str, directory: Path | None = None) -> pd.DataFrame:
    df = pd.read_csv(Path(directory or DIR) / name, dtype={"table": str, "folio": str})
    for col in ("threads", "channels"):
        if col in df.columns:
            df[col] = df[col].astype("Int64")
    if "threads" in df.columns:
        df["workers"] = stats.workers(df).fillna(1).astype(int)
    df["source"] = source
    df["hardware"] = hardware
    df["other_hardware"] = True
    return df


def throughput(directory: Path | None = None) -> pd.DataFrame:
    """RFC V3 result 1: 1 GB at 4K..2M; baseline, mtcopy 1..16 threads, dcbm 1..16 channels."""
    df = _read("rfc-v3-throughput.csv", V3_SOURCE, V3_HARDWARE, directory)
    df["total_bytes"] = V3_TOTAL_BYTES
    df["kernel_release"] = "6.16.0-rc6"
    return df


def folio_count(directory: Path | None = None) -> pd.DataFrame:
    """RFC V3 result 2: 2M folios, 1..8192 of them, one thread / one channel."""
    df = _read("rfc-v3-folio-count-2M.csv", V3_SOURCE, V3_HARDWARE, directory)
    df["total_bytes"] = df["folio_count"] * df["folio_size"]
    df["kernel_release"] = "6.16.0-rc6"
    return df


def copy_share(directory: Path | None = None) -> pd.DataFrame:
    """The cover letter's share of folio_copy() in move_pages() time (Amdahl's F)."""
    return _read("rfc-v3-copy-share.csv", V3_SOURCE, V3_HARDWARE, directory)


def v5(directory: Path | None = None) -> pd.DataFrame:
    """RFC V5 baseline (4K..2M, no 128K/512K) and one DMA channel at 4K."""
    df = _read("rfc-v5.csv", V5_SOURCE, V5_HARDWARE, directory)
    df["total_bytes"] = V3_TOTAL_BYTES
    df["kernel_release"] = "7.1-rc1"
    return df


def all_throughput(directory: Path | None = None) -> pd.DataFrame:
    """V3 result 1 and the V5 rows in one frame (``series`` = 'V3' or 'V5')."""
    a = throughput(directory).assign(series="V3")
    b = v5(directory).assign(series="V5")
    return pd.concat([a, b], ignore_index=True)


def series_table(df: pd.DataFrame | None = None, rows=("migrator", "workers"), title: str | None = None) -> str:
    """The reference numbers back in the series' text layout (folio sizes across)."""
    from .stats import mean_pm_std
    df = throughput() if df is None else df
    folios = [f for f in FOLIO_ORDER if f in set(df["folio"])]
    rows = list(rows)
    df = df.assign(cell=[mean_pm_std(m, s) for m, s in zip(df["gbps_mean"], df["gbps_std"])])
    grid = df.pivot_table(index=rows, columns="folio", values="cell", aggfunc="first", sort=False)
    grid = grid.reindex(columns=folios)
    head = " x ".join(rows)
    labels = [" ".join(str(v) for v in (i if isinstance(i, tuple) else (i,))) for i in grid.index]
    w0 = max([len(head)] + [len(x) for x in labels])
    widths = [max(len(f), *(len(str(c)) for c in grid[f].fillna("-"))) for f in folios]
    header = f"{head:<{w0}} | " + " | ".join(f"{f:<{w}}" for f, w in zip(folios, widths)) + " |"
    lines = ([title] if title else []) + [header, "=" * len(header)]
    for label, (_, row) in zip(labels, grid.iterrows()):
        cells = [row[f] if isinstance(row[f], str) else "-" for f in folios]
        lines.append(f"{label:<{w0}} | " + " | ".join(f"{c:<{w}}" for c, w in zip(cells, widths)) + " |")
    return "\n".join(lines)
