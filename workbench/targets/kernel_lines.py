"""The kernel lines the workbench builds on, read from ``kernel/lines`` (one table for the
shell scripts and for Python).

A line is a base source from Debian's archive, the suite it comes from, the Debian image
that is the line's stock kernel, and the series of ours that applies to it (``-``: none
yet). The first line is the default (7.3): ``stock``, ``patched`` and ``vanilla`` are its
kernels; another line's carry its name (the LTS line's ``stock-6.12``, ``patched-6.12``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .. import paths
from ..errors import WorkbenchError


@dataclass(frozen=True)
class KernelLine:
    name: str              # "6.12", "7.3"
    source_package: str    # Debian's linux-source-X.Y
    suite: str             # where it comes from; "host": this host's own apt sources
    stock_image: str       # regex of the stock image package's name; group 1 is the release
    series: str | None     # kernel/<series>/ of ours on this line, None: none yet

    @property
    def suffix(self) -> str:
        """What kernel names on this line carry: nothing on the default line."""
        return "" if self.name == default().name else f"-{self.name}"

    def stock_pattern(self) -> re.Pattern:
        return re.compile(self.stock_image)


@lru_cache(maxsize=1)
def lines() -> tuple[KernelLine, ...]:
    table = paths.REPO / "kernel" / "lines"
    out = []
    for raw in table.read_text().splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        name, package, suite, stock, series = raw.split()
        out.append(KernelLine(name, package, suite, stock, None if series == "-" else series))
    return tuple(out)


def default() -> KernelLine:
    return lines()[0]


def get(name: str) -> KernelLine:
    for line in lines():
        if line.name == name:
            return line
    raise WorkbenchError(f"kernel line {name!r} is not one of {', '.join(l.name for l in lines())}")


def kernel_words() -> list[str]:
    """The names every line's own kernels go by, the default line's first: stock, patched,
    vanilla and their bench builds, then stock-6.12, patched-6.12, vanilla-6.12."""
    out = []
    for line in lines():
        out += [f"stock{line.suffix}", f"patched{line.suffix}", f"vanilla{line.suffix}"]
        if line == default():
            out += ["patched-bench", "vanilla-bench"]
    return out


def of_stock_name(spec: str) -> KernelLine | None:
    """The line of a stock kernel's name: 'stock' is the default line's, 'stock-6.12' 6.12's."""
    if spec == "stock":
        return default()
    if spec.startswith("stock-"):
        return get(spec[len("stock-"):])
    return None
