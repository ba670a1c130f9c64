# %% [markdown]
# # 03 · Sweep (papermill)
#
# One configuration of a sweep: every workload x migrator x threads/channels x batch size in the grid below becomes one stored run (folio sizes and repeats inside it). `workbench sweep GRID.yaml` executes this notebook once per configuration into `papermill-runs/<date>-<name>/`; run it by hand with papermill `-p` options.

# %% tags=["parameters"]
# where it runs
target = "vm"
target_options = {}     # more make_target options: nodes, identity, known_hosts, remote_python, ...
kernel = ""             # empty: the VM that is up, else stock
vm_name = ""            # empty: the VM named default
accel = ""             # VM only: auto, kvm, tcg or icount (empty: the VM that is up, else auto)
imports = []
# the knobs (workbench.catalogue.knobs, under their sweep names); each value of a list is a run
workloads = ["move-pages"]   # how pages migrate: move-pages, migrate-pages, mbind, numa-balancing, demotion, compaction
access = "none"         # none, read or write: checked threads touching the memory while it migrates
access_threads = 2
wait_seconds = None     # numa-balancing, demotion's promotion: the longest wait (None: the workload's)
trace = True            # record the kernel's migration trace events
monitor = 10.0          # the monitor's interval in ms, or "off"
folio_sizes = ["4K", "2M"]
total_size = "16M"
repeats = 3
src = 0
dst = None              # None: node 1, or the kernel's choice (demotion) / none (compaction)
seed = 1
migrators = ["kernel"]
threads = [None]        # mtcopy threads; dcbm channels too unless `channels` is set
channels = None
batch_sizes = [None]    # base pages; None: the kernel default
batch_kernel_copy = None  # the kernel migrator through the batched path (None: the kernel's setting)
dma_engine = None       # dcbm's DMA engine module (None: in a VM, the test engine)
settings = None         # {sysfs path: value} written for each trial and restored after it
first_folio = False     # also time the first folio's arrival
# how its runs are carried out
max_reboots = 2         # faults in a row (VM died, trial hung) before a configuration is given up
trial_timeout = None    # seconds a trial may take before it counts as hung; None: from its size
kernel_expect = None    # patched, vanilla, stock or a piece of the release: refuse any other kernel
# where its results go
label = "sweep"
runs_root = ""          # empty: data/runs
result_path = ""        # where the sweep reads the run ids
journal_path = ""       # where a repeated attempt finds the runs it started (empty: none)

# %%
import importlib
import json

for module in imports:
    importlib.import_module(module)

from workbench.host.analysis import clocks, stats
from workbench.host.running import runner, store, sweep
from workbench.targets import make_target

t = make_target(target, kernel=kernel or None, vm_name=vm_name or None, accel=accel or None, **target_options)
facts = t.facts()
note = clocks.note(facts["accelerator"], facts["clock"])
print(f"{t.label}: kernel {facts['kernel_release']}, accelerator {facts['accelerator']}" + (f" ({note})" if note else ""))
print("workloads:", ", ".join(workloads), "| access:", access)
sweep.combinations(migrators, threads, channels, batch_sizes)

# %%
run_ids = sweep.run_grid(t, root=runs_root or None, label=label, progress=False, journal=journal_path or None,
                         policy=sweep.policy(globals()), **sweep.knobs_of(globals()))
run_ids

# %%
from workbench.host.analysis import workload_view

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
