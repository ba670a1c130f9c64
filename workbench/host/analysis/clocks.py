"""What a timing means, said the same way everywhere (tables, plots, the panel, reports).

A result carries its ``accelerator`` (native, kvm, tcg, icount) and its ``clock``:

* ``wall``: real time. On bare metal or KVM that is speed; under QEMU's TCG (no usable
  KVM) the CPU is emulated and timings are functional only.
* ``icount``: QEMU's instruction-counted clock (single-threaded TCG, one nanosecond of
  guest time per executed guest instruction). It is deterministic and measures how much
  work a code path does, not how fast it runs: no memory system, no parallel speedup.

Times of different clocks are different quantities, so a comparison that mixes them is
refused (:func:`require_one_clock`).
"""

from __future__ import annotations

import pandas as pd

from ...errors import WorkbenchError

TCG_NOTE = "TCG: timings are functional, not performance"
ICOUNT_NOTE = "instruction-time (icount): deterministic path cost, not speed"


def note(accelerator: str | None = None, clock: str | None = None) -> str | None:
    """The label a result of this accelerator and clock needs, or None (speed)."""
    if clock == "icount" or accelerator == "icount":
        return ICOUNT_NOTE
    if accelerator == "tcg":
        return TCG_NOTE
    return None


def frame_note(df: pd.DataFrame) -> str | None:
    """The label for a table or plot of these rows (they are of one clock: see
    :func:`require_one_clock`)."""
    if df is None or df.empty:
        return None
    clocks = set(df["clock"].dropna()) if "clock" in df.columns else set()
    accels = set(df["accelerator"].dropna()) if "accelerator" in df.columns else set()
    if "icount" in clocks or "icount" in accels:
        return ICOUNT_NOTE
    if "tcg" in accels:
        return TCG_NOTE
    return None


def clocks_of(df: pd.DataFrame) -> list[str]:
    if df is None or df.empty:
        return []
    if "clock" in df.columns:
        return sorted(set(df["clock"].fillna("wall")))
    if "accelerator" in df.columns:
        return sorted({"icount" if a == "icount" else "wall" for a in df["accelerator"]})
    return ["wall"]


def require_one_clock(df: pd.DataFrame, what: str = "this comparison") -> None:
    """Refuse to compare times measured with different clocks, in one line."""
    clocks = clocks_of(df)
    if len(clocks) > 1:
        raise WorkbenchError(f"{what} mixes clocks ({', '.join(clocks)}): instruction-time (icount) and wall "
                             "time are different quantities; compare runs of one clock")
