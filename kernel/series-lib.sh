# Shared by build.sh and package.sh; sourced, not run.

# series_patches PATH: (needs the caller's die) the patch files of PATH, in order, into the array "patches"
series_patches() {
	local path=$1 line list=
	if [ -d "$path" ]; then
		[ -f "$path/series" ] && list=$path/series
	elif [ -f "$path" ] && [ "$(basename "$path")" = series ]; then
		list=$path; path=$(dirname "$path")
	elif [ -f "$path" ]; then
		head -c 4096 "$path" | grep -qE '^(From [0-9a-f]{40} |From: |diff --git )' ||
			die "series $path is neither an mbox nor a patch (no From or diff line at its start)"
		patches=("$(cd "$(dirname "$path")" && pwd)/$(basename "$path")")
		return
	else
		die "series $path does not exist"
	fi
	if [ -n "$list" ]; then
		while IFS= read -r line || [ -n "$line" ]; do
			line=${line%%#*}
			line=$(echo "$line" | xargs)
			[ -n "$line" ] || continue
			[ -f "$path/$line" ] || die "series $list names missing patch $line"
			patches+=("$(cd "$path" && pwd)/$line")
		done <"$list"
	else
		for line in "$path"/*.patch; do
			[ -f "$line" ] && patches+=("$(cd "$path" && pwd)/$(basename "$line")")
		done
	fi
	[ ${#patches[@]} -gt 0 ] || die "series $path has no patches (a series file, *.patch files or an mbox)"
}

# apply_series: put $tree back to the pristine source (git tag wb-base) and apply
# the patch files in the array "patches" with git am. Files whose content comes
# out the same as before keep their old mtime, so make rebuilds only what a
# changed patch really touches. Needs the caller's tree, patches, gitq, log, die.
apply_series() {
	local f p
	declare -A old_hash=() old_mtime=()
	while IFS= read -r f; do
		[ -n "$f" ] && [ -f "$tree/$f" ] || continue
		old_hash[$f]=$(git -C "$tree" hash-object "$tree/$f")
		old_mtime[$f]=$(stat -c %Y "$tree/$f")
	done < <(git -C "$tree" diff --name-only wb-base; git -C "$tree" ls-files --others --exclude-standard)
	# git am leaves new files tracked; plain "reset --hard" removes them again.
	gitq am --abort >/dev/null 2>&1 || true
	gitq reset -q --hard wb-base
	for p in "${patches[@]+"${patches[@]}"}"; do
		log "applying $(basename "$p")"
		gitq am -q --whitespace=nowarn "$p" >&2 || {
			gitq am --abort >/dev/null 2>&1 || true
			die "patch $(basename "$p") does not apply"
		}
	done
	for f in "${!old_hash[@]}"; do
		[ -f "$tree/$f" ] || continue
		if [ "$(git -C "$tree" hash-object "$tree/$f")" = "${old_hash[$f]}" ]; then
			touch -d "@${old_mtime[$f]}" "$tree/$f"
		fi
	done
}

# seed_tree OTHER: start $tree.tmp as a copy of OTHER, a tree of the same source
# with its objects (the other flavour), so make rebuilds only what the patches
# and the config change, not the whole kernel. build_seeded_objtool finishes it.
seed_tree() {
	log "seeding $tree from $1"
	cp -a "$1" "$tree.tmp"
	rm -f "$tree.tmp/.workbench-key"
	echo "$1" >"$tree.tmp/.workbench-seeded-from"
}

# build_seeded_objtool LOGFILE: in a seeded $tree (the current directory),
# objtool's own build records absolute paths, so the copy rebuilds it, and
# every object depends on the objtool binary: without this, a seeded tree would
# be rebuilt from scratch. The patches do not touch tools/, so the rebuilt
# objtool is the one the copied objects went through: give what was rebuilt
# under tools/ (the binary and its own objects, so that it is not relinked)
# the old binary's mtime. Nothing to do in a tree that was not seeded.
build_seeded_objtool() {
	local other old_objtool
	[ -f .workbench-seeded-from ] || return 0
	other=$(cat .workbench-seeded-from)
	log "seeded tree: building objtool first (log: $1)"
	nice -n 10 make -j"$jobs" prepare >"$1" 2>&1 ||
		{ tail -20 "$1" >&2; die "make prepare failed"; }
	old_objtool=$other/tools/objtool/objtool
	if git diff --quiet wb-base -- tools/ && [ -f "$old_objtool" ] && [ -f tools/objtool/objtool ]; then
		find tools -newer "$old_objtool" -exec touch -h -r "$old_objtool" {} +
	fi
	rm -f .workbench-seeded-from
}

# line_select LINE: (needs the caller's die and here) a kernel line of
# $here/lines, or the first line when LINE is empty; sets line_name,
# line_pkg, line_suite, line_series ("-": none of ours) and line_suffix
# (what names of trees on it carry: nothing on the first line, "-LINE" on
# the others)
line_select() {
	local first
	first=$(awk '!/^#/ && NF { print $1; exit }' "$here/lines")
	line_name=${1:-$first}
	line_pkg=$(awk -v l="$line_name" '!/^#/ && $1 == l { print $2 }' "$here/lines")
	[ -n "$line_pkg" ] || die "kernel line '$line_name' is not one of $(awk '!/^#/ && NF { printf "%s%s", s, $1; s=", " }' "$here/lines")"
	line_suite=$(awk -v l="$line_name" '!/^#/ && $1 == l { print $3 }' "$here/lines")
	line_series=$(awk -v l="$line_name" '!/^#/ && $1 == l { print $5 }' "$here/lines")
	line_suffix=
	[ "$line_name" = "$first" ] || line_suffix=-$line_name
}

# line_fetch_source: the selected line's source tarball into "tarball": the
# host's own (left as the caller set it) or fetched by debian-source.sh
line_fetch_source() {
	if [ "$line_suite" = host ]; then
		tarball=/usr/src/$line_pkg.tar.xz
		return 0
	fi
	tarball=$(bash "$here/debian-source.sh" --suite "$line_suite" --file "usr/src/$line_pkg.tar.*" "$line_pkg") ||
		die "cannot fetch $line_pkg from $line_suite"
}

# tarball_version TARBALL: the Debian version of the package the tarball came
# from: the installed package that owns it, or what debian-source.sh wrote
# beside a package it unpacked (never installed); "unknown" otherwise
tarball_version() {
	local v unpacked=${1%/usr/src/*}/.unpacked
	v=$(dpkg-query -S "$1" 2>/dev/null | cut -d: -f1 | xargs -r dpkg-query -W -f '${Version}' 2>/dev/null || true)
	[ -n "$v" ] || [ ! -f "$unpacked" ] || v=$(cut -d' ' -f2 "$unpacked")
	echo "${v:-unknown}"
}
