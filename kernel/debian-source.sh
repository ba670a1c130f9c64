#!/usr/bin/env bash
# Fetch a Debian package from a suite this host's apt sources do not list,
# unpack it with dpkg -x and print where: the kernel lines' sources and
# images come from suites beside the host's own (linux-source-7.3 and
# Debian's 7.3 images from trixie-backports on a bookworm host).
#
# usage: kernel/debian-source.sh [--suite SUITE] [--file GLOB] PACKAGE
#        kernel/debian-source.sh [--suite SUITE] --list REGEX
#
#   --suite SUITE  the suite to take PACKAGE from (default trixie-backports)
#   --file GLOB    print the path of the one unpacked file matching GLOB
#                  (e.g. 'usr/src/linux-source-*.tar.xz') instead of the
#                  unpacked directory
#   --list REGEX   print the suite's package names matching REGEX, oldest
#                  version first, and fetch nothing
#
# apt runs with a private sources list and private state under
# ${WORKBENCH_CACHE:-$HOME/.cache/migration-workbench}/debian/, so the
# host's apt configuration is never changed.  The mirror is the host's own
# (the first URIs of its Debian sources), or WORKBENCH_DEBIAN_MIRROR.  apt
# checks the .deb against the suite's signed index; the unpacked package is
# cached under its name, version and SHA256, and a second run with the same
# index fetches nothing.  Progress goes to stderr; the last line on stdout
# is the path.
set -euo pipefail
{

cache=${WORKBENCH_CACHE:-$HOME/.cache/migration-workbench}/debian
suite=trixie-backports
file_glob=

log() { printf 'debian-source.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '7,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }

pkg=
list=
while [ $# -gt 0 ]; do
	case $1 in
	--suite) [ $# -ge 2 ] || usage; suite=$2; shift 2 ;;
	--file) [ $# -ge 2 ] || usage; file_glob=$2; shift 2 ;;
	--list) [ $# -ge 2 ] || usage; list=$2; shift 2 ;;
	-h|--help) usage 0 ;;
	-*) log "unknown argument: $1"; usage ;;
	*) [ -z "$pkg" ] || usage; pkg=$1; shift ;;
	esac
done
[ -n "$pkg" ] || [ -n "$list" ] || usage
case $suite in
*[!a-z0-9-]*|'') die "suite '$suite' is not a Debian suite name (e.g. trixie-backports)" ;;
esac
case $pkg in
*[!a-z0-9.+-]*) die "package '$pkg' is not a Debian package name" ;;
esac

mirror=${WORKBENCH_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
	# deb822 sources first, then one-line ones; the first Debian archive URI
	mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
		grep -v -- '-security' | head -n1 || true)
	[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
		/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | grep -v -- '-security' | head -n1 || true)
	[ -n "$mirror" ] || die "no Debian mirror in this host's apt sources; set WORKBENCH_DEBIAN_MIRROR"
fi

apt_dir=$cache/apt/$suite
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
# the suite's own base too: a backport's index is small, its dependencies
# are not needed (the package is unpacked, never installed)
printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' \
	"$mirror" "$suite" >"$apt_dir/sources.list"
apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o "Dir::Etc::sourceparts=-"
	-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir"
	-o "Dir::Cache::archives=$apt_dir/archives" -o "APT::Get::List-Cleanup=0"
	-o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")

exec 9>"$cache/.lock"
flock 9
# the index at most once a day: the suite's packages change, a cached
# unpacked package does not
stamp=$apt_dir/lists/.updated
if [ -z "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then
	log "reading the $suite index from $mirror"
	apt-get "${apt_opts[@]}" -q update >&2 || die "apt-get update of $suite failed"
	touch "$stamp"
fi
if [ -n "$list" ]; then
	apt-cache "${apt_opts[@]}" pkgnames | grep -E -- "$list" | sort -V || true
	exit 0
fi
version=$(apt-cache "${apt_opts[@]}" show --no-all-versions "$pkg" 2>/dev/null |
	sed -n 's/^Version: //p' | head -n1)
sha=$(apt-cache "${apt_opts[@]}" show --no-all-versions "$pkg" 2>/dev/null |
	sed -n 's/^SHA256: //p' | head -n1)
[ -n "$version" ] && [ -n "$sha" ] || die "package '$pkg' is not in $suite"

dest=$cache/pkgs/$pkg/${version}_${sha:0:12}
if [ ! -e "$dest/.unpacked" ]; then
	deb=$(cd "$apt_dir/archives" && apt-get "${apt_opts[@]}" -q download "$pkg" >&2 && ls -t ./*.deb | head -n1)
	deb=$apt_dir/archives/${deb#./}
	[ "$(sha256sum "$deb" | cut -d' ' -f1)" = "$sha" ] || die "$deb does not match its SHA256 in the $suite index"
	log "unpacking $(basename "$deb")"
	rm -rf "$dest"
	mkdir -p "$dest"
	dpkg -x "$deb" "$dest"
	printf '%s %s %s %s\n' "$pkg" "$version" "$suite" "$sha" >"$dest/.unpacked"
	rm -f "$deb"
fi

if [ -n "$file_glob" ]; then
	# shellcheck disable=SC2086  # the glob is meant to expand
	set -- $dest/$file_glob
	[ $# = 1 ] && [ -e "$1" ] || die "$pkg $version has no single file matching $file_glob"
	echo "$1"
else
	echo "$dest"
fi

exit 0
}
