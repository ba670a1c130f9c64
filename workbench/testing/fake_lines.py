"""A kernel line with no series of ours yet, added to kernel/lines' table for a test.

Both real lines have a series now; the refusals for a line without one ("-" in
kernel/lines) are tested on this one."""

from __future__ import annotations

from ..targets import kernel_lines

NAME = "8.0"


def add_line_without_series(monkeypatch) -> kernel_lines.KernelLine:
    """Line 8.0, after the real ones, with no series of ours; ``monkeypatch`` takes it away."""
    table = kernel_lines.lines()
    new = kernel_lines.KernelLine(NAME, "linux-source-8.0", "forky", r"^linux-image-(8\.0\.[0-9]+)$", None)
    monkeypatch.setattr(kernel_lines, "lines", lambda: (*table, new))
    return new
