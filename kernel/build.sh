#!/usr/bin/env bash
# Build a bootable (vng --run) Linux tree with the migration workbench
# patches applied.
#
# usage: kernel/build.sh [--line LINE | --ksrc PATH] [--series PATH | --vanilla]
#                        [--name NAME] [--profile NAME] [--seed-from TREE] [--print-dir]
#
#   --line LINE     the base: a kernel line of kernel/lines (7.3, the default,
#                   or 6.12, the frozen LTS line), its source package taken
#                   from Debian's archive (kernel/debian-source.sh; 6.12 from
#                   the host's own linux-source-6.12)
#   --ksrc PATH     the base: a kernel source tree (or a .tar.* of one) instead
#                   of a line's source (it is copied into the cache; the
#                   original is never modified)
#   --series PATH   the patches to apply with git am instead of the line's
#                   series of ours (kernel/lines: v3/series on 7.3,
#                   patches/series on 6.12): an mbox as "b4 am" writes it, one patch,
#                   a directory of "git format-patch" files, or a directory
#                   with a quilt-style "series" file
#   --vanilla       apply no patches: the base as it is
#   --name NAME     what the result is called (--kernel NAME boots it);
#                   default: patched, vanilla (with -LINE on a line that is
#                   not the default: patched-6.12), or the series' file name
#   --profile NAME  test (default): config/*.config + config/test/*.config,
#                   with the debug checks the VM tests rely on;
#                   bench: config/*.config + config/bench/*.config, without
#                   the checks that change the cost of the measured paths
#   --seed-from TREE  a tree that does not exist yet starts as a copy of TREE, a
#                   built tree of the same source (e.g. the tree of the series
#                   up to the previous patch), instead of the one picked below:
#                   make then rebuilds only what differs between the two
#   --print-dir     only print the directory that would be built, build nothing
#
# The copy-offload options the patched tree's Kconfig offers are turned on by
# kernel/offload-options.py (read from the tree, not from a list of names).
#
# The built tree lives in ${WORKBENCH_CACHE:-$HOME/.cache/migration-workbench}/kernel/.
# Progress goes to stderr; the last line on stdout is the built tree's path.
set -euo pipefail
# The whole script is one block, so that bash has read all of it before it
# runs any of it: editing the file during a build cannot derail that build.
{

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
patchdir=
confdir=$here/config
tarball=
cache=${WORKBENCH_CACHE:-$HOME/.cache/migration-workbench}/kernel
jobs=${WORKBENCH_JOBS:-$(nproc)}

ksrc=
kline=
series=
name=
vanilla=0
profile=test
seed_from=
print_only=0

log() { printf 'build.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=series-lib.sh
. "$here/series-lib.sh"
usage() { sed -n '4,35p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }

while [ $# -gt 0 ]; do
	case $1 in
	--ksrc) [ $# -ge 2 ] || usage; ksrc=$2; shift 2 ;;
	--ksrc=*) ksrc=${1#--ksrc=}; shift ;;
	--line) [ $# -ge 2 ] || usage; kline=$2; shift 2 ;;
	--line=*) kline=${1#--line=}; shift ;;
	--vanilla) vanilla=1; shift ;;
	--series) [ $# -ge 2 ] || usage; series=$2; shift 2 ;;
	--series=*) series=${1#--series=}; shift ;;
	--name) [ $# -ge 2 ] || usage; name=$2; shift 2 ;;
	--name=*) name=${1#--name=}; shift ;;
	--profile) [ $# -ge 2 ] || usage; profile=$2; shift 2 ;;
	--profile=*) profile=${1#--profile=}; shift ;;
	--seed-from) [ $# -ge 2 ] || usage; seed_from=$2; shift 2 ;;
	--seed-from=*) seed_from=${1#--seed-from=}; shift ;;
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
[ -z "$series" ] || [ $vanilla = 0 ] || die "--series and --vanilla exclude each other (vanilla applies no patches)"
[ -z "$kline" ] || [ -z "$ksrc" ] || die "--line and --ksrc exclude each other (both name the base)"
# ---- the line: its base source and the series of ours on it ---------------------------
line_select "$kline"
[ "$line_series" != - ] || [ $vanilla = 1 ] || [ -n "$series" ] ||
	die "kernel line $line_name has no series of ours yet: build it with --vanilla, or give --series"
# the line's Debian source is the base unless --ksrc names another
# (WORKBENCH_KERNEL_TARBALL: a .tar of the line's source from elsewhere)
if [ -z "$ksrc" ]; then
	if [ -n "${WORKBENCH_KERNEL_TARBALL:-}" ]; then tarball=$WORKBENCH_KERNEL_TARBALL; else line_fetch_source; fi
fi
line_tarball=$tarball
[ "$line_series" = - ] || patchdir=$here/$line_series
case $name in
*[!A-Za-z0-9._-]*|.*) die "kernel name '$name' may only have letters, digits, '.', '_' and '-' (and no leading '.')" ;;
esac

sha() { sha256sum | cut -c1-64; }

# ---- identify the source ------------------------------------------------
if [ -n "$ksrc" ] && [ -f "$ksrc" ]; then
	case $ksrc in
	*.tar|*.tar.*) tarball=$(cd "$(dirname "$ksrc")" && pwd)/$(basename "$ksrc"); ksrc= ;;
	*) die "base $ksrc is a file but not a .tar archive of a kernel tree" ;;
	esac
fi
if [ -n "$ksrc" ]; then
	[ -d "$ksrc" ] || die "base $ksrc does not exist"
	[ -f "$ksrc/Makefile" ] && [ -d "$ksrc/mm" ] || die "base $ksrc is not a kernel tree (no Makefile and mm/)"
	[ -f "$ksrc/arch/x86/Kconfig" ] || die "base $ksrc has no arch/x86/Kconfig: the VM boots x86-64 kernels only"
	ksrc=$(cd "$ksrc" && pwd)
	if git -C "$ksrc" rev-parse --verify -q HEAD >/dev/null 2>&1; then
		rev=$(git -C "$ksrc" rev-parse HEAD)
		dirty=$(git -C "$ksrc" diff HEAD | sha)
		src_id="ksrc:$ksrc:git:$rev:$dirty"
		source_desc="git $rev$([ "$dirty" = "$(printf '' | sha)" ] || echo ' with changes')"
	else
		src_id="ksrc:$ksrc:mtime:$(find "$ksrc" -type f -newer "$ksrc/Makefile" -printf '%T@ %p\n' 2>/dev/null | sort | sha):$(stat -c %Y "$ksrc/Makefile")"
	fi
else
	[ -f "$tarball" ] || die "no source tarball $tarball (apt-get install $line_pkg)"
	pkgver=$(tarball_version "$tarball")
	source_desc="$(basename "$tarball") $pkgver"
	# Size+mtime identify the tarball cheaply; the package version names it.
	src_id="tarball:$tarball:$pkgver:$(stat -c '%s:%Y' "$tarball")"
fi
src_key=$(printf '%s' "$src_id" | sha | cut -c1-12)
# ---- the series -----------------------------------------------------------------
patches=()
if [ $vanilla = 1 ]; then
	series_name=none
	flavour=${name:-vanilla$line_suffix}
elif [ -n "$series" ]; then
	series_patches "$series"
	series_name=$(basename "${series%/}"); series_name=${series_name%.mbx}; series_name=${series_name%.mbox}
	series_name=${series_name%.patch}; [ "$series_name" != series ] || series_name=$(basename "$(dirname "$series")")
	series_name=$(printf '%s' "$series_name" | tr -c 'A-Za-z0-9._-' '-')
	flavour=${name:-$series_name}
else
	[ -f "$patchdir/series" ] || die "missing $patchdir/series"
	series_patches "$patchdir"
	series_name=workbench
	flavour=${name:-patched$line_suffix}
fi
# The test profile keeps the tree names it always had.
suffix=$([ "$profile" = test ] && echo "" || echo "-$profile")
tree=$cache/trees/$src_key-$flavour$suffix

# ---- inputs: config fragments ------------------------------------------------------
fragments=()
for f in "$confdir"/*.config "$confdir/$profile"/*.config; do
	[ -e "$f" ] && fragments+=("$f")
done

key=$( {
	echo "src $src_id"
	echo "vanilla $vanilla"
	echo "profile $profile"
	for p in "${patches[@]+"${patches[@]}"}"; do echo "patch $(basename "$p") $(sha <"$p")"; done
	for f in "${fragments[@]+"${fragments[@]}"}"; do echo "config ${f#"$confdir/"} $(sha <"$f")"; done
	echo "script $(sha <"${BASH_SOURCE[0]}") $(sha <"$here/series-lib.sh") $(sha <"$here/offload-options.py")"
} | sha)

if [ $print_only = 1 ]; then
	echo "$tree"
	exit 0
fi
if [ -n "$seed_from" ]; then
	[ -d "$seed_from" ] && [ -f "$seed_from/.workbench-base" ] && [ -f "$seed_from/arch/x86/boot/bzImage" ] ||
		die "seed $seed_from is not a built tree (no .workbench-base and arch/x86/boot/bzImage)"
	seed_from=$(cd "$seed_from" && pwd)
	[ "$(cat "$seed_from/.git/workbench-src" 2>/dev/null)" = "$src_id" ] ||
		die "seed $seed_from is a tree of another source: a tree is seeded only from one of its own source"
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
	other=
	# Same source: the seed asked for, else another tree of this profile (the
	# vanilla one, then ours; only what the patches and config change is
	# rebuilt), then any other tree of the same source (saves the unpacking).
	[ -z "$seed_from" ] || [ "$seed_from" = "$tree" ] || other=$seed_from
	for o in "$src_key-vanilla$suffix" "$src_key-patched$suffix" "$cache/trees/$src_key-"*; do
		[ -z "$other" ] || break
		o=$cache/trees/${o#"$cache/trees/"}
		if [ "$o" != "$tree" ] && [ -f "$o/.workbench-base" ] && [ -f "$o/arch/x86/boot/bzImage" ]; then
			other=$o; break
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
python3 "$here/offload-options.py" "$tree" "${patches[@]+"${patches[@]}"}" >"$cfg_tmp/offload.config" ||
	die "cannot read the copy-offload options of $tree"
cat "${fragments[@]}" "$cfg_tmp/offload.config" >"$cfg_tmp/all.config"
make -s KCONFIG_ALLCONFIG="$cfg_tmp/all.config" allnoconfig >"$cfg_tmp/conf.log" 2>&1 ||
	{ cat "$cfg_tmp/conf.log" >&2; die "make allnoconfig failed"; }
# Check that every fragment option survived olddefconfig (dependencies).
missing=0
for f in "${fragments[@]+"${fragments[@]}"}"; do
	while IFS= read -r line; do
		case $line in
		CONFIG_*=n) sym=${line%%=*}
			if grep -q "^$sym=" .config; then log "warning: $sym should be unset"; missing=1; fi ;;
		CONFIG_*=*) grep -qxF "$line" .config && continue
			sym=${line%%=*}
			if grep -rqsE --include='Kconfig*' "^(menu)?config ${sym#CONFIG_}\$" .; then
				log "warning: $line did not stick"; missing=1
			else
				log "$sym is not an option of this tree (left out)"
			fi ;;
		"# CONFIG_"*" is not set") sym=${line#\# }; sym=${sym%% *}
			if grep -q "^$sym=" .config; then log "warning: $sym should be unset"; missing=1; fi ;;
		esac
	done <"$f"
done
[ $missing = 0 ] || log "some config fragment options did not apply (see above)"
# The tree's own copy-offload options: say which are on and which stayed off.
while IFS= read -r line; do
	case $line in
	CONFIG_*=*) if grep -qxF "$line" .config; then log "offload option on: $line"
		else log "offload option left off (its dependencies are not met here): ${line%%=*}"; fi ;;
	esac
done <"$cfg_tmp/offload.config"
grep -q '^CONFIG_' "$cfg_tmp/offload.config" || log "this tree offers no copy-offload option"
cp "$cfg_tmp/offload.config" .workbench-offload.config
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
# What the tree is, for every record of a run on it, and its name for --kernel.
{
	echo "name=$flavour$suffix"
	echo "series=$series_name"
	echo "patches=${#patches[@]}"
	echo "base=$src_id"
	echo "source=${source_desc:-$ksrc}"
	# the line: given, or the first line's default source; a base of one's own has none
	echo "line=$({ [ -n "$kline" ] || { [ -n "$line_tarball" ] && [ "$tarball" = "$line_tarball" ]; }; } && echo "$line_name")"
	echo "inputs=$(printf '%s' "$key" | cut -c1-16)"
	echo "version=$(make -s kernelversion 2>/dev/null)"
} >.workbench-tree
mkdir -p "$cache/names"
printf '%s\n' "$tree" >"$cache/names/$flavour$suffix"
echo "$key" >.workbench-key
echo "$tree"
exit 0
}
