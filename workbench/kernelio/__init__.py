"""The kernel-facing library both sides use: a kernel's files read and written through one
layer that can record and replay them (:mod:`.kernelfs`), its log's problem reports
(:mod:`.kernellog`), its blocked tasks (:mod:`.blocked`), folio sizes (:mod:`.thp`), NUMA
nodes (:mod:`.numa`) and the machine it runs on (:mod:`.machine`). The agent reads its
target's kernel with it; the host reads its own (doctor, QEMU's processes) and parses
what an agent or a console sent. It imports nothing of either side."""
