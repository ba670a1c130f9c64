"""Kernel images the VM target can boot.

* ``stock``: Debian 12's ``linux-image-6.12.*+deb12-amd64-unsigned``, fetched with
  ``apt-get download`` and unpacked into the cache (never installed into /boot);
* ``patched`` / ``vanilla``: trees built by ``kernel/build.sh`` (the kernel series);
* any name ``workbench kernel build --name`` gave a tree (another series, a source tree);
* a path: a bzImage/vmlinuz file, or a built kernel tree.

A tree without the test DMA engine gets it built out of tree (``kernel/engine-module.sh``)
when a VM boots it, so any series' dcbm has channels.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..errors import WorkbenchError

STOCK_PATTERN = re.compile(r"^linux-image-(6\.12\.\d+\+deb12-amd64)-unsigned$")


@dataclass
class KernelImage:
    kind: str        # stock | patched | vanilla | named | path
    run_arg: str     # what vng --run gets: an image file or a built tree
    release: str | None = None
    config: Path | None = None
    #: what kernel/build.sh wrote in the tree's .workbench-tree: its name, the series on
    #: it (workbench, none, or the series' file name), a hash of every input, the version
    name: str | None = None
    series: str | None = None
    inputs: str | None = None
    version: str | None = None
    #: modules built out of tree for it (the test DMA engine), given to the agent
    module_dir: str | None = None

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


NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


def build(ksrc: str | None = None, vanilla: bool = False, profile: str = "test", series: str | None = None,
          name: str | None = None) -> Path:
    """Run kernel/build.sh (cached by source, patches and config): ``ksrc`` is the base
    (a tree or a .tar of one; default Debian's 6.12 source), ``series`` the patches on it
    (default ours; ``vanilla``: none), ``name`` what ``--kernel`` calls the result. Its
    progress goes to stderr; one line names what went wrong."""
    script = paths.REPO / "kernel" / "build.sh"
    if not script.exists():
        raise WorkbenchError(f"{script} is missing: this checkout has no kernel series")
    if ksrc and not Path(ksrc).exists():
        raise WorkbenchError(f"kernel source {ksrc!r} does not exist; allowed: a kernel tree or a .tar of one")
    if series and not Path(series).exists():
        raise WorkbenchError(f"series {series!r} does not exist; allowed: an mbox, a patch, a directory of "
                             "git format-patch files or one with a series file")
    if series and vanilla:
        raise WorkbenchError("a series and --vanilla exclude each other (vanilla applies no patches)")
    if name is not None and (not NAME.match(name) or name in ("stock",)):
        raise WorkbenchError(f"kernel name {name!r} is not allowed; allowed: letters, digits, '.', '_' and '-', "
                             "not starting with '.' or '-', and not 'stock'")
    if profile not in PROFILES:
        raise WorkbenchError(f"build profile {profile!r} is not one of {', '.join(PROFILES)}")
    args = (["bash", str(script)] + (["--ksrc", ksrc] if ksrc else []) + (["--series", series] if series else [])
            + (["--name", name] if name else []) + _build_args(vanilla, profile))
    # build.sh's progress goes on to stderr as it comes; its "error:" line becomes ours
    errors = []
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        for line in proc.stderr:
            sys.stderr.write(line)
            if line.startswith("build.sh: error: "):
                errors.append(line.split("error: ", 1)[1].strip())
        out = proc.stdout.read()
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise WorkbenchError(f"kernel build failed: {errors[-1]}" if errors else
                             f"kernel build failed (exit {proc.returncode}); the make log is in the tree's "
                             ".workbench-build.log")
    return Path(lines[-1])


def tree_info(tree: Path) -> dict[str, str]:
    """What kernel/build.sh wrote about a tree it built (.workbench-tree), else {}."""
    try:
        text = (Path(tree) / ".workbench-tree").read_text()
    except OSError:
        return {}
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def tree_image(tree: Path, kind: str) -> KernelImage:
    info = tree_info(tree)
    rel = Path(tree) / "include/config/kernel.release"
    return KernelImage(kind, str(tree), rel.read_text().strip() if rel.exists() else None, Path(tree) / ".config",
                       name=info.get("name"), series=info.get("series"), inputs=info.get("inputs"),
                       version=info.get("version"))


def names_dir() -> Path:
    return paths.cache_dir() / "kernel" / "names"


def named_trees() -> dict[str, Path]:
    """Every name kernel/build.sh gave a tree that is still built: {name: tree}."""
    out = {}
    for f in sorted(names_dir().glob("*")) if names_dir().is_dir() else []:
        tree = Path(f.read_text().strip())
        if (tree / "arch/x86/boot/bzImage").exists():
            out[f.name] = tree
    return out


#: the test DMA engine's object in a tree that builds it (patch 0011)
ENGINE_OBJECT = "drivers/dma/test-dma-engine"


def builds_engine(tree: Path) -> bool:
    """Whether a built tree has the test DMA engine among its modules (modules.order
    lists each module's object: .o on 6.12, .ko on older trees)."""
    try:
        listed = (Path(tree) / "modules.order").read_text().split()
    except OSError:
        return False
    return any(m.rsplit(".", 1)[0] == ENGINE_OBJECT for m in listed)


def with_engine(image: KernelImage, progress=None) -> KernelImage:
    """``image``, with the test DMA engine built out of tree for it when it is a tree
    that does not build the engine itself (another series, vanilla): dcbm then has
    channels in the VM. A tree the engine does not build against boots without it (the
    reason goes to ``progress``)."""
    tree = Path(image.run_arg)
    if not (tree / "modules.order").exists() or builds_engine(tree):
        return image
    res = subprocess.run(["bash", str(paths.REPO / "kernel" / "engine-module.sh"), str(tree)],
                         capture_output=True, text=True)
    lines = res.stdout.strip().splitlines()
    if res.returncode != 0 or not lines:
        if progress:
            why = [ln for ln in res.stderr.splitlines() if "error:" in ln][-1:] or [f"exit {res.returncode}"]
            progress(f"no test DMA engine for {tree.name}: {why[0]}")
        return image
    image.module_dir = str(Path(lines[-1]).parent)
    return image


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
    name = ("vanilla" if vanilla else "patched") + ("" if profile == "test" else f"-{profile}")
    return tree_image(tree, name)


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
    named = named_trees()
    if spec in named:
        return tree_image(named[spec], "named")
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "arch/x86/boot/bzImage").exists():
            raise WorkbenchError(f"kernel tree {path} has no arch/x86/boot/bzImage; build it first")
        return tree_image(path, "path")
    if path.is_file():
        return KernelImage("path", str(path))
    raise WorkbenchError(f"kernel {spec!r} is neither stock, {', '.join(BUILT)}, a built name "
                         f"({', '.join(n for n in named if n not in BUILT) or 'none yet'}) "
                         "nor an existing image or tree")
