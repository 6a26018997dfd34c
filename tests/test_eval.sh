#!/usr/bin/env bash
# test_eval.sh — ./eval as a user runs it: every mode on a tiny trained checkpoint writes its table, CSV and SVG;
# eval ppl's loss on the first window of the validation shard equals the validation loss ./train computes for
# the same window through its own data loader (1e-5: both float, summed in another order); ppl = exp(loss) in
# every CSV row; bad input exits non-zero with one error line. Run from the repository root (make test).
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
if ./eval plot --csv "$T/ev/ppl_ropepp_ec.csv" --x length --y ppl --group scaling --where band=all --logx --out "$T/ev/p.svg" > /dev/null 2>&1 \
   && [ "$(grep -c '<polyline' "$T/ev/p.svg")" -eq 2 ] && grep -q '>none<' "$T/ev/p.svg" && grep -q '>ntk:4<' "$T/ev/p.svg"; then ok "eval plot draws one line per group (none, ntk:4)"; else bad "eval plot"; fi

# bad input
expect_error ./eval "unknown mode" "unknown mode" bogus
expect_error ./eval "unknown flag" "unknown flag" ppl --bogus 1 --ckpt "$ck"
expect_error ./eval "missing checkpoint" "cannot open" ppl --ckpt "$T/nope.ckpt"
head -c 100 data/tinyshakespeare.txt > "$T/short.ckpt"; head -c 4000 data/tinyshakespeare.txt > "$T/text.ckpt"
expect_error ./eval "checkpoint shorter than its header" "truncated" ppl --ckpt "$T/short.ckpt"
expect_error ./eval "text file as checkpoint" "not a ropepp checkpoint" ppl --ckpt "$T/text.ckpt"
expect_error ./eval "unknown task" "unknown task" tasks --ckpt "$ck" --tasks bogus
expect_error ./eval "bad scaling factor" "scalings" ppl --ckpt "$ck" --scalings ntk:abc
expect_error ./eval "bad number" "not a number" ppl --ckpt "$ck" --samples -3
expect_error ./eval "plot: missing column" "no column" plot --csv "$T/ev/ppl_ropepp_ec.csv" --x bogus --y ppl --group pe --out "$T/x.svg"

finish test_eval
