#!/usr/bin/env bash
# bench/decode/run.sh — decoding study (the paper's Figure 4): time per output token (TPOT) and KV-cache bytes vs
# context length for rope, ropepp_eh and ropepp_ec, ropepp (bench/decode/decode_bench.c) and PyTorch
# (bench/decode/torch_decode.py: SDPA in a CUDA graph, torch.compile reduce-overhead, FlexAttention, the old matmul
# loop; the report's "PyTorch" is the fastest of the first three) in the same run: batch 8, the 376M shape (random
# weights, vocab 50304), contexts 2048 .. 32768; each ropepp row against the bandwidth floor (the bytes a step must
# read over the copy bandwidth measured here by bench/decode/copy_bw.py); and ropepp alone at batch 1 (latency) and
# batch 64 (throughput), whose caches are not prefilled (--fill zeros: the kernels' work does not depend on the
# values). Writes bench/decode/results.md, results.json and tpot.svg (and, where $OUT is set, $OUT/decode/ with the
# logs).
#
# Usage, from the repository root on the GPU machine:   bash bench/decode/run.sh
# Environment:
#   CTXS       contexts (default "2048 4096 8192 16384 32768")      BATCH (8)   STEPS (100)   WARMUP (10)
#   PES        default "rope ropepp_eh ropepp_ec"
#   TORCH_MODES  groups of torch_decode.py modes, one process each, run in this order after every ropepp run
#              (default "sdpa_graph,graph compile flex"; add eager to a group for the eager loop: ~60 ms a step)
#   TO_TORCH   seconds one PyTorch process may take (default 200: compiling takes ~20-40 s per context)
#   BATCHES_EXTRA  ropepp-only batches (default "1 64"; "" for none)
#   BUDGET_S   seconds after the build for all runs (default 330); runs that would start later are skipped
#   WORK       scratch folder (default /tmp/ropepp_bench_decode)
#   SMOKE=1    CPU check of this script: CPU decode_bench, torch on the CPU, tiny shapes; results in $WORK/results
# Runtime on an H200: about 2 minutes after the build (prefilling 32k tokens x 8 sequences dominates).
set -u -o pipefail
cd "$(dirname "$0")/../.." || exit 1
SMOKE=${SMOKE:-0}
WORK=${WORK:-/tmp/ropepp_bench_decode}
BUDGET_S=${BUDGET_S:-330}
PES=${PES:-rope ropepp_eh ropepp_ec}
export PYTHONUNBUFFERED=1
rm -rf "$WORK"
mkdir -p "$WORK/bin"
if [ "$SMOKE" = "1" ]; then
  RESULTS="$WORK/results"
  SHAPE="--dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 128 --vocab 512"
  CTXS=${CTXS:-16 48 96}; BATCH=${BATCH:-2}; STEPS=${STEPS:-4}; WARMUP=${WARMUP:-2}; BATCHES_EXTRA=${BATCHES_EXTRA-1 3}
  TORCH_MODES=${TORCH_MODES:-eager,static,sdpa_static,flex_static}; DEVICE=cpu; TARGET=decode_bench_cpu; CHUNK=32
  TO_OURS=60; TO_TORCH=${TO_TORCH:-120}
else
  RESULTS=bench/decode
  SHAPE="--dim 1024 --layers 8 --heads 8 --kv-heads 4 --ffn 3584 --vocab 50304"
  CTXS=${CTXS:-2048 4096 8192 16384 32768}; BATCH=${BATCH:-8}; STEPS=${STEPS:-100}; WARMUP=${WARMUP:-10}
  TORCH_MODES=${TORCH_MODES:-sdpa_graph,graph compile flex}; DEVICE=cuda; TARGET=decode_bench_gpu; CHUNK=1024; BATCHES_EXTRA=${BATCHES_EXTRA-1 64}
  TO_OURS=150; TO_TORCH=${TO_TORCH:-200}
fi
CTX_LIST=$(echo $CTXS | tr ' ' ',')
COMMAND="bash bench/decode/run.sh (CTXS='$CTXS' BATCH=$BATCH STEPS=$STEPS WARMUP=$WARMUP TORCH_MODES='$TORCH_MODES' TO_TORCH=$TO_TORCH BATCHES_EXTRA='$BATCHES_EXTRA')"
[ "$SMOKE" = "1" ] && COMMAND="SMOKE=1 $COMMAND"
T0=$(date +%s)
say() { echo "[$(( $(date +%s) - T0 ))s] $*"; }

# ---- build (flags as train_gpu's; binaries in $WORK/bin; not counted in BUDGET_S)
say "build: $TARGET"
make -j16 -f Makefile -f bench/decode/decode.mk DECODE_OUT="$WORK/bin" "$TARGET" > "$WORK/build.txt" 2>&1
BUILD_RC=$?
[ $BUILD_RC -eq 0 ] || { echo "BUILD FAILED (rc $BUILD_RC), ropepp runs will fail:"; tail -20 "$WORK/build.txt"; }
BIN="$WORK/bin/$TARGET"
say "build done (rc $BUILD_RC)"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi";
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" 2>&1 | tail -1; } | tee "$WORK/env.txt"
# the PyTorch decoder computes ropepp's function: cached decoding = ref/model.py's full forward (float64, CPU)
python3 bench/decode/torch_decode.py --check-ref > "$WORK/check_ref.txt" 2>&1
CHECK="torch_decode vs ref/model.py (float64): $(tail -1 "$WORK/check_ref.txt" | cut -c1-120)"
say "$CHECK"
# the floor's bandwidth, measured on this GPU in this run
if [ "$SMOKE" != "1" ]; then
  timeout -k 5 60 python3 bench/decode/copy_bw.py > "$WORK/copy.jsonl" 2> "$WORK/copy.err"
  say "copy bandwidth: $(tail -c 200 "$WORK/copy.jsonl")"
fi
START=$(date +%s)
DEADLINE=$(( START + BUDGET_S ))

run_one() {   # prog pe timeout cmd... : runs with the budget, records exit codes in runs.jsonl
  local prog=$1 pe=$2 to=$3; shift 3
  local rem=$(( DEADLINE - $(date +%s) ))
  if [ $rem -lt 20 ]; then
    printf '{"prog": "%s", "pe": "%s", "skipped": "not run: the %d s budget (BUDGET_S) was spent"}\n' "$prog" "$pe" "$BUDGET_S" >> "$WORK/runs.jsonl"
    say "$prog $pe: skipped (budget)"; return
  fi
  [ $rem -lt "$to" ] && to=$rem
  local t out err
  t=$(date +%s)
  if [ "$prog" = ropepp ]; then out="$WORK/ours.jsonl"; else out="$WORK/torch.jsonl"; fi   # torch-<modes>
  err="$WORK/${prog}_${pe}.err"
  timeout -k 10 "$to" "$@" >> "$out" 2> "$err"
  local rc=$?
  local tail_err
  tail_err=$(tail -c 300 "$err" | tr '\n"\\\t' '    ' | tr -cd '[:print:]')
  printf '{"prog": "%s", "pe": "%s", "rc": %d, "secs": %d, "timeout_s": %d, "stderr_tail": "%s"}\n' \
    "$prog" "$pe" "$rc" "$(( $(date +%s) - t ))" "$to" "$tail_err" >> "$WORK/runs.jsonl"
  say "$prog $pe: rc $rc, $(( $(date +%s) - t ))s"
}

for pe in $PES; do
  run_one ropepp "$pe" "$TO_OURS" "$BIN" $SHAPE --pe "$pe" --batch "$BATCH" --ctx "$CTX_LIST" --steps "$STEPS" \
    --warmup "$WARMUP" --chunk "$CHUNK"
done
for group in $TORCH_MODES; do   # the cheap baselines for every pe first, the compiled ones after
  for pe in $PES; do
    run_one "torch-${group//,/+}" "$pe" "$TO_TORCH" python3 bench/decode/torch_decode.py $SHAPE --pe "$pe" \
      --batch "$BATCH" --ctx "$CTX_LIST" --steps "$STEPS" --warmup "$WARMUP" --modes "$group" --device "$DEVICE"
  done
done
for b in $BATCHES_EXTRA; do
  for pe in $PES; do
    run_one ropepp "$pe" "$TO_OURS" "$BIN" $SHAPE --pe "$pe" --batch "$b" --ctx "$CTX_LIST" --steps "$STEPS" \
      --warmup "$WARMUP" --fill zeros
  done
done
say "runs done: $(( $(date +%s) - START )) s of the ${BUDGET_S} s budget"

python3 bench/decode/report.py --work "$WORK" --results "$RESULTS" --command "$COMMAND" --batch "$BATCH" \
  --notes "${GIT_COMMIT:+code: commit $GIT_COMMIT; }$CHECK; build rc $BUILD_RC; runs took $(( $(date +%s) - START )) s (budget $BUDGET_S s)"
rc=$?
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  mkdir -p "$OUT/decode"
  cp "$RESULTS/results.md" "$RESULTS/results.json" "$RESULTS/tpot.svg" "$OUT/decode/" 2>/dev/null
  tar czf "$OUT/decode/logs.tar.gz" -C "$WORK" --exclude=bin --exclude=results . 2>/dev/null
  say "copied results.md, results.json, tpot.svg, logs.tar.gz to $OUT/decode"
fi
say "results: $RESULTS/results.md"
exit $rc
