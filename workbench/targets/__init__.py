"""Targets: where trials run. A registry maps a name to a class with one interface.

``--target`` takes a registered name (``local``, ``vm``) or a URL whose scheme is one
(``ssh://user@host:port``). Add a target with ``@register("name")``.
"""

from __future__ import annotations

from ..errors import WorkbenchError
from .base import Target

_REGISTRY: dict[str, type[Target]] = {}


def register(name: str):
    def deco(cls):
        cls.kind = name
        _REGISTRY[name] = cls
        return cls
    return deco


def names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_target(spec: str, **options) -> Target:
    """'vm' -> VMTarget(); 'ssh://root@h:2222' -> SSHTarget('root@h:2222')."""
    _load_builtin()
    kind, _, rest = spec.partition("://")
    if kind not in _REGISTRY:
        raise WorkbenchError(f"unknown target {spec!r}; choose from: "
                             + ", ".join(n + ("://[user@]host[:port]" if n == "ssh" else "") for n in names()))
    return _REGISTRY[kind].from_spec(rest, **options)


def _load_builtin():
    from . import local, ssh, vm  # noqa: F401  (they register themselves
