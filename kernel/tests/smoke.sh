#!/bin/bash
# In-guest smoke test of the batched migration copy series (v2).
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
# Env: SMOKE_QUICK=1 runs smaller migrations; TREE=the kernel tree, for
# insmod of mtcopy.ko, dcbm.ko, test-dma-engine.ko if modprobe cannot find
# them.  Review items of issue 11 are cited as [#N].
set -u
# One block: bash reads it whole before running, so editing this file on the
# host while a guest runs it cannot derail the run.
{

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=$here/migrate_smoke
M=/sys/kernel/mm/migration
THP=/sys/kernel/mm/transparent_hugepage
DBG=/sys/kernel/debug
FI=$DBG/migrate_copy
TDE=/sys/module/test_dma_engine/parameters
REASONS="compaction memory_failure memory_hotplug syscall mempolicy_mbind numa_misplaced contig_range longterm_pin demotion damon"
COUNTERS="batches folios bytes copy_ns wait_ns batch_ns fallbacks fallback_ns declined nomem_batches"
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

# write_err FILE VALUE ERRTEXT: the write must fail with ERRTEXT, change nothing
write_err() {
	local before after err
	before=$(rd "$1")
	err=$( (printf '%s\n' "$2" >"$1") 2>&1)
	after=$(rd "$1")
	if [[ $err == *"$3"* ]] && [ "$before" = "$after" ]; then
		ok "write '$2' to $1 -> $3, unchanged"
	else
		bad "write '$2' to $1: '$err', before '$before' after '$after'"
	fi
}
write_einval() { write_err "$1" "$2" "Invalid argument"; }

stat_of() { rd "$M/stats/$1/$2"; }
reset_stats() { local f; for f in "$M/stats/$1"/*; do [ -f "$f" ] && echo 0 >"$f"; done; }
eq() { [ "$1" = "$2" ]; }
gt0() { [ "${1:-0}" -gt 0 ]; }

# sum_reasons MIGRATOR COUNTER: the per-reason counters added up
sum_reasons() {
	local r s=0
	for r in $REASONS; do s=$((s + $(stat_of "$1" "$r/$2"))); done
	echo $s
}

# migrate NAME ARGS...: run migrate_smoke, expect PASS
last=
migrate() {
	local name=$1; shift
	last=$("$bin" "$@" 2>&1)
	if [[ $last == PASS* ]]; then ok "$name: $last"; else bad "$name: $last"; fi
}

# All counters of migrator $1 are 0
all_zero() {
	local c r
	for c in $COUNTERS; do
		[ "$(stat_of "$1" $c)" = 0 ] || return 1
		for r in $REASONS; do [ "$(stat_of "$1" "$r/$c")" = 0 ] || return 1; done
	done
}

# Assert the counters of migrator $1 moved (and that nothing fell back)
stats_moved() {
	local m=$1 s
	for s in batches folios bytes copy_ns batch_ns; do
		check "stats/$m/$s > 0 ($(stat_of "$m" $s))" gt0 "$(stat_of "$m" $s)"
	done
	check "stats/$m/fallbacks == 0 ($(stat_of "$m" fallbacks))" eq "$(stat_of "$m" fallbacks)" 0
	check "stats/$m: copy_ns <= batch_ns" [ "$(stat_of "$m" copy_ns)" -le "$(stat_of "$m" batch_ns)" ]
}

large_folios() { [[ $last =~ \(([0-9]+)\ large,\ largest\ ([0-9]+)\ pages ]] && echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"; }
folios_of() { [[ $last =~ ,\ ([0-9]+)\ folios ]] && echo "${BASH_REMATCH[1]}"; }

load_mod() { # NAME KO_PATH_IN_TREE
	modprobe "$1" 2>/dev/null && return 0
	local ko=${TREE:+$TREE/$2}
	[ -n "$ko" ] && [ -f "$ko" ] || ko=$(find /lib/modules/"$(uname -r)" -name "$(basename "$2")*" 2>/dev/null | head -1)
	[ -n "$ko" ] && insmod "$ko"
}

# fault POINT TIMES [INTERVAL]: make the next TIMES calls of a fault point fail
fault() {
	echo 0 >"$FI/$1/verbose"
	echo "${3:-1}" >"$FI/$1/interval"
	echo 100 >"$FI/$1/probability"
	echo "$2" >"$FI/$1/times"
}
fault_off() { echo 0 >"$FI/$1/probability"; echo 1 >"$FI/$1/times"; }

echo "smoke: kernel $(uname -r), $(nproc) CPUs, nodes: $(cat /sys/devices/system/node/online)"
mountpoint -q $DBG || mount -t debugfs none $DBG

# ---- the directory and its files ------------------------------------------------
for f in migrator batch_kernel_copy batch_size reasons stats/kernel; do
	check "$M/$f exists" [ -e "$M/$f" ]
done
for r in $REASONS; do check "$M/stats/kernel/$r/ exists" [ -d "$M/stats/kernel/$r" ]; done
for s in $COUNTERS; do check "stats/kernel/$s and stats/kernel/syscall/$s exist" [ -f "$M/stats/kernel/$s" -a -f "$M/stats/kernel/syscall/$s" ]; done
check "two NUMA nodes" [ "$(cat /sys/devices/system/node/online)" = "0-1" ]
[ -x "$bin" ] || bad "missing $bin (build it on the host: gcc -static -O2 -o $bin $bin.c)"

# ---- defaults and bad writes ---------------------------------------------------------
check "migrator reads '[kernel]' ($(rd $M/migrator))" eq "$(rd $M/migrator)" "[kernel]"
check "batch_kernel_copy default 0 [#1]" eq "$(rd $M/batch_kernel_copy)" 0
check "batch_size default 512 [#2] ($(rd $M/batch_size))" eq "$(rd $M/batch_size)" 512
all="[compaction] [memory_failure] [memory_hotplug] [syscall] [mempolicy_mbind] [numa_misplaced] [contig_range] [longterm_pin] [demotion] [damon]"
check "reasons default all ($(rd $M/reasons))" eq "$(rd $M/reasons)" "$all"
write_einval $M/migrator bogus
write_einval $M/migrator ""
write_einval $M/migrator "[kernel]"
write_ok $M/migrator kernel "[kernel]"
# [#3] the bound is 1 GiB of base pages: 262144 with 4K pages
for v in 0 262145 1048576 -1 abc 12x ""; do write_einval $M/batch_size "$v"; done
write_ok $M/batch_size 1 1
write_ok $M/batch_size 262144 262144
write_ok $M/batch_size 512 512
for v in 2 abc -1 ""; do write_einval $M/batch_kernel_copy "$v"; done
write_ok $M/reasons "syscall,compaction" "[compaction] memory_failure memory_hotplug [syscall] mempolicy_mbind numa_misplaced contig_range longterm_pin demotion damon"
write_einval $M/reasons foo
write_einval $M/reasons "syscall,foo"
write_einval $M/reasons ""
write_ok $M/reasons none "$REASONS"
write_ok $M/reasons all "$all"
write_einval $M/stats/kernel/batches 5
write_einval $M/stats/kernel/syscall/batches abc
write_ok $M/stats/kernel/batches 0 0

# ---- [#1] the default path is the serial one: nothing is batched or counted ----------
echo always >"$THP/hugepages-2048kB/enabled" 2>/dev/null || echo always >"$THP/enabled"
reset_stats kernel
migrate "defaults 4K" -T -s $size4k
check "4K run used no large folios" eq "$(large_folios)" "0 1"
migrate "defaults THP" -t -s $sizethp
read -r nl lp <<<"$(large_folios)"
check "THP run used 2M folios ($nl large, largest $lp pages)" eval '[ "${nl:-0}" -gt 0 ] && [ "${lp:-0}" = 512 ]'
migrate "defaults mbind THP" -t -M -s $sizethp
check "[#1] with the defaults every counter of every reason stays 0" all_zero kernel

# ---- batch_kernel_copy: the batched kernel copy, asked for explicitly ------------------
write_ok $M/batch_kernel_copy 1 1
reset_stats kernel
migrate "batched kernel 4K" -T -s $size4k
n4k=$(folios_of)
check "[#1] batch_kernel_copy=1: stats/kernel/syscall/folios == the run's folios ($(stat_of kernel syscall/folios) == $n4k)" eq "$(stat_of kernel syscall/folios)" "$n4k"
migrate "batched kernel THP" -t -s $sizethp
stats_moved kernel
# [#7] per reason: move_pages is syscall, mbind(MPOL_MF_MOVE) mempolicy_mbind
b_sys=$(stat_of kernel syscall/batches)
migrate "batched kernel mbind THP" -t -M -s $sizethp
check "[#7] mbind batches counted as mempolicy_mbind ($(stat_of kernel mempolicy_mbind/batches))" gt0 "$(stat_of kernel mempolicy_mbind/batches)"
check "[#7] mbind did not add to syscall" eq "$(stat_of kernel syscall/batches)" "$b_sys"
for c in batches folios bytes batch_ns; do
	check "[#7] stats/kernel/$c == sum over reasons ($(stat_of kernel $c) == $(sum_reasons kernel $c))" eq "$(stat_of kernel $c)" "$(sum_reasons kernel $c)"
done
check "[#7] no compaction batches from move_pages" eq "$(stat_of kernel compaction/batches)" 0
write_ok $M/stats/kernel/syscall/batches 0 0
check "resetting one reason leaves the others" gt0 "$(stat_of kernel mempolicy_mbind/batches)"
write_ok $M/stats/kernel/batches 0 0
check "resetting the total resets every reason" eq "$(sum_reasons kernel batches)" 0
if echo 1 >/proc/sys/vm/compact_memory; then ok "compact_memory with batch_kernel_copy=1"; else bad "compact_memory"; fi
write_ok $M/batch_kernel_copy 0 0
reset_stats kernel
migrate "batch_kernel_copy=0 again THP" -t -s $sizethp
check "[#1] batch_kernel_copy=0: nothing batched again" all_zero kernel

# ---- [#6] [#8] [#16] fault injection in the framework, the CPU fallback counters -------
if [ -d $FI/fail_folio ]; then
	write_ok $M/batch_kernel_copy 1 1
	reset_stats kernel
	fault fail_folio 5
	migrate "kernel, 5 folios forgotten after the copy, 4K" -T -s 8
	fault_off fail_folio
	check "[#6] fallbacks == the 5 injected ($(stat_of kernel fallbacks))" eq "$(stat_of kernel fallbacks)" 5
	check "[#6] fallback_ns > 0 ($(stat_of kernel fallback_ns))" gt0 "$(stat_of kernel fallback_ns)"
	check "[#18] only what was left was copied again (fallbacks < folios)" [ "$(stat_of kernel fallbacks)" -lt "$(stat_of kernel folios)" ]
	reset_stats kernel
	fault fail_batch 2
	migrate "kernel, 2 batches declined, 4K" -T -s 8
	fault_off fail_batch
	check "declined == 2 ($(stat_of kernel declined))" eq "$(stat_of kernel declined)" 2
	check "the declined batches' folios fell back ($(stat_of kernel fallbacks))" gt0 "$(stat_of kernel fallbacks)"
	reset_stats kernel
	fault fail_bitmap 3
	migrate "kernel, no bitmap for 3 batches, 4K" -T -s 8
	fault_off fail_bitmap
	check "[#8] nomem_batches == 3 ($(stat_of kernel nomem_batches))" eq "$(stat_of kernel nomem_batches)" 3
	check "[#8] those batches are in batches and fallbacks" [ "$(stat_of kernel batches)" -ge 3 -a "$(stat_of kernel fallbacks)" -gt 0 ]
	write_ok $M/batch_kernel_copy 0 0
else
	bad "no $FI/fail_folio (CONFIG_FAIL_MIGRATE_COPY)"
fi

# ---- mtcopy ---------------------------------------------------------------------------
if load_mod mtcopy mm/mtcopy.ko; then ok "load mtcopy"; else bad "load mtcopy"; fi
check "migrator lists mtcopy ($(rd $M/migrator))" eq "$(rd $M/migrator)" "[kernel] mtcopy"
check "stats/mtcopy/cpu_ns and stats/mtcopy/syscall/cpu_ns exist [#15]" [ -f $M/stats/mtcopy/cpu_ns -a -f $M/stats/mtcopy/syscall/cpu_ns ]
check "[#16] mtcopy has no test parameter any more" [ ! -e /sys/module/mtcopy/parameters/test_skip_every ]
check "mtcopy/thread_ns is gone (now stats/mtcopy/cpu_ns)" [ ! -e $M/mtcopy/thread_ns ]
reset_stats mtcopy
migrate "mtcopy loaded, not selected, THP" -t -s $sizethp
check "[#1] a loaded but unselected mtcopy batches nothing" all_zero mtcopy
ncpu=$(nproc)
def=$((ncpu < 4 ? ncpu : 4))
check "mtcopy/threads default $def ($(rd $M/mtcopy/threads))" eq "$(rd $M/mtcopy/threads)" "$def"
for v in 0 $((ncpu + 1)) abc -2 ""; do write_einval $M/mtcopy/threads "$v"; done
check "mtcopy/spread reads '[none] node llc' ($(rd $M/mtcopy/spread))" eq "$(rd $M/mtcopy/spread)" "[none] node llc"
write_ok $M/mtcopy/spread node "none [node] llc"
write_ok $M/mtcopy/spread llc "none node [llc]"
write_einval $M/mtcopy/spread bogus
write_ok $M/mtcopy/spread none "[none] node llc"
write_einval $M/stats/mtcopy/cpu_ns 7

write_ok $M/migrator mtcopy "kernel [mtcopy]"
reset_stats kernel
# [#14] threads=1: the migrating task copies inline, no helper time
write_ok $M/mtcopy/threads 1 1
reset_stats mtcopy
migrate "mtcopy threads=1 4K" -T -s $size4k
migrate "mtcopy threads=1 THP" -t -s $sizethp
stats_moved mtcopy
check "[#14] threads=1 copies inline: stats/mtcopy/cpu_ns == 0 ($(stat_of mtcopy cpu_ns))" eq "$(stat_of mtcopy cpu_ns)" 0
# [#15] threads=2: helper CPU time reported per batch
write_ok $M/mtcopy/threads 2 2
reset_stats mtcopy
migrate "mtcopy threads=2 4K" -T -s $size4k
migrate "mtcopy threads=2 THP" -t -s $sizethp
stats_moved mtcopy
check "[#15] threads=2: stats/mtcopy/cpu_ns > 0 ($(stat_of mtcopy cpu_ns))" gt0 "$(stat_of mtcopy cpu_ns)"
check "[#15] stats/mtcopy/syscall/cpu_ns == stats/mtcopy/cpu_ns" eq "$(stat_of mtcopy syscall/cpu_ns)" "$(stat_of mtcopy cpu_ns)"
check "[#5] the kernel migrator was credited nothing" all_zero kernel
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
check "no batches with reasons=none ($(stat_of mtcopy batches))" eq "$(stat_of mtcopy batches)" 0
echo syscall >$M/reasons
migrate "mtcopy reasons=syscall THP" -t -s $sizethp
check "batches with reasons=syscall ($(stat_of mtcopy batches))" gt0 "$(stat_of mtcopy batches)"
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
reset_stats mtcopy
migrate "mtcopy shmem 4K" -T -s $size4k -F /tmp/smoke-shm/data
check "shmem migration dispatched batches ($(stat_of mtcopy batches))" gt0 "$(stat_of mtcopy batches)"

# compaction (reason "compaction") while mtcopy is active
if echo 1 >/proc/sys/vm/compact_memory; then ok "compact_memory with mtcopy active"; else bad "compact_memory"; fi

# [#16] the fallback tests that used mtcopy's test_skip_every, through debugfs
if [ -d $FI/fail_folio ]; then
	reset_stats mtcopy
	fault fail_folio 7 3
	migrate "mtcopy, every 3rd of 21 folios forgotten, THP" -t -s 64
	fault_off fail_folio
	check "[#16] fallbacks == the 7 injected ($(stat_of mtcopy fallbacks) of $(stat_of mtcopy folios))" eq "$(stat_of mtcopy fallbacks)" 7
	fault fail_batch 1
	migrate "mtcopy, a batch declined, 4K" -T -s 8
	fault_off fail_batch
	check "mtcopy declined == 1" eq "$(stat_of mtcopy declined)" 1
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
	check "migrator back to '[kernel]' ($(rd $M/migrator))" eq "$(rd $M/migrator)" "[kernel]"
	check "stats/mtcopy removed" [ ! -e $M/stats/mtcopy ]
	check "mtcopy/ removed" [ ! -e $M/mtcopy ]
	wait $pid
	res=$(cat "$out")
	if [[ $res == PASS* ]]; then ok "loop survived rmmod: $res"; else bad "loop across rmmod: $res"; fi
	load_mod mtcopy mm/mtcopy.ko || bad "reload mtcopy"
done
rmmod mtcopy && ok "final rmmod mtcopy" || bad "final rmmod mtcopy"

# ---- dcbm on the test DMA engine ---------------------------------------------------------
load_mod virt_dma drivers/dma/virt-dma.ko >/dev/null 2>&1
if load_mod test_dma_engine drivers/dma/test-dma-engine.ko && load_mod dcbm mm/dcbm.ko; then
	ok "load test_dma_engine and dcbm"
else
	bad "load test_dma_engine and dcbm"
fi
check "[#9] test engine max_seg_size defaults to 64K ($(rd $TDE/max_seg_size))" eq "$(rd $TDE/max_seg_size)" 65536
for s in folios_migrated folios_failures timeouts descriptors interrupts concurrent; do
	check "stats/dcbm/$s and stats/dcbm/syscall/$s exist" [ -f $M/stats/dcbm/$s -a -f $M/stats/dcbm/syscall/$s ]
done
write_einval $M/dcbm/channels 0
write_einval $M/dcbm/channels 17
write_einval $M/dcbm/timeout_ms 0
write_einval $M/dcbm/timeout_ms 60001
write_ok $M/dcbm/channels 16 16
write_err $M/migrator dcbm "No such device"
write_ok $M/dcbm/channels 2 2
write_ok $M/migrator dcbm "kernel [dcbm]"
check "dcbm holds 2 channels ($(rd $M/dcbm/held))" eq "$(rd $M/dcbm/held | wc -w)" 2
tde_d0=$(rd $TDE/descriptors); tde_i0=$(rd $TDE/interrupts)
reset_stats dcbm
migrate "dcbm 2 channels THP" -t -s $sizethp
read -r nl lp <<<"$(large_folios)"
nf=$(folios_of)
stats_moved dcbm
# a 2M folio is 32 descriptors of 64K, a 4K one (where THP failed) one
want=$((32 * ${nl:-0} + nf - ${nl:-0}))
check "[#9] 2M folios: 32 descriptors per folio at 64K segments ($(stat_of dcbm descriptors) == $want for $nl of $nf folios 2M)" eq "$(stat_of dcbm descriptors)" "$want"
check "[#9] the engine processed exactly those ($(( $(rd $TDE/descriptors) - tde_d0 )))" eq "$(( $(rd $TDE/descriptors) - tde_d0 ))" "$(stat_of dcbm descriptors)"
check "[#9] one interrupt per channel per batch: interrupts <= 2 * batches ($(stat_of dcbm interrupts) <= 2 * $(stat_of dcbm batches))" [ "$(stat_of dcbm interrupts)" -le $((2 * $(stat_of dcbm batches))) -a "$(stat_of dcbm interrupts)" -ge "$(stat_of dcbm batches)" ]
check "[#9] the engine raised at most those ($(( $(rd $TDE/interrupts) - tde_i0 )))" [ "$(( $(rd $TDE/interrupts) - tde_i0 ))" -le "$(stat_of dcbm interrupts)" ]
check "[#12] every folio copied by DMA ($(stat_of dcbm folios_migrated) == $nf)" eq "$(stat_of dcbm folios_migrated)" "$nf"
reset_stats dcbm
migrate "dcbm 2 channels 4K" -T -s $size4k
nf=$(folios_of)
check "[#9] 4K folios: one descriptor per folio ($(stat_of dcbm descriptors) == $nf)" eq "$(stat_of dcbm descriptors)" "$nf"
check "stats/dcbm/folios_migrated == $nf" eq "$(stat_of dcbm folios_migrated)" "$nf"
# [#12] failed descriptors: positively marked, failures exactly the hit folios
if [ -w "$THP/hugepages-64kB/enabled" ]; then
	echo never >"$THP/hugepages-2048kB/enabled"
	echo always >"$THP/hugepages-64kB/enabled"
	reset_stats dcbm
	f0=$(rd $TDE/failed)
	echo 7 >$TDE/fail_every
	migrate "dcbm fail_every=7 64K" -t -s $size4k
	echo 0 >$TDE/fail_every
	failed=$(( $(rd $TDE/failed) - f0 ))
	check "[#12] 64K: folios_failures == failed descriptors ($(stat_of dcbm folios_failures) == $failed)" eq "$(stat_of dcbm folios_failures)" "$failed"
	check "[#12] fallbacks == folios_failures" eq "$(stat_of dcbm fallbacks)" "$(stat_of dcbm folios_failures)"
	echo never >"$THP/hugepages-64kB/enabled"
	echo always >"$THP/hugepages-2048kB/enabled"
fi
reset_stats dcbm
f0=$(rd $TDE/failed)
echo 100 >$TDE/fail_every
migrate "dcbm fail_every=100 THP (32 descriptors a folio)" -t -s $sizethp
echo 0 >$TDE/fail_every
failed=$(( $(rd $TDE/failed) - f0 ))
check "[#12] THP: every failed descriptor fails its folio alone (0 < $(stat_of dcbm folios_failures) <= $failed)" [ "$(stat_of dcbm folios_failures)" -gt 0 -a "$(stat_of dcbm folios_failures)" -le "$failed" ]
check "[#12] fallbacks == folios_failures ($(stat_of dcbm fallbacks))" eq "$(stat_of dcbm fallbacks)" "$(stat_of dcbm folios_failures)"
# out-of-order completion
echo 1 >$TDE/reverse
reset_stats dcbm
migrate "dcbm reverse THP" -t -s $sizethp
echo 0 >$TDE/reverse
check "reverse: no fallbacks ($(stat_of dcbm fallbacks))" eq "$(stat_of dcbm fallbacks)" 0
# [#10] two processes migrating at once share the channels; both verified
reset_stats dcbm
"$bin" -t -s $size4k -l 8 -S 1 >/tmp/smoke-c1.out 2>&1 &
p1=$!
"$bin" -T -s $size4k -l 8 -S 2 >/tmp/smoke-c2.out 2>&1 &
p2=$!
wait $p1; wait $p2
for o in /tmp/smoke-c1.out /tmp/smoke-c2.out; do
	res=$(cat $o)
	if [[ $res == PASS* ]]; then ok "[#10] concurrent dcbm migration: $res"; else bad "[#10] concurrent dcbm migration: $res"; fi
done
check "[#10] batches overlapped on the channels (concurrent = $(stat_of dcbm concurrent))" gt0 "$(stat_of dcbm concurrent)"
check "[#10] copy_ns + wait_ns <= batch_ns" [ $(( $(stat_of dcbm copy_ns) + $(stat_of dcbm wait_ns) )) -le "$(stat_of dcbm batch_ns)" ]
# [#11] a DMA wait longer than the hung task timeout is no hung task
old_hung=$(rd /proc/sys/kernel/hung_task_timeout_secs)
echo 2 >/proc/sys/kernel/hung_task_timeout_secs
echo 5000 >$M/dcbm/timeout_ms
reset_stats dcbm
h0=$(rd $TDE/hung)
echo 600 >$TDE/hang_every
migrate "dcbm hang_every=600, timeout 5 s, hung_task_timeout_secs=2, 4K" -T -s 8
echo 0 >$TDE/hang_every
echo "${old_hung:-120}" >/proc/sys/kernel/hung_task_timeout_secs
echo 10000 >$M/dcbm/timeout_ms
hung=$(( $(rd $TDE/hung) - h0 ))
check "[#11] descriptors hung ($hung) and batches timed out ($(stat_of dcbm timeouts))" [ "$hung" -gt 0 -a "$(stat_of dcbm timeouts)" -gt 0 ]
check "[#11] fallbacks == folios_failures >= hung ($(stat_of dcbm fallbacks))" [ "$(stat_of dcbm fallbacks)" = "$(stat_of dcbm folios_failures)" -a "$(stat_of dcbm fallbacks)" -ge "$hung" ]
if dmesg | grep -q "blocked for more than"; then bad "[#11] the hung task detector reported a task"; else ok "[#11] no hung task reported during 5 s DMA waits"; fi
# rmmod dcbm while migrating; the engine cannot go while dcbm holds channels
"$bin" -T -s $size4k -l 10 >/tmp/smoke-d.out 2>&1 &
pid=$!
sleep 2
if rmmod test_dma_engine 2>/dev/null; then bad "test_dma_engine removed while dcbm held its channels"; else ok "test_dma_engine stays while dcbm holds its channels"; fi
if rmmod dcbm; then ok "rmmod dcbm during a migration loop"; else bad "rmmod dcbm during a migration loop"; fi
wait $pid
res=$(cat /tmp/smoke-d.out)
if [[ $res == PASS* ]]; then ok "loop survived rmmod dcbm: $res"; else bad "loop across rmmod dcbm: $res"; fi
check "migrator back to '[kernel]'" eq "$(rd $M/migrator)" "[kernel]"
rmmod test_dma_engine && ok "rmmod test_dma_engine" || bad "rmmod test_dma_engine"

# ---- the console must be clean ---------------------------------------------------------------
if dmesg | grep -E "WARNING:|BUG:|Oops|Call Trace|general protection|UBSAN|KASAN|blocked for more than" >/tmp/smoke-dmesg.txt; then
	bad "kernel log has warnings:"
	cat /tmp/smoke-dmesg.txt
else
	ok "kernel log is clean"
fi

echo "smoke: $pass passed, $fail failed"
[ "$fail" = 0 ]
exit $?
}
