#!/usr/bin/env bash
# Make a git tree for a real `workbench bisect --metric cost`: the 7.3 line's
# Debian source (vanilla 7.3.4) as one commit, series v3's patches as commits on
# it, and after patch AFTER (default 5) one more commit that adds work to the
# migration path (extra-work-on-v3.patch, a measurement build, not for merging).
#
# usage: kernel/measure/bisect-branch.sh DIR [--after N]
#
# DIR must not exist. The source comes from the cache as `workbench kernel
# build --line 7.3` fetches it (kernel/debian-source.sh). Nothing is built.
# The last lines on stdout are the GOOD and BAD commits to give `workbench bisect`.
set -euo pipefail
{
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kernel=$(dirname "$here")
log() { printf 'bisect-branch.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
dir= after=5
while [ $# -gt 0 ]; do
	case $1 in
	--after) [ $# -ge 2 ] || die "--after needs a number"; after=$2; shift 2 ;;
	-h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
	-*) die "unknown argument: $1" ;;
	*) [ -z "$dir" ] || die "one DIR only"; dir=$1; shift ;;
	esac
done
[ -n "$dir" ] || die "usage: bisect-branch.sh DIR [--after N]"
[ ! -e "$dir" ] || die "$dir exists; give a new directory"
mapfile -t patches < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$kernel/v3/series")
case $after in ''|*[!0-9]*) die "--after $after is not a number" ;; esac
[ "$after" -ge 1 ] && [ "$after" -le ${#patches[@]} ] || die "--after $after: give a patch of the series, 1 to ${#patches[@]}"
tarball=$(bash "$kernel/debian-source.sh" --suite trixie-backports --file 'usr/src/linux-source-7.3.tar.*' \
	linux-source-7.3) || die "cannot fetch linux-source-7.3"
git_() { git -C "$dir" -c user.name="Migration Workbench" -c user.email=workbench@example.org "$@"; }
mkdir -p "$dir"
log "unpacking $tarball"
nice -n 10 tar -C "$dir" --strip-components=1 -xf "$tarball"
git_ init -q -b v3-extra-work
log "recording the source in git"
nice -n 10 git -C "$dir" add -f -A .
git_ commit -q -m "Linux 7.3.4 (Debian's linux-source-7.3, $(basename "$(dirname "$(dirname "$(dirname "$tarball")")")"))"
i=0
for p in "${patches[@]}"; do
	git_ am -q "$kernel/v3/$p"
	i=$((i + 1))
	if [ $i = "$after" ]; then git_ am -q -3 "$here/extra-work-on-v3.patch"; fi
done
git_ log --oneline --reverse | sed 's/^/  /' >&2
echo "GOOD $(git_ rev-list --max-parents=0 HEAD)"
echo "BAD $(git_ rev-parse HEAD)"
}
