"""A VM left behind by a host process that died: found by the next command, its orphaned
plan cancelled; a VM recorded before the machine rebooted (or whose pid was reused) is
not taken for a live one. No VM is booted here."""

import json
import os
import subprocess
import sys

from workbench.targets import qemu


def test_a_pid_is_alive_only_if_it_is_the_same_process_on_the_same_boot():
    me = os.getpid()
    assert qemu._alive(me) and qemu._alive(me, qemu._boot_id(), qemu._start_time(me))
    assert not qemu._alive(me, "another-boot-id", qemu._start_time(me))       # the machine rebooted since
    assert not qemu._alive(me, qemu._boot_id(), qemu._start_time(me) + 1)      # the pid was reused
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert not qemu._alive(gone.pid) and not qemu._alive(0)


def test_the_next_command_cancels_the_plans_of_host_processes_that_are_gone(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    vm = qemu.VM("rel-orphans")
    for d in ("owners", "requests", "responses"):
        (vm.spool / d).mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owners = {"orphan": {"pid": dead.pid, "boot_id": qemu._boot_id(), "start": None},
              "finished": {"pid": dead.pid, "boot_id": qemu._boot_id(), "start": None},
              "rebooted": {"pid": os.getpid(), "boot_id": "before-the-reboot", "start": None},
              "mine": {"pid": os.getpid(), "boot_id": qemu._boot_id(), "start": qemu._start_time(os.getpid())}}
    for name, o in owners.items():
        (vm.spool / "owners" / f"{name}.json").write_text(json.dumps(o))
    (vm.spool / "responses" / "finished.jsonl").write_text('{"type": "record"}\n{"type": "done"}\n')
    (vm.spool / "responses" / "orphan.jsonl").write_text('{"type": "start"}\n')
    assert vm.cancel_orphans() == ["orphan", "rebooted"]
    cancels = sorted(json.loads(p.read_text())["request"] for p in (vm.spool / "requests").glob("*.json"))
    assert cancels == ["orphan", "rebooted"]
    assert [p.stem for p in (vm.spool / "owners").glob("*.json")] == ["mine"]   # a live host's plan is left alone
