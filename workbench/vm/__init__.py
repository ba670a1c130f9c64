"""The workbench's QEMU VMs, as the host sees them.

- :mod:`.process`: what every VM is — a QEMU process started detached, its directory,
  state file and logs (:class:`~.process.QemuProcess`), and whether a recorded process
  is still the one that was started;
- :mod:`.console`: the guest's console and QEMU's own messages, read by offset;
- :mod:`.spool`: the directory the NUMA VM's host and guest agent talk through;
- :mod:`.numa_vm`: the VM with several NUMA nodes that runs the benchmark (virtme-ng,
  the host's files shared, any kernel image), and :mod:`.config`, what it is made of;
- :mod:`.lab_vm` and :mod:`.lab_image`: a Debian box booted from its own disk and
  reached only by SSH, the stand-in for a lab machine;
- what names a death from outside the guest: :mod:`.qemu_watch` (QEMU's parent, keeping
  its QMP events and ending), :mod:`.qmp`, :mod:`.pstore` (the guest's ramoops file) and
  :mod:`.death` (the rules).

Targets (:mod:`workbench.targets`) use these; nothing here knows about trials.
"""
