"""A VM's death is named by what QEMU says, not guessed from a console: QEMU's parent
(the watcher) writes down its QMP events and its wait status; the rules turn those, the
console, its serial copy and the ramoops record into one cause and the source that named
it; the agent arms pvpanic and ramoops; every VM carries the devices. No VM is booted
here (the VM chaos sweep and test_vm check the same on a real guest)."""

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import pytest

from workbench.agent import panic_record
from workbench.kernelio.kernelfs import FakeFS
from workbench.protocol import PSTORE_RECORD_SIZE, PSTORE_SIZE
from workbench.vm import death as vm_death, pstore, qemu_watch

#: a stand-in for QEMU: serves the events socket it is given, sends the events in
#: $FAKE_EVENTS, then ends as $FAKE_END says ("exit:N", "kill:SIG", "wait-term": until a
#: SIGTERM, which it answers as QEMU does, with SHUTDOWN host-signal)
FAKE_QEMU = textwrap.dedent("""\
    #!{python}
    import json, os, signal, socket, sys, time
    if "--version" in sys.argv:
        print("QEMU emulator version 0.0 (fake)")
        sys.exit(0)
    path = next(a for a in sys.argv if a.startswith("unix:")).split(",")[0][5:]
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    conn, _ = srv.accept()
    f = conn.makefile("rw")
    f.write(json.dumps({{"QMP": {{"version": {{}}, "capabilities": []}}}}) + "\\n"); f.flush()
    assert json.loads(f.readline())["execute"] == "qmp_capabilities"
    f.write('{{"return": {{}}}}\\n'); f.flush()
    def send(name, data):
        f.write(json.dumps({{"event": name, "data": data, "timestamp": {{"seconds": 1, "microseconds": 0}}}}) + "\\n")
        f.flush()
    for name, data in json.loads(os.environ.get("FAKE_EVENTS", "[]")):
        send(name, data)
    end = os.environ["FAKE_END"]
    if end == "wait-term":
        got = []
        signal.signal(signal.SIGTERM, lambda s, fr: got.append(s))
        open(os.environ["FAKE_READY"], "w").close()
        while not got:
            time.sleep(0.01)
        send("SHUTDOWN", {{"guest": False, "reason": "host-signal"}})
        sys.exit(0)
    time.sleep(0.1)
    kind, arg = end.split(":")
    if kind == "kill":
        os.kill(os.getpid(), getattr(signal, arg))
    sys.exit(int(arg))
""")


def fake_qemu(tmp_path) -> Path:
    exe = tmp_path / "fake-qemu"
    exe.write_text(FAKE_QEMU.format(python=sys.executable))
    exe.chmod(0o755)
    return exe


def watch(tmp_path, end: str, events=(), **popen):
    vm_dir = tmp_path / "vm"
    vm_dir.mkdir(exist_ok=True)
    env = dict(os.environ, FAKE_END=end, FAKE_EVENTS=json.dumps(list(events)), FAKE_READY=str(tmp_path / "ready"))
    cmd = qemu_watch.command(vm_dir, [str(fake_qemu(tmp_path)), *qemu_watch.events_option(vm_dir).split()])
    return vm_dir, subprocess.Popen(cmd, env=env, **popen)


@pytest.mark.parametrize("end, events, code, ending", [
    ("exit:0", [("GUEST_PANICKED", {"action": "run"}), ("SHUTDOWN", {"guest": True, "reason": "guest-reset"})],
     0, {"code": 0}),
    ("exit:1", [], 1, {"code": 1}),
    ("kill:SIGKILL", [("STOP", {})], 128 + 9, {"signal": 9, "signal_name": "SIGKILL"}),
])
def test_the_watcher_writes_down_qemus_events_and_how_it_ended(tmp_path, end, events, code, ending):
    vm_dir, proc = watch(tmp_path, end, events)
    assert proc.wait(timeout=30) == code                    # the launcher sees what it would have seen
    got = qemu_watch.read_events(vm_dir)
    assert [(e["event"], e["data"]) for e in got] == [(n, d) for n, d in events]
    assert all(isinstance(e["host_time"], float) for e in got)
    record = qemu_watch.read_exit(vm_dir)
    assert {k: record[k] for k in ending} == ending and record["events_connected"] is True
    assert ("signal" in record) == ("signal" in ending)


def test_a_signal_that_asks_qemu_to_stop_reaches_it_and_the_watcher_stays_to_write_down_the_end(tmp_path):
    vm_dir, proc = watch(tmp_path, "wait-term")
    deadline = time.time() + 30
    while not (tmp_path / "ready").exists():
        assert time.time() < deadline and proc.poll() is None, "the stand-in QEMU never got ready"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert [e["data"].get("reason") for e in qemu_watch.read_events(vm_dir)] == ["host-signal"]
    assert qemu_watch.read_exit(vm_dir)["code"] == 0


def test_a_call_that_is_not_a_vm_is_qemu_itself(tmp_path):
    vm_dir = tmp_path / "vm"
    shim = qemu_watch.write_shim(vm_dir, str(fake_qemu(tmp_path)))
    out = subprocess.run([str(shim), "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("QEMU emulator version 0.0")
    assert qemu_watch.read_exit(vm_dir) is None and not (vm_dir / qemu_watch.EVENTS).exists()


# -- the rules -----------------------------------------------------------------------
PANIC_CONSOLE = ["[ 80.1] sysrq: Trigger a crash", "[ 80.1] Kernel panic - not syncing: sysrq triggered crash",
                 "[ 80.1] CPU: 1 UID: 0 PID: 312 Comm: python3"]
PANICKED = [{"event": "GUEST_PANICKED", "data": {"action": "run"}},
            {"event": "SHUTDOWN", "data": {"guest": True, "reason": "guest-reset"}}]
RESET = [{"event": "SHUTDOWN", "data": {"guest": True, "reason": "guest-reset"}}]


@pytest.mark.parametrize("events, ending, console, serial, pst, said, cause, named_by, text_from", [
    # pvpanic names a panic; its text from the console, else the serial copy, else pstore
    (PANICKED, {"code": 0}, PANIC_CONSOLE, [], "", [], "guest kernel panic: sysrq triggered crash",
     "pvpanic (QMP GUEST_PANICKED)", "console"),
    (PANICKED, {"code": 0}, ["[ 80.1] sysrq: Trigger a crash"], PANIC_CONSOLE, "", [],
     "guest kernel panic: sysrq triggered crash", "pvpanic (QMP GUEST_PANICKED)", "serial"),
    (PANICKED, {"code": 0}, [], [], "\n".join(PANIC_CONSOLE), [], "guest kernel panic: sysrq triggered crash",
     "pvpanic (QMP GUEST_PANICKED)", "pstore"),
    # the case that failed on a fresh machine: a panic whose text reached no file is still a panic
    (PANICKED, {"code": 0}, [], [], "", [],
     "guest kernel panic (its message is in neither the console nor the pstore record)",
     "pvpanic (QMP GUEST_PANICKED)", None),
    # killed only when QEMU was killed, whatever the console shows
    ([], {"signal": 9, "signal_name": "SIGKILL"}, ["[ 5.0] ok"], [], "", [], "QEMU was killed by SIGKILL",
     "QEMU's exit status", None),
    # a shutdown and its reason
    ([{"event": "SHUTDOWN", "data": {"guest": True, "reason": "guest-shutdown"}}], {"code": 0},
     ["[ 9.0] reboot: Power down"], [], "", [], "the guest powered off", "QMP SHUTDOWN (guest-shutdown)", None),
    ([{"event": "SHUTDOWN", "data": {"guest": False, "reason": "host-signal"}}], {"code": 0}, [], [], "",
     ["qemu-system-x86_64: terminating on signal 15 from pid 77 (kill)"],
     "QEMU stopped on a signal it caught: qemu-system-x86_64: terminating on signal 15 from pid 77 (kill)",
     "QMP SHUTDOWN (host-signal)", None),
    # a kernel without the pvpanic driver: the reset and the console name the panic
    (RESET, {"code": 0}, PANIC_CONSOLE, [], "", [], "guest kernel panic: sysrq triggered crash",
     "QMP SHUTDOWN (guest-reset) and the console", "console"),
    (RESET, {"code": 0}, ["[ 9.0] reboot: Restarting system"], [], "", [],
     "the guest rebooted (QEMU runs with -no-reboot, so it stopped)", "QMP SHUTDOWN (guest-reset)", None),
    # QEMU said nothing over QMP but exited: its status and its last word
    ([], {"code": 1}, [], [], "", ["qemu-system-x86_64: cannot set up guest memory 'pc.ram'"],
     "QEMU exited with status 1: qemu-system-x86_64: cannot set up guest memory 'pc.ram'", "QEMU's exit status",
     None),
    # no record from QEMU at all: the console's guess, and it says it is one
    ([], None, [], [], "", [], "QEMU exited with no panic or power-off on the guest console and no message (killed?)",
     "the console (QEMU's own record is missing)", None),
])
def test_a_death_is_named_by_the_first_rule_that_holds(events, ending, console, serial, pst, said, cause,
                                                       named_by, text_from):
    died = vm_death.explain(events, ending, console, serial=serial, pstore=pst, qemu_said=said)
    assert (died.cause, died.named_by, died.text_from) == (cause, named_by, text_from)
    if text_from:
        assert died.report.startswith("Kernel panic - not syncing: sysrq triggered crash")
    assert died.fields() == {"named_by": named_by, "text_from": text_from, "qemu_exit": ending}


# -- the ramoops record --------------------------------------------------------------
CAP = PSTORE_RECORD_SIZE - 12


def zone(text: bytes, start: int | None = None) -> bytes:
    """A zone as ramoops leaves it; with ``start``, a ring that wrapped (``text`` fills
    it, its first byte at ``start``)."""
    if start is None:
        return struct.pack("<III", pstore.SIG, len(text), len(text)) + text.ljust(CAP, b"\0")
    assert len(text) == CAP
    return struct.pack("<III", pstore.SIG, start, CAP) + text[CAP - start:] + text[:CAP - start]


def test_the_panic_record_is_read_from_the_file_behind_the_guests_ramoops(tmp_path):
    img = tmp_path / "pstore.img"
    pstore.clear(img)
    assert img.stat().st_size == PSTORE_SIZE and pstore.records(img) == [] and pstore.panic_log(img) == ""
    head, tail = b"====1796473867.036000-D\nPanic#1 Part2\n<6>[   78.0] ", b"\n<6>[   79.0] sysrq: Trigger a crash\n"
    filler = b"." * (CAP - len(head) - len(tail))
    newer = b"Panic#1 Part1\n<0>[   80.1] Kernel panic - not syncing: sysrq triggered crash\n"
    squeezed = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    oops = squeezed.compress(b"Oops#1 Part1\n<4>[   70.0] Oops: int3: 0000 [#1]\n") + squeezed.flush()
    blob = (zone(b"====1796473867.036000-D\n" + newer)
            + zone(head + filler + tail, start=40)
            + zone(b"====1796473860.000000-C\n" + oops)
            + b"\xff" * 12 + b"\0" * (PSTORE_RECORD_SIZE - 12))       # a zone nobody wrote
    with open(img, "r+b") as f:
        f.write(blob)
    recs = pstore.records(img)
    assert [(r.reason, r.count, r.part) for r in recs] == [("Oops", 1, 1), ("Panic", 1, 2), ("Panic", 1, 1)]
    assert pstore.panic_log(img) == ("[   70.0] Oops: int3: 0000 [#1]\n"
                                     f"[   78.0] {filler.decode()}\n[   79.0] sysrq: Trigger a crash\n"
                                     "[   80.1] Kernel panic - not syncing: sysrq triggered crash\n")
    pstore.clear(img)
    assert pstore.panic_log(img) == ""                       # the next boot starts empty


# -- the agent arms pvpanic and ramoops ------------------------------------------------
def guest(pvpanic_driver: bool = True, ramoops: bool = True, ivshmem: bool = True) -> FakeFS:
    files = {"/sys/bus/pci/devices/0000:00:03.0/vendor": "0x1b36\n",
             "/sys/bus/pci/devices/0000:00:03.0/device": "0x0011\n",
             "/sys/bus/pci/devices/0000:00:01.0/vendor": "0x8086\n",
             "/sys/bus/pci/devices/0000:00:01.0/device": "0x29c0\n"}
    if ivshmem:
        files.update({"/sys/bus/pci/devices/0000:00:04.0/vendor": "0x1af4\n",
                      "/sys/bus/pci/devices/0000:00:04.0/device": "0x1110\n",
                      "/sys/bus/pci/devices/0000:00:04.0/resource":
                          "0x00000000fea01000 0x00000000fea010ff 0x0000000000040200\n"
                          "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
                          "0x00000000fea00000 0x00000000feafffff 0x000000000014220c\n"})
    fs = FakeFS(files)
    if pvpanic_driver:
        fs.add_module("pvpanic-pci", {"/sys/bus/pci/devices/0000:00:03.0/driver": ""})
    if ramoops:
        fs.add_module("ramoops", {"/sys/module/ramoops/parameters/mem_size": "1048576\n"})
    return fs


def test_the_agent_arms_pvpanic_and_puts_ramoops_on_the_hosts_file():
    fs = guest()
    assert panic_record.arm(fs) == {"pvpanic": "on", "pstore": "on: ramoops, 1024 KiB at 0xfea00000"}
    assert fs.modules["ramoops"]["params"] == ("mem_address=0xfea00000", "mem_size=0x100000",
                                               f"record_size={PSTORE_RECORD_SIZE:#x}", "console_size=0",
                                               "ftrace_size=0", "pmsg_size=0", "ecc=0")
    assert panic_record.arm(fs)["pstore"] == "off: ramoops is already in use"   # never loaded twice


def test_what_cannot_be_armed_says_why():
    facts = panic_record.arm(guest(pvpanic_driver=False, ramoops=False))
    assert facts["pvpanic"].startswith("off: the kernel has no pvpanic-pci driver (cannot load module 'pvpanic-pci'")
    assert facts["pstore"].startswith("off: cannot load module 'ramoops'")
    assert panic_record.arm(guest(ivshmem=False))["pstore"] == "off: no ivshmem device for the record"
    assert panic_record.arm(FakeFS({}))["pvpanic"] == "off: no pvpanic-pci device"


# -- every VM carries the devices ------------------------------------------------------
def test_every_vm_and_the_lab_vm_run_qemu_under_the_watcher_with_pvpanic(tmp_path, monkeypatch):
    from workbench.targets import kernel_images
    from workbench.vm import config as vm_config, lab_image, lab_vm, numa_vm
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))

    vm = numa_vm.VM("naming")
    cmd = vm.command(vm_config.VMConfig(accel="tcg").resolved(), kernel_images.KernelImage("path", "/boot/vmlinuz"),
                     "tok")
    shim = Path(cmd[cmd.index("--qemu") + 1])
    assert shim == vm.dir / qemu_watch.SHIM and "workbench.vm.qemu_watch" in shim.read_text()
    opts = cmd[-1]
    for want in ("-device pvpanic-pci", "-action panic=none", qemu_watch.events_option(vm.dir),
                 f"mem-path={vm.pstore},share=on", "-device ivshmem-plain,memdev=wbpstore"):
        assert want in opts, want
    assert "pstore.compress=none" in cmd
    lab = lab_vm.LabVM("naming")
    image = lab_image.LabImage("key", Path("/img"), Path("/img/disk.qcow2"), Path("/img/id"), "ssh-ed25519 AAAA",
                             "6.12.117+deb12-amd64", {})
    lab_cmd = lab.command(image, 2222, "tcg")
    assert "pvpanic-pci" in lab_cmd and "panic=none" in lab_cmd and "-daemonize" not in lab_cmd
    assert f"unix:{qemu_watch.events_socket(lab.dir)},server=on,wait=off" in lab_cmd
