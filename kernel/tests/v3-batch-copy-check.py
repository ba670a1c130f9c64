"""Series v3 patch 0001 on 7.3, checked by hand (not in CI while v3 is partial): move_pages,
migrate_pages and mbind trials at 4K, 64K and 2M, byte-exact, with the batch copy off (its
counters do not move) and on (every folio copied ahead), and with two writer threads.

usage: .venv/bin/python kernel/tests/v3-batch-copy-check.py [KERNEL]   (default patched,
series v3 on the default line, built by: workbench kernel build)"""
import sys
import time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from workbench.targets.vm import VMTarget
from workbench.vm.config import VMConfig
from workbench.protocol import TrialSpec
from workbench.catalogue import workloads

D = "/sys/kernel/debug/migrate_batch_copy"
t = VMTarget(VMConfig(kernel=sys.argv[1] if len(sys.argv) > 1 else "patched", name="v3check"))
t0 = time.time(); t.ensure_up(); print(f"boot {time.time()-t0:.0f}s")

def counters():
    for e in t.run_plan({"op": "sysfs", "reads": [f"{D}/folios_copied", f"{D}/folios_skipped", f"{D}/enabled"]}):
        if e["type"] == "sysfs":
            return {k.rsplit('/', 1)[1]: int(v) for k, v in e["results"]["reads"].items()}

def trial(enabled, **kw):
    kw.setdefault("total_size", 8 << 20)
    kw.setdefault("dst", workloads.default_dst(kw.get("workload", "move-pages"), None))
    kw["settings"] = {f"{D}/enabled": str(enabled)}
    before = counters()
    recs = [e["record"] for e in t.run_plan({"op": "trials", "trials": [TrialSpec(**kw).to_dict()]}) if e["type"] == "record"]
    after = counters()
    (r,) = recs
    d = {k: after[k] - before[k] for k in ("folios_copied", "folios_skipped")}
    return r, d, after["enabled"]

ok = True
for enabled in (0, 1):
    for wl in ("move-pages", "migrate-pages", "mbind"):
        for fs in (4096, 64 << 10, 2 << 20):
            r, d, after_enabled = trial(enabled, workload=wl, folio_size=fs)
            good = r["verified"] and r["pages_moved"] == r["pages"] and after_enabled == 0 and \
                ((d["folios_copied"] >= r["pages"] * 4096 // fs) if enabled else d["folios_copied"] == 0)
            ok &= good
            print(f"enabled={enabled} {wl:14s} {fs>>10:5d}K verified={r['verified']} moved={r['pages_moved']}/{r['pages']} "
                  f"match={r.get('folio_match_share')} copied_ahead={d['folios_copied']} skipped={d['folios_skipped']} {'OK' if good else 'FAIL'}")
for wl in ("move-pages", "migrate-pages"):
    r, d, _ = trial(1, workload=wl, folio_size=4096, access="write", access_threads=2)
    good = r["verified"] and r["access_bad_pages"] == 0 and d["folios_copied"] > 0
    ok &= good
    print(f"writers {wl}: verified={r['verified']} access_bad={r['access_bad_pages']} copied_ahead={d['folios_copied']} "
          f"skipped={d['folios_skipped']} {'OK' if good else 'FAIL'}")
t.vm.down()
print("ALL OK" if ok else "SOME FAILED")
sys.exit(0 if ok else 1)
