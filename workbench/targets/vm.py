"""The QEMU VM target (the embedded default): see :mod:`workbench.vm`."""

from __future__ import annotations

from .qemu import VM, VMConfig
from . import register
from .base import Target


@register("vm")
class VMTarget(Target):
    def __init__(self, config: VMConfig | None = None, auto_up: bool = True, progress=None, **_ignored):
        self.config = config or VMConfig()
        self.vm = VM(self.config.name)
        self.auto_up = auto_up
        self.progress = progress

    @property
    def label(self):
        return f"vm:{self.config.name}"

    def ensure_up(self) -> dict:
        if self.auto_up or not self.vm.running():
            return self.vm.up(self.config, progress=self.progress)
        return self.vm.state()

    def accelerator(self):
        st = self.vm.state()
        return st["accelerator"] if st else self.config.accelerator()

    def run_plan(self, plan):
        self.ensure_up()
        yield from self.vm.run_plan(plan)

    def facts(self):
        facts = super().facts()
        st = self.vm.state() or {}
        # the guest cannot see the host-side image's config; the host knows which one it booted
        facts["kernel_config_hash"] = st.get("kernel_config_hash") or facts.get("kernel_config_hash")
        facts["kernel_image"] = st.get("kernel", {}).get("run_arg")
        facts["vm_config"] = st.get("config")
        return facts

    def describe(self):
        st = self.vm.state() or {}
        return {**super().describe(), "vm": st.get("config"), "kernel_image": st.get("kernel"),
                "boot_seconds": st.get("boot_seconds")}
