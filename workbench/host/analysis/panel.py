"""An ipywidgets panel for exploring one target (``notebooks/02-explore.ipynb``).

Controls: target (and VM kernel), migrator and folio sizes — only those the target
offers —, batch size, threads or channels (as the migrator's knob says), total size and
repeats. Nothing runs when a control moves: the **Run** button runs one
:func:`workbench.host.running.runner.run`, with a progress bar that ticks per finished trial. The
results (every run made from the panel, one row per repeat) are shown as the series'
text table and a plot of measured throughput beside the Amdahl prediction. Amdahl's
``F`` and ``S`` are per folio size (and batch size), each from the first source that has
it — the records' counters, stored cost runs of the same kernel, the seed's published
shares (:mod:`workbench.host.analysis.amdahl_inputs`) — and the panel says which; the sliders
change the folio size picked beside them. A patched kernel on its serial path is named
as such, with a button that turns batching on and runs again. Errors are shown in the
panel (one line, red), never lost in a log.

Everything is reachable from Python for tests and scripting: ``panel.connect()``,
``panel.run()``, ``panel.results`` (DataFrame), ``panel.table.value`` (HTML),
``panel.error``.
"""

from __future__ import annotations

import html
import io
import traceback
from typing import Callable

import pandas as pd

from ...errors import WorkbenchError
from ..running.notebooks import require

require("ipywidgets", "matplotlib", what="the explore panel")
import ipywidgets as W  # noqa: E402

from . import amdahl, amdahl_inputs, clocks, stats, workload_view
from ..running import record_schema, runner, store
from ...catalogue import knobs, workloads
from ...protocol import worker_fields, worker_knob
from ...targets import kernel_lines
from ..running.plan import RunParams
from ...units import format_size, parse_size

#: the catalogue's knobs the panel shows as plain fields, under "more knobs" (the others
#: have controls of their own, filled from what the target offers)
MORE_KNOBS = ("src", "dst", "seed", "access_threads", "wait_seconds", "trace", "monitor_ms", "first_folio",
              "dma_engine", "settings")
SIZES = ["2M", "4M", "8M", "16M", "32M", "64M", "128M", "256M", "512M", "1G"]
BATCHES = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 32768, 262144]
#: the cover letter's figures (512 x 2M, DMA): the sliders' values before any result
SEED_F, SEED_S = 0.97, 7.5


def _knob_words(name: str) -> dict:
    k = knobs.get(name)
    return {"description": k.label, "tooltip": knobs.plain_help(k)}


def _knob_field(k) -> W.Widget:
    """A catalogue knob as a form field: a checkbox for a yes/no knob, else its text."""
    if k.type is bool:
        return W.Checkbox(value=k.default, indent=False, **_knob_words(k.name))
    return W.Text(value=knobs.default_text(k), placeholder="the default" if k.default is None else "",
                  style={"description_width": "initial"}, **_knob_words(k.name))


def _more(fields: dict) -> W.Widget:
    box = W.Accordion(children=[W.GridBox(list(fields.values()),
                                          layout=W.Layout(grid_template_columns="repeat(2, 1fr)"))])
    box.set_title(0, "more knobs")
    box.selected_index = None
    return box


def default_factory(spec: str, kernel: str | None = None, accel: str | None = None):
    """The target the controls name (:func:`workbench.targets.make_target`); the kernel
    and accelerator controls apply to the VM only."""
    from ...targets import make_target, parse_spec
    vm = parse_spec(spec)[0] == "vm"
    return make_target(spec, kernel=kernel if vm else None, accel=accel if vm and accel != "auto" else None)


class Panel:
    def __init__(self, target=None, spec: str = "vm", kernel: str = "stock", root=None,
                 factory: Callable = default_factory, specs=("vm", "local")):
        """``factory(spec, kernel=..., accel=...) -> Target`` makes the target the controls name."""
        self.factory, self.root = factory, root
        self.target = target
        self.facts: dict | None = None
        self.results = pd.DataFrame()
        self.runs: list[store.Run] = []
        self.error: str | None = None

        opts = list(dict.fromkeys([spec, *specs]))
        self.w_target = W.Combobox(value=spec, options=opts, description="target", ensure_option=False,
                                   placeholder="vm, local, ssh://user@host")
        kernels = kernel_lines.kernel_words()
        self.w_kernel = W.Dropdown(options=kernels if kernel in kernels else [kernel, *kernels],
                                   value=kernel, description="kernel")
        self.w_accel = W.Dropdown(options=["auto", "kvm", "tcg", "icount"], value="auto", description="clock",
                                  tooltip="icount: TCG with an instruction-counted clock (deterministic path cost, "
                                          "not speed)")
        self.w_connect = W.Button(description="Connect", icon="plug", tooltip="read what the target offers")
        # the knobs: names, tooltips and defaults from the catalogue; what a target offers
        # fills the options once connected
        self.w_migrator = W.Dropdown(options=["kernel"], value=knobs.default("migrator"), **_knob_words("migrator"))
        self.w_workload = W.Dropdown(options=["move-pages"], value=knobs.default("workload"),
                                     **_knob_words("workload"))
        self.w_access = W.Dropdown(options=knobs.ACCESS_MODES, value=knobs.default("access"), **_knob_words("access"))
        self.w_workload_note = W.HTML(value="")
        self.w_folios = W.SelectMultiple(options=[], rows=4, **_knob_words("folio_sizes"))
        self.w_batch = W.Dropdown(options=[("default", 0)], value=0, **_knob_words("batch_size"))
        self.w_batched = W.Checkbox(value=False, disabled=True, indent=False, **_knob_words("batch_kernel_copy"))
        self.w_workers = W.IntSlider(value=1, min=1, max=1, description="workers", disabled=True,
                                     continuous_update=False)
        self.w_size = W.Combobox(value="16M", options=SIZES, ensure_option=False, **_knob_words("total_size"))
        self.w_repeats = W.IntSlider(value=knobs.default("repeats"), min=1, max=20, continuous_update=False,
                                     **_knob_words("repeats"))
        #: every other knob of the catalogue, a field each (its default as text)
        self.w_more = {k.name: _knob_field(k) for k in knobs.KNOBS if k.name in MORE_KNOBS}
        self.w_run = W.Button(description="Run", button_style="primary", icon="play", disabled=True)
        self.w_progress = W.IntProgress(value=0, min=0, max=1, description="trials", bar_style="")
        self.w_status = W.HTML(value="<i>press Connect to read the target</i>")
        self.table = W.HTML(value="")
        self.plot = W.Image(format="png", layout=W.Layout(max_width="720px", display="none"))
        #: the last trial's monitor timeline (counters against time, the migration shaded)
        self.timeline = W.Image(format="png", layout=W.Layout(max_width="720px", display="none"))
        self.w_timeline_note = W.HTML(value="")
        self.w_F = W.FloatSlider(value=SEED_F, min=0.0, max=1.0, step=0.01, description="F (copy share)",
                                 continuous_update=False, style={"description_width": "initial"})
        self.w_S = W.FloatSlider(value=SEED_S, min=0.1, max=64.0, step=0.1, description="S (copy speedup)",
                                 continuous_update=False, style={"description_width": "initial"})
        self.w_amdahl_folio = W.Dropdown(options=[], description="sliders for",
                                         tooltip="the folio size whose F and S the sliders show and set")
        self.w_amdahl = W.HTML(value="")
        self.w_measure_F = W.Button(description="Turn batching on and run", icon="toggle-on",
                                    layout=W.Layout(display="none", width="auto"),
                                    tooltip="run again with the kernel's batched copy (batch_kernel_copy=1), "
                                            "whose counters measure F")
        #: per folio size: F, S and where each came from (amdahl_inputs.inputs), the
        #: sliders' changes on top; the stored cost records read, per kernel
        self.amdahl_inputs = pd.DataFrame()
        self._by_hand: dict[int, dict] = {}
        self._cost_cache: dict[tuple, pd.DataFrame] = {}
        self._syncing = False

        self.w_connect.on_click(lambda _b: self._guard(self.connect))
        self.w_run.on_click(lambda _b: self._guard(self.run))
        self.w_migrator.observe(lambda _c: self._guard(self._migrator_changed), names="value")
        self.w_target.observe(lambda _c: self._target_changed(), names="value")
        self.w_kernel.observe(lambda _c: self._target_changed(), names="value")
        self.w_accel.observe(lambda _c: self._target_changed(), names="value")
        self.w_measure_F.on_click(lambda _b: self._guard(self.measure_F))
        for name, w in (("F", self.w_F), ("S", self.w_S)):
            w.observe(lambda c, name=name: self._guard(lambda: self._slider_moved(name, c["new"])), names="value")
        self.w_amdahl_folio.observe(lambda _c: self._guard(self._sync_sliders), names="value")
        self._target_changed(keep=target is not None)
        self.update_amdahl()

    # layout ------------------------------------------------------------------------
    def widget(self) -> W.Widget:
        controls = W.VBox([W.HBox([self.w_target, self.w_kernel, self.w_accel, self.w_connect]),
                           W.HBox([self.w_migrator, self.w_workers, self.w_batch, self.w_batched]),
                           W.HBox([self.w_workload, self.w_access]), self.w_workload_note,
                           W.HBox([self.w_folios, W.VBox([self.w_size, self.w_repeats])]),
                           _more(self.w_more),
                           W.HBox([self.w_run, self.w_progress]), self.w_status])
        amd = W.VBox([W.HTML("<b>Amdahl</b>: speedup = 1 / ((1 - F) + F / S), per folio size"),
                      self.w_amdahl_folio, self.w_F, self.w_S, self.w_amdahl, self.w_measure_F])
        return W.VBox([controls, W.HBox([self.table, amd]), self.plot, self.w_timeline_note, self.timeline])

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget())

    # callbacks ---------------------------------------------------------------------
    def _guard(self, fn):
        """Run a callback; a failure becomes the panel's red status line (and ``error``)."""
        try:
            self.error = None
            return fn()
        except WorkbenchError as e:
            self._fail(str(e))
        except Exception as e:  # noqa: BLE001 - the panel must show it, not lose it in a log
            self._fail(f"{type(e).__name__}: {e}", traceback.format_exc())

    def _fail(self, line: str, detail: str | None = None):
        self.error = line
        self.w_progress.bar_style = "danger"
        extra = f"<details><summary>details</summary><pre>{html.escape(detail)}</pre></details>" if detail else ""
        self.w_status.value = f'<span style="color:#b00020"><b>error:</b> {html.escape(line)}</span>{extra}'

    def _target_changed(self, keep: bool = False):
        self.w_kernel.layout.display = "" if self.w_target.value == "vm" else "none"
        self.w_accel.layout.display = self.w_kernel.layout.display
        if not keep:
            self.target, self.facts = None, None
            self.w_run.disabled = True

    def connect(self):
        """Make (or reuse) the target and fill the controls with what it offers."""
        if self.target is None:
            spec = (self.w_target.value or "").strip()
            if not spec:
                raise WorkbenchError("no target given; write vm, local or ssh://[user@]host[:port]")
            self.target = self.factory(spec, kernel=self.w_kernel.value, accel=self.w_accel.value)
        self.w_status.value = f"reading {html.escape(self.target.label)} ..."
        self.facts = facts = self.target.facts()
        offered = list(facts.get("offered") or facts.get("migrators") or ["kernel"])
        self.w_migrator.options = offered
        self.w_migrator.value = facts.get("active") if facts.get("active") in offered else offered[0]
        sizes = sorted(facts.get("folio_sizes") or [])
        self.w_folios.options = [(format_size(s), s) for s in sizes]
        self.w_folios.value = tuple(s for s in sizes if s in (4096, 2 << 20)) or tuple(sizes[:1])
        bounds = (facts.get("knobs") or {}).get("batch_size")
        if bounds:
            self.w_batch.options = [("default", 0)] + [(str(b), b) for b in BATCHES if bounds[0] <= b <= bounds[1]]
            self.w_batch.disabled = False
        else:
            self.w_batch.options, self.w_batch.disabled = [("default", 0)], True
        self.w_batch.value = 0
        self._migrator_changed()
        self._offer_workloads(facts)
        acc = facts.get("accelerator", "?")
        note = clocks.note(acc, facts.get("clock"))
        note = f" — {note}" if note else ""
        self.w_status.value = (f"{html.escape(self.target.label)}: kernel {html.escape(str(facts.get('kernel_release')))}, "
                               f"accelerator {acc}{note}; migrators {', '.join(offered)}")
        self.w_run.disabled = False
        return facts

    def _offer_workloads(self, facts: dict):
        """The workload dropdown holds only what the target can run; the note says why
        the others are missing."""
        reported = facts.get("workloads")
        if reported is None:
            can, cannot = ["move-pages"], {}
        else:
            can = [name for name, v in reported.items() if v["ok"]]
            cannot = {name: v["missing"] for name, v in reported.items() if not v["ok"]}
        self.w_workload.options = can
        self.w_workload.value = "move-pages" if "move-pages" in can else (can[0] if can else None)
        self.w_workload_note.value = "".join(f"<small>{html.escape(n)}: not here — {html.escape(why)}</small><br>"
                                             for n, why in cannot.items())

    def _migrator_changed(self):
        bounds_of = (self.facts or {}).get("knobs") or {}
        self.w_batched.disabled = not (bounds_of.get("batch_kernel_copy") and self.w_migrator.value == "kernel")
        if self.w_batched.disabled:
            self.w_batched.value = False
        knob = worker_knob(self.w_migrator.value)
        bounds = bounds_of.get(knob) if knob else None
        if bounds:
            lo, hi = bounds
            self.w_workers.min, self.w_workers.max = 1, max(lo, hi)
            self.w_workers.min = lo
            self.w_workers.value = min(max(self.w_workers.value, lo), hi)
            self.w_workers.description, self.w_workers.disabled = knob, False
        else:
            self.w_workers.description, self.w_workers.disabled = knob or "workers", True

    def params(self) -> RunParams:
        """The run the controls describe."""
        if not self.w_folios.value:
            raise WorkbenchError("no folio size selected; pick one or more of those the target offers")
        workers = None if self.w_workers.disabled else int(self.w_workers.value)
        workload = self.w_workload.value or "move-pages"
        return RunParams(folio_sizes=list(self.w_folios.value),
                         total_size=parse_size(self.w_size.value, "total size"), repeats=int(self.w_repeats.value),
                         migrator=self.w_migrator.value,
                         **worker_fields(self.w_migrator.value, workers),
                         batch_size=self.w_batch.value or None,     # 0: the kernel's default
                         batch_kernel_copy=True if self.w_batched.value and not self.w_batched.disabled else None,
                         workload=workload, access=self.w_access.value, **self.more_knobs())

    def more_knobs(self) -> dict:
        """The values of the catalogue's other knobs' fields (one line for a bad one);
        an empty destination is the workload's (node 1, the lower tier, or none)."""
        out = {name: knobs.read_text(knobs.get(name), w.value) if isinstance(w.value, str) else w.value
               for name, w in self.w_more.items()}
        out["dst"] = workloads.default_dst(self.w_workload.value or "move-pages", out.get("dst"))
        return out

    def run(self) -> store.Run:
        """The Run button: one run with the controls' values; results appended and shown."""
        if self.facts is None:
            self.connect()
        params = self.params()
        n = params.repeats * len(params.folio_sizes)
        self.w_progress.max, self.w_progress.value, self.w_progress.bar_style = n, 0, "info"
        self.w_run.disabled = True
        self.w_status.value = f"running {n} trials on {html.escape(self.target.label)} ..."

        def tick(record):
            self.w_progress.value += 1
            self.w_status.value = (f"trial {self.w_progress.value}/{n}: {record.get('folio')} "
                                   f"{record.get('gbps', float('nan')):.2f} GB/s")
        try:
            the_run = runner.run(self.target, params, policy=runner.RunPolicy(label="explore"), root=self.root,
                                 progress=False, on_record=tick)
        finally:
            self.w_run.disabled = False
        self.runs.append(the_run)
        self.w_progress.bar_style = "success"
        df = store.load_runs(self.root, [the_run.id])
        self.results = pd.concat([self.results, df], ignore_index=True) if not self.results.empty else df
        note = clocks.frame_note(self.results)
        self.w_status.value = f"run {the_run.id}: {the_run.count()} trials saved" + (f" — {note}" if note else "")
        self.show_results()
        self.set_amdahl_defaults()
        self.show_timeline(the_run)
        return the_run

    def show_timeline(self, the_run: store.Run):
        """The run's last trial as its monitor saw it, and what the monitor cost."""
        from . import monitor_view
        timeline = the_run.monitor().assign(run_id=the_run.id) if the_run.monitor_dir.is_dir() else pd.DataFrame()
        fig = monitor_view.fig_timeline(timeline) if not timeline.empty else None
        if fig is None:
            self.timeline.layout.display = "none"
            self.w_timeline_note.value = "<small>no monitor timeline for this run (--monitor off)</small>"
            return
        import matplotlib.pyplot as plt
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        plt.close(fig)
        self.timeline.value, self.timeline.layout.display = buf.getvalue(), ""
        line = monitor_view.cost_line(store.load_runs(self.root, [the_run.id]))
        self.w_timeline_note.value = f"<small>{html.escape(line or '')}</small>"

    # results -----------------------------------------------------------------------
    def row_keys(self) -> list[str]:
        df = self.results
        keys = [c for c in ("workload", "access") if c in df.columns and df[c].nunique() > 1] + ["migrator"]
        for col in ("threads", "channels", "batch_size"):
            if col in df.columns and df[col].notna().any():
                keys.append(col)
        return keys

    def show_results(self):
        df = self.results
        if df.empty:
            self.table.value = ""
            return
        keys = self.row_keys()
        df = df.copy()
        for col in keys[keys.index("migrator") + 1:]:
            df[col] = df[col].map(lambda v: "-" if pd.isna(v) else str(int(v)))
        title = workload_view.workload_title(df)
        if clocks.frame_note(df):
            title += f" [{clocks.frame_note(df)}]"
        text = stats.series_table(df, rows=keys, title=title)
        ok = int(df["verified"].fillna(False).astype(bool).sum()) if "verified" in df.columns else 0
        text += f"\nverified: {ok}/{len(df)} trials byte-exact"
        lines = workload_view.workload_lines(df)
        if lines:
            text += "\n" + "\n".join(lines)
        self.table.value = f"<pre>{html.escape(text)}</pre>"
        self.update_amdahl()

    def _s_migrator(self) -> tuple[str, int | None]:
        """The migrator S is for, and its workers: the one in the results other than the
        kernel's copy, else the one picked, else dcbm where offered (the seed's)."""
        df = self.results
        others = df[df["migrator"] != "kernel"] if not df.empty else df
        if not others.empty:
            last = others.iloc[-1]
            workers = next((int(last[c]) for c in ("threads", "channels") if c in last and pd.notna(last[c])), None)
            return last["migrator"], workers
        if self.w_migrator.value and self.w_migrator.value != "kernel":
            return self.w_migrator.value, None if self.w_workers.disabled else int(self.w_workers.value)
        offered = [m for m in self.w_migrator.options if m != "kernel"]
        return ("dcbm" if "dcbm" in offered or not offered else offered[0]), None

    def _cost_records(self) -> pd.DataFrame:
        """Stored cost runs of the results' kernel, read once per kernel."""
        df = self.results
        key = tuple(sorted(set(df["kernel_release"].dropna()))) if "kernel_release" in df else ()
        key += tuple(sorted(set(df["interface"].dropna()))) if "interface" in df else ()
        if key not in self._cost_cache:
            self._cost_cache[key] = amdahl_inputs.stored_cost_records(df, self.root)
        return self._cost_cache[key]

    def set_amdahl_defaults(self):
        """F and S per folio size from the best source each has (the sliders' changes
        are dropped), and the button that turns batching on where F cannot be measured
        because the kernel copies on its serial path."""
        mig, workers = self._s_migrator()
        self.amdahl_inputs = amdahl_inputs.inputs(self.results, mig, workers, root=self.root,
                                                  cost=self._cost_records())
        self._by_hand = {}
        folios = [(r.folio, int(r.folio_size)) for r in self.amdahl_inputs.itertuples()]
        keep = self.w_amdahl_folio.value
        self._syncing = True
        try:
            self.w_amdahl_folio.options = folios
            self.w_amdahl_folio.value = keep if keep in dict(folios).values() else (folios[-1][1] if folios else None)
        finally:
            self._syncing = False
        serial = amdahl_inputs.copy_path(self.results) == "serial"
        can = bool(((self.facts or {}).get("knobs") or {}).get("batch_kernel_copy"))
        self.w_measure_F.layout.display = "" if serial and can else "none"
        self._sync_sliders()

    def _values(self, folio_size: int) -> dict:
        """F, S and their sources for one folio size, the sliders' changes on top."""
        rows = self.amdahl_inputs
        row = rows[rows["folio_size"] == folio_size].iloc[0].to_dict() if not rows.empty and \
            (rows["folio_size"] == folio_size).any() else {"F": None, "S": None, "F_from": None, "S_from": None}
        row = {k: (None if isinstance(v, float) and pd.isna(v) else v) for k, v in row.items()}
        return {**row, **self._by_hand.get(folio_size, {})}

    def _sync_sliders(self):
        """Show the picked folio size's F and S on the sliders (changing nothing)."""
        fs = self.w_amdahl_folio.value
        if fs is not None:
            v = self._values(fs)
            self._syncing = True
            try:
                if v["F"] is not None:
                    self.w_F.value = round(min(max(v["F"], 0.0), 1.0), 3)
                if v["S"] is not None:
                    self.w_S.value = round(min(max(v["S"], self.w_S.min), self.w_S.max), 2)
            finally:
                self._syncing = False
        self.update_amdahl()

    def _slider_moved(self, name: str, value: float):
        if self._syncing:
            return
        fs = self.w_amdahl_folio.value
        if fs is not None:
            self._by_hand.setdefault(fs, {}).update({name: value, f"{name}_from": "set by hand"})
        self.update_amdahl()

    def measure_F(self):
        """The serial-path button: batching on (batch_kernel_copy=1), the kernel's copy,
        and one run, whose counters give F."""
        self.w_migrator.value = "kernel"
        self.w_batched.value = True
        return self.run()

    def amdahl_rows(self) -> pd.DataFrame:
        """Per folio size: F, S, where each came from, the predicted speedup and its limit."""
        out = []
        for fs in (int(x) for x in self.amdahl_inputs.get("folio_size", [])):
            v = self._values(fs)
            F, S = v["F"], v["S"]
            if fs == self.w_amdahl_folio.value:     # no value from any source: the sliders'
                F = self.w_F.value if F is None else F
                S = self.w_S.value if S is None else S
            ok = F is not None and S is not None
            out.append({"folio_size": fs, "folio": format_size(fs), "F": F, "F_from": v["F_from"], "S": S,
                        "S_from": v["S_from"], "speedup": amdahl.speedup(F, S) if ok else None,
                        "limit": amdahl.max_speedup(F) if F is not None else None})
        return pd.DataFrame(out)

    def update_amdahl(self):
        F, S = self.w_F.value, self.w_S.value
        note = amdahl_inputs.path_note(self.results) if not self.results.empty else None
        head = f"<b>{html.escape(note)}</b><br>" if note else ""
        rows = self.amdahl_rows()
        if rows.empty:
            body = (f"predicted speedup <b>{amdahl.speedup(F, S):.2f}x</b> (limit {amdahl.max_speedup(F):.2f}x)<br>"
                    "<small>F and S: the cover letter's 512 x 2M DMA figures, until a run is made</small>")
        else:
            def cell(x, fmt):
                return "—" if x is None or pd.isna(x) else format(x, fmt)

            def src(x):
                return html.escape(x) if isinstance(x, str) else "no source has it"
            lines = "".join(f"<tr><td>{r.folio}</td><td>{cell(r.F, '.3f')}</td><td><small>{src(r.F_from)}</small></td>"
                            f"<td>{cell(r.S, '.2f')}</td><td><small>{src(r.S_from)}</small></td>"
                            f"<td><b>{cell(r.speedup, '.2f')}x</b></td><td>{cell(r.limit, '.2f')}x</td></tr>"
                            for r in rows.itertuples())
            mig, _ = self._s_migrator()
            body = ("<table><tr><th>folio</th><th>F</th><th>F from</th><th>S</th><th>S from</th>"
                    f"<th>speedup</th><th>limit</th></tr>{lines}</table>"
                    f"<small>S is the copy speedup of {html.escape(mig)}</small>")
        self.w_amdahl.value = head + body
        if not self.results.empty:
            self.plot.value = self.render_plot()
            self.plot.layout.display = ""

    def prediction(self) -> pd.DataFrame:
        """Baseline throughput per folio size times the Amdahl speedup of that folio
        size's F and S (NaN where there is neither a figure nor a slider value)."""
        df = self.results
        base_mig = "kernel" if (df["migrator"] == "kernel").any() else df["migrator"].iloc[0]
        s = stats.summarize(df[df["migrator"] == base_mig], by=("folio_size", "folio"))
        rows = self.amdahl_rows()
        factor = dict(zip(rows["folio_size"], rows["speedup"])) if not rows.empty else {}
        s["predicted"] = s["mean"] * s["folio_size"].map(lambda fs: factor.get(int(fs))).astype(float)
        return s.sort_values("folio_size")

    def render_plot(self) -> bytes:
        import matplotlib.pyplot as plt
        df = self.results
        keys = self.row_keys()
        fig, ax = plt.subplots(figsize=(7, 3.6))
        s = stats.summarize(df, by=keys + ["folio_size", "folio"])
        for label, g in s.groupby(keys, sort=False, dropna=False):
            g = g.sort_values("folio_size")
            name = " ".join(str(v) for v in (label if isinstance(label, tuple) else (label,)) if pd.notna(v))
            ax.errorbar(g["folio"], g["mean"], yerr=g["std"].fillna(0), marker="o", capsize=3, label=f"{name} (measured)")
        p = self.prediction()
        ax.plot(p["folio"], p["predicted"], "k--", marker="x", label="Amdahl, F and S of each folio size")
        title = "throughput vs folio size"
        if clocks.frame_note(df):
            title += f"\n({clocks.frame_note(df)})"
        ax.set(xlabel=record_schema.heading("folio"), ylabel=record_schema.heading("gbps"), title=title)
        ax.legend(fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        return buf.getvalue()
