"""What a command shows while it works: a VM's boot progress, and notices on stderr (so
that stdout holds the command's answer alone, e.g. ``--json``)."""

from __future__ import annotations

import sys


class BootProgress:
    """Boot progress: redrawn in place on a terminal, one line every 15 s in a log."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.last = -1.0

    def __call__(self, elapsed: float):
        if self.stream.isatty():
            self.stream.write(f"\rbooting VM ... {elapsed:5.0f} s")
        elif self.last < 0 or elapsed - self.last >= 15:
            self.last = elapsed
            self.stream.write(f"booting VM ... {elapsed:.0f} s\n")
        self.stream.flush()


def note(text: str):
    """A notice on stderr."""
    sys.stderr.write(text + "\n")
