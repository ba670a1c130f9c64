"""The explore panel driven from Python: set widgets, press Run against a fake target, read it."""

import copy

import pandas as pd
import pytest

from workbench.host.running import store
from workbench.protocol import TrialSpec

from workbench.testing.fake_target import FACTS, FakeTarget

pytest.importorskip("ipywidgets")
from workbench.host.analysis import panel as P

PATCHED = {**copy.deepcopy(FACTS), "interface": "workbench /sys/kernel/mm/migration",
           "migrators": ["kernel", "mtcopy"], "offered": ["kernel", "mtcopy", "dcbm"],
           "knobs": {"threads": (1, 2), "channels": (1, 16), "batch_size": (1, 262144),
                     "batch_kernel_copy": (0, 1)},
           "kernel_release": "6.12.117-patched"}


class CounterTarget(FakeTarget):
    """The fake target with the patched kernel's knobs and copy-time counters, which (as
    the kernel's) count only batched copies: the kernel's serial path counts nothing."""

    def run_plan(self, plan):
        for event in super().run_plan(plan):
            if event["type"] == "record":
                spec = TrialSpec.from_dict(self.seen[-1])
                event["record"].update({"threads": spec.threads, "channels": spec.channels,
                                        "batch_size": spec.batch_size, "total_bytes": spec.total_size,
                                        "batch_kernel_copy": spec.batch_kernel_copy,
                                        "interface": self._facts_template["interface"]})
                if spec.migrator != "kernel" or spec.batch_kernel_copy:
                    copy_ns = 800 if spec.migrator == "kernel" else 100
                    event["record"].update({"copy_share": 0.6 if spec.migrator == "kernel" else 0.2,
                                            f"mig_{spec.migrator}_copy_ns": copy_ns})
            yield event


def press(button):
    button.click()


def test_controls_offer_only_what_the_target_offers_and_run_only_on_the_button(tmp_path):
    target = CounterTarget(facts=PATCHED)
    p = P.Panel(target=target, root=tmp_path)
    press(p.w_connect)
    assert p.error is None, p.error
    assert list(p.w_migrator.options) == ["kernel", "mtcopy", "dcbm"]
    assert [lbl for lbl, _ in p.w_folios.options] == ["4K", "64K", "2M"]
    assert p.w_workers.disabled                          # kernel has no threads knob
    p.w_migrator.value = "dcbm"
    assert p.w_workers.description == "channels" and not p.w_workers.disabled and p.w_workers.max == 16
    p.w_migrator.value = "mtcopy"
    assert p.w_workers.description == "threads" and p.w_workers.max == 2
    # moving sliders runs nothing
    p.w_workers.value, p.w_repeats.value, p.w_size.value = 2, 2, "4M"
    p.w_folios.value = (4096, 2 << 20)
    p.w_batch.value = 512
    assert target.seen == [] and store.list_runs(tmp_path) == []
    press(p.w_run)
    assert p.error is None, p.error
    assert len(target.seen) == 4 and p.w_progress.value == p.w_progress.max == 4
    assert {t["threads"] for t in target.seen} == {2} and {t["batch_size"] for t in target.seen} == {512}
    assert p.w_progress.bar_style == "success"
    (run,) = store.list_runs(tmp_path)
    assert run.count() == 4
    table = p.table.value
    assert "migrator x threads x batch_size" in table and "mtcopy 2 512" in table
    assert "4K" in table and "2M" in table and "verified: 4/4" in table
    assert p.plot.value[:4] == b"\x89PNG"
    # the last trial as the monitor saw it, and what the monitor cost
    assert p.timeline.value[:4] == b"\x89PNG" and p.timeline.layout.display == ""
    assert "monitor: every 10 ms, 4 trials" in p.w_timeline_note.value


def test_amdahl_sliders_default_to_measured_counters(tmp_path):
    p = P.Panel(target=CounterTarget(facts=PATCHED), root=tmp_path)
    p.connect()
    p.w_folios.value, p.w_size.value, p.w_repeats.value = (2 << 20,), "4M", 1
    p.w_batched.value = True
    p.run()                                    # the batched kernel copy: F = 0.6
    assert {t["batch_kernel_copy"] for t in p.target.seen} == {True}
    p.w_migrator.value = "dcbm"
    assert p.w_batched.disabled and not p.w_batched.value    # the kernel's copy only
    p.w_workers.value = 4
    p.run()                                    # dcbm: copy 100 ns vs 800 ns -> S = 8
    assert p.w_F.value == pytest.approx(0.6) and p.w_S.value == pytest.approx(8.0)
    assert "counters: this panel&#x27;s records" in p.w_amdahl.value
    assert "counters: kernel over dcbm copy time per byte" in p.w_amdahl.value
    assert "2.11x" in p.w_amdahl.value          # 1 / (0.4 + 0.6 / 8)
    assert p.w_measure_F.layout.display == "none"
    pred = p.prediction()
    base = p.results.query("migrator == 'kernel'")["gbps"].mean()
    assert pred["predicted"].iloc[0] == pytest.approx(base / (0.4 + 0.6 / 8.0))
    before = p.plot.value
    p.w_F.value = 0.9                          # moving the slider redraws, runs nothing
    assert p.plot.value != before and len(store.list_runs(tmp_path)) == 2
    assert set(p.results["migrator"]) == {"kernel", "dcbm"}
    assert "set by hand" in p.w_amdahl.value
    assert p.prediction()["predicted"].iloc[0] == pytest.approx(base / (0.1 + 0.9 / 8.0))


def stored_cost_run(root, release, interface, config, batch, migrator="kernel", shares=None, copy_ns=None):
    """A stored `bench cost` run of one configuration: a record per folio size."""
    run = store.create_run({"label": "cost", "kernel_release": release, "accelerator": "icount", "clock": "icount",
                            "cost": {"config": config, "kernel_tree": "patched", "boot": 0,
                                     "latency_trial": False}}, root=root)
    for fs in (4096, 65536, 2 << 20):
        run.append({"trial_key": f"{config}-{fs}", "migrator": migrator, "folio_size": fs, "batch_size": batch,
                    "total_bytes": 8 << 20, "interface": interface, "gbps": 1.0, "seconds": 0.01, "folios": 8,
                    "verified": True, "copy_share": (shares or {}).get(fs),
                    f"mig_{migrator}_copy_ns": (copy_ns or {}).get(fs)})
    return run


def test_a_patched_kernel_on_its_serial_path_is_named_and_one_click_measures_F(tmp_path):
    """The serial path counts no copies: F per folio size from the kernel's stored cost runs
    (the batch nearest the default), the panel says so, and its button turns batching on."""
    release, iface = PATCHED["kernel_release"], PATCHED["interface"]
    stored_cost_run(tmp_path, release, iface, "batched kernel copy, batch 16", 16,
                    shares={4096: 0.30, 65536: 0.60, 2 << 20: 0.95}, copy_ns={4096: 600, 65536: 600, 2 << 20: 600})
    stored_cost_run(tmp_path, release, iface, "batched kernel copy, batch 512", 512,
                    shares={4096: 0.54, 65536: 0.78, 2 << 20: 0.99}, copy_ns={4096: 600, 65536: 600, 2 << 20: 600})
    stored_cost_run(tmp_path, "7.3.4+", iface, "batched kernel copy, batch 512", 512,     # another kernel
                    shares={4096: 0.11, 65536: 0.11, 2 << 20: 0.11})
    stored_cost_run(tmp_path, release, iface, "dcbm, 1 channel", None, migrator="dcbm",
                    copy_ns={4096: 400, 65536: 200, 2 << 20: 100})
    p = P.Panel(target=CounterTarget(facts=PATCHED), root=tmp_path)
    p.connect()
    p.w_folios.value, p.w_size.value, p.w_repeats.value = (4096, 65536, 2 << 20), "4M", 1
    p.run()                                    # defaults: the kernel's serial path
    assert "on its serial path (batching off)" in p.w_amdahl.value
    assert p.w_measure_F.layout.display == ""
    rows = p.amdahl_rows().set_index("folio")
    assert rows["F"].to_dict() == {"4K": 0.54, "64K": 0.78, "2M": 0.99}           # per folio size, batch 512
    assert rows["S"].to_dict() == pytest.approx({"4K": 1.5, "64K": 3.0, "2M": 6.0})  # dcbm: the one offered
    assert all(f.startswith("cost: bench cost runs of this kernel, batch 512, icount") for f in rows["F_from"])
    pred = p.prediction().set_index("folio")
    assert pred.loc["4K", "predicted"] / pred.loc["4K", "mean"] == pytest.approx(1 / (0.46 + 0.54 / 1.5))
    assert pred.loc["2M", "predicted"] / pred.loc["2M", "mean"] == pytest.approx(1 / (0.01 + 0.99 / 6.0))
    p.w_amdahl_folio.value = 4096              # the sliders follow the folio size picked
    assert p.w_F.value == pytest.approx(0.54) and p.w_S.value == pytest.approx(1.5)
    press(p.w_measure_F)                       # one click: batching on, one run
    assert p.error is None, p.error
    assert p.w_batched.value and p.target.seen[-1]["batch_kernel_copy"] is True
    assert "serial path" not in p.w_amdahl.value and p.w_measure_F.layout.display == "none"
    rows = p.amdahl_rows().set_index("folio")
    assert rows["F"].to_dict() == pytest.approx({"4K": 0.6, "64K": 0.6, "2M": 0.6})   # this run's counters
    assert set(rows["F_from"]) == {"counters: this panel's records"}


def test_a_stock_kernel_takes_the_seeds_shares_per_folio_size(tmp_path):
    """No counters and no cost runs: the cover letter's F at 4K and 2M (at 512 folios),
    S solved from its throughput with that F; 64K has no source and says so."""
    from workbench.host.analysis import amdahl, reference
    p = P.Panel(target=CounterTarget(), root=tmp_path)
    p.connect()
    p.w_folios.value, p.w_size.value, p.w_repeats.value = (4096, 65536, 2 << 20), "4M", 1
    p.run()
    assert "has no copy-offload interface" in p.w_amdahl.value
    assert p.w_measure_F.layout.display == "none"
    rows = p.amdahl_rows().set_index("folio")
    assert rows.loc["4K", "F"] == 0.35 and rows.loc["2M", "F"] == 0.97
    tp = reference.throughput().query("folio == '2M'")
    ratio = tp.query("migrator == 'dcbm' and channels == 16")["gbps_mean"].item() / \
        tp.query("migrator == 'kernel'")["gbps_mean"].item()
    assert rows.loc["2M", "S"] == pytest.approx(amdahl.copy_speedup_for(ratio, 0.97))
    assert "seed: RFC V3 cover letter, 512 folios at a time (other hardware)" == rows.loc["2M", "F_from"]
    assert "dcbm 16 channels" in rows.loc["2M", "S_from"]
    assert pd.isna(rows.loc["64K", "F_from"]) and "no source has it" in p.w_amdahl.value
    assert p.w_amdahl_folio.value == 2 << 20 and p.w_F.value == pytest.approx(0.97)


def test_errors_are_shown_in_the_panel(tmp_path):
    p = P.Panel(target=FakeTarget(), root=tmp_path)
    press(p.w_connect)
    p.w_size.value = "3K"                      # not a multiple of the folio sizes / not a size
    press(p.w_run)
    assert p.error and "size" in p.error
    assert "error:" in p.w_status.value and p.w_progress.bar_style == "danger"
    p.w_size.value = "4M"
    p.w_folios.value = ()
    press(p.w_run)
    assert "no folio size selected" in p.error
    # a trial that fails mid-run: the error line names the saved trials
    p2 = P.Panel(target=FakeTarget(fail_after=1), root=tmp_path)
    p2.connect()
    p2.w_size.value = "4M"
    press(p2.w_run)
    assert "trial exploded" in p2.error and "resume" in p2.error
    assert "trial exploded" in p2.w_status.value


def test_target_spec_goes_through_the_factory(tmp_path):
    made = []

    def factory(spec, kernel=None, accel=None):
        made.append((spec, kernel))
        return FakeTarget()
    p = P.Panel(spec="fake", kernel="patched", root=tmp_path, factory=factory)
    assert p.w_run.disabled
    p.w_target.value = "vm"
    assert p.w_kernel.layout.display == ""
    p.w_target.value = "fake"
    assert p.w_kernel.layout.display == "none"
    press(p.w_connect)
    assert made == [("fake", "patched")] and not p.w_run.disabled
    p.w_target.value = ""
    press(p.w_connect)
    assert "no target given" in p.error
    assert isinstance(p.widget().children, tuple)


def test_every_knob_the_panel_has_no_control_for_is_a_field_from_the_catalogue(tmp_path):
    from workbench.catalogue import knobs
    target = CounterTarget(facts=PATCHED)
    p = P.Panel(target=target, root=tmp_path)
    p.connect()
    own = {"workload", "access", "folio_sizes", "total_size", "repeats", "migrator", "threads", "channels",
           "batch_size", "batch_kernel_copy"}
    assert set(p.w_more) | own == {k.name for k in knobs.KNOBS}, "every knob has a control"
    assert p.w_migrator.description == "migrator" and "copy engine" in p.w_migrator.tooltip
    defaults = p.params()
    for name in p.w_more:
        expected = 1 if name == "dst" else knobs.default(name)     # dst: move-pages' node 1
        assert getattr(defaults, name) == expected, name
    p.w_more["monitor_ms"].value = "off"
    p.w_more["trace"].value = False
    p.w_more["settings"].value = "/sys/a/b=1 /sys/c=2"
    p.w_more["seed"].value = "7"
    p.w_folios.value = (4096,)
    p.w_repeats.value = 1
    p.run()
    sent = target.seen[-1]
    assert sent["monitor_ms"] is None and sent["trace"] is False and sent["seed"] == 7
    assert sent["settings"] == {"/sys/a/b": "1", "/sys/c": "2"}
    p.w_more["access_threads"].value = "lots"
    p._guard(p.run)
    assert p.error == "access threads 'lots' is not an integer"
