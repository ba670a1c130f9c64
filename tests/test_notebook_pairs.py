"""Every notebook has a py:percent twin (notebooks/jupytext.toml) that says the same, so a
change to a notebook is reviewed as a diff of text; the twin must not fall behind."""

from pathlib import Path

import pytest

from workbench import paths

NOTEBOOKS = paths.REPO / "notebooks"
jupytext = pytest.importorskip("jupytext", reason="jupytext is not installed (pip install -e '.[notebooks]')")


def twin_text(ipynb: Path) -> str:
    """What `jupytext --sync` writes for the notebook, with the pairing configuration."""
    config = jupytext.config.load_jupytext_configuration_file(str(NOTEBOOKS / "jupytext.toml"))
    nb = jupytext.read(ipynb)
    return jupytext.writes(nb, fmt="py:percent", config=config)


@pytest.mark.parametrize("ipynb", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_a_notebooks_text_twin_says_what_it_says(ipynb):
    twin = ipynb.with_suffix(".py")
    assert twin.exists(), f"{twin.name} is missing: run `jupytext --sync notebooks/{ipynb.name}`"
    assert twin.read_text() == twin_text(ipynb), (
        f"notebooks/{twin.name} differs from {ipynb.name}: run `jupytext --sync notebooks/{ipynb.name}` "
        "(the newer of the two wins) and commit both")


def test_every_text_twin_has_its_notebook():
    orphans = [p.name for p in NOTEBOOKS.glob("*.py") if not p.with_suffix(".ipynb").exists()]
    assert orphans == [], f"py:percent files without a notebook: {orphans}"


def test_the_twin_reads_back_as_the_same_cells():
    """Sources, kinds and tags survive the text form (what a reviewer reads is what runs)."""
    import nbformat
    config = jupytext.config.load_jupytext_configuration_file(str(NOTEBOOKS / "jupytext.toml"))
    for ipynb in sorted(NOTEBOOKS.glob("*.ipynb")):
        stored = nbformat.read(str(ipynb), as_version=4)
        back = jupytext.reads(ipynb.with_suffix(".py").read_text(), fmt="py:percent", config=config)
        assert [(c.cell_type, c.source.strip(), c.metadata.get("tags", [])) for c in back.cells] == \
               [(c.cell_type, c.source.strip(), c.metadata.get("tags", [])) for c in stored.cells], ipynb.name
