#!/usr/bin/env python3
"""Print a config fragment that turns on the page-migration copy-offload options a
kernel tree offers, found by reading its Kconfig files (no list of names).

usage: offload-options.py [--no-test-only] TREE [PATCH ...]

An option is turned on when it has a prompt (a user can set it) and either
  * a patch given on the command line adds it (``+config NAME`` in a Kconfig file), or
  * its prompt or help text speaks of page migration together with offloading its copy
    (``migrat`` and one of ``offload``, ``dma``, ``batch``, ``multi-thread``).
A tristate becomes ``=m``, a bool ``=y``. Options whose dependencies the rest of the
configuration does not meet stay off: kconfig drops them, and build.sh says so.
--no-test-only leaves out options whose prompt or help says they are for testing only
(a test DMA engine has no place in a real machine's kernel).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ENTRY = re.compile(r"^(?:menu)?config\s+(\w+)\s*$")
TYPED_PROMPT = re.compile(r'^(bool|tristate)\s+"([^"]*)"')
PROMPT = re.compile(r'^prompt\s+"([^"]*)"')
TYPE = re.compile(r"^(bool|tristate)\b")
MIGRATION = re.compile(r"migrat", re.I)
OFFLOAD = re.compile(r"offload|\bdma\b|dmaengine|batch|multi-?thread", re.I)
TEST_ONLY = re.compile(r"\btest[- ]only\b|for testing only", re.I)
SKIP_DIRS = {"Documentation", "tools", "scripts", "samples", "usr"}


def entries(text: str):
    """(name, type, prompt, help text) of every config entry of one Kconfig file."""
    name = None
    kind = prompt = None
    words: list[str] = []
    for raw in text.splitlines() + ["endofentries"]:
        line = raw.strip()
        m = ENTRY.match(line)
        top = raw[:1] not in (" ", "\t") and line
        if m or (top and not line.startswith("#")):
            if name:
                yield name, kind, prompt, " ".join(words)
            name = m.group(1) if m else None
            kind = prompt = None
            words = []
            continue
        if not name:
            continue
        if t := TYPED_PROMPT.match(line):
            kind, prompt = t.groups()
        elif t := PROMPT.match(line):
            prompt = t.group(1)
        elif t := TYPE.match(line):
            kind = kind or t.group(1)
        elif line and not line.startswith(("depends", "select", "imply", "default", "range", "help", "---")):
            words.append(line)


def added_by(patches: list[Path]) -> set[str]:
    """Config names a patch adds to a Kconfig file."""
    names, in_kconfig = set(), False
    for p in patches:
        for line in p.read_text(errors="replace").splitlines():
            if line.startswith("+++ "):
                in_kconfig = Path(line[4:].strip()).name.startswith("Kconfig")
            elif in_kconfig and (m := ENTRY.match(line[1:].strip()) if line.startswith("+") else None):
                names.add(m.group(1))
    return names


def kconfig_files(tree: Path):
    for path in sorted(tree.rglob("Kconfig*")):
        rel = path.relative_to(tree)
        if rel.parts[0] in SKIP_DIRS or rel.parts[0].startswith(".") or not path.is_file():
            continue
        if rel.parts[0] == "arch" and len(rel.parts) > 1 and rel.parts[1] != "x86":
            continue
        yield rel, path


def fragment(tree: Path, patches: list[Path], test_only: bool = True) -> list[str]:
    wanted = added_by(patches)
    out = []
    for rel, path in kconfig_files(tree):
        for name, kind, prompt, help_text in entries(path.read_text(errors="replace")):
            if not (kind and prompt):
                continue
            text = f"{prompt} {help_text}"
            if not test_only and TEST_ONLY.search(text):
                continue
            why = ("added by the series" if name in wanted else
                   "speaks of offloading migration's copy" if MIGRATION.search(text) and OFFLOAD.search(text)
                   else None)
            if why:
                out.append(f"# {rel}: {prompt} ({why})")
                out.append(f"CONFIG_{name}={'m' if kind == 'tristate' else 'y'}")
    return out


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
        return 2
    test_only = "--no-test-only" not in argv
    argv = [a for a in argv if a != "--no-test-only"]
    if not argv:
        return main([])
    tree = Path(argv[0])
    if not (tree / "Kconfig").is_file():
        sys.stderr.write(f"offload-options.py: {tree} has no Kconfig: not a kernel tree\n")
        return 1
    lines = fragment(tree, [Path(p) for p in argv[1:]], test_only)
    print("# Copy-offload options of this tree, found by kernel/offload-options.py")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
