"""``workbench conformance``: the kernel's own migration tests and an outside stressor,
run under each migrator in a VM, stored as a run and shown as a matrix test × migrator.

Two registries say what can run:

* **Suites** (:data:`SUITES`): ``selftests`` — programs of the kernel's
  ``tools/testing/selftests/mm`` built from the source of the kernel under test (the built
  tree the VM boots), cached by the tree's name (which carries the hash of its inputs) and
  the program list; a kselftest-harness program runs one case at a time (``-t CASE``), so
  each case has its own counters. ``stress-ng`` — Debian's stress-ng and its NUMA
  stressor (``migrate_pages``/``mbind``/``move_pages`` of its own memory), a fixed number of
  operations with verification on.
* **Migrator configurations** (:data:`CONFIGS`): the kernel's own copy, the batched
  kernel copy, mtcopy at 1 and 2 threads, dcbm at 1 and 4 channels on the test DMA engine,
  and dcbm on the engine's DSA-like and PTDMA-like presets. A configuration's migrator is
  offered every batch it may take while a case runs (every reason, no minimum), so the
  kernel's tests reach it; a pass during which an offloading migrator copied nothing is
  ``did not exercise``, not a pass for it.

What runs where is decided before the VM boots, and every skip says why (a test the
kernel tree does not have, a migrator the kernel does not offer, too few CPUs).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ... import paths
from ...errors import WorkbenchError

ENGINE = "/sys/module/test_dma_engine/parameters"
DMA_ENGINE = "test_dma_engine"

DCBM = "/sys/kernel/mm/migration/dcbm"


def _fault(engine: dict, counter: str | None, dcbm: dict | None = None) -> dict:
    """dcbm on 2 channels of the engine with these fault fields (and dcbm settings); the
    engine's ``counter`` must move during a case for it to have exercised the fault."""
    return {"migrator": "dcbm", "knobs": {"channels": 2}, "dma_engine": DMA_ENGINE,
            "engine_fault": " ".join(f"{k}={v}" for k, v in engine.items()),
            "settings": {**{f"{ENGINE}/{k}": v for k, v in engine.items()}, **(dcbm or {})},
            "exercised_by": [f"test_dma_engine.{counter}"] if counter else []}


#: {name: (what it is, the configuration sent to the agent)}
CONFIGS: dict[str, tuple[str, dict]] = {
    "kernel": ("the kernel's own folio-by-folio copy", {"migrator": "kernel", "offer_everything": False}),
    "kernel-batched": ("the kernel's copy through the batch path", {"migrator": "kernel",
                                                                    "knobs": {"batch_kernel_copy": 1}}),
    "mtcopy-1": ("mtcopy, 1 thread", {"migrator": "mtcopy", "knobs": {"threads": 1}}),
    "mtcopy-2": ("mtcopy, 2 threads", {"migrator": "mtcopy", "knobs": {"threads": 2}}),
    "dcbm-1": ("dcbm, 1 channel of the test DMA engine", {"migrator": "dcbm", "knobs": {"channels": 1},
                                                          "dma_engine": DMA_ENGINE}),
    "dcbm-4": ("dcbm, 4 channels of the test DMA engine", {"migrator": "dcbm", "knobs": {"channels": 4},
                                                           "dma_engine": DMA_ENGINE}),
    "dcbm-dsa": ("dcbm, 2 channels, the engine DSA-like (out of order, callbacks where asked)",
                 {"migrator": "dcbm", "knobs": {"channels": 2}, "dma_engine": DMA_ENGINE,
                  "engine_preset": "dsa", "settings": {f"{ENGINE}/preset": "dsa"}}),
    "dcbm-ptdma": ("dcbm, 2 channels, the engine PTDMA-like (small rings)",
                   {"migrator": "dcbm", "knobs": {"channels": 2}, "dma_engine": DMA_ENGINE,
                    "engine_preset": "ptdma", "settings": {f"{ENGINE}/preset": "ptdma"}}),
    # the engine's fault modes: the kernel's tests must still pass, the faulted folios copied
    # by the CPU; a case during which the fault never fired did not exercise the mode
    "dcbm-fail": ("dcbm, 2 channels, every 7th descriptor failed", _fault({"fail_every": "7"}, "failed")),
    "dcbm-abort": ("dcbm, 2 channels, every 7th descriptor failing and aborting its channel's rest",
                   _fault({"fail_every": "7", "on_error": "abort"}, "failed")),
    # dcbm's wait bounded to 20 ms: v3's wait_us (and min_mbps), v2's timeout_ms on 6.12
    "dcbm-hang": ("dcbm, 2 channels, every 20th descriptor never completing (dcbm's wait runs out)",
                  {**_fault({"hang_every": "20"}, "hung"),
                   "settings_one_of": [{f"{DCBM}/wait_us": "20000", f"{DCBM}/min_mbps": "1000"},
                                       {f"{DCBM}/timeout_ms": "20"}]}),
    "dcbm-map-fail": ("dcbm, 2 channels, every DMA mapping failing (nothing copied by the engine)",
                      # v3 counts the failed mappings; v2 (6.12) only the CPU's fallbacks
                      {**_fault({"map_fail": "1"}, None), "exercised_by": ["dcbm.map_errors|dcbm.fallbacks"],
                       # dma-direct warns once of the mapping it could not make (7.3 and 6.12's forms)
                       "expected_report": r"WARNING: .*kernel/dma/direct\.[ch]:\d+.*dma_direct_map"}),
}
#: what CI runs: a small matrix (the full one is one command, see the README)
CI_CONFIGS = ("mtcopy-2", "dcbm-1")


@dataclass
class Program:
    """A selftest program: how to run it and read it."""
    name: str
    covers: str
    reader: str = "kselftest"       # conformance.READERS on the agent
    per_case: bool = True           # a kselftest-harness program: one run per case (-t CASE)
    args: tuple[str, ...] = ()
    timeout: float = 300.0
    min_cpus: int = 1
    #: a program run several ways (not per_case): (case name, its arguments) each
    runs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: settings for the cases whose name contains a word, as run_vmtests.sh makes them
    #: before it runs the program (through the guard: restored after the case)
    case_settings: tuple[tuple[str, dict], ...] = ()
    #: kernel config options the program needs (read from the kernel's config before the
    #: VM runs anything: a kernel without them skips the program, saying which), and the
    #: modules loaded for it (as its run_vmtests.sh wrapper loads them)
    needs_config: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()

    def settings_for(self, case: str) -> dict:
        return {k: v for word, settings in self.case_settings if word in case for k, v in settings.items()}


#: what every case runs under, on every kernel (where the kernel has the file): a kernel's
#: defaults must not decide what a test does. Debian's kernels default to THP "always" and
#: NUMA balancing on; the test trees to "madvise" and off. Under "always", stress-ng's NUMA
#: stressor moves a whole THP for each 4K page it names, 512 times the copying: its 64
#: operations did not end in 600 s on the stock 6.12 kernel and take 20 s on the test trees.
#: The kernel's tests ask for THPs with madvise where they want them; NUMA balancing would
#: move pages under a test that checks where they are.
CONDITIONS = {"/sys/kernel/mm/transparent_hugepage/enabled": "madvise", "/proc/sys/kernel/numa_balancing": "0"}

#: huge pages for hugetlb cases: 8 of 2 MiB, spread over the nodes (run_vmtests.sh reserves them
#: for the whole suite; a kernel whose test does not skip without them fails in mmap())
HUGETLB_PAGES = {"/proc/sys/vm/nr_hugepages": "8"}


#: the mm selftests that move pages, in the order they run (their arguments as the
#: kernel's own run_vmtests.sh gives them, durations shortened for an emulated CPU)
SELFTESTS: dict[str, Program] = {p.name: p for p in (
    Program("migration", "move_pages(2) of anonymous, shared, THP and hugetlb memory back and forth between "
                         "two nodes while other threads fault on it (migration entries)", min_cpus=3,
            timeout=120.0, case_settings=(("htlb", HUGETLB_PAGES),)),
    Program("transhuge-stress", "THP allocation, compaction and splitting under churn (compaction migrates)",
            reader="exit-code", per_case=False, timeout=180.0,
            runs=(("transhuge-stress", ("-d", "20", "128")),)),
    Program("compaction_test", "hugetlb allocation after memory is fragmented: compaction's migration",
            per_case=False, timeout=600.0, runs=(("compaction_test", ()),)),
    Program("split_huge_page_test", "THP splitting, of anonymous, page-cache and shmem folios",
            per_case=False, timeout=600.0, runs=(("split_huge_page_test", ()),)),
    Program("ksm_tests", "KSM merging across NUMA nodes (merge_across_nodes on and off)",
            per_case=False, timeout=300.0,
            runs=(("ksm_tests-numa-merge", ("-N", "-m", "1")), ("ksm_tests-numa-nomerge", ("-N", "-m", "0")))),
    Program("hmm-tests", "device-private memory: pages moved to a pretend device and back through migrate_vma "
                         "(test_hmm.ko), the migration core migrate_pages shares; exclusive access, THP",
            per_case=False, timeout=900.0,
            # its benchmark_thp_migration times migrations against the harness's 120 s limit,
            # which an emulated CPU misses: a benchmark, not a check of what moved
            runs=(("hmm-tests", ("-T", "benchmark_thp_migration")),),
            needs_config=("CONFIG_DEVICE_PRIVATE", "CONFIG_TEST_HMM"), modules=("test_hmm",)),
)}

#: the stress-ng stressors that migrate (Debian's stress-ng)
STRESS_NG = {
    "numa": ("its memory moved between nodes by migrate_pages(2), mbind(2) and move_pages(2), verified",
             ["--numa", "1", "--numa-ops", "64", "--verify", "--metrics-brief", "--temp-path", "/tmp"]),
}


@dataclass
class Suite:
    name: str
    describe: str
    tests: tuple[str, ...] = field(default_factory=tuple)


SUITES = {
    "selftests": Suite("selftests", "tools/testing/selftests/mm of the kernel under test", tuple(SELFTESTS)),
    "stress-ng": Suite("stress-ng", "Debian's stress-ng, its page-migrating stressors", tuple(STRESS_NG)),
}
CI_SUITES = ("selftests:migration", "stress-ng:numa")


def parse_list(text: str | None, known: dict, what: str, default) -> list[str]:
    """A comma-separated choice of ``known``'s names (``all``: every one), or one line
    naming what is not known and what is."""
    if not text:
        return list(default)
    if text == "all":
        return list(known)
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise WorkbenchError(f"{what} {', '.join(map(repr, bad)) or repr(text)} "
                             f"{'are' if len(bad) > 1 else 'is'} not known; allowed: "
                             f"{', '.join(known)}, all")
    return names


def parse_suites(text: str | None) -> list[tuple[str, str]]:
    """``selftests``, ``selftests:migration``, ``stress-ng:numa``, ``all`` -> [(suite, test)]."""
    if not text or text == "all":
        return [(s, t) for s in SUITES for t in SUITES[s].tests]
    out = []
    for item in (i.strip() for i in text.split(",") if i.strip()):
        suite, _, test = item.partition(":")
        if suite not in SUITES:
            raise WorkbenchError(f"suite {suite!r} not known; allowed: {', '.join(SUITES)} (a test as "
                                 "SUITE:TEST, e.g. selftests:migration), all")
        tests = SUITES[suite].tests
        if test and test not in tests:
            raise WorkbenchError(f"test {test!r} is not in suite {suite}; it has: {', '.join(tests)}")
        out += [(suite, t) for t in ([test] if test else tests)]
    return out


# ---- building the selftests from the kernel's own tree --------------------------------------

def selftest_dir(tree: Path, programs: list[str]) -> Path:
    """Where the selftests of ``tree`` are built: keyed by the tree (its name carries the
    hash of its inputs, and a tree a user gives is keyed by its path and bzImage time),
    the programs and the host's compiler."""
    cc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    image = tree / "arch/x86/boot/bzImage"
    stamp = image.stat().st_mtime_ns if image.exists() else 0
    key = hashlib.sha256(json.dumps([str(tree.resolve()), stamp, sorted(programs), cc]).encode()).hexdigest()[:12]
    return paths.cache_dir() / "conformance" / f"{tree.name}-{key}"


def build_selftests(tree: Path, programs: list[str], progress=print) -> Path:
    """Build ``programs`` of ``tree``'s tools/testing/selftests/mm on the host (the guest
    shares the host's files); cached. The source tree is not written to: the build runs in
    a copy of ``tools/`` (hard links) beside links to the rest of the tree."""
    out = selftest_dir(tree, programs)
    if all((out / "mm" / p).exists() for p in programs):
        return out
    src = tree / "tools/testing/selftests/mm"
    if not src.is_dir():
        raise WorkbenchError(f"kernel tree {tree} has no tools/testing/selftests/mm (a tree from 4.x or a "
                             "stripped one); the selftests suite cannot run on it")
    missing = [p for p in programs if not (src / f"{p}.c").exists()]
    if missing:
        raise WorkbenchError(f"kernel tree {tree} has no selftest {', '.join(missing)} in "
                             "tools/testing/selftests/mm")
    for tool in ("gcc", "make"):
        if shutil.which(tool) is None:
            raise WorkbenchError(f"building the selftests needs {tool} (scripts/setup.sh installs it)")
    if not Path("/usr/include/numa.h").exists():
        raise WorkbenchError("building the migration selftest needs libnuma's headers: apt-get install "
                             "libnuma-dev (scripts/setup.sh installs it)")
    work = out.with_name(out.name + ".work")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    work.mkdir(parents=True)
    progress(f"building selftests {', '.join(programs)} from {tree}")
    subprocess.run(["cp", "-al", str(tree / "tools"), str(work / "tools")], check=True)
    for entry in tree.iterdir():
        if entry.name != "tools":
            (work / entry.name).symlink_to(entry)
    hdr = work / "headers"
    _make(["make", "-s", "-C", str(tree), f"O={work / 'hdr-obj'}", "ARCH=x86", "headers_install",
           f"INSTALL_HDR_PATH={hdr}"], "the kernel's UAPI headers")
    built = work / "selftests-mm"
    built.mkdir()
    _make(["make", "-s", "-C", str(work / "tools/testing/selftests/mm"), f"OUTPUT={built}",
           f"KHDR_INCLUDES=-isystem {hdr / 'include'}", *[str(built / p) for p in programs]],
          f"selftests {', '.join(programs)}")
    out.mkdir(parents=True)
    shutil.move(str(built), str(out / "mm"))
    shutil.rmtree(work, ignore_errors=True)
    return out


def _make(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        tail = " | ".join(ln for ln in (proc.stdout + proc.stderr).splitlines()[-3:])
        raise WorkbenchError(f"building {what} failed (exit {proc.returncode}): {tail}")


def list_cases(binary: Path) -> list[str]:
    """A kselftest-harness program's cases (its ``-l`` list), as FIXTURE.TEST names."""
    proc = subprocess.run([str(binary), "-l"], capture_output=True, text=True, timeout=30)
    return parse_case_list(proc.stdout + proc.stderr)


def parse_case_list(text: str) -> list[str]:
    """The FIXTURE.TEST names of a kselftest harness's ``-l`` listing."""
    # "FIXTURE [VARIANT] TEST" on a fixture's first line, then "TEST" indented; a fixture
    # with no test (the harness's "global") is a line of its own
    cases, fixture = [], None
    for line in text.splitlines():
        parts = line.split()
        if not parts or line.startswith(("#", "-")):
            continue
        if not line.startswith(" "):
            fixture, parts = parts[0], parts[1:]
        if parts and f"{fixture}.{parts[-1]}" not in cases:   # (-t runs a test's every variant)
            cases.append(f"{fixture}.{parts[-1]}")
    return cases


# ---- what runs ------------------------------------------------------------------------------

def cases_for(tests: list[tuple[str, str]], source: SelftestSource | None,
              progress=print) -> tuple[list[dict], list[dict]]:
    """(cases to send to the agent, records of what cannot run here and why)."""
    cases, skipped = [], []
    programs = [t for s, t in tests if s == "selftests"]
    if programs:
        if source is None or source.tree is None:
            why = source.why_not if source else "no source for the kernel under test"
            skipped += [_skip("selftests", p, why) for p in programs]
            programs = []
        lacking = {p: source.lacks(SELFTESTS[p].needs_config) for p in programs}
        for p, missing in lacking.items():
            if missing:
                skipped.append(_skip("selftests", p, f"needs {' and '.join(missing)}, which the kernel's config "
                                                     f"({source.config}) does not set", missing[0]))
        programs = [p for p in programs if not lacking[p]]
        mm = source.tree / "tools/testing/selftests/mm" if programs else None
        for p in [p for p in programs if mm.is_dir() and not (mm / f"{p}.c").exists()]:
            skipped.append(_skip("selftests", p, f"this kernel's source ({source.describe}) has no selftest {p} "
                                                 "(tools/testing/selftests/mm): not built for this kernel"))
            programs.remove(p)
        if programs:
            built = build_selftests(source.tree, programs, progress)
            for p in programs:
                prog, binary = SELFTESTS[p], built / "mm" / p
                if prog.per_case:
                    for case in list_cases(binary):
                        cases.append({"suite": "selftests", "test": p, "case": case, "reader": prog.reader,
                                      "argv": [str(binary), "-t", case.split(".", 1)[1]],
                                      "timeout": prog.timeout, "cwd": str(binary.parent),
                                      "settings": prog.settings_for(case), "conditions": CONDITIONS})
                else:
                    for case, args in prog.runs or ((p, prog.args),):
                        cases.append({"suite": "selftests", "test": p, "case": case, "reader": prog.reader,
                                      "argv": [str(binary), *args], "timeout": prog.timeout,
                                      "cwd": str(binary.parent), "modules": list(prog.modules),
                                      "conditions": CONDITIONS})
    for s, t in tests:
        if s == "stress-ng":
            exe = shutil.which("stress-ng")
            if exe is None:
                skipped.append(_skip(s, t, "stress-ng is not installed (scripts/setup.sh installs it)"))
                continue
            _, args = STRESS_NG[t]
            cases.append({"suite": s, "test": t, "case": t, "reader": "stress-ng", "argv": [exe, *args],
                          "timeout": 600.0, "cwd": "/tmp", "conditions": CONDITIONS})
    return cases, skipped


def _skip(suite: str, test: str, why: str, missing_config: str | None = None) -> dict:
    return {"suite": suite, "test": test, "case": test, "status": "skip", "verdict": "skip",
            "skip_reason": why, **({"missing_config": missing_config} if missing_config else {})}


def configs_for(names: list[str], facts: dict) -> tuple[list[dict], list[str]]:
    """(configurations this kernel can run, one line for each it cannot)."""
    offered = set(facts.get("migrators") or ["kernel"]) | set(facts.get("loadable") or [])
    knobs = facts.get("knobs") or {}
    run, cannot = [], []
    for name in names:
        _, cfg = CONFIGS[name]
        if cfg["migrator"] not in offered:
            cannot.append(f"{name}: this kernel ({facts.get('interface', '?')}) offers no {cfg['migrator']} "
                          f"(it offers {', '.join(sorted(offered))})")
        elif cfg.get("knobs", {}).get("batch_kernel_copy") and "batch_kernel_copy" not in knobs:
            cannot.append(f"{name}: this kernel has no batched kernel copy (batch_kernel_copy)")
        else:
            run.append({"name": name, **cfg})
    return run, cannot


# ---- the source a kernel's selftests are built from -----------------------------------------

@dataclass
class SelftestSource:
    """Where the selftests of the kernel under test come from, and its config."""
    tree: Path | None             # a kernel source tree (None: there is none; why_not says why)
    config: Path | None = None    # the kernel's .config, to see what it was built with
    describe: str = ""
    why_not: str | None = None

    def lacks(self, options: tuple[str, ...]) -> list[str]:
        """Of ``options``, those the kernel's config does not set (y or m); none when the
        config cannot be read (the agent then says what is missing)."""
        if not options or self.config is None or not self.config.is_file():
            return []
        have = {ln.split("=", 1)[0] for ln in self.config.read_text().splitlines()
                if ln.startswith("CONFIG_") and ln.split("=", 1)[1:] in (["y"], ["m"])}
        return [o for o in options if o not in have]


def selftest_source(facts: dict, progress=print) -> SelftestSource:
    """A built tree: itself. A Debian stock image: the line's Debian source of the same
    version (unpacked into the cache). Anything else has no source here."""
    from ...targets import kernel_images
    image = facts.get("kernel_image")
    if image and Path(image).is_dir():
        return SelftestSource(Path(image), Path(image) / ".config", f"the built tree {image}")
    path = Path(image) if image else None
    if path and path.name.startswith("vmlinuz-") and kernel_images.stock_root() in path.parents:
        release = path.name[len("vmlinuz-"):]
        return stock_source(release, path.with_name(f"config-{release}"), progress)
    return SelftestSource(None, why_not=f"the kernel under test ({image or 'unknown'}) is neither a tree built "
                                        "here nor a Debian stock image: there is no source to build its "
                                        "selftests from (boot a built tree, or stock)")


def stock_source(release: str, config: Path, progress=print) -> SelftestSource:
    """The Debian source of stock kernel ``release``: its line's linux-source package, if
    its version is the image's (kernel/line-source.sh); unpacked once into the cache,
    without the directories neither the UAPI headers nor the selftests use."""
    from ...targets import kernel_lines
    line = next((ln for ln in kernel_lines.lines() if release.startswith(ln.name + ".")), None)
    if line is None:
        return SelftestSource(None, config, why_not=f"stock kernel {release} is on none of the kernel lines "
                                                    f"({', '.join(ln.name for ln in kernel_lines.lines())})")
    proc = subprocess.run(["bash", str(paths.REPO / "kernel" / "line-source.sh"), line.name],
                          capture_output=True, text=True)
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return SelftestSource(None, config, why_not=f"no {line.source_package} for stock kernel {release}: {last}")
    tarball, version = proc.stdout.split()[-2:]
    if version.split("-")[0] != release.split("+")[0].split("-")[0]:
        return SelftestSource(None, config, why_not=f"Debian's {line.source_package} here is {version}, the stock "
                                                    f"kernel is {release}: its selftests would be another kernel's")
    dest = paths.cache_dir() / "conformance" / f"source-{line.source_package}-{version.replace('~', '_')}"
    if not (dest / ".unpacked").exists():
        progress(f"unpacking {Path(tarball).name} {version} for the stock kernel's selftests")
        partial = dest.with_name(dest.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        top = f"{line.source_package}/"
        _make(["tar", "-C", str(partial), "--strip-components=1", "-xf", tarball, "--anchored",
               *[f"--exclude={top}{d}" for d in ("drivers", "Documentation", "sound", "fs", "net", "firmware")]],
              f"unpacking {tarball}")
        (partial / ".unpacked").write_text(f"{tarball} {version}\n")
        shutil.rmtree(dest, ignore_errors=True)
        partial.rename(dest)
    return SelftestSource(dest, config, f"Debian's {line.source_package} {version}")


def run(target, migrators: list[str], tests: list[tuple[str, str]], label: str = "conformance",
        progress=print, root: Path | None = None, only: list[str] | None = None):
    """Everything chosen on ``target`` (of the selftests' cases, ``only`` these, where
    given): a stored run (records as they come), its records, and the configurations this
    kernel cannot run, one line each."""
    from tqdm.auto import tqdm

    from ..running import store
    facts = target.facts()
    if facts.get("interface") in (None, "none") and migrators != ["kernel"]:
        progress(f"{facts.get('target', 'the target')} has no copy-offload series "
                 f"({facts.get('kernel_release')}): running the kernel's own copy only")
        migrators = ["kernel"]
    configs, cannot = configs_for(migrators, facts)
    source = selftest_source(facts, progress) if any(s == "selftests" for s, _ in tests) else None
    cases, skipped = cases_for(tests, source, progress)
    if only:
        unknown = sorted(set(only) - {c["case"] for c in cases})
        if unknown:
            raise WorkbenchError(f"case {', '.join(unknown)} is not among the chosen tests' cases: "
                                 f"{', '.join(c['case'] for c in cases)}")
        cases = [c for c in cases if c["case"] in only]
    manifest = {"label": label, "kind": "conformance", "target": facts.get("target"),
                "kernel_release": facts.get("kernel_release"), "interface": facts.get("interface"),
                "kernel_image": facts.get("kernel_image"), "series": facts.get("series"),
                "inputs": facts.get("inputs"), "cpus": facts.get("cpus"),
                "selftest_source": source.describe if source and source.tree else None,
                "conditions": CONDITIONS,
                "configs": [c["name"] for c in configs], "cannot_run": cannot,
                "tests": [f"{s}:{t}" for s, t in tests]}
    out = store.create_run(manifest, root=root)

    def keep(rec: dict) -> None:
        # every record is one (case, configuration): that is its key in the run
        out.append({**rec, "trial_key": f"conformance-{rec['suite']}-{rec['case']}-{rec['config']}"})
    base = {"kernel_release": facts.get("kernel_release"), "target": facts.get("target"),
            "interface": facts.get("interface"), "cpus": facts.get("cpus")}
    for rec in skipped:
        for cfg in configs:
            keep({**base, **rec, "config": cfg["name"], "migrator": cfg["migrator"]})
    cpus = facts.get("cpus") or 0
    runnable = []
    for case in cases:
        need = SELFTESTS[case["test"]].min_cpus if case["suite"] == "selftests" else 1
        if cpus < need:
            for cfg in configs:
                keep({**base, **_skip(case["suite"], case["test"], f"needs at least {need} CPUs; the target "
                                            f"has {cpus} (a VM with --nodes 1G:0-1,1G:2-3 has 4)"),
                            "case": case["case"], "config": cfg["name"], "migrator": cfg["migrator"]})
        else:
            runnable.append(case)
    records = []
    with tqdm(total=len(runnable) * len(configs), desc="conformance", unit="case") as bar:
        for cfg in configs:
            for case in runnable:
                for event in target.run_plan({"op": "conformance", "cases": [case], "configs": [cfg]}):
                    if event["type"] == "error":
                        raise WorkbenchError(f"conformance {case['case']} under {cfg['name']}: {event['message']}")
                    if event["type"] == "record":
                        rec = {**base, **event["record"]}
                        keep(rec)
                        records.append(rec)
                bar.set_postfix_str(f"{cfg['name']} {case['case']}")
                bar.update()
    return out, records, cannot


def unclean(df):
    """Records whose kernel log was not clean, but for a fault mode's expected report."""
    import pandas as pd
    if "kernel_clean" not in df:
        return pd.Series(False, index=df.index)
    expected = df["kernel_report_expected"].eq(True) if "kernel_report_expected" in df else False
    return df["kernel_clean"].eq(False) & ~expected


VERDICT_MARK = {"pass": "pass", "fail": "FAIL", "skip": "skip", "did not exercise": "not exercised"}


def matrix(df) -> str:
    """The matrix test × migrator configuration, and the failures' first lines."""
    if df.empty:
        return "no conformance records"
    df = df.copy()
    df["row"] = df["suite"] + ":" + df["case"].fillna(df["test"])
    df["mark"] = df["verdict"].map(VERDICT_MARK).fillna(df["verdict"])
    dirty = unclean(df)
    expected = df["kernel_clean"].eq(False) & ~dirty if "kernel_clean" in df else dirty
    df.loc[dirty, "mark"] = df.loc[dirty, "mark"] + " +log"
    df.loc[expected, "mark"] = df.loc[expected, "mark"] + " +expected log"
    order = [c for c in CONFIGS if c in set(df["config"])]
    table = df.pivot_table(index="row", columns="config", values="mark", aggfunc="first")[order].fillna("-")
    lines = [table.to_string()]
    for _, r in df[df["verdict"].eq("fail") | dirty].iterrows():
        lines.append(f"\n{r['row']} under {r['config']}: {r['verdict']}"
                     + (f"; kernel log: {str(r.get('kernel_report') or '').splitlines()[0]}" if r.get("kernel_report")
                        else ""))
        tail = [ln for ln in str(r.get("output") or "").splitlines() if ln.strip()][-5:]
        lines += [f"  | {ln}" for ln in tail]
    skips = df[df["verdict"].eq("skip")].drop_duplicates("row")
    for _, r in skips.iterrows():
        lines.append(f"skipped {r['row']}: {r.get('skip_reason') or 'no reason given'}")
    return "\n".join(lines)


def is_conformance_run(run_id: str, root=None) -> bool:
    """Whether ``run_id`` is a stored conformance run (False for anything else, a name that
    is no run included: its reader says what is wrong with it)."""
    from ..running import store
    try:
        return store.open_run(run_id, root).manifest.get("kind") == "conformance"
    except WorkbenchError:
        return False


def compare_runs(base, new, base_name: str, new_name: str) -> str:
    """What changed between two conformance runs: every (case, configuration) whose
    verdict differs, or is in one run only."""
    def verdicts(df):
        return {(f"{r['suite']}:{r['case']}", r["config"]): r["verdict"] for r in df.to_dict("records")}
    a, b = verdicts(base), verdicts(new)
    changed = [(row, cfg, a.get((row, cfg), "-"), b.get((row, cfg), "-")) for row, cfg in sorted(a.keys() | b.keys())
               if a.get((row, cfg)) != b.get((row, cfg))]
    head = f"conformance {base_name} -> {new_name}: {len(changed)} of {len(a.keys() | b.keys())} cells changed"
    width = max([len(r) for r, *_ in changed] + [4])
    return "\n".join([head] + [f"  {row:<{width}}  {cfg:<14} {x} -> {y}" for row, cfg, x, y in changed])


def default_nodes() -> str:
    """A VM for the kernel's tests: two nodes of two CPUs each (the migration selftest
    wants three CPUs or more)."""
    return os.environ.get("WORKBENCH_CONFORMANCE_NODES", "1G:0-1,1G:2-3")
