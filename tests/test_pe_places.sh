#!/usr/bin/env bash
# tests/test_pe_places.sh — every position embedding of the header's table (./train --list-pe) is present in each
# place docs/ADDING_A_PE.md names, and ref/model.py's lists agree with the table. Run from the repository root
# after `make` (make test does both).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh

list=$(./train --list-pe) || { bad "./train --list-pe failed"; finish test_pe_places; exit 1; }
pes=$(echo "$list" | awk '!/^#/ { print $1 }')
n=$(echo "$pes" | wc -l)
[ "$n" -ge 7 ] && ok "--list-pe prints $n position embeddings" || bad "--list-pe printed $n rows: $list"

# ref/model.py: PE_NAMES in table order (index = checkpoint code), ROPE_LIKE = the scalable ones
py_names=$(grep -m1 '^PE_NAMES' ref/model.py | grep -o '"[a-z_]*"' | tr -d '"' | tr '\n' ' ')
c_names=$(echo "$pes" | tr '\n' ' ')
[ "$py_names" = "$c_names" ] && ok "ref/model.py PE_NAMES = the table, in order" || bad "ref/model.py PE_NAMES '$py_names' vs table '$c_names'"
py_scal=$(grep -m1 '^ROPE_LIKE' ref/model.py | grep -o '"[a-z_]*"' | tr -d '"' | sort | tr '\n' ' ')
c_scal=$(echo "$list" | awk '!/^#/ && $8 == 1 { print $1 }' | sort | tr '\n' ' ')
[ "$py_scal" = "$c_scal" ] && ok "ref/model.py ROPE_LIKE = the scalable PEs ($c_scal)" || bad "ref/model.py ROPE_LIKE '$py_scal' vs scalable '$c_scal'"

for pe in $pes; do
  up=$(echo "$pe" | tr a-z A-Z)
  missing=""
  grep -q "^#.*\`$pe\`" docs/MATH.md || missing="$missing docs/MATH.md(heading)"
  grep -q "^    \"$pe\":" ref/make_fixtures.py || missing="$missing ref/make_fixtures.py(SPECS)"
  [ -f "tests/fixtures/$pe.fix" ] && [ -f "tests/fixtures/$pe.ckpt" ] || missing="$missing tests/fixtures/$pe.{fix,ckpt}"
  grep -q "test_attention_case({PE_$up," tests/test_gpu.cu || missing="$missing tests/test_gpu.cu(test_attention_case)"
  grep -q "^| \`$pe\` |" README.md || missing="$missing README.md(table)"
  [ -z "$missing" ] && ok "$pe: in docs/MATH.md, make_fixtures.py, fixtures, test_gpu.cu, README.md" || bad "$pe missing from:$missing"
done
finish test_pe_places
