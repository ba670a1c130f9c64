"""Sweeps: ``notebooks/03-sweep.ipynb`` executed with papermill once per configuration.

A grid file (YAML)::

    name: offload-small
    defaults:                      # every configuration starts from these
      target: vm
      kernel: patched
      accel: icount                # optional: auto, kvm, tcg or icount (the clock)
      folio_sizes: [4K, 64K, 2M]
      total_size: 16M
      repeats: 3
    matrix:                        # optional: the cross product of these lists ...
      kernel: [stock, patched]
    configurations:                # ... or/and an explicit list (each merged over the defaults)
      - {name: baseline, migrators: [kernel]}
      - {name: mtcopy, migrators: [mtcopy], threads: [1, 2], batch_sizes: [512, 4096]}

Within one configuration the notebook runs every workload x migrator x workers x batch
size combination as one stored run (``threads`` are mtcopy's threads and dcbm's channels,
unless ``channels`` is given); folio sizes and repeats are inside each run.
``max_reboots`` and ``trial_timeout`` (optional) are the runner's: a VM that dies or a
trial that hangs is recorded as a fault, the VM rebooted and the run carried on; a
configuration of trials that faults ``max_reboots`` times in a row is given up.
``kernel_expect`` (optional; ``patched``, ``vanilla``, ``stock`` or a piece of the kernel
release, as ``workbench run --kernel-expect``) makes a configuration fail at once, with
one line, on a target running another kernel (a lab box that came back on its old one).
``workloads: [move-pages, mbind, demotion]`` (default: move-pages only) chooses how the
pages migrate, ``access: write`` adds checked writers to each.

Every knob of the catalogue (:mod:`workbench.catalogue.knobs`) is a grid key, under its
sweep name: the plural ones (``workloads``, ``migrators``, ``threads``, ``channels``,
``batch_sizes``) are lists whose every value is a run, the rest one value a configuration
(``access_threads``, ``wait_seconds``, ``trace``, ``monitor``, ``batch_kernel_copy``, which
applies to the kernel migrator's runs, ``dma_engine``, ``settings``, ``first_folio``, and
the sizes, nodes, seed and repeats above). Each value is read as ``workbench run`` reads
its option, with the same one-line error.

A grid may name several targets, each with options of its own; every configuration then
runs on every target, and each VM target is a VM of its own name::

    targets: [vm:stock, vm:patched, {spec: "ssh://root@box-a", identity: ~/.ssh/lab, kernel_expect: patched}]

Configurations run on Dask distributed (:mod:`workbench.host.running.distributed`): one at a time
per target, the targets in parallel, on a local cluster started and stopped by the sweep
or on an existing one (``--scheduler``). Executed notebooks go to
``papermill-runs/<date>-<name>/<configuration>.ipynb`` (a failing one keeps its error and
the sweep goes on), results into the runs directory (default ``data/runs``) as each run
finishes. A configuration that finished is recorded in ``sweep.json``
with its run ids and a hash of its parameters; rerunning a grid of the same name reuses
that directory and skips every configuration that finished with the same parameters
(so editing one configuration reruns only that one); a configuration that was stopped
midway (its worker or the sweep killed) or gave something up continues its runs (its
journal) rather than starting others. Each configuration's entry names the faults its runs met and what they gave up; one
with something given up is ``given_up``, not ``done``, and a rerun tries it again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from ... import paths
from . import distributed, notebooks, runner
from ...errors import WorkbenchError
from ...catalogue import workloads as registry
from ...catalogue import knobs
from ...protocol import worker_fields, worker_knob
from .plan import RunParams, check_trial_count
from ...units import parse_size, parse_size_list

NOTEBOOK = paths.REPO / "notebooks" / "03-sweep.ipynb"
#: what a configuration says besides its knobs: where it runs (and what the notebook imports)
TARGET_DEFAULTS = {"target": "vm", "target_options": {}, "kernel": None, "vm_name": None, "accel": None,
                   "imports": []}
#: how its runs are carried out (workbench.host.running.runner.RunPolicy): not part of its hash
POLICY_DEFAULTS = {"max_reboots": runner.MAX_REBOOTS, "trial_timeout": None, "kernel_expect": None}
HANDLING = tuple(POLICY_DEFAULTS)
#: every knob of the catalogue under its grid key (batch_sizes, migrators, monitor, ...)
KNOB_DEFAULTS = {k.sweep_key: k.grid_default for k in knobs.KNOBS}
DEFAULTS = {**TARGET_DEFAULTS, **KNOB_DEFAULTS, **POLICY_DEFAULTS}
KNOWN = {"name", *DEFAULTS}
#: the knobs a sweep runs each value of as a run of its own (the rest are one value a
#: configuration; folio sizes and repeats are inside each run)
PLURAL = tuple(k.sweep_key for k in knobs.KNOBS if k.plural)
#: kept as the text a grid gave (sizes, which the notebook reads again), as grids always were
AS_TEXT = ("folio_sizes", "total_size")
#: the most configurations a grid expands to: each is a notebook executed in a kernel of
#: its own (seconds at the least) and the sweep's journal is rewritten after each, so a
#: matrix past this is a mistake; it is refused before anything is expanded
MAX_CONFIGURATIONS = 1000
#: keys added after sweeps were first run: at these values a configuration hashes as it
#: did before they existed, so a finished configuration is not run again
LATER_DEFAULTS = {key: KNOB_DEFAULTS[key] for key in (
    "workloads", "access", "access_threads", "wait_seconds", "trace", "monitor", "batch_kernel_copy", "dma_engine",
    "settings", "first_folio")}


# -- the grid file -------------------------------------------------------------------

def _listify(v):
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-") or "config"


def load_grid(path) -> dict:
    """Read and check a grid file; returns {'name', 'configurations': [params...]}."""
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise WorkbenchError(f"grid file {str(path)!r} does not exist") from None
    except yaml.YAMLError as e:
        raise WorkbenchError(f"grid file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    return expand_grid(spec or {}, default_name=path.stem)


def expand_grid(spec: dict, default_name: str = "sweep") -> dict:
    if not isinstance(spec, dict):
        raise WorkbenchError("a grid file is a mapping with name, defaults, matrix and/or configurations")
    unknown = set(spec) - {"name", "defaults", "matrix", "configurations", "targets"}
    if unknown:
        raise WorkbenchError(f"unknown grid key(s) {', '.join(sorted(unknown))}; "
                             "use name, defaults, matrix, configurations, targets")
    base = {**DEFAULTS, **(spec.get("defaults") or {})}
    matrix = spec.get("matrix") or {}
    if not isinstance(matrix, dict):
        raise WorkbenchError("a grid's matrix is a mapping of keys to lists of values")
    sizes = [len(_listify(v)) for v in matrix.values()] + [len(spec.get("configurations") or [{}]),
                                                           len(_listify(spec.get("targets") or [None]))]
    count = math.prod(sizes)
    if count > MAX_CONFIGURATIONS:
        raise WorkbenchError(f"the grid expands to {count} configurations ({' x '.join(map(str, sizes))}: matrix, "
                             f"configurations, targets); a sweep holds at most {MAX_CONFIGURATIONS}")
    combos = [dict(zip(matrix, values)) for values in itertools.product(*(_listify(v) for v in matrix.values()))] \
        if matrix else [{}]
    explicit = spec.get("configurations") or [{}]
    configs, seen = [], set()
    for m in combos:
        for c in explicit:
            cfg = {**base, **m, **(c or {})}
            bad = set(cfg) - KNOWN
            if bad:
                raise WorkbenchError(f"unknown configuration key(s) {', '.join(sorted(bad))}; "
                                     f"allowed: {', '.join(sorted(KNOWN))}")
            name = c.get("name") if c else None
            parts = [name] if name else []
            parts += [f"{v}" for v in m.values()]
            cfg["name"] = _slug("-".join(parts) or f"config{len(configs) + 1}")
            if cfg["name"] in seen:
                cfg["name"] = f"{cfg['name']}-{len(configs) + 1}"
            seen.add(cfg["name"])
            configs.append(normalise(cfg))
    targets = [_target_entry(x) for x in _listify(spec["targets"])] if spec.get("targets") else None
    if targets:
        configs = [normalise({**c, **tgt, "name": _slug(f"{tgt['target']}-{c['name']}")})
                   for tgt in targets for c in configs]
    return {"name": _slug(spec.get("name") or default_name), "configurations": configs}


#: what a grid's ``targets`` entry may say besides its spec
TARGET_KEYS = {"spec", "kernel", "vm_name", "accel", "nodes", "distances", "identity", "known_hosts",
               "remote_python", "imports", "kernel_expect"}


def _target_entry(item) -> dict:
    """A ``targets`` entry ('vm:patched', or {spec: ..., option: ...}) as configuration keys;
    a VM target gets a VM of its own, named after the spec."""
    from ...targets import parse_spec
    entry = {"spec": item} if isinstance(item, str) else dict(item or {})
    bad = set(entry) - TARGET_KEYS
    if bad or "spec" not in entry:
        raise WorkbenchError(f"target entry {item!r}: give a spec (vm:patched, ssh://host) and only "
                             f"{', '.join(sorted(TARGET_KEYS - {'spec'}))}")
    spec = str(entry.pop("spec"))
    out = {"target": spec}
    for key in ("kernel", "vm_name", "accel", "imports", "kernel_expect"):
        if key in entry:
            out[key] = entry.pop(key)
    if parse_spec(spec)[0] == "vm" and "vm_name" not in out:
        out["vm_name"] = _slug(f"sweep-{spec}")
    out["target_options"] = entry
    return out


def target_key(cfg: dict) -> str:
    """The machine a configuration runs on: its VM (by name) or its target spec."""
    from ...targets import parse_spec
    if parse_spec(cfg["target"])[0] == "vm":
        return f"vm:{cfg.get('vm_name') or 'default'}"
    return cfg["target"]


def normalise(cfg: dict) -> dict:
    """Each knob read by the catalogue (one line for a bad value), lists where lists
    belong, sizes kept as text the notebook parses again; checks the policy too."""
    out = dict(cfg)
    for k in knobs.KNOBS:
        key = k.sweep_key
        value = cfg.get(key, KNOB_DEFAULTS[key])
        if k.plural and value is not None:
            value = _listify(value)
            read = [k.read(v) for v in value]
        else:
            read = k.read(value) if value is not None else None
        out[key] = [str(v) for v in _listify(value)] if key == "folio_sizes" else str(value) if key in AS_TEXT else read
    out["imports"] = _listify(cfg["imports"])
    for w in out["workloads"]:
        registry.get(w)  # an unknown name is refused here, before anything runs
    if out["access"] not in knobs.ACCESS_MODES:
        raise WorkbenchError(f"access {out['access']!r} is not known; allowed: {', '.join(knobs.ACCESS_MODES)}")
    check_trial_count(out["repeats"], len(out["folio_sizes"]))   # each of its runs: refused before any runs
    out["target_options"] = dict(cfg.get("target_options") or {})
    policy(cfg).check()
    if cfg["kernel_expect"] is not None:
        out["kernel_expect"] = str(cfg["kernel_expect"])
    return out


def policy(cfg: dict, **more) -> runner.RunPolicy:
    """A configuration's run policy (its max_reboots, trial_timeout, kernel_expect)."""
    return runner.RunPolicy(**{k: cfg.get(k, v) for k, v in POLICY_DEFAULTS.items()}, **more)


def config_hash(cfg: dict) -> str:
    def measured(c: dict) -> dict:
        c = {k: v for k, v in c.items() if k not in HANDLING and not (k in LATER_DEFAULTS and v == LATER_DEFAULTS[k])}
        if c.get("dst", 1) is None and all(registry.get(w).needs_dst for w in c.get("workloads", ["move-pages"])):
            c["dst"] = 1       # what no dst means for these workloads, and what grids said before
        return c
    cfg = measured(cfg)
    if "configurations" in cfg:
        cfg["configurations"] = [measured(c) for c in cfg["configurations"]]
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- inside the notebook -------------------------------------------------------------

def combinations(migrators, threads=(None,), channels=None, batch_sizes=(None,)) -> list[dict]:
    """migrator x workers x batch size; each migrator takes the worker knob it has
    (:func:`workbench.protocol.worker_knob`: mtcopy threads, dcbm channels, which default to
    the ``threads`` list), the kernel's own copy none."""
    out = []
    for mig in migrators:
        knob = worker_knob(mig)
        counts = (channels if knob == "channels" and channels is not None else threads) if knob else [None]
        for k, b in itertools.product(dict.fromkeys(counts), batch_sizes):
            out.append({"migrator": mig, **worker_fields(mig, k), "batch_size": b})
    return out


def run_grid(target, root=None, label: str = "sweep", progress: bool = True, journal: str | Path | None = None,
             policy: runner.RunPolicy | None = None, **grid_knobs) -> list[str]:
    """Run every workload x combination on ``target``; returns the run ids. ``grid_knobs``
    are a configuration's knobs under their grid keys (``folio_sizes``, ``migrators``,
    ``batch_sizes``, ``monitor``, ...: :data:`KNOB_DEFAULTS`, whose values fill in what is
    not given). A fault (a dead VM, a hung trial) is recorded and carried through by the
    runner under ``policy`` (its label and resume are the sweep's); any other error stops.
    ``dst`` None: node 1 for workloads that move pages to a named node, the kernel's
    choice for demotion, none for compaction.

    ``journal`` (a JSON file) remembers the run of each combination as it starts: an
    attempt that is repeated (its worker died, the sweep was killed, a configuration
    was given up) resumes those runs instead of measuring their finished trials twice."""
    unknown = set(grid_knobs) - set(KNOB_DEFAULTS)
    if unknown:
        raise WorkbenchError(f"unknown knob(s) {', '.join(sorted(unknown))}; allowed: "
                             f"{', '.join(KNOB_DEFAULTS)}")
    g = normalise({**DEFAULTS, **grid_knobs})
    single = {k.name: g[k.sweep_key] for k in knobs.KNOBS
              if not k.plural and k.sweep_key not in ("folio_sizes", "total_size", "dst")}
    policy = policy or runner.RunPolicy()
    ids = []
    journal = Path(journal) if journal else None
    started = json.loads(journal.read_text()) if journal and journal.exists() else {}
    for workload in g["workloads"]:
        for combo in combinations(g["migrators"], g["threads"], g["channels"], g["batch_sizes"]):
            own = {**single, **combo}
            if combo["migrator"] != "kernel":
                own["batch_kernel_copy"] = None   # the kernel's own copy's knob: its runs only
            params = RunParams(**own, folio_sizes=parse_size_list(g["folio_sizes"], "folio size"),
                               total_size=parse_size(g["total_size"], "total size"),
                               dst=registry.default_dst(workload, g["dst"]), workload=workload)
            tag = "-".join(str(v) for v in (workload != "move-pages" and workload, combo["migrator"],
                                             combo["threads"] and f"t{combo['threads']}",
                                             combo["channels"] and f"c{combo['channels']}",
                                             combo["batch_size"] and f"b{combo['batch_size']}",
                                             params.access != "none" and f"a{params.access}") if v)
            name = f"{label}-{tag}"
            if name in started:
                run = runner.run(target, params, policy=replace(policy, resume=started[name], label=name), root=root,
                                 progress=progress)
            else:
                run = runner.run(target, params, policy=replace(policy, label=name), root=root, progress=progress,
                                 on_start=lambda run_id, name=name: _journal(journal, started, name, run_id))
            ids.append(run.id)
    return ids


def knobs_of(namespace: dict) -> dict:
    """The knobs among a notebook's parameters (its globals), under their grid keys."""
    return {key: namespace[key] for key in KNOB_DEFAULTS if key in namespace}


def _journal(path: Path | None, started: dict, name: str, run_id: str):
    if path is None:
        return
    started[name] = run_id
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(started))
    tmp.rename(path)


# -- the sweep -----------------------------------------------------------------------

def what_happened(run_ids, runs_root=None) -> dict:
    """The faults a configuration's runs met (one line each), the configurations of
    trials they gave up (and why), and how many trials the kernel was not clean during."""
    from ..analysis import stats
    from . import store
    faults = store.load_faults(runs_root, run_ids)
    given_up = {}
    for run_id in run_ids:
        given_up.update(store.open_run(run_id, runs_root).manifest.get("given_up") or {})
    df = store.load_runs(runs_root, run_ids)
    return {"faults": runner.describe_faults([f for f in faults if f.get("kind") != "given_up"]),
            "given_up": given_up, "kernel_unclean": 0 if df.empty else int(stats.unclean(df).sum())}


def sweep_dir(name: str, out_root: Path) -> Path:
    """The directory of the latest earlier run of a grid with this name, or a new dated one."""
    earlier = sorted(d for d in out_root.glob(f"*-{name}") if (d / "sweep.json").exists())
    return earlier[-1] if earlier else out_root / f"{time.strftime('%Y%m%d')}-{name}"


def execute_configuration(cfg: dict, grid_name: str, directory: str, runs_root: str | None = None,
                          jupyter_kernel: str = "python3", cell_timeout: float | None = None,
                          notebook_timeout: float | None = None) -> dict:
    """Execute 03-sweep for one configuration in a papermill process of its own (it dies
    with the caller), within the timeouts; returns the configuration's entry for
    sweep.json. A failing notebook is reported in the entry, never raised."""
    directory = Path(directory)
    out_nb = directory / f"{cfg['name']}.ipynb"
    result = directory / f"{cfg['name']}.result.json"
    result.unlink(missing_ok=True)
    params = {k: v for k, v in cfg.items() if k != "name"}
    params.update({"label": f"{grid_name}-{cfg['name']}", "runs_root": str(runs_root or ""),
                   "result_path": str(result), "journal_path": str(directory / f"{cfg['name']}.journal.json")})
    param_file = directory / f"{cfg['name']}.parameters.yaml"
    param_file.write_text(yaml.safe_dump(params))
    cmd = [sys.executable, "-m", "workbench.host.running.papermill_process", str(NOTEBOOK), str(out_nb), "-f", str(param_file),
           "-k", jupyter_kernel, "--cwd", str(paths.REPO), "--no-progress-bar"]
    if cell_timeout:
        cmd += ["--execution-timeout", str(int(cell_timeout))]
    started = time.time()
    entry = {"notebook": out_nb.name, "parameters": params, "config_hash": config_hash(cfg),
             "target": target_key(cfg), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}

    for attempt in range(1, notebooks.KERNEL_START_ATTEMPTS + 1):
        out_nb.unlink(missing_ok=True)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=_die_with_parent)
        try:
            log, _ = proc.communicate(timeout=notebook_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            entry.update(state="failed", error=f"the notebook took longer than {notebook_timeout:.0f} s (its cells "
                                               "so far are kept)")
            break
        if proc.returncode == 0 and result.exists():
            entry.update(state="done", run_ids=json.loads(result.read_text())["run_ids"])
            entry.update(what_happened(entry["run_ids"], runs_root))
            if entry["given_up"]:
                entry["state"] = "given_up"
            break
        entry.update(state="failed", error=_notebook_error(out_nb, log))
        if not notebooks.kernel_never_ran(out_nb):
            break
        if attempt == notebooks.KERNEL_START_ATTEMPTS:
            entry["error"] += f" (its Jupyter kernel died before running a cell, {attempt} times)"
            break
        entry["kernel_restarts"] = attempt   # nothing ran: start it again
    entry["seconds"] = round(time.time() - started, 1)
    entry["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return entry


def _die_with_parent():
    """In the notebook's process, before it starts: die when the process that started it
    dies (a killed Dask worker must not leave a notebook measuring on the target while
    its retry starts), in a process group of its own (a timeout kills the whole group)."""
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    os.setsid()


def _notebook_error(notebook: Path, log: str) -> str:
    """The executed notebook's error (ename: evalue), else the last line papermill printed."""
    try:
        import nbformat
        nb = nbformat.read(str(notebook), as_version=4)
        for cell in nb.cells:
            for o in cell.get("outputs", []):
                if o.get("output_type") == "error":
                    return f"{o['ename']}: {o['evalue']}".splitlines()[0]
    except Exception:  # noqa: BLE001 - a notebook that was never written says nothing
        pass
    lines = [ln for ln in (log or "").splitlines() if ln.strip()]
    return lines[-1] if lines else "the notebook process failed without a message"


def run_sweep(grid_path, runs_root=None, out_root=None, jupyter_kernel: str = "python3", progress: bool = True,
              timeout: float | None = None, notebook_timeout: float | None = None, scheduler: str | None = None,
              retries: int = 1) -> dict:
    """Execute 03-sweep once per configuration on Dask distributed; returns the sweep's
    status (also in sweep.json, written as each configuration finishes)."""
    notebooks.require(what="workbench sweep")
    grid = load_grid(grid_path)
    digest = config_hash(grid)
    out_root = Path(out_root or notebooks.papermill_runs_dir())
    directory = sweep_dir(grid["name"], out_root)
    directory.mkdir(parents=True, exist_ok=True)
    status_file = directory / "sweep.json"
    status = json.loads(status_file.read_text()) if status_file.exists() else {}
    status.update({"name": grid["name"], "grid_hash": digest, "grid_file": str(grid_path),
                   "runs_root": str(Path(runs_root or paths.runs_dir()))})
    earlier = status.get("configurations", {})
    # only this grid's configurations; one is done when it finished with the same parameters
    configs = status["configurations"] = {c["name"]: earlier[c["name"]] for c in grid["configurations"]
                                          if c["name"] in earlier}
    todo = [c for c in grid["configurations"]
            if not (configs.get(c["name"], {}).get("state") == "done"
                    and configs[c["name"]].get("config_hash") == config_hash(c))]
    bar = tqdm(total=len(grid["configurations"]), initial=len(grid["configurations"]) - len(todo),
               desc=f"sweep {grid['name']}", unit="config", disable=not progress)
    say = bar.write if progress else (lambda _line: None)
    try:
        if todo:
            kwargs = {"grid_name": grid["name"], "directory": str(directory), "runs_root": runs_root,
                      "jupyter_kernel": jupyter_kernel, "cell_timeout": timeout, "notebook_timeout": notebook_timeout}
            tasks = [(target_key(c), c) for c in todo]
            for cfg, entry in distributed.execute(tasks, execute_configuration, kwargs, scheduler=scheduler,
                                                  retries=retries, note=say):
                entry.setdefault("config_hash", config_hash(cfg))
                configs[cfg["name"]] = entry
                if entry["state"] == "failed":
                    say(f"sweep {grid['name']}: configuration {cfg['name']} failed: {entry['error']} "
                        f"(see {directory / entry['notebook']})")
                elif entry["state"] == "given_up":
                    say(f"sweep {grid['name']}: configuration {cfg['name']} gave up "
                        + "; ".join(f"{k}: {v}" for k, v in entry["given_up"].items()))
                status_file.write_text(json.dumps(status, indent=1, default=str))
                bar.set_postfix_str(cfg["name"])
                bar.update(1)
    except KeyboardInterrupt:
        raise runner.RunInterrupted(f"interrupted: the finished configurations are in {status_file}; rerun "
                                    f"`workbench sweep {grid_path}` to go on (finished configurations are "
                                    "skipped, an unfinished run continues)") from None
    finally:
        bar.close()
    status_file.write_text(json.dumps(status, indent=1, default=str))
    status["dir"] = str(directory)
    return status
