#!/usr/bin/env bash
# test_run_faults.sh — a run's life in ./train against the faults of issue 32, each provoked as an operator meets it:
#   signals    SIGTERM to the process group of `train | head -n 3` (the reader gone first), SIGHUP, SIGUSR1: the step
#              ends, a checkpoint and an "interrupted" log line are written, exit 128 + the signal
#   lock       a second writer of a run folder (--resume, or a new run on it) is refused naming the holder's pid;
#              the lock goes with its process (after kill -9 too)
#   log        a log on a full device (/dev/full) or past a file size limit (ulimit -f, SIGXFSZ ignored): the run
#              stops with a checkpoint, naming the system's reason; no half line; --resume goes on
#   divergence an infinite gradient norm (lr 10, 4 layers) with a finite loss stops the run, the log stays JSON
#   input      a uint16 shard labelled uint32 and a uint32 token 2^31-1 under --vocab 0: refused at once
#   folder     4100 checkpoints: infer, eval and --resume take the newest; paths over 4000 characters refused,
#              no folder left behind
#   grad-accum --grad-accum 2 x batch 2 with task rows (micro-batches with other target counts) = batch 4 at once
# Run from the repository root: bash tests/test_run_faults.sh  (needs train, infer, eval and the shipped shards)
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
TRAIN=${TRAIN:-./train}
T=tests/tmp/test_run_faults.$$
mkdir -p "$T"
export OMP_NUM_THREADS=1
TINY=(--pe rope --dim 32 --layers 1 --heads 2 --kv-heads 2 --ffn 64 --batch 2 --seq 16 --sample 0 --val "" --schedule constant --warmup 0 --decay-steps 0)

# wait_lines FILE N [PATTERN]: until FILE has at least N lines (that match PATTERN); 60 s at most, for a loaded
# machine; 1 if it never does
wait_lines() {
    local i
    for i in $(seq 1200); do
        [ -f "$1" ] && [ "$(grep -c -- "${3:-.}" "$1")" -ge "$2" ] && return 0
        sleep 0.05
    done
    return 1
}
# stop SIG PID [TARGET]: send SIG to TARGET (default PID), wait for PID's exit (60 s at most, then kill -9, so that a
# missed signal cannot leave a run going); its exit status in $rc. (A background job of a script starts with
# SIGINT ignored: a signal sent before train installs its handlers would be lost.)
stop() {
    kill -"$1" -- "${3:-$2}" 2>/dev/null
    local i
    for i in $(seq 600); do kill -0 "$2" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$2" 2>/dev/null && { echo "       pid $2 still running 60 s after SIG$1: killed"; kill -KILL -- "${3:-$2}"; }
    wait "$2"
    rc=$?
}
# every line of a JSONL file is one whole object and no number is inf or nan
json_ok() { [ -s "$1" ] && [ "$(tail -c 1 "$1" | od -An -c | tr -d ' ')" = '\n' ] && ! grep -qvE '^\{".*\}$' "$1" && ! grep -qiE '(inf|nan)[,}]' "$1"; }
# stopped_ok NAME DIR RC WANT: exit WANT, the log ends with the interrupted line of the newest checkpoint's step
stopped_ok() {
    local name=$1 dir=$2 got=$3 want=$4 last step
    last=$(tail -n 1 "$dir/train.jsonl" 2>/dev/null)
    step=$(echo "$last" | sed -nE 's/^\{"step": ([0-9]+), "interrupted": true\}$/\1/p')
    if [ "$got" -eq "$want" ] && [ -n "$step" ] && [ -f "$dir/model_$(printf %08d "$step").ckpt" ] &&
        [ -f "$dir/model_$(printf %08d "$step").state" ] && json_ok "$dir/train.jsonl"; then
        ok "$name: exit $got, checkpoint of step $step and the log's last line $last"
    else
        bad "$name: exit $got (want $want), last log line '$last', folder: $(ls "$dir" 2>/dev/null | tr '\n' ' ')"
    fi
}

# ---- signals
# the pipeline in its own process group; bash ignores TERM so that it reports train's exit ($PIPESTATUS)
P=$T/pipe
mkdir -p "$P"
P=$P setsid bash -c 'trap "" TERM; "$@" 2>"$P/err" | head -n 3 >"$P/head"; echo "${PIPESTATUS[0]}" >"$P/rc"' \
    bash "$TRAIN" "${TINY[@]}" --steps 1000000 --out "$P/run" </dev/null &
leader=$!
if wait_lines "$P/run/train.jsonl" 30; then
    stop TERM "$leader" -"$leader"
    rc=$(cat "$P/rc" 2>/dev/null || echo 999)
    stopped_ok "SIGTERM to the group of 'train | head -n 3' (the reader gone long before)" "$P/run" "$rc" 143
    [ "$(wc -l <"$P/head")" -eq 3 ] && grep -q "^signal: finishing this step" "$P/err" && grep -q "^stopped by SIGTERM" "$P/err" &&
        ok "head got its 3 lines; stderr says the step finishes and that SIGTERM stopped it" ||
        bad "pipe: $(wc -l <"$P/head") lines through the pipe; stderr: $(head -c 300 "$P/err" | tr '\n' '|')"
else
    kill -KILL -- -"$leader" 2>/dev/null; wait "$leader"
    bad "train | head -n 3: the run wrote no 30 log lines: it died when its reader left (rc $(cat "$P/rc" 2>/dev/null))"
fi
for sig in HUP USR1; do
    "$TRAIN" "${TINY[@]}" --steps 1000000 --out "$T/sig_$sig" >"$T/sig_$sig.out" 2>"$T/sig_$sig.err" </dev/null &
    pid=$!
    wait_lines "$T/sig_$sig/train.jsonl" 5
    stop "$sig" "$pid"
    want=$((128 + $(kill -l "$sig")))
    stopped_ok "SIG$sig" "$T/sig_$sig" "$rc" "$want"
done

# ---- lock
L=$T/locked
"$TRAIN" "${TINY[@]}" --steps 1000000 --out "$L" >"$T/lock_a.out" 2>"$T/lock_a.err" </dev/null &
holder=$!
wait_lines "$L/train.jsonl" 5
# (timeout: without the lock, the resume would train on beside the holder)
expect_error timeout "--resume of a running run" "in use: another ./train (pid $holder" 20 "$TRAIN" --resume "$L"
expect_error timeout "a new run on a running run's folder" "in use: another ./train (pid $holder" 20 "$TRAIN" "${TINY[@]}" --steps 3 --out "$L"
stop INT "$holder"
"$TRAIN" --resume "$L" --steps 1000000 >"$T/lock_b.out" 2>&1 </dev/null &
pid=$!
wait_lines "$T/lock_b.out" 3 "^step"
stop KILL "$pid" 2>/dev/null
"$TRAIN" --resume "$L" --steps 1000000 >"$T/lock_c.out" 2>&1 </dev/null &
pid=$!
if wait_lines "$T/lock_c.out" 3 "^step" && grep -q "^resumed from" "$T/lock_b.out" && grep -q "^resumed from" "$T/lock_c.out"; then
    ok "the lock ends with its holder: --resume after Ctrl-C, then again after kill -9 of that resume, both train"
else bad "resume after the holder ended: $(head -c 300 "$T/lock_b.out" "$T/lock_c.out" | tr '\n' '|')"; fi
stop INT "$pid"

# ---- log that cannot be written
"$TRAIN" "${TINY[@]}" --steps 5 --out "$T/full" --log /dev/full >"$T/full.out" 2>"$T/full.err" </dev/null
rc=$?
if [ "$rc" -eq 1 ] && grep -q "^error: cannot write the log '/dev/full': No space left on device; the run stops here (step 1 " "$T/full.err" &&
    [ -f "$T/full/model_00000001.ckpt" ] && ! grep -q "^step *2/" "$T/full.out"; then
    ok "--log /dev/full: exit 1 at step 1 naming ENOSPC, with a checkpoint of step 1"
else bad "--log /dev/full: exit $rc: $(head -c 400 "$T/full.err" | tr '\n' '|')"; fi
# ulimit -f: 64 KiB for every file; the model (20 KB) and state (39 KB) fit, the log of ~600 steps does not
SMALL=(--pe rope --dim 8 --layers 1 --heads 1 --kv-heads 1 --ffn 16 --batch 2 --seq 16 --sample 0 --val "" --schedule constant --warmup 0 --decay-steps 0)
( ulimit -f 64; trap '' XFSZ; exec "$TRAIN" "${SMALL[@]}" --steps 100000 --out "$T/fsize" >"$T/fsize.out" 2>"$T/fsize.err" </dev/null )
rc=$?
size=$(stat -c %s "$T/fsize/train.jsonl")
last=$(grep -o '^{"step": [0-9]*' "$T/fsize/train.jsonl" | tail -1 | tr -dc 0-9)
if [ "$rc" -eq 1 ] && grep -q "^error: cannot write the log .*: File too large; the run stops here" "$T/fsize.err" && json_ok "$T/fsize/train.jsonl" &&
    [ -f "$T/fsize/model_$(printf %08d $((last + 1))).ckpt" ]; then
    ok "a log past its file size limit ($size bytes): exit 1 naming EFBIG, every line whole, checkpoint of step $((last + 1))"
else bad "file size limit: exit $rc, log $size bytes ending '$(tail -c 40 "$T/fsize/train.jsonl")': $(head -c 300 "$T/fsize.err" | tr '\n' '|')"; fi
"$TRAIN" --resume "$T/fsize" --steps $((last + 3)) >"$T/fsize2.out" 2>&1 </dev/null
rc=$?
steps=$(grep -o '^{"step": [0-9]*, "loss"' "$T/fsize/train.jsonl" | tr -dc '0-9\n' | tail -n 3 | tr '\n' ' ')
[ "$rc" -eq 0 ] && json_ok "$T/fsize/train.jsonl" && [ "$steps" = "$last $((last + 2)) $((last + 3)) " ] &&
    ok "--resume goes on after it: steps $steps (the step that could not be logged is the missing one)" ||
    bad "resume after the size limit: exit $rc, last steps '$steps'"
# --resume drops a line that is not whole, also one glued to the next ({"step"{"step": 82, ...)
G=$T/glued
"$TRAIN" "${TINY[@]}" --steps 4 --ckpt-every 4 --out "$G" >/dev/null 2>&1 </dev/null
sed -i '2s/^/{"step"/' "$G/train.jsonl"
"$TRAIN" --resume "$G" --steps 5 >"$T/glued.out" 2>&1 </dev/null
steps=$(grep -o '^{"step": [0-9]*, "loss"' "$G/train.jsonl" | tr -dc '0-9\n' | tr '\n' ' ')
[ "$steps" = "1 3 4 5 " ] && json_ok "$G/train.jsonl" && ok "--resume drops a glued line ({\"step\"{\"step\": 2, ...}) and keeps the whole ones: steps $steps" ||
    bad "glued line on --resume: steps '$steps': $(head -3 "$G/train.jsonl" | tr '\n' '|')"

# ---- divergence: lr 10 on 4 layers makes the step-2 gradient norm overflow while the loss stays finite
"$TRAIN" "${TINY[@]}" --layers 4 --lr 10 --steps 5 --ckpt-every 1 --out "$T/diverge" >"$T/diverge.out" 2>"$T/diverge.err" </dev/null
rc=$?
if [ "$rc" -eq 1 ] && grep -q "^error: gradient norm is inf (loss [0-9.]*) at step 2: training diverged" "$T/diverge.err" &&
    grep -q "the last good weights: $T/diverge/model_00000001.ckpt (step 1)" "$T/diverge.err" &&
    [ ! -e "$T/diverge/model_00000002.ckpt" ] && json_ok "$T/diverge/train.jsonl"; then
    ok "an infinite gradient norm with a finite loss is divergence: exit 1, step 1's checkpoint named, the log valid JSON"
else bad "infinite norm: exit $rc: $(head -c 300 "$T/diverge.err" | tr '\n' '|') log: $(head -c 200 "$T/diverge/train.jsonl")"; fi

# ---- input (bounded: before the cap, the relabelled shard made a vocabulary of 8 million: minutes and 20 GB)
bounded() { ( ulimit -v 4000000; exec timeout 60 "$@" ); }
# the shipped uint16 shard relabelled uint32 (magic 20240801, half the count: sizes consistent)
poke32() { printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($3 & 255)) $((($3 >> 8) & 255)) $((($3 >> 16) & 255)) $((($3 >> 24) & 255)))" |
    dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
head -c $((1024 + 2 * 200000)) data/tinyshakespeare_train.bin >"$T/relabel.bin"
poke32 "$T/relabel.bin" 0 20240801
poke32 "$T/relabel.bin" 8 100000
start=$(date +%s%N)
expect_error bounded "a uint16 shard labelled uint32" "so --vocab 0 would make a vocabulary of" "$TRAIN" "${TINY[@]}" --steps 1 --train "$T/relabel.bin" --out ""
ms=$((($(date +%s%N) - start) / 1000000))
[ "$ms" -lt 5000 ] && ok "... refused after $ms ms, before any allocation" || bad "the relabelled shard took $ms ms to refuse"
# a uint32 shard: 300 tokens 0..99, the 150th 2^31-1
{ printf '\xa1\xd9\x34\x01\x01\x00\x00\x00\x2c\x01\x00\x00'; head -c 1012 /dev/zero
  for i in $(seq 0 299); do
      if [ "$i" -eq 150 ]; then printf '\xff\xff\xff\x7f'; else printf "$(printf '\\x%02x' $((i % 100)))\\x00\\x00\\x00"; fi
  done; } >"$T/big_token.bin"
expect_error bounded "uint32 token 2^31-1, --vocab 0" "holds token 2147483647, so --vocab 0 would make a vocabulary of 2147483648" \
    "$TRAIN" "${TINY[@]}" --steps 1 --train "$T/big_token.bin" --out ""
expect_error bounded "uint32 token 2^31-1, --vocab 1000" "holds token 2147483647, outside the vocabulary of 1000" \
    "$TRAIN" "${TINY[@]}" --steps 1 --vocab 1000 --train "$T/big_token.bin" --out ""

# ---- run folder: 4100 checkpoints, more than the 4096 the lookup once read (empty files: the newest is found by
# name, then refused as truncated); test_files lists 5000 through checkpoint_list itself
M=$T/many
mkdir -p "$M"
"$TRAIN" "${TINY[@]}" --steps 1 --out "$T/many_src" >/dev/null 2>&1 </dev/null
cp "$T/many_src/settings.txt" "$M/"
(cd "$M" && touch model_0000{0000..4099}.ckpt model_00004099.state)
expect_error ./infer "infer --ckpt a folder of 4100 checkpoints" "model_00004099.ckpt" --ckpt "$M" --prompt A --max-new 1
expect_error ./eval "eval ppl --ckpt a folder of 4100 checkpoints" "model_00004099.ckpt" ppl --ckpt "$M" --lengths 16 --samples 1
expect_error "$TRAIN" "--resume a folder of 4100 checkpoints" "model_00004099.ckpt" --resume "$M"
rm -rf "$M"
# paths: 4100 characters (41 components of 99) are refused before anything is made
long=$T/long
for i in $(seq 41); do long=$long/$(printf 'd%.0s' $(seq 99)); done
expect_error "$TRAIN" "--out of ${#long} characters" "--out: the path is ${#long} characters long; paths up to 4000" "${TINY[@]}" --steps 1 --out "$long"
expect_error "$TRAIN" "--log of ${#long} characters" "--log: the path is" "${TINY[@]}" --steps 1 --out "$T/longlog" --log "$long/train.jsonl"
expect_error ./infer "infer --ckpt of ${#long} characters" "--ckpt: the path is ${#long} characters long" --ckpt "$long" --prompt A
[ ! -e "$T/long" ] && [ ! -e "$T/longlog" ] && ok "no folder was made for the refused paths" || bad "a folder was left: $(ls -d "$T"/long* 2>/dev/null)"
# a folder name over the system's 255 bytes: mkdir fails, the folders made before it are removed
name=$(printf 'n%.0s' $(seq 300))
expect_error "$TRAIN" "--out with a 300-byte folder name" "File name too long" "${TINY[@]}" --steps 1 --out "$T/made/a/$name"
[ ! -e "$T/made" ] && ok "... and the folders made before it ($T/made/a) are removed" || bad "stray folders left: $(find "$T/made" | head -3)"

# ---- grad-accum: the step's loss and gradient are the mean over every target of both micro-batches. Reference:
# the same 4 rows as one batch (the loader and the task draws give the same rows), whose token mean
# test_tasks checks against single-target gradients. Seed 2 draws task rows into one micro-batch only (the old
# per-micro-batch mean gave loss 5.4919 there, batch 4 gives 5.6367).
for weight in token row; do
    A=(--dim 32 --layers 1 --heads 2 --kv-heads 2 --ffn 64 --seq 64 --sample 0 --val "" --steps 1 --seed 2 --mix mqar:0.4 --mix-weight $weight)
    "$TRAIN" "${A[@]}" --batch 2 --grad-accum 2 --out "$T/accum_$weight" >/dev/null 2>&1 </dev/null
    "$TRAIN" "${A[@]}" --batch 4 --out "$T/batch_$weight" >/dev/null 2>&1 </dev/null
    read -r la na < <(sed -nE 's/.*"loss": ([^,]*), "lr": [^,]*, "norm": ([^,]*),.*/\1 \2/p' "$T/accum_$weight/train.jsonl")
    read -r lb nb < <(sed -nE 's/.*"loss": ([^,]*), "lr": [^,]*, "norm": ([^,]*),.*/\1 \2/p' "$T/batch_$weight/train.jsonl")
    if awk -v a="$la" -v b="$lb" -v c="$na" -v d="$nb" 'BEGIN { x = (a - b) / b; y = (c - d) / d; if (x < 0) x = -x; if (y < 0) y = -y;
            exit !(a != "" && c != "" && x < 1e-6 && y < 1e-5) }'; then
        ok "--grad-accum 2 x batch 2 = batch 4 (--mix-weight $weight): loss $la = $lb, norm $na = $nb"
    else bad "--grad-accum 2 (--mix-weight $weight): loss $la vs $lb, norm $na vs $nb"; fi
done

# ... and against PyTorch: rope, seed 2, lr 0 (so the step-1 checkpoint holds the initial weights). Its 4 rows are
# two MQAR rows (4 answer targets each) in the first micro-batch and two text rows (64 each) in the second. The
# numbers: ref/model.py in float64 on those rows as one batch, CE mean over the 136 targets, loaded from that
# checkpoint (2026-12-08, torch 2.15): loss 5.790429919, gradient norm 0.651619997. The old per-micro-batch mean
# gave 5.7361665 / 1.0923214.
"$TRAIN" --pe rope --dim 32 --layers 1 --heads 2 --kv-heads 2 --ffn 64 --seq 64 --sample 0 --val "" --steps 1 --seed 2 \
    --mix mqar:0.4 --mix-weight token --lr 0 --batch 2 --grad-accum 2 --out "$T/accum_torch" >/dev/null 2>&1 </dev/null
read -r la na < <(sed -nE 's/.*"loss": ([^,]*), "lr": [^,]*, "norm": ([^,]*),.*/\1 \2/p' "$T/accum_torch/train.jsonl")
if awk -v a="$la" -v c="$na" 'BEGIN { x = (a - 5.790429919) / 5.790429919; y = (c - 0.651619997) / 0.651619997; if (x < 0) x = -x; if (y < 0) y = -y;
        exit !(a != "" && c != "" && x < 1e-6 && y < 1e-5) }'; then
    ok "--grad-accum 2, micro-batches of 8 and 128 targets: loss $la, norm $na = PyTorch's 5.790429919, 0.651619997"
else bad "--grad-accum 2 against PyTorch: loss $la (want 5.790429919), norm $na (want 0.651619997)"; fi

[ "${TEST_KEEP:-0}" = 1 ] || rm -rf "$T"
finish test_run_faults
