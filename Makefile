# ropepp — build everything that needs only a C compiler with `make`; run every CPU check with `make test`.
#   make                 CPU programs (train, infer, eval, data/text2shards, data/docs2shards), the default data shards, the test programs
#   make programs        the same without the test programs (README's quick start: about a third of make's time)
#   make test            gradient checks, PyTorch parity fixtures, resume and bad-input tests (CPU only)
#   make train_gpu       the CUDA build of train.c (needs nvcc)      make test_gpu   CPU<->GPU parity (needs a GPU)
#   make gpu             every GPU program: train_gpu, train_gpu_fp32, infer_gpu, eval_gpu and the GPU tests (compile only)
#   make fuzz            libFuzzer on the shard and checkpoint readers (needs clang)
#   make fixtures        regenerate tests/fixtures from the PyTorch reference (needs torch)
# Options: NO_OMP=1 (no OpenMP), NO_BLAS=1 (plain matmul loops instead of OpenBLAS), CC=clang, GPU_ARCH=90 (compute
#          capability for nvcc; 90a = Hopper with wgmma/TMA, the default on a Hopper GPU; other targets fall back to the
#          mma.sync attention), FUZZ_SECONDS=60, NCCL_HOME=DIR (where include/nccl.h and lib/libnccl.so.2 are; e.g.
#          pip's nvidia-nccl-cu13), NO_NCCL=1

ifeq ($(origin CC),default)
  CC = gcc
endif
comma := ,
CFLAGS_BASE = -std=c11 -Wall -Wextra -I.
OPT = -O3 -march=native -fno-math-errno -fassociative-math -fno-signed-zeros -fno-trapping-math
LDLIBS = -lm

# OpenMP: detected, with a visible line; NO_OMP=1 turns it off.
ifeq ($(NO_OMP),1)
  OMP_FLAGS = -Wno-unknown-pragmas
  $(info ✗ OpenMP off (NO_OMP=1): CPU programs run on one core)
else
  OMP_OK := $(shell printf '#include <omp.h>\nint main(void){return omp_get_max_threads() < 1;}\n' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo yes)
  ifeq ($(OMP_OK),yes)
    OMP_FLAGS = -fopenmp
    $(info ✓ OpenMP found ($(CC) -fopenmp): CPU programs use every core)
  else
    OMP_FLAGS = -Wno-unknown-pragmas
    $(info ✗ OpenMP not found for $(CC): CPU programs run on one core (install libomp-dev for clang))
  endif
endif

# BLAS: OpenBLAS's cblas_sgemm / cblas_dgemm for the CPU matmuls, detected, with a visible line; NO_BLAS=1 keeps
# the plain loops of ropepp.h (the readable reference). The OpenMP flavour of OpenBLAS is preferred: it shares
# OpenMP's threads, where the pthreads flavour's own threads and OpenMP's spin against each other between ops
# (measured 1.5-2x slower steps on 2 cores). Debian/Ubuntu: apt-get install libopenblas-openmp-dev.
# BLAS_DIR=path picks the folder of another libopenblas.so.
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
BLAS_DIR ?= $(if $(filter -fopenmp,$(OMP_FLAGS)),$(wildcard /usr/lib/$(MULTIARCH)/openblas-openmp))
BLAS_PROBE_SRC = '\#include <cblas.h>\n\#include <stdio.h>\nint main(void){float a=1,b=1,c=0; cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasNoTrans,1,1,1,1.0f,&a,1,&b,1,0.0f,&c,1); printf("%%d", c == 1 ? openblas_get_parallel() : -1); return 0;}\n'
ifeq ($(NO_BLAS),1)
  BLAS_FLAGS =
  BLAS_LIBS =
  $(info ✗ BLAS off (NO_BLAS=1): CPU matmuls use the plain loops)
else
  BLAS_LIBS = $(if $(BLAS_DIR),-L$(BLAS_DIR) -Wl$(comma)-rpath$(comma)$(BLAS_DIR)) -lopenblas
  NVCC_BLAS_LIBS = $(if $(BLAS_DIR),-L$(BLAS_DIR) -Xlinker -rpath$(comma)$(BLAS_DIR)) -lopenblas
  BLAS_PARALLEL := $(shell printf $(BLAS_PROBE_SRC) | $(CC) -x c - -o /tmp/ropepp_blas_probe_$$$$ $(BLAS_LIBS) 2>/dev/null && /tmp/ropepp_blas_probe_$$$$; rm -f /tmp/ropepp_blas_probe_$$$$)
  ifeq ($(BLAS_PARALLEL),2)
    BLAS_FLAGS = -DROPEPP_BLAS
    $(info ✓ OpenBLAS found, OpenMP flavour ($(strip $(BLAS_LIBS))): CPU matmuls use cblas_sgemm / cblas_dgemm)
  else ifneq ($(filter 0 1,$(BLAS_PARALLEL)),)
    BLAS_FLAGS = -DROPEPP_BLAS
    $(info ✓ OpenBLAS found ($(strip $(BLAS_LIBS))), $(if $(filter 1,$(BLAS_PARALLEL)),pthreads flavour$(if $(filter -fopenmp,$(OMP_FLAGS)),: its threads contend with OpenMP's; install libopenblas-openmp-dev for faster steps),single-threaded))
  else
    BLAS_FLAGS =
    BLAS_LIBS =
    NVCC_BLAS_LIBS =
    $(info ✗ OpenBLAS not found: CPU matmuls use the plain loops, 2-3x slower (install libopenblas-openmp-dev))
  endif
endif
CFLAGS = $(CFLAGS_BASE) $(OPT) $(OMP_FLAGS) $(BLAS_FLAGS)
LDLIBS += $(BLAS_LIBS)

# CUDA: detected; GPU targets are skipped with a reason when nvcc is missing.
NVCC ?= $(shell command -v nvcc 2>/dev/null)
ifeq ($(GPU_ARCH),)
  # detected from the GPU; Hopper (9.0) gets sm_90a, which the wgmma + TMA attention (cuda/attention_sm90.cuh) needs
  GPU_ARCH := $(shell nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '. ' | sed 's/^90$$/90a/')
  ifeq ($(GPU_ARCH),)
    GPU_ARCH := 90
  endif
endif
# the nvcc and NCCL lines only where they matter: the NCCL line for a GPU target, the missing nvcc for a plain
# `make` (a GPU target without nvcc says so itself, check_nvcc); `make train` prints neither
GPU_GOALS := $(filter train_gpu train_gpu_fp32 infer_gpu eval_gpu gpu test_gpu tests/test_gpu tests/test_gpu_fp32 tests/test_infer_gpu ropepp_cuda.o ropepp_cuda_fp32.o,$(MAKECMDGOALS))
ifeq ($(NVCC),)
  ifeq ($(filter-out all,$(MAKECMDGOALS)),)
    $(info ✗ nvcc not found: GPU targets (train_gpu, infer_gpu, eval_gpu, test_gpu) are skipped; install the CUDA toolkit for them)
  endif
endif
# --default-stream per-thread: a stream that CUDA graphs can capture (the decode step of infer_gpu)
NVCC_FLAGS = -O3 -std=c++17 -I. -Xcompiler -Wall -gencode=arch=compute_$(GPU_ARCH),code=sm_$(GPU_ARCH) -lineinfo --default-stream per-thread
NVCC_LIBS = -lcublas -lcublasLt -lm
GPU_DEFS = -DROPEPP_CUDA

# NCCL: data parallelism in train_gpu (cuda/dist.cuh). Looked for under NCCL_HOME, next to nvcc, /usr/local, /usr
# (a folder with include/nccl.h and libnccl.so.2 in lib, lib64 or lib/x86_64-linux-gnu); without it every GPU
# program still builds, single-GPU.
ifneq ($(NVCC),)
  ifneq ($(NO_NCCL),1)
    CUDA_ROOT := $(patsubst %/bin/nvcc,%,$(realpath $(NVCC)))
    NCCL_FOUND := $(shell for d in $(NCCL_HOME) $(CUDA_ROOT) /usr/local /usr; do [ -f $$d/include/nccl.h ] || continue; \
                    for l in lib lib64 lib/x86_64-linux-gnu; do [ -e $$d/$$l/libnccl.so.2 ] && { echo "$$d $$d/$$l"; exit 0; }; done; done)
  endif
  ifneq ($(NCCL_FOUND),)
    NCCL_INC := $(word 1,$(NCCL_FOUND))/include
    NCCL_LIBDIR := $(word 2,$(NCCL_FOUND))
    NVCC_FLAGS += -DROPEPP_NCCL -I$(NCCL_INC)
    NVCC_LIBS += -L$(NCCL_LIBDIR) -l:libnccl.so.2 -Xlinker -rpath=$(NCCL_LIBDIR)
    GPU_DEFS += -DROPEPP_NCCL
    NCCL_LINE = ✓ NCCL $(NCCL_INC)/nccl.h, $(NCCL_LIBDIR)/libnccl.so.2: train_gpu trains on several GPUs (mpirun / torchrun, README)
  else ifeq ($(NO_NCCL),1)
    NCCL_LINE = ✗ NCCL off (NO_NCCL=1): train_gpu is single-GPU
  else
    NCCL_LINE = ✗ NCCL not found (include/nccl.h + libnccl.so.2 under NCCL_HOME, $(CUDA_ROOT), /usr/local, /usr): train_gpu is single-GPU; pip install nvidia-nccl-cu13 and pass NCCL_HOME=.../site-packages/nvidia/nccl
  endif
  ifneq ($(GPU_GOALS),)
    $(info $(NCCL_LINE))
  endif
endif

DATA = data/tinyshakespeare_train.bin data/tinyshakespeare_val.bin
CPU_PROGRAMS = train infer eval data/text2shards data/docs2shards
# the tests: tests/tests.txt, one line each (name, source, C flags); its .c ones are built here as tests/NAME
TEST_LINES := $(shell sed -e 's/\#.*//' tests/tests.txt | awk '$$2 ~ /\.c$$/ { f = ""; for (i = 3; i <= NF; i++) f = f "," $$i; print $$1 ":" $$2 ":" f }')
TEST_PROGRAMS = $(foreach l,$(TEST_LINES),tests/$(word 1,$(subst :, ,$(l))))

.PHONY: FORCE all programs test clean fuzz fixtures gpu test_gpu check_nvcc
all: $(CPU_PROGRAMS) $(DATA) $(TEST_PROGRAMS)
programs: $(CPU_PROGRAMS) $(DATA)

# `make train && ./train` works in a fresh clone: the train target also builds the default data shards
train: train.c ropepp.h cli.h data/tasks.h | $(DATA)
	$(CC) $(CFLAGS) train.c -o $@ $(LDLIBS)

infer: infer.c ropepp.h cli.h
	$(CC) $(CFLAGS) infer.c -o $@ $(LDLIBS)

eval: eval.c ropepp.h cli.h analysis.h data/tasks.h
	$(CC) $(CFLAGS) eval.c -o $@ $(LDLIBS)

data/text2shards: data/text2shards.c ropepp.h
	$(CC) $(CFLAGS) data/text2shards.c -o $@ $(LDLIBS)

data/docs2shards: data/docs2shards.c ropepp.h cli.h
	$(CC) $(CFLAGS) data/docs2shards.c -o $@ $(LDLIBS)

# byte-level shards of the shipped corpus: the last 10% of the text is validation
$(DATA) &: data/tinyshakespeare.txt data/text2shards
	./data/text2shards data/tinyshakespeare.txt --val-frac 0.1 --out data/tinyshakespeare

# tests/NAME from its source and C flags (tests/tests.txt), rebuilt when any header changes
define test_rule
tests/$(1): $(2) $(wildcard *.h tests/*.h data/*.h)
	$$(CC) $$(CFLAGS) $(3) $(2) -o $$@ $$(LDLIBS)
endef
$(foreach l,$(TEST_LINES),$(eval $(call test_rule,$(word 1,$(subst :, ,$(l))),$(word 2,$(subst :, ,$(l))),$(subst $(comma), ,$(word 3,$(subst :, ,$(l)))))))

# the compiler and flags of the last build: a change (NO_BLAS=1, NO_OMP=1, CC=clang) rebuilds every program
.build_flags: FORCE
	@echo '$(CC) $(CFLAGS) $(LDLIBS)' | cmp -s - $@ || echo '$(CC) $(CFLAGS) $(LDLIBS)' > $@
$(CPU_PROGRAMS) $(TEST_PROGRAMS) tests/cpu_ref.o: .build_flags
# the same for the GPU programs: nvcc's flags and libraries, NCCL found or not, GPU_ARCH
.gpu_flags: FORCE
	@echo '$(NVCC) $(NVCC_FLAGS) $(NVCC_LIBS) $(GPU_DEFS) $(CC) $(CFLAGS)' | cmp -s - $@ || echo '$(NVCC) $(NVCC_FLAGS) $(NVCC_LIBS) $(GPU_DEFS) $(CC) $(CFLAGS)' > $@
ropepp_cuda.o ropepp_cuda_fp32.o train_gpu infer_gpu eval_gpu train_gpu_fp32 tests/test_gpu tests/test_gpu_fp32 tests/test_infer_gpu: .gpu_flags
FORCE:

test: all
	@bash tests/run_tests.sh

fixtures:
	python3 ref/make_fixtures.py

# libFuzzer on the readers (clang); FUZZ_SECONDS each
FUZZ_SECONDS ?= 60
fuzz:
	@command -v clang >/dev/null || { echo "make fuzz needs clang (apt-get install clang)"; exit 1; }
	clang -std=c11 -g -O1 -I. -fsanitize=fuzzer,address,undefined tests/fuzz_readers.c -o tests/fuzz_readers -lm
	mkdir -p tests/fuzz_corpus
	./tests/fuzz_readers -max_total_time=$(FUZZ_SECONDS) -max_len=4096 tests/fuzz_corpus

# ---- GPU -----------------------------------------------------------------------------------------------------
check_nvcc:
	@if [ -z "$(NVCC)" ]; then echo "✗ nvcc not found: GPU targets skipped (install the CUDA toolkit)"; exit 1; fi
	@echo "✓ nvcc $(NVCC), sm_$(GPU_ARCH)"

gpu: train_gpu train_gpu_fp32 infer_gpu eval_gpu tests/test_gpu tests/test_gpu_fp32 tests/test_infer_gpu

ropepp_cuda.o: ropepp_cuda.cu $(wildcard cuda/*.cuh) ropepp.h | check_nvcc
	$(NVCC) $(NVCC_FLAGS) -c ropepp_cuda.cu -o $@
ropepp_cuda_fp32.o: ropepp_cuda.cu $(wildcard cuda/*.cuh) ropepp.h | check_nvcc
	$(NVCC) $(NVCC_FLAGS) -DROPEPP_FP32 -c ropepp_cuda.cu -o $@

# train.c compiled as C with the model code of the header and the op bodies from ropepp_cuda.cu
# (not phony: relinked only when a prerequisite changed; the data shards, as for train)
train_gpu: train.c ropepp.h cli.h data/tasks.h ropepp_cuda.o | $(DATA)
	$(CC) $(CFLAGS) $(GPU_DEFS) -c train.c -o train_gpu.o
	$(NVCC) $(NVCC_FLAGS) train_gpu.o ropepp_cuda.o -o $@ $(NVCC_LIBS) -Xcompiler -fopenmp
infer_gpu: infer.c ropepp.h cli.h ropepp_cuda.o
	$(CC) $(CFLAGS) $(GPU_DEFS) -c infer.c -o infer_gpu.o
	$(NVCC) $(NVCC_FLAGS) infer_gpu.o ropepp_cuda.o -o $@ $(NVCC_LIBS) -Xcompiler -fopenmp
eval_gpu: eval.c ropepp.h cli.h analysis.h ropepp_cuda.o
	$(CC) $(CFLAGS) $(GPU_DEFS) -c eval.c -o eval_gpu.o
	$(NVCC) $(NVCC_FLAGS) eval_gpu.o ropepp_cuda.o -o $@ $(NVCC_LIBS) -Xcompiler -fopenmp
train_gpu_fp32: train.c ropepp.h cli.h data/tasks.h ropepp_cuda_fp32.o | $(DATA)
	$(CC) $(CFLAGS) $(GPU_DEFS) -DROPEPP_FP32 -c train.c -o train_gpu_fp32.o
	$(NVCC) $(NVCC_FLAGS) train_gpu_fp32.o ropepp_cuda_fp32.o -o $@ $(NVCC_LIBS) -Xcompiler -fopenmp

# the header's CPU ops for test_gpu, every symbol renamed cpu_NAME so that they link beside the CUDA ops
tests/cpu_ref.o: tests/cpu_ref.c tests/cpu_ref.h tests/cpu_ref_rename.sh ropepp.h
	$(CC) $(CFLAGS) -c tests/cpu_ref.c -o tests/cpu_ref_plain.o
	bash tests/cpu_ref_rename.sh tests/cpu_ref_plain.o $@
	rm -f tests/cpu_ref_plain.o
tests/test_gpu: tests/test_gpu.cu tests/cpu_ref.h tests/cpu_ref.o ropepp_cuda.o ropepp.h | check_nvcc
	$(NVCC) $(NVCC_FLAGS) tests/test_gpu.cu tests/cpu_ref.o ropepp_cuda.o -o $@ $(NVCC_LIBS) $(NVCC_BLAS_LIBS) $(addprefix -Xcompiler ,$(filter -fopenmp,$(OMP_FLAGS)))
tests/test_gpu_fp32: tests/test_gpu.cu tests/cpu_ref.h tests/cpu_ref.o ropepp_cuda_fp32.o ropepp.h | check_nvcc
	$(NVCC) $(NVCC_FLAGS) -DROPEPP_FP32 tests/test_gpu.cu tests/cpu_ref.o ropepp_cuda_fp32.o -o $@ $(NVCC_LIBS) $(NVCC_BLAS_LIBS) $(addprefix -Xcompiler ,$(filter -fopenmp,$(OMP_FLAGS)))

tests/test_infer_gpu: tests/test_infer.c tests/testutil.h ropepp.h ropepp_cuda_fp32.o
	$(CC) $(CFLAGS) $(GPU_DEFS) -DROPEPP_FP32 -c tests/test_infer.c -o tests/test_infer_gpu.o
	$(NVCC) $(NVCC_FLAGS) tests/test_infer_gpu.o ropepp_cuda_fp32.o -o $@ $(NVCC_LIBS) -Xcompiler -fopenmp

test_gpu: tests/test_gpu tests/test_gpu_fp32 tests/test_infer_gpu train_gpu
	./tests/test_gpu_fp32
	./tests/test_gpu
	./tests/test_infer_gpu

clean:
	rm -f $(CPU_PROGRAMS) $(TEST_PROGRAMS) train_gpu train_gpu_fp32 infer_gpu eval_gpu tests/test_gpu tests/test_gpu_fp32 tests/test_infer_gpu tests/test_infer_gpu.o tests/cpu_ref.o tests/fuzz_readers *.o .build_flags
	rm -f $(DATA)
