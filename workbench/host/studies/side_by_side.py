"""Two series' dcbm side by side on the same test-engine modes (notebook 07): per series,
engine mode, folio size and channel count, how many trials verified, what share of the
folios the DMA engine copied (the rest went back to the CPU), how often dcbm waited out
its timeout, F where the series measures it, and the time (functional under TCG).

The series is the record's ``kernel_series`` (``workbench``: ours; ``v6``: RFC V6 as
built with ``workbench kernel build --series``), shown with the kernel release it ran on
(ours: v2 on 6.12, v3 on 7.3); the engine mode is the test engine's
``preset`` from the run's ``--set`` settings (else the settings as they are). Counters
differ between series; :mod:`workbench.host.analysis.dcbm_counts` reads the DMA-copied folios from
each series' own.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ...protocol import PAGE
from ..analysis import dcbm_counts

ENGINE_PREFIX = "/sys/module/test_dma_engine/parameters/"
KEYS = ["kernel_series", "engine", "folio", "channels"]


def engine_mode(settings) -> str:
    """'preset=dsa' from a run's settings string; the engine's other settings as they are."""
    text = settings if isinstance(settings, str) else ""
    found = re.search(re.escape(ENGINE_PREFIX) + r"preset=(\S+)", text)
    if found:
        return found.group(1)
    rest = " ".join(s.replace(ENGINE_PREFIX, "") for s in text.split() if s.startswith(ENGINE_PREFIX))
    return rest or "kind"


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    return pd.to_numeric(df[name], errors="coerce") if name in df.columns else pd.Series(np.nan, index=df.index)


def table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per series, engine mode, folio size and channel count (dcbm trials only)."""
    d = df[df["migrator"] == "dcbm"].copy()
    if d.empty:
        return pd.DataFrame(columns=KEYS)
    d["engine"] = d["settings"].map(engine_mode)
    nfolios = _col(d, "pages") * PAGE / _col(d, "folio_size")
    d["dma_share"] = dcbm_counts.dma_copied(d) / nfolios
    d["corrupted"] = ~d["verified"].astype(bool)
    d["fo"] = _col(d, "folio_size")
    # F: copy time / batch time where the series counts both (v2); else copy time / the
    # call's time (v3 counts the copy, not the batch); V6 counts neither
    d["F"] = _col(d, "copy_share").fillna(_col(d, "mig_dcbm_copy_ns") / (_col(d, "seconds") * 1e9))
    rows = []
    for key, g in d.groupby(KEYS, sort=False):
        rows.append(dict(zip(KEYS, key), kernel=g["kernel_release"].iloc[0] if "kernel_release" in g else None,
                         folio_size=g["fo"].iloc[0], trials=len(g),
                         verified=int((~g["corrupted"]).sum()), corrupted=int(g["corrupted"].sum()),
                         bad_pages_max=_col(g, "verify_bad_pages").max(),
                         dma_share=g["dma_share"].mean(), timeouts=_col(g, "mig_dcbm_timeouts").mean(),
                         F=g["F"].mean(), seconds=_col(g, "seconds").median(),
                         functional=bool(g["accelerator"].eq("tcg").any()) if "accelerator" in g else None))
    out = pd.DataFrame(rows)
    return out.sort_values(["engine", "folio_size", "channels", "kernel_series"]).reset_index(drop=True)


def _bars(t: pd.DataFrame, draw):
    """One axis per engine mode, a group of bars per (folio size, channel count), a bar
    per series in it: ``draw(ax, x, width, colour_index, row, first)`` draws one."""
    import matplotlib.pyplot as plt
    engines = list(dict.fromkeys(t["engine"]))
    series = list(dict.fromkeys(t["kernel_series"]))
    fig, axes = plt.subplots(1, len(engines), figsize=(5.5 * len(engines), 3.6), sharey=True, squeeze=False)
    for ax, engine in zip(axes[0], engines):
        e = t[t["engine"] == engine]
        groups = list(dict.fromkeys(zip(e["folio"], e["channels"])))
        width = 0.8 / max(len(series), 1)
        for i, s in enumerate(series):
            for j, (folio, ch) in enumerate(groups):
                row = e[(e["kernel_series"] == s) & (e["folio"] == folio) & (e["channels"] == ch)]
                if not row.empty:
                    draw(ax, j + i * width, width, i, row.iloc[0], j == 0)
        ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(groups))])
        ax.set_xticklabels([f"{f}\n{c} ch" for f, c in groups])
        functional = bool(e["functional"].fillna(False).astype(bool).any()) if "functional" in e else False
        ax.set_title(f"engine: {engine}" + (" (TCG: functional)" if functional else ""))
    return fig, axes[0]


def fig_dma_share(t: pd.DataFrame):
    """Per engine mode: the share of folios the engine copied, one bar per series for each
    folio size and channel count; a bar whose trials failed verification is marked."""
    def draw(ax, x, width, i, r, first):
        bad = r["corrupted"] > 0
        ax.bar(x, r["dma_share"], width, color=f"C{i}", hatch="//" if bad else None,
               edgecolor="red" if bad else None, label=r["kernel_series"] if first else None)
        if bad:
            ax.text(x, r["dma_share"] + 0.02, f"{r['corrupted']}/{r['trials']}\ncorrupt", ha="center", fontsize=7,
                    color="red")
    fig, axes = _bars(t, draw)
    axes[0].set_ylim(0, 1.15)
    axes[0].set_ylabel("share of folios copied by DMA")
    axes[0].legend(title="series", fontsize=8)
    fig.tight_layout()
    return fig


def fig_time(t: pd.DataFrame):
    """Per engine mode: each series' median time per trial at each folio size and channel
    count (under the icount clock, instruction-time: where one series went back to the CPU
    or waited, it shows; under TCG it is functional only, and the title says so)."""
    def draw(ax, x, width, i, r, first):
        ax.bar(x, r["seconds"] * 1e3, width, color=f"C{i}", label=f"{r['kernel_series']} ({r['kernel']})" if first
               else None)
    fig, axes = _bars(t, draw)
    axes[0].set_ylabel("median time per trial (ms)")
    axes[0].legend(title="series", fontsize=8)
    fig.tight_layout()
    return fig
