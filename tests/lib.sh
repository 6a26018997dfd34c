# tests/lib.sh — what the shell tests share; source it from a test script run in the repository root.
#   ok MSG / bad MSG          one line per check, counted
#   expect_error PROG NAME KEYWORD ARGS...   PROG ARGS must exit non-zero (not by a signal) with an "error:" line
#                             that contains KEYWORD; standard input is /dev/null
#   finish NAME               the closing line "NAME: N passed, M failed" and the exit status
pass=0; fail=0
ok() { echo "ok   - $*"; pass=$((pass + 1)); }
bad() { echo "FAIL - $*"; fail=$((fail + 1)); }
expect_error() {
  local prog=$1 name=$2 key=$3; shift 3
  local out; out=$("$prog" "$@" < /dev/null 2>&1); local st=$?
  if [ $st -ne 0 ] && [ $st -lt 128 ] && echo "$out" | grep -q "error:.*$key"; then ok "$name: exit $st, $(echo "$out" | grep error: | head -1)"
  else bad "$name: exit $st, output: $out"; fi
}
finish() { echo "$1: $pass passed, $fail failed"; [ $fail -eq 0 ]; }
