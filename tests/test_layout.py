"""The line between target and host, held in both directions: what runs on a target
(workbench.agent) and the modules both sides share never import the host side
(workbench.host, workbench.targets), and the host side never imports the agent — it reads
the shared catalogues (workbench.catalogue) and the kernel-facing library
(workbench.kernelio), and asks a target's agent for the rest.

Every import is read from the source, function-level (lazy) imports included, so a
target-side module cannot reach the host side through a detour either.

And no test module imports another: what tests share is a fixture in tests/conftest.py
or a helper in workbench.testing."""

import ast
from pathlib import Path

import workbench

PKG = Path(workbench.__file__).parent
SHARED = {"workbench", "workbench.protocol", "workbench.errors", "workbench.units", "workbench.paths"}
#: shared packages: every module in them is shared
SHARED_PACKAGES = ("workbench.catalogue", "workbench.kernelio")
HOST_SIDE = ("workbench.host", "workbench.targets", "workbench.vm")


def shared(module: str) -> bool:
    return module in SHARED or module.startswith(tuple(p + "." for p in SHARED_PACKAGES)) \
        or module in SHARED_PACKAGES


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            # `from . import x` may name a submodule: judge the submodule
            out += [(node.lineno, f"{mod}.{a.name}" if (PKG.parent / Path(*f"{mod}.{a.name}".split("."))).with_suffix(
                ".py").exists() or (PKG.parent / Path(*f"{mod}.{a.name}".split(".")) / "__init__.py").exists()
                else mod) for a in node.names]
    return [(line, m) for line, m in out if m == "workbench" or m.startswith("workbench.")]


def allowed(importer: str, imported: str) -> bool:
    if shared(importer):
        return shared(imported)
    if importer.startswith("workbench.agent"):
        return shared(imported) or imported.startswith("workbench.agent")
    if importer.startswith(HOST_SIDE):
        return not imported.startswith("workbench.agent")
    return True     # workbench.testing runs an agent in-process for the tests


def test_no_target_side_module_imports_the_host_side():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        importer = module_name(path)
        for line, imported in imports(path):
            if not allowed(importer, imported):
                bad.append(f"{path.relative_to(PKG.parent)}:{line}: {importer} imports {imported}")
    assert not bad, "target-side or shared modules reach the host side:\n" + "\n".join(bad)


def test_the_host_side_reads_catalogues_not_target_code():
    """What the host knows about workloads and migrators comes from workbench.catalogue,
    what it reads of a kernel (its own, for doctor and QEMU) from workbench.kernelio; the
    rest it asks a target's agent."""
    bad = [f"{path.relative_to(PKG.parent)}:{line}: {module_name(path)} imports {imported}"
           for path in sorted(PKG.rglob("*.py")) if module_name(path).startswith(HOST_SIDE)
           for line, imported in imports(path) if not allowed(module_name(path), imported)]
    assert not bad, "host-side modules import target code:\n" + "\n".join(bad)


def test_the_agent_takes_its_workloads_from_the_catalogue():
    """The agent runs exactly the catalogue's workloads, in its order, each class with
    its entry's properties."""
    from workbench.agent import workloads as agent_workloads
    from workbench.catalogue import workloads as catalogue
    assert agent_workloads.names() == catalogue.names()
    for name in catalogue.names():
        w = agent_workloads.get(name)
        assert w.info is catalogue.get(name) and (w.name, w.reason, w.needs_dst) == (
            name, catalogue.get(name).reason, catalogue.get(name).needs_dst)


def test_the_package_does_not_import_its_test_fakes():
    """workbench.testing is for tests and the notebooks they execute: no other module of
    the package imports it, so nothing measured can depend on a fake."""
    bad = [f"{path.relative_to(PKG.parent)}:{line}: {module_name(path)} imports {imported}"
           for path in sorted(PKG.rglob("*.py")) if not module_name(path).startswith("workbench.testing")
           for line, imported in imports(path) if imported.startswith("workbench.testing")]
    assert not bad, "modules outside workbench.testing import it:\n" + "\n".join(bad)


def test_the_rule_sees_a_lazy_detour(tmp_path):
    """The check can fail: a function-level import from the agent to the host is caught."""
    src = PKG / "agent" / "_layout_probe.py"
    src.write_text("def f():\n    from ..host.running import runner\n    return runner\n")
    try:
        found = [m for _, m in imports(src)]
        assert "workbench.host.running.runner" in found and not allowed("workbench.agent._layout_probe", found[0])
    finally:
        src.unlink()
    # and the other direction: the host reaching into the agent, a shared module into either
    assert not allowed("workbench.host.running.plan", "workbench.agent.workloads")
    assert not allowed("workbench.targets.vm", "workbench.agent.probe")
    assert not allowed("workbench.kernelio.thp", "workbench.agent.trial")
    assert allowed("workbench.host.running.plan", "workbench.catalogue.workloads")
    assert allowed("workbench.agent.trial", "workbench.kernelio.kernelfs")


TESTS = Path(__file__).resolve().parent


def imports_of_test_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in ``path`` (a file of the ``tests`` package) that
    names a test module, function-level imports included: ``from .test_x import y``,
    ``from tests.test_x import y``, ``from . import test_x``, ``import tests.test_x``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level <= 1:
            mod = ".".join(["tests"] * node.level + ([node.module] if node.module else []))
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        out += [(node.lineno, n) for n in names if is_test_module(n)]
    return out


def is_test_module(name: str) -> bool:
    parts = name.split(".")
    return (len(parts) == 2 and parts[0] == "tests" and parts[1].startswith("test_")) or (
        len(parts) == 1 and parts[0].startswith("test_") and (TESTS / f"{parts[0]}.py").exists())



def test_no_test_module_imports_another():
    """What tests share is a fixture in tests/conftest.py or a helper in workbench.testing:
    a test module importing another runs that module's import-time setup, ties the two
    together and re-exports tests under a second name."""
    bad = [f"tests/{path.name}:{line}: imports {module}"
           for path in sorted(TESTS.glob("test_*.py")) for line, module in imports_of_test_modules(path)]
    assert not bad, "test modules import other test modules (share through conftest.py or " \
                    "workbench.testing instead):\n" + "\n".join(bad)


def test_the_test_import_rule_sees_every_spelling(tmp_path):
    """The check can fail: each way of importing a test module is caught, and conftest,
    workbench.testing and the standard library are not."""
    probe = tmp_path / "test_probe.py"
    probe.write_text("from .test_report import KNOWN\nfrom tests.test_cli import run_cli\n"
                     "from . import test_cost\nimport tests.test_sweep\n"
                     "def f():\n    from .test_notebooks import make_conformance_run\n"
                     "from .conftest import need\nfrom workbench.testing.runs import make_runs\n"
                     "import unittest\nfrom . import conftest\n")
    found = {m for _, m in imports_of_test_modules(probe)}
    assert found == {"tests.test_report", "tests.test_cli", "tests.test_cost", "tests.test_sweep",
                     "tests.test_notebooks"}, found
