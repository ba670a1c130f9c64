"""A run that survives its target, host side: the fake target plays each fault (a dead VM,
a panic, a hung trial, a lost link, a WARN) and the runner keeps every finished trial,
records the fault, recovers the target and goes on; a configuration that keeps killing
its target is given up; nothing is recorded twice; every message that stops says how
to resume."""

import json

import pytest

from workbench.errors import WorkbenchError
from workbench.host.cli import main as cli
from workbench.host.running import runner, store
from workbench.host.analysis import stats
from workbench.host.running.chaos import Chaos
from workbench.host.running.plan import RunParams

from workbench.testing.fake_target import KILLED, PANIC, FakeTarget


def params(**kw):
    return RunParams(**{"folio_sizes": [4096, 2 << 20], "total_size": 4 << 20, "repeats": 3, **kw})


def keys(run):
    return sorted(run.records()["trial_key"])


def all_keys(p):
    return sorted(t.key() for t in p.trials())


def test_a_panic_is_recorded_the_target_recovered_and_the_run_completed(tmp_path):
    target = FakeTarget()
    run = runner.run(target, params(), root=tmp_path, progress=False,
                     chaos=Chaos([{"fault": "panic", "trial": "2M-4M-n0to1-s1-r1"}]))
    assert keys(run) == all_keys(params())                      # every trial, once
    assert run.records()["verified"].all()
    (f,) = run.faults()
    assert f["kind"] == "vm_died" and f["trial_key"] == "kernel-2M-4M-n0to1-s1-r1" and f["cause"] == PANIC
    assert f["config"] == "kernel-2M-4M-n0to1-s1" and "Kernel panic" in f["detail"]
    assert target.recoveries == [PANIC]
    assert target.started.count("kernel-2M-4M-n0to1-s1-r1") == 2   # run again after the reboot
    m = run.manifest
    assert m["finished"] and m["given_up"] == {} and m["trials"] == 6


def test_a_killed_qemu_says_so(tmp_path):
    target = FakeTarget()
    run = runner.run(target, params(repeats=1), root=tmp_path, progress=False,
                     chaos=Chaos([{"fault": "kill_qemu", "at": 2}]))
    (f,) = run.faults()
    assert f["cause"] == f"kill_qemu (test hook): {KILLED}" and f["trial_key"] == "kernel-2M-4M-n0to1-s1-r0"
    assert keys(run) == all_keys(params(repeats=1))


def test_a_configuration_that_keeps_killing_the_target_is_given_up_and_the_rest_goes_on(tmp_path, capsys):
    target = FakeTarget()
    chaos = Chaos([{"fault": "kill_qemu", "trial": "4K-4M-n0to1-s1-r1", "times": 5}])
    run = runner.run(target, params(), policy=runner.RunPolicy(max_reboots=2), root=tmp_path, progress=False,
                     chaos=chaos)
    df = run.records()
    assert sorted(df["trial_key"]) == sorted(k for k in all_keys(params()) if "-4K-" not in k or k.endswith("r0"))
    assert run.manifest["given_up"] == {"kernel-4K-4M-n0to1-s1": run.manifest["given_up"]["kernel-4K-4M-n0to1-s1"]}
    reason = run.manifest["given_up"]["kernel-4K-4M-n0to1-s1"]
    assert reason.startswith("2 faults in a row (--max-reboots 2): kill_qemu (test hook)")
    kinds = [f["kind"] for f in run.faults()]
    assert kinds == ["vm_died", "vm_died", "given_up"]
    assert len(target.recoveries) == 2 and chaos.state()["fired"] == {"0": 2}
    # the summary names what was given up and why
    lines = runner.describe_faults(run.faults())
    assert lines[-1] == f"given up: configuration kernel-4K-4M-n0to1-s1: {reason}"
    # resuming tries it again, and completes the run
    runner.run(FakeTarget(), params(), policy=runner.RunPolicy(resume=run.id), root=tmp_path, progress=False)
    again = store.open_run(run.id, tmp_path)
    assert keys(again) == all_keys(params()) and again.manifest["given_up"] == {}


def test_faults_in_a_row_means_in_a_row(tmp_path):
    """A configuration whose trial gets through between two deaths is not given up."""
    chaos = Chaos([{"fault": "panic", "trial": "4K-4M-n0to1-s1-r0"}, {"fault": "panic", "trial": "4K-4M-n0to1-s1-r2"}])
    run = runner.run(FakeTarget(), params(), policy=runner.RunPolicy(max_reboots=2), root=tmp_path, progress=False,
                     chaos=chaos)
    assert keys(run) == all_keys(params()) and run.manifest["given_up"] == {}
    assert [f["kind"] for f in run.faults()] == ["vm_died", "vm_died"]


def test_a_hung_trial_is_dumped_failed_and_run_again_after_a_reboot(tmp_path):
    target = FakeTarget()
    run = runner.run(target, params(repeats=1), policy=runner.RunPolicy(trial_timeout=0.05), root=tmp_path,
                     progress=False, chaos=Chaos([{"fault": "hang", "trial": "4K-4M-n0to1-s1-r0"}]))
    (f,) = run.faults()
    assert f["kind"] == "hung" and f["trial_key"] == "kernel-4K-4M-n0to1-s1-r0"
    assert "did not finish within its time limit of 0 s" in f["cause"]
    assert "python pid 4242 tid 4243 state S:" in f["detail"] and "handle_userfault" in f["detail"]
    assert "sysrq: Show Blocked State" in f["detail"]
    assert target.recoveries == ["a trial hung"] and target.asked_blocked == ([4242], [4243])
    assert keys(run) == all_keys(params(repeats=1))


def test_a_lost_link_reruns_the_trial_in_flight_and_counts_it_once(tmp_path):
    target = FakeTarget()
    run = runner.run(target, params(repeats=2), root=tmp_path, progress=False,
                     chaos=Chaos([{"fault": "cut_link", "at": 3}]))
    assert keys(run) == all_keys(params(repeats=2)) and run.records()["trial_key"].is_unique
    (f,) = run.faults()
    assert f["kind"] == "link_lost" and f["trial_key"] == "kernel-4K-4M-n0to1-s1-r1"
    assert target.started.count("kernel-4K-4M-n0to1-s1-r1") == 2


def test_a_warn_marks_the_trial_and_tables_leave_it_out(tmp_path):
    run = runner.run(FakeTarget(), params(), root=tmp_path, progress=False,
                     chaos=Chaos([{"fault": "warn", "trial": "2M-4M-n0to1-s1-r0"}]))
    df = run.records()
    bad = df[df["kernel_clean"] == False]  # noqa: E712
    assert list(bad["trial_key"]) == ["kernel-2M-4M-n0to1-s1-r0"] and bad["verified"].all()
    assert run.faults() == []                                   # a WARN is no fault: the trial finished
    table = stats.series_table(df)
    assert table.splitlines()[-1] == ("(1 trial left out: the kernel logged an oops, BUG or WARN during it; "
                                      "see their kernel_report)")
    # the 2M cell is the mean of the two clean trials only
    clean = df[(df["folio"] == "2M") & (df["kernel_clean"] != False)]["gbps"]  # noqa: E712
    assert f"{clean.mean():.2f}±{clean.std():.2f}" in table
    assert "left out" not in stats.series_table(df, exclude_unclean=False)
    assert runner.describe_unclean(df) == ["kernel not clean during trial kernel-2M-4M-n0to1-s1-r0: "
                                           "WARNING: CPU: 0 PID: 4242 at mm/migrate.c:1 fake warning"]


def test_chaos_counts_starts_across_processes(tmp_path):
    plan = tmp_path / "chaos.json"
    plan.write_text(json.dumps({"faults": [{"fault": "panic", "at": 3}, {"fault": "warn", "label": "b"}]}))
    env_chaos = lambda: Chaos(json.loads(plan.read_text())["faults"], tmp_path / "chaos.json.state")  # noqa: E731
    p = params(repeats=1)
    a = runner.run(FakeTarget(), p, policy=runner.RunPolicy(label="a"), root=tmp_path / "runs", progress=False,
                   chaos=env_chaos())
    assert a.faults() == []                                     # starts 1 and 2
    b = runner.run(FakeTarget(), p, policy=runner.RunPolicy(label="b"), root=tmp_path / "runs", progress=False,
                   chaos=env_chaos())
    assert [f["trial_key"] for f in b.faults()] == ["kernel-4K-4M-n0to1-s1-r0"]   # the 3rd start, in run b
    assert list(b.records()["kernel_clean"]) == [False, True]   # the warn fired once, on b's first record
    st = env_chaos().state()
    assert st["starts"] == 5 and st["fired"] == {"0": 1, "1": 1}


def test_chaos_plan_errors():
    with pytest.raises(WorkbenchError, match="chaos fault 'explode' is not known; allowed: kill_qemu, panic"):
        Chaos([{"fault": "explode"}])
    with pytest.raises(WorkbenchError, match="chaos fault keys when are not known"):
        Chaos([{"fault": "panic", "when": 3}])


def test_deaths_with_no_trial_in_flight_stop_the_run_with_how_to_resume(tmp_path):
    class DiesAtOnce(FakeTarget):
        def run_plan(self, plan):
            if plan["op"] == "probe":
                yield from super().run_plan(plan)
                return
            from workbench.targets.base import TargetLost
            raise TargetLost("VM 'fake' died during a plan: the guest powered off", kind="vm_died",
                             cause="the guest powered off")
            yield
    with pytest.raises(WorkbenchError) as e:
        runner.run(DiesAtOnce(), params(repeats=1), policy=runner.RunPolicy(max_reboots=2), root=tmp_path,
                   progress=False)
    (run,) = store.list_runs(tmp_path)
    assert "the guest powered off" in str(e.value) and "2 faults in a row with no trial in flight" in str(e.value)
    assert f"resume with --resume {run.id}" in str(e.value)
    assert [f["kind"] for f in run.faults()] == ["vm_died", "vm_died"]


def test_ctrl_c_says_what_is_saved_and_how_to_resume(tmp_path):
    class Interrupted(FakeTarget):
        def run_plan(self, plan):
            for event in super().run_plan(plan):
                if event["type"] == "start" and event["index"] == 2:
                    raise KeyboardInterrupt
                yield event
    with pytest.raises(KeyboardInterrupt) as e:
        runner.run(Interrupted(), params(), root=tmp_path, progress=False)
    (run,) = store.list_runs(tmp_path)
    assert str(e.value) == f"interrupted: 2 finished trials are saved in {run.dir}; resume with --resume {run.id}"


@pytest.mark.parametrize("argv,expect", [
    (["--max-reboots", "0"], "max reboots 0 must be a whole number of at least 1"),
    (["--trial-timeout", "-5"], "trial timeout -5.0 must be a positive number of seconds"),
])
def test_bad_reliability_input(capsys, tmp_path, argv, expect):
    rc = cli.main(["run", "--target", "vm", "--vm-name", "pytest-bad-input", "--runs-dir", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and f"workbench: error: {expect}" in err
    from workbench import paths
    assert not (paths.cache_dir() / "vm" / "pytest-bad-input" / "state.json").exists(), "no VM was started"


def test_cli_run_lists_faults_given_up_configurations_and_how_to_resume(capsys, tmp_path, monkeypatch):
    plan = tmp_path / "chaos.json"
    plan.write_text(json.dumps({"faults": [{"fault": "kill_qemu", "trial": "2M-4M-n0to1-s1-r0", "times": 2},
                                           {"fault": "warn", "trial": "4K-4M-n0to1-s1-r1"}]}))
    monkeypatch.setenv("WORKBENCH_CHAOS", str(plan))
    rc = cli.main(["run", "--target", "fake", "--runs-dir", str(tmp_path / "runs"), "--folio-size", "4K,2M",
                   "--size", "4M", "--repeats", "2"])
    out = capsys.readouterr().out
    (run,) = store.list_runs(tmp_path / "runs")
    assert rc == 1
    assert "(1 trial left out: the kernel logged an oops, BUG or WARN during it; see their kernel_report)" in out
    assert "kernel not clean during trial kernel-4K-4M-n0to1-s1-r1: WARNING: CPU: 0" in out
    assert out.count("VM died during trial kernel-2M-4M-n0to1-s1-r0: kill_qemu (test hook)") == 2
    assert "given up: configuration kernel-2M-4M-n0to1-s1: 2 faults in a row (--max-reboots 2)" in out
    assert f"1 configuration(s) given up; resume with --resume {run.id} to try them again" in out
