"""The notebooks: stored clean, executed with papermill against the fake target, and the
report's HTML checked in headless Chromium (offline: no console errors, widgets render);
the Chromium tests are marked ``browser``."""

import json
import shutil
import time

import nbformat
import pytest

from workbench import paths
from workbench.host.analysis import clocks, report
from workbench.host.running import notebooks, store
from workbench.testing.runs import BATCHED, KNOWN, MANIFEST, SWEEP, make_conformance_run, make_runs

from .conftest import need

NOTEBOOKS = sorted((paths.REPO / "notebooks").glob("*.ipynb"))
pm = pytest.importorskip("papermill")


def test_the_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01-quickstart.ipynb", "02-explore.ipynb", "03-sweep.ipynb",
                                           "04-report.ipynb", "05-dma-offload.ipynb", "06-cost.ipynb",
                                           "07-our-series-and-upstreams.ipynb", "08-per-patch-cost.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_without_outputs_and_parameterised(path):
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a cell has outputs"
            assert cell.execution_count is None, f"{path.name}: a cell has an execution count"
    assert "widgets" not in nb.metadata, f"{path.name}: stored widget state"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"


def test_sweep_notebook_parameters_name_the_grid():
    nb = nbformat.read(str(paths.REPO / "notebooks" / "03-sweep.ipynb"), as_version=4)
    src = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    for name in ("folio_sizes", "migrators", "threads", "batch_sizes", "repeats", "target", "kernel"):
        assert f"\n{name} = " in "\n" + src


def execute(name, tmp_path, **parameters):
    out = tmp_path / name
    notebooks.execute(paths.REPO / "notebooks" / name, out, parameters)
    return nbformat.read(str(out), as_version=4)


def text_of(nb):
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            parts.append(o.get("text", "") + json.dumps(o.get("data", {})))
    return "\n".join(parts)


def test_cost_notebook_plots_stored_cost_runs(tmp_path):
    """06-cost from stored runs of the cost benchmark (made here against a fake icount
    target): the table, cost against batch size, and Amdahl with the measured F."""
    from workbench.host.studies import cost
    from workbench.testing.fake_icount import IcountFake
    runs = tmp_path / "runs"
    df = cost.measure(folio_sizes=[4096, 2 << 20], size=4 << 20, repeats=2, boots=2, batch_sizes=(16, 512),
                      root=runs, progress=False, target_factory=IcountFake)
    ids = sorted(set(df["run_id"]))
    nb = execute("06-cost.ipynb", tmp_path, run_ids=ids, runs_root=str(runs))
    out = text_of(nb)
    assert "instruction-time (icount): deterministic path cost, not speed" in out
    assert "patched, defaults" in out and "no difference" in out and "F = 0.500" in out
    assert sum(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in nb.cells for o in c.get("outputs", [])) == 2


def test_per_patch_notebook_reads_a_stored_study(tmp_path):
    """08 from a per-patch study stored here (a fake series on a fake icount target:
    patch 2 costs 2%, patch 3 brings the batching knob, whose copy costs 5%): the table,
    the figure and the change each patch brings."""
    from workbench.testing.fake_per_patch import stored_study
    runs = tmp_path / "runs"
    stored_study(tmp_path / "series", runs)
    nb = execute("08-per-patch-cost.ipynb", tmp_path, runs_root=str(runs))
    out = text_of(nb)
    assert "instruction-time (icount): deterministic path cost, not speed" in out
    assert "what each patch of v9 costs: 5 cumulative trees" in out and "+2.00%" in out and "+5.00%*" in out
    assert "mm/migrate: count every batch (costs 2%)" in out
    assert sum(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in nb.cells for o in c.get("outputs", [])) == 1
    assert "+2.00%" in json.dumps(nb.cells[-1]["outputs"]), "the change table's cell"


def test_our_series_and_upstreams_from_the_stored_runs(tmp_path):
    """07 from the runs kept in data/runs: the eight TCG runs (V6, our v2) and the eight
    icount runs (V6, our v3) found, the tables name both series, V6's default-path cost
    against vanilla 7.2.13 summed up; four figures (the TCG shares; the icount shares and
    times; the cost)."""
    nb = execute("07-our-series-and-upstreams.ipynb", tmp_path)
    out = text_of(nb)
    assert out.count("8 runs") == 2 and "no run labelled" not in out
    assert "workbench" in out and "v6" in out and "7.3.4+" in out and "7.2.13+" in out
    assert "instruction-time (icount)" in out and "every trial verified byte-exact: True" in out
    assert "patched, defaults" in out and "mtcopy" not in out
    assert sum(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in nb.cells for o in c.get("outputs", [])) == 4


def test_quickstart_runs_one_verified_migration(tmp_path):
    runs = tmp_path / "runs"
    nb = execute("01-quickstart.ipynb", tmp_path, target="fake", imports=["workbench.testing.fake_target"],
                 runs_root=str(runs), folio_size="2M", total_size="4M")
    (run,) = store.list_runs(runs)
    rec = run.records()
    assert len(rec) == 1 and bool(rec["verified"].iloc[0]) and rec["folio"].iloc[0] == "2M"
    out = text_of(nb)
    assert f"run {run.id}: 2M" in out and "verified=True" in out and "kernel" in out


def test_explore_notebook_builds_the_panel(tmp_path):
    nb = execute("02-explore.ipynb", tmp_path, target="fake", imports=["workbench.testing.fake_target"],
                 runs_root=str(tmp_path / "runs"), connect=True)
    out = text_of(nb)
    assert "application/vnd.jupyter.widget-view+json" in out
    assert "widgets" in nb.metadata and nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]


def test_dma_offload_notebook_on_the_fake_dcbm_target(tmp_path):
    """05-dma-offload without a VM (workbench.testing.fake_dcbm): its channel sweep, each
    injected fault beside dcbm's counters and the verification; section 3 needs a VM and
    says it was skipped. The VM test below runs it on the patched kernel."""
    runs = tmp_path / "runs"
    nb = execute("05-dma-offload.ipynb", tmp_path, target="fake-dcbm", imports=["workbench.testing.fake_dcbm"],
                 kernel="", vm_name="", dma_engine="test_dma_engine", runs_root=str(runs), channels=[1, 2],
                 folio_sizes=["64K", "2M"],
                 total_size="4M", fault_folio="64K", faults={"fail_every": 5, "corrupt_every": 7, "hang_every": 9,
                                                              "reverse": 1})
    df = store.load_runs(runs)
    assert sorted(df["label"].unique()) == ["dcbm-c1", "dcbm-c2", "dcbm-corrupt", "dcbm-fail", "dcbm-hang",
                                            "dcbm-reverse", "kernel"]
    out = text_of(nb)
    assert "fake-dcbm: kernel 6.12.117-fake-dcbm" in out and "DMA engine: test_dma_engine" in out
    assert "section 3 skipped" in out
    # the fault table as the notebook showed it: fallbacks = injected for fail and hang,
    # the corruption found only by the verification, at len/2 + 0x123 of the 64K copy
    table = next(json.loads(json.dumps(o["data"]["text/plain"])) for c in nb.cells for o in c.get("outputs", [])
                 if "text/plain" in o.get("data", {}) and "cpu fallbacks" in "".join(o["data"]["text/plain"]))
    assert "fail_every=5" in table and "page 104 +291 (0x123)" in table   # the 7th folio, 32K + 0x123 in
    fail = df[df["label"] == "dcbm-fail"].iloc[0]
    assert fail["verified"] and fail["mig_dcbm_fallbacks"] == fail["mig_test_dma_engine_failed"] == 12
    bad = df[df["label"] == "dcbm-corrupt"].iloc[0]
    assert not bad["verified"] and bad["verify_bad_pages"] == bad["mig_test_dma_engine_corrupted"] == 9
    assert sum(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in nb.cells for o in c.get("outputs", [])) == 2


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    make_runs(root / "runs", KNOWN)
    make_runs(root / "runs", SWEEP, label="sweep", manifest={**MANIFEST, "kernel_release": "6.12.117-sweep"})
    make_runs(root / "runs", BATCHED, label="dma")
    make_conformance_run(root / "runs")
    html = report.render(runs_root=root / "runs", out_root=root / "pm", out=root / "report.html")
    return root, html


def test_report_renders_self_contained_html(rendered):
    root, html = rendered
    body = html.read_text()
    executed = list((root / "pm").glob("*-report/report-*.ipynb"))
    assert len(executed) == 1
    # the code that made each table is there; --no-input leaves it out, keeping the outputs
    assert "text_tables" in body
    bare = report.to_html(executed[0], no_input=True)
    assert "text_tables" not in bare and "10.67±0.36" in bare
    assert "application/vnd.jupyter.widget-state+json" in body          # widget state embedded
    assert 'src="http' not in body and "cdnjs.cloudflare.com/ajax/libs/require" not in body
    assert body.count("data:image/png;base64,") >= 6                     # every plot inline
    for needle in ("mtcopy 2", "1.10±0.10", "(other hardware)", "TCG: timings are functional",
                   "first-folio latency", "10.67±0.36",
                   # every field that changed, the sides of the comparison section
                   "every field: harmonic means of rates, arithmetic of the rest",
                   # the conformance run: its headline, and its failure with the test's own line
                   "2 cases × 2 configurations: 2 pass, 1 fail, 1 did not exercise",
                   "selftests:migration.private_anon under mtcopy-2: fail", "not ok 1 private_anon_lost"):
        assert needle in body, needle


def chrome():
    need(shutil.which("chromium") is not None and shutil.which("chromedriver") is not None,
         "headless Chromium is not installed (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        need(False, "selenium is not installed (pip install -e '.[test]')")
    opts = webdriver.ChromeOptions()
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--no-first-run", "--window-size=1280,2400"):
        opts.add_argument(a)
    opts.binary_location = shutil.which("chromium")
    # return once the DOM is parsed: the tests wait for what they need themselves, and a loaded
    # 2-core machine (VMs under TCG) can otherwise time out waiting for the renderer
    opts.page_load_strategy = "eager"
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


@pytest.mark.browser
def test_report_html_in_headless_chromium(rendered, tmp_path):
    root, html = rendered
    driver = chrome()
    try:
        driver.get(html.as_uri())
        deadline = time.time() + 30
        tabs = 0
        while time.time() < deadline and not tabs:       # the embedded widgets render on load
            tabs = driver.execute_script("return document.querySelectorAll('.lm-TabBar-tab').length")
            time.sleep(0.3)
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert tabs >= 2, "the embedded Tab widget did not render"
        assert driver.execute_script("return document.querySelectorAll('textarea').length") >= 2
        text = driver.execute_script("return Array.from(document.querySelectorAll('textarea')).map(t => t.value).join('\\n')")
        assert "1.10±0.10" in text and "63.69±5.01" in text
        images = driver.execute_script("return Array.from(document.images).filter(i => i.naturalWidth > 0).length")
        assert images >= 5
        shot = tmp_path / "report.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        assert errors == [], errors
    finally:
        driver.quit()


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on a free loopback port, serving a copy of 02-explore pointed at
    the fake target; stopped (by its own pid) after the test."""
    import os
    import secrets
    import socket
    import subprocess
    import sys
    import urllib.request

    nb = nbformat.read(str(paths.REPO / "notebooks" / "02-explore.ipynb"), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = (f'target = "fake"\nkernel = "stock"\nruns_root = "{tmp_path / "runs"}"\nconnect = False\n'
                   'imports = ["workbench.testing.fake_target"]')
    nbformat.write(nb, str(tmp_path / "02-explore.ipynb"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    env = {**os.environ, "PYTHONPATH": str(paths.REPO), "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config")}
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
                             f"--port={port}", f"--IdentityProvider.token={token}",
                             f"--ServerApp.root_dir={tmp_path}", "--LabApp.news_url=",
                             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    pytest.fail(f"JupyterLab did not start: {(tmp_path / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/lab/tree/02-explore.ipynb?token={token}", tmp_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.browser
def test_explore_panel_in_jupyterlab(lab):
    from selenium.webdriver.common.by import By
    url, root = lab
    driver = chrome()

    def wait(fn, timeout=90, what=""):
        end = time.time() + timeout
        while time.time() < end:
            try:
                got = fn()
                if got:
                    return got
            except Exception:  # noqa: BLE001 - the page is still building
                pass
            time.sleep(0.5)
        driver.save_screenshot(str(root / "timeout.png"))
        pytest.fail(f"timed out waiting for {what} (screenshot {root / 'timeout.png'})")

    def button(label):
        return [b for b in driver.find_elements(By.CSS_SELECTOR, ".jupyter-widgets button") if b.text.strip() == label][0]

    def texts():
        return [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".widget-html-content")]

    try:
        driver.get(url)
        wait(lambda: driver.find_element(By.CSS_SELECTOR, ".jp-Notebook"), what="the notebook")
        # Run only once the fresh kernel is idle: restarting a kernel that is still starting
        # raced in JupyterLab (a stale websocket, and cells queued forever) on a loaded machine.
        wait(lambda: "Idle" in driver.find_element(By.ID, "jp-main-statusbar").text, what="an idle kernel")
        def labelled(selector, label):
            return [e for e in driver.find_elements(By.CSS_SELECTOR, selector) if e.text.strip() == label][0]
        wait(lambda: labelled(".lm-MenuBar-itemLabel", "Run"), what="the Run menu").click()
        wait(lambda: labelled(".lm-Menu-itemLabel", "Run All Cells"), what="Run All Cells").click()
        wait(lambda: button("Connect"), what="the panel").click()
        wait(lambda: any("migrators kernel" in t for t in texts()), what="the target's facts")
        button("Run").click()
        wait(lambda: any("verified: 6/6 trials byte-exact" in t for t in texts()), what="the results table")
        wait(lambda: driver.execute_script(
            "return Array.from(document.querySelectorAll('.jupyter-widgets img')).some(i => i.naturalWidth > 0)"),
            what="the plot")
        table = next(t for t in texts() if "verified" in t)
        assert "migrator | 4K" in table and "kernel" in table
        assert len(store.list_runs(root / "runs")) == 1
        driver.save_screenshot(str(root / "explore.png"))
        assert (root / "explore.png").stat().st_size > 10_000
        # JupyterLab may log one line when a kernel change cancels the debugger's pending request
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"
                  and "Canceled future for debug_request" not in e["message"]]
        assert severe == [], severe
    finally:
        driver.quit()


@pytest.mark.vm
def test_quickstart_on_the_vm(vm_target, tmp_path):
    """01-quickstart as written (target vm), on the session's VM: one verified migration."""
    nb = execute("01-quickstart.ipynb", tmp_path, target="vm", kernel=vm_target.config.kernel,
                 vm_name=vm_target.config.name, runs_root=str(tmp_path / "runs"), folio_size="2M", total_size="4M")
    (run,) = store.list_runs(tmp_path / "runs")
    rec = run.records().iloc[0]
    assert bool(rec["verified"]) and rec["folio"] == "2M" and rec["pages_failed"] == 0
    out = text_of(nb)
    assert f"run {run.id}: 2M" in out
    if vm_target.accelerator() == "tcg":
        assert clocks.TCG_NOTE in out


@pytest.mark.vm
def test_dma_offload_notebook_on_the_patched_vm(patched, tmp_path):
    """05-dma-offload on the patched VM: dcbm per channel count against the kernel copy,
    then each injected fault lined up with dcbm's counters and the verification."""
    execute("05-dma-offload.ipynb", tmp_path, kernel=patched.config.kernel, vm_name=patched.config.name,
            runs_root=str(tmp_path / "runs"), channels=[1, 2], folio_sizes=["64K"], total_size="2M",
            fault_folio="64K", faults={"fail_every": 5, "corrupt_every": 7},
            # section 3 on the same (TCG) VM, one small point: the plumbing, functional only
            model_vm_name=patched.config.name, model_accel="", model_folio_sizes=["64K"], model_total_size="1M",
            model_bandwidths_mbps=[1000], model_latencies_ns=[1000], model_repeats=1)
    df = store.load_runs(tmp_path / "runs")
    assert sorted(df["label"].unique()) == ["dcbm-c1", "dcbm-c2", "dcbm-corrupt", "dcbm-fail", "kernel",
                                            "model-baseline-kernel", "model-dcbm-1000MBps-1000ns"]
    from workbench.host.analysis import dcbm_counts
    model = df[df["label"] == "model-dcbm-1000MBps-1000ns"]
    assert model["verified"].all() and dcbm_counts.dma_copied(model).tolist() == [16]
    clean = df[df["label"].isin(["kernel", "dcbm-c1", "dcbm-c2"])]
    assert clean["verified"].all()
    fail = df[df["label"] == "dcbm-fail"].iloc[0]
    assert fail["verified"] and fail["mig_dcbm_fallbacks"] == fail["mig_test_dma_engine_failed"] > 0
    bad = df[df["label"] == "dcbm-corrupt"].iloc[0]
    assert not bad["verified"] and bad["verify_bad_pages"] == bad["mig_test_dma_engine_corrupted"] > 0
    assert bad["verify_first_bad_offset"] == 0x123
