"""The interface every migration-offload control implements."""

from __future__ import annotations

from ...errors import WorkbenchError
from ...protocol import INTERFACE_KNOBS, check_knob_bounds
from ...kernelio.kernelfs import KernelFS, KnobGuard, ModuleError

INTERFACES: list[type["MigrationControl"]] = []


def register(cls):
    INTERFACES.append(cls)
    return cls


class MigrationControl:
    #: short name, shown by doctor and stored in manifests
    name = "?"
    #: which kernel (series version or commit) brought this interface
    brought_by = "?"
    #: migrators that are kernel modules, loaded on demand
    modules: tuple[str, ...] = ()

    def __init__(self, fs: KernelFS):
        self.fs = fs

    @classmethod
    def detect(cls, fs: KernelFS) -> bool:
        raise NotImplementedError

    # what the kernel offers ------------------------------------------------------
    def migrators(self) -> list[str]:
        """Migrators that can be selected now (registered)."""
        raise NotImplementedError

    def active(self) -> str:
        raise NotImplementedError

    def knobs(self) -> dict:
        """{'threads': (lo, hi) | None, 'channels': ..., 'batch_size': ..., 'batch_kernel_copy': ...}
        for the UI and checks."""
        return {k: None for k in INTERFACE_KNOBS}

    def describe(self) -> dict:
        return {"interface": self.name, "brought_by": self.brought_by, "migrators": self.migrators(),
                "active": self.active(), "knobs": self.knobs(), "loadable": list(self.loadable()),
                "lacks": self.lacks()}

    def lacks(self) -> list[str]:
        """What this kernel lacks compared with the workbench's own interface, in plain
        words (one item each); empty for the workbench's own."""
        return []

    def loadable(self) -> list[str]:
        """Migrator modules that are not loaded but could be (``modprobe -n`` says so)."""
        have = set(self.migrators())
        return [mod for mod in self.modules if mod not in have and self.fs.module_loadable(mod)]

    # changing it (every change goes through the guard, which puts it back) ------
    def configure(self, guard: KnobGuard, migrator: str, **knobs) -> None:
        """Select ``migrator`` and set ``knobs`` (:data:`workbench.protocol.INTERFACE_KNOBS`;
        None: leave as it is), each checked against :meth:`knobs` first."""
        unknown = set(knobs) - set(INTERFACE_KNOBS)
        if unknown:
            raise TypeError(f"configure() got unknown knob(s) {', '.join(sorted(unknown))}")
        knobs = {k: (int(knobs[k]) if isinstance(knobs.get(k), bool) else knobs.get(k)) for k in INTERFACE_KNOBS}
        if migrator not in self.migrators() and migrator in self.modules:
            self.load(migrator)
        if migrator not in self.migrators():
            raise WorkbenchError(f"migrator {migrator!r} is not offered by this kernel ({self.name}); "
                                 f"it offers: {', '.join(self.migrators())}")
        check_knob_bounds(knobs, self.knobs(), self.name)
        self._configure(guard, migrator, knobs)

    def _configure(self, guard, migrator: str, knobs: dict):
        """Make the change through ``guard``; ``knobs`` has every INTERFACE_KNOBS key."""
        raise NotImplementedError

    def composite_knobs(self) -> dict[str, tuple[str, ...]]:
        """Knobs whose write changes others: {path: the paths it changes}."""
        return {}

    def apply_settings(self, guard: KnobGuard, settings: dict | None) -> None:
        """Write ``--set`` settings through the guard; the knobs a composite one changes are
        kept first, so restoring puts every one of them back."""
        composites = self.composite_knobs()
        for path, value in (settings or {}).items():
            for member in composites.get(path, ()):
                if self.fs.exists(member):
                    guard.keep(member)
            guard.set(path, str(value))

    def load(self, module: str, what: str = "migrator module") -> None:
        try:
            self.fs.load_module(module)
        except ModuleError as exc:
            raise ModuleError(str(exc).replace("cannot load module", f"cannot load {what}", 1)) from None

    def held_channels(self) -> str | None:
        """The DMA channels the DMA migrator holds, when the interface says."""
        return None

    # counters --------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        """Flat {'<migrator>.<counter>': value}; empty when the kernel has none."""
        return {}

    def offloads(self, migrator: str, knobs: dict) -> bool:
        """Whether this configuration copies through a migrator's batch (which then counts
        its copies), rather than the kernel's own folio-by-folio copy."""
        return migrator != "kernel" or bool(knobs.get("batch_kernel_copy"))

    def offer_everything(self, guard: KnobGuard, migrator: str) -> str | None:
        """Offer ``migrator`` every batch it may take (every reason it accepts, no
        minimum), through the guard; returns what was set, None where the interface has
        no such settings."""
        return None

    def folios_copied(self, delta: dict[str, int], migrator: str) -> int | None:
        """Folios ``migrator`` copied, from a counters() delta; None: the interface does not say."""
        return None

    def copy_share_all(self, delta: dict[str, int], migrator: str) -> float | None:
        """F of all copying (the migrator's and the CPU fallback's), when the interface says."""
        return None

    def copy_share(self, delta: dict[str, int], migrator: str) -> float | None:
        """Amdahl's F from counter deltas, when the interface times the copy."""
        return None


class KernelCopyOnly(MigrationControl):
    """A kernel without any offload interface (every stock kernel): the kernel's own
    folio-by-folio copy is the only migrator."""

    name = "none"
    brought_by = "upstream Linux (no copy offload)"

    @classmethod
    def detect(cls, fs):
        return True

    def migrators(self):
        return ["kernel"]

    def active(self):
        return "kernel"

    def lacks(self):
        return ["no copy-offload interface: only the kernel's own folio-by-folio copy, no knobs, no counters"]

    def _configure(self, guard, migrator, knobs):
        pass
