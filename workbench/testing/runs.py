"""Stored runs with known numbers, built with the store and no target: the report's, the
comparison's and the notebooks' tests read their tables and plots from these."""

from ..host.running import store

MANIFEST = {"target": "fake", "accelerator": "tcg", "kernel_release": "6.12.117-test"}
TOTAL = 4 << 20
#: (migrator, threads, channels, batch_size, folio, [gbps per repeat])
KNOWN = [
    ("kernel", None, None, None, "4K", [1.0, 1.1, 1.2]),
    ("kernel", None, None, None, "2M", [3.0, 3.2, 3.4]),
    ("mtcopy", 2, None, None, "4K", [1.5, 1.5, 1.5]),
    ("mtcopy", 2, None, None, "2M", [5.0, 6.0, 7.0]),
    ("mtcopy", 4, None, None, "4K", [1.6, 1.8, 2.0]),
    ("mtcopy", 4, None, None, "2M", [8.0, 8.0]),
]
BATCHED = [  # dcbm at two batch sizes, for the latency plot
    ("dcbm", None, 2, 512, "2M", [4.0, 4.2]),
    ("dcbm", None, 2, 4096, "2M", [6.0, 6.2]),
]
#: enough points for the extended model: kernel and mtcopy 1/2/4 threads at three folio sizes
SWEEP = [("kernel", None, None, None, f, [g, g * 1.02]) for f, g in (("4K", 1.0), ("64K", 1.6), ("2M", 3.0))] + [
    ("mtcopy", t, None, None, f, [g * s, g * s * 1.02]) for t, s in ((1, 1.0), (2, 1.5), (4, 1.8))
    for f, g in (("4K", 1.0), ("64K", 1.6), ("2M", 3.0))]
SIZE = {"4K": 4096, "64K": 65536, "2M": 2 << 20}


def make_runs(root, rows=KNOWN, label="known", manifest=MANIFEST):
    """One run under ``root`` with a verified record per repeat of each row."""
    run = store.create_run({**manifest, "label": label}, root)
    for mig, t, c, b, folio, values in rows:
        for r, gbps in enumerate(values):
            key = f"{mig}-t{t}-c{c}-b{b}-{folio}-r{r}"
            run.append({"trial_key": key, "repeat": r, "migrator": mig, "threads": t, "channels": c,
                        "batch_size": b, "folio": folio, "folio_size": SIZE[folio], "total_bytes": TOTAL,
                        "gbps": gbps, "seconds": TOTAL / gbps / 1e9, "verified": True})
    return run


def make_conformance_run(root):
    """A conformance run of two cases under two configurations: one failure, one pass
    that did not exercise its migrator."""
    out = store.create_run({"label": "conformance", "kind": "conformance", "kernel_release": "7.3.4+",
                            "interface": "workbench series v3", "configs": ["kernel", "mtcopy-2"]}, root=root)
    for case, cfg, verdict, output in (("migration.private_anon", "kernel", "pass", "ok 1"),
                                       ("migration.private_anon", "mtcopy-2", "fail", "not ok 1 private_anon_lost"),
                                       ("numa", "kernel", "pass", "ok"), ("numa", "mtcopy-2", "did not exercise", "ok")):
        out.append({"suite": "selftests" if case != "numa" else "stress-ng", "test": case.split(".")[0],
                    "case": case, "config": cfg, "migrator": cfg.split("-")[0], "kernel_release": "7.3.4+",
                    "interface": "workbench series v3", "status": "pass" if verdict != "fail" else "fail",
                    "verdict": verdict, "kernel_clean": True, "output": output,
                    "trial_key": f"conformance-{case}-{cfg}"})
