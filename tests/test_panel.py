"""The explore panel driven from Python: set widgets, press Run against a fake target, read it."""

import copy

import pytest

from workbench.host import store
from workbench.protocol import TrialSpec

from workbench.testing.fake_target import FACTS, FakeTarget

pytest.importorskip("ipywidgets")
from workbench.host import panel as P  # noqa: E402

PATCHED = {**copy.deepcopy(FACTS), "interface": "workbench /sys/kernel/mm/migration",
           "migrators": ["kernel", "mtcopy"], "offered": ["kernel", "mtcopy", "dcbm"],
           "knobs": {"threads": (1, 2), "channels": (1, 16), "batch_size": (1, 262144)},
           "kernel_release": "6.12.117-patched"}


class CounterTarget(FakeTarget):
    """The fake target with the patched kernel's knobs and copy-time counters."""

    def run_plan(self, plan):
        for event in super().run_plan(plan):
            if event["type"] == "record":
                spec = TrialSpec.from_dict(self.seen[-1])
                copy_ns = 800 if spec.migrator == "kernel" else 100
                event["record"].update({"threads": spec.threads, "channels": spec.channels,
                                        "batch_size": spec.batch_size, "total_bytes": spec.total_size,
                                        "copy_share": 0.6 if spec.migrator == "kernel" else 0.2,
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


def test_amdahl_sliders_default_to_measured_counters(tmp_path):
    p = P.Panel(target=CounterTarget(facts=PATCHED), root=tmp_path)
    p.connect()
    p.w_folios.value, p.w_size.value, p.w_repeats.value = (2 << 20,), "4M", 1
    p.run()                                    # kernel baseline: F = 0.6
    p.w_migrator.value = "dcbm"
    p.w_workers.value = 4
    p.run()                                    # dcbm: copy 100 ns vs 800 ns -> S = 8
    assert p.w_F.value == pytest.approx(0.6) and p.w_S.value == pytest.approx(8.0)
    assert "measured" in p.w_amdahl.value
    assert "2.11x" in p.w_amdahl.value          # 1 / (0.4 + 0.6 / 8)
    pred = p.prediction()
    base = p.results.query("migrator == 'kernel'")["gbps"].mean()
    assert pred["predicted"].iloc[0] == pytest.approx(base / (0.4 + 0.6 / 8.0))
    before = p.plot.value
    p.w_F.value = 0.9                          # moving the slider redraws, runs nothing
    assert p.plot.value != before and len(store.list_runs(tmp_path)) == 2
    assert set(p.results["migrator"]) == {"kernel", "dcbm"}


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
