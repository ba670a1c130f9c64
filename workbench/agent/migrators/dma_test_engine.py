"""The test-only DMA engine (kernel patch 0011, drivers/dma/test-dma-engine.c; built out of
tree for any other tree by kernel/engine-module.sh): its files and counters, whichever
migration interface the kernel has. It is the same module under our series, under V6 or
under any other series' dcbm, so what it did goes into every record."""

from __future__ import annotations

from ...catalogue.migrators import TEST_DMA_ENGINE, TEST_ENGINE_PARAMS
from ...kernelio.kernelfs import KernelFS, KnobRejected

#: the engine's mode fields (issue 20), which its ``preset`` sets all at once
TEST_ENGINE_MODE_FIELDS = ("order", "callbacks", "on_error", "ring", "bandwidth_mbps", "latency_ns", "job_delay_ns")
#: what the engine did; the engine of series v2 before issue 20 has the first five, the
#: hardware-like engine also the rest (read where present)
TEST_ENGINE_COUNTERS = ("descriptors", "failed", "corrupted", "hung", "interrupts",
                        "aborted", "terminated", "ring_full", "refused", "reordered", "late_ns")


def counters(fs: KernelFS) -> dict[str, int]:
    """{'test_dma_engine.<counter>': value} while the engine is loaded, else {}."""
    if not fs.isdir(TEST_ENGINE_PARAMS):
        return {}
    return {f"{TEST_DMA_ENGINE}.{c}": fs.read_int(f"{TEST_ENGINE_PARAMS}/{c}")
            for c in TEST_ENGINE_COUNTERS if fs.exists(f"{TEST_ENGINE_PARAMS}/{c}")}


def composite_knobs() -> dict[str, tuple[str, ...]]:
    """``preset`` writes every mode field: kept first, so that restoring puts each back."""
    return {f"{TEST_ENGINE_PARAMS}/preset": tuple(f"{TEST_ENGINE_PARAMS}/{f}" for f in TEST_ENGINE_MODE_FIELDS)}



def select_migrator(guard, fs: KernelFS, root: str, migrator: str) -> None:
    """Write ``root/migrator`` through ``guard``, the same file in series v2 and v3. When
    dcbm cannot take its channels the kernel says ENODEV; the error then says in one line
    how many it wanted and what to load."""
    try:
        guard.set(f"{root}/migrator", migrator)
    except KnobRejected as exc:
        if migrator != "dcbm":
            raise
        wanted = fs.read(f"{root}/dcbm/channels").strip()
        raise KnobRejected(f"{exc}: dcbm found no free DMA memcpy channel (it wants {wanted}); load a DMA "
                           f"engine driver first (in a VM: --dma-engine {TEST_DMA_ENGINE}, a test-only engine)") \
            from None


def held_channels(fs: KernelFS, root: str) -> str | None:
    """The DMA channels dcbm holds, by name, from ``root/dcbm/held`` (None without dcbm)."""
    path = f"{root}/dcbm/held"
    return fs.read(path).strip() if fs.exists(path) else None
