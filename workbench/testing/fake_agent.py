"""An agent for tests over a real sshd: the real agent loop (:mod:`workbench.agent.main`,
its trial lock, its handling of a broken link) with the facts of a two-node machine and
trials that only pretend to migrate, so that a host with one NUMA node can test for
real what crosses the link: a link cut from the box's side, the reconnection, the re-run.

``python -m workbench.testing.fake_agent run``; every trial it runs is appended to $FAKE_AGENT_LOG."""

import copy
import os
import sys
import time

from workbench.agent import fault_hooks, main
from workbench.kernelio.kernelfs import RealFS

from .fake_target import FACTS, fake_record


def fake_run_trial(spec, fs):
    log = os.environ.get("FAKE_AGENT_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {spec.key()}\n")
    if spec.inject_fault == "cut_link":
        fault_hooks.cut_ssh_link(RealFS())
        time.sleep(1)  # a trial goes on for a while after the link is gone
    return fake_record(spec)


if __name__ == "__main__":
    main.run_trial = fake_run_trial
    # the fake machine's facts, from this checkout's agent code (the ssh target checks it)
    main.probe.collect = lambda fs: {**copy.deepcopy(FACTS), "agent_code": main.probe.agent_code_digest()}
    sys.exit(main.main(sys.argv[1:]))
