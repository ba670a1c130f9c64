"""QEMU's machine protocol (QMP) over a unix socket: the few commands the workbench sends
a running QEMU (pause and resume a VM, power it off, reset it, ask its run state).

One connection per call: QEMU greets, the client enters command mode
(``qmp_capabilities``), then each command gets one answer (``return`` or ``error``);
asynchronous ``event`` lines may come in between and are skipped.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path


def option(sock: Path) -> str:
    """QEMU's command-line option for a QMP server on ``sock`` that does not wait for a client."""
    return f"-qmp unix:{sock},server=on,wait=off"


def execute(sock: Path, *commands: str, timeout: float = 10.0) -> list[dict] | None:
    """Send ``commands`` in order; their answers (``{"return": ...}`` or ``{"error": ...}``),
    or None if QEMU could not be reached (not running, no QMP socket)."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(str(sock))
            f = s.makefile("rw")
            if "QMP" not in json.loads(f.readline() or "{}"):
                return None
            answers = []
            for c in ("qmp_capabilities", *commands):
                f.write(json.dumps({"execute": c}) + "\n")
                f.flush()
                while True:
                    line = f.readline()
                    if not line:
                        return None
                    msg = json.loads(line)
                    if "return" in msg or "error" in msg:
                        answers.append(msg)
                        break
            return answers[1:]
    except (OSError, ValueError):
        return None


def run_state(sock: Path, timeout: float = 10.0) -> str | None:
    """QEMU's run state ("running", "paused", ...), or None if it cannot be asked."""
    answers = execute(sock, "query-status", timeout=timeout)
    if not answers or "return" not in answers[0]:
        return None
    return answers[0]["return"].get("status")
