"""What dcbm copied, read from a record under whichever series' counter names it has.

The series name the same facts differently: series v3 (kernel/v3 0003, 0008) counts the
folios dcbm copied by DMA as ``copied`` and those the CPU copied instead as ``fallbacks``;
series v2 (kernel/patches 0006) and RFC V6 count ``folios_migrated`` and
``folios_failures`` (v2 also ``fallbacks``). Records keep each series' own columns
(``mig_dcbm_<counter>``); tables and notebooks read them through here.
"""

from __future__ import annotations

import pandas as pd

#: the record columns of the folios dcbm copied by DMA, the newest series' name first
DMA_COPIED = ("mig_dcbm_copied", "mig_dcbm_folios_migrated")
#: the record columns of the folios dcbm gave back to the CPU after a failed copy
DMA_FAILED = ("mig_dcbm_fallbacks", "mig_dcbm_folios_failures")


def _first(df: pd.DataFrame, names: tuple[str, ...]) -> pd.Series:
    """Per record, the first of ``names`` it has a value in (0 where it has none)."""
    out = pd.Series(float("nan"), index=df.index)
    for name in names:
        if name in df.columns:
            out = out.fillna(pd.to_numeric(df[name], errors="coerce"))
    return out.fillna(0)


def dma_copied(df: pd.DataFrame) -> pd.Series:
    return _first(df, DMA_COPIED)


def cpu_fallbacks(df: pd.DataFrame) -> pd.Series:
    return _first(df, DMA_FAILED)
