"""Integration: real migrations in a 2-node QEMU guest on Debian's stock 6.12 kernel.

Skips with the reason when QEMU or the stock kernel is missing; WORKBENCH_REQUIRE_VM=1
(set by .ci/run) makes that a failure. Timings here are never asserted (TCG)."""

from pathlib import Path

import pytest

from workbench.host.running import runner
from workbench.errors import WorkbenchError
from workbench.host.running.plan import RunParams
from workbench.protocol import TrialSpec
from workbench.targets import kernel_lines

from .conftest import STOCK_KERNEL

pytestmark = pytest.mark.vm
THP = "/sys/kernel/mm/transparent_hugepage"
#: the release the stock VM's kernel starts with: its line's ("7.3." for stock)
STOCK_LINE = (kernel_lines.of_stock_name(STOCK_KERNEL) or kernel_lines.default()).name + "."


def records(target, *specs):
    out = []
    for event in target.run_plan({"op": "trials", "trials": [s.to_dict() for s in specs]}):
        assert event["type"] != "error", event
        if event["type"] == "record":
            out.append(event["record"])
    return out


def thp_knobs(target):
    for event in target.run_plan({"op": "snapshot", "roots": [THP]}):
        if event["type"] == "snapshot":
            return {p: v for p, v in event["snapshot"]["files"].items() if p.endswith("/enabled")}


def test_boot_console_is_clean(vm_target):
    """No WARN/BUG at boot: also checks the VM topology (one socket per node) is sane."""
    assert vm_target.vm.log.problems(0) == []


def test_guest_has_two_nodes_and_every_mthp_size(vm_target):
    facts = vm_target.facts()
    assert facts["kernel_release"].startswith(STOCK_LINE), facts["kernel_release"]
    assert facts["numa"]["memory_nodes"] == [0, 1]
    assert {4096, 64 << 10, 2 << 20} <= set(facts["folio_sizes"])
    assert facts["accelerator"] in ("kvm", "tcg")
    assert facts["kernel_config_hash"]  # from the image the host booted


def test_a_death_can_be_named_from_outside_the_guest(vm_target):
    """The stock kernel binds pvpanic and puts ramoops on the host's file (both modules)."""
    armed = vm_target.facts()["panic_record"]
    assert armed["pvpanic"] == "on", armed
    assert armed["pstore"].startswith("on: ramoops, 1024 KiB at 0x"), armed


def test_4k_and_2m_runs_move_every_page_and_verify(vm_target, tmp_path):
    params = RunParams(folio_sizes=[4096, 2 << 20], total_size=16 << 20, repeats=1)
    run = runner.run(vm_target, params, root=tmp_path, progress=False)
    df = run.records().set_index("folio")
    pages = (16 << 20) // 4096
    for folio in ("4K", "2M"):
        r = df.loc[folio]
        assert r["verified"] and r["verify_bad_pages"] == 0
        assert r["pages_moved"] == pages and r["pages_failed"] == 0 and r["on_src_before_share"] == 1.0
        assert r["folio_match_share"] == 1.0, f"{folio}: the kernel did not give {folio} folios"
        # pgmigrate_success is system-wide: the trial's pages, plus whatever the guest
        # migrated beside it (a CI run once saw 16 more, from kcompactd or NUMA balancing
        # on a loaded host); pages_moved above is the exact, per-call figure
        assert pages <= r["vmstat_pgmigrate_success"] <= pages + 64, r["vmstat_pgmigrate_success"]
        assert r["seconds"] > 0 and r["accelerator"] == vm_target.accelerator()
    assert df.loc["2M", "thp_pages"] == pages and df.loc["2M", "vmstat_thp_migration_success"] == 8
    assert df.loc["4K", "thp_pages"] == 0 and df.loc["4K", "folios"] == pages
    m = run.manifest
    assert m["accelerator"] == vm_target.accelerator() and m["numa"]["memory_nodes"] == [0, 1]
    assert m["functional_only"] == (m["accelerator"] == "tcg")


def test_mthp_64k_is_obtained_and_moved(vm_target):
    (r,) = records(vm_target, TrialSpec(folio_size=64 << 10, total_size=8 << 20))
    assert r["verified"] and r["folio_match_share"] == 1.0 and r["folios"] == 128


def test_corruption_after_migration_is_reported_with_page_and_offset(vm_target):
    spec = TrialSpec(folio_size=2 << 20, total_size=8 << 20, inject_corruption={"page": 1500, "offset": 777})
    (r,) = records(vm_target, spec)
    assert r["pages_moved"] == r["pages"]                       # the move itself was fine
    assert not r["verified"]
    assert (r["verify_bad_pages"], r["verify_first_bad_page"], r["verify_first_bad_offset"]) == (1, 1500, 777)
    assert int(r["verify_expected"], 16) ^ int(r["verify_actual"], 16) == 0xFF << (8 * (777 % 8))


def test_thp_knobs_are_restored_after_trials(vm_target):
    before = thp_knobs(vm_target)
    records(vm_target, TrialSpec(folio_size=2 << 20, total_size=4 << 20),
            TrialSpec(folio_size=4096, total_size=4 << 20))
    assert thp_knobs(vm_target) == before


def test_folio_size_the_kernel_lacks_is_refused(vm_target, tmp_path):
    with pytest.raises(WorkbenchError, match=r"folio size 8K is not offered .* it offers: 4K, 16K, 32K, 64K"):
        runner.run(vm_target, RunParams(folio_sizes=[8192], total_size=1 << 20), root=tmp_path, progress=False)
    assert not list(tmp_path.iterdir())


def test_numba_kernels_are_cached_for_the_guest_cpu(vm_target):
    facts = vm_target.vm.spool.ready()["facts"]
    cache = Path(facts["numba_cache_dir"])
    assert cache.is_dir() and list(cache.rglob("*.nbi")), "the guest left no numba cache for its next boot"
    from workbench.agent import pattern
    assert facts["numba_cache_hits"] + facts["numba_cache_misses"] == len(pattern.numba_kernels().KERNELS)


def test_the_agent_says_where_its_start_went_and_skips_what_it_never_uses(vm_target):
    """The agent's start, step by step on the guest's clock (scripts/time-to-first-trial.py
    reads it): each step ends after the one before; numba loaded its kernels without
    scipy; udev loaded none of the modules blacklisted for it, and the agent's own did load."""
    facts = vm_target.vm.spool.ready()["facts"]
    steps = facts["startup"]
    order = ["process", "imports", "panic_record", "numba", "probe"]
    assert list(steps) == order and all(steps[a] <= steps[b] for a, b in zip(order, order[1:])), steps
    assert 0 < steps["process"] < steps["probe"]
    status = vm_target.vm.status()
    assert status["startup"] == steps and status["boot_seconds"] > 0
    assert facts["scipy_loaded"] is False
    (reads,) = [e["results"]["reads"] for e in vm_target.run_plan({"op": "sysfs", "reads": ["/proc/modules"]})
                if e["type"] == "sysfs"]
    modules = {ln.split()[0] for ln in reads["/proc/modules"].splitlines()}
    from workbench.vm import config as vm_config
    assert not modules & set(vm_config.UNUSED_GUEST_MODULES), modules
    if facts["panic_record"]["pstore"].startswith("on"):
        assert "ramoops" in modules


def test_vm_that_cannot_boot_reports_its_console(tmp_path):
    from workbench.vm.numa_vm import VM
    from workbench.vm.config import VMConfig
    from .conftest import need
    import shutil
    need(shutil.which("qemu-system-x86_64") is not None, "QEMU is not installed")
    bogus = tmp_path / "bzImage"
    bogus.write_bytes(b"not a kernel" * 100)
    from .conftest import VM_PREFIX
    vm = VM(f"{VM_PREFIX}-bad-boot")
    with pytest.raises(WorkbenchError) as e:
        vm.up(VMConfig(kernel=str(bogus), name=vm.name, boot_timeout=120))
    assert "failed to boot" in str(e.value) and "\n" not in str(e.value)
    assert e.value.detail  # the console tail, then what vng/QEMU said on their stderr
    assert "--- vng/QEMU stderr" in e.value.detail and vm.qemu_log.exists()
    qemu_part = e.value.detail.split("--- vng/QEMU stderr", 1)[1]
    assert "qemu" in qemu_part.lower(), "QEMU's own complaint (e.g. 'invalid kernel header') is shown"
    # the message names copies kept where the next boot cannot overwrite them
    kept = vm.dir / "deaths" / str(e.value).split("/deaths/", 1)[1].split("/", 1)[0]
    assert f"console: {kept / 'console.log'}" in str(e.value) and f"{kept / 'qemu.log'})" in str(e.value)
    assert "qemu" in (kept / "qemu.log").read_text(errors="replace").lower()
    assert not vm.running()


def test_a_vm_that_is_up_is_used_without_naming_its_kernel(vm_target):
    """`vm up --kernel K` then `run` without --kernel uses that VM and says which kernel it
    runs; an explicit, different --kernel is refused rather than silently ignored."""
    from workbench.targets import make_target
    notes = []
    again = make_target("vm", vm_name=vm_target.vm.name, notify=notes.append)
    assert again.ensure_up()["token"] == vm_target.vm.state()["token"]
    assert notes and f"using VM {vm_target.vm.name!r}, already up: kernel {STOCK_KERNEL} ({STOCK_LINE}" in notes[0], notes
    again.ensure_up()                       # the next plan of the same run: said once, not again
    assert len(notes) == 1, notes
    with pytest.raises(WorkbenchError, match=rf"already up with kernel '{STOCK_KERNEL}', not 'vanilla': run `workbench vm down"):
        make_target("vm", vm_name=vm_target.vm.name, kernel="vanilla").ensure_up()
    assert vm_target.vm.running()
