#!/usr/bin/env bash
# Print a kernel line's Debian source tarball and its package version, one
# per line: the host's own linux-source package, or the one debian-source.sh
# fetches from the line's suite.  What `workbench conformance` builds a stock
# kernel's selftests from.
#
# usage: kernel/line-source.sh [LINE]     (default: the first line of lines)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
die() { printf 'line-source.sh: error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=series-lib.sh
. "$here/series-lib.sh"
line_select "${1:-}"
tarball=/usr/src/$line_pkg.tar.xz
line_fetch_source
[ -f "$tarball" ] || die "no source tarball $tarball (apt-get install $line_pkg)"
echo "$tarball"
tarball_version "$tarball"
