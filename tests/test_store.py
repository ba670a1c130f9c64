"""The results store: one Parquet file per trial, loading, and resuming a broken run."""

import pandas as pd
import pytest

from workbench.host.running import runner, store
from workbench.errors import WorkbenchError
from workbench.host.running.plan import RunParams

from workbench.testing.fake_target import FakeTarget


def params(**kw):
    return RunParams(**{"folio_sizes": [4096, 2 << 20], "total_size": 4 << 20, "repeats": 3, **kw})


def test_each_trial_is_saved_with_its_run_context(tmp_path):
    run = runner.run(FakeTarget(), params(), root=tmp_path, progress=False)
    files = sorted(run.records_dir.glob("*.parquet"))
    assert len(files) == 6 and not list(run.records_dir.glob("*.tmp"))
    m = run.manifest
    assert m["params"]["folio_sizes"] == [4096, 2 << 20] and m["kernel_release"] == "6.12.0-fake"
    assert m["trials"] == 6 and m["workbench_revision"]
    df = store.load_runs(tmp_path)
    assert len(df) == 6 and set(df["run_id"]) == {run.id}
    assert (df["kernel_release"] == "6.12.0-fake").all() and (df["target"] == "fake").all()
    # repeats outermost: sizes interleave
    assert list(df["folio"])[:2] == ["4K", "2M"]


def test_crash_keeps_finished_trials_and_resume_completes_the_rest(tmp_path):
    with pytest.raises(WorkbenchError) as e:
        runner.run(FakeTarget(fail_after=4), params(), root=tmp_path, progress=False)
    assert "trial exploded" in str(e.value) and "4 finished trials are saved" in str(e.value)
    (run,) = store.list_runs(tmp_path)
    assert run.count() == 4
    second = FakeTarget()
    runner.run(second, params(), policy=runner.RunPolicy(resume=run.id), root=tmp_path, progress=False)
    assert len(second.seen) == 2                       # only what was missing ran
    df = store.load_runs(tmp_path)
    assert len(df) == 6 and df["trial_key"].is_unique


def test_resume_refuses_other_parameters(tmp_path):
    run = runner.run(FakeTarget(), params(), root=tmp_path, progress=False)
    with pytest.raises(WorkbenchError, match="other parameters"):
        runner.run(FakeTarget(), params(repeats=5), policy=runner.RunPolicy(resume=run.id), root=tmp_path,
                   progress=False)


def test_unknown_run_and_empty_store(tmp_path):
    with pytest.raises(WorkbenchError, match="no run 'nope'"):
        store.open_run("nope", tmp_path)
    assert store.load_runs(tmp_path).empty


def test_load_runs_concatenates_runs(tmp_path):
    a = runner.run(FakeTarget(), params(repeats=1), policy=runner.RunPolicy(label="a"), root=tmp_path, progress=False)
    b = runner.run(FakeTarget(), params(repeats=2), policy=runner.RunPolicy(label="b"), root=tmp_path, progress=False)
    df = store.load_runs(tmp_path)
    assert df.groupby("run_id").size().to_dict() == {a.id: 2, b.id: 4}
    assert isinstance(df, pd.DataFrame) and not df["functional"].any()


def test_trial_keys_name_every_knob():
    from workbench.protocol import TrialSpec
    base = TrialSpec(folio_size=2 << 20, total_size=64 << 20)
    assert base.key() == "kernel-2M-64M-n0to1-s1-r0"
    assert TrialSpec(folio_size=4096, total_size=1 << 20, migrator="mtcopy", threads=2, batch_size=64,
                     first_folio=True, repeat=2).key() == "mtcopy-t2-b64-4K-1M-n0to1-s1-r2-ff"


def test_an_unknown_run_lists_recent_run_ids(tmp_path):
    made = [runner.run(FakeTarget(), params(repeats=1), policy=runner.RunPolicy(label=f"r{i}"), root=tmp_path,
                       progress=False).id
            for i in range(2)]
    with pytest.raises(WorkbenchError) as e:
        store.open_run("nosuchrun", tmp_path)
    msg = str(e.value)
    assert "recent runs: " in msg and "manifest.json" not in msg
    assert all(run_id in msg for run_id in made)
