"""The ssh target end to end against a real sshd on loopback, host keys checked."""

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


def test_probe_runs_the_agent_over_ssh(sshd):
    facts = target(sshd).facts()
    assert facts["kernel_release"] == os.uname().release
    assert facts["hostname"] == os.uname().nodename
    assert facts["target"] == f"ssh://root@127.0.0.1:{sshd['port']}"


def test_unknown_host_key_is_refused_not_accepted(sshd):
    with pytest.raises(WorkbenchError, match="Host key verification failed"):
        target(sshd, "empty_known_hosts").facts()
    assert (sshd["dir"] / "empty_known_hosts").read_text() == ""   # nothing was added


def test_run_over_ssh_gives_the_node_check(sshd, tmp_path):
    from workbench.host import runner
    from workbench.host.plan import RunParams
    t = target(sshd)
    nodes = t.facts()["numa"]["memory_nodes"]
    if len(nodes) >= 2:
        run = runner.run(t, RunParams(folio_sizes=[4096], total_size=4 << 20, repeats=1), root=tmp_path,
                         progress=False)
        assert run.records()["verified"].all()
    else:
        with pytest.raises(WorkbenchError, match="has 1 NUMA node with memory"):
            runner.run(t, RunParams(folio_sizes=[4096], total_size=4 << 20), root=tmp_path, progress=False)
