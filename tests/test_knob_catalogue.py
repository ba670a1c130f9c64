"""The knob catalogue (workbench.catalogue.knobs): every surface comes from it, and what
it derives is what stored runs already hold (their trial keys resume)."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import MISSING, fields

import pytest

from workbench.catalogue import knobs
from workbench.errors import WorkbenchError
from workbench.host.running.plan import RunParams
from workbench.protocol import Knobs, TrialSpec
from workbench.units import format_size


def key_before_the_catalogue(s: TrialSpec) -> str:
    """TrialSpec.key as it was written by hand before the catalogue (commit 6d23552): the
    keys every stored run holds, which --resume matches."""
    k = "".join(f"-{tag}{v}" for tag, v in (("t", s.threads), ("c", s.channels), ("b", s.batch_size))
                if v is not None)
    if s.batch_kernel_copy is not None:
        k += f"-bk{int(s.batch_kernel_copy)}"
    extra = ("-ff" if s.first_folio else "") + (f"-e{s.dma_engine}" if s.dma_engine else "")
    if s.access != "none":
        extra += f"-a{s.access}{s.access_threads}"
    if s.wait_seconds is not None:
        extra += f"-w{s.wait_seconds:g}"
    if not s.trace:
        extra += "-notrace"
    if s.monitor_ms is None:
        extra += "-nomon"
    elif s.monitor_ms != 10.0:
        extra += f"-mon{s.monitor_ms:g}"
    if s.settings:
        extra += "-set" + hashlib.sha256(json.dumps(s.settings, sort_keys=True).encode()).hexdigest()[:8]
    workload = "" if s.workload == "move-pages" else f"{s.workload}-"
    nodes = f"n{s.src}to{s.dst}" if s.dst is not None else f"n{s.src}"
    return (f"{workload}{s.migrator}{k}-{format_size(s.folio_size)}-{format_size(s.total_size)}"
            f"-{nodes}-s{s.seed}-r{s.repeat}" + extra)


VARIANTS = {
    "migrator": ["kernel", "mtcopy", "dcbm"], "threads": [None, 4], "channels": [None, 2],
    "batch_size": [None, 64], "batch_kernel_copy": [None, True, False], "first_folio": [False, True],
    "dma_engine": [None, "test_dma_engine"], "access": ["none", "write"], "wait_seconds": [None, 2.5],
    "trace": [True, False], "monitor_ms": [10.0, None, 0.5], "settings": [None, {"/sys/x/y": "7"}],
    "workload": ["move-pages", "compaction"], "dst": [1, None],
}


def test_trial_keys_are_the_ones_stored_runs_hold():
    names = list(VARIANTS)
    n = 0
    for values in itertools.product(*VARIANTS.values()):
        spec = TrialSpec(total_size=8 << 20, folio_size=4096, repeat=2, seed=5, access_threads=3,
                         **dict(zip(names, values)))
        assert spec.key() == key_before_the_catalogue(spec)
        # the configuration: the key without its repeat, as it was cut out of the text before
        assert spec.config_key() == re.sub(r"-r\d+(?=-|$)", "", spec.key(), count=1)
        n += 1
    assert n > 10_000


def test_the_trial_knobs_are_the_catalogue_and_take_its_defaults():
    trial = [f for f in fields(Knobs) if f.name != "extra"]
    assert [f.name for f in trial] == [k.name for k in knobs.TRIAL_KNOBS]
    for f in trial:
        default = f.default if f.default is not MISSING else f.default_factory()
        assert default == knobs.default(f.name), f.name
    run = {f.name for f in fields(RunParams)} - {"extra"}
    assert run == {k.name for k in knobs.KNOBS}, "every knob, the run's too, is a field of RunParams"


def test_the_run_command_takes_every_knob_and_its_defaults_are_the_catalogue_s():
    from workbench.host.cli.main import build_parser
    parser = build_parser()
    run = parser._subparsers._group_actions[0].choices["run"]
    flags = {opt for a in run._actions for opt in a.option_strings}
    assert {k.flag for k in knobs.KNOBS} <= flags
    values = knobs.from_args(parser.parse_args(["run"]))
    for k in knobs.KNOBS:
        expected = None if k.name == "dst" else k.default   # dst: the workload's default
        assert values[k.name] == expected, k.name
    values = knobs.from_args(parser.parse_args(
        ["run", "--no-trace", "--monitor", "off", "--set", "/sys/a=1", "--no-batch-kernel-copy", "--batch-size",
         "64", "--first-folio-latency", "--folio-size", "2M", "--size", "4M", "--wait-seconds", "3"]))
    assert values["trace"] is False and values["monitor_ms"] is None and values["settings"] == {"/sys/a": "1"}
    assert values["batch_kernel_copy"] is False and values["batch_size"] == 64 and values["first_folio"] is True
    assert values["folio_sizes"] == [2 << 20] and values["total_size"] == 4 << 20 and values["wait_seconds"] == 3.0


@pytest.mark.parametrize("knob, text, message", [
    ("threads", "four", "threads 'four' is not an integer"),
    ("repeats", "3.5", "repeats '3.5' is not an integer"),
    ("batch_kernel_copy", "maybe", "batch kernel copy 'maybe' is not true or false"),
    ("wait_seconds", "soon", "wait seconds 'soon' is not a number"),
    ("total_size", "12Q", "size '12Q' is not a size"),
    ("monitor_ms", "often", "--monitor 'often' is not an interval"),
])
def test_a_knob_s_bad_text_is_one_line_naming_it(knob, text, message):
    with pytest.raises(WorkbenchError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        knobs.get(knob).read(text)


def test_records_carry_the_catalogue_s_columns():
    spec = TrialSpec(total_size=4 << 20, folio_size=4096, migrator="mtcopy", threads=2,
                     settings={"/sys/b": "2", "/sys/a": "1"})
    cols = knobs.record_columns(spec)
    assert set(cols) == {k.column for k in knobs.TRIAL_KNOBS if k.column and k.name != "monitor_ms"}
    assert cols["total_bytes"] == 4 << 20 and cols["threads"] == 2 and cols["access_threads"] == 0
    assert cols["settings"] == "/sys/a=1 /sys/b=2"
    assert knobs.config_columns() == ("workload", "access", "migrator", "workers", "batch_size", "dma_engine",
                                      "settings", "folio")
    assert knobs.unit_of("batch_size") == "base pages" and knobs.label_of("dst") == "destination node"


def test_notebook_03_s_parameters_are_the_sweep_s_keys_with_the_catalogue_s_defaults():
    import ast
    import papermill
    from workbench.host.running import sweep
    params = papermill.inspect_notebook(str(sweep.NOTEBOOK))
    where = {"label", "runs_root", "result_path", "journal_path"}     # the sweep fills these in
    assert set(params) == (sweep.KNOWN - {"name"}) | where
    for key, default in sweep.KNOB_DEFAULTS.items():
        text = params[key]["default"]
        value = ast.literal_eval(text)
        if key in sweep.AS_TEXT:
            assert value == default, key
        else:
            k = knobs.BY_SWEEP_KEY[key]
            read = [k.read(v) for v in value] if k.plural and value is not None else \
                (k.read(value) if value is not None else None)
            assert read == default, key
    for key, default in {**sweep.TARGET_DEFAULTS, **sweep.POLICY_DEFAULTS}.items():
        assert (ast.literal_eval(params[key]["default"]) or None) == (default or None), key


def test_every_knob_is_reachable_from_a_sweep(tmp_path):
    from workbench.host.running import sweep, store
    from workbench.testing.fake_dcbm import DcbmFake
    target = DcbmFake()
    grid = sweep.expand_grid({"defaults": {
        "total_size": "4M", "folio_sizes": ["4K"], "repeats": 1, "migrators": ["kernel", "mtcopy"],
        "threads": [2], "batch_sizes": [64], "access": "write", "access_threads": 3, "wait_seconds": 5,
        "trace": False, "monitor": "off", "batch_kernel_copy": True, "dma_engine": "test_dma_engine",
        "settings": {"/sys/x/y": "1"}, "first_folio": True, "seed": 4}})
    cfg = grid["configurations"][0]
    assert set(sweep.KNOB_DEFAULTS) <= set(cfg)
    ids = sweep.run_grid(target, root=tmp_path, progress=False, **sweep.knobs_of(cfg))
    assert len(ids) == 2
    by_migrator = {t["migrator"]: t for t in target.seen}
    kernel, mtcopy = by_migrator["kernel"], by_migrator["mtcopy"]
    for name, want in {"access": "write", "access_threads": 3, "wait_seconds": 5.0, "trace": False,
                       "monitor_ms": None, "dma_engine": "test_dma_engine", "settings": {"/sys/x/y": "1"},
                       "first_folio": True, "seed": 4, "batch_size": 64, "total_size": 4 << 20}.items():
        assert kernel[name] == want and mtcopy[name] == want, name
    assert kernel["batch_kernel_copy"] is True and mtcopy["batch_kernel_copy"] is None
    assert mtcopy["threads"] == 2 and kernel["threads"] is None
    assert len(store.load_runs(tmp_path)) == 2


@pytest.mark.parametrize("key, value, message", [
    ("access_threads", "many", "access threads 'many' is not an integer"),
    ("monitor", "often", "--monitor 'often' is not an interval"),
    ("batch_sizes", ["x"], "batch size 'x' is not an integer"),
    ("first_folio", "perhaps", "first folio 'perhaps' is not true or false"),
])
def test_a_grid_s_bad_knob_is_the_catalogue_s_one_line(key, value, message):
    from workbench.host.running import sweep
    with pytest.raises(WorkbenchError, match="^" + message):
        sweep.expand_grid({"defaults": {key: value}})
