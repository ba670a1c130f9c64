"""Workloads on the host side, against the fake target: the command line, refusals before
anything runs, the sweep grid's ``workloads:``, the panel's dropdown, the report's panel
per workload with the reason on every table, and doctor's lines."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest

from workbench.host.cli import main as cli
from workbench.host.running import store, sweep
from workbench.host.analysis import workload_view
from workbench.host.running.plan import RunParams, same_params

from workbench.testing import fake_target
from workbench.testing.fake_target import FACTS, FakeTarget


def run_cli(capsys, *argv):
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err.strip()


@pytest.mark.parametrize("argv,expect", [
    (["--workload", "bogus"], "workload 'bogus' is not known; allowed: move-pages, migrate-pages, mbind, "
                              "numa-balancing, demotion, kswapd-demotion, compaction, proactive-compaction"),
    (["--access", "scribble"], "access 'scribble' is not known; allowed: none, read, write"),
    (["--access", "write", "--access-threads", "0"], "access threads 0 must be an integer from 1 to 64"),
    (["--workload", "numa-balancing", "--wait-seconds", "0"], "wait seconds 0.0 must be a number of seconds"),
])
def test_bad_workload_input_is_refused_before_a_vm_boots(capsys, tmp_path, argv, expect):
    rc, out, err = run_cli(capsys, "run", "--target", "vm", "--vm-name", "wl-never-booted",
                           "--runs-dir", str(tmp_path), *argv)
    errors = [ln for ln in err.splitlines() if ln.startswith("workbench: error:")]
    assert rc == 2 and len(errors) == 1 and expect in errors[0], err
    assert not list(tmp_path.iterdir())


def test_first_folio_latency_is_for_move_pages_only(capsys, tmp_path):
    rc, out, err = run_cli(capsys, "run", "--target", "fake", "--workload", "mbind", "--first-folio-latency",
                           "--runs-dir", str(tmp_path))
    assert rc == 2 and err.splitlines()[-1] == (
        "workbench: error: first-folio latency is measured around one move_pages() call; workload 'mbind' has none "
        "(use --workload move-pages)")


def test_summary_titles_every_table_with_its_workload_and_reason(capsys, tmp_path):
    for workload in ("move-pages", "numa-balancing"):
        assert run_cli(capsys, "run", "--target", "fake", "--workload", workload, "--folio-size", "4K", "--size", "4M",
                       "--repeats", "1", "--runs-dir", str(tmp_path))[0] == 0
    rc, out, err = run_cli(capsys, "summary", "--runs-dir", str(tmp_path))
    assert rc == 0
    assert "move_pages() throughput, GB/s (mean±std), reason syscall" in out
    assert "NUMA balancing throughput, GB/s (mean±std), reason numa_misplaced" in out


def test_a_workload_the_target_cannot_run_is_refused_with_what_is_missing(capsys, tmp_path):
    rc, out, err = run_cli(capsys, "run", "--target", "fake", "--workload", "demotion", "--runs-dir", str(tmp_path))
    assert rc == 2
    assert err.splitlines()[-1] == ("workbench: error: workload 'demotion' cannot run on fake (kernel 6.12.0-fake): "
                                    "no lower memory tier: every node with memory is in one tier (tier 4: nodes 0,1)")
    assert not list(tmp_path.iterdir())


def test_run_with_a_workload_and_access_prints_its_reason(capsys, tmp_path):
    rc, out, err = run_cli(capsys, "run", "--target", "fake", "--workload", "mbind", "--access", "write",
                           "--folio-size", "4K", "--size", "4M", "--repeats", "2", "--runs-dir", str(tmp_path))
    assert rc == 0, err
    assert "mbind(MPOL_MF_MOVE) throughput, GB/s (mean±std), reason mempolicy_mbind, write access" in out
    assert "with every page on node 1" in out
    assert "mbind (kernel, reason mempolicy_mbind, write access): 1024/1024 pages moved per trial" in out
    df = store.load_runs(tmp_path)
    assert set(df["workload"]) == {"mbind"} and set(df["access"]) == {"write"}
    params = json.loads((next(tmp_path.glob("*/manifest.json"))).read_text())["params"]
    assert params["workload"] == "mbind" and params["access"] == "write" and params["dst"] == 1


def test_compaction_needs_no_destination(capsys, tmp_path):
    rc, out, err = run_cli(capsys, "run", "--target", "fake", "--workload", "compaction", "--folio-size", "4K",
                           "--size", "4M", "--repeats", "1", "--runs-dir", str(tmp_path))
    assert rc == 0, err
    df = store.load_runs(tmp_path)
    assert df["trial_key"].iloc[0].startswith("compaction-kernel-4K-4M-n0-") and df["expect_node"].iloc[0] == 0
    assert "compaction throughput, GB/s (mean±std), reason compaction" in out and "every page on node 0" in out


def test_runs_from_before_workloads_still_resume():
    old = RunParams(folio_sizes=[4096], total_size=1 << 20).to_dict()
    for key in ("workload", "access", "access_threads", "trace", "wait_seconds"):
        old.pop(key)
    assert same_params(old, RunParams(folio_sizes=[4096], total_size=1 << 20).to_dict())
    assert not same_params(old, RunParams(folio_sizes=[4096], total_size=1 << 20, workload="mbind").to_dict())
    assert not same_params(old, RunParams(folio_sizes=[4096], total_size=2 << 20).to_dict())


# -- sweeps ------------------------------------------------------------------------------------

def test_a_grid_takes_workloads_and_access():
    g = sweep.expand_grid({"defaults": {"folio_sizes": "4K"},
                           "configurations": [{"name": "all", "workloads": ["move-pages", "mbind", "compaction"],
                                               "access": "write"}]})
    (cfg,) = g["configurations"]
    assert cfg["workloads"] == ["move-pages", "mbind", "compaction"] and cfg["access"] == "write"
    with pytest.raises(Exception, match="workload 'nope' is not known"):
        sweep.expand_grid({"configurations": [{"workloads": ["nope"]}]})
    with pytest.raises(Exception, match="access 'x' is not known"):
        sweep.expand_grid({"configurations": [{"access": "x"}]})


def test_configurations_from_before_workloads_keep_their_hash():
    """A sweep finished before workloads existed is not run again (how faults are
    handled, max_reboots and trial_timeout, and which kernel is expected, kernel_expect,
    were never part of the hash)."""
    (cfg,) = sweep.expand_grid({"configurations": [{"name": "base"}]})["configurations"]
    before = {k: v for k, v in cfg.items()
              if k not in (*sweep.LATER_DEFAULTS, "max_reboots", "trial_timeout", "kernel_expect")}
    before["dst"] = 1
    import hashlib
    old_hash = hashlib.sha256(json.dumps(before, sort_keys=True, default=str).encode()).hexdigest()[:16]
    assert sweep.config_hash(cfg) == old_hash
    assert sweep.config_hash({**cfg, "workloads": ["mbind"]}) != old_hash


def test_run_grid_runs_every_workload(tmp_path):
    target = FakeTarget()
    ids = sweep.run_grid(target, folio_sizes=["4K"], migrators=["kernel"], total_size="4M", repeats=1, root=tmp_path,
                         progress=False, workloads=["move-pages", "migrate-pages", "compaction"], access="read")
    assert len(ids) == 3
    df = store.load_runs(tmp_path)
    assert sorted(df["workload"]) == ["compaction", "migrate-pages", "move-pages"]
    dsts = [t["dst"] for t in target.seen]
    assert dsts == [1, 1, None] and {t["access"] for t in target.seen} == {"read"}


# -- the panel ---------------------------------------------------------------------------------

def test_the_panel_offers_only_the_workloads_the_target_runs(tmp_path):
    pytest.importorskip("ipywidgets")
    from workbench.host.analysis import panel as P
    target = FakeTarget()
    p = P.Panel(target=target, root=tmp_path)
    p.w_connect.click()
    assert p.error is None, p.error
    assert list(p.w_workload.options) == ["move-pages", "migrate-pages", "mbind", "numa-balancing", "compaction",
                                          "proactive-compaction"]
    assert "demotion: not here — no lower memory tier" in p.w_workload_note.value
    p.w_workload.value, p.w_access.value = "compaction", "write"
    p.w_folios.value, p.w_size.value, p.w_repeats.value = (4096,), "4M", 1
    p.w_run.click()
    assert p.error is None, p.error
    assert target.seen[-1]["workload"] == "compaction" and target.seen[-1]["dst"] is None
    assert "reason compaction, write access" in p.table.value
    old = FakeTarget(facts={k: v for k, v in copy.deepcopy(FACTS).items() if k != "workloads"})
    q = P.Panel(target=old, root=tmp_path)
    q.w_connect.click()
    assert list(q.w_workload.options) == ["move-pages"]


# -- report and doctor -------------------------------------------------------------------------

def records():
    rows = []
    for workload, reason, gbps in (("move-pages", "syscall", 1.0), ("mbind", "mempolicy_mbind", 2.0)):
        for rep in range(2):
            rows.append({"workload": workload, "reason": reason, "access": "none", "migrator": "kernel",
                         "folio": "4K", "folio_size": 4096, "gbps": gbps + rep / 10, "seconds": 0.1, "verified": True,
                         "pages": 256, "pages_moved": 256, "total_bytes": 1 << 20, "run_id": f"r-{workload}",
                         "target": "vm:x", "kernel_release": "6.12", "accelerator": "tcg", "clock": "wall",
                         f"trace_{reason}_calls": 1, f"trace_{reason}_succeeded": 256, f"trace_{reason}_failed": 0,
                         f"trace_{reason}_ns": 90_000_000, "trace_reasons": f"{reason},numa_misplaced",
                         "trace_event_ns": 300.0, "trace_overhead_share": 6e-6, "trace_event_ns_spread": 20.0,
                         "trace_event_ns_resolved": True, "trace_overhead_bound_share": 7e-6})
    return pd.DataFrame(rows)


def test_the_report_has_a_panel_per_workload_and_the_reason_on_every_table():
    from workbench.host.analysis import report
    df = report.prepare(records())
    text = report.text_tables(df)
    tables = text.split("\n\n")
    assert len(tables) == 2
    assert tables[0].startswith("move_pages() throughput, GB/s (mean±std), reason syscall — vm:x")
    assert tables[1].startswith("mbind(MPOL_MF_MOVE) throughput, GB/s (mean±std), reason mempolicy_mbind — vm:x")
    panel = report.workload_panels(df)
    assert "mempolicy_mbind" in panel and "numa_misplaced" in panel and "0.001%" in panel
    lines = workload_view.workload_lines(df)
    assert lines[0] == ("move-pages (kernel, reason syscall): 256/256 pages moved per trial; trace 1.0 calls, 256 pages "
                        "succeeded, 0 failed, 90.00 ms start to end; meanwhile also: numa_misplaced; tracing cost "
                        "300 ns/event, 0.001% of the trial")
    fig = report.fig_throughput(df)
    assert len(fig.axes) == 2 and "reason mempolicy_mbind" in fig.axes[1].get_title()


def test_old_records_are_move_pages_with_reason_syscall():
    df = records().drop(columns=["workload", "reason", "access"])
    assert workload_view.workload_title(df) == "move_pages() throughput, GB/s (mean±std), reason syscall"


def test_doctor_says_which_workloads_run_and_why_not():
    from workbench.host.cli.doctor import workload_lines
    facts = {**copy.deepcopy(fake_target.FACTS), "target": "fake"}
    lines = workload_lines(facts)
    assert lines[0].startswith("  workloads    move-pages, migrate-pages, mbind, numa-balancing, compaction, "
                               "proactive-compaction  "
                               "(--workload; reasons: move-pages syscall")
    assert lines[1] == ("  cannot run   demotion: no lower memory tier: every node with memory is in one tier "
                        "(tier 4: nodes 0,1)")
    assert lines[2] == ("  cannot run   kswapd-demotion: no lower memory tier: every node with memory is in one "
                        "tier (tier 4: nodes 0,1)")
    assert lines[3] == "  memory tiers tier 4: nodes 0,1"
    assert lines[4].startswith("  tracing      migrate:mm_migrate_pages")
    del facts["workloads"]
    assert "move-pages only" in workload_lines(facts)[0]


def test_runs_from_before_workloads_compare_with_move_pages_runs():
    from workbench.host.analysis import compare
    new = records()
    new = new[new["workload"] == "move-pages"].assign(kernel_release="6.12-patched")
    old = new.drop(columns=["workload", "reason", "access"]).assign(kernel_release="6.12-vanilla")
    old["gbps"] = old["gbps"] - 0.3
    t = compare.compare(old, new, by="kernel_release")
    assert list(t["workload"]) == ["move-pages/syscall"] and "access" not in t.columns


def test_a_tracing_cost_inside_the_noise_is_stated_as_a_bound():
    df = records().assign(trace_event_ns=-400.0, trace_event_ns_spread=1500.0, trace_event_ns_resolved=False,
                          trace_overhead_share=0.0, trace_overhead_bound_share=6e-5)
    line = workload_view.workload_lines(df)[0]
    assert line.endswith("tracing cost below this machine's noise: at most 3000 ns/event, 0.006% of the trial")
