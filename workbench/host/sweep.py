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

A grid may name several targets, each with options of its own; every configuration then
runs on every target, and each VM target is a VM of its own name::

    targets: [vm:stock, vm:patched, {spec: "ssh://root@box-a", identity: ~/.ssh/lab, kernel_expect: patched}]

Configurations run on Dask distributed (:mod:`workbench.host.distributed`): one at a time
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
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from .. import paths
from . import distributed, notebooks, runner
from ..errors import WorkbenchError
from ..catalogue import workloads as registry
from ..protocol import ACCESS_MODES, worker_fields, worker_knob
from .plan import RunParams, check_kernel_expect, check_trial_count
from ..units import parse_size, parse_size_list

NOTEBOOK = paths.REPO / "notebooks" / "03-sweep.ipynb"
KNOWN = {"name", "target", "target_options", "kernel", "vm_name", "accel", "folio_sizes", "migrators", "threads", "channels", "batch_sizes",
         "total_size", "repeats", "src", "dst", "seed", "imports", "workloads", "access", "max_reboots",
         "trial_timeout", "kernel_expect"}
DEFAULTS = {"target": "vm", "target_options": {}, "kernel": None, "vm_name": None, "accel": None, "folio_sizes": ["4K", "2M"],
            "migrators": ["kernel"], "threads": [None], "channels": None, "batch_sizes": [None],
            "total_size": "16M", "repeats": 3, "src": 0, "dst": None, "seed": 1, "imports": [],
            "workloads": ["move-pages"], "access": "none", "max_reboots": runner.MAX_REBOOTS, "trial_timeout": None,
            "kernel_expect": None}
#: the most configurations a grid expands to: each is a notebook executed in a kernel of
#: its own (seconds at the least) and the sweep's journal is rewritten after each, so a
#: matrix past this is a mistake; it is refused before anything is expanded
MAX_CONFIGURATIONS = 1000
#: keys added after sweeps were first run: at these values a configuration hashes as it
#: did before they existed, so a finished configuration is not run again
LATER_DEFAULTS = {"workloads": ["move-pages"], "access": "none"}


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
    from ..targets import parse_spec
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
    from ..targets import parse_spec
    if parse_spec(cfg["target"])[0] == "vm":
        return f"vm:{cfg.get('vm_name') or 'default'}"
    return cfg["target"]


def normalise(cfg: dict) -> dict:
    """Sizes as text the notebook parses again, lists where lists belong; checks values."""
    out = dict(cfg)
    out["folio_sizes"] = [str(s) for s in _listify(cfg["folio_sizes"])]
    parse_size_list(out["folio_sizes"], "folio size")
    parse_size(str(cfg["total_size"]), "total size")
    out["total_size"] = str(cfg["total_size"])
    for key in ("migrators", "threads", "batch_sizes", "imports", "workloads"):
        out[key] = _listify(cfg[key])
    for w in out["workloads"]:
        registry.get(w)  # an unknown name is refused here, before anything runs
    if out["access"] not in ACCESS_MODES:
        raise WorkbenchError(f"access {out['access']!r} is not known; allowed: {', '.join(ACCESS_MODES)}")
    out["channels"] = None if cfg.get("channels") is None else _listify(cfg["channels"])
    out["repeats"] = int(cfg["repeats"])
    check_trial_count(out["repeats"], len(out["folio_sizes"]))   # each of its runs: refused before any runs
    out["target_options"] = dict(cfg.get("target_options") or {})
    runner._check_max_reboots(cfg["max_reboots"])
    runner._check_timeout(cfg["trial_timeout"])
    if cfg["kernel_expect"] is not None:
        out["kernel_expect"] = str(cfg["kernel_expect"])
        check_kernel_expect(out["kernel_expect"])
    return out


#: keys that change how faults are handled or what is refused, not what is measured: not
#: part of the hash
HANDLING = ("max_reboots", "trial_timeout", "kernel_expect")


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


def run_grid(target, folio_sizes, migrators, threads=(None,), channels=None, batch_sizes=(None,),
             total_size="16M", repeats=3, src=0, dst=None, seed=1, root=None, label="sweep",
             progress=True, journal: str | Path | None = None, workloads=("move-pages",),
             access="none", max_reboots=runner.MAX_REBOOTS, trial_timeout=None,
             kernel_expect: str | None = None) -> list[str]:
    """Run every workload x combination on ``target``; returns the run ids. A fault (a
    dead VM, a hung trial) is recorded and carried through by the runner; any other
    error stops. ``dst`` None: node 1 for workloads that move pages to a named node, the
    kernel's choice for demotion, none for compaction. ``kernel_expect`` (patched,
    vanilla, stock or a piece of the release) refuses a target on another kernel before
    its first trial (:func:`workbench.host.plan.kernel_mismatch`).

    ``journal`` (a JSON file) remembers the run of each combination as it starts: an
    attempt that is repeated (its worker died, the sweep was killed, a configuration
    was given up) resumes those runs instead of measuring their finished trials twice."""
    ids = []
    journal = Path(journal) if journal else None
    started = json.loads(journal.read_text()) if journal and journal.exists() else {}
    for workload in _listify(workloads):
        for combo in combinations(migrators, threads, channels, batch_sizes):
            params = RunParams(folio_sizes=parse_size_list(folio_sizes, "folio size"),
                               total_size=parse_size(str(total_size), "total size"), src=src,
                               dst=registry.default_dst(workload, dst), repeats=int(repeats), seed=seed,
                               workload=workload, access=access, **combo)
            tag = "-".join(str(v) for v in (workload != "move-pages" and workload, combo["migrator"],
                                             combo["threads"] and f"t{combo['threads']}",
                                             combo["channels"] and f"c{combo['channels']}",
                                             combo["batch_size"] and f"b{combo['batch_size']}",
                                             access != "none" and f"a{access}") if v)
            name = f"{label}-{tag}"
            guards = {"max_reboots": max_reboots, "trial_timeout": trial_timeout, "kernel_expect": kernel_expect}
            if name in started:
                run = runner.run(target, params, root=root, resume=started[name], label=name, progress=progress,
                                 **guards)
            else:
                run = runner.run(target, params, root=root, label=name, progress=progress,
                                 on_start=lambda run_id, name=name: _journal(journal, started, name, run_id),
                                 **guards)
            ids.append(run.id)
    return ids


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
    from . import stats, store
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
    cmd = [sys.executable, "-m", "workbench.host.papermill_process", str(NOTEBOOK), str(out_nb), "-f", str(param_file),
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
