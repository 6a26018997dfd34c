# bench/decode/decode.mk — builds decode_bench with the main Makefile's compilers and flags (as train_gpu is built):
#   make -f Makefile -f bench/decode/decode.mk decode_bench_gpu     CUDA: $(GPU_DEFS) (-DROPEPP_CUDA, and -DROPEPP_NCCL where NCCL was found), linked with ropepp_cuda.o
#   make -f Makefile -f bench/decode/decode.mk decode_bench_cpu     CPU (OpenMP), for a smoke test
# Binaries go to $(DECODE_OUT) (default /tmp/ropepp_bench) so that nothing untracked lands in the repository.
DECODE_OUT ?= /tmp/ropepp_bench
DECODE_CUDA_O ?= ropepp_cuda.o

.PHONY: decode_bench_gpu decode_bench_cpu
decode_bench_gpu: $(DECODE_OUT)/decode_bench_gpu
decode_bench_cpu: $(DECODE_OUT)/decode_bench_cpu

$(DECODE_OUT)/decode_bench_gpu: bench/decode/decode_bench.c ropepp.h $(DECODE_CUDA_O)
	@mkdir -p $(DECODE_OUT)
	$(CC) $(CFLAGS) $(GPU_DEFS) -c bench/decode/decode_bench.c -o $(DECODE_OUT)/decode_bench_gpu.o
	$(NVCC) $(NVCC_FLAGS) $(DECODE_OUT)/decode_bench_gpu.o $(DECODE_CUDA_O) -o $@ $(NVCC_LIBS) -Xcompiler -fopenmp

$(DECODE_OUT)/decode_bench_cpu: bench/decode/decode_bench.c ropepp.h
	@mkdir -p $(DECODE_OUT)
	$(CC) $(CFLAGS) bench/decode/decode_bench.c -o $@ $(LDLIBS)
