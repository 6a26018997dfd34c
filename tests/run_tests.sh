#!/usr/bin/env bash
# run_tests.sh — every CPU check of `make test` (tests/tests.txt, in its order); prints each program's lines and a
# closing total. Run through `make test` (which builds everything first). Exit status is non-zero if any check failed.
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
# tests/tests.txt: one line per test (name, source, C flags); a .c was built by make as tests/NAME
mapfile -t lines < <(sed -e 's/#.*//' tests/tests.txt)
for line in "${lines[@]}"; do
    read -r name src _ <<< "$line"
    case "$src" in
    *.c) run "$name" "./tests/$name" ;;
    *.sh) run "$name" bash "$src" ;;
    "") ;;
    *) echo "tests/tests.txt: $name: source $src is neither .c nor .sh"; total_fail=$((total_fail + 1)); failed_programs="$failed_programs $name" ;;
    esac
done
end=$(date +%s)
echo "===="
[ -n "$failed_programs" ] && echo "failed in:$failed_programs"
echo "make test took $((end - start)) s"
echo "tests: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
