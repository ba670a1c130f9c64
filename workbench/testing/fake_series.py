"""Our series' (v2) unified interface, ``/sys/kernel/mm/migration``, as a
:class:`~workbench.kernelio.kernelfs.FakeFS` with the value rules of kernel/README.md."""

from workbench.kernelio.kernelfs import FakeFS, bool_rule, int_rule, reset_rule
from workbench.agent.migrators.mm_migration import COUNTERS, REASONS

ROOT = "/sys/kernel/mm/migration"


def unified_tree(with_mtcopy=True) -> FakeFS:
    fs = FakeFS()
    names = "[kernel] mtcopy" if with_mtcopy else "[kernel]"
    fs.add(f"{ROOT}/migrator", names)
    fs.add(f"{ROOT}/batch_size", "512", rule=int_rule(1, 262144))
    fs.add(f"{ROOT}/batch_kernel_copy", "0", rule=bool_rule)
    fs.add(f"{ROOT}/reasons", "[compaction] [syscall] [demotion]")
    for mig in ("kernel", "mtcopy") if with_mtcopy else ("kernel",):
        own = ("cpu_ns",) if mig == "mtcopy" else ()
        for where in ["", *(f"/{r}" for r in REASONS)]:
            for c in COUNTERS + own:
                fs.add(f"{ROOT}/stats/{mig}{where}/{c}", "0", rule=reset_rule)
    if with_mtcopy:
        fs.add(f"{ROOT}/mtcopy/threads", "2", rule=int_rule(1, 2))
        fs.add(f"{ROOT}/mtcopy/spread", "[none] node llc")
    return fs
