#!/usr/bin/env bash
# cpu_ref_rename.sh IN.o OUT.o — OUT is IN (tests/cpu_ref.c compiled) with every symbol it defines renamed cpu_NAME
# (nm lists them, objcopy renames them), so that the header's CPU ops link beside the CUDA ones of the same names in
# tests/test_gpu. Used by the Makefile and by bench/attention's build scripts.
set -euo pipefail
syms=$(mktemp)
trap 'rm -f "$syms"' EXIT
nm --defined-only -g "$1" | awk 'NF == 3 { print $3, "cpu_" $3 }' > "$syms"
objcopy --redefine-syms="$syms" "$1" "$2"
