"""The monitor beside every trial: what it reads, its timeline and summary, where the host
keeps it (workbench.agent.monitor, workbench.host.running.store)."""

import time

import pandas as pd
import pytest

from workbench.agent import monitor as M
from workbench.kernelio.kernelfs import FakeFS
from workbench.host.running import store
from workbench.protocol import TrialSpec

INTERRUPTS = """           CPU0       CPU1
  0:         40          0   IO-APIC   2-edge      timer
 24:          5          7   PCI-MSI 65536-edge      idxd-portal0
 25:          3          1   PCI-MSI 65537-edge      virtio0-config
NMI:          0          0   Non-maskable interrupts
CAL:        100        250   Function call interrupts
TLB:         20         30   TLB shootdowns
"""
STAT = """cpu  30 0 20 1000 5 0 0 0 0 0
cpu0 10 0 10 500 5 0 0 0 0 0
cpu1 20 0 10 500 0 0 0 0 0 0
intr 12345
"""
VMSTAT = "nr_free_pages 100\npgmigrate_success {n}\nthp_migration_success 0\nnuma_hit 7\npgfault 99\n"


def kernel(n=0):
    return FakeFS({"/proc/vmstat": VMSTAT.format(n=n), "/proc/interrupts": INTERRUPTS, "/proc/stat": STAT})


def test_a_sample_reads_the_counters_the_ipis_and_dma_lines_and_busy_time():
    s = M.sample(kernel(5))
    assert s["vmstat_pgmigrate_success"] == 5 and s["vmstat_numa_hit"] == 7 and "vmstat_pgfault" not in s
    assert s["irq_function_call_ipis"] == 350 and s["irq_tlb_shootdowns"] == 50
    assert s["irq_dma_idxd_portal0_24"] == 12                    # a DMA engine's line, by its description
    assert not any("virtio" in k or "timer" in k for k in s)    # other lines are left out
    assert s["cpu0_busy_ticks"] == 20 and s["cpu1_busy_ticks"] == 30   # idle and iowait are not busy


def test_a_kernel_without_a_file_is_named_not_a_failed_trial():
    fs = FakeFS({"/proc/vmstat": VMSTAT.format(n=0)})
    m = M.Monitor(fs, 5).start()
    m.mark("migrate")
    out = m.stop()
    assert out["monitor_missing"] == "/proc/interrupts /proc/stat" and out["monitor_error"] is None
    assert out["monitor_samples"] >= 3


def test_the_timeline_marks_the_migration_and_keeps_what_moved():
    fs = kernel()
    m = M.Monitor(fs, 2).start()
    time.sleep(0.02)
    m.mark("migrate")
    for n in range(1, 6):
        fs.files["/proc/vmstat"] = VMSTAT.format(n=n * 100)
        time.sleep(0.005)
    m.mark("migrated")
    out = m.stop()
    cols, rows = out["monitor"]["columns"], out["monitor"]["rows"]
    assert cols[:2] == ["t_ns", "phase"] and "vmstat_pgmigrate_success" in cols
    assert "vmstat_numa_hit" not in cols                 # never moved: the record's deltas have it
    phases = [r[1] for r in rows]
    assert phases[0] == "setup" and phases[-1] == "end" and "migrate" in phases and "migrated" in phases
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    assert out["monitor_interval_ms"] == 2.0 and out["monitor_samples"] == len(rows)
    assert out["monitor_cpu_ns"] > 0 and 0 < out["monitor_cost_share"] < 1
    assert out["monitor_pgmigrate_peak_per_s"] > 0


def test_the_summary_arithmetic():
    ms = 1_000_000
    rows = [(0, "setup", {"cpu0_busy_ticks": 0, "vmstat_pgmigrate_success": 0, "irq_tlb_shootdowns": 5}),
            (10 * ms, "migrate", {"cpu0_busy_ticks": 1, "vmstat_pgmigrate_success": 0, "irq_tlb_shootdowns": 5}),
            (30 * ms, "migrate", {"cpu0_busy_ticks": 2, "vmstat_pgmigrate_success": 100, "irq_tlb_shootdowns": 9}),
            (50 * ms, "migrated", {"cpu0_busy_ticks": 5, "vmstat_pgmigrate_success": 300, "irq_tlb_shootdowns": 9}),
            (60 * ms, "end", {"cpu0_busy_ticks": 5, "vmstat_pgmigrate_success": 300, "irq_tlb_shootdowns": 11})]
    got = M.summarize(rows, ["cpu0_busy_ticks", "vmstat_pgmigrate_success", "irq_tlb_shootdowns"])
    assert got["monitor_irq_tlb_shootdowns"] == 6
    assert got["monitor_cpu0_busy_share"] == pytest.approx(4 * 10 / 40)     # 4 ticks of 10 ms in 40 ms
    assert got["monitor_pgmigrate_peak_per_s"] == pytest.approx(200 / 0.020)


def test_monitoring_is_in_the_trial_key_only_when_not_the_default():
    base = dict(total_size=1 << 20, folio_size=4096)
    assert TrialSpec(**base).key() == TrialSpec(**base, monitor_ms=10.0).key()   # the keys older runs have
    assert TrialSpec(**base, monitor_ms=None).key().endswith("-nomon")
    assert TrialSpec(**base, monitor_ms=2.5).key().endswith("-mon2.5")
    with pytest.raises(Exception, match="monitor interval 0.1 ms is out of range"):
        TrialSpec(**base, monitor_ms=0.1).check()


def test_the_store_keeps_the_timeline_beside_its_record(tmp_path):
    run = store.create_run({"label": "m"}, tmp_path)
    timeline = {"columns": ["t_ns", "phase", "vmstat_pgmigrate_success"], "rows": [[0, "setup", 0], [5, "end", 9]]}
    run.append({"trial_key": "k1", "gbps": 1.0, "monitor": timeline, "monitor_samples": 2})
    run.append({"trial_key": "k2", "gbps": 1.0})                 # a trial without a monitor
    rec = run.records()
    assert "monitor" not in rec.columns
    assert rec.set_index("trial_key").loc["k1", "monitor_file"] == "monitor/00000-k1.parquet"
    assert pd.isna(rec.set_index("trial_key").loc["k2", "monitor_file"])
    mon = store.load_monitor(tmp_path)
    assert list(mon["trial_key"]) == ["k1", "k1"] and list(mon["vmstat_pgmigrate_success"]) == [0, 9]
    assert set(mon["run_id"]) == {run.id}
    (run.dir / "monitor" / "00000-k1.parquet").write_bytes(b"PAR1 torn")
    assert [d.path.name for d in run.check()] == ["00000-k1.parquet"]


def test_benchmarks_run_without_a_monitor_unless_asked():
    from workbench.host.studies import cost
    from workbench.host.cli.main import build_parser, parse_monitor
    assert all(c.params([4096], 1 << 20, 1).monitor_ms is None for c in cost.configurations())
    assert cost.configurations()[0].params([4096], 1 << 20, 1, monitor_ms=5.0).monitor_ms == 5.0
    assert parse_monitor(build_parser().parse_args(["bench", "cost"]).monitor) is None
    from workbench.catalogue import knobs
    assert knobs.from_args(build_parser().parse_args(["run"]))["monitor_ms"] == 10.0
    assert parse_monitor("0.5s") == 500.0 and parse_monitor("2500us") == 2.5 and parse_monitor("off") is None


def fake_run(tmp_path, monitor_ms=10.0):
    from workbench.host.running import runner
    from workbench.host.running.plan import RunParams
    from workbench.testing.fake_target import FakeTarget
    return runner.run(FakeTarget(), RunParams(folio_sizes=[4096, 2 << 20], total_size=4 << 20, repeats=2,
                                              monitor_ms=monitor_ms), root=tmp_path, progress=False)


def test_rates_and_the_migration_span_of_a_stored_timeline(tmp_path):
    from workbench.host.analysis import monitor_view as V
    run = fake_run(tmp_path)
    timeline = store.load_monitor(tmp_path)
    assert timeline.groupby("trial_key").size().tolist() == [5, 5, 5, 5]
    one = V.pick(timeline, trial_key="kernel-4K-4M-n0to1-s1-r0")
    assert V.migration_span(one) == (0.01, 0.03)
    r = V.rates(one).set_index(["series", "t_s"])["value"]
    assert r[("pgmigrate_success", 0.02)] == pytest.approx(512 / 0.01)       # 1024 pages, half in 10 ms
    assert r[("cpu0 busy", 0.02)] == pytest.approx(1.0)                      # one 10 ms tick in 10 ms
    assert r[("irq_tlb_shootdowns", 0.03)] == pytest.approx(300.0)
    records = store.load_runs(tmp_path)
    assert V.chosen_trials(records) == [(run.id, "kernel-4K-4M-n0to1-s1-r0"), (run.id, "kernel-2M-4M-n0to1-s1-r0")]
    assert V.cost_line(records) == ("monitor: every 10 ms, 4 trials; its sampling thread used 1.0% of the trial's "
                                    "time (median; max 1.0%) on the target")
    fig = V.fig_timeline(one)
    assert [ax.get_ylabel() for ax in fig.axes] == ["migrated and scanned per second", "interrupts per second",
                                                    "busy share"]


def test_the_report_section_says_when_nothing_was_monitored(tmp_path, capsys):
    import matplotlib
    matplotlib.use("Agg")
    from workbench.host.analysis import monitor_view as V
    fake_run(tmp_path / "off", monitor_ms=None)
    V.show(store.load_runs(tmp_path / "off"), tmp_path / "off")
    assert capsys.readouterr().out.strip() == ("no trial in these runs was monitored (runs made before monitors, "
                                               "or with --monitor off)")
    fake_run(tmp_path / "on")
    V.show(store.load_runs(tmp_path / "on"), tmp_path / "on")
    assert capsys.readouterr().out.startswith("monitor: every 10 ms, 4 trials")


def test_the_series_batch_events_go_on_the_timeline_on_the_mono_clock_only():
    m = M.Monitor(kernel(), 5).start()
    t0 = m._t0
    events = [{"event": "mm_migrate_pages_start", "ts": (t0 + 1_000_000) / 1e9},
              {"event": "mm_migrate_batch_end", "ts": (t0 + 2_000_000) / 1e9},
              {"event": "mm_migrate_copy_end", "ts": (t0 + 3_000_000) / 1e9, "folios": 512, "copied": 500,
               "fallbacks": 12, "copy_ns": 900},
              {"event": "mm_migrate_pages", "ts": (t0 + 4_000_000) / 1e9, "reason": "syscall_or_cpuset"}]
    m.add_trace(events, "mono")
    out = m.stop()
    cols = out["monitor"]["columns"]
    traced = [dict(zip(cols, r)) for r in out["monitor"]["rows"] if r[1] == "trace"]
    assert [r["trace_event"] for r in traced] == ["batch_end", "copy_end", "pages"]    # no call starts
    assert [r["t_ns"] for r in traced] == pytest.approx([2_000_000, 3_000_000, 4_000_000], abs=1000)
    copy = next(r for r in traced if r["trace_event"] == "copy_end")
    assert (copy["trace_folios"], copy["trace_copied"], copy["trace_fallbacks"]) == (512, 500, 12)
    assert out["monitor_trace_events"] == 3 and out["monitor_trace_note"] is None
    m2 = M.Monitor(kernel(), 5).start()
    m2.add_trace(events, "global")
    out2 = m2.stop()
    assert out2["monitor_trace_events"] == 0
    assert out2["monitor_trace_note"] == "trace clock global is not CLOCK_MONOTONIC: its events are not drawn"


def test_monitor_summaries_are_fields_of_compare_all_and_its_interval_is_not(tmp_path):
    from workbench.host.analysis import compare_all
    df = store.load_runs(fake_run(tmp_path).dir.parent)
    fields = compare_all.measures(df)
    assert {"monitor_cost_share", "monitor_cpu0_busy_share", "monitor_irq_tlb_shootdowns",
            "monitor_pgmigrate_peak_per_s"} <= set(fields)
    assert "monitor_interval_ms" not in fields
    assert compare_all.is_rate("monitor_pgmigrate_peak_per_s")          # averaged harmonically
