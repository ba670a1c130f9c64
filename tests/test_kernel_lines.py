"""Integration: both kernel lines (kernel/lines). The default line, 7.3, takes its source and
Debian's 7.3 image from trixie-backports (kernel/debian-source.sh, a private apt state in
the cache); the LTS line, 6.12, from the host's own apt sources. ``make kernels`` builds
the default line's vanilla tree (``workbench kernel build --vanilla``), ``make setup``
fetches both lines' stock images (``workbench kernel fetch-stock [--line 6.12]``). The
default line's vanilla tree and the LTS line's stock image each boot in the 2-node VM
and migrate 4K, 64K and 2M folios byte-exact, and every record says which line and which
source it ran on. (The default line's stock image is the stock VM of every other test;
the LTS line's patched tree has its smoke test in test_lts_line.py.)"""

import time

import pytest

from workbench.host.running import runner, store
from workbench.host.running.plan import RunParams

from .conftest import VANILLA_KERNEL, VM_PREFIX, ConsoleWatch, _boot

pytestmark = pytest.mark.vm


#: a kernel, and the line and release its records must name
KERNELS = {VANILLA_KERNEL: "7.3", "stock-6.12": "6.12"}


@pytest.fixture(scope="module", params=list(KERNELS))
def line_vm(request):
    t0 = time.time()
    target = _boot(request.param, f"{VM_PREFIX}-{request.param}")
    print(f"\n[{request.param} boot: {time.time() - t0:.0f} s]")
    yield request.param, target
    target.vm.down()


def test_each_line_s_kernel_migrates_every_folio_size_byte_exact(line_vm, tmp_path):
    kernel, target = line_vm
    line = KERNELS[kernel]
    watch = ConsoleWatch(target)
    facts = target.facts()
    assert facts["interface"] == "none" and facts["offered"] == ["kernel"], facts
    params = RunParams(folio_sizes=[4096, 64 << 10, 2 << 20], total_size=8 << 20, repeats=1)
    run = runner.run(target, params, root=tmp_path, progress=False)
    df = store.load_runs(tmp_path, [run.id])
    assert len(df) == 3 and df["verified"].all() and (df["pages_moved"] == df["pages"]).all()
    # the kernel gave each folio size asked for: the 7.3 line's mTHP works in the guest
    assert sorted(df["folio_size"]) == [4096, 64 << 10, 2 << 20]
    assert (df["folio_match_share"] == 1.0).all(), df[["folio_size", "folio_match_share"]]
    row = df.iloc[0]
    assert row["kernel_line"] == line and row["kernel"] == kernel
    assert row["kernel_release"].startswith(f"{line}.")
    if kernel.startswith("stock"):
        assert row["kernel_source"].startswith(f"Debian image {line}."), row["kernel_source"]
    else:
        assert row["kernel_series"] == "none"
        assert row["kernel_source"].startswith(f"linux-source-{line}.tar.xz {line}."), row["kernel_source"]
    watch.check()
