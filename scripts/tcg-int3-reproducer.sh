#!/usr/bin/env bash
# Reproducer for the multi-threaded TCG "Oops: int3" of a 2-vCPU Linux 6.12 guest.
#
# Under QEMU 7.2 (Debian 12), multi-threaded TCG lets one vCPU run a stale translation
# of kernel text that the other vCPU is live-patching (text_poke_bp: int3 first, then
# the new bytes); the guest dies with "Oops: int3 ... Fatal exception" at a static-key
# site such as ttwu_do_activate. Enabling any trace event patches such sites: it starts
# the cmdline recording, which hooks the sched_wakeup/sched_switch tracepoints.
#
# Each boot: the stock Debian 6.12 kernel from the workbench cache, booted by virtme-ng
# (vng) under TCG with 2 vCPUs. Inside the guest, pairs of processes ping-pong a byte
# through pipes (so both vCPUs keep waking tasks) while a loop switches a migrate trace
# event on and off (one "toggle" = 1 then 0) in a tracing instance of its own, for the
# given number of minutes. The host watches the guest's output and kernel console (one
# log file per boot) and kills QEMU when the time is up or the guest has died.
#
# Usage: scripts/tcg-int3-reproducer.sh [--qemu BIN] [--tcg multi|single] [--minutes M]
#            [--boots N] [--log-dir DIR] [--kernel PATH] [--pairs P] [--cross]
#            [--events "GROUP/EVENT ..."] [--every K]
#   e.g. scripts/tcg-int3-reproducer.sh --qemu /opt/qemu10/bin/qemu-system-x86_64 \
#            --tcg multi --minutes 15 --boots 3
# Exit status: 0 every boot survived, 1 some boot died, 2 a boot could not run the loop.
set -euo pipefail

usage() { sed -n '/^# Usage:/,/^# Exit status/p' "$0" | sed 's/^# \{0,1\}//'; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
QEMU=/usr/bin/qemu-system-x86_64
[ -x "$QEMU" ] || QEMU=$(command -v qemu-system-x86_64 || true)
TCG=multi
MINUTES=15
BOOTS=1
LOG_DIR=
KERNEL=
PAIRS=2          # ping-pong pairs; pair i runs on CPU i%2 (both ends, unless --cross)
CROSS=0          # --cross: the two ends of a pair on different CPUs (remote wakeups)
EVENTS="migrate/mm_migrate_pages"
EVERY=10         # the guest prints a progress line every EVERY toggles
BOOT_TIMEOUT=${BOOT_TIMEOUT:-600}   # s from QEMU's start to the loop's start
STALL=${STALL:-180}                 # s without a new guest line in the loop = hung

while [ $# -gt 0 ]; do
  case $1 in
    --qemu) QEMU=$2; shift 2 ;;
    --tcg) TCG=$2; shift 2 ;;
    --minutes) MINUTES=$2; shift 2 ;;
    --boots) BOOTS=$2; shift 2 ;;
    --log-dir) LOG_DIR=$2; shift 2 ;;
    --kernel) KERNEL=$2; shift 2 ;;
    --pairs) PAIRS=$2; shift 2 ;;
    --cross) CROSS=1; shift ;;
    --events) EVENTS=$2; shift 2 ;;
    --every) EVERY=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done
case $TCG in multi|single) ;; *) echo "--tcg must be multi or single" >&2; exit 2 ;; esac
[[ $MINUTES =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "--minutes must be a number" >&2; exit 2; }
[[ $BOOTS =~ ^[1-9][0-9]*$ && $PAIRS =~ ^[0-9]+$ && $EVERY =~ ^[1-9][0-9]*$ ]] ||
  { echo "--boots/--pairs/--every must be integers" >&2; exit 2; }
[ -n "$QEMU" ] && [ -x "$QEMU" ] || { echo "no QEMU binary: ${QEMU:-qemu-system-x86_64 not on PATH}" >&2; exit 2; }

VNG=$REPO/.venv/bin/vng
[ -x "$VNG" ] || VNG=$(command -v vng || true)
[ -n "$VNG" ] || { echo "vng (virtme-ng) not found: run scripts/setup.sh" >&2; exit 2; }
export PATH="$(dirname "$VNG"):$PATH"   # vng runs virtme-run, which sits beside it

# The stock kernel the workbench unpacked (workbench kernel fetch-stock).
if [ -z "$KERNEL" ]; then
  CACHE=${WORKBENCH_CACHE:-$HOME/.cache/migration-workbench}
  KERNEL=$(ls "$CACHE"/kernels/stock/*/boot/vmlinuz-* 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$KERNEL" ] || { echo "no stock kernel under $CACHE/kernels/stock: run" \
                               "'.venv/bin/workbench kernel fetch-stock' or give --kernel" >&2; exit 2; }
fi
[ -e "$KERNEL" ] || { echo "no kernel at $KERNEL" >&2; exit 2; }

LOG_DIR=${LOG_DIR:-/tmp/tcg-int3-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$LOG_DIR"
LOG_DIR=$(cd "$LOG_DIR" && pwd)   # the guest sees the host's / read-only: it reads its scripts here
LOOP_SECONDS=$(awk -v m="$MINUTES" 'BEGIN { printf "%d", m * 60 }')

# --- the guest side --------------------------------------------------------------------
# A byte ping-ponged between two processes through two pipes: every byte is a wakeup.
# pingpong.py CPU: the forked child end runs on CPU, the parent where it was started.
cat > "$LOG_DIR/pingpong.py" <<'EOF'
import os, sys
r1, w1 = os.pipe()
r2, w2 = os.pipe()
if os.fork() == 0:
    os.sched_setaffinity(0, {int(sys.argv[1])})
    while True:
        os.read(r1, 1)
        os.write(w2, b"x")
else:
    while True:
        os.write(w1, b"x")
        os.read(r2, 1)
EOF

cat > "$LOG_DIR/guest-loop.sh" <<'EOF'
#!/bin/sh
# Runs as root inside the guest: guest-loop.sh SECONDS PAIRS CROSS "GROUP/EVENT ..." DIR EVERY
# Every line the host acts on starts with "REPRO ".
DUR=$1 PAIRS=$2 CROSS=$3 EVENTS=$4 DIR=$5 EVERY=$6
T=/sys/kernel/tracing
I=$T/instances/repro
fail() { echo "REPRO FAIL $*"; exit 1; }
# uptime in centiseconds ("123.45" -> 12345)
now_cs() { read -r up _ < /proc/uptime; echo "${up%.*}${up#*.}"; }

[ -d $T/instances ] || mount -t tracefs nodev $T || fail "cannot mount tracefs on $T"
[ -d $I ] || mkdir $I || fail "cannot create tracing instance $I"
for e in $EVENTS; do
  [ -w $I/events/$e/enable ] || fail "no trace event $e in $I/events"
  echo 1 > $I/events/$e/enable || fail "cannot enable $e"
  grep -qx "${e%%/*}:${e#*/}" $I/set_event || fail "$e enabled but not in $I/set_event"
  echo 0 > $I/events/$e/enable || fail "cannot disable $e"
done
command -v taskset >/dev/null || fail "no taskset in the guest"
command -v python3 >/dev/null || fail "no python3 in the guest"

# the wakers: pair i on CPU i%2 (with CROSS=1 its second process on the other CPU)
p=0
while [ $p -lt "$PAIRS" ]; do
  a=$((p % 2)); b=$a; [ "$CROSS" = 1 ] && b=$(((p + 1) % 2))
  # the parent end on CPU a (taskset); the child end moves itself to CPU b
  taskset -c $a python3 "$DIR/pingpong.py" $b &
  p=$((p + 1))
done
w=0   # python's start over 9p under TCG takes a while: up to 120 s for all of them
while [ "$(pgrep -fc pingpong.py)" -lt $((2 * PAIRS)) ]; do
  [ $w -lt 120 ] || fail "the ping-pong processes did not start"
  sleep 1; w=$((w + 1))
done
for pid in $(pgrep -f pingpong.py); do echo "REPRO waker $pid on CPU $(taskset -cp $pid | sed 's/.*: //')"; done

read -r up0 _ < /proc/uptime
t0=$(now_cs)
echo "REPRO START uptime=$up0 events=$(echo $EVENTS | tr ' ' ,) pairs=$PAIRS cross=$CROSS seconds=$DUR"
n=0
while :; do
  el=$(( $(now_cs) - t0 ))
  [ $el -ge $((DUR * 100)) ] && break
  for v in 1 0; do
    for e in $EVENTS; do
      echo $v > $I/events/$e/enable || fail "cannot write $v to $e/enable"
      read -r got < $I/events/$e/enable
      [ "$got" = $v ] || fail "$e/enable reads '$got' after writing $v"
    done
  done
  n=$((n + 1))
  [ $((n % EVERY)) = 0 ] && echo "REPRO toggles=$n elapsed=$((el / 100)).$((el % 100 / 10))"
done
echo "REPRO DONE survived toggles=$n elapsed=$((el / 100)).$((el % 100 / 10))"
pkill -f pingpong.py
exit 0
EOF

# --- the host side ---------------------------------------------------------------------
QEMU_VERSION=$("$QEMU" --version | head -1)
echo "QEMU: $QEMU ($QEMU_VERSION), -accel tcg,thread=$TCG; kernel: $KERNEL"
echo "loop: $MINUTES min, $BOOTS boot(s), events: $EVENTS, pairs: $PAIRS$([ $CROSS = 1 ] && echo ' (cross-CPU)')," \
     "progress every $EVERY toggles; logs: $LOG_DIR"

OOPS_RE='Oops:|BUG:|Kernel panic|general protection fault|Fatal exception|kernel BUG'
PGID=
cleanup() {   # kill the vng/QEMU process group this script started, if any
  if [ -n "$PGID" ] && kill -0 -- "-$PGID" 2>/dev/null; then
    kill -TERM -- "-$PGID" 2>/dev/null || true
    for _ in 1 2 3 4 5; do kill -0 -- "-$PGID" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$PGID" 2>/dev/null || true
  fi
  PGID=
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

# result of one boot from its log: sets SECS TOGGLES OOPS (grep -a: QEMU may write
# binary bytes into the log, and grep then prints "binary file matches" instead of lines)
analyse() {
  local log=$1
  # the first oops-like line, and the kernel RIP line after it (where it died)
  OOPS=$(awk -v re="$OOPS_RE" '$0 ~ re && !o { o = $0; next }
           o && /RIP: 0010:/ { sub(/^\[[ 0-9.]*\] */, ""); o = o " / " $0; exit }
           END { print o }' "$log" | tr -d '\r')
  TOGGLES=$(grep -aoE 'REPRO (toggles=|DONE survived toggles=)[0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' || true)
  TOGGLES=${TOGGLES:-0}
  SECS=
  if [ -n "$OOPS" ]; then
    # seconds into the loop: the oops line's printk time minus the uptime at the loop's start,
    # and the toggles done: the last progress line before the oops
    SECS=$(awk -v re="$OOPS_RE" '
      /REPRO START uptime=/ { split($0, a, "uptime="); split(a[2], b, " "); t0 = b[1] }
      /REPRO toggles=/ && !dead { split($0, a, "toggles="); split(a[2], b, " "); tog = b[1] }
      $0 ~ re && !dead { dead = 1; if (match($0, /\[ *[0-9]+\.[0-9]+\]/)) {
          s = substr($0, RSTART + 1, RLENGTH - 2); gsub(/ /, "", s); if (t0 != "") printf "%.1f %d", s - t0, tog } }
    ' "$log")
    TOGGLES=${SECS#* }; SECS=${SECS% *}
    [[ $TOGGLES =~ ^[0-9]+$ ]] || TOGGLES=0
  fi
}

died=0 broken=0
printf 'boot\tresult\tseconds_into_loop\ttoggles\toops\n' > "$LOG_DIR/summary.txt"
for boot in $(seq 1 "$BOOTS"); do
  dir=$LOG_DIR/boot-$boot
  rm -rf "$dir"; mkdir -p "$dir"
  log=$dir/guest.log
  # vng's stdout/stderr (the guest loop's output, and with -v the kernel's serial console)
  # go through a pipe: QEMU reopens /proc/self/fd/1 and /proc/self/fd/2, which on a plain
  # file would truncate it and write at offsets of its own
  mkfifo "$dir/pipe"
  cat "$dir/pipe" > "$log" &
  catpid=$!
  cmd=("$VNG" --run "$KERNEL" -v --disable-kvm --cpus 2 --memory 1G --qemu "$QEMU"
       --exec "sh $LOG_DIR/guest-loop.sh $LOOP_SECONDS $PAIRS $CROSS '$EVENTS' $LOG_DIR $EVERY"
       "--qemu-opts=-accel tcg,thread=$TCG")
  printf '%q ' "${cmd[@]}" > "$dir/command"; echo >> "$dir/command"
  # a session of its own (setsid), so that the whole vng/QEMU tree can be killed by group
  (cd "$LOG_DIR" && exec setsid "${cmd[@]}" < /dev/null > "$dir/pipe" 2>&1) &
  PGID=$!
  t_boot=$(date +%s)
  echo "boot $boot: started (log $log)"
  result= t_start= t_line=$t_boot size=0
  while [ -z "$result" ]; do
    sleep 2
    now=$(date +%s)
    if grep -aq 'REPRO FAIL' "$log"; then result=error; break; fi
    if grep -aqE "$OOPS_RE" "$log"; then sleep 5; result=died; break; fi   # 5 s more of the oops
    if grep -aq 'REPRO DONE' "$log"; then result=survived; break; fi
    if [ -z "$t_start" ] && grep -aq 'REPRO START' "$log"; then
      t_start=$now; echo "boot $boot: loop started $((now - t_boot)) s after QEMU's start"
    fi
    s=$(stat -c %s "$log"); [ "$s" != "$size" ] && { size=$s; t_line=$now; }
    if ! kill -0 "$PGID" 2>/dev/null; then
      sleep 1; grep -aq 'REPRO DONE' "$log" && { result=survived; break; }
      grep -aqE "$OOPS_RE" "$log" && { result=died; break; }
      if [ -n "$t_start" ]; then result=died-exited; else result=error; fi; break
    fi
    if [ -z "$t_start" ] && (( now - t_boot > BOOT_TIMEOUT )); then result=error; break; fi
    if [ -n "$t_start" ] && (( now - t_line > STALL )); then result=died-hung; break; fi
    if [ -n "$t_start" ] && (( now - t_start > LOOP_SECONDS + 120 )); then result=died-hung; break; fi
  done
  cleanup
  wait "$catpid" 2>/dev/null || true
  rm -f "$dir/pipe"
  analyse "$log"
  case $result in
    survived) line="survived: $TOGGLES toggles in $MINUTES min" ;;
    died) died=$((died + 1))
          line="DIED ${SECS:-?} s into the loop after $TOGGLES toggles (counted every $EVERY): $OOPS" ;;
    died-*) died=$((died + 1)); line="DIED (${result#died-}, no oops line) after $TOGGLES toggles" ;;
    *) broken=$((broken + 1))
       line="ERROR: the loop did not run: $(grep -a -m1 'REPRO FAIL' "$log" || echo "no REPRO START; see $log")" ;;
  esac
  echo "boot $boot: $line"
  printf '%s\t%s\t%s\t%s\t%s\n' "$boot" "$result" "${SECS:--}" "$TOGGLES" "${OOPS:--}" >> "$LOG_DIR/summary.txt"
done

echo "summary ($QEMU_VERSION, tcg $TCG, $MINUTES min): $((BOOTS - died - broken)) survived," \
     "$died died, $broken could not run, of $BOOTS boot(s); table in $LOG_DIR/summary.txt"
if ((broken)); then exit 2; fi
if ((died)); then exit 1; fi
exit 0
