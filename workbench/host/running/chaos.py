"""Test hooks: faults made to happen on purpose during a run or a sweep.

A chaos plan lists faults; each fires on the trial starts it matches::

    {"faults": [
        {"fault": "kill_qemu", "label": "c03", "times": 2},   # QEMU killed, twice, in run c03
        {"fault": "panic", "at": 7},                          # the 7th trial to start panics the guest
        {"fault": "hang", "trial": "2M-4M-n0to1-s3-r0"},      # this trial's move_pages() never returns
        {"fault": "warn", "label": "c10", "trial": "-r1"}]}   # a WARN in the kernel log

``at`` is the k-th trial start (1-based), counted over every run that uses the plan,
attempts after a fault included; ``trial`` and ``label`` are substrings of the trial key
and of the run's label; ``times`` is how often the fault fires (default once). Host-side
faults (:data:`HOST_FAULTS`: ``kill_qemu``) are done by the host when the trial starts;
the others (:data:`workbench.protocol.AGENT_FAULTS`) are set on the trial before its
plan is sent, and the agent makes them happen. A fault counts as fired when the host
hears its trial start, except ``cut_link``, which counts when its plan is sent: a link
cut from the far side may take the news of its own trial's start with it (what the box
had sent is lost in its sshd), and would otherwise be armed again and again.

The plan comes from ``runner.run(..., chaos=Chaos(...))`` or from the JSON file named by
``$WORKBENCH_CHAOS`` (which also reaches the notebooks a sweep executes); the count of
starts and of faults fired lives next to that file (``<file>.state``), so a fault fires
once across all of a sweep's processes. Never set in normal use.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from ...errors import WorkbenchError
from ...protocol import AGENT_FAULTS

HOST_FAULTS = ("kill_qemu",)
#: agent-side faults that count as fired when their plan is sent (see above)
ONCE_SENT = ("cut_link",)
ENV = "WORKBENCH_CHAOS"


class Chaos:
    def __init__(self, faults: list[dict], state_file: Path | None = None):
        for f in faults:
            if f.get("fault") not in HOST_FAULTS + AGENT_FAULTS:
                raise WorkbenchError(f"chaos fault {f.get('fault')!r} is not known; allowed: "
                                     f"{', '.join(HOST_FAULTS + AGENT_FAULTS)}")
            unknown = set(f) - {"fault", "at", "trial", "label", "times"}
            if unknown:
                raise WorkbenchError(f"chaos fault keys {', '.join(sorted(unknown))} are not known; "
                                     "allowed: fault, at, trial, label, times")
        self.faults = faults
        self.state_file = Path(state_file) if state_file else None
        self._state = {"starts": 0, "fired": {}}

    @classmethod
    def from_env(cls) -> "Chaos | None":
        path = os.environ.get(ENV)
        if not path:
            return None
        try:
            spec = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise WorkbenchError(f"${ENV}={path!r} is not a readable chaos plan (JSON): {exc}") from None
        return cls(spec.get("faults", []), Path(path + ".state"))

    # -- state, shared between processes through the state file ------------------------
    @contextmanager
    def _locked(self):
        if self.state_file is None:
            yield self._state
            return
        with open(self.state_file, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            text = f.read()
            state = json.loads(text) if text.strip() else {"starts": 0, "fired": {}}
            yield state
            f.seek(0)
            f.truncate()
            f.write(json.dumps(state))

    def state(self) -> dict:
        with self._locked() as st:
            return json.loads(json.dumps(st))

    # -- matching ------------------------------------------------------------------
    @staticmethod
    def _matches(f: dict, key: str, label: str, start_no: int) -> bool:
        if "at" in f and f["at"] != start_no:
            return False
        if "trial" in f and f["trial"] not in key:
            return False
        if "label" in f and f["label"] not in label:
            return False
        return True

    def arm(self, trials: list, label: str) -> list:
        """The trials of the next plan, with the faults they will meet set on them
        (``inject_fault``), supposing they start in order. A trial that meets a host-side
        fault is set to ``hold`` (it waits before its migration), so that the fault lands
        while it is in flight, however quick the trial."""
        st = self.state()
        left = {i: f.get("times", 1) - st["fired"].get(str(i), 0) for i, f in enumerate(self.faults)}
        out, self._armed = [], {}
        for pos, trial in enumerate(trials):
            for i, f in enumerate(self.faults):
                if left[i] > 0 and self._matches(f, trial.key(), label, st["starts"] + pos + 1):
                    left[i] -= 1
                    self._armed[trial.key()] = i
                    trial = replace(trial, inject_fault="hold" if f["fault"] in HOST_FAULTS else f["fault"])
                    break
            out.append(trial)
        sent = [i for i in self._armed.values() if self.faults[i]["fault"] in ONCE_SENT]
        if sent:
            with self._locked() as st:
                for i in sent:
                    st["fired"][str(i)] = st["fired"].get(str(i), 0) + 1
        return out

    _armed: dict = {}

    def started(self, trial, label: str) -> list[str]:
        """A trial started: count it, note the fault it carries as fired, and return the
        host-side faults to do now."""
        with self._locked() as st:
            st["starts"] += 1
            i = self._armed.pop(trial.key(), None)
            if i is None or self.faults[i]["fault"] in ONCE_SENT:
                return []
            st["fired"][str(i)] = st["fired"].get(str(i), 0) + 1
        fault = self.faults[i]["fault"]
        return [fault] if fault in HOST_FAULTS else []
