# %% [markdown]
# # 08 · What each patch costs
#
# Where in a series does its cost come from? `workbench bench cost --per-patch` builds the series cumulatively on its base — the base itself, then the base with patch 1, with patches 1..2, … up to the whole series, each a bench-profile tree seeded from the one before — boots each afresh under QEMU's instruction-counted clock (`--accel icount`) and moves memory at each folio size with the tree's defaults and, from the patch that brings the knob, with the batched kernel copy on (`batch_kernel_copy=1`).
#
# Instruction-time is **work, not speed**: reproducible to a fraction of a percent on a busy machine, it says how many guest instructions a path executes. This notebook reads the stored runs of one such measurement (a *study*): the runs named in `run_ids`, else the study named in `study`, else the study stored last.

# %% tags=["parameters"]
run_ids = []              # stored per-patch runs to read (empty: a whole study)
study = ""                # the study to read (empty: the one stored last)
runs_root = ""            # empty: data/runs

# %%
# %matplotlib inline
from workbench.host.studies import per_patch

df = per_patch.load(run_ids or None, runs_root or None, study=study or None)
summary = per_patch.summarize(df)
print(f"study {summary['study']}: kernels {', '.join(summary['kernels'])}")
print(per_patch.format_text(summary))

# %% [markdown]
# ## After each patch, relative to the base
#
# One panel per folio size: instruction-time per folio of each cumulative tree divided by the base's, with the defaults and with the batched kernel copy; the error bars are the 95% interval of each tree's ratio to the base (a bootstrap over boots and the trials within each).

# %%
per_patch.fig_cost(summary);

# %% [markdown]
# ## The change each patch brings
#
# The change of each tree against the tree before, per configuration and folio size, as a fraction; empty where the 95% bootstrap interval of the change holds none ("no difference"). The batched kernel copy's first row is against the tree before with its defaults: the path it replaces.

# %%
import pandas as pd

rows = pd.DataFrame(summary["rows"])
rows = rows[rows["index"] > 0]
rows["change"] = rows["delta"].where(rows["difference"] != "no difference")
table = rows.pivot_table(index=["index", "subject"], columns=["config", "folio"], values="change", aggfunc="first",
                         dropna=False)
table = table.reindex(columns=sorted(table.columns, key=lambda c: (c[0] != "defaults", rows.loc[
    rows["folio"] == c[1], "folio_size"].iloc[0])))
table.style.format("{:+.2%}", na_rep="")
