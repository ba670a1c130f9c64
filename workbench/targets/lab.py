"""Lab boxes over SSH: prepare one for the agent, and put a kernel on it and boot it.

Everything here works on any ``ssh://`` target (an :class:`~workbench.targets.ssh.SSHTarget`)
with that target's own ssh options (key, known_hosts checked and never auto-accepted);
nothing is specific to the lab-machine VM.

``prepare(target)``
    checks the box (python3 >= 3.10 with venv, NUMA nodes with memory, THP, root or
    passwordless sudo), builds a wheelhouse *here* (this package, and numpy/numba/llvmlite
    as binary wheels for the box's Python and CPU: the agent's only dependencies), copies
    it over the SSH connection (a tar stream: no scp/sftp/rsync needed on the box) and
    installs it offline (``pip --no-index --find-links``) into ``~/.migration-workbench/venv``
    on the box. A second run with the same wheelhouse, whose installed agent reports this
    checkout's code (:func:`workbench.protocol.agent_code_digest`), only checks; the SSH
    target refuses a box whose agent does not. What it found is
    returned, kept on the box (``~/.migration-workbench/prepared.json``) and here
    (``$WORKBENCH_CACHE/lab/boxes/``).

``install(deb, target, boot="kexec"|"reboot")``
    copies a linux-image .deb, ``dpkg -i`` (its hooks build the initramfs and update
    GRUB), pins GRUB's default entry to the box's own kernel (the one it ran when the
    workbench first installed a kernel there, kept in ``~/.migration-workbench/home-kernel``),
    so any later boot or power cycle comes back to it, never to a test kernel that was
    only kexec'd, boots the new kernel once (``kexec -l`` +
    ``systemctl kexec``, or a one-shot ``grub-reboot`` + reboot), waits for SSH within a
    time limit, and checks ``uname -r``/``uname -v`` and, for the series,
    ``/sys/kernel/mm/migration/migrator``.

What it changes on a box: ``~/.migration-workbench/`` (venv, wheelhouse, debs, records);
the installed kernel package (``dpkg -r linux-image-<release>`` removes it); with GRUB,
``GRUB_DEFAULT=saved`` (``/etc/default/grub.d/50-migration-workbench.cfg``, only when it
was not already ``saved``) and the saved entry (``grub-set-default``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .. import paths
from ..kernelio import kernellog
from ..errors import WorkbenchError
from ..protocol import agent_code_digest
from .remote import Remote

#: the agent side's third-party dependencies (numba brings llvmlite); nothing else of
#: pyproject's list is imported by ``python -m workbench.agent``
AGENT_DEPS = ("numpy", "numba", "llvmlite")
REMOTE_DIR = ".migration-workbench"          # under the login's $HOME on the box
MIN_PYTHON = (3, 10)


# ---- checking a box ---------------------------------------------------------------------

_CHECK = r"""
echo "user=$(id -un)"; echo "uid=$(id -u)"; echo "home=$HOME"
if [ "$(id -u)" = 0 ]; then echo priv=root; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then echo priv=sudo; else echo priv=none; fi
echo "arch=$(uname -m)"; echo "release=$(uname -r)"
py=$(command -v python3 || true)
echo "python=$py"
if [ -n "$py" ]; then
  echo "python_version=$($py -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)"
  $py -c 'import venv, ensurepip' 2>/dev/null && echo venv=yes || echo venv=no
  echo "glibc=$($py -c 'import platform; print(platform.libc_ver()[1])' 2>/dev/null)"
fi
echo "mem_nodes=$(cat /sys/devices/system/node/has_memory 2>/dev/null)"
echo "thp=$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"
echo "prepared_key=$(cat "$HOME/.migration-workbench/prepared.key" 2>/dev/null)"
[ -x "$HOME/.migration-workbench/venv/bin/python" ] && echo venv_python=yes || echo venv_python=no
"""


def _cpulist(text: str) -> list[int]:
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def check(target) -> dict:
    """What the box has, and what it lacks for the agent (``missing``: short phrases)."""
    r = Remote(target)
    raw = r.run(_CHECK, timeout=120, what="checking the box").stdout
    kv = dict(ln.split("=", 1) for ln in raw.splitlines() if "=" in ln)
    facts = {
        "target": target.label, "user": kv.get("user"), "home": kv.get("home"),
        "privilege": kv.get("priv"), "arch": kv.get("arch"), "kernel_release": kv.get("release"),
        "python": kv.get("python") or None, "python_version": kv.get("python_version") or None,
        "python_venv": kv.get("venv") == "yes", "glibc": kv.get("glibc") or None,
        "numa_nodes_with_memory": _cpulist(kv.get("mem_nodes", "")) if kv.get("mem_nodes") else [],
        "thp": kv.get("thp") or None,
        "prepared_key": kv.get("prepared_key") or None, "venv_exists": kv.get("venv_python") == "yes",
    }
    missing = []
    if not facts["python"]:
        missing.append("no python3 (apt-get install python3 python3-venv)")
    else:
        ver = tuple(int(x) for x in (facts["python_version"] or "0.0").split(".")[:2])
        if ver < MIN_PYTHON:
            missing.append(f"python3 is {facts['python_version']}, needs >= {'.'.join(map(str, MIN_PYTHON))}")
        elif not facts["python_venv"]:
            missing.append("python3 has no venv/ensurepip (apt-get install python3-venv)")
    if facts["arch"] != "x86_64":
        missing.append(f"CPU architecture {facts['arch']} (the wheelhouse is built for x86_64)")
    n = len(facts["numa_nodes_with_memory"])
    if n < 2:
        missing.append(f"{n} NUMA node{'s' if n != 1 else ''} with memory (needs 2)")
    if not facts["thp"]:
        missing.append("no transparent hugepages (/sys/kernel/mm/transparent_hugepage)")
    if facts["privilege"] == "none":
        missing.append(f"{facts['user']} is not root and has no passwordless sudo")
    facts["missing"] = missing
    return facts


# ---- the wheelhouse ------------------------------------------------------------------------

def _package_source_hash() -> str:
    h = hashlib.sha256()
    files = [paths.REPO / "pyproject.toml",
             *sorted(p for p in (paths.REPO / "workbench").rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc",))]
    for p in files:
        h.update(str(p.relative_to(paths.REPO)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _pins() -> dict[str, str]:
    """The agent dependencies at the versions this host runs (what the tests ran with)."""
    pins = {}
    for name in AGENT_DEPS:
        try:
            pins[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pins[name] = ""
    return pins


def wheelhouse(python_version: str, progress=None) -> tuple[Path, str]:
    """This package and the agent's dependencies as wheels for CPython ``X.Y`` on
    x86_64 Linux, cached by their inputs. Returns (directory, key)."""
    progress = progress or (lambda msg: None)
    xy = ".".join(python_version.split(".")[:2])
    pins = _pins()
    key = hashlib.sha256(json.dumps({"python": xy, "pins": pins, "source": _package_source_hash(),
                                     "v": 1}, sort_keys=True).encode()).hexdigest()[:16]
    root = paths.cache_dir() / "lab" / "wheelhouse"
    d = root / key
    if (d / ".complete").exists():
        return d, key
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=key + ".", dir=root))
    try:
        progress(f"wheelhouse: building this package's wheel")
        _pip(["wheel", "--no-deps", "-w", str(tmp), str(paths.REPO)], "pip wheel (this package)")
        tag = xy.replace(".", "")
        base = ["download", "--only-binary=:all:", "--python-version", xy, "--implementation", "cp",
                "--abi", f"cp{tag}", "-d", str(tmp)]
        for plat in ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64"):
            base += ["--platform", plat]
        pinned = [f"{n}=={v}" if v else n for n, v in pins.items()]
        progress(f"wheelhouse: pip download {' '.join(pinned)} for CPython {xy}")
        try:
            _pip(base + pinned, "pip download")
        except WorkbenchError:
            # the versions this host runs may have no wheels for the box's Python: newest that do
            progress(f"wheelhouse: no wheels of {' '.join(pinned)} for CPython {xy}; taking the newest that fit")
            _pip(base + list(AGENT_DEPS), f"pip download (numpy, numba for CPython {xy})")
        (tmp / ".complete").write_text(json.dumps({"python": xy, "pins": pins}))
        if d.exists():
            shutil.rmtree(d)
        tmp.rename(d)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return d, key


def _pip(args: list[str], what: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.strip().splitlines() if ln.strip()]
        errs = [ln for ln in lines if ln.lower().startswith("error")] or lines
        raise WorkbenchError(f"{what} failed: {errs[-1] if errs else 'exit ' + str(proc.returncode)}",
                             detail=proc.stderr)


# ---- prepare -------------------------------------------------------------------------------------

def _record_path(label: str) -> Path:
    """Where this host keeps what ``prepare`` found on the box ``label`` (``ssh://[user@]host[:port]``)."""
    return paths.cache_dir() / "lab" / "boxes" / (re.sub(r"[^A-Za-z0-9_.-]+", "_", label.removeprefix("ssh://"))
                                                  + ".json")


def _record_here(facts: dict) -> Path:
    p = _record_path(facts["target"])
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(facts, indent=1))
    return p


def prepared_python(label: str) -> str | None:
    """The venv python ``prepare`` installed the agent into on the box ``label`` (a
    target's label, ``ssh://[user@]host[:port]``), from the record kept here; None when
    the box was never prepared from this host, or its last preparation failed."""
    try:
        record = json.loads(_record_path(label).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not record.get("prepared"):
        return None
    return record.get("remote_python") or None


def prepare(target, progress=None, require_numa: bool = True) -> dict:
    """Make the box ready to run the agent; returns what was found and done.

    Raises a one-line :class:`WorkbenchError` naming everything missing when the box
    cannot be prepared. ``facts["remote_python"]`` is the venv's python on the box.
    """
    progress = progress or (lambda msg: None)
    t0 = time.monotonic()
    facts = check(target)
    missing = [m for m in facts["missing"] if require_numa or "NUMA" not in m]
    if missing:
        _record_here({**facts, "prepared": False})
        raise WorkbenchError(f"{target.label} cannot be prepared: " + "; ".join(missing))
    r = Remote(target)
    base = f"{facts['home']}/{REMOTE_DIR}"
    venv_python = f"{base}/venv/bin/python"
    wh, key = wheelhouse(facts["python_version"], progress)
    facts.update(remote_dir=base, remote_python=venv_python, wheelhouse_key=key)
    installed = facts["venv_exists"] and facts["prepared_key"] == key and _agent_probe(r, venv_python, quiet=True)
    if installed and installed.get("agent_code") == agent_code_digest():
        facts.update(prepared=True, installed=False, seconds=round(time.monotonic() - t0, 1))
        _record_here(facts)
        progress(f"{target.label}: already prepared (wheelhouse {key})")
        return facts
    progress(f"{target.label}: copying the wheelhouse ({sum(p.stat().st_size for p in wh.iterdir()) >> 20} MiB)")
    r.put_tree(wh, f"{base}/wheelhouse")
    progress(f"{target.label}: installing into {base}/venv")
    qb = shlex.quote(base)
    wheels = sorted(p.name for p in wh.glob("*.whl"))
    ours = next(w for w in wheels if w.startswith("migration_workbench-"))
    deps = [w for w in wheels if w != ours]
    r.run(f"rm -rf {qb}/venv.part && {shlex.quote(facts['python'])} -m venv {qb}/venv.part"
          f" && cd {qb}/wheelhouse"
          f" && {qb}/venv.part/bin/python -m pip install -q --no-index --disable-pip-version-check"
          f" --no-deps {' '.join(shlex.quote(w) for w in deps + [ours])}"
          f" && rm -rf {qb}/venv && mv {qb}/venv.part {qb}/venv"
          # a venv is not relocatable: its scripts (not the python symlinks) still name venv.part
          f" && find {qb}/venv/bin -maxdepth 1 -type f -exec sed -i 's|/venv.part|/venv|g' {{}} +",
          timeout=900, what="creating the venv and installing the wheels")
    agent = _agent_probe(r, venv_python)
    if agent.get("agent_code") != agent_code_digest():
        raise WorkbenchError(f"{target.label}: the agent installed in {base}/venv reports code "
                             f"{agent.get('agent_code')}, not this checkout's {agent_code_digest()} (a file missing "
                             "from the wheel?)")
    facts.update(agent_facts=agent, prepared=True, installed=True, seconds=round(time.monotonic() - t0, 1))
    record = {k: v for k, v in facts.items() if k not in ("prepared_key", "venv_exists")}
    r.run(f"cat >{qb}/prepared.json && printf %s {key} >{qb}/prepared.key", input=json.dumps(record, indent=1),
          what="recording the preparation")
    _record_here(record)
    return record


def _agent_probe(r: Remote, python: str, quiet: bool = False) -> dict | None:
    """Run the agent's probe with the venv's python: the proof it is installed."""
    try:
        out = r.out(f"echo '{{\"op\": \"probe\"}}' | {shlex.quote(python)} -m workbench.agent run", timeout=300,
                    what="the agent's probe")
    except WorkbenchError:
        if quiet:
            return None
        raise
    for line in out.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("type") == "facts":
            f = ev["facts"]
            return {k: f.get(k) for k in ("kernel_release", "hostname", "numa", "agent_code") if k in f}
    if quiet:
        return None
    raise WorkbenchError(f"{r.label}: the agent installed in the venv answered its probe without facts",
                         detail=out[-2000:])


# ---- installing and booting a kernel -----------------------------------------------------------

_STATE = r"""
echo "uid=$(id -u)"
if [ "$(id -u)" = 0 ]; then echo priv=root; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then echo priv=sudo; else echo priv=none; fi
echo "home=$HOME"
echo "release=$(uname -r)"; echo "version=$(uname -v)"
echo "boot_id=$(cat /proc/sys/kernel/random/boot_id)"
for t in dpkg kexec grub-reboot grub-set-default update-grub systemctl; do
  p=$(PATH=$PATH:/usr/sbin:/sbin command -v $t 2>/dev/null) && echo "have_$t=$p"
done
[ -f /boot/grub/grub.cfg ] && echo grub_cfg=yes
echo "grub_default=$(cat /etc/default/grub /etc/default/grub.d/*.cfg 2>/dev/null | sed -n 's/^GRUB_DEFAULT=//p' | tail -1 | tr -d '"')"
"""

_GRUB_PIN_FILE = "/etc/default/grub.d/50-migration-workbench.cfg"
#: (under the login's home) the release GRUB's default is kept on: the kernel the box
#: ran when the workbench first installed one there
HOME_KERNEL_FILE = f"{REMOTE_DIR}/home-kernel"


def box_state(target) -> dict:
    """Release, build, boot id and boot tools of the box, as it is now."""
    raw = Remote(target).run(_STATE, timeout=60, what="reading the box's state").stdout
    return dict(ln.split("=", 1) for ln in raw.splitlines() if "=" in ln)


def grub_entry(cfg: str, release: str) -> str | None:
    """The ``grub-reboot``/``grub-set-default`` path (``submenu-id>entry-id``) of the
    normal (not recovery) entry booting ``release`` in a grub.cfg, or None."""
    sub = None
    for line in cfg.splitlines():
        m = re.match(r"^(\s*)(menuentry|submenu)\s+(['\"])(.*?)\3.*\$menuentry_id_option\s+'([^']+)'", line)
        if m:
            indent, kind, _, title, ident = m.groups()
            if kind == "submenu":
                sub = ident
                continue
            if not indent:
                sub = None          # a top-level entry after the submenu closed
            if title.endswith(f"Linux {release}"):
                return f"{sub}>{ident}" if (indent and sub) else ident
    return None


def _console_tail(console, lines: int = 40) -> str | None:
    if console is None:
        return None
    try:
        text = Path(console).read_bytes().decode(errors="replace")
    except OSError:
        return None
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "")
    return "\n".join(ln for ln in text.splitlines()[-lines:])


def install(package_deb, target, boot: str = "kexec", timeout: float = 900.0, console=None,
            progress=None) -> dict:
    """Install a linux-image .deb on the box, boot it once, check it is what runs.

    ``boot``: ``kexec`` (``kexec -l`` the installed vmlinuz/initrd, then ``systemctl
    kexec``: a clean shutdown, no firmware) or ``reboot`` (``grub-reboot`` one-shot entry,
    then reboot). Either way GRUB's default stays the kernel the box runs now, so a kernel
    that does not come up is left by the next power cycle. ``timeout`` bounds the wait for
    the box to come back (never forever); ``console`` (a file, e.g. the lab VM's serial
    log) is quoted when it does not. Returns what happened with the time of each step.
    """
    from .kernel_package import KernelPackage
    if boot not in ("kexec", "reboot"):
        raise WorkbenchError(f"--boot {boot!r} is not one of kexec, reboot")
    progress = progress or (lambda msg: None)
    pkg = KernelPackage.from_deb(package_deb)
    r = Remote(target)
    t0 = time.monotonic()
    st = box_state(target)
    if st.get("priv") == "none":
        raise WorkbenchError(f"{target.label}: installing a kernel needs root or passwordless sudo")
    sudo = "" if st.get("priv") == "root" else "sudo -n "
    need = ["dpkg"] + (["kexec", "systemctl"] if boot == "kexec" else ["grub-reboot", "systemctl"])
    lacking = [t for t in need if f"have_{t}" not in st]
    if boot == "reboot" and "grub_cfg" not in st:
        lacking.append("GRUB (/boot/grub/grub.cfg)")
    if lacking:
        hint = " (apt-get install kexec-tools)" if "kexec" in lacking else ""
        raise WorkbenchError(f"{target.label}: --boot {boot} needs {', '.join(lacking)} on the box{hint}")
    old = st["release"]
    if old == pkg.release:
        raise WorkbenchError(f"{target.label} already runs {old}: boot another kernel first "
                             "(a package cannot be swapped under the kernel that runs it)")
    result = {"target": target.label, "package": pkg.deb.name, "release": pkg.release, "flavour": pkg.flavour,
              "previous_release": old, "boot": boot, "timeout": timeout}

    # copy and install
    remote_deb = f"{st['home']}/{REMOTE_DIR}/debs/{pkg.deb.name}"
    progress(f"{target.label}: copying {pkg.deb.name} ({pkg.deb.stat().st_size >> 20} MiB)")
    r.put_file(pkg.deb, remote_deb)
    t_copy = time.monotonic()
    progress(f"{target.label}: dpkg -i (initramfs, GRUB menu)")
    r.run(f"{sudo}env DEBIAN_FRONTEND=noninteractive dpkg -i {shlex.quote(remote_deb)}", timeout=1800,
          what=f"dpkg -i {pkg.deb.name}")
    r.run(f"test -f /boot/vmlinuz-{pkg.release} && test -f /boot/initrd.img-{pkg.release}",
          what=f"checking /boot/vmlinuz-{pkg.release} and its initrd")
    t_dpkg = time.monotonic()

    # GRUB: the default stays the box's own kernel (the one it ran when the workbench
    # first installed a kernel there, kept in HOME_KERNEL_FILE: never one of ours that
    # runs now only because it was kexec'd or booted once); the new one is booted once
    new_entry = None
    home = old
    if "grub_cfg" in st and "have_grub-set-default" in st:
        home_file = shlex.quote(f"{st['home']}/{HOME_KERNEL_FILE}")
        home = r.run(f"cat {home_file} 2>/dev/null", check=False, timeout=60).stdout.strip() or old
        if st.get("grub_default") != "saved":
            r.run(f"{sudo}sh -c 'mkdir -p /etc/default/grub.d && echo GRUB_DEFAULT=saved >{_GRUB_PIN_FILE}"
                  f" && update-grub' >/dev/null 2>&1", timeout=600, what="setting GRUB_DEFAULT=saved")
            result["grub_default_changed"] = _GRUB_PIN_FILE
        cfg = r.out("cat /boot/grub/grub.cfg", timeout=60, what="reading grub.cfg")
        home_entry, new_entry = grub_entry(cfg, home), grub_entry(cfg, pkg.release)
        if home_entry is None and home != old:      # the box's own kernel was removed since
            home, home_entry = old, grub_entry(cfg, old)
        if home_entry:
            r.run(f"{sudo}grub-set-default {shlex.quote(home_entry)}", what="pinning GRUB's default")
            r.run(f"mkdir -p $(dirname {home_file}) && printf '%s\\n' {shlex.quote(home)} >{home_file}",
                  timeout=60, what="recording the box's own kernel")
            result.update(default_entry=home_entry, default_release=home)
        if boot == "reboot" and not new_entry:
            raise WorkbenchError(f"{target.label}: GRUB has no entry for {pkg.release} after dpkg -i")
    elif boot == "kexec":
        result["default_entry"] = None   # no GRUB we know how to pin: the box's own bootloader decides

    # boot it once
    if boot == "kexec":
        r.run(f"{sudo}kexec -l /boot/vmlinuz-{pkg.release} --initrd=/boot/initrd.img-{pkg.release} --reuse-cmdline",
              timeout=300, what=f"kexec -l {pkg.release}")
        go = "systemctl kexec || kexec -e"
    else:
        r.run(f"{sudo}grub-reboot {shlex.quote(new_entry)}", what="grub-reboot")
        result["boot_entry"] = new_entry
        go = "systemctl reboot"
    progress(f"{target.label}: {boot} into {pkg.release}")
    console_offset = _console_size(console)
    r.run(f"{sudo}nohup setsid sh -c 'sleep 2; {go}' </dev/null >/dev/null 2>&1 &", timeout=60,
          what=f"starting the {boot}")
    t_boot = time.monotonic()
    back, panic = _wait_back(r, st["boot_id"], t_boot + timeout, console, console_offset)
    t_back = time.monotonic()
    result.update(seconds_copy=round(t_copy - t0, 1), seconds_install=round(t_dpkg - t_copy, 1),
                  seconds_boot=round(t_back - t_boot, 1))
    if back is None and panic:
        raise WorkbenchError(
            f"{target.label} did not come back after {boot} into {pkg.release}: the console shows {panic} "
            f"after {t_back - t_boot:.0f}s"
            + (f"; its default boot entry is still {home}" if result.get("default_entry") else "")
            + f" (console: {console})",
            detail=_console_tail(console))
    if back is None:
        raise WorkbenchError(
            f"{target.label} did not come back within {timeout:.0f}s after {boot} into {pkg.release}"
            + (f"; its default boot entry is still {home}" if result.get("default_entry") else "")
            + (f" (console: {console})" if console else ""),
            detail=_console_tail(console))
    result["running_release"], result["running_version"] = back["release"], back["version"]
    if back["release"] != pkg.release:
        raise WorkbenchError(f"{target.label} came back on {back['release']}, not {pkg.release}: "
                             f"the new kernel did not boot and the box is on its old kernel",
                             detail=_console_tail(console))
    tag = pkg.build_tag if pkg.info.get("key") else None
    if tag and not back["version"].startswith(tag + " "):
        raise WorkbenchError(f"{target.label} runs {pkg.release} but not this build "
                             f"(uname -v {back['version']!r}, expected {tag})")
    migrator = r.run("cat /sys/kernel/mm/migration/migrator", check=False, timeout=60).stdout.strip() or None
    result["series_migrator"] = migrator
    if pkg.flavour == "patched" and not migrator:
        raise WorkbenchError(f"{target.label} runs {pkg.release} but has no /sys/kernel/mm/migration/migrator: "
                             "not a kernel of the series")
    result["seconds"] = round(time.monotonic() - t0, 1)
    progress(f"{target.label}: running {pkg.release} after {result['seconds_boot']}s of {boot}")
    return result


def _console_size(console) -> int:
    try:
        return Path(console).stat().st_size if console else 0
    except OSError:
        return 0


def _console_panic(console, offset: int) -> str | None:
    """The cause, if the console has shown a kernel panic since ``offset`` (a box whose
    new kernel panicked will not answer: no need to wait out the whole time limit)."""
    if console is None:
        return None
    try:
        with open(console, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace").replace("\r", "")
    except OSError:
        return None
    if "Kernel panic - not syncing" not in text:
        return None
    return kernellog.death_cause(text.splitlines())[0].replace("guest kernel panic", "a kernel panic", 1)


def _wait_back(r: Remote, old_boot_id: str, deadline: float, console=None,
               console_offset: int = 0) -> tuple[dict | None, str | None]:
    """Poll until the box answers with another boot id: (what it runs, None); at the
    deadline, or as soon as ``console`` shows a kernel panic, (None, why)."""
    time.sleep(5)
    while time.monotonic() < deadline:
        panic = _console_panic(console, console_offset)
        if panic:
            return None, panic
        left = deadline - time.monotonic()
        try:
            proc = r.run("cat /proc/sys/kernel/random/boot_id; uname -r; uname -v", check=False,
                         timeout=max(5.0, min(40.0, left)))
            lines = proc.stdout.splitlines() if proc.returncode == 0 else []
        except WorkbenchError:
            lines = []
        if len(lines) >= 3 and lines[0].strip() != old_boot_id:
            return {"boot_id": lines[0].strip(), "release": lines[1].strip(), "version": lines[2].strip()}, None
        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
    return None, _console_panic(console, console_offset)
