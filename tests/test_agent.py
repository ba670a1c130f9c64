"""The agent answers every plan with events and a final "done", even when an op breaks:
in a VM the agent is the guest's only process, and its death powers the VM off."""

import pytest

from workbench.agent.main import execute
from workbench.kernelio.kernelfs import FakeFS


def run(plan):
    events = []
    execute(plan, events.append, fs=FakeFS())
    return events


def test_a_broken_op_is_reported_and_the_agent_lives_on():
    events = run({"op": "stress", "args": {"no_such_argument": 1}})
    assert [e["type"] for e in events] == ["error", "done"]
    assert "stress failed: TypeError" in events[0]["message"] and "no_such_argument" in events[0]["message"]
    assert "Traceback" in events[0]["traceback"]


def test_a_refused_op_is_one_line():
    events = run({"op": "stress", "args": {"seconds": 1}})  # a kernel without our interface
    assert [e["type"] for e in events] == ["error", "done"]
    assert events[0]["message"].startswith("the churn test needs the workbench kernel interface")
    assert "traceback" not in events[0]


def test_unknown_op():
    events = run({"op": "nope"})
    assert events[0]["type"] == "error" and "unknown plan op 'nope'" in events[0]["message"]


def test_each_trial_is_announced_before_it_runs(monkeypatch):
    """The host learns which trial is in flight (for a VM that dies, a trial that hangs)."""
    import os
    from workbench.agent import main
    from workbench.protocol import TrialSpec
    monkeypatch.setattr(main, "run_trial", lambda spec, fs: {"trial_key": spec.key()})
    specs = [TrialSpec(folio_size=4096, total_size=1 << 20, repeat=r).to_dict() for r in range(2)]
    events = run({"op": "trials", "trials": specs, "warmup": False})
    assert [e["type"] for e in events] == ["start", "record", "start", "record", "done"]
    assert events[2]["trial_key"] == "kernel-4K-1M-n0to1-s1-r1" and events[2]["index"] == 1
    assert events[0]["pid"] == os.getpid() and events[0]["tid"]
    cancelled = []
    execute({"op": "trials", "trials": specs, "warmup": False}, cancelled.append, fs=FakeFS(), cancelled=lambda: True)
    assert [e["type"] for e in cancelled] == ["error", "done"] and "cancelled" in cancelled[0]["message"]


def test_an_unknown_injected_fault_is_refused():
    from workbench.protocol import TrialSpec
    spec = TrialSpec(folio_size=4096, total_size=1 << 20, inject_fault="meteor").to_dict()
    events = run({"op": "trials", "trials": [spec], "warmup": False})
    assert events[1]["type"] == "error"
    assert events[1]["message"] == ("injected fault 'meteor' is not known; allowed: panic, poweroff, warn, hang, "
                                    "cut_link, hold")


def test_blocked_lists_stuck_tasks_and_the_asked_ones_with_their_stacks():
    fs = FakeFS({"/proc/sysrq-trigger": "",
                 "/proc/10/task/10/stat": "10 (kworker/0:1) D 2 0 0", "/proc/10/task/10/stack": "[<0>] dcbm_wait",
                 "/proc/20/task/20/stat": "20 (python) S 1 20 20", "/proc/20/task/21/stat": "21 (py thread) S 1 20",
                 "/proc/20/task/21/stack": "[<0>] handle_userfault", "/proc/20/task/20/stack": "[<0>] do_select",
                 "/proc/30/task/30/stat": "30 (sleepy) S 1 30 30", "/proc/self/x": "not a pid"})
    events = []
    execute({"op": "blocked", "pids": [20]}, events.append, fs=fs)
    (answer, done) = events
    assert answer["type"] == "blocked" and done["type"] == "done"
    tasks = {(t["pid"], t["tid"]): t for t in answer["tasks"]}
    assert set(tasks) == {(10, 10), (20, 20), (20, 21)}        # D-state tasks, and every thread of pid 20
    assert tasks[(20, 21)]["comm"] == "py thread" and tasks[(20, 21)]["stack"] == "[<0>] handle_userfault"
    assert fs.read("/proc/sysrq-trigger") == "w"               # the kernel's own report too
    events = []
    execute({"op": "blocked", "pids": [20], "tids": [21]}, events.append, fs=fs)
    assert {(t["pid"], t["tid"]) for t in events[0]["tasks"]} == {(10, 10), (20, 21)}   # just the trial's thread
    from workbench.kernelio.blocked import format_blocked
    text = format_blocked(answer)
    assert "kworker/0:1 pid 10 tid 10 state D:\n  [<0>] dcbm_wait" in text


def test_the_vm_agent_answers_blocked_and_cancel_while_a_plan_runs(tmp_path, monkeypatch):
    """serve(): a plan runs in a worker; a blocked plan is answered meanwhile, a cancel
    stops the plan before its next trial, and a plan that came later waits its turn."""
    import json
    import threading
    import time
    from workbench.agent import main
    from workbench.kernelio import blocked
    from workbench.protocol import TrialSpec

    release = threading.Event()
    ran = []

    def slow_trial(spec, fs):
        ran.append(spec.key())
        release.wait(30)
        return {"trial_key": spec.key()}

    monkeypatch.setattr(main, "run_trial", slow_trial)
    monkeypatch.setattr(main, "_warm_up", lambda: {})
    monkeypatch.setattr(main.probe, "collect", lambda fs: {"fake": True})
    monkeypatch.setattr(blocked, "blocked_tasks", lambda fs, pids, sysrq=True, tids=(): {"tasks": [{"pid": p} for p in pids],
                                                                              "sysrq_w": None})
    monkeypatch.setattr(main, "TRIALS_LOCK", tmp_path / "lock")
    spool = tmp_path / "spool"
    server = threading.Thread(target=main.serve, args=(spool, "tok"), daemon=True)
    server.start()

    def drop(name, plan):
        (spool / "requests").mkdir(parents=True, exist_ok=True)
        tmp = spool / "requests" / f"{name}.tmp"
        tmp.write_text(json.dumps(plan))
        tmp.rename(spool / "requests" / f"{name}.json")

    def events(name, until="done"):
        path = spool / "responses" / f"{name}.jsonl"
        for _ in range(3000):
            if path.exists():
                got = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
                if any(e["type"] == until for e in got):
                    return got
            time.sleep(0.01)
        raise AssertionError(f"no {until} in {name}")

    specs = [TrialSpec(folio_size=4096, total_size=1 << 20, repeat=r).to_dict() for r in range(3)]
    drop("a-trials", {"op": "trials", "trials": specs, "warmup": False})
    assert events("a-trials", until="start")[0]["trial_key"] == "kernel-4K-1M-n0to1-s1-r0"
    drop("b-probe", {"op": "probe"})                         # waits for the plan in flight
    drop("c-blocked", {"op": "blocked", "pids": [7]})        # answered now
    assert events("c-blocked")[0] == {"type": "blocked", "tasks": [{"pid": 7}], "sysrq_w": None}
    assert not (spool / "responses" / "b-probe.jsonl").exists()
    drop("d-cancel", {"op": "cancel", "request": "a-trials"})
    for _ in range(3000):
        if not (spool / "requests" / "d-cancel.json").exists():
            break
        time.sleep(0.01)
    release.set()
    got = events("a-trials")
    assert [e["type"] for e in got] == ["start", "record", "error", "done"] and ran == ["kernel-4K-1M-n0to1-s1-r0"]
    assert events("b-probe")[0] == {"type": "facts", "facts": {"fake": True}}
    drop("zz-shutdown", {"op": "shutdown"})
    server.join(30)
    assert not server.is_alive() and (spool / "stopped").read_text() == "tok"


def test_an_idle_vm_agent_looks_at_its_spool_less_and_less_often(tmp_path, monkeypatch):
    """Every look at the spool costs the host CPU (9p under TCG): idle, the agent backs
    off to one look every IDLE_POLL_MAX seconds, and a plan brings it back to POLL."""
    import json
    from workbench.agent import main

    monkeypatch.setattr(main, "_warm_up", lambda: {})
    monkeypatch.setattr(main.probe, "collect", lambda fs: {})
    spool = tmp_path / "spool"
    sleeps = []

    class Clock:
        now = 1000.0

        def time(self):
            return self.now

        def sleep(self, d):
            sleeps.append(d)
            self.now += d
            req = spool / "requests"
            if len(sleeps) == 80:
                (req / "p.json").write_text(json.dumps({"op": "nope"}))
            if len(sleeps) == 120:
                (req / "zz.json").write_text(json.dumps({"op": "shutdown"}))

    monkeypatch.setattr(main, "time", Clock())
    main.serve(spool, "tok")
    assert sleeps[0] == main.POLL and max(sleeps) == main.IDLE_POLL_MAX
    assert sleeps[:int(main.IDLE_AFTER / main.POLL)] == [main.POLL] * int(main.IDLE_AFTER / main.POLL)
    assert sleeps[79] == main.IDLE_POLL_MAX and sleeps[80] == main.POLL    # a plan came: quick again
    assert sleeps[:80].count(main.IDLE_POLL_MAX) > 20


def test_a_plan_waits_for_another_agents_trials_but_not_for_ever(tmp_path):
    import fcntl
    import os
    import pytest
    from workbench.agent import main
    from workbench.errors import WorkbenchError
    lock = tmp_path / "lock"
    with main._trials_lock(lock):                           # this agent runs trials ...
        fd = os.open(lock, os.O_RDWR)
        with pytest.raises(BlockingIOError):                 # ... and holds the lock meanwhile
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
        with pytest.raises(WorkbenchError, match=rf"another agent \(pid {os.getpid()}\) has been running trials"):
            with main._trials_lock(lock, wait=0):
                pass
    with main._trials_lock(lock, wait=0):                   # released: the next one gets it
        pass


@pytest.mark.parametrize("flags,clocksources,vendor,expect", [
    ("fpu sse2", None, None, "none"),
    ("fpu hypervisor", "tsc kvm-clock", "QEMU", "kvm"),
    ("fpu hypervisor", "hpet acpi_pm", "QEMU", "tcg"),
    ("fpu hypervisor", "tsc hyperv_clocksource_tsc_page", "Microsoft Corporation", "other"),
    ("fpu hypervisor", None, None, "other"),
])
def test_a_machine_says_what_it_runs_on(flags, clocksources, vendor, expect):
    """The probe's virtualization, from inside: a QEMU guest without KVM (the lab VM
    here) is 'tcg', and a target reached as it is takes that as its accelerator."""
    from workbench.kernelio import machine
    from workbench.kernelio.kernelfs import FakeFS
    from workbench.targets.base import Target
    files = {"/proc/cpuinfo": f"processor\t: 0\nflags\t\t: {flags}\n"}
    if clocksources is not None:
        files["/sys/devices/system/clocksource/clocksource0/available_clocksource"] = clocksources + " \n"
    if vendor is not None:
        files["/sys/class/dmi/id/sys_vendor"] = vendor + "\n"
    got = machine.virtualization(FakeFS(files))
    assert got == expect
    t = Target()
    t._facts = {"virtualization": got}
    assert t.accelerator() == {"kvm": "kvm", "tcg": "tcg"}.get(expect, "native")


def test_a_stat_line_is_split_after_the_last_parenthesis():
    """A command name may hold spaces and parentheses: the fields start after the last ')'."""
    from workbench.kernelio import procstat
    comm, fields = procstat.parse("4242 (a) b (c)) S 17 4242 " + " ".join(str(n) for n in range(6, 40)) + "\n")
    assert comm == "a) b (c)" and fields[0] == "S" and fields[1] == "17" and fields[36] == "39"
