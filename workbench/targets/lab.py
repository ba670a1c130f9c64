"""Lab boxes over SSH: prepare one for the agent, and put a kernel on it.

Works on any ``ssh://`` target (an :class:`~workbench.targets.ssh.SSHTarget`): the same
options (key, known_hosts checked, never auto-accepted), nothing specific to the
lab-machine VM.
"""

from __future__ import annotations

import shlex
import subprocess

from ..errors import WorkbenchError


class Remote:
    """Commands and file copies on an SSH target, with the target's own ssh options."""

    def __init__(self, target, connect_timeout: int = 15):
        self.target = target
        self.connect_timeout = connect_timeout

    @property
    def label(self) -> str:
        return self.target.label

    def argv(self, command: str) -> list[str]:
        cmd = self.target.ssh_command("sh", "-c", shlex.quote(command))
        # ssh_command sets ConnectTimeout=15; ours goes first and so wins
        return [cmd[0], "-o", f"ConnectTimeout={self.connect_timeout}", "-o", "ServerAliveInterval=10",
                "-o", "ServerAliveCountMax=3", *cmd[1:]]

    def run(self, command: str, timeout: float = 120, check: bool = True, input: bytes | str | None = None,
            what: str | None = None) -> subprocess.CompletedProcess:
        """Run ``command`` (a shell line) on the box. Failures are one line."""
        binary = isinstance(input, bytes)
        try:
            proc = subprocess.run(self.argv(command), capture_output=True, timeout=timeout, input=input,
                                  text=not binary)
        except subprocess.TimeoutExpired:
            raise WorkbenchError(f"{self.label}: {what or command!r} did not finish within {timeout:.0f}s") from None
        if check and proc.returncode != 0:
            err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode(errors="replace")
            lines = [ln for ln in err.strip().splitlines() if ln.strip()]
            if proc.returncode == 255 and lines:
                raise WorkbenchError(f"{self.label}: ssh: {lines[-1]}", detail=err)
            raise WorkbenchError(f"{self.label}: {what or command!r} failed (exit {proc.returncode})"
                                 + (f": {lines[-1]}" if lines else ""), detail=err)
        return proc

    def ok(self, command: str, timeout: float = 60) -> bool:
        try:
            return self.run(command, timeout=timeout, check=False).returncode == 0
        except WorkbenchError:
            return False

    def out(self, command: str, timeout: float = 120, **kw) -> str:
        return self.run(command, timeout=timeout, **kw).stdout.strip()
