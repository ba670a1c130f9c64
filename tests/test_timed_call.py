"""The agent's poller keeps out of a trial's timed call (workbench.agent.timed_call)."""

import threading
import time

from workbench.agent import timed_call
from workbench.agent.workloads.base import Trial


def test_the_poller_waits_until_the_timed_call_is_over_and_no_longer_than_its_limit():
    assert timed_call.wait_outside(0) and not timed_call.inside()
    woke = []
    with timed_call.section():
        assert timed_call.inside()
        poller = threading.Thread(target=lambda: woke.append((timed_call.wait_outside(5.0), time.monotonic())))
        poller.start()
        time.sleep(0.2)
        assert not woke, "the poller looked while the call ran"
        ended = time.monotonic()
    poller.join(5)
    assert woke and woke[0][0] is True and woke[0][1] >= ended
    with timed_call.section():
        t0 = time.monotonic()
        assert timed_call.wait_outside(0.1) is False           # a hung call: the poller goes on
        assert time.monotonic() - t0 >= 0.1
    assert not timed_call.inside()


def test_a_trial_s_timed_call_runs_inside_the_section():
    seen = []

    from workbench.kernelio.kernelfs import RealFS

    class Bare(Trial):
        def __init__(self):
            self.record, self.fs = {}, RealFS()
    bare = Bare()
    result, seconds = bare.timed(lambda: seen.append(timed_call.inside()) or "moved")
    assert result == "moved" and seen == [True] and seconds >= 0 and not timed_call.inside()
