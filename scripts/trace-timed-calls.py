"""What else runs inside a trial's timed call: the scheduler's, interrupts' and timers'
trace events between the call's mm_migrate_pages_start and mm_migrate_pages.

Under ``--accel icount`` every guest instruction counts in a call's time, so another
task, an interrupt or a softirq inside the call lengthens it. This boots one VM of a
built tree (one vCPU by default: the second node has memory only), enables the events
below in the top-level trace buffer, and runs single-trial runs (4K, 8 MiB, no monitor,
no per-trial trace), reading the buffer after each. For each call it prints its time,
the span between its two migrate events, and the events inside; it writes them as JSON
(and each call's events as text) under --out.

    .venv/bin/python scripts/trace-timed-calls.py patched-bench --calls 30 --out /tmp/tt

Findings it gave on 7.3 (kernel/README.md): the agent's spool poller inside about one
call in ten (fixed: workbench.agent.timed_call), an RCU softirq in every call of series
v3 and in almost none of vanilla's, and calls of v3 0.5-1 ms longer with nothing else
inside them.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
from pathlib import Path

from workbench.host.running import runner
from workbench.host.running.plan import RunParams
from workbench.targets import make_target

TRACEFS = "/sys/kernel/tracing"
EVENTS = ("sched/sched_switch", "sched/sched_wakeup", "workqueue/workqueue_execute_start",
          "irq/irq_handler_entry", "irq/softirq_entry", "irq/softirq_exit", "timer/hrtimer_expire_entry",
          "migrate/mm_migrate_pages_start", "migrate/mm_migrate_pages")
LINE = re.compile(r"^\s*(?P<task>.*?)-(?P<pid>\d+)\s+\[\d+\].*?\s(?P<ts>\d+\.\d+):\s+(?P<ev>\w+):\s*(?P<rest>.*)$")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kernel", help="a built tree's name, e.g. patched-bench or vanilla-bench")
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--nodes", default="1536M:0,1536M:none", help="the VM's nodes (default: one vCPU)")
    p.add_argument("--out", default="trace-timed-calls", help="directory for the results")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    target = make_target("vm", kernel=args.kernel, vm_name=f"trace-{args.kernel}", accel="icount", nodes=args.nodes)
    target.vm.down()                 # a fresh boot

    def sysfs(writes=(), reads=()):
        return target.ask({"op": "sysfs", "writes": [list(w) for w in writes], "reads": list(reads)})["results"]

    params = RunParams(folio_sizes=[4096], total_size=8 << 20, repeats=1, trace=False, monitor_ms=None)
    runs = out / "runs"
    runner.run(target, params, policy=runner.RunPolicy(label="warmup"), root=runs, progress=False)
    failed = [w["path"] for w in sysfs([(f"{TRACEFS}/buffer_size_kb", "16384")] +
                                       [(f"{TRACEFS}/events/{e}/enable", "1") for e in EVENTS])["writes"] if w["error"]]
    if failed:
        raise SystemExit(f"cannot enable {', '.join(failed)}")
    calls = []
    for i in range(args.calls):
        sysfs([(f"{TRACEFS}/trace", "")])                     # empties the buffer
        run = runner.run(target, params, policy=runner.RunPolicy(label=f"call{i}"), root=runs, progress=False)
        seconds = float(run.records().iloc[0]["seconds"])
        text = sysfs(reads=[f"{TRACEFS}/trace"])["reads"][f"{TRACEFS}/trace"]
        evs = [m.groupdict() for m in map(LINE.match, text.splitlines()) if m]
        # the timed call: the last start/end pair that moved every page (the warm-up's come first)
        ends = [k for k, e in enumerate(evs) if e["ev"] == "mm_migrate_pages" and "succeeded=2048" in e["rest"]]
        if not ends:
            print(f"{i:3d}: no end event of the timed call in the buffer")
            continue
        start = max(k for k in range(ends[-1]) if evs[k]["ev"] == "mm_migrate_pages_start")
        inside = evs[start + 1:ends[-1]]
        span = float(evs[ends[-1]]["ts"]) - float(evs[start]["ts"])
        kinds = dict(collections.Counter(e["ev"] for e in inside))
        (out / f"call{i:03d}.txt").write_text("\n".join(f"{e['ts']} {e['task']}-{e['pid']} {e['ev']} {e['rest']}"
                                                       for e in evs[start:ends[-1] + 1]) + "\n")
        calls.append({"call": i, "seconds": seconds, "span_s": span, "events": kinds})
        print(f"{i:3d}: {seconds * 1e3:8.3f} ms, span {span * 1e3:8.3f} ms, inside: {kinds}", flush=True)
    (out / "calls.json").write_text(json.dumps(calls, indent=1))
    target.vm.down()


if __name__ == "__main__":
    main()
