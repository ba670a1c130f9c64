# %% [markdown]
# # 07 · Our series and upstream's
#
# The same `move_pages(2)` workload, the same VM and the same test DMA engine, under two series' dcbm: ours (`kernel_series` **workbench**, Linux 6.12) and RFC V6 as posted (**v6**, Linux 7.2.13, built with `workbench kernel build --base … --series … --name v6`, the engine built out of tree for it). For each engine mode — `dsa` (out of order, callbacks only where asked, a ring of 32) and `ptdma` (in order, a callback per descriptor, a ring of 32) — and each folio size and channel count: how many trials verified byte for byte, the share of folios the engine copied (the rest went back to the CPU), dcbm's timeouts, F where the series measures it, and the time.
#
# Under TCG the time is functional only: it says where a batch waited out a timeout, not how fast anything is. The icount comparison (cost on the default path against vanilla 7.2, dcbm on the engine's time model) is not in this notebook yet. What the V6 runs showed is written up in `docs/upstream-findings.md`.

# %% tags=["parameters"]
run_labels = ["v6-dsa-c1", "v6-dsa-c2", "v6-ptdma-c1", "v6-ptdma-c2",
              "ours-dsa-c1", "ours-dsa-c2", "ours-ptdma-c1", "ours-ptdma-c2"]   # stored runs, by label
runs_root = ""          # empty: data/runs

# %%
import warnings
from pathlib import Path

import pandas as pd

from workbench.host.studies import side_by_side
from workbench.host.running import store

warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
root = Path(runs_root) if runs_root else None
runs = [r.id for r in store.list_runs(root) if r.manifest.get("label") in run_labels]
missing = sorted(set(run_labels) - {r.manifest.get("label") for r in store.list_runs(root)})
print(f"{len(runs)} runs" + (f"; no run labelled {', '.join(missing)}" if missing else ""))
records = store.load_runs(root, runs)

# %% [markdown]
# ## The table
#
# `dma_share`: folios the engine copied / folios moved. `corrupted`: trials whose verification found a page with the wrong bytes. `timeouts`: batches in which dcbm waited out `timeout_ms` (ours; V6 has no such counter). `F`: copy time / batch time (ours; V6 has no copy-time counters).

# %%
t = side_by_side.table(records)
t.drop(columns=["folio_size"]).style.format({"dma_share": "{:.2f}", "timeouts": "{:.1f}", "F": "{:.3f}",
                                            "seconds": "{:.3f}", "bad_pages_max": "{:.0f}"}, na_rep="–")

# %% [markdown]
# ## Where the engine copied, and where a series lost data

# %%
fig = side_by_side.fig_dma_share(t)

# %% [markdown]
# ## Reading it
#
# - On the `dsa` engine our series (v2) waits out its timeout in every batch and the CPU copies nearly everything: slow, and every byte right. V6 goes on when the callback of each channel's last descriptor arrives, which on this engine can come before the other descriptors have run: at 64K it counts every folio as DMA-copied while some trials fail verification.
# - With a ring of 32 and 4K folios, V6 gives up each batch of 512 when a descriptor cannot be prepared (no folio DMA-copied), while ours submits what fits and leaves the rest to the CPU (a few percent by DMA). 2M folios never reach the engine under V6, which does not split them at the engine's 64K segment size; ours splits them, so under `ptdma` every 2M folio is DMA-copied (32 segments fit the ring).
# - The kernel v3 issue changes our completion scheme; these runs are the baseline it is measured against.
