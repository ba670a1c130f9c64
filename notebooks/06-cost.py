# %% [markdown]
# # 06 · Cost in instruction-time
#
# What does the series cost, as work done? Under QEMU's instruction-counted clock (`--accel icount`) the guest's time is the number of guest instructions it executed: reproducible to a fraction of a percent on a busy machine, but **not speed** (no memory system, no parallel speedup: vCPUs take turns, so helper threads add their instructions instead of finishing sooner).
#
# This runs `workbench bench cost`'s grid: the vanilla and the patched tree of the *bench* build profile (no `DEBUG_VM` and friends), each booted fresh `boots` times, and per folio size the patched kernel as shipped, the batched kernel copy at each batch size, mtcopy with 1 and 2 threads and dcbm with one channel of the test DMA engine. Every trial is stored as a run and verified byte-exact. With `run_ids` set, it reads stored runs instead of measuring.

# %% tags=["parameters"]
folio_sizes = ["4K", "64K", "2M"]
size = "8M"               # bytes moved per trial
repeats = 3
boots = 2                 # fresh boots of each tree
batch_sizes = [1, 16, 64, 512]
run_ids = []              # stored cost runs to analyse instead of measuring (empty: measure now)
runs_root = ""            # empty: data/runs

# %%
# %matplotlib inline
from workbench.host.studies import cost
from workbench.units import parse_size, parse_size_list

if run_ids:
    df = cost.load(run_ids, runs_root or None)
else:
    df = cost.measure(folio_sizes=parse_size_list(folio_sizes), size=parse_size(size), repeats=repeats,
                      boots=boots, batch_sizes=batch_sizes, root=runs_root or None, progress=False)
summary = cost.summarize(df)
print(cost.format_text(summary))

# %% [markdown]
# ## Cost per folio against batch size
#
# The batched kernel copy as a line over its batch sizes; its error bars are the 95% interval of its ratio to vanilla (a bootstrap over boots and the trials within each); vanilla, the patched kernel as shipped, mtcopy and dcbm as levels.

# %%
cost.fig_cost(summary);

# %% [markdown]
# ## Amdahl, with F measured in instruction-time
#
# F is the copy's share of the batch (`copy_ns / batch_ns`, the series' own counters) in instruction-time. The curves say what a copy engine S times faster would buy the whole call: the ceiling `1 / (1 - F)` is what offload can reach at best for these folio sizes.

# %%
cost.fig_amdahl(summary);
