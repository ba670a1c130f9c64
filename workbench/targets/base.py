"""The interface every target implements, and the one way to talk to its agent."""

from __future__ import annotations

from typing import Iterator

from ..errors import WorkbenchError
from ..protocol import ANSWER, Event, Op


class TargetLost(WorkbenchError):
    """The target went away in the middle of a plan: a VM that died (QEMU killed, the
    guest powered off or panicked), an SSH link that dropped, an agent that was killed.
    ``kind`` says which ("vm_died", "link_lost", "agent_died"), ``cause`` why, in one line
    (a panic's message, QEMU's own last word, ssh's complaint); ``logs``, where there are
    any, the directory that keeps the lost machine's console and messages; ``record``,
    what else the fault's record keeps (a VM's: which signal named the cause, where a
    panic's text came from, QEMU's ending)."""

    def __init__(self, message: str, kind: str, cause: str, detail: str | None = None, logs: str | None = None,
                 record: dict | None = None):
        super().__init__(message, detail=detail)
        self.kind, self.cause, self.logs, self.record = kind, cause, logs, dict(record or {})


def clock_of(accelerator: str) -> str:
    """The clock a result was measured with: 'icount' (instruction-counted guest time:
    deterministic path cost, not speed) or 'wall'."""
    return "icount" if accelerator == "icount" else "wall"


class Target:
    kind = "?"
    #: the :func:`workbench.targets.make_target` options this target takes
    OPTIONS: tuple[str, ...] = ()

    @classmethod
    def from_spec(cls, rest: str, **options) -> "Target":
        if rest:
            raise WorkbenchError(f"target {cls.kind!r} takes no address (got {rest!r})")
        return cls(**options)

    @property
    def label(self) -> str:
        return self.kind

    def accelerator(self) -> str:
        """'native' on bare metal; 'kvm' or 'tcg' for a VM (tcg results are functional only).
        A machine reached as it is (local, ssh) says so itself once probed: a box that is
        a QEMU guest without KVM (the lab-machine VM on a host like ours) is 'tcg'."""
        facts = getattr(self, "_facts", None) or {}
        return {"kvm": "kvm", "tcg": "tcg"}.get(facts.get("virtualization"), "native")

    def clock(self) -> str:
        """'wall' (real time) or 'icount' (a VM whose clock counts executed instructions)."""
        return clock_of(self.accelerator())

    def prepare(self, params) -> None:
        """Make the target fit a run before it is reached (a VM not booted yet gets the
        topology the run's workload needs); nothing for a machine that is what it is."""

    def run_plan(self, plan: dict) -> Iterator[dict]:
        """Send a plan to the agent and yield its events as they arrive (raw: error events
        are yielded too). Each target implements this; callers use :meth:`stream` or :meth:`ask`."""
        raise NotImplementedError

    def stream(self, plan: dict, ticks: bool = False) -> Iterator[dict]:
        """The plan's events up to ``done``; an ``error`` event raises it as a one-line
        :class:`WorkbenchError` (its traceback, if any, as the detail). With ``ticks``,
        the target's ``tick`` events come through too (a sign of life while a trial
        runs, so a caller can judge a time limit); a target that died raises
        :class:`TargetLost`."""
        events = self.run_plan(plan)
        try:
            for event in events:
                kind = event.get("type")
                if kind == Event.ERROR:
                    raise WorkbenchError(event["message"], detail=event.get("traceback"))
                if kind == Event.DONE:
                    return
                if kind == Event.TICK and not ticks:
                    continue
                yield event
        finally:
            close = getattr(events, "close", None)
            if close:
                close()  # a plan given up early: the target stops it (kills its agent, cancels it)

    def ask(self, plan: dict) -> dict:
        """Send a plan that has one answer (``probe``, ``sysfs``, ...) and return that event."""
        want = ANSWER[plan["op"]]
        answer = None
        for event in self.stream(plan):
            if event.get("type") == want and answer is None:
                answer = event
        if answer is None:
            raise WorkbenchError(f"target {self.label} did not answer the {plan['op']} plan")
        return answer

    # -- when something goes wrong (see workbench.host.running.runner) ---------------------
    def recover(self, why: str = "") -> None:
        """Make the target usable again after it was lost or a trial hung: a VM is
        rebooted, an SSH link reconnected (with bounded backoff). Raises a one-line
        :class:`WorkbenchError` if it cannot."""

    def blocked(self, pids=(), timeout: float = 120.0, tids=()) -> dict:
        """The tasks stuck in the target's kernel (``blocked`` op), for a hung trial."""
        return self.ask({"op": Op.BLOCKED, "pids": list(pids), "tids": list(tids)})

    def inject(self, fault: str) -> None:
        """Test hook: make a host-side fault happen now (``kill_qemu`` for a VM)."""
        raise WorkbenchError(f"fault {fault!r} cannot be injected into target {self.label}")

    def facts(self, refresh: bool = False) -> dict:
        """What the target's agent reports about its machine (:mod:`workbench.agent.probe`),
        probed once and kept; ``refresh`` probes again (every run does: a box may have
        booted another kernel, loaded a migrator's module or been prepared again since)."""
        if refresh or getattr(self, "_facts", None) is None:
            try:
                facts = self.ask({"op": Op.PROBE})["facts"]
            except WorkbenchError as exc:
                raise WorkbenchError(f"target {self.label}: {exc}", detail=exc.detail) from None
            self._facts = facts
            facts["accelerator"] = self.accelerator()
            facts["clock"] = self.clock()
            facts["target"] = self.label
        return self._facts

    def describe(self) -> dict:
        """What a run's manifest records about the target."""
        return {"target": self.label, "kind": self.kind, "accelerator": self.accelerator(), "clock": self.clock()}
