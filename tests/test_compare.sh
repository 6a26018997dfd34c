#!/usr/bin/env bash
# test_compare.sh — scripts/compare.sh end to end on the CPU at its tiny size: every stage runs, the report has a
# row per position embedding and per long-context model with numbers in it, the plots exist, and a second run
# finds everything done (the stages resume instead of redoing). Run from the repository root (make test).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
T=tests/tmp/test_compare.$$
trap 'rm -rf "$T"' EXIT
if bash scripts/compare.sh --cpu --tiny --out "$T" > "$T.log" 2>&1; then ok "compare.sh --cpu --tiny runs every stage"; else bad "compare.sh failed"; tail -20 "$T.log"; fi
R="$T/report.md"
[ -s "$R" ] && ok "report.md written" || bad "no report"
grep -q "^\*\*Smoke test (--tiny)" "$R" && ok "the --tiny report says it is a smoke test" || bad "the --tiny report does not say it is a smoke test"
n=$(grep -cE '^\| (rope|ropepp_eh|ropepp_ec|fope|alibi|nope|partial) \| [0-9]+ \| [0-9]+ \| [0-9]+ \| [0-9.]+ \| [0-9.]+ \|' "$R")
[ "$n" -eq 7 ] && ok "short-context table: 7 position embeddings with parameters, KV bytes, tokens/s and perplexities" || bad "short-context table has $n complete rows"
n=$(grep -cE '^\| [a-z_]+_long \| 512 \|' "$R")
[ "$n" -eq 3 ] && ok "long-context table: rope, ropepp_eh, ropepp_ec continued at 512" || bad "long-context rows: $n"
eh=$(grep -m1 -E '^\| ropepp_eh \|' "$R" | cut -d'|' -f4 | tr -d ' '); rp=$(grep -m1 -E '^\| rope \|' "$R" | cut -d'|' -f4 | tr -d ' ')
[ -n "$eh" ] && [ $((2 * eh)) -eq "$rp" ] && ok "report: ropepp_eh KV cache ($eh bytes/token) is half of rope's ($rp)" || bad "KV bytes eh '$eh' rope '$rp'"
for f in ppl_vs_length.svg passkey_vs_length.svg; do [ -s "$T/$f" ] && ok "$f written" || bad "$f missing"; done
grep -q "imaginary heads mean distance" "$R" && ok "report has the real-vs-imaginary attention summary" || bad "no attention summary"
bash scripts/compare.sh --cpu --tiny --out "$T" > "$T.log2" 2>&1
done_n=$(grep -c "  done:" "$T.log2"); trained=$(grep -c "  train:" "$T.log2")
[ "$trained" -eq 0 ] && [ "$done_n" -eq 20 ] && ok "a second run redoes nothing (20 stages done)" || bad "second run: $trained trained, $done_n done"
out=$(bash scripts/compare.sh --bogus 2>&1); [ $? -ne 0 ] && echo "$out" | grep -q "error: unknown flag" && ok "unknown flag is refused" || bad "unknown flag: $out"
out=$(bash scripts/compare.sh --cpu --tiny --steps abc --out "$T.x" 2>&1); [ $? -ne 0 ] && echo "$out" | grep -q "positive integers" && ok "a bad --steps is refused" || bad "bad --steps: $out"
# a bigger budget by flag: the report states it
if bash scripts/compare.sh --cpu --tiny --steps 6 --long-steps 3 --out "$T.b" > "$T.log3" 2>&1 && grep -q -- "--steps 6 " "$T.b/report.md" && [ -f "$T.b/seed1/rope/model_00000006.ckpt" ]; then
  ok "--steps and --long-steps change the budget, and the report says so"
else bad "budget flags"; tail -5 "$T.log3"; fi
rm -rf "$T.b" "$T.log3"
rm -f "$T.log" "$T.log2"
finish test_compare
