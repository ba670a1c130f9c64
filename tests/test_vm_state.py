"""A VM left behind by a host process that died: found by the next command, its orphaned
plan cancelled; a VM recorded before the machine rebooted (or whose pid was reused) is
not taken for a live one. No VM is booted here."""

import json
import os
import subprocess
import sys

from workbench.vm import config as vm_config, numa_vm, process


def test_a_pid_is_alive_only_if_it_is_the_same_process_on_the_same_boot():
    me = os.getpid()
    assert process.alive(me) and process.alive(me, process.boot_id(), process.start_time(me))
    assert not process.alive(me, "another-boot-id", process.start_time(me))       # the machine rebooted since
    assert not process.alive(me, process.boot_id(), process.start_time(me) + 1)      # the pid was reused
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert not process.alive(gone.pid) and not process.alive(0)


def test_the_next_command_cancels_the_plans_of_host_processes_that_are_gone(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    vm = numa_vm.VM("rel-orphans")
    for d in ("owners", "requests", "responses"):
        (vm.spool.dir / d).mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owners = {"orphan": {"pid": dead.pid, "boot_id": process.boot_id(), "start": None},
              "finished": {"pid": dead.pid, "boot_id": process.boot_id(), "start": None},
              "rebooted": {"pid": os.getpid(), "boot_id": "before-the-reboot", "start": None},
              "mine": {"pid": os.getpid(), "boot_id": process.boot_id(), "start": process.start_time(os.getpid())}}
    for name, o in owners.items():
        (vm.spool.dir / "owners" / f"{name}.json").write_text(json.dumps(o))
    (vm.spool.dir / "responses" / "finished.jsonl").write_text('{"type": "record"}\n{"type": "done"}\n')
    (vm.spool.dir / "responses" / "orphan.jsonl").write_text('{"type": "start"}\n')
    assert vm.spool.cancel_orphans() == ["orphan", "rebooted"]
    cancels = sorted(json.loads(p.read_text())["request"] for p in (vm.spool.dir / "requests").glob("*.json"))
    assert cancels == ["orphan", "rebooted"]
    assert [p.stem for p in (vm.spool.dir / "owners").glob("*.json")] == ["mine"]   # a live host's plan is left alone


def test_a_died_boot_keeps_its_console_past_the_next_boot_and_only_the_newest_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    vm = numa_vm.VM("rel-deaths")
    vm.dir.mkdir(parents=True)
    vm.console.write_text("[ 62.5] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n"
                          "[ 62.6] Kernel panic - not syncing: Fatal exception in interrupt\n")
    vm.qemu_log.write_text("qemu-system-x86_64: terminating on signal 15\n")
    lost = vm.death()
    assert lost.kind == "vm_died" and lost.cause == "guest kernel panic: Fatal exception in interrupt"
    kept = vm.dir / "deaths" / lost.logs.rsplit("/", 1)[-1]
    assert str(kept / "console.log") in str(lost) and str(kept / "qemu.log") in str(lost)
    vm.console.write_text("the next boot\n")                      # what up() does to the live one
    assert "Oops: int3" in (kept / "console.log").read_text()
    assert "signal 15" in (kept / "qemu.log").read_text()
    for _ in range(numa_vm.VM.KEEP_DEATHS + 2):
        vm.keep_logs()
    left = sorted(p.name for p in (vm.dir / "deaths").iterdir())
    assert len(left) == numa_vm.VM.KEEP_DEATHS and kept.name not in left   # the oldest went


def test_tcg_guests_run_single_threaded_and_kvm_guests_do_not(tmp_path, monkeypatch):
    """Multi-threaded TCG lets a vCPU run a stale translation of kernel text another vCPU
    is patching (QEMU 7.2, Linux 6.12: "Oops: int3" when a trial switches a trace event),
    so every TCG guest, the virtme-ng VM and the disk-booted lab VM alike, is single-threaded."""
    from pathlib import Path

    from workbench.vm import lab_image, lab_vm
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))

    from workbench.targets.kernel_images import KernelImage

    def Image():  # noqa: N802
        return KernelImage("path", "/boot/vmlinuz")
    vm = numa_vm.VM("rel-accel")
    for accel, want in (("tcg", "-accel tcg,thread=single"), ("icount", "-accel tcg,thread=single -icount"),
                        ("kvm", None)):
        opts = vm.command(vm_config.VMConfig(accel=accel).resolved(), Image(), "tok")[-1]
        assert opts.startswith("--qemu-opts="), opts
        if want:
            assert want in opts and opts.count(" -accel ") == 1, opts
        else:
            assert " -accel " not in opts and "thread=" not in opts, opts
    lab = lab_vm.LabVM("rel-accel")
    image = lab_image.LabImage("key", Path("/img"), Path("/img/disk.qcow2"), Path("/img/id"), "ssh-ed25519 AAAA",
                             "6.12.117+deb12-amd64", {})
    for accel, want in (("tcg", "tcg,thread=single"), ("kvm", "kvm")):
        cmd = lab.command(image, 2222, accel)
        assert cmd[cmd.index("-accel") + 1] == want


def test_a_vm_boots_without_waiting_for_what_it_never_uses(tmp_path, monkeypatch):
    """Two things cost a stock guest's boot here and bought nothing: vng waiting for
    QEMU 7.2's C virtiofsd, which cannot serve it (9p is asked for at once unless a
    virtiofsd that takes ``--shared-dir`` is installed), and udev loading modules for
    q35's and ``-cpu max``'s devices (blacklisted for udev; the agent's own modules are
    loaded by name, which the blacklist leaves alone, and are not on it)."""
    import os
    import stat

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))

    from workbench.targets.kernel_images import KernelImage

    def Image():  # noqa: N802
        return KernelImage("path", "/boot/vmlinuz")

    def command():
        vm_config.vng_can_use_virtiofs.cache_clear()
        return numa_vm.VM("boot-speed").command(vm_config.VMConfig(accel="tcg").resolved(), Image(), "tok")

    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setattr(vm_config, "VIRTIOFSD_PATHS", ())
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    daemon = bindir / "virtiofsd"
    for help_text, force_9p in (("Usage: virtiofsd [options]\n  -o source=PATH", True),    # QEMU 7.2's C daemon
                                ("Usage: virtiofsd --shared-dir <dir> --socket-path <p>", False)):  # the Rust one
        daemon.write_text(f"#!/bin/sh\necho '{help_text}'\n")
        daemon.chmod(daemon.stat().st_mode | stat.S_IEXEC)
        assert ("--force-9p" in command()) is force_9p, help_text
    daemon.unlink()
    cmd = command()
    assert "--force-9p" in cmd
    appended = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--append"]
    (blacklist,) = [a.split("=", 1)[1].split(",") for a in appended if a.startswith("modprobe.blacklist=")]
    assert blacklist == list(vm_config.UNUSED_GUEST_MODULES) and "kvm_amd" in blacklist and "ahci" in blacklist
    from workbench.agent.migrators import dma_test_engine, mm_migration
    loaded_by_the_agent = {"pvpanic", "pvpanic_pci", "ramoops", "dmatest", dma_test_engine.TEST_DMA_ENGINE,
                           *mm_migration.MmMigrationInterface.modules}
    assert not loaded_by_the_agent & set(blacklist)
    vm_config.vng_can_use_virtiofs.cache_clear()


def test_qmp_answers_skip_events_and_an_absent_qemu_is_none(tmp_path):
    import json as _json
    import socket
    import threading

    from workbench.vm import qmp
    from workbench.targets.kernel_images import KernelImage
    sock = tmp_path / "qmp.sock"
    assert qmp.execute(sock, "stop") is None                          # nothing listening
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    server.listen(1)
    seen = []

    def qemu():
        conn, _ = server.accept()
        f = conn.makefile("rw")
        f.write('{"QMP": {"version": {}, "capabilities": []}}\n')
        f.flush()
        for line in f:
            cmd = _json.loads(line)["execute"]
            seen.append(cmd)
            if cmd == "stop":
                f.write('{"event": "STOP", "timestamp": {}}\n')      # an event before the answer
            f.write('{"return": {"status": "paused", "running": false}}\n' if cmd == "query-status"
                    else '{"return": {}}\n')
            f.flush()
        conn.close()
    threading.Thread(target=qemu, daemon=True).start()
    assert qmp.execute(sock, "stop", "query-status") == [{"return": {}},
                                                          {"return": {"status": "paused", "running": False}}]
    assert seen == ["qmp_capabilities", "stop", "query-status"]
    server.close()


def test_an_icount_vm_is_paused_only_when_no_host_process_has_a_plan_on_it(tmp_path, monkeypatch):
    from workbench.vm import qmp
    from workbench.targets.kernel_images import KernelImage
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    sent = []
    monkeypatch.setattr(qmp, "execute", lambda sock, *cmds, **kw: sent.extend(cmds) or [{"return": {}}] * len(cmds))
    vm = numa_vm.VM("rel-pause")
    (vm.spool.dir / "owners").mkdir(parents=True)
    icount, tcg = {"accelerator": "icount"}, {"accelerator": "tcg"}
    assert vm.pause_if_idle(icount) and sent == ["stop"]
    (vm.spool.dir / "owners" / "another-host-process.json").write_text("{}")
    assert not vm.pause_if_idle(icount) and sent == ["stop"]           # someone else's plan is running
    vm.resume(icount)
    assert sent == ["stop", "cont"]
    assert not vm.pause_if_idle(tcg) and (vm.resume(tcg), sent)[1] == ["stop", "cont"]   # never paused
    opts = vm.command(vm_config.VMConfig(accel="icount").resolved(), KernelImage("path", "/vmlinuz"), "t")[-1]
    assert f"-qmp unix:{vm.qmp_sock},server=on,wait=off" in opts
    tcg_opts = vm.command(vm_config.VMConfig(accel="tcg").resolved(), KernelImage("path", "/v"), "t")[-1]
    assert str(vm.qmp_sock) not in tcg_opts                # a TCG VM is never paused: no command socket
    assert tcg_opts.count("-qmp ") == 1                     # only the watcher's events socket


def test_the_guest_agent_is_told_the_host_cache_and_the_out_of_tree_modules(tmp_path, monkeypatch):
    """The guest does not inherit the host's environment: a WORKBENCH_CACHE set on the host
    (the only directory the guest may write, numba's cache in it) and the directory of
    modules built out of tree for the kernel are on the agent's command line."""
    import shlex

    from workbench.targets.kernel_images import KernelImage
    cache = tmp_path / "a cache"
    monkeypatch.setenv("WORKBENCH_CACHE", str(cache))
    vm = numa_vm.VM("agent-env")
    image = KernelImage("path", "/boot/vmlinuz", module_dir=str(cache / "kernel" / "engine" / "k"))
    cmd = vm.command(vm_config.VMConfig(accel="tcg").resolved(), image, "tok")
    agent = shlex.split(cmd[cmd.index("--exec") + 1])
    assert agent[:2] == ["env", f"WORKBENCH_CACHE={cache}"]
    assert f"--rwdir={cache}" in cmd
    assert agent[agent.index("--module-dir") + 1] == image.module_dir


def test_a_vm_up_with_an_older_build_of_the_kernel_asked_for_is_not_reused(monkeypatch):
    from workbench.targets import kernel_images
    st = {"config": {"kernel": "v3-wip"}, "kernel": {"inputs": "aaaa1111bbbb2222"}}
    monkeypatch.setattr(kernel_images, "resolve", lambda spec: kernel_images.KernelImage(
        "named", "/tree", inputs="cccc3333dddd4444"))
    assert numa_vm.VM._rebuilt(vm_config.VMConfig(kernel="v3-wip"), st) == [
        "an older build of kernel 'v3-wip' (inputs aaaa1111bbbb; the tree is now cccc3333dddd)"]
    # the same build, a VM used without naming its kernel, or a state from before inputs: reused
    monkeypatch.setattr(kernel_images, "resolve", lambda spec: kernel_images.KernelImage(
        "named", "/tree", inputs="aaaa1111bbbb2222"))
    assert numa_vm.VM._rebuilt(vm_config.VMConfig(kernel="v3-wip"), st) == []
    assert numa_vm.VM._rebuilt(vm_config.VMConfig(), st) == []
    assert numa_vm.VM._rebuilt(vm_config.VMConfig(kernel="v3-wip"), {"config": {"kernel": "v3-wip"}}) == []
