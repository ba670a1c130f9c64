"""Report tables and plots on a small known set of runs (built with the store, no target)."""

import pytest

from workbench.host.analysis import report
from workbench.host.running import store
from workbench.testing.runs import BATCHED, KNOWN, MANIFEST, SWEEP, make_conformance_run, make_runs


@pytest.fixture
def runs(tmp_path):
    make_runs(tmp_path)
    return tmp_path


def test_text_table_in_the_series_layout(runs):
    df = report.load(root=runs)
    text = report.text_tables(df)
    lines = text.splitlines()
    assert lines[0] == ("move_pages() throughput, GB/s (mean±std), reason syscall — fake, kernel 6.12.117-test, tcg "
                        "[TCG: timings are functional, not performance]")
    assert lines[1].split("|")[0].strip() == "migrator x threads/channels"
    assert [c.strip() for c in lines[1].split("|")[1:3]] == ["4K", "2M"]       # folio sizes across
    assert set(lines[2]) == {"="}
    rows = {ln.split("|")[0].strip(): [c.strip() for c in ln.split("|")[1:3]] for ln in lines[3:6]}
    assert rows == {"kernel -": ["1.10±0.10", "3.20±0.20"],
                    "mtcopy 2": ["1.50±0.00", "6.00±1.00"],
                    "mtcopy 4": ["1.80±0.20", "8.00±0.00"]}
    assert lines[6] == "4 MiB moved per trial; verified: 17/17 trials byte-exact"


def test_one_table_per_setup_and_batch_rows(tmp_path):
    make_runs(tmp_path)
    make_runs(tmp_path, BATCHED, label="dma", manifest={**MANIFEST, "kernel_release": "6.12.117-patched",
                                                         "accelerator": "kvm"})
    text = report.text_tables(report.load(root=tmp_path))
    tables = text.split("\n\n")
    assert len(tables) == 2
    first = next(t for t in tables if "6.12.117-test" in t)
    second = next(t for t in tables if "6.12.117-patched" in t)
    assert "6.12.117-test, tcg [TCG" in first and "6.12.117-patched, kvm" in second and "TCG" not in second
    assert "migrator x threads/channels x batch" in second
    assert any(ln.startswith("dcbm 2 512 ") and "4.10±0.14" in ln for ln in second.splitlines())


def test_speedups_against_the_kernel_baseline(runs):
    sp = report.speedups(report.load(root=runs)).set_index(["migrator", "workers_n", "folio"])
    assert sp.loc[("mtcopy", 2, "2M"), "speedup"] == pytest.approx(6.0 / 3.2)
    assert sp.loc[("mtcopy", 4, "4K"), "speedup"] == pytest.approx(1.8 / 1.1)
    assert sp.loc[("mtcopy", 4, "4K"), "against"] == "kernel"


def test_first_folio_latency_only_with_batch_sizes(tmp_path):
    make_runs(tmp_path)
    df = report.load(root=tmp_path)
    assert report.latency(df) is None and report.fig_latency(df) is None
    make_runs(tmp_path, BATCHED, label="dma")
    lat = report.latency(report.load(root=tmp_path))
    # 2M folios are 512 base pages: a 512-page batch is 1 of the 2 folios, 4096 pages takes both
    row = lat[(lat.batch_size_n == 512)].iloc[0]
    assert row.first_folio_us == pytest.approx(row.seconds / 2 * 1e6)
    row = lat[(lat.batch_size_n == 4096)].iloc[0]
    assert row.first_folio_us == pytest.approx(row.seconds * 1e6)
    assert set(lat.latency_kind) == {"estimated"}
    assert report.fig_latency(report.load(root=tmp_path)) is not None


def test_plots_are_drawn_and_labelled(tmp_path):
    import matplotlib.pyplot as plt
    make_runs(tmp_path, SWEEP)
    df = report.load(root=tmp_path)
    fig = report.fig_throughput(df)
    assert "TCG" in fig.axes[0].get_title() and fig.axes[0].get_xlabel() == "folio size"
    fig = report.fig_speedup(df)
    assert {t.get_text() for t in fig.axes[0].get_legend().get_texts()} >= {"4K", "2M", "mtcopy"}
    fig = report.fig_reference(df)
    assert "OTHER HARDWARE" in fig.axes[1].get_title()
    fig = report.fig_predicted(df)
    assert len(fig.axes) == 2 and "OTHER HARDWARE" in fig.axes[1].get_title()     # ours + the reference
    pred = report.predicted(df)
    assert set(pred["migrator"]) == {"kernel", "mtcopy"} and pred["predicted"].gt(0).all()
    plt.close("all")


def test_kernel_only_runs_have_no_speedup_plot(tmp_path):
    make_runs(tmp_path, KNOWN[:2])
    df = report.load(root=tmp_path)
    assert report.fig_speedup(df) is None and report.predicted(df) is None


def test_no_runs_is_one_clear_error(tmp_path):
    from workbench.errors import WorkbenchError
    with pytest.raises(WorkbenchError, match="no runs to report"):
        report.load(root=tmp_path)


def test_offline_html_has_no_remote_scripts():
    body = ('<html><head><script src="https://cdnjs.cloudflare.com/x/require.min.js"></script></head><body>'
            '<!-- Load mathjax --><script src="https://cdn/mathjax.js"></script><!-- End of mathjax configuration -->'
            '<script type="application/vnd.jupyter.widget-state+json">{}</script>'
            '<script>\n(function() {\n  function addWidgetsRenderer() { var s = "https://cdn/embed-amd.js"; }\n'
            '}());\n</script></body></html>')
    out = report.make_offline(body)
    assert "cdnjs" not in out and "mathjax" not in out and "addWidgetsRenderer" not in out
    assert out.index('<script src="data:text/javascript,">') < out.index("widget-state")
    assert len(out) > 1_000_000 and "</script" not in out[out.rindex("<script>\n") + 9:-len("</script>\n</body></html>")]


def test_report_of_an_unknown_run_names_the_runs_there(tmp_path, capsys):
    from workbench.host.cli import main as cli
    make_runs(tmp_path, KNOWN[:1])
    rc = cli.main(["report", "nosuchrun", "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "no run 'nosuchrun'" in err and "recent runs: " in err and "manifest.json" not in err


def test_report_of_conformance_runs_only_says_where_they_are_shown(tmp_path, capsys):
    from workbench.host.cli import main as cli
    make_conformance_run(tmp_path)
    (run,) = store.list_runs(tmp_path)
    rc = cli.main(["report", run.id, "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and f"{run.id}: conformance runs only; the report shows them beside migration trials" in err


def test_without_the_notebooks_extra_sweep_report_and_panel_say_what_to_install(tmp_path, monkeypatch, capsys):
    import sys
    from workbench.errors import WorkbenchError
    from workbench.host.cli import main as cli
    from workbench.host.running import notebooks
    monkeypatch.setitem(sys.modules, "papermill", None)   # as if it were not installed
    grid = tmp_path / "g.yaml"
    grid.write_text("name: g\n")
    for argv in (["sweep", str(grid)], ["report", "--runs-dir", str(tmp_path)]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("workbench: error: ") and "needs papermill, which is not installed: " \
            'pip install -e ".[notebooks]"' in err[-1], err
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    monkeypatch.delitem(sys.modules, "workbench.host.analysis.panel", raising=False)
    with pytest.raises(WorkbenchError, match=r"the explore panel needs ipywidgets, which is not installed"):
        import workbench.host.analysis.panel
    monkeypatch.delitem(sys.modules, "workbench.host.analysis.panel", raising=False)
    assert notebooks.error_line(ValueError("first\nsecond")) == "first"
