#!/bin/bash
# In-guest smoke test of the batched migration copy series.
#
# Run as root inside a VM booted from a tree built by kernel/build.sh, with
# two NUMA nodes (0 and 1) and kernel/tests/migrate_smoke built next to this
# script, e.g.:
#   vng --run <tree> --disable-kvm -m 3G -p 2 \
#       --numa 1536M,cpus=0 --numa 1536M,cpus=1 \
#       --qemu-opts="-smp 2,sockets=2,cores=1,threads=1" --exec kernel/tests/smoke.sh
#
# Prints one "ok - ..." / "not ok - ..." line per check, then
# "smoke: N passed, M failed" and exits non-zero if anything failed.
# Env: SMOKE_QUICK=1 runs smaller migrations; MTCOPY_KO=path to mtcopy.ko if
# modprobe cannot find it.
set -u
# One block: bash reads it whole before running, so editing this file on the
# host while a guest runs it cannot derail the run.
{

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=$here/migrate_smoke
M=/sys/kernel/mm/migration
THP=/sys/kernel/mm/transparent_hugepage
pass=0
fail=0
size4k=32
sizethp=64
[ "${SMOKE_QUICK:-0}" = 1 ] && { size4k=8; sizethp=16; }

ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

rd() { cat "$1" 2>/dev/null; }

# write_ok FILE VALUE [EXPECTED_READBACK]
write_ok() {
	if (printf '%s\n' "$2" >"$1") 2>/dev/null; then
		if [ $# -ge 3 ] && [ "$(rd "$1")" != "$3" ]; then
			bad "write '$2' to $1 reads back '$(rd "$1")', expected '$3'"
		else
			ok "write '$2' to $1"
		fi
	else
		bad "write '$2' to $1 failed"
	fi
}

# write_einval FILE VALUE: the write must fail with EINVAL and change nothing
write_einval() {
	local before after err
	before=$(rd "$1")
	err=$( (printf '%s\n' "$2" >"$1") 2>&1)
	after=$(rd "$1")
	if [[ $err == *"Invalid argument"* ]] && [ "$before" = "$after" ]; then
		ok "write '$2' to $1 -> EINVAL, unchanged"
	else
		bad "write '$2' to $1: '$err', before '$before' after '$after'"
	fi
}

stat_of() { rd "$M/stats/$1/$2"; }
reset_stats() { local f; for f in "$M/stats/$1"/*; do echo 0 >"$f"; done; }

# migrate NAME ARGS...: run migrate_smoke, expect PASS
last=
migrate() {
	local name=$1; shift
	last=$("$bin" "$@" 2>&1)
	if [[ $last == PASS* ]]; then ok "$name: $last"; else bad "$name: $last"; fi
}

# Assert the counters of migrator $1 moved (and that nothing fell back)
stats_moved() {
	local m=$1 s
	for s in batches folios bytes copy_ns batch_ns; do
		check "stats/$m/$s > 0 ($(stat_of "$m" $s))" [ "$(stat_of "$m" $s)" -gt 0 ]
	done
	check "stats/$m/fallbacks == 0 ($(stat_of "$m" fallbacks))" [ "$(stat_of "$m" fallbacks)" -eq 0 ]
}

large_folios() { [[ $last =~ \(([0-9]+)\ large,\ largest\ ([0-9]+)\ pages ]] && echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"; }

load_mtcopy() {
	modprobe mtcopy 2>/dev/null && return 0
	local ko=${MTCOPY_KO:-}
	[ -n "$ko" ] || ko=$(find /lib/modules/"$(uname -r)" -name 'mtcopy.ko*' 2>/dev/null | head -1)
	[ -n "$ko" ] && insmod "$ko"
}

echo "smoke: kernel $(uname -r), $(nproc) CPUs, nodes: $(cat /sys/devices/system/node/online)"

# ---- the directory and its files ------------------------------------------------
for f in migrator batch_size reasons stats/kernel; do
	check "$M/$f exists" [ -e "$M/$f" ]
done
check "two NUMA nodes" [ "$(cat /sys/devices/system/node/online)" = "0-1" ]
[ -x "$bin" ] || bad "missing $bin (build it on the host: gcc -static -O2 -o $bin $bin.c)"

# ---- migrator ----------------------------------------------------------------
check "migrator reads '[kernel]' ($(rd $M/migrator))" [ "$(rd $M/migrator)" = "[kernel]" ]
write_einval $M/migrator bogus
write_einval $M/migrator ""
write_einval $M/migrator "[kernel]"
write_ok $M/migrator kernel "[kernel]"

# ---- batch_size -----------------------------------------------------------------
check "batch_size default 512 ($(rd $M/batch_size))" [ "$(rd $M/batch_size)" = 512 ]
for v in 0 262145 -1 abc 12x ""; do write_einval $M/batch_size "$v"; done
write_ok $M/batch_size 1 1
write_ok $M/batch_size 262144 262144
write_ok $M/batch_size 512 512

# ---- reasons -----------------------------------------------------------------------
all="[compaction] [memory_failure] [memory_hotplug] [syscall] [mempolicy_mbind] [numa_misplaced] [contig_range] [longterm_pin] [demotion] [damon]"
check "reasons default all ($(rd $M/reasons))" [ "$(rd $M/reasons)" = "$all" ]
write_ok $M/reasons "syscall,compaction" "[compaction] memory_failure memory_hotplug [syscall] mempolicy_mbind numa_misplaced contig_range longterm_pin demotion damon"
write_einval $M/reasons foo
write_einval $M/reasons "syscall,foo"
write_einval $M/reasons ""
write_ok $M/reasons none "compaction memory_failure memory_hotplug syscall mempolicy_mbind numa_misplaced contig_range longterm_pin demotion damon"
write_ok $M/reasons all "$all"

# ---- stats of "kernel" ------------------------------------------------------------
for s in batches folios bytes copy_ns batch_ns fallbacks; do
	check "stats/kernel/$s exists" [ -f "$M/stats/kernel/$s" ]
done
write_einval $M/stats/kernel/batches 5
write_einval $M/stats/kernel/batches abc
write_ok $M/stats/kernel/batches 0 0

# ---- migrations with the kernel migrator -----------------------------------------------
echo always >"$THP/hugepages-2048kB/enabled" 2>/dev/null || echo always >"$THP/enabled"
reset_stats kernel
migrate "kernel 4K" -T -s $size4k
check "4K run used no large folios" [ "$(large_folios)" = "0 1" ]
migrate "kernel THP" -t -s $sizethp
read -r nl lp <<<"$(large_folios)"
check "THP run used 2M folios ($nl large, largest $lp pages)" eval '[ "${nl:-0}" -gt 0 ] && [ "${lp:-0}" = 512 ]'
stats_moved kernel

# ---- mtcopy ---------------------------------------------------------------------------
if load_mtcopy; then ok "load mtcopy"; else bad "load mtcopy"; fi
check "migrator lists mtcopy ($(rd $M/migrator))" [ "$(rd $M/migrator)" = "[kernel] mtcopy" ]
check "stats/mtcopy exists" [ -d $M/stats/mtcopy ]
ncpu=$(nproc)
def=$((ncpu < 4 ? ncpu : 4))
check "mtcopy/threads default $def ($(rd $M/mtcopy/threads))" [ "$(rd $M/mtcopy/threads)" = "$def" ]
for v in 0 $((ncpu + 1)) abc -2 ""; do write_einval $M/mtcopy/threads "$v"; done
check "mtcopy/spread reads '[none] node llc' ($(rd $M/mtcopy/spread))" [ "$(rd $M/mtcopy/spread)" = "[none] node llc" ]
write_ok $M/mtcopy/spread node "none [node] llc"
write_ok $M/mtcopy/spread llc "none node [llc]"
write_einval $M/mtcopy/spread bogus
write_ok $M/mtcopy/spread none "[none] node llc"
write_einval $M/mtcopy/thread_ns 7
write_ok $M/mtcopy/thread_ns 0 0

write_ok $M/migrator mtcopy "kernel [mtcopy]"
for t in 1 2; do
	write_ok $M/mtcopy/threads $t $t
	reset_stats mtcopy
	echo 0 >$M/mtcopy/thread_ns
	migrate "mtcopy threads=$t 4K" -T -s $size4k
	migrate "mtcopy threads=$t THP" -t -s $sizethp
	stats_moved mtcopy
	check "mtcopy/thread_ns > 0 ($(rd $M/mtcopy/thread_ns))" [ "$(rd $M/mtcopy/thread_ns)" -gt 0 ]
done
for sp in node llc; do
	echo $sp >$M/mtcopy/spread
	migrate "mtcopy threads=2 spread=$sp THP" -t -s $sizethp
done
echo none >$M/mtcopy/spread

# batch_size 1: every folio its own batch; with 2 threads each folio is chunked
write_ok $M/batch_size 1 1
migrate "mtcopy batch_size=1 4K" -T -s 4
migrate "mtcopy batch_size=1 THP" -t -s $sizethp
write_ok $M/batch_size 262144 262144
migrate "mtcopy batch_size=262144 THP" -t -s $sizethp
migrate "mtcopy batch_size=262144 4K" -T -s $size4k
write_ok $M/batch_size 512 512

# reasons none: move_pages must not dispatch batches any more
echo none >$M/reasons
reset_stats mtcopy
migrate "mtcopy reasons=none THP" -t -s $sizethp
check "no batches with reasons=none ($(stat_of mtcopy batches))" [ "$(stat_of mtcopy batches)" = 0 ]
echo syscall >$M/reasons
migrate "mtcopy reasons=syscall THP" -t -s $sizethp
check "batches with reasons=syscall ($(stat_of mtcopy batches))" [ "$(stat_of mtcopy batches)" -gt 0 ]
echo all >$M/reasons

# mTHP: 64K folios
if [ -w "$THP/hugepages-64kB/enabled" ]; then
	echo never >"$THP/hugepages-2048kB/enabled"
	echo always >"$THP/hugepages-64kB/enabled"
	migrate "mtcopy mTHP 64K" -t -s $sizethp
	read -r nl lp <<<"$(large_folios)"
	check "mTHP run used 64K folios ($nl large, largest $lp pages)" eval '[ "${nl:-0}" -gt 0 ] && [ "${lp:-0}" = 16 ]'
	echo never >"$THP/hugepages-64kB/enabled"
	echo always >"$THP/hugepages-2048kB/enabled"
fi

# shmem page cache: MAP_SHARED tmpfs folios take the batched path too
mkdir -p /tmp/smoke-shm && mount -t tmpfs tmpfs /tmp/smoke-shm 2>/dev/null
echo 2 >$M/mtcopy/threads
reset_stats mtcopy
migrate "mtcopy shmem 4K" -T -s $size4k -F /tmp/smoke-shm/data
check "shmem migration dispatched batches ($(stat_of mtcopy batches))" [ "$(stat_of mtcopy batches)" -gt 0 ]
echo kernel >$M/migrator
migrate "kernel shmem 4K" -T -s $size4k -F /tmp/smoke-shm/data
echo mtcopy >$M/migrator

# compaction (reason "compaction") while mtcopy is active
if echo 1 >/proc/sys/vm/compact_memory; then ok "compact_memory with mtcopy active"; else bad "compact_memory"; fi

# A migrator that leaves folios uncopied: the framework must CPU-copy those
P=/sys/module/mtcopy/parameters/test_skip_every
if [ -w $P ]; then
	reset_stats mtcopy
	echo 3 >$P
	echo 1 >$M/mtcopy/threads
	migrate "mtcopy skipping every 3rd folio, THP" -t -s $sizethp
	echo 2 >$M/mtcopy/threads
	migrate "mtcopy skipping every 3rd folio, 4K" -T -s $size4k
	echo 1 >$P
	migrate "mtcopy skipping every folio, 4K" -T -s 8
	echo 0 >$P
	check "fallbacks counted ($(stat_of mtcopy fallbacks) of $(stat_of mtcopy folios))" \
		[ "$(stat_of mtcopy fallbacks)" -gt 0 ]
	check "not everything fell back" [ "$(stat_of mtcopy fallbacks)" -lt "$(stat_of mtcopy folios)" ]
else
	bad "no $P"
fi

# ---- rmmod while migrations run -----------------------------------------------------------
for kind in -t -T; do
	echo 2 >$M/mtcopy/threads
	echo mtcopy >$M/migrator
	out=/tmp/smoke-loop$kind.out
	"$bin" $kind -s $sizethp -l 30 >"$out" 2>&1 &
	pid=$!
	sleep 2
	if rmmod mtcopy; then ok "rmmod mtcopy during a $kind migration loop"; else bad "rmmod mtcopy during a $kind loop"; fi
	check "migrator back to '[kernel]' ($(rd $M/migrator))" [ "$(rd $M/migrator)" = "[kernel]" ]
	check "stats/mtcopy removed" [ ! -e $M/stats/mtcopy ]
	check "mtcopy/ removed" [ ! -e $M/mtcopy ]
	wait $pid
	res=$(cat "$out")
	if [[ $res == PASS* ]]; then ok "loop survived rmmod: $res"; else bad "loop across rmmod: $res"; fi
	load_mtcopy || bad "reload mtcopy"
done
rmmod mtcopy && ok "final rmmod" || bad "final rmmod"

# ---- the console must be clean ---------------------------------------------------------------
if dmesg | grep -E "WARNING:|BUG:|Oops|Call Trace|general protection|UBSAN|KASAN" >/tmp/smoke-dmesg.txt; then
	bad "kernel log has warnings:"
	cat /tmp/smoke-dmesg.txt
else
	ok "kernel log is clean"
fi

echo "smoke: $pass passed, $fail failed"
[ "$fail" = 0 ]
exit $?
}
