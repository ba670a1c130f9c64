"""Targets: the ways the host reaches a machine where pages move.

A registry maps a name to a :class:`~.base.Target` class. ``--target`` takes a registered
name (``local``, ``vm``), a name with an argument after a colon (``vm:patched``: the VM
with that kernel), or a URL whose scheme is one (``ssh://user@host:port``).
:func:`make_target` is the one way to make a target from such a spec and options; each
class says which options it takes (``OPTIONS``), and an option given to a target that
does not take it is an error, not silently dropped. Add a target with
``@register("name")``.
"""

from __future__ import annotations

from ..errors import WorkbenchError
from .base import Target

_REGISTRY: dict[str, type[Target]] = {}

#: every option some target takes; anything else is a programming error (TypeError)
ALL_OPTIONS = ("kernel", "vm_name", "nodes", "distances", "accel", "progress", "notify",
               "identity", "known_hosts", "remote_python")
#: how a user spells each option on the command line, for messages
FLAG = {"kernel": "--kernel", "vm_name": "--vm-name", "nodes": "--nodes", "distances": "--distance",
        "accel": "--accel", "identity": "--ssh-identity", "known_hosts": "--ssh-known-hosts",
        "remote_python": "--remote-python"}


def register(name: str):
    def deco(cls):
        cls.kind = name
        _REGISTRY[name] = cls
        return cls
    return deco


def names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def parse_spec(spec: str) -> tuple[str, str]:
    """'ssh://root@h:22' -> ('ssh', 'root@h:22'); 'vm:patched' -> ('vm', 'patched'); 'vm' -> ('vm', '')."""
    if "://" in spec:
        kind, _, rest = spec.partition("://")
    else:
        kind, _, rest = spec.partition(":")
    return kind, rest


def make_target(spec: str, **options) -> Target:
    """The target ``spec`` names, made with ``options`` (None means: not given)."""
    _load_builtin()
    unknown = set(options) - set(ALL_OPTIONS)
    if unknown:
        raise TypeError(f"make_target() got unknown option(s) {', '.join(sorted(unknown))}")
    kind, rest = parse_spec(spec)
    if kind not in _REGISTRY:
        raise WorkbenchError(f"unknown target {spec!r}; choose from: "
                             + ", ".join(n + ("://[user@]host[:port]" if n == "ssh" else "") for n in names()))
    cls = _REGISTRY[kind]
    given = {k: v for k, v in options.items() if v is not None}
    quiet = {"progress", "notify"}  # callbacks: harmless where a target has nothing to report
    foreign = sorted(k for k in given if k not in cls.OPTIONS and k not in quiet)
    if foreign:
        flags = ", ".join(FLAG.get(k, k) for k in foreign)
        raise WorkbenchError(f"{flags} does not apply to target {kind!r}; it takes: "
                             + (", ".join(FLAG.get(k, k) for k in cls.OPTIONS if k in FLAG) or "no options"))
    return cls.from_spec(rest, **{k: v for k, v in given.items() if k in cls.OPTIONS})


def _load_builtin():
    from . import local, ssh, vm  # noqa: F401  (they register themselves)
