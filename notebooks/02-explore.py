# %% [markdown]
# # 02 · Explore
#
# An interactive panel (`workbench.host.analysis.panel.Panel`): choose the target, migrator, folio sizes, batch size, threads or channels, total size and repeats — only what the target offers is listed. **Nothing runs until you press Run**; the progress bar ticks per finished trial. The results table uses the series' layout; the plot shows measured throughput beside the Amdahl prediction, with `F` and `S` per folio size, each from the first source that has it (this run's counters, stored `bench cost` runs of the same kernel, the cover letter's published shares) and named beside it; the sliders change the folio size picked above them. A patched kernel on its serial path (batching off) counts no copies: the panel says so and offers a button that turns batching on and runs again. Errors appear in red in the panel.
#
# Press **Connect** first (for the VM this boots it, a minute or more under TCG).

# %% tags=["parameters"]
target = "vm"
kernel = "stock"
runs_root = ""
connect = False      # True: read the target right away
imports = []

# %%
import importlib

for module in imports:
    importlib.import_module(module)

from workbench.host.analysis.panel import Panel

panel = Panel(spec=target, kernel=kernel, root=runs_root or None, specs=("vm", "local", target))
if connect:
    panel.connect()
panel.widget()

# %% [markdown]
# Everything the panel shows is also reachable from code: `panel.results` (one row per repeat), `panel.runs`, `panel.error`.

# %%
panel.results.tail()
