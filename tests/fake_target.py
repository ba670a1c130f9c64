"""A registered in-memory target: canned facts and records, for host-side tests."""

from __future__ import annotations

import copy

from workbench.targets import register
from workbench.targets.base import Target

FACTS = {
    "hostname": "fake", "kernel_release": "6.12.0-fake", "kernel_config_hash": "abc", "cpu_model": "Fake CPU",
    "cpus": 2, "thp": True, "folio_sizes": [4096, 65536, 2 << 20], "is_root": True,
    "numa": {"nodes": [{"node": 0, "cpus": [0], "mem_total_kb": 1 << 20, "distances": [10, 20]},
                       {"node": 1, "cpus": [1], "mem_total_kb": 1 << 20, "distances": [20, 10]}],
             "memory_nodes": [0, 1]},
    "interface": "none", "brought_by": "upstream", "migrators": ["kernel"], "offered": ["kernel"],
    "active": "kernel", "loadable": [], "knobs": {"threads": None, "channels": None, "batch_size": None},
    "workloads": {name: {"ok": name != "demotion", "reason": reason, "brought_by": "fake",
                         "missing": "no lower memory tier: every node with memory is in one tier (tier 4: nodes 0,1)"
                         if name == "demotion" else None}
                  for name, reason in (("move-pages", "syscall"), ("migrate-pages", "syscall"),
                                       ("mbind", "mempolicy_mbind"), ("numa-balancing", "numa_misplaced"),
                                       ("demotion", "demotion"), ("compaction", "compaction"),
                                       ("proactive-compaction", "compaction"))},
    "memory_tiers": {"4": [0, 1]}, "trace_missing": None,
}


@register("fake")
class FakeTarget(Target):
    """``fail_after``: answer that many trials, then report an error (a crash mid-run)."""

    #: what a FakeTarget made by the CLI does (tests monkeypatch it)
    default_fail_after = None

    def __init__(self, facts=None, fail_after=None, name: str = ""):
        self._facts_template = copy.deepcopy(facts or FACTS)
        self.fail_after = fail_after if fail_after is not None else self.default_fail_after
        self.seen: list[dict] = []
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
        that started this notebook's papermill (the Dask worker), for a test to kill."""
        import os
        import time
        piddir = os.environ.get("WORKBENCH_FAKE_PIDDIR")
        if piddir and not getattr(self, "_pid_written", False):
            self._pid_written = True
            papermill = int(open(f"/proc/{os.getppid()}/stat").read().split(") ", 1)[1].split()[1])
            n = len([p for p in os.listdir(piddir) if p.startswith(f"{self.name}-")])
            with open(os.path.join(piddir, f"{self.name}-{n}.pid"), "w") as f:
                f.write(str(papermill))
        delay = float(os.environ.get("WORKBENCH_FAKE_TRIAL_DELAY", "0"))
        if delay:
            time.sleep(delay)

    def run_plan(self, plan):
        if plan["op"] == "probe":
            yield {"type": "facts", "facts": copy.deepcopy(self._facts_template)}
        else:
            for i, t in enumerate(plan["trials"]):
                if self.fail_after is not None and i >= self.fail_after:
                    yield {"type": "error", "message": "trial exploded"}
                    yield {"type": "done"}
                    return
                self._trial_hooks()
                self.seen.append(t)
                from workbench.protocol import TrialSpec
                spec = TrialSpec.from_dict(t)
                gbps = 1.0 + spec.folio_size / (1 << 20) + spec.repeat * 0.1
                yield {"type": "record", "record": {
                    "trial_key": spec.key(), "repeat": spec.repeat, "folio": {4096: "4K", 65536: "64K"}.get(
                        spec.folio_size, "2M"), "folio_size": spec.folio_size, "migrator": spec.migrator,
                    "gbps": gbps, "seconds": spec.total_size / gbps / 1e9, "verified": True, "pages_failed": 0,
                    "verify_bad_pages": 0, "folio_match_share": 1.0, "workload": spec.workload,
                    "reason": (self._facts_template.get("workloads") or {}).get(spec.workload, {}).get("reason"),
                    "access": spec.access,
                    "expect_node": spec.dst if spec.dst is not None else spec.src,
                    "pages": spec.total_size // 4096, "pages_moved": spec.total_size // 4096}}
        yield {"type": "done"}
