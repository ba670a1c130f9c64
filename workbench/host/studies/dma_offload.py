"""DMA offload under injected faults (``notebooks/05-dma-offload.ipynb``).

dcbm (kernel patch 0010) on the test-only DMA engine (patch 0011), whose module
parameters fail, corrupt or never complete every Nth descriptor, or complete them out of
order. Each fault is one stored run; :func:`fault_table` lines up what the engine did
with what dcbm counted and what the verification found, so a reader sees at a glance that
failed and lost copies fell back to the CPU (data intact, ``fallbacks`` = faults) and
that a silently corrupted copy was caught with its page and offset.
"""

from __future__ import annotations

import pandas as pd

from ..analysis import clocks, dcbm_counts
from ..running import runner
from ...errors import WorkbenchError
from ...catalogue.migrators import DCBM, TEST_DMA_ENGINE, TEST_ENGINE_PARAMS
from ..running.plan import RunParams

#: fault knob -> the engine counter that says how often it fired
FAULTS = {"fail_every": "failed", "corrupt_every": "corrupted", "hang_every": "hung", "reverse": None}


def channel_sweep(target, channels: list[int], folio_sizes: list[int], total_size: int, repeats: int = 1,
                  dma_engine: str | None = None, root=None, progress: bool = False) -> pd.DataFrame:
    """dcbm at each channel count (one stored run each), plus the kernel copy as the
    baseline; records ready for :func:`workbench.host.analysis.report.text_tables` and its figures."""
    frames = []
    configs = [("kernel", None)] + [("dcbm", c) for c in channels]
    for migrator, c in configs:
        params = RunParams(folio_sizes=list(folio_sizes), total_size=total_size, repeats=repeats, migrator=migrator,
                           channels=c, dma_engine=dma_engine if migrator == "dcbm" else None)
        run = runner.run(target, params, policy=runner.RunPolicy(label=f"{migrator}{'-c%d' % c if c else ''}"),
                         root=root, progress=progress)
        frames.append(run.records())
    return pd.concat(frames, ignore_index=True)


def fault_params(fault: str, every: int, folio_size: int, total_size: int, channels: int,
                 timeout_ms: int | None = None, repeats: int = 1) -> RunParams:
    """The run parameters of one injected fault (``every`` = N, or 1 for ``reverse``)."""
    if fault not in FAULTS:
        raise WorkbenchError(f"fault {fault!r} is not one of {', '.join(FAULTS)}")
    if every < 1:
        raise WorkbenchError(f"{fault}={every}: N must be at least 1")
    settings = {f"{TEST_ENGINE_PARAMS}/{fault}": str(every)}
    if timeout_ms is not None:
        settings[f"{DCBM}/timeout_ms"] = str(timeout_ms)
    return RunParams(folio_sizes=[folio_size], total_size=total_size, repeats=repeats, migrator="dcbm",
                     channels=channels, dma_engine=TEST_DMA_ENGINE, settings=settings)


def inject(target, faults: dict[str, int], folio_size: int, total_size: int, channels: int = 2,
           timeout_ms: int | None = 300, root=None, progress: bool = False) -> pd.DataFrame:
    """One stored run per fault; their records, with ``fault`` and ``every`` columns."""
    frames = []
    for fault, every in faults.items():
        params = fault_params(fault, every, folio_size, total_size, channels,
                              timeout_ms if fault == "hang_every" else None)
        run = runner.run(target, params, policy=runner.RunPolicy(label=f"dcbm-{fault.replace('_every', '')}"),
                         root=root, progress=progress)
        frames.append(run.records().assign(fault=fault, every=every, run_id=run.id))
    return pd.concat(frames, ignore_index=True)


def _col(df: pd.DataFrame, name: str):
    return df[name] if name in df else pd.Series([0] * len(df), index=df.index)


def fault_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per trial: the fault, how often the engine applied it, dcbm's counters, and what the
    verification found."""
    injected = [int(r[f"mig_test_dma_engine_{FAULTS[f]}"]) if FAULTS[f] else 0
                for f, (_, r) in zip(df["fault"], df.iterrows())]
    out = pd.DataFrame({
        "fault": df["fault"] + "=" + df["every"].astype(str),
        "folio": df["folio"],
        "descriptors": _col(df, "mig_test_dma_engine_descriptors").astype(int),
        "injected": injected,
        "dma copied": dcbm_counts.dma_copied(df).astype(int),
        "cpu fallbacks": dcbm_counts.cpu_fallbacks(df).astype(int),
        "timeouts": _col(df, "mig_dcbm_timeouts").astype(int),
        "pages moved": df["pages_moved"].astype(int).astype(str) + "/" + df["pages"].astype(int).astype(str),
        "bad pages": df["verify_bad_pages"].astype(int),
        "first bad": [f"page {int(p)} +{int(o)} (0x{int(o):x})" if b else "-"
                      for p, o, b in zip(df["verify_first_bad_page"].fillna(0), df["verify_first_bad_offset"].fillna(0),
                                         df["verify_bad_pages"])],
        "verified": df["verified"].astype(bool),
    })
    return out


def fig_faults(df: pd.DataFrame):
    """Bars per fault: what the engine did wrong, what dcbm sent back to the CPU, and what
    the verification found bad."""
    import matplotlib.pyplot as plt
    t = fault_table(df)
    bars = t.set_index("fault")[["injected", "cpu fallbacks", "bad pages"]]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bars.plot.bar(ax=ax, rot=0, color=["#d62728", "#1f77b4", "#7f7f7f"])
    note = clocks.frame_note(df)
    ax.set(ylabel="folios / pages", xlabel="",
           title="dcbm on the test DMA engine: injected faults, CPU fallbacks, bad pages"
                 + (f"\n({note})" if note else ""))
    fig.tight_layout()
    return fig
