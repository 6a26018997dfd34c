#!/usr/bin/env bash
# bench/compare/seed_run.sh — one seed of compare v3 in one device call (<= 8 minutes on one H100 or H200): build
# (a no-op when the machine kept the last call's build), the corpus (cached in data/code*), then
# scripts/compare.sh --seed SEED (every arm at both stages and their evaluation; the checkpoints never leave the
# machine), then the seed's small files (CSV, JSON, logs, settings; no checkpoint) packed into $OUT/seedSEED.tgz.
#   bash bench/compare/seed_run.sh SEED          on the device: run(command="bash bench/compare/seed_run.sh 3")
# Here: tar xzf seed3.tgz -C results/compare3 puts it under results/compare3/seed3/ beside the other seeds, then
# scripts/compare.sh --out results/compare3 --stage report. COMPARE_OUT names the results folder on the device
# (results/compare3); extra flags for compare.sh (the same for every seed) go in COMPARE_FLAGS; COMPARE_TIMEOUT
# (seconds, 540) bounds compare.sh so that the packing still runs inside the call.
set -u -o pipefail
cd "$(dirname "$0")/../.."
SEED=${1:-}
case "$SEED" in ''|*[!0-9]*) echo "usage: bash bench/compare/seed_run.sh SEED   (SEED >= 1)" >&2; exit 1 ;; esac
CO=${COMPARE_OUT:-results/compare3}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
nvcc --version | tail -1
echo "gcc $(gcc -dumpfullversion), $(nproc) cores, $(date -u +%FT%TZ)"
t0=$(date +%s)
make -j"$(nproc)" -s eval data/docs2shards 2>&1 | grep -v '^make' | tail -4
make -j"$(nproc)" -s train_gpu eval_gpu 2>&1 | grep -v '^make' | tail -4
[ -x ./train_gpu ] && [ -x ./eval_gpu ] || { echo "error: build failed"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
t1=$(date +%s)
[ -s data/code_val.bin ] && [ -s data/code_info.txt ] || scripts/make_corpus.sh --out data/code > /dev/null || { echo "error: corpus failed"; exit 1; }
echo "corpus: $(( $(date +%s) - t1 )) s"
# shellcheck disable=SC2086
timeout "${COMPARE_TIMEOUT:-540}" scripts/compare.sh --out "$CO" --seed "$SEED" --stage all ${COMPARE_FLAGS:-}
rc=$?
echo "compare.sh exit $rc after $(( $(date +%s) - t0 )) s in this call"
grep -h "^time:" "$CO/seed$SEED"/*/eval/eval.log 2>/dev/null | awk '{ s[$2] += $3 } END { for (k in s) printf "eval %s: %.0f s in all\n", k, s[k] }'
if [ -n "${OUT:-}" ]; then
  # everything of the seed (config.txt, machine.txt, corpus_info.txt, each run's logs and eval/) but its checkpoints
  (cd "$CO" && find "seed$SEED" -type f ! -name '*.ckpt' ! -name '*.state' -size -2M) > /tmp/seed_files.txt
  tar czf "$OUT/seed$SEED.tgz" -C "$CO" -T /tmp/seed_files.txt
  ls -la "$OUT"
fi
exit $rc
