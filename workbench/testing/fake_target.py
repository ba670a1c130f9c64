"""A registered in-memory target: canned facts and records, for host-side tests.

It also plays the faults of :mod:`workbench.host.running.chaos` as a real target would show
them: a panic or power-off loses the target (``TargetLost``, kind ``vm_died``), a cut
link loses it with kind ``link_lost``, a hang sends nothing but ticks, a WARN comes
back as a record with ``kernel_clean: False``; ``inject("kill_qemu")`` loses the target
at the trial in flight. ``recover()`` brings it back and counts how often it did."""

from __future__ import annotations

import copy
import time

from workbench.catalogue import knobs
from workbench.protocol import TrialSpec
from workbench.targets import register
from workbench.targets.base import Target, TargetLost

FACTS = {
    "hostname": "fake", "kernel_release": "6.12.0-fake", "kernel_config_hash": "abc", "cpu_model": "Fake CPU",
    "cpus": 2, "thp": True, "folio_sizes": [4096, 65536, 2 << 20], "is_root": True,
    "numa": {"nodes": [{"node": 0, "cpus": [0], "mem_total_kb": 1 << 20, "distances": [10, 20]},
                       {"node": 1, "cpus": [1], "mem_total_kb": 1 << 20, "distances": [20, 10]}],
             "memory_nodes": [0, 1]},
    "interface": "none", "brought_by": "upstream", "migrators": ["kernel"], "offered": ["kernel"],
    "active": "kernel", "loadable": [], "knobs": {"threads": None, "channels": None, "batch_size": None},
    "workloads": {name: {"ok": "demotion" not in name, "reason": reason, "brought_by": "fake",
                         "missing": "no lower memory tier: every node with memory is in one tier (tier 4: nodes 0,1)"
                         if "demotion" in name else None}
                  for name, reason in (("move-pages", "syscall"), ("migrate-pages", "syscall"),
                                       ("mbind", "mempolicy_mbind"), ("numa-balancing", "numa_misplaced"),
                                       ("demotion", "demotion"), ("kswapd-demotion", "demotion"),
                                       ("compaction", "compaction"),
                                       ("proactive-compaction", "compaction"))},
    "memory_tiers": {"4": [0, 1]}, "trace_missing": None,
}

PANIC = "guest kernel panic: sysrq triggered crash"
KILLED = "QEMU exited with no panic or power-off on the guest console and no message (killed?)"


def fake_record(spec: TrialSpec, facts: dict | None = None) -> dict:
    reason = ((facts or {}).get("workloads") or {}).get(spec.workload, {}).get("reason")
    gbps = 1.0 + spec.folio_size / (1 << 20) + spec.repeat * 0.1
    return {"trial_key": spec.key(), "repeat": spec.repeat, **knobs.record_columns(spec),
            "folio": {4096: "4K", 65536: "64K"}.get(spec.folio_size, "2M"), "folio_size": spec.folio_size,
            "migrator": spec.migrator, "gbps": gbps, "seconds": spec.total_size / gbps / 1e9, "verified": True,
            "pages_failed": 0, "verify_bad_pages": 0, "folio_match_share": 1.0,
            "kernel_clean": True, "kernel_report": None, "kernel_problems": 0,
            "workload": spec.workload, "reason": reason, "access": spec.access,
            "expect_node": spec.dst if spec.dst is not None else spec.src,
            "pages": spec.total_size // 4096, "pages_moved": spec.total_size // 4096,
            **(fake_monitor(spec) if spec.monitor_ms else {})}


def fake_monitor(spec: TrialSpec) -> dict:
    """A monitor's fields as the agent sends them: five samples, the pages migrating
    between the ``migrate`` and ``migrated`` marks, one CPU busy meanwhile."""
    pages, ms = spec.total_size // 4096, 1_000_000
    rows = [[0, "setup", 0, 0, 5], [10 * ms, "migrate", 0, 1, 5], [20 * ms, "migrate", pages // 2, 2, 9],
            [30 * ms, "migrated", pages, 3, 12], [40 * ms, "end", pages, 3, 12]]
    return {"monitor": {"columns": ["t_ns", "phase", "vmstat_pgmigrate_success", "cpu0_busy_ticks",
                                    "irq_tlb_shootdowns"], "rows": rows},
            "monitor_interval_ms": spec.monitor_ms, "monitor_samples": len(rows), "monitor_cpu_ns": 400_000,
            "monitor_cost_share": 0.01, "monitor_cpu0_busy_share": 1.0, "monitor_irq_tlb_shootdowns": 7,
            "monitor_pgmigrate_peak_per_s": pages / 2 / 0.01}


@register("fake")
class FakeTarget(Target):
    """``fail_after``: answer that many trials, then report an error (a crash mid-run)."""

    #: what a FakeTarget made by the CLI does (tests monkeypatch it)
    default_fail_after = None

    def __init__(self, facts=None, fail_after=None, name: str = ""):
        self._facts_template = copy.deepcopy(facts or FACTS)
        self.fail_after = fail_after if fail_after is not None else self.default_fail_after
        self.seen: list[dict] = []
        self.started: list[str] = []
        self.recoveries: list[str] = []
        self._killed = False
        self.name = name

    @classmethod
    def from_spec(cls, rest, **options):
        """'fake' or 'fake:NAME' (several fake machines in one sweep)."""
        return cls(name=rest, **options)

    @property
    def label(self):
        return f"fake:{self.name}" if self.name else "fake"

    def _trial_hooks(self):
        """For sweep tests in other processes: WORKBENCH_FAKE_TRIAL_DELAY makes each trial
        take that long; WORKBENCH_FAKE_PIDDIR gets, per attempt, the pid of the process
        that started this notebook's papermill (the Dask worker), for a test to kill;
        WORKBENCH_FAKE_RENDEZVOUS names a directory where each machine's first trial says it
        started and then waits (at most 300 s) until another machine's has: machines that
        run in parallel meet there, machines run one after the other never do."""
        import os
        import time
        piddir = os.environ.get("WORKBENCH_FAKE_PIDDIR")
        if piddir and not getattr(self, "_pid_written", False):
            self._pid_written = True
            papermill = int(open(f"/proc/{os.getppid()}/stat").read().split(") ", 1)[1].split()[1])
            n = len([p for p in os.listdir(piddir) if p.startswith(f"{self.name}-")])
            with open(os.path.join(piddir, f"{self.name}-{n}.pid"), "w") as f:
                f.write(str(papermill))
        meet = os.environ.get("WORKBENCH_FAKE_RENDEZVOUS")
        if meet and not getattr(self, "_met", False):
            self._met = True
            open(os.path.join(meet, self.name), "w").close()
            end = time.monotonic() + 300
            while time.monotonic() < end and not [p for p in os.listdir(meet) if p != self.name]:
                time.sleep(0.1)
        delay = float(os.environ.get("WORKBENCH_FAKE_TRIAL_DELAY", "0"))
        if delay:
            time.sleep(delay)

    def run_plan(self, plan):
        if plan["op"] == "probe":
            yield {"type": "facts", "facts": copy.deepcopy(self._facts_template)}
        elif plan["op"] == "blocked":
            yield {"type": "blocked", "tasks": [
                {"pid": 4242, "tid": 4243, "comm": "python", "state": "S",
                 "stack": "[<0>] handle_userfault+0x42f/0x8e0\n[<0>] do_pages_move+0x34e/0x580"}],
                "sysrq_w": ["sysrq: Show Blocked State"]}
        else:
            for i, t in enumerate(plan["trials"]):
                if self.fail_after is not None and i >= self.fail_after:
                    yield {"type": "error", "message": "trial exploded"}
                    yield {"type": "done"}
                    return
                spec = TrialSpec.from_dict(t)
                self.started.append(spec.key())
                yield {"type": "start", "trial_key": spec.key(), "index": i, "pid": 4242, "tid": 4243}
                self._trial_hooks()
                if self._killed:
                    raise TargetLost(f"VM 'fake' died during a plan: {KILLED}", kind="vm_died", cause=KILLED)
                fault = spec.inject_fault
                if fault == "panic":
                    raise TargetLost(f"VM 'fake' died during a plan: {PANIC}", kind="vm_died", cause=PANIC,
                                     detail="Kernel panic - not syncing: sysrq triggered crash")
                if fault == "poweroff":
                    raise TargetLost("VM 'fake' died during a plan: the guest powered off", kind="vm_died",
                                     cause="the guest powered off")
                if fault == "cut_link":
                    raise TargetLost("target fake: the link to it dropped: Connection closed by remote host",
                                     kind="link_lost", cause="Connection closed by remote host")
                if fault in ("hang", "hold"):
                    while True:
                        time.sleep(0.01)
                        yield {"type": "tick"}
                        if self._killed:
                            raise TargetLost(f"VM 'fake' died during a plan: {KILLED}", kind="vm_died",
                                             cause=KILLED)
                self.seen.append(t)
                record = fake_record(spec, self._facts_template)
                if fault == "warn":
                    record.update(kernel_clean=False, kernel_problems=2,
                                  kernel_report="WARNING: CPU: 0 PID: 4242 at mm/migrate.c:1 fake warning")
                yield {"type": "record", "record": record}
        yield {"type": "done"}

    def blocked(self, pids=(), timeout=120.0, tids=()):
        self.asked_blocked = (list(pids), list(tids))
        return super().blocked(pids, timeout, tids)

    def inject(self, fault):
        assert fault == "kill_qemu", fault
        self._killed = True

    def recover(self, why=""):
        self.recoveries.append(why)
        self._killed = False
