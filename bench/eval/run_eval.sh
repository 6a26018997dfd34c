#!/usr/bin/env bash
# bench/eval/run_eval.sh — every eval mode on real checkpoints, on a GPU machine (about 3 minutes on an H100):
#   A. the default model (./train_gpu with no arguments: ropepp_eh, seq 128, Tiny Shakespeare)
#   B. a RoPE++ EC model trained with a long-context task mix (seq 256, passkey + MQAR rows), the kind of model
#      the task and noise modes are for
# then eval_gpu ppl / tasks / noise / patterns / curves on both, and the CPU build's eval ppl on A next to the
# GPU's (bf16 vs fp32: the losses must agree within 2%). Logs, CSVs and SVGs go to $WORK (and a tarball to $OUT).
# Usage (repository root): bash bench/eval/run_eval.sh
set -u -o pipefail
cd "$(dirname "$0")/../.."
RESULTS=${OUT:-}
W=${WORK:-/tmp/ropepp_eval_work}
rm -rf "$W"; mkdir -p "$W"
make -j16 all eval_gpu train_gpu > "$W/build.txt" 2>&1 || { tail -30 "$W/build.txt"; exit 1; }
rc=0
t0=$(date +%s)
./train_gpu --ckpt-dir "$W/A" --log "$W/A/train.jsonl" > "$W/A_train.txt" 2>&1 || rc=1
mixargs="--pe ropepp_ec --dim 256 --layers 4 --heads 8 --kv-heads 4 --ffn 768 --seq 256 --batch 32 --steps 3000 --lr 2e-3 --mix passkey:0.25,mqar:0.25 --val-every 1000 --sample 200"
./train_gpu $mixargs --ckpt-dir "$W/B" --log "$W/B/train.jsonl" > "$W/B_train.txt" 2>&1 || rc=1
echo "training: $(( $(date +%s) - t0 )) s"; grep -h "done:" "$W"/A_train.txt "$W"/B_train.txt
A="$W/A/model_00001000.ckpt"; B="$W/B/model_00003000.ckpt"
for m in ppl tasks patterns; do
  ./eval_gpu $m --ckpt "$A" --out "$W/eval_A" > "$W/A_$m.txt" 2>&1 || { rc=1; echo "FAIL - eval_gpu $m on A"; tail -3 "$W/A_$m.txt"; }
done
./eval_gpu ppl --ckpt "$B" --out "$W/eval_B" > "$W/B_ppl.txt" 2>&1 || rc=1
./eval_gpu tasks --ckpt "$B" --tasks passkey,mqar --samples 50 --out "$W/eval_B" > "$W/B_tasks.txt" 2>&1 || rc=1
./eval_gpu noise --ckpt "$B" --tasks passkey --samples 50 --out "$W/eval_B" > "$W/B_noise.txt" 2>&1 || rc=1
./eval_gpu patterns --ckpt "$B" --out "$W/eval_B" > "$W/B_patterns.txt" 2>&1 || rc=1
./eval_gpu curves --out "$W/eval_B" > "$W/curves.txt" 2>&1 || rc=1
# CPU (fp32) vs GPU (bf16) on the same checkpoint and windows
OMP_NUM_THREADS=16 ./eval ppl --ckpt "$A" --out "$W/eval_A_cpu" > "$W/A_ppl_cpu.txt" 2>&1 || rc=1
python3 - "$W" <<'PY' || rc=1
import csv, sys
w = sys.argv[1]
def rows(p): return {(r["scaling"], r["length"], r["band"], r["band_start"]): float(r["loss"]) for r in csv.DictReader(open(p))}
g = rows(f"{w}/eval_A/ppl_ropepp_eh.csv"); c = rows(f"{w}/eval_A_cpu/ppl_ropepp_eh.csv")
worst = max(abs(g[k] - c[k]) / c[k] for k in c)
print(("ok   - " if worst < 0.02 else "FAIL - ") + f"eval ppl: GPU (bf16) vs CPU (fp32) losses, worst relative difference {worst:.2e} over {len(c)} rows (tolerance 2e-2)")
sys.exit(0 if worst < 0.02 else 1)
PY
echo "total: $(( $(date +%s) - t0 )) s, rc=$rc"
for f in A_ppl B_tasks B_noise B_patterns; do echo "== $f"; grep -v "^wrote\|^ok\|^    [0-9]" "$W/$f.txt" | tail -14; done
if [ -n "$RESULTS" ]; then
  (cd "$W" && find . -name '*.txt' -o -name '*.jsonl' -o -name '*.csv' -o -name '*.svg' | tar czf "$RESULTS/eval_logs.tgz" -T -)
fi
exit $rc
