#!/usr/bin/env bash
# test_compare.sh — scripts/compare.sh (compare v2) end to end on the CPU at its tiny size (a corpus from this
# repository's sources, 2 seeds, 4 + 2 steps): every stage runs, the report opens with the decision rules and the
# verdict table (one verdict per claim from the seed-level statistics of eval stat claims, or 'not measurable: why'),
# has a perplexity row per arm and the attention and noise sections, and a second run finds everything done. Run from the repository root.
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
grep -E "^\| EC's perplexity grows more slowly .*after the long stage" "$R" | grep -q '| +\?-\?[0-9.e]* (1 each) | .* | untested (1 seed) |' && ok "that run's claim row has seed 1 only and is untested" || bad "long ec row: $(grep "EC's perplexity grows more slowly.*after the long" "$R")"
[ "$(wc -l < "$T/machine.txt")" -eq 2 ] && ok "--stage report adds no machine line" || bad "machine.txt after --stage report: $(cat "$T/machine.txt")"
out=$(bash scripts/compare.sh --bogus 2>&1); [ $? -ne 0 ] && echo "$out" | grep -q "error: unknown flag" && ok "unknown flag is refused" || bad "unknown flag: $out"
out=$(bash scripts/compare.sh --cpu --tiny --steps abc --out "$T.x" 2>&1); [ $? -ne 0 ] && echo "$out" | grep -q "non-negative integers" && ok "a bad --steps is refused" || bad "bad --steps: $out"
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
