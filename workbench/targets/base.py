"""The interface every target implements."""

from __future__ import annotations

from typing import Iterator

from ..errors import WorkbenchError


class Target:
    kind = "?"

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

    def run_plan(self, plan: dict) -> Iterator[dict]:
        """Send a plan to the agent and yield its events as they arrive."""
        raise NotImplementedError

    def facts(self) -> dict:
        if getattr(self, "_facts", None) is None:
            facts = None
            for event in self.run_plan({"op": "probe"}):
                if event["type"] == "facts":
                    facts = event["facts"]
                elif event["type"] == "error":
                    raise WorkbenchError(f"target {self.label}: {event['message']}")
            if facts is None:
                raise WorkbenchError(f"target {self.label} answered the probe without facts")
            facts["accelerator"] = self.accelerator()
            facts["target"] = self.label
            self._facts = facts
        return self._facts

    def describe(self) -> dict:
        """What a run's manifest records about the target."""
        return {"target": self.label, "kind": self.kind, "accelerator": self.accelerator()}
