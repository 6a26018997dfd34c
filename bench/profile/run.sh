#!/usr/bin/env bash
# bench/profile/run.sh — where a training step's GPU time goes: ./train_gpu --profile (device time between the
# ends of consecutive ops, cudaEvents, steps 3 on) for rope, ropepp_eh and ropepp_ec at the 376M shape (T 4096 and
# T 1024) and the default small shape, on random tokens. Writes bench/profile/<shape>_<pe>.txt and summary.md
# (and $OUT/profile.tgz of them when $OUT is set).
# Usage, from the repository root on the GPU machine (after make train_gpu):   bash bench/profile/run.sh
# Environment: SHAPES (default "376m_t4096 376m_t1024 small"), PES (default "rope ropepp_eh ropepp_ec"),
#              STEPS (default 10), WORK (default /tmp/ropepp_profile)
set -u -o pipefail
cd "$(dirname "$0")/../.." || exit 1
SHAPES=${SHAPES:-376m_t4096 376m_t1024 small}
PES=${PES:-rope ropepp_eh ropepp_ec}
STEPS=${STEPS:-10}
WORK=${WORK:-/tmp/ropepp_profile}
mkdir -p "$WORK"
[ -x ./train_gpu ] || { echo "error: ./train_gpu not built (make train_gpu)"; exit 1; }
declare -A ARGS
ARGS[376m_t4096]="--dim 1024 --layers 8 --heads 8 --kv-heads 4 --ffn 3584 --vocab 50304 --seq 4096 --batch 8"
ARGS[376m_t1024]="--dim 1024 --layers 8 --heads 8 --kv-heads 4 --ffn 3584 --vocab 50304 --seq 1024 --batch 32"
ARGS[small]="--dim 128 --layers 4 --heads 4 --kv-heads 2 --ffn 384 --vocab 256 --seq 128 --batch 16"
python3 bench/train/make_shard.py --vocab 50304 --tokens 2000000 --out "$WORK/rand_50304.bin" > /dev/null || exit 1
python3 bench/train/make_shard.py --vocab 256 --tokens 200000 --out "$WORK/rand_256.bin" > /dev/null || exit 1
OUTDIR=bench/profile
{
  echo "# train_gpu --profile, $(date -u +%Y-%m-%d)"
  echo
  echo "GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null); $(nvcc --version | tail -1)"
  echo "Command: bash bench/profile/run.sh (STEPS=$STEPS; random tokens; ms per step averaged over steps 3..$STEPS)"
  echo
} > "$OUTDIR/summary.md"
rc=0
for shape in $SHAPES; do
  for pe in $PES; do
    f="$OUTDIR/${shape}_${pe}.txt"
    echo "== $shape $pe"
    ./train_gpu ${ARGS[$shape]} --pe $pe --train "$WORK/rand_$([ $shape = small ] && echo 256 || echo 50304).bin" --val "" --steps "$STEPS" --warmup 0 --sample 0 \
      --ckpt-dir "" --log "" --profile > "$f" 2>&1 || { echo "FAIL $shape $pe"; tail -5 "$f"; rc=1; continue; }
    { echo "## $shape $pe"; echo; echo '```'; grep -E "^model:|^data:|^done:" "$f"; sed -n '/^profile over/,$p' "$f"; echo '```'; echo; } >> "$OUTDIR/summary.md"
    grep -E "^done:" "$f"
  done
done
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT"; tar czf "$OUT/profile.tgz" "$OUTDIR"/*.txt "$OUTDIR"/summary.md; fi
exit $rc
