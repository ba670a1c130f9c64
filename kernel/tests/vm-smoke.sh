#!/usr/bin/env bash
# Boot a built tree in QEMU (TCG, 2 NUMA nodes) and run tests/smoke.sh in it.
# usage: kernel/tests/vm-smoke.sh [TREE]   (default: build.sh --print-dir)
# Env: VNG (vng binary), SMOKE_LOG (console log, default /tmp/vm-smoke.log),
#      SMOKE_QUICK=1 (smaller migrations), SMOKE_TIMEOUT (s, default 1800).
# Each vCPU is its own socket: with QEMU's default topology both vCPUs share
# one package (and LLC) but sit on different NUMA nodes, which makes every
# kernel (vanilla too) print "WARNING: ... topology_sane" at boot.
# Exits 0 only if smoke.sh reported no failure and the console shows no
# WARNING/BUG/Oops.  vng's own exit status is not used (it is unreliable).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tree=${1:-$("$here/../build.sh" --print-dir)}
vng=${VNG:-$here/../../.venv/bin/vng}
[ -x "$vng" ] || vng=$(command -v vng)
# vng runs virtme-run etc. from its own bin directory
export PATH="$(cd "$(dirname "$vng")" && pwd):$PATH"
log=${SMOKE_LOG:-/tmp/vm-smoke.log}
[ -f "$tree/arch/x86/boot/bzImage" ] || { echo "no bzImage in $tree" >&2; exit 2; }

gcc -O2 -static -o "$here/migrate_smoke" "$here/migrate_smoke.c"

echo "vm-smoke: booting $tree (console: $log)" >&2
timeout "${SMOKE_TIMEOUT:-1800}" "$vng" --run "$tree" --disable-kvm -v -m 3G -p 2 \
	--numa 1536M,cpus=0 --numa 1536M,cpus=1 \
	--qemu-opts="-smp 2,sockets=2,cores=1,threads=1" \
	--exec "SMOKE_QUICK=${SMOKE_QUICK:-0} TREE=$tree $here/smoke.sh; echo SMOKE-EXIT=\$?" \
	>"$log" 2>&1 </dev/null || true

grep -E '^(ok|not ok) - |^smoke: ' "$log" || true
rc=0
if grep -nE '\[ *[0-9]+\.[0-9]+\] .*(WARNING:|BUG:|Oops|Call Trace|general protection fault|Kernel panic|blocked for more than)' "$log"; then
	echo "vm-smoke: kernel console shows warnings (above)"
	rc=1
fi
grep -q '^SMOKE-EXIT=0' "$log" || { echo "vm-smoke: smoke.sh failed or did not finish"; rc=1; }
[ $rc = 0 ] && echo "vm-smoke: PASS" || echo "vm-smoke: FAIL"
exit $rc
