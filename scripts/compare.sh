#!/usr/bin/env bash
# compare.sh — the paper's comparison of position embeddings at small scale, in one command:
#   1. train   rope, ropepp_eh, ropepp_ec, fope, alibi, nope and partial on the same data (Tiny Shakespeare with a
#              passkey + MQAR task mix), token budget, warmup-stable-decay schedule, seed and shape
#   2. long    continue rope, ropepp_eh and ropepp_ec at 4x the sequence length with rope base 500000 (the paper's
#              long-context stage)
#   3. eval    perplexity vs length, task accuracy at 1x..8x the training length, attention patterns (RoPE++),
#              the noise experiment (RoPE++ EC), for every checkpoint
#   4. report  report.md with the tables and plots, laid out like the paper
# Every stage skips what is already done and resumes what was interrupted, so the run can be spread over several
# commands or machines (carry the --out folder: small checkpoints, CSVs and logs).
#
#   scripts/compare.sh                     full run on one GPU (train_gpu / eval_gpu), 2 seeds
#   scripts/compare.sh --quick             a smoke test in a few minutes on a GPU
#   scripts/compare.sh --cpu --tiny        the pipeline end to end on a CPU in about a minute (tests use this)
#   scripts/compare.sh --stage report      only rebuild the report from what is there
#   scripts/compare.sh --shape "--dim 512 --layers 8 --heads 8 --kv-heads 4 --ffn 1536" --steps 6000 --seeds "1 2 3"
# Flags: --out DIR (results/compare), --seeds "1 2", --stage train|long|eval|report|all, --quick, --tiny, --cpu;
#        to change the budget: --shape "MODEL FLAGS", --seq N, --batch N, --steps N, --lr LR, --mix SPEC,
#        --long-seq N, --long-steps N, --samples N (eval samples per cell). Use a new --out for a new setup.
set -u -o pipefail
cd "$(dirname "$0")/.."

OUT=results/compare; SEEDS=""; STAGE=all; SIZE=full; CPU=0
O_SHAPE=""; O_SEQ=""; O_BATCH=""; O_STEPS=""; O_LR=""; O_MIX=""; O_LSEQ=""; O_LSTEPS=""; O_NS=""
need() { [ $# -ge 2 ] || { echo "error: $1 needs a value; see scripts/compare.sh --help" >&2; exit 1; }; }
while [ $# -gt 0 ]; do
  case "$1" in
    --shape) need "$@"; O_SHAPE=$2; shift 2 ;;
    --seq) need "$@"; O_SEQ=$2; shift 2 ;;
    --batch) need "$@"; O_BATCH=$2; shift 2 ;;
    --steps) need "$@"; O_STEPS=$2; shift 2 ;;
    --lr) need "$@"; O_LR=$2; shift 2 ;;
    --mix) need "$@"; O_MIX=$2; shift 2 ;;
    --long-seq) need "$@"; O_LSEQ=$2; shift 2 ;;
    --long-steps) need "$@"; O_LSTEPS=$2; shift 2 ;;
    --samples) need "$@"; O_NS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --stage) STAGE=$2; shift 2 ;;
    --quick) SIZE=quick; shift ;;
    --tiny) SIZE=tiny; shift ;;
    --cpu) CPU=1; shift ;;
    --help|-h) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "error: unknown flag '$1'; see scripts/compare.sh --help" >&2; exit 1 ;;
  esac
done
case "$STAGE" in train|long|eval|report|all) ;; *) echo "error: --stage must be train, long, eval, report or all" >&2; exit 1 ;; esac

LONG_PES="rope ropepp_eh ropepp_ec"
MIX="passkey:0.3,mqar:0.2"
case $SIZE in
  full)  SHAPE="--dim 256 --layers 4 --heads 8 --kv-heads 4 --ffn 768"; SEQ=256; BATCH=32; STEPS=3000; LR=2e-3
         LSEQ=1024; LBATCH=8; LSTEPS=500; NS=40; MULTS="1 2 4 8"; [ -z "$SEEDS" ] && SEEDS="1 2" ;;
  quick) SHAPE="--dim 128 --layers 2 --heads 4 --kv-heads 2 --ffn 384"; SEQ=256; BATCH=16; STEPS=200; LR=3e-3
         LSEQ=512; LBATCH=4; LSTEPS=50; NS=10; MULTS="1 2 4 8"; [ -z "$SEEDS" ] && SEEDS="1" ;;
  tiny)  SHAPE="--dim 32 --layers 1 --heads 4 --kv-heads 2 --ffn 64"; SEQ=256; BATCH=2; STEPS=4; LR=3e-3
         LSEQ=512; LBATCH=1; LSTEPS=2; NS=2; MULTS="1 2"; MIX="passkey:0.5,mqar:0.5"; [ -z "$SEEDS" ] && SEEDS="1" ;;
esac
SHAPE=${O_SHAPE:-$SHAPE}; SEQ=${O_SEQ:-$SEQ}; BATCH=${O_BATCH:-$BATCH}; STEPS=${O_STEPS:-$STEPS}; LR=${O_LR:-$LR}
MIX=${O_MIX:-$MIX}; LSEQ=${O_LSEQ:-$LSEQ}; LSTEPS=${O_LSTEPS:-$LSTEPS}; NS=${O_NS:-$NS}
for v in "$SEQ" "$BATCH" "$STEPS" "$LSEQ" "$LSTEPS" "$NS"; do
  case "$v" in ''|*[!0-9]*) echo "error: --seq, --batch, --steps, --long-seq, --long-steps and --samples take positive integers (got '$v')" >&2; exit 1 ;; esac
done
if [ $CPU -eq 1 ]; then TRAIN=./train; EVAL=./eval; else TRAIN=./train_gpu; EVAL=./eval_gpu; fi
for b in "$TRAIN" "$EVAL" ./eval; do
  [ -x "$b" ] || { echo "error: $b is not built; run make$([ $CPU -eq 0 ] && echo ' train_gpu eval_gpu') eval first" >&2; exit 1; }
done
# the position embeddings and which of them are RoPE++ (imag column): from the header's table, via --list-pe
PES=$($TRAIN --list-pe | awk '!/^#/ { printf "%s ", $1 }')
IMAG_PES=$($TRAIN --list-pe | awk '!/^#/ && $4 == 1 { printf "%s ", $1 }')
is_imag() { case " $IMAG_PES " in *" $1 "*) return 0 ;; esac; return 1; }
make -s data/tinyshakespeare_train.bin data/tinyshakespeare_val.bin || { echo "error: cannot build the data shards (make)" >&2; exit 1; }
mkdir -p "$OUT"
echo "compare: size $SIZE, seeds '$SEEDS', stage $STAGE, $TRAIN, results in $OUT"

# run DIR STEPS ARGS...: train into DIR unless its final checkpoint exists; resume if a partial one does
run_train() {
  local dir=$1 steps=$2; shift 2
  local final; final=$(printf "%s/model_%08d.ckpt" "$dir" "$steps")
  if [ -f "$final" ]; then echo "  done: $dir"; return 0; fi
  local resume=""
  ls "$dir"/model_*.state > /dev/null 2>&1 && resume="--resume"
  echo "  train: $dir $resume"
  mkdir -p "$dir"
  $TRAIN "$@" --steps "$steps" --ckpt-dir "$dir" --ckpt-every 100 --keep 2 --log "$dir/train.jsonl" --sample 0 $resume \
    >> "$dir/train.txt" 2>&1 || { echo "error: training failed, see $dir/train.txt" >&2; tail -3 "$dir/train.txt" >&2; exit 1; }
}
final_ckpt() { printf "%s/model_%08d.ckpt" "$1" "$2"; }

if [ "$STAGE" = all ] || [ "$STAGE" = train ]; then
  echo "== stage 1: train $PES at seq $SEQ"
  for seed in $SEEDS; do for pe in $PES; do
    run_train "$OUT/seed$seed/$pe" $STEPS --pe $pe $SHAPE --seq $SEQ --batch $BATCH --lr $LR --schedule wsd \
      --seed $seed --mix $MIX --val-every $((STEPS / 2 > 0 ? STEPS / 2 : 1))
  done; done
fi

if [ "$STAGE" = all ] || [ "$STAGE" = long ]; then
  echo "== stage 2: continue $LONG_PES at seq $LSEQ with rope base 500000"
  for seed in $SEEDS; do for pe in $LONG_PES; do
    src=$(final_ckpt "$OUT/seed$seed/$pe" $STEPS)
    [ -f "$src" ] || { echo "error: $src is missing: run stage train first" >&2; exit 1; }
    run_train "$OUT/seed$seed/${pe}_long" $LSTEPS --init-from "$src" --seq $LSEQ --batch $LBATCH --rope-base 500000 \
      --lr $LR --schedule cosine --warmup $((LSTEPS / 10)) --seed $seed --mix $MIX --val-every $LSTEPS
  done; done
fi

lengths() { local out=""; for m in $MULTS; do out="$out${out:+,}$(($1 * m))"; done; echo "$out"; }
# eval_run DIR STEPS SEQ PE: every analysis of one checkpoint into DIR/eval
eval_run() {
  local dir=$1 steps=$2 seq=$3 pe=$4
  local ck; ck=$(final_ckpt "$dir" "$steps")
  [ -f "$ck" ] || { echo "error: $ck is missing: run the training stages first" >&2; exit 1; }
  local ev="$dir/eval"
  mkdir -p "$ev"
  if [ ! -f "$ev/.done" ]; then
    echo "  eval: $dir"
    {
      $EVAL ppl --ckpt "$ck" --samples 4 --out "$ev" --lengths "$((seq / 2)),$(lengths $seq)" &&
      $EVAL tasks --ckpt "$ck" --tasks passkey,mqar --samples $NS --out "$ev" --lengths "$(lengths $seq)" &&
      { ! is_imag "$pe" || $EVAL patterns --ckpt "$ck" --samples 2 --out "$ev"; } &&
      { [ "$pe" != ropepp_ec ] || $EVAL noise --ckpt "$ck" --tasks passkey --samples $NS --out "$ev"; }
    } > "$ev/eval.txt" 2>&1 || { echo "error: eval failed, see $ev/eval.txt" >&2; tail -3 "$ev/eval.txt" >&2; exit 1; }
    touch "$ev/.done"
  else echo "  done: $ev"; fi
}

if [ "$STAGE" = all ] || [ "$STAGE" = eval ]; then
  echo "== stage 3: eval"
  for seed in $SEEDS; do
    for pe in $PES; do eval_run "$OUT/seed$seed/$pe" $STEPS $SEQ $pe; done
    for pe in $LONG_PES; do eval_run "$OUT/seed$seed/${pe}_long" $LSTEPS $LSEQ $pe; done
  done
fi

[ "$STAGE" = all ] || [ "$STAGE" = report ] || exit 0
echo "== stage 4: report"
R="$OUT/report.md"
# one CSV per kind across every run, with the run name and seed in front
: > "$OUT/all_ppl.csv"; : > "$OUT/all_tasks.csv"
for seed in $SEEDS; do
  for run in $PES $(for p in $LONG_PES; do echo ${p}_long; done); do
    ev="$OUT/seed$seed/$run/eval"
    [ -d "$ev" ] || continue
    for f in "$ev"/ppl_*.csv; do [ -f "$f" ] && awk -v r=$run -v s=$seed 'NR == 1 { if (!h) print "run,seed," $0; next } { print r "," s "," $0 }' h=$(test -s "$OUT/all_ppl.csv" && echo 1 || echo 0) "$f" >> "$OUT/all_ppl.csv"; done
    for f in "$ev"/tasks_*.csv; do [ -f "$f" ] && awk -v r=$run -v s=$seed 'NR == 1 { if (!h) print "run,seed," $0; next } { print r "," s "," $0 }' h=$(test -s "$OUT/all_tasks.csv" && echo 1 || echo 0) "$f" >> "$OUT/all_tasks.csv"; done
  done
done
first_seed=${SEEDS%% *}
# mean and half-range over seeds of column COL of rows matching (run, extra filter) in a CSV: "m ± h"
stat() {   # stat CSV RUN FILTER_AWK VALUE_EXPR SCALE FMT
  awk -F, -v run="$2" -v scale="$5" -v fmt="$6" "NR > 1 && \$1 == run && ($3) { v = ($4) * scale; n++; s += v; if (n == 1 || v < lo) lo = v; if (n == 1 || v > hi) hi = v }
    END { if (n == 0) { printf \"-\"; exit } if (n == 1) printf fmt, s; else { printf fmt, s / n; printf \" ± \"; printf fmt, (hi - lo) / 2 } }" "$1"
}
median_toks() {   # median training tokens/s of a run's JSONL over its seeds
  cat $(for s in $SEEDS; do echo "$OUT/seed$s/$1/train.jsonl"; done) 2>/dev/null | grep '"tok_s"' | sed -E 's/.*"tok_s": ([0-9.]+).*/\1/' | sort -g |
    awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else printf "%.0f", a[int((NR + 1) / 2)] }'
}
model_line() { grep -m1 '^model:' "$OUT/seed$first_seed/$1/train.txt" 2>/dev/null; }
{
  echo "# Position embeddings compared at small scale"
  echo
  echo "Command: \`scripts/compare.sh$([ $SIZE != full ] && echo " --$SIZE")$([ $CPU -eq 1 ] && echo " --cpu")\` · seeds: $SEEDS · $(date -u +%Y-%m-%d) · $(command -v nvidia-smi > /dev/null && [ $CPU -eq 0 ] && nvidia-smi --query-gpu=name --format=csv,noheader | head -1 || echo "CPU") · commit ${ROPEPP_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
  echo
  echo "Stage 1: every position embedding trained from scratch with \`$SHAPE --seq $SEQ --batch $BATCH --steps $STEPS --lr $LR --schedule wsd --mix $MIX\` on Tiny Shakespeare (byte level); stage 2: rope, ropepp_eh and ropepp_ec continued with \`--seq $LSEQ --rope-base 500000 --steps $LSTEPS\`. Values are the mean over seeds ± half their range. Task accuracy is the exact match of the teacher-forced argmax over the answer ($NS samples per cell; MQAR per query)."
  echo
  echo "## Short context (trained at $SEQ)"
  echo
  echo "| pe | parameters | KV cache bytes/token (bf16) | train tokens/s | val ppl at $SEQ | ppl at $((2 * SEQ)) | passkey at $SEQ | MQAR at $SEQ |"
  echo "|---|---|---|---|---|---|---|---|"
  for pe in $PES; do
    ml=$(model_line $pe)
    params=$(echo "$ml" | sed -E 's/.*\| ([0-9]+) parameters.*/\1/')
    kvb=$(echo "$ml" | awk '{ for (i = 1; i <= NF; i++) { if ($i == "L") L = $(i+1); if ($i == "(projected") K = $(i+1); if ($i == "HD") H = $(i+1) } gsub(/[^0-9]/, "", L); gsub(/[^0-9]/, "", K); gsub(/[^0-9]/, "", H); if (L && K && H) print 2 * L * K * H * 2; else print "-" }')
    echo "| $pe | $params | $kvb | $(median_toks $pe) | $(stat "$OUT/all_ppl.csv" $pe "\$4 == \"none\" && \$5 == $SEQ && \$6 == \"all\"" "\$10" 1 %.3f) | $(stat "$OUT/all_ppl.csv" $pe "\$4 == \"none\" && \$5 == $((2 * SEQ)) && \$6 == \"all\"" "\$10" 1 %.3f) | $(stat "$OUT/all_tasks.csv" $pe "\$5 == \"passkey\" && \$6 == $SEQ" "\$7" 100 %.1f%%) | $(stat "$OUT/all_tasks.csv" $pe "\$5 == \"mqar\" && \$6 == $SEQ" "\$7" 100 %.1f%%) |"
  done
  echo
  last=${MULTS##* }
  echo "## Long context: passkey accuracy at $(echo $MULTS | sed 's/ /x, /g')x the training length"
  echo
  echo "| model | trained at |$(for f in $MULTS; do printf ' passkey %sx |' $f; done) MQAR 1x | MQAR ${last}x |"
  echo "|---|---|$(for f in $MULTS; do printf -- '---|'; done)---|---|"
  for run in $PES $(for p in $LONG_PES; do echo ${p}_long; done); do
    L=$SEQ; case $run in *_long) L=$LSEQ ;; esac
    row="| $run | $L"
    for f in $MULTS; do row="$row | $(stat "$OUT/all_tasks.csv" $run "\$5 == \"passkey\" && \$6 == $((f * L))" "\$7" 100 %.1f%%)"; done
    for f in 1 $last; do row="$row | $(stat "$OUT/all_tasks.csv" $run "\$5 == \"mqar\" && \$6 == $((f * L))" "\$7" 100 %.1f%%)"; done
    echo "$row |"
  done
  echo
  echo "## Plots (seed $first_seed)"
  echo
} > "$R"
./eval plot --csv "$OUT/all_ppl.csv" --x length --y ppl --group run --where seed=$first_seed --where scaling=none --where band=all --logx \
  --title "perplexity vs eval length" --xlabel "eval length (tokens)" --out "$OUT/ppl_vs_length.svg" > /dev/null && echo "![perplexity vs length](ppl_vs_length.svg)" >> "$R"
./eval plot --csv "$OUT/all_tasks.csv" --x length --y accuracy --group run --where seed=$first_seed --where task=passkey --logx \
  --title "passkey accuracy vs length" --xlabel "length (tokens)" --out "$OUT/passkey_vs_length.svg" > /dev/null && echo "![passkey vs length](passkey_vs_length.svg)" >> "$R"
{
  for run in ropepp_eh ropepp_ec ropepp_eh_long ropepp_ec_long; do
    f="seed$first_seed/$run/eval/patterns_${run%_long}.svg"
    [ -f "$OUT/$f" ] && { echo; echo "Attention by distance, $run (real vs imaginary heads): ![patterns $run]($f)"; grep -h "^summary" "$OUT/seed$first_seed/$run/eval/eval.txt" | sed 's/^/    /'; }
  done
  f="seed$first_seed/ropepp_ec/eval/noise_ropepp_ec.svg"
  [ -f "$OUT/$f" ] && { echo; echo "Noise on real vs imaginary queries, ropepp_ec: ![noise]($f)"; }
  echo
  echo "Data behind every number: \`all_ppl.csv\`, \`all_tasks.csv\` and each run's \`eval/\` and \`train.jsonl\`."
} >> "$R"
echo "wrote $R"
