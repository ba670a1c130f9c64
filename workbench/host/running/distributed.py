"""Running a sweep's configurations on Dask distributed, one machine at a time per target.

Each target is a worker *resource* of capacity 1 (:func:`resource_name`), so two
configurations never run on one machine at once — they would disturb each other's
numbers — while different machines run in parallel. The embedded default is a local
cluster started and stopped by the sweep: one worker process (a Nanny, which restarts
it if it dies) per target, one thread each. ``scheduler`` names an existing cluster
instead (for example one started with ``dask-ssh`` or ``SSHCluster`` on a lab's control
host); its workers must offer the resources, and the sweep says which are missing.

A task whose worker dies is retried on a fresh worker, ``retries`` times; after that it
fails with a clear line and the rest goes on. The task itself (:func:`workbench.host.running.sweep.
execute_configuration`) runs papermill in a process of its own with a per-cell and a
per-notebook timeout, and never raises for a failing notebook: it reports it.
"""

from __future__ import annotations

import re
from typing import Callable, Iterator

from ...errors import WorkbenchError
from .notebooks import require


def resource_name(target_key: str) -> str:
    """The Dask resource of one target: 'T-' and the target's key, in letters, digits and dashes."""
    return "T-" + re.sub(r"[^A-Za-z0-9]+", "-", target_key).strip("-")


def local_cluster(resources: list[str], dashboard: bool = True):
    """One Nanny per target resource, one thread each; the scheduler in this process."""
    from distributed import Nanny, Scheduler, SpecCluster
    workers = {f"worker-{r}": {"cls": Nanny, "options": {"nthreads": 1, "resources": {r: 1}}}
               for r in resources}
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": ":0" if dashboard else None}}
    return SpecCluster(workers=workers, scheduler=scheduler, silence_logs=50)


def _dashboard_available() -> bool:
    try:
        import bokeh  # noqa: F401
        return True
    except ImportError:
        return False


def connect(scheduler: str | None, resources: list[str], retries: int, note: Callable[[str], None]):
    """(client, cluster or None): a client on ``scheduler``, or on a local cluster."""
    require("dask", "distributed", what="workbench sweep")
    import dask
    from distributed import Client
    # a task is retried on a fresh worker this often when its worker dies (the scheduler's
    # own setting: it applies to the local cluster; an external one keeps its own)
    dask.config.set({"distributed.scheduler.allowed-failures": retries})
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise WorkbenchError(f"no Dask scheduler answers at {scheduler!r} ({type(exc).__name__}): start one "
                                 "(dask scheduler, dask-ssh, SSHCluster) or leave --scheduler out for a local "
                                 "cluster") from None
        offered = set()
        for info in client.scheduler_info().get("workers", {}).values():
            offered |= set((info.get("resources") or {}))
        missing = [r for r in resources if r not in offered]
        if missing:
            client.close()
            raise WorkbenchError(f"the cluster at {scheduler} has no worker with resource(s) {', '.join(missing)}; "
                                 f"start one worker per target with e.g. `dask worker {scheduler} --nthreads 1 "
                                 f"--resources {missing[0]}=1`")
        cluster = None
    else:
        cluster = local_cluster(resources, dashboard=_dashboard_available())
        client = Client(cluster)
    link = client.dashboard_link if _dashboard_available() else None
    note(f"Dask dashboard: {link}" if link else
         "Dask dashboard: not available (pip install bokeh to watch the sweep in a browser)")
    return client, cluster


def execute(tasks: list[tuple[str, dict]], fn: Callable[..., dict], kwargs: dict, scheduler: str | None = None,
            retries: int = 1, note: Callable[[str], None] = print) -> Iterator[tuple[dict, dict]]:
    """Run ``fn(cfg, **kwargs)`` for each (target key, configuration) on the target's
    resource; yield (configuration, entry) as each finishes. A task whose worker died more
    than ``retries`` times yields a failed entry instead."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker
    resources = sorted({resource_name(key) for key, _ in tasks})
    client, cluster = connect(scheduler, resources, retries, note)
    try:
        futures = {}
        for key, cfg in tasks:
            fut = client.submit(fn, cfg, **kwargs, resources={resource_name(key): 1}, pure=False,
                                key=f"sweep-{cfg['name']}")
            futures[fut] = cfg
        for fut in as_completed(futures):
            cfg = futures[fut]
            try:
                entry = fut.result()
            except KilledWorker:
                entry = {"state": "failed", "notebook": f"{cfg['name']}.ipynb",
                         "error": f"its worker died {retries + 1} times (the machine, the notebook or the VM "
                                  "took the process down); the notebook so far is kept"}
            except Exception as exc:  # noqa: BLE001 - any task failure is that configuration's, not the sweep's
                entry = {"state": "failed", "notebook": f"{cfg['name']}.ipynb",
                         "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
            yield cfg, entry
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
