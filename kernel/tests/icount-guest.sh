#!/bin/bash
# In-guest part of icount-bench.sh: move_pages(2) cost at 4K, 64K and 2M
# folios.  Prints "RESULT mode=M size=S rep=R ns=N" lines; under
# "-icount shift=0" one guest nanosecond is one guest instruction.
# Env: MODES (default: "default", plus "batched" on a patched kernel),
# REPS (default 5), MIB (default 16).
set -u
{
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=$here/migrate_smoke
M=/sys/kernel/mm/migration
THP=/sys/kernel/mm/transparent_hugepage
reps=${REPS:-5}
mib=${MIB:-16}
modes=${MODES:-default}
[ -e $M/batch_kernel_copy ] && [ -z "${MODES:-}" ] && modes="default batched"
echo "icount-guest: kernel $(uname -r), modes: $modes, $reps reps of $mib MiB"
thp() { # SIZE: which THP sizes are on
	echo never >$THP/hugepages-2048kB/enabled
	echo never >$THP/hugepages-64kB/enabled
	case $1 in
	64K) echo always >$THP/hugepages-64kB/enabled ;;
	2M) echo always >$THP/hugepages-2048kB/enabled ;;
	esac
}
for mode in $modes; do
	if [ -e $M/batch_kernel_copy ]; then
		echo $([ $mode = batched ] && echo 1 || echo 0) >$M/batch_kernel_copy
		echo 512 >$M/batch_size
	fi
	for size in 4K 64K 2M; do
		thp $size
		flag=$([ $size = 4K ] && echo -T || echo -t)
		# one untimed run first, so that every timed one starts alike
		"$bin" $flag -s "$mib" -l 2 -S 99 >/dev/null
		for rep in $(seq 1 "$reps"); do
			out=$("$bin" $flag -s "$mib" -l 2 -S "$rep")
			if [[ $out =~ ([0-9]+\.[0-9]+)\ s\ in\ move_pages ]]; then
				ns=$(awk -v s="${BASH_REMATCH[1]}" 'BEGIN { printf "%.0f", s * 1e9 }')
				echo "RESULT mode=$mode size=$size rep=$rep ns=$ns"
			else
				echo "RESULT-FAIL mode=$mode size=$size rep=$rep $out"
			fi
		done
	done
done
[ -e $M/stats/kernel/batches ] && echo "icount-guest: stats/kernel/batches=$(cat $M/stats/kernel/batches)"
echo "icount-guest: done"
}
