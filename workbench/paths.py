"""Where things live: the repository, the results, and the build/kernel caches.

Long builds and downloads (kernel trees, stock kernels, numba's compiled kernels) are
cached outside the repository, under ``$WORKBENCH_CACHE`` (default
``~/.cache/migration-workbench``), keyed by their inputs.
"""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    root = Path(os.environ.get("WORKBENCH_CACHE", Path.home() / ".cache" / "migration-workbench"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def runs_dir() -> Path:
    return Path(os.environ.get("WORKBENCH_RUNS", REPO / "data" / "runs"))
