#!/usr/bin/env bash
# compare_report.sh — the report of compare v2 (stage 5 of scripts/compare.sh, which exports the settings this reads:
# OUT SEEDS SHORT_ARMS LONG_PES STEPS LSTEPS SEQ LSEQ BASE CBASE LBASE SHAPE PM_SHAPE BATCH LBATCH LR MIX LMIX MIXLOSS
# DATA SIZE CPU MULTS NS NNS NATT NPPL NOISE_TASK LNOISE_TASK DIM EVAL). Writes $OUT/report.md: the decision rules, then
# the verdict table, then the tables behind it. The statistics come from ./eval stat (analysis.h).
set -u -o pipefail
: "${EVAL:?compare_report.sh is run by scripts/compare.sh, which sets EVAL and the rest}"
R="$OUT/report.md"
pvalue() {   # pvalue KIND A B: ./eval stat's p, or exit: a verdict is never drawn from a missing p
  local p; p=$($EVAL stat "$@") || { echo "error: $EVAL stat $* failed" >&2; exit 1; }
  case "$p" in ''|*[!0-9.e+-]*) echo "error: $EVAL stat $* gave '$p'" >&2; exit 1 ;; esac
  echo "$p"
}
first_seed=${SEEDS%% *}
ALL_ARMS="$SHORT_ARMS $(for p in $LONG_PES; do printf '%s_long ' $p; done)"   # every run of a seed, short then long
last_mult=${MULTS##* }
far_len=$((SEQ * (last_mult < 4 ? last_mult : 4)))
mkdir -p "$OUT/curves"
HD=$(( DIM / $(echo "$SHAPE" | sed -nE 's/.*--heads ([0-9]+).*/\1/p') ))

# ---- paired differences, one line "seed diff" each (diff > 0: the claimed direction)
docs_diff() {   # docs_diff BASELINE_ARM CLAIMED_ARM LENGTH: per held-out document, loss(baseline) - loss(claimed)
  for s in $SEEDS; do
    a="$OUT/seed$s/$1/eval"; b="$OUT/seed$s/$2/eval"
    [ -d "$a" ] && [ -d "$b" ] || continue
    awk -F, -v L=$3 -v s=$s 'FNR == 1 { f++; next } $2 == "none" && $3 == L { if (f == 1) base[$4] = $5; else if ($4 in base) print s, base[$4] - $5 }' \
      "$a"/ppl_docs_*.csv "$b"/ppl_docs_*.csv
  done
}
heads_diff() {   # heads_diff ARM COLUMN: per layer and q head, imaginary - real
  for s in $SEEDS; do
    f=$(ls "$OUT/seed$s/$1/eval"/attn_*.csv 2>/dev/null | head -1); [ -n "$f" ] || continue
    awk -F, -v col=$2 -v s=$s 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
      { k = $3 "," $5; if ($6 == "real") re[k] = $c; else im[k] = $c }
      END { for (k in im) if ((k in re) && im[k] != "nan" && re[k] != "nan") print s, im[k] - re[k] }' "$f"
  done
}
noise_counts() {   # noise_counts ARM TARGET SIGMA: "seed b c", b = right only in the real arm, c = only in the other
  for s in $SEEDS; do
    f=$(ls "$OUT/seed$s/$1/eval"/noise_*.csv 2>/dev/null | head -1); [ -n "$f" ] || continue
    awk -F, -v t=$2 -v sg=$3 -v s=$s 'NR > 1 && $4 == t && $5 + 0 == sg + 0 { print s, $12, $13 }' "$f"
  done
}
seeds_of() { awk '{ print $1 }' | sort -un | paste -sd ' ' -; }   # the seeds (first column) of "seed ..." lines, once each
# ---- verdicts (rules in the report text below)
verdict_sign() {   # verdict_sign CLAIM METRIC < "seed diff" lines
  local lines; lines=$(cat)
  [ -n "$lines" ] || { echo "| $1 | $2 | no data | inconclusive |"; return; }
  local pos neg seeds_ok mean
  read -r pos neg seeds_ok mean <<< "$(echo "$lines" | awk '{ if ($2 > 0) p++; else if ($2 < 0) n++; sum[$1] += $2; cnt[$1]++; t += $2; m++ }
    END { ok = 1; neg = 1; for (s in sum) { if (sum[s] <= 0) ok = 0; if (sum[s] >= 0) neg = 0 } printf "%d %d %s %.4g\n", p, n, ok ? "all" : (neg ? "none" : "mixed"), t / m }')"
  local seeds; seeds=$(echo "$lines" | seeds_of)
  local p; p=$(pvalue sign $pos $neg) || exit 1
  local v=inconclusive
  if [ "$seeds_ok" = all ] && awk -v p=$p 'BEGIN { exit !(p < 0.05) }' && [ $pos -gt $neg ]; then v=supported
  elif [ $neg -gt $pos ] && awk -v p=$p 'BEGIN { exit !(p < 0.05) }'; then v=refuted; fi
  local why=""; [ $((pos + neg)) -eq 0 ] && why=" — every pair is tied"
  echo "| $1 | $2 | mean diff $mean; $pos in the claimed direction, $neg against; sign in every seed: $seeds_ok; sign test p = $p (seeds $seeds)$why | **$v** |"
}
verdict_mcnemar() {   # verdict_mcnemar CLAIM METRIC < "seed b c" lines (b > c is the claimed direction)
  local lines; lines=$(cat)
  [ -n "$lines" ] || { echo "| $1 | $2 | no data | inconclusive |"; return; }
  local b c seeds_ok
  read -r b c seeds_ok <<< "$(echo "$lines" | awk '{ b += $2; c += $3; if ($2 <= $3) bad = 1; if ($2 >= $3) nb = 1 } END { printf "%d %d %s\n", b, c, bad ? (nb ? "mixed" : "none") : "all" }')"
  local seeds; seeds=$(echo "$lines" | seeds_of)
  local p; p=$(pvalue mcnemar $b $c) || exit 1
  local v=inconclusive
  if [ "$seeds_ok" = all ] && awk -v p=$p 'BEGIN { exit !(p < 0.05) }' && [ $b -gt $c ]; then v=supported
  elif [ $c -gt $b ] && awk -v p=$p 'BEGIN { exit !(p < 0.05) }'; then v=refuted; fi
  local why=""; [ $((b + c)) -eq 0 ] && why=" — no sample differs between the two arms (is the task solved at all? see the tasks table)"
  echo "| $1 | $2 | discordant samples $b for the claim, $c against (pooled over seeds); in every seed: $seeds_ok; McNemar p = $p (seeds $seeds)$why | **$v** |"
}
# the --mix-weight the runs trained with (their settings.txt; runs from before the flag: token)
run_mix_weight() { local f; f=$(ls "$OUT"/seed*/*/settings.txt 2>/dev/null | head -1); local w; w=$([ -n "$f" ] && awk '$1 == "--mix-weight" { print $2 }' "$f"); echo "${w:-token}"; }
# eval.txt without eval's progress lines (stderr; runs before the stdout/stderr split interleaved them with the results)
eval_text() { perl -0pe 's/eval [a-z]+: [a-z ]+ \d+\/\d+ (?:\(\d+%\) \| [^\n]*ETA [^\n]*|done in [^\n]*)\n//g' "$1"; }
mean_sd() {   # mean_sd "v1 v2 ...": "m ± sd" (sample sd over seeds)
  echo "$1" | awk '{ for (i = 1; i <= NF; i++) { s += $i; q += $i * $i } n = NF; if (n == 0) { printf "-"; exit } m = s / n
    if (n == 1) printf "%.3f", m; else printf "%.3f ± %.3f", m, sqrt((q - n * m * m) / (n - 1) > 0 ? (q - n * m * m) / (n - 1) : 0) }'
}
ppl_at() {   # ppl_at ARM LENGTH SCALING: the seeds' ppl values on the documents
  for s in $SEEDS; do awk -F, -v L=$2 -v sc=$3 '$2 == sc && $3 == L && $4 == "all" { printf "%s ", $8 }' "$OUT/seed$s/$1/eval"/ppl_[a-z]*.csv 2>/dev/null; done
}
tasks_pooled() {   # tasks_pooled ARM TASK LENGTH: pooled accuracy over seeds with its Wilson interval
  local kn; kn=$(for s in $SEEDS; do awk -F, -v t=$2 -v L=$3 '$3 == t && $4 == L { print $8, $9 }' "$OUT/seed$s/$1/eval"/tasks_*.csv 2>/dev/null; done | awk '{ k += $1; n += $2 } END { print k + 0, n + 0 }')
  set -- $kn
  [ "$2" -gt 0 ] 2>/dev/null || { printf -- "-"; return; }
  local ci; ci=$($EVAL stat wilson $1 $2)
  awk -v k=$1 -v n=$2 -v ci="$ci" 'BEGIN { split(ci, c, " "); printf "%.1f%% [%.1f, %.1f] (n %d)", 100 * k / n, 100 * c[1], 100 * c[2], n }'
}

{
  echo "# compare v2: can a small run confirm or refute RoPE++'s claims?"
  [ "$SIZE" != full ] && echo && echo "**Smoke test (--$SIZE): a few training steps at a tiny size check that the pipeline runs end to end; the verdicts below say nothing about the position embeddings.**"
  echo
  # the machines and commits of the runs (machine.txt, written by compare.sh), else this machine
  if [ -s "$OUT/machine.txt" ]; then
    ran_on=$(awk -F' [|] ' '{ print $3 }' "$OUT/machine.txt" | sort -u | paste -sd ';' -)
    commits=$(awk -F' [|] ' '{ sub(/^commit /, "", $4); print $4 }' "$OUT/machine.txt" | sort -u | paste -sd ',' -)
    commands=$(awk -F' [|] ' 'NF >= 5 && !seen[$5]++ { printf "%s`%s`", n++ ? "; " : "", $5 }' "$OUT/machine.txt")
  else
    ran_on=$(command -v nvidia-smi > /dev/null && [ $CPU -eq 0 ] && nvidia-smi --query-gpu=name --format=csv,noheader | head -1 || echo "CPU")
    commits=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  fi
  [ -n "${commands:-}" ] || commands="\`scripts/compare.sh$([ $SIZE != full ] && echo " --$SIZE")$([ $CPU -eq 1 ] && echo " --cpu")\`"
  echo "Command: $commands · seeds: $SEEDS · runs on $ran_on, commit $commits · report $(date -u +%Y-%m-%d)"
  echo
  echo "## Decision rules (fixed before any number)"
  echo
  echo "Each claim has a paired metric with its sign fixed in advance (diff > 0 = the paper's direction). **supported**: the"
  echo "per-seed mean difference has the claimed sign in every seed and the pooled two-sided exact test gives p < 0.05;"
  echo "**refuted**: the pooled test is significant (p < 0.05) in the opposite direction; otherwise **inconclusive**. Pairs:"
  echo "perplexity per held-out document (same documents, both models), attention per (layer, q head) real vs imaginary"
  echo "head (sign test over heads x seeds), task outcomes per fixed sample (the same samples and noise seeds in both arms,"
  echo "exact McNemar on the discordant samples pooled over seeds). The noise verdict uses sigma = 1 x the layer's query RMS."
  echo
  echo "## Verdicts"
  echo
  echo "| claim | metric | result | verdict |"
  echo "|---|---|---|---|"
  docs_diff rope ropepp_ec $SEQ | verdict_sign "EC has lower perplexity than RoPE at the training length" "loss(rope) - loss(EC) per held-out document at T $SEQ"
  docs_diff rope_pm ropepp_ec $SEQ | verdict_sign "EC beats RoPE at equal parameters" "loss(rope_pm) - loss(EC) per document at T $SEQ"
  docs_diff rope ropepp_eh $SEQ | verdict_sign "EH (half the KV cache) has lower perplexity than RoPE" "loss(rope) - loss(EH) per document at T $SEQ"
  docs_diff rope ropepp_ec $far_len | verdict_sign "EC extrapolates better than RoPE" "loss(rope) - loss(EC) per document at $far_len ($((far_len / SEQ))x, no scaling)"
  heads_diff ropepp_ec far_ratio | verdict_sign "Imaginary heads attend more globally (Fig. 5)" "far ratio (non-BOS mass beyond T/4 over uniform), imaginary - real head, EC"
  heads_diff ropepp_ec sink_mass | verdict_sign "Imaginary heads put more mass on the initial position (Fig. 5, read as the attention sink on the BOS)" "mass on position 0 (BOS), imaginary - real head, EC"
  heads_diff ropepp_ec retrieval | verdict_sign "Imaginary heads retrieve more" "retrieval score ($NOISE_TASK), imaginary - real head, EC"
  noise_counts ropepp_ec imag 1 | verdict_mcnemar "Noise on imaginary queries hurts more than on real ones (Fig. 5)" "$NOISE_TASK right under real-query noise only vs imaginary only, sigma 1 x query RMS, EC"
  noise_counts ropepp_ec zero_imag_heads 0 | verdict_mcnemar "Imaginary heads matter more than real ones" "$NOISE_TASK right with real heads zeroed only vs imaginary zeroed only, EC"
  for pe in $LONG_PES; do [ $pe = rope ] && continue
    docs_diff rope_long ${pe}_long $((LSEQ * (last_mult < 4 ? last_mult : 4))) | verdict_sign "After the long stage, ${pe#ropepp_} extrapolates better than RoPE" "loss(rope_long) - loss(${pe}_long) per document at $((LSEQ * (last_mult < 4 ? last_mult : 4)))"
  done
  noise_counts ropepp_ec_long imag 1 | verdict_mcnemar "Long stage: noise on imaginary queries hurts more" "$LNOISE_TASK at T $LSEQ, sigma 1 x query RMS, EC after the long stage"
  missing=""
  for s in $SEEDS; do for arm in $ALL_ARMS; do
    [ -f "$OUT/seed$s/$arm/eval/.done" ] || missing="$missing seed$s/$arm"
  done; done
  if [ -n "$missing" ]; then
    echo
    echo "**Not evaluated:**$missing. The rows above pool the seeds that have data (each row names them)."
  fi
  echo
  echo "## Setup"
  echo
  echo "- Short stage: \`$SHAPE --seq $SEQ --batch $BATCH --steps $STEPS --lr $LR --schedule wsd --rope-base $BASE --mix $MIX\`; rope_pm: \`$PM_SHAPE\` (RoPE with EC's parameter count); controls \`_b$CBASE\` at base $CBASE."
  echo "- Long stage: $LONG_PES continued with \`--seq $LSEQ --batch $LBATCH --steps $LSTEPS --rope-base $LBASE --mix $LMIX --schedule cosine\`."
  echo "- Task rows: loss on $([ "$MIXLOSS" = answer ] && echo "the answer tokens only" || echo "every token"), $([ "$(run_mix_weight)" = row ] && echo "each row of a batch weighing the same (--mix-weight row)" || echo "each target weighing the same (--mix-weight token)"), BOS first, MQAR with blank filler. Corpus:"
  echo
  sed 's/^/    /' "${DATA}_info.txt" 2>/dev/null
  echo
  echo "## Perplexity on held-out documents (mean ± sd over seeds; $NPPL documents longer than 8x)"
  echo
  echo "| model | trained at | scaling |$(for m in $MULTS; do printf ' %sx |' $m; done)"
  echo "|---|---|---|$(for m in $MULTS; do printf -- '---|'; done)"
  for arm in $ALL_ARMS; do
    L=$SEQ; case $arm in *_long) L=$LSEQ ;; esac
    for sc in none ntk:4; do
      [ -n "$(ppl_at $arm $L $sc)" ] || continue
      row="| $arm | $L | $sc"
      for m in $MULTS; do row="$row | $(mean_sd "$(ppl_at $arm $((m * L)) $sc)")"; done
      echo "$row |"
    done
  done
  echo
  echo "## Tasks at the training length (pooled over seeds, 95% Wilson intervals; $NS fixed samples per cell and seed)"
  echo
  echo "| model | trained at | passkey | NIAH | vt | MQAR (per query) |"
  echo "|---|---|---|---|---|---|"
  for arm in $ALL_ARMS; do
    L=$SEQ; niah=niah_single; case $arm in *_long) L=$LSEQ; niah=niah_multikey ;; esac
    echo "| $arm | $L | $(tasks_pooled $arm passkey $L) | $(tasks_pooled $arm $niah $L) | $(tasks_pooled $arm vt $L) | $(tasks_pooled $arm mqar $L) |"
  done
  echo
  echo "## Attention (Fig. 5), seed $first_seed summaries, with the characteristic curves of head dim $HD"
  echo
  for arm in rope ropepp_eh ropepp_ec rope_long ropepp_eh_long ropepp_ec_long; do
    f="$OUT/seed$first_seed/$arm/eval/eval.txt"
    [ -f "$f" ] && grep -q "^summary:" "$f" && { echo "$arm:"; echo; eval_text "$f" | grep -E "^(summary:|characteristic curves)" | sed 's/^/    /'; echo; }
  done
  for b in $BASE $LBASE; do
    ./eval curves --head-dim $HD --base $b --out "$OUT/curves/base$b" > "$OUT/curves/base$b.txt" 2>&1 &&
      { echo "c_Re, c_Im at base $b (paper Eq. 5, 7):"; echo; sed -n '2,9p' "$OUT/curves/base$b.txt" | sed 's/^/    /'; echo; }
  done
  echo "## Noise relative to each layer's query RMS and the ablation (seed $first_seed; every seed's CSV in eval/)"
  echo
  for arm in ropepp_ec ropepp_eh ropepp_ec_long; do
    f="$OUT/seed$first_seed/$arm/eval/eval.txt"
    [ -f "$f" ] && grep -q "noise experiment" "$f" && { echo "$arm:"; echo; eval_text "$f" | sed -n '/^noise experiment/,/^wrote/p' | grep -v '^wrote' | sed 's/^/    /'; echo; }
  done
  echo "Data behind every number: each run's \`eval/\` (ppl_docs_*, tasks_*, attn_*, noise_* CSVs) and \`train.jsonl\`."
} > "$R"
echo "wrote $R"
