#!/usr/bin/env bash
# bench/attention/run.sh — the attention work of one GPU session in one go (repository root, GPU machine):
#   1. tests/test_gpu_fp32 and tests/test_gpu (bf16: the tensor-core attention), as `make test_gpu` runs them
#   2. compute-sanitizer racecheck + memcheck on `tests/test_gpu --quick` (includes tensor-core cases)
#   3. bench_attention.py: attention fwd/bwd alone vs PyTorch SDPA flash and cuDNN -> results.md / results.json
#   4. tests/test_gpu --bench-only: whole training steps at the 376M shape (rope, ropepp_eh, ropepp_ec)
# Usage: bash bench/attention/run.sh              builds with make + nvcc, results under $OUT (default /tmp/attn_out)
#        BIN=dir bash bench/attention/run.sh      uses prebuilt test_gpu, test_gpu_fp32, bench_attention from dir
set -u -o pipefail
cd "$(dirname "$0")/../.."
RES=${OUT:-/tmp/attn_out}
L=$RES/logs
mkdir -p "$L" "$RES/bench"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; nvcc --version | tail -2;
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"; } > "$L/env.txt" 2>&1
cat "$L/env.txt"
t0=$(date +%s)
if [ -z "${BIN:-}" ]; then
  # NO_NCCL=1: bench_attention is linked below without NCCL (it needs none)
  make -j16 tests/test_gpu tests/test_gpu_fp32 ropepp_cuda.o NO_NCCL=1 > "$L/build.txt" 2>&1 || { tail -30 "$L/build.txt"; exit 1; }
  nvcc -O3 -std=c++17 -I. -gencode=arch=compute_90a,code=sm_90a bench/attention/bench_attention.cu ropepp_cuda.o \
       -o bench_attention -lcublas -lcublasLt >> "$L/build.txt" 2>&1 || { tail -30 "$L/build.txt"; exit 1; }
  mkdir -p /tmp/attn_bin; cp tests/test_gpu tests/test_gpu_fp32 bench_attention /tmp/attn_bin/; BIN=/tmp/attn_bin
fi
rc=0
step() { echo "== $1 ($(( $(date +%s) - t0 )) s)"; }
step "test_gpu_fp32"
timeout 150 "$BIN/test_gpu_fp32" > "$L/test_gpu_fp32.txt" 2>&1 || rc=1
tail -1 "$L/test_gpu_fp32.txt"
step "test_gpu (bf16)"
timeout 150 "$BIN/test_gpu" > "$L/test_gpu_bf16.txt" 2>&1 || rc=1
tail -1 "$L/test_gpu_bf16.txt"
grep -h "FAIL" "$L"/test_gpu_*.txt | head -20
grep -A12 "long sequences" "$L/test_gpu_bf16.txt" | head -14
step "compute-sanitizer (quick cases)"
for tool in racecheck memcheck; do
  timeout 120 compute-sanitizer --tool $tool --error-exitcode 9 "$BIN/test_gpu" --quick > "$L/sanitizer_$tool.txt" 2>&1 || rc=1
  echo "$tool: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$L/sanitizer_$tool.txt" | tail -1) $(tail -1 "$L/sanitizer_$tool.txt")"
done
step "benchmark"
PYTHONUNBUFFERED=1 timeout 300 python3 bench/attention/bench_attention.py --driver "$BIN/bench_attention" --out "$RES/bench" ${BENCH_ARGS:-} \
  > "$L/bench.txt" 2>&1 || rc=1
grep -E "^  (ropepp|torch)" "$L/bench.txt"
step "training steps"
timeout 120 "$BIN/test_gpu" --bench-only > "$L/bench_step.txt" 2>&1 || rc=1
grep -E "train step|attention " "$L/bench_step.txt"
step "done rc=$rc"
(cd "$RES" && tar czf "$RES/attn_logs.tgz" logs bench)
exit $rc
