"""The agent's timed section: while a trial's timed call runs, the agent's own threads
keep out of its way.

Under ``--accel icount`` every instruction of the guest counts in a call's time, not only
the caller's: a VM agent's spool poller that wakes during the call (every
:data:`workbench.agent.main.POLL` seconds while a plan runs) and reads the spool over
virtio adds 0.7-1 ms to an 18 ms call, 4-7% (seen in a trace of sched_switch and irq
events inside the call: the agent's main thread, woken by its sleep's timer, and the
virtio interrupts of its read). So :func:`section` marks the call, and the poller waits
(:func:`wait_outside`) until it is over, at most a few seconds (a hung call is answered
all the same: ``blocked`` is served once that wait ends).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

_OUTSIDE = threading.Event()
_OUTSIDE.set()


@contextmanager
def section():
    """The timed call itself."""
    _OUTSIDE.clear()
    try:
        yield
    finally:
        _OUTSIDE.set()


def inside() -> bool:
    return not _OUTSIDE.is_set()


def wait_outside(limit: float) -> bool:
    """Wait until no timed call runs, ``limit`` seconds at most; False if one still does."""
    return _OUTSIDE.wait(limit)
