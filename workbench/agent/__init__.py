"""The target side: everything that runs where the pages move (this host, a lab box over
SSH, the QEMU guest), started as ``python -m workbench.agent``.

It takes plans and answers events as :mod:`workbench.protocol` defines them, and never
imports the host side (:mod:`workbench.host`, :mod:`workbench.targets`): a test holds
that line. Its modules: :mod:`.main` (the plan loop), :mod:`.trial` (one verified
migration), :mod:`.probe` (what the machine offers), :mod:`.pattern` + :mod:`._jit`
(the numba fill/verify kernels and their numpy twins), :mod:`.syscalls`,
:mod:`.pagemap`, :mod:`.kernelfs` (the one recordable sysfs/procfs layer), :mod:`.thp`,
:mod:`.numa`, :mod:`.vmstat`, :mod:`.migrators` (kernel interfaces), :mod:`.stress`.
"""
