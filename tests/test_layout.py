"""The line between target and host: what runs on a target (workbench.agent) and the
modules both sides share never import the host side (workbench.host, workbench.targets).

Every import is read from the source, function-level (lazy) imports included, so a
target-side module cannot reach the host side through a detour either."""

import ast
from pathlib import Path

import workbench

PKG = Path(workbench.__file__).parent
SHARED = {"workbench", "workbench.protocol", "workbench.errors", "workbench.units", "workbench.paths"}


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
    if importer in SHARED:
        return imported in SHARED
    if importer.startswith("workbench.agent"):
        return imported in SHARED or imported.startswith("workbench.agent")
    return True


def test_no_target_side_module_imports_the_host_side():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        importer = module_name(path)
        for line, imported in imports(path):
            if not allowed(importer, imported):
                bad.append(f"{path.relative_to(PKG.parent)}:{line}: {importer} imports {imported}")
    assert not bad, "target-side or shared modules reach the host side:\n" + "\n".join(bad)


def test_the_rule_sees_a_lazy_detour(tmp_path):
    """The check can fail: a function-level import from the agent to the host is caught."""
    src = PKG / "agent" / "_layout_probe.py"
    src.write_text("def f():\n    from ..host import runner\n    return runner\n")
    try:
        found = [m for _, m in imports(src)]
        assert "workbench.host.runner" in found and not allowed("workbench.agent._layout_probe", found[0])
    finally:
        src.unlink()
