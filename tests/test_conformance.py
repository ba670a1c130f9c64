"""`workbench conformance` without a VM: reading the programs' results, the case list, the
configurations a kernel can run, one case under a migrator on a fake v3 kernel (offered
everything while it runs, restored after, "did not exercise" when the migrator copied
nothing), and a run stored and shown as a matrix. The VM half: test_conformance_vm.py."""

from __future__ import annotations

import re
import subprocess

import pytest

from workbench.agent import conformance as agent_conformance
from workbench.kernelio.kernelfs import FakeFS, bool_rule
from workbench.host.studies import conformance
from workbench.host.running import store

ROOT = "/sys/kernel/mm/migration"
STATS = "/sys/kernel/debug/migrate_copy"
HEADER = "reason batches folios bytes copied fallbacks declined errors copy_ns cpu_ns not_offered serial"


def stats(copied: int) -> str:
    return f"{HEADER}\nsyscall_or_cpuset 1 {copied} 0 {copied} 0 0 0 0 0 0 0\ntotal 1 {copied} 0 {copied} 0 0 0 0 0 0 0\n"


def v3_kernel() -> FakeFS:
    fs = FakeFS()
    fs.add(f"{ROOT}/migrator", "[kernel] mtcopy")
    fs.add(f"{ROOT}/batch_kernel_copy", "0", rule=bool_rule)
    for mig in ("kernel", "mtcopy"):
        fs.add(f"{ROOT}/{mig}/reasons", "syscall_or_cpuset,mempolicy_mbind")
        fs.add(f"{ROOT}/{mig}/min_folios", "1")
        fs.add(f"{ROOT}/{mig}/min_bytes", "1048576")
        fs.add(f"{STATS}/{mig}/stats", stats(0))
    fs.add(f"{ROOT}/mtcopy/threads", "2")
    return fs


TAP_PASS = "TAP version 13\n1..1\n# Starting 1 tests from 1 test cases.\nok 1 migration.private_anon\n"
TAP_SKIP = "TAP version 13\n1..1\nok 1 migration.private_anon_htlb # SKIP Reading HugeTLB pagesize failed\n"
TAP_FAIL = "TAP version 13\n1..1\n# migration.c:180:private_anon:Expected migrate(...) (-2) == 0 (0)\n" \
           "not ok 1 migration.private_anon\n"


@pytest.mark.parametrize("output, rc, expect", [
    (TAP_PASS, 0, ("pass", None)),
    (TAP_SKIP, 4, ("skip", "Reading HugeTLB pagesize failed")),
    (TAP_FAIL, 1, ("fail", None)),
    (TAP_PASS, None, ("fail", None)),                    # killed at its timeout
    ("numa.h missing\n", 4, ("skip", "numa.h missing")),  # skipped before the harness began
    ("Segmentation fault\n", 139, ("fail", None)),
    (TAP_PASS, 1, ("fail", None)),                       # a harness that passed but exited badly
    # ksft_test_result() lines: descriptions of several words, a skip without one
    ("TAP version 13\n1..3\nok 1 Split huge pages to order 2 successful\nok 2 # SKIP Pagecache folio split "
     "skipped\nok 3 File-backed THP split to order 0 test done\n# Totals: pass:2 fail:0 skip:1\n", 0, ("pass", None)),
    ("TAP version 13\n1..2\nok 1 # SKIP no large folio\nok 2 # SKIP no large folio\n", 0, ("skip", "no large folio")),
    ("TAP version 13\n1..2\nok 1 KSM NUMA merging\nnot ok 2 KSM NUMA merging\n", 1, ("fail", None)),
])
def test_a_kselftest_result_is_read_from_its_tap_lines(output, rc, expect):
    assert agent_conformance.read_kselftest(output, rc) == expect


@pytest.mark.parametrize("output, rc, expect", [
    ("stress-ng: info:  [1] numa: no NUMA nodes found, skipping test\nsuccessful run completed\n", 0,
     ("skip", "stress-ng: info:  [1] numa: no NUMA nodes found, skipping test")),
    ("stress-ng: info: [1] passed: 1: numa (1)\nstress-ng: info: [1] failed: 0\nsuccessful run completed\n", 0,
     ("pass", None)),
    ("stress-ng: fail: [2] numa: verify failed at 0x7f00\nstress-ng: info: [1] failed: 1: numa (1)\n", 2,
     ("fail", None)),
    # what a notice says is not a failure; a fail: line is, whatever the exit code
    ("stress-ng: info:  [138] Working directory /work/main is not read/writeable, some I/O tests may fail\n"
     "stress-ng: info:  [138] successful run completed in 27.52s\n", 0, ("pass", None)),
    ("stress-ng: fail:  [139] numa: move_pages failed, errno=22\n", 0, ("fail", None)),
])
def test_a_stress_ng_result_counts_its_skips_and_failures(output, rc, expect):
    assert agent_conformance.read_stress_ng(output, rc) == expect


def test_the_case_list_of_a_kselftest_harness():
    listing = ("# [INFO] detected hugetlb page size: 2048 KiB\n"
               "# FIXTURE            VARIANT                   TEST\n"
               "global                                         \n"
               "-" * 80 + "\n"
               "migration                                      private_anon\n"
               "                                               shared_anon\n"
               "-" * 80 + "\n"
               "split               pmd                       split_all\n"
               "                    pte                       split_all\n")
    assert conformance.parse_case_list(listing) == ["migration.private_anon", "migration.shared_anon",
                                                    "split.split_all"]


def test_suites_and_configurations_are_chosen_by_name():
    assert conformance.parse_suites("selftests:migration,stress-ng") == [("selftests", "migration"),
                                                                         ("stress-ng", "numa")]
    assert conformance.parse_suites(None) == conformance.parse_suites("all")
    assert conformance.parse_suites("selftests")[:2] == [("selftests", "migration"), ("selftests", "transhuge-stress")]
    assert conformance.parse_list("mtcopy-2,dcbm-1", conformance.CONFIGS, "x", ()) == ["mtcopy-2", "dcbm-1"]
    facts = {"interface": "workbench series v3", "migrators": ["kernel", "mtcopy"], "loadable": ["dcbm"],
             "knobs": {"batch_kernel_copy": (0, 1)}}
    run, cannot = conformance.configs_for(["kernel-batched", "dcbm-1", "mtcopy-2"], facts)
    assert [c["name"] for c in run] == ["kernel-batched", "dcbm-1", "mtcopy-2"] and cannot == []
    run, cannot = conformance.configs_for(["kernel-batched", "dcbm-1"], {"interface": "none", "migrators": ["kernel"],
                                                                        "knobs": {}})
    assert run == [] and cannot == [
        "kernel-batched: this kernel has no batched kernel copy (batch_kernel_copy)",
        "dcbm-1: this kernel (none) offers no dcbm (it offers kernel)"]


def fake_program(fs: FakeFS, copied: int, output: str = TAP_PASS, rc: int = 0):
    """A stand-in for subprocess.run: checks what the migrator was offered while it ran,
    and copies ``copied`` folios (as the kernel's counters would say)."""
    seen = {}

    def run(argv, **kw):
        seen.update({k: fs.read(f"{ROOT}/mtcopy/{k}") for k in ("reasons", "min_folios", "min_bytes")})
        seen["migrator"] = fs.read(f"{ROOT}/migrator")
        fs.files[f"{STATS}/mtcopy/stats"] = stats(copied)
        return subprocess.CompletedProcess(argv, rc, output, "")
    return run, seen


CASE = {"suite": "selftests", "test": "migration", "case": "migration.private_anon",
        "argv": ["/x/migration", "-t", "private_anon"], "timeout": 60}
MTCOPY = {"name": "mtcopy-2", "migrator": "mtcopy", "knobs": {"threads": 2}}


def test_a_case_under_a_migrator_that_copied(monkeypatch):
    fs = v3_kernel()
    before = dict(fs.files)
    run, seen = fake_program(fs, copied=300)
    monkeypatch.setattr(agent_conformance, "run_program", run)
    rec = agent_conformance.run_case(fs, CASE, MTCOPY)
    # offered everything while it ran, the migrator selected; all of it restored after
    assert seen == {"reasons": "all", "min_folios": "1", "min_bytes": "0", "migrator": "kernel [mtcopy]"}
    assert {k: v for k, v in fs.files.items() if "debug" not in k} == \
        {k: v for k, v in before.items() if "debug" not in k}
    assert (rec["status"], rec["verdict"], rec["copied"], rec["threads"]) == ("pass", "pass", 300, 2)
    assert rec["offer_everything"] == "reasons=all min_folios=1 min_bytes=0" and rec["mig_mtcopy_copied"] == 300
    assert rec["output"] == TAP_PASS and rec["interface"].startswith("workbench series v3")


def test_a_pass_where_the_migrator_copied_nothing_did_not_exercise_it(monkeypatch):
    fs = v3_kernel()
    run, _ = fake_program(fs, copied=0)
    monkeypatch.setattr(agent_conformance, "run_program", run)
    rec = agent_conformance.run_case(fs, CASE, MTCOPY)
    assert (rec["status"], rec["verdict"], rec["copied"]) == ("pass", "did not exercise", 0)
    # the kernel's own copy has nothing to exercise: its pass is a pass
    run, _ = fake_program(fs, copied=0)
    monkeypatch.setattr(agent_conformance, "run_program", run)
    rec = agent_conformance.run_case(fs, CASE, {"name": "kernel", "migrator": "kernel", "offer_everything": False})
    assert (rec["verdict"], rec["offer_everything"]) == ("pass", None)


def test_a_program_killed_at_its_timeout_fails_and_keeps_its_output(monkeypatch):
    fs = v3_kernel()

    def hang(argv, **kw):
        raise subprocess.TimeoutExpired(argv, kw["timeout"], output=b"# RUN migration.private_anon ...\n")
    monkeypatch.setattr(agent_conformance, "run_program", hang)
    rec = agent_conformance.run_case(fs, CASE, MTCOPY)
    assert (rec["status"], rec["returncode"]) == ("fail", None)
    assert rec["output"].startswith("# RUN migration.private_anon") and "(killed after 60 s)" in rec["output"]
    assert fs.read(f"{ROOT}/migrator") == "[kernel] mtcopy"


class StubTarget:
    """A target whose agent answers conformance plans with ready-made records."""

    def __init__(self, cpus=4, verdicts=None):
        self.cpus, self.verdicts, self.plans = cpus, verdicts or {}, []

    def facts(self):
        return {"target": "stub", "kernel_release": "7.3.4+", "interface": "workbench series v3",
                "migrators": ["kernel", "mtcopy"], "knobs": {"batch_kernel_copy": (0, 1)}, "cpus": self.cpus,
                "kernel_image": None}

    def run_plan(self, plan):
        self.plans.append(plan)
        (case,), (cfg,) = plan["cases"], plan["configs"]
        status, copied = self.verdicts.get((case["case"], cfg["name"]), ("pass", 10))
        verdict = "did not exercise" if status == "pass" and copied == 0 and cfg["migrator"] != "kernel" else status
        yield {"type": "record", "record": {"suite": case["suite"], "test": case["test"], "case": case["case"],
                                           "config": cfg["name"], "migrator": cfg["migrator"], "status": status,
                                           "verdict": verdict, "copied": copied, "kernel_clean": True,
                                           "output": "not ok 1 numa" if status == "fail" else "ok"}}
        yield {"type": "done"}


def test_a_run_is_stored_and_shown_as_a_matrix(tmp_path, monkeypatch):
    monkeypatch.setattr(conformance.shutil, "which", lambda name: f"/usr/bin/{name}")
    target = StubTarget(verdicts={("numa", "mtcopy-2"): ("fail", 5), ("numa", "kernel"): ("pass", 0)})
    # the selftests need a built tree: a stock kernel's are not built, and each configuration says so
    out, records, cannot = conformance.run(target, ["kernel", "mtcopy-2", "dcbm-1"],
                                           conformance.parse_suites("selftests:migration,stress-ng:numa"),
                                           progress=lambda s: None, root=tmp_path)
    assert cannot == ["dcbm-1: this kernel (workbench series v3) offers no dcbm (it offers kernel, mtcopy)"]
    assert [p["configs"][0]["name"] for p in target.plans] == ["kernel", "mtcopy-2"]
    df = store.open_run(out.id, tmp_path).records()
    assert len(df) == 4 and df["trial_key"].is_unique
    text = conformance.matrix(df)
    assert "stress-ng:numa" in text and "FAIL" in text and "numa under mtcopy-2: fail" in text
    assert "skipped selftests:migration: the kernel under test (unknown) is neither a tree built here" in text
    assert out.manifest["configs"] == ["kernel", "mtcopy-2"] and out.manifest["cannot_run"] == cannot


def test_too_few_cpus_is_a_skip_that_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(conformance, "cases_for", lambda tests, tree, progress: (
        [{"suite": "selftests", "test": "migration", "case": "migration.private_anon", "argv": ["x"]}], []))
    target = StubTarget(cpus=2)
    out, records, _ = conformance.run(target, ["mtcopy-2"], [("selftests", "migration")], progress=lambda s: None,
                                      root=tmp_path)
    (rec,) = store.open_run(out.id, tmp_path).records().to_dict("records")
    assert target.plans == [] and records == []
    assert rec["verdict"] == "skip" and rec["skip_reason"].startswith("needs at least 3 CPUs; the target has 2")


def test_a_kernel_without_the_series_runs_only_its_own_copy(tmp_path, monkeypatch):
    monkeypatch.setattr(conformance.shutil, "which", lambda name: f"/usr/bin/{name}")
    target = StubTarget()
    target.facts = lambda: {"target": "stub", "kernel_release": "6.12.117", "interface": "none",
                            "migrators": ["kernel"], "knobs": {}, "cpus": 4}
    said = []
    conformance.run(target, ["mtcopy-2", "dcbm-1"], [("stress-ng", "numa")], progress=said.append, root=tmp_path)
    assert [p["configs"][0]["name"] for p in target.plans] == ["kernel"]
    assert said == ["stub has no copy-offload series (6.12.117): running the kernel's own copy only"]


def test_a_program_run_several_ways_is_a_case_each(tmp_path, monkeypatch):
    monkeypatch.setattr(conformance, "build_selftests", lambda tree, programs, progress: tmp_path)
    cases, skipped = conformance.cases_for([("selftests", "ksm_tests"), ("selftests", "transhuge-stress")],
                                           conformance.SelftestSource(tmp_path), progress=lambda s: None)
    assert skipped == []
    assert [(c["case"], c["argv"][1:], c["reader"]) for c in cases] == [
        ("ksm_tests-numa-merge", ["-N", "-m", "1"], "kselftest"),
        ("ksm_tests-numa-nomerge", ["-N", "-m", "0"], "kselftest"),
        ("transhuge-stress", ["-d", "20", "128"], "exit-code")]
    assert all(c["argv"][0].startswith(str(tmp_path / "mm")) for c in cases)


def test_a_fault_mode_that_never_fired_did_not_exercise_it(monkeypatch):
    fs = v3_kernel()
    fs.add("/sys/module/test_dma_engine/parameters/failed", "0")
    run, _ = fake_program(fs, copied=50)
    monkeypatch.setattr(agent_conformance, "run_program", run)
    cfg = {"name": "mtcopy-fail", "migrator": "mtcopy", "exercised_by": ["test_dma_engine.failed"],
           "engine_fault": "fail_every=7"}
    rec = agent_conformance.run_case(fs, CASE, cfg)
    assert (rec["verdict"], rec["exercised_by"], rec["engine_fault"]) == \
        ("did not exercise", "test_dma_engine.failed", "fail_every=7")

    run, _ = fake_program(fs, copied=80)

    def run_and_fail(argv, **kw):
        fs.files["/sys/module/test_dma_engine/parameters/failed"] = "3"
        return run(argv, **kw)
    monkeypatch.setattr(agent_conformance, "run_program", run_and_fail)
    assert agent_conformance.run_case(fs, CASE, cfg)["verdict"] == "pass"


def test_under_a_fault_mode_the_fault_firing_is_what_exercises_it(monkeypatch):
    # a 2M folio of 32 descriptors with every 7th failed is never copied by the engine
    fs = v3_kernel()
    fs.add("/sys/module/test_dma_engine/parameters/failed", "0")
    run, _ = fake_program(fs, copied=0)

    def run_and_fail(argv, **kw):
        fs.files["/sys/module/test_dma_engine/parameters/failed"] = "32"
        return run(argv, **kw)
    monkeypatch.setattr(agent_conformance, "run_program", run_and_fail)
    rec = agent_conformance.run_case(fs, CASE, {"name": "f", "migrator": "mtcopy",
                                                "exercised_by": ["test_dma_engine.failed"]})
    assert (rec["verdict"], rec["copied"]) == ("pass", 0)


def test_a_fault_modes_expected_report_is_named_not_a_failure():
    import pandas as pd
    df = pd.DataFrame([
        {"suite": "selftests", "case": "migration.private_anon", "test": "migration", "config": "dcbm-map-fail",
         "verdict": "pass", "kernel_clean": False, "kernel_report_expected": True,
         "kernel_report": "WARNING: kernel/dma/direct.c:718 at dma_direct_map_phys+0x22f/0x260"},
        {"suite": "selftests", "case": "migration.private_anon", "test": "migration", "config": "dcbm-1",
         "verdict": "pass", "kernel_clean": False, "kernel_report_expected": False,
         "kernel_report": "BUG: sleeping function called from invalid context"}])
    assert conformance.unclean(df).tolist() == [False, True]
    text = conformance.matrix(df)
    assert "pass +expected log" in text and "pass +log" in text
    assert "under dcbm-1: pass; kernel log: BUG: sleeping function" in text and "under dcbm-map-fail" not in text
    assert re.search(conformance.CONFIGS["dcbm-map-fail"][1]["expected_report"], df["kernel_report"][0])
    # 6.12 words the same warning otherwise
    assert re.search(conformance.CONFIGS["dcbm-map-fail"][1]["expected_report"],
                     "WARNING: CPU: 2 PID: 2260 at kernel/dma/direct.h:103 dma_direct_map_sg+0x246/0x250")


def test_a_fault_modes_settings_and_counters_in_each_series_words(monkeypatch):
    """dcbm-hang bounds dcbm's wait through v3's wait_us or v2's timeout_ms, whichever the
    kernel has; dcbm-map-fail is exercised by v3's map_errors, or v2's fallbacks."""
    hang, mapfail = conformance.CONFIGS["dcbm-hang"][1], conformance.CONFIGS["dcbm-map-fail"][1]
    for knob, expect in (("timeout_ms", "20"), ("wait_us", "20000")):
        fs = v3_kernel()
        fs.add(f"{ROOT}/dcbm/{knob}", "10000")
        if knob == "wait_us":
            fs.add(f"{ROOT}/dcbm/min_mbps", "0")
        seen = []

        def run(argv, **kw):
            seen.append(fs.read(f"{ROOT}/dcbm/{knob}"))
            return subprocess.CompletedProcess(argv, 0, TAP_PASS, "")
        monkeypatch.setattr(agent_conformance, "run_program", run)
        cfg = {"name": "dcbm-hang", "migrator": "kernel", "offer_everything": False,
               "settings_one_of": hang["settings_one_of"]}
        rec = agent_conformance.run_case(fs, CASE, cfg)
        assert rec["status"] == "pass" and seen == [expect] and fs.read(f"{ROOT}/dcbm/{knob}") == "10000"
    fs = v3_kernel()                     # neither: a skip naming both
    rec = agent_conformance.run_case(fs, CASE, {"name": "dcbm-hang", "migrator": "kernel",
                                                "settings_one_of": hang["settings_one_of"]})
    assert rec["verdict"] == "skip" and "wait_us" in rec["skip_reason"] and "timeout_ms" in rec["skip_reason"]
    # a v2-like kernel without map_errors: its fallbacks moving is the mapping fault firing
    fs = v3_kernel()
    fs.add(f"{STATS}/mtcopy/stats", stats(0))
    monkeypatch.setattr(agent_conformance.migrators, "detect", lambda fs: FallbackCounter())
    monkeypatch.setattr(agent_conformance, "run_program",
                        lambda argv, **kw: subprocess.CompletedProcess(argv, 0, TAP_PASS, ""))
    rec = agent_conformance.run_case(fs, CASE, {"name": "dcbm-map-fail", "migrator": "kernel",
                                                "offer_everything": False,
                                                "exercised_by": mapfail["exercised_by"]})
    assert (rec["exercised_by"], rec["verdict"]) == ("dcbm.fallbacks", "pass")


class FallbackCounter:
    """A migration control whose dcbm counts fallbacks but no map errors (v2's dcbm)."""
    name = "v2-like"
    calls = 0

    def configure(self, guard, migrator, **knobs):
        pass

    def apply_settings(self, guard, settings):
        pass

    def counters(self):
        FallbackCounter.calls += 1
        return {"dcbm.fallbacks": 0 if FallbackCounter.calls % 2 else 12}

    def folios_copied(self, moved, migrator):
        return None

    def offloads(self, migrator, knobs):
        return True


def test_a_configuration_this_kernel_cannot_take_is_a_skip_that_says_why(monkeypatch):
    fs = v3_kernel()
    before = dict(fs.files)
    monkeypatch.setattr(agent_conformance, "run_program", lambda *a, **k: pytest.fail("the program ran"))
    rec = agent_conformance.run_case(fs, CASE, {"name": "dcbm-hang", "migrator": "mtcopy",
                                                "settings": {f"{ROOT}/dcbm/wait_us": "20000"}})
    assert (rec["status"], rec["verdict"]) == ("skip", "skip")
    assert rec["skip_reason"].startswith("cannot set up dcbm-hang: ") and "wait_us" in rec["skip_reason"]
    assert fs.files == before


def test_summary_prints_a_conformance_run_as_its_matrix_and_other_readers_leave_it_out(tmp_path, monkeypatch, capsys):
    from workbench.host.cli import main as cli
    monkeypatch.setattr(conformance.shutil, "which", lambda name: f"/usr/bin/{name}")
    out, _, _ = conformance.run(StubTarget(verdicts={("numa", "mtcopy-2"): ("pass", 0)}), ["kernel", "mtcopy-2"],
                                [("stress-ng", "numa")], progress=lambda s: None, root=tmp_path)
    assert store.load_runs(tmp_path).empty            # tables and plots read migration trials only
    assert len(store.load_runs(tmp_path, kind="conformance")) == 2
    assert cli.main(["summary", "--runs-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert f"conformance run {out.id}: kernel 7.3.4+" in text
    row = next(ln for ln in text.splitlines() if ln.startswith("stress-ng:numa"))
    assert row.split()[1:] == ["pass", "not", "exercised"]


def test_compare_of_two_conformance_runs_lists_the_cells_that_changed(tmp_path, monkeypatch, capsys):
    from workbench.host.cli import main as cli
    monkeypatch.setattr(conformance.shutil, "which", lambda name: f"/usr/bin/{name}")
    runs = [conformance.run(StubTarget(verdicts=v), ["kernel", "mtcopy-2"], [("stress-ng", "numa")],
                            progress=lambda s: None, root=tmp_path)[0].id
            for v in ({}, {("numa", "mtcopy-2"): ("fail", 3)})]
    assert cli.main(["compare", runs[0], runs[1], "--runs-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"conformance {runs[0]} -> {runs[1]}: 1 of 2 cells changed",
        "  stress-ng:numa  mtcopy-2       pass -> fail"]


def test_hugetlb_cases_get_huge_pages_for_their_run_only(monkeypatch):
    prog = conformance.SELFTESTS["migration"]
    assert prog.settings_for("migration.private_anon_htlb") == {"/proc/sys/vm/nr_hugepages": "8"}
    assert prog.settings_for("migration.private_anon_thp") == {}
    fs = v3_kernel()
    fs.add("/proc/sys/vm/nr_hugepages", "0")
    seen = []

    def run(argv, **kw):
        seen.append(fs.read("/proc/sys/vm/nr_hugepages"))
        return subprocess.CompletedProcess(argv, 0, TAP_PASS, "")
    monkeypatch.setattr(agent_conformance, "run_program", run)
    rec = agent_conformance.run_case(fs, {**CASE, "settings": prog.settings_for("migration.private_anon_htlb")},
                                     {"name": "kernel", "migrator": "kernel", "offer_everything": False})
    assert seen == ["8"] and fs.read("/proc/sys/vm/nr_hugepages") == "0"
    assert rec["case_settings"] == "/proc/sys/vm/nr_hugepages=8"


def test_hmm_tests_skip_on_a_kernel_built_without_test_hmm_and_load_it_where_built(tmp_path, monkeypatch):
    monkeypatch.setattr(conformance, "build_selftests", lambda tree, programs, progress: tmp_path)
    config = tmp_path / ".config"
    config.write_text("CONFIG_DEVICE_PRIVATE=y\n# CONFIG_TEST_HMM is not set\nCONFIG_TEST_HMMX=y\n")
    source = conformance.SelftestSource(tmp_path, config, "a tree")
    monkeypatch.setattr(conformance, "list_cases", lambda binary: ["migration.private_anon"])
    cases, skipped = conformance.cases_for([("selftests", "hmm-tests"), ("selftests", "migration")], source,
                                           progress=lambda s: None)
    assert [(r["test"], r["skip_reason"], r["missing_config"]) for r in skipped] == [
        ("hmm-tests", f"needs CONFIG_TEST_HMM, which the kernel's config ({config}) does not set", "CONFIG_TEST_HMM")]
    config.write_text("CONFIG_DEVICE_PRIVATE=y\nCONFIG_TEST_HMM=m\n")
    cases, skipped = conformance.cases_for([("selftests", "hmm-tests")], source, progress=lambda s: None)
    assert skipped == [] and [(c["case"], c["modules"]) for c in cases] == [("hmm-tests", ["test_hmm"])]


def test_a_cases_module_is_loaded_for_it_and_removed_after(monkeypatch):
    fs = v3_kernel()
    fs.add_module("test_hmm", {"/sys/module/test_hmm/parameters/spm_addr_dev0": "0"})
    seen = []

    def run(argv, **kw):
        seen.append(fs.exists("/sys/module/test_hmm"))
        return subprocess.CompletedProcess(argv, 0, TAP_PASS, "")
    monkeypatch.setattr(agent_conformance, "run_program", run)
    kernel = {"name": "kernel", "migrator": "kernel", "offer_everything": False}
    rec = agent_conformance.run_case(fs, {**CASE, "modules": ["test_hmm"]}, kernel)
    assert seen == [True] and not fs.exists("/sys/module/test_hmm") and rec["status"] == "pass"
    # loaded before (by someone else): left loaded
    fs.load_module("test_hmm")
    agent_conformance.run_case(fs, {**CASE, "modules": ["test_hmm"]}, kernel)
    assert fs.exists("/sys/module/test_hmm")
    # a kernel without it: a skip that names the module
    del fs.modules["test_hmm"]
    fs.files = {k: v for k, v in fs.files.items() if "test_hmm" not in k}
    rec = agent_conformance.run_case(fs, {**CASE, "modules": ["test_hmm"]}, kernel)
    assert rec["verdict"] == "skip" and "cannot load test module 'test_hmm'" in rec["skip_reason"]


def _line_source(tarball, version):
    """subprocess.run for conformance: kernel/line-source.sh answers with this tarball and
    version; everything else runs."""
    real = subprocess.run

    def run(cmd, **kw):
        if cmd[:2] == ["bash", str(conformance.paths.REPO / "kernel" / "line-source.sh")]:
            return subprocess.CompletedProcess(cmd, 0, f"{tarball}\n{version}\n", "")
        return real(cmd, **kw)
    return run


def test_a_stock_kernels_selftests_come_from_debians_source_of_its_version(tmp_path, monkeypatch):
    import tarfile
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "src"
    for rel in ("linux-source-6.12/tools/testing/selftests/mm/migration.c", "linux-source-6.12/Makefile",
                "linux-source-6.12/drivers/big.c"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("x")
    tarball = tmp_path / "linux-source-6.12.tar.xz"
    with tarfile.open(tarball, "w:xz") as tar:
        tar.add(src / "linux-source-6.12", arcname="linux-source-6.12")
    boot = tmp_path / "cache" / "kernels" / "stock" / "6.12.118+deb12-amd64" / "boot"
    boot.mkdir(parents=True)
    facts = {"kernel_image": str(boot / "vmlinuz-6.12.118+deb12-amd64")}
    monkeypatch.setattr(conformance.subprocess, "run", _line_source(tarball, "6.12.118-1~deb12u1"))
    source = conformance.selftest_source(facts, progress=lambda s: None)
    assert source.describe == "Debian's linux-source-6.12 6.12.118-1~deb12u1"
    assert source.config == boot / "config-6.12.118+deb12-amd64"
    assert (source.tree / "tools/testing/selftests/mm/migration.c").exists()
    assert (source.tree / "Makefile").exists() and not (source.tree / "drivers").exists()
    # another version of the source is not this kernel's: no selftests, and the skip says why
    monkeypatch.setattr(conformance.subprocess, "run", _line_source(tarball, "6.12.110-1"))
    source = conformance.selftest_source(facts, progress=lambda s: None)
    assert source.tree is None and source.why_not == (
        "Debian's linux-source-6.12 here is 6.12.110-1, the stock kernel is 6.12.118+deb12-amd64: "
        "its selftests would be another kernel's")
    # an image file from elsewhere has no source
    source = conformance.selftest_source({"kernel_image": str(tmp_path / "bzImage")}, progress=lambda s: None)
    assert source.tree is None and "neither a tree built here nor a Debian stock image" in source.why_not


def _alive(pidfile) -> bool:
    import os
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (killed, not yet reaped by init) is not running
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1].split()[0] != "Z"


def test_a_programs_children_do_not_outlive_its_case(tmp_path):
    import time
    pidfile = tmp_path / "child"
    # a program whose child runs on after it exits (stress-ng's stressors, a forked test)
    proc = agent_conformance.run_program(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; echo started"], timeout=30)
    assert proc.returncode == 0 and proc.stdout == "started\n"
    time.sleep(0.2)
    assert not _alive(pidfile)
    # a program killed at its time: its children go with it, its output so far is kept
    with pytest.raises(subprocess.TimeoutExpired) as err:
        agent_conformance.run_program(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; echo waiting; wait"], timeout=1)
    assert err.value.output == "waiting\n"
    time.sleep(0.2)
    assert not _alive(pidfile)


def test_every_case_runs_under_the_same_conditions_where_the_kernel_has_them(monkeypatch):
    fs = v3_kernel()
    fs.add("/sys/kernel/mm/transparent_hugepage/enabled", "[always] madvise never")
    seen = []

    def run(argv, **kw):
        seen.append((fs.read("/sys/kernel/mm/transparent_hugepage/enabled"), fs.exists("/proc/sys/kernel/numa_balancing")))
        return subprocess.CompletedProcess(argv, 0, TAP_PASS, "")
    monkeypatch.setattr(agent_conformance, "run_program", run)
    (case,), _ = conformance.cases_for([("stress-ng", "numa")], None, progress=lambda s: None) \
        if conformance.shutil.which("stress-ng") else ([{**CASE, "conditions": conformance.CONDITIONS}], [])
    assert case["conditions"] == conformance.CONDITIONS
    rec = agent_conformance.run_case(fs, case, {"name": "kernel", "migrator": "kernel", "offer_everything": False})
    # THP as the test trees have it while the case ran; numa_balancing, which this kernel lacks, left alone
    assert seen == [("always [madvise] never", False)]
    assert fs.read("/sys/kernel/mm/transparent_hugepage/enabled") == "[always] madvise never"
    assert rec["conditions"] == "/sys/kernel/mm/transparent_hugepage/enabled=madvise"


def test_a_selftest_the_kernels_source_lacks_is_a_skip_that_says_so(tmp_path, monkeypatch):
    mm = tmp_path / "tools/testing/selftests/mm"
    mm.mkdir(parents=True)
    (mm / "ksm_tests.c").write_text("")
    monkeypatch.setattr(conformance, "build_selftests", lambda tree, programs, progress: tmp_path)
    source = conformance.SelftestSource(tmp_path, None, "an old tree")
    cases, skipped = conformance.cases_for([("selftests", "ksm_tests"), ("selftests", "split_huge_page_test")],
                                           source, progress=lambda s: None)
    assert [c["case"] for c in cases] == ["ksm_tests-numa-merge", "ksm_tests-numa-nomerge"]
    assert [(r["test"], r["skip_reason"]) for r in skipped] == [
        ("split_huge_page_test", "this kernel's source (an old tree) has no selftest split_huge_page_test "
                                 "(tools/testing/selftests/mm): not built for this kernel")]
