# %% [markdown]
# # 03 · Sweep (papermill)
#
# One configuration of a sweep: every workload x migrator x threads/channels x batch size in the grid below becomes one stored run (folio sizes and repeats inside it). `workbench sweep GRID.yaml` executes this notebook once per configuration into `papermill-runs/<date>-<name>/`; run it by hand with papermill `-p` options.

# %% tags=["parameters"]
target = "vm"
target_options = {}     # more make_target options: nodes, identity, known_hosts, remote_python, ...
kernel = ""             # empty: the VM that is up, else stock
vm_name = ""            # empty: the VM named default
accel = ""             # VM only: auto, kvm, tcg or icount (empty: the VM that is up, else auto)
folio_sizes = ["4K", "2M"]
migrators = ["kernel"]
threads = [None]        # mtcopy threads; dcbm channels too unless `channels` is set
channels = None
batch_sizes = [None]    # base pages; None: the kernel default
total_size = "16M"
repeats = 3
src = 0
dst = None              # None: node 1, or the kernel's choice (demotion) / none (compaction)
seed = 1
max_reboots = 2         # faults in a row (VM died, trial hung) before a configuration is given up
trial_timeout = None    # seconds a trial may take before it counts as hung; None: from its size
kernel_expect = None    # patched, vanilla, stock or a piece of the release: refuse any other kernel
label = "sweep"
runs_root = ""          # empty: data/runs
result_path = ""        # where the sweep reads the run ids
journal_path = ""       # where a repeated attempt finds the runs it started (empty: none)
workloads = ["move-pages"]   # how pages migrate: move-pages, migrate-pages, mbind, numa-balancing, demotion, compaction
access = "none"         # none, read or write: checked threads touching the memory while it migrates
imports = []

# %%
import importlib
import json

for module in imports:
    importlib.import_module(module)

from workbench.host import clocks, runner, stats, store, sweep
from workbench.targets import make_target

t = make_target(target, kernel=kernel or None, vm_name=vm_name or None, accel=accel or None, **target_options)
facts = t.facts()
note = clocks.note(facts["accelerator"], facts["clock"])
print(f"{t.label}: kernel {facts['kernel_release']}, accelerator {facts['accelerator']}" + (f" ({note})" if note else ""))
print("workloads:", ", ".join(workloads), "| access:", access)
sweep.combinations(migrators, threads, channels, batch_sizes)

# %%
run_ids = sweep.run_grid(t, folio_sizes, migrators, threads, channels, batch_sizes, total_size=total_size,
                         repeats=repeats, src=src, dst=dst, seed=seed, root=runs_root or None, label=label,
                         progress=False, journal=journal_path or None, workloads=workloads, access=access,
                         max_reboots=max_reboots, trial_timeout=trial_timeout,
                         kernel_expect=kernel_expect)
run_ids

# %%
from workbench.host import workload_view

df = store.load_runs(runs_root or None, run_ids)
if df.empty:
    print("no trial finished: every configuration was given up")
else:
    rows = ["migrator"] + [c for c in ("threads", "channels", "batch_size") if c in df and df[c].notna().any()]
    for c in rows[1:]:
        df[c] = df[c].map(lambda v: "-" if v != v or v is None else str(int(v)))
    note = clocks.frame_note(df)
    df = workload_view.with_workload(df)
    for (workload, access_mode), g in df.groupby(["workload", "access"], sort=False):
        print(stats.series_table(g, rows=rows, title=workload_view.workload_title(g) + (f" [{note}]" if note else "")))
        print(f"verified: {int(g['verified'].sum())}/{len(g)} trials")
        print("\n".join(workload_view.workload_lines(g)), end="\n\n")
for line in runner.describe_unclean(df) + runner.describe_faults(store.load_faults(runs_root or None, run_ids)):
    print(" ", line)

# %%
if result_path:
    with open(result_path, "w") as fh:
        json.dump({"run_ids": run_ids}, fh)
