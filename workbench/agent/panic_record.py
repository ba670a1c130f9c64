"""Arm what lets the host name a VM's death from outside it, as the VM's agent starts.

* **pvpanic** (PCI 1b36:0011): its driver (``pvpanic-pci``, Linux 5.12 on; built in or a
  module) registers a panic notifier that tells QEMU, which sends ``GUEST_PANICKED``.
* **ramoops** on QEMU's ``ivshmem-plain`` BAR (:data:`workbench.protocol.PSTORE_DEVICE`),
  which the host backs with a file: the kernel's kmsg dumper writes the log's tail there
  when it panics or oopses, and the host reads it once QEMU has exited
  (:mod:`workbench.vm.pstore`). The BAR's address is only known once the guest has
  booted, so ramoops is a module loaded here with it (``mem_address``), not a boot option.

:func:`arm` returns one fact per mechanism: what it armed, or why it could not (no such
device: a QEMU without it; no driver: a kernel built without it). A guest that lacks
both still dies visibly; the host then names its death from QEMU's wait status and the
console.
"""

from __future__ import annotations

from ..errors import WorkbenchError
from ..protocol import PSTORE_DEVICE, PSTORE_RECORD_SIZE
from ..kernelio.kernelfs import KernelFS, ModuleError

PVPANIC_DEVICE = ("0x1b36", "0x0011")
PCI = "/sys/bus/pci/devices"


def find_pci(fs: KernelFS, vendor_device: tuple[str, str]) -> str | None:
    """The sysfs directory of the first PCI device with this vendor and device id."""
    for dev in sorted(fs.listdir(PCI)) if fs.isdir(PCI) else ():
        d = f"{PCI}/{dev}"
        try:
            if (fs.read(f"{d}/vendor").strip(), fs.read(f"{d}/device").strip()) == vendor_device:
                return d
        except (OSError, WorkbenchError):
            continue
    return None


def _load(fs: KernelFS, module: str, params: tuple[str, ...] = ()) -> str | None:
    """Load ``module``; None, or why it could not be loaded."""
    try:
        fs.load_module(module, params)
        return None
    except ModuleError as exc:
        return str(exc)


def arm_pvpanic(fs: KernelFS) -> str:
    dev = find_pci(fs, PVPANIC_DEVICE)
    if dev is None:
        return "off: no pvpanic-pci device"
    if not fs.exists(f"{dev}/driver"):
        why = _load(fs, "pvpanic-pci")
        if why or not fs.exists(f"{dev}/driver"):
            return f"off: the kernel has no pvpanic-pci driver ({why or 'loaded, but not bound'})"
    return "on"


def arm_ramoops(fs: KernelFS) -> str:
    dev = find_pci(fs, PSTORE_DEVICE)
    if dev is None:
        return "off: no ivshmem device for the record"
    if fs.exists("/sys/module/ramoops"):
        return "off: ramoops is already in use"
    try:
        start, end = (int(x, 16) for x in fs.read(f"{dev}/resource").splitlines()[2].split()[:2])
    except (OSError, WorkbenchError, IndexError, ValueError) as exc:
        return f"off: cannot read the ivshmem BAR of {dev} ({exc})"
    size = end - start + 1
    why = _load(fs, "ramoops", (f"mem_address={start:#x}", f"mem_size={size:#x}",
                                f"record_size={PSTORE_RECORD_SIZE:#x}", "console_size=0", "ftrace_size=0",
                                "pmsg_size=0", "ecc=0"))
    if why:
        return f"off: {why}"
    return f"on: ramoops, {size >> 10} KiB at {start:#x}"


def arm(fs: KernelFS) -> dict:
    """Arm both; the facts that say what was armed."""
    return {"pvpanic": arm_pvpanic(fs), "pstore": arm_ramoops(fs)}
