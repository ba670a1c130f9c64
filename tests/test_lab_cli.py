"""Lab boxes from the command line (issue 14), without a VM or a box: the library
functions are replaced, and what the commands pass them and print is checked."""

from __future__ import annotations

import json

import pytest

from workbench.errors import WorkbenchError
from workbench.targets import lab, make_target


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache of its own, so that no record of a real box is read or written."""
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ---- the venv prepare installed is the SSH target's default python --------------------------

def test_a_prepared_box_runs_the_agent_from_its_venv(cache):
    venv = "/root/.migration-workbench/venv/bin/python"
    path = lab._record_here({"target": "ssh://root@box:2222", "prepared": True, "remote_python": venv})
    assert path.parent == cache / "lab" / "boxes"
    assert lab.prepared_python("ssh://root@box:2222") == venv
    assert make_target("ssh://root@box:2222").remote_python == venv
    assert make_target("ssh://root@box:2222").describe()["remote_python"] == venv


def test_an_explicit_remote_python_wins_over_the_record(cache):
    lab._record_here({"target": "ssh://root@box", "prepared": True, "remote_python": "/venv/bin/python"})
    assert make_target("ssh://root@box", remote_python="/usr/bin/python3.11").remote_python == "/usr/bin/python3.11"


@pytest.mark.parametrize("spec", ["ssh://box", "ssh://root@box:22", "ssh://admin@box"])
def test_another_address_or_login_is_another_box(cache, spec):
    lab._record_here({"target": "ssh://root@box", "prepared": True, "remote_python": "/venv/bin/python"})
    assert lab.prepared_python(spec) is None
    assert make_target(spec).remote_python == "python3"


def test_a_box_that_could_not_be_prepared_keeps_python3(cache):
    lab._record_here({"target": "ssh://root@box", "prepared": False, "missing": ["no python3"]})
    assert lab.prepared_python("ssh://root@box") is None
    (cache / "lab" / "boxes" / "root_box.json").write_text("{not json")
    assert lab.prepared_python("ssh://root@box") is None
    assert make_target("ssh://root@box").remote_python == "python3"


# ---- the commands call the library with what they were given, and say what it did -------------

def run_cli(capsys, *argv):
    from workbench.host.cli import main as cli
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_target_prepare(capsys, cache, monkeypatch):
    calls = []

    def prepare(target, progress=None):
        calls.append(target)
        progress("ssh://root@box:2222: copying the wheelhouse (61 MiB)")
        return {"target": target.label, "installed": True, "prepared": True, "seconds": 301.4,
                "remote_dir": "/root/.migration-workbench",
                "remote_python": "/root/.migration-workbench/venv/bin/python", "python": "/usr/bin/python3",
                "python_version": "3.11.2", "numa_nodes_with_memory": [0, 1], "thp": "always [madvise] never",
                "privilege": "root", "user": "root", "kernel_release": "6.12.117+deb12-amd64"}
    monkeypatch.setattr(lab, "prepare", prepare)
    rc, out, err = run_cli(capsys, "target", "prepare", "ssh://root@box", "--port", "2222", "--identity", "/k/id",
                           "--known-hosts", "/k/known_hosts")
    assert rc == 0
    (t,) = calls
    assert (t.label, t.port, t.identity, t.known_hosts) == ("ssh://root@box:2222", 2222, "/k/id", "/k/known_hosts")
    assert "copying the wheelhouse" in err
    assert out.splitlines() == [
        "ssh://root@box:2222: installed the agent into /root/.migration-workbench/venv (301 s)",
        "  python         /usr/bin/python3 3.11.2",
        "  NUMA nodes     0, 1 with memory",
        "  THP            always [madvise] never",
        "  privilege      root",
        "  kernel         6.12.117+deb12-amd64",
        "  remote python  /root/.migration-workbench/venv/bin/python (the agent's python on ssh://root@box:2222 "
        "from now on)"]


def test_target_prepare_again_and_as_a_sudo_login(capsys, cache, monkeypatch):
    monkeypatch.setattr(lab, "prepare", lambda target, progress=None: {
        "target": target.label, "installed": False, "prepared": True, "seconds": 19.6, "privilege": "sudo",
        "user": "lab", "numa_nodes_with_memory": [0, 2], "remote_python": "/home/lab/venv/bin/python"})
    rc, out, err = run_cli(capsys, "target", "prepare", "ssh://lab@box:22", "--port", "22")
    assert rc == 0
    assert out.splitlines()[0] == "ssh://lab@box:22: already prepared, nothing to install (20 s)"
    assert "  privilege      sudo (login lab)" in out and "  NUMA nodes     0, 2 with memory" in out


def test_a_box_that_cannot_be_prepared_is_one_line(capsys, cache, monkeypatch):
    from workbench.errors import WorkbenchError

    def prepare(target, progress=None):
        raise WorkbenchError(f"{target.label} cannot be prepared: no python3 (apt-get install python3 python3-venv); "
                             "1 NUMA node with memory (needs 2)")
    monkeypatch.setattr(lab, "prepare", prepare)
    rc, out, err = run_cli(capsys, "target", "prepare", "ssh://root@box")
    assert rc == 2 and out == ""
    assert err.strip() == ("workbench: error: ssh://root@box cannot be prepared: no python3 (apt-get install python3 "
                           "python3-venv); 1 NUMA node with memory (needs 2)")


@pytest.fixture
def deb(tmp_path):
    """A package built by package.sh, as far as KernelPackage.from_deb reads it."""
    d = tmp_path / "linux-image-6.12.117-wb-patched_6.12.117-wb-patched-3_amd64.deb"
    d.write_bytes(b"!<arch>\n")
    (tmp_path / "package.json").write_text(json.dumps({"image_deb": d.name, "release": "6.12.117-wb-patched",
                                                      "version": "6.12.117-wb-patched-3", "flavour": "patched"}))
    return d


def test_kernel_install(capsys, cache, monkeypatch, deb):
    calls = []

    def install(package_deb, target, boot="kexec", timeout=900.0, console=None, progress=None):
        calls.append((package_deb, target, boot, timeout))
        return {"target": target.label, "boot": boot, "previous_release": "6.12.117+deb12-amd64",
                "running_release": "6.12.117-wb-patched", "running_version": "#3 SMP PREEMPT_DYNAMIC",
                "series_migrator": "[kernel] mtcopy dcbm", "default_entry": "gnulinux-advanced-x>gnulinux-6.12.117",
                "seconds": 241.2, "seconds_copy": 6.1, "seconds_install": 48.9, "seconds_boot": 184.0}
    monkeypatch.setattr(lab, "install", install)
    rc, out, err = run_cli(capsys, "kernel", "install", str(deb), "--target", "ssh://root@127.0.0.1:2222",
                           "--boot", "reboot", "--timeout", "600", "--ssh-identity", "/k/id")
    assert rc == 0
    ((got, target, boot, timeout),) = calls
    assert (got, target.label, target.identity, boot, timeout) == (deb, "ssh://root@127.0.0.1:2222", "/k/id",
                                                                    "reboot", 600.0)
    assert out.splitlines() == [
        "ssh://root@127.0.0.1:2222 runs 6.12.117-wb-patched (#3 SMP PREEMPT_DYNAMIC) after reboot; took 241 s "
        "(copy 6 s, dpkg -i 49 s, reboot and back 184 s)",
        "  series migrator: [kernel] mtcopy dcbm",
        "  GRUB's default entry stays 6.12.117+deb12-amd64: the next power cycle boots it"]


def test_a_kernel_that_does_not_come_back_is_one_line(capsys, cache, monkeypatch, deb):
    from workbench.errors import WorkbenchError

    def install(package_deb, target, boot="kexec", timeout=900.0, console=None, progress=None):
        raise WorkbenchError(f"{target.label} did not come back within {timeout:.0f}s after {boot} into "
                             "6.12.117-wb-patched; its default boot entry is still 6.12.117+deb12-amd64")
    monkeypatch.setattr(lab, "install", install)
    rc, out, err = run_cli(capsys, "kernel", "install", str(deb), "--target", "ssh://root@box")
    assert rc == 2 and out == ""
    assert err.strip() == ("workbench: error: ssh://root@box did not come back within 900s after kexec into "
                           "6.12.117-wb-patched; its default boot entry is still 6.12.117+deb12-amd64")


def test_kernel_package(capsys, cache, monkeypatch, deb, tmp_path):
    from workbench.targets import kernel_package
    from workbench.targets.kernel_package import KernelPackage
    config = tmp_path / "config-6.12"
    config.write_text("CONFIG_NUMA=y\n")
    calls = []
    built = KernelPackage.from_deb(deb)
    built.info["wall_seconds"] = 4321.0
    in_cache: list = [None]

    def cached(config=None, **kw):
        calls.append(("cached", config, kw))
        return in_cache[0]

    def build(config=None, progress=None, **kw):
        calls.append(("build", config, kw))
        return built
    monkeypatch.setattr(kernel_package, "cached", cached)
    monkeypatch.setattr(kernel_package, "build", build)
    rc, out, err = run_cli(capsys, "kernel", "package", "--config", str(config), "--vanilla", "--no-localmodconfig")
    assert rc == 0
    how = {"config_from": None, "localmodconfig": False, "lsmod": None, "vanilla": True, "test_dma_engine": False,
           "ksrc": None, "line": None}
    assert calls == [("cached", str(config), how), ("build", str(config), how)]
    assert out.splitlines() == [f"kernel package (patched): {deb}",
                                "  release  6.12.117-wb-patched (uname -r once booted), version 6.12.117-wb-patched-3",
                                "  built in 4321 s"]
    assert "building the kernel package" in err

    calls.clear()
    in_cache[0] = KernelPackage.from_deb(deb)
    rc, out, err = run_cli(capsys, "kernel", "package", "--config-from", "ssh://root@box:2222", "--known-hosts",
                           "/k/kh", "--lsmod", "/k/lsmod", "--test-dma-engine")
    assert rc == 0 and out.splitlines()[-1] == "  from the cache"
    ((what, config, kw),) = calls
    source = kw.pop("config_from")
    assert what == "cached" and config is None
    assert (source.label, source.known_hosts) == ("ssh://root@box:2222", "/k/kh")
    assert kw == {"localmodconfig": True, "lsmod": "/k/lsmod", "vanilla": False, "test_dma_engine": True, "ksrc": None,
                  "line": None}


def test_a_package_of_a_line_without_our_series_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    """A line with no series of ours yet (``-`` in kernel/lines): only its vanilla source can
    be packaged, said before anything is fetched or built; a line that does not exist is named."""
    from workbench.targets import kernel_package
    from workbench.testing.fake_lines import add_line_without_series
    add_line_without_series(monkeypatch)
    config = tmp_path / "config-8.0"
    config.write_text("CONFIG_NUMA=y\n")
    with pytest.raises(WorkbenchError, match="^kernel line 8.0 has no series of ours yet: package it with --vanilla$"):
        kernel_package.cached(config, line="8.0")
    with pytest.raises(WorkbenchError, match="kernel line '5.4' is not one of 7.3, 6.12, 8.0"):
        kernel_package.cached(config, line="5.4", vanilla=True)
    with pytest.raises(WorkbenchError, match="--line and --ksrc both name the base"):
        kernel_package.cached(config, line="7.3", vanilla=True, ksrc="/src/linux")


class FakeLabVM:
    """Stands for workbench.vm.lab_vm.LabVM: what a lab VM reports, without QEMU."""
    made: list = []
    up_now = False

    def __init__(self, name="lab", accel="auto"):
        self.name, self.accel = name, accel
        self.calls = []
        FakeLabVM.made.append(self)

    def running(self):
        return FakeLabVM.up_now

    def info(self):
        d = f"/cache/lab/vms/{self.name}"
        return {"target": "ssh://root@127.0.0.1:40123", "user": "root", "host": "127.0.0.1", "port": 40123,
                "identity": f"{d}/id_ed25519", "known_hosts": f"{d}/known_hosts", "console": f"{d}/console.log"}

    def state(self):
        return {"pid": 777, "port": 40123, "accel": "tcg", "started": 1000.0, "boot_seconds": 95.2}

    def status(self):
        if not FakeLabVM.up_now:
            return {"name": self.name, "running": False, "console": self.info()["console"]}
        return {"name": self.name, "running": True, **self.state(), **self.info()}

    def up(self, progress=None):
        self.calls.append("up")
        progress("booting lab VM")
        FakeLabVM.up_now = True
        return self.info()

    def down(self):
        self.calls.append("down")
        was, FakeLabVM.up_now = FakeLabVM.up_now, False
        return was

    def reset(self):
        self.calls.append("reset")
        FakeLabVM.up_now = False


@pytest.fixture
def lab_vm(monkeypatch):
    from workbench.vm import lab_vm
    monkeypatch.setattr(lab_vm, "LabVM", FakeLabVM)
    monkeypatch.setattr(FakeLabVM, "made", [])
    monkeypatch.setattr(FakeLabVM, "up_now", False)
    from types import SimpleNamespace
    from workbench.host.cli import lab as cli_lab
    monkeypatch.setattr(cli_lab, "time", SimpleNamespace(time=lambda: 1300.0))
    return FakeLabVM


def test_lab_status_up_down(capsys, lab_vm):
    target = ("  target   ssh://root@127.0.0.1:40123 --ssh-identity /cache/lab/vms/box2/id_ed25519 "
              "--ssh-known-hosts /cache/lab/vms/box2/known_hosts")
    rc, out, err = run_cli(capsys, "lab", "status", "--name", "box2")
    assert rc == 0 and out == "lab VM 'box2' is down\n"
    rc, out, err = run_cli(capsys, "lab", "up", "--name", "box2", "--accel", "tcg")
    assert rc == 0 and "booting lab VM" in err
    assert out.splitlines() == ["lab VM 'box2' up on 127.0.0.1:40123 (tcg), booted in 95 s", target,
                                "  console  /cache/lab/vms/box2/console.log"]
    assert (lab_vm.made[-1].name, lab_vm.made[-1].accel, lab_vm.made[-1].calls) == ("box2", "tcg", ["up"])
    rc, out, err = run_cli(capsys, "lab", "up", "--name", "box2")
    assert out.splitlines()[0] == "lab VM 'box2' up on 127.0.0.1:40123 (tcg), was already up"
    rc, out, err = run_cli(capsys, "lab", "status", "--name", "box2")
    assert out.splitlines() == ["lab VM 'box2' running: pid 777, 127.0.0.1:40123, tcg, up 300 s", target,
                                "  console  /cache/lab/vms/box2/console.log"]
    rc, out, err = run_cli(capsys, "lab", "status", "--name", "box2", "--json")
    assert json.loads(out)["target"] == "ssh://root@127.0.0.1:40123"
    rc, out, err = run_cli(capsys, "lab", "down", "--name", "box2")
    assert out == "lab VM 'box2' stopped\n"
    rc, out, err = run_cli(capsys, "lab", "down", "--name", "box2")
    assert out == "lab VM 'box2' was not running\n"
    rc, out, err = run_cli(capsys, "lab", "reset")
    assert rc == 0 and lab_vm.made[-1].name == "lab" and lab_vm.made[-1].calls == ["reset"]
