#!/usr/bin/env bash
# bench/gpu/run_checks.sh — every GPU check of the CUDA backend in one run on a GPU machine (about 5 minutes on
# an H100); full logs in $OUT (default /tmp/ropepp_gpu_out), a summary on stdout.
#   1. tests/test_gpu_fp32 and tests/test_gpu (bf16): CPU vs GPU op by op, GPU model vs the PyTorch fixtures,
#      determinism; the bf16 run also times attention (--bench)
#   2. ./train_gpu with no arguments (the default run)
#   3. resume is bit-exact on the GPU, bf16 and fp32: 12 steps straight = 6 steps + resume + 6 steps
#   4. checkpoints cross backends: train_gpu -> train --resume, and train -> train_gpu --resume
#   5. loss curves over 200 steps, same config and seed: train (CPU fp32) vs train_gpu_fp32 vs train_gpu (bf16)
#   6. compute-sanitizer memcheck and racecheck on a short training run
# Usage (repository root): bash bench/gpu/run_checks.sh       (logs and checkpoints in $WORK, the logs copied to $OUT)
set -u -o pipefail
cd "$(dirname "$0")/../.."
RESULTS=${OUT:-}
OUT=${WORK:-/tmp/ropepp_gpu_work}
rm -rf "$OUT"; mkdir -p "$OUT"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nvcc --version | tail -2; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
t0=$(date +%s)
make -j16 all gpu > "$OUT/build.txt" 2>&1 || { tail -40 "$OUT/build.txt"; echo "BUILD FAILED"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
rc=0
fail() { echo "FAIL - $*"; rc=1; }
strip_timing() { grep '"loss"' "$1" | sed -E 's/, "ms".*//'; }

# 1. tests
./tests/test_gpu_fp32 > "$OUT/test_gpu_fp32.txt" 2>&1 || fail "test_gpu_fp32"
./tests/test_gpu --bench > "$OUT/test_gpu_bf16.txt" 2>&1 || fail "test_gpu (bf16)"
./tests/test_infer_gpu > "$OUT/test_infer_gpu.txt" 2>&1 || fail "test_infer_gpu"
grep -h "^PASS\|^FAIL" "$OUT"/test_gpu_*.txt; tail -1 "$OUT/test_infer_gpu.txt"

# 2. the default run
./train_gpu --ckpt-dir "$OUT/ck_default" --log "$OUT/train_gpu_default.jsonl" > "$OUT/train_gpu_default.txt" 2>&1 || fail "default train_gpu"
head -4 "$OUT/train_gpu_default.txt"; grep -E "^step +(1|100|600)/|val loss|done" "$OUT/train_gpu_default.txt"

# 3. bit-exact resume on the GPU
small="--steps 12 --ckpt-every 6 --val-every 0 --sample 0 --batch 8 --seq 64"
for bin in train_gpu train_gpu_fp32; do
  for pe in rope ropepp_ec; do
    d="$OUT/resume_${bin}_$pe"; mkdir -p "$d/b"
    ./$bin $small --pe $pe --ckpt-dir "$d/a" --log "$d/a.jsonl" > "$d/a.txt" 2>&1 || fail "$bin $pe straight run"
    cp "$d/a/model_00000006."* "$d/a/settings.txt" "$d/b/"
    ./$bin $small --pe $pe --resume --ckpt-dir "$d/b" --log "$d/b.jsonl" > "$d/b.txt" 2>&1 || fail "$bin $pe resumed run"
    if diff <(strip_timing "$d/a.jsonl" | tail -n 6) <(strip_timing "$d/b.jsonl") > /dev/null; then
      echo "ok   - $bin $pe: steps 7-12 after resume are bit-identical to the straight run"
    else fail "$bin $pe: resumed losses differ"; fi
  done
done

# 4. checkpoints cross backends (fp32 master weights and fp32 moments in both)
d="$OUT/cross"; mkdir -p "$d"
./train_gpu --steps 6 --val-every 0 --sample 0 --ckpt-dir "$d/g2c" --log "$d/g.jsonl" > "$d/g.txt" 2>&1 || fail "train_gpu for cross check"
./train --steps 10 --val-every 0 --sample 0 --resume --ckpt-dir "$d/g2c" --log "$d/c.jsonl" > "$d/c.txt" 2>&1 && grep -q "resumed from" "$d/c.txt" \
  && echo "ok   - a train_gpu checkpoint resumes in train (CPU): $(grep -c '"loss"' "$d/c.jsonl") more steps" || fail "train_gpu -> train"
./train --steps 6 --val-every 0 --sample 0 --ckpt-dir "$d/c2g" --log "$d/c0.jsonl" > "$d/c0.txt" 2>&1 || fail "train for cross check"
./train_gpu --steps 10 --val-every 0 --sample 0 --resume --ckpt-dir "$d/c2g" --log "$d/g2.jsonl" > "$d/g2.txt" 2>&1 && grep -q "resumed from" "$d/g2.txt" \
  && echo "ok   - a train checkpoint resumes in train_gpu: $(grep -c '"loss"' "$d/g2.jsonl") more steps" || fail "train -> train_gpu"

# 5. loss curves, 200 steps
curve="--steps 200 --seed 7 --val-every 50 --sample 0"
./train $curve --ckpt-dir "$OUT/curve_cpu" --log "$OUT/curve_cpu.jsonl" > "$OUT/curve_cpu.txt" 2>&1 || fail "curve cpu"
./train_gpu_fp32 $curve --ckpt-dir "$OUT/curve_fp32" --log "$OUT/curve_gpu_fp32.jsonl" > "$OUT/curve_fp32.txt" 2>&1 || fail "curve fp32"
./train_gpu $curve --ckpt-dir "$OUT/curve_bf16" --log "$OUT/curve_gpu_bf16.jsonl" > "$OUT/curve_bf16.txt" 2>&1 || fail "curve bf16"
python3 - "$OUT" <<'PY' || rc=1
import json, sys
out = sys.argv[1]
def load(name):
    rows = [json.loads(l) for l in open(f"{out}/{name}.jsonl")]
    return [r["loss"] for r in rows if "loss" in r], [r["val_loss"] for r in rows if "val_loss" in r]
cpu, cpu_v = load("curve_cpu"); f32, f32_v = load("curve_gpu_fp32"); b16, b16_v = load("curve_gpu_bf16")
d32 = max(abs(a - b) for a, b in zip(cpu, f32)); d16 = max(abs(a - b) for a, b in zip(cpu, b16))
with open(f"{out}/curves.csv", "w") as f:
    f.write("step,cpu_fp32,gpu_fp32,gpu_bf16\n")
    for i, (a, b, c) in enumerate(zip(cpu, f32, b16)): f.write(f"{i+1},{a:.6f},{b:.6f},{c:.6f}\n")
print(f"loss curves over {len(cpu)} steps: max |cpu - gpu fp32| = {d32:.2e}, max |cpu - gpu bf16| = {d16:.2e}")
print("val loss cpu", [round(v, 4) for v in cpu_v], "gpu fp32", [round(v, 4) for v in f32_v], "gpu bf16", [round(v, 4) for v in b16_v])
ok32 = d32 < 2e-3 and abs(cpu_v[-1] - f32_v[-1]) < 2e-3
ok16 = abs(cpu_v[-1] - b16_v[-1]) < 0.05
print(("ok   - " if ok32 else "FAIL - ") + "fp32 GPU curve matches the CPU's (max step diff < 2e-3)")
print(("ok   - " if ok16 else "FAIL - ") + "bf16 GPU curve tracks the CPU's (final val loss within 0.05)")
sys.exit(0 if ok32 and ok16 else 1)
PY

# 6. compute-sanitizer on a short training run
tiny="--steps 3 --batch 2 --seq 40 --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 96 --val-every 0 --val-batches 1 --sample 5"
for pe in ropepp_ec fope alibi; do
  for tool in memcheck racecheck; do
    compute-sanitizer --tool $tool --error-exitcode 9 ./train_gpu $tiny --pe $pe --ckpt-dir "$OUT/san_${pe}_${tool}" --log "" > "$OUT/sanitizer_${tool}_$pe.txt" 2>&1 \
      && echo "ok   - compute-sanitizer $tool, train_gpu --pe $pe: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer_${tool}_$pe.txt" | tail -1)" \
      || fail "compute-sanitizer $tool $pe: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer_${tool}_$pe.txt" | tail -1)"
  done
done
echo "total: $(( $(date +%s) - t0 )) s; rc=$rc"
if [ -n "$RESULTS" ]; then   # the logs, not the checkpoints, as one file (the device tool returns few files)
  (cd "$OUT" && find . -name '*.txt' -o -name '*.jsonl' -o -name '*.csv' | tar czf "$RESULTS/gpu_logs.tgz" -T -)
fi
exit $rc
