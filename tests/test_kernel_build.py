"""Building any tree: the offload options read from a tree's Kconfig, and bad input to
``workbench kernel build`` (one line each, judged before anything is compiled). These
use small fake trees, so they run in seconds; building and booting real trees is in
test_any_tree.py."""

import importlib.util
import subprocess
import textwrap
from pathlib import Path

import pytest

from workbench import paths
from workbench.errors import WorkbenchError
from workbench.host.cli import main as cli

KERNEL = paths.REPO / "kernel"


def offload_options():
    spec = importlib.util.spec_from_file_location("offload_options", KERNEL / "offload-options.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


MM_KCONFIG = """\
config MIGRATION
	bool "Page migration"
	help
	  Allows the migration of the physical location of pages.

config BATCH_COPY
	bool "Batch the data copy of page migration"
	depends on MIGRATION
	help
	  Copy a migration batch at once, which can be offloaded.

config DMA_MIGRATOR
	tristate "DMA engine copy for page migration"
	depends on BATCH_COPY

config HIDDEN_HELPER
	def_bool MIGRATION
	help
	  Offloads migration batches (no prompt: nobody can set it).

config TEST_COPY_ENGINE
	tristate "Test-only engine for migration offload"
	help
	  For testing only.

menu "Something else"
config COMPACTION
	bool "Allow for memory compaction"
	help
	  Compaction moves pages; it uses migration.
endmenu
"""


def fake_tree(root: Path, x86: bool = True) -> Path:
    tree = root / "linux"
    (tree / "mm").mkdir(parents=True)
    (tree / "Makefile").write_text("mrproper:\n\t@true\n")
    (tree / "Kconfig").write_text('source "mm/Kconfig"\n')
    (tree / "mm" / "Kconfig").write_text(MM_KCONFIG)
    (tree / "mm" / "migrate.c").write_text("int migrate;\n")
    if x86:
        (tree / "arch" / "x86").mkdir(parents=True)
        (tree / "arch" / "x86" / "Kconfig").write_text("config X86\n\tdef_bool y\n")
        (tree / "arch" / "arm64").mkdir(parents=True)
        (tree / "arch" / "arm64" / "Kconfig").write_text(
            'config ARM_MIGRATION_OFFLOAD\n\tbool "ARM copy offload for migration"\n')
    return tree


def test_the_offload_options_are_read_from_the_tree(tmp_path):
    lines = offload_options().fragment(fake_tree(tmp_path), [])
    on = [ln for ln in lines if ln.startswith("CONFIG_")]
    # prompts that speak of migration and offload/batch/DMA; not the promptless, not
    # COMPACTION (migration without offload), not another architecture's
    assert on == ["CONFIG_BATCH_COPY=y", "CONFIG_DMA_MIGRATOR=m", "CONFIG_TEST_COPY_ENGINE=m"]
    assert all(c.startswith("# mm/Kconfig: ") for c in lines if not c.startswith("CONFIG_"))
    without = offload_options().fragment(fake_tree(tmp_path / "b"), [], test_only=False)
    assert "CONFIG_TEST_COPY_ENGINE=m" not in without and "CONFIG_DMA_MIGRATOR=m" in without


def test_an_option_a_patch_adds_is_turned_on_whatever_its_words(tmp_path):
    tree = fake_tree(tmp_path)
    with open(tree / "mm" / "Kconfig", "a") as f:
        f.write('\nconfig FASTER_MOVES\n\ttristate "Faster moves"\n')
    patch = tmp_path / "0001.patch"
    patch.write_text(textwrap.dedent("""\
        --- a/mm/Kconfig
        +++ b/mm/Kconfig
        @@ -1,1 +1,4 @@
        +config FASTER_MOVES
        +	tristate "Faster moves"
        --- a/mm/migrate.c
        +++ b/mm/migrate.c
        @@ -1 +1,2 @@
        +config NOT_A_KCONFIG
        """))
    mod = offload_options()
    assert mod.added_by([patch]) == {"FASTER_MOVES"}
    lines = mod.fragment(tree, [patch])
    assert "CONFIG_FASTER_MOVES=m" in lines
    assert "# mm/Kconfig: Faster moves (added by the series)" in lines


def test_our_own_series_adds_exactly_its_options():
    patches = sorted((KERNEL / "patches").glob("0*.patch"))
    assert offload_options().added_by(patches) == {
        "MIGRATION_COPY_OFFLOAD", "MTCOPY", "DCBM", "FAIL_MIGRATE_COPY", "TEST_DMA_ENGINE"}


def test_series_v3_adds_exactly_its_options():
    patches = sorted((KERNEL / "v3").glob("0*.patch"))
    assert offload_options().added_by(patches) == {
        "MIGRATION_BATCH_COPY", "MIGRATE_MTCOPY", "MIGRATE_DCBM", "TEST_DMA_ENGINE"}


def added_file(patch: Path, path: str) -> str:
    """The content a patch gives a file it creates."""
    text = patch.read_text()
    start = text.index(f"+++ b/{path}\n")
    body = text[text.index("\n@@", start) + 1:]
    body = body.split("\ndiff --git ", 1)[0].split("\n-- \n", 1)[0]
    return "\n".join(ln[1:] for ln in body.splitlines()[1:] if ln.startswith("+"))


def test_the_test_dma_engine_is_one_source_on_both_lines():
    """The engine is in v2's series (6.12) and v3's (7.3) as the same file, so that results
    on both lines are on the same engine and engine-module.sh may take either."""
    (v2,) = (KERNEL / "patches").glob("*test-only-memcpy-engine*.patch")
    (v3,) = (KERNEL / "v3").glob("*test-only-memcpy-engine*.patch")
    source = "drivers/dma/test-dma-engine.c"
    assert len(added_file(v2, source)) > 10000
    assert added_file(v2, source) == added_file(v3, source)


def run_cli(capsys, *argv):
    rc = cli.main(list(argv))
    _, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.startswith("workbench: error: ")]
    assert rc != 0 and len(lines) == 1, err
    return lines[0]


def git_patch(tmp_path: Path, name: str, old: str, new: str) -> Path:
    """A git format-patch file changing mm/migrate.c from ``old`` to ``new``."""
    patch = tmp_path / name
    patch.write_text(textwrap.dedent(f"""\
        From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
        From: A Researcher <a@example.org>
        Date: Sat, 5 Dec 2026 10:00:00 +0000
        Subject: [PATCH] mm: change migrate

        ---
         mm/migrate.c | 2 +-
         1 file changed, 1 insertion(+), 1 deletion(-)

        diff --git a/mm/migrate.c b/mm/migrate.c
        --- a/mm/migrate.c
        +++ b/mm/migrate.c
        @@ -1 +1 @@
        -{old}
        +{new}
        --
        2.39.5
        """))
    return patch


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_bad_trees_and_series_are_one_line_each(tmp_path, capsys, cache):
    good = fake_tree(tmp_path / "good")
    arm = fake_tree(tmp_path / "arm", x86=False)
    series = tmp_path / "series-dir"
    series.mkdir()
    bad = git_patch(series, "0001-mm-change-migrate.patch", "int nothing_like_this;", "int migrate2;")
    empty = tmp_path / "empty-series"
    empty.mkdir()
    notes = tmp_path / "notes.txt"
    notes.write_text("just some notes\n")
    cases = [
        (["--base", "/no/such/tree"], "kernel source '/no/such/tree' does not exist; allowed: a kernel tree or a "
                                      ".tar of one"),
        (["--source", str(tmp_path)], f"base {tmp_path} is not a kernel tree (no Makefile and mm/)"),
        (["--source", str(arm)], f"base {arm} has no arch/x86/Kconfig: the VM boots x86-64 kernels only"),
        (["--base", str(good), "--series", str(tmp_path / "nope")],
         f"series '{tmp_path / 'nope'}' does not exist; allowed: an mbox, a patch"),
        (["--base", str(good), "--series", str(empty)], f"series {empty} has no patches"),
        (["--base", str(good), "--series", str(notes)], f"series {notes} is neither an mbox nor a patch"),
        (["--base", str(good), "--series", str(series)], f"patch {bad.name} does not apply"),
        (["--base", str(good), "--series", str(series), "--vanilla"], "a series and --vanilla exclude each other"),
        (["--source", str(good), "--series", str(series)], "--source builds a tree as it is; --line, --base and"),
        (["--source", str(good), "--line", "7.3"], "--source builds a tree as it is; --line, --base and"),
        (["--line", "9.9"], "kernel line '9.9' is not one of 7.3, 6.12"),
        (["--line", "7.3", "--base", str(good)], "--line and --base both name the base: give one"),
        (["--base", str(good), "--name", "../up"], "kernel name '../up' is not allowed"),
    ]
    for argv, expect in cases:
        line = run_cli(capsys, "kernel", "build", *argv)
        assert expect in line, (argv, line)
    assert not (cache / "kernel" / "names").exists(), "nothing was named: nothing was built"
    assert (good / "mm" / "migrate.c").read_text() == "int migrate;\n", "the given tree is never touched"


def test_a_series_that_applies_gets_as_far_as_configuring(tmp_path, capsys, cache):
    """The patch is applied with git am in the cache's copy (the given tree is never
    touched); the fake tree then fails at configuration, which is the first step that
    needs a real kernel."""
    good = fake_tree(tmp_path / "good")
    series = tmp_path / "my-series"
    series.mkdir()
    git_patch(series, "0001-mm-change-migrate.patch", "int migrate;", "int migrate2;")
    line = run_cli(capsys, "kernel", "build", "--base", str(good), "--series", str(series))
    assert "make allnoconfig failed" in line, line
    (tree,) = (cache / "kernel" / "trees").glob("*-my-series")
    assert (tree / "mm" / "migrate.c").read_text() == "int migrate2;\n"
    assert (good / "mm" / "migrate.c").read_text() == "int migrate;\n"
    log = subprocess.run(["git", "-C", str(tree), "log", "--format=%s", "-1"], capture_output=True, text=True)
    assert log.stdout.strip() == "mm: change migrate"


def test_the_engine_needs_a_built_tree(tmp_path):
    res = subprocess.run(["bash", str(KERNEL / "engine-module.sh"), str(fake_tree(tmp_path))],
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert res.stderr.strip().endswith("is not built (no Module.symvers): build it first (kernel/build.sh)")


def test_the_kernel_lines_come_from_one_table():
    from workbench.targets import kernel_lines
    lines = {line.name: line for line in kernel_lines.lines()}
    # the default line first: its kernels are stock, vanilla and patched; the LTS line's carry its name
    assert list(lines) == ["7.3", "6.12"] and kernel_lines.default().name == "7.3"
    assert lines["7.3"].series == "v3" and lines["7.3"].suffix == ""
    assert lines["7.3"].source_package == "linux-source-7.3" and lines["7.3"].suite == "trixie-backports"
    assert lines["6.12"].series == "patches" and lines["6.12"].suffix == "-6.12" and lines["6.12"].suite == "host"
    # the stock image regexes pick the image package and its release out of a suite's names
    assert lines["6.12"].stock_pattern().match("linux-image-6.12.118+deb12-amd64-unsigned").group(1) == \
        "6.12.118+deb12-amd64"
    assert lines["7.3"].stock_pattern().match("linux-image-7.3.4+deb13-amd64").group(1) == "7.3.4+deb13-amd64"
    assert not lines["7.3"].stock_pattern().match("linux-image-7.3.4+deb13-rt-amd64")
    assert kernel_lines.of_stock_name("stock") == lines["7.3"]
    assert kernel_lines.of_stock_name("stock-6.12") == lines["6.12"]
    assert kernel_lines.of_stock_name("patched") is None
    with pytest.raises(WorkbenchError, match="kernel line '8.0' is not one of 7.3, 6.12"):
        kernel_lines.of_stock_name("stock-8.0")


def test_a_line_without_a_series_of_ours_says_so(capsys, cache, monkeypatch):
    """A line with no series of ours yet (``-`` in kernel/lines): building it patched is
    refused before its source is fetched or anything compiled."""
    from workbench.testing.fake_lines import add_line_without_series
    add_line_without_series(monkeypatch)
    line = run_cli(capsys, "kernel", "build", "--line", "8.0")
    assert line == ("workbench: error: kernel line 8.0 has no series of ours yet: build it with --vanilla, "
                    "or give --series"), line
    assert not (cache / "debian").exists(), "nothing was fetched"


def test_a_tree_is_seeded_from_the_tree_it_is_told(tmp_path, capsys, cache):
    """--seed-from: a tree not built yet starts as a copy of the given built tree of the same
    source (the cumulative trees of `bench cost --per-patch`, each from the previous one),
    not the one build.sh would pick; a seed that is not built or of another source is one
    line. The fake trees stop at configuration, after the seeding."""
    from workbench.targets import kernel_images
    good = fake_tree(tmp_path / "good")
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    git_patch(one, "0001-mm-change-migrate.patch", "int migrate;", "int migrate2;")
    (two / "0001-mm-change-migrate.patch").write_text((one / "0001-mm-change-migrate.patch").read_text())
    git_patch(two, "0002-mm-change-migrate-again.patch", "int migrate2;", "int migrate3;")
    (two / "series").write_text("0001-mm-change-migrate.patch\n0002-mm-change-migrate-again.patch\n")
    with pytest.raises(WorkbenchError, match="make allnoconfig failed"):
        kernel_images.build(ksrc=str(good), vanilla=True, name="s-p00")
    with pytest.raises(WorkbenchError, match="make allnoconfig failed"):
        kernel_images.build(ksrc=str(good), series=str(one), name="s-p01")
    trees = cache / "kernel" / "trees"
    (p00,) = trees.glob("*-s-p00")
    (p01,) = trees.glob("*-s-p01")
    (p01 / "arch/x86/boot").mkdir(parents=True)
    (p01 / "arch/x86/boot/bzImage").write_text("pretend\n")     # as if built
    (p00 / "arch/x86/boot").mkdir(parents=True)
    (p00 / "arch/x86/boot/bzImage").write_text("pretend\n")
    (p01 / "marker-of-p01").write_text("copied\n")
    with pytest.raises(WorkbenchError, match="make allnoconfig failed"):
        kernel_images.build(ksrc=str(good), series=str(two), name="s-p02", seed_from=p01)
    (p02,) = trees.glob("*-s-p02")
    assert (p02 / ".workbench-seeded-from").read_text().strip() == str(p01), "seeded from p01, not from p00"
    assert (p02 / "marker-of-p01").exists() and (p02 / "mm" / "migrate.c").read_text() == "int migrate3;\n"
    # a seed that is not built, or of another source, is refused before anything is copied
    other = fake_tree(tmp_path / "other")
    (other / "mm" / "extra.c").write_text("int extra;\n")
    with pytest.raises(WorkbenchError, match="make allnoconfig failed"):
        kernel_images.build(ksrc=str(other), vanilla=True, name="o-p00")
    (o00,) = trees.glob("*-o-p00")
    (o00 / "arch/x86/boot").mkdir(parents=True)
    (o00 / "arch/x86/boot/bzImage").write_text("pretend\n")
    for seed, expect in ((tmp_path / "one", f"seed {tmp_path / 'one'} is not a built tree"),
                         (o00, f"seed {o00} is a tree of another source")):
        line = run_cli(capsys, "kernel", "build", "--base", str(good), "--series", str(two), "--name", "s-p03",
                       "--seed-from", str(seed))
        assert expect in line, line
    assert not list(trees.glob("*-s-p03*"))
