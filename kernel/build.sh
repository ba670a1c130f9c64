#!/usr/bin/env bash
# Build a bootable (vng --run) Linux tree with the migration workbench
# patches applied.
#
# usage: kernel/build.sh [--ksrc PATH] [--vanilla] [--profile NAME] [--print-dir]
#
#   --ksrc PATH     use this kernel source tree instead of Debian's
#                   /usr/src/linux-source-6.12.tar.xz (it is copied into the
#                   cache; the original is never modified)
#   --vanilla       do not apply patches/series (and skip the config fragments
#                   named *offload*.config, whose options only exist with it)
#   --profile NAME  test (default): config/*.config + config/test/*.config,
#                   with the debug checks the VM tests rely on;
#                   bench: config/*.config + config/bench/*.config, without
#                   the checks that change the cost of the measured paths
#   --print-dir     only print the directory that would be built, build nothing
#
# The built tree lives in ${WORKBENCH_CACHE:-$HOME/.cache/migration-workbench}/kernel/.
# Progress goes to stderr; the last line on stdout is the built tree's path.
set -euo pipefail
# The whole script is one block, so that bash has read all of it before it
# runs any of it: editing the file during a build cannot derail that build.
{

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
patchdir=$here/patches
confdir=$here/config
tarball=${WORKBENCH_KERNEL_TARBALL:-/usr/src/linux-source-6.12.tar.xz}
cache=${WORKBENCH_CACHE:-$HOME/.cache/migration-workbench}/kernel
jobs=${WORKBENCH_JOBS:-$(nproc)}

ksrc=
vanilla=0
profile=test
print_only=0

log() { printf 'build.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=series-lib.sh
. "$here/series-lib.sh"
usage() { sed -n '4,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }

while [ $# -gt 0 ]; do
	case $1 in
	--ksrc) [ $# -ge 2 ] || usage; ksrc=$2; shift 2 ;;
	--ksrc=*) ksrc=${1#--ksrc=}; shift ;;
	--vanilla) vanilla=1; shift ;;
	--profile) [ $# -ge 2 ] || usage; profile=$2; shift 2 ;;
	--profile=*) profile=${1#--profile=}; shift ;;
	--print-dir) print_only=1; shift ;;
	-h|--help) usage 0 ;;
	*) log "unknown argument: $1"; usage ;;
	esac
done

case $profile in
test|bench) ;;
*) log "unknown profile: $profile (test, bench)"; usage ;;
esac
[ -d "$confdir/$profile" ] || die "missing $confdir/$profile"

sha() { sha256sum | cut -c1-64; }

# ---- identify the source ------------------------------------------------
if [ -n "$ksrc" ]; then
	[ -f "$ksrc/Makefile" ] && [ -d "$ksrc/mm" ] || die "--ksrc $ksrc is not a kernel tree"
	ksrc=$(cd "$ksrc" && pwd)
	if git -C "$ksrc" rev-parse --verify -q HEAD >/dev/null 2>&1; then
		rev=$(git -C "$ksrc" rev-parse HEAD)
		dirty=$(git -C "$ksrc" diff HEAD | sha)
		src_id="ksrc:$ksrc:git:$rev:$dirty"
	else
		src_id="ksrc:$ksrc:mtime:$(find "$ksrc" -type f -newer "$ksrc/Makefile" -printf '%T@ %p\n' 2>/dev/null | sort | sha):$(stat -c %Y "$ksrc/Makefile")"
	fi
else
	[ -f "$tarball" ] || die "no source tarball $tarball (apt-get install linux-source-6.12)"
	pkgver=$(dpkg-query -W -f '${Version}' linux-source-6.12 2>/dev/null || echo unknown)
	# Size+mtime identify the tarball cheaply; the package version names it.
	src_id="tarball:$tarball:$pkgver:$(stat -c '%s:%Y' "$tarball")"
fi
src_key=$(printf '%s' "$src_id" | sha | cut -c1-12)
flavour=$([ $vanilla = 1 ] && echo vanilla || echo patched)
# The test profile keeps the tree names it always had.
suffix=$([ "$profile" = test ] && echo "" || echo "-$profile")
tree=$cache/trees/$src_key-$flavour$suffix

# ---- inputs: patches and config fragments --------------------------------
patches=()
if [ $vanilla = 0 ]; then
	[ -f "$patchdir/series" ] || die "missing $patchdir/series"
	while IFS= read -r line || [ -n "$line" ]; do
		line=${line%%#*}
		line=$(echo "$line" | xargs)
		[ -n "$line" ] || continue
		[ -f "$patchdir/$line" ] || die "series names missing patch $line"
		patches+=("$patchdir/$line")
	done <"$patchdir/series"
fi
fragments=()
for f in "$confdir"/*.config "$confdir/$profile"/*.config; do
	[ -e "$f" ] || continue
	if [ $vanilla = 1 ] && [[ $(basename "$f") == *offload* ]]; then continue; fi
	fragments+=("$f")
done

key=$( {
	echo "src $src_id"
	echo "vanilla $vanilla"
	echo "profile $profile"
	for p in "${patches[@]+"${patches[@]}"}"; do echo "patch $(basename "$p") $(sha <"$p")"; done
	for f in "${fragments[@]+"${fragments[@]}"}"; do echo "config ${f#"$confdir/"} $(sha <"$f")"; done
	echo "script $(sha <"${BASH_SOURCE[0]}") $(sha <"$here/series-lib.sh")"
} | sha)

if [ $print_only = 1 ]; then
	echo "$tree"
	exit 0
fi

mkdir -p "$cache/trees"
exec 9>"$cache/.lock"
log "waiting for the build lock $cache/.lock"
flock 9

if [ -f "$tree/.workbench-key" ] && [ "$(cat "$tree/.workbench-key")" = "$key" ] &&
	[ -f "$tree/arch/x86/boot/bzImage" ]; then
	log "up to date: $tree"
	echo "$tree"
	exit 0
fi

gitq() { git -C "$tree" -c user.name=workbench -c user.email=workbench@localhost "$@"; }

# ---- source tree ----------------------------------------------------------
if [ ! -f "$tree/.workbench-base" ]; then
	rm -rf "$tree" "$tree.tmp"
	oflavour=$([ $vanilla = 1 ] && echo patched || echo vanilla)
	other=
	# Same source: the other flavour of this profile first (only what the
	# patches touch is rebuilt), then any other tree (saves the unpacking).
	for o in "$src_key-$oflavour$suffix" "$src_key-$flavour" "$src_key-$oflavour" \
		"$src_key-$flavour-bench" "$src_key-$oflavour-bench"; do
		if [ "$cache/trees/$o" != "$tree" ] && [ -f "$cache/trees/$o/.workbench-base" ]; then
			other=$cache/trees/$o; break
		fi
	done
	if [ -n "$other" ]; then
		seed_tree "$other"
	else
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
		(cd "$tree.tmp" && rm -rf .git && git init -q &&
			git add -f -A . &&
			git -c user.name=workbench -c user.email=workbench@localhost \
				commit -q -m "pristine source: $src_id" &&
			git tag wb-base) >&2
		echo "$src_id" >"$tree.tmp/.git/workbench-src"
		touch "$tree.tmp/.workbench-base"
	fi
	mv "$tree.tmp" "$tree"
fi
# Keep our own marker files out of "git status".
grep -qx '/.workbench-\*' "$tree/.git/info/exclude" 2>/dev/null ||
	echo '/.workbench-*' >>"$tree/.git/info/exclude"

# ---- patches ----------------------------------------------------------------
# Remember the content and mtime of every file the previous patch set touched,
# go back to the pristine source, apply the current series, then give files
# whose content did not change their old mtime back: make then rebuilds only
# what a changed patch really touches.
apply_series

# ---- configuration -------------------------------------------------------------
cd "$tree"
log "configuring ($profile profile: allnoconfig + ${#fragments[@]} fragment(s))"
cfg_tmp=$(mktemp -d)
trap 'rm -rf "$cfg_tmp"' EXIT
[ -f .config ] && cp -p .config "$cfg_tmp/old.config"
# allnoconfig with the fragments as KCONFIG_ALLCONFIG: what the fragments
# set is set, everything else is off unless something selects it.  Nothing
# from the host (virtme-ng's defaults, ~/.config) goes into the kernel.
cat "${fragments[@]}" >"$cfg_tmp/all.config"
make -s KCONFIG_ALLCONFIG="$cfg_tmp/all.config" allnoconfig >"$cfg_tmp/conf.log" 2>&1 ||
	{ cat "$cfg_tmp/conf.log" >&2; die "make allnoconfig failed"; }
# Check that every fragment option survived olddefconfig (dependencies).
missing=0
for f in "${fragments[@]+"${fragments[@]}"}"; do
	while IFS= read -r line; do
		case $line in
		CONFIG_*=n) sym=${line%%=*}
			if grep -q "^$sym=" .config; then log "warning: $sym should be unset"; missing=1; fi ;;
		CONFIG_*=*) grep -qxF "$line" .config || { log "warning: $line did not stick"; missing=1; } ;;
		"# CONFIG_"*" is not set") sym=${line#\# }; sym=${sym%% *}
			if grep -q "^$sym=" .config; then log "warning: $sym should be unset"; missing=1; fi ;;
		esac
	done <"$f"
done
[ $missing = 0 ] || log "some config fragment options did not apply (see above)"
# An identical .config keeps its old mtime, so make has nothing to redo.
if [ -f "$cfg_tmp/old.config" ] && cmp -s .config "$cfg_tmp/old.config"; then
	cp -p "$cfg_tmp/old.config" .config
fi

# ---- build ------------------------------------------------------------------------
start=$(date +%s)
build_seeded_objtool "$tree/.workbench-build.log"
log "building bzImage and modules with -j$jobs, nice 10 (log: $tree/.workbench-build.log)"
if ! nice -n 10 make -j"$jobs" bzImage modules >>"$tree/.workbench-build.log" 2>&1; then
	grep -E 'error|Error' "$tree/.workbench-build.log" | head -40 >&2 || true
	tail -20 "$tree/.workbench-build.log" >&2
	die "kernel build failed"
fi
log "build took $(($(date +%s) - start))s"
[ -f arch/x86/boot/bzImage ] || die "no bzImage after the build"
echo "$key" >.workbench-key
echo "$tree"
exit 0
}
