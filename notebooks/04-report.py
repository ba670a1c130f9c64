# %% [markdown]
# # 04 · Report
#
# The stored runs as the series reports them: text tables that paste into a mailing-list post (one per setup and workload, each with its migration reason), a panel per workload of what the kernel reported for its reason, throughput against folio size, speedup against threads/channels, measured against predicted, our runs beside the RFC's published figures (**other hardware**), and first-folio latency against batch size when the runs set batch sizes. `workbench report [RUN...]` renders this as one HTML file that opens offline.

# %% tags=["parameters"]
run_ids = []      # empty: every run in runs_root
runs_root = ""    # empty: data/runs
compare_by = "kernel_release"   # the sides of the comparison section
compare_base = ""            # its base (empty: the first)


# %%
# %matplotlib inline
from IPython.display import Markdown, display

from workbench.host.analysis import report

df = report.load(run_ids, runs_root or None)
display(Markdown(report.summary_line(df)))

# %% [markdown]
# ## Tables (paste into a post)

# %%
print(report.text_tables(df))

# %%
report.tabs(df)

# %% [markdown]
# ## Per workload: what the kernel reported for its reason
#
# One row per workload (x access, migrator): trace calls, pages succeeded and failed and the time from start to end event for the workload's migration reason, the series' per-reason counters where the kernel has them, other reasons seen meanwhile, and what tracing cost.

# %%
print(report.workload_panels(df))

# %% [markdown]
# ## During each trial (monitors)
#
# What the kernel's counters did while each configuration's first trial ran, sampled at the run's `--monitor` interval: pages migrated per second, interrupts (TLB shootdowns, function-call IPIs, DMA engines' lines) and each CPU's busy share, the migration shaded; and what the sampling cost on the target.

# %%
from workbench.host.analysis import monitor_view

monitor_view.show(df, runs_root or None)

# %% [markdown]
# ## Side by side
#
# Each kernel (or whatever `compare_by` names) against the base, configuration by configuration: mean ±%std, the change, and `*` where Welch's t-test finds it significant (LKP ncompare layout). Runs of different clocks or accelerators are not compared.

# %%
print(report.comparisons(df, by=compare_by, base=compare_base or None))

# %% [markdown]
# ### Every field that changed
#
# Every measured field — throughput and times, the kernel's vmstat deltas, the series' counters, the trace's summaries — for the same sides, as `%change ± %stddev` (harmonic means of rates, arithmetic of the rest), only where Welch's t-test (or exact counters that differ) marks a change; the geometric mean of new/base over the configurations sums each field up. `workbench compare BASE NEW --all` prints every field.

# %%
print(report.comparisons(df, by=compare_by, base=compare_base or None, every_field=True))

# %% [markdown]
# ## Throughput against folio size

# %%
report.fig_throughput(df);

# %% [markdown]
# ## Speedup against threads / channels

# %%
fig = report.fig_speedup(df)
if fig is None:
    print("no offload runs (mtcopy/dcbm) among these: nothing to compare with the kernel's copy")

# %% [markdown]
# ## Measured against predicted
#
# The extended model of `workbench.host.analysis.amdahl` (fixed cost per folio, dispatch cost per thread/channel, a shared bandwidth ceiling) fitted to these runs when they have enough points, and to the RFC V3 tables beside pure Amdahl.

# %%
report.fig_predicted(df);

# %% [markdown]
# ## Beside the published figures (other hardware)

# %%
report.figure(report.fig_reference, df);
print(report.reference_table())

# %% [markdown]
# ## First-folio latency against batch size

# %%
fig = report.figure(report.fig_latency, df)
if fig is None and report.latency(df) is None:
    print("these runs set no batch size (the kernel's default): no latency plot")

# %% [markdown]
# ## The kernel's own tests under each migrator (conformance runs)
#
# One grid per `workbench conformance` run among these: a row per test case, a column per migrator configuration. **pass**; **FAIL**; **skip** (the reason below); **n/e**, not exercised: the test passed but the migrator under test copied nothing meanwhile (or a fault mode never fired), so it says nothing about that migrator. A dark border marks a kernel log that was not clean. Below each grid: the failures with the test's own last lines, and why each skip skipped.

# %%
from workbench.host.analysis import conformance_view

conformance_view.show(conformance_view.load(run_ids, runs_root or None))
