"""``workbench kernel package``: the series (or vanilla) as a Debian package for a box.

A wrapper around ``kernel/package.sh`` (``make bindeb-pkg``), which does the caching:
its key covers the source, the patches, our *offload* config fragments, the base config
and the module list, and the script itself. The base config is a box's own
(``--config FILE``, or fetched from ``ssh://host``'s ``/boot/config-$(uname -r)``);
``localmodconfig`` from the box's ``lsmod`` keeps the build to the modules it uses.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..errors import WorkbenchError

SCRIPT = paths.REPO / "kernel" / "package.sh"


@dataclass
class KernelPackage:
    deb: Path
    release: str          # uname -r once booted, e.g. 6.12.117-wb-patched
    version: str          # the package version; uname -v starts with "#" + its revision
    flavour: str          # patched | vanilla
    info: dict

    @property
    def build_tag(self) -> str:
        """What ``uname -v`` starts with on a kernel from exactly this build."""
        return "#" + self.version.rsplit("-", 1)[-1]

    @classmethod
    def from_deb(cls, deb: str | Path) -> "KernelPackage":
        """A package built by package.sh (its package.json beside it), or any linux-image
        .deb (release and version read with dpkg-deb)."""
        deb = Path(deb)
        if not deb.is_file():
            raise WorkbenchError(f"no kernel package {deb}")
        meta = deb.parent / "package.json"
        if meta.exists():
            info = json.loads(meta.read_text())
            if info.get("image_deb") == deb.name:
                return cls(deb, info["release"], info["version"], info["flavour"], info)
        try:
            fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version"], capture_output=True,
                                    text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            raise WorkbenchError(f"{deb} is not a Debian package (dpkg-deb -f failed)") from None
        f = dict(ln.split(": ", 1) for ln in fields.strip().splitlines() if ": " in ln)
        if not f.get("Package", "").startswith("linux-image-"):
            raise WorkbenchError(f"{deb} is package {f.get('Package')!r}, not a linux-image-* kernel")
        release = f["Package"].removeprefix("linux-image-")
        return cls(deb, release, f.get("Version", "?"), "unknown", {})


def _stash(name: str, text: str) -> Path:
    """Keep a fetched config or lsmod in the cache, named by its content."""
    d = paths.cache_dir() / "kernel" / "pkg" / "inputs"
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.{name}"
    if not p.exists():
        p.write_text(text)
    return p


def fetch_box_inputs(target, lsmod: bool = True) -> tuple[Path, Path | None, str]:
    """The box's running config (``/boot/config-$(uname -r)``, else ``/proc/config.gz``)
    and ``lsmod``, copied here. Returns (config, lsmod or None, its release)."""
    from .remote import Remote
    r = Remote(target)
    release = r.out("uname -r", timeout=60)
    text = r.run(f"cat /boot/config-{release} 2>/dev/null || zcat /proc/config.gz 2>/dev/null", check=False,
                 timeout=60).stdout
    if "CONFIG_" not in text:
        raise WorkbenchError(f"{r.label}: no /boot/config-{release} nor /proc/config.gz to take the box's config from")
    config = _stash("config", text)
    mods = None
    if lsmod:
        out = r.run("lsmod 2>/dev/null || cat /proc/modules", check=False, timeout=60).stdout
        if out.strip():
            if not out.startswith("Module"):   # /proc/modules: name size users ... -> lsmod layout
                out = "Module Size Used by\n" + "\n".join(" ".join(ln.split()[:3]) for ln in out.splitlines())
            mods = _stash("lsmod", out if out.endswith("\n") else out + "\n")
    return config, mods, release


def check_config_source(config, config_from) -> None:
    """The base config comes from exactly one place: a file or a box."""
    if (config is None) == (config_from is None):
        raise WorkbenchError("kernel package needs exactly one of --config FILE or --config-from ssh://host")


def _script_args(config, config_from, localmodconfig, lsmod, vanilla, test_dma_engine, ksrc,
                 line=None) -> list[str]:
    check_config_source(config, config_from)
    if line is not None:
        from . import kernel_lines
        kline = kernel_lines.get(line)
        if ksrc:
            raise WorkbenchError("--line and --ksrc both name the base: give one")
        if kline.series is None and not vanilla:
            raise WorkbenchError(f"kernel line {line} has no series of ours yet: package it with --vanilla")
    if config_from is not None:
        config, fetched_lsmod, _ = fetch_box_inputs(config_from, lsmod=localmodconfig and lsmod is None)
        lsmod = lsmod or fetched_lsmod
    elif not Path(config).is_file():
        raise WorkbenchError(f"no config file {config}")
    cmd = ["bash", str(SCRIPT), "--config", str(config)]
    if lsmod and localmodconfig:
        cmd += ["--lsmod", str(lsmod)]
    if vanilla:
        cmd.append("--vanilla")
    if test_dma_engine and not vanilla:
        cmd.append("--test-dma-engine")
    if ksrc:
        cmd += ["--ksrc", str(ksrc)]
    if line:
        cmd += ["--line", line]
    return cmd


def cached(config: str | Path | None = None, *, config_from=None, localmodconfig: bool = True,
           lsmod: str | Path | None = None, vanilla: bool = False, test_dma_engine: bool = False,
           ksrc: str | None = None, line: str | None = None) -> KernelPackage | None:
    """The package ``build`` with these arguments would return, if it is already built."""
    cmd = _script_args(config, config_from, localmodconfig, lsmod, vanilla, test_dma_engine, ksrc, line)
    proc = subprocess.run(cmd + ["--print-dir"], capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    out = Path(proc.stdout.strip().splitlines()[-1])
    try:
        info = json.loads((out / "package.json").read_text())
    except (OSError, ValueError):
        return None
    deb = out / info.get("image_deb", "")
    return KernelPackage.from_deb(deb) if deb.is_file() else None


def build(config: str | Path | None = None, *, config_from=None, localmodconfig: bool = True,
          lsmod: str | Path | None = None, vanilla: bool = False, test_dma_engine: bool = False,
          ksrc: str | None = None, line: str | None = None, progress=None,
          timeout: float | None = None) -> KernelPackage:
    """Build (or take from the cache) the kernel package.

    ``config``: a config file; or ``config_from``: an SSH target whose running config
    (and, with ``localmodconfig``, its ``lsmod``) is the base. ``test_dma_engine`` adds
    the test-only DMA engine (for the lab VM, never for a real machine). ``line``: a kernel
    line of kernel/lines whose Debian source to build (default the first, 6.12).
    """
    cmd = _script_args(config, config_from, localmodconfig, lsmod, vanilla, test_dma_engine, ksrc, line)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err_lines: list[str] = []
    for line in proc.stderr:
        err_lines.append(line.rstrip())
        if progress:
            progress(line.rstrip())
    out = proc.stdout.read()
    rc = proc.wait(timeout)
    if rc != 0:
        why = next((ln for ln in reversed(err_lines) if "error:" in ln), err_lines[-1] if err_lines else "?")
        raise WorkbenchError(f"kernel package build failed: {why.removeprefix('package.sh: error: ')}",
                             detail="\n".join(err_lines[-40:]))
    deb = out.strip().splitlines()[-1]
    pkg = KernelPackage.from_deb(deb)
    pkg.info["wall_seconds"] = round(time.monotonic() - t0, 1)
    return pkg
