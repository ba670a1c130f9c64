"""`workbench sweep`: papermill per configuration against the fake target; failures kept, reruns skip."""

import json
import time

import pytest
import yaml

from workbench.host.cli import notebooks as cli_notebooks
from workbench.host.running import store, sweep
from workbench.errors import WorkbenchError

pytest.importorskip("papermill")

GRID = {"name": "tiny",
        "defaults": {"target": "fake", "imports": ["workbench.testing.fake_target"], "folio_sizes": ["4K", "2M"],
                     "total_size": "4M", "repeats": 2},
        "configurations": [{"name": "ok"}, {"name": "bad", "folio_sizes": ["16K"]}]}


def test_grid_expansion():
    g = sweep.expand_grid({"name": "m", "defaults": {"folio_sizes": "2M"},
                           "matrix": {"kernel": ["stock", "patched"]},
                           "configurations": [{"name": "base"}, {"name": "mt", "migrators": ["mtcopy"],
                                                                  "threads": [1, 2], "batch_sizes": [512]}]})
    assert [c["name"] for c in g["configurations"]] == ["base-stock", "mt-stock", "base-patched", "mt-patched"]
    mt = g["configurations"][3]
    assert mt["kernel"] == "patched" and mt["folio_sizes"] == ["2M"] and mt["threads"] == [1, 2]
    assert sweep.combinations(["kernel", "mtcopy", "dcbm"], [1, 2], None, [None, 512]) == [
        {"migrator": "kernel", "threads": None, "channels": None, "batch_size": None},
        {"migrator": "kernel", "threads": None, "channels": None, "batch_size": 512},
        {"migrator": "mtcopy", "threads": 1, "channels": None, "batch_size": None},
        {"migrator": "mtcopy", "threads": 1, "channels": None, "batch_size": 512},
        {"migrator": "mtcopy", "threads": 2, "channels": None, "batch_size": None},
        {"migrator": "mtcopy", "threads": 2, "channels": None, "batch_size": 512},
        {"migrator": "dcbm", "threads": None, "channels": 1, "batch_size": None},
        {"migrator": "dcbm", "threads": None, "channels": 1, "batch_size": 512},
        {"migrator": "dcbm", "threads": None, "channels": 2, "batch_size": None},
        {"migrator": "dcbm", "threads": None, "channels": 2, "batch_size": 512}]
    with pytest.raises(WorkbenchError, match="unknown configuration key"):
        sweep.expand_grid({"configurations": [{"thread": [1]}]})
    with pytest.raises(WorkbenchError, match="is not a size"):
        sweep.expand_grid({"defaults": {"total_size": "lots"}})


def test_grid_file_errors(tmp_path):
    with pytest.raises(WorkbenchError, match="does not exist"):
        sweep.load_grid(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(WorkbenchError, match="not valid YAML"):
        sweep.load_grid(bad)


def test_sweep_keeps_failures_goes_on_and_skips_what_is_done(tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(GRID))
    argv = ["sweep", str(grid), "--runs-dir", str(tmp_path / "runs"), "--out-dir", str(tmp_path / "pm"), "--quiet"]
    assert cli_notebooks.main(argv) == 1
    out = capsys.readouterr().out
    assert "1/2 configurations done, 1 runs" in out and "failed: bad: WorkbenchError: folio size 16K" in out
    (d,) = (tmp_path / "pm").glob("*-tiny")
    status = json.loads((d / "sweep.json").read_text())
    assert status["configurations"]["ok"]["state"] == "done"
    assert status["configurations"]["bad"]["state"] == "failed"
    # the failing configuration's executed notebook is kept, with its error
    import nbformat
    bad = nbformat.read(str(d / "bad.ipynb"), as_version=4)
    errors = [o for c in bad.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "WorkbenchError"
    ok = nbformat.read(str(d / "ok.ipynb"), as_version=4)
    assert any("parameters" in c.metadata.get("tags", []) or "injected-parameters" in c.metadata.get("tags", [])
               for c in ok.cells)
    (run_id,) = status["configurations"]["ok"]["run_ids"]
    df = store.load_runs(tmp_path / "runs")
    assert set(df["run_id"]) == {run_id} and len(df) == 4 and df["verified"].all()
    mtime = (d / "ok.ipynb").stat().st_mtime_ns

    # rerun: the finished configuration is skipped, the failed one retried
    assert cli_notebooks.main(argv) == 1
    assert (d / "ok.ipynb").stat().st_mtime_ns == mtime
    assert len(list((tmp_path / "pm").glob("*-tiny"))) == 1
    assert len(store.list_runs(tmp_path / "runs")) == 1

    # fix the bad configuration: only it runs; then everything is done and nothing runs
    capsys.readouterr()
    fixed = {**GRID, "configurations": [{"name": "ok"}, {"name": "bad", "folio_sizes": ["64K"]}]}
    grid.write_text(yaml.safe_dump(fixed))
    assert cli_notebooks.main(argv) == 0
    assert "2/2 configurations done, 2 runs" in capsys.readouterr().out
    assert (d / "ok.ipynb").stat().st_mtime_ns == mtime and len(store.list_runs(tmp_path / "runs")) == 2
    assert cli_notebooks.main(argv) == 0
    assert len(store.list_runs(tmp_path / "runs")) == 2


def test_report_command_names_missing_runs(tmp_path, capsys):
    assert cli_notebooks.main(["report", "--runs-dir", str(tmp_path)]) == 2
    assert "no runs to report" in capsys.readouterr().err


def test_grid_with_targets_crosses_them_with_every_configuration():
    g = sweep.expand_grid({"name": "multi", "targets": ["vm:stock", "vm:patched",
                                                         {"spec": "ssh://root@box-a", "identity": "/k"}],
                           "configurations": [{"name": "base"}, {"name": "mt", "migrators": ["mtcopy"]}]})
    names = [c["name"] for c in g["configurations"]]
    assert names == ["vm-stock-base", "vm-stock-mt", "vm-patched-base", "vm-patched-mt", "ssh-root-box-a-base",
                     "ssh-root-box-a-mt"]
    by = {c["name"]: c for c in g["configurations"]}
    assert by["vm-patched-mt"]["target"] == "vm:patched" and by["vm-patched-mt"]["vm_name"] == "sweep-vm-patched"
    assert sweep.target_key(by["vm-stock-base"]) == "vm:sweep-vm-stock"
    assert by["ssh-root-box-a-mt"]["target_options"] == {"identity": "/k"}
    assert sweep.target_key(by["ssh-root-box-a-mt"]) == "ssh://root@box-a"
    with pytest.raises(WorkbenchError, match=r"target entry \{'spec': 'vm', 'colour': 1\}: give a spec"):
        sweep.expand_grid({"targets": [{"spec": "vm", "colour": 1}]})


def _grid(tmp_path, name, targets, configurations, repeats=2):
    grid = tmp_path / f"{name}.yaml"
    grid.write_text(yaml.safe_dump({"name": name, "targets": targets,
                                    "defaults": {"imports": ["workbench.testing.fake_target"], "folio_sizes": ["4K"],
                                                 "total_size": "1M", "repeats": repeats},
                                    "configurations": configurations}))
    return grid


def test_targets_run_in_parallel_never_two_on_one_machine(tmp_path, monkeypatch):
    """Two fake machines, two configurations each, on the local Dask cluster: every
    configuration once; the machines' trials overlap in time, one machine's never do.
    Each machine's first trial waits for the other's to start (a rendezvous, so a loaded
    host's slow notebook start-up cannot make the overlap a matter of luck); run one
    after the other, they would not meet and the overlap check fails."""
    monkeypatch.setenv("WORKBENCH_FAKE_TRIAL_DELAY", "0.4")
    (tmp_path / "meet").mkdir()
    monkeypatch.setenv("WORKBENCH_FAKE_RENDEZVOUS", str(tmp_path / "meet"))
    grid = _grid(tmp_path, "par", ["fake:a", "fake:b"], [{"name": "one"}, {"name": "two", "seed": 2}])
    status = sweep.run_sweep(grid, runs_root=tmp_path / "runs", out_root=tmp_path / "pm", progress=False)
    assert {n: c["state"] for n, c in status["configurations"].items()} == {
        "fake-a-one": "done", "fake-a-two": "done", "fake-b-one": "done", "fake-b-two": "done"}
    df = store.load_runs(tmp_path / "runs")
    assert len(df) == 4 * 2 and df["verified"].all() and df.groupby("label").size().eq(2).all()
    spans = {t: sorted(zip(g["host_started"], g["host_finished"])) for t, g in df.groupby("target")}
    assert set(spans) == {"fake:a", "fake:b"}
    for t, s in spans.items():   # one machine: each trial ends before the next one starts
        assert all(end <= nxt_start + 1e-6 for (_, end), (nxt_start, _) in zip(s, s[1:])), (t, s)
    a, b = spans["fake:a"], spans["fake:b"]
    assert any(sa < eb and sb < ea for sa, ea in a for sb, eb in b), "the two machines never ran at the same time"


def test_a_target_on_the_wrong_kernel_fails_its_configurations_with_one_line(tmp_path):
    """``kernel_expect`` per target: the box on the kernel it should run is measured, the
    one on another kernel (the fake machines run 6.12.0-fake, no series) fails at once with
    the runner's one line, and its notebook is kept; the expectation is not part of what a
    configuration measures, so adding it does not rerun finished ones."""
    grid = _grid(tmp_path, "expect", [{"spec": "fake:good", "kernel_expect": "6.12.0-fake"},
                                      {"spec": "fake:bad", "kernel_expect": "patched"}], [{"name": "c"}])
    status = sweep.run_sweep(grid, runs_root=tmp_path / "runs", out_root=tmp_path / "pm", progress=False)
    by = status["configurations"]
    assert by["fake-good-c"]["state"] == "done", by["fake-good-c"].get("error")
    assert by["fake-bad-c"]["state"] == "failed"
    assert by["fake-bad-c"]["error"].endswith("target fake:bad runs kernel 6.12.0-fake (no copy-offload interface), "
                                              "not the expected patched")
    assert "\n" not in by["fake-bad-c"]["error"]
    assert store.load_runs(tmp_path / "runs")["target"].unique().tolist() == ["fake:good"]
    cfg = next(c for c in sweep.load_grid(grid)["configurations"] if c["name"] == "fake-good-c")
    assert sweep.config_hash(cfg) == sweep.config_hash({**cfg, "kernel_expect": None})
    with pytest.raises(WorkbenchError, match="--kernel-expect is empty"):
        sweep.expand_grid({"defaults": {"kernel_expect": " "}})


def test_a_killed_worker_is_retried_once_then_the_configuration_fails(tmp_path, monkeypatch):
    import os
    import signal
    import threading
    import time
    piddir = tmp_path / "pids"
    piddir.mkdir()
    monkeypatch.setenv("WORKBENCH_FAKE_PIDDIR", str(piddir))
    monkeypatch.setenv("WORKBENCH_FAKE_TRIAL_DELAY", "1.5")
    grid = _grid(tmp_path, "kill", ["fake:once", "fake:twice"], [{"name": "c"}], repeats=3)
    kills = {"once": 1, "twice": 2}
    killed = []

    def killer():
        deadline = time.time() + 600
        while time.time() < deadline and len(killed) < 3:
            for f in sorted(piddir.glob("*.pid")):
                name, attempt = f.stem.rsplit("-", 1)
                if int(attempt) < kills[name] and f.name not in killed:
                    time.sleep(0.5)      # inside the first trial
                    os.kill(int(f.read_text()), signal.SIGKILL)
                    killed.append(f.name)
            time.sleep(0.2)
    th = threading.Thread(target=killer, daemon=True)
    th.start()
    status = sweep.run_sweep(grid, runs_root=tmp_path / "runs", out_root=tmp_path / "pm", progress=False)
    th.join(5)
    assert sorted(killed) == ["once-0.pid", "twice-0.pid", "twice-1.pid"]
    once, twice = status["configurations"]["fake-once-c"], status["configurations"]["fake-twice-c"]
    assert once["state"] == "done"
    assert twice["state"] == "failed" and "its worker died 2 times" in twice["error"]
    assert (tmp_path / "pm").glob("*-kill/fake-twice-c.ipynb")
    df = store.load_runs(tmp_path / "runs")
    done = df[df["target"] == "fake:once"]
    assert len(done) == 3 and done["trial_key"].is_unique, "the retried attempt resumed, nothing twice"


def test_a_scheduler_that_is_not_there_is_one_line(tmp_path, capsys):
    grid = _grid(tmp_path, "nosched", ["fake:a"], [{"name": "c"}])
    argv = ["sweep", str(grid), "--scheduler", "tcp://127.0.0.1:9", "--runs-dir", str(tmp_path / "r"),
            "--out-dir", str(tmp_path / "pm"), "--quiet"]
    assert cli_notebooks.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("workbench: error: no Dask scheduler answers at 'tcp://127.0.0.1:9'")


@pytest.mark.vm
def test_two_vm_targets_at_once_on_the_local_cluster(tmp_path):
    """The vanilla and the patched kernel, two VMs with their own names, swept together:
    every configuration once, the two machines' tasks run at the same time, neither VM ever
    runs two trials at once. Whether the trials themselves overlap depends on which VM boots
    first (their boots take minutes on a loaded host and the trials seconds), so that is
    proven with a rendezvous on the fake machines above; here the claim is the scheduler's:
    the two targets' first tasks, each booting its VM, ran side by side."""
    from workbench.targets import kernel_images
    from workbench.vm.numa_vm import VM

    from .conftest import PATCHED_KERNEL, VANILLA_KERNEL, VM_PREFIX, need
    kernels = (VANILLA_KERNEL, PATCHED_KERNEL)
    for kernel in kernels:
        try:
            kernel_images.resolve(kernel)
        except WorkbenchError as exc:
            need(False, f"no {kernel} kernel: {exc}")
    targets = [{"spec": f"vm:{k}", "vm_name": f"{VM_PREFIX}-sweep-{k}"} for k in kernels]
    grid = _grid(tmp_path, "twovms", targets, [{"name": "a"}, {"name": "b", "folio_sizes": ["2M"], "total_size": "2M"}])
    try:
        status = sweep.run_sweep(grid, runs_root=tmp_path / "runs", out_root=tmp_path / "pm", progress=False,
                                 notebook_timeout=2400)
    finally:
        for t in targets:
            VM(t["vm_name"]).down()
    assert all(c["state"] == "done" for c in status["configurations"].values()), status["configurations"]
    assert len(status["configurations"]) == 4
    df = store.load_runs(tmp_path / "runs")
    assert df["verified"].all() and len(df) == 4 * 2 and df.groupby("label").size().eq(2).all()
    spans = {t: sorted(zip(g["host_started"], g["host_finished"])) for t, g in df.groupby("target")}
    assert len(spans) == 2
    for s in spans.values():
        assert all(end <= nxt + 1e-6 for (_, end), (nxt, _) in zip(s, s[1:]))
    tasks = {}
    for c in status["configurations"].values():
        start = time.mktime(time.strptime(c["started"], "%Y-%m-%dT%H:%M:%S"))
        tasks.setdefault(c["target"], []).append((start, start + c["seconds"]))
    assert len(tasks) == 2
    (a, b) = tasks.values()
    overlap = max(min(ea, eb) - max(sa, sb) for sa, ea in a for sb, eb in b)
    assert overlap > 5, f"the two VMs' tasks never ran at the same time: {tasks}"


def _kernel_that_dies(tmp_path, monkeypatch, name, deaths):
    """A Jupyter kernel named ``name`` that exits at start-up the first ``deaths`` times
    (as one does that lost a port to another process), then starts ipykernel."""
    import sys
    counter = tmp_path / f"{name}.starts"
    start = ("import os, sys\n"
             f"c = {str(counter)!r}\n"
             "n = int(open(c).read()) if os.path.exists(c) else 0\n"
             "open(c, 'w').write(str(n + 1))\n"
             f"if n < {deaths}: sys.exit('zmq.error.ZMQError: Address already in use')\n"
             "os.execv(sys.executable, [sys.executable, '-m', 'ipykernel_launcher', '-f', sys.argv[1]])\n")
    spec = tmp_path / "jupyter" / "kernels" / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": [sys.executable, "-c", start, "{connection_file}"],
                                                  "display_name": name, "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return counter


def test_a_notebook_whose_kernel_dies_at_start_is_started_again(tmp_path, monkeypatch):
    """A Jupyter kernel that dies before its first cell (jupyter_client's port race: two
    kernels started at once can pick the same port) ran nothing, so the sweep starts the
    notebook again and the configuration is measured; one that never starts fails with
    one line saying how often it died, and nothing is stored for it."""
    counter = _kernel_that_dies(tmp_path, monkeypatch, "dies-once", 1)
    grid = _grid(tmp_path, "restart", ["fake:a"], [{"name": "c"}])
    status = sweep.run_sweep(grid, runs_root=tmp_path / "runs", out_root=tmp_path / "pm", progress=False,
                             jupyter_kernel="dies-once")
    entry = status["configurations"]["fake-a-c"]
    assert entry["state"] == "done", entry.get("error")
    assert entry["kernel_restarts"] == 1 and counter.read_text() == "2"
    assert len(store.load_runs(tmp_path / "runs")) == 2

    counter = _kernel_that_dies(tmp_path, monkeypatch, "never-starts", 99)
    grid = _grid(tmp_path, "never", ["fake:a"], [{"name": "c"}])
    status = sweep.run_sweep(grid, runs_root=tmp_path / "runs2", out_root=tmp_path / "pm", progress=False,
                             jupyter_kernel="never-starts")
    entry = status["configurations"]["fake-a-c"]
    assert entry["state"] == "failed" and counter.read_text() == "3"
    assert entry["error"].endswith("(its Jupyter kernel died before running a cell, 3 times)"), entry["error"]
    assert "\n" not in entry["error"]
    assert store.list_runs(tmp_path / "runs2") == []


def test_executing_a_notebook_starts_a_dead_kernel_again(tmp_path, monkeypatch):
    """The in-process path (reports, tests) starts a kernel that died before its first
    cell again; a cell's own error is raised at once, never retried."""
    from workbench.host.running import notebooks
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 6 * 7\nprint(x)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    src = tmp_path / "t.ipynb"
    nbformat.write(nb, str(src))
    counter = _kernel_that_dies(tmp_path, monkeypatch, "dies-twice", 2)
    notebooks.execute(src, tmp_path / "out.ipynb", {}, jupyter_kernel="dies-twice")
    out = nbformat.read(str(tmp_path / "out.ipynb"), as_version=4)
    assert out.cells[0].outputs[0]["text"] == "42\n" and counter.read_text() == "3"

    nb.cells = [nbformat.v4.new_code_cell("raise ValueError('a cell of its own')")]
    nbformat.write(nb, str(src))
    counter = _kernel_that_dies(tmp_path, monkeypatch, "fine", 0)
    with pytest.raises(Exception, match="a cell of its own"):
        notebooks.execute(src, tmp_path / "out2.ipynb", {}, jupyter_kernel="fine")
    assert counter.read_text() == "1"
