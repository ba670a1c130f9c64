"""The lab-machine VM: a Debian 12 box booted from its own disk, reached only by SSH.

It is the test bed for putting kernels on real machines (issue 14): everything the
workbench does to it goes through ``ssh://root@127.0.0.1:PORT`` with a key and a
known_hosts file we generate, exactly as it would to a lab box. Nothing in the code that
drives boxes knows it is a VM.

The image (``build_image``)
    ``mmdebstrap --variant=minbase`` of bookworm with sshd, python3 (+venv), numactl,
    kexec-tools, systemd, udev, iproute2, GRUB (BIOS) and Debian's stock 6.12 kernel
    (``linux-image-6.12.*+deb12-amd64``, the release of the host's linux-source-6.12),
    installed *inside* the image with its initramfs. The root tree becomes an ext4
    filesystem with ``mkfs.ext4 -d`` (no loop mounts, no guestfish), placed in an MBR
    partition of a raw disk; GRUB's ``boot.img``/``core.img`` are written into the MBR
    and the gap after it, as ``grub-install`` does, and ``grub-mkconfig`` writes the
    Debian menu (run in the chroot with a stand-in ``grub-probe`` that answers for the
    disk the VM will see). The result is converted to qcow2 and cached under
    ``$WORKBENCH_CACHE/lab/images/<key>/``, keyed by the package list, the kernel
    package, the APT sources, the disk size and the text of this recipe.

    Why a bootloader rather than QEMU ``-kernel``: a lab box boots whatever its GRUB
    says, and ``workbench kernel install --boot reboot`` relies on ``grub-reboot``
    (one-shot entry, ``GRUB_DEFAULT=saved``) so that a kernel that does not come up
    leaves the box on its old kernel at the next boot. With ``-kernel`` QEMU would boot
    the extracted kernel on every reset and that path could not be tested. SeaBIOS +
    GRUB + the kernel's own initramfs is what a real BIOS box does; ``kexec`` works the
    same either way.

    sshd has one host key (ed25519) generated here; root logs in by a key generated
    here (no password login at all). Networking: systemd-networkd, DHCP on en*.

The VM that boots it is :mod:`.lab_vm`.
"""

from __future__ import annotations

import fcntl
import hashlib
import inspect
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..errors import WorkbenchError
from .config import kvm_usable

SUITE = "bookworm"
#: the packages of the image, besides the kernel (see kernel_package())
PACKAGES = (
    "openssh-server", "python3", "python3-venv", "numactl", "kexec-tools",
    "systemd-sysv", "udev", "dbus", "iproute2", "procps", "kmod", "e2fsprogs",
    "initramfs-tools", "zstd", "grub2-common", "grub-pc-bin",
)
DISK_SIZE_MIB = 6144
#: bumped by hand when something the hash below cannot see changes meaning
RECIPE_VERSION = 1
#: (memory, cpus) per NUMA node: 2 x 1536M, one CPU each
NODES = (("1536M", "0"), ("1536M", "1"))
USER = "root"


# ---- helpers ---------------------------------------------------------------------------

def lab_dir() -> Path:
    d = paths.cache_dir() / "lab"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _sha(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def _run(cmd, what: str, log: Path | None = None, timeout: float | None = None, **kw):
    """Run a command; on failure raise a one-line error with its output tail as detail."""
    try:
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    except FileNotFoundError:
        raise WorkbenchError(f"{what}: {cmd[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise WorkbenchError(f"{what}: no answer within {timeout:.0f}s") from None
    if log is not None:
        with open(log, "a") as f:
            f.write(f"$ {' '.join(map(str, cmd))}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise WorkbenchError(f"{what} failed (exit {proc.returncode})", detail=tail)
    return proc


def accelerator(choice: str = "auto") -> str:
    if choice not in ("auto", "kvm", "tcg"):
        raise WorkbenchError(f"accelerator {choice!r} is not one of auto, kvm, tcg")
    ok, why = kvm_usable()
    if choice == "kvm" and not ok:
        raise WorkbenchError(f"--accel kvm: {why}")
    return "kvm" if (choice == "kvm" or (choice == "auto" and ok)) else "tcg"


def kernel_package() -> str:
    """Debian's signed stock 6.12 image package of the release the host's
    linux-source-6.12 has (the series is based on it), e.g.
    ``linux-image-6.12.117+deb12-amd64``. ``WORKBENCH_LAB_KERNEL`` overrides."""
    if os.environ.get("WORKBENCH_LAB_KERNEL"):
        return os.environ["WORKBENCH_LAB_KERNEL"]
    try:
        ver = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "linux-source-6.12"],
                             capture_output=True, text=True).stdout.strip()
    except FileNotFoundError:
        ver = ""
    if not ver:
        raise WorkbenchError("no linux-source-6.12 on this host to pick the lab image's kernel from "
                             "(apt-get install linux-source-6.12, or set WORKBENCH_LAB_KERNEL)")
    upstream = ver.split("-", 1)[0]               # 6.12.117-1~deb12u1 -> 6.12.117
    return f"linux-image-{upstream}+deb12-amd64"


def apt_sources() -> list[Path]:
    """This host's Debian APT sources (the image is built from the same archive)."""
    if os.environ.get("WORKBENCH_LAB_SOURCES"):
        return [Path(p) for p in os.environ["WORKBENCH_LAB_SOURCES"].split(":")]
    found = []
    for p in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if p.suffix not in (".list", ".sources") or not p.is_file():
            continue
        text = p.read_text(errors="replace")
        if SUITE in text and "debian" in text and any(
                ln.strip() and not ln.lstrip().startswith("#") for ln in text.splitlines()):
            found.append(p)
    return found


# ---- the image ---------------------------------------------------------------------------

# Runs inside mmdebstrap's customize hook: $1 is the root tree (with /proc, /sys, /dev
# mounted). Environment: ROOT_UUID, KVER.
_CUSTOMIZE = r"""#!/bin/sh
set -eu
R=$1
echo labbox >"$R/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 labbox\n::1 localhost ip6-localhost ip6-loopback\n' >"$R/etc/hosts"
printf 'UUID=%s / ext4 errors=remount-ro 0 1\n' "$ROOT_UUID" >"$R/etc/fstab"
mkdir -p "$R/etc/systemd/network"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n' >"$R/etc/systemd/network/20-wired.network"
chroot "$R" systemctl enable systemd-networkd.service >/dev/null 2>&1
chroot "$R" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer >/dev/null 2>&1 || true
# sshd: one host key, ours; root by key only
rm -f "$R"/etc/ssh/ssh_host_*
install -m 600 "$HOSTKEY" "$R/etc/ssh/ssh_host_ed25519_key"
install -m 644 "$HOSTKEY.pub" "$R/etc/ssh/ssh_host_ed25519_key.pub"
mkdir -p "$R/etc/ssh/sshd_config.d"
printf 'HostKey /etc/ssh/ssh_host_ed25519_key\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\n' \
	>"$R/etc/ssh/sshd_config.d/workbench-lab.conf"
install -d -m 700 "$R/root/.ssh"
install -m 600 "$CLIENTKEY.pub" "$R/root/.ssh/authorized_keys"
# Kernels installed later build an initramfs with only the modules this box needs
# (the stock one above was built with "most": in a chroot there is no device to probe).
mkdir -p "$R/etc/initramfs-tools/conf.d"
echo MODULES=dep >"$R/etc/initramfs-tools/conf.d/workbench-lab.conf"
# kexec-tools must not turn every reboot into a kexec of the newest kernel
[ -f "$R/etc/default/kexec" ] && sed -i 's/^LOAD_KEXEC=.*/LOAD_KEXEC=false/' "$R/etc/default/kexec"
# GRUB: saved default (grub-reboot works), serial console, short timeout
cat >"$R/etc/default/grub" <<'EOF'
GRUB_DEFAULT=saved
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
EOF
mkdir -p "$R/boot/grub/i386-pc"
cp "$R"/usr/lib/grub/i386-pc/*.mod "$R"/usr/lib/grub/i386-pc/*.lst "$R/boot/grub/i386-pc/"
chroot "$R" grub-mkimage -O i386-pc -o /boot/grub/i386-pc/core.img -p '(hd0,msdos1)/boot/grub' \
	biosdisk part_msdos ext2
# grub-mkconfig in a chroot cannot probe the disk the VM will have: answer for it.
mv "$R/usr/sbin/grub-probe" "$R/usr/sbin/grub-probe.real"
cat >"$R/usr/sbin/grub-probe" <<EOF
#!/bin/sh
for a in "\$@"; do case \$a in --target=*) t=\${a#--target=} ;; -t) ;; esac; done
case \$t in
device) echo /dev/vda1 ;; disk) echo /dev/vda ;; fs) echo ext2 ;; fs_uuid) echo $ROOT_UUID ;;
partmap) echo msdos ;; abstraction) ;; drive) echo '(hd0,msdos1)' ;;
compatibility_hint|bios_hints) echo hd0,msdos1 ;; hints_string) echo '--hint-bios=hd0,msdos1' ;;
*) echo "stand-in grub-probe: unknown target \$t" >&2; exit 1 ;;
esac
EOF
chmod +x "$R/usr/sbin/grub-probe"
chroot "$R" grub-mkconfig -o /boot/grub/grub.cfg
mv "$R/usr/sbin/grub-probe.real" "$R/usr/sbin/grub-probe"
grep -q "vmlinuz-$KVER" "$R/boot/grub/grub.cfg"
chroot "$R" grub-editenv /boot/grub/grubenv create
rm -f "$R/etc/machine-id" && : >"$R/etc/machine-id"
rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/*_Packages
"""


def image_inputs(packages=PACKAGES, kernel: str | None = None) -> dict:
    kernel = kernel or kernel_package()
    sources = apt_sources()
    return {
        "recipe_version": RECIPE_VERSION,
        "suite": SUITE,
        "packages": sorted(packages),
        "kernel_package": kernel,
        "disk_mib": DISK_SIZE_MIB,
        "sources": {str(p): _sha(p.read_bytes()) for p in sources},
        "recipe": _sha(_CUSTOMIZE + inspect.getsource(_build)),
    }


@dataclass
class LabImage:
    key: str
    dir: Path
    disk: Path
    identity: Path
    host_key_pub: str
    kernel_release: str
    info: dict

    @property
    def lsmod(self) -> Path:
        """``lsmod`` of the stock kernel's first boot of this image."""
        return self.dir / "lsmod"

    @property
    def config(self) -> Path:
        """The stock kernel's config, copied out of the image (a box's own config)."""
        return self.dir / f"config-{self.kernel_release}"


def image_key(inputs: dict) -> str:
    return _sha(json.dumps(inputs, sort_keys=True))[:16]


def _load(d: Path) -> LabImage | None:
    try:
        info = json.loads((d / "image.json").read_text())
    except (OSError, ValueError):
        return None
    if not (d / "disk.qcow2").exists():
        return None
    return LabImage(info["key"], d, d / "disk.qcow2", d / "id_ed25519",
                    (d / "host_key.pub").read_text().strip(), info["kernel_release"], info)


def build_image(packages=PACKAGES, kernel: str | None = None, force: bool = False,
                progress=None) -> LabImage:
    """The lab image for these inputs: from the cache, or built (a few minutes)."""
    inputs = image_inputs(packages, kernel)
    key = image_key(inputs)
    root = lab_dir() / "images"
    root.mkdir(parents=True, exist_ok=True)
    d = root / key
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and (img := _load(d)):
            return img
        for tool in ("mmdebstrap", "mkfs.ext4", "qemu-img", "ssh-keygen"):
            if not shutil.which(tool) and not Path("/usr/sbin", tool).exists() and not Path("/sbin", tool).exists():
                raise WorkbenchError(f"building the lab image needs {tool} "
                                     f"(apt-get install {'mmdebstrap' if tool == 'mmdebstrap' else 'qemu-utils e2fsprogs openssh-client'})")
        if os.geteuid() != 0:
            raise WorkbenchError("building the lab image needs root (mmdebstrap keeps file ownership for mkfs.ext4 -d)")
        start = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix=f"{key}.", suffix=".tmp", dir=root))
        try:
            _build(tmp, inputs, progress or (lambda msg: None))
            info = {"key": key, "inputs": inputs, "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "build_seconds": round(time.monotonic() - start, 1),
                    "kernel_release": (tmp / "kernel_release").read_text().strip()}
            (tmp / "image.json").write_text(json.dumps(info, indent=1))
            if d.exists():
                shutil.rmtree(d)
            tmp.rename(d)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return _load(d)


def _build(tmp: Path, inputs: dict, progress) -> None:
    log = tmp / "build.log"
    rootdir = tmp / "root"
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lab-host", "-f", tmp / "host_key"], "ssh-keygen")
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "workbench-lab", "-f", tmp / "id_ed25519"], "ssh-keygen")
    (tmp / "customize.sh").write_text(_CUSTOMIZE)
    root_uuid = str(uuidlib.uuid4())
    kernel = inputs["kernel_package"]
    kver = kernel.removeprefix("linux-image-")
    env = {**os.environ, "ROOT_UUID": root_uuid, "KVER": kver,
           "HOSTKEY": str(tmp / "host_key"), "CLIENTKEY": str(tmp / "id_ed25519")}
    progress(f"mmdebstrap {SUITE} with {kernel}")
    _run(["mmdebstrap", "--mode=root", "--variant=minbase", "--format=directory",
          "--include=" + ",".join([*inputs["packages"], kernel]),
          "--customize-hook=sh " + str(tmp / "customize.sh") + ' "$1"',
          SUITE, rootdir, *[str(p) for p in inputs["sources"]]],
         "mmdebstrap", log=log, env=env, timeout=3600)
    if not (rootdir / "boot" / f"vmlinuz-{kver}").exists() or not (rootdir / "boot" / f"initrd.img-{kver}").exists():
        raise WorkbenchError(f"the lab image has no /boot/vmlinuz-{kver} with its initrd (see {log})")
    (tmp / "kernel_release").write_text(kver + "\n")
    shutil.copy(rootdir / "boot" / f"config-{kver}", tmp / f"config-{kver}")
    boot_img = (rootdir / "usr/lib/grub/i386-pc/boot.img").read_bytes()
    core_img = (rootdir / "boot/grub/i386-pc/core.img").read_bytes()
    if len(core_img) > (2048 - 1) * 512:
        raise WorkbenchError(f"GRUB core.img is {len(core_img)} bytes, more than the 1 MiB gap")

    progress("mkfs.ext4 -d (root tree -> filesystem)")
    part_start = 2048                                  # sectors: 1 MiB gap for GRUB
    part_sectors = DISK_SIZE_MIB * 2048 - part_start
    fs = tmp / "root.ext4"
    _run(["mkfs.ext4", "-q", "-F", "-L", "labroot", "-U", root_uuid, "-d", rootdir, fs, f"{part_sectors // 2}k"],
         "mkfs.ext4 -d", log=log)
    shutil.rmtree(rootdir)
    raw = tmp / "disk.raw"
    with open(raw, "wb") as f:
        f.truncate(DISK_SIZE_MIB << 20)
    _run(["dd", f"if={fs}", f"of={raw}", "bs=1M", "seek=1", "conv=notrunc,sparse", "status=none"], "dd", log=log)
    fs.unlink()
    with open(raw, "r+b") as f:
        f.write(boot_img[:440])                        # boot code, then the partition table
        f.write(_mbr_table(part_start, part_sectors))
        f.seek(512)
        f.write(core_img)                              # diskboot's default blocklist: sector 2 on
    progress("qemu-img convert -> qcow2")
    _run(["qemu-img", "convert", "-O", "qcow2", raw, tmp / "disk.qcow2"], "qemu-img convert", log=log)
    raw.unlink()


def _chs(lba: int) -> bytes:
    """CHS of an LBA in the 255-head/63-sector geometry; past 1023 cylinders the
    conventional "use LBA" value."""
    c, rest = divmod(lba, 255 * 63)
    h, s = divmod(rest, 63)
    if c > 1023:
        return bytes((0xFE, 0xFF, 0xFF))
    return bytes((h, ((c >> 2) & 0xC0) | (s + 1), c & 0xFF))


def _mbr_table(start: int, sectors: int) -> bytes:
    """Bytes 440..511 of an MBR: disk id, one bootable Linux partition, the signature."""
    entry = (b"\x80" + _chs(start) + b"\x83" + _chs(start + sectors - 1)
             + start.to_bytes(4, "little") + sectors.to_bytes(4, "little"))
    return os.urandom(4) + b"\0\0" + entry + bytes(48) + b"\x55\xaa"


# ---- the VM ---------------------------------------------------------------------------------
