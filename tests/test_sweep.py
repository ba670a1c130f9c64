"""`workbench sweep`: papermill per configuration against the fake target; failures kept, reruns skip."""

import json

import pytest
import yaml

from workbench.host import cli_notebooks, store, sweep
from workbench.errors import WorkbenchError

pytest.importorskip("papermill")

GRID = {"name": "tiny",
        "defaults": {"target": "fake", "imports": ["tests.fake_target"], "folio_sizes": ["4K", "2M"],
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
