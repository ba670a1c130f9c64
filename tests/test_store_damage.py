"""A store that survives damage (issue 22, item 5): a record or manifest that cannot be
read is one line naming it, left out and counted (or, --strict, refused); --resume runs
its trial again; `workbench store check` lists and moves aside; --json stdout is JSON
alone; a plan too large is refused at once."""

import json
import time

import pytest

from workbench.errors import WorkbenchError
from workbench.host.running import runner, store
from workbench.host.running.plan import RunParams
from workbench.testing.cli import one_line_error, run_cli
from workbench.testing.fake_target import FakeTarget

LEFT_OUT_1 = "left out 1 damaged file (`workbench store check` lists them; --strict refuses instead)"
NOT_PARQUET = "not readable Parquet: Parquet magic bytes not found in footer"
HALF_MANIFEST = "not JSON: Expecting ':' delimiter: line 1 column 24 (char 23)"


def params(**kw):
    return RunParams(**{"folio_sizes": [4096, 2 << 20], "total_size": 4 << 20, "repeats": 2, **kw})


def make_run(root, label="a", **kw):
    return runner.run(FakeTarget(), params(**kw), policy=runner.RunPolicy(label=label), root=root, progress=False)


def truncate(path):
    path.write_bytes(path.read_bytes()[:100])
    return path


def half_manifest(run):
    path = run.dir / "manifest.json"
    path.write_text('{"label": "a", "target"')
    return path


def test_summary_leaves_a_damaged_record_out_and_says_so(capsys, tmp_path):
    run = make_run(tmp_path)
    bad = truncate(sorted(run.records_dir.glob("*.parquet"))[1])
    rc, out, err = run_cli(capsys, "summary", "--runs-dir", str(tmp_path))
    assert rc == 0 and "kernel" in out and "±" in out
    assert err.splitlines() == [f"skipped damaged record {bad}: {NOT_PARQUET}", LEFT_OUT_1]
    df = store.load_runs(tmp_path)                       # outside a command: skipped too, named once
    assert len(df) == 3 and df.attrs["left_out"] == [str(bad)]
    assert capsys.readouterr().err.splitlines() == [f"skipped damaged record {bad}: {NOT_PARQUET}"]


def test_a_half_written_manifest_leaves_its_run_out(capsys, tmp_path):
    good = make_run(tmp_path, "good")
    bad = half_manifest(make_run(tmp_path, "bad"))
    rc, out, err = run_cli(capsys, "summary", "--runs-dir", str(tmp_path))
    assert rc == 0
    assert err.splitlines() == [f"skipped damaged manifest {bad}: {HALF_MANIFEST}; its run is left out", LEFT_OUT_1]
    assert set(store.load_runs(tmp_path)["run_id"]) == {good.id}
    assert [f["run_id"] for f in store.load_faults(tmp_path)] == []


def test_compare_json_is_json_alone_while_it_leaves_files_out(capsys, tmp_path):
    a, b = make_run(tmp_path, "a", repeats=3), make_run(tmp_path, "b", repeats=3)
    bad = truncate(sorted(b.records_dir.glob("*.parquet"))[0])
    rc, out, err = run_cli(capsys, "compare", a.id, b.id, "--runs-dir", str(tmp_path), "--json")
    doc = json.loads(out)
    assert rc == 0 and doc[0]["base"] == a.id and {r["new_n"] for r in doc[0]["rows"]} == {2, 3}
    assert err.splitlines() == [f"skipped damaged record {bad}: {NOT_PARQUET}", LEFT_OUT_1]


def test_compare_of_a_run_with_nothing_readable_is_one_line(capsys, tmp_path):
    a, b = make_run(tmp_path, "a"), make_run(tmp_path, "b")
    for p in b.records_dir.glob("*.parquet"):
        truncate(p)
    rc, out, err = run_cli(capsys, "compare", a.id, b.id, "--runs-dir", str(tmp_path))
    assert rc == 2 and out == ""
    assert one_line_error(err) == f"workbench: error: run {b.id!r} has no readable record to compare"


@pytest.mark.parametrize("argv", [["summary"], ["compare", "{a}", "{b}"], ["compare", "{a}", "{b}", "--json"],
                                  ["report"]])
@pytest.mark.parametrize("damage", ["record", "manifest"])
def test_strict_refuses_in_one_line_naming_the_file(capsys, tmp_path, argv, damage):
    a, b = make_run(tmp_path, "a"), make_run(tmp_path, "b")
    if damage == "record":
        bad, why = truncate(sorted(b.records_dir.glob("*.parquet"))[0]), NOT_PARQUET
    else:
        bad, why = half_manifest(b), HALF_MANIFEST
    argv = [x.format(a=a.id, b=b.id) for x in argv]
    rc, out, err = run_cli(capsys, *argv, "--runs-dir", str(tmp_path), "--strict")
    assert rc == 2 and out == ""
    assert err.splitlines() == [f"workbench: error: damaged {damage} {bad}: {why}; refused (--strict); "
                                "`workbench store check --move-aside` sets it aside"]


def test_the_report_names_what_it_left_out(capsys, tmp_path):
    from workbench.host.analysis import report
    run = make_run(tmp_path)
    bad = truncate(sorted(run.records_dir.glob("*.parquet"))[0])
    df = report.load(None, tmp_path)
    assert len(df) == 3
    assert report.summary_line(df).endswith(
        f"**1 damaged file is left out (a record or manifest that cannot be read; `workbench store check` lists "
        f"them): {bad}.**")


def test_resume_moves_a_damaged_record_aside_and_runs_its_trial_again(capsys, tmp_path):
    with pytest.raises(WorkbenchError, match="3 finished trials are saved"):
        runner.run(FakeTarget(fail_after=3), params(), root=tmp_path, progress=False)
    (run,) = store.list_runs(tmp_path)
    bad = truncate(sorted(run.records_dir.glob("*.parquet"))[1])
    damaged_key = params().trials()[1].key()
    capsys.readouterr()
    second = FakeTarget()
    runner.run(second, params(), policy=runner.RunPolicy(resume=run.id), root=tmp_path, progress=False)
    assert second.started == [damaged_key, params().trials()[3].key()]     # the damaged one, the missing one
    assert capsys.readouterr().err.splitlines() == [
        f"run {run.id}: damaged record {bad}: {NOT_PARQUET}; moved aside to {bad.name}.damaged, its trial runs again"]
    assert (bad.parent / f"{bad.name}.damaged").exists() and not bad.exists()
    df = store.load_runs(tmp_path)
    assert len(df) == 4 and df["trial_key"].is_unique
    # the new records were numbered past the one moved aside: none took another's name
    assert sorted(p.name[:5] for p in run.records_dir.glob("*.parquet")) == ["00000", "00002", "00003", "00004"]


def test_a_damaged_manifest_cannot_be_resumed(tmp_path):
    run = make_run(tmp_path)
    bad = half_manifest(run)
    with pytest.raises(WorkbenchError) as e:
        runner.run(FakeTarget(), params(), policy=runner.RunPolicy(resume=run.id), root=tmp_path, progress=False)
    assert str(e.value) == f"run {run.id!r} cannot be resumed: damaged manifest {bad}: {HALF_MANIFEST}"


def test_store_check_lists_moves_aside_and_then_reads_clean(capsys, tmp_path):
    a, b, clean = make_run(tmp_path, "a"), make_run(tmp_path, "b"), make_run(tmp_path, "c")
    record = truncate(sorted(a.records_dir.glob("*.parquet"))[0])
    manifest = half_manifest(b)
    b.faults_dir.mkdir()
    fault = b.faults_dir / "00000-hung.json"
    fault.write_text("")
    lines = [f"damaged record {record}: {NOT_PARQUET}", f"damaged manifest {manifest}: {HALF_MANIFEST}",
             f"damaged fault {fault}: empty file"]

    rc, out, err = run_cli(capsys, "store", "check", "--runs-dir", str(tmp_path))
    assert rc == 1 and err == ""
    assert out.splitlines() == lines + [f"3 runs checked in {tmp_path}: 3 damaged files; --move-aside sets them "
                                        "aside"]

    rc, out, err = run_cli(capsys, "store", "check", clean.id, "--runs-dir", str(tmp_path))
    assert (rc, out, err) == (0, f"1 run checked in {tmp_path}: no damaged file\n", "")

    rc, out, err = run_cli(capsys, "store", "check", "--runs-dir", str(tmp_path), "--json")
    assert rc == 1 and err == ""
    assert json.loads(out) == {"root": str(tmp_path), "runs": 3, "damaged": [
        {"path": str(record), "what": "record", "reason": NOT_PARQUET, "moved_to": None},
        {"path": str(manifest), "what": "manifest", "reason": HALF_MANIFEST, "moved_to": None},
        {"path": str(fault), "what": "fault", "reason": "empty file", "moved_to": None}]}

    rc, out, err = run_cli(capsys, "store", "check", "--runs-dir", str(tmp_path), "--move-aside")
    assert rc == 1 and err == ""
    assert out.splitlines() == [f"{line} (moved aside to {p.name}.damaged)"
                                for line, p in zip(lines, (record, manifest, fault))] + [
        f"3 runs checked in {tmp_path}: 3 damaged files, moved aside"]
    assert not record.exists() and (record.parent / f"{record.name}.damaged").exists()

    rc, out, err = run_cli(capsys, "store", "check", "--runs-dir", str(tmp_path))
    assert (rc, err) == (0, "") and out == f"2 runs checked in {tmp_path}: no damaged file\n"
    rc, out, err = run_cli(capsys, "summary", "--runs-dir", str(tmp_path), "--strict")
    assert rc == 0 and err == ""


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


def test_a_plan_too_large_is_refused_at_once(capsys, tmp_path):
    start = time.monotonic()
    rc, out, err = run_cli(capsys, "run", "--target", "fake", "--runs-dir", str(tmp_path), "--repeats", "100000000")
    assert rc == 2 and out == "" and time.monotonic() - start < 10
    assert err.splitlines() == ["workbench: error: repeats 100000000 x 3 folio sizes is 300000000 trials; "
                                "a run holds at most 10000 (use fewer repeats, or several runs)"]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("grid,expect", [
    ({"matrix": {"seed": list(range(1000)), "src": list(range(1000))}},
     "the grid expands to 1000000 configurations (1000 x 1000 x 1 x 1: matrix, configurations, targets); "
     "a sweep holds at most 1000"),
    ({"defaults": {"repeats": 100000000}},
     "repeats 100000000 x 2 folio sizes is 200000000 trials; a run holds at most 10000 (use fewer repeats, or "
     "several runs)"),
])
def test_a_sweep_too_large_is_refused_before_it_is_expanded(grid, expect):
    from workbench.host.running import sweep
    start = time.monotonic()
    with pytest.raises(WorkbenchError) as e:
        sweep.expand_grid(grid)
    assert str(e.value) == expect and time.monotonic() - start < 1
