"""Other people's tests under a migrator (the ``conformance`` plan op): the kernel's own
selftests and an outside stressor, run as programs on the target while a migrator is set
up as a trial sets it up, with what the migrator copied counted around each.

The host sends cases (a program and its arguments, how to read its result) and migrator
configurations; every (case, configuration) gives one record:

``status``      what the program said: ``pass``, ``fail`` or ``skip`` (``skip_reason``)
``verdict``     ``status``, except that a pass during which the migrator under test copied
                nothing (or a fault mode's counters did not move) is ``did not exercise``:
                it says nothing about that migrator
``copied``      folios the migrator copied meanwhile (None: the interface cannot say)
``kernel_clean`` and ``kernel_report``: the kernel log and taint meanwhile (:mod:`.kernellog`)
``output``      the program's own output (its last ``OUTPUT_LIMIT`` characters)

A case may name modules its program needs (``modules``: test_hmm for hmm-tests); they
are loaded before it runs and unloaded after it if the case loaded them. Its
``conditions`` (system settings every kernel runs the tests under, so that a kernel's
defaults do not decide what a test does) are set where the kernel has the file, and
recorded. The program runs in a session of its own, killed whole when it ends.

So that the kernel's tests reach the migrator, the configuration may offer it every
batch (``offer_everything``: every reason it may take, no minimum), where the interface
has such settings; the record says so. Everything is restored after each case.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time

from ..errors import WorkbenchError
from . import migrators
from ..kernelio.kernelfs import KernelFS, KnobGuard
from ..kernelio.kernellog import TrialLog
from .vmstat import delta

OUTPUT_LIMIT = 16000
#: kselftest's TAP result line: "ok 1 migration.private_anon", "ok 3 Split huge pages to
#: order 2 successful", "ok 61 # SKIP Pagecache folio split skipped" (no description)
TAP = re.compile(r"^(not ok|ok) \d+(?: -)?(?: (.*?))?(?:\s*# (SKIP|XFAIL|TODO)\b\s*(.*))?$")


def read_kselftest(output: str, returncode: int | None) -> tuple[str, str | None]:
    """(status, skip reason) of one kselftest harness case from its output."""
    results = [m for m in (TAP.match(line.strip()) for line in output.splitlines()) if m]
    if returncode is None:
        return "fail", None
    if not results:
        # a program that skips before its harness starts says so by exit code 4 (KSFT_SKIP)
        return ("skip", _last_line(output)) if returncode == 4 else ("fail", None)
    if any(m.group(1) == "not ok" for m in results):
        return "fail", None
    skips = [m for m in results if m.group(3) == "SKIP"]
    if len(skips) == len(results):
        return "skip", skips[0].group(4) or None
    return ("pass", None) if returncode in (0, 4) else ("fail", None)


def read_exit_code(output: str, returncode: int | None) -> tuple[str, str | None]:
    """A program without TAP: 0 passes, 4 (kselftest's KSFT_SKIP) skips, anything else fails."""
    if returncode == 0:
        return "pass", None
    if returncode == 4:
        return "skip", _last_line(output)
    return "fail", None


def read_stress_ng(output: str, returncode: int | None) -> tuple[str, str | None]:
    """stress-ng: exit 0 with no ``fail:`` line (its failed checks and verifications) and
    no failed stressor passes; exit 4 (no resources / not implemented) or a stressor that
    says it skipped is a skip."""
    lines = output.splitlines()
    if returncode is not None and any("skipping" in ln.lower() for ln in lines):
        return "skip", next(ln for ln in lines if "skipping" in ln.lower()).strip()
    failed = any(re.search(r"stress-ng: fail:|\bfailed: [1-9]|unsuccessful run", ln) for ln in lines)
    if returncode == 0 and not failed:
        return "pass", None
    if returncode == 4 and not failed:
        return "skip", _last_line(output)
    return "fail", None


READERS = {"kselftest": read_kselftest, "exit-code": read_exit_code, "stress-ng": read_stress_ng}


def _last_line(output: str) -> str | None:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else None


def run_case(fs: KernelFS, case: dict, config: dict) -> dict:
    """One case under one migrator configuration: its record (see the module's docstring)."""
    migrator = config.get("migrator", "kernel")
    knobs = dict(config.get("knobs") or {})
    record = {"suite": case["suite"], "test": case["test"], "case": case.get("case") or case["test"],
              "config": config["name"], "migrator": migrator, "argv": " ".join(case["argv"]),
              **{k: knobs.get(k) for k in ("threads", "channels", "batch_kernel_copy")},
              "dma_engine": config.get("dma_engine"), "engine_preset": config.get("engine_preset"),
              "engine_fault": config.get("engine_fault"),
              "case_settings": " ".join(f"{k}={v}" for k, v in sorted((case.get("settings") or {}).items())) or None}
    log = TrialLog(fs)
    guard = KnobGuard(fs)
    try:
        control = migrators.detect(fs)
        record["interface"] = control.name
        try:
            if config.get("dma_engine"):
                control.load(config["dma_engine"], what="DMA engine module")
            control.configure(guard, migrator, **knobs)
            record["offer_everything"] = control.offer_everything(guard, migrator) \
                if config.get("offer_everything", True) else None
            conditions = {k: v for k, v in (case.get("conditions") or {}).items() if fs.exists(k)}
            control.apply_settings(guard, conditions)
            record["conditions"] = " ".join(f"{k}={v}" for k, v in sorted(conditions.items())) or None
            control.apply_settings(guard, config.get("settings"))
            control.apply_settings(guard, first_present(fs, config.get("settings_one_of")))
            control.apply_settings(guard, case.get("settings"))
            for module in case.get("modules") or ():
                load_for_case(fs, guard, control, module)
        except (WorkbenchError, OSError) as exc:
            # this kernel cannot be set up so (a file another series lacks, a module missing)
            record.update({"status": "skip", "verdict": "skip", "copied": None,
                           "skip_reason": f"cannot set up {config['name']}: {exc}"})
            return record
        c0 = control.counters()
        t0 = time.monotonic()
        try:
            proc = run_program(case["argv"], timeout=case.get("timeout", 600), cwd=case.get("cwd"), env=case.get("env"))
            output, returncode = proc.stdout + proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as exc:
            output = _text(exc.stdout) + _text(exc.stderr) + f"\n(killed after {case.get('timeout', 600)} s)"
            returncode = None
        record["seconds"] = time.monotonic() - t0
        moved = delta(c0, control.counters())
        copied = control.folios_copied(moved, migrator)
    finally:
        problems = guard.restore()
        if problems:
            record["restore_problems"] = "; ".join(problems)
    status, why = READERS[case.get("reader", "kselftest")](output, returncode)
    # what must have happened for the case to say anything about this configuration: the
    # migrator copied (an offloading one), and the counters a fault mode names moved
    # (under a fault mode the fault firing is what counts: a 2M folio of 32 descriptors
    # with every 7th failed is never copied by the engine, and must not need to be)
    # "a|b": the first of the counters this kernel has (another series names it otherwise)
    needs = [next((k for k in alt.split("|") if k in c0), alt.split("|")[0])
             for alt in config.get("exercised_by") or ()]
    exercised = all(moved.get(k, 0) > 0 for k in needs) if needs else (
        copied is None or copied > 0 or not control.offloads(migrator, knobs))
    record.update({"returncode": returncode, "status": status, "skip_reason": why, "copied": copied,
                   "exercised_by": " ".join(needs) or None,
                   "verdict": "did not exercise" if status == "pass" and not exercised else status,
                   "output": output[-OUTPUT_LIMIT:],
                   **{f"mig_{k.replace('.', '_')}": v for k, v in moved.items() if v and k.count(".") == 1}})
    record.update(log.verdict())
    expected = config.get("expected_report")
    # a fault mode's own report (map_fail's dma-direct WARN) is expected: named, not a failure
    record["kernel_report_expected"] = bool(expected and record.get("kernel_clean") is False
                                            and re.search(expected, record.get("kernel_report") or ""))
    return record


def run_program(argv: list[str], timeout: float, cwd: str | None = None,
                env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a case's program in a session of its own and, when it ends or its time runs out,
    kill whatever of that session is left (stress-ng's stressors, a test's forked children):
    nothing of one case runs on into the next. Its output and errors go, interleaved as
    written, to a file rather than a pipe, so a child still holding them open cannot keep
    the case waiting. Raises TimeoutExpired with the output so far."""
    with tempfile.TemporaryFile(mode="w+", errors="replace") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True, cwd=cwd, env=env,
                                start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_session(proc.pid)
            proc.wait()
            out.seek(0)
            raise subprocess.TimeoutExpired(argv, timeout, output=out.read()) from None
        _kill_session(proc.pid)
        out.seek(0)
        return subprocess.CompletedProcess(argv, proc.returncode, out.read(), "")


def _kill_session(sid: int) -> None:
    try:
        os.killpg(sid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def first_present(fs: KernelFS, alternatives: list[dict] | None) -> dict | None:
    """Of settings that say one thing in the words of different series (dcbm's wait:
    v3's wait_us, v2's timeout_ms), the first whose every file this kernel has."""
    if not alternatives:
        return None
    for settings in alternatives:
        if all(fs.exists(path) for path in settings):
            return settings
    raise WorkbenchError("this kernel has none of " + " or ".join(
        "/".join(sorted(s)) for s in alternatives))


def load_for_case(fs: KernelFS, guard: KnobGuard, control, module: str) -> None:
    """Load a module a case's program needs (test_hmm for hmm-tests, as the kernel's own
    test_hmm.sh does), unloaded again afterwards if the case loaded it."""
    if fs.exists(f"/sys/module/{module}"):
        return
    control.load(module, what="test module")
    guard.defer(lambda: fs.unload_module(module), f"unload {module}")


def _text(data) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def run(fs: KernelFS, cases: list[dict], configs: list[dict], emit) -> None:
    """Every case under every configuration, a record each as it finishes."""
    for config in configs:
        for case in cases:
            emit({"type": "record", "record": run_case(fs, case, config)})
