"""The side-by-side table of two series' dcbm (workbench.host.studies.side_by_side, notebook 07)."""

import pandas as pd

from workbench.host.studies import side_by_side

E = side_by_side.ENGINE_PREFIX


def rec(series, preset, folio_size, ok=True, migrated=None, **kw):
    pages = 1024
    r = {"kernel_series": series, "migrator": "dcbm", "channels": 1, "folio": f"{folio_size >> 10}K",
         "folio_size": folio_size, "pages": pages, "verified": ok, "verify_bad_pages": 0 if ok else 16,
         "settings": f"{E}preset={preset}", "accelerator": "tcg", "seconds": 0.5,
         "mig_dcbm_folios_migrated": pages * 4096 // folio_size if migrated is None else migrated}
    r.update(kw)
    return r


def test_one_row_per_series_mode_folio_and_channels():
    df = pd.DataFrame([
        rec("v6", "dsa", 65536), rec("v6", "dsa", 65536, ok=False),
        rec("workbench", "dsa", 65536, migrated=2, mig_dcbm_timeouts=2, copy_share=0.99),
        rec("workbench", "dsa", 65536, migrated=2, mig_dcbm_timeouts=2, copy_share=0.97),
        rec("v6", "ptdma", 4096, migrated=0), {"kernel_series": "v6", "migrator": "kernel"},
    ])
    t = side_by_side.table(df)
    assert list(t["engine"]) == ["dsa", "dsa", "ptdma"] and list(t["kernel_series"]) == ["v6", "workbench", "v6"]
    v6, ours, pt = (t.iloc[i] for i in range(3))
    assert (v6["trials"], v6["verified"], v6["corrupted"], v6["dma_share"]) == (2, 1, 1, 1.0)
    assert pd.isna(v6["timeouts"]) and pd.isna(v6["F"]), "V6 has neither counter"
    assert ours["dma_share"] == 2 / 64 and ours["timeouts"] == 2 and abs(ours["F"] - 0.98) < 1e-9
    assert pt["dma_share"] == 0 and pt["functional"]


def test_the_engine_mode_is_the_preset_else_the_engine_settings():
    assert side_by_side.engine_mode(f"{E}preset=ptdma /sys/kernel/mm/x=1") == "ptdma"
    assert side_by_side.engine_mode(f"{E}order=within {E}callbacks=asked") == "order=within callbacks=asked"
    assert side_by_side.engine_mode(None) == "kind"


def test_the_figure_marks_corrupted_bars():
    import matplotlib
    matplotlib.use("Agg")
    t = side_by_side.table(pd.DataFrame([rec("v6", "dsa", 65536, ok=False), rec("workbench", "dsa", 65536)]))
    fig = side_by_side.fig_dma_share(t)
    texts = [x.get_text() for x in fig.axes[0].texts]
    assert texts == ["1/1\ncorrupt"]


def test_dcbm_counts_read_each_series_own_counter_names():
    """Series v3 counts copied/fallbacks, v2 and RFC V6 folios_migrated/folios_failures:
    one frame holding both kinds of record gives each its own."""
    from workbench.host.analysis import dcbm_counts
    df = pd.DataFrame([{"mig_dcbm_copied": 512, "mig_dcbm_fallbacks": 0},                 # v3
                       {"mig_dcbm_folios_migrated": 60, "mig_dcbm_folios_failures": 4},   # RFC V6
                       {"mig_dcbm_folios_migrated": 30, "mig_dcbm_fallbacks": 2,          # v2
                        "mig_dcbm_folios_failures": 2},
                       {"migrator": "kernel"}])                                            # no dcbm at all
    assert dcbm_counts.dma_copied(df).tolist() == [512, 60, 30, 0]
    assert dcbm_counts.cpu_fallbacks(df).tolist() == [0, 4, 2, 0]


def test_the_time_plot_has_a_bar_per_series_and_configuration():
    import matplotlib
    matplotlib.use("Agg")
    t = side_by_side.table(pd.DataFrame([rec("v6", "dsa", 65536, migrated=16), rec("workbench", "dsa", 65536, migrated=16),
                                         rec("v6", "ptdma", 4096, migrated=0)]))
    fig = side_by_side.fig_time(t)
    bars = [p for ax in fig.axes for p in ax.patches]
    assert len(bars) == 3 and all(b.get_height() > 0 for b in bars)
    assert [ax.get_title() for ax in fig.axes] == ["engine: dsa (TCG: functional)", "engine: ptdma (TCG: functional)"]


def test_f_is_copy_time_over_batch_time_or_else_over_the_call():
    """v2 counts batch time (copy_share); v3 counts the copy alone, so F is the copy's share
    of the call; V6 counts neither."""
    t = side_by_side.table(pd.DataFrame([
        rec("workbench", "dsa", 65536, copy_share=0.8),
        rec("v3", "dsa", 65536, seconds=0.004, mig_dcbm_copy_ns=1_000_000),
        rec("v6", "dsa", 65536)]))
    f = dict(zip(t["kernel_series"], t["F"]))
    assert f["workbench"] == 0.8 and abs(f["v3"] - 0.25) < 1e-12 and pd.isna(f["v6"])
