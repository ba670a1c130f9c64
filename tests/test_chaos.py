"""The chaos test: a sweep of twelve configurations during which the VM is killed twice,
the guest panics once, one migration hangs and one trial WARNs. The sweep finishes by
itself; every configuration not given up has all its trials, each verified; the WARN
trial is marked; nothing is recorded twice; the summary names every fault.

The same sweep runs against the fake target (every fault as a real target shows it,
in seconds) and against a real VM on the stock kernel (pytest -m vm; it shares the
session's VM and reboots it four times). Also: a run whose host process is killed at a
random point, resumed, has the same trials as one that was not."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from workbench import paths
from workbench.host.cli import notebooks as cli_notebooks
from workbench.host.running import store
from workbench.host.running.plan import RunParams

from .conftest import need

pytest.importorskip("papermill")

CONFIGS = [f"c{i:02d}" for i in range(1, 13)]
FOLIOS = ["4K", "64K", "2M"]
REPEATS = 2
FAULTS = [
    {"fault": "kill_qemu", "label": "chaos-c03-", "times": 2},   # twice in a row: c03 is given up
    {"fault": "panic", "label": "chaos-c06-", "trial": "-r1"},
    {"fault": "hang", "label": "chaos-c08-", "trial": "-r0"},
    {"fault": "warn", "label": "chaos-c10-", "trial": "-r1"},
]


def chaos_sweep(tmp_path, monkeypatch, defaults: dict, trial_timeout: float):
    grid = tmp_path / "chaos.yaml"
    grid.write_text(yaml.safe_dump({
        "name": "chaos",
        "defaults": {"total_size": "4M", "repeats": REPEATS, "migrators": ["kernel"], "max_reboots": 2,
                     "trial_timeout": trial_timeout, **defaults},
        "configurations": [{"name": c, "folio_sizes": [FOLIOS[i % 3]], "seed": i + 1} for i, c in enumerate(CONFIGS)],
    }))
    plan = tmp_path / "chaos-faults.json"
    plan.write_text(json.dumps({"faults": FAULTS}))
    monkeypatch.setenv("WORKBENCH_CHAOS", str(plan))
    runs = tmp_path / "runs"
    t0 = time.time()
    rc = cli_notebooks.main(["sweep", str(grid), "--runs-dir", str(runs), "--out-dir", str(tmp_path / "pm"),
                             "--quiet"])
    return rc, runs, time.time() - t0


def check_outcome(rc, out, runs, tmp_path):
    assert rc == 1, out                                  # finished by itself; c03 was given up
    (d,) = (tmp_path / "pm").glob("*-chaos")
    status = json.loads((d / "sweep.json").read_text())["configurations"]
    assert {n: c["state"] for n, c in status.items()} == {n: "given_up" if n == "c03" else "done" for n in CONFIGS}
    # every configuration not given up: all its trials, each verified, each once, in one run
    df = store.load_runs(runs)
    assert df.groupby(["run_id", "trial_key"]).size().max() == 1, "a trial was recorded twice"
    for i, name in enumerate(CONFIGS):
        (run_id,) = status[name]["run_ids"]
        mine = df[df["run_id"] == run_id]
        if name == "c03":
            assert mine.empty
            continue
        expect = RunParams(folio_sizes=[4096 if FOLIOS[i % 3] == "4K" else (64 << 10 if FOLIOS[i % 3] == "64K"
                                                                             else 2 << 20)],
                           total_size=4 << 20, repeats=REPEATS, seed=i + 1).trials()
        assert sorted(mine["trial_key"]) == sorted(t.key() for t in expect), name
        assert mine["verified"].all(), name
    assert len(store.list_runs(runs)) == len(CONFIGS)
    # the WARN trial is marked, and only it
    unclean = df[df["kernel_clean"].astype("boolean").eq(False).fillna(False).astype(bool)]
    assert list(unclean["trial_key"]) == ["kernel-4K-4M-n0to1-s10-r1"]
    assert "WARNING:" in unclean["kernel_report"].iloc[0]
    # the summary names every fault
    lines = out.splitlines()
    kills = [ln for ln in lines if ln.startswith("  c03: VM died during trial kernel-2M-4M-n0to1-s3-r0: kill_qemu "
                                                 "(test hook)")]
    assert len(kills) == 2, out
    assert any(ln.startswith("  c06: VM died during trial kernel-2M-4M-n0to1-s6-r1: guest kernel panic") for ln in lines), out
    assert any(ln.startswith("  c08: hung during trial kernel-64K-4M-n0to1-s8-r0: trial kernel-64K-4M-n0to1-s8-r0 "
                             "did not finish within its time limit") for ln in lines), out
    assert "  c10: the kernel logged an oops, BUG or WARN during 1 trial(s), left out of its tables" in lines, out
    assert any(ln.startswith("  given up: c03: kernel-2M-4M-n0to1-s3: 2 faults in a row (--max-reboots 2)")
               for ln in lines), out
    assert "11/12 configurations done, 12 runs, 1 given up" in out
    faults = [f for f in store.load_faults(runs) if f["kind"] != "given_up"]
    assert sorted(f["kind"] for f in faults) == ["hung", "vm_died", "vm_died", "vm_died"]
    return faults


def test_chaos_sweep_on_the_fake_target(tmp_path, monkeypatch, capsys):
    rc, runs, _ = chaos_sweep(tmp_path, monkeypatch, {"target": "fake", "imports": ["workbench.testing.fake_target"]},
                              trial_timeout=0.5)
    check_outcome(rc, capsys.readouterr().out, runs, tmp_path)


@pytest.mark.vm
def test_chaos_sweep_on_a_vm(vm_target, tmp_path, monkeypatch, capsys):
    rc, runs, seconds = chaos_sweep(tmp_path, monkeypatch, {"target": "vm", "vm_name": vm_target.vm.name},
                                    trial_timeout=45)
    out = capsys.readouterr().out
    faults = check_outcome(rc, out, runs, tmp_path)
    hung = next(f for f in faults if f["kind"] == "hung")
    assert "handle_userfault" in hung["detail"] and "do_pages_move" in hung["detail"]   # where it was stuck
    panic = next(f for f in faults if "guest kernel panic" in f["cause"])
    assert "Kernel panic - not syncing: sysrq triggered crash" in panic["detail"]
    # QEMU named each death: the panic by pvpanic, each kill by QEMU's wait status
    assert panic["named_by"] == "pvpanic (QMP GUEST_PANICKED)", panic
    assert panic["cause"] == "guest kernel panic: sysrq triggered crash", panic
    kills = [f for f in faults if f["cause"].startswith("kill_qemu")]
    assert [(f["named_by"], f["qemu_exit"]["signal_name"]) for f in kills] == [("QEMU's exit status", "SIGKILL")] * 2
    # that boot's logs are kept where the reboot that followed did not overwrite them: the
    # text where the record says it came from, and ramoops' record of the panic in any case
    kept = Path(panic["logs"])
    assert kept.parent == vm_target.vm.dir / "deaths", panic["logs"]
    source = {"console": "console.log", "serial": "qemu.log", "pstore": "pstore.txt"}[panic["text_from"]]
    assert "Kernel panic - not syncing: sysrq triggered crash" in (kept / source).read_text(errors="replace")
    assert "Kernel panic - not syncing: sysrq triggered crash" in (kept / "pstore.txt").read_text()
    assert "GUEST_PANICKED" in (kept / "events.jsonl").read_text()
    assert "sysrq triggered crash" not in vm_target.vm.console.read_text(errors="replace")
    assert vm_target.vm.running()                        # left up, as it was, for the next test
    print(f"\nchaos sweep on VM {vm_target.vm.name}: {seconds:.0f} s", file=sys.__stderr__)


@pytest.mark.vm
def test_a_run_killed_at_a_random_point_resumes_to_the_same_trials(vm_target, tmp_path):
    """The host process dies (SIGKILL, no clean-up) after a random number of trials;
    every finished trial is on disk, the VM left behind is reused (not rebooted), and
    --resume completes the run with exactly the trials of an uninterrupted one."""
    seed = int(os.environ.get("WORKBENCH_TEST_SEED", time.time()))
    rnd = random.Random(seed)
    params = RunParams(folio_sizes=[4096, 64 << 10, 2 << 20], total_size=4 << 20, repeats=2)
    expected = sorted(t.key() for t in params.trials())
    kill_after = rnd.randrange(0, len(expected))
    print(f"\nWORKBENCH_TEST_SEED={seed}: killing the run after {kill_after} trials", file=sys.__stderr__)
    token = vm_target.ensure_up()["token"]
    runs = tmp_path / "runs"
    argv = [sys.executable, "-m", "workbench", "run", "--target", "vm", "--vm-name", vm_target.vm.name,
            "--folio-size", "4K,64K,2M", "--size", "4M", "--repeats", "2", "--runs-dir", str(runs), "--json"]
    proc = subprocess.Popen(argv, cwd=paths.REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    while proc.poll() is None:
        if len(list(runs.glob("*/records/*.parquet"))) >= kill_after and list(runs.glob("*/manifest.json")):
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    need(proc.returncode == -signal.SIGKILL, "the run finished before it could be killed")
    (run,) = store.list_runs(runs)
    saved = run.count()
    assert saved >= kill_after and not list(run.records_dir.glob("*.tmp"))
    rc = subprocess.run(argv + ["--resume", run.id], cwd=paths.REPO, capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr
    doc = json.loads(rc.stdout)
    assert sorted(r["trial_key"] for r in doc["records"]) == expected        # the same set, each once
    assert all(r["verified"] for r in doc["records"])
    assert vm_target.vm.state()["token"] == token, "the VM left behind was reused, not rebooted"


@pytest.mark.vm
def test_a_dcbm_migration_that_never_completes_is_dumped_rebooted_and_given_up(lts_vm, tmp_path):
    """A migration that really hangs in the kernel: the test DMA engine never completes a
    descriptor (hang_every=1) and dcbm waits its longest timeout (60 s) per batch. That takes
    the LTS line's series v2 (6.12): v3 bounds dcbm's wait by the batch's bytes (kernel/v3
    0008), so no engine can hang a v3 migration for long (test_kernel_v3_dcbm's timeout
    test). Past the trial's limit the blocked tasks are recorded (the trial's thread in
    move_pages, waiting in the kernel, state D), the VM is rebooted, and with
    --max-reboots 1 the configuration is given up at once; the VM is up again after."""
    from workbench.agent.migrators.mm_migration import DCBM
    from workbench.agent.migrators.dma_test_engine import TEST_DMA_ENGINE, TEST_ENGINE_PARAMS
    from workbench.host.running import runner
    params = RunParams(folio_sizes=[4096], total_size=4 << 20, repeats=2, migrator="dcbm", channels=1,
                       dma_engine=TEST_DMA_ENGINE,
                       settings={f"{TEST_ENGINE_PARAMS}/hang_every": "1", f"{DCBM}/timeout_ms": "60000"})
    token = lts_vm.ensure_up()["token"]
    run = runner.run(lts_vm, params, policy=runner.RunPolicy(trial_timeout=30, max_reboots=1), root=tmp_path,
                     progress=False)
    (hung, given_up) = run.faults()
    assert hung["kind"] == "hung" and hung["trial_key"] == params.trials()[0].key()
    assert "state D" in hung["detail"] and "move_pages" in hung["detail"], hung["detail"]
    assert "sysrq: Show Blocked State" in hung["detail"]
    assert given_up["kind"] == "given_up" and list(run.manifest["given_up"]) == [hung["config"]]
    assert run.records().empty                            # the r1 trial was given up with its configuration
    assert lts_vm.vm.running() and lts_vm.vm.state()["token"] != token   # rebooted, and up
