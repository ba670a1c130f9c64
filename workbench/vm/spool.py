"""The directory the NUMA VM's host and guest talk through (shared read-write with the
guest). The host drops a plan as ``requests/<id>.json`` (written aside and renamed, so
the agent never reads half a plan); the agent answers in ``responses/<id>.jsonl``, one
JSON event per line, the last one ``done``; ``ready.json`` is the agent's word that it
serves the boot whose token it names. ``owners/<id>.json`` names the host process that
waits for a plan, so a plan whose host went away can be cancelled by the next one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from .process import alive, boot_id, start_time


class Spool:
    def __init__(self, directory: Path):
        self.dir = directory
        self.requests = directory / "requests"
        self.responses = directory / "responses"
        self.owners = directory / "owners"

    def reset(self) -> None:
        """Empty for a new boot: no requests, answers or ready file of an earlier one."""
        for d in (self.requests, self.responses):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
        for f in ("ready.json", "stopped"):
            (self.dir / f).unlink(missing_ok=True)

    def ready(self) -> dict | None:
        """The agent's ready file: its token and the facts it found at boot."""
        try:
            return json.loads((self.dir / "ready.json").read_text())
        except (OSError, ValueError):
            return None

    def drop(self, plan: dict, request_id: str) -> Path:
        """Put a plan down for the agent; returns where its answer will be."""
        req = self.requests / f"{request_id}.json"
        tmp = req.with_suffix(".tmp")
        tmp.write_text(json.dumps(plan))
        tmp.rename(req)
        return self.responses / f"{request_id}.jsonl"

    def cancel(self, request_id: str) -> None:
        """Stop a plan between two trials (the agent answers it with an error)."""
        self.drop({"op": "cancel", "request": request_id}, f"{request_id}-cancel")

    def finished(self, request_id: str) -> bool:
        done = self.responses / f"{request_id}.jsonl"
        try:
            return '"done"' in done.read_text()[-200:]
        except OSError:
            return False

    @contextlib.contextmanager
    def owned(self, request_id: str):
        """While the block runs, this process is the plan's owner."""
        owner = self.owners / f"{request_id}.json"
        owner.parent.mkdir(parents=True, exist_ok=True)
        owner.write_text(json.dumps({"pid": os.getpid(), "boot_id": boot_id(), "start": start_time(os.getpid())}))
        try:
            yield
        finally:
            owner.unlink(missing_ok=True)

    def has_owners(self) -> bool:
        return self.owners.is_dir() and any(self.owners.glob("*.json"))

    def cancel_orphans(self) -> list[str]:
        """Cancel the unfinished plans whose owner is gone (killed, its machine rebooted),
        so the guest does not go on with trials nobody reads; returns their ids."""
        gone = []
        for f in sorted(self.owners.glob("*.json")) if self.owners.is_dir() else ():
            try:
                o = json.loads(f.read_text())
            except (OSError, ValueError):
                o = {}
            if not alive(o.get("pid", 0), o.get("boot_id"), o.get("start")):
                if not self.finished(f.stem):
                    self.cancel(f.stem)
                    gone.append(f.stem)
                f.unlink(missing_ok=True)
        return gone


class Answer:
    """A plan's answer file, read as it grows: :meth:`new_events` returns the events
    written since the last call (a line still being written waits for the next)."""

    def __init__(self, path: Path):
        self.path = path
        self._offset = 0
        self._partial = ""

    def new_events(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path) as f:
            f.seek(self._offset)
            chunk = f.read()
            self._offset = f.tell()
        *lines, self._partial = (self._partial + chunk).split("\n")
        return [json.loads(line) for line in lines if line.strip()]
