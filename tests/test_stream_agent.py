"""The stream every target's agent talks through (workbench.targets.local.stream_agent)."""

import sys

import pytest

from workbench.targets.base import TargetLost
from workbench.targets.local import stream_agent


def test_an_agent_that_ends_before_reading_its_plan_is_a_lost_target():
    """ssh that cannot connect exits before it reads the plan: writing the plan then breaks
    the pipe, which must end as TargetLost with the command's own last word, not as a
    BrokenPipeError traceback. The plan is larger than a pipe holds, so the write always
    meets the closed end."""
    cmd = [sys.executable, "-c", "import os, sys; os.close(0); print('ssh: connect: refused', file=sys.stderr); sys.exit(255)"]
    plan = {"op": "probe", "padding": "x" * (1 << 20)}
    with pytest.raises(TargetLost) as e:
        list(stream_agent(cmd, plan, "target ssh://x", lost_status=255))
    assert e.value.kind == "link_lost"
    assert e.value.cause == "ssh: connect: refused"
    assert str(e.value) == "target ssh://x: the link to it dropped: ssh: connect: refused"
