#!/usr/bin/env bash
# bench/compare/h200_run.sh — one device call of a whole compare run on one H200, as the v2 run of 2026-12-04 was
# made; it now calls the v3 scripts/compare.sh (every seed of the protocol, 6 by default, in turn; one seed per call
# is bench/compare/seed_run.sh). Build (a no-op when the machine kept the last call's build), then
# scripts/compare.sh --max-minutes M, which stops before a job that would not fit and continues where the last call
# stopped; then everything but the checkpoints goes to $OUT/compare2.tgz (~4 MB).
#   bash bench/compare/h200_run.sh [M]      M: minutes for compare.sh (default 8); repeat until "all stages done"
# The checkpoints stay on the machine, so the calls must follow each other while it is held (the device machine
# goes back 30 s after a call, and after 30 minutes held). COMPARE_OUT names the results folder
# (results/compare2); extra flags for compare.sh go in COMPARE_FLAGS.
set -u -o pipefail
cd "$(dirname "$0")/../.."
M=${1:-8}
CO=${COMPARE_OUT:-results/compare2}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
nvcc --version | tail -1
echo "gcc $(gcc -dumpfullversion), $(nproc) cores, $(date -u +%FT%TZ)"
t0=$(date +%s)
make -j16 -s 2>&1 | grep -v '^make' | tail -4
make -j16 -s train_gpu eval_gpu 2>&1 | grep -v '^make' | tail -4
[ -x ./train_gpu ] && [ -x ./eval_gpu ] || { echo "error: build failed"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
timeout $(( M * 60 + 40 )) scripts/compare.sh --out "$CO" --max-minutes "$M" ${COMPARE_FLAGS:-}
rc=$?
echo "compare.sh exit $rc after $(( $(date +%s) - t0 )) s in this call"
if [ -n "${OUT:-}" ]; then
  # the checkpoints (.ckpt and .state, ~230 MB a run) stay: only files under 4 MB (logs, CSVs, the report) travel
  find "$CO" -type f -size -4M > /tmp/compare2_files.txt
  tar czf "$OUT/compare2.tgz" -T /tmp/compare2_files.txt data/code_info.txt
  ls -la "$OUT"
fi
exit $rc
