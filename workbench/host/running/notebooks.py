"""Executing the project's notebooks (sweeps, reports): papermill, its output directory,
the one-line error a failed notebook becomes, and a clear line when the ``notebooks``
extra is not installed."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from ... import paths
from ...errors import WorkbenchError

#: what executing and rendering notebooks needs beyond the core package (the ``notebooks`` extra)
NOTEBOOK_MODULES = ("papermill", "nbformat", "nbclient", "nbconvert", "ipykernel", "ipywidgets", "matplotlib",
                    "seaborn", "dask", "distributed")
INSTALL_HINT = 'pip install -e ".[notebooks]" (scripts/setup.sh installs it)'


def require(*modules: str, what: str = "this") -> None:
    """Raise one line naming the first missing module and how to install it."""
    for name in modules or NOTEBOOK_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            raise WorkbenchError(f"{what} needs {name}, which is not installed: {INSTALL_HINT}") from None


def papermill_runs_dir() -> Path:
    return Path(os.environ.get("WORKBENCH_PAPERMILL_RUNS", paths.REPO / "papermill-runs"))


def error_line(exc: Exception) -> str:
    """The first line of what went wrong in an executed notebook (papermill's
    PapermillExecutionError carries the cell's exception name and value)."""
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        return f"{ename}: {evalue}".splitlines()[0]
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


#: how often a notebook is started when its Jupyter kernel dies before running a cell
KERNEL_START_ATTEMPTS = 3


def kernel_never_ran(out: Path) -> bool:
    """True when papermill wrote ``out`` but its kernel ran none of its code cells (or
    wrote nothing): the kernel died while starting. jupyter_client picks its five ports
    by binding port 0 and letting go, so a kernel started beside another process that
    binds ports (another notebook, a Dask worker, QEMU) can lose one of them and die
    with "Address already in use" (seen here: 1 of 48 notebooks started 12 at a time).
    Nothing ran, so nothing was measured, and starting again is safe."""
    try:
        import nbformat
        nb = nbformat.read(str(out), as_version=4)
    except Exception:  # noqa: BLE001 - no notebook written: nothing ran either
        return True
    return not any(c.cell_type == "code" and c.get("execution_count") is not None for c in nb.cells)


def execute(notebook: Path, out: Path, parameters: dict, jupyter_kernel: str = "python3",
            timeout: float | None = None) -> None:
    """Execute ``notebook`` into ``out`` with papermill (from the repository's root),
    starting it again when its kernel dies before running a cell."""
    require("papermill", "ipykernel", what=f"executing {notebook.name}")
    import papermill as pm
    for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
        Path(out).unlink(missing_ok=True)
        try:
            pm.execute_notebook(str(notebook), str(out), parameters=parameters, kernel_name=jupyter_kernel,
                                cwd=str(paths.REPO), progress_bar=False, execution_timeout=timeout)
            return
        except Exception:
            if attempt == KERNEL_START_ATTEMPTS or not kernel_never_ran(out):
                raise
