"""The QEMU VM target (the embedded default): the VM itself is :mod:`workbench.vm.numa_vm`."""

from __future__ import annotations

from dataclasses import fields

from ..errors import WorkbenchError
from . import register
from .base import Target
from ..vm.numa_vm import VM
from ..vm.config import TIERED_NODES, VMConfig, parse_distances, parse_nodes


@register("vm")
class VMTarget(Target):
    OPTIONS = ("kernel", "vm_name", "nodes", "distances", "accel", "progress", "notify")

    def __init__(self, config: VMConfig | None = None, auto_up: bool = True, progress=None, notify=None):
        self.config = config or VMConfig()
        self.vm = VM(self.config.name)
        self.auto_up = auto_up
        self.progress = progress
        self.notify = notify

    @classmethod
    def from_spec(cls, rest: str, kernel=None, vm_name=None, nodes=None, distances=None, accel=None,
                  progress=None, notify=None):
        """``vm`` or ``vm:KERNEL``; nodes as '1536M:0,1536M:1' or [[mem, cpus], ...],
        distances as ['0,1=30', ...] or [[0, 1, 30], ...]."""
        if rest and kernel and rest != kernel:
            raise WorkbenchError(f"target vm:{rest} and --kernel {kernel} name two kernels; give one")
        if isinstance(nodes, str):
            nodes = parse_nodes(nodes)
        if distances and all(isinstance(d, str) for d in distances):
            distances = parse_distances(distances)
        config = VMConfig(kernel=rest or kernel, nodes=nodes, distances=distances, accel=accel,
                          name=vm_name or "default")
        config.validate()
        return cls(config, progress=progress, notify=notify)

    @property
    def label(self):
        return f"vm:{self.config.name}"

    def ensure_up(self) -> dict:
        if self.auto_up or not self.vm.running():
            # a VM this target has used comes back as it was (its kernel, nodes, clock),
            # even where this target's own config left them open
            config = self._used if self._used is not None and not self.vm.running() else self.config
            # "using VM X, already up" is said once, not before every plan of a long run
            again = self._used is not None and self.vm.running()
            st = self.vm.up(config, progress=self.progress, notify=None if again else self.notify)
        else:
            st = self.vm.state()
        known = {f.name for f in fields(VMConfig)}
        self._used = VMConfig(**{k: v for k, v in st["config"].items() if k in known})
        return st

    _used: VMConfig | None = None

    def recover(self, why: str = "") -> None:
        """Boot the VM again as it was (a VM that died, or one stuck in a trial: killed
        first). One boot that fails is retried once; a second failure raises."""
        self.vm.down(quiet=True, force=True)
        if self.notify:
            self.notify(f"rebooting VM {self.vm.name!r}" + (f" ({why})" if why else ""))
        try:
            self.ensure_up()
        except WorkbenchError:
            self.vm.down(quiet=True, force=True)
            self.ensure_up()

    def blocked(self, pids=(), timeout: float = 120.0, tids=()) -> dict:
        return self.vm.blocked(pids, timeout=timeout, tids=tids)

    def inject(self, fault: str) -> None:
        if fault != "kill_qemu":
            super().inject(fault)
        self.vm.kill_qemu()

    def prepare(self, params) -> None:
        """A workload that needs a lower memory tier (demotion) gets a VM with one — two
        DRAM nodes and a CPU-less node HMAT ranks slower — when no VM is up and no
        nodes were asked for. A VM that is up stays as it is (the run is refused if it
        lacks what the workload needs, saying what)."""
        from ..catalogue import workloads
        if workloads.get(params.workload).wants_lower_tier and self.config.nodes is None \
                and not self.vm.running():
            self.config.nodes = [list(n) for n in TIERED_NODES]
            if self.notify:
                self.notify(f"workload {params.workload} needs a lower memory tier: booting VM {self.vm.name!r} "
                            f"with nodes {','.join(m + (':' + c if c else '') for m, c in TIERED_NODES)} "
                            "(the CPU-less node is slower memory, through ACPI HMAT)")

    def accelerator(self):
        st = self.vm.state()
        return st["accelerator"] if st else self.config.accelerator()

    def run_plan(self, plan, timeout: float | None = None):
        self.ensure_up()
        yield from self.vm.run_plan(plan, timeout=timeout)

    def facts(self, refresh: bool = False):
        facts = super().facts(refresh)
        st = self.vm.state() or {}
        # the guest cannot see the host-side image's config; the host knows which one it booted
        facts["kernel_config_hash"] = st.get("kernel_config_hash") or facts.get("kernel_config_hash")
        facts["kernel_image"] = st.get("kernel", {}).get("run_arg")
        for key in ("series", "inputs", "line", "source"):        # what kernel/build.sh built it from
            facts[f"kernel_{key}"] = st.get("kernel", {}).get(key)
        facts["vm_config"] = st.get("config")
        # what the agent armed at boot so that a death is named from outside the guest
        facts["panic_record"] = st.get("facts", {}).get("panic_record")
        return facts

    def describe(self):
        st = self.vm.state() or {}
        return {**super().describe(), "vm": st.get("config"), "kernel_image": st.get("kernel"),
                "boot_seconds": st.get("boot_seconds")}
