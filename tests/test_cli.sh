#!/usr/bin/env bash
# test_cli.sh — ./train as a user runs it.
#   (a) resume is bit-exact: 12 steps straight == 6 steps + --resume from the step-6 checkpoint (log lines, val
#       loss and the final checkpoint files compared byte for byte), for rope, ropepp_ec, ropepp_eh and fope
#   (b) bad input through the program: each case exits non-zero with one `error: ...` line naming the problem,
#       and never crashes; --help exits 0 and lists every flag the parser accepts
#   (c) kill -9 while checkpoints are being written, several times; --resume then continues from the newest
#       complete checkpoint and never from a .tmp file
#   (d) one rule for stored settings and flags (docs/SETTINGS.md): every flag of the run table given on --resume
#       is applied or refused as the table says; --resume alone restores batch and seq; --steps cannot make the
#       learning rate jump; --init-from applies --pi-factor/--ntk-factor and refuses --dim; eval ppl's "none" row
#       scores a PI-4 model as trained (= train's own validation loss); infer applies --pi-factor on top; a bad
#       validation token is found before step 1; the log is trimmed to the checkpoint on resume
# Run from anywhere: bash tests/test_cli.sh   (needs `make train data/tinyshakespeare_train.bin`)
# Env: TRAIN=path/to/train (default ./train), SECTIONS="a b c" (default all), TEST_KEEP=1 keeps tests/tmp/test_cli.PID
set -u
cd "$(dirname "$0")/.." || exit 1
NAME=test_cli
TRAIN=${TRAIN:-./train}
SECTIONS=${SECTIONS:-"a b c d"}
T=tests/tmp/test_cli.$$
mkdir -p "$T"
. tests/lib.sh   # ok, bad, finish (expect_error is this file's own, below: it runs $TRAIN through run)
finish_and_exit() {
    [ "${TEST_KEEP:-0}" = 1 ] || rm -rf "$T"
    finish "$NAME"
    exit $?
}
if [ ! -x "$TRAIN" ] || [ ! -f data/tinyshakespeare_train.bin ] || [ ! -f data/tinyshakespeare_val.bin ]; then
    bad "$TRAIN and data/tinyshakespeare_{train,val}.bin must exist (make train data/tinyshakespeare_train.bin)"
    finish_and_exit
fi
TINY=(--dim 32 --layers 1 --heads 2 --kv-heads 2 --ffn 64 --batch 2 --seq 16 --val-batches 2 --sample 0)
CRASH_RE='Segmentation|Aborted|core dumped|Bus error|Floating point exception|AddressSanitizer|LeakSanitizer|runtime error:|stack smashing|double free|free\(\)'

# run NAME ARGS...: run ./train, output in $T/NAME.out / NAME.err, exit code in $rc
# (a private --log and --ckpt-dir come first so that no test touches the user's log/ or checkpoints/; a test's own
# flags, later on the line, win)
run() {
    local name=$1
    shift
    "$TRAIN" --log "$T/$name.default.jsonl" --ckpt-dir "$T/$name.default_ckpt" "$@" >"$T/$name.out" 2>"$T/$name.err" </dev/null
    rc=$?
}

# no_crash NAME: the run neither died of a signal nor printed a sanitizer/libc crash report
no_crash() {
    [ "$rc" -lt 128 ] && ! grep -Eq "$CRASH_RE" "$T/$1.out" "$T/$1.err"
}

# expect_error NAME KEYWORD ARGS...: non-zero exit, one `error: ` line that contains KEYWORD, no crash
expect_error() {
    local name=$1 kw=$2
    shift 2
    run "$name" "$@"
    local nerr line
    nerr=$(grep -c '^error: ' "$T/$name.err")
    line=$(grep -m1 '^error: ' "$T/$name.err")
    if [ "$rc" -ne 0 ] && no_crash "$name" && [ "$nerr" -eq 1 ] && printf '%s' "$line" | grep -qiF -- "$kw"; then
        ok "$name: exit $rc, $line"
    elif ! no_crash "$name"; then
        bad "$name: exit $rc, crash or sanitizer report: $(grep -h -m1 -E "$CRASH_RE" "$T/$name.out" "$T/$name.err" | head -1) (first error line: $line)"
    else
        bad "$name: exit $rc, $nerr error line(s), want one containing '$kw'; stderr: $(head -c 600 "$T/$name.err" | tr '\n' '|')"
    fi
}

# the step lines of a JSONL log without the timing fields (ms, tok_s), for steps FROM..TO
step_lines() {
    grep '^{"step": [0-9]*, "loss"' "$1" | sed -E 's/, "ms": [^,]*, "tok_s": [^}]*//' |
        awk -v a="$2" -v b="$3" '{ s = $2; sub(",", "", s); if (s + 0 >= a && s + 0 <= b) print }'
}

# ------------------------------------------------------------------------------------------------ (a) resume
section_a() {
    local pe A B
    for pe in rope ropepp_ec ropepp_eh fope; do
        A=$T/resA_$pe
        B=$T/resB_$pe
        run "resume_${pe}_A" --pe "$pe" "${TINY[@]}" --steps 12 --ckpt-every 6 --ckpt-dir "$A" --log "$A.jsonl"
        if [ "$rc" -ne 0 ] || [ ! -f "$A/model_00000006.ckpt" ] || [ ! -f "$A/model_00000006.state" ]; then
            bad "resume $pe: the 12-step run failed or left no step-6 checkpoint (exit $rc): $(tail -c 400 "$T/resume_${pe}_A.err")"
            continue
        fi
        mkdir -p "$B"
        cp "$A/model_00000006.ckpt" "$A/model_00000006.state" "$A/settings.txt" "$B/"
        run "resume_${pe}_B" --pe "$pe" "${TINY[@]}" --steps 12 --ckpt-every 6 --resume --ckpt-dir "$B" --log "$B.jsonl"
        if [ "$rc" -ne 0 ]; then
            bad "resume $pe: --resume from step 6 failed (exit $rc): $(tail -c 400 "$T/resume_${pe}_B.err")"
            continue
        fi
        if grep -q "resumed from $B/model_00000006 at step 6" "$T/resume_${pe}_B.out"; then
            ok "resume $pe: the resumed run says it continues from model_00000006 at step 6"
        else
            bad "resume $pe: no 'resumed from $B/model_00000006 at step 6' line"
        fi
        local la lb
        la=$(step_lines "$A.jsonl" 7 12)
        lb=$(step_lines "$B.jsonl" 1 1000000)
        if [ -n "$la" ] && [ "$(printf '%s\n' "$la" | wc -l)" -eq 6 ] && [ "$la" = "$lb" ]; then
            ok "resume $pe: steps 7..12 (loss, lr, norm as %.17g) are byte-identical to the uninterrupted run"
        else
            bad "resume $pe: steps 7..12 differ; uninterrupted: $(printf '%s' "$la" | head -2 | tr '\n' '|') resumed: $(printf '%s' "$lb" | head -2 | tr '\n' '|')"
        fi
        if [ "$(grep '"val_loss"' "$A.jsonl")" = "$(grep '"val_loss"' "$B.jsonl")" ] && grep -q '"val_loss"' "$B.jsonl"; then
            ok "resume $pe: the final validation loss is byte-identical"
        else
            bad "resume $pe: validation loss differs: $(grep '"val_loss"' "$A.jsonl") vs $(grep '"val_loss"' "$B.jsonl")"
        fi
        if cmp -s "$A/model_00000012.ckpt" "$B/model_00000012.ckpt" && cmp -s "$A/model_00000012.state" "$B/model_00000012.state"; then
            ok "resume $pe: the step-12 checkpoint and state files are byte-identical"
        else
            bad "resume $pe: the step-12 checkpoint or state files differ"
        fi
    done
}

# ------------------------------------------------------------------------------------------------ (b) bad input
# write a little-endian int32 at byte offset OFF of FILE
poke32() {
    local v=$(( $3 & 0xffffffff ))
    printf '%b' "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((v & 255)) $(((v >> 8) & 255)) $(((v >> 16) & 255)) $(((v >> 24) & 255)))" |
        dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

section_b() {
    local D=$T/bad
    mkdir -p "$D"
    local V=(--val "")

    # --help lists every flag the parser accepts
    run help --help
    local missing="" f
    for f in $(grep -o '"--[a-z][a-z0-9-]*"' train.c | tr -d '"' | sort -u); do
        grep -q -- "$f\\b" "$T/help.out" || missing="$missing $f"
    done
    if [ "$rc" -eq 0 ] && [ -z "$missing" ] && [ -s "$T/help.out" ]; then
        ok "--help exits 0 and lists every flag of train.c ($(grep -o '"--[a-z][a-z0-9-]*"' train.c | sort -u | wc -l) flags)"
    else
        bad "--help: exit $rc, flags missing from the text:$missing"
    fi
    run help_short -h
    if [ "$rc" -eq 0 ] && grep -q -- "--resume" "$T/help_short.out"; then ok "-h exits 0 with the help text"; else bad "-h: exit $rc"; fi

    # command line
    expect_error flag_unknown "unknown flag" --frobnicate 3
    expect_error flag_misspelled "unknown flag '--stpes' (did you mean --steps?)" --stpes 3
    expect_error flag_equals "unknown flag '--pe=rope'; write it as --pe rope (the value is the next word)" --pe=rope "${TINY[@]}"
    expect_error cosine_long_warmup "--warmup 8 is longer than the run (--steps 6)" "${TINY[@]}" --schedule cosine --steps 6 --warmup 8
    expect_error flag_range_integers "--seed '-1' is not a number in [0, 9007199254740992]" "${TINY[@]}" --seed -1
    expect_error flag_misspelled_switch "did you mean --resume?" "${TINY[@]}" --resme
    if grep -q "did you mean" "$T/flag_unknown.err"; then bad "flag_unknown: a suggestion for a flag far from every name: $(cat "$T/flag_unknown.err")"; else ok "flag_unknown: no suggestion when no flag is within edit distance 2"; fi
    expect_error flag_unknown_last "unknown flag" "${TINY[@]}" --frobnicate
    expect_error flag_positional "unexpected argument" data/tinyshakespeare_train.bin
    expect_error flag_no_value "needs a value" "${TINY[@]}" --lr
    # every flag that takes a value, given last without one
    local wrong="" nflags=0
    for f in $(grep -o '"--[a-z][a-z0-9-]*"' train.c | tr -d '"' | sort -u); do
        case $f in --help | --resume | --profile | --task-bos | --list-pe) continue ;; esac
        nflags=$((nflags + 1))
        run "novalue$f" "$f"
        if [ "$rc" -eq 0 ] || ! no_crash "novalue$f" || ! grep -q "^error: .*needs a value" "$T/novalue$f.err"; then
            wrong="$wrong $f"
        fi
    done
    if [ -z "$wrong" ]; then
        ok "each of the $nflags value flags, given last without a value, says it needs a value"
    else
        bad "flags given last without a value that do not say 'needs a value':$wrong"
    fi
    expect_error lr_abc "--lr" --lr abc
    expect_error lr_empty "--lr" --lr ""
    expect_error lr_nan "--lr" --lr nan
    expect_error lr_huge "--lr" --lr 1e999
    expect_error lr_negative "--lr" --lr -0.1
    expect_error batch_zero "--batch" --batch 0
    expect_error batch_frac "--batch" --batch 1.5
    expect_error batch_suffix "--batch" --batch 12abc
    expect_error batch_overflow "--batch" --batch 99999999999999999999
    expect_error steps_negative "--steps" --steps -1
    expect_error seed_negative "--seed" --seed -1
    expect_error dim_zero "--dim" --dim 0
    expect_error pe_bogus "--pe" --pe bogus
    expect_error schedule_bogus "--schedule" --schedule bogus
    expect_error init_bogus "--init" --init bogus
    expect_error decay_gt_steps "--decay-steps" --steps 10 --decay-steps 20
    expect_error warmup_into_decay "--warmup" --steps 10 --warmup 9

    # impossible models
    expect_error heads_3_dim_32 "heads (3) must divide dim (32)" "${TINY[@]}" --heads 3 --kv-heads 1 --steps 1 "${V[@]}"
    expect_error kv_3_heads_4 "kv heads (3) must divide heads (4)" "${TINY[@]}" --heads 4 --kv-heads 3 --steps 1 "${V[@]}"
    expect_error eh_odd_kv "even" "${TINY[@]}" --pe ropepp_eh --heads 2 --kv-heads 1 --steps 1 "${V[@]}"
    expect_error eh_odd_heads "even" --pe ropepp_eh --dim 48 --heads 3 --kv-heads 1 --steps 1 "${V[@]}"
    expect_error fope_small_head "fope" "${TINY[@]}" --pe fope --dim 8 --heads 4 --kv-heads 2 --steps 1 "${V[@]}"
    expect_error partial_tiny_frac "rotary fraction" "${TINY[@]}" --pe partial --rotary-frac 0.01 --steps 1 "${V[@]}"
    expect_error pi_and_yarn "combined" "${TINY[@]}" --pe rope --pi-factor 2 --yarn-factor 2 --steps 1 "${V[@]}"
    expect_error ntk_on_alibi "scaling" "${TINY[@]}" --pe alibi --ntk-factor 2 --steps 1 "${V[@]}"

    # data
    expect_error data_missing "no data shard" "${TINY[@]}" --steps 1 --train "$D/nope.bin" "${V[@]}"
    expect_error data_missing_vocab "no data shard" "${TINY[@]}" --steps 1 --train "$D/nope.bin" --vocab 256 "${V[@]}"
    expect_error data_glob_nothing "no data shard" "${TINY[@]}" --steps 1 --train "$D/none_*.bin" --vocab 256 "${V[@]}"
    expect_error val_missing "no data shard" "${TINY[@]}" --steps 1 --val "$D/nope_val.bin" --vocab 256
    head -c 5000 data/tinyshakespeare_train.bin >"$D/trunc.bin"
    expect_error data_truncated "truncated" "${TINY[@]}" --steps 1 --train "$D/trunc.bin" "${V[@]}"
    expect_error data_truncated_vocab "truncated" "${TINY[@]}" --steps 1 --train "$D/trunc.bin" --vocab 256 "${V[@]}"
    head -c 100 data/tinyshakespeare_train.bin >"$D/short.bin"
    expect_error data_short "shorter" "${TINY[@]}" --steps 1 --train "$D/short.bin" --vocab 256 "${V[@]}"
    head -c 20000 data/tinyshakespeare_train.bin >"$D/magic.bin"
    poke32 "$D/magic.bin" 0 12345
    expect_error data_magic "magic" "${TINY[@]}" --steps 1 --train "$D/magic.bin" "${V[@]}"
    expect_error data_magic_vocab "magic" "${TINY[@]}" --steps 1 --train "$D/magic.bin" --vocab 256 "${V[@]}"
    head -c 20000 data/tinyshakespeare_train.bin >"$D/version.bin"
    poke32 "$D/version.bin" 4 7
    expect_error data_version "version" "${TINY[@]}" --steps 1 --train "$D/version.bin" "${V[@]}"
    # token 300 (0x012c) as the 4th token of the first batch
    head -c 20000 data/tinyshakespeare_train.bin >"$D/badtok.bin"
    poke32 "$D/badtok.bin" 8 9488
    printf '\x2c\x01' | dd of="$D/badtok.bin" bs=1 seek=$((1024 + 2 * 3)) conv=notrunc status=none
    expect_error data_token_ge_vocab "vocab" "${TINY[@]}" --steps 1 --train "$D/badtok.bin" --vocab 256 "${V[@]}"
    expect_error data_vocab_too_small "vocab" "${TINY[@]}" --steps 1 --vocab 64 "${V[@]}"
    expect_error seq_too_long "fewer" "${TINY[@]}" --steps 1 --seq 2000000 --batch 1 "${V[@]}"

    # checkpoints and resume
    expect_error resume_empty "no checkpoint" "${TINY[@]}" --steps 2 --resume --ckpt-dir "$D/empty_dir"
    mkdir -p "$D/empty_dir2"
    expect_error resume_empty2 "no checkpoint" "${TINY[@]}" --steps 2 --resume --ckpt-dir "$D/empty_dir2"
    expect_error init_from_missing "; pass --init-from a .ckpt file or a run folder" "${TINY[@]}" --steps 1 --init-from "$D/nope.ckpt"
    : >"$D/a_file"
    expect_error ckpt_dir_is_file "cannot write" "${TINY[@]}" --pe rope --steps 1 --ckpt-dir "$D/a_file/sub" "${V[@]}" --log ""
    expect_error log_unwritable "cannot write log" "${TINY[@]}" --steps 1 --log "$D/a_file/sub/log.jsonl" "${V[@]}"
    # a path under a regular file: "is a file, not a directory" (it said "File exists")
    expect_error log_under_file "a_file' is a file, not a directory" "${TINY[@]}" --steps 1 --log "$D/a_file/log.jsonl" "${V[@]}"
    expect_error out_is_file "a_file' is a file, not a directory" "${TINY[@]}" --steps 1 --out "$D/a_file" --log "" "${V[@]}"
    # --init-from an empty folder: the hint names train's own flag (train has no --ckpt)
    mkdir -p "$D/empty_init"
    expect_error init_from_empty "no checkpoint" "${TINY[@]}" --steps 1 --init-from "$D/empty_init" --out "$D/init_empty_out"
    if grep -q -- "--init-from DIR/model_" "$T/init_from_empty.err" && ! grep -qE -- "--ckpt([^-]|$)" "$T/init_from_empty.err"; then
        ok "--init-from an empty folder suggests --init-from DIR/model_NNNNNNNN.ckpt, not a --ckpt flag that train does not have"
    else bad "--init-from an empty folder: $(head -c 300 "$T/init_from_empty.err")"; fi
    # --mix errors name --mix once
    expect_error mix_unknown_task "--mix: unknown task 'bogus'" "${TINY[@]}" --steps 1 --mix bogus:0.1 "${V[@]}"
    grep -q -- "--mix: --mix" "$T/mix_unknown_task.err" && bad "--mix error repeats its prefix: $(cat "$T/mix_unknown_task.err")" || ok "the --mix error does not repeat its prefix"
    # --rotary-frac is partial's only: given for another PE it is refused, never dropped
    expect_error rotary_frac_rope "--rotary-frac 0.5 is used by --pe partial only" "${TINY[@]}" --pe rope --rotary-frac 0.5 --steps 1 --out "$D/rf_rope" "${V[@]}"
    expect_error rotary_frac_default_pe "--rotary-frac 1 is used by --pe partial only" "${TINY[@]}" --rotary-frac 1 --steps 1 --out "$D/rf_eh" "${V[@]}"
    [ ! -e "$D/rf_rope/settings.txt" ] && ok "the refused --rotary-frac wrote no run folder" || bad "a run folder was written for a refused --rotary-frac"
    run rotary_frac_partial "${TINY[@]}" --pe partial --rotary-frac 0.5 --steps 1 --val-every 0 --out "$D/rf_partial" "${V[@]}"
    if [ "$rc" -eq 0 ] && grep -qx -- "--rotary-frac 0.5" "$D/rf_partial/settings.txt" && grep -q " rot 8 " "$T/rotary_frac_partial.out"; then
        ok "--pe partial --rotary-frac 0.5: applied (rot 8 of head dim 16) and recorded in settings.txt"
    else bad "--pe partial --rotary-frac 0.5: exit $rc, $(grep -m1 '^model:' "$T/rotary_frac_partial.out")"; fi
    # samples of a byte-level model after a few steps: bytes outside printable ASCII (but newline, tab) as \xNN
    run sample_bytes --pe rope "${TINY[@]}" --steps 2 --val-every 0 --sample 400 --temperature 1 --prompt "$(printf 'A\x01\xc3')" --out "$D/sample_bytes" "${V[@]}"
    if [ "$rc" -eq 0 ] && ! LC_ALL=C grep -q '[^ -~	]' "$T/sample_bytes.out" "$D/sample_bytes/samples.txt" \
        && grep -q '\\x[0-9a-f][0-9a-f]' "$D/sample_bytes/samples.txt" && grep -qF 'A\x01\xc3' "$D/sample_bytes/samples.txt"; then
        ok "a byte-level sample (and its prompt) has no raw control or high bytes in the terminal output or samples.txt: they print as \\xNN"
    else bad "sample bytes: exit $rc; raw bytes: $(LC_ALL=C grep -c '[^ -~	]' "$T/sample_bytes.out" "$D/sample_bytes/samples.txt" | tr '\n' ' ')"; fi

    expect_error resume_no_dir "needs a run folder" "${TINY[@]}" --steps 2 --resume --ckpt-dir ""
    # --ckpt-dir "" writes no checkpoint; --profile prints where the step time went
    run no_ckpt --pe rope "${TINY[@]}" --steps 4 --ckpt-dir "" --log "" --profile "${V[@]}"
    if [ "$rc" -eq 0 ] && [ ! -e "$T/no_ckpt.default_ckpt" ] && ! grep -q "^saved" "$T/no_ckpt.out"; then
        ok "--ckpt-dir \"\" trains without writing a checkpoint"
    else bad "--ckpt-dir \"\": exit $rc or a checkpoint was written"; fi
    if grep -q "^profile over 2 steps" "$T/no_ckpt.out" && grep -q "^  attention bwd " "$T/no_ckpt.out" \
        && grep -q "^  adamw " "$T/no_ckpt.out" && grep -q "^  total " "$T/no_ckpt.out" \
        && grep -q "^  by kind: attention [0-9.]* | matmul [0-9.]* | other" "$T/no_ckpt.out"; then
        ok "--profile: a table over steps 3-4 with the attention backward, AdamW, total and by-kind rows"
    else bad "--profile: no profile table in the output"; fi

    local G=$D/good
    run good_run --pe rope "${TINY[@]}" --steps 4 --ckpt-every 2 --ckpt-dir "$G" --log "" "${V[@]}"
    if [ "$rc" -ne 0 ] || [ ! -f "$G/model_00000004.ckpt" ]; then
        bad "a 4-step run to make checkpoints for the resume cases failed (exit $rc)"
        return
    fi
    ok "a 4-step tiny run writes model_00000002 and model_00000004"
    local R
    R=$D/r_trunc; mkdir -p "$R"; cp "$G"/* "$R/"
    truncate -s -10 "$R/model_00000004.ckpt"
    expect_error resume_ckpt_truncated "truncated" --pe rope "${TINY[@]}" --steps 6 --resume --ckpt-dir "$R" --log "" "${V[@]}"
    R=$D/r_magic; mkdir -p "$R"; cp "$G"/* "$R/"
    poke32 "$R/model_00000004.ckpt" 0 0
    expect_error resume_ckpt_magic "magic" --pe rope "${TINY[@]}" --steps 6 --resume --ckpt-dir "$R" --log "" "${V[@]}"
    R=$D/r_nan; mkdir -p "$R"; cp "$G"/* "$R/"
    poke32 "$R/model_00000004.ckpt" 2000 -1
    expect_error resume_ckpt_nan "is corrupt" --pe rope "${TINY[@]}" --steps 6 --resume --ckpt-dir "$R" --log "" "${V[@]}"
    # one flipped byte in the header (the rope base's top byte), a tensor, the trailer: refused as corrupt by train,
    # infer and eval, naming the file (version 1 files had no checksum: 49 of 50 such flips loaded)
    local at where size
    size=$(stat -c %s "$G/model_00000004.ckpt")
    for at in 135 1100 $((size - 3)); do
        case $at in 135) where=header ;; 1100) where=wte ;; *) where=trailer ;; esac
        R=$D/r_flip_$where; mkdir -p "$R"; cp "$G"/* "$R/"
        printf '\x5a' | dd of="$R/model_00000004.ckpt" bs=1 seek="$at" conv=notrunc status=none
        expect_error "resume_flip_$where" "$R/model_00000004.ckpt is corrupt" --pe rope "${TINY[@]}" --steps 6 --resume --ckpt-dir "$R" --log "" "${V[@]}"
    done
    local prog
    for prog in infer eval; do
        if [ "$prog" = infer ]; then ./infer --ckpt "$R/model_00000004.ckpt" --prompt hi --max-new 2 >"$T/flip_$prog.out" 2>&1 </dev/null
        else ./eval ppl --ckpt "$R/model_00000004.ckpt" --data data/tinyshakespeare_val.bin --lengths 16 --samples 1 --out "$T/flip_eval" >"$T/flip_$prog.out" 2>&1 </dev/null; fi
        rc=$?
        if [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] && grep -q "^error: .*model_00000004.ckpt is corrupt" "$T/flip_$prog.out"; then
            ok "$prog refuses the checkpoint with a flipped trailer byte: $(grep -m1 '^error:' "$T/flip_$prog.out" | head -c 160)"
        else bad "$prog with a corrupt checkpoint: exit $rc, $(head -c 400 "$T/flip_$prog.out" | tr '\n' '|')"; fi
    done
    # a .state names its model file (step and checksum): another step's state, another run's state of the same
    # shape and a missing state are refused with what to do; the run's log is left as it was
    R=$D/r_state_step; mkdir -p "$R"; cp "$G"/* "$R/"
    cp "$R/model_00000002.state" "$R/model_00000004.state"
    expect_error resume_state_other_step "is the state of step 2, but its model file" --pe rope "${TINY[@]}" --steps 6 --resume --ckpt-dir "$R" --log "" "${V[@]}"
    run good_run_seed2 --pe rope "${TINY[@]}" --steps 4 --ckpt-every 2 --seed 2 --ckpt-dir "$D/good_seed2" --log "" "${V[@]}"
    R=$D/r_state_run; mkdir -p "$R"; cp "$G"/* "$R/"
    cp "$D/good_seed2/model_00000004.state" "$R/model_00000004.state"
    expect_error resume_state_other_run "belongs to another model file" --pe rope "${TINY[@]}" --steps 6 --resume --ckpt-dir "$R" --log "" "${V[@]}"
    R=$D/r_state_missing; mkdir -p "$R"; cp "$G"/* "$R/"
    printf '{"step": 1}\n{"step": 2}\n' >"$R/train.jsonl"
    rm "$R/model_00000004.state"
    expect_error resume_state_missing "has no state file beside it" --pe rope "${TINY[@]}" --steps 6 --resume --ckpt-dir "$R" --log "$R/train.jsonl" "${V[@]}"
    if grep -q -- "--init-from $R/model_00000004.ckpt" "$T/resume_state_missing.err" && [ "$(cat "$R/train.jsonl")" = "$(printf '{"step": 1}\n{"step": 2}')" ] \
        && [ -f "$R/model_00000004.ckpt" ] && ! grep -q "from step 0" "$T/resume_state_missing.out"; then
        ok "a missing .state: no restart from step 0, the log and checkpoints are left as they were, the hint names --init-from"
    else bad "a missing .state: $(head -c 300 "$T/resume_state_missing.out") / log now: $(head -c 200 "$R/train.jsonl")"; fi
    R=$D/r_state; mkdir -p "$R"; cp "$G"/* "$R/"
    poke32 "$R/model_00000004.state" 0 0
    expect_error resume_state_magic "magic" --pe rope "${TINY[@]}" --steps 6 --resume --ckpt-dir "$R" --log "" "${V[@]}"
    R=$D/r_state_trunc; mkdir -p "$R"; cp "$G"/* "$R/"
    truncate -s -4 "$R/model_00000004.state"
    expect_error resume_state_truncated "truncated" --pe rope "${TINY[@]}" --steps 6 --resume --ckpt-dir "$R" --log "" "${V[@]}"
    R=$D/r_state_empty; mkdir -p "$R"; cp "$G"/* "$R/"
    : >"$R/model_00000004.state"
    expect_error resume_state_empty "shorter" --pe rope "${TINY[@]}" --steps 6 --resume --ckpt-dir "$R" --log "" "${V[@]}"
    expect_error resume_other_dim "--dim" --pe rope "${TINY[@]}" --dim 64 --steps 6 --resume --ckpt-dir "$G" --log "" "${V[@]}"
    expect_error resume_other_pe "--pe" "${TINY[@]}" --pe alibi --steps 6 --resume --ckpt-dir "$G" --log "" "${V[@]}"
    expect_error resume_other_heads "--heads" --pe rope "${TINY[@]}" --heads 4 --kv-heads 2 --steps 6 --resume --ckpt-dir "$G" --log "" "${V[@]}"
    expect_error resume_other_vocab "--vocab" --pe rope "${TINY[@]}" --vocab 300 --steps 6 --resume --ckpt-dir "$G" --log "" "${V[@]}"
    # a flag the user did not give must not be blamed: only --pe (matching) plus non-shape flags
    R=$D/r_partial_flags; mkdir -p "$R"; cp "$G"/* "$R/"
    run resume_partial_flags --pe rope --batch 2 --seq 16 --sample 0 --steps 5 --resume --ckpt-dir "$R" --log "" "${V[@]}"
    if [ "$rc" -eq 0 ] && no_crash resume_partial_flags && grep -q "at step 4" "$T/resume_partial_flags.out"; then
        ok "resume with only a matching --pe (other shape flags left out) continues from step 4"
    else
        bad "resume with only a matching --pe (other shape flags left out): exit $rc: $(head -c 300 "$T/resume_partial_flags.err" | tr '\n' '|')"
    fi
    R=$D/r_noflags; mkdir -p "$R"; cp "$G"/* "$R/"
    run resume_no_shape_flags --batch 2 --seq 16 --sample 0 --steps 5 --resume --ckpt-dir "$R" --log "" "${V[@]}"
    if [ "$rc" -eq 0 ] && no_crash resume_no_shape_flags && grep -q "at step 4" "$T/resume_no_shape_flags.out"; then
        ok "resume with no shape flags continues from step 4 with the checkpoint's model"
    else
        bad "resume with no shape flags: exit $rc: $(head -c 300 "$T/resume_no_shape_flags.err" | tr '\n' '|')"
    fi
}

# ------------------------------------------------------------------------------------------------ (c) kill -9
# newest step in DIR that has both model_X.ckpt and model_X.state (what --resume may use), or empty
newest_complete() {
    local f s best=""
    for f in "$1"/model_*.ckpt; do
        [ -f "$f" ] || continue
        s=${f##*/model_}
        s=${s%.ckpt}
        [ -f "$1/model_$s.state" ] || continue
        best=$s
    done
    echo "$best"
}

section_c() {
    local K=$T/kill
    mkdir -p "$K"
    # ~1.9M parameters: 7 MB model + 15 MB state per checkpoint, every step
    local BIG=(--pe rope --dim 256 --layers 2 --heads 4 --kv-heads 4 --ffn 768 --batch 1 --seq 16 --sample 0 --val ""
               --vocab 256 --ckpt-every 1 --keep 2 --log "" --ckpt-dir "$K" --schedule constant --warmup 0 --decay-steps 0)
    local kills=0 midwrite=0 i f pid delays=(0.45 0.7 0.55 0.9 0.6 0.8) resume_flag=() crashed=0
    for i in 0 1 2 3 4 5; do
        resume_flag=()
        [ -f "$K/settings.txt" ] && resume_flag=(--resume)   # a run folder (maybe killed before its first checkpoint)
        OMP_NUM_THREADS=1 "$TRAIN" --log "$T/kill.default.jsonl" "${BIG[@]}" --steps 100000 "${resume_flag[@]}" >"$T/kill_$i.out" 2>"$T/kill_$i.err" </dev/null &
        pid=$!
        sleep "${delays[$i]}"
        if kill -0 "$pid" 2>/dev/null; then
            kill -9 "$pid"
            kills=$((kills + 1))
        fi
        wait "$pid" 2>/dev/null
        rc=$?
        [ "$rc" -eq 137 ] || { crashed=1; echo "       run $i ended with exit $rc: $(head -c 300 "$T/kill_$i.err" | tr '\n' '|')"; }
        for f in "$K"/*.tmp; do [ -e "$f" ] && { midwrite=$((midwrite + 1)); break; }; done
    done
    if [ "$crashed" -eq 0 ] && [ "$kills" -eq 6 ]; then
        ok "6 training runs (each resuming the last) were SIGKILLed while checkpointing every step ($midwrite left a .tmp file behind)"
    else
        bad "the kill loop: $kills of 6 runs were still alive to be killed; a run exited by itself (see above)"
    fi
    if [ "$midwrite" -gt 0 ]; then
        ok "at least one kill landed in the middle of a checkpoint write"
    else
        bad "no kill landed in the middle of a checkpoint write (no .tmp left); the test did not exercise anything"
    fi
    local newest
    newest=$(newest_complete "$K")
    if [ -z "$newest" ]; then
        bad "no complete checkpoint after the kills: $(cd "$K" && echo *)"
        return
    fi
    # decoys with larger step numbers that must never be picked: a half-written model next to a complete state,
    # and a lone state (written before its model)
    head -c 3000 "$K/model_$newest.ckpt" >"$K/model_99999999.ckpt.tmp"
    cp "$K/model_$newest.state" "$K/model_99999999.state"
    cp "$K/model_$newest.state" "$K/model_99999998.state"
    head -c 100 "$K/model_$newest.state" >"$K/model_99999997.state.tmp"
    local n=$((10#$newest))
    OMP_NUM_THREADS=1 run kill_final "${BIG[@]}" --steps $((n + 1)) --resume
    if [ "$rc" -eq 0 ] && no_crash kill_final && grep -q "resumed from $K/model_$newest at step $n" "$T/kill_final.out" &&
        grep -q "step *$((n + 1))/$((n + 1))" "$T/kill_final.out"; then
        ok "--resume after the kills continues from the newest complete checkpoint (step $n), ignoring .tmp files and lone states"
    else
        bad "--resume after the kills (newest complete: step $n): exit $rc: $(grep -m1 resumed "$T/kill_final.out") $(head -c 300 "$T/kill_final.err" | tr '\n' '|')"
    fi
}


# ------------------------------------------------------------------------------------- (d) settings rule
# the error line of NAME's stderr, or its exit code, for the messages below
first_error() { grep -m1 '^error: ' "$T/$1.err"; }

section_d() {
    local D=$T/rule base=$T/rule/base
    mkdir -p "$D"
    # base_copy DIR: the base run at its step-2 checkpoint (checkpoint, state, settings.txt) in a new folder DIR
    base_copy() { mkdir -p "$1" && cp "$base/model_00000002.ckpt" "$base/model_00000002.state" "$base/settings.txt" "$1/"; }
    # a run of 6 steps whose step-2 checkpoint every case resumes from (wsd: warmup 0, decay 1)
    run rule_base --pe rope "${TINY[@]}" --steps 6 --ckpt-every 2 --keep 5 --val-every 0 --out "$base" --log ""
    if [ "$rc" -ne 0 ] || [ ! -f "$base/model_00000002.ckpt" ] || [ ! -f "$base/settings.txt" ]; then
        bad "the base run for the settings rule failed (exit $rc): $(tail -c 300 "$T/rule_base.err")"; return
    fi
    # every row of the run table of docs/SETTINGS.md: flag, example value, expected outcome
    local rows=0 wrong="" flag value outcome dir
    while IFS='|' read -r _ flag _ value outcome _; do
        flag=$(echo "$flag" | tr -d ' `'); value=$(echo "$value" | sed -E 's/^ *`//; s/` *$//'); outcome=$(echo "$outcome" | tr -d ' ')
        [ "$flag" = "--log" ] && value="$D/other.jsonl"   # not the repository root
        rows=$((rows + 1))
        dir=$D/case$rows
        base_copy "$dir"
        if [ "$flag" = "--log" ]; then run "rule_case$rows" --resume "$dir" "$flag" "$value"
        else run "rule_case$rows" --resume "$dir" "$flag" "$value" --log ""; fi
        if [ "$outcome" = applied ]; then
            if [ "$rc" -eq 0 ] && grep -q "resumed from $dir/model_00000002 at step 2" "$T/rule_case$rows.out" &&
                grep -qxF -- "$flag $value" "$dir/settings.txt"; then :; else wrong="$wrong $flag(want applied: exit $rc $(first_error "rule_case$rows"))"; fi
        else
            if [ "$rc" -ne 0 ] && no_crash "rule_case$rows" && first_error "rule_case$rows" | grep -qF -- "$flag" &&
                ! grep -q "^step" "$T/rule_case$rows.out"; then :; else wrong="$wrong $flag(want refused: exit $rc)"; fi
        fi
    done < <(sed -n '/^| flag | `train --resume` | example/,/^$/p' docs/SETTINGS.md | grep '^| `--')
    if [ "$rows" -ge 20 ] && [ -z "$wrong" ]; then
        ok "--resume with each of the $rows run settings of docs/SETTINGS.md: applied (and stored in settings.txt) or refused as the table says"
    else bad "run settings on --resume ($rows rows):$wrong"; fi
    # a settings.txt written before --mix-weight existed resumes with the token mean those runs trained with
    dir=$D/legacy_mix_weight; base_copy "$dir"
    sed -i '/^--mix-weight /d' "$dir/settings.txt"
    run rule_legacy --resume "$dir" --log ""
    if [ "$rc" -eq 0 ] && grep -qxF -- "--mix-weight token" "$dir/settings.txt" && grep -qxF -- "--mix-weight row" "$base/settings.txt"; then
        ok "a settings.txt without --mix-weight (older runs) resumes with --mix-weight token; new runs store row"
    else bad "legacy --mix-weight: exit $rc, stored '$(grep mix-weight "$dir/settings.txt")' (base: '$(grep mix-weight "$base/settings.txt")')"; fi
    # a refused choice is named as the user writes it, here and in settings.txt
    dir=$D/choice_names; base_copy "$dir"
    sed -i 's/^--mix-weight row$/--mix-weight token/' "$dir/settings.txt"
    echo "--mix mqar:0.1" >> "$dir/settings.txt"
    run rule_names --resume "$dir" --mix-weight row --log ""
    if [ "$rc" -ne 0 ] && grep -q "error: --mix-weight row differs from the run .* (token there)" "$T/rule_names.err"; then
        ok "a refused --mix-weight on --resume is named row / token, not 1 / 0"
    else bad "refused --mix-weight message: $(head -2 "$T/rule_names.err")"; fi
    # the task-row flags without --mix would be dropped: refused, naming the flag
    local tf
    wrong=""
    for tf in "--mix-loss all" "--mix-weight token" "--task-bos 1" "--mqar-filler blank" "--mqar-kv 3"; do
        run rule_nomix --pe rope "${TINY[@]}" --steps 1 --out "" --log "" $tf
        if [ "$rc" -ne 0 ] && grep -q "error: ${tf% *} acts on the task rows of --mix, and this run has none" "$T/rule_nomix.err" &&
            ! grep -q "^step" "$T/rule_nomix.out"; then :; else wrong="$wrong ${tf% *}(exit $rc)"; fi
    done
    [ -z "$wrong" ] && ok "the task-row flags without --mix are refused, each named" || bad "task flags without --mix:$wrong"
    # the table lists every run setting that train.c's run_rules knows (a new one cannot skip the docs)
    local missing=""
    for f in $(sed -n '/^static const SettingRule run_rules\[\]/,/^};/p' train.c | grep -o '{"--[a-z0-9-]*"' | tr -d '{"'); do
        grep -q "^| \`$f\` |" docs/SETTINGS.md || missing="$missing $f"
    done
    if [ -z "$missing" ]; then ok "docs/SETTINGS.md lists every run setting of train.c's run_rules"
    else bad "run settings of train.c missing from docs/SETTINGS.md:$missing"; fi
    # the model flags on --resume: each differing one is refused, naming it
    local f v
    wrong=""
    for fv in "--pe alibi" "--dim 64" "--layers 2" "--heads 4" "--kv-heads 1" "--ffn 32" "--rope-base 500" \
              "--pi-factor 2" "--yarn-factor 2" "--yarn-orig-len 64" "--ntk-factor 2" "--norm-eps 0.001" "--init hf"; do
        f=${fv% *}; v=${fv#* }
        dir=$D/model_${f#--}; mkdir -p "$dir"; cp "$base/model_00000002."* "$base/settings.txt" "$dir/"
        run "rule_model${f}" --resume "$dir" "$f" "$v"
        [ "$rc" -ne 0 ] && first_error "rule_model${f}" | grep -qF -- "$f $v differs" || wrong="$wrong $f"
    done
    [ -z "$wrong" ] && ok "--resume refuses each of 13 model flags that differ from the checkpoint, naming it" || bad "model flags on --resume not refused:$wrong"
    # --rotary-frac on a rope run: refused on --resume and --init-from, whatever its value (rope has no fraction);
    # a rope run's settings.txt records none
    dir=$D/model_rotary; mkdir -p "$dir"; cp "$base/model_00000002."* "$base/settings.txt" "$dir/"
    for v in 0.5 1; do
        expect_error "rule_resume_rotary_$v" "--rotary-frac $v is used by --pe partial only" --resume "$dir" --rotary-frac "$v" --log ""
    done
    expect_error rule_init_rotary "--rotary-frac 0.5 is used by --pe partial only" --init-from "$base" "${TINY[@]}" --rotary-frac 0.5 --steps 1 --out "$D/init_rotary"
    grep -q -- "^--rotary-frac" "$base/settings.txt" && bad "a rope run's settings.txt records a rotary fraction: $(grep -- '^--rotary-frac' "$base/settings.txt")" \
        || ok "a rope run's settings.txt records no --rotary-frac (the model has none)"

    # fault: --resume without repeating --batch/--seq continued at the defaults
    dir=$D/noflags; mkdir -p "$dir"; cp "$base/model_00000002."* "$base/settings.txt" "$dir/"
    run rule_noflags --resume "$dir" --log ""
    if [ "$rc" -eq 0 ] && grep -q "batch 2 x seq 16 " "$T/rule_noflags.out" && grep -q "step     6/6" "$T/rule_noflags.out"; then
        ok "--resume DIR alone restores batch 2 x seq 16 and --steps 6 from the run (not the defaults 16 x 128, 1000)"
    else bad "--resume alone: exit $rc: $(grep -m1 '^data:' "$T/rule_noflags.out")"; fi
    # fault: raising --steps on a finished run made the learning rate jump from ~0 to the peak
    run rule_finished --pe rope "${TINY[@]}" --steps 6 --decay-steps 4 --val-every 0 --out "$D/finished" --log ""
    run rule_extend_finished --resume "$D/finished" --steps 12 --log ""
    if [ "$rc" -ne 0 ] && first_error rule_extend_finished | grep -q "changes the learning rate of step 4" && ! grep -q '^step' "$T/rule_extend_finished.out"; then
        ok "--steps 12 on a finished wsd run is refused: $(first_error rule_extend_finished | cut -c1-150)"
    else bad "--steps on a finished run: exit $rc $(first_error rule_extend_finished)"; fi
    # the rule for training on after the decay (docs/SETTINGS.md): --resume on the finished run prints the command of a
    # new stage, the refusal above names it too, and that command, run as printed, trains on from the run's weights
    run rule_extend_hint --resume "$D/finished" --log ""
    cmd=$(sed -n 's/^  \(\.\/train --init-from .*\)$/\1/p' "$T/rule_extend_hint.out")
    if [ "$rc" -eq 0 ] && [ "$cmd" = "./train --init-from $D/finished --steps 6 --batch 2 --seq 16" ] && first_error rule_extend_finished | grep -qF "./train --init-from $D/finished --steps 6 --batch 2 --seq 16"; then
        run rule_extend_stage ${cmd#./train } --sample 0 --val-batches 1 --out "$D/stage2" --log ""
        if [ "$rc" -eq 0 ] && grep -q "^initialised from $D/finished/model_00000006.ckpt (fresh optimizer)" "$T/rule_extend_stage.out" && [ -f "$D/stage2/model_00000006.ckpt" ]; then
            ok "a finished wsd run names the command that trains on ($cmd), and it runs"
        else bad "the printed next-stage command failed: exit $rc $(first_error rule_extend_stage)"; fi
    else bad "no next-stage command on --resume of a finished run: '$cmd' $(tail -2 "$T/rule_extend_hint.out")"; fi
    # checkpoints every 10% of --steps by default; a folder without one names the run and the runs that have one
    run rule_ckpt_default --pe rope "${TINY[@]}" --steps 20 --val-every 0 --out "$D/every10" --log ""
    [ "$rc" -eq 0 ] && grep -qx -- "--ckpt-every 2" "$D/every10/settings.txt" && [ "$(cd "$D/every10" && ls model_*.ckpt | tr '\n' ' ')" = "model_00000016.ckpt model_00000018.ckpt model_00000020.ckpt " ] \
        && ok "--ckpt-every defaults to 10% of --steps (2 of 20; --keep 3 leaves 16, 18, 20)" || bad "default --ckpt-every: $(ls "$D/every10")"
    mkdir -p "$D/runs/a" "$D/runs/b" && cp "$D/every10/model_00000020.ckpt" "$D/runs/a/" && touch "$D/runs/b/train.jsonl" && ln -sfn b "$D/runs/latest"
    run rule_no_ckpt --init-from "$D/runs/latest" --steps 1 --out "$D/nockpt"
    first_error rule_no_ckpt | grep -q "in the folder '$D/runs/latest' (the run b: its train.jsonl was written [0-9]* s ago, so it is likely still training.*runs with checkpoints: $D/runs/a;" \
        && ok "a run folder with no checkpoint yet: the error names the run, that it is likely still training, and the runs that have one" || bad "no-checkpoint error: $(first_error rule_no_ckpt)"
    # the two rates print with enough digits to differ (it said "(0.003 then, 0.003 now)"): a run that decays over
    # all its 100 steps, extended: step 2's rate 0.003 x 0.99975 would become the stable 0.003
    run rule_close_rates --pe rope "${TINY[@]}" --steps 100 --warmup 0 --decay-steps 100 --val-every 0 --out "$D/close" --log ""
    run rule_extend_close --resume "$D/close" --steps 200 --log ""
    local then now
    then=$(first_error rule_extend_close | sed -nE 's/.*\(([^ ]+) then, ([^ ]+) now\).*/\1/p')
    now=$(first_error rule_extend_close | sed -nE 's/.*\(([^ ]+) then, ([^ ]+) now\).*/\2/p')
    [ -n "$then" ] && [ -n "$now" ] && [ "$then" != "$now" ] && ok "the refusal shows the rates apart: $then then, $now now" \
        || bad "the refusal's rates do not differ in print: '$then' then, '$now' now"

    # --init-from: the scaling flags apply (they were dropped), shape flags that differ are refused
    run rule_init --init-from "$base" --pi-factor 4 --ntk-factor 2 --rope-base 500 "${TINY[@]}" --seq 32 --steps 1 --val-every 0 --out "$D/init" --log ""
    local hdr
    hdr=$(./infer --ckpt "$D/init" --prompt A --max-new 1 2>&1 >/dev/null | head -1)
    if [ "$rc" -eq 0 ] && echo "$hdr" | grep -q "trained at 32, rope base 500, pi 4, yarn 1, ntk 2"; then
        ok "--init-from with --seq 32 --rope-base 500 --pi-factor 4 --ntk-factor 2: the new checkpoint stores them ($hdr)"
    else bad "--init-from scaling flags: exit $rc, infer says: $hdr $(first_error rule_init)"; fi
    expect_error rule_init_dim "--dim 64 differs" --init-from "$base" "${TINY[@]}" --dim 64 --steps 1 --out "$D/init_dim"
    expect_error rule_init_pe "--pe alibi differs" --init-from "$base" "${TINY[@]}" --pe alibi --steps 1 --out "$D/init_pe"
    expect_error rule_init_pi_yarn "combined" --init-from "$D/init" "${TINY[@]}" --yarn-factor 2 --steps 1 --out "$D/init_yarn"
    # --init-from weights trained at --seq 16, continued at --seq 64 --yarn-factor 4: YaRN's original length is 16, the
    # length the weights were trained at (stored in slot 11, which the frequencies use: test_model checks them against
    # YaRN's formula); an explicit --yarn-orig-len is applied; without YaRN nothing is pinned
    local y want got
    for y in "16:--yarn-factor 4" "24:--yarn-factor 4 --yarn-orig-len 24" "0:"; do
        want=${y%%:*}
        # shellcheck disable=SC2086
        run rule_init_yarn_$want --init-from "$base" "${TINY[@]}" --seq 64 ${y#*:} --steps 1 --val-every 0 --out "$D/init_yarn_$want" --log ""
        got=$(od -A n -t d4 -j 44 -N 4 "$(ls "$D/init_yarn_$want"/model_*.ckpt 2>/dev/null | tail -1)" 2>/dev/null | tr -d ' ')
        if [ "$rc" -eq 0 ] && [ "$got" = "$want" ]; then ok "--init-from a --seq 16 model at --seq 64 ${y#*:}: yarn_orig_len $got stored"
        else bad "--init-from at --seq 64 ${y#*:}: exit $rc, yarn_orig_len '$got', want $want $(first_error rule_init_yarn_$want)"; fi
    done

    # eval ppl: "none" scores a model trained with --pi-factor 4 as trained; its value is train's own validation
    # loss on the same first window (1e-5: both float, summed in another order)
    local E=$D/pi4
    run rule_pi4 --pe rope --dim 32 --layers 1 --heads 2 --kv-heads 2 --ffn 64 --batch 1 --seq 32 --val-batches 1 --val-every 0 \
        --sample 0 --pi-factor 4 --steps 5 --out "$E" --log "$E.jsonl"
    ./eval ppl --ckpt "$E" --lengths 32 --samples 1 --scalings none,pi:4,pi:1 > "$T/rule_ppl.out" 2>&1
    local tv none p4 p1
    tv=$(grep '"val_loss"' "$E.jsonl" | tail -1 | sed -E 's/.*"val_loss": ([0-9.eE+-]+).*/\1/')
    none=$(grep '^rope,none,32,all,' "$E/eval/ppl_rope.csv" | cut -d, -f7)
    p4=$(grep '^rope,pi:4,32,all,' "$E/eval/ppl_rope.csv" | cut -d, -f7)
    p1=$(grep '^rope,pi:1,32,all,' "$E/eval/ppl_rope.csv" | cut -d, -f7)
    if awk -v a="$tv" -v b="$none" -v c="$p4" -v d="$p1" 'BEGIN { x = a - b; y = b - c; z = b - d; if (x < 0) x = -x; if (y < 0) y = -y; if (z < 0) z = -z;
            exit !(a != "" && b != "" && c != "" && d != "" && x < 1e-5 && y == 0 && z > 1e-4) }'; then
        ok "eval ppl on a PI-4 model: none ($none) = pi:4 ($p4) = train's validation loss ($tv); pi:1 turns PI off ($p1)"
    else bad "eval ppl on a PI-4 model: train val '$tv', none '$none', pi:4 '$p4', pi:1 '$p1'"; fi
    hdr=$(./infer --ckpt "$E" --prompt A --max-new 1 2>&1 >/dev/null | head -1)
    local hdr1
    hdr1=$(./infer --ckpt "$E" --prompt A --max-new 1 --pi-factor 1 --ntk-factor 2 2>&1 >/dev/null | head -1)
    if echo "$hdr" | grep -q "pi 4, yarn 1, ntk 1" && echo "$hdr1" | grep -q "pi 1, yarn 1, ntk 2"; then
        ok "infer keeps the stored PI 4 and applies --pi-factor 1 --ntk-factor 2 on top"
    else bad "infer scaling: '$hdr' / '$hdr1'"; fi

    # issue 13 section 3: a validation token outside the vocabulary is found before step 1, not after training
    head -c 20000 data/tinyshakespeare_val.bin >"$D/badval.bin"
    poke32 "$D/badval.bin" 8 9488
    printf '\x00\x01' | dd of="$D/badval.bin" bs=1 seek=$((1024 + 2 * 5000)) conv=notrunc status=none   # token 256
    expect_error rule_badval "validation data" "${TINY[@]}" --vocab 256 --val "$D/badval.bin" --val-every 0 --steps 3 --out "$D/badval"
    grep -q '^step' "$T/rule_badval.out" && bad "the bad validation token was found only after training" || ok "no step ran before the bad validation token was reported"

    # log trimming: a run cut after its step-2 checkpoint (steps 3..6 logged, then a half-written line) resumes
    # with each step logged once
    dir=$D/trim; mkdir -p "$dir"
    "$TRAIN" --pe rope "${TINY[@]}" --steps 6 --ckpt-every 2 --keep 5 --val-every 0 --out "$dir" >"$T/rule_trim_a.out" 2>&1 </dev/null
    rm "$dir"/model_0000000[456].*
    printf '{"step": 7, "lo' >>"$dir/train.jsonl"
    local before after
    before=$(grep -c '"loss"' "$dir/train.jsonl")
    "$TRAIN" --resume "$dir" >"$T/rule_trim_b.out" 2>"$T/rule_trim_b.err" </dev/null
    rc=$?
    after=$(grep -o '^{"step": [0-9]*, "loss"' "$dir/train.jsonl" | tr -dc '0-9\n' | tr '\n' ' ')
    if [ "$rc" -eq 0 ] && [ "$after" = "1 2 3 4 5 6 " ] && grep -q "dropped 6 lines past step 2" "$T/rule_trim_b.out" &&
        python_free_json_ok "$dir/train.jsonl"; then
        ok "resume trims the log to the checkpoint: steps $after once each (steps 3-6, the step-6 validation and the cut line were dropped, then redone)"
    else bad "log trimming: exit $rc, steps '$after' (before: $before step lines) $(grep dropped "$T/rule_trim_b.out")"; fi
}

# every line of a JSONL file is one whole object: starts with {" and ends with }
python_free_json_ok() { ! grep -qvE '^\{".*\}$' "$1"; }

for s in $SECTIONS; do
    case $s in
        a) section_a ;;
        b) section_b ;;
        c) section_c ;;
        d) section_d ;;
        *) bad "unknown section '$s'" ;;
    esac
done
finish_and_exit
