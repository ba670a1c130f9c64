#!/usr/bin/env bash
# Instruction-counted move_pages(2) cost: vanilla against the patched kernel
# with its defaults (must be the same path: within 0.5%) and with the batched
# kernel copy (batch_kernel_copy=1, batch_size=512), at 4K, 64K and 2M folios.
#
# usage: kernel/tests/icount-bench.sh [VANILLA_TREE PATCHED_TREE]
#   (default: build.sh --profile bench [--vanilla] --print-dir, which must
#   have been built)
# Env: VNG, REPS (5), MIB (16), ICOUNT_LOG (dir for consoles, /tmp/icount).
#
# QEMU runs single-threaded TCG with "-icount shift=0,sleep=off": guest time
# advances by one nanosecond per guest instruction, so the guest's
# CLOCK_MONOTONIC counts instructions and the figures do not depend on how
# busy the host is.  Nothing here asserts on them; the summary says whether
# the default path is within 0.5% of vanilla.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
vtree=${1:-$("$here/../build.sh" --profile bench --vanilla --print-dir)}
ptree=${2:-$("$here/../build.sh" --profile bench --print-dir)}
vng=${VNG:-$here/../../.venv/bin/vng}
[ -x "$vng" ] || vng=$(command -v vng)
export PATH="$(cd "$(dirname "$vng")" && pwd):$PATH"
logdir=${ICOUNT_LOG:-/tmp/icount}
mkdir -p "$logdir"
gcc -O2 -static -o "$here/migrate_smoke" "$here/migrate_smoke.c"

run() { # NAME TREE
	local name=$1 tree=$2
	[ -f "$tree/arch/x86/boot/bzImage" ] || { echo "no bzImage in $tree" >&2; exit 2; }
	echo "icount-bench: booting $name ($tree)" >&2
	timeout 3600 "$vng" --run "$tree" --disable-kvm -m 3G -p 2 \
		--numa 1536M,cpus=0 --numa 1536M,cpus=1 \
		--qemu-opts="-smp 2,sockets=2,cores=1,threads=1 -accel tcg,thread=single -icount shift=0,sleep=off" \
		--exec "REPS=${REPS:-5} MIB=${MIB:-16} $here/icount-guest.sh" \
		>"$logdir/$name.log" 2>&1 </dev/null || true
	grep -q "icount-guest: done" "$logdir/$name.log" || { echo "icount-bench: $name did not finish, see $logdir/$name.log" >&2; exit 1; }
	sed -n "s/^RESULT /$name /p" "$logdir/$name.log"
}
{ run vanilla "$vtree"; run patched "$ptree"; } >"$logdir/results.txt"
python3 - "$logdir/results.txt" <<'EOF'
import collections, math, statistics, sys
data = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kernel, *kv = line.split()
    f = dict(x.split("=") for x in kv)
    data[(kernel, f["mode"], f["size"])].append(int(f["ns"]))
def stats(v):
    m = statistics.mean(v); sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return m, sd, min(v), f"mean {m/1e6:8.3f} M ± {100*sd/m:.2f}%  min {min(v)/1e6:8.3f} M  (n={len(v)})"
print("instructions per move_pages() round trip of the mapping (guest ns under -icount shift=0)")
print("diff: of the minima (the least disturbed run), and of the means ± 2 standard errors")
ok = True
for size in ("4K", "64K", "2M"):
    van = data.get(("vanilla", "default", size))
    if not van:
        continue
    mv, sdv, nv, sv = stats(van)
    print(f"{size:>4} vanilla               {sv}")
    for mode in ("default", "batched"):
        p = data.get(("patched", mode, size))
        if not p:
            continue
        mp, sdp, np_, sp = stats(p)
        dmin = 100 * (np_ - nv) / nv
        dmean = 100 * (mp - mv) / mv
        se = 200 * math.sqrt(sdv**2 / len(van) + sdp**2 / len(p)) / mv
        label = "patched, defaults" if mode == "default" else "patched, batched 512"
        print(f"{size:>4} {label:<21} {sp}  min {dmin:+.3f}%, mean {dmean:+.3f}% ± {se:.3f}%")
        if mode == "default" and abs(dmin) > 0.5:
            ok = False
print("default path within 0.5% of vanilla (minima):", "yes" if ok else "NO")
EOF
