"""A host reached over SSH, running the same agent there.

Key-based only (BatchMode) and host keys checked (StrictHostKeyChecking=yes): a host
whose key is not in known_hosts is refused, never added. The remote needs this package
importable by ``--remote-python`` (default ``python3``).
"""

from __future__ import annotations

from ..errors import WorkbenchError
from . import register
from .base import Target
from .local import stream_agent


@register("ssh")
class SSHTarget(Target):
    OPTIONS = ("identity", "known_hosts", "remote_python")

    def __init__(self, host: str, port: int | None = None, identity: str | None = None,
                 known_hosts: str | None = None, remote_python: str | None = None):
        self.host, self.port = host, port
        self.identity, self.known_hosts = identity, known_hosts
        self.remote_python = remote_python or "python3"

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

    def run_plan(self, plan):
        yield from stream_agent(self.ssh_command(self.remote_python, "-m", "workbench.agent", "run"),
                                plan, f"target {self.label}")

    def describe(self):
        return {**super().describe(), "host": self.host, "port": self.port}
