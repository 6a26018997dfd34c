#!/usr/bin/env bash
# load.sh — small per-step work on busy cores: ./infer's ms per output token and the default ./eval ppl's time, with
# the default OpenMP threads and with OMP_NUM_THREADS=1, on the machine as it is ("idle") and beside two default
# ./train runs ("loaded"); then the default ./train's tokens/s with the default threads, this build and the build of
# BEFORE (a git revision, optional). Writes bench/cpu/load_results.md (appends nothing: one file per run).
# Run from the repository root after `make train infer eval`:  bash bench/cpu/load.sh [BEFORE_REV]
# MODEL=DIR uses that run folder instead of training one (200 default steps); STEPS=N times N training steps (100).
set -u
cd "$(dirname "$0")/../.." || exit 1
BEFORE=${1:-}
W=$(mktemp -d "${TMPDIR:-/tmp}/ropepp_load.XXXXXX")
trap 'kill $load_pids 2>/dev/null; rm -rf "$W"' EXIT
load_pids=""
OUT=bench/cpu/load_results.md
# the programs copied first: a rebuild while this runs changes nothing here
B=$W/bin; mkdir -p "$B" && cp train infer eval "$B/" || exit 1

# the model to sample and score: 200 steps of the default run, or MODEL
STEPS=${STEPS:-100}
if [ -n "${MODEL:-}" ]; then cp -r "$MODEL" "$W/model"
else "$B/train" --steps 200 --sample 0 --out "$W/model" > "$W/model.log" 2>&1 || { echo "training the model failed: $(tail -3 "$W/model.log")"; exit 1; }; fi

ms_per_token() {   # ENV...: ms per output token of 200 greedy tokens
  env "$@" "$B/infer" --ckpt "$W/model" --prompt "ROMEO:" --max-new 200 --temperature 0 2>&1 | sed -nE 's/.*\| ([0-9.]+) ms per output token.*/\1/p'
}
ppl_seconds() {    # ENV...: wall seconds of the default ./eval ppl
  local t0 t1
  t0=$(date +%s.%N)
  env "$@" "$B/eval" ppl --ckpt "$W/model" --out "$W/eval" > /dev/null 2>&1 || { echo fail; return; }
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{printf "%.1f", $2 - $1}'
}
train_tok_s() {    # BINARY: tokens/s of STEPS default steps (no validation, no sample)
  "$1" --steps $STEPS --val-every 0 --sample 0 --out "$W/t$RANDOM" 2>&1 | sed -nE 's/^done: .*\(([0-9]+) tok\/s training\).*/\1/p'
}
start_load() {
  for i in 1 2; do "$B/train" --steps 1000000 --val-every 0 --sample 0 --out "$W/load$i" > /dev/null 2>&1 & load_pids="$load_pids $!"; done
  sleep 5
}
stop_load() { kill $load_pids 2>/dev/null; wait $load_pids 2>/dev/null; load_pids=""; }

la_start=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A R
for phase in idle loaded; do
  [ "$phase" = loaded ] && start_load
  R[$phase,infer,def]=$(ms_per_token)
  R[$phase,infer,one]=$(ms_per_token OMP_NUM_THREADS=1)
  R[$phase,ppl,def]=$(ppl_seconds)
  R[$phase,ppl,one]=$(ppl_seconds OMP_NUM_THREADS=1)
  R[$phase,la]=$(cut -d' ' -f1 /proc/loadavg)
  [ "$phase" = loaded ] && stop_load
done
tok_after=$(train_tok_s "$B/train")
tok_before=""
if [ -n "$BEFORE" ]; then
  mkdir -p "$W/before" && git archive "$BEFORE" | tar -x -C "$W/before" && make -s -C "$W/before" train > "$W/before.log" 2>&1 \
    && tok_before=$(cd "$W/before" && train_tok_s ./train) || tok_before="(build failed)"
  tok_after2=$(train_tok_s "$B/train")
fi
la_end=$(cut -d' ' -f1-3 /proc/loadavg)

{
  echo "# Small per-step work on busy cores: default threads vs one thread"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); CPU: $(sed -nE 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(nproc) cores; git $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' + uncommitted changes')"
  echo "- command: \`${MODEL:+MODEL=$MODEL }STEPS=$STEPS bash bench/cpu/load.sh${BEFORE:+ $BEFORE}\`; model: 200 steps of the default ./train (C 128, L 4, ropepp_eh)"
  echo "- load average (1 min) at start $la_start, end $la_end. This machine is shared with other jobs: \"idle\" is"
  echo "  the machine as it was (load average ${R[idle,la]} after the idle phase), \"loaded\" adds two default ./train runs (2 threads each)"
  echo
  echo "| what | idle: default threads | idle: OMP_NUM_THREADS=1 | loaded: default | loaded: 1 thread | loaded default / 1 thread |"
  echo "|---|---|---|---|---|---|"
  echo "| ./infer, ms per output token (200 tokens) | ${R[idle,infer,def]} | ${R[idle,infer,one]} | ${R[loaded,infer,def]} | ${R[loaded,infer,one]} | $(awk -v a="${R[loaded,infer,def]}" -v b="${R[loaded,infer,one]}" 'BEGIN{if (b > 0) printf "%.2fx", a / b}') |"
  echo "| ./eval ppl (default), seconds | ${R[idle,ppl,def]} | ${R[idle,ppl,one]} | ${R[loaded,ppl,def]} | ${R[loaded,ppl,one]} | $(awk -v a="${R[loaded,ppl,def]}" -v b="${R[loaded,ppl,one]}" 'BEGIN{if (b > 0) printf "%.2fx", a / b}') |"
  echo
  if [ -n "$BEFORE" ]; then
    echo "Training, default threads, $STEPS steps of the default ./train (tokens/s): before ($BEFORE) $tok_before; this build $tok_after, again after the before-run $tok_after2."
  else
    echo "Training, default threads, $STEPS steps of the default ./train: $tok_after tokens/s."
  fi
} > "$OUT"
cat "$OUT"
