#!/usr/bin/env bash
# Set up migration workbench on a fresh Debian/Ubuntu machine. Idempotent: a second
# run only checks what is there.
#   - Debian packages: QEMU, sshd (for the ssh target's test), kernel build tools,
#     what `workbench conformance` runs (libnuma's headers for the selftests, stress-ng)
#   - .venv with this package and its test/notebook extras
#   - each kernel line's stock Debian kernel (kernel/lines), downloaded and unpacked
#     into the cache: the default line's (7.3, from trixie-backports) and the LTS line's
#     (Debian 12's own 6.12)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  qemu-system-x86 busybox-static cpio kmod xz-utils zstd python3-venv
  openssh-server openssh-client
  linux-source-6.12 build-essential flex bison bc libelf-dev libssl-dev rsync
  mmdebstrap debhelper
  python3-ply python3-git
  gcc-aarch64-linux-gnu gcc-powerpc64le-linux-gnu
  chromium chromium-driver
  libnuma-dev stress-ng
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" >&2
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -e "$stamp" ]; then
  echo "setup: installing the package and its dependencies into .venv" >&2
  log=$(mktemp)
  if ! { .venv/bin/pip install --upgrade pip && .venv/bin/pip install -e ".[test,notebooks]"; } >"$log" 2>&1; then
    tail -30 "$log" >&2; echo "setup: pip install failed (full log: $log)" >&2; exit 1
  fi
  rm -f "$log"
  rm -f .venv/.installed-*; touch "$stamp"
fi

# the default line's stock kernel (kernel/lines: 7.3 from trixie-backports) is the VM's
# default kernel; the LTS line's (6.12, from this host's apt sources) only its tests need
.venv/bin/workbench kernel fetch-stock >&2
.venv/bin/workbench kernel fetch-stock --line 6.12 >&2 ||
  echo "setup: the 6.12 line's stock kernel could not be fetched (see above); its tests will say so" >&2
echo "setup: done" >&2
