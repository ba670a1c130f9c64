#!/usr/bin/env bash
# Build the patch series (or the vanilla source) as Debian packages for a
# real machine ("make bindeb-pkg"), with that machine's own config as the base.
#
# usage: kernel/package.sh --config FILE [--lsmod FILE] [--vanilla]
#                          [--test-dma-engine] [--line LINE | --ksrc PATH]
#                          [--print-dir]
#
#   --config FILE      the box's kernel config (its /boot/config-$(uname -r));
#                      olddefconfig, then the copy-offload options the patched
#                      tree offers (kernel/offload-options.py)
#   --lsmod FILE       the box's "lsmod" output: localmodconfig builds only the
#                      modules it had loaded (plus ours), minutes instead of hours
#   --vanilla          do not apply the line's series (nor turn on offload options)
#   --test-dma-engine  also build the test-only DMA engine (for a VM; never for
#                      a real machine: it offloads nothing)
#   --line LINE        the kernel line of kernel/lines whose Debian source to
#                      build (7.3, the default, or 6.12; fetched as build.sh does)
#   --ksrc PATH        kernel source tree instead of a line's Debian source
#                      (copied, never modified)
#   --print-dir        only print the output directory, build nothing
#
# Output: ${WORKBENCH_CACHE:-$HOME/.cache/migration-workbench}/kernel/pkg/out/KEY/
# with the linux-image .deb and package.json. Cached by source, patches,
# base config, module list and these scripts. Progress goes to stderr;
# the last line on stdout is the linux-image .deb's path.
set -euo pipefail
{

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
patchdir=
confdir=$here/config
tarball=
cache=${WORKBENCH_CACHE:-$HOME/.cache/migration-workbench}/kernel/pkg
jobs=${WORKBENCH_JOBS:-$(nproc)}

ksrc= kline= config= lsmod= vanilla=0 test_dma=0 print_only=0

log() { printf 'package.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=series-lib.sh
. "$here/series-lib.sh"
usage() { sed -n '4,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }

while [ $# -gt 0 ]; do
	case $1 in
	--config) [ $# -ge 2 ] || usage; config=$2; shift 2 ;;
	--lsmod) [ $# -ge 2 ] || usage; lsmod=$2; shift 2 ;;
	--ksrc) [ $# -ge 2 ] || usage; ksrc=$2; shift 2 ;;
	--line) [ $# -ge 2 ] || usage; kline=$2; shift 2 ;;
	--vanilla) vanilla=1; shift ;;
	--test-dma-engine) test_dma=1; shift ;;
	--print-dir) print_only=1; shift ;;
	-h|--help) usage 0 ;;
	*) log "unknown argument: $1"; usage ;;
	esac
done
[ -n "$config" ] || die "--config FILE is needed (a box's /boot/config-\$(uname -r))"
[ -f "$config" ] || die "no config file $config"
grep -q '^CONFIG_' "$config" || die "$config is not a kernel config"
[ -z "$lsmod" ] || [ -f "$lsmod" ] || die "no lsmod file $lsmod"
config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
[ -z "$lsmod" ] || lsmod=$(cd "$(dirname "$lsmod")" && pwd)/$(basename "$lsmod")

[ -z "$kline" ] || [ -z "$ksrc" ] || die "--line and --ksrc exclude each other (both name the base)"
line_select "$kline"
[ "$line_series" != - ] || [ $vanilla = 1 ] ||
	die "kernel line $line_name has no series of ours yet: package it with --vanilla"
# the line's Debian source unless --ksrc names a tree (WORKBENCH_KERNEL_TARBALL: a
# .tar of the line's source from elsewhere)
if [ -z "$ksrc" ]; then
	if [ -n "${WORKBENCH_KERNEL_TARBALL:-}" ]; then tarball=$WORKBENCH_KERNEL_TARBALL; else line_fetch_source; fi
fi
[ "$line_series" = - ] || patchdir=$here/$line_series

sha() { sha256sum | cut -c1-64; }

# ---- identify the source (as build.sh does) --------------------------------------
if [ -n "$ksrc" ]; then
	[ -f "$ksrc/Makefile" ] && [ -d "$ksrc/mm" ] || die "--ksrc $ksrc is not a kernel tree"
	ksrc=$(cd "$ksrc" && pwd)
	if git -C "$ksrc" rev-parse --verify -q HEAD >/dev/null 2>&1; then
		src_id="ksrc:$ksrc:git:$(git -C "$ksrc" rev-parse HEAD):$(git -C "$ksrc" diff HEAD | sha)"
	else
		src_id="ksrc:$ksrc:mtime:$(find "$ksrc" -type f -newer "$ksrc/Makefile" -printf '%T@ %p\n' 2>/dev/null | sort | sha):$(stat -c %Y "$ksrc/Makefile")"
	fi
else
	[ -f "$tarball" ] || die "no source tarball $tarball (apt-get install $line_pkg)"
	pkgver=$(tarball_version "$tarball")
	src_id="tarball:$tarball:$pkgver:$(stat -c '%s:%Y' "$tarball")"
fi
src_key=$(printf '%s' "$src_id" | sha | cut -c1-12)
flavour=$([ $vanilla = 1 ] && echo vanilla || echo patched)$line_suffix

# ---- inputs ------------------------------------------------------------------------
patches=()
if [ $vanilla = 0 ]; then
	[ -f "$patchdir/series" ] || die "missing $patchdir/series"
	series_patches "$patchdir"
fi
# Only the series' own options, read from the patched tree's Kconfig once it is
# patched: the fragments in config/ (vng's minimal VM base, debug visibility) are for
# build.sh's VM kernels, not for a box's own config.
offload_args=()
[ $test_dma = 1 ] || offload_args+=(--no-test-only)
modules=
[ -z "$lsmod" ] || modules=$(awk 'NR > 1 && $1 ~ /^[a-zA-Z0-9_]+$/ { print $1 }' "$lsmod" | sort -u)

key=$( {
	echo "src $src_id"
	echo "vanilla $vanilla test_dma $test_dma"
	for p in "${patches[@]+"${patches[@]}"}"; do echo "patch $(basename "$p") $(sha <"$p")"; done
	echo "offload options $(sha <"$here/offload-options.py")"
	echo "base $(sha <"$config")"
	echo "modules $(printf '%s\n' "$modules" | sha)"
	echo "script $(sha <"${BASH_SOURCE[0]}") $(sha <"$here/series-lib.sh")"
} | sha | cut -c1-16)

out=$cache/out/$key
if [ $print_only = 1 ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$cache/out"
exec 9>"$cache/.lock"
log "waiting for the package lock $cache/.lock"
flock 9

if [ -f "$out/package.json" ]; then
	deb=$(sed -n 's/.*"image_deb": *"\([^"]*\)".*/\1/p' "$out/package.json")
	if [ -n "$deb" ] && [ -f "$out/$deb" ]; then
		log "up to date: $out"
		echo "$out/$deb"
		exit 0
	fi
fi

# ---- source tree: one per source and flavour, its debs land in its parent ---------
work=$cache/build/$src_key-$flavour
tree=$work/src
gitq() { git -C "$tree" -c user.name=workbench -c user.email=workbench@localhost "$@"; }
other=$cache/build/$src_key-$([ $vanilla = 1 ] && echo patched || echo vanilla)/src
if [ ! -f "$tree/.workbench-base" ] && [ -f "$other/.workbench-base" ]; then
	# the other flavour's tree of the same source: only what the series and the
	# config change is rebuilt (minutes, not the hours of a whole distribution config)
	rm -rf "$work" && mkdir -p "$work"
	seed_tree "$other"
	mv "$tree.tmp" "$tree"
elif [ ! -f "$tree/.workbench-base" ]; then
	rm -rf "$work"
	mkdir -p "$tree.tmp"
	if [ -n "$ksrc" ]; then
		log "copying $ksrc"
		tar -C "$ksrc" --exclude=.git -cf - . | tar -C "$tree.tmp" -xf -
		make -s -C "$tree.tmp" mrproper >&2
	else
		log "unpacking $tarball"
		tar -C "$tree.tmp" --strip-components=1 -xf "$tarball"
	fi
	log "recording the pristine source in git"
	(cd "$tree.tmp" && git init -q && git add -f -A . &&
		git -c user.name=workbench -c user.email=workbench@localhost commit -q -m "pristine source: $src_id" &&
		git tag wb-base) >&2
	touch "$tree.tmp/.workbench-base"
	mv "$tree.tmp" "$tree"
fi
grep -qx '/.workbench-\*' "$tree/.git/info/exclude" 2>/dev/null || echo '/.workbench-*' >>"$tree/.git/info/exclude"
grep -qx '/debian/' "$tree/.git/info/exclude" 2>/dev/null || echo '/debian/' >>"$tree/.git/info/exclude"

# Patches: back to the pristine source, the current series on top; files whose
# content did not change keep their mtime, so make redoes only what changed.
apply_series

# ---- configuration: the box's, then ours --------------------------------------------
cd "$tree"
cfg_tmp=$(mktemp -d)
trap 'rm -rf "$cfg_tmp"' EXIT
[ -f .config ] && cp -p .config "$cfg_tmp/old.config"
kver=$(make -s kernelversion)
release_suffix=-wb-$flavour
cp "$config" .config
log "configuring: base $(basename "$config"), olddefconfig"
make -s olddefconfig >&2
if [ -n "$lsmod" ]; then
	log "localmodconfig from $(printf '%s\n' "$modules" | grep -c .) loaded modules"
	(yes '' || true) | make -s LSMOD="$lsmod" localmodconfig >"$cfg_tmp/lmc.log" 2>&1 ||
		{ cat "$cfg_tmp/lmc.log" >&2; die "localmodconfig failed"; }
fi
# A package for a box: no debug info (hours and gigabytes), no distribution
# signing keys we do not have, our release name.
scripts/config --file .config \
	--disable DEBUG_INFO --disable DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT --disable DEBUG_INFO_DWARF4 \
	--disable DEBUG_INFO_DWARF5 --disable DEBUG_INFO_BTF --enable DEBUG_INFO_NONE \
	--set-str SYSTEM_TRUSTED_KEYS "" --set-str SYSTEM_REVOCATION_KEYS "" --disable MODULE_SIG \
	--set-str LOCALVERSION "$release_suffix" --disable LOCALVERSION_AUTO
: >"$cfg_tmp/offload.config"
if [ $vanilla = 0 ]; then
	python3 "$here/offload-options.py" "${offload_args[@]+"${offload_args[@]}"}" "$tree" "${patches[@]}" \
		>"$cfg_tmp/offload.config" || die "cannot read the copy-offload options of $tree"
	scripts/kconfig/merge_config.sh -m .config "$cfg_tmp/offload.config" >"$cfg_tmp/merge.log" 2>&1 ||
		{ cat "$cfg_tmp/merge.log" >&2; die "merge_config.sh failed"; }
fi
make -s olddefconfig >&2
offload_on=
while IFS= read -r line; do
	case $line in
	CONFIG_*=*) if grep -qxF "$line" .config; then offload_on="$offload_on ${line%%=*}"
		else log "offload option left off (its dependencies are not met by this config): ${line%%=*}"; fi ;;
	esac
done <"$cfg_tmp/offload.config"
[ $vanilla = 1 ] || [ -n "$offload_on" ] || die "none of the series' copy-offload options could be turned on"
if [ -f "$cfg_tmp/old.config" ] && cmp -s .config "$cfg_tmp/old.config"; then
	cp -p "$cfg_tmp/old.config" .config
fi

# ---- build --------------------------------------------------------------------------
release=$kver$release_suffix
pkgversion=$kver-wb.${key:0:12}
log "building linux-image-$release ($pkgversion) with -j$jobs (log: $work/build.log)"
rm -f "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes
start=$(date +%s)
build_seeded_objtool "$work/prepare.log"
if ! DEB_BUILD_PROFILES="pkg.linux-upstream.nokernelheaders pkg.linux-upstream.nokerneldbg" \
	nice -n 10 make -j"$jobs" bindeb-pkg LOCALVERSION= KDEB_PKGVERSION="$pkgversion" \
	DPKG_FLAGS=-d >"$work/build.log" 2>&1; then
	grep -E 'error|Error' "$work/build.log" | head -40 >&2 || true
	tail -20 "$work/build.log" >&2
	die "kernel package build failed"
fi
seconds=$(($(date +%s) - start))
log "build took ${seconds}s"
image_deb=$(cd "$work" && ls linux-image-"$release"_"$pkgversion"_*.deb 2>/dev/null | head -1)
[ -n "$image_deb" ] || die "no linux-image-$release .deb after the build (see $work/build.log)"

rm -rf "$out.tmp" && mkdir -p "$out.tmp"
mv "$work"/*.deb "$out.tmp/"
cp .config "$out.tmp/config-$release"
cat >"$out.tmp/package.json" <<EOF
{
 "key": "$key",
 "flavour": "$flavour",
 "release": "$release",
 "version": "$pkgversion",
 "image_deb": "$image_deb",
 "source": "$src_id",
 "patches": ${#patches[@]},
 "offload_options": "${offload_on# }",
 "base_config": "$config",
 "localmodconfig": $([ -n "$lsmod" ] && echo true || echo false),
 "test_dma_engine": $([ $test_dma = 1 ] && echo true || echo false),
 "build_seconds": $seconds
}
EOF
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out/$image_deb"
exit 0
}
