#!/usr/bin/env bash
# test_fresh_clone.sh — the first five minutes of a new user, replayed in a fresh temporary clone of this repository
# (its committed HEAD): README's `make programs && ./train` works in that order and builds every program README uses next; Ctrl-C finishes the step, writes a
# checkpoint and a clean log line and exits 130; `./train --resume` continues the run with each step logged once;
# each run has its own folder under runs/ and nothing one run writes touches another's; errors name real flags and
# say when a path is a folder; infer, eval and eval plot take run folders; the small faults of the same report
# (infer's hint for ALiBi, eval plot's zigzag, `./eval bogus`, the sample of an untrained model, text and
# statistics on one line, results/ and runs/ not ignored by git).
# Run: bash tests/test_fresh_clone.sh [REPO]   (default: the repository this script is in; .ci/run runs it)
# Needs git, gcc and make; about a minute on 2 cores (the clone builds the programs, not the tests).
# NO_BLAS=1 in the environment: the build without OpenBLAS (make reads it); FRESH_QUICK=1: only the first part (make
# programs, ./train, Ctrl-C, resume, infer on the run), as .ci/run replays the build without BLAS.
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
SRC=${1:-$(pwd)}
W=$(mktemp -d "${TMPDIR:-/tmp}/ropepp_clone.XXXXXX")
trap 'rm -rf "$W"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
if ! git clone -q "$SRC" "$W/ropepp" 2>"$W/clone.err"; then bad "git clone $SRC: $(cat "$W/clone.err")"; finish test_fresh_clone; exit 1; fi
cd "$W/ropepp" || exit 1
echo "# fresh clone of $SRC ($(git rev-parse --short HEAD)) in $W/ropepp"

# wait_for FILE REGEX SECONDS: until a line of FILE matches (0) or the time is up (1)
wait_for() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do grep -qE "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
# the step numbers of a JSONL log's training lines, space-separated
log_steps() { grep -o '^{"step": [0-9]*, "loss"' "$1" | tr -dc '0-9\n' | tr '\n' ' '; }
whole_lines() { [ -s "$1" ] && ! grep -qvE '^\{".*\}$' "$1" && [ "$(tail -c 1 "$1" | od -An -c | tr -d ' ')" = '\n' ]; }

# ---- fault 1: README's two commands, in that order
quick=$(sed -n '/^```sh/,/^```/p' README.md | grep -m1 '&& ./train' | sed 's/ *&& .*//')
[ "$quick" = "make programs" ] && ok "README's quick start builds with '$quick'" || bad "README's quick start builds with '$quick' (this test replays 'make programs')"
if make programs > "$W/make_train.log" 2>&1 && [ -x train ] && [ -f data/tinyshakespeare_train.bin ] && [ -f data/tinyshakespeare_val.bin ]; then
  ok "make programs builds ./train and the data shards$([ "${NO_BLAS:-0}" = 1 ] && echo ' (NO_BLAS=1)')"
else bad "make programs: $(tail -3 "$W/make_train.log")"; fi
# what README uses after the quick start: ./infer, ./eval, scripts/compare.sh (data/docs2shards); no test program
[ -x infer ] && [ -x eval ] && [ -x data/docs2shards ] && [ -x data/text2shards ] && ok "make programs builds infer, eval, data/docs2shards, data/text2shards" \
  || bad "make programs left out: $(for b in infer eval data/docs2shards data/text2shards; do [ -x $b ] || printf '%s ' $b; done)"
[ ! -e tests/test_files ] && ok "make programs builds no test program" || bad "make programs built tests/test_files"
if [ "${NO_BLAS:-0}" = 1 ]; then grep -q "✗ BLAS off (NO_BLAS=1)" "$W/make_train.log" && ok "make programs with NO_BLAS=1 says the BLAS is off" || bad "no BLAS-off line: $(head -3 "$W/make_train.log")"; fi
! grep -q "NCCL" "$W/make_train.log" && ok "make programs prints no NCCL line" || bad "make programs printed: $(grep NCCL "$W/make_train.log")"
./train > "$W/t1.out" 2> "$W/t1.err" < /dev/null &
pid=$!
if wait_for "$W/t1.out" '^step +3/1000' 300; then
  kill -INT $pid; wait $pid; rc=$?
  run=$(readlink runs/latest); n=$(grep -E '^step' "$W/t1.out" | tail -1 | sed -E 's/^step +([0-9]+).*/\1/')
  ok "./train with no arguments runs in a fresh clone (run folder runs/$run)"
  [ "$rc" -eq 130 ] && ok "Ctrl-C: exit 130" || bad "Ctrl-C: exit $rc"
  [ -f "runs/$run/model_$(printf %08d "$n").ckpt" ] && [ -f "runs/$run/model_$(printf %08d "$n").state" ] \
    && ok "Ctrl-C wrote the checkpoint of step $n" || bad "no checkpoint of step $n: $(ls "runs/$run")"
  [ "$(tail -1 "runs/$run/train.jsonl")" = "{\"step\": $n, \"interrupted\": true}" ] && whole_lines "runs/$run/train.jsonl" \
    && ok "the log ends with a clean line {\"step\": $n, \"interrupted\": true}" || bad "log end: $(tail -c 200 "runs/$run/train.jsonl")"
  grep -q "^interrupted at step $n of 1000; continue with ./train --resume runs/" "$W/t1.out" && [ "$(tail -c 1 "$W/t1.out" | od -An -c | tr -d ' ')" = '\n' ] \
    && ok "standard output ends with a whole line saying how to continue" || bad "stdout end: $(tail -c 200 "$W/t1.out")"
  for f in settings.txt command.txt; do [ -s "runs/$run/$f" ] && ok "the run folder holds $f" || bad "no $f in runs/$run"; done
  grep -q "step .* | [0-9.]*s, ETA [0-9]" "$W/t1.out" && ok "step lines show the elapsed time and the ETA" || bad "no elapsed/ETA: $(grep -m1 '^step' "$W/t1.out")"
  # resume the run just interrupted (runs/latest), interrupt again, twice in a row: the second exits at once
  # (--val-every 1: a validation after every step keeps the run busy between the two signals; a step alone takes
  # ~60 ms, and the run could finish it and exit before a second signal arrives)
  ./train --resume --val-every 1 > "$W/t2.out" 2> "$W/t2.err" < /dev/null &
  pid=$!
  if wait_for "$W/t2.out" "^step +$((n + 2))/1000" 300; then
    kill -INT $pid
    for ((i = 0; i < 500; i++)); do grep -q "^interrupt: finishing" "$W/t2.err" && break; sleep 0.01; done   # the first was taken
    kill -INT $pid; wait $pid; rc=$?
    [ "$rc" -eq 130 ] && grep -q "second interrupt: exiting now" "$W/t2.err" && ok "a second Ctrl-C exits at once (exit 130)" || bad "second Ctrl-C: exit $rc $(cat "$W/t2.err")"
  else bad "./train --resume did not reach step $((n + 2)): $(tail -3 "$W/t2.err")"; kill $pid 2>/dev/null; fi
  grep -q "resumed from runs/$run/model_$(printf %08d "$n") at step $n" "$W/t2.out" && ok "./train --resume continues the run runs/latest points to (runs/$run, named as such) from step $n" \
    || bad "resume: $(head -2 "$W/t2.out") $(head -2 "$W/t2.err")"
  ./train --resume "runs/$run" --steps 1000 --val-every 100 > "$W/t3.out" 2> "$W/t3.err" < /dev/null &
  pid=$!
  wait_for "$W/t3.out" "^step +$((n + 2))/1000" 300 && kill -INT $pid; wait $pid; rc=$?
  last=$(sed -nE 's/^interrupted at step ([0-9]+) of.*/\1/p' "$W/t3.out")
  steps=$(log_steps "runs/$run/train.jsonl"); want=$(seq 1 "${last:-0}" | tr '\n' ' ')
  [ "$rc" -eq 130 ] && [ -n "$last" ] && [ "$last" -gt $((n + 1)) ] && [ "$steps" = "$want" ] && whole_lines "runs/$run/train.jsonl" \
    && ok "after Ctrl-C, resume, a double Ctrl-C and resume + Ctrl-C again, the log holds steps 1..$last once each, every line whole" \
    || bad "log steps '$steps' (want '$want'), exit $rc"
else bad "./train did not reach step 3: $(tail -3 "$W/t1.err")"; kill $pid 2>/dev/null; run=none; fi

# ---- fault 4: runs are folders; nothing one run writes touches another's
if [ "${FRESH_QUICK:-0}" = 1 ]; then
  out=$(./infer --ckpt "runs/$run" --prompt "ROMEO:" --max-new 10 --temperature 0 2>&1)
  echo "$out" | grep -q "^runs/$run/model_.*\.ckpt | ropepp_eh " && ok "./infer on the interrupted run" || bad "infer: $out"
  finish test_fresh_clone; exit $?
fi
sum_a=$(cat "runs/$run"/* 2>/dev/null | md5sum)
./train --pe rope --steps 2 --val-batches 1 --sample 0 > "$W/b.out" 2>&1 < /dev/null
run_b=$(readlink runs/latest)
[ "$run_b" != "$run" ] && [ -f "runs/$run_b/model_00000002.ckpt" ] && ok "a second run gets its own folder (runs/$run_b); runs/latest points to it" || bad "second run: $run_b"
./train --steps 0 --sample 20 > "$W/c.out" 2>&1 < /dev/null
grep -q "no sample: the model is untrained" "$W/c.out" && ! grep -q "^---- sample" "$W/c.out" && ok "--steps 0 prints no sample of an untrained model" || bad "--steps 0 sample: $(tail -3 "$W/c.out")"
[ "$(cat "runs/$run"/* 2>/dev/null | md5sum)" = "$sum_a" ] && ok "the first run's files (checkpoints, log, settings) are untouched by two later runs" || bad "the first run's files changed"
out=$(./infer --ckpt "runs/$run_b" --prompt "ROMEO:" --max-new 10 --temperature 0 2>&1)
echo "$out" | grep -q "^runs/$run_b/model_00000002.ckpt | rope " && ok "./infer --ckpt RUN_FOLDER uses that run's newest checkpoint" || bad "infer on a run folder: $out"
echo "$out" | grep -qE '^prompt [0-9]+ tokens' && ok "infer's statistics start their own line after the generated text" || bad "statistics not on their own line: $out"
./train --out "runs/$run_b" --steps 2 > "$W/d.out" 2> "$W/d.err" < /dev/null; rc=$?
[ "$rc" -ne 0 ] && grep -q "already holds a run" "$W/d.err" && ok "a new run refuses --out of an existing run: $(grep -m1 error: "$W/d.err" | cut -c1-100)" || bad "--out onto a run: exit $rc"
./train --pe rope --steps 1 --val-batches 1 --sample 0 --out runs/named > /dev/null 2>&1 < /dev/null
[ "$(readlink runs/latest)" = named ] && ok "a new run with --out runs/NAME is what runs/latest points to" || bad "--out runs/named: runs/latest -> $(readlink runs/latest)"
./train --pe rope --steps 1 --val-batches 1 --sample 0 --out "$W/outside" > /dev/null 2>&1 < /dev/null
[ "$(readlink runs/latest)" = named ] && [ -f "$W/outside/model_00000001.ckpt" ] && ok "a run folder outside runs/ leaves runs/latest alone" || bad "--out outside runs/: runs/latest -> $(readlink runs/latest)"

# ---- fault 2: errors name real flags; folders are reported as folders
./train --seq 200000 --batch 1 --steps 1 --out "$W/e1" > /dev/null 2> "$W/e1.err"; grep -q "lower --batch or --seq" "$W/e1.err" && ok "too little data names --batch or --seq" || bad "$(cat "$W/e1.err")"
./train --train data --vocab 256 --steps 1 --out "$W/e2" > /dev/null 2> "$W/e2.err"; grep -q "'data' is a folder, not a shard file" "$W/e2.err" && ok "a folder given as a shard is reported as a folder" || bad "$(cat "$W/e2.err")"
./train --init-from data --steps 1 --out "$W/e3" > /dev/null 2> "$W/e3.err"; grep -q "no checkpoint (model_\*.ckpt) in the folder 'data'" "$W/e3.err" && ok "a folder without checkpoints given to --init-from is reported as such" || bad "$(cat "$W/e3.err")"
./train --resume "$W/nothing" > /dev/null 2> "$W/e4.err"; grep -q "no run to continue" "$W/e4.err" && ok "--resume of a folder with no run says so" || bad "$(cat "$W/e4.err")"

# ---- fault 5: --resume restores the run's settings
./train --pe rope --batch 4 --seq 32 --steps 4 --val-batches 1 --sample 0 --out runs/shape > /dev/null 2>&1 < /dev/null
./train --resume runs/shape --steps 6 > "$W/f.out" 2>&1 < /dev/null
grep -q "batch 4 x seq 32 " "$W/f.out" && grep -q "step     6/6" "$W/f.out" && ok "--resume without --batch/--seq continues at 4 x 32, --steps 6 extends it" || bad "resume shape: $(grep -m1 data: "$W/f.out") $(grep -m1 error "$W/f.out")"

# ---- fault 6: the small ones
./train --pe alibi --steps 1 --seq 32 --batch 2 --val-batches 1 --sample 0 --out runs/alibi > /dev/null 2>&1 < /dev/null
./infer --ckpt runs/alibi --prompt "$(head -c 100 data/tinyshakespeare.txt)" > /dev/null 2> "$W/g.err"
grep -q "pass --ctx N$" "$W/g.err" && ! grep -q ntk "$W/g.err" && ok "infer on an ALiBi model suggests --ctx N without --ntk-factor" || bad "alibi hint: $(cat "$W/g.err")"
./eval ppl --ckpt "runs/$run_b" --lengths 16,32 --samples 1 --stride 128 > "$W/h.out" 2>&1 && [ -f "runs/$run_b/eval/ppl_rope.csv" ] && ok "eval ppl writes into the run's eval/ folder" || bad "eval ppl: $(tail -3 "$W/h.out")"
./eval plot --csv "runs/$run_b/eval/ppl_rope.csv" --x length --y ppl --group scaling --out "$W/p.svg" > /dev/null 2> "$W/i.err"
grep -q "band=all" "$W/i.err" && ok "eval plot refuses a line that would zigzag through per-band rows and names --where band=all" || bad "$(cat "$W/i.err")"
./eval plot --run "runs/$run" --run "runs/$run_b" --out "$W/loss.svg" > /dev/null 2>&1 && grep -q ">$run train<" "$W/loss.svg" && grep -q ">$run_b train<" "$W/loss.svg" \
  && ok "eval plot --run A --run B draws both runs' loss curves on one plot" || bad "eval plot --run"
./eval plot --run "runs/$run_b" > /dev/null 2>&1; single=$(md5sum < "runs/$run_b/loss.svg" 2>/dev/null)
./eval plot --run "runs/$run_b" --run "runs/$run" > /dev/null 2>&1
[ -n "$single" ] && [ "$(md5sum < "runs/$run_b/loss.svg")" = "$single" ] && grep -q ">$run train<" "runs/$run_b/loss_vs_runs.svg" \
  && ok "without --out, a plot of several runs goes to loss_vs_runs.svg and leaves the first run's loss.svg" || bad "eval plot's default output for several runs"
./eval bogus 2> "$W/j.err"; grep -q "plot" "$W/j.err" && ok "./eval bogus lists plot among the modes" || bad "$(cat "$W/j.err")"
./eval tasks --ckpt "runs/$run_b" --tasks mqar --lengths 32 --samples 2 > "$W/k.out" 2>&1
grep -q "mqar (not trained)" "$W/k.out" && grep -q "trained without --mix" "$W/k.out" && ok "eval tasks says when the model was never trained on the task" || bad "$(tail -4 "$W/k.out")"
[ -z "$(git status --porcelain)" ] && ok "git status is clean after runs, evals and plots (runs/, results/ and the build ignored)" || bad "git status: $(git status --porcelain | head -5 | tr '\n' ' ')"
finish test_fresh_clone
