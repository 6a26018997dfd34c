#!/usr/bin/env bash
# bench/multigpu/parity.sh — issue "Multi-GPU runs": the same global batch on 1 and on N GPUs (default N=2), the
# small shape (train's defaults, global batch 16 x 128) for 200 steps, constant lr after 10 warmup steps, seed 7:
#   - the loss curves agree: final validation loss within 0.05 (the bf16 tolerance of bench/gpu's CPU-vs-GPU
#     curves); the largest per-step difference is printed
#   - the N-GPU step-100 checkpoint resumes on 1 GPU and in the CPU program (steps 101..110): step 101's loss
#     within 0.05 of the N-GPU run's
# Usage on a machine with N GPUs, from the repository root:  N=2 bash bench/multigpu/parity.sh
# Writes bench/multigpu/parity_N<N>.md (date, GPUs, driver, NCCL, command, numbers) and, with OUT set, the logs
# under $OUT/parity/. Exit status non-zero when a check fails.
set -u -o pipefail
cd "$(dirname "$0")/../.." || exit 1
source bench/multigpu/launch.sh
N=${N:-2}
W=${OUT:-/tmp}/parity; rm -rf "$W"; mkdir -p "$W"
FAIL=0
ok() { echo "ok   - $*" | tee -a "$W/checks.txt"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*" | tee -a "$W/checks.txt"; }
[ "$(nvidia-smi -L | wc -l)" -ge "$N" ] || { echo "error: $N GPUs needed, $(nvidia-smi -L | wc -l) here"; exit 1; }
make -j"$(nproc)" train train_gpu data/tinyshakespeare_train.bin > "$W/build.txt" 2>&1 || { tail "$W/build.txt"; exit 1; }
grep -q "✓ NCCL" "$W/build.txt" || { echo "error: train_gpu built without NCCL (bash bench/multigpu/ws1_check.sh finds it)"; exit 1; }
A="--steps 200 --schedule constant --warmup 10 --seed 7 --val-every 50 --ckpt-every 100 --sample 0"
./train_gpu $A --batch 16 --ckpt-dir "$W/g1" --log "$W/g1.jsonl" > "$W/g1.txt" 2>&1 || bad "1-GPU run failed"
launch "$N" ./train_gpu $A --batch $((16 / N)) --ckpt-dir "$W/gN" --log "$W/gN.jsonl" > "$W/gN.txt" 2>&1 || bad "$N-GPU run failed"
loss() { grep -o "\"$2\": [^,}]*" "$1" | cut -d' ' -f2; }
worst=$(paste <(loss "$W/g1.jsonl" loss) <(loss "$W/gN.jsonl" loss) | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d } END { printf "%.4f", m }')
v1=$(loss "$W/g1.jsonl" val_loss | tail -1); vN=$(loss "$W/gN.jsonl" val_loss | tail -1)
if awk -v a="$v1" -v b="$vN" 'BEGIN { d = a - b; exit !(a != "" && d < 0.05 && d > -0.05) }'; then ok "final val loss: 1 GPU $v1, $N GPUs $vN (within 0.05); largest per-step loss difference $worst"
else bad "final val loss: 1 GPU '$v1', $N GPUs '$vN'; largest per-step difference $worst"; fi
ref=$(grep '"step": 101,' "$W/gN.jsonl" | grep -o '"loss": [^,]*' | cut -d' ' -f2)
for prog in train_gpu train; do
    mkdir -p "$W/r_$prog"; cp "$W/gN/model_00000100".* "$W/r_$prog/"
    ./$prog ${A/--steps 200/--steps 110} --batch 16 --resume --ckpt-dir "$W/r_$prog" --log "$W/r_$prog.jsonl" > "$W/r_$prog.txt" 2>&1 || bad "$prog resume failed"
    got=$(grep '"step": 101,' "$W/r_$prog.jsonl" | grep -o '"loss": [^,]*' | cut -d' ' -f2)
    if awk -v a="$ref" -v b="$got" 'BEGIN { d = a - b; exit !(b != "" && d < 0.05 && d > -0.05) }'; then ok "the $N-GPU step-100 checkpoint resumes in $prog: step 101 loss $got ($N GPUs: $ref)"
    else bad "$prog resume of the $N-GPU checkpoint: step 101 loss '$got' vs '$ref'"; fi
done
{
    echo "# Parity: 1 GPU vs $N GPUs, same global batch ($(date -u +%Y-%m-%d))"
    echo; echo "GPUs: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x $N, driver $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1), $(grep -o 'NCCL [0-9.]*' "$W/gN.txt" | head -1)"
    echo "Command: N=$N bash bench/multigpu/parity.sh"; echo; echo '```'; cat "$W/checks.txt"; echo '```'
} > "bench/multigpu/parity_N$N.md"
cat "bench/multigpu/parity_N$N.md"
[ "$FAIL" -eq 0 ]
