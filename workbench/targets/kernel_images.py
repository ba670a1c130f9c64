"""Kernel images the VM target can boot.

* ``stock``: Debian 12's ``linux-image-6.12.*+deb12-amd64-unsigned``, fetched with
  ``apt-get download`` and unpacked into the cache (never installed into /boot);
* ``patched`` / ``vanilla``: trees built by ``kernel/build.sh`` (the kernel series);
* a path: a bzImage/vmlinuz file, or a built kernel tree.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..errors import WorkbenchError

STOCK_PATTERN = re.compile(r"^linux-image-(6\.12\.\d+\+deb12-amd64)-unsigned$")


@dataclass
class KernelImage:
    kind: str        # stock | patched | vanilla | path
    run_arg: str     # what vng --run gets: an image file or a built tree
    release: str | None = None
    config: Path | None = None

    def config_hash(self) -> str | None:
        if self.config and self.config.exists():
            return hashlib.sha256(self.config.read_bytes()).hexdigest()[:16]
        return None


def stock_root() -> Path:
    return paths.cache_dir() / "kernels" / "stock"


def _available_stock_packages() -> list[str]:
    try:
        out = subprocess.run(["apt-cache", "pkgnames", "linux-image-6.12"], capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise WorkbenchError(f"cannot list Debian kernel packages with apt-cache: {exc}") from None
    names = [n for n in out.split() if STOCK_PATTERN.match(n)]
    key = lambda n: [int(x) for x in re.findall(r"\d+", STOCK_PATTERN.match(n).group(1))]  # noqa: E731
    return sorted(names, key=key)


def installed_stock() -> list[KernelImage]:
    out = []
    root = stock_root()
    for d in sorted(root.glob("*/boot")) if root.exists() else []:
        for vmlinuz in d.glob("vmlinuz-*"):
            release = vmlinuz.name[len("vmlinuz-"):]
            out.append(KernelImage("stock", str(vmlinuz), release, d / f"config-{release}"))
    return out


def fetch_stock(progress=print) -> KernelImage:
    """Download and unpack the newest stock 6.12 image, unless it is already cached."""
    have = installed_stock()
    if have:
        return have[-1]
    candidates = _available_stock_packages()
    if not candidates:
        raise WorkbenchError("no linux-image-6.12.*+deb12-amd64-unsigned package in apt's lists; "
                             "run `apt-get update` (Debian 12 bookworm with its updates)")
    pkg = candidates[-1]
    release = STOCK_PATTERN.match(pkg).group(1)
    dl = paths.cache_dir() / "kernels" / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    progress(f"downloading {pkg} with apt-get download")
    res = subprocess.run(["apt-get", "download", pkg], cwd=dl, capture_output=True, text=True)
    debs = sorted(dl.glob(f"{pkg}_*.deb"))
    if res.returncode != 0 or not debs:
        raise WorkbenchError(f"apt-get download {pkg} failed: {res.stderr.strip().splitlines()[-1:]}")
    target = stock_root() / release
    tmp = target.with_suffix(".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    progress(f"unpacking {debs[-1].name}")
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(tmp)], check=True)
    tmp.rename(target)
    return installed_stock()[-1]


def build(ksrc: str | None = None, vanilla: bool = False) -> Path:
    """Run kernel/build.sh (cached by source, patches and config); its progress goes to
    stderr, its last stdout line is the built tree."""
    script = paths.REPO / "kernel" / "build.sh"
    if not script.exists():
        raise WorkbenchError(f"{script} is missing: this checkout has no kernel series")
    if ksrc and not Path(ksrc).is_dir():
        raise WorkbenchError(f"kernel source {ksrc!r} is not a directory")
    args = ["bash", str(script)] + (["--ksrc", ksrc] if ksrc else []) + (["--vanilla"] if vanilla else [])
    res = subprocess.run(args, stdout=subprocess.PIPE, text=True)
    lines = res.stdout.strip().splitlines()
    if res.returncode != 0 or not lines:
        raise WorkbenchError(f"kernel build failed (exit {res.returncode}); the make log is in the tree's "
                             ".workbench-build.log")
    return Path(lines[-1])


def built_tree(vanilla: bool) -> KernelImage | None:
    """The tree kernel/build.sh last produced for these inputs, if any (kernel series)."""
    script = paths.REPO / "kernel" / "build.sh"
    if not script.exists():
        return None
    args = ["bash", str(script), "--print-dir"] + (["--vanilla"] if vanilla else [])
    res = subprocess.run(args, capture_output=True, text=True)
    if res.returncode != 0 or not res.stdout.strip():
        return None
    tree = Path(res.stdout.strip().splitlines()[-1])
    if not (tree / "arch/x86/boot/bzImage").exists():
        return None
    release = (tree / "include/config/kernel.release")
    return KernelImage("vanilla" if vanilla else "patched", str(tree),
                       release.read_text().strip() if release.exists() else None, tree / ".config")


def resolve(spec: str) -> KernelImage:
    """'stock' | 'patched' | 'vanilla' | a path -> a bootable image."""
    if spec == "stock":
        have = installed_stock()
        if not have:
            raise WorkbenchError("the stock Debian 6.12 kernel is not fetched yet: run `workbench kernel fetch-stock`")
        return have[-1]
    if spec in ("patched", "vanilla"):
        image = built_tree(spec == "vanilla")
        if image is None:
            flag = " --vanilla" if spec == "vanilla" else ""
            raise WorkbenchError(f"no {spec} kernel is built for the current patches and config: "
                                 f"run `workbench kernel build{flag}`")
        return image
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "arch/x86/boot/bzImage").exists():
            raise WorkbenchError(f"kernel tree {path} has no arch/x86/boot/bzImage; build it first")
        rel = path / "include/config/kernel.release"
        return KernelImage("path", str(path), rel.read_text().strip() if rel.exists() else None, path / ".config")
    if path.is_file():
        return KernelImage("path", str(path))
    raise WorkbenchError(f"kernel {spec!r} is neither stock, patched, vanilla nor an existing image or tree")
