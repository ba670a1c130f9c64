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
    on the box. A second run with the same wheelhouse only checks. What it found is
    returned, kept on the box (``~/.migration-workbench/prepared.json``) and here
    (``$WORKBENCH_CACHE/lab/boxes/``).

``install(deb, target, boot="kexec"|"reboot")``
    copies a linux-image .deb, ``dpkg -i`` (its hooks build the initramfs and update
    GRUB), pins GRUB's default entry to the kernel the box runs now (so any later boot
    or power cycle comes back to it), boots the new kernel once (``kexec -l`` +
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
import io
import json
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from .. import paths
from ..errors import WorkbenchError

#: the agent side's third-party dependencies (numba brings llvmlite); nothing else of
#: pyproject's list is imported by ``python -m workbench.agent``
AGENT_DEPS = ("numpy", "numba", "llvmlite")
REMOTE_DIR = ".migration-workbench"          # under the login's $HOME on the box
MIN_PYTHON = (3, 10)


class Remote:
    """Commands and file copies on an SSH target, with the target's own ssh options."""

    def __init__(self, target, connect_timeout: int = 15):
        self.target = target
        self.connect_timeout = connect_timeout

    @property
    def label(self) -> str:
        return self.target.label

    def argv(self, command: str) -> list[str]:
        cmd = self.target.ssh_command("sh", "-c", shlex.quote(command))
        # ssh_command sets ConnectTimeout=15; ours comes first and so wins
        return [cmd[0], "-o", f"ConnectTimeout={self.connect_timeout}", "-o", "ServerAliveInterval=10",
                "-o", "ServerAliveCountMax=3", *cmd[1:]]

    def run(self, command: str, timeout: float = 120, check: bool = True, input: bytes | str | None = None,
            what: str | None = None) -> subprocess.CompletedProcess:
        """Run ``command`` (a shell line) on the box. Failures are one line."""
        binary = isinstance(input, bytes)
        try:
            proc = subprocess.run(self.argv(command), capture_output=True, timeout=timeout, input=input,
                                  text=not binary, stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise WorkbenchError(f"{self.label}: {what or command!r} did not finish within {timeout:.0f}s") from None
        if check and proc.returncode != 0:
            err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode(errors="replace")
            lines = [ln for ln in err.strip().splitlines() if ln.strip()]
            if proc.returncode == 255 and lines:
                raise WorkbenchError(f"{self.label}: ssh: {lines[-1]}", detail=err)
            raise WorkbenchError(f"{self.label}: {what or command!r} failed (exit {proc.returncode})"
                                 + (f": {lines[-1]}" if lines else ""), detail=err)
        return proc

    def ok(self, command: str, timeout: float = 60) -> bool:
        try:
            return self.run(command, timeout=timeout, check=False).returncode == 0
        except WorkbenchError:
            return False

    def out(self, command: str, timeout: float = 120, **kw) -> str:
        return self.run(command, timeout=timeout, **kw).stdout.strip()

    def put_file(self, local: Path, remote: str, timeout: float = 600) -> None:
        """Copy one file (``cat`` over the connection; renamed into place when complete)."""
        q = shlex.quote(remote)
        with open(local, "rb") as f:
            data = f.read()
        self.run(f"mkdir -p $(dirname {q}) && cat >{q}.part && mv {q}.part {q}", input=data, timeout=timeout,
                 what=f"copy {Path(local).name}")

    def put_tree(self, local: Path, remote: str, timeout: float = 900) -> None:
        """Copy a directory's files into ``remote`` (replaced whole) as a tar stream."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for p in sorted(Path(local).iterdir()):
                tar.add(p, arcname=p.name)
        q = shlex.quote(remote)
        self.run(f"rm -rf {q}.part && mkdir -p {q}.part && tar -C {q}.part -xf - && rm -rf {q} && mv {q}.part {q}",
                 input=buf.getvalue(), timeout=timeout, what=f"copy {Path(local).name}/")


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

def _record_here(facts: dict) -> Path:
    d = paths.cache_dir() / "lab" / "boxes"
    d.mkdir(parents=True, exist_ok=True)
    p = d / (re.sub(r"[^A-Za-z0-9_.-]+", "_", facts["target"].removeprefix("ssh://")) + ".json")
    p.write_text(json.dumps(facts, indent=1))
    return p


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
    if facts["prepared_key"] == key and facts["venv_exists"] and _agent_probe(r, venv_python, quiet=True):
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
          f" && rm -rf {qb}/venv && mv {qb}/venv.part {qb}/venv",
          timeout=900, what="creating the venv and installing the wheels")
    # a venv is not relocatable: venv.part's scripts name venv.part; the agent runs as
    # "python -m", which is unaffected, and pip's shebang is not used
    agent = _agent_probe(r, venv_python)
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
            return {k: f.get(k) for k in ("kernel_release", "hostname", "numa") if k in f}
    if quiet:
        return None
    raise WorkbenchError(f"{r.label}: the agent installed in the venv answered its probe without facts",
                         detail=out[-2000:])
