"""The agent answers every plan with events and a final "done", even when an op breaks:
in a VM the agent is the guest's only process, and its death powers the VM off."""

from workbench.agent.main import execute
from workbench.agent.kernelfs import FakeFS


def run(plan):
    events = []
    execute(plan, events.append, fs=FakeFS())
    return events


def test_a_broken_op_is_reported_and_the_agent_lives_on():
    events = run({"op": "stress", "args": {"no_such_argument": 1}})
    assert [e["type"] for e in events] == ["error", "done"]
    assert "stress failed: TypeError" in events[0]["message"] and "no_such_argument" in events[0]["message"]
    assert "Traceback" in events[0]["traceback"]


def test_a_refused_op_is_one_line():
    events = run({"op": "stress", "args": {"seconds": 1}})  # a kernel without our interface
    assert [e["type"] for e in events] == ["error", "done"]
    assert events[0]["message"].startswith("the churn test needs the workbench kernel interface")
    assert "traceback" not in events[0]


def test_unknown_op():
    events = run({"op": "nope"})
    assert events[0]["type"] == "error" and "unknown plan op 'nope'" in events[0]["message"]
