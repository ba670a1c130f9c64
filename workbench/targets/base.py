"""The interface every target implements, and the one way to talk to its agent."""

from __future__ import annotations

from typing import Iterator

from ..errors import WorkbenchError
from ..protocol import ANSWER, Event, Op


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
        """'native' on bare metal; 'kvm' or 'tcg' for a VM (tcg results are functional only)."""
        return "native"

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

    def stream(self, plan: dict) -> Iterator[dict]:
        """The plan's events up to ``done``; an ``error`` event raises it as a one-line
        :class:`WorkbenchError` (its traceback, if any, as the detail)."""
        for event in self.run_plan(plan):
            kind = event.get("type")
            if kind == Event.ERROR:
                raise WorkbenchError(event["message"], detail=event.get("traceback"))
            if kind == Event.DONE:
                return
            yield event

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

    def facts(self) -> dict:
        if getattr(self, "_facts", None) is None:
            try:
                facts = self.ask({"op": Op.PROBE})["facts"]
            except WorkbenchError as exc:
                raise WorkbenchError(f"target {self.label}: {exc}", detail=exc.detail) from None
            facts["accelerator"] = self.accelerator()
            facts["clock"] = self.clock()
            facts["target"] = self.label
            self._facts = facts
        return self._facts

    def describe(self) -> dict:
        """What a run's manifest records about the target."""
        return {"target": self.label, "kind": self.kind, "accelerator": self.accelerator(), "clock": self.clock()}
