#!/usr/bin/env bash
# tests/test_dist.sh — ./train with --grad-accum and the launcher environment (CPU, part of `make test`):
#   - --grad-accum 2 resumes bit-exact, restored from settings.txt: 6 steps straight == 3 steps + --resume (checkpoints are taken at optimizer
#     steps, after all of a step's micro-batches); the resumed run's steps 4..6 are byte-identical
#   - --grad-accum 2 --batch 2 and --batch 4 train on the same tokens: step 1's loss agrees within 1e-5 (float sums
#     in another order)
#   - a build without NCCL refuses WORLD_SIZE > 1 (and OpenMPI's OMPI_COMM_WORLD_SIZE > 1) with a hint
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
T=tests/tmp/test_dist.$$
rm -rf "$T"; mkdir -p "$T"
TINY=(--dim 32 --layers 1 --heads 2 --kv-heads 2 --ffn 64 --seq 16 --val-batches 2 --sample 0 --schedule constant --warmup 1)
loss_lines() { grep '"loss"' "$1" | sed 's/, "ms".*//'; }

./train "${TINY[@]}" --batch 2 --grad-accum 2 --steps 6 --ckpt-every 3 --ckpt-dir "$T/a" --log "$T/a.jsonl" > "$T/a.out" 2>&1 || bad "6-step --grad-accum 2 run failed: $(tail -2 "$T/a.out")"
mkdir -p "$T/b"; cp "$T/a/model_00000003".* "$T/a/settings.txt" "$T/b/"
# the run's settings (--grad-accum 2 among them) come from settings.txt: nothing but the log is repeated
./train --resume "$T/b" --log "$T/b.jsonl" > "$T/b.out" 2>&1 || bad "--resume with --grad-accum 2 failed: $(tail -2 "$T/b.out")"
grep -q "x grad accum 2 x processes 1" "$T/b.out" && ok "--resume restores --grad-accum 2 from the run's settings.txt" || bad "--resume did not restore --grad-accum 2: $(grep '^data:' "$T/b.out")"
a=$(loss_lines "$T/a.jsonl" | tail -3); b=$(loss_lines "$T/b.jsonl")
if [ -n "$a" ] && [ "$a" = "$b" ]; then ok "--grad-accum 2: steps 4..6 after --resume from step 3 are byte-identical (loss, lr, norm as %.17g)"
else bad "--grad-accum 2 resume: '$a' vs '$b'"; fi
if cmp -s "$T/a/model_00000006.ckpt" "$T/b/model_00000006.ckpt" && cmp -s "$T/a/model_00000006.state" "$T/b/model_00000006.state"; then ok "--grad-accum 2: the step-6 checkpoint and state files are byte-identical"
else bad "--grad-accum 2: the step-6 checkpoint or state differ after resume"; fi

./train "${TINY[@]}" --batch 4 --steps 1 --ckpt-dir "" --log "$T/c.jsonl" > "$T/c.out" 2>&1 || bad "--batch 4 run failed"
./train "${TINY[@]}" --batch 2 --grad-accum 2 --steps 1 --ckpt-dir "" --log "$T/d.jsonl" > "$T/d.out" 2>&1 || bad "--grad-accum 2 run failed"
c=$(grep -o '"loss": [^,]*' "$T/c.jsonl" | cut -d' ' -f2); d=$(grep -o '"loss": [^,]*' "$T/d.jsonl" | cut -d' ' -f2)
if [ -n "$c" ] && [ -n "$d" ] && awk -v a="$c" -v b="$d" 'BEGIN { x = a - b; exit !(x < 1e-5 && x > -1e-5) }'; then ok "--grad-accum 2 --batch 2 sees --batch 4's tokens: step 1 loss $d vs $c (within 1e-5)"
else bad "--grad-accum 2 --batch 2 vs --batch 4: step 1 loss '$d' vs '$c'"; fi
if grep -q "batch 2 x seq 16 x grad accum 2 x processes 1 = 64 tokens/step" "$T/d.out"; then ok "the data line counts micro-batches and processes: 64 tokens/step"
else bad "no 'batch 2 x seq 16 x grad accum 2 x processes 1 = 64 tokens/step' line"; fi

out=$(WORLD_SIZE=2 RANK=0 ./train "${TINY[@]}" --steps 1 2>&1 < /dev/null); st=$?
if [ $st -ne 0 ] && echo "$out" | grep -q "error: launched as WORLD_SIZE=2 processes, but this program was built without NCCL"; then ok "WORLD_SIZE=2 refused without NCCL: $(echo "$out" | head -1)"
else bad "WORLD_SIZE=2: exit $st, $out"; fi
out=$(OMPI_COMM_WORLD_SIZE=4 ./train "${TINY[@]}" --steps 1 2>&1 < /dev/null); st=$?
if [ $st -ne 0 ] && echo "$out" | grep -q "OMPI_COMM_WORLD_SIZE=4"; then ok "mpirun's OMPI_COMM_WORLD_SIZE=4 refused without NCCL"
else bad "OMPI_COMM_WORLD_SIZE=4: exit $st, $out"; fi
rm -rf "$T"
finish test_dist_cli
