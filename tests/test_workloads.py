"""Workloads without a kernel: the registry, what each needs from a kernel (FakeFS trees),
checked access threads, the holder process, the trace parser and session, per-reason
counters, the HMAT topology of a CPU-less node, and the host's refusals."""

from __future__ import annotations

import copy
import os
import time

import numpy as np
import pytest

from workbench.agent import access, pattern, tracing, workloads
from workbench.kernelio.kernelfs import FakeFS, KnobGuard, bool_rule
from workbench.kernelio.numa import node_watermarks
from workbench.agent.workloads.base import memory_tiers
from workbench.catalogue import workloads as catalogue
from workbench.catalogue.workloads import lower_tier_nodes
from workbench.errors import WorkbenchError
from workbench.protocol import Knobs, TrialSpec

NODE = "/sys/devices/system/node"
TIERS = "/sys/devices/virtual/memory_tiering"


def kernel(nodes=2, balancing=True, compaction=True, tiers=None, cgroup=True, demotion=True, tracefs=True,
           proactive=False):
    """A FakeFS with what the workloads look at, as a 6.12 kernel shows it."""
    files = {f"{NODE}/online": f"0-{nodes - 1}", f"{NODE}/has_memory": f"0-{nodes - 1}",
             "/proc/vmstat": "pgmigrate_success 0\npgmigrate_fail 0\nnuma_pages_migrated 0\npgdemote_direct 0"}
    for n in range(nodes):
        files[f"{NODE}/node{n}/cpulist"] = str(n) if n < 2 else ""
        files[f"{NODE}/node{n}/meminfo"] = f"Node {n} MemTotal:       1048576 kB"
        files[f"{NODE}/node{n}/distance"] = " ".join("10" if i == n else "20" for i in range(nodes))
    if balancing:
        files["/proc/sys/kernel/numa_balancing"] = "1"
    if compaction:
        files["/proc/sys/vm/compact_memory"] = ""
    if proactive:
        files["/proc/sys/vm/compaction_proactiveness"] = "20"
    if demotion:
        files["/sys/kernel/mm/numa/demotion_enabled"] = "false"
    for tier, nodelist in (tiers or {}).items():
        files[f"{TIERS}/memory_tier{tier}/nodelist"] = nodelist
    if cgroup:
        files.update({"/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids",
                      "/sys/fs/cgroup/cgroup.subtree_control": ""})
    if tracefs:
        for ev in tracing.EVENTS:
            files[f"/sys/kernel/tracing/events/{ev}/enable"] = "0"
        files["/sys/kernel/tracing/instances/.keep"] = ""
    fs = FakeFS(files)
    fs.add_rule("/sys/kernel/mm/numa/demotion_enabled", bool_rule)
    return fs


def test_the_registry_lists_every_way_pages_migrate_in_order():
    assert workloads.names() == ["move-pages", "migrate-pages", "mbind", "numa-balancing", "demotion",
                                 "kswapd-demotion", "compaction", "proactive-compaction"]
    reasons = {n: workloads.get(n).reason for n in workloads.names()}
    assert reasons == {"move-pages": "syscall", "migrate-pages": "syscall", "mbind": "mempolicy_mbind",
                       "numa-balancing": "numa_misplaced", "demotion": "demotion", "kswapd-demotion": "demotion",
                       "compaction": "compaction", "proactive-compaction": "compaction"}
    for name in workloads.names():
        w = workloads.get(name)
        assert w.brought_by != "?" and w.title != "?" and w.kernel_reason.startswith("MR_")
    with pytest.raises(WorkbenchError, match=r"workload 'nope' is not known; allowed: move-pages, migrate-pages"):
        workloads.get("nope")


def test_what_each_workload_needs_from_the_kernel():
    s = workloads.support(kernel())
    assert [n for n, v in s.items() if v["ok"]] == ["move-pages", "migrate-pages", "mbind", "numa-balancing",
                                                      "compaction"]
    assert "no /proc/sys/vm/compaction_proactiveness (proactive compaction, v5.9)" in \
        s["proactive-compaction"]["missing"]
    assert "no memory tiers" in s["demotion"]["missing"] or "no lower memory tier" in s["demotion"]["missing"]
    s = workloads.support(kernel(balancing=False, compaction=False))
    assert s["numa-balancing"]["missing"] == ("NUMA balancing is compiled out (no /proc/sys/kernel/numa_balancing: "
                                              "CONFIG_NUMA_BALANCING is off)")
    assert "CONFIG_COMPACTION is off" in s["compaction"]["missing"]
    one = workloads.support(kernel(nodes=1))
    assert "one NUMA node" in one["move-pages"]["missing"] and one["compaction"]["ok"]
    assert workloads.support(kernel(proactive=True))["proactive-compaction"]["ok"]
    # one tier: a CPU-less node the kernel did not rank slower
    s = workloads.support(kernel(nodes=3, tiers={4: "0-2"}))
    assert s["demotion"]["missing"].startswith("no lower memory tier: every node with memory is in one tier "
                                               "(tier 4: nodes 0,1,2)")
    s = workloads.support(kernel(nodes=3, tiers={4: "0-1", 28: "2"}))
    assert s["demotion"]["ok"], s["demotion"]
    # kswapd's demotion needs what demotion needs, and the watermarks to work with
    assert s["kswapd-demotion"]["missing"] == "no /proc/sys/vm/watermark_scale_factor", s["kswapd-demotion"]
    fs = kernel(nodes=3, tiers={4: "0-1", 28: "2"})
    for path in ("/proc/sys/vm/watermark_scale_factor", "/proc/sys/vm/swappiness", "/proc/zoneinfo"):
        fs.files[path] = "10"
    assert workloads.support(fs)["kswapd-demotion"]["ok"]
    s = workloads.support(kernel(nodes=3, tiers={4: "0-1", 28: "2"}, cgroup=False))
    assert s["demotion"]["missing"] == "no cgroup v2 hierarchy at /sys/fs/cgroup"
    s = workloads.support(kernel(nodes=3, tiers={4: "0-1", 28: "2"}, demotion=False))
    assert "demotion_enabled (demotion in reclaim, v5.15)" in s["demotion"]["missing"]
    for v in workloads.support(kernel(nodes=3)).values():
        assert v["ok"] or ("\n" not in v["missing"] and v["missing"])


ZONEINFO = """Node 0, zone      DMA
  per-node stats
      nr_inactive_anon 120
      nr_free_pages 999999
  pages free     3000
        boost    0
        min      20
        low      25
        high     30
        promo    35
        spanned  4095
  pagesets
Node 0, zone    DMA32
  pages free     200000
        boost    0
        min      4000
        low      5000
        high     6000
        promo    7000
        spanned  258048
Node 1, zone   Normal
  per-node stats
  pages free     250000
        min      4100
        low      5125
        high     6150
"""


def test_a_nodes_watermarks_are_its_zones_summed():
    fs = FakeFS({"/proc/zoneinfo": ZONEINFO})
    assert node_watermarks(fs, 0) == {"free": 203000, "min": 4020, "low": 5025, "high": 6030}
    assert node_watermarks(fs, 1) == {"free": 250000, "min": 4100, "low": 5125, "high": 6150}
    assert node_watermarks(fs, 2) == {"free": 0, "min": 0, "low": 0, "high": 0}


def test_memory_tiers_and_the_lower_tier_of_a_node():
    fs = kernel(nodes=3, tiers={4: "0-1", 28: "2"})
    tiers = memory_tiers(fs)
    assert tiers == {4: [0, 1], 28: [2]}
    assert lower_tier_nodes(tiers, 0) == [2] and lower_tier_nodes(tiers, 2) == [] and lower_tier_nodes(tiers, 7) == []


FACTS = {"target": "vm:t", "kernel_release": "6.12.117",
         "numa": {"nodes": [{"node": 0, "cpus": [0], "mem_total_kb": 1 << 20},
                            {"node": 1, "cpus": [1], "mem_total_kb": 1 << 20},
                            {"node": 2, "cpus": [], "mem_total_kb": 512 << 10}], "memory_nodes": [0, 1, 2]},
         "memory_tiers": {"4": [0, 1], "28": [2]}}


def facts_with(**ok):
    f = copy.deepcopy(FACTS)
    f["workloads"] = {n: {"ok": ok.get(n, True), "missing": None if ok.get(n, True) else "NUMA balancing is "
                          "compiled out", "reason": workloads.get(n).reason} for n in workloads.names()}
    return f


def test_the_host_refuses_what_the_target_cannot_run_in_one_line():
    f = facts_with(**{"numa-balancing": False})
    with pytest.raises(WorkbenchError) as e:
        catalogue.check_against_facts(Knobs(total_size=1 << 20, workload="numa-balancing"), f)
    assert str(e.value) == ("workload 'numa-balancing' cannot run on vm:t (kernel 6.12.117): NUMA balancing is "
                            "compiled out")
    # an agent from before workloads: only the default
    old = copy.deepcopy(FACTS)
    catalogue.check_against_facts(Knobs(total_size=1 << 20), old)
    with pytest.raises(WorkbenchError, match="did not say whether it can run workload 'mbind'"):
        catalogue.check_against_facts(Knobs(total_size=1 << 20, workload="mbind"), old)
    f = facts_with()
    with pytest.raises(WorkbenchError, match=r"CPUs of the destination node 2, which has none; nodes with CPUs: 0, 1"):
        catalogue.check_against_facts(Knobs(total_size=1 << 20, workload="numa-balancing", dst=2), f)
    with pytest.raises(WorkbenchError, match=r"to its lower tier \(node 2\), not node 1; leave --dst out"):
        catalogue.check_against_facts(Knobs(total_size=1 << 20, workload="demotion", dst=1), f)
    catalogue.check_against_facts(Knobs(total_size=1 << 20, workload="demotion", dst=None), f)
    with pytest.raises(WorkbenchError, match="does not fit the lower tier, node 2"):
        catalogue.check_against_facts(Knobs(total_size=400 << 20, workload="demotion", dst=None), f)
    with pytest.raises(WorkbenchError, match="node 2 has no lower memory tier"):
        catalogue.check_against_facts(Knobs(total_size=1 << 20, workload="demotion", dst=None, src=2), f)
    with pytest.raises(WorkbenchError, match="needs a destination node"):
        catalogue.check_against_facts(Knobs(total_size=1 << 20, workload="mbind", dst=None), f)


def test_knobs_of_workloads_are_judged_before_anything_runs():
    Knobs(total_size=4096, workload="compaction", dst=None).check()
    for bad, match in (({"access": "scribble"}, "access 'scribble' is not known; allowed: none, read, write"),
                       ({"access_threads": 0}, "access threads 0 must be an integer from 1 to 64"),
                       ({"workload": "move pages"}, "is not a workload name"),
                       ({"wait_seconds": -1}, "wait seconds -1"),
                       ({"dst": "1"}, "destination node '1' is not a node number")):
        with pytest.raises(WorkbenchError, match=match):
            Knobs(total_size=4096, **bad).check()


def test_trial_keys_of_the_default_workload_are_unchanged():
    """Runs made before workloads existed resume: their trial keys are the same."""
    assert TrialSpec(total_size=1 << 20, folio_size=4096).key() == "kernel-4K-1M-n0to1-s1-r0"
    assert TrialSpec(total_size=1 << 20, folio_size=4096, workload="demotion", dst=None, access="write",
                     access_threads=3).key() == "demotion-kernel-4K-1M-n0-s1-r0-awrite3"
    assert TrialSpec(total_size=1 << 20, folio_size=4096, trace=False, wait_seconds=30).key().endswith("-w30-notrace")


def test_default_destination_per_workload():
    assert catalogue.default_dst("move-pages", None) == 1 and catalogue.default_dst("mbind", 3) == 3
    assert catalogue.default_dst("demotion", None) is None and catalogue.default_dst("compaction", None) is None


# -- checked access -----------------------------------------------------------------------

def region(pages=64, seed=9):
    w = np.zeros(pages * pattern.WORDS, dtype=np.uint64)
    pattern.fill(w, seed)
    return w


@pytest.mark.parametrize("mode", ["read", "write"])
def test_access_threads_run_and_the_final_value_of_every_word_is_known(mode):
    w = region()
    a = access.Access(w, 9, mode, threads=3).start()
    time.sleep(0.05)
    s = a.stop()
    assert s["access_threads"] == 3 and s["access_passes"] >= 3 and s["access_bad_pages"] == 0
    gens = a.expected_generations()
    assert sum(p for _, p, _ in gens) == 64
    if mode == "write":
        assert all(g >= 1 for *_, g in gens) and s["access_generations"] == ",".join(str(g) for *_, g in gens)
    assert access.verify(w, 9, gens).ok


def test_a_lost_write_is_found_with_page_and_offset_and_a_stale_expectation_fails():
    w = region()
    a = access.Access(w, 9, "write", threads=2).start()
    a.stop()
    gens = a.expected_generations()
    (first, pages, gen) = gens[1]
    # one word of the second share keeps its generation before the last: a lost write
    page, word = first + 3, 17
    w[page * pattern.WORDS + word] = pattern.reference_generation(1, 9, page, gen - 1)[word]
    v = access.verify(w, 9, gens)
    assert (v.bad_pages, v.first_bad_page, v.first_bad_offset) == (1, page, word * 8)
    # the verifier fed the generation before: everything written is wrong (the check can fail)
    w2 = region()
    b = access.Access(w2, 9, "write", threads=2).start()
    b.stop()
    assert access.verify(w2, 9, b.expected_generations(), stale=True).bad_pages == 64
    assert access.verify(w2, 9, b.expected_generations()).ok


def test_a_writer_sees_a_word_that_changed_behind_its_back():
    """Mid-run detection: a word set back to an old generation between two passes is
    reported by the writer's next pass (what a stale read during a migration looks like)."""
    w = region(pages=8)
    a = access.Access(w, 9, "write", threads=1)
    share = a.shares[0]
    pattern.stamp(w, 9, 0, 1)
    share.gen = 1
    w[5 * pattern.WORDS + 2] = pattern.reference_generation(1, 9, 5, 0)[2]   # back to the fill
    a.start()
    s = a.stop()
    assert (s["access_bad_pages"], s["access_first_bad_page"], s["access_first_bad_offset"]) == (1, 5, 16)


# -- the holder process -------------------------------------------------------------------

def test_the_holder_process_fills_answers_and_verifies_its_own_memory():
    from workbench.agent.holder import Holder
    with Holder({"size": 1 << 20, "folio_size": 4096, "src": 0, "seed": 5}) as h:
        assert h.ready["on_src_before_share"] == 1.0 and h.ready["pid"] == h.pid != os.getpid()
        assert h.ask("nodes")["nodes"] == {"0": 256}
        h.ask("access", mode="write", threads=2)
        s = h.ask("access_stop")["summary"]
        assert s["access_passes"] >= 2 and s["access_bad_pages"] == 0
        ok = h.ask("verify")
        assert ok["verification"]["verify_bad_pages"] == 0 and ok["nodes"] == {"0": 256}
        stale = h.ask("verify", stale=True)["verification"]
        assert stale["verify_bad_pages"] == 256 and stale["verify_first_bad_page"] == 0
        bad = h.ask("verify", corrupt={"page": 7, "offset": 100})["verification"]
        assert (bad["verify_bad_pages"], bad["verify_first_bad_page"], bad["verify_first_bad_offset"]) == (1, 7, 100)
        w = h.ask("wait", nodes=[0], seconds=1)
        assert w["all"] and w["moved"] == 256
    assert h.pid == -1


def test_a_holder_that_fails_says_why_in_one_line():
    from workbench.agent.holder import Holder
    with pytest.raises(WorkbenchError) as e:
        Holder({"size": 1 << 20, "folio_size": 4096, "src": 0, "seed": 5, "cgroup": "/nonexistent/cg"})
    assert "the process holding the pattern failed" in str(e.value) and "\n" not in str(e.value)


# -- the trace -----------------------------------------------------------------------------

TRACE = """# tracer: nop
#
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
          python-812     [001] .....  1012.500000: mm_migrate_pages_start: mode=MIGRATE_SYNC reason=syscall_or_cpuset
          python-812     [001] .....  1012.636250: mm_migrate_pages: nr_succeeded=2048 nr_failed=0 nr_thp_succeeded=0 nr_thp_failed=0 nr_thp_split=0 nr_split=0 mode=MIGRATE_SYNC reason=syscall_or_cpuset
      kcompactd0-33      [000] .....  1012.600000: mm_migrate_pages_start: mode=MIGRATE_SYNC_LIGHT reason=compaction
      kcompactd0-33      [000] .....  1012.600500: mm_migrate_pages: nr_succeeded=30 nr_failed=2 nr_thp_succeeded=0 nr_thp_failed=0 nr_thp_split=0 nr_split=0 mode=MIGRATE_SYNC_LIGHT reason=compaction
 python3 worker-900     [000] d..1.  1013.000000: mm_migrate_pages: nr_succeeded=1 nr_failed=0 nr_thp_succeeded=0 nr_thp_failed=0 nr_thp_split=0 nr_split=0 mode=MIGRATE_ASYNC reason=numa_misplaced
"""


def test_the_trace_is_summarised_per_reason():
    events = tracing.parse(TRACE)
    assert len(events) == 5 and events[0]["reason"] == "syscall" and events[4]["task"] == "python3 worker"
    s = tracing.summarize(events, lost=0)
    assert s["trace_events"] == 5 and s["trace_calls"] == 3 and s["trace_unpaired"] == 1
    assert s["trace_reasons"] == "compaction,numa_misplaced,syscall"
    assert (s["trace_syscall_calls"], s["trace_syscall_succeeded"], s["trace_syscall_failed"]) == (1, 2048, 0)
    assert s["trace_syscall_ns"] == 136_250_000 and s["trace_syscall_max_ns"] == 136_250_000
    assert (s["trace_compaction_succeeded"], s["trace_compaction_failed"], s["trace_compaction_ns"]) == (30, 2, 500_000)
    assert s["trace_numa_misplaced_ns"] == 0          # no start event: counted, not timed
    assert tracing.summarize([]) == {"trace_events": 0, "trace_calls": 0, "trace_unpaired": 0, "trace_lost": 0,
                                     "trace_reasons": None}


def test_a_trace_session_lives_in_its_own_instance_and_is_removed_by_the_guard():
    fs = kernel()

    def instance(fs, path):
        for name in ("tracing_on", "buffer_size_kb", "trace"):
            fs.add(f"{path}/{name}", "0" if name != "trace" else "")
        fs.add(f"{path}/trace_clock", "[local] global counter uptime perf mono mono_raw boot")
        for ev in tracing.EVENTS:
            fs.add(f"{path}/events/{ev}/enable", "0")
        fs.add(f"{path}/per_cpu/cpu0/stats", "entries: 4\noverrun: 3\n")
    fs.add_mkdir_hook(r"/sys/kernel/tracing/instances/[^/]+", instance)
    guard = KnobGuard(fs)
    session = tracing.TraceSession(fs, guard, name="wb-test")
    d = "/sys/kernel/tracing/instances/wb-test"
    assert fs.read(f"{d}/events/migrate/mm_migrate_pages/enable") == "1"
    assert fs.read(f"{d}/buffer_size_kb") == str(tracing.BUFFER_KB)
    assert session.clock == "mono" and fs.read(f"{d}/trace_clock").split().count("[mono]") == 1
    session.start()
    assert fs.read(f"{d}/tracing_on") == "1"
    session.stop()
    assert session.lost() == 3
    assert fs.read("/sys/kernel/tracing/events/migrate/mm_migrate_pages/enable") == "0"   # the global one untouched
    assert guard.restore() == []
    assert not fs.exists(d)


def test_no_tracefs_is_said_in_one_line():
    assert "no migrate:mm_migrate_pages trace event" in tracing.missing(kernel(tracefs=False))
    assert tracing.missing(kernel()) is None


# -- per-reason counters of the series (kernel v2 layout) --------------------------------------

def test_per_reason_counters_are_read_where_the_kernel_has_them():
    from workbench.agent.migrators.mm_migration import ROOT, MmMigrationInterface, reason_delta
    files = {f"{ROOT}/migrator": "[kernel] mtcopy", f"{ROOT}/batch_size": "512",
             f"{ROOT}/reasons": "[compaction] [syscall] [mempolicy_mbind] [numa_misplaced] [demotion]"}
    for mig in ("kernel", "mtcopy"):
        for c in ("batches", "folios", "bytes", "copy_ns", "batch_ns", "fallbacks", "fallback_ns"):
            files[f"{ROOT}/stats/{mig}/{c}"] = "0"
    v1 = MmMigrationInterface(FakeFS(files))
    assert v1.reason_layout() is None and "kernel.folios" in v1.counters()
    for mig in ("kernel", "mtcopy"):
        for reason in ("compaction", "syscall", "mempolicy_mbind", "numa_misplaced", "demotion"):
            for c in ("batches", "folios", "fallbacks"):
                files[f"{ROOT}/stats/{mig}/{reason}/{c}"] = "0"
    fs = FakeFS(files)
    v2 = MmMigrationInterface(fs)
    assert v2.reason_layout() == "stats/<migrator>/<reason>/<counter>"
    before = v2.counters()
    assert "mtcopy.syscall.folios" in before and "kernel.compaction" not in before    # directories are not counters
    fs.files[f"{ROOT}/stats/mtcopy/syscall/folios"] = "2048"
    fs.files[f"{ROOT}/stats/mtcopy/syscall/batches"] = "4"
    fs.files[f"{ROOT}/stats/mtcopy/folios"] = "2048"
    delta = {k: v2.counters()[k] - before[k] for k in before}
    assert reason_delta(delta, "syscall") == {"kernel.batches": 0, "kernel.folios": 0, "kernel.fallbacks": 0,
                                              "mtcopy.batches": 4, "mtcopy.folios": 2048, "mtcopy.fallbacks": 0}
    assert reason_delta(delta, "demotion")["mtcopy.folios"] == 0


# -- the VM topology of a lower tier ---------------------------------------------------------

def test_a_cpu_less_node_is_described_as_a_lower_tier_through_hmat():
    from workbench.vm.numa_vm import VM
    from workbench.vm.config import VMConfig, hmat_options
    nodes = [["1536M", "0"], ["1536M", "1"], ["768M", ""]]
    initiators, opts = hmat_options(nodes, [])
    assert initiators == {2: 0} and opts[0] == "-machine hmat=on"
    assert len(opts) == 1 + 2 * 2 * 3                         # latency and bandwidth, 2 initiators x 3 targets
    assert "-numa hmat-lb,initiator=0,target=2,hierarchy=memory,data-type=access-latency,latency=250" in opts
    assert "-numa hmat-lb,initiator=1,target=1,hierarchy=memory,data-type=access-bandwidth,bandwidth=20G" in opts
    assert hmat_options(nodes, [[1, 2, 15]])[0] == {2: 1}       # the nearest CPU node initiates
    assert hmat_options(nodes[:2], []) == ({}, [])

    from workbench.targets.kernel_images import KernelImage

    def Image():  # noqa: N802
        return KernelImage("path", "/boot/vmlinuz")
    vm = VM("wl-unit-hmat")
    cmd = vm.command(VMConfig(nodes=nodes, accel="tcg").resolved(), Image(), "tok")
    assert "768M,initiator=0" in cmd and "1536M,cpus=1" in cmd
    assert cmd[-1].startswith("--qemu-opts=") and "-machine hmat=on" in cmd[-1] and "sockets=2" in cmd[-1]
    plain = vm.command(VMConfig(nodes=nodes, accel="tcg", hmat=False).resolved(), Image(), "tok")
    assert "768M" in plain and not any("hmat=on" in c or "initiator" in c for c in plain)


def test_the_fragmentation_score_is_computed_as_compaction_does():
    from workbench.agent.workloads.compaction import fragmentation
    # node 1: 160 free pages in small blocks, 2 x 512 + 100 x 1024 in THP-sized or bigger ones
    fs = FakeFS({"/proc/buddyinfo": "Node 0, zone   DMA32  1 1 1 0 2 1 1 0 1 1 3\n"
                                    "Node 1, zone   DMA32  100 20 5 0 0 0 0 0 0 2 100"})
    small, big = 100 + 40 + 20, 2 * 512 + 100 * 1024
    assert fragmentation(fs, 1, "before") == {"frag_score_before": round(small * 100 / (small + big), 1)}
    assert fragmentation(FakeFS({}), 1, "after") == {"frag_score_after": None}


def test_a_whole_trial_runs_against_a_fake_kernel_on_this_host():
    """The frame end to end without a VM: compaction on one node (this host's memory, the
    kernel's files faked, so nothing is compacted), with writers, the trace session and the
    guard — every byte verified, every page still on node 0, everything put back."""
    from workbench.kernelio import numa
    from workbench.kernelio.kernelfs import RealFS
    from workbench.agent.trial import run_trial
    if numa.memory_nodes(RealFS()) != [0]:
        pytest.skip("this host has more than node 0: the fake's single node would not match page_nodes()")
    fs = kernel(nodes=1)
    fs.add("/sys/devices/system/node/node0/compact", "")
    fs.add("/proc/vmstat", "pgmigrate_success 0\ncompact_isolated 0")
    made = []

    def instance(fs, path):
        made.append(path)
        for name in ("tracing_on", "buffer_size_kb", "trace"):
            fs.add(f"{path}/{name}", "0" if name != "trace" else "")
        for ev in tracing.EVENTS:
            fs.add(f"{path}/events/{ev}/enable", "0")
    fs.add_mkdir_hook(r"/sys/kernel/tracing/instances/[^/]+", instance)
    spec = TrialSpec(total_size=1 << 20, folio_size=4096, workload="compaction", dst=None, access="write",
                     access_threads=2)
    r = run_trial(spec, fs)
    assert r["workload"] == "compaction" and r["reason"] == "compaction" and r["kernel_reason"] == "MR_COMPACTION"
    assert r["verified"] and r["verify_bad_pages"] == 0 and r["access_bad_pages"] == 0 and r["access_passes"] >= 2
    assert r["pages_placed"] == 256 and r["expect_node"] == 0 and r["page_nodes"] == "0:256"
    assert r["compact_trigger"] == "/sys/devices/system/node/node0/compact"
    assert r["trace_events"] == 0 and r["trace_event_ns"] is None          # one node: nothing to calibrate with
    assert made and not fs.exists(made[0]) and "restore_problems" not in r
    stale = run_trial(TrialSpec(total_size=1 << 20, folio_size=4096, workload="compaction", dst=None,
                                access="write", inject_stale=True), fs)
    assert not stale["verified"] and stale["verify_bad_pages"] == 256


# series v3 (kernel/v3 0003): a batch copy's events inside a call, two batches
COPY_TRACE = """\
          python-812     [001] .....  2000.000000: mm_migrate_pages_start: mode=MIGRATE_SYNC reason=syscall_or_cpuset
          python-812     [001] .....  2000.000100: mm_migrate_copy_start: migrator=kernel folios=512 bytes=2097152 reason=syscall_or_cpuset
          python-812     [001] .....  2000.000900: mm_migrate_copy_end: migrator=kernel folios=512 bytes=2097152 copied=510 fallbacks=2 rc=0 copy_ns=790000 reason=syscall_or_cpuset
          python-812     [001] .....  2000.002000: mm_migrate_copy_start: migrator=kernel folios=512 bytes=2097152 reason=syscall_or_cpuset
          python-812     [001] .....  2000.001500: mm_migrate_batch_end: nr_succeeded=512 nr_failed=0 mode=MIGRATE_SYNC reason=syscall_or_cpuset
          python-812     [001] .....  2000.002500: mm_migrate_copy_end: migrator=kernel folios=512 bytes=2097152 copied=0 fallbacks=512 rc=-95 copy_ns=1000 reason=syscall_or_cpuset
          python-812     [001] .....  2000.003900: mm_migrate_batch_end: nr_succeeded=512 nr_failed=0 mode=MIGRATE_SYNC reason=syscall_or_cpuset
          python-812     [001] .....  2000.004000: mm_migrate_pages: nr_succeeded=1024 nr_failed=0 nr_thp_succeeded=0 nr_thp_failed=0 nr_thp_split=0 nr_split=0 mode=MIGRATE_SYNC reason=syscall_or_cpuset
          python-812     [001] .....  2001.000000: mm_migrate_pages_start: mode=MIGRATE_SYNC reason=syscall_or_cpuset
          python-812     [001] .....  2001.000300: mm_migrate_copy_end: migrator=kernel folios=1 bytes=4096 copied=1 fallbacks=0 rc=0 copy_ns=2000 reason=syscall_or_cpuset
          python-812     [001] .....  2001.000350: mm_migrate_batch_end: nr_succeeded=1 nr_failed=0 mode=MIGRATE_SYNC reason=syscall_or_cpuset
          python-812     [001] .....  2001.000400: mm_migrate_pages: nr_succeeded=1 nr_failed=0 nr_thp_succeeded=0 nr_thp_failed=0 nr_thp_split=0 nr_split=0 mode=MIGRATE_SYNC reason=syscall_or_cpuset
"""


def test_batch_copy_events_are_summarised_per_migrator_with_first_folio_latency():
    events = tracing.parse(COPY_TRACE)
    assert [e["event"] for e in events].count("mm_migrate_copy_end") == 3 and events[5]["rc"] == -95
    s = tracing.summarize(events)
    assert (s["trace_calls"], s["trace_unpaired"], s["trace_syscall_succeeded"]) == (2, 0, 1025)
    assert {k: v for k, v in s.items() if k.startswith("trace_copy_kernel_")} == {
        "trace_copy_kernel_batches": 3, "trace_copy_kernel_folios": 1025, "trace_copy_kernel_bytes": 4198400,
        "trace_copy_kernel_copied": 511, "trace_copy_kernel_fallbacks": 514, "trace_copy_kernel_errors": 1,
        "trace_copy_kernel_ns": 793000}
    # the first batch of each call ends (its folios moved) 1500 µs and 350 µs after its start;
    # the second batch's end does not count
    assert s["trace_batches"] == 3
    assert (s["trace_first_batch_calls"], s["trace_first_batch_ns"], s["trace_first_batch_max_ns"]) == \
        (2, 925_000, 1_500_000)
    # a kernel without the events: no copy fields at all
    assert not any(k.startswith(("trace_copy_", "trace_first_batch")) for k in tracing.summarize(tracing.parse(TRACE)))
