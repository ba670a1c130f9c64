#!/usr/bin/env bash
# Check the patch series: scripts/checkpatch.pl --strict on every patch of
# patches/series, then compile the series' files for other architectures.
# usage: kernel/check-patches.sh [--no-cross] [KERNEL_TREE]
#
# KERNEL_TREE defaults to the vanilla tree of build.sh (built or not, it
# only needs its scripts and its git history: tag wb-base).
#
# Cross compiles (Debian's gcc-aarch64-linux-gnu and gcc-powerpc64le-linux-gnu):
# the series is applied to a clean copy of the source, which is configured
# with make allnoconfig + config/cross/<target>.config for
#   arm64-64k  arm64 with 64K pages (HPAGE_PMD_NR = 8192, a PUD = 2^26 pages)
#   ppc64le    ppc64le book3s (HPAGE_PMD_NR is not a compile-time constant)
# and mm/util.o, mm/migrate.o, mm/migrate_copy.o, mm/mtcopy.o, mm/dcbm.o and
# drivers/dma/test-dma-engine.o are compiled with -Werror.  The copy and the
# build directories are cached in ${WORKBENCH_CACHE:-~/.cache/migration-workbench}/kernel/xcheck/.
#
# Exits non-zero if any patch has a checkpatch finding or a compile fails.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cross=1
[ "${1:-}" = --no-cross ] && { cross=0; shift; }
tree=${1:-$("$here/build.sh" --vanilla --print-dir)}
[ -x "$tree/scripts/checkpatch.pl" ] || { echo "no checkpatch.pl in $tree (run build.sh --vanilla first)" >&2; exit 2; }
# spdxcheck.py wants the system python with python3-ply and python3-git.
export PATH=/usr/bin:$PATH
status=0
patches=()
while IFS= read -r p; do
	p=${p%%#*}; p=$(echo "$p" | xargs)
	[ -n "$p" ] || continue
	patches+=("$here/patches/$p")
	out=$(cd "$tree" && ./scripts/checkpatch.pl --strict "$here/patches/$p" 2>&1) || status=1
	printf '%s: %s\n' "$p" "$(grep '^total:' <<<"$out")"
	grep -qE '^total: 0 errors, 0 warnings, 0 checks' <<<"$out" || { echo "$out"; status=1; }
done <"$here/patches/series"
[ $cross = 1 ] || exit $status

# ---- cross compiles ---------------------------------------------------------
xdir=${WORKBENCH_CACHE:-$HOME/.cache/migration-workbench}/kernel/xcheck
src=$xdir/src
jobs=${WORKBENCH_JOBS:-$(nproc)}
gitq() { git -C "$src" -c user.name=workbench -c user.email=workbench@localhost "$@"; }
git -C "$tree" rev-parse -q --verify wb-base >/dev/null ||
	{ echo "cross: $tree has no wb-base tag (a build.sh tree): skipped" >&2; exit 1; }
mkdir -p "$xdir"
exec 8>"$xdir/.lock"
flock 8
if [ ! -d "$src/.git" ] || [ "$(gitq rev-parse wb-base)" != "$(git -C "$tree" rev-parse wb-base)" ]; then
	rm -rf "$src" "$xdir"/build-*
	echo "cross: cloning the pristine source into $src" >&2
	git clone -q --local --no-checkout "$tree" "$src"
	gitq checkout -q -f wb-base
	gitq tag -f wb-base >/dev/null
fi
gitq am --abort >/dev/null 2>&1 || true
gitq reset -q --hard wb-base
for p in "${patches[@]}"; do
	gitq am -q --whitespace=nowarn "$p" || { gitq am --abort || true; echo "cross: $(basename "$p") does not apply" >&2; exit 1; }
done
objs="mm/util.o mm/migrate.o mm/migrate_copy.o mm/mtcopy.o mm/dcbm.o drivers/dma/test-dma-engine.o"
for target in arm64-64k:arm64:aarch64-linux-gnu- ppc64le:powerpc:powerpc64le-linux-gnu-; do
	IFS=: read -r name arch cc <<<"$target"
	frag=$here/config/cross/$name.config
	out=$xdir/build-$name
	if ! command -v "${cc}gcc" >/dev/null; then
		echo "cross $name: no ${cc}gcc (apt-get install gcc-${cc%-}): FAILED"; status=1; continue
	fi
	mkdir -p "$out"
	mk() { nice -n 10 make -s -C "$src" O="$out" ARCH="$arch" CROSS_COMPILE="$cc" "$@" </dev/null; }
	if ! mk KCONFIG_ALLCONFIG="$frag" allnoconfig >"$out/.xcheck.log" 2>&1; then
		cat "$out/.xcheck.log"; echo "cross $name: configuration FAILED"; status=1; continue
	fi
	missing=0
	while IFS= read -r line; do
		case $line in CONFIG_*=*) grep -qxF "$line" "$out/.config" || { echo "cross $name: $line did not stick"; missing=1; } ;; esac
	done <"$frag"
	[ $missing = 0 ] || { echo "cross $name: FAILED"; status=1; continue; }
	if ! mk -j"$jobs" prepare >>"$out/.xcheck.log" 2>&1; then
		tail -20 "$out/.xcheck.log"; echo "cross $name: make prepare FAILED"; status=1; continue
	fi
	# shellcheck disable=SC2086
	if mk -j"$jobs" KCFLAGS=-Werror $objs >>"$out/.xcheck.log" 2>&1; then
		echo "cross $name: OK ($objs)"
	else
		grep -E 'error|warning' "$out/.xcheck.log" | head -30
		echo "cross $name: FAILED"; status=1
	fi
done
exit $status
