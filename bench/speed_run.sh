#!/usr/bin/env bash
# bench/speed_run.sh — ropepp against the strongest PyTorch in one GPU call (issue 35): builds what the parts
# need, then, each part under its own timeout so that partial results still come back,
#   decode     bench/decode/run.sh: ropepp vs SDPA + CUDA graph, torch.compile reduce-overhead (gpt-fast's set-up),
#              FlexAttention, and the old matmul loop as an extra column; 376M, batch 8, rope / EH / EC
#   attention  bench/attention/bench_attention.py: ours vs SDPA forced to flash and to cuDNN, T 1k-16k, rope / EH / EC
#   train      bench/train/run.sh: ropepp vs torch.compile, 376M at T 4096 (B 8) and T 1024 (B 32), rope / EH / EC
# and writes at most 8 files to $OUT: speed_run.txt (this log), <part>.md and <part>.json per part, logs.tar.gz (the
# parts' raw logs, the decode plot).
# Usage (repository root, H100/H200):   bash bench/speed_run.sh
# Environment: PARTS (default "decode attention train", run in that order), TOTAL_S (seconds for the whole call,
# build included; default 530), DECODE_S (320), ATTENTION_S (70), TRAIN_S (rest): each part's timeout is the
# smaller of its own and what TOTAL_S leaves; CTXS (decode contexts, default "8192 32768").
set -u -o pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-/tmp/ropepp_speed_out}
PARTS=${PARTS:-decode attention train}
TOTAL_S=${TOTAL_S:-530}
W=/tmp/ropepp_speed
rm -rf "$W"
mkdir -p "$OUT" "$W/logs" "$W/attn"
exec > >(tee "$OUT/speed_run.txt") 2>&1
T0=$(date +%s)
say() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
left() { echo $(( TOTAL_S - 20 - ($(date +%s) - T0) )); }   # 20 s kept for packing the results
has() { case " $PARTS " in *" $1 "*) return 0;; esac; return 1; }
export PYTHONUNBUFFERED=1
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
  nvcc --version | tail -2
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"
  echo "git $(git rev-parse --short HEAD 2>/dev/null) $(git status --porcelain --untracked-files=no 2>/dev/null | wc -l) changed files"
  echo "command: PARTS='$PARTS' TOTAL_S=$TOTAL_S bash bench/speed_run.sh"; } 2>&1 | tee "$W/logs/env.txt"

# ---- build: the Makefile's ropepp_cuda.o (decode_bench and train_gpu link it) and, beside it, the attention
# driver with its own object (bench/attention/build.sh's flags)
say "build"
targets="ropepp_cuda.o"
has train && targets="$targets train_gpu"
make -j16 $targets > "$W/logs/build_make.txt" 2>&1 &
mk=$!
if has attention; then
  NV="nvcc -O3 -std=c++17 -I. -gencode=arch=compute_90a,code=sm_90a -lineinfo"
  { $NV -c ropepp_cuda.cu -o "$W/attn/r.o" &&
    $NV bench/attention/bench_attention.cu "$W/attn/r.o" -o "$W/attn/bench_attention" -lcublas -lcublasLt; } \
    > "$W/logs/build_attention.txt" 2>&1 || say "attention driver build FAILED: $(tail -5 "$W/logs/build_attention.txt")"
fi
wait $mk || { say "make FAILED:"; tail -20 "$W/logs/build_make.txt"; }
say "build done"

part_timeout() {   # seconds: the smaller of the part's budget and what is left
  local l; l=$(left)
  [ "$1" -lt "$l" ] && echo "$1" || echo "$l"
}
collect() {   # results folder, part: results.md and .json to $OUT/<part>.md and .json; the tables printed
  cp "$1/results.md" "$OUT/$2.md" 2>/dev/null; cp "$1/results.json" "$OUT/$2.json" 2>/dev/null
  grep -E "^\| |^## " "$OUT/$2.md" 2>/dev/null | head -40
}

if has decode; then
  to=$(part_timeout "${DECODE_S:-320}")
  say "decode: timeout $to s"
  if [ "$to" -gt 60 ]; then
    CTXS=${CTXS:-8192 32768} BATCHES_EXTRA="" BUDGET_S=$(( to - 40 )) WORK="$W/decode" OUT="$W/out" \
      timeout -k 10 "$to" bash bench/decode/run.sh > "$W/logs/decode.txt" 2>&1
    say "decode: rc $?"
    collect "$W/out/decode" decode
  else
    say "decode: skipped (no time left)"
  fi
fi

if has attention; then
  to=$(part_timeout "${ATTENTION_S:-70}")
  say "attention: timeout $to s"
  if [ "$to" -gt 30 ] && [ -x "$W/attn/bench_attention" ]; then
    timeout -k 10 "$to" python3 bench/attention/bench_attention.py --driver "$W/attn/bench_attention" --out "$W/attn/out" \
      --simt-T "" --no-mma --iters 10 > "$W/logs/attention.txt" 2>&1
    say "attention: rc $?"
    collect "$W/attn/out" attention
  else
    say "attention: skipped (no time left or no driver)"
  fi
fi

if has train; then
  to=$(part_timeout "${TRAIN_S:-100000}")
  say "train: timeout $to s"
  if [ "$to" -gt 60 ]; then
    SHAPES="376m_t4096 376m_t1024" TORCH_MODES=compile COMPILE_NEED_S=50 BUDGET_S=$(( to - 30 )) WORK="$W/train" \
      OUT="$W/out" timeout -k 10 "$to" bash bench/train/run.sh > "$W/logs/train.txt" 2>&1
    say "train: rc $?"
    collect "$W/out/train" train
  else
    say "train: skipped (no time left)"
  fi
fi

say "done"
tar czf "$OUT/logs.tar.gz" -C "$W" logs out attn/out 2>/dev/null
sleep 1; ls -la "$OUT"
