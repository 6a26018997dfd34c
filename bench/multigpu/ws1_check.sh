#!/usr/bin/env bash
# bench/multigpu/ws1_check.sh — the data-parallel path of train_gpu (NCCL, ZeRO-1 sharded optimizer) at world size
# 1 on one GPU, against the plain single-GPU path of the same binary, and the single-GPU overhead at 376M:
#   1. build train (CPU) and train_gpu with NCCL (found by the Makefile next to nvcc, else in PyTorch's pip package
#      nvidia-nccl-cu13: NCCL_HOME=.../site-packages/nvidia/nccl)
#   2. small shape (train's defaults), 20 steps, constant lr after 2 warmup steps: the loss, norm and validation
#      lines of WORLD_SIZE=1 (NCCL) are byte-identical to the plain run's, and so are the step-20 checkpoint and
#      state files (the sharded optimizer gathered for writing)
#   3. resume across the paths: the NCCL run's step-10 checkpoint resumes in the plain train_gpu and the plain
#      one's in the NCCL path, steps 11..20 byte-identical; it resumes in the CPU program (fp32) with step 11's loss
#      within 0.05 of the GPU's (the bf16 tolerance of bench/gpu's CPU-vs-GPU curves)
#   4. --grad-accum 2 --batch 8 on the NCCL path against --batch 16: the 20-step loss curve within 0.05 (bf16:
#      different matmul shapes round differently), step 1 within 5e-3
#   5. the paper's 376M shape (C 1024, L 8, H 8, KV 4, F 3584, V 50304, T 4096, B 8), 20 steps on random tokens:
#      losses byte-identical, tokens/s of steps 4..20 of both, and the overhead of the NCCL path in percent
# Usage on the GPU machine, from the repository root:  bash bench/multigpu/ws1_check.sh
# Writes $OUT/ws1/ (logs, summary.txt) when OUT is set; exit status non-zero when a check fails. ~1.5-2 minutes.
set -u -o pipefail
cd "$(dirname "$0")/../.." || exit 1
export NCCL_NVLS_ENABLE=0    # NVLink multicast stays off
W=${OUT:-/tmp}/ws1
rm -rf "$W"; mkdir -p "$W"
T0=$(date +%s)
PASS=0; FAIL=0
say() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$W/summary.txt"; }
ok() { PASS=$((PASS + 1)); say "ok   - $*"; }
bad() { FAIL=$((FAIL + 1)); say "FAIL - $*"; }
finish() { say "ws1_check: $PASS passed, $FAIL failed"; [ "$FAIL" -eq 0 ]; exit $?; }

# ---- 1. build
NCCL_ARG=""
probe=$(make -n train_gpu 2>/dev/null || true)   # (not `make | grep -q`: under pipefail make's SIGPIPE fails it)
if ! grep -q "✓ NCCL" <<< "$probe"; then
    d=$(python3 -c 'import nvidia.nccl as n; print(list(n.__path__)[0])' 2>/dev/null)
    [ -n "$d" ] && NCCL_ARG="NCCL_HOME=$d"
fi
say "building train, train_gpu ${NCCL_ARG:-(NCCL next to nvcc)}"
# (make rebuilds what a flag change touches: no objects to remove)
if ! make -j"$(nproc)" train train_gpu data/tinyshakespeare_train.bin $NCCL_ARG > "$W/build.txt" 2>&1; then
    tail -20 "$W/build.txt"; bad "build failed"; finish
fi
grep -E "NCCL|nvcc " "$W/build.txt" | grep -E "^(✓|✗)" | tee -a "$W/summary.txt"
grep -q "✓ NCCL" "$W/build.txt" || { bad "train_gpu was built without NCCL (see $W/build.txt)"; finish; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$W/summary.txt"

WS1="env WORLD_SIZE=1 RANK=0 LOCAL_RANK=0"
A="--steps 20 --schedule constant --warmup 2 --val-every 10 --val-batches 5 --ckpt-every 10 --sample 0 --seed 7"
field() { grep -o "\"$2\": [^,}]*" "$1"; }                  # field FILE NAME: every "NAME": value of a JSONL log
steps_from() { awk -v s="$2" -F'[:,]' '/"step"/ && /"loss"/ { if ($2 + 0 >= s) print }' "$1" | sed 's/"ms".*//'; }

# ---- 2. plain vs NCCL at world size 1, small shape
./train_gpu $A --ckpt-dir "$W/plain" --log "$W/plain.jsonl" > "$W/plain.txt" 2>&1 || bad "plain run failed: $(tail -3 "$W/plain.txt")"
$WS1 ./train_gpu $A --ckpt-dir "$W/ws1" --log "$W/ws1.jsonl" > "$W/ws1.txt" 2>&1 || bad "NCCL run failed: $(tail -3 "$W/ws1.txt")"
if grep -q "data parallel: 1 process (NCCL" "$W/ws1.txt"; then ok "WORLD_SIZE=1 runs the NCCL path: $(grep 'data parallel' "$W/ws1.txt")"
else bad "WORLD_SIZE=1 did not start the NCCL path"; fi
for f in loss norm val_loss; do
    if [ -n "$(field "$W/plain.jsonl" $f)" ] && [ "$(field "$W/plain.jsonl" $f)" = "$(field "$W/ws1.jsonl" $f)" ]; then
        ok "small shape: every $f of the NCCL path (ws 1) is byte-identical to the plain path ($(field "$W/plain.jsonl" $f | wc -l) values, %.17g)"
    else bad "small shape: $f differs between the plain and the NCCL path"; fi
done
if cmp -s "$W/plain/model_00000020.ckpt" "$W/ws1/model_00000020.ckpt" && cmp -s "$W/plain/model_00000020.state" "$W/ws1/model_00000020.state"; then
    ok "the step-20 checkpoint and state file written from the sharded optimizer are byte-identical to the plain ones"
else bad "the step-20 checkpoint or state file differ between the plain and the NCCL path"; fi

# ---- 3. resume across the paths and on the CPU
mkdir -p "$W/r_plain" "$W/r_ws1" "$W/r_cpu"
# each with its run's settings.txt (what --resume restores); the flags repeated below agree with it
cp "$W/ws1/model_00000010".* "$W/ws1/settings.txt" "$W/r_plain/"; cp "$W/plain/model_00000010".* "$W/plain/settings.txt" "$W/r_ws1/"
cp "$W/ws1/model_00000010".* "$W/ws1/settings.txt" "$W/r_cpu/"
./train_gpu $A --resume --ckpt-dir "$W/r_plain" --log "$W/r_plain.jsonl" > "$W/r_plain.txt" 2>&1 || bad "plain resume failed: $(tail -3 "$W/r_plain.txt")"
$WS1 ./train_gpu $A --resume --ckpt-dir "$W/r_ws1" --log "$W/r_ws1.jsonl" > "$W/r_ws1.txt" 2>&1 || bad "NCCL resume failed: $(tail -3 "$W/r_ws1.txt")"
ref=$(steps_from "$W/plain.jsonl" 11)
if [ -n "$ref" ] && [ "$ref" = "$(steps_from "$W/r_plain.jsonl" 11)" ]; then ok "the NCCL run's step-10 checkpoint resumes in plain train_gpu: steps 11..20 byte-identical"
else bad "plain resume from the NCCL checkpoint: steps 11..20 differ"; fi
if [ -n "$ref" ] && [ "$ref" = "$(steps_from "$W/r_ws1.jsonl" 11)" ]; then ok "the plain run's step-10 checkpoint resumes on the NCCL path (optimizer sharded on load): steps 11..20 byte-identical"
else bad "NCCL resume from the plain checkpoint: steps 11..20 differ"; fi
./train ${A/--steps 20/--steps 12} --resume --ckpt-dir "$W/r_cpu" --log "$W/r_cpu.jsonl" > "$W/r_cpu.txt" 2>&1 || bad "CPU resume failed: $(tail -3 "$W/r_cpu.txt")"
g=$(steps_from "$W/ws1.jsonl" 11 | head -1 | grep -o '"loss": [^,]*' | cut -d' ' -f2)
c=$(steps_from "$W/r_cpu.jsonl" 11 | head -1 | grep -o '"loss": [^,]*' | cut -d' ' -f2)
if [ -n "$g" ] && [ -n "$c" ] && awk -v a="$g" -v b="$c" 'BEGIN { d = a - b; exit !(d < 0.05 && d > -0.05) }'; then
    ok "the NCCL run's step-10 checkpoint resumes in the CPU program: step 11 loss $c (GPU bf16 $g, within 0.05)"
else bad "CPU resume from the NCCL checkpoint: step 11 loss '$c' vs GPU '$g'"; fi

# ---- 4. gradient accumulation on the GPU
$WS1 ./train_gpu ${A/--ckpt-every 10/} --ckpt-dir "" --batch 8 --grad-accum 2 --log "$W/accum.jsonl" > "$W/accum.txt" 2>&1 || bad "grad-accum run failed: $(tail -3 "$W/accum.txt")"
res=$(paste <(field "$W/plain.jsonl" loss | cut -d' ' -f2) <(field "$W/accum.jsonl" loss | cut -d' ' -f2) |
      awk '{ d = $1 - $2; if (d < 0) d = -d; if (NR == 1) first = d; if (d > m) m = d; n++ } END { printf "%d %.3e %.3e", n, first, m }')
read -r n first worst <<< "$res"
if [ "$n" = "21" ] || [ "$n" = "20" ] && awk -v f="$first" -v m="$worst" 'BEGIN { exit !(f <= 5e-3 && m <= 0.05) }'; then
    ok "--grad-accum 2 --batch 8 (NCCL path) vs --batch 16: step 1 loss diff $first (<= 5e-3), max over 20 steps $worst (<= 0.05)"
else bad "--grad-accum 2 --batch 8 vs --batch 16: $n steps, step 1 diff $first, max $worst"; fi

# ---- 5. 376M shape: bit-identity and the overhead of the NCCL path
python3 bench/train/make_shard.py --vocab 50304 --tokens 700000 --out "$W/rand.bin" > /dev/null || bad "make_shard failed"
S="--dim 1024 --layers 8 --heads 8 --kv-heads 4 --ffn 3584 --vocab 50304 --seq 4096 --batch 8 --steps 20 --train $W/rand.bin --val \"\" --ckpt-dir \"\" --sample 0"
eval ./train_gpu $S --log "$W/big_plain.jsonl" > "$W/big_plain.txt" 2>&1 || bad "376M plain run failed: $(tail -3 "$W/big_plain.txt")"
eval $WS1 ./train_gpu $S --log "$W/big_ws1.jsonl" > "$W/big_ws1.txt" 2>&1 || bad "376M NCCL run failed: $(tail -3 "$W/big_ws1.txt")"
if [ -n "$(field "$W/big_plain.jsonl" loss)" ] && [ "$(field "$W/big_plain.jsonl" loss)" = "$(field "$W/big_ws1.jsonl" loss)" ]; then
    ok "376M: the 20 losses of the NCCL path are byte-identical to the plain path's"
else bad "376M: the losses differ between the plain and the NCCL path"; fi
tps() { awk -F'"tok_s": ' '/"tok_s"/ { split($2, a, "}"); n++; if (n >= 4) { s += a[1]; k++ } } END { if (k) printf "%.0f", s / k }' "$1"; }
p=$(tps "$W/big_plain.jsonl"); q=$(tps "$W/big_ws1.jsonl")
if [ -n "$p" ] && [ -n "$q" ]; then
    say "376M, B 8 x T 4096, steps 4..20: plain $p tok/s, NCCL ws1 $q tok/s, overhead $(awk -v p="$p" -v q="$q" 'BEGIN { printf "%.2f", (p - q) / p * 100 }')%"
    grep "peak GPU memory" "$W/big_plain.txt" "$W/big_ws1.txt" | sed "s|$W/||" | tee -a "$W/summary.txt"
else bad "376M: no tokens/s in the logs"; fi
finish
