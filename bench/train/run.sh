#!/usr/bin/env bash
# bench/train/run.sh — training throughput of ropepp (./train_gpu) against PyTorch eager and torch.compile on the
# same GPU in one run: rope, ropepp_eh and ropepp_ec at three shapes
#   376m_t4096  the paper's 376M shape: C 1024, 8 layers, 8 heads, 4 kv heads, F 3584, V 50304, T 4096, B 8
#   small       ropepp's train defaults: C 128, 4 layers, 4 heads, 2 kv heads, F 384, V 256, T 128, B 16
#   376m_t1024  the 376M dims at T 1024, B 32 (the same 32768 tokens per step as 376m_t4096)
# on random tokens, then one Markdown table per position embedding and the EC/rope and EH/rope step-time ratios
# in bench/train/results.md and results.json (and, where $OUT is set, $OUT/train/ with the logs).
#
# Usage, from the repository root on the GPU machine:   bash bench/train/run.sh
# Environment:
#   ROPEPP_PEAK_TFLOPS  peak for MFU (default 989: H100 SXM dense bf16 datasheet; bench/peak/ measured 770 for the bf16 matmul)
#   BUDGET_S            seconds after the build for all runs (default 420). PyTorch runs that would start late
#                       are cut to eager (less than COMPILE_NEED_S left) or skipped (less than 30 s left)
#   COMPILE_NEED_S      seconds a PyTorch process with torch.compile is assumed to need (default 150)
#   COMPILE_SCOPE       model (torch.compile(model), default) or layer (each decoder layer compiled)
#   TORCH_MODES         torch_train.py's modes, one process per shape and pe (default "eager,compile"; "compile"
#                       alone times the strongest PyTorch in about half the time)
#   SHAPES              the shapes to run, in order (default "376m_t4096 small 376m_t1024")
#   PES                 default "rope ropepp_eh ropepp_ec"
#   WORK                scratch folder (default /tmp/ropepp_bench_train): shards, checkpoints, logs
#   SMOKE=1             CPU check of this script: ./train and --device cpu on tiny shapes; results in $WORK/results
# Runtime on an H100: about 7-8 minutes after the build (torch.compile dominates), within BUDGET_S.
set -u -o pipefail
cd "$(dirname "$0")/../.." || exit 1
SMOKE=${SMOKE:-0}
WORK=${WORK:-/tmp/ropepp_bench_train}
PEAK=${ROPEPP_PEAK_TFLOPS:-989}
export ROPEPP_PEAK_TFLOPS=$PEAK
if [ -n "${ROPEPP_PEAK_TFLOPS_SOURCE:-}" ]; then PEAK_SOURCE=$ROPEPP_PEAK_TFLOPS_SOURCE
elif [ "$PEAK" = "989" ]; then PEAK_SOURCE="H100 SXM dense bf16 datasheet value (default; the measured 8192^3 bf16 matmul on this workplace's H100 is ~798)"
else PEAK_SOURCE="ROPEPP_PEAK_TFLOPS=$PEAK"; fi
BUDGET_S=${BUDGET_S:-420}
COMPILE_NEED_S=${COMPILE_NEED_S:-150}
COMPILE_SCOPE=${COMPILE_SCOPE:-model}
TORCH_MODES=${TORCH_MODES:-eager,compile}
SHAPES=${SHAPES:-376m_t4096 small 376m_t1024}
PES=${PES:-rope ropepp_eh ropepp_ec}
export PYTHONUNBUFFERED=1
COMMAND="bash bench/train/run.sh (ROPEPP_PEAK_TFLOPS=$PEAK BUDGET_S=$BUDGET_S COMPILE_SCOPE=$COMPILE_SCOPE SHAPES='$SHAPES' TORCH_MODES=$TORCH_MODES)"
[ "$SMOKE" = "1" ] && COMMAND="SMOKE=1 $COMMAND"

rm -rf "$WORK"
mkdir -p "$WORK/data"
if [ "$SMOKE" = "1" ]; then RESULTS="$WORK/results"; else RESULTS=bench/train; fi
T0=$(date +%s)
say() { echo "[$(( $(date +%s) - T0 ))s] $*"; }

# ---- shapes: the flags that train/train_gpu and torch_train.py both take; steps per side
declare -A ARGS OURS_STEPS TORCH_STEPS TORCH_WARMUP OURS_TIMEOUT
if [ "$SMOKE" = "1" ]; then
  ARGS[376m_t4096]="--dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 128 --vocab 512 --seq 64 --batch 2"
  ARGS[small]="--dim 32 --layers 2 --heads 4 --kv-heads 2 --ffn 64 --vocab 256 --seq 32 --batch 4"
  ARGS[376m_t1024]="--dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 128 --vocab 512 --seq 16 --batch 8"
  for s in 376m_t4096 small 376m_t1024; do OURS_STEPS[$s]=8; TORCH_STEPS[$s]=3; TORCH_WARMUP[$s]=1; OURS_TIMEOUT[$s]=60; done
  BIN=./train; DEVICE=cpu; VOCAB_BIG=512
else
  ARGS[376m_t4096]="--dim 1024 --layers 8 --heads 8 --kv-heads 4 --ffn 3584 --vocab 50304 --seq 4096 --batch 8"
  ARGS[small]="--dim 128 --layers 4 --heads 4 --kv-heads 2 --ffn 384 --vocab 256 --seq 128 --batch 16"
  ARGS[376m_t1024]="--dim 1024 --layers 8 --heads 8 --kv-heads 4 --ffn 3584 --vocab 50304 --seq 1024 --batch 32"
  OURS_STEPS[376m_t4096]=30; OURS_STEPS[small]=100; OURS_STEPS[376m_t1024]=30
  TORCH_STEPS[376m_t4096]=20; TORCH_STEPS[small]=50; TORCH_STEPS[376m_t1024]=20
  TORCH_WARMUP[376m_t4096]=5; TORCH_WARMUP[small]=10; TORCH_WARMUP[376m_t1024]=5
  OURS_TIMEOUT[376m_t4096]=150; OURS_TIMEOUT[small]=60; OURS_TIMEOUT[376m_t1024]=150
  BIN=./train_gpu; DEVICE=cuda; VOCAB_BIG=50304
fi

for shape in $SHAPES; do
  [ -n "${ARGS[$shape]+x}" ] || { echo "error: unknown shape '$shape' in SHAPES; known: ${!ARGS[*]}"; exit 1; }
done

# ---- build (not counted in BUDGET_S)
say "build: $BIN"
if [ "$SMOKE" = "1" ]; then make train > "$WORK/build.txt" 2>&1; else make -j16 train_gpu > "$WORK/build.txt" 2>&1; fi
BUILD_RC=$?
[ $BUILD_RC -eq 0 ] || { echo "BUILD FAILED (rc $BUILD_RC), ropepp runs will fail:"; tail -20 "$WORK/build.txt"; }
say "build done (rc $BUILD_RC)"
# the PyTorch competitor computes ropepp's function: same weights through ref/model.py (float64, CPU)
python3 bench/train/torch_train.py --check-ref > "$WORK/check_ref.txt" 2>&1
CHECK="torch_model vs ref/model.py (float64): $(tail -1 "$WORK/check_ref.txt" | cut -c1-120)"
say "$CHECK"
START=$(date +%s)
DEADLINE=$(( START + BUDGET_S ))

# ---- random-token shards (llm.c format, uint16)
python3 bench/train/make_shard.py --vocab "$VOCAB_BIG" --tokens 1200000 --out "$WORK/data/rand_big.bin" || exit 1
python3 bench/train/make_shard.py --vocab 256 --tokens 300000 --out "$WORK/data/rand_256.bin" || exit 1
shard_for() { case "$1" in *"--vocab 256 "*) echo "$WORK/data/rand_256.bin";; *) echo "$WORK/data/rand_big.bin";; esac; }

{ echo "environment:"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi";
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" 2>&1 | tail -1; } | tee "$WORK/env.txt"

# ---- 1. ropepp (quick): every shape and pe
for shape in $SHAPES; do
  for pe in $PES; do
    a="${ARGS[$shape]}"
    t=$(date +%s)
    timeout -k 10 "${OURS_TIMEOUT[$shape]}" $BIN $a --pe "$pe" --train "$(shard_for "$a ")" --val "" \
      --steps "${OURS_STEPS[$shape]}" --lr 3e-4 --sample 0 --val-every 0 --ckpt-dir "" \
      --log "$WORK/ours_${shape}_${pe}.jsonl" > "$WORK/ours_${shape}_${pe}.txt" 2>&1
    rc=$?
    rm -rf "$WORK/ck"
    secs=$(( $(date +%s) - t ))
    printf '{"tag": "%s", "pe": "%s", "args": "%s", "rc": %d, "secs": %d}\n' "$shape" "$pe" "$a" "$rc" "$secs" >> "$WORK/ours_runs.jsonl"
    say "ropepp $shape $pe: rc $rc, ${secs}s, $(grep -h '^step' "$WORK/ours_${shape}_${pe}.txt" | tail -1 | tr -s ' ' | cut -c1-90)"
  done
done

# ---- 2. PyTorch: eager then torch.compile in one process per shape and pe, within the budget
for shape in $SHAPES; do
  for pe in $PES; do
    a="${ARGS[$shape]}"
    now=$(date +%s); rem=$(( DEADLINE - now ))
    if [ $rem -lt 30 ]; then
      printf '{"tag": "%s", "pe": "%s", "args": "%s", "rc": 0, "skipped": "not run: the %d s budget (BUDGET_S) was spent"}\n' "$shape" "$pe" "$a" "$BUDGET_S" >> "$WORK/torch_runs.jsonl"
      say "torch $shape $pe: skipped (budget)"; continue
    fi
    modes=$TORCH_MODES
    if [ $rem -lt "$COMPILE_NEED_S" ] && [ "${modes/compile/}" != "$modes" ]; then
      modes=${modes//compile/}; modes=${modes//,,/,}; modes=${modes#,}; modes=${modes%,}
      [ -n "$modes" ] || { say "torch $shape $pe: skipped (no time left to compile)"
        printf '{"tag": "%s", "pe": "%s", "args": "%s", "rc": 0, "modes": "compile", "skipped": "torch.compile not run: %d s of the budget left"}\n' "$shape" "$pe" "$a" "$rem" >> "$WORK/torch_runs.jsonl"; continue; }
      printf '{"tag": "%s", "pe": "%s", "args": "%s", "rc": 0, "modes": "compile", "skipped": "torch.compile not run: %d s of the budget left"}\n' "$shape" "$pe" "$a" "$rem" >> "$WORK/torch_runs.jsonl"
    fi
    to=$(( rem < 300 ? rem : 300 ))
    t=$(date +%s)
    timeout -k 10 "$to" python3 bench/train/torch_train.py $a --pe "$pe" --modes "$modes" --device "$DEVICE" \
      --steps "${TORCH_STEPS[$shape]}" --warmup "${TORCH_WARMUP[$shape]}" --compile-scope "$COMPILE_SCOPE" --tag "$shape" \
      >> "$WORK/torch.jsonl" 2> "$WORK/torch_${shape}_${pe}.err"
    rc=$?
    secs=$(( $(date +%s) - t ))
    tail_err=$(tail -c 300 "$WORK/torch_${shape}_${pe}.err" | tr '\n"\\\t' '    ' | tr -cd '[:print:]')
    printf '{"tag": "%s", "pe": "%s", "args": "%s", "rc": %d, "modes": "%s", "secs": %d, "timeout_s": %d, "stderr_tail": "%s"}\n' \
      "$shape" "$pe" "$a" "$rc" "$modes" "$secs" "$to" "$tail_err" >> "$WORK/torch_runs.jsonl"
    say "torch $shape $pe ($modes): rc $rc, ${secs}s"
  done
done
say "runs done: $(( $(date +%s) - START )) s of the ${BUDGET_S} s budget"

# ---- 3. report
python3 bench/train/report.py --work "$WORK" --results "$RESULTS" --command "$COMMAND" --peak "$PEAK" \
  --peak-source "$PEAK_SOURCE" --ours-label "ropepp \`$BIN\`" --notes "$CHECK; build rc $BUILD_RC; runs took $(( $(date +%s) - START )) s (budget $BUDGET_S s)"
rc=$?
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  mkdir -p "$OUT/train"
  cp "$RESULTS/results.md" "$RESULTS/results.json" "$OUT/train/" 2>/dev/null
  tar czf "$OUT/train/logs.tar.gz" -C "$WORK" --exclude=data --exclude=ck --exclude=results . 2>/dev/null
  say "copied results.md, results.json, logs.tar.gz to $OUT/train"
fi
say "results: $RESULTS/results.md"
exit $rc
