"""NUMA topology as sysfs shows it (/sys/devices/system/node)."""

from __future__ import annotations

from ..units import parse_cpulist
from .kernelfs import KernelFS

NODE_DIR = "/sys/devices/system/node"


def online_nodes(fs: KernelFS) -> list[int]:
    path = f"{NODE_DIR}/online"
    if not fs.exists(path):
        return [0]
    return parse_cpulist(fs.read(path))


def memory_nodes(fs: KernelFS) -> list[int]:
    """Nodes that have memory (N_MEMORY), which are the ones pages can move to."""
    path = f"{NODE_DIR}/has_memory"
    return parse_cpulist(fs.read(path)) if fs.exists(path) else online_nodes(fs)


def topology(fs: KernelFS) -> dict:
    """{'nodes': [{'node', 'cpus', 'mem_total_kb', 'distances'}], ...}."""
    nodes = []
    for n in online_nodes(fs):
        base = f"{NODE_DIR}/node{n}"
        entry = {"node": n, "cpus": [], "mem_total_kb": None, "distances": []}
        if fs.exists(f"{base}/cpulist"):
            entry["cpus"] = parse_cpulist(fs.read(f"{base}/cpulist"))
        if fs.exists(f"{base}/meminfo"):
            for line in fs.read(f"{base}/meminfo").splitlines():
                if "MemTotal:" in line:
                    entry["mem_total_kb"] = int(line.split()[-2])
        if fs.exists(f"{base}/distance"):
            entry["distances"] = [int(x) for x in fs.read(f"{base}/distance").split()]
        nodes.append(entry)
    return {"nodes": nodes, "memory_nodes": memory_nodes(fs)}


def node_watermarks(fs: KernelFS, node: int) -> dict[str, int]:
    """A node's free pages and its zones' watermarks summed, in pages, from
    /proc/zoneinfo: {'free', 'min', 'low', 'high'}. Below ``low`` an allocation wakes the
    node's kswapd, which reclaims (or demotes) until ``high``; below ``min`` the
    allocating task reclaims itself (direct reclaim)."""
    out = dict.fromkeys(("free", "min", "low", "high"), 0)
    current = None
    for line in fs.read("/proc/zoneinfo").splitlines():
        parts = line.replace(",", " ").split()
        if not parts:
            continue
        if parts[0] == "Node":
            current = int(parts[1])
        elif current == node and parts[:2] == ["pages", "free"]:
            out["free"] += int(parts[2])
        elif current == node and len(parts) == 2 and parts[0] in ("min", "low", "high"):
            out[parts[0]] += int(parts[1])
    return out
