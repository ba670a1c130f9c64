"""A task's ``/proc/<pid>/stat`` (or ``/proc/<pid>/task/<tid>/stat``, ``/proc/thread-self/stat``)
split the one safe way: the command name is what lies between the first ``(`` and the last
``)`` (it may itself hold spaces and parentheses); the fields after it start at field 3,
so ``fields[0]`` is the state, ``fields[1]`` the parent pid, ``fields[19]`` the start
time (field 22) and ``fields[36]`` the CPU last run on (field 39), as proc(5) numbers them."""

from __future__ import annotations


def parse(text: str) -> tuple[str, list[str]]:
    """(command name, the fields from field 3 on)."""
    return text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
