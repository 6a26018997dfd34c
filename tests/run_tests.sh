#!/usr/bin/env bash
# run_tests.sh — every CPU check of `make test`, in order; prints each program's lines and a closing total.
# Run through `make test` (which builds everything first). Exit status is non-zero if any check failed.
set -u
cd "$(dirname "$0")/.."
mkdir -p tests/tmp
total_pass=0
total_fail=0
failed_programs=""

run() {   # run NAME COMMAND...: runs it, adds its "NAME: N passed, M failed" line to the totals
    local name="$1"; shift
    echo "==== $name"
    local out status
    out=$("$@" 2>&1); status=$?
    echo "$out"
    local line p f
    line=$(echo "$out" | grep -E "^[A-Za-z_0-9.]+: [0-9]+ passed, [0-9]+ failed" | tail -n 1)
    if [ -z "$line" ]; then
        echo "FAIL - $name printed no closing line (exit $status)"
        total_fail=$((total_fail + 1)); failed_programs="$failed_programs $name"; return
    fi
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
    if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then total_fail=$((total_fail + 1)); fi
    if [ "$status" -ne 0 ] || [ "$f" -ne 0 ]; then failed_programs="$failed_programs $name"; fi
}

start=$(date +%s)
run test_ops ./tests/test_ops
run test_fast_paths ./tests/test_fast_paths
run test_fast_paths_float ./tests/test_fast_paths_float
run test_model ./tests/test_model
run test_model_float ./tests/test_model_float
run test_parity ./tests/test_parity
run test_parity_float ./tests/test_parity_float
run test_infer ./tests/test_infer
run test_tasks ./tests/test_tasks
run test_analysis ./tests/test_analysis
run test_corpus bash tests/test_corpus.sh
run test_infer_cli bash tests/test_infer_cli.sh
run test_eval bash tests/test_eval.sh
run test_eval_exact ./tests/test_eval_exact
run test_compare bash tests/test_compare.sh
run test_pe_places bash tests/test_pe_places.sh
run test_files ./tests/test_files
run test_settings ./tests/test_settings
run test_dist ./tests/test_dist
run test_dist_float ./tests/test_dist_float
run test_dist_cli bash tests/test_dist.sh
run test_cli bash tests/test_cli.sh
run test_run_faults bash tests/test_run_faults.sh
run test_sanitizers bash tests/test_sanitizers.sh
end=$(date +%s)
echo "===="
[ -n "$failed_programs" ] && echo "failed in:$failed_programs"
echo "make test took $((end - start)) s"
echo "tests: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
