"""Benchmarks that print ratios, never tests: the host side of ``workbench bench``
(the verification-speed check itself runs on the target: :mod:`workbench.agent.verify_speed`)."""

from __future__ import annotations



def migrator_speedups(target, size: int = 64 << 20, repeats: int = 3, root=None, progress: bool = True,
                      monitor_ms: float | None = None) -> dict:
    """2M folios on the patched kernel, in one boot: mtcopy (1 and 2 threads) against the
    batched kernel copy, for the copy phase (from the kernel's copy_ns counters) and the
    whole call; and the batched kernel copy (batch_kernel_copy=1) against the serial path
    the kernel migrator keeps by default (the code path of a vanilla kernel), goal >= 0.98.
    Every trial is stored as a run."""
    from ..running import runner
    from ..running.plan import RunParams

    configs = {"kernel (batched)": {"migrator": "kernel", "batch_kernel_copy": True},
               "kernel (serial path)": {"migrator": "kernel"},
               "mtcopy 1 thread": {"migrator": "mtcopy", "threads": 1},
               "mtcopy 2 threads": {"migrator": "mtcopy", "threads": 2}}
    frames = {}
    for label, knobs in configs.items():
        params = RunParams(folio_sizes=[2 << 20], total_size=size, repeats=repeats, trace=False,
                           monitor_ms=monitor_ms, **knobs)
        name = f"bench-{label.replace(' ', '-').replace('(', '').replace(')', '')}"
        run = runner.run(target, params, policy=runner.RunPolicy(label=name), root=root, progress=progress)
        frames[label] = run.records()

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
