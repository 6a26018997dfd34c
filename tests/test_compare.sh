#!/usr/bin/env bash
# test_compare.sh — scripts/compare.sh (compare v3) end to end on the CPU at its tiny size (a corpus from this
# repository's sources, 4 + 2 steps): one seed per call (--seed S), two seeds run by two separate invocations into
# two folders and merged into one, whose --stage report covers both; a seed's rerun redoes nothing, also when its
# checkpoints did not come back; a seed folder of another setup is refused; the report opens with the decision
# rules and the verdict table. Run from the repository root.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
T=tests/tmp/test_compare.$$
trap 'rm -rf "$T" "$T.b" "$T.log" "$T.log2" "$T.info"' EXIT
cmp3() { OMP_NUM_THREADS=1 bash scripts/compare.sh --cpu --tiny "$@"; }

# --quick (a GPU smoke test, README) must be a shape every position embedding accepts: its SHAPE line, one training
# step at a short length for each PE of ./train --list-pe (EH needs even heads and kv heads)
quick=$(sed -nE 's/^ *quick\) SHAPE="([^"]*)".*/\1/p' scripts/compare.sh)
refused=""
for pe in $(./train --list-pe | awk 'NR > 1 { print $1 }'); do
  OMP_NUM_THREADS=1 ./train --pe $pe $quick --seq 16 --batch 1 --steps 1 --val-batches 1 --sample 0 --out "$T/quick_$pe" > "$T.quick" 2>&1 \
    || refused="$refused $pe: $(grep -m1 error "$T.quick")"
done
[ -n "$quick" ] && [ -z "$refused" ] && ok "compare.sh --quick's shape ($quick) trains for every PE" || bad "compare.sh --quick's shape '$quick' refused:$refused"

# one seed, one call
if cmp3 --out "$T" --seed 1 > "$T.log" 2>&1; then ok "compare.sh --cpu --tiny --seed 1 runs every stage of seed 1"; else bad "compare.sh --seed 1 failed"; tail -20 "$T.log"; fi
n=$(ls -d "$T"/seed1/*/eval/.done 2>/dev/null | wc -l)
[ "$n" -eq 7 ] && ok "seed 1: rope, ropepp_eh, ropepp_ec, rope_pm and the three long runs evaluated" || bad "seed 1: $n of 7 runs evaluated"
[ ! -d "$T/seed2" ] && ok "--seed 1 runs no other seed" || bad "--seed 1 made $T/seed2"
grep -q "seeds present: 1; missing: 2 " "$T.log" && ok "the report names the protocol's seed that is missing" || bad "no missing-seed line: $(grep 'seeds present' "$T.log")"
# the one-seed report: no claim testable (m = 0) and it says so; the far-repeat row says why it has no number
R1="$T/report.md"; far=$(awk -F, 'FNR > 1 && $2 == 256 && $6 > 0 { n++ } END { print n + 0 }' "$T"/seed1/rope/eval/ppl_repeat_*.csv)
grep -q "No claim of this report could be tested" "$R1" && grep -q '^\*\*1 seed at most: the rule needs 2 seeds' "$R1" &&
  grep -q '^\*\*Seeds missing:\*\* 2\. ' "$R1" && grep -q 'held-out documents .*; 2 documents longer than 2x the training length' "$R1" &&
  { [ "$far" -gt 0 ] || grep -qE '^\| EC retrieves from far context .* not measurable: no far repeats in the windows' "$R1"; } &&
  ok "one seed: 'no claim could be tested', '1 seed at most', 'Seeds missing: 2', the far-repeat row ($far documents with a far repeat)" ||
  bad "one-seed report: $(grep -E 'm = 0|seed at most|Seeds missing|longer than|far context' "$R1")"
s=$(grep -h "^data: .* documents" "$T"/seed1/*/train.txt | sed 's/.*first documents://' | sort -u | wc -l)
[ "$s" -eq 1 ] && ok "every arm and stage of seed 1 reads the documents in one order ($(grep -h -m1 'first documents' "$T/seed1/rope/train.txt" | sed 's/.*: //'))" || bad "seed 1's arms read $s orders"
grep -qx -- "--data-seed 1" "$T/seed1/ropepp_ec/settings.txt" && grep -qx -- "--clip 1" "$T/seed1/rope_long/settings.txt" &&
  ok "runs train with --data-seed (the seed) and --clip 1" || bad "settings: $(grep -E 'data-seed|clip' "$T/seed1/ropepp_ec/settings.txt")"
head -1 "$T/seed1/rope/eval/ppl_repeat_rope.csv" | grep -qx "pe,length,ngram,min_distance,doc_start,repeat_tokens,repeat_loss,other_tokens,other_loss" &&
  [ "$(wc -l < "$T/seed1/rope/eval/ppl_repeat_rope.csv")" -eq 3 ] && ok "each run has its far-repeat loss per document (ppl_repeat_<pe>.csv)" || bad "no ppl_repeat csv"
# progress: each job line carries its place in the stage, the elapsed time and an ETA once a job has run
first=$(grep -m1 "  train: " "$T.log"); later=$(grep "  train: " "$T.log" | sed -n 2p)
echo "$first" | grep -qE '\[1/[0-9]+ \| [0-9]+s into the stage, ETA \?\]$' && echo "$later" | grep -qE '\[2/[0-9]+ \| [0-9ms]+ into the stage, ETA [0-9ms]+\]$' &&
  ok "job lines show [i/N | elapsed, ETA]: $(echo "$later" | grep -oE '\[.*\]')" || bad "no progress on the job lines: '$first' / '$later'"

# seed 2 in another folder (another machine, another day), then merged into the first
cmp3 --out "$T.b" --seed 2 > "$T.log2" 2>&1 || bad "compare.sh --seed 2 failed: $(tail -3 "$T.log2")"
s1=$(grep -h -m1 'first documents' "$T/seed1/rope/train.txt" | sed 's/.*: //'); s2=$(grep -h -m1 'first documents' "$T.b/seed2/rope/train.txt" | sed 's/.*: //')
[ -n "$s2" ] && [ "$s1" != "$s2" ] && ok "seed 2 reads the documents in another order ($s2)" || bad "seeds 1 and 2 orders: '$s1' / '$s2'"
cp -r "$T.b/seed2" "$T/"
cmp3 --out "$T" --stage report > "$T.log2" 2>&1 || bad "--stage report on the merged folder failed: $(tail -3 "$T.log2")"
grep -q "seeds present: 1 2$" "$T.log2" && ok "the merged folder's report covers seeds 1 and 2, none missing" || bad "merged: $(grep 'seeds present' "$T.log2")"
R="$T/report.md"
[ "$(wc -l < "$T/machine.txt")" -eq 2 ] && grep -q "seed 1" "$T/machine.txt" && grep -q "seed 2" "$T/machine.txt" &&
  grep -q "| stage all | CPU .*, [0-9]* cores | commit " "$T/machine.txt" && ok "machine.txt: one line per call, from each seed's own machine.txt" || bad "machine.txt: $(cat "$T/machine.txt")"
grep -q "seeds: 1 2 · runs on CPU " "$R" && ok "the report names both seeds and the machines" || bad "report header: $(grep '^Command' "$R")"
rules=$(grep -n "^## Decision rules" "$R" | cut -d: -f1); verd=$(grep -n "^## Verdicts" "$R" | cut -d: -f1); setup=$(grep -n "^## Setup" "$R" | cut -d: -f1)
[ -n "$rules" ] && [ -n "$verd" ] && [ -n "$setup" ] && [ "$rules" -lt "$verd" ] && [ "$verd" -lt "$setup" ] &&
  ok "the decision rules come first, then the verdict table, then the numbers" || bad "report order: rules $rules verdicts $verd setup $setup"
n=$(grep -cE '^\| (rope|ropepp_eh|ropepp_ec|rope_pm) \| 256 \| none \| [0-9.]+ ± [0-9.]+ \| [0-9.]+ ± [0-9.]+ \|' "$R")
[ "$n" -eq 4 ] && ok "perplexity table: the 4 claim arms at 1x and 2x, mean ± sd over 2 seeds" || bad "perplexity rows: $n"
n=$(grep -cE '^\| .* \| (\*\*(supported|refuted|inconclusive)\*\*|not measurable: [^|]+) \|$' "$R")
[ "$n" -ge 13 ] && ok "verdict table: $n claims, each with a verdict or 'not measurable: why'" || bad "verdict rows: $n"
n=$(grep -cE '^\| [^|]+ \| [^|]+ \| [-+0-9.e ]+ \([0-9]+ each\) \| [-+0-9.e]+ \[[-+0-9.e]+, [-+0-9.e]+\] \| -?[0-9.]+ \| [0-9.e-]+ \([0-9.e-]+\) \| — \(< 6 seeds\) \| not estimable \(< 3 seeds\) \| \*\*(supported|refuted|inconclusive)\*\* \|$' "$R")
[ "$n" -ge 8 ] && ok "tested rows carry per-seed values, mean [95% CI], null, p (Holm), no sign-flip and no detectable effect at 2 seeds ($n rows)" || bad "tested rows with numbers: $n"
grep -q 'Holm.s correction over the \*\*m = [0-9]*\*\* tested claims' "$R" && grep -qE '^\| EH is not worse than RoPE.* \| -0.02 \|' "$R" &&
  grep -qE '^\| Imaginary heads put more mass on the initial positions \(Fig. 5\) \| mass on the first 4 positions' "$R" &&
  grep -qE '^\| EC is more accurate than RoPE on the long-context tasks \(Table 2\) .* not measurable: 0 correct' "$R" &&
  ok "the rules name m; EH is tested against -0.02; Fig. 5's first-4 mass is tested; the unlearned tasks are not measurable" || bad "rules or claim rows: $(grep -E 'm = |^\| (EH|Imaginary heads put|EC is more)' "$R")"
[ -s "$T/report_claims.tsv" ] && grep -q "<svg" "$T/report_effects.svg" && grep -q 'report_effects.svg' "$R" && ok "the claims file and the per-seed effects figure are written and linked" || bad "no claims file or figure"
f=$(ls "$T"/seed1/ropepp_ec/eval/ppl_docs_*.csv | head -1)
head -1 "$f" | grep -q ',from$' && awk -F, 'NR > 1 && $6 != 64 { exit 1 }' "$f" && ok "ppl_docs scores each document from position 64 on (column from)" || bad "ppl_docs: $(head -2 "$f")"
f=$(ls "$T"/seed1/ropepp_ec/eval/attn_*.csv | head -1)
awk -F, 'NR == 1 { if ($12 != "first_k_mass" || $13 != "first_k") exit 1; next } { if ($12 + 1e-6 < $7 || $12 > 1 + 1e-6 || $13 != 4) exit 1 }' "$f" &&
  ok "attn CSV: first_k_mass (k 4) in [sink_mass, 1] on every head" || bad "attn CSV: $(head -3 "$f")"
n=$(grep -cE '^\| [a-z_]+_long \| 512 \| none \|' "$R")
[ "$n" -eq 3 ] && ok "perplexity table: rope, ropepp_eh, ropepp_ec after the long stage at 512" || bad "long rows: $n"
grep -q "list hash" "$R" && ok "the report records the corpus list hash" || bad "no corpus hash"
grep -q "^\*\*Not evaluated" "$R" && bad "the complete run's report lists runs as not evaluated" || ok "the complete run's report lists no run as not evaluated"

# a rerun redoes nothing, also when the checkpoints stayed on another machine (only the small files came back)
find "$T/seed2" -name '*.ckpt' -delete; find "$T/seed2" -name '*.state' -delete
cmp3 --out "$T" --seed 2 > "$T.log2" 2>&1
[ "$(grep -c '  train:' "$T.log2")" -eq 0 ] && [ "$(grep -c '  eval:' "$T.log2")" -eq 0 ] && [ "$(grep -c '  done:' "$T.log2")" -eq 14 ] &&
  ok "rerunning seed 2 without its checkpoints trains and evaluates nothing (14 jobs done)" || bad "rerun: $(grep -cE '  (train|eval):' "$T.log2") jobs run"
# a run whose evaluation is missing and whose checkpoints are gone: its short run and itself train again
rm -rf "$T/seed2/ropepp_ec_long/eval"
OMP_NUM_THREADS=1 bash scripts/compare.sh --cpu --tiny --out "$T" --stage report > "$T.log2" 2>&1 || bad "--stage report failed: $(tail -3 "$T.log2")"
grep -q "^\*\*Not evaluated:\*\* seed2/ropepp_ec_long\. " "$R" && ok "the report lists the run without an evaluation" || bad "no 'Not evaluated' line: $(grep -i 'not eval' "$R")"
grep -E "^\| EC's perplexity grows more slowly .*after the long stage" "$R" | grep -q '| +\?-\?[0-9.e]* (1 each) | .* | untested (1 seed) |' && ok "that run's claim row has seed 1 only and is untested" || bad "long ec row: $(grep "EC's perplexity grows more slowly.*after the long" "$R")"
cmp3 --out "$T" --seed 2 > "$T.log2" 2>&1 || bad "seed 2 rerun failed: $(tail -3 "$T.log2")"
[ "$(grep '  train:' "$T.log2" | awk '{ print $2 }' | xargs -n1 basename | paste -sd ' ')" = "ropepp_ec ropepp_ec_long" ] && [ "$(grep -c '  eval:' "$T.log2")" -eq 1 ] &&
  ok "a lost evaluation retrains its short and long run from the start and evaluates only that run" || bad "retrain: $(grep -E '  (train|eval):' "$T.log2")"
[ "$(wc -l < "$T/seed2/machine.txt")" -eq 3 ] && ok "each call on seed 2 added a machine.txt line (3)" || bad "seed2/machine.txt: $(wc -l < "$T/seed2/machine.txt") lines"
cp "$T/seed2/corpus_info.txt" "$T.info"; sed -i 's/\(data hash.*: \).*/\10123456789abcdef/' "$T/seed2/corpus_info.txt"
out=$(cmp3 --out "$T" --stage report 2>&1); [ $? -ne 0 ] && echo "$out" | grep -q "seed 2 was trained on another corpus" &&
  ok "a seed trained on another corpus (its corpus_info.txt data hash) is refused at the report" || bad "other corpus: $out"
mv "$T.info" "$T/seed2/corpus_info.txt"
# the setup of a seed is fixed: another one is refused, and left out of the report
out=$(cmp3 --out "$T" --seed 1 --steps 5 2>&1); [ $? -ne 0 ] && echo "$out" | grep -q "was run with another setup" && ok "a seed run again with other --steps is refused" || bad "other steps: $out"
sed -i 's/short /short_other /' "$T/seed2/config.txt"
cmp3 --out "$T" --stage report > "$T.log2" 2>&1
grep -q "left out of the report (another setup, config.txt): seed2" "$T.log2" && grep -q "seeds present: 1; missing: 2" "$T.log2" &&
  ok "--stage report leaves out a seed of another setup and names it" || bad "other setup: $(grep -E 'left out|present' "$T.log2")"
out=$(bash scripts/compare.sh --bogus 2>&1); [ $? -ne 0 ] && echo "$out" | grep -q "error: unknown flag" && ok "unknown flag is refused" || bad "unknown flag: $out"
out=$(bash scripts/compare.sh --cpu --tiny --steps abc --out "$T.x" 2>&1); [ $? -ne 0 ] && echo "$out" | grep -q "non-negative integers" && ok "a bad --steps is refused" || bad "bad --steps: $out"
out=$(bash scripts/compare.sh --cpu --tiny --seed 0 --out "$T.x" 2>&1); [ $? -ne 0 ] && echo "$out" | grep -q "seeds start at 1" && ok "seed 0 is refused" || bad "seed 0: $out"
out=$(bash scripts/compare.sh --cpu --tiny --mix-loss some --out "$T.x" 2>&1); [ $? -ne 0 ] && echo "$out" | grep -q "answer or all" && ok "a bad --mix-loss is refused" || bad "bad --mix-loss: $out"
rm -rf "$T.x"
# the committed re-analysis of 2026-12-04 rebuilds from its archive (runs.tar.gz) with the same claims and table
B=bench/compare/2026-12-04-h200; mkdir -p "$T.re"; cp "$B/runs.tar.gz" "$B/machine.txt" "$T.re/"
(set -a; . "$B/report.env"; OUT=$T.re; set +a; bash scripts/compare_report.sh) > "$T.log2" 2>&1 || bad "the re-analysis failed: $(tail -3 "$T.log2")"
cmp -s "$T.re/reanalysis_claims.tsv" "$B/reanalysis_claims.tsv" &&
  diff <(grep -v '^Command: ' "$T.re/reanalysis.md") <(grep -v '^Command: ' "$B/reanalysis.md") > /dev/null &&
  ok "the committed re-analysis rebuilds from runs.tar.gz: the same claims file and report" || bad "the re-analysis differs: $(diff "$T.re/reanalysis.md" "$B/reanalysis.md" | head -5)"
grep -q 'm = 8\*\* tested claims' "$T.re/reanalysis.md" && [ "$(grep -c '\*\*inconclusive\*\* |$' "$T.re/reanalysis.md")" -eq 8 ] &&
  grep -q '^| EC vs RoPE over every position .* | +0.8119 -0.01971 +0.0166 (16) |' "$T.re/reanalysis.md" &&
  ok "2026-12-04: 8 tested claims, all inconclusive; v2's per-seed EC - RoPE +0.81 -0.02 +0.02 (issue 31)" || bad "re-analysis rows: $(grep -E 'm = |inconclusive' "$T.re/reanalysis.md" | head -3)"
rm -rf "$T.re"
finish test_compare
