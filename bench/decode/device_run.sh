#!/usr/bin/env bash
# bench/decode/device_run.sh — the decoding work in one GPU call: build (make gpu and the bench; only links where the
# objects are up to date), the decoding checks, then bench/decode/run.sh; logs and results to $OUT.
#   tests/test_infer_gpu   cached decoding = full forward for every PE; the device loop (model_sample +
#                          model_decode_next) = the host loop; graph-replayed steps = uncaptured ones; sample_forward
#                          = sample_token
#   tests/test_gpu_fp32    every op against the CPU (the cached attention cases: the split-K kernel with the position
#                          read from device memory, every PE, head dims 12 to 128, noise, ALiBi, FoPE)
# Usage (repository root, GPU machine):  bash bench/decode/device_run.sh
# Environment: CHECKS=0 skips the checks, CHECKS=infer runs test_infer_gpu alone; BENCH=0 skips the benchmark; the
# rest goes to run.sh (CTXS, PES, ...).
set -u -o pipefail
cd "$(dirname "$0")/../.." || exit 1
OUT=${OUT:-/tmp/ropepp_decode_out}
mkdir -p "$OUT"
t0=$(date +%s)
make -j16 gpu GPU_ARCH=${GPU_ARCH:-90} > "$OUT/build.txt" 2>&1 || { tail -30 "$OUT/build.txt"; echo "BUILD FAILED"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
rc=0
if [ "${CHECKS:-1}" != "0" ]; then
  timeout -k 5 120 ./tests/test_infer_gpu > "$OUT/test_infer_gpu.txt" 2>&1 || { echo "FAIL - test_infer_gpu"; rc=1; }
  grep "^FAIL\|error" "$OUT/test_infer_gpu.txt"; tail -1 "$OUT/test_infer_gpu.txt"
fi
if [ "${CHECKS:-1}" = "1" ]; then
  timeout -k 5 150 ./tests/test_gpu_fp32 --no-fixtures > "$OUT/test_gpu_fp32.txt" 2>&1 || { echo "FAIL - test_gpu_fp32"; rc=1; }
  grep "^FAIL" "$OUT/test_gpu_fp32.txt" | head -20; grep -i "cached" "$OUT/test_gpu_fp32.txt" | tail -3; tail -2 "$OUT/test_gpu_fp32.txt"
  echo "checks: $(( $(date +%s) - t0 )) s"
fi
if [ "${BENCH:-1}" = "1" ]; then
  bash bench/decode/run.sh > "$OUT/bench.txt" 2>&1 || { echo "FAIL - bench (rc $?)"; rc=1; }
  grep -v "^|" "$OUT/bench.txt" | tail -25
  sed -n '/## Against the bandwidth floor/,$p' bench/decode/results.md | head -80
fi
echo "total: $(( $(date +%s) - t0 )) s"
exit $rc
