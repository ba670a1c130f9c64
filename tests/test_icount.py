"""The instruction-counted clock in a real VM: it boots, its results say icount wherever
they go, they verify byte-exact, and they are never compared with wall-clock results.
No test asserts on a measured time; one bounds the host CPU an idle, paused VM uses."""

import time

import pytest

from workbench.errors import WorkbenchError
from workbench.host.analysis import clocks, report, stats
from workbench.host.running import runner, store
from workbench.host.running.plan import RunParams

pytestmark = pytest.mark.vm
SIZE = 4 << 20


@pytest.fixture(scope="module")
def icount_run(icount_vm, tmp_path_factory):
    root = tmp_path_factory.mktemp("icount-runs")
    run = runner.run(icount_vm, RunParams(folio_sizes=[4096, 64 << 10, 2 << 20], total_size=SIZE, repeats=1),
                     policy=runner.RunPolicy(label="icount"), root=root, progress=False)
    return root, run


def test_the_icount_vm_boots_with_an_instruction_counted_clock(icount_vm):
    st = icount_vm.vm.state()
    assert st["accelerator"] == "icount" and st["clock"] == "icount"
    assert "-icount shift=0,sleep=off" in " ".join(st["command"]) and "thread=single" in " ".join(st["command"])
    facts = icount_vm.facts()
    assert facts["accelerator"] == "icount" and facts["clock"] == "icount"
    assert icount_vm.vm.log.problems(0) == []


def test_default_trials_verify_and_say_icount(icount_run):
    root, run = icount_run
    m = run.manifest
    assert m["clock"] == "icount" and m["accelerator"] == "icount" and not m["functional_only"]
    df = store.load_runs(root, [run.id])
    assert len(df) == 3 and df["verified"].all() and (df["folio_match_share"] == 1.0).all()
    assert (df["pages_moved"] == SIZE // 4096).all()
    assert set(df["clock"]) == {"icount"} and set(df["accelerator"]) == {"icount"}


def test_an_idle_icount_vm_is_paused_and_a_plan_resumes_it(icount_vm, icount_run):
    """With sleep=off an idle icount guest's timers and its agent's polling run flat out
    (60-80% of a host core); between plans it is paused and costs nothing. The bound is
    on host CPU used, not on any time measured."""
    vm = icount_vm.vm
    assert vm.run_state() == "paused" and vm.status()["paused_while_idle"]
    before = vm.cpu_seconds()
    time.sleep(5)
    used = vm.cpu_seconds() - before
    assert used < 1.0, f"the paused icount VM used {used:.2f} s of host CPU in 5 s"
    assert icount_vm.facts(refresh=True)["clock"] == "icount"       # a plan resumes it ...
    assert vm.run_state() == "paused"                                # ... and it is paused again


def test_the_report_labels_icount_and_refuses_to_mix_clocks(icount_run, vm_target):
    root, run = icount_run
    wall = runner.run(vm_target, RunParams(folio_sizes=[4096], total_size=SIZE, repeats=1),
                      policy=runner.RunPolicy(label="wall"), root=root, progress=False)
    assert wall.manifest["clock"] == "wall"
    df = report.load([run.id], root)
    text = report.text_tables(df)
    assert "[instruction-time (icount): deterministic path cost, not speed]" in text
    both = store.load_runs(root, [run.id, wall.id])
    with pytest.raises(WorkbenchError, match=r"^this table mixes clocks \(icount, wall\)"):
        stats.series_table(both)
    assert clocks.ICOUNT_NOTE[1:] in report.summary_line(report.prepare(both))


def test_the_patched_kernel_runs_the_default_trials_byte_exact_under_icount(patched_icount_vm, tmp_path):
    run = runner.run(patched_icount_vm, RunParams(folio_sizes=[4096, 64 << 10, 2 << 20], total_size=SIZE, repeats=1),
                     policy=runner.RunPolicy(label="icount-patched"), root=tmp_path, progress=False)
    df = run.records()
    assert run.manifest["clock"] == "icount" and run.manifest["migration_interface"].startswith("workbench")
    assert len(df) == 3 and df["verified"].all() and (df["pages_moved"] == SIZE // 4096).all()
    assert patched_icount_vm.vm.log.problems(0) == []
