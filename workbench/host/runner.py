"""Host side of a run: check the plan against the target, stream trials, save each one."""

from __future__ import annotations

import subprocess
import time
from typing import Callable

from tqdm.auto import tqdm

from .. import __version__, paths
from . import plan, store
from ..errors import WorkbenchError
from ..protocol import Event, trials_plan
from ..targets.base import Target


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=paths.REPO, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=paths.REPO,
                               capture_output=True, text=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def manifest_for(target: Target, params: plan.RunParams, facts: dict, label: str) -> dict:
    return {
        "label": label, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "target": target.label, "accelerator": target.accelerator(), "clock": target.clock(),
        "functional_only": target.accelerator() == "tcg",
        "kernel_release": facts.get("kernel_release"), "kernel_config_hash": facts.get("kernel_config_hash"),
        "kernel": (facts.get("vm_config") or {}).get("kernel"),
        "numa": facts.get("numa"), "cpu_model": facts.get("cpu_model"), "cpus": facts.get("cpus"),
        "migration_interface": facts.get("interface"),
        "workbench_revision": git_revision(), "workbench_version": __version__,
        "params": params.to_dict(), "target_detail": target.describe(),
    }


def run(target: Target, params: plan.RunParams, root=None, resume: str | None = None, label: str = "run",
        progress: bool = True, on_record: Callable[[dict], None] | None = None,
        manifest_extra: dict | None = None, on_start: Callable[[str], None] | None = None) -> store.Run:
    """Run ``params`` on ``target`` and store every trial as it finishes; ``on_record``
    hears each record once it is saved (the panel's progress); ``manifest_extra`` is kept
    in the run's manifest (what a benchmark needs to find its runs again); ``on_start``
    hears the run's id as soon as it exists (a sweep's journal, to resume it).

    Each record gets the host's wall-clock ``host_started``/``host_finished`` (Unix time):
    a trial starts when the plan is sent or the previous trial's record arrived, and ends
    when its own record arrives, so runs on several targets can be laid on one time line."""
    params.check()  # before the target is reached: a VM boot takes minutes
    target.prepare(params)
    facts = target.facts()
    params = plan.with_defaults(params, target.kind)
    plan.validate(params, facts, target.kind)
    trials = plan.expand(params)
    if resume:
        the_run = store.open_run(resume, root)
        if not plan.same_params(the_run.manifest.get("params"), params.to_dict()):
            raise WorkbenchError(f"run {resume!r} was made with other parameters "
                                 f"({the_run.manifest.get('params')}); resume it with the same ones")
        done = the_run.completed_keys()
        todo = [t for t in trials if t.key() not in done]
    else:
        the_run = store.create_run({**manifest_for(target, params, facts, label), **(manifest_extra or {})}, root)
        todo = trials
    if on_start:
        on_start(the_run.id)
    context = {"target": target.label, "accelerator": target.accelerator(), "clock": target.clock(),
               "kernel_release": facts.get("kernel_release")}
    bar = tqdm(total=len(trials), initial=len(trials) - len(todo), desc=f"trials ({the_run.id})",
               unit="trial", disable=not progress)
    try:
        if todo:
            since = time.time()
            for event in target.stream(trials_plan(todo)):
                if event["type"] == Event.RECORD:
                    now = time.time()
                    the_run.append({**event["record"], **context, "host_started": since, "host_finished": now})
                    since = now
                    bar.update(1)
                    bar.set_postfix_str(f"{event['record']['folio']} {event['record']['gbps']:.2f} GB/s")
                    if on_record:
                        on_record(event["record"])
    except WorkbenchError as exc:
        # whatever stopped the plan (the trial failed, the VM died, the link dropped):
        # what finished is on disk, and the message says how to carry on
        raise WorkbenchError(f"{exc} ({the_run.count()} finished trials are saved in {the_run.dir}; resume with "
                             f"--resume {the_run.id})", detail=exc.detail) from None
    finally:
        bar.close()
    the_run.update_manifest(finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), trials=the_run.count())
    return the_run
