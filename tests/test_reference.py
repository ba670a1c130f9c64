"""data/reference against the seed's own text: every cell of every RFC V3 table."""

import re
from pathlib import Path

import pandas as pd
import pytest

from workbench import paths
from workbench.host.analysis import reference

SEEDS = paths.REPO.parent / "shared" / "seeds"
FACTS = paths.REPO.parent / "shared" / "reference" / "rfc-series-facts.md"
FOLIOS = ["4K", "16K", "64K", "128K", "256K", "512K", "1M", "2M"]
CELL = re.compile(r"(\d+\.\d+)±(\d+\.\d+)")


def seed_text() -> str:
    files = sorted(SEEDS.glob("*.txt"))
    if not files:
        pytest.skip(f"the seed text is not beside the repository ({SEEDS})")
    return "\n".join(f.read_text() for f in files)


def seed_tables(text):
    """{('kernel', None): [(mean, std) x 8], ('mtcopy', 1): [...], ..., 'count': {...}} from the quoted text."""
    lines = [ln.lstrip("> ").rstrip() for ln in text.splitlines()]
    out, section = {}, None
    counts = {}
    for ln in lines:
        if ln.startswith("Tput(GB/s)|"):
            out[("kernel", None)] = [tuple(map(float, m)) for m in CELL.findall(ln)]
        elif ln.startswith("Thread |"):
            section = "mtcopy"
        elif ln.startswith("Chan Cnt|"):
            section = "dcbm"
        elif ln.startswith("folio_cnt |"):
            section = "count"
        elif section and re.match(r"^\d+\s+\|", ln):
            key = int(ln.split("|")[0])
            cells = [tuple(map(float, m)) for m in CELL.findall(ln)]
            if section == "count":
                counts[key] = cells
            else:
                out[(section, key)] = cells
    out["count"] = counts
    return out


def test_every_cell_of_result_1_matches_the_seed():
    tables = seed_tables(seed_text())
    df = reference.throughput()
    assert len(df) == 8 + 6 * 8 + 6 * 8
    assert set(k for k in tables if k != "count") == {("kernel", None)} | {
        (m, k) for m in ("mtcopy", "dcbm") for k in (1, 2, 4, 8, 12, 16)}
    for (mig, k), cells in ((k, v) for k, v in tables.items() if k != "count"):
        assert len(cells) == 8
        rows = df[df["migrator"] == mig]
        if mig == "mtcopy":
            rows = rows[rows["threads"] == k]
        elif mig == "dcbm":
            rows = rows[rows["channels"] == k]
        got = rows.set_index("folio").loc[FOLIOS, ["gbps_mean", "gbps_std"]]
        assert [tuple(r) for r in got.itertuples(index=False)] == cells, (mig, k)


def test_a_few_cells_by_hand():
    df = reference.throughput()
    cell = lambda **kw: df.loc[(df[list(kw)] == pd.Series(kw)).all(axis=1), ["gbps_mean", "gbps_std"]].iloc[0].tolist()
    assert cell(migrator="kernel", folio="2M") == [10.67, 0.36]
    assert cell(migrator="mtcopy", threads=16, folio="2M") == [35.89, 2.07]
    assert cell(migrator="dcbm", channels=1, folio="4K") == [2.75, 0.19]
    assert cell(migrator="dcbm", channels=12, folio="128K") == [16.00, 4.41]
    assert (df["other_hardware"]).all() and df["hardware"].str.contains("other hardware").all()
    assert set(df.loc[df.migrator == "mtcopy", "workers"]) == {1, 2, 4, 8, 12, 16}


def test_folio_count_table_matches_the_seed():
    counts = seed_tables(seed_text())["count"]
    df = reference.folio_count()
    assert sorted(counts) == [1, 8, 16, 32, 64, 256, 512, 2048, 8192]
    for n, cells in counts.items():
        rows = df[df["folio_count"] == n].set_index("migrator").loc[["kernel", "mtcopy", "dcbm"]]
        assert [tuple(r) for r in rows[["gbps_mean", "gbps_std"]].itertuples(index=False)] == cells
    assert (df["total_bytes"] == df["folio_count"] * (2 << 20)).all()
    assert df.loc[df.migrator == "dcbm", "channels"].eq(1).all()


def test_v5_rows_match_the_facts_file():
    df = reference.v5()
    if FACTS.exists():
        text = FACTS.read_text()
        for folio, m, s in re.findall(r"(\d+[KM]) (\d+\.\d+)±(\d+\.\d+)", text.split("V5 (7.1-rc1) baseline:")[1]):
            row = df[(df.migrator == "kernel") & (df.folio == folio)].iloc[0]
            assert (row.gbps_mean, row.gbps_std) == (float(m), float(s))
    base = df[df.migrator == "kernel"]
    assert list(base.folio) == ["4K", "16K", "64K", "256K", "1M", "2M"]
    assert df[(df.migrator == "dcbm")].gbps_mean.tolist() == [2.16]
    assert (df.kernel_release == "7.1-rc1").all()


def test_copy_share_and_reference_table_layout():
    cs = reference.copy_share().set_index(["folio", "pages"])["copy_share"]
    assert cs[("2M", 512)] == 0.97 and cs[("4K", 512)] == 0.35 and cs[("2M", 1)] == 0.66
    text = reference.series_table(reference.throughput(), title="RFC V3 (other hardware)")
    lines = text.splitlines()
    assert lines[0] == "RFC V3 (other hardware)"
    assert lines[1].split("|")[1].strip() == "4K" and lines[1].split("|")[-2].strip() == "2M"
    kernel = next(ln for ln in lines if ln.startswith("kernel "))
    assert "3.73±0.33" in kernel and "10.67±0.36" in kernel
    assert any(ln.startswith("dcbm 16") and "63.69±5.01" in ln for ln in lines)


def test_readme_names_source_and_hardware():
    text = (paths.REPO / "data" / "reference" / "README.md").read_text()
    for needle in ("RFC V3 cover letter", "2025-09-23", "Zen 3 EPYC", "PTDMA", "6.16", "7.1-rc1",
                   "other hardware"):
        assert needle in text
