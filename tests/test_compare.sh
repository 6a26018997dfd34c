#!/usr/bin/env bash
# test_compare.sh — scripts/compare.sh (compare v2) end to end on the CPU at its tiny size (a corpus from this
# repository's sources, 2 seeds, 4 + 2 steps): every stage runs, the report opens with the decision rules and the
# verdict table (one verdict per claim, each supported / refuted / inconclusive), has a perplexity row per arm and
# the attention and noise sections, and a second run finds everything done. Run from the repository root.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
T=tests/tmp/test_compare.$$
trap 'rm -rf "$T" "$T.log" "$T.log2"' EXIT
# --quick (a GPU smoke test, README) must be a shape every position embedding accepts: its SHAPE line, one training
# step at a short length for each PE of ./train --list-pe (EH needs even heads and kv heads)
quick=$(sed -nE 's/^ *quick\) SHAPE="([^"]*)".*/\1/p' scripts/compare.sh)
refused=""
for pe in $(./train --list-pe | awk 'NR > 1 { print $1 }'); do
  OMP_NUM_THREADS=1 ./train --pe $pe $quick --seq 16 --batch 1 --steps 1 --val-batches 1 --sample 0 --out "$T/quick_$pe" > "$T.quick" 2>&1 \
    || refused="$refused $pe: $(grep -m1 error "$T.quick")"
done
[ -n "$quick" ] && [ -z "$refused" ] && ok "compare.sh --quick's shape ($quick) trains for every PE" || bad "compare.sh --quick's shape '$quick' refused:$refused"
if OMP_NUM_THREADS=1 bash scripts/compare.sh --cpu --tiny --out "$T" > "$T.log" 2>&1; then ok "compare.sh --cpu --tiny runs every stage"; else bad "compare.sh failed"; tail -20 "$T.log"; fi
R="$T/report.md"
[ -s "$R" ] && ok "report.md written" || bad "no report"
grep -q "^\*\*Smoke test (--tiny)" "$R" && ok "the --tiny report says it is a smoke test" || bad "the --tiny report does not say it is a smoke test"
rules=$(grep -n "^## Decision rules" "$R" | cut -d: -f1); verd=$(grep -n "^## Verdicts" "$R" | cut -d: -f1); setup=$(grep -n "^## Setup" "$R" | cut -d: -f1)
[ -n "$rules" ] && [ -n "$verd" ] && [ -n "$setup" ] && [ "$rules" -lt "$verd" ] && [ "$verd" -lt "$setup" ] &&
  ok "the decision rules come first, then the verdict table, then the numbers" || bad "report order: rules $rules verdicts $verd setup $setup"
n=$(grep -cE '^\| .* \| \*\*(supported|refuted|inconclusive)\*\* \|$' "$R")
[ "$n" -ge 11 ] && ok "verdict table: $n claims, each with a verdict" || bad "verdict rows: $n"
n=$(grep -cE '^\| [^|]+ \| [^|]+ \| mean diff [-0-9.e]+; [0-9]+ in the claimed direction, [0-9]+ against; sign in every seed: (all|none|mixed); sign test p = [0-9.e-]+ \(seeds 1 2\)( — every pair is tied)? \|' "$R")
[ "$n" -ge 8 ] && ok "paired verdicts carry their counts, per-seed sign and p ($n rows)" || bad "paired verdict rows with numbers: $n"
n=$(grep -cE '^\| [^|]+ \| [^|]+ \| discordant samples [0-9]+ for the claim, [0-9]+ against' "$R")
[ "$n" -ge 3 ] && ok "McNemar verdicts (noise, ablation) carry their discordant counts ($n rows)" || bad "McNemar rows: $n"
n=$(grep -cE '^\| (rope|ropepp_eh|ropepp_ec|rope_pm|alibi|rope_b10000) \| 256 \| none \| [0-9.]+ ± [0-9.]+ \| [0-9.]+ ± [0-9.]+ \|' "$R")
[ "$n" -eq 6 ] && ok "perplexity table: every short arm at 1x and 2x, mean ± sd over 2 seeds" || bad "perplexity rows: $n"
n=$(grep -cE '^\| [a-z_]+_long \| 512 \| none \|' "$R")
[ "$n" -eq 3 ] && ok "perplexity table: rope, ropepp_eh, ropepp_ec after the long stage at 512" || bad "long rows: $n"
grep -q "summary: imaginary heads: sink" "$R" && grep -q "c_Re, c_Im at base 1250" "$R" && ok "attention summaries and c_Re/c_Im curves in the report" || bad "no attention summary or curves"
grep -q "ablation" "$R" && grep -q "McNemar" "$R" && ok "noise section with the ablation" || bad "no noise section"
grep -q "list hash" "$R" && ok "the report records the corpus list hash" || bad "no corpus hash"
# progress: each job line carries its place in the stage, the elapsed time and an ETA once a job has run
first=$(grep -m1 "  train: " "$T.log"); later=$(grep "  train: " "$T.log" | sed -n 2p)
echo "$first" | grep -qE '\[1/[0-9]+ \| [0-9]+s into the stage, ETA \?\]$' && echo "$later" | grep -qE '\[2/[0-9]+ \| [0-9ms]+ into the stage, ETA [0-9ms]+\]$' &&
  ok "job lines show [i/N | elapsed, ETA]: $(echo "$later" | grep -oE '\[.*\]')" || bad "no progress on the job lines: '$first' / '$later'"
OMP_NUM_THREADS=1 bash scripts/compare.sh --cpu --tiny --out "$T" > "$T.log2" 2>&1
done_n=$(grep -c "  done:" "$T.log2"); trained=$(grep -c "  train:" "$T.log2")
[ "$trained" -eq 0 ] && [ "$done_n" -eq 36 ] && ok "a second run redoes nothing (36 stages done)" || bad "second run: $trained trained, $done_n done"
grep -q "^\*\*Not evaluated" "$R" && bad "the complete run's report lists runs as not evaluated" || ok "the complete run's report lists no run as not evaluated"
[ "$(wc -l < "$T/machine.txt")" -eq 2 ] && grep -q "| stage all | CPU .*, [0-9]* cores | commit " "$T/machine.txt" &&
  grep -qF "Command: \`scripts/compare.sh --cpu --tiny --out $T\` · seeds: 1 2 · runs on CPU " "$R" && grep -q " cores, commit [0-9a-f]* · report " "$R" &&
  ok "machine.txt names the machine and command line of each invocation and the report says them" || bad "machine.txt: $(cat "$T/machine.txt"); report: $(grep '^Command' "$R")"
# a run whose evaluation is missing: the report says so, and the long-stage rows pool the seed that has data
rm -rf "$T/seed2/ropepp_ec_long/eval"
OMP_NUM_THREADS=1 bash scripts/compare.sh --cpu --tiny --out "$T" --stage report > "$T.log2" 2>&1 || bad "--stage report failed: $(tail -3 "$T.log2")"
grep -q "^\*\*Not evaluated:\*\* seed2/ropepp_ec_long\. " "$R" && ok "the report lists the run without an evaluation" || bad "no 'Not evaluated' line: $(grep -i 'not eval' "$R")"
grep -E '^\| After the long stage, ec extrapolates' "$R" | grep -q '(seeds 1) |' && ok "that run's claim row pools seed 1 only and says so" || bad "long ec row: $(grep 'After the long stage, ec' "$R")"
[ "$(wc -l < "$T/machine.txt")" -eq 2 ] && ok "--stage report adds no machine line" || bad "machine.txt after --stage report: $(cat "$T/machine.txt")"
out=$(bash scripts/compare.sh --bogus 2>&1); [ $? -ne 0 ] && echo "$out" | grep -q "error: unknown flag" && ok "unknown flag is refused" || bad "unknown flag: $out"
out=$(bash scripts/compare.sh --cpu --tiny --steps abc --out "$T.x" 2>&1); [ $? -ne 0 ] && echo "$out" | grep -q "non-negative integers" && ok "a bad --steps is refused" || bad "bad --steps: $out"
out=$(bash scripts/compare.sh --cpu --tiny --mix-loss some --out "$T.x" 2>&1); [ $? -ne 0 ] && echo "$out" | grep -q "answer or all" && ok "a bad --mix-loss is refused" || bad "bad --mix-loss: $out"
rm -rf "$T.x"
finish test_compare
