#!/usr/bin/env bash
# test_sanitizers.sh — tests/test_files and ./train built with AddressSanitizer + LeakSanitizer + UBSan (gcc,
# -fsanitize=address,undefined plus float-cast-overflow, which gcc's "undefined" leaves out), then run:
#   test_files (every reader against bad input, round trips, the SIGKILL crash test), a 3-step training run with
#   checkpoints, --resume and sampling, and the resume + bad-input sections of tests/test_cli.sh (every error path
#   of ./train). Any sanitizer report (memory error, leak, undefined behaviour) is a failure.
# Binaries: tests/tmp/san/. Run from anywhere: bash tests/test_sanitizers.sh   (CC_SAN=clang to use clang)
set -u
cd "$(dirname "$0")/.." || exit 1
NAME=test_sanitizers
S=tests/tmp/san
mkdir -p "$S"
. tests/lib.sh   # ok, bad, finish
finish_and_exit() {
    finish "$NAME"
    exit $?
}
CC_SAN=${CC_SAN:-gcc}
# shellcheck disable=SC2054  # the commas are part of -fsanitize=address,undefined
SAN_FLAGS=(-std=c11 -Wall -Wextra -I. -fsanitize=address,undefined -fsanitize=float-cast-overflow
           -fno-omit-frame-pointer -g -O1 -fopenmp)
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:allocator_may_return_null=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
REPORT_RE='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: (Address|Undefined|Leak)Sanitizer'

# a sanitizer report in FILE: print its first lines and the first frames that point into the project
show_report() {
    grep -n -m1 -E "$REPORT_RE" "$1" | sed 's/^/       /'
    grep -E '^ +#[0-9]+ .*(ropepp\.h|train\.c|tests/)' "$1" | head -6 | sed 's/^/       /'
}

if ! command -v "$CC_SAN" >/dev/null; then bad "$CC_SAN not found"; finish_and_exit; fi
build() {   # build OUT SRC
    if "$CC_SAN" "${SAN_FLAGS[@]}" "$2" -o "$1" -lm 2>"$1.build.log"; then
        ok "built $1 with $CC_SAN -fsanitize=address,undefined,float-cast-overflow -O1 -g"
        return 0
    fi
    bad "building $1 failed: $(head -c 600 "$1.build.log")"
    return 1
}

# ---- test_files
if build "$S/test_files" tests/test_files.c; then
    "$S/test_files" >"$S/test_files.log" 2>&1 &
    tf_pid=$!
    wait "$tf_pid"
    rc=$?
    rm -rf "tests/tmp/test_files.$tf_pid"   # left behind when a sanitizer stops it half-way
    summary=$(grep -E '^test_files: [0-9]+ passed, [0-9]+ failed$' "$S/test_files.log")
    if grep -Eq "$REPORT_RE" "$S/test_files.log"; then
        bad "test_files under sanitizers: sanitizer report (log: $S/test_files.log)"
        show_report "$S/test_files.log"
    elif [ -z "$summary" ] || [ "$rc" -ge 128 ]; then
        bad "test_files under sanitizers did not finish (exit $rc): $(tail -c 400 "$S/test_files.log")"
    else
        ok "test_files runs clean under ASan/LSan/UBSan ($summary; its own failures are reported by test_files)"
    fi
fi

# ---- train
if build "$S/train" train.c; then
    TINY=(--pe ropepp_ec --dim 32 --layers 1 --heads 2 --kv-heads 2 --ffn 64 --batch 2 --seq 16 --val-batches 2)
    rm -rf "$S/ck" "$S/log.jsonl"
    "$S/train" "${TINY[@]}" --steps 3 --ckpt-every 2 --ckpt-dir "$S/ck" --log "$S/log.jsonl" --sample 0 >"$S/train3.log" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ] && ! grep -Eq "$REPORT_RE" "$S/train3.log" && grep -q 'step *3/3' "$S/train3.log"; then
        ok "3-step tiny training run with checkpoints runs clean"
    else
        bad "3-step tiny training run: exit $rc"
        show_report "$S/train3.log"
    fi
    "$S/train" "${TINY[@]}" --steps 4 --ckpt-every 2 --ckpt-dir "$S/ck" --log "$S/log.jsonl" --resume --sample 24 --prompt "ROMEO:" >"$S/resume.log" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ] && ! grep -Eq "$REPORT_RE" "$S/resume.log" && grep -q 'resumed from' "$S/resume.log" && grep -q -- '---- sample' "$S/resume.log"; then
        ok "--resume for one more step, then sampling 24 tokens, runs clean"
    else
        bad "--resume + sampling: exit $rc"
        show_report "$S/resume.log"
    fi
    # every error path of ./train (and the resume comparison) under the sanitizers
    TRAIN="$S/train" SECTIONS="a b" TEST_KEEP=1 bash tests/test_cli.sh >"$S/test_cli.log" 2>&1 &
    cli_pid=$!
    wait "$cli_pid"
    cli_dir=tests/tmp/test_cli.$cli_pid
    summary=$(grep -E '^test_cli: [0-9]+ passed, [0-9]+ failed$' "$S/test_cli.log")
    reports=$(grep -l -E "$REPORT_RE" "$cli_dir"/*.err 2>/dev/null | wc -l)
    if [ "$reports" -eq 0 ] && [ -n "$summary" ]; then
        ok "tests/test_cli.sh sections a, b with the sanitized ./train: no sanitizer report ($summary)"
    else
        bad "tests/test_cli.sh sections a, b with the sanitized ./train: $reports run(s) with a sanitizer report${summary:+ ($summary)}"
        for f in $(grep -l -E "$REPORT_RE" "$cli_dir"/*.err 2>/dev/null | head -20); do
            where=$(grep -oE 'in [a-z_]+ [^ ]*(train\.c|ropepp\.h):[0-9]+' "$f" | grep -E 'in main |loader_init|model_init_from|state_read|kvcache' | sed -E 's|^in ([a-z_]+) .*/|\1 |' | sort -u | tr '\n' ',')
            echo "       $(basename "$f" .err): $(grep -m1 -E 'SUMMARY|runtime error' "$f") | at: $where"
        done
    fi
    rm -rf "$cli_dir"
fi
finish_and_exit
