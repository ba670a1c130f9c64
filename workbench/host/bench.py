"""Speed checks that print ratios (benchmarks, never tests)."""

from __future__ import annotations



def _events(target, plan: dict, kind: str) -> dict:
    from ..errors import WorkbenchError
    for event in target.run_plan(plan):
        if event["type"] == "error":
            raise WorkbenchError(event["message"])
        if event["type"] == kind:
            return event
    raise WorkbenchError(f"target {target.label} did not answer {plan['op']}")


def migrators(target, size: int = 64 << 20, repeats: int = 3, root=None, progress: bool = True) -> dict:
    """2M folios on the patched kernel, in one boot: mtcopy (1 and 2 threads) against the
    kernel copy, for the copy phase (from the kernel's copy_ns counters) and the whole
    call; and the batched kernel-copy path against the serial one (``reasons`` = none,
    the code path of a vanilla kernel), goal >= 0.98. Every trial is stored as a run."""
    from . import runner
    from .plan import RunParams

    reasons = "/sys/kernel/mm/migration/reasons"
    configs = {"kernel (batched)": {"migrator": "kernel"},
               "mtcopy 1 thread": {"migrator": "mtcopy", "threads": 1},
               "mtcopy 2 threads": {"migrator": "mtcopy", "threads": 2}}
    frames = {}
    for label, knobs in configs.items():
        run = runner.run(target, RunParams(folio_sizes=[2 << 20], total_size=size, repeats=repeats, **knobs),
                         root=root, label=f"bench-{label.replace(' ', '-')}", progress=progress)
        frames[label] = run.records()
    original = _events(target, {"op": "sysfs", "reads": [reasons]}, "sysfs")["results"]["reads"][reasons]
    enabled = ",".join(w[1:-1] for w in original.split() if w.startswith("[")) or "none"
    _events(target, {"op": "sysfs", "writes": [[reasons, "none"]]}, "sysfs")
    try:
        run = runner.run(target, RunParams(folio_sizes=[2 << 20], total_size=size, repeats=repeats), root=root,
                         label="bench-kernel-serial", progress=progress)
        frames["kernel (serial path)"] = run.records()
    finally:
        _events(target, {"op": "sysfs", "writes": [[reasons, enabled]]}, "sysfs")

    def copy_ns_per_byte(df, mig):
        return (df[f"mig_{mig}_copy_ns"] / df[f"mig_{mig}_bytes"]).mean()

    base = frames["kernel (batched)"]
    out = {"accelerator": target.accelerator(), "size": size, "repeats": repeats, "rows": []}
    for label in ("mtcopy 1 thread", "mtcopy 2 threads"):
        df = frames[label]
        out["rows"].append({"what": f"{label} / kernel copy",
                            "copy_phase": copy_ns_per_byte(base, "kernel") / copy_ns_per_byte(df, "mtcopy"),
                            "whole_call": df["gbps"].mean() / base["gbps"].mean()})
    serial = frames["kernel (serial path)"]
    out["rows"].append({"what": "batched kernel copy / serial path (vanilla code path)", "copy_phase": None,
                        "whole_call": base["gbps"].mean() / serial["gbps"].mean(), "goal": 0.98})
    out["verified"] = all(bool(df["verified"].all()) for df in frames.values())
    return out
