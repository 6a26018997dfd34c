#!/usr/bin/env bash
# bench/decode/profile.sh — where one decode step's time goes, kernel by kernel, from Nsight Compute (ncu).
# For each PE, decode_bench runs the 376M shape at batch 8 with the cache at CTX positions (--fill zeros: the
# kernels' work does not depend on the values), one untimed and one timed step, launched without a CUDA graph so
# that ncu sees each kernel; ncu reads every kernel's duration, DRAM bytes and DRAM throughput (--clock-control
# none: the clocks are left as they are). bench/decode/profile_report.py then takes the kernels of the last step
# and sums them by kind (attention, combine, GEMM, other), with the bandwidth each reached.
# Usage (GPU machine, repository root, after `make gpu`):  bash bench/decode/profile.sh      ($OUT/decode_prof/)
# Environment: PES (rope ropepp_eh ropepp_ec), CTX (32768), BATCH (8). ~20 s per PE.
set -u -o pipefail
cd "$(dirname "$0")/../.." || exit 1
P=${OUT:-/tmp}/decode_prof
mkdir -p "$P"
make -f Makefile -f bench/decode/decode.mk decode_bench_gpu > "$P/build.txt" 2>&1 || { tail -20 "$P/build.txt"; echo "FAIL - decode_bench build"; exit 1; }
rc=0
for pe in ${PES:-rope ropepp_eh ropepp_ec}; do
    timeout -k 5 120 ncu --clock-control none --csv --page raw --print-units base \
        --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,launch__grid_size \
        /tmp/ropepp_bench/decode_bench_gpu --pe "$pe" --ctx "${CTX:-32768}" --batch "${BATCH:-8}" --fill zeros \
        --warmup 1 --steps 1 --graph 0 > "$P/ncu_$pe.csv" 2> "$P/ncu_$pe.err" || { echo "FAIL - ncu $pe (rc $?): $(tail -3 "$P/ncu_$pe.err")"; rc=1; }
done
python3 bench/decode/profile_report.py "$P"/ncu_*.csv > "$P/profile.md" 2>&1 || { echo "FAIL - profile_report"; rc=1; }
cat "$P/profile.md"
exit $rc
