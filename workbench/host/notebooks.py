"""Executing the project's notebooks (sweeps, reports): papermill, its output directory,
the one-line error a failed notebook becomes, and a clear line when the ``notebooks``
extra is not installed."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from .. import paths
from ..errors import WorkbenchError

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


def execute(notebook: Path, out: Path, parameters: dict, jupyter_kernel: str = "python3",
            timeout: float | None = None) -> None:
    """Execute ``notebook`` into ``out`` with papermill (from the repository's root)."""
    require("papermill", "ipykernel", what=f"executing {notebook.name}")
    import papermill as pm
    pm.execute_notebook(str(notebook), str(out), parameters=parameters, kernel_name=jupyter_kernel,
                        cwd=str(paths.REPO), progress_bar=False, execution_timeout=timeout)
