"""Conformance runs in the report (notebook 04): per run, its matrix case × migrator
configuration as a coloured grid, the failures with their output and the skips with their
reasons. The records and the text matrix are :mod:`workbench.host.studies.conformance`'s."""

from __future__ import annotations

import pandas as pd

from ..studies import conformance
from ..running import store

#: a cell's colour and the short text in it, by verdict
CELL = {"pass": ("#4c9a2a", "pass"), "fail": ("#c0392b", "FAIL"), "skip": ("#b0b0b0", "skip"),
        "did not exercise": ("#e6a23c", "n/e")}


def load(run_ids=None, root=None) -> pd.DataFrame:
    """The conformance records of the chosen runs (default: all); empty when there are none."""
    return store.load_runs(root, list(run_ids) if run_ids else None, kind="conformance")


def grid(df: pd.DataFrame) -> pd.DataFrame:
    """One run's verdicts: a row per suite:case, a column per configuration (in the order
    of :data:`conformance.CONFIGS`); a cell whose kernel log was not clean (but for a fault
    mode's expected report) ends in ``+log``."""
    df = df.copy()
    df["row"] = df["suite"] + ":" + df["case"].fillna(df["test"])
    df["cell"] = df["verdict"].where(~conformance.unclean(df), df["verdict"] + " +log")
    order = [c for c in conformance.CONFIGS if c in set(df["config"])]
    rows = list(dict.fromkeys(df["row"]))
    return df.pivot_table(index="row", columns="config", values="cell", aggfunc="first").reindex(
        index=rows, columns=order)


def fig_matrix(df: pd.DataFrame, title: str = ""):
    """The grid of one run as coloured cells (grey: skip; amber: passed without the
    migrator copying anything, so it says nothing about it; a dark border: kernel log)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle
    cells = grid(df)
    rows, cols = cells.shape
    fig, ax = plt.subplots(figsize=(2.4 + 0.95 * cols + 0.08 * max(len(r) for r in cells.index), 0.9 + 0.3 * rows))
    for i, row in enumerate(cells.index):
        for j, cfg in enumerate(cells.columns):
            value = cells.loc[row, cfg]
            if not isinstance(value, str):
                continue
            verdict, dirty = value.replace(" +log", ""), value.endswith("+log")
            colour, text = CELL.get(verdict, ("#ffffff", verdict))
            ax.add_patch(Rectangle((j, i), 1, 1, facecolor=colour, edgecolor="black" if dirty else "white",
                                   linewidth=2.5 if dirty else 1))
            ax.text(j + 0.5, i + 0.5, text + (" +log" if dirty else ""), ha="center", va="center", fontsize=7,
                    color="white" if verdict in ("pass", "fail") else "black")
    ax.set_xlim(0, cols)
    ax.set_ylim(rows, 0)
    ax.set_xticks([j + 0.5 for j in range(cols)], cells.columns, rotation=40, ha="right", fontsize=8)
    ax.set_yticks([i + 0.5 for i in range(rows)], cells.index, fontsize=8)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.legend(handles=[Patch(color=c, label=v) for v, (c, _) in CELL.items()], loc="upper left",
              bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.set_title(title, fontsize=9, loc="left")
    fig.tight_layout()
    return fig


def headline(df: pd.DataFrame) -> str:
    """One run in a line: its kernel, what ran, and the count of each verdict."""
    counts = df["verdict"].value_counts()
    said = ", ".join(f"{counts[v]} {v}" for v in CELL if v in counts)
    dirty = int(conformance.unclean(df).sum())
    first = df.iloc[0]
    return (f"**{first['run_id']}**: kernel {first.get('kernel_release')} ({first.get('interface')}), "
            f"{len(df[['suite', 'case']].drop_duplicates())} cases × {df['config'].nunique()} "
            f"configurations: {said}" + (f"; {dirty} with a kernel report" if dirty else "")
            + ("; functional (TCG)" if bool(first.get("functional")) else ""))


def show(df: pd.DataFrame) -> None:
    """Every run of ``df``: its headline, its grid, then the text matrix's failures and
    skips (with the programs' own last lines)."""
    from IPython.display import Markdown, display
    if df.empty:
        print("no conformance runs among these (`workbench conformance` makes one)")
        return
    import matplotlib.pyplot as plt
    for run_id, g in df.groupby("run_id", sort=True):
        display(Markdown(headline(g)))
        fig = fig_matrix(g, title=f"{run_id}: kernel {g['kernel_release'].iloc[0]}")
        display(fig)
        plt.close(fig)
        notes = conformance.matrix(g).split("\n", 1)
        if len(notes) > 1 and notes[1].strip():
            print(notes[1].strip())
