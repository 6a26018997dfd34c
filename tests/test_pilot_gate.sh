#!/usr/bin/env bash
# test_pilot_gate.sh — scripts/pilot_gate.sh: the decision on hand-built `eval tasks` CSVs (pass, fail, the 0.40
# boundary, rows of other PEs / lengths / scalings ignored, missing rows and bad flags refused), then `run` end to
# end on a tiny CPU shape (plumbing only: 2 steps learn nothing, so the gate must fail) and its reuse on a second
# call. Run from the repository root.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
T=tests/tmp/test_pilot_gate.$$
trap 'rm -rf "$T"' EXIT
mkdir -p "$T"
G=scripts/pilot_gate.sh
H=pe,scaling,task,length,accuracy,ci_low,ci_high,correct,scored,samples,seed,in_training_mix

out=$(bash $G --help); st=$?
[ $st -eq 0 ] && echo "$out" | grep -q "^  scripts/pilot_gate.sh decide CSV" && ! echo "$out" | grep -q "set -u" &&
  ok "--help prints the usage and nothing else, exit 0" || bad "--help: exit $st, $out"

# a CSV: the header, then the rows given
csv() { local f=$1; shift; { echo "$H"; for r in "$@"; do echo "$r"; done; } > "$f"; }

csv "$T/pass.csv" "rope,none,passkey,512,0.435000,0.368000,0.504000,87,200,200,1,yes" \
    "rope,none,niah_single,512,0.400000,0.334000,0.469000,80,200,200,2,yes" "rope,none,vt,512,0.000000,0,0.018845,0,200,200,3,yes"
out=$(bash $G decide "$T/pass.csv" --length 512); st=$?
[ $st -eq 0 ] && echo "$out" | grep -q "^pilot gate: pass$" && ok "both tasks >= 0.40 (0.435, exactly 0.400): pass, exit 0" || bad "pass case: exit $st, $out"
echo "$out" | grep -q "^task passkey length 512 accuracy 0.4350 ci 0.3680 0.5040 correct 87 of 200: learned" &&
  ok "the per-task line carries accuracy, interval and counts" || bad "task line: $out"

csv "$T/fail.csv" "rope,none,passkey,512,0.900000,0.85,0.94,180,200,200,1,yes" "rope,none,niah_single,512,0.395000,0.33,0.46,79,200,200,2,yes"
out=$(bash $G decide "$T/fail.csv" --length 512); st=$?
[ $st -eq 1 ] && echo "$out" | grep -q "^pilot gate: fail" && echo "$out" | grep -q "niah_single .*: not learned" &&
  ok "one task below 0.40 (0.395): fail, exit 1, the task named" || bad "fail case: exit $st, $out"
out=$(bash $G decide "$T/fail.csv" --length 512 --min 0.39); st=$?
[ $st -eq 0 ] && ok "--min 0.39 lets the same CSV pass" || bad "--min 0.39: exit $st, $out"
out=$(bash $G decide "$T/fail.csv" --length 512 --tasks passkey); st=$?
[ $st -eq 0 ] && ! echo "$out" | grep -q niah && ok "--tasks passkey reads passkey alone" || bad "--tasks passkey: exit $st, $out"

# only rope at scaling none and the asked length decides; other rows may say anything
csv "$T/mixed.csv" "ropepp_ec,none,passkey,512,1.0,1,1,200,200,200,1,yes" "rope,ntk:4,passkey,512,1.0,1,1,200,200,200,1,yes" \
    "rope,none,passkey,1024,1.0,1,1,200,200,200,1,no" "rope,none,passkey,512,0.1,0.07,0.15,20,200,200,1,yes" \
    "rope,none,niah_single,512,1.0,1,1,200,200,200,1,yes"
out=$(bash $G decide "$T/mixed.csv" --length 512); st=$?
[ $st -eq 1 ] && echo "$out" | grep -q "task passkey length 512 accuracy 0.1000" &&
  ok "rows of other PEs, scalings and lengths are ignored" || bad "mixed rows: exit $st, $out"

# errors: exit 2 with an error line
out=$(bash $G decide "$T/mixed.csv" --length 256 2>&1); st=$?
[ $st -eq 2 ] && echo "$out" | grep -q "error: .*no row for pe rope, task passkey, length 256" && ok "a missing row: exit 2, named" || bad "missing row: exit $st, $out"
out=$(bash $G decide "$T/nothing.csv" --length 512 2>&1); st=$?
[ $st -eq 2 ] && echo "$out" | grep -q "error: cannot read" && ok "a missing CSV: exit 2" || bad "missing CSV: exit $st, $out"
echo "pe,task,length" > "$T/cols.csv"
out=$(bash $G decide "$T/cols.csv" --length 512 2>&1); st=$?
[ $st -eq 2 ] && echo "$out" | grep -q "error: .*no column" && ok "a CSV without the columns: exit 2" || bad "bad header: exit $st, $out"
for args in "decide $T/pass.csv" "decide $T/pass.csv --length 512 --min 1.5" "decide $T/pass.csv --length 512 --bogus" "run --out $T/r" "run -- --seq 256" "bogus"; do
    out=$(bash $G $args 2>&1); st=$?
    [ $st -eq 2 ] && echo "$out" | grep -q "^error: " && ok "refused: pilot_gate.sh $args" || bad "not refused: $args: exit $st, $out"
done
out=$(bash $G run --out "$T/r" -- --pe alibi --seq 256 2>&1); st=$?
[ $st -eq 2 ] && echo "$out" | grep -q "error: run trains rope" && ok "run refuses a --pe in the training flags" || bad "--pe: exit $st, $out"

# run, plumbing only: a tiny rope model trained 2 steps on passkey rows learns nothing, so the gate fails (exit 1)
out=$(OMP_NUM_THREADS=1 bash $G run --out "$T/r" --tasks passkey --samples 4 -- --dim 32 --layers 1 --heads 4 --kv-heads 2 \
      --ffn 64 --seq 256 --batch 2 --steps 2 --mix passkey:0.5 --task-bos --val "" 2>&1); st=$?
[ $st -eq 1 ] && [ -s "$T/r/eval/tasks_rope.csv" ] && grep -q "^pilot gate: fail" "$T/r/gate.txt" &&
  grep -q "^task passkey length 256 accuracy 0.0000 .* correct 0 of 4: not learned" "$T/r/gate.txt" &&
  ok "run trains, evaluates 4 samples at T 256 and writes gate.txt (fail, exit 1)" || bad "run: exit $st, $out"
grep -q "^note: --mix: task passkey at --seq 256 has at most 2 tokens of haystack, fewer than its prompt: the needle's distance from the answer varies by at most that much" "$T/r/train.log" &&
  ok "train notes that passkey at T 256 (2 tokens of haystack) is answerable by position" || bad "no haystack note: $(head -3 "$T/r/train.log")"
out=$(OMP_NUM_THREADS=1 ./train --dim 32 --layers 1 --heads 4 --kv-heads 2 --ffn 64 --seq 512 --batch 1 --steps 1 --mix passkey:0.5 \
      --task-bos --val "" --out "" --sample 0 2>&1); st=$?
[ $st -eq 0 ] && ! echo "$out" | grep -q "^note: --mix" && ok "no haystack note at T 512 (258 tokens of haystack >= the prompt)" || bad "T 512: exit $st, $(echo "$out" | grep note)"
grep -qF "'--pe' 'rope'" "$T/r/run/command.txt" && ok "run trained rope" || bad "command.txt: $(cat "$T/r/run/command.txt")"
csv_before=$(stat -c %y "$T/r/eval/tasks_rope.csv")
out=$(OMP_NUM_THREADS=1 bash $G run --out "$T/r" --tasks passkey --samples 4 -- --dim 32 --layers 1 --heads 4 --kv-heads 2 \
      --ffn 64 --seq 256 --batch 2 --steps 2 --mix passkey:0.5 --task-bos --val "" 2>&1); st=$?
[ $st -eq 1 ] && [ "$(stat -c %y "$T/r/eval/tasks_rope.csv")" = "$csv_before" ] && grep -q "nothing to train" "$T/r/train.log" &&
  ok "a second call resumes the finished run (nothing to train) and reuses its evaluation" || bad "second call: exit $st, $out; $(tail -2 "$T/r/train.log")"
finish test_pilot_gate
