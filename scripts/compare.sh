#!/usr/bin/env bash
# compare.sh — compare v2: can a small run confirm or refute the paper's claims? One verdict per claim (the protocol
# and why each choice: bench/compare/README.md).
#   0. corpus  the long-document corpus (scripts/make_corpus.sh: Python stdlib *.py + /usr/include *.h, one
#              BOS-prefixed document per file, ~5% held out); --tiny builds one from this repository's sources
#   1. probe   50 steps of the slowest arm at each stage's shape; the steps are sized from its tokens/s so that
#              training fits --train-minutes
#   2. short   every position embedding of `./train --list-pe` (rope and the RoPE++ ones, whose imag column is 1,
#              first) plus rope_pm (rope with the FFN grown to EC's parameter count) at T 512, rope base 1250 (the
#              paper's 4096 / 10^4); control arms of rope and ropepp_ec at base 10^4
#   3. long    rope and the RoPE++ PEs (ropepp_eh, ropepp_ec) continued at T 2048, base 31250 (the paper's 32k / 5*10^5)
#   4. eval    per checkpoint: ppl on held-out documents at 1-8x, with NTK 4 too for the PEs whose scalable column
#              is 1; tasks (200 fixed samples per cell, Wilson intervals); for rope and the RoPE++ PEs attention sink
#              / far ratio / retrieval (64 documents) and noise relative to each layer's query RMS (300 fixed
#              samples, McNemar) with the zeroed-heads ablation; each run's eval/eval.txt holds the results,
#              eval/eval.log the progress and any error
#   5. report  report.md opening with the verdict table (rules written before the numbers)
# Task rows (~40%: passkey, NIAH, vt, MQAR with blank filler) have their loss on the answer tokens only and start
# with BOS. Every stage skips what is done and resumes what was interrupted; --max-minutes M stops before a run
# that would not fit in M minutes (exit 3: run the same command again), so a long run goes in short sessions.
#
#   scripts/compare.sh --max-minutes 8     the default run on one GPU (train_gpu / eval_gpu), repeated until done
#   scripts/compare.sh --quick             a smoke test in a few minutes on a GPU
#   scripts/compare.sh --cpu --tiny        the pipeline end to end on a CPU (make test uses this)
#   scripts/compare.sh --stage report      only rebuild the report
# Flags (every default is one): --out DIR (results/compare2), --seeds "1 2 3", --stage corpus|probe|short|long|
#   eval|report|all, --max-minutes M (0 = no limit), --train-minutes M (15: training budget of the default run),
#   --shape "MODEL FLAGS", --seq N (512), --base B (1250), --control-base B (10000), --control-pes "rope ropepp_ec"
#   (rotary PEs only: the control changes the rope base), --pes "..." (PEs of --list-pe, or rope_pm),
#   --long-pes "...", --long-seq N (2048), --long-base B (31250), --batch N, --long-batch N,
#   --steps N / --long-steps N (fixed instead of probed), --lr LR, --mix SPEC, --long-mix SPEC, --data PREFIX
#   (data/code), --samples N (200), --noise-samples N (300), --attn-samples N (64), --ppl-docs N (16),
#   --mix-loss answer|all (answer), --mix-weight row|token (row: each row of a batch weighs the same, so the few
#   answer targets of a task row count as much as a text row). Use a new --out for a new setup.
set -u -o pipefail
cd "$(dirname "$0")/.."
ARGS="$*"   # this invocation's flags, for machine.txt and the report

OUT=results/compare2; SEEDS=""; STAGE=all; SIZE=full; CPU=0; MAXMIN=0
declare -A O=()
need() { [ $# -ge 2 ] || { echo "error: $1 needs a value; see scripts/compare.sh --help" >&2; exit 1; }; }
while [ $# -gt 0 ]; do
  case "$1" in
    --shape|--seq|--base|--control-base|--control-pes|--pes|--long-pes|--long-seq|--long-base|--batch|--long-batch|\
    --steps|--long-steps|--lr|--mix|--long-mix|--data|--samples|--noise-samples|--attn-samples|--ppl-docs|--mix-loss|--mix-weight|--train-minutes)
      need "$@"; O[${1#--}]=$2; shift 2 ;;
    --out) need "$@"; OUT=$2; shift 2 ;;
    --seeds) need "$@"; SEEDS=$2; shift 2 ;;
    --stage) need "$@"; STAGE=$2; shift 2 ;;
    --max-minutes) need "$@"; MAXMIN=$2; shift 2 ;;
    --quick) SIZE=quick; shift ;;
    --tiny) SIZE=tiny; shift ;;
    --cpu) CPU=1; shift ;;
    --help|-h) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "error: unknown flag '$1'; see scripts/compare.sh --help" >&2; exit 1 ;;
  esac
done
case "$STAGE" in corpus|probe|short|long|eval|report|all) ;; *) echo "error: --stage must be corpus, probe, short, long, eval, report or all" >&2; exit 1 ;; esac

if [ $CPU -eq 1 ]; then TRAIN=./train; EVAL=./eval; else TRAIN=./train_gpu; EVAL=./eval_gpu; fi
for b in "$TRAIN" "$EVAL" ./eval ./data/docs2shards; do
  [ -x "$b" ] || { echo "error: $b is not built; run make$([ $CPU -eq 0 ] && echo ' train_gpu eval_gpu') first" >&2; exit 1; }
done
# The position embeddings and their facts come from the header's table (ropepp.h pe_table), printed by --list-pe:
# columns name id rotary imag halves_heads partial per_group scalable alibi description.
PE_LIST=$($TRAIN --list-pe) || { echo "error: $TRAIN --list-pe failed" >&2; exit 1; }
pe_col() { echo "$PE_LIST" | awk -v c="$1" '!/^#/ && (c == 0 || $c == 1) { printf "%s ", $1 }'; }   # names with column c = 1 (0: all)
ALL_PES=$(pe_col 0); ROTARY_PES=$(pe_col 3); IMAG_PES=$(pe_col 4); SCALABLE_PES=$(pe_col 8)
[ -n "$ALL_PES" ] || { echo "error: $TRAIN --list-pe printed no position embeddings" >&2; exit 1; }
in_list() { case " $2 " in *" $1 "*) return 0 ;; esac; return 1; }   # in_list NAME "LIST"
# The claims' arms: RoPE (real heads only, the baseline) and every RoPE++ PE; they get the attention and noise analyses.
MAIN_PES="rope $IMAG_PES"
OTHER_PES=$(for p in $ALL_PES; do in_list $p "$MAIN_PES" || printf '%s ' $p; done)

# defaults per size; every one can be overridden by its flag
PES="$MAIN_PES rope_pm $OTHER_PES"; LONG_PES="$MAIN_PES"; CONTROL_PES="rope ropepp_ec"
SEQ=512; BASE=1250; CBASE=10000; LSEQ=2048; LBASE=31250; LR=2e-3; MIXLOSS=answer; MIXWEIGHT=row; DATA=data/code
MIX="passkey:0.1,niah_single:0.1,vt:0.1,mqar:0.1"          # niah_multikey needs T >= 579 with BOS: the long stage has it
LMIX="passkey:0.1,niah_multikey:0.1,vt:0.1,mqar:0.1"
NOISE_TASK=niah_single; LNOISE_TASK=niah_multikey; TASKS="passkey,niah_single,vt,mqar"; LTASKS="passkey,niah_multikey,vt,mqar"
case $SIZE in
  full)  SHAPE="--dim 512 --layers 6 --heads 4 --kv-heads 2 --ffn 1536"; BATCH=32; LBATCH=8; TRAINMIN=15
         NS=200; NNS=300; NATT=64; NPPL=16; MULTS="1 2 4 8"; [ -z "$SEEDS" ] && SEEDS="1 2 3" ;;
  quick) SHAPE="--dim 256 --layers 2 --heads 2 --kv-heads 2 --ffn 768"; BATCH=16; LBATCH=4; TRAINMIN=2
         NS=40; NNS=40; NATT=8; NPPL=4; MULTS="1 2 4 8"; [ -z "$SEEDS" ] && SEEDS="1 2" ;;
  tiny)  SHAPE="--dim 32 --layers 1 --heads 4 --kv-heads 2 --ffn 64"; SEQ=256; LSEQ=512; BATCH=2; LBATCH=1; TRAINMIN=0
         # a subset for speed: the claims' arms, rope_pm, and alibi as one PE that is not rotary
         O[steps]=${O[steps]:-4}; O[long-steps]=${O[long-steps]:-2}; PES="$MAIN_PES rope_pm alibi"; CONTROL_PES="rope"
         MIX="passkey:0.3,mqar:0.3"; LMIX="passkey:0.3,vt:0.3"; NOISE_TASK=passkey; LNOISE_TASK=passkey
         TASKS="passkey,mqar"; LTASKS="passkey,vt"; NS=3; NNS=3; NATT=2; NPPL=2; MULTS="1 2"; [ -z "$SEEDS" ] && SEEDS="1 2" ;;
esac
SHAPE=${O[shape]:-$SHAPE}; SEQ=${O[seq]:-$SEQ}; BASE=${O[base]:-$BASE}; CBASE=${O[control-base]:-$CBASE}
CONTROL_PES=${O[control-pes]-$CONTROL_PES}; PES=${O[pes]:-$PES}; LONG_PES=${O[long-pes]-$LONG_PES}; LSEQ=${O[long-seq]:-$LSEQ}
LBASE=${O[long-base]:-$LBASE}; BATCH=${O[batch]:-$BATCH}; LBATCH=${O[long-batch]:-$LBATCH}; LR=${O[lr]:-$LR}; MIX=${O[mix]:-$MIX}
LMIX=${O[long-mix]:-$LMIX}; DATA=${O[data]:-$DATA}; NS=${O[samples]:-$NS}; NNS=${O[noise-samples]:-$NNS}
NATT=${O[attn-samples]:-$NATT}; NPPL=${O[ppl-docs]:-$NPPL}; MIXLOSS=${O[mix-loss]:-$MIXLOSS}; MIXWEIGHT=${O[mix-weight]:-$MIXWEIGHT}; TRAINMIN=${O[train-minutes]:-$TRAINMIN}
for v in "$SEQ" "$LSEQ" "$BATCH" "$LBATCH" "$NS" "$NNS" "$NATT" "$NPPL" "$MAXMIN" "$TRAINMIN" ${O[steps]:-1} ${O[long-steps]:-1}; do
  case "$v" in ''|*[!0-9]*) echo "error: --seq, --long-seq, --batch, --long-batch, --steps, --long-steps, --samples, --noise-samples, --attn-samples, --ppl-docs, --max-minutes and --train-minutes take non-negative integers (got '$v')" >&2; exit 1 ;; esac
done
case "$MIXLOSS" in answer|all) ;; *) echo "error: --mix-loss must be answer or all" >&2; exit 1 ;; esac
case "$MIXWEIGHT" in row|token) ;; *) echo "error: --mix-weight must be row or token" >&2; exit 1 ;; esac
PES=$(echo $PES); LONG_PES=$(echo $LONG_PES); CONTROL_PES=$(echo $CONTROL_PES)   # one space between names
unknown_pe() { echo "error: $1: unknown position embedding '$2'; $TRAIN --list-pe lists ${ALL_PES% }${3:-}" >&2; exit 1; }
for p in $PES; do [ $p = rope_pm ] || in_list $p "$ALL_PES" || unknown_pe --pes $p " (and rope_pm)"; done
for p in $LONG_PES; do in_list $p "$ALL_PES" || unknown_pe --long-pes $p; done
for p in $CONTROL_PES; do
  in_list $p "$ALL_PES" || unknown_pe --control-pes $p
  in_list $p "$ROTARY_PES" || { echo "error: --control-pes: $p is not rotary (those are: ${ROTARY_PES% }); another rope base changes nothing for it" >&2; exit 1; }
done
mkdir -p "$OUT"
T0=$(date +%s)
# machine.txt: one line per invocation that can train or evaluate, with its machine, commit and command line (the
# report names them from it)
if [ "$STAGE" != report ]; then
  if [ $CPU -eq 0 ] && command -v nvidia-smi > /dev/null; then mach=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1 | sed 's/, / (driver /; s/$/)/')
  else mach="CPU $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //')"; fi
  echo "$(date -u +%FT%TZ) | stage $STAGE | $mach, $(nproc) cores | commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown) | scripts/compare.sh $ARGS" >> "$OUT/machine.txt"
fi
echo "compare v2: size $SIZE, seeds '$SEEDS', stage $STAGE, $TRAIN, results in $OUT$([ "$MAXMIN" -gt 0 ] && echo ", at most $MAXMIN min")"
out_of_time() {   # out_of_time SECONDS: 1 (and exit 3) if a job of that length would pass --max-minutes
  [ "$MAXMIN" -gt 0 ] || return 0
  if [ $(( $(date +%s) - T0 + $1 )) -gt $((MAXMIN * 60)) ]; then
    echo "stopped before the next job (~$1 s) for --max-minutes $MAXMIN: run the same command again to continue"; exit 3
  fi
}
DIM=$(echo "$SHAPE" | sed -nE 's/.*--dim ([0-9]+).*/\1/p'); FFN=$(echo "$SHAPE" | sed -nE 's/.*--ffn ([0-9]+).*/\1/p')
# rope_pm: EC's o_proj takes 2H heads, C*C more weights per layer; a SwiGLU row of F costs 3C, so F + C/3, rounded
# to a multiple of 8 (C 512: F + 168, 0.1% of the model short of EC): an odd F (1707) halved train_gpu's speed,
# the bf16 rows no longer 16-byte aligned for cuBLASLt
PM_ADD=$(( (DIM + 12) / 24 * 8 )); [ "$PM_ADD" -gt 0 ] || PM_ADD=8
PM_SHAPE=$(echo "$SHAPE" | sed -E "s/--ffn [0-9]+/--ffn $((FFN + PM_ADD))/")
TASKFLAGS="--task-bos --mqar-filler blank"; ATTNFLAGS="--task-bos"   # eval attn samples text tasks only: no MQAR filler
arm_args() {   # arm_args ARM: the --pe and shape of an arm
  case $1 in rope_pm) echo "--pe rope $PM_SHAPE" ;; *_long) echo "--pe ${1%_long} $SHAPE" ;; *_b*) echo "--pe ${1%_b*} $SHAPE" ;; *) echo "--pe $1 $SHAPE" ;; esac
}
SHORT_ARMS="$PES $(for p in $CONTROL_PES; do printf '%s_b%s ' $p $CBASE; done)"

# ---- 0. corpus
# the report needs only the corpus's description (the results may come from another machine)
if [ "$STAGE" = report ] && [ $SIZE != tiny ] && [ -s "${DATA}_info.txt" ]; then :
elif [ ! -s "${DATA}_val.bin" ] || [ ! -s "${DATA}_info.txt" ]; then
  if [ $SIZE = tiny ]; then
    DATA=$OUT/corpus/code; mkdir -p "$OUT/corpus"
    if [ ! -s "${DATA}_val.bin" ]; then
      ls ropepp.h ropepp_cuda.cu train.c eval.c infer.c data/*.c data/tasks.h tests/*.c tests/*.sh scripts/*.sh docs/*.md cuda/*.cuh > "$OUT/corpus/list.txt"
      ./data/docs2shards --list "$OUT/corpus/list.txt" --out "$DATA" --val-every 4 > "$OUT/corpus/build.txt" || { echo "error: tiny corpus failed" >&2; exit 1; }
      { echo "tiny corpus: this repository's sources"; grep -E '^(wrote .*bin|files:|list hash|data hash)' "$OUT/corpus/build.txt"; } > "${DATA}_info.txt"
    fi
  else
    [ "$STAGE" = all ] || [ "$STAGE" = corpus ] || { echo "error: no corpus at $DATA: run --stage corpus (or all) first" >&2; exit 1; }
    echo "== stage 0: corpus"; scripts/make_corpus.sh --out "$DATA" || exit 1
  fi
fi
[ "$STAGE" = corpus ] && exit 0

# ---- 1. probe: tokens/s of the slowest arm (ropepp_ec) at each stage's shape, 50 steps
probe() {   # probe NAME SEQ BATCH BASE: sets PROBE_TOKS
  local f="$OUT/probe_$1.jsonl"
  if [ ! -s "$f" ]; then
    echo "  probe: $1 (50 steps)"
    $TRAIN --pe ropepp_ec $SHAPE --seq $2 --batch $3 --rope-base $4 --steps 50 --train "${DATA}_train.bin" --val "" --mix "$MIX" \
      --mix-loss $MIXLOSS --mix-weight $MIXWEIGHT $TASKFLAGS --ckpt-dir "" --log "$f" --sample 0 > "$OUT/probe_$1.txt" 2>&1 || { echo "error: probe failed, see $OUT/probe_$1.txt" >&2; exit 1; }
  fi
  PROBE_TOKS=$(grep '"tok_s"' "$f" | tail -n 40 | sed -E 's/.*"tok_s": ([0-9.]+).*/\1/' | sort -g | awk '{ a[NR] = $1 } END { printf "%.0f", a[int((NR + 1) / 2)] }')
}
N_SHORT=$(( $(echo $SHORT_ARMS | wc -w) * $(echo $SEEDS | wc -w) )); N_LONG=$(( $(echo $LONG_PES | wc -w) * $(echo $SEEDS | wc -w) ))
if [ -n "${O[steps]:-}" ]; then STEPS=${O[steps]}; else
  probe short $SEQ $BATCH $BASE   # 2/3 of the training minutes to the short stage, at 85% of the probed speed
  STEPS=$(awk -v m=$TRAINMIN -v n=$N_SHORT -v tok=$PROBE_TOKS -v b=$BATCH -v t=$SEQ 'BEGIN { s = int(m * 60 * 2 / 3 / n * tok * 0.85 / (b * t) / 100) * 100; print s < 100 ? 100 : s }')
fi
if [ -n "${O[long-steps]:-}" ]; then LSTEPS=${O[long-steps]}; else
  probe long $LSEQ $LBATCH $LBASE
  LSTEPS=$(awk -v m=$TRAINMIN -v n=$N_LONG -v tok=$PROBE_TOKS -v b=$LBATCH -v t=$LSEQ 'BEGIN { s = int(m * 60 / 3 / n * tok * 0.85 / (b * t) / 50) * 50; print s < 50 ? 50 : s }')
fi
echo "steps: short $STEPS (batch $BATCH x $SEQ), long $LSTEPS (batch $LBATCH x $LSEQ)"
echo "$STEPS $LSTEPS" > "$OUT/steps.txt"
[ "$STAGE" = probe ] && exit 0

# progress within a stage: stage_start N (the stage's jobs), then job_tag before each job sets TAG to
# "[i/N | elapsed in the stage, ETA]" (the ETA from the mean time of the jobs this invocation ran), job_ran after one
stage_start() { STAGE_N=$1; STAGE_T0=$(date +%s); STAGE_RAN=0; STAGE_I=0; }
fmt_s() { if [ "$1" -ge 60 ]; then printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); else printf '%ds' "$1"; fi; }
job_tag() {
  STAGE_I=$((STAGE_I + 1))
  local el=$(( $(date +%s) - STAGE_T0 )) eta="?"
  [ "$STAGE_RAN" -gt 0 ] && eta=$(fmt_s $(( el * (STAGE_N - STAGE_I + 1) / STAGE_RAN )))
  TAG="[$STAGE_I/$STAGE_N | $(fmt_s $el) into the stage, ETA $eta]"
}
job_ran() { STAGE_RAN=$((STAGE_RAN + 1)); }

# run_train DIR STEPS ARGS...: train into DIR unless its final checkpoint exists; resume a partial one
run_train() {
  local dir=$1 steps=$2; shift 2
  local final; final=$(printf "%s/model_%08d.ckpt" "$dir" "$steps")
  job_tag
  if [ -f "$final" ]; then echo "  done: $dir   $TAG"; return 0; fi
  local resume=""
  [ -f "$dir/settings.txt" ] && resume="--resume"   # the run folder exists: continue it (train never overwrites a run)
  echo "  train: $dir $resume   $TAG"
  mkdir -p "$dir"
  $TRAIN "$@" --steps "$steps" --train "${DATA}_train.bin" --val "${DATA}_val.bin" --val-batches 8 --mix-loss $MIXLOSS --mix-weight $MIXWEIGHT $TASKFLAGS \
    --ckpt-dir "$dir" --ckpt-every $(( steps / 4 > 0 ? steps / 4 : 1 )) --keep 1 --log "$dir/train.jsonl" --sample 0 $resume \
    >> "$dir/train.txt" 2>&1 || { echo "error: training failed, see $dir/train.txt" >&2; tail -3 "$dir/train.txt" >&2; exit 1; }
  job_ran
}
final_ckpt() { printf "%s/model_%08d.ckpt" "$1" "$2"; }
est_train() { [ "$MAXMIN" -gt 0 ] && awk -v m=$TRAINMIN -v n=$1 -v f=$2 'BEGIN { printf "%d", m * 60 * f / n + 20 }' || echo 0; }

if [ "$STAGE" = all ] || [ "$STAGE" = short ]; then
  echo "== stage 2: short context, T $SEQ, base $BASE (controls at base $CBASE: $CONTROL_PES)"
  stage_start $N_SHORT
  for seed in $SEEDS; do for arm in $SHORT_ARMS; do
    base=$BASE; case $arm in *_b*) base=$CBASE ;; esac
    [ -f "$(final_ckpt "$OUT/seed$seed/$arm" $STEPS)" ] || out_of_time "$(est_train $N_SHORT 0.67)"
    run_train "$OUT/seed$seed/$arm" $STEPS $(arm_args $arm) --seq $SEQ --batch $BATCH --rope-base $base --lr $LR --schedule wsd \
      --seed $seed --mix "$MIX" --val-every $((STEPS / 2 > 0 ? STEPS / 2 : 1))
  done; done
fi

if [ "$STAGE" = all ] || [ "$STAGE" = long ]; then
  echo "== stage 3: continue $LONG_PES at T $LSEQ with base $LBASE"
  stage_start $N_LONG
  for seed in $SEEDS; do for pe in $LONG_PES; do
    src=$(final_ckpt "$OUT/seed$seed/$pe" $STEPS)
    [ -f "$src" ] || { echo "error: $src is missing: run stage short first" >&2; exit 1; }
    [ -f "$(final_ckpt "$OUT/seed$seed/${pe}_long" $LSTEPS)" ] || out_of_time "$(est_train $N_LONG 0.33)"
    run_train "$OUT/seed$seed/${pe}_long" $LSTEPS --init-from "$src" --seq $LSEQ --batch $LBATCH --rope-base $LBASE \
      --lr $LR --schedule cosine --warmup $((LSTEPS / 10)) --seed $seed --mix "$LMIX" --val-every $LSTEPS
  done; done
fi

timed() {   # timed NAME CMD...: run CMD, then "time: NAME S s" on stderr (eval.log: where an evaluation's time goes)
  local name=$1 t0; t0=$(date +%s.%N); shift
  "$@"; local rc=$?
  echo "time: $name $(echo "$t0 $(date +%s.%N)" | awk '{ printf "%.1f", $2 - $1 }') s" >&2
  return $rc
}
lengths() { local out=""; for m in $MULTS; do out="$out${out:+,}$(($1 * m))"; done; echo "$out"; }
# eval_run DIR STEPS SEQ ARM TASKS NOISE_TASK: every analysis of one checkpoint into DIR/eval
eval_run() {
  local dir=$1 steps=$2 seq=$3 arm=$4 tasks=$5 ntask=$6
  local ck; ck=$(final_ckpt "$dir" "$steps")
  [ -f "$ck" ] || { echo "error: $ck is missing: run the training stages first" >&2; exit 1; }
  local ev="$dir/eval" pe; pe=$(arm_args $arm | awk '{ print $2 }')
  mkdir -p "$ev"
  job_tag
  if [ -f "$ev/.done" ]; then echo "  done: $ev   $TAG"; return 0; fi
  out_of_time $([ "$MAXMIN" -gt 0 ] && echo 60 || echo 0)
  echo "  eval: $dir   $TAG"
  local sc="none"; in_list $pe "$SCALABLE_PES" && sc="none,ntk:4"
  # attention: every arm of a claim PE (controls and rope_pm too); noise: the claim PEs' own arms and the long stage
  local attn=0 noise=0; in_list $pe "$MAIN_PES" && attn=1; { in_list $arm "$MAIN_PES" || [ "${arm%_long}" != "$arm" ]; } && noise=1
  {
    timed ppl $EVAL ppl --ckpt "$ck" --data "${DATA}_val.bin" --docs --samples $NPPL --scalings $sc --out "$ev" --lengths "$(lengths $seq)" &&
    timed tasks $EVAL tasks --ckpt "$ck" --tasks "$tasks" --samples $NS $TASKFLAGS --out "$ev" --lengths $seq &&
    { [ $attn = 0 ] || timed attn $EVAL attn --ckpt "$ck" --data "${DATA}_val.bin" --samples $NATT --tasks $ntask $ATTNFLAGS --out "$ev"; } &&
    { [ $noise = 0 ] || timed noise $EVAL noise --ckpt "$ck" --relative --tasks $ntask --samples $NNS $TASKFLAGS --out "$ev"; }
  } > "$ev/eval.txt" 2> "$ev/eval.log" || { echo "error: eval failed, see $ev/eval.log" >&2; tail -3 "$ev/eval.log" >&2; exit 1; }
  touch "$ev/.done"
  job_ran
}

if [ "$STAGE" = all ] || [ "$STAGE" = eval ]; then
  echo "== stage 4: eval"
  stage_start $((N_SHORT + N_LONG))
  for seed in $SEEDS; do
    for arm in $SHORT_ARMS; do eval_run "$OUT/seed$seed/$arm" $STEPS $SEQ $arm "$TASKS" $NOISE_TASK; done
    for pe in $LONG_PES; do eval_run "$OUT/seed$seed/${pe}_long" $LSTEPS $LSEQ ${pe}_long "$LTASKS" $LNOISE_TASK; done
  done
fi

[ "$STAGE" = all ] || [ "$STAGE" = report ] || exit 0
echo "== stage 5: report"
export OUT SEEDS SHORT_ARMS LONG_PES STEPS LSTEPS SEQ LSEQ BASE CBASE LBASE SHAPE PM_SHAPE BATCH LBATCH LR MIX LMIX MIXLOSS DATA SIZE CPU MULTS \
  NS NNS NATT NPPL NOISE_TASK LNOISE_TASK DIM EVAL
bash scripts/compare_report.sh || { echo "error: the report failed" >&2; exit 1; }
echo "all stages done"
