#!/usr/bin/env bash
# compare.sh — compare v3: can a small run confirm or refute the paper's claims? A seed is the unit of evidence and
# of work: one seed (every arm at both stages and their evaluation) runs in one call on one machine, and seeds run on
# different machines and days merge into one --out folder (the protocol: bench/compare/README.md).
#   0. corpus  the long-document corpus (scripts/make_corpus.sh: Python stdlib *.py + /usr/include *.h, one
#              BOS-led document per file, ~5% held out); --tiny builds one from this repository's sources
#   1. short   the claim arms at T 512, rope base 1250 (the paper's 4096 / 10^4): rope, ropepp_eh, ropepp_ec and
#              rope_pm (rope with the FFN grown to EC's parameter count, rounded to a multiple of 64); --controls
#              adds every other PE of `./train --list-pe` (FoPE, ALiBi, NoPE, partial) and rope / ropepp_ec at base
#              10^4, reported descriptively
#   2. long    rope, ropepp_eh, ropepp_ec continued at T 2048, base 31250 (the paper's 32k / 5*10^5)
#   3. eval    per checkpoint: ppl on held-out documents at 1-8x (NTK 4 too where scalable), the far-repeat loss
#              (eval ppl --repeat), tasks (fixed samples, Wilson intervals), attention and noise for the claim PEs;
#              each run's eval/eval.txt holds the results, eval/eval.log the progress
#   4. report  report.md (scripts/compare_report.sh) over the seeds present; it names the seeds that are missing
# Training: document rows (each document's BOS at position 0 of a row) in an order seeded by the seed, the same for
# every arm of a seed (train --data-seed); gradient clipping 1.0; fixed steps (the same on every machine). Each
# seed's runs are in OUT/seedS/ with config.txt (the setup; seeds with another setup are refused at the report) and
# machine.txt (one line per call: machine, commit, command line). Every stage skips what is done.
#
#   scripts/compare.sh --seed 3            one seed on one GPU (bench/compare/seed_run.sh 3 on the device)
#   scripts/compare.sh --stage report      the report over the seeds in --out
#   scripts/compare.sh --cpu --tiny        the pipeline end to end on a CPU (make test uses this)
# Flags (every default is one): --out DIR (results/compare3), --seed S (one seed), --seeds "1 2 3 4 5 6" (the seeds
#   of the protocol: a run without --seed does them in turn; the report names those missing), --stage corpus|short|long|eval|report|
#   all, --controls, --shape "MODEL FLAGS", --seq N (512), --base B (1250), --control-base B (10000), --pes "...",
#   --long-pes "...", --long-seq N (2048), --long-base B (31250), --batch N, --long-batch N, --steps N, --long-steps N,
#   --lr LR, --clip G (1), --mix SPEC, --long-mix SPEC, --data PREFIX (data/code), --samples N (200),
#   --noise-samples N (300), --attn-samples N (64), --ppl-docs N (16), --mix-loss answer|all, --mix-weight row|token,
#   --max-minutes M (0 = no limit: stop before a job that would not fit, exit 3). Use a new --out for a new setup.
set -u -o pipefail
cd "$(dirname "$0")/.."
ARGS="$*"   # this invocation's flags, for machine.txt and the report

# ---- the task mix and training defaults of the full size, in one place (the CPU pilots may change them)
MIX="passkey:0.2,niah_single:0.2"                          # docs/TASK_PILOTS.md: the two tasks the gate reads, no vt/MQAR dilution
LMIX="passkey:0.1,niah_multikey:0.1,vt:0.1,mqar:0.1"
MIXLOSS=answer; MIXWEIGHT=row                               # task rows' loss on the answer tokens; each row weighs the same
TASKS="passkey,niah_single"; LTASKS="passkey,niah_multikey,vt,mqar"; NOISE_TASK=niah_single; LNOISE_TASK=niah_multikey
TASKFLAGS="--task-bos --mqar-filler blank"; ATTNFLAGS="--task-bos"   # eval attn samples text tasks only: no MQAR filler
# C 384, L 6, 6 heads of 64 (the tensor-core head dim), ~9.9M parameters; steps sized for one seed in <= 8 min on an
# H100 (bench/compare/README.md): short 5000 x 32 x 512 = 82M tokens an arm (v2: 29M), long 2000 x 8 x 2048 = 33M
SHAPE="--dim 384 --layers 6 --heads 6 --kv-heads 3 --ffn 1024"; BATCH=32; LBATCH=8; STEPS=5000; LSTEPS=2000
SEQ=512; BASE=1250; CBASE=10000; LSEQ=2048; LBASE=31250; LR=2e-3; CLIP=1; DATA=data/code

OUT=results/compare3; SEEDS=""; RUN_SEEDS=""; STAGE=all; SIZE=full; CPU=0; MAXMIN=0; CONTROLS=0
declare -A O=()
need() { [ $# -ge 2 ] || { echo "error: $1 needs a value; see scripts/compare.sh --help" >&2; exit 1; }; }
while [ $# -gt 0 ]; do
  case "$1" in
    --shape|--seq|--base|--control-base|--pes|--long-pes|--long-seq|--long-base|--batch|--long-batch|\
    --steps|--long-steps|--lr|--clip|--mix|--long-mix|--data|--samples|--noise-samples|--attn-samples|--ppl-docs|--mix-loss|--mix-weight)
      need "$@"; O[${1#--}]=$2; shift 2 ;;
    --out) need "$@"; OUT=$2; shift 2 ;;
    --seeds) need "$@"; SEEDS=$2; shift 2 ;;
    --seed) need "$@"; RUN_SEEDS=$2; shift 2 ;;
    --stage) need "$@"; STAGE=$2; shift 2 ;;
    --max-minutes) need "$@"; MAXMIN=$2; shift 2 ;;
    --controls) CONTROLS=1; shift ;;
    --quick) SIZE=quick; shift ;;
    --tiny) SIZE=tiny; shift ;;
    --cpu) CPU=1; shift ;;
    --help|-h) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "error: unknown flag '$1'; see scripts/compare.sh --help" >&2; exit 1 ;;
  esac
done
case "$STAGE" in corpus|short|long|eval|report|all) ;; *) echo "error: --stage must be corpus, short, long, eval, report or all" >&2; exit 1 ;; esac

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

# the claim arms by default; --controls adds the other PEs and the base-10^4 controls
PES="$MAIN_PES rope_pm"; LONG_PES="$MAIN_PES"; CONTROL_PES=""
[ $CONTROLS -eq 1 ] && { PES="$PES $OTHER_PES"; CONTROL_PES="rope ropepp_ec"; }
DEFAULT_SEEDS="1 2 3 4 5 6"
case $SIZE in
  full)  NS=200; NNS=300; NATT=64; NPPL=16; MULTS="1 2 4 8" ;;
  quick) SHAPE="--dim 256 --layers 2 --heads 4 --kv-heads 2 --ffn 768"; BATCH=16; LBATCH=4; STEPS=300; LSTEPS=100
         NS=40; NNS=40; NATT=8; NPPL=4; MULTS="1 2 4 8"; DEFAULT_SEEDS="1 2" ;;
  tiny)  SHAPE="--dim 32 --layers 1 --heads 4 --kv-heads 2 --ffn 64"; SEQ=256; LSEQ=512; BATCH=2; LBATCH=1; STEPS=4; LSTEPS=2
         # with --controls a subset for speed: alibi as the one PE that is not rotary, rope at base 10^4
         [ $CONTROLS -eq 1 ] && { PES="$MAIN_PES rope_pm alibi"; CONTROL_PES="rope"; }
         MIX="passkey:0.3,mqar:0.3"; LMIX="passkey:0.3,vt:0.3"; NOISE_TASK=passkey; LNOISE_TASK=passkey
         TASKS="passkey,mqar"; LTASKS="passkey,vt"; NS=3; NNS=3; NATT=2; NPPL=2; MULTS="1 2"; DEFAULT_SEEDS="1 2" ;;
esac
SEEDS=${SEEDS:-$DEFAULT_SEEDS}; RUN_SEEDS=${RUN_SEEDS:-$SEEDS}   # the protocol's seeds; those this call runs
SHAPE=${O[shape]:-$SHAPE}; SEQ=${O[seq]:-$SEQ}; BASE=${O[base]:-$BASE}; CBASE=${O[control-base]:-$CBASE}
PES=${O[pes]:-$PES}; LONG_PES=${O[long-pes]-$LONG_PES}; LSEQ=${O[long-seq]:-$LSEQ}; STEPS=${O[steps]:-$STEPS}; LSTEPS=${O[long-steps]:-$LSTEPS}
LBASE=${O[long-base]:-$LBASE}; BATCH=${O[batch]:-$BATCH}; LBATCH=${O[long-batch]:-$LBATCH}; LR=${O[lr]:-$LR}; CLIP=${O[clip]:-$CLIP}; MIX=${O[mix]:-$MIX}
LMIX=${O[long-mix]:-$LMIX}; DATA=${O[data]:-$DATA}; NS=${O[samples]:-$NS}; NNS=${O[noise-samples]:-$NNS}
NATT=${O[attn-samples]:-$NATT}; NPPL=${O[ppl-docs]:-$NPPL}; MIXLOSS=${O[mix-loss]:-$MIXLOSS}; MIXWEIGHT=${O[mix-weight]:-$MIXWEIGHT}
for v in "$SEQ" "$LSEQ" "$BATCH" "$LBATCH" "$NS" "$NNS" "$NATT" "$NPPL" "$MAXMIN" "$STEPS" "$LSTEPS" $SEEDS $RUN_SEEDS; do
  case "$v" in ''|*[!0-9]*) echo "error: --seq, --long-seq, --batch, --long-batch, --steps, --long-steps, --samples, --noise-samples, --attn-samples, --ppl-docs, --max-minutes and the seeds take non-negative integers (got '$v')" >&2; exit 1 ;; esac
done
for s in $SEEDS $RUN_SEEDS; do [ "$s" -ge 1 ] || { echo "error: seeds start at 1 (the data order's seed, train --data-seed)" >&2; exit 1; }; done
case "$MIXLOSS" in answer|all) ;; *) echo "error: --mix-loss must be answer or all" >&2; exit 1 ;; esac
case "$MIXWEIGHT" in row|token) ;; *) echo "error: --mix-weight must be row or token" >&2; exit 1 ;; esac
PES=$(echo $PES); LONG_PES=$(echo $LONG_PES); CONTROL_PES=$(echo $CONTROL_PES)   # one space between names
unknown_pe() { echo "error: $1: unknown position embedding '$2'; $TRAIN --list-pe lists ${ALL_PES% }${3:-}" >&2; exit 1; }
for p in $PES; do [ $p = rope_pm ] || in_list $p "$ALL_PES" || unknown_pe --pes $p " (and rope_pm)"; done
for p in $LONG_PES; do in_list $p "$ALL_PES" || unknown_pe --long-pes $p; done
mkdir -p "$OUT"
T0=$(date +%s)
echo "compare v3: size $SIZE, seeds '$RUN_SEEDS' (of the protocol's '$SEEDS'), stage $STAGE, $TRAIN, results in $OUT$([ "$MAXMIN" -gt 0 ] && echo ", at most $MAXMIN min")"
out_of_time() {   # out_of_time SECONDS: exit 3 if a job of that length would pass --max-minutes
  [ "$MAXMIN" -gt 0 ] || return 0
  if [ $(( $(date +%s) - T0 + $1 )) -gt $((MAXMIN * 60)) ]; then
    echo "stopped before the next job (~$1 s) for --max-minutes $MAXMIN: run the same command again to continue"; exit 3
  fi
}
DIM=$(echo "$SHAPE" | sed -nE 's/.*--dim ([0-9]+).*/\1/p'); FFN=$(echo "$SHAPE" | sed -nE 's/.*--ffn ([0-9]+).*/\1/p')
# rope_pm: EC's o_proj takes 2H heads, C*C more weights per layer; a SwiGLU row of F costs 3C, so F + C/3, rounded
# to a multiple of 64 (C 384: F + 128, exactly EC's count; C 512: + 192) so the bf16 rows stay aligned for cuBLASLt
PM_ADD=$(( (DIM + 96) / 192 * 64 )); [ "$PM_ADD" -gt 0 ] || PM_ADD=64
PM_SHAPE=$(echo "$SHAPE" | sed -E "s/--ffn [0-9]+/--ffn $((FFN + PM_ADD))/")
arm_args() {   # arm_args ARM: the --pe and shape of an arm
  case $1 in rope_pm) echo "--pe rope $PM_SHAPE" ;; *_long) echo "--pe ${1%_long} $SHAPE" ;; *_b*) echo "--pe ${1%_b*} $SHAPE" ;; *) echo "--pe $1 $SHAPE" ;; esac
}
SHORT_ARMS="$PES $(for p in $CONTROL_PES; do printf '%s_b%s ' $p $CBASE; done)"
SHORT_ARMS=$(echo $SHORT_ARMS)
# the setup a seed was run with: seeds merge into one report only when theirs are the same
CONFIG="size $SIZE | shape $SHAPE | pm $PM_SHAPE | short $SHORT_ARMS: $STEPS x $BATCH x $SEQ base $BASE | long $LONG_PES: $LSTEPS x $LBATCH x $LSEQ base $LBASE | lr $LR clip $CLIP | mix $MIX / $LMIX, $MIXLOSS, $MIXWEIGHT | data $DATA | eval $NS $NNS $NATT $NPPL $MULTS"

# ---- 0. corpus
# the report needs only the corpus's description: here, or the one a seed brought back (bench/compare/seed_run.sh)
SEED_INFO=$(ls "$OUT"/seed*/corpus_info.txt 2>/dev/null | head -1)
if [ "$STAGE" = report ] && [ $SIZE != tiny ] && [ -s "${DATA}_info.txt" ]; then :
elif [ "$STAGE" = report ] && [ $SIZE != tiny ] && [ -n "$SEED_INFO" ]; then cp "$SEED_INFO" "$OUT/corpus_info.txt"; DATA=$OUT/corpus
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
final_ckpt() { printf "%s/model_%08d.ckpt" "$1" "$2"; }
evaluated() { [ -f "$1/eval/.done" ]; }

# run_train DIR STEPS ARGS...: train into DIR unless its final checkpoint exists; resume a partial one. A folder
# whose checkpoints are gone (results brought back from another machine) starts again.
run_train() {
  local dir=$1 steps=$2; shift 2
  job_tag
  if [ -f "$(final_ckpt "$dir" "$steps")" ]; then echo "  done: $dir   $TAG"; return 0; fi
  local resume=""
  if [ -f "$dir/settings.txt" ]; then
    if ls "$dir"/model_*.ckpt > /dev/null 2>&1; then resume="--resume"; else rm -f "$dir/settings.txt" "$dir/train.jsonl"; fi
  fi
  echo "  train: $dir $resume   $TAG"
  mkdir -p "$dir"
  $TRAIN "$@" --steps "$steps" --train "${DATA}_train.bin" --val "${DATA}_val.bin" --val-batches 8 --mix-loss $MIXLOSS --mix-weight $MIXWEIGHT $TASKFLAGS \
    --clip $CLIP --ckpt-dir "$dir" --ckpt-every $(( steps / 4 > 0 ? steps / 4 : 1 )) --keep 1 --log "$dir/train.jsonl" --sample 0 $resume \
    >> "$dir/train.txt" 2>&1 || { echo "error: training failed, see $dir/train.txt" >&2; tail -3 "$dir/train.txt" >&2; exit 1; }
  job_ran
}

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
  local ev="$dir/eval" pe; pe=$(arm_args $arm | awk '{ print $2 }')
  job_tag
  if evaluated "$dir"; then echo "  done: $ev   $TAG"; return 0; fi
  [ -f "$ck" ] || { echo "error: $ck is missing: run the training stages first" >&2; exit 1; }
  mkdir -p "$ev"
  out_of_time $([ "$MAXMIN" -gt 0 ] && echo 60 || echo 0)
  echo "  eval: $dir   $TAG"
  local sc="none"; in_list $pe "$SCALABLE_PES" && sc="none,ntk:4"
  # attention: every arm of a claim PE (controls and rope_pm too); noise: the claim PEs' own arms and the long stage
  local attn=0 noise=0; in_list $pe "$MAIN_PES" && attn=1; { in_list $arm "$MAIN_PES" || [ "${arm%_long}" != "$arm" ]; } && noise=1
  {
    timed ppl $EVAL ppl --ckpt "$ck" --data "${DATA}_val.bin" --docs --samples $NPPL --scalings $sc --out "$ev" --lengths "$(lengths $seq)" &&
    timed repeat $EVAL ppl --ckpt "$ck" --data "${DATA}_val.bin" --repeat --samples $NATT --out "$ev" --lengths $seq &&
    timed tasks $EVAL tasks --ckpt "$ck" --tasks "$tasks" --samples $NS $TASKFLAGS --out "$ev" --lengths $seq &&
    { [ $attn = 0 ] || timed attn $EVAL attn --ckpt "$ck" --data "${DATA}_val.bin" --samples $NATT --tasks $ntask $ATTNFLAGS --out "$ev"; } &&
    { [ $noise = 0 ] || timed noise $EVAL noise --ckpt "$ck" --relative --tasks $ntask --samples $NNS $TASKFLAGS --out "$ev"; }
  } > "$ev/eval.txt" 2> "$ev/eval.log" || { echo "error: eval failed, see $ev/eval.log" >&2; tail -3 "$ev/eval.log" >&2; exit 1; }
  touch "$ev/.done"
  job_ran
}

# ---- 1-3. each seed in turn: short, long, eval; a seed's runs stay on this machine until its evaluation is done
N_SEED_SHORT=$(echo $SHORT_ARMS | wc -w); N_SEED_LONG=$(echo $LONG_PES | wc -w)
if [ "$STAGE" != report ]; then
  if [ $CPU -eq 0 ] && command -v nvidia-smi > /dev/null; then mach=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1 | sed 's/, / (driver /; s/$/)/')
  else mach="CPU $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //')"; fi
fi
for seed in $RUN_SEEDS; do
  [ "$STAGE" = report ] && break
  sd="$OUT/seed$seed"; mkdir -p "$sd"
  if [ -s "$sd/config.txt" ] && [ "$(cat "$sd/config.txt")" != "$CONFIG" ]; then
    echo "error: $sd was run with another setup:" >&2; echo "  then: $(cat "$sd/config.txt")" >&2; echo "  now:  $CONFIG" >&2
    echo "use another --out for a new setup" >&2; exit 1
  fi
  echo "$CONFIG" > "$sd/config.txt"
  cp "${DATA}_info.txt" "$sd/corpus_info.txt"   # the corpus (its hashes) this seed was trained on
  # machine.txt: one line per call that trains or evaluates this seed (the report names the machines from it)
  echo "$(date -u +%FT%TZ) | stage $STAGE | $mach, $(nproc) cores | commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown) | scripts/compare.sh $ARGS" >> "$sd/machine.txt"
  echo "== seed $seed"
  if [ "$STAGE" = all ] || [ "$STAGE" = short ]; then
    echo "== short context, T $SEQ, base $BASE$([ -n "$CONTROL_PES" ] && echo " (controls at base $CBASE: $CONTROL_PES)")"
    stage_start $N_SEED_SHORT
    for arm in $SHORT_ARMS; do
      # a short run is needed for its own evaluation and, for a long PE, as the long stage's start
      if evaluated "$sd/$arm" && { ! in_list $arm "$LONG_PES" || evaluated "$sd/${arm}_long"; }; then job_tag; echo "  done: $sd/$arm   $TAG"; continue; fi
      base=$BASE; case $arm in *_b*) base=$CBASE ;; esac
      run_train "$sd/$arm" $STEPS $(arm_args $arm) --seq $SEQ --batch $BATCH --rope-base $base --lr $LR --schedule wsd \
        --seed $seed --data-seed $seed --mix "$MIX" --val-every $((STEPS / 2 > 0 ? STEPS / 2 : 1))
    done
  fi
  if [ "$STAGE" = all ] || [ "$STAGE" = long ]; then
    echo "== long: $LONG_PES at T $LSEQ with base $LBASE"
    stage_start $N_SEED_LONG
    for pe in $LONG_PES; do
      if evaluated "$sd/${pe}_long"; then job_tag; echo "  done: $sd/${pe}_long   $TAG"; continue; fi
      src=$(final_ckpt "$sd/$pe" $STEPS)
      [ -f "$src" ] || { echo "error: $src is missing: run stage short first" >&2; exit 1; }
      run_train "$sd/${pe}_long" $LSTEPS --init-from "$src" --seq $LSEQ --batch $LBATCH --rope-base $LBASE \
        --lr $LR --schedule cosine --warmup $((LSTEPS / 10)) --seed $seed --data-seed $seed --mix "$LMIX" --val-every $LSTEPS
    done
  fi
  if [ "$STAGE" = all ] || [ "$STAGE" = eval ]; then
    echo "== eval"
    stage_start $((N_SEED_SHORT + N_SEED_LONG))
    for arm in $SHORT_ARMS; do eval_run "$sd/$arm" $STEPS $SEQ $arm "$TASKS" $NOISE_TASK; done
    for pe in $LONG_PES; do eval_run "$sd/${pe}_long" $LSTEPS $LSEQ ${pe}_long "$LTASKS" $LNOISE_TASK; done
  fi
  echo "seed $seed: $(( $(date +%s) - T0 )) s since the start of this call"
done

[ "$STAGE" = all ] || [ "$STAGE" = report ] || exit 0
echo "== report"
# the seeds present: a seed folder whose setup is this one; the protocol's seeds (--seeds, or its default) not
# among them are named as missing. machine.txt: every seed's calls, in time order.
PRESENT=""; MISSING=""; OTHER=""
for d in "$OUT"/seed*/; do
  [ -d "$d" ] || continue
  s=$(basename "$d"); s=${s#seed}
  case "$s" in ''|*[!0-9]*) continue ;; esac
  if [ "$(cat "$d/config.txt" 2>/dev/null)" != "$CONFIG" ]; then OTHER="$OTHER seed$s"; continue; fi
  PRESENT="$PRESENT $s"
done
PRESENT=$(echo $PRESENT | tr ' ' '\n' | sort -n | paste -sd ' ' -)
for s in $SEEDS; do in_list $s "$PRESENT" || MISSING="$MISSING $s"; done
MISSING=$(echo $MISSING)
for s in $PRESENT; do   # seeds merge only over one corpus: the data hash each seed brought back must be the same
  f="$OUT/seed$s/corpus_info.txt"; [ -s "$f" ] || continue
  if [ -s "${DATA}_info.txt" ] && [ "$(grep 'data hash' "$f")" != "$(grep 'data hash' "${DATA}_info.txt")" ]; then
    echo "error: seed $s was trained on another corpus ($f: $(grep 'data hash' "$f"); ${DATA}_info.txt: $(grep 'data hash' "${DATA}_info.txt"))" >&2; exit 1
  fi
done
[ -n "$OTHER" ] && echo "warning: left out of the report (another setup, config.txt):$OTHER" >&2
[ -n "$PRESENT" ] || { echo "error: no seed in $OUT was run with this setup; run scripts/compare.sh --seed S first" >&2; exit 1; }
echo "seeds present: $PRESENT$([ -n "$MISSING" ] && echo "; missing: $MISSING (run scripts/compare.sh --seed S for each, e.g. bench/compare/seed_run.sh S on the device)")"
cat "$OUT"/seed*/machine.txt 2>/dev/null | sort > "$OUT/machine.txt"
SEEDS=$PRESENT
export OUT SEEDS MISSING SHORT_ARMS LONG_PES STEPS LSTEPS SEQ LSEQ BASE CBASE LBASE SHAPE PM_SHAPE BATCH LBATCH LR MIX LMIX MIXLOSS DATA SIZE CPU MULTS \
  NS NNS NATT NPPL NOISE_TASK LNOISE_TASK DIM EVAL
bash scripts/compare_report.sh || { echo "error: the report failed" >&2; exit 1; }
echo "all stages done"
