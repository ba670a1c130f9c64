"""Host side of a run: check the plan against the target, stream trials, save each one,
and carry on through what a kernel under test does to its machine.

* **The target dies** (QEMU killed, the guest powers off or panics; an agent killed;
  an SSH link that drops): the trial in flight is kept as a fault with the cause
  (the panic's message, QEMU's own word), the target is recovered (a VM rebooted as it
  was, a link reconnected with bounded backoff) and the run goes on with the trials that
  have no record yet; none is recorded twice.
* **A trial hangs**: past its time limit (:func:`trial_time_limit`, or
  ``trial_timeout``) the target's blocked tasks are taken (kernel stacks, ``sysrq w``),
  the trial is kept as a fault, the target recovered, and the run goes on.
* **A configuration keeps killing its target**: after ``max_reboots`` such faults in a
  row in one configuration (a trial key without its repeat) it is given up, recorded
  in the manifest (``given_up``) with the reason, and the other configurations go on.
* **Anything else stops the run** (a trial's own error, a VM that cannot boot again,
  Ctrl-C): what finished is on disk and the message says how to ``--resume`` it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

from tqdm.auto import tqdm

from ... import __version__, paths
from . import plan, store
from .chaos import Chaos
from ...kernelio.blocked import format_blocked
from ...errors import WorkbenchError
from ...protocol import Event, TrialSpec, trials_plan
from ...targets.base import Target, TargetLost

#: the default number of faults in a row after which a configuration is given up
MAX_REBOOTS = 2
#: a trial's time limit: BASE seconds plus PER_MIB seconds for every MiB it moves (twice
#: that at 4K folios: one folio per page); generous for TCG on a loaded machine, since a
#: limit that bites a slow but healthy trial costs a reboot
LIMIT_BASE, LIMIT_PER_MIB = 300.0, 4.0
#: the longest a plan may go without any event before its first trial starts (the
#: agent warming up its numba kernels, or waiting for another agent's trial to end)
WARMUP_LIMIT = 900.0


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a notebook's interrupt) during a run: ``str()`` says what is saved and
    how to resume."""

    def __str__(self):
        return self.args[0] if self.args else "interrupted"


def trial_time_limit(spec: TrialSpec, override: float | None = None) -> float:
    """How long one trial may take before it counts as hung, in seconds."""
    if override is not None:
        return float(override)
    mib = spec.total_size / (1 << 20)
    return LIMIT_BASE + LIMIT_PER_MIB * mib * (2 if spec.folio_size <= 4096 else 1)


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
        "kernel_series": facts.get("kernel_series"), "kernel_inputs": facts.get("kernel_inputs"),
        "kernel_line": facts.get("kernel_line"), "kernel_source": facts.get("kernel_source"),
        "numa": facts.get("numa"), "cpu_model": facts.get("cpu_model"), "cpus": facts.get("cpus"),
        "migration_interface": facts.get("interface"),
        "workbench_revision": git_revision(), "workbench_version": __version__,
        "params": params.to_dict(), "target_detail": target.describe(),
    }


class _Hung(Exception):
    def __init__(self, limit: float, stuck: str):
        self.limit, self.stuck = limit, stuck


def _notice(text: str) -> None:
    """A notice during a run (a fault, a configuration given up, a test hook): on stderr,
    above the progress bar, so that stdout keeps only what the command prints (--json)."""
    tqdm.write(text, file=sys.stderr)


def _check_max_reboots(max_reboots) -> None:
    if not isinstance(max_reboots, int) or isinstance(max_reboots, bool) or max_reboots < 1:
        raise WorkbenchError(f"max reboots {max_reboots!r} must be a whole number of at least 1 (the faults in a "
                             "row after which a configuration is given up)")


def _check_timeout(trial_timeout) -> None:
    if trial_timeout is not None and (isinstance(trial_timeout, bool) or not isinstance(trial_timeout, (int, float))
                                      or trial_timeout <= 0):
        raise WorkbenchError(f"trial timeout {trial_timeout!r} must be a positive number of seconds")


@dataclass(frozen=True)
class RunPolicy:
    """How a run is carried out, apart from what it measures (the knobs): the same trials
    under another policy measure the same thing, so a sweep leaves these out of a
    configuration's hash.

    ``resume`` continues a run by id (one that stopped, or gave a configuration up);
    ``label`` names a new run's directory; ``max_reboots`` and ``trial_timeout`` are
    explained in the module's docstring; ``kernel_expect`` (patched, vanilla, stock, or a
    piece of the release: :func:`plan.kernel_mismatch`) refuses a target whose kernel is
    not that one before any trial, and is kept in the manifest."""

    max_reboots: int = MAX_REBOOTS
    trial_timeout: float | None = None
    kernel_expect: str | None = None
    resume: str | None = None
    label: str = "run"

    def check(self) -> None:
        """One line for the first option that cannot be (before a target is reached)."""
        _check_max_reboots(self.max_reboots)
        _check_timeout(self.trial_timeout)
        plan.check_kernel_expect(self.kernel_expect)


def run(target: Target, params: plan.RunParams, policy: RunPolicy | None = None, root=None, progress: bool = True,
        on_record: Callable[[dict], None] | None = None, manifest_extra: dict | None = None,
        on_start: Callable[[str], None] | None = None, chaos: Chaos | None = None) -> store.Run:
    """Run ``params`` on ``target`` under ``policy`` (default :class:`RunPolicy`) and store
    every trial as it finishes; ``on_record`` hears each record once it is saved (the
    panel's progress); ``manifest_extra`` is kept in the run's manifest (what a benchmark
    needs to find its runs again); ``on_start`` hears the run's id as soon as it exists (a
    sweep's journal, to resume it); ``chaos`` injects faults on purpose (tests; default:
    ``$WORKBENCH_CHAOS``).

    Each record gets the host's wall-clock ``host_started``/``host_finished`` (Unix time):
    a trial starts when the plan is sent or the previous trial's record arrived, and ends
    when its own record arrives, so runs on several targets can be laid on one time line."""
    return Runner(target, params, policy, root=root, progress=progress, on_record=on_record,
                  manifest_extra=manifest_extra, on_start=on_start, chaos=chaos).run()


class Runner:
    """One run: its checks and stored run (:meth:`open`), then its plan sent again after
    each fault until every trial is stored or given up (:meth:`run`). A fault during a
    trial counts against that trial's configuration (:meth:`fault`); one with no trial in
    flight counts against the run (:meth:`between`)."""

    def __init__(self, target: Target, params: plan.RunParams, policy: RunPolicy | None = None, root=None,
                 progress: bool = True, on_record: Callable[[dict], None] | None = None,
                 manifest_extra: dict | None = None, on_start: Callable[[str], None] | None = None,
                 chaos: Chaos | None = None):
        self.target, self.params, self.policy = target, params, policy or RunPolicy()
        self.root, self.progress, self.on_record = root, progress, on_record
        self.manifest_extra, self.on_start = manifest_extra, on_start
        self.chaos = chaos if chaos is not None else Chaos.from_env()
        self.in_a_row: dict[str, list[str]] = defaultdict(list)   # config -> causes of its faults in a row
        self.given_up: dict[str, str] = {}
        self.lost_between = 0

    # before the first trial ------------------------------------------------------------
    def open(self) -> store.Run:
        """Check everything that can be checked, then make (or reopen) the stored run and
        list the trials left to do."""
        params, policy, target = self.params, self.policy, self.target
        params.check()  # before the target is reached: a VM boot takes minutes
        policy.check()
        target.prepare(params)
        facts = target.facts(refresh=True)   # the machine as it is now, not as an earlier run found it
        params = self.params = plan.with_defaults(params, target.kind)
        plan.validate(params, facts, target.kind, kernel_expect=policy.kernel_expect)
        self.trials = plan.expand(params)
        self.by_key = {t.key(): t for t in self.trials}
        if policy.resume:
            the_run = store.open_run(policy.resume, self.root)
            try:
                made_with = the_run.manifest.get("params")
            except store.DamagedFile as exc:
                raise WorkbenchError(f"run {policy.resume!r} cannot be resumed: {exc.damage}") from None
            if not plan.same_params(made_with, params.to_dict()):
                raise WorkbenchError(f"run {policy.resume!r} was made with other parameters "
                                     f"({made_with}); resume it with the same ones")
            the_run.update_manifest(given_up={}, finished=None)  # a resumed run tries them again
        else:
            expected = {"kernel_expect": policy.kernel_expect} if policy.kernel_expect is not None else {}
            the_run = store.create_run({**manifest_for(target, params, facts, policy.label), **expected,
                                        **(self.manifest_extra or {})}, self.root)
        self.the_run = the_run
        if self.on_start:
            self.on_start(the_run.id)
        # a resumed run's damaged record is moved aside and its trial runs again
        done = the_run.completed_keys(store.SetAside(warn=lambda line: _notice(f"run {the_run.id}: {line}")))
        self.todo = [t for t in self.trials if t.key() not in done]
        self.context = {"target": target.label, "accelerator": target.accelerator(), "clock": target.clock(),
                        "kernel_release": facts.get("kernel_release")}
        return the_run

    # the run -----------------------------------------------------------------------------
    def run(self) -> store.Run:
        the_run = self.open()
        self.bar = tqdm(total=len(self.trials), initial=len(self.trials) - len(self.todo),
                        desc=f"trials ({the_run.id})", unit="trial", disable=not self.progress)
        try:
            while self.todo:
                self.attempt()
        except WorkbenchError as exc:
            # whatever stopped the run (a trial's error, a VM that does not boot again, a
            # link that did not come back): what finished is on disk, and the message says
            # how to carry on
            raise WorkbenchError(f"{exc} ({self.resume_hint()})", detail=exc.detail) from None
        except KeyboardInterrupt:
            raise RunInterrupted(f"interrupted: {self.resume_hint()}") from None
        finally:
            self.bar.close()
        the_run.update_manifest(finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), trials=the_run.count(),
                                given_up=dict(self.given_up))
        return the_run

    def attempt(self) -> None:
        """Send the trials left as one plan and store what comes back, until it ends or a
        fault (a hung trial, a lost target) is recorded and the target recovered."""
        target, chaos, label = self.target, self.chaos, self.policy.label
        sent = chaos.arm(self.todo, label) if chaos else list(self.todo)
        armed = {t.key(): t for t in sent}
        self.in_flight, pid, tid, injected = None, None, None, None
        last = since = time.time()
        try:
            events = target.stream(trials_plan(sent), ticks=True)
            try:
                for event in events:
                    now = time.time()
                    kind = event.get("type")
                    if kind == Event.START:
                        self.in_flight, pid, tid, last = event["trial_key"], event.get("pid"), event.get("tid"), now
                        if chaos:
                            injected = self.inject(chaos.started(armed[self.in_flight], label)) or injected
                    elif kind == Event.RECORD:
                        self.store(event["record"], since, now)
                        self.in_flight, injected, last, since = None, None, now, now
                    self.check_time(now - last, pid, tid)
            finally:
                events.close()
        except _Hung as hung:
            what = f"trial {self.in_flight}" if self.in_flight else "the plan (before its first trial)"
            cause = f"{what} did not finish within its time limit of {hung.limit:.0f} s"
            self.fault("hung", self.in_flight, cause, detail=hung.stuck)
            if self.in_flight is None:
                self.between(cause, hung.stuck)
            target.recover("a trial hung")
        except TargetLost as lost:
            cause = f"{injected} (test hook): {lost.cause}" if injected else lost.cause
            self.fault(lost.kind, self.in_flight, cause, detail=lost.detail,
                       **({"logs": lost.logs} if lost.logs else {}), **lost.record)
            if self.in_flight is None:
                self.between(str(lost), lost.detail)
            target.recover(lost.cause)

    def inject(self, host_faults) -> str | None:
        """A test hook's faults on the host's side (QEMU killed, ...) at this trial's start."""
        injected = None
        for host_fault in host_faults:
            _notice(f"run {self.the_run.id}: test hook: {host_fault} at trial {self.in_flight}")
            try:
                self.target.inject(host_fault)
                injected = host_fault
            except WorkbenchError as exc:  # e.g. the VM is already gone
                _notice(f"run {self.the_run.id}: test hook {host_fault} failed: {exc}")
        return injected

    def store(self, record: dict, since: float, now: float) -> None:
        """Keep one finished trial; its configuration's faults in a row start again."""
        self.the_run.append({**record, **self.context, "host_started": since, "host_finished": now})
        spec = self.by_key[record["trial_key"]]
        self.todo.remove(spec)
        self.in_a_row.pop(spec.config_key(), None)
        self.lost_between = 0
        self.bar.update(1)
        self.bar.set_postfix_str(f"{record['folio']} {record['gbps']:.2f} GB/s")
        if self.on_record:
            self.on_record(record)

    def check_time(self, waited: float, pid, tid) -> None:
        """Raise _Hung, with the target's blocked tasks, once the trial in flight (or the
        warm-up before the first) has waited past its limit."""
        limit = trial_time_limit(self.by_key[self.in_flight], self.policy.trial_timeout) if self.in_flight \
            else WARMUP_LIMIT
        if waited > limit:
            # what is stuck, asked while the stuck agent is still there
            try:
                stuck = format_blocked(self.target.blocked([pid] if pid else [], tids=[tid] if tid else []))
            except WorkbenchError as exc:
                stuck = f"(the target did not say which tasks are blocked: {exc})"
            raise _Hung(limit, stuck)

    # faults --------------------------------------------------------------------------------
    def resume_hint(self) -> str:
        return (f"{self.the_run.count()} finished trials are saved in {self.the_run.dir}; resume with "
                f"--resume {self.the_run.id}")

    def fault(self, kind: str, key: str | None, cause: str, detail: str | None = None, **more) -> None:
        """Record a fault; the configuration of the trial in flight is given up after
        ``max_reboots`` of them in a row."""
        the_run, max_reboots = self.the_run, self.policy.max_reboots
        spec = self.by_key.get(key) if key else None
        config = spec.config_key() if spec else None
        the_run.add_fault({"kind": kind, "trial_key": key, "config": config, "cause": cause,
                           "detail": detail, **more})
        _notice(f"run {the_run.id}: {kind.replace('_', ' ')}" + (f" during trial {key}" if key else "")
                + f": {cause}")
        if spec is None:
            return
        self.in_a_row[config].append(cause)
        if len(self.in_a_row[config]) >= max_reboots:
            reason = (f"{len(self.in_a_row[config])} faults in a row (--max-reboots {max_reboots}): "
                      + "; ".join(dict.fromkeys(self.in_a_row[config])))
            self.given_up[config] = reason
            the_run.update_manifest(given_up=dict(self.given_up))
            the_run.add_fault({"kind": "given_up", "trial_key": None, "config": config, "cause": reason})
            _notice(f"run {the_run.id}: configuration {config} given up: {reason}")
            left = [t for t in self.todo if t.config_key() == config]
            for t in left:
                self.todo.remove(t)
            self.bar.total -= len(left)
            self.bar.refresh()

    def between(self, what: str, detail: str | None) -> None:
        """A fault with no trial in flight (the VM died while warming up, a plan that
        never started): no configuration to blame, so after max_reboots in a row stop."""
        self.lost_between += 1
        if self.lost_between >= self.policy.max_reboots:
            raise WorkbenchError(f"{what} ({self.lost_between} faults in a row with no trial in flight); stopped",
                                 detail=detail)


#: how each kind of fault reads in a summary
FAULT_WORDS = {"vm_died": "VM died", "link_lost": "link lost", "agent_died": "agent died", "hung": "hung",
               "given_up": "given up"}


def describe_faults(faults: list[dict]) -> list[str]:
    """One line per fault, for a summary: what happened, during which trial, why, and
    (a VM's) which signal named the cause."""
    out = []
    for f in faults:
        what = FAULT_WORDS.get(f.get("kind"), f.get("kind", "fault"))
        if f.get("kind") == "given_up":
            out.append(f"given up: configuration {f.get('config')}: {f.get('cause')}")
        else:
            out.append(f"{what}" + (f" during trial {f['trial_key']}" if f.get("trial_key") else "")
                       + f": {f.get('cause')}" + (f" (named by {f['named_by']})" if f.get("named_by") else ""))
    return out


def describe_unclean(df) -> list[str]:
    """One line per trial during which the kernel reported a problem."""
    from ..analysis.stats import unclean
    if df.empty:
        return []
    bad = df[unclean(df)]
    return [f"kernel not clean during trial {r['trial_key']}: "
            + (str(r.get("kernel_report") or "").splitlines() or ["?"])[0] for _, r in bad.iterrows()]

