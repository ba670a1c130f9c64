"""Kernel images the VM target can boot.

* ``stock``: the default line's Debian image (``kernel/lines``: 7.3's
  ``linux-image-7.3.*+deb13-amd64`` from trixie-backports), ``stock-6.12``: the LTS line's,
  Debian 12's ``linux-image-6.12.*+deb12-amd64-unsigned`` (``apt-get download``); each
  unpacked into the cache, never installed into /boot;
* ``patched`` / ``vanilla``: the default line's trees built by ``kernel/build.sh`` (our
  series v3 on 7.3, and 7.3 without it); ``patched-6.12`` / ``vanilla-6.12``: the LTS
  line's (series v2, frozen), named by build.sh and found like any named tree;
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
from . import kernel_lines



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
    #: the kernel line it is on (kernel/lines), and what its source was (Debian's package
    #: and version, or a tree's git commit)
    line: str | None = None
    source: str | None = None
    #: modules built out of tree for it (the test DMA engine), given to the agent
    module_dir: str | None = None

    def config_hash(self) -> str | None:
        if self.config and self.config.exists():
            return hashlib.sha256(self.config.read_bytes()).hexdigest()[:16]
        return None


def stock_root() -> Path:
    return paths.cache_dir() / "kernels" / "stock"


def _available_stock_packages(line: kernel_lines.KernelLine) -> list[str]:
    """The line's stock image packages in its suite, oldest first."""
    pattern = line.stock_pattern()
    if line.suite == "host":
        cmd = ["apt-cache", "pkgnames", pattern.pattern.lstrip("^").split("(")[0]]
    else:
        cmd = ["bash", str(paths.REPO / "kernel" / "debian-source.sh"), "--suite", line.suite,
               "--list", pattern.pattern]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise WorkbenchError(f"cannot list the {line.name} line's Debian kernel packages: {exc}") from None
    names = [n for n in out.split() if pattern.match(n)]
    key = lambda n: [int(x) for x in re.findall(r"\d+", pattern.match(n).group(1))]  # noqa: E731
    return sorted(names, key=key)


def installed_stock(line: kernel_lines.KernelLine | None = None) -> list[KernelImage]:
    """Stock images in the cache, oldest first: the line's, or every line's."""
    out = []
    root = stock_root()
    for d in sorted(root.glob("*/boot")) if root.exists() else []:
        for vmlinuz in d.glob("vmlinuz-*"):
            release = vmlinuz.name[len("vmlinuz-"):]
            if line is not None and not release.startswith(line.name + "."):
                continue
            stock_line = next((k.name for k in kernel_lines.lines() if release.startswith(k.name + ".")), None)
            out.append(KernelImage("stock", str(vmlinuz), release, d / f"config-{release}", line=stock_line,
                                   source=f"Debian image {release}"))
    return out


def _unpack_from_host_apt(pkg: str, into: Path, progress) -> None:
    dl = paths.cache_dir() / "kernels" / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    progress(f"downloading {pkg} with apt-get download")
    res = subprocess.run(["apt-get", "download", pkg], cwd=dl, capture_output=True, text=True)
    debs = sorted(dl.glob(f"{pkg}_*.deb"))
    if res.returncode != 0 or not debs:
        raise WorkbenchError(f"apt-get download {pkg} failed: {res.stderr.strip().splitlines()[-1:]}")
    progress(f"unpacking {debs[-1].name}")
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(into)], check=True)


def _unpack_from_suite(line: kernel_lines.KernelLine, release: str, pkg: str, into: Path, progress) -> None:
    """A newer Debian splits an image into the image, its binary, modules and base
    packages (trixie: linux-image-R depends on linux-binary-R, linux-modules-R and
    linux-base-R): unpack each that exists, then lay them out as one image's root."""
    script = paths.REPO / "kernel" / "debian-source.sh"
    parts = [pkg] + [f"{p}-{release}" for p in ("linux-binary-unsigned", "linux-modules", "linux-base")]
    listed = subprocess.run(["bash", str(script), "--suite", line.suite, "--list",
                             "^(" + "|".join(re.escape(p) for p in parts) + ")$"],
                            capture_output=True, text=True).stdout.split()
    for part in [p for p in parts if p in listed]:
        progress(f"fetching {part} from {line.suite}")
        res = subprocess.run(["bash", str(script), "--suite", line.suite, part], capture_output=True, text=True)
        if res.returncode != 0:
            raise WorkbenchError(f"cannot fetch {part} from {line.suite}: "
                                 f"{(res.stderr.strip().splitlines() or ['?'])[-1]}")
        src = Path(res.stdout.strip().splitlines()[-1])
        subprocess.run(["cp", "-a", "--reflink=auto", f"{src}/.", str(into)], check=True)
    # one layout for every line: boot/vmlinuz-R, boot/config-R, lib/modules/R
    moddir = into / "usr" / "lib" / "modules" / release
    boot = into / "boot"
    boot.mkdir(exist_ok=True)
    for name, target in (("vmlinuz.unsigned", f"vmlinuz-{release}"), ("vmlinuz", f"vmlinuz-{release}"),
                         ("config", f"config-{release}"), ("System.map", f"System.map-{release}")):
        if (moddir / name).exists() and not (boot / target).exists():
            (moddir / name).rename(boot / target)
    if moddir.exists():
        (into / "lib" / "modules").mkdir(parents=True, exist_ok=True)
        moddir.rename(into / "lib" / "modules" / release)
    if not (boot / f"vmlinuz-{release}").exists():
        raise WorkbenchError(f"{pkg} and its parts in {line.suite} hold no vmlinuz for {release}")


def fetch_stock(progress=print, line: kernel_lines.KernelLine | None = None) -> KernelImage:
    """Download and unpack the newest stock image of a line (default: the first line's),
    unless it is already cached."""
    line = line or kernel_lines.default()
    have = installed_stock(line)
    if have:
        return have[-1]
    candidates = _available_stock_packages(line)
    if not candidates:
        where = "apt's lists (run `apt-get update`)" if line.suite == "host" else line.suite
        raise WorkbenchError(f"no package matching {line.stock_image} in {where}")
    pkg = candidates[-1]
    release = line.stock_pattern().match(pkg).group(1)
    target = stock_root() / release
    tmp = target.with_suffix(".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if line.suite == "host":
        _unpack_from_host_apt(pkg, tmp, progress)
    else:
        _unpack_from_suite(line, release, pkg, tmp, progress)
    tmp.rename(target)
    return installed_stock(line)[-1]


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
          name: str | None = None, line: str | None = None, seed_from: str | Path | None = None) -> Path:
    """Run kernel/build.sh (cached by source, patches and config): ``ksrc`` is the base
    (a tree or a .tar of one), or ``line`` a kernel line's Debian source (default the first
    line's: 7.3), ``series`` the patches on it (default the line's series of ours;
    ``vanilla``: none), ``name`` what ``--kernel`` calls the result;
    ``seed_from`` a built tree of the same source that a tree not built yet starts as a
    copy of (the tree of the previous patch: only what that patch touches is compiled). Its
    progress goes to stderr; one line names what went wrong."""
    script = paths.REPO / "kernel" / "build.sh"
    if not script.exists():
        raise WorkbenchError(f"{script} is missing: this checkout has no kernel series")
    if line is not None:
        kline = kernel_lines.get(line)          # one line naming the lines there are
        if ksrc:
            raise WorkbenchError("--line and --base both name the base: give one")
        if kline.series is None and not vanilla and not series:
            raise WorkbenchError(f"kernel line {line} has no series of ours yet: build it with --vanilla, "
                                 "or give --series")
    if ksrc and not Path(ksrc).exists():
        raise WorkbenchError(f"kernel source {ksrc!r} does not exist; allowed: a kernel tree or a .tar of one")
    if series and not Path(series).exists():
        raise WorkbenchError(f"series {series!r} does not exist; allowed: an mbox, a patch, a directory of "
                             "git format-patch files or one with a series file")
    if series and vanilla:
        raise WorkbenchError("a series and --vanilla exclude each other (vanilla applies no patches)")
    if name is not None and (not NAME.match(name) or name == "stock" or name.startswith("stock-")):
        raise WorkbenchError(f"kernel name {name!r} is not allowed; allowed: letters, digits, '.', '_' and '-', "
                             "not starting with '.' or '-', and not 'stock' or 'stock-*' (the lines' stock kernels)")
    if profile not in PROFILES:
        raise WorkbenchError(f"build profile {profile!r} is not one of {', '.join(PROFILES)}")
    args = (["bash", str(script)] + (["--ksrc", ksrc] if ksrc else []) + (["--line", line] if line else []) + (["--series", series] if series else [])
            + (["--name", name] if name else []) + (["--seed-from", str(seed_from)] if seed_from else [])
            + _build_args(vanilla, profile))
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
                       version=info.get("version"), line=info.get("line") or None, source=info.get("source"))


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
    """The default line's tree kernel/build.sh last produced for these inputs, if any."""
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
    stock_line = kernel_lines.of_stock_name(spec)
    if stock_line is not None:
        have = installed_stock(stock_line)
        if not have:
            flag = "" if stock_line == kernel_lines.default() else f" --line {stock_line.name}"
            raise WorkbenchError(f"the stock Debian {stock_line.name} kernel is not fetched yet: "
                                 f"run `workbench kernel fetch-stock{flag}`")
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
