"""Shell commands and file copies on a box over the SSH target's own connection options
(host key checked, key-based): what preparing a box, packaging on its config and
installing a kernel there are made of."""

from __future__ import annotations

import io
import shlex
import subprocess
import tarfile
from pathlib import Path

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
        # ssh_command sets ConnectTimeout=15; ours comes first and so wins
        return [cmd[0], "-o", f"ConnectTimeout={self.connect_timeout}", "-o", "ServerAliveInterval=10",
                "-o", "ServerAliveCountMax=3", *cmd[1:]]

    def run(self, command: str, timeout: float = 120, check: bool = True, input: bytes | str | None = None,
            what: str | None = None) -> subprocess.CompletedProcess:
        """Run ``command`` (a shell line) on the box. Failures are one line."""
        binary = isinstance(input, bytes)
        try:
            proc = subprocess.run(self.argv(command), capture_output=True, timeout=timeout, input=input,
                                  text=not binary, stdin=None if input is not None else subprocess.DEVNULL)
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

    def put_file(self, local: Path, remote: str, timeout: float = 600) -> None:
        """Copy one file (``cat`` over the connection; renamed into place when complete)."""
        q = shlex.quote(remote)
        with open(local, "rb") as f:
            data = f.read()
        self.run(f"mkdir -p $(dirname {q}) && cat >{q}.part && mv {q}.part {q}", input=data, timeout=timeout,
                 what=f"copy {Path(local).name}")

    def put_tree(self, local: Path, remote: str, timeout: float = 900) -> None:
        """Copy a directory's files into ``remote`` (replaced whole) as a tar stream."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for p in sorted(Path(local).iterdir()):
                tar.add(p, arcname=p.name)
        q = shlex.quote(remote)
        self.run(f"rm -rf {q}.part && mkdir -p {q}.part && tar -C {q}.part -xf - && rm -rf {q} && mv {q}.part {q}",
                 input=buf.getvalue(), timeout=timeout, what=f"copy {Path(local).name}/")
