#!/usr/bin/env bash
# test_infer_cli.sh — ./infer as a user runs it: generation from a tiny trained checkpoint (from --prompt and from
# standard input; greedy decoding is repeatable; it stops at the context limit with a message and prints the
# KV-cache size and time per token), and bad input (missing/corrupt checkpoint, empty prompt, prompt longer
# than the context, invalid sampling values) exits non-zero with one error line, never a crash. A model padded past
# its tokenizer's vocabulary samples only the tokenizer's ids and stops at its end-of-text token.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
T=tests/tmp/test_infer_cli.$$
mkdir -p "$T"
trap 'rm -rf "$T"' EXIT
./train --dim 32 --layers 1 --heads 2 --kv-heads 2 --ffn 64 --batch 2 --seq 48 --steps 4 --val-batches 1 --sample 0 \
  --pe ropepp_eh --ckpt-dir "$T/ck" --log "" > "$T/train.txt" 2>&1 && ok "tiny ropepp_eh model trained" || bad "training"
ck="$T/ck/model_00000004.ckpt"

out=$(./infer --ckpt "$ck" --prompt "ROMEO:" --max-new 20 --temperature 0 2> "$T/err1.txt"); st=$?
[ $st -eq 0 ] && [ "${out:0:6}" = "ROMEO:" ] && [ ${#out} -ge 26 ] && ok "generates 20 bytes after the prompt" || bad "generation (exit $st): $out"
grep -q "ms per output token" "$T/err1.txt" && grep -q "KV cache [0-9]* bytes" "$T/err1.txt" && ok "prints time per output token and KV-cache bytes" || bad "no timing/KV line"
out2=$(./infer --ckpt "$ck" --prompt "ROMEO:" --max-new 20 --temperature 0 2> /dev/null)
[ "$out" = "$out2" ] && ok "greedy decoding is repeatable" || bad "greedy outputs differ"
out3=$(printf 'ROMEO:' | ./infer --ckpt "$ck" --max-new 20 --temperature 0 2> /dev/null)
[ "$out" = "$out3" ] && ok "the prompt can come from standard input" || bad "stdin prompt gave other text"
./infer --ckpt "$ck" --prompt "A" --max-new 100 --temperature 0.8 --top-k 5 --top-p 0.9 > /dev/null 2> "$T/err2.txt"; st=$?
[ $st -eq 0 ] && grep -q "context limit of 48" "$T/err2.txt" && ok "stops at the context limit (48) with a message" || bad "context limit (exit $st): $(cat "$T/err2.txt")"
./infer --ckpt "$ck" --prompt "A" --max-new 60 --ctx 96 --ntk-factor 2 > /dev/null 2> "$T/err3.txt" && ! grep -q "context limit" "$T/err3.txt" \
  && ok "--ctx 96 with --ntk-factor 2 generates past the training length" || bad "ntk extension: $(cat "$T/err3.txt")"

# a model that is not byte-level (vocab 300: GPT-2-style token ids) decoded through an llm.c tokenizer file
u32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $((($1 >> 8) & 255)) $((($1 >> 16) & 255)) $((($1 >> 24) & 255)); }
{ printf "$(u32 20240328)$(u32 2)$(u32 300)$(u32 299)"; head -c 1008 /dev/zero
  for i in $(seq 0 299); do p="<$i>"; printf "$(printf '\\x%02x' ${#p})%s" "$p"; done; } > "$T/tok.bin"
./train --dim 32 --layers 1 --heads 2 --kv-heads 2 --ffn 64 --batch 2 --seq 48 --steps 2 --val-batches 1 --sample 0 \
  --vocab 300 --ckpt-dir "$T/ck300" --log "" > "$T/train300.txt" 2>&1 || bad "training a vocab-300 model"
out=$(./infer --ckpt "$T/ck300/model_00000002.ckpt" --prompt-tokens 5,260 --tokenizer "$T/tok.bin" --max-new 3 --temperature 0 2> "$T/err300.txt")
echo "$out" | grep -qE '^<5><260>(<[0-9]+>){3}$' && ok "a vocab-300 model: --prompt-tokens in, text out through an llm.c tokenizer file ($out)" || bad "tokenizer decode: '$out' $(cat "$T/err300.txt")"
expect_error ./infer "byte prompt for a non-byte model (names --tokenizer FILE)" "not byte-level.*--prompt-tokens.*--tokenizer FILE" --ckpt "$T/ck300/model_00000002.ckpt" --prompt "hello"
# train --tokenizer: the samples of a token-id model as the file's pieces (here "w<id>|", the piece of 7 holding an
# ESC byte, printed \x1b), stored in settings.txt for --resume; refused for a byte-level model
{ printf "$(u32 20240328)$(u32 2)$(u32 300)$(u32 299)"; head -c 1008 /dev/zero
  for i in $(seq 0 299); do p="w$i|"; [ $i -eq 7 ] && p="w7\x1b|"; printf "$(printf '\\x%02x' $(printf "$p" | wc -c))$p"; done; } > "$T/tokw.bin"
./train --dim 32 --layers 1 --heads 2 --kv-heads 2 --ffn 64 --batch 2 --seq 48 --steps 2 --val-batches 1 --sample 8 --prompt "" \
  --vocab 300 --tokenizer "$T/tokw.bin" --out "$T/tk300" > "$T/tk300.txt" 2>&1
smp=$(sed -n '/^---- sample/{n;p}' "$T/tk300.txt")
echo "$smp" | grep -qE '^(w([0-9]+|7\\x1b)\|){8}$' && grep -q "^--tokenizer $T/tokw.bin" "$T/tk300/settings.txt" && ! grep -q $'\x1b' "$T/tk300.txt" \
  && ok "train --tokenizer prints a token-id model's sample as text ($smp), control bytes escaped, kept in settings.txt" || bad "train --tokenizer sample: '$smp' $(tail -2 "$T/tk300.txt")"
expect_error ./train "--tokenizer on a byte-level model" "byte-level.*drop the flag" --dim 32 --layers 1 --heads 2 --kv-heads 2 --ffn 64 --batch 2 --seq 48 --steps 1 --tokenizer "$T/tokw.bin" --out "$T/tkbytes"
# infer never writes a raw control byte: an ESC in the prompt comes out as \x1b, as train's samples print it
esc=$(./infer --ckpt "$ck" --prompt $'A\x1b[2J' --max-new 5 --temperature 0 2> /dev/null)
[[ "$esc" == 'A\x1b[2J'* ]] && ! grep -q $'\x1b' <<< "$esc" && ok "infer escapes control bytes (ESC as \\x1b)" || bad "infer's output of an ESC prompt: $(printf '%q' "$esc")"
# the same model (vocab 300) with a tokenizer of 257 tokens, end-of-text 256: at temperature 100 (nearly uniform,
# so 43 of 300 ids are padded: one draw in 7 without the bound) only ids < 257 come out, and the text ends at 256
{ printf "$(u32 20240328)$(u32 2)$(u32 257)$(u32 256)"; head -c 1008 /dev/zero
  for i in $(seq 0 256); do p="<$i>"; printf "$(printf '\\x%02x' ${#p})%s" "$p"; done; } > "$T/tok257.bin"
out=$(./infer --ckpt "$T/ck300/model_00000002.ckpt" --prompt-tokens 5 --tokenizer "$T/tok257.bin" --max-new 2000 --ctx 2048 --temperature 100 --seed 3 2> "$T/err257.txt")
ids=$(echo "$out" | sed -E 's/^<5>//' | grep -oE '<[0-9]+>|[^<>]+' | tr -d '<>' | tr '\n' ' ')
n=$(echo "$ids" | wc -w)
big=$(echo "$ids" | tr ' ' '\n' | awk 'NF && ($1 !~ /^[0-9]+$/ || $1 >= 256)' | wc -l)
[ "$n" -ge 30 ] && [ "$big" -eq 0 ] && grep -q "sampling ids < 257" "$T/err257.txt" && grep -q "end-of-text token 256" "$T/err257.txt" \
  && ok "padded model (vocab 300), tokenizer of 257: $n ids sampled at temperature 100, none >= 256, stopped at end-of-text 256" \
  || bad "padded vocabulary / end-of-text: $n ids, $big not in [0, 256): ${ids:0:300} | $(tr '\n' '|' < "$T/err257.txt")"
expect_error ./infer "corrupt tokenizer file" "magic" --ckpt "$T/ck300/model_00000002.ckpt" --prompt-tokens 5 --tokenizer "$T/ck300/model_00000002.ckpt"

long=$(head -c 100 data/tinyshakespeare.txt)
expect_error ./infer "missing checkpoint" "cannot open checkpoint .*; pass --ckpt a .ckpt file or a run folder" --ckpt "$T/none.ckpt" --prompt x
head -c 100 data/tinyshakespeare.txt > "$T/short.ckpt"; head -c 4000 data/tinyshakespeare.txt > "$T/text.ckpt"
expect_error ./infer "checkpoint shorter than its header" "truncated" --ckpt "$T/short.ckpt" --prompt x
expect_error ./infer "text file as checkpoint" "not a ropepp checkpoint" --ckpt "$T/text.ckpt" --prompt x
mkdir -p "$T/empty"; expect_error ./infer "empty checkpoint folder" "no checkpoint" --ckpt-dir "$T/empty" --prompt x
expect_error ./infer "empty prompt" "empty" --ckpt "$ck" --prompt ""
expect_error ./infer "prompt longer than the context" "longer than the context" --ckpt "$ck" --prompt "$long"
expect_error ./infer "negative temperature" "temperature" --ckpt "$ck" --prompt x --temperature -1
expect_error ./infer "top-p out of range" "top-p" --ckpt "$ck" --prompt x --top-p 1.5
expect_error ./infer "bad top-k" "top-k" --ckpt "$ck" --prompt x --top-k abc
expect_error ./infer "unknown flag" "unknown flag" --ckpt "$ck" --prompt x --bogus 1
expect_error ./infer "misspelled flag" "unknown flag '--promt' (did you mean --prompt?)" --ckpt "$ck" --promt hi
expect_error ./infer "misspelled last flag is named as unknown" "unknown flag '--max-nwe' (did you mean --max-new?)" --ckpt "$ck" --max-nwe
expect_error ./infer "token id out of range" "token id" --ckpt "$ck" --prompt-tokens 1,2,999
finish test_infer_cli
