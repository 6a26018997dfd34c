#!/usr/bin/env bash
# test_eval.sh — ./eval as a user runs it: every mode on a tiny trained checkpoint writes its table, CSV and SVG;
# eval ppl's loss on the first window of the validation shard equals the validation loss ./train computes for
# the same window through its own data loader (1e-5: both float, summed in another order); ppl = exp(loss) in
# every CSV row; bad input exits non-zero with one error line; a small MQAR-only training scores >= 90% on MQAR
# (issue 18). Run from the repository root (make test).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
T=tests/tmp/test_eval.$$
mkdir -p "$T"
trap 'rm -rf "$T"' EXIT

tiny="--dim 32 --layers 1 --heads 2 --kv-heads 2 --ffn 64 --batch 1 --seq 32 --val-batches 1 --val-every 0 --sample 0"
if ./train $tiny --pe ropepp_ec --steps 5 --ckpt-dir "$T/ck" --log "$T/train.jsonl" > "$T/train.txt" 2>&1; then ok "tiny ropepp_ec model trained"; else bad "training the tiny model"; cat "$T/train.txt"; fi
ck="$T/ck/model_00000005.ckpt"

# ppl, against train's validation loss on the same 32 tokens
if ./eval ppl --ckpt "$ck" --lengths 32,64 --samples 1 --out "$T/ev" > "$T/ppl.txt" 2>&1; then ok "eval ppl runs"; else bad "eval ppl"; cat "$T/ppl.txt"; fi
train_val=$(grep '"val_loss"' "$T/train.jsonl" | tail -1 | sed -E 's/.*"val_loss": ([0-9.eE+-]+).*/\1/')
eval_loss=$(grep '^ropepp_ec,none,32,all,0,32,' "$T/ev/ppl_ropepp_ec.csv" | cut -d, -f7)
if awk -v a="$train_val" -v b="$eval_loss" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && b != "" && d < 1e-5) }'; then
  ok "eval ppl loss on the first window ($eval_loss) = train's validation loss ($train_val)"
else bad "eval ppl loss '$eval_loss' differs from train's validation loss '$train_val'"; fi
if awk -F, 'NR > 1 { d = exp($7) - $8; if (d < 0) d = -d; if (d > 1e-3 * $8) exit 1 }' "$T/ev/ppl_ropepp_ec.csv"; then ok "ppl = exp(loss) in every row of the CSV"; else bad "ppl != exp(loss) in the CSV"; fi
grep -q "sliding window" "$T/ppl.txt" && ok "the sliding-window perplexity is reported" || bad "no sliding-window line"
[ -s "$T/ev/ppl_ropepp_ec.svg" ] && grep -q "<svg" "$T/ev/ppl_ropepp_ec.svg" && ok "ppl plot written" || bad "no ppl plot"

# a run trained on other validation data is scored on it by default (its settings.txt's --val), --data overrides
printf 'To be, or not to be, that is the question: whether tis nobler in the mind to suffer the slings and arrows.\n%.0s' $(seq 1 30) > "$T/other.txt"
if ./data/text2shards "$T/other.txt" --out "$T/other" --val-frac 0.5 > "$T/shards.txt" 2>&1 && [ -f "$T/other_val.bin" ]; then
  ./train $tiny --pe rope --steps 2 --val "$T/other_val.bin" --out "$T/runval" > "$T/runval.txt" 2>&1
  out=$(./eval ppl --ckpt "$T/runval" --lengths 32 --samples 1 --out "$T/ev_runval" 2>&1)
  echo "$out" | grep -q "^data: $T/other_val.bin, the run's validation data" && echo "$out" | grep -q "windows of each length from $T/other_val.bin" \
    && ok "eval ppl on a run folder scores the run's own --val by default" || bad "eval ppl did not take the run's --val: $(echo "$out" | head -3)"
  out=$(./eval ppl --ckpt "$T/runval" --data data/tinyshakespeare_val.bin --lengths 32 --samples 1 --out "$T/ev_runval" 2>&1)
  ! echo "$out" | grep -q "the run's validation data" && echo "$out" | grep -q "from data/tinyshakespeare_val.bin" \
    && ok "--data overrides the run's --val" || bad "--data did not override: $(echo "$out" | head -3)"
else bad "text2shards for the other-data run: $(tail -2 "$T/shards.txt")"; fi

# the other modes write their files
for mode in tasks noise patterns; do
  args="--ckpt $ck --samples 2 --out $T/ev"
  [ "$mode" = tasks ] && args="$args --tasks mqar --lengths 32,64"
  [ "$mode" = noise ] && args="$args --sigmas 0,0.5"
  if ./eval $mode $args > "$T/$mode.txt" 2>&1 && [ -s "$T/ev/${mode}_ropepp_ec.csv" ] && [ -s "$T/ev/${mode}_ropepp_ec.svg" ]; then
    ok "eval $mode writes its table, CSV and SVG"
  else bad "eval $mode"; cat "$T/$mode.txt"; fi
done
grep -q "imag" "$T/ev/patterns_ropepp_ec.csv" && ok "patterns labels the imaginary heads of a RoPE++ model" || bad "no imaginary heads in patterns"
grep -q ",imag," "$T/ev/noise_ropepp_ec.csv" && ok "noise has an imaginary-query curve for RoPE++" || bad "no imaginary noise rows"
# noise with sigma 0 scores the same samples as no noise: the sigma-0 rows of both targets agree
r0=$(grep ',real,0.000,' "$T/ev/noise_ropepp_ec.csv" | cut -d, -f6); i0=$(grep ',imag,0.000,' "$T/ev/noise_ropepp_ec.csv" | cut -d, -f6)
[ -n "$r0" ] && [ "$r0" = "$i0" ] && ok "sigma 0 gives the same accuracy for both targets ($r0)" || bad "sigma 0 rows differ: '$r0' vs '$i0'"
if ./eval curves --out "$T/ev" > "$T/curves.txt" 2>&1 && [ -s "$T/ev/curves.svg" ]; then ok "eval curves"; else bad "eval curves"; fi
if ./eval plot --csv "$T/ev/ppl_ropepp_ec.csv" --x length --y ppl --group scaling --where band=all --log-x --out "$T/ev/p.svg" > /dev/null 2>&1 \
   && [ "$(grep -c '<polyline' "$T/ev/p.svg")" -eq 2 ] && grep -q '>none<' "$T/ev/p.svg" && grep -q '>ntk:4<' "$T/ev/p.svg"; then ok "eval plot draws one line per group (none, ntk:4)"; else bad "eval plot"; fi

# bad input
expect_error ./eval "unknown mode" "unknown mode" bogus
expect_error ./eval "unknown flag" "unknown flag" ppl --bogus 1 --ckpt "$ck"
expect_error ./eval "misspelled flag" "unknown flag '--sampels' for mode ppl (did you mean --samples?)" ppl --sampels 3 --ckpt "$ck"
expect_error ./eval "missing checkpoint" "cannot open" ppl --ckpt "$T/nope.ckpt"
head -c 100 data/tinyshakespeare.txt > "$T/short.ckpt"; head -c 4000 data/tinyshakespeare.txt > "$T/text.ckpt"
expect_error ./eval "checkpoint shorter than its header" "truncated" ppl --ckpt "$T/short.ckpt"
expect_error ./eval "text file as checkpoint" "not a ropepp checkpoint" ppl --ckpt "$T/text.ckpt"
expect_error ./eval "unknown task" "unknown task" tasks --ckpt "$ck" --tasks bogus
expect_error ./eval "bad scaling factor" "scalings" ppl --ckpt "$ck" --scalings ntk:abc
expect_error ./eval "bad number" "not a number" ppl --ckpt "$ck" --samples -3
# eval plot --run A --run B: per run (one colour) the training loss as a trailing window mean (hand-built logs: loss
# 6, 2, 4, 0 with --smooth 2 gives 6, 4, 3, 2) as a solid line and the validation points dashed with markers; --log-y
mkdir -p "$T/pa" "$T/pb"
printf '{"step": 1, "loss": 6}\n{"step": 2, "loss": 2}\n{"step": 2, "val_loss": 5, "val_targets": 10}\n{"step": 3, "loss": 4}\n{"step": 4, "loss": 0}\n{"step": 4, "val_loss": 3, "val_targets": 10}\n' > "$T/pa/train.jsonl"
sed 's/"loss": 6/"loss": 8/' "$T/pa/train.jsonl" > "$T/pb/train.jsonl"
./eval plot --run "$T/pa" --run "$T/pb" --smooth 2 --out "$T/runs.svg" > /dev/null 2>&1
./eval plot --run "$T/pa" --smooth 2 --y loss --out "$T/one.svg" > /dev/null 2>&1
# one.svg's y range is [2, 6] padded by 5% (1.8 .. 6.2) over 365 px from y=45: value v at 45 + 365 (6.2 - v) / 4.4
want=$(awk 'BEGIN { for (i = 0; i < 4; i++) { split("6 4 3 2", v, " "); printf "%.1f ", 45 + 365 * (6.2 - v[i + 1]) / 4.4 } }')
got=$(grep -o '<polyline[^>]*points="[^"]*"' "$T/one.svg" | sed 's/.*points="//; s/"$//' | tr ' ' '\n' | cut -d, -f2 | tr '\n' ' ')
[ "$(grep -c '<polyline' "$T/runs.svg")" -eq 4 ] && [ "$(grep -c 'stroke-dasharray' "$T/runs.svg")" -eq 4 ] && grep -q '>pa train<' "$T/runs.svg" && grep -q '>pb val<' "$T/runs.svg" \
  && grep -q "solid: mean of the last 2 steps" "$T/runs.svg" && [ "$(echo $got)" = "$(echo $want)" ] \
  && ok "eval plot --run A --run B: smoothed training loss (window mean 6,2,4,0 -> 6,4,3,2) and dashed validation points per run, legend" \
  || bad "eval plot --run: $(grep -c '<polyline' "$T/runs.svg") lines; y of the smoothed line '$got' (want '$want')"
./eval plot --run "$T/pa" --log-y --out "$T/log.svg" > /dev/null 2>&1 && grep -q 'log scale' "$T/log.svg" && ok "eval plot --log-y" || bad "eval plot --log-y"
# --log-x: the steps 1..4 at x = 80 + 490 log10(step) / log10(4) px (plot area x 80..570), ticks at 1, 2, 4
./eval plot --run "$T/pa" --log-x --y loss --smooth 1 --out "$T/logx.svg" > /dev/null 2>&1
want=$(awk 'BEGIN { for (s = 1; s <= 4; s++) printf "%.1f ", 80 + 490 * log(s) / log(4) }')
got=$(grep -o '<polyline[^>]*points="[^"]*"' "$T/logx.svg" | sed 's/.*points="//; s/"$//' | tr ' ' '\n' | cut -d, -f1 | tr '\n' ' ')
[ "$(echo $got)" = "$(echo $want)" ] && grep -q 'text-anchor="middle">2<' "$T/logx.svg" && ! grep -q 'text-anchor="middle">1.5<' "$T/logx.svg" \
  && ok "eval plot --log-x puts the steps on a log axis ($want)" || bad "eval plot --log-x: x '$got' (want '$want')"
expect_error ./eval "plot: --logx names --log-x" "unknown flag '--logx' for mode plot (did you mean --log-x?)" plot --run "$T/pa" --logx
expect_error ./eval "plot: an unknown last flag is named as unknown, not as missing a value" "unknown flag '--lgo-y' for mode plot (did you mean --log-y?)" plot --run "$T/pa" --lgo-y
# one validation point: "1 point of val_loss" (singular), 2 points of loss
mkdir -p "$T/p1"
printf '{"step": 1, "loss": 6}\n{"step": 2, "loss": 2}\n{"step": 2, "val_loss": 5, "val_targets": 10}\n' > "$T/p1/train.jsonl"
out=$(./eval plot --run "$T/p1" --out "$T/p1.svg" 2>&1)
echo "$out" | grep -q ": 1 point of val_loss$" && echo "$out" | grep -q ": 2 points of loss$" && ok "eval plot counts '1 point', '2 points'" || bad "eval plot point counts: $out"
# eval plot --help (and -h): plot's flags only, not every mode's
out=$(./eval plot --help 2>&1); out_h=$(./eval plot -h 2>&1)
echo "$out" | grep -q -- "--log-x, --log-y" && ! echo "$out" | grep -q "eval ppl:\|eval tasks:\|--ckpt" && [ "$out" = "$out_h" ] \
  && ok "eval plot --help / -h print plot's help alone" || bad "eval plot --help: $out"
expect_error ./eval "plot: --smooth with --csv" "--smooth applies to the training loss of --run" plot --csv "$T/ev/ppl_ropepp_ec.csv" --x length --y ppl --group scaling --smooth 3 --out "$T/x.svg"
expect_error ./eval "plot: missing column" "no column" plot --csv "$T/ev/ppl_ropepp_ec.csv" --x bogus --y ppl --group pe --out "$T/x.svg"


# flags per mode (a flag is applied or refused, never dropped): a flag the mode does not use is refused, naming the
# flag, the mode and the modes it applies to
expect_error ./eval "noise refuses --scalings" "--scalings is not used by eval noise (it applies to ppl, tasks)" noise --ckpt "$ck" --scalings pi:2
expect_error ./eval "a range is printed in integers" "--lengths '1' is not a number in \\[2, 16777216\\]" ppl --ckpt "$ck" --lengths 1
expect_error ./eval "--flag=value names the flag and its value" "unknown flag '--samples=3' for mode ppl; write it as --samples 3" ppl --samples=3
expect_error ./eval "patterns refuses --scalings" "--scalings is not used by eval patterns" patterns --scalings pi:2 --stride 3
expect_error ./eval "patterns refuses --stride" "--stride is not used by eval patterns (it applies to ppl)" patterns --ckpt "$ck" --stride 3
expect_error ./eval "ppl refuses --sigmas" "--sigmas is not used by eval ppl (it applies to noise)" ppl --sigmas 9 --relative --depth 0.5
expect_error ./eval "ppl refuses --relative" "--relative is not used by eval ppl" ppl --ckpt "$ck" --relative
expect_error ./eval "ppl refuses --depth" "--depth is not used by eval ppl (it applies to tasks, noise, attn)" ppl --ckpt "$ck" --depth 0.5
expect_error ./eval "tasks refuses --data" "--data is not used by eval tasks" tasks --ckpt "$ck" --data data/tinyshakespeare_val.bin
expect_error ./eval "tasks refuses --seq" "--seq is not used by eval tasks" tasks --ckpt "$ck" --seq 64
expect_error ./eval "noise refuses --lengths" "--lengths is not used by eval noise" noise --ckpt "$ck" --lengths 32
expect_error ./eval "attn refuses --lengths" "--lengths is not used by eval attn" attn --ckpt "$ck" --lengths 32
expect_error ./eval "curves refuses --ckpt" "--ckpt is not used by eval curves" curves --ckpt "$ck"
# ... and a flag that the other flags leave without a use
expect_error ./eval "ppl --docs refuses --stride" "--stride is not used by eval ppl --docs" ppl --ckpt "$ck" --docs --stride 3
expect_error ./eval "ppl refuses --docs-from without --docs" "--docs-from sets where eval ppl --docs starts each document" ppl --ckpt "$ck" --docs-from 8
expect_error ./eval "tasks: --depth with mqar only" "--depth is not used by eval tasks on these tasks" tasks --ckpt "$ck" --tasks mqar --depth 0.5
expect_error ./eval "noise: --depth with mqar" "--depth is not used by eval noise on these tasks" noise --ckpt "$ck" --tasks mqar --depth 0.2
expect_error ./eval "tasks takes one --scalings item" "too many items" tasks --ckpt "$ck" --scalings none,pi:2
# every flag in every mode: refused exactly when the mode's --help does not list it
wrong=""; nchecked=0
for mode in ppl tasks noise patterns attn curves; do
  help=$(./eval $mode --help | grep -- '^  --')
  for fv in "--ckpt $T/nope.ckpt" "--data x" "--out $T/flags" "--samples 1" "--lengths 32" "--scalings none" "--stride 1" "--docs" "--docs-from 0" \
            "--seq 32" "--tasks mqar" "--depth 0.5" "--seed 1" "--task-bos" "--mqar-filler blank" "--mqar-kv 2" "--sigmas 0" \
            "--relative" "--head-dim 8" "--base 100"; do
    f=${fv%% *}
    if [ $mode = curves ]; then rest="--out $T/flags"; else rest="--ckpt $T/nope.ckpt"; fi
    out=$(./eval $mode $fv $rest 2>&1 < /dev/null)
    listed=0; echo "$help" | grep -qE -- "(^| )$f( |$)" && listed=1
    refused=0; echo "$out" | grep -q -- "error: $f is not used by eval $mode" && refused=1
    [ $listed -ne $refused ] || wrong="$wrong $mode:$f(listed $listed, refused $refused)"
    nchecked=$((nchecked + 1))
  done
done
[ -z "$wrong" ] && ok "$nchecked mode x flag pairs: each flag is refused exactly where the mode's --help does not list it" || bad "flags per mode disagree with --help:$wrong"
# accepted: every flag each mode uses, together
if ./eval ppl --ckpt "$ck" --data data/tinyshakespeare_val.bin --lengths 32 --samples 2 --scalings none,ntk:2 --stride 16 --out "$T/acc" > "$T/acc_ppl.txt" 2>&1 \
   && grep -q "stride 16" "$T/acc_ppl.txt" && grep -q '^ropepp_ec,ntk:2,32,all,' "$T/acc/ppl_ropepp_ec.csv"; then ok "ppl takes --data --lengths --samples --scalings --stride --out and applies them"
else bad "ppl with all its flags: $(tail -3 "$T/acc_ppl.txt")"; fi
if ./eval tasks --ckpt "$ck" --tasks mqar,passkey --lengths 32 --samples 2 --scalings none --depth 0.5 --seed 2 --task-bos --mqar-filler blank --mqar-kv 2 --out "$T/acc" > "$T/acc_tasks.txt" 2>&1 \
   && grep -q '^ropepp_ec,none,mqar,32,.*,2,[0-9]*,no$' "$T/acc/tasks_ropepp_ec.csv"; then ok "tasks takes --tasks --lengths --samples --scalings --depth --seed --task-bos --mqar-filler --mqar-kv"
else bad "tasks with all its flags: $(tail -3 "$T/acc_tasks.txt")"; fi
if ./eval noise --ckpt "$ck" --tasks mqar --seq 32 --samples 2 --sigmas 0,1 --relative --seed 2 --task-bos --mqar-filler blank --mqar-kv 2 --out "$T/acc" > "$T/acc_noise.txt" 2>&1 \
   && grep -q "query RMS per layer" "$T/acc_noise.txt" && grep -q ',real,1.000,1,' "$T/acc/noise_ropepp_ec.csv"; then ok "noise takes --tasks --seq --samples --sigmas --relative --seed --task-bos --mqar-filler --mqar-kv"
else bad "noise with all its flags: $(tail -3 "$T/acc_noise.txt")"; fi
if ./eval patterns --ckpt "$ck" --data data/tinyshakespeare_val.bin --seq 16 --samples 2 --out "$T/acc" > "$T/acc_patterns.txt" 2>&1 \
   && grep -q "queries in \[8, 16) of 2 disjoint windows" "$T/acc_patterns.txt"; then ok "patterns takes --data --seq --samples --out"
else bad "patterns with all its flags: $(tail -3 "$T/acc_patterns.txt")"; fi

# a model trained without --mix: eval noise says "(not trained)" in its table, note, CSV and plot title, as eval
# tasks does; a model trained with the task in its mix does not
grep -q "noise experiment: mqar (not trained)" "$T/noise.txt" && grep -q "^note: the model was trained without --mix" "$T/noise.txt" \
  && grep -q "mqar (not trained) accuracy vs query noise.*(not trained): not in --mix" "$T/ev/noise_ropepp_ec.svg" \
  && awk -F, 'NR > 1 && $16 != "no" { bad = 1 } END { exit bad }' "$T/ev/noise_ropepp_ec.csv" \
  && ok "eval noise on a model trained without --mix marks the task (not trained) in the table, note, CSV and plot title" \
  || bad "eval noise without --mix: $(grep -m1 'noise experiment' "$T/noise.txt")"
if ./train $tiny --pe ropepp_ec --steps 2 --mix mqar:0.5 --out "$T/mixed" > "$T/mixed.txt" 2>&1 \
   && ./eval noise --ckpt "$T/mixed" --tasks mqar --samples 2 --sigmas 0 --out "$T/mixed/ev" > "$T/mixed_noise.txt" 2>&1; then
  ! grep -q "not trained" "$T/mixed_noise.txt" "$T/mixed/ev/noise_ropepp_ec.svg" && grep -q ',yes$' "$T/mixed/ev/noise_ropepp_ec.csv" \
    && ok "eval noise on a model trained with --mix mqar: no (not trained) mark, in_training_mix yes" || bad "eval noise with --mix mqar: $(grep -m1 'noise experiment' "$T/mixed_noise.txt")"
else bad "the --mix model or its noise eval failed: $(tail -2 "$T/mixed.txt" "$T/mixed_noise.txt")"; fi
# the note on a zero baseline appears exactly when the sigma-0 row of the real arm scores 0% (read from the CSV)
acc0=$(awk -F, 'NR > 1 && $4 == "real" && $5 + 0 == 0 { print $7 }' "$T/ev/noise_ropepp_ec.csv")
if [ -n "$acc0" ]; then
  if awk -v a="$acc0" 'BEGIN { exit !(a == 0) }'; then grep -q "^note: without noise (sigma 0) the accuracy is already 0%" "$T/noise.txt"; else ! grep -q "^note: without noise" "$T/noise.txt"; fi \
    && ok "eval noise notes a 0% baseline exactly when sigma 0 scores 0% (here $acc0)" || bad "eval noise's zero-baseline note disagrees with its CSV (sigma-0 accuracy $acc0)"
else bad "no sigma-0 real row in $T/ev/noise_ropepp_ec.csv"; fi

# progress: the closing line counts every window (the length windows + the sliding windows); tasks and noise count
# their samples
sliding=$(sed -nE 's/^sliding window .*, ([0-9]+) windows\).*/\1/p' "$T/ppl.txt")
grep -q "^eval ppl: windows $((2 * 2 + sliding))/$((2 * 2 + sliding)) done in " "$T/ppl.txt" \
  && ok "eval ppl's closing progress line counts 2 scalings x 2 lengths x 1 window + $sliding sliding windows" || bad "eval ppl progress: $(grep '^eval ppl:' "$T/ppl.txt")"
grep -q "^eval tasks: samples 4/4 done in " "$T/tasks.txt" && ok "eval tasks' closing progress line: 4/4 samples (mqar at 32 and 64, 2 each)" || bad "eval tasks progress: $(grep '^eval tasks:' "$T/tasks.txt")"
grep -q "^eval noise: samples 12/12 done in " "$T/noise.txt" && ok "eval noise's closing progress line: 12/12 samples (2 sigmas x 2 arms + 2 ablations, 2 each)" || bad "eval noise progress: $(grep '^eval noise:' "$T/noise.txt")"
# a long run (stride 1 over the validation shard) shows progress with an ETA on stderr while it runs, and stdout is
# line-buffered: killed then, its file already holds the table; and the CSV of the previous run in the same --out
# is still whole (tables are written to .tmp and renamed when complete)
./eval ppl --ckpt "$ck" --lengths 32 --samples 1 --scalings none --out "$T/long" > /dev/null 2>&1
before=$(md5sum < "$T/long/ppl_ropepp_ec.csv" 2>/dev/null)
./eval ppl --ckpt "$ck" --lengths 32 --samples 1 --scalings none --stride 1 --out "$T/long" > "$T/long.out" 2> "$T/long.err" &
pid=$!
for i in $(seq 1 300); do grep -q "^eval ppl: windows [0-9]*/[0-9]* ([0-9]*%) | .*, ETA " "$T/long.err" && break; sleep 0.1; done
kill -9 $pid 2> /dev/null; wait $pid 2> /dev/null
grep -q "^eval ppl: windows [0-9]*/111539 ([0-9]*%) | [0-9.ms]*, ETA [0-9.hms]*$" "$T/long.err" && ok "a long eval ppl prints progress: $(grep -m1 '^eval ppl' "$T/long.err")" \
  || bad "no progress line while eval ppl ran: $(head -c 300 "$T/long.err")"
grep -q "^loss (nats/token)" "$T/long.out" && ok "killed mid-run, eval's redirected stdout already holds its table (line-buffered)" || bad "killed eval left stdout without its table: $(wc -c < "$T/long.out") bytes"
[ -n "$before" ] && [ "$(md5sum < "$T/long/ppl_ropepp_ec.csv")" = "$before" ] && [ "$(wc -l < "$T/long/ppl_ropepp_ec.csv")" -gt 1 ] \
  && ok "killed mid-run, eval ppl left the previous run's CSV in the same --out whole" || bad "the killed eval damaged the previous CSV: $(wc -c < "$T/long/ppl_ropepp_ec.csv") bytes"

# MQAR is learnable (issue 18: "a small MQAR-only CPU training reaches >= 90% accuracy"; 90% is the issue's
# threshold): a 2-layer rope model (C 64, H 2, KV 2, F 128; 115k parameters) trained 800 steps on MQAR rows only
# (--mix mqar:1, batch 64 x seq 24, 4 key-value pairs, blank filler, lr 0.003 without warmup, seed 42), then eval
# tasks on 500 fresh samples (2000 queries) at length 24, the accuracy read from its CSV. Measured: 99.7-100% over
# seeds 1-8 and 42, built with OpenBLAS and without (seed 42: 99.85% and 100%; 99.7-100% over 21 seeds earlier);
# 200 steps gives 23.9-24.3% (seeds 1, 2, 3, 42), so the check can fail. Chance (vocab 256, the byte data's): a
# value drawn uniformly from [V/2, V) = [128, 256) is right 1/128 = 0.8% of the time, any token 1/256; a pick
# among the row's 4 values 25%. ~12 s on one core of an AMD EPYC with OpenBLAS, ~33 s with the plain loops.
mqar="--pe rope --dim 64 --layers 2 --heads 2 --kv-heads 2 --ffn 128 --seq 24 --batch 64 --mix mqar:1 --mqar-filler blank --mqar-kv 4"
if ./train $mqar --steps 800 --lr 0.003 --warmup 0 --seed 42 --val-batches 1 --val-every 0 --sample 0 --out "$T/mqar" > "$T/mqar_train.txt" 2>&1 \
   && ./eval tasks --ckpt "$T/mqar" --tasks mqar --lengths 24 --samples 500 --mqar-filler blank --mqar-kv 4 --out "$T/mqar/ev" > "$T/mqar_eval.txt" 2>&1; then
  acc=$(awk -F, '$3 == "mqar" && $4 == 24 { print $5 }' "$T/mqar/ev/tasks_rope.csv")
  if awk -v a="$acc" 'BEGIN { exit !(a != "" && a >= 0.90) }'; then ok "a small MQAR-only training (800 steps) reaches >= 90% MQAR accuracy at length 24: $acc"
  else bad "the small MQAR-only training reaches MQAR accuracy '$acc' at length 24, below 0.90 (issue 18's threshold): $(grep -m1 '^mqar' "$T/mqar_eval.txt")"; fi
else bad "the small MQAR-only training or its eval failed: $(tail -2 "$T/mqar_train.txt" "$T/mqar_eval.txt")"; fi

# eval stat claims / growth on hand-built files (the statistics themselves: tests/test_analysis.c)
tab=$'\t'
{ echo "claim${tab}ec${tab}test${tab}0${tab}Table 1${tab}EC below RoPE${tab}loss(rope) - loss(EC)"
  echo "claim${tab}na${tab}unmeasurable${tab}0${tab}Table 2${tab}tasks${tab}0% in every arm"
  for s in 1 2 3 4 5 6; do echo "value${tab}ec${tab}$s${tab}0.$s"; echo "value${tab}ec${tab}$s${tab}0.$((s + 1))"; done; } > "$T/claims.tsv"
if ./eval stat claims "$T/claims.tsv" --svg "$T/effects.svg" > "$T/claims.md" 2>&1; then
  row=$(grep '^| EC below RoPE (Table 1) |' "$T/claims.md")
  # per seed the mean of its two units: 0.15 .. 0.65; m = 1; sign-flip of 6 positive seeds 2/64
  echo "$row" | grep -q '| +0.15 +0.25 +0.35 +0.45 +0.55 +0.65 (2 each) | +0.4 \[' && echo "$row" | grep -q '| 0.0312 |' && echo "$row" | grep -q '\*\*supported\*\* |$' &&
    grep -q '^| tasks (Table 2) | .* | not measurable: 0% in every arm |$' "$T/claims.md" && grep -q 'm = 1\*\* tested claims' "$T/claims.md" &&
    grep -q "<svg" "$T/effects.svg" && ok "eval stat claims: per-seed means of the units, sign-flip 2/64, supported, the unmeasurable row, m 1, the figure" ||
    bad "eval stat claims table: $(cat "$T/claims.md")"
  [ "$(grep -n '^## Decision rules' "$T/claims.md" | cut -d: -f1)" -lt "$(grep -n '^| EC below' "$T/claims.md" | cut -d: -f1)" ] && ok "the rules come before the numbers" || bad "rules after the table"
else bad "eval stat claims failed: $(cat "$T/claims.md")"; fi
printf 'value\tec\t1\t0.5\n' > "$T/bad1.tsv"
expect_error ./eval "stat claims: a value before its claim" "line 1: value for claim 'ec', which no earlier claim line declares" stat claims "$T/bad1.tsv"
{ echo "claim${tab}ec${tab}test${tab}0${tab}T1${tab}EC${tab}m"; echo "value${tab}ec${tab}1${tab}nan"; } > "$T/bad2.tsv"
expect_error ./eval "stat claims: a value that is not a finite number" "line 2: value 'nan' is not a finite number" stat claims "$T/bad2.tsv"
echo "claim${tab}ec${tab}better${tab}0${tab}T1${tab}EC${tab}m" > "$T/bad3.tsv"
expect_error ./eval "stat claims: an unknown kind" "kind 'better' is not test, describe or unmeasurable" stat claims "$T/bad3.tsv"
echo "claim${tab}ec${tab}test${tab}0${tab}T1${tab}EC | RoPE${tab}m" > "$T/bad4.tsv"
expect_error ./eval "stat claims: a '|' in a field" "a '|' would break the report's table" stat claims "$T/bad4.tsv"
# growth at 4T, T 8: [8,16) 2.5 over 64 targets and [16,32) 3.5 over 128, minus [4,8) 2.0: 19/6 - 2 = 1.166667
{ echo "pe,scaling,length,band,band_start,band_end,loss,ppl,tokens,windows"
  echo "rope,none,8,band,0,4,9,1,32,8"; echo "rope,none,8,band,4,8,9,1,32,8"
  echo "rope,none,32,band,0,4,3.0,1,32,8"; echo "rope,none,32,band,4,8,2.0,1,32,8"; echo "rope,none,32,band,8,16,2.5,1,64,8"
  echo "rope,none,32,band,16,32,3.5,1,128,8"; echo "rope,none,32,all,0,32,3,1,256,8"; echo "rope,ntk:4,32,band,16,32,9,1,128,8"; } > "$T/ppl_growth.csv"
g=$(./eval stat growth "$T/ppl_growth.csv" 8 2>&1)
[ "$g" = "1.166667" ] && ok "eval stat growth: the longest length's bands past T minus [T/2, T) = 7/6" || bad "eval stat growth: '$g'"
expect_error ./eval "stat growth: no band past T" "no band starts at or past 64" stat growth "$T/ppl_growth.csv" 64

finish test_eval
