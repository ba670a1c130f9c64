"""Integration: a series that is not ours, built and driven like ours. The series here is
our own (the default line's, v3 on 7.3) without its test DMA engine patch, as a directory
of git format-patch files applied with ``--series`` onto the line's vanilla source (Debian's
7.3): its Kconfig options are found by
reading the patched tree, the test DMA engine is built out of tree for it when the VM
boots, and dcbm gets its channels from that module. Every record names the series and
the hash of the tree's inputs. (Upstream's own postings go the same way by hand: their
trees are not on a machine without network.)"""

import shutil
import time

import pytest

from workbench import paths
from workbench.host.running import runner, store
from workbench.host.running.plan import RunParams
from workbench.catalogue.migrators import DCBM
from workbench.targets import kernel_images, kernel_lines

from .conftest import VM_PREFIX, ConsoleWatch, _boot

pytestmark = pytest.mark.vm
SERIES = "workbench-without-engine"
ENGINE_PATCH = "test-only-memcpy-engine"


@pytest.fixture(scope="module")
def series_tree(tmp_path_factory):
    d = tmp_path_factory.mktemp("series") / SERIES
    d.mkdir()
    for p in sorted((paths.REPO / "kernel" / kernel_lines.default().series).glob("0*.patch")):
        if ENGINE_PATCH not in p.name:
            shutil.copy(p, d / p.name)
    t0 = time.time()
    tree = kernel_images.build(series=str(d))       # base: the default line's Debian source
    print(f"\n[series build: {time.time() - t0:.0f} s]")
    return tree


@pytest.fixture(scope="module")
def series_vm(series_tree):
    target = _boot(SERIES, f"{VM_PREFIX}-series")
    yield target
    target.vm.down()


def test_a_series_on_vanilla_gets_the_options_its_patches_add(series_tree):
    info = kernel_images.tree_info(series_tree)
    ours = sorted((paths.REPO / "kernel" / kernel_lines.default().series).glob("0*.patch"))
    assert (info["name"], info["series"], info["patches"]) == (SERIES, SERIES, str(len(ours) - 1))
    assert len(info["inputs"]) == 16 and info["version"].startswith(kernel_lines.default().name + ".")
    offload = (series_tree / ".workbench-offload.config").read_text()
    config = (series_tree / ".config").read_text().splitlines()
    for line in ("CONFIG_MIGRATION_BATCH_COPY=y", "CONFIG_MIGRATE_MTCOPY=m", "CONFIG_MIGRATE_DCBM=m"):
        assert line in offload and line in config, line
    assert "TEST_DMA_ENGINE" not in offload and "CONFIG_TEST_DMA_ENGINE=m" not in config
    assert not kernel_images.builds_engine(series_tree)
    patched = kernel_images.resolve("patched")
    assert kernel_images.builds_engine(patched.run_arg), "our own tree builds the engine in tree"
    assert kernel_images.with_engine(patched).module_dir is None, "so no out-of-tree one is built for it"
    assert kernel_images.resolve(SERIES).run_arg == str(series_tree)


@pytest.mark.parametrize("folio", [4096, 64 << 10, 2 << 20], ids=["4K", "64K", "2M"])
def test_its_dcbm_copies_with_the_out_of_tree_engine(series_vm, tmp_path, folio):
    watch = ConsoleWatch(series_vm)
    image = series_vm.vm.state()["kernel"]
    assert image.get("module_dir"), f"no out-of-tree engine was given to the VM: {image}"
    # series v3's dcbm (0008): its wait bound set to 1 s, as test_kernel_v3_dcbm's TCG_BOUND
    # (the default is for hardware; a TCG guest's engine thread can be slower)
    params = RunParams(folio_sizes=[folio], total_size=4 << 20, repeats=1, migrator="dcbm", channels=2,
                       dma_engine="test_dma_engine", settings={f"{DCBM}/wait_us": "1000000"})
    run = runner.run(series_vm, params, policy=runner.RunPolicy(label="series-dcbm"), root=tmp_path, progress=False)
    df = store.load_runs(tmp_path, [run.id])
    (r,) = df.to_dict("records")
    nfolios = (4 << 20) // folio
    assert r["verified"] and r["pages_moved"] == r["pages"], r
    assert r["mig_dcbm_folios"] == r["mig_dcbm_copied"] == nfolios and r["mig_dcbm_fallbacks"] == 0, r
    assert r["mig_test_dma_engine_descriptors"] >= nfolios
    info = kernel_images.tree_info(kernel_images.resolve(SERIES).run_arg)
    assert (r["kernel_series"], r["kernel_inputs"]) == (SERIES, info["inputs"])
    watch.check()
