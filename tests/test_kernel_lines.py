"""Integration: the 7.3 line (kernel/lines). Its source and Debian's 7.3 image come from
trixie-backports (kernel/debian-source.sh, a private apt state in the cache); vanilla 7.3
is built with ``workbench kernel build --line 7.3 --vanilla`` (``make kernels`` does it),
the stock image with ``workbench kernel fetch-stock --line 7.3`` (``make setup``). Each
boots in the 2-node VM and migrates 4K, 64K and 2M folios byte-exact, and every record
says which line and which source it ran on. No series of ours is on 7.3 yet (issue 19)."""

import time

import pytest

from workbench.host import runner, store
from workbench.host.plan import RunParams

from .conftest import VM_PREFIX, ConsoleWatch, _boot

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module", params=["stock-7.3", "vanilla-7.3"])
def line_vm(request):
    t0 = time.time()
    target = _boot(request.param, f"{VM_PREFIX}-{request.param}")
    print(f"\n[{request.param} boot: {time.time() - t0:.0f} s]")
    yield request.param, target
    target.vm.down()


def test_a_7_3_kernel_migrates_every_folio_size_byte_exact(line_vm, tmp_path):
    kernel, target = line_vm
    watch = ConsoleWatch(target)
    params = RunParams(folio_sizes=[4096, 64 << 10, 2 << 20], total_size=8 << 20, repeats=1)
    run = runner.run(target, params, root=tmp_path, progress=False)
    df = store.load_runs(tmp_path, [run.id])
    assert len(df) == 3 and df["verified"].all() and (df["pages_moved"] == df["pages"]).all()
    # the kernel gave each folio size asked for: the 7.3 line's mTHP works in the guest
    assert sorted(df["folio_size"]) == [4096, 64 << 10, 2 << 20]
    assert (df["folio_match_share"] == 1.0).all(), df[["folio_size", "folio_match_share"]]
    row = df.iloc[0]
    assert row["kernel_line"] == "7.3" and row["kernel"] == kernel
    assert row["kernel_release"].startswith("7.3.")
    if kernel == "stock-7.3":
        assert row["kernel_source"].startswith("Debian image 7.3.")
    else:
        assert row["kernel_series"] == "none"
        assert row["kernel_source"].startswith("linux-source-7.3.tar.xz 7.3."), row["kernel_source"]
    watch.check()
