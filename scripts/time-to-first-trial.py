#!/usr/bin/env python3
"""How long a researcher waits for a first verified result, and where the time goes.

Stops the default VM (``workbench vm down``), then runs
``workbench run --folio-size 2M --size 8M --repeats 1`` and prints the seconds from the
start of that command to the moment its first verified trial was stored, split into:

  host, until QEMU runs   the CLI's start, vng building the guest's initramfs, QEMU's start
  guest kernel and init   guest boot to the agent's process (udev settling included)
  agent imports           Python and the agent's modules (numpy among them), over 9p
  panic record            pvpanic and ramoops armed
  numba                   numba imported and its cached kernels loaded (the warm-up)
  probe                   the facts the host asks for
  host, ready to trial    the host seeing the VM ready, planning and sending the trial
  trial                   the trial itself, verification included, and its storing

Guest steps come from the agent's ``startup`` facts (the guest's own clock, which under
plain TCG follows the host's); the host's from the VM's state and the stored record.
Under TCG these are functional times: they say where a boot spends its time, not how fast
a kernel migrates pages. ``--repeat N`` measures N times and prints the median too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from workbench import paths  # noqa: E402
from workbench.host.running import store

RUN = ["run", "--folio-size", "2M", "--size", "8M", "--repeats", "1"]


def workbench(*args, **kw):
    return subprocess.run([str(Path(sys.executable).parent / "workbench"), *args], cwd=REPO, **kw)


def measure(label: str) -> dict:
    workbench("vm", "down", capture_output=True)
    runs_before = {r.id for r in store.list_runs()}
    started = time.time()
    out = workbench(*RUN, "--label", label, capture_output=True, text=True)
    wall = time.time() - started
    if out.returncode != 0:
        raise SystemExit(f"workbench run failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    (run_id,) = {r.id for r in store.list_runs()} - runs_before
    first = store.load_runs(None, [run_id]).sort_values("host_finished").iloc[0]
    if not first["verified"]:
        raise SystemExit(f"run {run_id}: the first trial was not verified")
    stored = max(p.stat().st_mtime for p in (paths.runs_dir() / run_id / "records").glob("*.parquet"))
    state = json.loads((paths.cache_dir() / "vm" / "default" / "state.json").read_text())
    boot = state["boot_seconds"]
    s = state["facts"]["startup"]
    ready_at = state["started"] + boot           # host clock: the VM seen ready
    guest_to_ready = s["probe"]                    # guest clock: boot to ready.json
    steps = {
        "host, until QEMU runs": state["started"] - started + (boot - guest_to_ready),
        "guest kernel and init": s["process"],
        "agent imports": s["imports"] - s["process"],
        "panic record": s["panic_record"] - s["imports"],
        "numba": s["numba"] - s["panic_record"],
        "probe": s["probe"] - s["numba"],
        "host, ready to trial": first["host_started"] - ready_at,
        "trial": stored - first["host_started"],
    }
    return {"steps": steps, "to_first_trial": stored - started, "command": wall, "run_id": run_id,
            "numba_cache_hits": state["facts"].get("numba_cache_hits"), "kernel": state["facts"]["kernel_release"],
            "accelerator": state["accelerator"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=1, help="measure this many times (default 1)")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error(f"--repeat {args.repeat}: give 1 or more")
    results = []
    for i in range(args.repeat):
        r = measure(f"first-trial-{i}")
        results.append(r)
        print(f"# {i + 1}/{args.repeat}: {r['to_first_trial']:.1f} s to the first verified trial "
              f"(command {r['command']:.1f} s; {r['kernel']}, {r['accelerator']}, numba cache hits "
              f"{r['numba_cache_hits']}; run {r['run_id']})"
              + ("  [TCG: functional times, host wall clock]" if r["accelerator"] == "tcg" else ""))
        for name, sec in r["steps"].items():
            print(f"  {name:<24} {sec:6.1f} s")
    if args.repeat > 1:
        print(f"median to the first verified trial: {statistics.median(r['to_first_trial'] for r in results):.1f} s "
              f"over {args.repeat}; per step:")
        for name in results[0]["steps"]:
            print(f"  {name:<24} {statistics.median(r['steps'][name] for r in results):6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
