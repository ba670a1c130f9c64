"""Bad input: one clear line, a non-zero exit, and nothing measured lost."""

import json
import os

import pytest

from workbench.host.cli import main as cli

from workbench.testing import fake_target  # noqa: F401  (registers the 'fake' target)
from workbench.testing.cli import one_line_error, run_cli


@pytest.mark.parametrize("argv,expect", [
    (["--target", "nowhere"], "unknown target 'nowhere'; choose from: fake, local, ssh://[user@]host[:port], vm"),
    (["--target", "fake", "--folio-size", "8K"], "folio size 8K is not offered by kernel 6.12.0-fake; it offers: 4K, 64K, 2M"),
    (["--target", "fake", "--folio-size", "2M", "--size", "3M"], "size 3M is not a multiple of the folio size 2M"),
    (["--target", "fake", "--dst", "7"], "destination node 7 does not exist on fake; nodes with memory: 0, 1"),
    (["--target", "fake", "--src", "1", "--dst", "1"], "source and destination are both node 1"),
    (["--target", "fake", "--size", "12Q"], "size '12Q' is not a size"),
    (["--target", "fake", "--migrator", "dcbm"], "migrator 'dcbm' is not offered by this kernel; it offers: kernel"),
    (["--target", "fake", "--repeats", "0"], "repeats 0 must be at least 1"),
    (["--target", "fake", "--repeats", "100000000"],
     "repeats 100000000 x 3 folio sizes is 300000000 trials; a run holds at most 10000 (use fewer repeats, or "
     "several runs)"),
    (["--target", "fake", "--threads", "4"], "threads 4 does not apply to migrator 'kernel'; threads are for mtcopy"),
    (["--target", "fake", "--migrator", "mtcopy", "--channels", "2"],
     "channels 2 does not apply to migrator 'mtcopy'; channels are for dcbm"),
    (["--target", "fake", "--size", "1G"], "size 1G does not fit node 0"),
    (["--target", "ssh://host:xx"], "ssh port 'xx' is not a number"),
    (["--target", "vm", "--nodes", "1536X:0"], "node memory in '1536X:0' (MEM[:CPUS], e.g. 1536M:0) '1536X' is not a size"),
    (["--target", "vm", "--nodes", "1G,1G"], "no VM node has CPUs"),
    (["--target", "vm", "--nodes", "1G:a"], "node cpus 'a' is not a cpu list"),
    (["--target", "vm", "--distance", "0-1=20"], "distance '0-1=20' is not SRC,DST=VAL"),
    (["--target", "vm", "--accel", "hvf"], "accelerator 'hvf' is not one of auto, kvm, tcg"),
    (["--target", "vm", "--kernel", "/no/such/bzImage"], "kernel '/no/such/bzImage' is neither stock"),
    (["--target", "fake", "--set", "fail_every"], "--set 'fail_every' is not PATH=VALUE"),
    (["--target", "fake", "--set", "/etc/passwd=1"], "setting '/etc/passwd' is not a sysfs path; "
                                                     "allowed: absolute paths under /sys/"),
    (["--target", "fake", "--dma-engine", "../x"], "DMA engine '../x' is not a module name"),
    (["--target", "fake", "--monitor", "often"], "--monitor 'often' is not an interval; allowed: off, or 1ms to "
                                                 "10s such as 10ms or 0.5s"),
    (["--target", "vm", "--monitor", "100us"], "--monitor '100us' is out of range; allowed: off, or 1ms to 10s"),
    # judged before a VM boots (these would otherwise cost a boot of one to two minutes)
    (["--target", "vm", "--folio-size", "3M", "--size", "12M"], "folio size 3M is not a power of two"),
    (["--target", "vm", "--set", "/etc/passwd=1"], "setting '/etc/passwd' is not a sysfs path"),
    (["--target", "vm", "--migrator", "kernel", "--threads", "2"], "threads 2 does not apply to migrator 'kernel'"),
    (["--target", "vm", "--migrator", "dcbm", "--threads", "2"], "threads 2 does not apply to migrator 'dcbm'"),
    (["--target", "vm", "--src", "0", "--dst", "0"], "source and destination are both node 0"),
    (["--target", "vm", "--folio-size", "2M", "--repeats", "10001"],
     "repeats 10001 x 1 folio size is 10001 trials; a run holds at most 10000"),
    (["--target", "ssh://h", "--kernel", "patched"], "--kernel does not apply to target 'ssh'"),
    (["--target", "local", "--ssh-identity", "k"], "--ssh-identity does not apply to target 'local'"),
    (["--target", "vm:patched", "--kernel", "stock"], "target vm:patched and --kernel stock name two kernels"),
    # the kernel is judged from the target's facts before any trial (fake: 6.12.0-fake, no interface)
    (["--target", "fake", "--kernel-expect", "patched"],
     "target fake runs kernel 6.12.0-fake (no copy-offload interface), not the expected patched"),
    (["--target", "fake", "--kernel-expect", "wb-patched"],
     "target fake runs kernel 6.12.0-fake (no copy-offload interface), not the expected release containing "
     "'wb-patched'"),
    (["--target", "fake", "--kernel-expect", " "], "--kernel-expect is empty; give patched, vanilla, stock"),
])
def test_bad_run_input(capsys, tmp_path, argv, expect):
    # a VM row gets a VM name of its own, so that nothing can touch a VM in use
    vm = ["--vm-name", "pytest-bad-input"] if argv[1].startswith("vm") else []
    rc, out, err = run_cli(capsys, "run", "--runs-dir", str(tmp_path), *vm, *argv)
    assert rc == 2
    assert expect in one_line_error(err)
    assert not list(tmp_path.glob("*/records/*.parquet"))
    from workbench import paths
    assert not (paths.cache_dir() / "vm" / "pytest-bad-input" / "state.json").exists(), "no VM was started"


def test_local_single_node_host_points_to_vm(capsys, tmp_path):
    from workbench.kernelio import numa
    from workbench.kernelio.kernelfs import RealFS
    if len(numa.memory_nodes(RealFS())) != 1:
        pytest.skip("this host has several NUMA nodes; the one-node error cannot happen here")
    rc, out, err = run_cli(capsys, "run", "--target", "local", "--runs-dir", str(tmp_path))
    assert rc == 2
    assert "has 1 NUMA node with memory (node 0); move_pages needs two; use --target vm" in one_line_error(err)


def test_failure_mid_run_loses_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(fake_target.FakeTarget, "default_fail_after", 2)
    rc, out, err = run_cli(capsys, "run", "--target", "fake", "--runs-dir", str(tmp_path), "--size", "4M")
    assert rc == 2 and "2 finished trials are saved" in one_line_error(err)
    assert len(list(tmp_path.glob("*/records/*.parquet"))) == 2


def test_good_run_prints_the_seed_table_and_json(capsys, tmp_path):
    rc, out, err = run_cli(capsys, "run", "--target", "fake", "--runs-dir", str(tmp_path), "--size", "4M")
    assert rc == 0
    table = out[out.index("migrator |"):].splitlines()
    assert [c.strip() for c in table[0].split("|")][:4] == ["migrator", "4K", "64K", "2M"]
    assert table[2].startswith("kernel   | 1.10±0.10")
    assert "verified: 9/9 trials" in out
    rc, out, err = run_cli(capsys, "run", "--target", "fake", "--runs-dir", str(tmp_path), "--size", "4M",
                           "--repeats", "1", "--json")
    doc = json.loads(out)
    assert rc == 0 and len(doc["records"]) == 3 and os.path.isdir(doc["dir"])
    rc, out, err = run_cli(capsys, "summary", "--runs-dir", str(tmp_path))
    assert rc == 0 and "kernel" in out and "±" in out


def test_set_takes_path_equals_value():
    from workbench.catalogue.knobs import parse_settings
    from workbench.errors import WorkbenchError
    assert parse_settings(None) is None
    assert parse_settings(["/sys/a/b=7", "/sys/c=x=y"]) == {"/sys/a/b": "7", "/sys/c": "x=y"}
    with pytest.raises(WorkbenchError, match=r"--set 'fail_every' is not PATH=VALUE"):
        parse_settings(["fail_every"])


def test_dcbm_in_a_vm_runs_on_the_test_engine_and_says_so():
    from workbench.host.running.plan import RunParams, with_defaults
    p = RunParams(folio_sizes=[4096], total_size=1 << 20, migrator="dcbm")
    assert with_defaults(p, "vm").dma_engine == "test_dma_engine"
    assert with_defaults(p, "local").dma_engine is None, "a real machine keeps its own DMA engine"
    mine = RunParams(folio_sizes=[4096], total_size=1 << 20, migrator="dcbm", dma_engine="ioatdma")
    assert with_defaults(mine, "vm").dma_engine == "ioatdma"
    assert with_defaults(RunParams(folio_sizes=[4096], total_size=1 << 20), "vm").dma_engine is None


def test_knob_bounds_come_from_the_target():
    from workbench.errors import WorkbenchError
    from workbench.protocol import check_knob_bounds
    with pytest.raises(WorkbenchError, match=r"^threads 4 cannot be set on kernel 6.12.0-fake: its migration "
                                             r"interface \(none\) has no threads knob$"):
        check_knob_bounds({"threads": 4}, {"threads": None}, "none", "6.12.0-fake")
    with pytest.raises(WorkbenchError, match=r"^channels 17 is out of range; allowed: 1..16$"):
        check_knob_bounds({"channels": 17, "threads": None}, {"channels": (1, 16)}, "ours")
    check_knob_bounds({"channels": 16, "batch_size": None}, {"channels": (1, 16)}, "ours")


@pytest.mark.parametrize("expect", ["vanilla", "stock", "fake", "6.12.0"])
def test_the_expected_kernel_runs(capsys, tmp_path, expect):
    rc, out, err = run_cli(capsys, "run", "--target", "fake", "--runs-dir", str(tmp_path), "--size", "4M",
                           "--repeats", "1", "--kernel-expect", expect, "--json")
    assert rc == 0 and json.loads(out)["manifest"]["kernel_expect"] == expect


def test_kernel_expect_is_decided_from_the_facts():
    from workbench.host.running.plan import kernel_mismatch
    ours = {"kernel_release": "6.12.117-wb-patched", "interface": "workbench /sys/kernel/mm/migration",
            "target": "ssh://root@box"}
    rfc = {"kernel_release": "6.15.0-rc1", "interface": "RFC V4 /sys/kernel/dcbm"}
    stock = {"kernel_release": "6.12.117+deb12-amd64", "interface": "none", "target": "vm"}
    older = {"kernel_release": "6.1.0-9-amd64"}                 # facts without the interface: none
    for facts in (ours, rfc):
        assert kernel_mismatch("patched", facts, "t") is None
        assert kernel_mismatch("vanilla", facts, "t").endswith("), not the expected vanilla")
    for facts in (stock, older):
        assert kernel_mismatch("vanilla", facts, "t") is None and kernel_mismatch("stock", facts, "t") is None
    assert kernel_mismatch("patched", stock, "vm") == ("target vm runs kernel 6.12.117+deb12-amd64 (no copy-offload "
                                                       "interface), not the expected patched")
    assert kernel_mismatch("stock", ours, "ssh://root@box") == (
        "target ssh://root@box runs kernel 6.12.117-wb-patched (series interface workbench /sys/kernel/mm/migration), "
        "not the expected stock")
    assert kernel_mismatch("wb-patched", ours, "t") is None and kernel_mismatch("6.12.117", stock, "t") is None
    assert kernel_mismatch("wb-vanilla", ours, "t").endswith("not the expected release containing 'wb-vanilla'")
    assert kernel_mismatch(None, stock, "t") is None


def test_kernel_expect_refuses_before_any_trial_for_every_caller(tmp_path):
    """The check is the runner's (so sweeps and the panel get it too), before a run is made."""
    from workbench.errors import WorkbenchError
    from workbench.host.running import runner
    from workbench.host.running.plan import RunParams
    target = fake_target.FakeTarget()
    with pytest.raises(WorkbenchError, match=r"^target fake runs kernel 6.12.0-fake \(no copy-offload interface\), "
                                             r"not the expected patched$"):
        runner.run(target, RunParams(folio_sizes=[4096], total_size=1 << 20, repeats=1),
                   policy=runner.RunPolicy(kernel_expect="patched"), root=tmp_path, progress=False)
    assert target.started == [] and not list(tmp_path.iterdir())


def test_each_run_probes_the_machine_as_it_is_now(tmp_path):
    """The same target object across a kernel change (a notebook that kept its target while
    the box was given another kernel): the second run sees the new kernel, so
    --kernel-expect judges it and the records name it."""
    from workbench.errors import WorkbenchError
    from workbench.host.running import runner
    from workbench.host.running.plan import RunParams
    target = fake_target.FakeTarget()
    params = RunParams(folio_sizes=[4096], total_size=1 << 20, repeats=1)
    first = runner.run(target, params, policy=runner.RunPolicy(kernel_expect="stock"), root=tmp_path, progress=False)
    assert first.records()["kernel_release"].tolist() == ["6.12.0-fake"]
    target._facts_template["kernel_release"] = "6.12.0-other"
    with pytest.raises(WorkbenchError, match=r"^target fake runs kernel 6.12.0-other .*not the expected "
                                             r"release containing '6.12.0-fake'$"):
        runner.run(target, params, policy=runner.RunPolicy(kernel_expect="6.12.0-fake"), root=tmp_path,
                   progress=False)
    assert runner.run(target, params, root=tmp_path, progress=False).manifest["kernel_release"] == "6.12.0-other"


# ---- lab boxes (issue 14): bad input is one line, and no box is reached -----------------------

@pytest.fixture
def no_box(tmp_path, monkeypatch):
    """A cache of its own, a fake .deb, a text file; every function that would reach a
    box or build a kernel fails the test (kernel_package.cached stays: it checks a
    --config file before it runs anything)."""
    from workbench.targets import kernel_package, lab
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    for mod, name in ((lab, "prepare"), (lab, "install"), (kernel_package, "build"),
                      (kernel_package, "fetch_box_inputs")):
        monkeypatch.setattr(mod, name, lambda *a, **k: pytest.fail("a box was reached or a kernel built"))
    deb = tmp_path / "linux-image-6.12.117-wb-patched_6.12.117-wb-patched-1_amd64.deb"
    deb.write_bytes(b"!<arch>\n")
    (tmp_path / "package.json").write_text(json.dumps({"image_deb": deb.name, "release": "6.12.117-wb-patched",
                                                      "version": "6.12.117-wb-patched-1", "flavour": "patched"}))
    (tmp_path / "notes.txt").write_text("not a package\n")
    return tmp_path


@pytest.mark.parametrize("argv,expect", [
    (["target", "prepare", "vm"], "target prepare works on a box over SSH (ssh://[user@]host[:port]), not target 'vm'"),
    (["target", "prepare", "local"], "target prepare works on a box over SSH"),
    (["target", "prepare", "ssh://root@box:22", "--port", "2222"], "ssh://root@box:22 and --port 2222 name two ports"),
    (["target", "prepare", "ssh://root@box", "--port", "0"], "--port 0 is not a TCP port (1-65535)"),
    (["target", "prepare", "ssh://box:x"], "ssh port 'x' is not a number"),
    (["kernel", "package", "--config", "{tmp}/notes.txt", "--config-from", "ssh://root@box"],
     "kernel package needs exactly one of --config FILE or --config-from ssh://host"),
    (["kernel", "package"], "kernel package needs exactly one of --config FILE or --config-from ssh://host"),
    (["kernel", "package", "--config-from", "vm"], "--config-from works on a box over SSH"),
    (["kernel", "package", "--config", "{tmp}/no-such-config"], "no config file {tmp}/no-such-config"),
    (["kernel", "package", "--config", "{tmp}/notes.txt", "--lsmod", "{tmp}/notes.txt", "--no-localmodconfig"],
     "--lsmod is for localmodconfig; it does not go with --no-localmodconfig"),
    (["kernel", "install", "{tmp}/no-such.deb", "--target", "ssh://root@box"], "no kernel package {tmp}/no-such.deb"),
    (["kernel", "install", "{tmp}/notes.txt", "--target", "ssh://root@box"],
     "{tmp}/notes.txt is not a Debian package"),
    (["kernel", "install", "{deb}", "--target", "vm:patched"], "kernel install works on a box over SSH"),
    (["kernel", "install", "{deb}", "--target", "ssh://root@box", "--timeout", "0"],
     "--timeout 0 must be a positive number of seconds"),
])
def test_bad_lab_input(capsys, no_box, argv, expect):
    deb = next(no_box.glob("*.deb"))
    argv = [a.format(tmp=no_box, deb=deb) for a in argv]
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 2 and out == ""
    assert expect.format(tmp=no_box) in one_line_error(err)
    assert not (no_box / "cache" / "lab" / "boxes").exists(), "nothing was recorded about a box"


@pytest.mark.parametrize("argv,expect", [
    (["lab", "restart"], "argument action: invalid choice: 'restart' (choose from 'up', 'status', 'down', 'reset')"),
    (["kernel", "install", "{deb}", "--target", "ssh://root@box", "--boot", "pxe"],
     "argument --boot: invalid choice: 'pxe' (choose from 'kexec', 'reboot')"),
    (["kernel", "install", "{deb}"], "the following arguments are required: --target"),
    (["target", "check", "ssh://root@box"], "argument action: invalid choice: 'check' (choose from 'prepare')"),
    (["kernel", "unpack"], "invalid choice: 'unpack'"),
])
def test_bad_lab_words_are_argparse_errors(capsys, no_box, argv, expect):
    argv = [a.format(deb=next(no_box.glob("*.deb"))) for a in argv]
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and expect in err.strip().splitlines()[-1]


@pytest.mark.parametrize("argv,expect", [
    (["conformance", "--migrators", "bogus"],
     "migrator configuration 'bogus' is not known; allowed: kernel, kernel-batched, mtcopy-1, mtcopy-2, dcbm-1, "
     "dcbm-4, dcbm-dsa, dcbm-ptdma, dcbm-fail, dcbm-abort, dcbm-hang, dcbm-map-fail, all"),
    (["conformance", "--migrators", "mtcopy-3,dcbm-9"], "migrator configuration 'mtcopy-3', 'dcbm-9' are not known"),
    (["conformance", "--migrators", ","], "migrator configuration ',' is not known"),
    (["conformance", "--suites", "ltp"], "suite 'ltp' not known; allowed: selftests, stress-ng (a test as SUITE:TEST, "
                                         "e.g. selftests:migration), all"),
    (["conformance", "--suites", "selftests:cow"], "test 'cow' is not in suite selftests; it has: migration, transhuge-stress, "
                                             "compaction_test, split_huge_page_test, ksm_tests"),
])
def test_bad_conformance_input_is_refused_before_a_vm_boots(capsys, monkeypatch, argv, expect):
    from workbench import targets
    monkeypatch.setattr(targets, "make_target", lambda *a, **k: pytest.fail("a target was made"))
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 2 and out == ""
    assert expect in one_line_error(err)


def test_a_recorded_write_is_a_sysfs_path_and_a_value(capsys):
    rc, out, err = run_cli(capsys, "sysfs", "snapshot", "-", "--target", "fake", "--root", "/sys/module/dcbm",
                           "--write", "/etc/passwd=1")
    assert rc == 2 and out == ""
    assert "--write '/etc/passwd=1' is not PATH=VALUE with PATH under /sys/" in one_line_error(err)
