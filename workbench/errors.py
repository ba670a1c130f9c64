"""The one exception type users see.

Every problem a user can cause or fix (bad input, missing tool, a VM that did not boot)
is raised as :class:`WorkbenchError` with a single line that names the bad value and
what is allowed. The CLI prints that line and exits non-zero; nothing else is printed.
"""


class WorkbenchError(Exception):
    """A user-facing error: ``str(err)`` is one line that says what to do."""

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        #: optional multi-line context (for example a VM console tail), printed after the line
        self.detail = detail
