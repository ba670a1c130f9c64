#!/usr/bin/env bash
# Build the test DMA engine as an out-of-tree module against a built kernel tree,
# so that any tree (ours, another series, vanilla) gets DMA memcpy channels for
# its dcbm in the VM. The source is the engine's file as the series' patch adds
# it (patches/*test-only-memcpy-engine*.patch): one home, two ways to build it.
#
# usage: kernel/engine-module.sh TREE
#
# TREE must be configured and built (kernel/build.sh does both) with
# DMA_ENGINE and DMA_VIRTUAL_CHANNELS (config/10-memory.config gets them from
# AMD_PTDMA). The module is cached in
# ${WORKBENCH_CACHE:-$HOME/.cache/migration-workbench}/kernel/engine/, keyed by
# the patch, the tree's build and this script. The last line on stdout is the
# path of test_dma_engine.ko; progress and errors go to stderr.
set -euo pipefail
{

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${WORKBENCH_CACHE:-$HOME/.cache/migration-workbench}/kernel/engine
source_file=drivers/dma/test-dma-engine.c

log() { printf 'engine-module.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
sha() { sha256sum | cut -c1-64; }

[ $# = 1 ] || { sed -n '7,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
tree=$1
[ -d "$tree" ] || die "kernel tree $tree does not exist"
tree=$(cd "$tree" && pwd)
[ -f "$tree/Module.symvers" ] && [ -f "$tree/.config" ] ||
	die "kernel tree $tree is not built (no Module.symvers): build it first (kernel/build.sh)"
for sym in CONFIG_MODULES CONFIG_DMA_ENGINE CONFIG_DMA_VIRTUAL_CHANNELS; do
	grep -qE "^$sym=[ym]\$" "$tree/.config" ||
		die "kernel tree $tree has no $sym: the engine needs it (config/10-memory.config gets it)"
done

patch=$(grep -l "^+++ b/$source_file\$" "$here"/patches/*.patch | head -1)
[ -n "$patch" ] || die "no patch in $here/patches adds $source_file"

key=$( {
	echo "patch $(sha <"$patch")"
	echo "tree $tree $(sha <"$tree/Module.symvers") $(sha <"$tree/.config") $(cat "$tree/include/config/kernel.release")"
	echo "script $(sha <"${BASH_SOURCE[0]}")"
} | sha | cut -c1-16)
out=$cache/$key
ko=$out/test-dma-engine.ko
if [ -f "$ko" ]; then
	log "up to date: $ko"
	echo "$ko"
	exit 0
fi

mkdir -p "$cache"
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
# the engine's file, as the patch adds it
(cd "$out.tmp" && git apply --include="$source_file" "$patch") ||
	die "cannot take $source_file out of $(basename "$patch")"
mv "$out.tmp/$source_file" "$out.tmp/"
rm -rf "$out.tmp/drivers"
cat >"$out.tmp/Kbuild" <<'EOF'
# drivers/dma's private headers (virt-dma.h, dmaengine.h) come from the tree
ccflags-y := -I$(srctree)/drivers/dma
obj-m := test-dma-engine.o
EOF
log "building test-dma-engine.ko against $tree (log: $out.tmp/build.log)"
if ! make -C "$tree" M="$out.tmp" modules >"$out.tmp/build.log" 2>&1; then
	grep -E 'error|warning' "$out.tmp/build.log" | head -20 >&2 || true
	die "the test DMA engine does not build against $tree (log: $out.tmp/build.log)"
fi
[ -f "$out.tmp/test-dma-engine.ko" ] || die "no test-dma-engine.ko after the build"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$ko"
exit 0
}
