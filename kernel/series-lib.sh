# Shared by build.sh and package.sh; sourced, not run.

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
