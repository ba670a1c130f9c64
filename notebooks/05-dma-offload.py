# %% [markdown]
# # 05 · DMA offload (dcbm) and what happens when the engine misbehaves
#
# dcbm copies a migration batch with DMAEngine memcpy channels (kernel patch 0010). QEMU has no DMA engine, so in the VM it runs on **`test_dma_engine`** (patch 0011), a **test-only** engine whose channels are kernel threads copying with the CPU: the whole dcbm path runs — channel requests, scatter-gather mapping, one descriptor and callback per folio, timeouts — but nothing is offloaded, so its throughput says nothing about DMA hardware. On a machine with a real engine, set `dma_engine` (e.g. `ioatdma`) and skip the fault section.
#
# 1. dcbm at 1, 2, 4 channels against the kernel copy, every byte verified;
# 2. the engine fails, corrupts, loses or reorders descriptors: dcbm must send failed and lost copies back to the CPU (data intact, counted), and only the workbench's verification can catch a copy the engine corrupted silently.

# %% tags=["parameters"]
target = "vm"          # vm (patched kernel), or a target whose kernel has dcbm
kernel = "patched"     # VM only; empty for another target
vm_name = "patched"    # VM only
accel = ""             # VM only: auto, kvm, tcg or icount (empty: the VM that is up, else auto)
dma_engine = ""        # empty: the test-only engine in a VM; on real hardware e.g. "ioatdma"
channels = [1, 2, 4]
folio_sizes = ["4K", "64K", "2M"]
total_size = "8M"
fault_folio = "4K"     # many descriptors per batch, so every fault fires often
faults = {"fail_every": 7, "corrupt_every": 50, "hang_every": 40, "reverse": 1}
timeout_ms = 300       # dcbm's wait for a batch (10 s by default), short so hung copies time out fast
runs_root = ""          # empty: data/runs
imports = []            # modules that register extra targets (tests: workbench.testing.fake_dcbm)
# section 3, a model engine: dcbm against the kernel copy as the test engine's modelled
# bandwidth and per-descriptor latency vary; needs the instruction-counted clock (a second VM)
model_vm_name = "patched-icount"   # empty: skip section 3
model_accel = "icount"             # icount: the model's time is exact; tcg gives functional results only
model_folio_sizes = ["4K", "64K", "256K", "2M"]
model_total_size = "8M"
model_bandwidths_mbps = [125, 250, 500, 1000, 2000]
model_latencies_ns = [1000, 10000]
model_repeats = 2

# %%
import importlib

import matplotlib.pyplot as plt

from workbench.host.analysis import dcbm_counts
from workbench.host.studies import dma_offload as wf
from workbench.host.analysis import report
from workbench.units import parse_size

from workbench.targets import make_target

for module in imports:
    importlib.import_module(module)

t = make_target(target, kernel=kernel or None, vm_name=vm_name or None, accel=accel or None)
facts = t.facts()
assert "dcbm" in (facts.get("offered") or []), f"kernel {facts['kernel_release']} offers no dcbm: boot kernel='patched'"
print(f"{t.label}: kernel {facts['kernel_release']}, accelerator {facts['accelerator']}")

# %% [markdown]
# ## 1 · Channels

# %%
sweep = wf.channel_sweep(t, channels, [parse_size(s) for s in folio_sizes], parse_size(total_size),
                         dma_engine=dma_engine or None, root=runs_root or None)
df = report.prepare(sweep)
print(report.text_tables(df))
dc = sweep[sweep["migrator"] == "dcbm"]
print(f"DMA engine: {dc['dma_engine'].iloc[0]}; channels held per run: {sorted(set(dc['dma_channels_held']))}")
print(f"dcbm copied {int(dcbm_counts.dma_copied(dc).sum())} folios by DMA, "
      f"{int(dcbm_counts.cpu_fallbacks(dc).sum())} fell back to the CPU")

# %%
report.fig_throughput(df);

# %% [markdown]
# ## 2 · Injected faults

# %%
runs = wf.inject(t, faults, parse_size(fault_folio), parse_size(total_size), channels=max(channels),
                 timeout_ms=timeout_ms, root=runs_root or None)
table = wf.fault_table(runs)
table

# %%
wf.fig_faults(runs);

# %% [markdown]
# Reading the table: for `fail_every` and `hang_every` the **CPU fallbacks equal the faults** the engine injected and every page verified; `hang_every` also shows the batches that timed out. For `corrupt_every` dcbm saw nothing wrong (no failures, no fallbacks) — the engine said the copy succeeded — and the **verification** found one bad page per corrupted descriptor, at the offset the engine flips (`len/2 + 0x123` of the copy). `reverse` completes descriptors out of order; dcbm's per-descriptor callbacks make that harmless.

# %% [markdown]
# ## 3 · A model engine: where one channel stops losing to the CPU copy
#
# The test engine can take time in proportion to its bytes (`bandwidth_mbps`, `latency_ns`: a descriptor completes `latency + len / bandwidth` after its channel is free, on a timer). Under the instruction-counted clock (`--accel icount`, one guest instruction = 1 ns, an idle guest jumps to its next timer) that time is exact and the same on every run. Here dcbm on **one channel** is compared with the kernel's own copy, on the same clock, at each folio size, as the model's bandwidth and per-descriptor latency vary.
#
# **This is a model of an engine, not a measurement of one.** The bandwidths are in the guest's instruction-counted time, where the kernel's CPU copy runs at about 1 GB/s; read them relative to that, not as PTDMA or DSA figures. The engine's own `memcpy()` also costs guest instructions, so the model holds only while it is slower than that copy: points where the engine's completions came later than the model said (`late_ns`) are drawn hollow and marked `model_held = False`.

# %%
from workbench.host.studies import engine_model

if model_vm_name and target == "vm":
    tm = make_target("vm", kernel=kernel or None, vm_name=model_vm_name, accel=model_accel or None)
    print(f"{tm.label}: accelerator {tm.facts()['accelerator']} "
          f"({'exact model time' if tm.facts()['accelerator'] == 'icount' else 'FUNCTIONAL ONLY: timings mean nothing'})")
    model = engine_model.sweep(tm, [parse_size(s) for s in model_folio_sizes], parse_size(model_total_size),
                               list(model_bandwidths_mbps), list(model_latencies_ns), channels=1,
                               repeats=model_repeats, root=runs_root or None)
    model_table = engine_model.crossover_table(model)
    print(engine_model.crossover(model_table).to_string(index=False))
else:
    model_table = None
    print("section 3 skipped: it needs the test engine in a VM (model_vm_name)")

# %%
if model_table is not None:
    engine_model.fig_crossover(model_table);

# %%
model_table.round(3) if model_table is not None else None

# %% [markdown]
# Reading the figure: below the dashed line dcbm with one channel of the model engine is faster than the CPU copy. Each folio is at least one descriptor, so the per-descriptor latency and dcbm's per-batch work dominate small folios; large folios are dominated by bytes, and there the model's bandwidth decides. That is the shape RFC V5 published for one PTDMA channel (slower than the CPU below 1M) — reproduced by a model whose figures are inputs, not findings.
