"""Studies built from many runs: the instruction-time cost of a series and of each of its
patches (:mod:`.cost`, :mod:`.per_patch`, :mod:`.bisect`), the benchmarks
(:mod:`.bench`), dcbm under injected faults and on the test engine's time model
(:mod:`.dma_offload`, :mod:`.engine_model`), two series' dcbm side by side
(:mod:`.side_by_side`) and the kernel's own tests under each migrator
(:mod:`.conformance`)."""
