"""What both sides need to know about the things a trial names, declared once.

The host plans, checks and labels runs from these catalogues; the agent's workload and
migrator classes take their names and properties from them. Nothing here touches a
kernel: what a running kernel offers is the agent's probe, over :mod:`workbench.kernelio`.

- :mod:`.workloads`: every way pages migrate, its reason, whether it needs a destination
  node or a lower memory tier, and the checks of a plan against a target's facts.
- :mod:`.migrators`: the names of the kernel's migration control files and of the test
  DMA engine that the host refers to.
"""
