"""One trial: the frame every workload (:mod:`workbench.agent.workloads`) runs in.

This runs on the target (inside the agent). For each repeat:

1. the workload says whether this kernel can run it (one line saying what is missing);
2. enable only the requested folio size (every THP knob restored afterwards);
3. select the migrator and its knobs, and any ``--set`` sysfs settings, through the guard;
4. the workload maps memory, fills it with the (seed, page) pattern, makes the kernel
   migrate it — the default, ``move-pages``, times one ``move_pages()`` call, one address
   per folio, prepared beforehand — with checked readers or writers (``--access``)
   running meanwhile, and records the /proc/vmstat deltas, the interface's counters and
   the trace events of the migration;
5. every page's node against where it must be, every byte verified (numba) with the
   first bad page and offset located;
6. every knob, cgroup and trace instance put back or removed, whatever happened.

Around all of it the kernel log and taint are watched (:mod:`.kernellog`): a trial
during which the kernel reported an oops, BUG or WARN gets ``kernel_clean: False`` and
the report's first lines. ``TrialSpec.inject_fault`` makes a fault happen on purpose
(:mod:`.fault_hooks`: a panic, a power-off, a WARN, a hung migration, a cut SSH link).
"""

from __future__ import annotations

from ..catalogue import knobs
from ..protocol import TrialSpec
from ..units import format_size
from . import migrators
from ..kernelio import thp
from .monitor import Monitor
from ..kernelio.kernellog import TrialLog
from ..kernelio.kernelfs import KernelFS, KnobGuard


def run_trial(spec: TrialSpec, fs: KernelFS) -> dict:
    """Run one repeat and return its record (a flat dict of plain values)."""
    from . import workloads
    from .workloads.base import Trial
    workload = workloads.get(spec.workload)
    record: dict = {"trial_key": spec.key(), "repeat": spec.repeat, **knobs.record_columns(spec),
                    "trial_seed": spec.trial_seed, "folio_size": spec.folio_size,
                    "folio": format_size(spec.folio_size), "workload": workload.name, "reason": workload.reason,
                    "kernel_reason": workload.kernel_reason}
    log = TrialLog(fs)
    workload.check_target(spec, fs)
    guard = KnobGuard(fs)
    monitor = None
    try:
        thp.enable_only(fs, guard, spec.folio_size)
        control = migrators.detect(fs)
        if spec.dma_engine:
            control.load(spec.dma_engine, what="DMA engine module")
        control.configure(guard, spec.migrator, **spec.interface_knobs())
        control.apply_settings(guard, spec.settings)
        record["dma_channels_held"] = control.held_channels() if spec.migrator == "dcbm" else None
        monitor = Monitor(fs, spec.monitor_ms).start() if spec.monitor_ms else None
        trial = Trial(spec, fs, guard, control, record, workload, monitor)
        workload.run(trial)
        trial.finish()
    finally:
        if monitor is not None:
            record.update(monitor.stop())
        problems = guard.restore()
        if problems:
            record["restore_problems"] = "; ".join(problems)
    record.update(log.verdict())
    return record

