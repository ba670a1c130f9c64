"""The kernel names that plans refer to by path, declared once for both sides.

The host writes settings into a plan (``{path: value}``, applied by the agent through its
guard) and asks for the test DMA engine by module name; the agent's migration interfaces
(:mod:`workbench.agent.migrators`) detect and drive the same files from these names.
"""

#: this project's series (kernel/patches, v2 on 6.12): /sys/kernel/mm/migration/
MM_MIGRATION = "/sys/kernel/mm/migration"
#: the series' migrators' directories there (their knobs: kernel/README.md)
MTCOPY = f"{MM_MIGRATION}/mtcopy"
DCBM = f"{MM_MIGRATION}/dcbm"

#: the test-only DMA engine (kernel patch 0011, drivers/dma/test-dma-engine.c; built out
#: of tree for any other tree by kernel/engine-module.sh), a module under any series
TEST_DMA_ENGINE = "test_dma_engine"
TEST_ENGINE_PARAMS = f"/sys/module/{TEST_DMA_ENGINE}/parameters"
