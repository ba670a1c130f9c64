"""Lab boxes from the command line (issue 14), without a VM or a box: the library
functions are replaced, and what the commands pass them and print is checked."""

from __future__ import annotations

import json

import pytest

from workbench.targets import lab, make_target


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache of its own, so that no record of a real box is read or written."""
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ---- the venv prepare installed is the SSH target's default python --------------------------

def test_a_prepared_box_runs_the_agent_from_its_venv(cache):
    venv = "/root/.migration-workbench/venv/bin/python"
    path = lab._record_here({"target": "ssh://root@box:2222", "prepared": True, "remote_python": venv})
    assert path.parent == cache / "lab" / "boxes"
    assert lab.prepared_python("ssh://root@box:2222") == venv
    assert make_target("ssh://root@box:2222").remote_python == venv
    assert make_target("ssh://root@box:2222").describe()["remote_python"] == venv


def test_an_explicit_remote_python_wins_over_the_record(cache):
    lab._record_here({"target": "ssh://root@box", "prepared": True, "remote_python": "/venv/bin/python"})
    assert make_target("ssh://root@box", remote_python="/usr/bin/python3.11").remote_python == "/usr/bin/python3.11"


@pytest.mark.parametrize("spec", ["ssh://box", "ssh://root@box:22", "ssh://admin@box"])
def test_another_address_or_login_is_another_box(cache, spec):
    lab._record_here({"target": "ssh://root@box", "prepared": True, "remote_python": "/venv/bin/python"})
    assert lab.prepared_python(spec) is None
    assert make_target(spec).remote_python == "python3"


def test_a_box_that_could_not_be_prepared_keeps_python3(cache):
    lab._record_here({"target": "ssh://root@box", "prepared": False, "missing": ["no python3"]})
    assert lab.prepared_python("ssh://root@box") is None
    (cache / "lab" / "boxes" / "root_box.json").write_text("{not json")
    assert lab.prepared_python("ssh://root@box") is None
    assert make_target("ssh://root@box").remote_python == "python3"
