#!/usr/bin/env bash
# Run scripts/checkpatch.pl --strict on every patch of patches/series.
# usage: kernel/check-patches.sh [KERNEL_TREE]
# KERNEL_TREE defaults to the vanilla tree of build.sh (built or not, it
# only needs the scripts); exits non-zero if any patch has a finding.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tree=${1:-$("$here/build.sh" --vanilla --print-dir)}
[ -x "$tree/scripts/checkpatch.pl" ] || { echo "no checkpatch.pl in $tree (run build.sh --vanilla first)" >&2; exit 2; }
# spdxcheck.py wants the system python with python3-ply and python3-git.
export PATH=/usr/bin:$PATH
status=0
while IFS= read -r p; do
	[ -n "$p" ] || continue
	out=$(cd "$tree" && ./scripts/checkpatch.pl --strict "$here/patches/$p" 2>&1) || status=1
	printf '%s: %s\n' "$p" "$(grep '^total:' <<<"$out")"
	grep -qE '^total: 0 errors, 0 warnings, 0 checks' <<<"$out" || { echo "$out"; status=1; }
done <"$here/patches/series"
exit $status
