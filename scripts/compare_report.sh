#!/usr/bin/env bash
# compare_report.sh — the report of a comparison (stage 5 of scripts/compare.sh, which exports the settings this reads:
# OUT SEEDS SHORT_ARMS LONG_PES STEPS LSTEPS SEQ LSEQ BASE CBASE LBASE SHAPE PM_SHAPE BATCH LBATCH LR MIX LMIX MIXLOSS
# DATA SIZE CPU MULTS NS NNS NATT NPPL NOISE_TASK LNOISE_TASK DIM EVAL; optional: MISSING, the protocol's seeds not
# present; REPORT, the file name (report.md); NOTE, a line under the title).
# It writes one claims file (claim, seed, value: one line per document, head pair or task of a seed) from the runs'
# CSVs; `./eval stat claims` does every test, Holm's correction and the verdict table (analysis.h, docs/STATS.md), and
# draws the per-seed effects. The runs are OUT/seedS/ARM, or the archive OUT/runs.tar.gz (unpacked to a temporary
# folder) when OUT holds no seed folder. Writes OUT/REPORT, OUT/${REPORT%.md}_effects.svg and OUT/${REPORT%.md}_claims.tsv.
set -u -o pipefail
: "${EVAL:?compare_report.sh is run by scripts/compare.sh, which sets EVAL and the rest}"
REPORT=${REPORT:-report.md}
R="$OUT/$REPORT"; CLAIMS="$OUT/${REPORT%.md}_claims.tsv"; FIG="${REPORT%.md}_effects.svg"
RUNS="$OUT"
if ! ls -d "$OUT"/seed*/ > /dev/null 2>&1 && [ -f "$OUT/runs.tar.gz" ]; then
  RUNS=$(mktemp -d) || exit 1
  trap 'rm -rf "$RUNS"' EXIT
  tar -xzf "$OUT/runs.tar.gz" -C "$RUNS" || { echo "error: cannot unpack $OUT/runs.tar.gz" >&2; exit 1; }
fi
first_seed=${SEEDS%% *}
ALL_ARMS="$SHORT_ARMS $(for p in $LONG_PES; do printf '%s_long ' $p; done)"   # every run of a seed, short then long
CURVES="$OUT/curves"; [ "$RUNS" != "$OUT" ] && CURVES="$RUNS/curves"   # an archived run keeps its committed curves/
mkdir -p "$CURVES"
HD=$(( DIM / $(echo "$SHAPE" | sed -nE 's/.*--heads ([0-9]+).*/\1/p') ))
MARGIN=0.02   # non-inferiority margin of EH vs RoPE in nats per token (issue 31; docs/STATS.md)
ev() { echo "$RUNS/seed$1/$2/eval"; }   # ev SEED ARM: a run's eval folder
ppl_csv() { ls "$(ev $1 $2)"/ppl_*.csv 2>/dev/null | grep -v -e /ppl_docs_ -e /ppl_repeat_ | head -1; }   # ppl_csv SEED ARM: its bands

# ---- the claims file: "claim ID KIND NULL SOURCE CLAIM METRIC" and "value ID SEED VALUE" lines, tab-separated
claim() { local IFS=$'\t'; echo "claim$IFS$*" >> "$CLAIMS"; }
values() { awk -v id="$1" '{ printf "value\t%s\t%s\t%s\n", id, $1, $2 }' >> "$CLAIMS"; }   # values ID < "seed value" lines
have() { local s; for s in $SEEDS; do ls "$(ev $s $1)"/$2 > /dev/null 2>&1 && return 0; done; return 1; }   # have ARM GLOB: some seed has the file
# per-document loss of BASE minus NEW at length L: from position `from` on where ppl_docs has that column (one line
# per document), else the band [L/2, L) of ppl_*.csv (the v2 CSVs: one line per seed, their 16 documents pooled)
docs_from() { local f; f=$(ls "$(ev $first_seed $1)"/ppl_docs_*.csv 2>/dev/null | head -1); [ -n "$f" ] && head -1 "$f" | grep -q ',from$' && awk -F, 'NR == 2 { print $6 }' "$f"; }
docs_diff() {   # docs_diff SEED BASE NEW L: "seed diff" per document of ppl_docs_*.csv at length L
  local a b; a=$(ev $1 $2); b=$(ev $1 $3); [ -d "$a" ] && [ -d "$b" ] || return 0
  awk -F, -v L=$4 -v s=$1 'FNR == 1 { f++; next } $2 == "none" && $3 == L { if (f == 1) base[$4] = $5; else if ($4 in base) print s, base[$4] - $5 }' "$a"/ppl_docs_*.csv "$b"/ppl_docs_*.csv
}
loss_diff() {   # loss_diff BASE NEW L
  local from; from=$(docs_from $1)
  for s in $SEEDS; do
    if [ -n "$from" ]; then docs_diff $s $1 $2 $3
    else
      fa=$(ppl_csv $s $1); fb=$(ppl_csv $s $2); [ -n "$fa" ] && [ -n "$fb" ] || continue
      awk -F, -v L=$3 -v s=$s 'FNR == 1 { f++; next } $2 == "none" && $3 == L && $4 == "band" && $5 == L / 2 { if (f == 1) base = $7; else if (base != "") print s, base - $7 }' "$fa" "$fb"
    fi
  done
}
loss_metric() { local from; from=$(docs_from $1); [ -n "$from" ] && echo "per document, from position $from on" || echo "band [$(($2 / 2)), $2) of the documents (the nearest the v2 CSVs come to 'from position 64 on')"; }
growth_diff() {   # growth_diff BASE NEW T: growth(BASE) - growth(NEW), one per seed (eval stat growth)
  for s in $SEEDS; do
    a=$(ppl_csv $s $1); b=$(ppl_csv $s $2)
    [ -n "$a" ] && [ -n "$b" ] || continue
    ga=$($EVAL stat growth "$a" $3) && gb=$($EVAL stat growth "$b" $3) || { echo "error: $EVAL stat growth failed on $a or $b" >&2; exit 1; }
    awk -v s=$s -v a=$ga -v b=$gb 'BEGIN { print s, a - b }'
  done
}
heads_diff() {   # heads_diff ARM COLUMN: per layer and q head, imaginary - real
  for s in $SEEDS; do
    f=$(ls "$(ev $s $1)"/attn_*.csv 2>/dev/null | head -1); [ -n "$f" ] || continue
    awk -F, -v col=$2 -v s=$s 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
      c { k = $3 "," $5; if ($6 == "real") re[k] = $c; else im[k] = $c }
      END { for (k in im) if ((k in re) && im[k] != "nan" && re[k] != "nan") print s, im[k] - re[k] }' "$f"
  done
}
has_column() { local f; f=$(ls "$(ev $first_seed $1)"/$2 2>/dev/null | head -1); [ -n "$f" ] && head -1 "$f" | tr , '\n' | grep -qx "$3"; }   # has_column ARM GLOB COL
noise_diff() {   # noise_diff ARM TASK: accuracy under real-query noise - under imaginary-query noise, sigma 1 x query RMS
  for s in $SEEDS; do
    f=$(ls "$(ev $s $1)"/noise_*.csv 2>/dev/null | head -1); [ -n "$f" ] || continue
    awk -F, -v t=$2 -v s=$s 'NR > 1 && $2 == t && $5 + 0 == 1 { a[$4] = $7 } END { if (("real" in a) && ("imag" in a)) print s, a["real"] - a["imag"] }' "$f"
  done
}
noise_clean_correct() {   # the correct answers without noise, summed over seeds (0: the task is not solved)
  for s in $SEEDS; do cat "$(ev $s $1)"/noise_*.csv 2>/dev/null; done | awk -F, -v t=$2 '$2 == t && $5 + 0 == 0 { n += $10 } END { print n + 0 }'
}
tasks_diff() {   # tasks_diff BASE NEW L: accuracy(NEW) - accuracy(BASE) per text task at length L (MQAR left out)
  for s in $SEEDS; do
    a=$(ev $s $1); b=$(ev $s $2); [ -d "$a" ] && [ -d "$b" ] || continue
    awk -F, -v L=$3 -v s=$s 'FNR == 1 { f++; next } $4 == L && $3 != "mqar" && $2 == "none" { if (f == 1) base[$3] = $5; else if ($3 in base) print s, $5 - base[$3] }' "$a"/tasks_*.csv "$b"/tasks_*.csv
  done
}
tasks_correct() { for s in $SEEDS; do for a in "$@"; do cat "$(ev $s $a)"/tasks_*.csv 2>/dev/null; done; done | awk -F, '$3 != "mqar" && $3 != "task" { n += $8 } END { print n + 0 }'; }
repeat_diff() {   # repeat_diff BASE NEW L: repeat_loss(BASE) - repeat_loss(NEW) per document at length L (ppl_repeat_*.csv,
  # docs/FORMATS.md "Far-repeat loss"; documents without a far repeat left out)
  for s in $SEEDS; do
    a=$(ls "$(ev $s $1)"/ppl_repeat_*.csv 2>/dev/null | head -1); b=$(ls "$(ev $s $2)"/ppl_repeat_*.csv 2>/dev/null | head -1)
    [ -n "$a" ] && [ -n "$b" ] || continue
    awk -F, -v s=$s -v L=$3 'FNR == 1 { f++; for (i = 1; i <= NF; i++) c[$i] = i; next }
      $c["length"] == L && $c["repeat_tokens"] > 0 && $c["repeat_loss"] != "nan" {
        if (f == 1) base[$c["doc_start"]] = $c["repeat_loss"]; else if ($c["doc_start"] in base) print s, base[$c["doc_start"]] - $c["repeat_loss"] }' "$a" "$b"
  done
}

# ---- the claims, worded as the paper states them (docs/STATS.md says why each metric)
: > "$CLAIMS"
claim ec_ppl test 0 "Table 1" "EC has lower perplexity than RoPE" "loss(rope) - loss(EC), nats/token at T $SEQ, $(loss_metric rope $SEQ)"
loss_diff rope ropepp_ec $SEQ | values ec_ppl
claim ec_ppl_pm test 0 "Table 1, at EC's parameter count" "EC has lower perplexity than RoPE with as many parameters (rope_pm)" "loss(rope_pm) - loss(EC), as above"
loss_diff rope_pm ropepp_ec $SEQ | values ec_ppl_pm
claim eh_ppl test -$MARGIN "Table 1" "EH is not worse than RoPE, at half the KV cache (non-inferiority, margin $MARGIN)" "loss(rope) - loss(EH), as above; null -$MARGIN"
loss_diff rope ropepp_eh $SEQ | values eh_ppl
for st in short long; do
  sfx=""; T=$SEQ; [ $st = long ] && { sfx=_long; T=$LSEQ; }
  for pe in ropepp_ec ropepp_eh; do
    [ $st = long ] && ! echo " $LONG_PES " | grep -q " $pe " && continue
    PE=$(echo ${pe#ropepp_} | tr a-z A-Z)
    claim growth_${pe#ropepp_}_$st test 0 "Fig. 6$([ $st = long ] && echo ", after the long stage" || echo ", without the long stage")" \
      "$PE's perplexity grows more slowly than RoPE's beyond the training length" \
      "growth(rope$sfx) - growth(${pe}$sfx); growth = loss of the bands past T $T (up to the longest length) - loss of [$((T / 2)), $T)"
    growth_diff rope$sfx $pe$sfx $T | values growth_${pe#ropepp_}_$st
  done
done
if has_column ropepp_ec 'attn_*.csv' first_k_mass; then
  claim first_k test 0 "Fig. 5" "Imaginary heads put more mass on the initial positions" "mass on the first 4 positions (BOS included), imaginary - real head, per (layer, q head), EC, queries in [T/2, T)"
  heads_diff ropepp_ec first_k_mass | values first_k
else
  claim first_k unmeasurable 0 "Fig. 5" "Imaginary heads put more mass on the initial positions" "not in these CSVs: eval attn wrote no first_k_mass column before issue 31 (the mass on position 0 alone is described below)"
fi
claim far_ratio test 0 "Sec. 3.2" "Imaginary heads attend farther (the characteristic-curve argument)" "far ratio (non-BOS mass beyond T/4 over uniform), imaginary - real head, per (layer, q head), EC"
heads_diff ropepp_ec far_ratio | values far_ratio
for st in short long; do
  arm=ropepp_ec; task=$NOISE_TASK; T=$SEQ; [ $st = long ] && { arm=ropepp_ec_long; task=$LNOISE_TASK; T=$LSEQ; }
  [ $st = long ] && ! echo " $LONG_PES " | grep -q " ropepp_ec " && continue
  what="Noise on imaginary queries hurts long-context accuracy more than on real ones$([ $st = long ] && echo ", after the long stage")"
  if ! have $arm 'noise_*.csv'; then claim noise_$st unmeasurable 0 "Fig. 5" "$what" "no noise CSV in these runs"
  elif [ "$(noise_clean_correct $arm $task)" -eq 0 ]; then claim noise_$st unmeasurable 0 "Fig. 5" "$what" "$task is not solved: 0 correct without noise in every seed, so noise cannot lower it"
  else claim noise_$st test 0 "Fig. 5" "$what" "$task accuracy under real-query noise - under imaginary-query noise, sigma 1 x the layer's query RMS, EC at T $T"; noise_diff $arm $task | values noise_$st; fi
done
if have ropepp_ec 'ppl_repeat_*.csv' && have rope 'ppl_repeat_*.csv'; then
  rep=$(repeat_diff rope ropepp_ec $SEQ)
  if [ -z "$rep" ]; then
    claim retrieval unmeasurable 0 "Fig. 5 / Table 2 stand-in" "EC retrieves from far context better than RoPE (repeat-span loss stand-in)" "no far repeats in the windows: no held-out document at T $SEQ has a 16-gram last seen more than T/4 earlier (repeat_tokens 0 in every ppl_repeat_*.csv)"
  else
    claim retrieval test 0 "Fig. 5 / Table 2 stand-in" "EC retrieves from far context better than RoPE (repeat-span loss stand-in)" "loss(rope) - loss(EC) on the targets ending a 16-gram last seen more than T/4 earlier (repeat_loss of ppl_repeat_*.csv), per held-out document at T $SEQ"
    echo "$rep" | values retrieval
  fi
else
  claim retrieval unmeasurable 0 "Fig. 5 / Table 2 stand-in" "EC retrieves from far context better than RoPE (repeat-span loss stand-in)" "no ppl_repeat_*.csv (the repeat-span measure of compare v3) in these runs"
fi
if [ "$(tasks_correct rope ropepp_ec)" -eq 0 ]; then
  claim tasks unmeasurable 0 "Table 2" "EC is more accurate than RoPE on the long-context tasks" "0 correct in both arms, every text task and seed: the tasks were not learned"
else
  claim tasks test 0 "Table 2" "EC is more accurate than RoPE on the long-context tasks" "accuracy(EC) - accuracy(rope) per text task at T $SEQ (MQAR left out)"
  tasks_diff rope ropepp_ec $SEQ | values tasks
fi
# descriptive: v2's whole-document loss where the runs have no loss from position 64, every other short arm
# against rope, and the v2 sink measure
if [ -z "$(docs_from rope)" ]; then
  for pe in ropepp_ec ropepp_eh; do
    claim v2_$pe describe 0 "Table 1, v2's metric" "$(echo ${pe#ropepp_} | tr a-z A-Z) vs RoPE over every position (start of document included)" "loss(rope) - loss($pe) per document at T $SEQ, all $SEQ positions (ppl_docs)"
    for s in $SEEDS; do docs_diff $s rope $pe $SEQ; done | values v2_$pe
  done
fi
for arm in $SHORT_ARMS; do
  case " rope ropepp_ec ropepp_eh rope_pm " in *" $arm "*) continue ;; esac
  claim ctl_$arm describe 0 "control" "$arm" "loss(rope) - loss($arm), $(loss_metric rope $SEQ)"
  loss_diff rope $arm $SEQ | values ctl_$arm
done
claim sink describe 0 "Fig. 5, v2's reading" "Mass on position 0 (the BOS), imaginary - real head, EC" "per (layer, q head); a sink is a large share of the mass there"
heads_diff ropepp_ec sink_mass | values sink

# the run's description
run_mix_weight() { local f; f=$(ls "$RUNS"/seed*/*/settings.txt 2>/dev/null | head -1); local w; w=$([ -n "$f" ] && awk '$1 == "--mix-weight" { print $2 }' "$f"); echo "${w:-token}"; }
# eval.txt without eval's progress lines (stderr; runs before the stdout/stderr split interleaved them with the results)
eval_text() { perl -0pe 's/eval [a-z]+: [a-z ]+ \d+\/\d+ (?:\(\d+%\) \| [^\n]*ETA [^\n]*|done in [^\n]*)\n//g' "$1"; }
mean_sd() {   # mean_sd "v1 v2 ...": "m ± sd" (sample sd over seeds)
  echo "$1" | awk '{ for (i = 1; i <= NF; i++) { s += $i; q += $i * $i } n = NF; if (n == 0) { printf "-"; exit } m = s / n
    if (n == 1) printf "%.3f", m; else printf "%.3f ± %.3f", m, sqrt((q - n * m * m) / (n - 1) > 0 ? (q - n * m * m) / (n - 1) : 0) }'
}
ppl_at() {   # ppl_at ARM LENGTH SCALING: the seeds' ppl values on the documents (one a seed with data)
  for s in $SEEDS; do f=$(ppl_csv $s $1); [ -n "$f" ] && awk -F, -v L=$2 -v sc=$3 '$2 == sc && $3 == L && $4 == "all" { printf "%s ", $8 }' "$f"; done
}
tasks_pooled() {   # tasks_pooled ARM TASK LENGTH: pooled accuracy over seeds with its Wilson interval
  local kn; kn=$(for s in $SEEDS; do awk -F, -v t=$2 -v L=$3 '$3 == t && $4 == L { print $8, $9 }' "$(ev $s $1)"/tasks_*.csv 2>/dev/null; done | awk '{ k += $1; n += $2 } END { print k + 0, n + 0 }')
  set -- $kn
  [ "$2" -gt 0 ] 2>/dev/null || { printf -- "-"; return; }
  local ci; ci=$($EVAL stat wilson $1 $2)
  awk -v k=$1 -v n=$2 -v ci="$ci" 'BEGIN { split(ci, c, " "); printf "%.1f%% [%.1f, %.1f] (n %d)", 100 * k / n, 100 * c[1], 100 * c[2], n }'
}
TABLE=$($EVAL stat claims "$CLAIMS" --svg "$OUT/$FIG") || { echo "error: $EVAL stat claims $CLAIMS failed" >&2; exit 1; }

{
  echo "# Can a small run confirm or refute RoPE++'s claims?"
  [ -n "${NOTE:-}" ] && echo && echo "$NOTE"
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
  echo "Command: $commands · seeds: $SEEDS · runs on $ran_on, commit $commits · report $(date -u +%Y-%m-%d) (statistics of commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
  echo
  echo "$TABLE"
  echo
  echo "Per-seed effects: [\`$FIG\`]($FIG). The claims file behind the table: \`$(basename "$CLAIMS")\`."
  missing=""
  for s in $SEEDS; do for arm in $ALL_ARMS; do
    ls "$(ev $s $arm)"/*.csv > /dev/null 2>&1 || missing="$missing seed$s/$arm"
  done; done
  if [ -n "${MISSING:-}" ]; then   # compare.sh v3 exports the protocol's seeds that have no folder here
    echo
    echo "**Seeds missing:** ${MISSING# }. The rows above use the seeds present: $SEEDS."
  fi
  if [ -n "$missing" ]; then
    echo
    echo "**Not evaluated:**$missing. The rows above use the seeds that have data (each row's per-seed column lists them)."
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
  maxm=$(echo $MULTS | tr ' ' '\n' | sort -n | tail -1)
  echo "## Perplexity on held-out documents (mean ± sd over the seeds of each row, column seeds; $NPPL documents longer than ${maxm}x the training length; every position)"
  echo
  echo "| model | trained at | scaling |$(for m in $MULTS; do printf ' %sx |' $m; done) seeds |"
  echo "|---|---|---|$(for m in $MULTS; do printf -- '---|'; done)---|"
  for arm in $ALL_ARMS; do
    L=$SEQ; case $arm in *_long) L=$LSEQ ;; esac
    for sc in none ntk:4; do
      [ -n "$(ppl_at $arm $L $sc)" ] || continue
      row="| $arm | $L | $sc"
      for m in $MULTS; do row="$row | $(mean_sd "$(ppl_at $arm $((m * L)) $sc)")"; done
      echo "$row | $(echo $(ppl_at $arm $L $sc) | wc -w) |"
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
  att=$(for arm in rope ropepp_eh ropepp_ec rope_long ropepp_eh_long ropepp_ec_long; do
    f="$(ev $first_seed $arm)/eval.txt"
    [ -f "$f" ] && grep -q "^summary:" "$f" && { echo "$arm:"; echo; eval_text "$f" | grep -E "^(summary:|characteristic curves)" | sed 's/^/    /'; echo; }
  done)
  noise=$(for arm in ropepp_ec ropepp_eh ropepp_ec_long; do
    f="$(ev $first_seed $arm)/eval.txt"
    [ -f "$f" ] && grep -q "noise experiment" "$f" && { echo "$arm:"; echo; eval_text "$f" | sed -n '/^noise experiment/,/^wrote/p' | grep -v '^wrote' | sed 's/^/    /'; echo; }
  done)
  if [ -n "$att" ]; then echo "## Attention (Fig. 5), seed $first_seed summaries"; echo; echo "$att"; echo; fi
  if [ -n "$noise" ]; then echo "## Noise relative to each layer's query RMS and the ablation (seed $first_seed; every seed's CSV in eval/)"; echo; echo "$noise"; echo; fi
  if [ -z "$att$noise" ]; then
    echo "## Attention and noise"
    echo
    echo "Seed $first_seed's runs keep no eval.txt$([ "$RUNS" != "$OUT" ] && echo " (the archive holds the CSVs only)"), so there is no printed summary here: the attention numbers are the far_ratio, first_k and sink rows above (attn_*.csv), the noise numbers are in noise_*.csv and the noise rows above say whether they could be tested."
    echo
  fi
  echo "## Characteristic curves of head dim $HD (Sec. 3.2: why imaginary heads should attend farther)"
  echo
  echo "c_Re, c_Im: the sums of Eq. 5 and 7 over the head's HD/2 = $((HD / 2)) frequencies (no model involved). closed: their limit for many frequencies, (Ci(dt) - Ci(dt/b)) / ln b and (Si(dt) - Si(dt/b)) / ln b (docs/MATH.md, section 6). The closed form is exact only as HD grows; the sum parts from it where theta_j dt moves by more than about pi between neighbouring frequencies (a step of about theta_j dt 2 ln(b) / HD): at a small head dim, and at large dt."
  echo
  for b in $BASE $LBASE; do
    ./eval curves --head-dim $HD --base $b --out "$CURVES/base$b" > "$CURVES/base$b.txt" 2>&1 &&
      { echo "c_Re, c_Im at base $b (paper Eq. 5, 7):"; echo; sed -n '2,9p' "$CURVES/base$b.txt" | sed 's/^/    /'; echo; }
  done
  echo "Data behind every number: each run's \`eval/\` (ppl_docs_*, ppl_*, tasks_*, attn_*, noise_* CSVs) and \`train.jsonl\`$([ "$RUNS" != "$OUT" ] && echo ", packed in \`runs.tar.gz\`")."
} > "$R"
echo "wrote $R"
