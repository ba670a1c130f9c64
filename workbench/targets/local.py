"""This host. Trials run in a child ``python -m workbench.agent run``."""

from __future__ import annotations

import contextlib
import json
import selectors
import subprocess
import sys
import time

from ..errors import WorkbenchError
from . import register
from .base import Target, TargetLost

#: a ``tick`` event after this many seconds without a line from the agent
TICK = 2.0


def stream_agent(cmd: list[str], plan: dict, who: str, lost_kind: str = "agent_died",
                 lost_status: int | None = None, timeout: float | None = None):
    """Run an agent command, feed it the plan, yield its JSON events as they come (and a
    ``tick`` now and then while it is silent).

    An agent that ends without ``done`` raises :class:`TargetLost` (``lost_kind``; an
    exit status of ``lost_status`` says the link dropped, as ssh's 255 does), one that
    says nothing for ``timeout`` seconds is killed. A consumer that stops early (a hung
    trial) kills the agent."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdin.write(json.dumps(plan).encode())
        proc.stdin.close()
    except BrokenPipeError:
        # it ended before reading its plan (ssh that cannot connect): what it said and its
        # exit status, read below, tell why
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
    done = False
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    sel.register(proc.stderr, selectors.EVENT_READ)
    buffer, errors, last, open_streams = b"", b"", time.time(), 2
    try:
        while open_streams:
            ready = sel.select(TICK)
            if not ready:
                if timeout is not None and time.time() - last > timeout:
                    proc.kill()
                    raise WorkbenchError(f"{who}: the agent said nothing for {timeout:.0f} s; stopped it")
                yield {"type": "tick"}
                continue
            chunk = b""
            for key, _ in ready:
                data = key.fileobj.read1(65536)
                if not data:
                    sel.unregister(key.fileobj)
                    open_streams -= 1
                elif key.fileobj is proc.stderr:
                    errors = (errors + data)[-65536:]
                else:
                    chunk += data
            if not chunk:
                continue
            last = time.time()
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                line = line.strip()
                if not line.startswith(b"{"):
                    continue
                event = json.loads(line)
                done |= event.get("type") == "done"
                yield event
        stderr = errors.decode(errors="replace")
        rc = proc.wait()
        if not done:
            tail = [ln for ln in stderr.strip().splitlines() if ln.strip()][-1:] or [f"exit status {rc}"]
            kind = "link_lost" if lost_status is not None and rc == lost_status else lost_kind
            what = "the link to it dropped" if kind == "link_lost" else "its agent ended without finishing"
            raise TargetLost(f"{who}: {what}: {tail[0]}", kind=kind, cause=tail[0], detail=stderr[-4000:])
    finally:
        sel.close()
        if proc.poll() is None:
            if not done:
                proc.kill()  # given up by the consumer (a hung trial, Ctrl-C): do not leave it running
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass  # stuck in the kernel (state D): it cannot be reaped now


@register("local")
class LocalTarget(Target):
    def run_plan(self, plan):
        yield from stream_agent([sys.executable, "-m", "workbench.agent", "run"], plan, "target local")
