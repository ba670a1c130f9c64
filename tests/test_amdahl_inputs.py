"""Where Amdahl's F and S come from, per folio size: the records' counters, stored cost
runs of the same kernel, the seed's published shares (workbench.host.analysis.amdahl_inputs)."""

import pandas as pd
import pytest

from workbench.host.analysis import amdahl_inputs as A
from workbench.host.running import store

PATCHED = "workbench /sys/kernel/mm/migration"


def records(tmp_path, rows, release="6.12.117+"):
    run = store.create_run({"label": "r", "kernel_release": release}, tmp_path / "mine")
    for i, r in enumerate(rows):
        run.append({"trial_key": f"t{i}", "folio_size": 4096, "total_bytes": 1000, "gbps": 1.0, "verified": True,
                    "interface": PATCHED, **r})
    return store.load_runs(tmp_path / "mine")


def cost_run(root, config, batch, share, release="6.12.117+", **meta):
    run = store.create_run({"label": "cost", "kernel_release": release, "clock": "icount", "accelerator": "icount",
                            "cost": {"config": config, "kernel_tree": "patched", "boot": 0, "latency_trial": False,
                                     **meta}}, root)
    run.append({"trial_key": "k", "migrator": "kernel", "folio_size": 4096, "batch_size": batch,
                "total_bytes": 1000, "interface": PATCHED, "copy_share": share, "verified": True, "gbps": 1.0})
    return run


def test_counters_per_folio_size_not_one_mean(tmp_path):
    df = records(tmp_path, [
        {"migrator": "kernel", "batch_kernel_copy": True, "copy_share": 0.5, "mig_kernel_copy_ns": 800},
        {"migrator": "kernel", "batch_kernel_copy": True, "copy_share": 0.99, "mig_kernel_copy_ns": 800,
         "folio_size": 2 << 20},
        {"migrator": "dcbm", "channels": 2, "copy_share": 0.2, "mig_dcbm_copy_ns": 400},
        {"migrator": "dcbm", "channels": 2, "copy_share": 0.5, "mig_dcbm_copy_ns": 100, "folio_size": 2 << 20}])
    got = A.inputs(df, "dcbm", 2, root=tmp_path / "none").set_index("folio")
    assert got["F"].to_dict() == {"4K": 0.5, "2M": 0.99}
    assert got["S"].to_dict() == {"4K": 2.0, "2M": 8.0}
    assert set(got["F_from"]) == {"counters: this panel's records"}
    assert A.copy_path(df) == "offload"


def test_paths_are_told_apart():
    base = {"migrator": "kernel", "interface": PATCHED, "kernel_release": "6.12.117+"}
    assert A.copy_path(pd.DataFrame([{**base, "batch_kernel_copy": None}])) == "serial"
    assert A.copy_path(pd.DataFrame([{**base, "batch_kernel_copy": True}])) == "batched"
    assert A.copy_path(pd.DataFrame([{**base, "interface": "none"}])) == "stock"
    assert "on its serial path" in A.path_note(pd.DataFrame([base]))
    assert A.path_note(pd.DataFrame([{**base, "batch_kernel_copy": True}])) is None


def test_cost_runs_of_this_kernel_at_the_nearest_batch(tmp_path):
    root = tmp_path / "runs"
    cost_run(root, "batched kernel copy, batch 16", 16, 0.30)
    cost_run(root, "batched kernel copy, batch 512", 512, 0.54)
    cost_run(root, "batched kernel copy, batch 16", 16, 0.01, release="7.3.4+")            # another kernel
    cost_run(root, "first-folio latency, batch 16", 16, 0.02, latency_trial=True)          # not a cost trial
    cost_run(root, "batched kernel copy, batch 16", 16, 0.03, superseded_by="x")           # replaced
    cost_run(root, "batched kernel copy, batch 16", 16, 0.04, study={"kind": "per-patch"})  # part of a series
    serial = records(tmp_path, [{"migrator": "kernel", "batch_size": 20}])
    got = A.inputs(serial, "kernel", root=root).iloc[0]
    assert got["F"] == 0.30 and got["F_from"].startswith("cost: bench cost runs of this kernel, batch 16, icount")
    serial = records(tmp_path / "b", [{"migrator": "kernel"}])      # the kernel's default batch: 512
    assert A.inputs(serial, "kernel", root=root).iloc[0]["F"] == 0.54


def test_the_seed_at_the_nearest_published_batch(tmp_path):
    df = records(tmp_path, [{"migrator": "kernel", "batch_size": 1, "interface": "none"}])
    got = A.inputs(df, "dcbm", root=tmp_path / "none").iloc[0]
    assert got["F"] == 0.01 and got["F_from"] == "seed: RFC V3 cover letter, 1 folio at a time (other hardware)"
    # S comes from the throughput table (1 GB at batch 512) with the share at 512, 0.35
    assert got["S"] == pytest.approx(0.35 / (3.73 / 4.61 - 0.65))
    assert "dcbm 16 channels, 1.24x" in got["S_from"]
    one = A.inputs(df, "dcbm", workers=1, root=tmp_path / "none").iloc[0]
    assert "dcbm 1 channel, 0.74x" in one["S_from"]
