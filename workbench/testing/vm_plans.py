"""Plans the VM tests send to a booted target, and the checks they share."""

from workbench.protocol import TrialSpec


def run_trials(target, *specs: TrialSpec) -> tuple[list[dict], list[str]]:
    """The records and the error messages of one plan of trials."""
    records, errors = [], []
    for event in target.run_plan({"op": "trials", "trials": [s.to_dict() for s in specs]}):
        if event["type"] == "record":
            records.append(event["record"])
        elif event["type"] == "error":
            errors.append(event["message"])
    return records, errors


def sysfs(target, reads=(), writes=()) -> dict:
    """{'reads': {path: text}, 'writes': [{path, value, error, before, after}]}."""
    for event in target.run_plan({"op": "sysfs", "reads": list(reads), "writes": [list(w) for w in writes]}):
        assert event["type"] != "error", event
        if event["type"] == "sysfs":
            return event["results"]
    raise AssertionError("no sysfs result")


def sysfs_reads(target, paths) -> dict[str, str]:
    return sysfs(target, paths)["reads"]


def contention(target, **args) -> dict:
    """Processes migrating through dcbm at once (workbench.agent.contention)."""
    res = None
    for event in target.run_plan({"op": "contention", "args": args}):
        assert event["type"] != "error", event
        if event["type"] == "contention":
            res = event["result"]
    assert res is not None, "no contention result"
    return res


def assert_writes_refused(target, path, values):
    """Each value written to ``path`` is rejected by the kernel and changes nothing."""
    for w in sysfs(target, writes=[[path, v] for v in values])["writes"]:
        assert w["error"] and "rejected" in w["error"], f"{path} accepted {w['value']!r}"
        assert w["after"] == w["before"], f"{path} changed after refusing {w['value']!r}"
