"""A host reached over SSH, running the same agent there.

Key-based only (BatchMode) and host keys checked (StrictHostKeyChecking=yes): a host
whose key is not in known_hosts is refused, never added. The remote needs this package
importable by ``--remote-python`` (default: the venv ``workbench target prepare`` installed
it into on that box, see :func:`workbench.targets.lab.prepared_python`; else ``python3``),
and the same agent code as this checkout: a box whose agent differs (prepared before the
last change here) is refused with a pointer to ``workbench target prepare``, since its
trials and verification would not be the ones this checkout runs.

A link that drops in the middle of a plan (ssh exits 255) raises
:class:`~.base.TargetLost`; :meth:`SSHTarget.recover` then reconnects with backoff
(:data:`BACKOFF` seconds between tries, for at most ``reconnect_timeout`` seconds), and
the runner sends the trials that did not report again.
"""

from __future__ import annotations

import time

from ..errors import WorkbenchError
from ..protocol import agent_code_digest
from . import register
from .base import Target
from .local import stream_agent

#: seconds between reconnection attempts (the last one repeats)
BACKOFF = (1, 2, 4, 8, 15, 30, 60)
RECONNECT_TIMEOUT = 600.0


@register("ssh")
class SSHTarget(Target):
    OPTIONS = ("identity", "known_hosts", "remote_python")

    def __init__(self, host: str, port: int | None = None, identity: str | None = None,
                 known_hosts: str | None = None, remote_python: str | None = None,
                 reconnect_timeout: float = RECONNECT_TIMEOUT, sleep=time.sleep, clock=time.time):
        self.host, self.port = host, port
        self.identity, self.known_hosts = identity, known_hosts
        self.remote_python = remote_python or "python3"
        self.reconnect_timeout = reconnect_timeout
        self._sleep, self._clock = sleep, clock

    @classmethod
    def from_spec(cls, rest: str, **options):
        if not rest:
            raise WorkbenchError("target ssh needs an address: ssh://[user@]host[:port]")
        host, port = rest, None
        if ":" in rest.rsplit("@", 1)[-1]:
            host, _, p = rest.rpartition(":")
            if not p.isdigit():
                raise WorkbenchError(f"ssh port {p!r} is not a number (ssh://[user@]host[:port])")
            port = int(p)
        if options.get("remote_python") is None:
            # a box that `workbench target prepare` prepared runs the agent from its venv
            from .lab import prepared_python
            options["remote_python"] = prepared_python(cls(host, port).label)
        return cls(host, port, **options)

    @property
    def label(self):
        return f"ssh://{self.host}" + (f":{self.port}" if self.port else "")

    def ssh_command(self, *remote: str) -> list[str]:
        cmd = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=15"]
        if self.known_hosts:
            cmd += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.identity:
            cmd += ["-i", self.identity, "-o", "IdentitiesOnly=yes"]
        if self.port:
            cmd += ["-p", str(self.port)]
        return cmd + [self.host, "--", *remote]

    def run_plan(self, plan, timeout: float | None = None):
        yield from stream_agent(self.ssh_command(self.remote_python, "-m", "workbench.agent", "run"),
                                plan, f"target {self.label}", lost_status=255, timeout=timeout)

    def blocked(self, pids=(), timeout: float = 120.0, tids=()) -> dict:
        answer = None
        for event in self.run_plan({"op": "blocked", "pids": list(pids), "tids": list(tids)}, timeout=timeout):
            if event.get("type") == "error":
                raise WorkbenchError(event["message"])
            if event.get("type") == "blocked":
                answer = event
        if answer is None:
            raise WorkbenchError(f"target {self.label} did not answer the blocked plan")
        return answer

    def facts(self, refresh: bool = False) -> dict:
        facts = super().facts(refresh)
        stale = agent_mismatch(facts, self.label, self.remote_python)
        if stale:
            raise WorkbenchError(stale)
        return facts

    def recover(self, why: str = "") -> None:
        """Reconnect: probe again and again, with backoff, until it answers or
        ``reconnect_timeout`` seconds have passed."""
        start, attempt, last = self._clock(), 0, None
        while True:
            try:
                self.ask({"op": "probe"})
                return
            except WorkbenchError as exc:
                last = str(exc)
            waited = self._clock() - start
            if waited >= self.reconnect_timeout:
                raise WorkbenchError(f"lost the link to {self.label}{f' ({why})' if why else ''} and could not "
                                     f"reconnect within {waited:.0f} s (last try: {last})")
            self._sleep(min(BACKOFF[min(attempt, len(BACKOFF) - 1)], max(0.0, self.reconnect_timeout - waited)))
            attempt += 1

    def describe(self):
        return {**super().describe(), "host": self.host, "port": self.port, "remote_python": self.remote_python}


def agent_mismatch(facts: dict, label: str, python: str) -> str | None:
    """Why the agent that answered the probe is not this checkout's, in one line, or None."""
    ours, theirs = agent_code_digest(), facts.get("agent_code")
    if theirs == ours:
        return None
    what = f"code {theirs}" if theirs else "a version from before agents reported their code"
    return (f"the agent on {label} ({python}) is not this checkout's ({what}; here {ours}): run "
            f"`workbench target prepare {label}` to update it")
