#!/usr/bin/env bash
# tests/test_pe_places.sh — every position embedding of the header's table (./train --list-pe) is present in each
# place docs/ADDING_A_PE.md names that a script can check, ref/model.py's lists agree with the table, and the
# programs and scripts that take the facts from the table (scripts/compare.sh, infer.c) do not list PEs of their
# own. Run from the repository root after `make` (make test does both).
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

# docs/FORMATS.md: the checkpoint header's slot 9 lists every id with its name, and no other
fmt=$(grep -m1 '^| 9 | position embedding:' docs/FORMATS.md | sed -E 's/\(.*//' | grep -oE '[0-9]+ [a-z_]+' | paste -sd, -)
c_ids=$(echo "$list" | awk '!/^#/ { print $2" "$1 }' | paste -sd, -)
[ "$fmt" = "$c_ids" ] && ok "docs/FORMATS.md slot 9 lists every id of the table ($c_ids)" || bad "docs/FORMATS.md slot 9 '$fmt' vs table '$c_ids'"

# code with its comments removed (// to the end of the line, /* ... */ over lines), so that a commented-out line counts
# for nothing
uncomment() { awk '{ line = $0; out = "";
    while (line != "") {
      if (inc) { e = index(line, "*/"); if (e == 0) { line = "" } else { line = substr(line, e + 2); inc = 0 } continue }
      b = index(line, "/*"); s = index(line, "//")
      if (s > 0 && (b == 0 || s < b)) { out = out substr(line, 1, s - 1); line = "" }
      else if (b > 0) { out = out substr(line, 1, b - 1); line = substr(line, b + 2); inc = 1 }
      else { out = out line; line = "" }
    }
    print out }' "$1"; }
gpu_code=$(uncomment tests/test_gpu.cu)
shell_code() { sed -E 's/^[[:space:]]*#.*//' "$1" | sed -E 's/[[:space:]]#[^"'"'"']*$//'; }

# scripts/compare.sh: the PEs and their facts from --list-pe, no list of its own (three or more PE names in one line
# of code, as in "rope ropepp_eh ropepp_ec ..." or a case pattern rope|ropepp_eh|ropepp_ec)
cmp_code=$(shell_code scripts/compare.sh)
echo "$cmp_code" | grep -q -- '--list-pe' && ok "scripts/compare.sh reads --list-pe" || bad "scripts/compare.sh does not read --list-pe"
name_re=$(echo "$pes" | paste -sd'|')
listed=$(echo "$cmp_code" | awk -v re="^($name_re)\$" '{ n = 0; m = split($0, w, /[^a-z_]+/); for (i = 1; i <= m; i++) if (w[i] ~ re) n++; if (n >= 3) print NR": "$0 }')
[ -z "$listed" ] && ok "scripts/compare.sh names no list of PEs in its code" || bad "scripts/compare.sh lists PEs itself: $listed"
# infer.c: its hints come from pe_info / pe_scalable, not from PE_* ids
ids=$(uncomment infer.c | grep -nE 'PE_[A-Z]' | grep -v PE_COUNT)
[ -z "$ids" ] && ok "infer.c tests no PE_* id directly" || bad "infer.c names PE ids: $ids"

for pe in $pes; do
  up=$(echo "$pe" | tr a-z A-Z)
  row=$(echo "$list" | awk -v p="$pe" '$1 == p')
  imag=$(echo "$row" | awk '{ print $4 }'); halves=$(echo "$row" | awk '{ print $5 }')
  missing=""
  grep -q "^#.*\`$pe\`" docs/MATH.md || missing="$missing docs/MATH.md(heading)"
  grep -q "^    \"$pe\":" ref/make_fixtures.py || missing="$missing ref/make_fixtures.py(SPECS)"
  [ -f "tests/fixtures/$pe.fix" ] && [ -f "tests/fixtures/$pe.ckpt" ] || missing="$missing tests/fixtures/$pe.{fix,ckpt}"
  echo "$gpu_code" | grep -q "test_attention_case({PE_$up," || missing="$missing tests/test_gpu.cu(test_attention_case)"
  grep -q "^| \`$pe\` |" README.md || missing="$missing README.md(table)"
  if [ "$imag" = 1 ]; then   # ref/convert.py: an imag_mode read (detect_pe) and written (hf_config)
    grep -qE "^ +return \"$pe\"" ref/convert.py || missing="$missing ref/convert.py(detect_pe)"
    grep -qE "^ +rc = \{\"imag\": cfg.pe in \(.*\"$pe\"" ref/convert.py && grep -qE "^ +(el)?if cfg.pe == \"$pe\":" ref/convert.py ||
      missing="$missing ref/convert.py(hf_config imag_mode)"
  fi
  if [ "$imag" = 1 ] || [ "$halves" = 1 ]; then   # its own head counts in the attention benchmark
    uncomment bench/attention/bench_attention.cu | grep -q "mode == \"$pe\"" || missing="$missing bench/attention/bench_attention.cu(mode)"
  fi
  [ -z "$missing" ] && ok "$pe: in docs/MATH.md, make_fixtures.py, fixtures, test_gpu.cu, README.md$([ "$imag$halves" != 00 ] && echo ", convert.py, bench_attention.cu")" || bad "$pe missing from:$missing"
done
finish test_pe_places
