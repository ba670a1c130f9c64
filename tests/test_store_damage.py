"""A store that survives damage (issue 22, item 5): a record or manifest that cannot be
read is one line naming it, left out and counted (or, --strict, refused); --resume runs
its trial again; `workbench store check` lists and moves aside; --json stdout is JSON
alone; a plan too large is refused at once."""

import json
import time

import pytest

from workbench.errors import WorkbenchError
from workbench.host import cli, runner, store
from workbench.host.plan import RunParams

from .fake_target import FakeTarget
from .test_cli import one_line_error, run_cli

LEFT_OUT_1 = "left out 1 damaged file (`workbench store check` lists them; --strict refuses instead)"
NOT_PARQUET = "not readable Parquet: Parquet magic bytes not found in footer"
HALF_MANIFEST = "not JSON: Expecting ':' delimiter: line 1 column 24 (char 23)"


def params(**kw):
    return RunParams(**{"folio_sizes": [4096, 2 << 20], "total_size": 4 << 20, "repeats": 2, **kw})


def make_run(root, label="a", **kw):
    return runner.run(FakeTarget(), params(**kw), root=root, progress=False, label=label)


def truncate(path):
    path.write_bytes(path.read_bytes()[:100])
    return path


def half_manifest(run):
    path = run.dir / "manifest.json"
    path.write_text('{"label": "a", "target"')
    return path


def test_run_json_is_json_alone_when_a_fault_is_noticed(capsys, tmp_path, monkeypatch):
    plan = tmp_path / "chaos.json"
    plan.write_text(json.dumps({"faults": [{"fault": "panic", "at": 1}]}))
    monkeypatch.setenv("WORKBENCH_CHAOS", str(plan))
    rc, out, err = run_cli(capsys, "run", "--target", "fake", "--runs-dir", str(tmp_path / "runs"),
                           "--folio-size", "4K,2M", "--size", "4M", "--repeats", "1", "--json")
    doc = json.loads(out)                       # the whole of stdout is one JSON document
    assert rc == 0 and out == json.dumps(doc, default=str) + "\n"
    assert [f["kind"] for f in doc["faults"]] == ["vm_died"] and len(doc["records"]) == 2
    assert err.splitlines() == [f"run {doc['run_id']}: vm died during trial kernel-4K-4M-n0to1-s1-r0: "
                                "guest kernel panic: sysrq triggered crash"]
