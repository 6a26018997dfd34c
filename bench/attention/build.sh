#!/usr/bin/env bash
# bench/attention/build.sh — builds what bench/attention/run.sh needs (nvcc, no GPU needed; sm_90a, or GPU_ARCH=..), into
# tests/tmp/attn_build (ignored by git): the CUDA backend (bf16 and fp32), tests/test_gpu[_fp32] and the benchmark
# driver. Same flags as the Makefile, without -march=native so that the binaries run on another x86-64 machine.
# Then, on the GPU machine: BIN=tests/tmp/attn_build bash bench/attention/run.sh
set -e
cd "$(dirname "$0")/../.."
B=tests/tmp/attn_build
mkdir -p $B
ARCH=${GPU_ARCH:-90a}
NV="nvcc -O3 -std=c++17 -I. -Xcompiler -Wall -gencode=arch=compute_$ARCH,code=sm_$ARCH -lineinfo"
gcc -std=c11 -Wall -Wextra -I. -O3 -fno-math-errno -fassociative-math -fno-signed-zeros -fno-trapping-math -fopenmp \
    -c tests/cpu_ref.c -o $B/cpu_ref_plain.o
bash tests/cpu_ref_rename.sh $B/cpu_ref_plain.o $B/cpu_ref.o
$NV -c ropepp_cuda.cu -o $B/ropepp_cuda.o &
$NV -DROPEPP_FP32 -c ropepp_cuda.cu -o $B/ropepp_cuda_fp32.o &
wait
$NV tests/test_gpu.cu $B/cpu_ref.o $B/ropepp_cuda.o -o $B/test_gpu -lcublas -lcublasLt -lm -Xcompiler -fopenmp &
$NV -DROPEPP_FP32 tests/test_gpu.cu $B/cpu_ref.o $B/ropepp_cuda_fp32.o -o $B/test_gpu_fp32 -lcublas -lcublasLt -lm -Xcompiler -fopenmp &
$NV bench/attention/bench_attention.cu $B/ropepp_cuda.o -o $B/bench_attention -lcublas -lcublasLt &
wait
ls -la $B
