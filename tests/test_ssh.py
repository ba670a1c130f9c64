"""The ssh target end to end against a real sshd on loopback, host keys checked.

The tests that use the sshd are marked ``ssh`` and ``root``: the sshd started here logs
this user in, which it can do only running as root."""

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from workbench.errors import WorkbenchError
from workbench.targets import make_target

from .conftest import need


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    sshd_bin = shutil.which("sshd") or "/usr/sbin/sshd"
    need(os.path.exists(sshd_bin), "sshd is not installed (apt-get install openssh-server)")
    need(os.geteuid() == 0, "sshd for the test logs in as this user and must run as root here")
    d = tmp_path_factory.mktemp("sshd")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d / "host_key"], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d / "client_key"], check=True)
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    port = free_port()
    (d / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_key
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
""")
    os.makedirs("/run/sshd", exist_ok=True)
    proc = subprocess.Popen([sshd_bin, "-D", "-e", "-f", d / "sshd_config"], stderr=open(d / "log", "w"))
    for _ in range(50):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    host_pub = (d / "host_key.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    (d / "empty_known_hosts").write_text("")
    yield {"port": port, "dir": d}
    proc.terminate()
    proc.wait(10)


def target(sshd, known="known_hosts"):
    return make_target(f"ssh://root@127.0.0.1:{sshd['port']}", identity=str(sshd["dir"] / "client_key"),
                      known_hosts=str(sshd["dir"] / known), remote_python=sys.executable)


@pytest.mark.ssh
@pytest.mark.root
def test_probe_runs_the_agent_over_ssh(sshd):
    facts = target(sshd).facts()
    assert facts["kernel_release"] == os.uname().release
    assert facts["hostname"] == os.uname().nodename
    assert facts["target"] == f"ssh://root@127.0.0.1:{sshd['port']}"


@pytest.mark.ssh
@pytest.mark.root
def test_an_agent_that_is_not_this_checkouts_is_refused_with_the_prepare_hint(sshd, tmp_path):
    """A box still running the agent of an earlier checkout (here: a copy of the package with
    one agent file changed, first on the box's PYTHONPATH) is refused before any trial; the
    same copy unchanged is accepted. Host-only files do not count."""
    import workbench
    from workbench.protocol import agent_code_digest
    pkg = tmp_path / "box" / "workbench"
    shutil.copytree(os.path.dirname(workbench.__file__), pkg, ignore=shutil.ignore_patterns("__pycache__"))
    report = pkg / "host" / "analysis" / "report.py"
    report.write_text(report.read_text() + "# host-only change\n")
    (pkg / "vm" / "numa_vm.py").write_text((pkg / "vm" / "numa_vm.py").read_text() + "# host-only change\n")
    (pkg / "testing" / "fake_target.py").write_text((pkg / "testing" / "fake_target.py").read_text() + "# a fake\n")
    assert agent_code_digest(pkg) == agent_code_digest()
    box = make_target(f"ssh://root@127.0.0.1:{sshd['port']}", identity=str(sshd["dir"] / "client_key"),
                      known_hosts=str(sshd["dir"] / "known_hosts"),
                      remote_python=f"PYTHONPATH={tmp_path / 'box'} {sys.executable}")
    assert box.facts()["agent_code"] == agent_code_digest()
    (pkg / "agent" / "trial.py").write_text((pkg / "agent" / "trial.py").read_text() + "# an older agent\n")
    stale = make_target(box.label, identity=box.identity, known_hosts=box.known_hosts, remote_python=box.remote_python)
    with pytest.raises(WorkbenchError) as e:
        stale.facts()
    msg = str(e.value)
    assert msg.startswith(f"the agent on {box.label} (PYTHONPATH=") and "\n" not in msg
    assert f"({agent_code_digest(pkg)}; here {agent_code_digest()}): run `workbench target prepare {box.label}`" \
        in msg.replace("code ", "")


@pytest.mark.ssh
@pytest.mark.root
def test_unknown_host_key_is_refused_not_accepted(sshd):
    with pytest.raises(WorkbenchError, match="Host key verification failed"):
        target(sshd, "empty_known_hosts").facts()
    assert (sshd["dir"] / "empty_known_hosts").read_text() == ""   # nothing was added


@pytest.mark.ssh
@pytest.mark.root
def test_run_over_ssh_gives_the_node_check(sshd, tmp_path):
    from workbench.host.running import runner
    from workbench.host.running.plan import RunParams
    t = target(sshd)
    nodes = t.facts()["numa"]["memory_nodes"]
    if len(nodes) >= 2:
        run = runner.run(t, RunParams(folio_sizes=[4096], total_size=4 << 20, repeats=1), root=tmp_path,
                         progress=False)
        assert run.records()["verified"].all()
    else:
        with pytest.raises(WorkbenchError, match="has 1 NUMA node with memory"):
            runner.run(t, RunParams(folio_sizes=[4096], total_size=4 << 20), root=tmp_path, progress=False)


@pytest.mark.ssh
@pytest.mark.root
def test_a_link_cut_from_the_box_side_is_reconnected_and_the_trial_run_again_once(sshd, tmp_path):
    """The agent kills its own sshd session in the middle of a trial (the box drops the
    link); the host records the lost link, reconnects, and sends the trials that did not
    report again: every trial is recorded once, the cut one ran twice."""
    from workbench.host.running import runner
    from workbench.host.running.chaos import Chaos
    from workbench.host.running.plan import RunParams
    from workbench.paths import REPO
    log = tmp_path / "agent.log"
    shim = tmp_path / "python-shim"
    shim.write_text(f"#!/bin/sh\ncd {REPO} && FAKE_AGENT_LOG={log} exec {sys.executable} "
                    "-m workbench.testing.fake_agent run\n")
    shim.chmod(0o755)
    t = make_target(f"ssh://root@127.0.0.1:{sshd['port']}", identity=str(sshd["dir"] / "client_key"),
                    known_hosts=str(sshd["dir"] / "known_hosts"), remote_python=str(shim))
    params = RunParams(folio_sizes=[4096, 2 << 20], total_size=4 << 20, repeats=2)
    run = runner.run(t, params, root=tmp_path / "runs", progress=False,
                     chaos=Chaos([{"fault": "cut_link", "trial": "2M-4M-n0to1-s1-r0"}]))
    keys = sorted(run.records()["trial_key"])
    assert keys == sorted(s.key() for s in params.trials())               # each trial once
    (f,) = run.faults()
    # the trial in flight as the host saw it: the cut one, or the one before if its record
    # was still in the box's sshd when the link went (then it is run again too), or none
    # if even the first trial's start was still there
    cut, before = "kernel-2M-4M-n0to1-s1-r0", "kernel-4K-4M-n0to1-s1-r0"
    assert f["kind"] == "link_lost" and f["trial_key"] in (cut, before, None)
    assert "closed by remote host" in f["cause"]
    ran = [line.split()[1] for line in log.read_text().splitlines()]
    assert ran.count(cut) == 2 and set(ran) == set(keys)
    assert {k for k in ran if ran.count(k) > 1} <= {cut, before}
    assert len({line.split()[0] for line in log.read_text().splitlines()}) == 2   # a second agent, after the cut


def test_reconnecting_backs_off_and_gives_up_with_one_line():
    """Nothing listens: the tries back off (1, 2, 4, ... s) until the time is up."""
    from workbench.errors import WorkbenchError
    from workbench.targets.ssh import SSHTarget
    now, slept = [0.0], []

    def sleep(d):
        slept.append(d)
        now[0] += d
    t = SSHTarget("root@127.0.0.1", free_port(), reconnect_timeout=100, sleep=sleep, clock=lambda: now[0])
    with pytest.raises(WorkbenchError) as e:
        t.recover("test")
    assert slept == [1, 2, 4, 8, 15, 30, 40]
    assert str(e.value).startswith(f"lost the link to ssh://root@127.0.0.1:{t.port} (test) and could not reconnect "
                                   "within 100 s (last try: ")
    assert "\n" not in str(e.value)
