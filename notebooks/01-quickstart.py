# %% [markdown]
# # 01 · Quickstart
#
# Bring up the VM target (QEMU, two NUMA nodes, the stock Debian 6.12 kernel), run **one verified migration** — every byte of every moved page and the node of every base page checked — and look at the record it stores.
#
# Under QEMU TCG (no usable KVM) the timings are **functional, not performance**; with `accel = "icount"` the VM's clock counts executed instructions instead: **deterministic path cost, not speed**. Every record says which (`accelerator`, `clock`).

# %% tags=["parameters"]
target = "vm"          # vm, local, ssh://user@host, or a registered test target
kernel = ""            # VM kernel: stock, patched, vanilla, or a path (empty: the VM that is up, else stock)
vm_name = ""           # empty: the VM named default
accel = ""             # VM only: auto, kvm, tcg or icount (empty: the VM that is up, else auto)
folio_size = "2M"
total_size = "8M"
runs_root = ""          # empty: data/runs
imports = []            # modules that register extra targets (tests)

# %%
import importlib

for module in imports:
    importlib.import_module(module)

import pandas as pd

from workbench.host.analysis import clocks, stats
from workbench.host.running import runner, store
from workbench.host.running.plan import RunParams
from workbench.units import format_size, parse_size

from workbench.targets import make_target

t = make_target(target, kernel=kernel or None, vm_name=vm_name or None, accel=accel or None)   # a VM boots once; one that is up is reused

# %% [markdown]
# What the target offers (kernel, NUMA nodes, folio sizes, migrators and their knobs):

# %%
facts = t.facts()
pd.Series({
    "target": t.label, "kernel": facts["kernel_release"], "accelerator": facts["accelerator"], "clock": facts["clock"],
    "memory nodes": facts["numa"]["memory_nodes"],
    "folio sizes": [format_size(s) for s in facts["folio_sizes"]],
    "migrators": facts.get("offered") or facts.get("migrators"), "knobs": facts.get("knobs"),
}).to_frame("value")

# %% [markdown]
# One repeat of one folio size, node 0 → node 1:

# %%
params = RunParams(folio_sizes=[parse_size(folio_size)], total_size=parse_size(total_size), repeats=1)
run = runner.run(t, params, policy=runner.RunPolicy(label="quickstart"), root=runs_root or None, progress=False)
record = run.records().iloc[0]
assert record["verified"], f"verification failed: {record.to_dict()}"
print(f"run {run.id}: {record['folio']} x {record.get('folios', '?')} folios, verified={record['verified']}")
record.to_frame("value")

# %% [markdown]
# The same record through the store, as every analysis reads it:

# %%
df = store.load_runs(runs_root or None, [run.id])
note = clocks.frame_note(df)
print(stats.series_table(df, title="move_pages() GB/s" + (f" [{note}]" if note else "")))
