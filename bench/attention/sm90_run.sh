#!/usr/bin/env bash
# bench/attention/sm90_run.sh — the Hopper attention's whole check in one GPU call (repository root, H100/H200):
#   0. binaries: prebuilt ones from $BIN (bench/attention/build.sh, sm_90a) if they start here, else built here
#   1. `tests/test_gpu --quick` first (60 s at most: a hang or failure there ends the call, saving GPU time), then
#      tests/test_gpu (bf16) with ROPEPP_REQUIRE_SM90=1: the sm_90a forward, dk/dv and dq for every PE / GQA group /
#      HD 64, 128 / tails / backward path (dS^T stored, chunked, recomputed) against the CPU ops, determinism; then
#      tests/test_gpu_fp32 (unless SKIP_FP32=1)
#   2. compute-sanitizer memcheck and racecheck on `tests/test_gpu --quick` (includes sm_90a cases)
#   3. bench_attention.py: ours (sm_90a kernels, and the mma.sync ones beside it) vs SDPA flash and cuDNN
#   4. ncu (--clock-control none) of one sm90_fwd_kernel, sm90_bwd_dkv_kernel and sm90_bwd_dq_kernel launch per head
#      dim at T 4096 (rope): the kernels' limiters; and the duration of every kernel of one forward + backward (what
#      the op's time is made of); with STEPS including ncusrc, the hottest SASS instructions of the forward and
#      the dk/dv kernel (bench/attention/ncu_hot.py)
# Each step is bounded by `timeout`; logs and results under $OUT (default /tmp/sm90_out), packed into sm90_logs.tgz.
# Usage: BIN=tests/tmp/attn_build bash bench/attention/sm90_run.sh   [STEPS="test sanitize bench ncu"] [BENCH_ARGS=..]
set -u -o pipefail
cd "$(dirname "$0")/../.."
RES=${OUT:-/tmp/sm90_out}
L=$RES/logs
mkdir -p "$L" "$RES/bench"
STEPS=${STEPS:-"test sanitize bench ncu"}
t0=$(date +%s)
step() { echo "== $1 ($(( $(date +%s) - t0 )) s)"; }
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; nvcc --version | tail -2;
  ncu --version 2>&1 | tail -1;
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"; } > "$L/env.txt" 2>&1
cat "$L/env.txt"
if [ -n "${BIN:-}" ] && [ -x "$BIN/test_gpu" ] && ! ldd "$BIN/test_gpu" "$BIN/bench_attention" 2>&1 | grep -q "not found"; then
  echo "prebuilt binaries from $BIN"
else
  step "build (sm_90a)"
  B=/tmp/sm90_bin; mkdir -p $B
  NV="nvcc -O3 -std=c++17 -I. -gencode=arch=compute_90a,code=sm_90a -lineinfo"
  { gcc -std=c11 -O3 -I. -fopenmp -c tests/cpu_ref.c -o $B/cpu_ref_plain.o &&
    bash tests/cpu_ref_rename.sh $B/cpu_ref_plain.o $B/cpu_ref.o &&
    { $NV -c ropepp_cuda.cu -o $B/r.o & $NV -DROPEPP_FP32 -c ropepp_cuda.cu -o $B/r32.o & wait; } &&
    $NV tests/test_gpu.cu $B/cpu_ref.o $B/r.o -o $B/test_gpu -lcublas -lcublasLt -Xcompiler -fopenmp &&
    $NV -DROPEPP_FP32 tests/test_gpu.cu $B/cpu_ref.o $B/r32.o -o $B/test_gpu_fp32 -lcublas -lcublasLt -Xcompiler -fopenmp &&
    $NV bench/attention/bench_attention.cu $B/r.o -o $B/bench_attention -lcublas -lcublasLt; } > "$L/build.txt" 2>&1 ||
    { tail -30 "$L/build.txt"; exit 1; }
  BIN=$B
fi
rc=0
case " $STEPS " in *" test "*)
  step "test_gpu --quick (bf16)"
  if ! ROPEPP_REQUIRE_SM90=1 timeout 60 "$BIN/test_gpu" --quick > "$L/test_gpu_quick.txt" 2>&1; then
    tail -40 "$L/test_gpu_quick.txt"; grep -h "FAIL" "$L/test_gpu_quick.txt" | head -20
    step "quick checks failed or hung: stopping"
    (cd "$RES" && tar czf "$RES/sm90_logs.tgz" logs bench); exit 1
  fi
  tail -1 "$L/test_gpu_quick.txt"
  step "test_gpu (bf16, ROPEPP_REQUIRE_SM90=1)"
  ROPEPP_REQUIRE_SM90=1 timeout ${TEST_TIMEOUT:-240} "$BIN/test_gpu" > "$L/test_gpu_bf16.txt" 2>&1 || rc=1
  tail -1 "$L/test_gpu_bf16.txt"
  grep -h "FAIL\|Hopper" "$L/test_gpu_bf16.txt" | head -30
  if [ "${SKIP_FP32:-0}" != 1 ]; then
    step "test_gpu_fp32"
    timeout 200 "$BIN/test_gpu_fp32" > "$L/test_gpu_fp32.txt" 2>&1 || rc=1
    tail -1 "$L/test_gpu_fp32.txt"
  fi;;
esac
case " $STEPS " in *" sanitize "*)
  step "compute-sanitizer (quick cases)"
  for tool in memcheck racecheck; do
    timeout 150 compute-sanitizer --tool $tool --error-exitcode 9 "$BIN/test_gpu" --quick > "$L/sanitizer_$tool.txt" 2>&1 || rc=1
    echo "$tool: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$L/sanitizer_$tool.txt" | tail -1) $(tail -1 "$L/sanitizer_$tool.txt")"
  done;;
esac
case " $STEPS " in *" bench "*)
  step "benchmark"
  PYTHONUNBUFFERED=1 timeout ${BENCH_TIMEOUT:-300} python3 bench/attention/bench_attention.py --driver "$BIN/bench_attention" \
    --out "$RES/bench" --simt-T "" ${BENCH_ARGS:-} > "$L/bench.txt" 2>&1 || rc=1
  grep -E "^\| [0-9]+ \|" "$L/bench.txt" | head -40;;
esac
case " $STEPS " in *" ncu "*)
  step "ncu"
  timeout 100 ncu --clock-control none --metrics gpu__time_duration.sum "$BIN/bench_attention" --T 4096 --modes rope \
    --hd 128 --iters 1 --warmup 0 > "$L/ncu_durations.txt" 2>&1 || rc=1
  echo "kernel durations (rope T 4096 HD 128, one warm-up + one timed call):"
  grep -E "^  [a-z_]|gpu__time_duration" "$L/ncu_durations.txt" | paste - - | awk '{print $1, $(NF-1), $NF}' | head -40
  for k in sm90_fwd_kernel sm90_bwd_dkv_kernel sm90_bwd_dq_kernel; do for hd in 128 64; do
    timeout 150 ncu --clock-control none --kernel-name regex:$k --launch-skip 1 --launch-count 1 --section SpeedOfLight \
      --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy \
      --section LaunchStats --section SchedulerStats "$BIN/bench_attention" --T 4096 --modes rope --hd $hd --iters 2 --warmup 0 \
      > "$L/ncu_${k}_hd$hd.txt" 2>&1 || rc=1
    echo "$k hd $hd:"
    grep -E "Duration|Compute \(SM\) Throughput|No Eligible|Issued Warp|Warp Cycles Per Issued|DRAM Throughput|Registers Per|Shared Memory Configuration Size" "$L/ncu_${k}_hd$hd.txt" | head -14
  done; done
  # the tensor pipe's busy share and the stall reasons (metric names of Nsight Compute 2025.x; a missing one only
  # fails this log)
  for k in sm90_fwd_kernel sm90_bwd_dkv_kernel sm90_bwd_dq_kernel; do
    timeout 100 ncu --clock-control none --kernel-name regex:$k --launch-skip 1 --launch-count 1 \
      --metrics sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_tensor_op_gmma.sum,smsp__average_warps_issue_stalled_long_scoreboard_per_issue_active.ratio,smsp__average_warps_issue_stalled_wait_per_issue_active.ratio,smsp__average_warps_issue_stalled_math_pipe_throttle_per_issue_active.ratio,smsp__average_warps_issue_stalled_barrier_per_issue_active.ratio,smsp__average_warps_issue_stalled_membar_per_issue_active.ratio,smsp__average_warps_issue_stalled_short_scoreboard_per_issue_active.ratio,smsp__average_warps_issue_stalled_lg_throttle_per_issue_active.ratio,smsp__average_warps_issue_stalled_mio_throttle_per_issue_active.ratio,sm__cycles_elapsed.avg,smsp__inst_executed.sum \
      "$BIN/bench_attention" --T 4096 --modes rope --hd 128 --iters 2 --warmup 0 > "$L/ncu_metrics_$k.txt" 2>&1
    echo "$k metrics:"; grep -E "sm__|smsp__" "$L/ncu_metrics_$k.txt" | head -14
  done;;
esac
case " $STEPS " in *" ncusrc "*)
  # where the warps of the forward and the dk/dv kernel wait, per SASS instruction (rope, T 4096, HD 128)
  step "ncu source counters"
  for k in sm90_fwd_kernel sm90_bwd_dkv_kernel; do
    timeout 150 ncu --clock-control none --kernel-name regex:$k --launch-skip 1 --launch-count 1 --section SourceCounters \
      --section WarpStateStats -f -o "$L/src_$k" "$BIN/bench_attention" --T 4096 --modes rope --hd 128 --iters 2 \
      --warmup 0 > "$L/ncusrc_$k.log" 2>&1 || rc=1
    ncu -i "$L/src_$k.ncu-rep" --page source --csv --print-source sass > "$L/sass_$k.csv" 2>&1 || rc=1
    echo "$k:"; python3 bench/attention/ncu_hot.py "$L/sass_$k.csv" 40 | tee "$L/hot_$k.txt" | head -45
    rm -f "$L/src_$k.ncu-rep"
  done;;
esac
step "done rc=$rc"
(cd "$RES" && tar czf "$RES/sm90_logs.tgz" logs bench)
exit $rc
