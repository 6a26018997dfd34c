#!/usr/bin/env bash
# bench/multigpu/scaling.sh — issue "Multi-GPU runs": tokens/s per GPU at the paper's 376M shape (C 1024, L 8, H 8,
# KV 4, F 3584, V 50304), B 8 x T 4096 per GPU, on 1, 2, 4, 8 GPUs (those present) for rope, ropepp_eh, ropepp_ec;
# weak-scaling efficiency = (tokens/s per GPU on N) / (tokens/s on 1); then the paper's 776M shape (C 1536, L 12,
# H 12, KV 6, F 5376, V 128256, T 4096, B 8 per GPU) on the most GPUs: tokens/s per GPU and peak memory per GPU.
# 20 steps per run on random tokens, steps 4..20 averaged (rank 0's log: global tokens/s, divided by N).
# Usage on the multi-GPU machine, from the repository root:  bash bench/multigpu/scaling.sh   (GPUS="1 2 4 8", PES=...)
# Writes bench/multigpu/scaling_<date>.md (date, GPUs, driver, NCCL version, command, the tables).
set -u -o pipefail
cd "$(dirname "$0")/../.." || exit 1
source bench/multigpu/launch.sh
HAVE=$(nvidia-smi -L | wc -l)
GPUS=${GPUS:-1 2 4 8}
PES=${PES:-rope ropepp_eh ropepp_ec}
W=${OUT:-/tmp}/scaling; rm -rf "$W"; mkdir -p "$W"
make -j"$(nproc)" train_gpu > "$W/build.txt" 2>&1 || { tail "$W/build.txt"; exit 1; }
grep -q "✓ NCCL" "$W/build.txt" || { echo "error: train_gpu built without NCCL"; exit 1; }
python3 bench/train/make_shard.py --vocab 65536 --tokens 12000000 --out "$W/rand.bin" > /dev/null || exit 1
S376="--dim 1024 --layers 8 --heads 8 --kv-heads 4 --ffn 3584 --vocab 50304"
S776="--dim 1536 --layers 12 --heads 12 --kv-heads 6 --ffn 5376 --vocab 128256"
run() {   # run N PE SHAPE TAG: prints "tok_s_per_gpu peak_GiB"
    local n=$1 pe=$2 shape=$3 tag=$4
    launch "$n" ./train_gpu $shape --pe "$pe" --seq 4096 --batch 8 --steps 20 --train "$W/rand.bin" --val "" --ckpt-dir "" \
        --sample 0 --log "$W/$tag.jsonl" > "$W/$tag.txt" 2>&1 || { echo "- -"; return; }
    awk -v n="$n" -F'"tok_s": ' '/"tok_s"/ { split($2, a, "}"); k++; if (k >= 4) { s += a[1]; c++ } } END { if (c) printf "%.0f ", s / c / n; else printf "- " }' "$W/$tag.jsonl"
    grep -o '"peak_memory_bytes": [0-9]*' "$W/$tag.jsonl" | awk '{ printf "%.1f\n", $2 / 1073741824 }'
}
R=bench/multigpu/scaling_$(date -u +%Y-%m-%d).md
{
    echo "# Data-parallel scaling ($(date -u +%Y-%m-%d))"
    echo; echo "GPUs: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x $HAVE, driver $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)"
    echo "Command: GPUS='$GPUS' PES='$PES' bash bench/multigpu/scaling.sh"; echo
    echo "## 376M, B 8 x T 4096 per GPU: tokens/s per GPU (weak-scaling efficiency against 1 GPU)"; echo
    printf "| PE |"; for n in $GPUS; do [ "$n" -le "$HAVE" ] && printf " %s GPU |" "$n"; done; echo
    printf "|---|"; for n in $GPUS; do [ "$n" -le "$HAVE" ] && printf -- "---|"; done; echo
    for pe in $PES; do
        printf "| %s |" "$pe"; base=""
        for n in $GPUS; do
            [ "$n" -le "$HAVE" ] || continue
            read -r t m <<< "$(run "$n" "$pe" "$S376" "376m_${pe}_$n")"
            [ -z "$base" ] && base=$t
            printf " %s (%s) |" "$t" "$(awk -v a="$t" -v b="$base" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.1f%%", a / b * 100; else printf "-" }')"
        done; echo
    done
    top=1; for n in $GPUS; do [ "$n" -le "$HAVE" ] && top=$n; done
    echo; echo "## 776M (C 1536, L 12, H 12, KV 6, F 5376, V 128256), B 8 x T 4096 per GPU, $top GPUs"; echo
    echo "| PE | tokens/s per GPU | peak memory per GPU (GiB, tensors and scratch) |"; echo "|---|---|---|"
    for pe in $PES; do read -r t m <<< "$(run "$top" "$pe" "$S776" "776m_${pe}_$top")"; echo "| $pe | $t | $m |"; done
    echo; echo "$(grep -o 'NCCL [0-9.]*' "$W"/376m_*_"$top".txt 2>/dev/null | head -1 | cut -d: -f2)"
} | tee "$R"
