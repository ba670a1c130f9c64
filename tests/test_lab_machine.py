"""The lab-machine VM, and what the workbench does to a box over SSH (issue 14).

The box is a Debian 12 disk image booted by QEMU through its own GRUB, reached only as
``ssh://root@127.0.0.1:PORT`` with a key and a known_hosts file: every call below goes
through the ordinary SSH target. Under TCG everything is slow; no test looks at a time.

The kernel chains (package the series, install, kexec, run every migrator over SSH;
package vanilla, boot it by a one-shot reboot, tell it apart with --kernel-expect) run
only when ``WORKBENCH_LAB_KERNEL_TESTS=1`` asks for them: the first package build of
the box's trimmed Debian config took 2 h 18 min on two cores (the second flavour is
seeded from the first's objects), and the two chains boot the box five times under TCG.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from workbench.errors import WorkbenchError

from .conftest import VM_PREFIX, need


def on_the_box(test):
    """A test on a lab box: a VM (vm) whose disk image is built as root (root), reached
    over SSH (ssh)."""
    return pytest.mark.vm(pytest.mark.root(pytest.mark.ssh(test)))


def _need_tools():
    need(shutil.which("qemu-system-x86_64") is not None, "QEMU is not installed (apt-get install qemu-system-x86)")
    need(shutil.which("mmdebstrap") is not None, "mmdebstrap is not installed (apt-get install mmdebstrap)")
    need(os.geteuid() == 0, "building the lab image needs root")
    need(Path("/usr/src/linux-source-6.12.tar.xz").exists(), "no linux-source-6.12 (apt-get install linux-source-6.12)")


def _up(vm):
    try:
        return vm.up()
    except WorkbenchError as exc:
        pytest.fail(f"lab VM did not come up: {exc}\n{exc.detail or ''}")


@pytest.fixture(scope="module")
def lab_vm():
    """A clean lab box (fresh overlay on the cached image), up for the module."""
    from workbench.vm.lab_vm import LabVM
    _need_tools()
    vm = LabVM(f"{VM_PREFIX}-lab")
    vm.reset()
    _up(vm)
    yield vm
    vm.down()


@pytest.fixture(scope="module")
def prepared(lab_vm):
    from workbench.targets import lab
    return lab.prepare(lab_vm.target())


def _box(vm, **options):
    from workbench.targets.remote import Remote
    return Remote(vm.target(**options))


# ---- a box without NUMA (its own one-node VM, before the main one boots) -------------------

@on_the_box
def test_a_box_without_numa_gets_one_line():
    from workbench.targets import lab
    from workbench.vm.lab_vm import LabVM
    _need_tools()
    vm = LabVM(f"{VM_PREFIX}-lab-1node", nodes=(("3072M", "0-1"),))
    vm.reset()
    try:
        _up(vm)
        with pytest.raises(WorkbenchError) as err:
            lab.prepare(vm.target())
        msg = str(err.value)
        assert "\n" not in msg
        assert "cannot be prepared" in msg and "1 NUMA node with memory (needs 2)" in msg
    finally:
        vm.kill()
        vm.reset()


# ---- the image and the VM -----------------------------------------------------------------------

@on_the_box
def test_boots_the_stock_kernel_from_its_disk_with_two_nodes(lab_vm):
    from workbench.vm.lab_image import build_image
    image = build_image()
    box = _box(lab_vm)
    assert box.out("uname -r") == image.kernel_release
    cmdline = box.out("cat /proc/cmdline")
    assert f"BOOT_IMAGE=/boot/vmlinuz-{image.kernel_release}" in cmdline   # GRUB loaded it from the disk
    assert box.out("cat /sys/devices/system/node/has_memory") == "0-1"
    assert box.out("ls -d /sys/devices/system/node/node*/cpu[0-9]* | wc -l") == "2"
    assert box.out("grep -c '^processor' /proc/cpuinfo") == "2"
    assert box.out("sed -n 's/^GRUB_DEFAULT=//p' /etc/default/grub") == "saved"
    assert os.path.getsize(lab_vm.console) > 0


@on_the_box
def test_status_and_reach_are_an_ordinary_ssh_target(lab_vm):
    from workbench.targets.ssh import SSHTarget
    info = lab_vm.up()                      # already up: returns at once
    assert info["target"] == f"ssh://root@127.0.0.1:{info['port']}"
    st = lab_vm.status()
    assert st["running"] and st["port"] == info["port"] and st["accel"] in ("kvm", "tcg")
    assert isinstance(lab_vm.target(), SSHTarget)


@on_the_box
def test_sshd_is_forwarded_on_loopback_only(lab_vm):
    port = lab_vm.status()["port"]
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.rsplit(":", 1)
            if state == "0A" and int(p, 16) == port:
                listening.append(addr)
    assert listening == ["0100007F"]        # 127.0.0.1, nothing else


@on_the_box
def test_unknown_or_changed_host_key_is_refused(lab_vm, tmp_path):
    from workbench.targets.remote import Remote
    info = lab_vm.info()
    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(WorkbenchError, match="Host key verification failed"):
        Remote(lab_vm.target(known_hosts=str(empty))).run("true")
    assert empty.read_text() == ""          # nothing was added
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", tmp_path / "other"], check=True)
    changed = tmp_path / "changed"
    changed.write_text(f"[127.0.0.1]:{info['port']} " + " ".join((tmp_path / "other.pub").read_text().split()[:2]) + "\n")
    before = changed.read_text()
    with pytest.raises(WorkbenchError, match="Host key verification failed"):
        Remote(lab_vm.target(known_hosts=str(changed))).run("true")
    assert changed.read_text() == before


# ---- prepare --------------------------------------------------------------------------------------

@on_the_box
def test_prepare_installs_the_agent_and_a_second_prepare_only_checks(lab_vm, prepared):
    from workbench.targets import lab
    assert prepared["prepared"] and prepared["installed"]
    assert prepared["numa_nodes_with_memory"] == [0, 1]
    assert prepared["privilege"] == "root"
    assert prepared["agent_facts"]["numa"]["memory_nodes"] == [0, 1]
    again = lab.prepare(lab_vm.target())
    assert again["installed"] is False and again["wheelhouse_key"] == prepared["wheelhouse_key"]
    on_box = json.loads(_box(lab_vm).out(f"cat {prepared['remote_dir']}/prepared.json"))
    assert on_box["wheelhouse_key"] == prepared["wheelhouse_key"]


@on_the_box
def test_the_prepared_venv_runs_a_verified_trial_over_ssh(lab_vm, prepared, tmp_path):
    from workbench.host.running import runner
    from workbench.host.running.plan import RunParams
    target = lab_vm.target(remote_python=prepared["remote_python"])
    run = runner.run(target, RunParams(folio_sizes=[4096], total_size=4 << 20, repeats=1), root=tmp_path,
                     progress=False)
    records = run.records()
    assert len(records) == 1 and records["verified"].all()


@on_the_box
def test_a_link_the_box_cuts_mid_run_is_reconnected_or_the_run_stops_and_resumes(lab_vm, prepared, tmp_path):
    """The real agent on the box kills its own sshd session inside a trial (the box's side
    of a dropped link). When the box answers again, the runner records ``link_lost``,
    reconnects and sends what did not report again: every trial stored once, verified.
    When it does not (here its address goes nowhere for the reconnection, with no time to
    wait), the run stops in one line that says how to resume, with every finished trial
    kept; ``--resume`` on the box completes it, again with no trial twice."""
    import socket

    from workbench.host.running import runner, store
    from workbench.host.running.chaos import Chaos
    from workbench.host.running.plan import RunParams
    params = RunParams(folio_sizes=[4096, 2 << 20], total_size=2 << 20, repeats=2)
    every = sorted(s.key() for s in params.trials())
    def cut():                              # a Chaos fires each fault once: one per run
        return Chaos([{"fault": "cut_link", "trial": "2M-2M-n0to1-s1-r0"}])
    in_flight = ("kernel-2M-2M-n0to1-s1-r0", "kernel-4K-2M-n0to1-s1-r0", None)

    target = lab_vm.target(remote_python=prepared["remote_python"])
    run = runner.run(target, params, root=tmp_path, progress=False, chaos=cut())
    records = run.records()
    assert sorted(records["trial_key"]) == every and records["verified"].all()
    (fault,) = run.faults()
    assert fault["kind"] == "link_lost" and fault["trial_key"] in in_flight

    gone = lab_vm.target(remote_python=prepared["remote_python"])
    gone.reconnect_timeout = 0
    real_recover = gone.recover

    def recover_to_nowhere(why=""):
        with socket.socket() as sock:       # a port nothing listens on: the box is unreachable
            sock.bind(("127.0.0.1", 0))
            gone.port = sock.getsockname()[1]
        real_recover(why)
    gone.recover = recover_to_nowhere
    with pytest.raises(WorkbenchError) as err:
        runner.run(gone, params, root=tmp_path / "stopped", progress=False, chaos=cut())
    msg = str(err.value)
    assert "\n" not in msg and "could not reconnect within 0 s" in msg
    (stopped,) = [p.parent.name for p in (tmp_path / "stopped").glob("*/manifest.json")]
    kept = store.open_run(stopped, tmp_path / "stopped").records()
    assert 1 <= len(kept) < len(every) and kept["verified"].all()
    assert msg.endswith(f"{len(kept)} finished trials are saved in {tmp_path / 'stopped' / stopped}; resume with "
                        f"--resume {stopped})")
    resumed = runner.run(target, params, policy=runner.RunPolicy(resume=stopped), root=tmp_path / "stopped",
                         progress=False)
    records = resumed.records()
    assert resumed.id == stopped and sorted(records["trial_key"]) == every and records["verified"].all()


@on_the_box
def test_an_agent_left_from_an_earlier_checkout_is_refused_and_prepare_updates_it(lab_vm, prepared, tmp_path):
    """The box's agent differs from this checkout (one file changed in its venv, as after
    a `git pull` here): a run is refused before any trial with the prepare hint, and
    `target prepare` (same wheelhouse) notices and installs again."""
    from workbench.host.running import runner
    from workbench.host.running.plan import RunParams
    from workbench.targets import lab
    box = _box(lab_vm)
    py = prepared["remote_python"]
    trial = box.out(f"{py} -c 'import workbench.agent.trial as t; print(t.__file__)'")
    box.run(f"echo '# an older agent' >>{trial}")
    with pytest.raises(WorkbenchError) as err:
        runner.run(lab_vm.target(remote_python=py), RunParams(folio_sizes=[4096], total_size=1 << 20, repeats=1),
                   root=tmp_path, progress=False)
    msg = str(err.value)
    assert "\n" not in msg and "is not this checkout's" in msg
    assert msg.endswith(f"run `workbench target prepare {lab_vm.target().label}` to update it")
    assert not list(tmp_path.glob("*/manifest.json"))                      # refused before a run existed
    again = lab.prepare(lab_vm.target())
    assert again["installed"] is True and again["wheelhouse_key"] == prepared["wheelhouse_key"]
    assert lab_vm.target(remote_python=py).facts()["agent_code"] == again["agent_facts"]["agent_code"]


@on_the_box
def test_a_box_without_python_gets_one_line(lab_vm, prepared):
    from workbench.targets import lab
    box = _box(lab_vm)
    box.run("mv /usr/bin/python3 /usr/bin/python3.hidden")
    try:
        with pytest.raises(WorkbenchError) as err:
            lab.prepare(lab_vm.target())
        assert "\n" not in str(err.value)
        assert "cannot be prepared: no python3" in str(err.value)
    finally:
        box.run("mv /usr/bin/python3.hidden /usr/bin/python3")


# ---- installing kernels --------------------------------------------------------------------------

def _broken_package(box, release: str, tmp_path: Path) -> Path:
    """A linux-image package whose kernel cannot mount its root: the box's own vmlinuz
    with an empty initramfs (so no virtio_blk), which panics at boot."""
    stock = box.out("uname -r")
    root = tmp_path / "pkg"
    (root / "boot").mkdir(parents=True)
    (root / "DEBIAN").mkdir()
    (root / "boot" / f"vmlinuz-{release}").write_bytes(box.run(f"cat /boot/vmlinuz-{stock}", input=b"").stdout)
    subprocess.run(["sh", "-c", f"cd {tmp_path} && mkdir -p empty && cd empty && find . | cpio -o -H newc --quiet"
                                f" >{root}/boot/initrd.img-{release}"], check=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: linux-image-{release}\nVersion: 1\nArchitecture: amd64\nMaintainer: workbench tests <t@localhost>\n"
        "Description: a kernel that does not boot (test)\n")
    (root / "DEBIAN" / "postinst").write_text("#!/bin/sh\n[ \"$1\" != configure ] || update-grub\n")
    (root / "DEBIAN" / "postinst").chmod(0o755)
    deb = tmp_path / f"linux-image-{release}_1_amd64.deb"
    subprocess.run(["dpkg-deb", "-Zgzip", "--build", "--root-owner-group", root, deb], check=True,
                   capture_output=True)
    return deb


@on_the_box
@pytest.mark.parametrize("boot", ["kexec", "reboot"])
def test_a_kernel_that_does_not_boot_is_reported_and_the_box_comes_back_on_its_old_kernel(lab_vm, tmp_path, boot):
    from workbench.targets import lab
    box = _box(lab_vm)
    old = box.out("uname -r")
    deb = _broken_package(box, "6.12.0-wb-broken", tmp_path)
    with pytest.raises(WorkbenchError) as err:
        lab.install(deb, lab_vm.target(), boot=boot, timeout=900, console=lab_vm.console)
    msg = str(err.value)
    assert "\n" not in msg
    # the console showed the panic: reported then, not after the whole time limit
    assert f"did not come back after {boot} into 6.12.0-wb-broken: the console shows a kernel panic" in msg
    assert f"default boot entry is still {old}" in msg
    assert "Kernel panic - not syncing" in err.value.detail      # the console's tail comes with it
    lab_vm.power_cycle(timeout=1800)                             # what a person does with a hung box
    assert box.out("uname -r") == old
    box.run("dpkg -r linux-image-6.12.0-wb-broken >/dev/null 2>&1")


def _package(vanilla: bool):
    """The series (or vanilla) packaged on the lab box's own config and modules."""
    # the image's stock config and first-boot lsmod: fixed inputs, so the package stays cached
    from workbench.targets import kernel_package
    from workbench.vm.lab_image import build_image
    if os.environ.get("WORKBENCH_LAB_KERNEL_TESTS") != "1":
        pytest.skip("the lab kernel chain runs with WORKBENCH_LAB_KERNEL_TESTS=1 (a package build of up to "
                    "2 h on 2 cores when not cached, then a box of its own booted four times under TCG)")
    image = build_image()
    args = dict(config=image.config, lsmod=image.lsmod, vanilla=vanilla, test_dma_engine=not vanilla)
    return kernel_package.cached(**args) or kernel_package.build(**args)


@on_the_box
def test_the_whole_chain_from_a_clean_image(tmp_path):
    """A box of its own from a clean image: prepare -> the patched package -> install ->
    kexec -> uname -r is ours -> a verified run of every migrator over SSH -> the vanilla
    package -> install, booted by a one-shot reboot through GRUB -> the same trials pass;
    --kernel-expect tells the two apart in one line; the next power cycle is back on the
    stock kernel (GRUB's default was never moved)."""
    from workbench.host.running import runner
    from workbench.host.running.plan import VM_DMA_ENGINE, RunParams
    from workbench.targets import lab
    from workbench.vm.lab_vm import LabVM
    _need_tools()
    patched, vanilla = _package(vanilla=False), _package(vanilla=True)
    box_vm = LabVM(f"{VM_PREFIX}-lab-chain")
    box_vm.reset()
    _up(box_vm)
    try:
        box = _box(box_vm)
        stock = box.out("uname -r")
        prepared = lab.prepare(box_vm.target())
        assert prepared["installed"]
        target = box_vm.target(remote_python=prepared["remote_python"])
        trials = dict(folio_sizes=[4096, 2 << 20], total_size=4 << 20, repeats=1)

        res = lab.install(patched.deb, box_vm.target(), boot="kexec", timeout=900, console=box_vm.console)
        assert res["running_release"] == patched.release and res["running_version"].startswith(patched.build_tag + " ")
        assert "[kernel]" in res["series_migrator"]          # mtcopy and dcbm are modules, loaded on use
        for migrator in ("kernel", "mtcopy", "dcbm"):
            run = runner.run(target, RunParams(**trials, migrator=migrator,
                                               dma_engine=VM_DMA_ENGINE if migrator == "dcbm" else None),
                             policy=runner.RunPolicy(kernel_expect="patched"), root=tmp_path, progress=False)
            assert run.records()["verified"].all() and len(run.records()) == 2, migrator
            assert run.manifest["kernel_release"] == patched.release

        res = lab.install(vanilla.deb, box_vm.target(), boot="reboot", timeout=1200, console=box_vm.console)
        assert res["running_release"] == vanilla.release and res["running_version"].startswith(vanilla.build_tag + " ")
        assert res["series_migrator"] is None and vanilla.release in res["boot_entry"]
        assert res["default_release"] == stock      # not the patched kernel it ran, which was only kexec'd
        assert f"BOOT_IMAGE=/boot/vmlinuz-{vanilla.release}" in box.out("cat /proc/cmdline")   # through GRUB
        with pytest.raises(WorkbenchError) as err:
            runner.run(target, RunParams(**trials), policy=runner.RunPolicy(kernel_expect="patched"), root=tmp_path,
                       progress=False)
        assert str(err.value) == (f"target {target.label} runs kernel {vanilla.release} (no copy-offload "
                                  "interface), not the expected patched")
        run = runner.run(target, RunParams(**trials), policy=runner.RunPolicy(kernel_expect="vanilla"), root=tmp_path,
                         progress=False)
        assert run.records()["verified"].all() and len(run.records()) == 2
        assert run.manifest["kernel_expect"] == "vanilla"

        box_vm.power_cycle(timeout=1800)
        assert box.out("uname -r") == stock
    finally:
        box_vm.kill()
        box_vm.reset()


# ---- pieces that need no VM -------------------------------------------------------------------------

GRUB_CFG = """\
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-simple-U' {
\tlinux\t/boot/vmlinuz-6.12.117-wb-patched root=/dev/vda1 ro
}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-U' {
\tmenuentry 'Debian GNU/Linux, with Linux 6.12.117-wb-patched' --class debian $menuentry_id_option 'gnulinux-6.12.117-wb-patched-advanced-U' {
\t}
\tmenuentry 'Debian GNU/Linux, with Linux 6.12.117-wb-patched (recovery mode)' --class debian $menuentry_id_option 'gnulinux-6.12.117-wb-patched-recovery-U' {
\t}
\tmenuentry 'Debian GNU/Linux, with Linux 6.12.117+deb12-amd64' --class debian $menuentry_id_option 'gnulinux-6.12.117+deb12-amd64-advanced-U' {
\t}
}
"""


def test_grub_entry_paths_name_the_submenu_and_skip_recovery():
    from workbench.targets.lab import grub_entry
    assert grub_entry(GRUB_CFG, "6.12.117-wb-patched") == "gnulinux-advanced-U>gnulinux-6.12.117-wb-patched-advanced-U"
    assert grub_entry(GRUB_CFG, "6.12.117+deb12-amd64") == "gnulinux-advanced-U>gnulinux-6.12.117+deb12-amd64-advanced-U"
    assert grub_entry(GRUB_CFG, "6.12.117") is None
    flat = "menuentry 'Debian GNU/Linux, with Linux 6.1.0-57-amd64' $menuentry_id_option 'gnulinux-6.1.0-57-amd64-advanced-U' {\n}\n"
    assert grub_entry(flat, "6.1.0-57-amd64") == "gnulinux-6.1.0-57-amd64-advanced-U"


def test_mbr_has_one_bootable_linux_partition():
    from workbench.vm.lab_image import _mbr_table
    t = _mbr_table(2048, 1000)
    assert len(t) == 72 and t[-2:] == b"\x55\xaa"
    entry = t[6:22]
    assert entry[0] == 0x80 and entry[4] == 0x83
    assert int.from_bytes(entry[8:12], "little") == 2048 and int.from_bytes(entry[12:16], "little") == 1000


def test_the_box_check_parses_node_lists():
    from workbench.targets.lab import _cpulist
    assert _cpulist("0-1") == [0, 1] and _cpulist("0,2-3") == [0, 2, 3] and _cpulist("") == []


@on_the_box
def test_kernel_package_takes_the_box_config_and_modules(lab_vm):
    from workbench.targets import kernel_package
    from workbench.vm.lab_image import build_image
    image = build_image()
    config, lsmod, release = kernel_package.fetch_box_inputs(lab_vm.target())
    assert release == image.kernel_release
    assert config.read_bytes() == image.config.read_bytes()
    assert lsmod.read_text().startswith("Module") and "virtio_blk" in lsmod.read_text()


def test_package_script_keys_its_output_by_its_inputs(tmp_path):
    script = Path(__file__).resolve().parent.parent / "kernel" / "package.sh"
    need(Path("/usr/src/linux-source-6.12.tar.xz").exists(), "no linux-source-6.12 (apt-get install linux-source-6.12)")
    env = {**os.environ, "WORKBENCH_CACHE": str(tmp_path / "cache")}
    none = subprocess.run(["bash", script, "--print-dir"], capture_output=True, text=True, env=env)
    assert none.returncode != 0 and "--config FILE is needed" in none.stderr
    cfg = tmp_path / "config"
    cfg.write_text("CONFIG_NUMA=y\n")

    def out(*args):
        # the LTS line: its source is the host's own, so a fresh cache fetches nothing
        p = subprocess.run(["bash", script, "--config", cfg, "--line", "6.12", "--print-dir", *args],
                           capture_output=True, text=True, env=env)
        assert p.returncode == 0, p.stderr
        return p.stdout.strip().splitlines()[-1]
    patched, vanilla = out(), out("--vanilla")
    assert patched != vanilla and patched.startswith(str(tmp_path / "cache" / "kernel" / "pkg" / "out"))
    assert out() == patched                               # same inputs, same place
    cfg.write_text("CONFIG_NUMA=y\nCONFIG_MIGRATION=y\n")
    assert out() != patched                               # another base config, another package


def test_a_panic_on_the_console_ends_the_wait_for_the_box(tmp_path, monkeypatch):
    """install() stops waiting as soon as the console shows the new kernel panicked; a
    panic from before the boot (an earlier test's) is not taken for this one."""
    from workbench.targets import lab
    monkeypatch.setattr(lab.time, "sleep", lambda s: None)
    console = tmp_path / "console.log"
    console.write_bytes(b"[ 1.0] Kernel panic - not syncing: an old one\r\n")
    offset = lab._console_size(console)

    class Down:
        calls = 0

        def run(self, *a, **kw):
            Down.calls += 1
            if Down.calls == 3:
                with open(console, "ab") as f:
                    f.write(b"[ 0.9] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\r\n")
            raise WorkbenchError("ssh: connect to host 127.0.0.1 port 2222: Connection refused")

    import time
    back, why = lab._wait_back(Down(), "old-id", time.monotonic() + 600, console, offset)
    assert back is None and why == "a kernel panic: VFS: Unable to mount root fs on unknown-block(0,0)"
    assert Down.calls == 3
    assert lab._wait_back(Down(), "old-id", time.monotonic() - 1, None) == (None, None)

