#!/usr/bin/env bash
# make_corpus.sh — the long-document corpus of the comparison (compare.sh v2), built on any Debian machine with
# the project's own tool: every *.py file of the Python standard library and every *.h under /usr/include, one
# BOS-prefixed document per file, ~5% of the files held out (data/docs2shards.c).
#   scripts/make_corpus.sh [--out PREFIX] [--pydir DIR] [--include DIR]
# Writes PREFIX_train.bin, PREFIX_val.bin, PREFIX_files.tsv and PREFIX_info.txt (Python version, the directories,
# the file list's hash, the tokens' hash, document counts). PREFIX: data/code. Nothing needs Python itself: the
# standard library's directory is found as the newest /usr/lib/python3.N (or --pydir) and the version read from
# its name (python3 --version is recorded too when python3 exists).
set -u -o pipefail
cd "$(dirname "$0")/.."
PREFIX=data/code; PYDIR=""; INC=/usr/include
while [ $# -gt 0 ]; do
  case "$1" in
    --out) PREFIX=$2; shift 2 ;;
    --pydir) PYDIR=$2; shift 2 ;;
    --include) INC=$2; shift 2 ;;
    --help|-h) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "error: unknown flag '$1'; see scripts/make_corpus.sh --help" >&2; exit 1 ;;
  esac
done
if [ -z "$PYDIR" ]; then
  PYDIR=$(ls -d /usr/lib/python3.[0-9]* 2>/dev/null | sort -V | tail -1)
  [ -n "$PYDIR" ] || { echo "error: no /usr/lib/python3.N: install python3 (apt-get install python3-minimal libpython3-stdlib) or pass --pydir" >&2; exit 1; }
fi
[ -d "$PYDIR" ] || { echo "error: --pydir $PYDIR is not a folder" >&2; exit 1; }
[ -d "$INC" ] || { echo "error: --include $INC is not a folder" >&2; exit 1; }
[ -x data/docs2shards ] || make -s data/docs2shards || { echo "error: cannot build data/docs2shards" >&2; exit 1; }
mkdir -p "$(dirname "$PREFIX")"
LIST="${PREFIX}_list.txt"
# the standard library without installed packages (site-packages / dist-packages); symlinks are not followed
{ find "$PYDIR" -name '*-packages' -prune -o -type f -name '*.py' -print; find "$INC" -type f -name '*.h' -print; } | LC_ALL=C sort > "$LIST"
out=$(./data/docs2shards --list "$LIST" --out "$PREFIX") || { echo "error: docs2shards failed" >&2; exit 1; }
echo "$out"
{
  echo "python stdlib: $PYDIR (version $(basename "$PYDIR" | sed 's/^python//'); $(command -v python3 > /dev/null && python3 --version 2>&1 || echo 'no python3 binary'))"
  echo "headers: $INC"
  echo "$out" | grep -E '^(wrote .*bin|files:|list hash|data hash)'
} > "${PREFIX}_info.txt"
rm -f "$LIST"
echo "wrote ${PREFIX}_info.txt"
