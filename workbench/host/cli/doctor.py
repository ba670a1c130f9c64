"""What a target can do: NUMA nodes, THP sizes, accelerator, QEMU and kernels."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from ...targets import kernel_images, make_target
from ...vm import config as vm_config
from ..analysis import clocks
from ...kernelio.thp import describe_sizes


def host_report() -> dict:
    # this host as a target: its agent's probe, in a child process like any local run's
    facts = make_target("local").facts()
    ok, why = vm_config.kvm_usable()
    icount, icount_why = vm_config.icount_supported()
    qemu_bin = shutil.which("qemu-system-x86_64")
    vng = shutil.which("vng", path=f"{Path(sys.executable).parent}:/usr/bin:/usr/local/bin")
    qemu_version = None
    if qemu_bin:
        qemu_version = subprocess.run([qemu_bin, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    return {
        "host": facts,
        "accelerator": {"kvm": ok, "why": why, "vm_default": "kvm" if ok else "tcg",
                        "icount": icount, "icount_why": icount_why},
        "qemu": qemu_version, "qemu_binary": qemu_bin, "tcg_mode": vm_config.TCG_ACCEL, "vng": vng,
        "kernels": {"stock": [k.run_arg for k in kernel_images.installed_stock()],
                    "patched": getattr(kernel_images.built_tree(False), "run_arg", None),
                    "vanilla": getattr(kernel_images.built_tree(True), "run_arg", None),
                    "named": {n: str(t) for n, t in kernel_images.named_trees().items()
                              if n not in kernel_images.BUILT}},
    }


def format_report(report: dict, target_facts: dict | None = None) -> str:
    h = report["host"]
    lines = [
        f"host           {h['hostname']}  kernel {h['kernel_release']}  {h['cpu_model']} ({h['cpus']} cpus)",
        f"NUMA nodes     {len(h['numa']['memory_nodes'])} with memory: {h['numa']['memory_nodes']}"
        + ("   (need 2 for --target local; use --target vm)" if len(h['numa']['memory_nodes']) < 2 else ""),
        f"THP            {'yes' if h['thp'] else 'no'}; folio sizes: {describe_sizes(h['folio_sizes'])}",
        f"migrators      {', '.join(h['offered'])}  (interface: {h['interface']})",
        f"accelerator    VMs use {report['accelerator']['vm_default']} ({report['accelerator']['why']})"
        + ("; TCG single-threaded, one host core per VM (multi-threaded TCG corrupts live kernel "
           "patching)" if report['accelerator']['vm_default'] == "tcg" else ""),
        f"icount clock   " + ("yes: --accel icount (" + report['accelerator']['icount_why'] + "): instruction-time, "
                              "deterministic path cost, not speed" if report['accelerator']['icount']
                              else f"no: {report['accelerator']['icount_why']}"),
        f"qemu           " + (f"{report['qemu']} ({report['qemu_binary']}); TCG mode -accel {report['tcg_mode']}; "
                              "deaths named by pvpanic, QMP events, QEMU's wait status and ramoops"
                              if report['qemu'] else 'not found: apt-get install qemu-system-x86'),
        f"vng            {report['vng'] or 'not found: pip install virtme-ng'}",
        f"kernels        stock: {', '.join(report['kernels']['stock']) or 'not fetched (workbench kernel fetch-stock)'}",
        f"               patched: {report['kernels']['patched'] or 'not built'}; "
        f"vanilla: {report['kernels']['vanilla'] or 'not built'}"
        + "".join(f"; {n}: {t}" for n, t in report["kernels"].get("named", {}).items()),
    ]
    if target_facts:
        t = target_facts
        lines += [
            f"target         {t['target']} ({t['accelerator']}, clock {t.get('clock', 'wall')}"
            + (f"; {clocks.note(t['accelerator'], t.get('clock'))}" if clocks.note(t['accelerator'], t.get('clock'))
               else "") + ")",
            f"  kernel       {t['kernel_release']}",
            f"  NUMA nodes   {t['numa']['memory_nodes']}; distances "
            + "; ".join(f"{n['node']}: {' '.join(map(str, n['distances']))}" for n in t['numa']['nodes']),
            f"  folio sizes  {describe_sizes(t['folio_sizes'])}",
            f"  migrators    {', '.join(t['offered'])} (interface: {t['interface']}, brought by "
            f"{t['brought_by']})",
        ]
        lines += [f"  lacks        {item}" for item in t.get("lacks", [])]
        lines += workload_lines(t)
    return "\n".join(lines)


def workload_lines(t: dict) -> list[str]:
    """Which workloads the target can run, and for each it cannot, what is missing."""
    w = t.get("workloads")
    if w is None:
        return ["  workloads    not reported (an agent from before workloads): move-pages only"]
    ok = [name for name, v in w.items() if v["ok"]]
    lines = [f"  workloads    {', '.join(ok) or 'none'}  (--workload; reasons: "
             + ", ".join(f"{name} {v['reason']}" for name, v in w.items() if v["ok"]) + ")"]
    lines += [f"  cannot run   {name}: {v['missing']}" for name, v in w.items() if not v["ok"]]
    tiers = t.get("memory_tiers") or {}
    if tiers:
        lines.append("  memory tiers " + "; ".join(f"tier {k}: nodes {','.join(map(str, v))}"
                                              for k, v in sorted(tiers.items(), key=lambda kv: int(kv[0]))))
    lines.append("  tracing      " + (f"no: {t['trace_missing']}" if t.get("trace_missing")
                                      else "migrate:mm_migrate_pages(_start) through tracefs, per trial"))
    return lines
