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


#: build profiles of kernel/build.sh: the test build (debug checks on, the default) and
#: "bench", the same tree without the debug options that change the migration path's
#: cost (for instruction-time measurements)
PROFILES = ("test", "bench")
#: the series' trees by name: patched and vanilla, each in both profiles
BUILT = {"patched": (False, "test"), "vanilla": (True, "test"),
         "patched-bench": (False, "bench"), "vanilla-bench": (True, "bench")}


def _build_args(vanilla: bool, profile: str) -> list[str]:
    return (["--vanilla"] if vanilla else []) + (["--profile", profile] if profile != "test" else [])


def build(ksrc: str | None = None, vanilla: bool = False, profile: str = "test") -> Path:
    """Run kernel/build.sh (cached by source, patches and config); its progress goes to
    stderr, its last stdout line is the built tree."""
    script = paths.REPO / "kernel" / "build.sh"
    if not script.exists():
        raise WorkbenchError(f"{script} is missing: this checkout has no kernel series")
    if ksrc and not Path(ksrc).is_dir():
        raise WorkbenchError(f"kernel source {ksrc!r} is not a directory")
    if profile not in PROFILES:
        raise WorkbenchError(f"build profile {profile!r} is not one of {', '.join(PROFILES)}")
    args = ["bash", str(script)] + (["--ksrc", ksrc] if ksrc else []) + _build_args(vanilla, profile)
    res = subprocess.run(args, stdout=subprocess.PIPE, text=True)
    lines = res.stdout.strip().splitlines()
    if res.returncode != 0 or not lines:
        raise WorkbenchError(f"kernel build failed (exit {res.returncode}); the make log is in the tree's "
                             ".workbench-build.log")
    return Path(lines[-1])


def built_tree(vanilla: bool, profile: str = "test") -> KernelImage | None:
    """The tree kernel/build.sh last produced for these inputs, if any (kernel series)."""
    script = paths.REPO / "kernel" / "build.sh"
    if not script.exists():
        return None
    args = ["bash", str(script), "--print-dir"] + _build_args(vanilla, profile)
    res = subprocess.run(args, capture_output=True, text=True)
    if res.returncode != 0 or not res.stdout.strip():
        return None
    tree = Path(res.stdout.strip().splitlines()[-1])
    if not (tree / "arch/x86/boot/bzImage").exists():
        return None
    release = (tree / "include/config/kernel.release")
    name = ("vanilla" if vanilla else "patched") + ("" if profile == "test" else f"-{profile}")
    return KernelImage(name, str(tree),
                       release.read_text().strip() if release.exists() else None, tree / ".config")


def resolve(spec: str) -> KernelImage:
    """'stock' | 'patched' | 'vanilla' | 'patched-bench' | 'vanilla-bench' | a path -> a bootable image."""
    if spec == "stock":
        have = installed_stock()
        if not have:
            raise WorkbenchError("the stock Debian 6.12 kernel is not fetched yet: run `workbench kernel fetch-stock`")
        return have[-1]
    if spec in BUILT:
        vanilla, profile = BUILT[spec]
        image = built_tree(vanilla, profile)
        if image is None:
            flags = " ".join(_build_args(vanilla, profile))
            raise WorkbenchError(f"no {spec} kernel is built for the current patches and config: "
                                 f"run `workbench kernel build{' ' + flags if flags else ''}`")
        return image
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "arch/x86/boot/bzImage").exists():
            raise WorkbenchError(f"kernel tree {path} has no arch/x86/boot/bzImage; build it first")
        rel = path / "include/config/kernel.release"
        return KernelImage("path", str(path), rel.read_text().strip() if rel.exists() else None, path / ".config")
    if path.is_file():
        return KernelImage("path", str(path))
    raise WorkbenchError(f"kernel {spec!r} is neither stock, {', '.join(BUILT)} nor an existing image or tree")
