#!/usr/bin/env bash
# Check a patch series: scripts/checkpatch.pl --strict on every patch of its
# series file, then compile the series' files for other architectures.
# usage: kernel/check-patches.sh [--no-cross] [--series DIR] [--line LINE] [KERNEL_TREE]
#
#   --series DIR  the series directory (default the line's own series in
#                 lines: v3/ on 7.3, patches/ on 6.12); its cross.conf says
#                 which options to add
#                 and which objects to compile
#   --line LINE   the kernel line whose vanilla tree is the base (kernel/lines;
#                 default the default line)
#
# KERNEL_TREE defaults to the vanilla tree of build.sh for the line (built or
# not, it only needs its scripts and its git history: tag wb-base).
#
# Cross compiles (Debian's gcc-aarch64-linux-gnu and gcc-powerpc64le-linux-gnu):
# the series is applied to a clean copy of the source, which is configured
# with make allnoconfig + config/cross/<target>.config for
#   arm64-64k  arm64 with 64K pages (HPAGE_PMD_NR = 8192, a PUD = 2^26 pages)
#   ppc64le    ppc64le book3s (HPAGE_PMD_NR is not a compile-time constant)
# plus the series' options (cross.conf), and the series' objects (cross.conf)
# are compiled with -Werror.  The copy and the build directories are cached in
# ${WORKBENCH_CACHE:-~/.cache/migration-workbench}/kernel/xcheck/<series dir>/.
#
# Exits non-zero if any patch has a checkpatch finding or a compile fails.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cross=1
sdir=
kline=
line_args=()
while [ $# -gt 0 ]; do
	case $1 in
	--no-cross) cross=0; shift ;;
	--series) sdir=$(cd "$2" && pwd); shift 2 ;;
	--line) kline=$2; line_args=(--line "$2"); shift 2 ;;
	*) break ;;
	esac
done
if [ -z "$sdir" ]; then
	die() { echo "check-patches.sh: $*" >&2; exit 2; }
	# shellcheck source=series-lib.sh
	. "$here/series-lib.sh"
	line_select "$kline"
	[ "$line_series" != - ] || die "kernel line $line_name has no series of ours: give --series"
	sdir=$here/$line_series
fi
[ -f "$sdir/series" ] || { echo "no series file in $sdir" >&2; exit 2; }
[ -f "$sdir/cross.conf" ] || { echo "no cross.conf in $sdir (options=..., objects=...)" >&2; exit 2; }
options= objects=
# shellcheck source=/dev/null
. "$sdir/cross.conf"
tree=${1:-$("$here/build.sh" "${line_args[@]}" --vanilla --print-dir)}
[ -x "$tree/scripts/checkpatch.pl" ] || { echo "no checkpatch.pl in $tree (run build.sh --vanilla first)" >&2; exit 2; }
# spdxcheck.py wants the system python with python3-ply and python3-git.
export PATH=/usr/bin:$PATH
status=0
patches=()
while IFS= read -r p; do
	p=${p%%#*}; p=$(echo "$p" | xargs)
	[ -n "$p" ] || continue
	patches+=("$sdir/$p")
	out=$(cd "$tree" && ./scripts/checkpatch.pl --strict "$sdir/$p" 2>&1) || status=1
	printf '%s: %s\n' "$p" "$(grep '^total:' <<<"$out")"
	grep -qE '^total: 0 errors, 0 warnings, 0 checks' <<<"$out" || { echo "$out"; status=1; }
done <"$sdir/series"
[ $cross = 1 ] || exit $status

# ---- cross compiles ---------------------------------------------------------
xdir=${WORKBENCH_CACHE:-$HOME/.cache/migration-workbench}/kernel/xcheck/$(basename "$sdir")
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
objs=$objects
for target in arm64-64k:arm64:aarch64-linux-gnu- ppc64le:powerpc:powerpc64le-linux-gnu-; do
	IFS=: read -r name arch cc <<<"$target"
	out=$xdir/build-$name
	mkdir -p "$out"
	frag=$out/.xcheck.config
	{ cat "$here/config/cross/$name.config"; tr ' ' '\n' <<<"$options"; } >"$frag"
	if ! command -v "${cc}gcc" >/dev/null; then
		echo "cross $name: no ${cc}gcc (apt-get install gcc-${cc%-}): FAILED"; status=1; continue
	fi
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
