"""This host. Trials run in a child ``python -m workbench.agent run``."""

from __future__ import annotations

import json
import subprocess
import sys

from ..errors import WorkbenchError
from . import register
from .base import Target


def stream_agent(cmd: list[str], plan: dict, who: str):
    """Run an agent command, feed it the plan, yield its JSON events as they come."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    proc.stdin.write(json.dumps(plan))
    proc.stdin.close()
    done = False
    for line in proc.stdout:
        line = line.strip()
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        done |= event.get("type") == "done"
        yield event
    stderr = proc.stderr.read()
    rc = proc.wait()
    if not done:
        tail = [ln for ln in stderr.strip().splitlines() if ln.strip()][-1:] or [f"exit status {rc}"]
        raise WorkbenchError(f"{who}: agent ended without finishing: {tail[0]}", detail=stderr[-4000:])


@register("local")
class LocalTarget(Target):
    def run_plan(self, plan):
        yield from stream_agent([sys.executable, "-m", "workbench.agent", "run"], plan, "target local")
