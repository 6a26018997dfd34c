/*
ropepp_cuda.cu — the CUDA op backend of ropepp.h: every op of part 2 of the header, on the GPU.

Build: nvcc -O3 -std=c++17 -I. -gencode=arch=compute_90,code=sm_90 -c ropepp_cuda.cu            (bf16 activations)
       nvcc ... -DROPEPP_FP32 -c ropepp_cuda.cu                                                (fp32 activations)
and link with a C translation unit that defines ROPEPP_CUDA and ROPEPP_IMPLEMENTATION (the model code) and with
-lcublas. floatX is __nv_bfloat16 (float with ROPEPP_FP32); floatM (masters, moments, tables, statistics) is float.

Every op has the CPU body's meaning and arguments, including which gradients a backward WRITES (=: matmul's dinp,
swiglu, attention's dqkv, cross-entropy, which may alias logits) and which it accumulates into (+=: the weight
gradients, rmsnorm's dinp, encoder, rotary); ropepp.h part 2 says it per op. All math is fp32 (AdamW in double, as
on the CPU); every reduction has a fixed order, so two runs give bit-identical results (no atomics anywhere).

Files (one compilation unit: the headers in cuda/ are included from here, never compiled on their own):
  ropepp_cuda.cu           the op functions ropepp.h declares, the elementwise kernels, the attention dispatch
                           (which kernels run, forward and backward; the backward's chunks of stored dS^T tiles)
  cuda/rotary.cuh          the rotary helper pair every kernel that rotates uses (mirrors rotary_forward/backward
                           of ropepp.h); the imaginary head is made there ((c, s) -> (s, -c)) and differentiated
                           by the same pair's backward
  cuda/attention_common.cuh  the attention kernels' argument struct (AttnArgs) and dynamic shared memory
  cuda/attention_simt.cuh  the fp32-math fused attention kernels (any head dim <= 128, the fp32 build)
  cuda/attention_mma.cuh   the tensor-core (mma.sync bf16) fused attention kernels (head dims 64, 128)
  cuda/attention_sm90.cuh  the Hopper (sm_90a: wgmma + TMA) attention forward and backward, built where GPU_ARCH is 90a
  cuda/decode.cuh          the decoding kernels (KV cache append, split-K cached attention, the split merge) and
                           sampling on the device
  cuda/dist.cuh            data parallelism over GPUs with NCCL (ZeRO-1), built where the Makefile finds NCCL

Attention (the op the model calls) is a fused causal flash-style kernel (online softmax, nothing of size T x T):
  forward   1. keys: one elementwise kernel rotates k and writes kr (what a KV cache holds).
            2. one block per (64-query tile, attention head, batch): loads the raw q of its projected head from qkv,
               rotates it in shared memory (real, or imaginary with (c, s) -> (s, -c) for the odd heads of RoPE++),
               adds the query noise, writes qr, then walks the causal key tiles of its kv head (GQA) with ALiBi,
               writing out and the row log-sum-exp (base 2) as softmax_saved (B, NA, T).
  backward  D = rowsum(dout * out); then two kernels that recompute P from q, k and the logsumexp:
            dq:     one block per (query tile, projected q head, batch) loops over the 1 or 2 attention heads of that
                    q head (real, imaginary), applies each head's rotary backward in shared memory and writes the sum
                    into dqkv once;
            dk, dv: one block per (key tile, kv head, batch) loops over the attention heads of its GQA group and
                    the query tiles at or after it, then applies the key rotary backward and writes its part of dqkv.
            Each output element has one owner, so the backward is deterministic without atomics.
Tiles are 64 x 64, 256 threads, fp32 in shared memory, head dims padded to 16, 32, 64 or 128 (any HD <= 128).
bf16 build, head dims 64 and 128 (rotated dims a multiple of 16, 16-byte aligned tensors): the same steps run on the
tensor cores instead (mma.sync bf16 -> fp32, see "tensor-core attention" below): one block holds every attention head
of a GQA group (for RoPE++ the real and imaginary heads of each q head) so each K/V tile is loaded once for all of
them. The fp32-math kernels stay for other head dims and the fp32 build (exact CPU parity); ROPEPP_ATTN_SIMT=1 forces
them in the bf16 build. On a Hopper GPU with sm_90a code in the binary (`make gpu GPU_ARCH=90a`, the default on such
a machine) the forward, dk/dv and dq run on wgmma + TMA instead (cuda/attention_sm90.cuh; ROPEPP_ATTN_SM90=0 turns
them off).

Streams: built with nvcc --default-stream per-thread (the Makefile's NVCC_FLAGS), all work goes to the per-thread
default stream (cuBLAS set to it too), which, unlike the legacy NULL stream, can be captured into a CUDA graph
(backend_graph_*: the decode step). Built without that flag, backend_graph_begin answers 0 and the steps run
uncaptured.
*/
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cublas_v2.h>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <math.h>
#ifndef ROPEPP_CUDA
#define ROPEPP_CUDA
#endif
#include "ropepp.h"

/* ------------------------------------------------------------------------------------------------ checks */

static const char *cuda_hint(cudaError_t e) {
    switch (e) {
    case cudaErrorMemoryAllocation:
        return "the GPU is out of memory: lower the batch size (--batch) or sequence length (--seq), or use a smaller model";
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
        return "no usable CUDA device: check nvidia-smi, CUDA_VISIBLE_DEVICES and that the driver is new enough for this CUDA";
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion:
        return "this binary was built for another GPU: rebuild with GPU_ARCH set to the card's compute capability (e.g. make GPU_ARCH=90)";
    case cudaErrorInvalidValue:
    case cudaErrorInvalidConfiguration:
        return "a launch or copy got impossible sizes: check B, T and the model shape (head dim <= 128)";
    default:
        return "a kernel or copy failed: rerun with CUDA_LAUNCH_BLOCKING=1 or under compute-sanitizer to find the first bad call";
    }
}

static void cuda_check(cudaError_t e, const char *file, int line) {
    if (e != cudaSuccess) {
        fprintf(stderr, "error: CUDA %s (%s) at %s:%d\nHINT: %s\n", cudaGetErrorName(e), cudaGetErrorString(e), file,
                line, cuda_hint(e));
        exit(1);
    }
}
#define cudaCheck(x) cuda_check((x), __FILE__, __LINE__)
#define cudaCheckLaunch() cuda_check(cudaGetLastError(), __FILE__, __LINE__)

static void cublas_check(cublasStatus_t s, const char *file, int line) {
    if (s != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "error: cuBLAS %s at %s:%d\nHINT: %s\n", cublasGetStatusString(s), file, line,
                s == CUBLAS_STATUS_ALLOC_FAILED ? "the GPU is out of memory: lower --batch or --seq"
                : s == CUBLAS_STATUS_NOT_INITIALIZED ? "cuBLAS could not start: check the driver and that a GPU is visible"
                : "a matrix product got bad sizes or pointers: check the model shape");
        exit(1);
    }
}
#define cublasCheck(x) cublas_check((x), __FILE__, __LINE__)

static void fail(const char *what, const char *hint) {
    fprintf(stderr, "error: %s\nHINT: %s\n", what, hint);
    exit(1);
}

/* ------------------------------------------------------------------------------------------------ types */

#ifdef ROPEPP_FP32
__device__ __forceinline__ float x2f(float v) { return v; }
__device__ __forceinline__ floatX f2x(float v) { return v; }
#define CUDA_X CUDA_R_32F
#else
__device__ __forceinline__ float x2f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ floatX f2x(float v) { return __float2bfloat16_rn(v); }
#define CUDA_X CUDA_R_16BF
#endif
/* the value v takes once stored as floatX */
__device__ __forceinline__ float roundx(float v) { return x2f(f2x(v)); }

#define LOG2E_F 1.4426950408889634f

/* 16-byte vectors of floatX (8 bf16 or 4 fp32) for the memory-bound kernels: XVEC elements through one load or
   store. vec_ok: a row of n elements starting at p can be read that way. */
#define XVEC (16 / (int)sizeof(floatX))
__device__ __forceinline__ void ldx(float (&out)[XVEC], const floatX *p) {
    uint4 u = *reinterpret_cast<const uint4 *>(p);
    const floatX *e = reinterpret_cast<const floatX *>(&u);
#pragma unroll
    for (int k = 0; k < XVEC; k++) out[k] = x2f(e[k]);
}
__device__ __forceinline__ void stx(floatX *p, const float (&in)[XVEC]) {
    alignas(16) floatX o[XVEC];
#pragma unroll
    for (int k = 0; k < XVEC; k++) o[k] = f2x(in[k]);
    *reinterpret_cast<uint4 *>(p) = *reinterpret_cast<const uint4 *>(o);
}
static bool vec_ok(const void *p, size_t n) { return n % XVEC == 0 && ((uintptr_t)p & 15) == 0; }

/* grid for n elements with a grid-stride loop */
static unsigned grid_for(size_t n, int threads) {
    size_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > (1u << 20)) b = 1u << 20;
    return (unsigned)b;
}
#define GRID_STRIDE(i, n) for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* Bytes held in this file's cudaMallocs (model tensors and scratch), and the most at once: what
   torch.cuda.max_memory_allocated counts on the PyTorch side (no CUDA context, no cuBLAS workspace). */
static size_t mem_live, mem_peak;
static struct { void *p; size_t n; } mem_tab[4096];
static int mem_n;
static void mem_note_alloc(void *p, size_t n) {
    if (mem_n < 4096) { mem_tab[mem_n].p = p; mem_tab[mem_n].n = n; mem_n++; }
    mem_live += n;
    if (mem_live > mem_peak) mem_peak = mem_live;
}
static void mem_note_free(void *p) {
    for (int i = 0; i < mem_n; i++)
        if (mem_tab[i].p == p) { mem_live -= mem_tab[i].n; mem_tab[i] = mem_tab[--mem_n]; return; }
}
size_t backend_memory_peak(void) { return mem_peak; }

/* Scratch device buffers, grown on demand (the default stream orders every use; cudaFree synchronizes). */
enum { SCR_D = 0, SCR_PARTIAL, SCR_ENC, SCR_PSUM, SCR_SAMPLE, SCR_DEC, SCR_DS, SCR_COUNT };
static void *scratch[SCR_COUNT];
static size_t scratch_cap[SCR_COUNT];
static size_t scratch_epoch;   /* counts the moves (a captured graph holds the old addresses) */
size_t backend_scratch_epoch(void) { return scratch_epoch; }
static void *scratch_get(int slot, size_t bytes) {
    if (bytes > scratch_cap[slot]) {
        scratch_epoch++;
        if (scratch[slot]) { cudaCheck(cudaFree(scratch[slot])); mem_note_free(scratch[slot]); }
        size_t cap = bytes + 256;   /* exact: the big ones (the backward's dS^T tiles) count in the peak */
        cudaCheck(cudaMalloc(&scratch[slot], cap));
        mem_note_alloc(scratch[slot], cap);
        scratch_cap[slot] = cap;
    }
    return scratch[slot];
}

static cublasHandle_t cublas_handle(void) {
    static cublasHandle_t h = NULL;
    if (h == NULL) {
        cublasCheck(cublasCreate(&h));
        cublasCheck(cublasSetStream(h, cudaStreamPerThread));   /* the library's 0 is the legacy stream */
        /* its own workspace, so that no GEMM allocates while a graph is being captured (cuBLAS's advice: 32 MiB
           on Hopper) */
        void *ws = NULL;
        cudaCheck(cudaMalloc(&ws, (size_t)32 << 20));
        mem_note_alloc(ws, (size_t)32 << 20);
        cublasCheck(cublasSetWorkspace(h, ws, (size_t)32 << 20));
        /* no TF32: fp32 products stay fp32 (CPU parity at ~1e-5); bf16 inputs use tensor cores with fp32 sums */
        cublasCheck(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    }
    return h;
}

/* ------------------------------------------------------------------------------------------------ reductions */

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
/* over the 16 lanes of a half warp (lanes 0-15 or 16-31) */
__device__ __forceinline__ float half_sum(float v) {
    for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float half_max(float v) {
    for (int o = 8; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
/* block-wide sum / max (fixed order), result in every thread; blockDim.x a multiple of 32, <= 1024 */
__device__ float block_sum(float v) {
    __shared__ float buf[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) buf[w] = v;
    __syncthreads();
    float r = lane < nw ? buf[lane] : 0.0f;
    return warp_sum(r);
}
__device__ float block_max(float v) {
    __shared__ float buf[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) buf[w] = v;
    __syncthreads();
    float r = lane < nw ? buf[lane] : -INFINITY;
    return warp_max(r);
}

/* ------------------------------------------------------------------------------------------------ noise */

/* The header's noise_normal, bit for bit in its seed/index mapping (splitmix64, Box-Muller in double). */
__device__ __forceinline__ uint64_t splitmix64_dev(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
__device__ double noise_normal_dev(uint64_t seed, uint64_t index) {
    uint64_t x = seed ^ (index * 0xD1B54A32D192ED03ull);
    double u1 = (double)(splitmix64_dev(&x) >> 11) * (1.0 / 9007199254740992.0);
    double u2 = (double)(splitmix64_dev(&x) >> 11) * (1.0 / 9007199254740992.0);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

/* ------------------------------------------------------------------------------------------------ encoder */

__global__ void encoder_forward_kernel(floatX *out, const int *inp, const floatX *wte, size_t n, int C) {
    GRID_STRIDE(i, n) {
        size_t row = i / C, c = i % C;
        out[i] = wte[(size_t)inp[row] * C + c];
    }
}

void encoder_forward(floatX *out, const int *inp, const floatX *wte, int N, int C) {
    size_t n = (size_t)N * C;
    encoder_forward_kernel<<<grid_for(n, 256), 256>>>(out, inp, wte, n, C);
    cudaCheckLaunch();
}

/* Deterministic without atomics or a host round trip: the (token, row) pairs are sorted by token with cub's stable
   radix sort (rows of a token stay in increasing order); then one block per sorted position that starts a token's
   run (and 256 channels) sums that token's rows in that order in fp32 and adds the sum into its row of dwte. */
__global__ void iota_kernel(int *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = i;
}

__global__ void encoder_backward_kernel(floatX *dwte, const floatX *dout, const int *tok, const int *rows, int N, int C) {
    int k = blockIdx.x;
    int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C || (k > 0 && tok[k] == tok[k - 1])) return;
    float acc = 0.0f;
    for (int j = k; j < N && tok[j] == tok[k]; j++) acc += x2f(dout[(size_t)rows[j] * C + c]);
    floatX *d = dwte + (size_t)tok[k] * C + c;
    *d = f2x(x2f(*d) + acc);
}

void encoder_backward(floatX *dwte, const floatX *dout, const int *inp, int N, int C) {
    if (N <= 0 || C <= 0) return;
    /* scratch: rows in (N), sorted tokens (N), sorted rows (N), then cub's temporary storage */
    size_t temp = 0;
    cudaCheck(cub::DeviceRadixSort::SortPairs(NULL, temp, inp, (int *)NULL, (int *)NULL, (int *)NULL, N));
    const size_t off = (3 * (size_t)N * sizeof(int) + 255) / 256 * 256;   /* cub's storage 256-byte aligned */
    char *buf = (char *)scratch_get(SCR_ENC, off + temp);
    int *rows_in = (int *)buf, *tok = rows_in + N, *rows = rows_in + 2 * (size_t)N;
    iota_kernel<<<(N + 255) / 256, 256>>>(rows_in, N);
    cudaCheckLaunch();
    cudaCheck(cub::DeviceRadixSort::SortPairs(buf + off, temp, inp, tok, rows_in, rows, N));
    dim3 grid((unsigned)N, (unsigned)((C + 255) / 256));
    encoder_backward_kernel<<<grid, 256>>>(dwte, dout, tok, rows, N, C);
    cudaCheckLaunch();
}

/* ------------------------------------------------------------------------------------------------ rmsnorm */

/* one warp per row (16-byte vectors where the rows allow); statistics in fp32. out = round(x * r) * w as the
   official code (normalize, cast, weight). */
__global__ void rmsnorm_forward_kernel(floatX *out, float *rstd, const floatX *inp, const floatX *weight, int N, int C,
                                       float eps, bool vec) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= N) return;
    const floatX *x = inp + (size_t)row * C;
    floatX *o = out + (size_t)row * C;
    float ss = 0.0f;
    if (vec) {
        for (int i = lane * XVEC; i < C; i += 32 * XVEC) {
            float v[XVEC];
            ldx(v, x + i);
#pragma unroll
            for (int k = 0; k < XVEC; k++) ss += v[k] * v[k];
        }
    } else {
        for (int i = lane; i < C; i += 32) { float v = x2f(x[i]); ss += v * v; }
    }
    ss = warp_sum(ss);
    float r = 1.0f / sqrtf(ss / (float)C + eps);
    if (vec) {
        for (int i = lane * XVEC; i < C; i += 32 * XVEC) {
            float v[XVEC], w[XVEC];
            ldx(v, x + i);
            ldx(w, weight + i);
#pragma unroll
            for (int k = 0; k < XVEC; k++) v[k] = roundx(v[k] * r) * w[k];
            stx(o + i, v);
        }
    } else {
        for (int i = lane; i < C; i += 32) o[i] = f2x(roundx(x2f(x[i]) * r) * x2f(weight[i]));
    }
    if (lane == 0) rstd[row] = r;
}

void rmsnorm_forward(floatX *out, floatM *rstd, const floatX *inp, const floatX *weight, int N, int C, double eps) {
    if (N <= 0) return;
    bool vec = vec_ok(out, (size_t)C) && vec_ok(inp, (size_t)C) && vec_ok(weight, (size_t)C);
    rmsnorm_forward_kernel<<<(N + 7) / 8, 256>>>(out, rstd, inp, weight, N, C, (float)eps, vec);
    cudaCheckLaunch();
}

/* dx_i += r g_i w_i - (r^3 / C) x_i sum_k g_k w_k x_k, one warp per row */
__global__ void rmsnorm_backward_dinp_kernel(floatX *dinp, const floatX *dout, const floatX *inp, const floatX *weight,
                                             const float *rstd, int N, int C, bool vec) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= N) return;
    const floatX *x = inp + (size_t)row * C, *g = dout + (size_t)row * C;
    floatX *dx = dinp + (size_t)row * C;
    float dot = 0.0f;
    if (vec) {
        for (int i = lane * XVEC; i < C; i += 32 * XVEC) {
            float gv[XVEC], wv[XVEC], xv[XVEC];
            ldx(gv, g + i); ldx(wv, weight + i); ldx(xv, x + i);
#pragma unroll
            for (int e = 0; e < XVEC; e++) dot += gv[e] * wv[e] * xv[e];
        }
    } else {
        for (int i = lane; i < C; i += 32) dot += x2f(g[i]) * x2f(weight[i]) * x2f(x[i]);
    }
    dot = warp_sum(dot);
    float r = rstd[row];
    float k = r * r * r * dot / (float)C;
    if (vec) {
        for (int i = lane * XVEC; i < C; i += 32 * XVEC) {
            float gv[XVEC], wv[XVEC], xv[XVEC], dv[XVEC];
            ldx(gv, g + i); ldx(wv, weight + i); ldx(xv, x + i); ldx(dv, dx + i);
#pragma unroll
            for (int e = 0; e < XVEC; e++) dv[e] = dv[e] + (r * gv[e] * wv[e] - k * xv[e]);
            stx(dx + i, dv);
        }
    } else {
        for (int i = lane; i < C; i += 32)
            dx[i] = f2x(x2f(dx[i]) + (r * x2f(g[i]) * x2f(weight[i]) - k * x2f(x[i])));
    }
}

/* Deterministic column sums: partial[chunk, c] = sum over the chunk's rows (fixed order) of f(row, c). */
__global__ void rmsnorm_dweight_partial_kernel(float *partial, const floatX *dout, const floatX *inp, const float *rstd,
                                               int N, int C, int rows_per_chunk) {
    __shared__ float red[8][33];
    int c = blockIdx.x * 32 + threadIdx.x, chunk = blockIdx.y;
    int r0 = chunk * rows_per_chunk, r1 = min(N, r0 + rows_per_chunk);
    float acc = 0.0f;
    if (c < C)
        for (int n = r0 + threadIdx.y; n < r1; n += 8)
            acc += x2f(dout[(size_t)n * C + c]) * x2f(inp[(size_t)n * C + c]) * rstd[n];
    red[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float s = 0.0f;
        for (int y = 0; y < 8; y++) s += red[y][threadIdx.x];
        partial[(size_t)chunk * C + c] = s;
    }
}

__global__ void column_finish_kernel(floatX *dst, const float *partial, int chunks, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float s = 0.0f;
    for (int k = 0; k < chunks; k++) s += partial[(size_t)k * C + c];
    dst[c] = f2x(x2f(dst[c]) + s);
}

/* Fused, for rows of 16-byte vectors and C <= 1024 (RMS_NCH_MAX chunks of 32 lanes x XVEC): each warp takes
   RMS_RPW rows, keeps a row's dout and inp in registers for the dot product and the dinp update, and adds
   dout * inp * rstd into per-lane column sums; the block's 8 warps merge theirs in smem into partial (blocks, C) in
   warp order, for column_finish_kernel. One read of dout and inp instead of two. */
#define RMS_RPW 16
#define RMS_NCH_MAX 4
__global__ void __launch_bounds__(256) rmsnorm_backward_fused_kernel(floatX *dinp, float *partial, const floatX *dout,
        const floatX *inp, const floatX *weight, const float *rstd, int N, int C) {
    extern __shared__ float red[];   /* (8, C) */
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nch = C / (32 * XVEC);
    float acc[RMS_NCH_MAX][XVEC];
#pragma unroll
    for (int k = 0; k < RMS_NCH_MAX; k++)
#pragma unroll
        for (int e = 0; e < XVEC; e++) acc[k][e] = 0.0f;
    for (int i = 0; i < RMS_RPW; i++) {
        const int row = (blockIdx.x * 8 + w) * RMS_RPW + i;
        if (row >= N) break;
        const floatX *x = inp + (size_t)row * C, *g = dout + (size_t)row * C;
        floatX *dx = dinp + (size_t)row * C;
        float gv[RMS_NCH_MAX][XVEC], xv[RMS_NCH_MAX][XVEC], dot = 0.0f;
#pragma unroll
        for (int k = 0; k < RMS_NCH_MAX; k++) {
            if (k >= nch) break;
            const int c = (k * 32 + lane) * XVEC;
            float wv[XVEC];
            ldx(gv[k], g + c); ldx(xv[k], x + c); ldx(wv, weight + c);
#pragma unroll
            for (int e = 0; e < XVEC; e++) dot += gv[k][e] * wv[e] * xv[k][e];
        }
        dot = warp_sum(dot);
        const float r = rstd[row], kk = r * r * r * dot / (float)C;
#pragma unroll
        for (int k = 0; k < RMS_NCH_MAX; k++) {
            if (k >= nch) break;
            const int c = (k * 32 + lane) * XVEC;
            float wv[XVEC], dv[XVEC];
            ldx(wv, weight + c); ldx(dv, dx + c);
#pragma unroll
            for (int e = 0; e < XVEC; e++) {
                dv[e] = dv[e] + (r * gv[k][e] * wv[e] - kk * xv[k][e]);
                acc[k][e] += gv[k][e] * xv[k][e] * r;
            }
            stx(dx + c, dv);
        }
    }
#pragma unroll
    for (int k = 0; k < RMS_NCH_MAX; k++) {
        if (k >= nch) break;
#pragma unroll
        for (int e = 0; e < XVEC; e++) red[w * C + (k * 32 + lane) * XVEC + e] = acc[k][e];
    }
    __syncthreads();
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float sum = 0.0f;
        for (int v = 0; v < 8; v++) sum += red[v * C + c];
        partial[(size_t)blockIdx.x * C + c] = sum;
    }
}

void rmsnorm_backward(floatX *dinp, floatX *dweight, const floatX *dout, const floatX *inp, const floatX *weight,
                      const floatM *rstd, int N, int C) {
    if (N <= 0) return;
    bool vec = vec_ok(dinp, (size_t)C) && vec_ok(dout, (size_t)C) && vec_ok(inp, (size_t)C) && vec_ok(weight, (size_t)C);
    if (vec && C % (32 * XVEC) == 0 && C <= RMS_NCH_MAX * 32 * XVEC) {
        const int blocks = (N + 8 * RMS_RPW - 1) / (8 * RMS_RPW);
        float *partial = (float *)scratch_get(SCR_PARTIAL, (size_t)blocks * C * sizeof(float));
        rmsnorm_backward_fused_kernel<<<blocks, 256, (size_t)8 * C * sizeof(float)>>>(dinp, partial, dout, inp, weight,
                                                                                      rstd, N, C);
        cudaCheckLaunch();
        column_finish_kernel<<<(C + 255) / 256, 256>>>(dweight, partial, blocks, C);
        cudaCheckLaunch();
        return;
    }
    rmsnorm_backward_dinp_kernel<<<(N + 7) / 8, 256>>>(dinp, dout, inp, weight, rstd, N, C, vec);
    cudaCheckLaunch();
    int chunks = (N + 63) / 64;
    if (chunks > 512) chunks = 512;
    int rpc = (N + chunks - 1) / chunks;
    chunks = (N + rpc - 1) / rpc;
    float *partial = (float *)scratch_get(SCR_PARTIAL, (size_t)chunks * C * sizeof(float));
    rmsnorm_dweight_partial_kernel<<<dim3((C + 31) / 32, chunks), dim3(32, 8)>>>(partial, dout, inp, rstd, N, C, rpc);
    cudaCheckLaunch();
    column_finish_kernel<<<(C + 255) / 256, 256>>>(dweight, partial, chunks, C);
    cudaCheckLaunch();
}

/* ------------------------------------------------------------------------------------------------ residual */

__global__ void residual_forward_kernel(floatX *out, const floatX *a, const floatX *b, size_t n) {
    GRID_STRIDE(i, n) out[i] = f2x(x2f(a[i]) + x2f(b[i]));
}
/* the same over n / XVEC vectors */
__global__ void residual_forward_vec_kernel(floatX *out, const floatX *a, const floatX *b, size_t nv) {
    GRID_STRIDE(i, nv) {
        float x[XVEC], y[XVEC];
        ldx(x, a + i * XVEC);
        ldx(y, b + i * XVEC);
#pragma unroll
        for (int k = 0; k < XVEC; k++) x[k] += y[k];
        stx(out + i * XVEC, x);
    }
}

void residual_forward(floatX *out, const floatX *a, const floatX *b, size_t n) {
    if (n == 0) return;
    if (vec_ok(out, n) && vec_ok(a, n) && vec_ok(b, n))
        residual_forward_vec_kernel<<<grid_for(n / XVEC, 256), 256>>>(out, a, b, n / XVEC);
    else
        residual_forward_kernel<<<grid_for(n, 256), 256>>>(out, a, b, n);
    cudaCheckLaunch();
}

/* ------------------------------------------------------------------------------------------------ matmul */

/* Row-major out (N, OC) = inp (N, IC) weight (OC, IC)^T, i.e. column-major out^T = weight^T-view x inp^T-view. */
void matmul_forward(floatX *out, const floatX *inp, const floatX *weight, int N, int IC, int OC) {
    if (N <= 0 || OC <= 0) return;
    const float alpha = 1.0f, beta = 0.0f;
    cublasCheck(cublasGemmEx(cublas_handle(), CUBLAS_OP_T, CUBLAS_OP_N, OC, N, IC, &alpha, weight, CUDA_X, IC, inp,
                             CUDA_X, IC, &beta, out, CUDA_X, OC, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void matmul_backward(floatX *dinp, floatX *dweight, const floatX *dout, const floatX *inp, const floatX *weight,
                     int N, int IC, int OC) {
    if (N <= 0 || OC <= 0 || IC <= 0) return;
    const float alpha = 1.0f, zero = 0.0f, one = 1.0f;
    if (dinp != NULL)   /* dinp (N, IC) = dout (N, OC) weight (OC, IC) */
        cublasCheck(cublasGemmEx(cublas_handle(), CUBLAS_OP_N, CUBLAS_OP_N, IC, N, OC, &alpha, weight, CUDA_X, IC,
                                 dout, CUDA_X, OC, &zero, dinp, CUDA_X, IC, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (dweight != NULL)   /* dweight (OC, IC) += dout^T (OC, N) inp (N, IC) */
        cublasCheck(cublasGemmEx(cublas_handle(), CUBLAS_OP_N, CUBLAS_OP_T, IC, OC, N, &alpha, inp, CUDA_X, IC,
                                 dout, CUDA_X, OC, &one, dweight, CUDA_X, IC, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

#include "cuda/rotary.cuh"

/* ------------------------------------------------------------------------------------------------ rotary */

/* One thread per (row, head, e): e < rot/2 is the pair (j, j + rot/2), e >= rot/2 a pass-through dim.
   The arithmetic is cuda/rotary.cuh's pair (real; imaginary: (c, s) -> (s, -c)). */
__global__ void rotary_forward_kernel(floatX *out, const floatX *inp, size_t inp_stride, PosEmb pe, int imag_out,
                                      int group, int T, int NH, int HD, size_t total) {
    int half = pe.rot / 2, W = half + HD - pe.rot, mult = imag_out ? 2 : 1;
    GRID_STRIDE(i, total) {
        int e = (int)(i % W);
        int h = (int)((i / W) % NH);
        size_t bt = i / ((size_t)W * NH);
        int t = (int)(bt % T);
        const floatX *x = inp + bt * inp_stride + (size_t)h * HD;
        floatX *ore = out + (bt * NH * mult + (size_t)h * mult) * HD;
        floatX *oim = ore + HD;
        if (e < half) {
            int j = e;
            size_t tab = rotary_table_index(pe, h / group, t, j);
            float cos_v = pe.cos[tab], sin_v = pe.sin[tab], c, s, o1, o2;
            float a = x2f(x[j]), b = x2f(x[j + half]);
            rotary_cs(c, s, cos_v, sin_v, 0);
            rotary_pair_forward(o1, o2, a, b, c, s);
            ore[j] = f2x(o1);
            ore[j + half] = f2x(o2);
            if (imag_out) {
                rotary_cs(c, s, cos_v, sin_v, 1);
                rotary_pair_forward(o1, o2, a, b, c, s);
                oim[j] = f2x(o1);
                oim[j + half] = f2x(o2);
            }
        } else {
            int j = pe.rot + e - half;
            ore[j] = x[j];
            if (imag_out) oim[j] = x[j];
        }
    }
}

__global__ void rotary_backward_kernel(floatX *dinp, const floatX *dout, size_t inp_stride, PosEmb pe, int imag_out,
                                       int group, int T, int NH, int HD, size_t total) {
    int half = pe.rot / 2, W = half + HD - pe.rot, mult = imag_out ? 2 : 1;
    GRID_STRIDE(i, total) {
        int e = (int)(i % W);
        int h = (int)((i / W) % NH);
        size_t bt = i / ((size_t)W * NH);
        int t = (int)(bt % T);
        floatX *dx = dinp + bt * inp_stride + (size_t)h * HD;
        const floatX *gre = dout + (bt * NH * mult + (size_t)h * mult) * HD;
        const floatX *gim = gre + HD;
        if (e < half) {
            int j = e;
            size_t tab = rotary_table_index(pe, h / group, t, j);
            float cos_v = pe.cos[tab], sin_v = pe.sin[tab], c, s, da, db;
            float g1 = x2f(gre[j]), g2 = x2f(gre[j + half]);
            rotary_cs(c, s, cos_v, sin_v, 0);
            rotary_pair_backward(da, db, g1, g2, c, s);
            if (imag_out) {
                float i1 = x2f(gim[j]), i2 = x2f(gim[j + half]), da_im, db_im;
                rotary_cs(c, s, cos_v, sin_v, 1);
                rotary_pair_backward(da_im, db_im, i1, i2, c, s);
                da += da_im;
                db += db_im;
            }
            dx[j] = f2x(x2f(dx[j]) + da);
            dx[j + half] = f2x(x2f(dx[j + half]) + db);
        } else {
            int j = pe.rot + e - half;
            float g = x2f(gre[j]) + (imag_out ? x2f(gim[j]) : 0.0f);
            dx[j] = f2x(x2f(dx[j]) + g);
        }
    }
}

void rotary_forward(floatX *out, const floatX *inp, size_t inp_stride, const PosEmb *pe, int imag_out, int group,
                    int B, int T, int NH, int HD) {
    int W = pe->rot / 2 + HD - pe->rot;
    size_t total = (size_t)B * T * NH * W;
    if (total == 0) return;
    rotary_forward_kernel<<<grid_for(total, 256), 256>>>(out, inp, inp_stride, *pe, imag_out, group, T, NH, HD, total);
    cudaCheckLaunch();
}

void rotary_backward(floatX *dinp, const floatX *dout, size_t inp_stride, const PosEmb *pe, int imag_out, int group,
                     int B, int T, int NH, int HD) {
    int W = pe->rot / 2 + HD - pe->rot;
    size_t total = (size_t)B * T * NH * W;
    if (total == 0) return;
    rotary_backward_kernel<<<grid_for(total, 256), 256>>>(dinp, dout, inp_stride, *pe, imag_out, group, T, NH, HD, total);
    cudaCheckLaunch();
}

/* ------------------------------------------------------------------------------------------------ attention core */
/* The unfused op with the (B, NA, T, T) probability matrix: ropepp.h declares it for both backends as the readable
   reference of attention (the CPU keeps the same pair); tests/test_gpu compares the fused kernels with it. The model
   and the analyses call attention_* (eval's attention probabilities are recomputed on the host from saved q/k). */

/* one warp per (b, a, t) row */
__global__ void attention_core_forward_kernel(floatX *out, float *att, const floatX *q, const floatX *k,
                                              const floatX *v, size_t v_stride, const float *alibi, int B, int T,
                                              int NA, int KVH, int HD, float scale) {
    size_t w = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (w >= (size_t)B * NA * T) return;
    int t = (int)(w % T), a = (int)((w / T) % NA), b = (int)(w / ((size_t)T * NA));
    int g = a / (NA / KVH);
    const floatX *qt = q + (((size_t)b * T + t) * NA + a) * HD;
    float *row = att + w * T;
    float mx = -INFINITY;
    for (int j = lane; j <= t; j += 32) {
        const floatX *kj = k + (((size_t)b * T + j) * KVH + g) * HD;
        float dot = 0.0f;
        for (int i = 0; i < HD; i++) dot += x2f(qt[i]) * x2f(kj[i]);
        float s = dot * scale;
        if (alibi != NULL) s -= alibi[a] * (float)(t - j);
        row[j] = s;
        mx = fmaxf(mx, s);
    }
    mx = warp_max(mx);
    float sum = 0.0f;
    for (int j = lane; j <= t; j += 32) { float e = expf(row[j] - mx); row[j] = e; sum += e; }
    sum = warp_sum(sum);
    float inv = 1.0f / sum;
    for (int j = lane; j <= t; j += 32) row[j] *= inv;
    for (int j = t + 1 + lane; j < T; j += 32) row[j] = 0.0f;
    __syncwarp();
    floatX *ot = out + (((size_t)b * T + t) * NA + a) * HD;
    for (int i = lane; i < HD; i += 32) {
        float acc = 0.0f;
        for (int j = 0; j <= t; j++) acc += row[j] * x2f(v[((size_t)b * T + j) * v_stride + (size_t)g * HD + i]);
        ot[i] = f2x(acc);
    }
}

/* dq and psum = sum_j p_j dp_j for one (b, a, t) row per warp */
__global__ void attention_core_backward_dq_kernel(floatX *dq, float *psum_out, const floatX *dout, const float *att,
                                                  const floatX *k, const floatX *v, size_t v_stride, int B, int T,
                                                  int NA, int KVH, int HD, float scale) {
    size_t w = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (w >= (size_t)B * NA * T) return;
    int t = (int)(w % T), a = (int)((w / T) % NA), b = (int)(w / ((size_t)T * NA));
    int g = a / (NA / KVH);
    const float *p = att + w * T;
    const floatX *go = dout + (((size_t)b * T + t) * NA + a) * HD;
    float psum = 0.0f;
    for (int j = lane; j <= t; j += 32) {
        const floatX *vj = v + ((size_t)b * T + j) * v_stride + (size_t)g * HD;
        float d = 0.0f;
        for (int i = 0; i < HD; i++) d += x2f(go[i]) * x2f(vj[i]);
        psum += p[j] * d;
    }
    psum = warp_sum(psum);
    if (lane == 0) psum_out[w] = psum;
    floatX *dqt = dq + (((size_t)b * T + t) * NA + a) * HD;
    for (int i = lane; i < HD; i += 32) {
        float acc = 0.0f;
        for (int j = 0; j <= t; j++) {
            const floatX *vj = v + ((size_t)b * T + j) * v_stride + (size_t)g * HD;
            float d = 0.0f;
            for (int ii = 0; ii < HD; ii++) d += x2f(go[ii]) * x2f(vj[ii]);
            float ds = p[j] * (d - psum) * scale;
            acc += ds * x2f(k[(((size_t)b * T + j) * KVH + g) * HD + i]);
        }
        dqt[i] = f2x(x2f(dqt[i]) + acc);
    }
}

/* dk, dv for one (b, kv head g, key j) per thread-lane group: warp per key, lanes over dims */
__global__ void attention_core_backward_dkv_kernel(floatX *dk, floatX *dv, const float *psum, const floatX *dout,
                                                   const float *att, const floatX *q, const floatX *v, size_t v_stride,
                                                   int B, int T, int NA, int KVH, int HD, float scale) {
    size_t w = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (w >= (size_t)B * KVH * T) return;
    int j = (int)(w % T), g = (int)((w / T) % KVH), b = (int)(w / ((size_t)T * KVH));
    int group = NA / KVH;
    const floatX *vj = v + ((size_t)b * T + j) * v_stride + (size_t)g * HD;
    for (int i0 = 0; i0 < HD; i0 += 32) {
        int i = i0 + lane;
        float adk = 0.0f, adv = 0.0f;
        for (int a = g * group; a < (g + 1) * group; a++) {
            for (int t = j; t < T; t++) {
                size_t rowi = ((size_t)b * NA + a) * T + t;
                float p = att[rowi * T + j];
                const floatX *go = dout + (((size_t)b * T + t) * NA + a) * HD;
                float d = 0.0f;
                for (int ii = lane; ii < HD; ii += 32) d += x2f(go[ii]) * x2f(vj[ii]);
                d = warp_sum(d);
                float ds = p * (d - psum[rowi]) * scale;
                if (i < HD) {
                    adv += p * x2f(go[i]);
                    adk += ds * x2f(q[(((size_t)b * T + t) * NA + a) * HD + i]);
                }
            }
        }
        if (i < HD) {
            floatX *pk = dk + (((size_t)b * T + j) * KVH + g) * HD + i;
            floatX *pv = dv + ((size_t)b * T + j) * v_stride + (size_t)g * HD + i;
            *pk = f2x(x2f(*pk) + adk);
            *pv = f2x(x2f(*pv) + adv);
        }
    }
}

void attention_core_forward(floatX *out, floatM *att, const floatX *q, const floatX *k, const floatX *v,
                            size_t v_stride, const floatM *alibi, int B, int T, int NA, int KVH, int HD) {
    size_t rows = (size_t)B * NA * T;
    if (rows == 0) return;
    attention_core_forward_kernel<<<(unsigned)((rows + 7) / 8), 256>>>(out, att, q, k, v, v_stride, alibi, B, T, NA,
                                                                     KVH, HD, (float)(1.0 / sqrt((double)HD)));
    cudaCheckLaunch();
}

void attention_core_backward(floatX *dq, floatX *dk, floatX *dv, const floatX *dout, const floatM *att,
                             const floatX *q, const floatX *k, const floatX *v, size_t v_stride,
                             int B, int T, int NA, int KVH, int HD) {
    size_t rows = (size_t)B * NA * T;
    if (rows == 0) return;
    float scale = (float)(1.0 / sqrt((double)HD));
    float *psum = (float *)scratch_get(SCR_PSUM, rows * sizeof(float));
    attention_core_backward_dq_kernel<<<(unsigned)((rows + 7) / 8), 256>>>(dq, psum, dout, att, k, v, v_stride, B, T,
                                                                         NA, KVH, HD, scale);
    cudaCheckLaunch();
    size_t krows = (size_t)B * KVH * T;
    attention_core_backward_dkv_kernel<<<(unsigned)((krows + 7) / 8), 256>>>(dk, dv, psum, dout, att, q, v, v_stride,
                                                                           B, T, NA, KVH, HD, scale);
    cudaCheckLaunch();
}

#include "cuda/attention_common.cuh"
#include "cuda/attention_simt.cuh"
#include "cuda/attention_mma.cuh"
#include "cuda/attention_sm90.cuh"

/* ------------------------------------------------------------------------------------------------ attention dispatch */
/* Which kernels run, forward and backward: the Hopper ones (sm_90a, cuda/attention_sm90.cuh) where they apply, else
   the mma.sync ones (bf16, head dims 64 and 128, cuda/attention_mma.cuh), else the fp32-math ones (attention_simt). */

static int attn_hdp(int HD) {
    if (HD <= 16) return 16;
    if (HD <= 32) return 32;
    if (HD <= 64) return 64;
    if (HD <= 128) return 128;
    return 0;
}

template <int HDP> static void attn_set_smem(void) {
    static int done = 0;
    if (done) return;
    cudaCheck(cudaFuncSetAttribute(attn_fwd_kernel<HDP>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)attn_fwd_smem<HDP>()));
    cudaCheck(cudaFuncSetAttribute(attn_bwd_dq_kernel<HDP>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)attn_dq_smem<HDP>()));
    cudaCheck(cudaFuncSetAttribute(attn_bwd_dkv_kernel<HDP>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)attn_dkv_smem<HDP>()));
    done = 1;
}

static AttnArgs attn_args(const PosEmb *pe, int B, int T, int HQ, int KVH, int HD) {
    AttnArgs A;
    memset(&A, 0, sizeof(A));
    A.pe = *pe;
    A.B = B; A.T = T; A.HQ = HQ; A.KVH = KVH; A.HD = HD;
    A.NA = HQ * (pe->imag ? 2 : 1);
    A.qgroup = HQ / KVH;
    A.agroup = A.NA / KVH;
    A.stride = (size_t)(HQ + 2 * KVH) * HD;
    A.scale = (float)(1.0 / sqrt((double)HD));
    A.scale2 = A.scale * LOG2E_F;
    return A;
}

static void attn_check_shape(const PosEmb *pe, int B, int T, int HQ, int KVH, int HD) {
    char msg[256];
    if (attn_hdp(HD) == 0) {
        snprintf(msg, sizeof(msg), "the CUDA attention supports head dims up to 128 (this model has %d)", HD);
        fail(msg, "use more heads (dim / heads <= 128) or the CPU build");
    }
    if (KVH < 1 || HQ % KVH != 0 || B < 1 || T < 1) {
        snprintf(msg, sizeof(msg), "attention got B %d, T %d, q heads %d, kv heads %d", B, T, HQ, KVH);
        fail(msg, "kv heads must divide q heads; B and T must be >= 1");
    }
    if (pe->rot > 0 && pe->T_table < T) {
        snprintf(msg, sizeof(msg), "position tables hold %d positions but T is %d", pe->T_table, T);
        fail(msg, "build the position-embedding tables for at least T positions");
    }
    if (B > 65535 || HQ * (pe->imag ? 2 : 1) > 65535) fail("attention: batch or head count above 65535", "lower --batch");
}

static void attn_fwd_launch(const AttnArgs *A) {
#ifndef ROPEPP_FP32
    if (sm90_fwd_launch(A)) return;   /* Hopper (sm_90a): wgmma + TMA */
    if (tc_fwd_ok(A)) { tc_fwd_launch(A); return; }
#endif
    dim3 grid((unsigned)((A->T + ATT_B - 1) / ATT_B), (unsigned)A->NA, (unsigned)A->B);
    switch (attn_hdp(A->HD)) {
    case 16: attn_set_smem<16>(); attn_fwd_kernel<16><<<grid, ATT_THREADS, attn_fwd_smem<16>()>>>(*A); break;
    case 32: attn_set_smem<32>(); attn_fwd_kernel<32><<<grid, ATT_THREADS, attn_fwd_smem<32>()>>>(*A); break;
    case 64: attn_set_smem<64>(); attn_fwd_kernel<64><<<grid, ATT_THREADS, attn_fwd_smem<64>()>>>(*A); break;
    default: attn_set_smem<128>(); attn_fwd_kernel<128><<<grid, ATT_THREADS, attn_fwd_smem<128>()>>>(*A); break;
    }
    cudaCheckLaunch();
}

#ifndef ROPEPP_FP32
/* bytes of dS^T tiles one sequence needs, and the most the backward may hold (ROPEPP_ATTN_DS_MB, default 1024,
   4096 on Hopper; 0 = always recompute S and dP in the dq kernel) */
static size_t tc_ds_bytes_per_seq(const AttnArgs *A) {
    const size_t n = (size_t)(A->T + 63) / 64;
    return (size_t)A->NA * (n * (n + 1) / 2) * 4096 * sizeof(bf16);
}
static size_t tc_ds_cap(void) {
    const char *e = getenv("ROPEPP_ATTN_DS_MB");
    if (e != NULL && e[0] != '\0') return (size_t)atol(e) << 20;
    /* Hopper: 4096, where the wgmma dq from the tiles is much faster than recomputing, and one chunk then holds
       rope / EH at T 16k and EC at T 8k (H200, bench/attention/2026-12-04-sm90-bwd: rope T 16k backward 4.37 ms
       with 4096 against 7.36 ms in chunks of one kv head with 1024, dq then still on mma.sync) */
    return (size_t)(attention_sm90_active() ? 4096 : 1024) << 20;
}
/* dk/dv of one chunk: Hopper (wgmma + TMA) where it applies, else mma.sync */
template <int HD> static void attn_dkv_launch(const AttnArgs *A, int ng, int nb, int BK) {
    if (sm90_dkv_launch(A, ng, nb)) return;   /* Hopper (sm_90a): wgmma + TMA */
    dim3 gk((unsigned)ng, (unsigned)nb, (unsigned)((A->T + BK - 1) / BK));
    if (BK == 64) tc_bwd_dkv_kernel<HD, 64><<<gk, 128, tc_dkv_smem<HD, 64>()>>>(*A);
    else tc_bwd_dkv_kernel<HD, 128><<<gk, 256, tc_dkv_smem<HD, 128>()>>>(*A);
    cudaCheckLaunch();
}
/* chunks of n items of which at most cap (>= 1) fit at once, evened out: the chunk size */
static int even_chunk(int n, size_t cap) {
    int c = cap < 1 ? 1 : cap < (size_t)n ? (int)cap : n;
    const int nchunks = (n + c - 1) / c;
    return (n + nchunks - 1) / nchunks;
}
/* Where the dS^T tiles fit ROPEPP_ATTN_DS_MB: per chunk of sequences (or, for long ones, of one sequence's kv
   heads), the dk/dv kernel (storing dS^T) then dq from dS (5 tile matmuls per (query, key) tile pair in all); else
   the dq kernel that recomputes S and dP (7). Both are deterministic. Chunks whose dk/dv grid has fewer than
   ROPEPP_ATTN_DS_MIN_BLOCKS (512) blocks leave the GPU half idle (measured on an H100: ropepp_eh B2 T8192 backward
   4.9 ms in chunks of one sequence, 3.7 ms recomputing), so they recompute too. */
static size_t tc_ds_min_blocks(void) {
    const char *e = getenv("ROPEPP_ATTN_DS_MIN_BLOCKS");
    if (e != NULL && e[0] != '\0') return (size_t)atol(e);
    return attention_sm90_active() ? 0 : 512;
}
template <int HD> static void attn_bwd_tc_launch(const AttnArgs *A) {
    const int P = tc_pack(A->agroup), BMpos = TC_BM / P, BK = tc_dkv_bk(A);
    const unsigned nqt = (unsigned)((A->T + BMpos - 1) / BMpos);
    tc_set_smem<HD>();
    const size_t per_seq = tc_ds_bytes_per_seq(A), per_g = per_seq / A->KVH, cap = tc_ds_cap();
    const bool fits = per_g > 0 && per_g <= cap;   /* one kv head of one sequence at least */
    const int nb = fits && per_seq <= cap ? even_chunk(A->B, cap / per_seq) : 1;
    const int ng = !fits ? 0 : per_seq <= cap ? A->KVH : even_chunk(A->KVH, cap / per_g);
    if (fits && (size_t)nb * ng * ((A->T + BK - 1) / BK) >= tc_ds_min_blocks()) {
        AttnArgs C = *A;
        C.dS = (bf16 *)scratch_get(SCR_DS, (size_t)nb * ng * per_g);
        C.ntri = (int)(((A->T + 63) / 64) * ((A->T + 63) / 64 + 1) / 2);
        for (int b0 = 0; b0 < A->B; b0 += nb)
            for (int g0 = 0; g0 < A->KVH; g0 += ng) {
                const int cb = A->B - b0 < nb ? A->B - b0 : nb, cg = A->KVH - g0 < ng ? A->KVH - g0 : ng;
                C.b0 = b0;
                C.g0 = g0;
                C.nag = cg * A->agroup;
                attn_dkv_launch<HD>(&C, cg, cb, BK);
                if (sm90_dq_launch(&C, cb, (size_t)nb * ng * per_g)) continue;   /* Hopper (sm_90a) */
                tc_bwd_dq_ds_kernel<HD><<<dim3((unsigned)(C.nag / P), (unsigned)cb, nqt), TC_THREADS,
                                          tc_dq_ds_smem<HD>()>>>(C, P);
                cudaCheckLaunch();
            }
        return;
    }
    tc_bwd_dq_kernel<HD><<<dim3((unsigned)(A->NA / P), (unsigned)A->B, nqt), TC_THREADS, tc_dq_smem<HD>()>>>(*A, P);
    cudaCheckLaunch();
    attn_dkv_launch<HD>(A, A->KVH, A->B, BK);
}
#endif

static void attn_bwd_launch(const AttnArgs *A) {
#ifndef ROPEPP_FP32
    if (tc_bwd_ok(A)) {
        if (A->HD == 64) attn_bwd_tc_launch<64>(A);
        else attn_bwd_tc_launch<128>(A);
        return;
    }
#endif
    unsigned nt = (unsigned)((A->T + ATT_B - 1) / ATT_B);
    dim3 gq(nt, (unsigned)A->HQ, (unsigned)A->B), gk(nt, (unsigned)A->KVH, (unsigned)A->B);
    switch (attn_hdp(A->HD)) {
    case 16:
        attn_set_smem<16>();
        attn_bwd_dq_kernel<16><<<gq, ATT_THREADS, attn_dq_smem<16>()>>>(*A);
        attn_bwd_dkv_kernel<16><<<gk, ATT_THREADS, attn_dkv_smem<16>()>>>(*A);
        break;
    case 32:
        attn_set_smem<32>();
        attn_bwd_dq_kernel<32><<<gq, ATT_THREADS, attn_dq_smem<32>()>>>(*A);
        attn_bwd_dkv_kernel<32><<<gk, ATT_THREADS, attn_dkv_smem<32>()>>>(*A);
        break;
    case 64:
        attn_set_smem<64>();
        attn_bwd_dq_kernel<64><<<gq, ATT_THREADS, attn_dq_smem<64>()>>>(*A);
        attn_bwd_dkv_kernel<64><<<gk, ATT_THREADS, attn_dkv_smem<64>()>>>(*A);
        break;
    default:
        attn_set_smem<128>();
        attn_bwd_dq_kernel<128><<<gq, ATT_THREADS, attn_dq_smem<128>()>>>(*A);
        attn_bwd_dkv_kernel<128><<<gk, ATT_THREADS, attn_dkv_smem<128>()>>>(*A);
        break;
    }
    cudaCheckLaunch();
}

size_t attention_softmax_saved_size(int B, int T, int NA) { return (size_t)B * NA * T; }

void attention_forward(floatX *out, floatX *qr, floatX *kr, floatM *softmax_saved, const floatX *qkv, const PosEmb *pe,
                       int B, int T, int HQ, int KVH, int HD) {
    attn_check_shape(pe, B, T, HQ, KVH, HD);
    AttnArgs A = attn_args(pe, B, T, HQ, KVH, HD);
    /* keys: rotated once, stored (the KV cache's content); the attention kernel reads kr */
    rotary_forward(kr, qkv + (size_t)HQ * HD, A.stride, pe, 0, 1, B, T, KVH, HD);
    A.qkv = qkv; A.out = out; A.qr = qr; A.kr = kr; A.lse2 = softmax_saved;
    A.kptr = kr; A.k_bstride = (size_t)T * KVH * HD; A.k_rstride = (size_t)KVH * HD;
    A.vptr = qkv + (size_t)(HQ + KVH) * HD; A.v_bstride = (size_t)T * A.stride; A.v_rstride = A.stride;
    A.qpos0 = 0; A.nkeys = T;
    attn_fwd_launch(&A);
}

void attention_backward(floatX *dqkv, const floatX *dout, const floatX *qr, const floatX *kr, const floatM *softmax_saved,
                        const floatX *qkv, const floatX *out, const PosEmb *pe, int B, int T, int HQ, int KVH,
                        int HD) {
    attn_check_shape(pe, B, T, HQ, KVH, HD);
    AttnArgs A = attn_args(pe, B, T, HQ, KVH, HD);
    size_t rows = (size_t)B * T * A.NA;
    float *D = (float *)scratch_get(SCR_D, rows * sizeof(float));
    attn_rowdot_kernel<<<(unsigned)((rows + 7) / 8), 256>>>(D, dout, out, B, T, A.NA, HD);
    cudaCheckLaunch();
    A.qkv = qkv; A.qr = (floatX *)qr; A.kr = kr; A.lse2_in = softmax_saved; A.dout = dout; A.D = D; A.dqkv = dqkv;
    attn_bwd_launch(&A);
}

#include "cuda/decode.cuh"

/* split count of the decode kernel: as many blocks as the GPU holds at once (SMs x resident blocks of this kernel,
   one wave of equal work, no tail) over (rows, kv heads, head chunks), with at least DEC_MIN_KEYS keys per split of
   a full cache; a function of the launch shape only, so a captured step replays at any position (the kernel divides
   the current prefix by it) */
#define DEC_MIN_KEYS 128
template <int HM> static int decode_nsplit(size_t pairs, int Tmax) {
    static int slots = 0;
    if (slots == 0) {
        int dev = 0, sms = 0, per_sm = 0;
        cudaCheck(cudaGetDevice(&dev));
        cudaCheck(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
        cudaCheck(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, attn_decode_kernel<HM>, DEC_THREADS, 0));
        slots = sms * (per_sm > 0 ? per_sm : 1);
    }
    size_t want = (size_t)slots / pairs;
    size_t cap = ((size_t)Tmax + DEC_MIN_KEYS - 1) / DEC_MIN_KEYS;
    if (want > cap) want = cap;
    if (want < 1) want = 1;
    return (int)want;
}

/* attention_probs_forward (ropepp.h): one block per (query row, attention head, batch). Each warp takes keys
   j = warp, warp + 8, ...: its lanes split the head dim of q_t . k_j (coalesced reads of k_j), then a shuffle sum;
   the scores go into the row, then a block max, exp and sum in double, and the row is divided by the sum. */
__global__ void attention_probs_kernel(float *out, const floatX *qr, const floatX *kr, const floatM *alibi, int T, int NA,
                                       int KVH, int HD, int t0, int nrows) {
    int r = blockIdx.x, a = blockIdx.y, b = blockIdx.z, t = t0 + r, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int nwarps = blockDim.x >> 5;
    extern __shared__ float probs_sh[];   /* q_t (HD floats), then one double per warp for the reductions */
    float *qs = probs_sh;
    double *red = (double *)(probs_sh + ((HD + 1) & ~1));
    const floatX *q = qr + (((size_t)b * T + t) * NA + a) * HD;
    for (int d = threadIdx.x; d < HD; d += blockDim.x) qs[d] = x2f(q[d]);
    __syncthreads();
    float *row = out + (((size_t)b * NA + a) * nrows + r) * T;
    const size_t ks = (size_t)KVH * HD;
    const floatX *k0 = kr + ((size_t)b * T * KVH + a / (NA / KVH)) * HD;
    double scale = 1.0 / sqrt((double)HD), slope = alibi != NULL ? (double)alibi[a] : 0.0;
    for (int j = warp; j <= t; j += nwarps) {
        const floatX *kj = k0 + (size_t)j * ks;
        float s = 0.0f;
        for (int d = lane; d < HD; d += 32) s += qs[d] * x2f(kj[d]);
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) row[j] = (float)((double)s * scale - slope * (t - j));
    }
    __syncthreads();
    double mx = -INFINITY;
    for (int j = threadIdx.x; j <= t; j += blockDim.x) mx = fmax(mx, (double)row[j]);
    for (int o = 16; o > 0; o >>= 1) mx = fmax(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if (lane == 0) red[warp] = mx;
    __syncthreads();
    mx = red[0];
    for (int w = 1; w < nwarps; w++) mx = fmax(mx, red[w]);
    __syncthreads();
    double sum = 0.0;
    for (int j = threadIdx.x; j <= t; j += blockDim.x) { double e = exp((double)row[j] - mx); row[j] = (float)e; sum += e; }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) red[warp] = sum;
    __syncthreads();
    sum = 0.0;
    for (int w = 0; w < nwarps; w++) sum += red[w];
    for (int j = threadIdx.x; j < T; j += blockDim.x) row[j] = j <= t ? (float)(row[j] / sum) : 0.0f;
}

void attention_probs_forward(float *out, const floatX *qr, const floatX *kr, const floatM *alibi, int B, int T, int NA,
                             int KVH, int HD, int t0, int t1) {
    if (t1 <= t0 || B <= 0) return;
    dim3 grid((unsigned)(t1 - t0), (unsigned)NA, (unsigned)B);
    const int threads = 256;
    size_t sh = (size_t)((HD + 1) & ~1) * sizeof(float) + (threads / 32) * sizeof(double);
    attention_probs_kernel<<<grid, threads, sh>>>(out, qr, kr, alibi, T, NA, KVH, HD, t0, t1 - t0);
    cudaCheck(cudaGetLastError());
}

void attention_cached_forward(floatX *out, floatX *kcache, floatX *vcache, const floatX *qkv, const PosEmb *pe,
                              int pos0, const int *pos_dev, int B, int Tn, int Tmax, int HQ, int KVH, int HD) {
    attn_check_shape(pe, B, Tn, HQ, KVH, HD);
    char msg[256];
    if (pos0 < 0 || pos0 + Tn > Tmax) {
        snprintf(msg, sizeof(msg), "cached attention: positions %d..%d do not fit a cache of %d", pos0, pos0 + Tn - 1, Tmax);
        fail(msg, "make the KV cache longer (Tmax) or start a new sequence");
    }
    if (pe->rot > 0 && pe->T_table < Tmax) {
        snprintf(msg, sizeof(msg), "position tables hold %d positions but the cache has %d", pe->T_table, Tmax);
        fail(msg, "build the position-embedding tables for the whole cache (kvcache_init does)");
    }
    AttnArgs A = attn_args(pe, B, Tn, HQ, KVH, HD);
    int W = pe->rot / 2 + HD - pe->rot;
    size_t total = (size_t)B * Tn * KVH * W;
    kv_append_kernel<<<grid_for(total, 256), 256>>>(kcache, vcache, qkv, *pe, pos_dev, pos0, Tn, Tmax, HQ, KVH, HD,
                                                    total);
    cudaCheckLaunch();
    if (Tn <= 4) {
        /* decoding: split-K over the cache, every head of a GQA group from one read of each K/V row */
        int group = A.NA / KVH, hm = group >= 4 ? 4 : group >= 2 ? 2 : 1, nchunk = (group + hm - 1) / hm;
        size_t rows = (size_t)B * Tn;
        if (rows > 65535 || (size_t)KVH * nchunk > 65535) fail("decode attention: batch x new tokens or kv heads above 65535", "lower the batch");
        size_t pairs = rows * KVH * nchunk;
        int nsplit = hm == 4 ? decode_nsplit<4>(pairs, Tmax) : hm == 2 ? decode_nsplit<2>(pairs, Tmax)
                                                                        : decode_nsplit<1>(pairs, Tmax);
        size_t np = rows * A.NA * nsplit;
        float *part = (float *)scratch_get(SCR_DEC, np * (2 + (size_t)HD) * sizeof(float));
        float *pm = part, *pl = part + np, *pacc = part + 2 * np;
        dim3 grid((unsigned)nsplit, (unsigned)(KVH * nchunk), (unsigned)rows);
        if (hm == 4)
            attn_decode_kernel<4><<<grid, DEC_THREADS>>>(pm, pl, pacc, qkv, kcache, vcache, *pe, pos_dev, pos0, Tn, Tmax,
                                                         HQ, KVH, HD, nsplit, nchunk, A.scale2);
        else if (hm == 2)
            attn_decode_kernel<2><<<grid, DEC_THREADS>>>(pm, pl, pacc, qkv, kcache, vcache, *pe, pos_dev, pos0, Tn, Tmax,
                                                         HQ, KVH, HD, nsplit, nchunk, A.scale2);
        else
            attn_decode_kernel<1><<<grid, DEC_THREADS>>>(pm, pl, pacc, qkv, kcache, vcache, *pe, pos_dev, pos0, Tn, Tmax,
                                                         HQ, KVH, HD, nsplit, nchunk, A.scale2);
        cudaCheckLaunch();
        const size_t comb_smem = ((size_t)nsplit + DEC_COMBINE_THREADS / 32) * sizeof(float);
        if (comb_smem > 48 * 1024) fail("decode attention: more splits than the combine's shared memory holds", "lower the batch");
        attn_decode_combine_kernel<<<(unsigned)(rows * A.NA), DEC_COMBINE_THREADS, comb_smem>>>(
            out, pm, pl, pacc, HD, nsplit);
        cudaCheckLaunch();
    } else {
        /* prefill: the flash kernel with absolute query positions (pos0: prefill is never captured) and the cache
           as keys and values */
        A.qkv = qkv; A.out = out; A.qr = NULL; A.lse2 = NULL;
        A.kptr = kcache; A.k_bstride = (size_t)Tmax * KVH * HD; A.k_rstride = (size_t)KVH * HD;
        A.vptr = vcache; A.v_bstride = A.k_bstride; A.v_rstride = A.k_rstride;
        A.qpos0 = pos0; A.nkeys = pos0 + Tn;
        attn_fwd_launch(&A);
    }
}

/* ------------------------------------------------------------------------------------------------ sampling */

void sample_forward(int *tokens, uint64_t *rng, const floatX *logits, size_t row_stride, int B, int V,
                    double temperature, int top_k, double top_p) {
    if (B < 1 || V < 1 || B > 65535) fail("sample_forward: batch must be in [1, 65535] and the vocabulary >= 1", "lower the batch");
    int sorted = temperature > 0.0 && ((top_k > 0 && top_k < V) || top_p < 1.0);
    size_t n = (size_t)B * V, temp = 0;
    /* scratch: probabilities and tokens (B, V), their sorted copies, the segment offsets, then cub's storage */
    if (sorted)
        cudaCheck(cub::DeviceSegmentedRadixSort::SortPairsDescending(NULL, temp, (const double *)NULL, (double *)NULL,
                                                                     (const int *)NULL, (int *)NULL, (int)n, B,
                                                                     (const int *)NULL, (const int *)NULL, 0, 64,
                                                                     cudaStreamPerThread));
    size_t off_idx = n * sizeof(double), off_p2 = off_idx + n * sizeof(int);
    off_p2 = (off_p2 + 255) / 256 * 256;
    size_t off_i2 = off_p2 + n * sizeof(double), off_seg = off_i2 + n * sizeof(int);
    off_seg = (off_seg + 255) / 256 * 256;
    size_t off_tmp = (off_seg + (size_t)(B + 1) * sizeof(int) + 255) / 256 * 256;
    char *buf = (char *)scratch_get(SCR_SAMPLE, temperature > 0.0 ? off_tmp + temp : 16);
    double *prob = (double *)buf, *prob2 = (double *)(buf + off_p2);
    int *idx = (int *)(buf + off_idx), *idx2 = (int *)(buf + off_i2), *seg = (int *)(buf + off_seg);
    sample_probs_kernel<<<B, SAMPLE_THREADS>>>(tokens, prob, idx, logits, row_stride, V, temperature);
    cudaCheckLaunch();
    if (temperature <= 0.0) return;
    if (sorted) {
        segment_offsets_kernel<<<(B + 1 + 255) / 256, 256>>>(seg, B, V);
        cudaCheckLaunch();
        cudaCheck(cub::DeviceSegmentedRadixSort::SortPairsDescending(buf + off_tmp, temp, prob, prob2, idx, idx2,
                                                                     (int)n, B, seg, seg + 1, 0, 64,
                                                                     cudaStreamPerThread));
    }
    sample_select_kernel<<<B, SAMPLE_THREADS>>>(tokens, sorted ? prob2 : prob, sorted ? idx2 : idx, rng, V, top_k,
                                                top_p);
    cudaCheckLaunch();
    add_u64_kernel<<<1, 1>>>(rng, (uint64_t)B * 0x9E3779B97F4A7C15ull);
    cudaCheckLaunch();
}

/* ------------------------------------------------------------------------------------------------ swiglu */

__global__ void swiglu_forward_kernel(floatX *out, const floatX *inp, int F, size_t n) {
    GRID_STRIDE(i, n) {
        size_t row = i / F, c = i % F;
        const floatX *x = inp + row * 2 * F;
        float g = x2f(x[c]), u = x2f(x[F + c]);
        out[i] = f2x(g / (1.0f + expf(-g)) * u);
    }
}
/* the same over vectors of XVEC outputs (F a multiple of XVEC) */
__global__ void swiglu_forward_vec_kernel(floatX *out, const floatX *inp, int F, size_t nv) {
    GRID_STRIDE(v, nv) {
        size_t i = v * XVEC, row = i / F, c = i % F;
        const floatX *x = inp + row * 2 * F;
        float g[XVEC], u[XVEC];
        ldx(g, x + c);
        ldx(u, x + F + c);
#pragma unroll
        for (int k = 0; k < XVEC; k++) g[k] = g[k] / (1.0f + expf(-g[k])) * u[k];
        stx(out + i, g);
    }
}

__global__ void swiglu_backward_kernel(floatX *dinp, const floatX *dout, const floatX *inp, int F, size_t n) {
    GRID_STRIDE(i, n) {
        size_t row = i / F, c = i % F;
        const floatX *x = inp + row * 2 * F;
        floatX *dx = dinp + row * 2 * F;
        float g = x2f(x[c]), u = x2f(x[F + c]), d = x2f(dout[i]);
        float sg = 1.0f / (1.0f + expf(-g));
        dx[F + c] = f2x(d * g * sg);
        dx[c] = f2x(d * u * sg * (1.0f + g * (1.0f - sg)));
    }
}
__global__ void swiglu_backward_vec_kernel(floatX *dinp, const floatX *dout, const floatX *inp, int F, size_t nv) {
    GRID_STRIDE(v, nv) {
        size_t i = v * XVEC, row = i / F, c = i % F;
        const floatX *x = inp + row * 2 * F;
        floatX *dx = dinp + row * 2 * F;
        float g[XVEC], u[XVEC], d[XVEC], dg[XVEC], du[XVEC];
        ldx(g, x + c);
        ldx(u, x + F + c);
        ldx(d, dout + i);
#pragma unroll
        for (int k = 0; k < XVEC; k++) {
            float sg = 1.0f / (1.0f + expf(-g[k]));
            du[k] = d[k] * g[k] * sg;
            dg[k] = d[k] * u[k] * sg * (1.0f + g[k] * (1.0f - sg));
        }
        stx(dx + F + c, du);
        stx(dx + c, dg);
    }
}

void swiglu_forward(floatX *out, const floatX *inp, int N, int F) {
    size_t n = (size_t)N * F;
    if (n == 0) return;
    if (vec_ok(out, (size_t)F) && vec_ok(inp, (size_t)F))
        swiglu_forward_vec_kernel<<<grid_for(n / XVEC, 256), 256>>>(out, inp, F, n / XVEC);
    else
        swiglu_forward_kernel<<<grid_for(n, 256), 256>>>(out, inp, F, n);
    cudaCheckLaunch();
}

void swiglu_backward(floatX *dinp, const floatX *dout, const floatX *inp, int N, int F) {
    size_t n = (size_t)N * F;
    if (n == 0) return;
    if (vec_ok(dinp, (size_t)F) && vec_ok(dout, (size_t)F) && vec_ok(inp, (size_t)F))
        swiglu_backward_vec_kernel<<<grid_for(n / XVEC, 256), 256>>>(dinp, dout, inp, F, n / XVEC);
    else
        swiglu_backward_kernel<<<grid_for(n, 256), 256>>>(dinp, dout, inp, F, n);
    cudaCheckLaunch();
}

/* ------------------------------------------------------------------------------------------------ cross-entropy */

/* One block per row, fp32. Each thread keeps an online (max, sum of exp(x - max)) over its elements, read 16
   bytes at a time where the row allows it (V a multiple of 16 bytes of floatX), then the block merges them: one
   read of the row. */
__device__ __forceinline__ void online_add(float &m, float &s, float v) {
    if (v > m) { s = s * expf(m - v) + 1.0f; m = v; }
    else s += expf(v - m);
}
/* returns the row max in mx and the sum of exp(x - mx) */
__device__ void row_softmax_stats(const floatX *x, int V, bool vec, float &mx, float &sum) {
    float m = -INFINITY, s = 0.0f;
    if (vec) {
        for (int i = threadIdx.x * XVEC; i < V; i += blockDim.x * XVEC) {
            float e[XVEC];
            ldx(e, x + i);
#pragma unroll
            for (int k = 0; k < XVEC; k++) online_add(m, s, e[k]);
        }
    } else {
        for (int i = threadIdx.x; i < V; i += blockDim.x) online_add(m, s, x2f(x[i]));
    }
    mx = block_max(m);
    sum = block_sum(m == -INFINITY ? 0.0f : s * expf(m - mx));
}

__global__ void crossentropy_forward_kernel(float *losses, const floatX *logits, const int *targets, int V, bool vec) {
    int n = blockIdx.x;
    int y = targets[n];
    if (y < 0) { if (threadIdx.x == 0) losses[n] = 0.0f; return; }
    const floatX *x = logits + (size_t)n * V;
    float mx, sum;
    row_softmax_stats(x, V, vec, mx, sum);
    if (threadIdx.x == 0) losses[n] = mx + logf(sum) - x2f(x[y]);
}

/* dlogits = dloss (softmax - onehot), written; every thread reads its elements before writing the same ones, after
   the block-wide max and sum, so dlogits may be logits. With losses (the fused op) also the row's loss, from the
   target logit read before any write. */
__global__ void crossentropy_backward_kernel(floatX *dlogits, float *losses, const floatX *logits, const int *targets,
                                             const float *weights, float dloss_all, int V, bool vec) {
    int n = blockIdx.x;
    int y = targets[n];
    const float dloss = weights != NULL ? dloss_all * weights[n] : dloss_all;
    const floatX *x = logits + (size_t)n * V;
    floatX *dx = dlogits + (size_t)n * V;
    if (y < 0) {
        if (losses != NULL && threadIdx.x == 0) losses[n] = 0.0f;
        for (int i = threadIdx.x; i < V; i += blockDim.x) dx[i] = f2x(0.0f);
        return;
    }
    const float xy = losses != NULL && threadIdx.x == 0 ? x2f(x[y]) : 0.0f;
    float mx, sum;
    row_softmax_stats(x, V, vec, mx, sum);
    if (losses != NULL && threadIdx.x == 0) losses[n] = mx + logf(sum) - xy;
    const float inv = 1.0f / sum;
    if (vec) {
        for (int i = threadIdx.x * XVEC; i < V; i += blockDim.x * XVEC) {
            float e[XVEC];
            ldx(e, x + i);
#pragma unroll
            for (int k = 0; k < XVEC; k++) e[k] = dloss * (expf(e[k] - mx) * inv - (i + k == y ? 1.0f : 0.0f));
            stx(dx + i, e);
        }
    } else {
        for (int i = threadIdx.x; i < V; i += blockDim.x) {
            float p = expf(x2f(x[i]) - mx) * inv;
            dx[i] = f2x(dloss * (p - (i == y ? 1.0f : 0.0f)));
        }
    }
}

void crossentropy_forward(floatM *losses, const floatX *logits, const int *targets, int N, int V) {
    if (N <= 0) return;
    crossentropy_forward_kernel<<<N, 256>>>(losses, logits, targets, V, vec_ok(logits, (size_t)V));
    cudaCheckLaunch();
}

void crossentropy_backward(floatX *dlogits, const floatX *logits, const int *targets, const floatM *weights, double dloss,
                           int N, int V) {
    if (N <= 0) return;
    crossentropy_backward_kernel<<<N, 256>>>(dlogits, NULL, logits, targets, weights, (float)dloss, V,
                                             vec_ok(logits, (size_t)V) && vec_ok(dlogits, (size_t)V));
    cudaCheckLaunch();
}

void crossentropy_forward_backward(floatM *losses, floatX *dlogits, const floatX *logits, const int *targets,
                                   const floatM *weights, double dloss, int N, int V) {
    if (N <= 0) return;
    crossentropy_backward_kernel<<<N, 256>>>(dlogits, losses, logits, targets, weights, (float)dloss, V,
                                             vec_ok(logits, (size_t)V) && vec_ok(dlogits, (size_t)V));
    cudaCheckLaunch();
}

/* ------------------------------------------------------------------------------------------------ optimizer */

/* torch.optim.AdamW, in double like the CPU body; fp32 master and moments, the floatX copy written */
__global__ void adamw_kernel(floatX *params, float *master, const floatX *grads, float *m, float *v, size_t n,
                             double lr, double beta1, double beta2, double eps, double weight_decay, double grad_scale,
                             double step_size, double bc2_sqrt) {
    GRID_STRIDE(i, n) {
        double g = (double)x2f(grads[i]) * grad_scale;
        double p = (double)master[i] * (1.0 - lr * weight_decay);
        double mi = (double)m[i] + (g - (double)m[i]) * (1.0 - beta1);
        double vi = (double)v[i] * beta2 + (1.0 - beta2) * g * g;
        p -= step_size * mi / (sqrt(vi) / bc2_sqrt + eps);
        m[i] = (float)mi;
        v[i] = (float)vi;
        float pf = (float)p;
        master[i] = pf;
        params[i] = f2x(pf);
    }
}

void adamw_update(floatX *params, floatM *master, const floatX *grads, floatM *m, floatM *v, size_t n, double lr,
                  double beta1, double beta2, double eps, double weight_decay, double grad_scale, int step) {
    if (n == 0) return;
    double bc1 = 1.0 - pow(beta1, step), bc2_sqrt = sqrt(1.0 - pow(beta2, step));
    adamw_kernel<<<grid_for(n, 256), 256>>>(params, master, grads, m, v, n, lr, beta1, beta2, eps, weight_decay,
                                            grad_scale, lr / bc1, bc2_sqrt);
    cudaCheckLaunch();
}

/* sum of squares: a fixed number of blocks (a function of n only) of double partial sums, then one ordered sum */
#define NORM_THREADS 256
__global__ void norm_partial_kernel(double *partial, const floatX *g, size_t n) {
    __shared__ double buf[NORM_THREADS];
    double acc = 0.0;
    GRID_STRIDE(i, n) { double x = (double)x2f(g[i]); acc += x * x; }
    buf[threadIdx.x] = acc;
    __syncthreads();
    for (int s = NORM_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = buf[0];
}

__global__ void norm_finish_kernel(float *out, const double *partial, int nb) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    double s = 0.0;
    for (int i = 0; i < nb; i++) s += partial[i];
    out[0] += (float)s;
}

void global_norm_squared(floatM *out, const floatX *g, size_t n) {
    size_t nb = (n + NORM_THREADS * 16 - 1) / (NORM_THREADS * 16);
    if (nb < 1) nb = 1;
    if (nb > 1024) nb = 1024;
    double *partial = (double *)scratch_get(SCR_PARTIAL, nb * sizeof(double));
    norm_partial_kernel<<<(unsigned)nb, NORM_THREADS>>>(partial, g, n);
    cudaCheckLaunch();
    norm_finish_kernel<<<1, 32>>>(out, partial, (int)nb);
    cudaCheckLaunch();
}

__global__ void copy_master_kernel(floatX *params, const float *master, size_t n) {
    GRID_STRIDE(i, n) params[i] = f2x(master[i]);
}

void copy_master_to_params(floatX *params, const floatM *master, size_t n) {
    if (n == 0) return;
    copy_master_kernel<<<grid_for(n, 256), 256>>>(params, master, n);
    cudaCheckLaunch();
}

/* ------------------------------------------------------------------------------------------------ memory */

void *backend_malloc(size_t bytes) {
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes > 0 ? bytes : 16);
    if (e != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        fprintf(stderr, "error: cudaMalloc of %zu bytes failed (%s); the GPU has %zu of %zu MiB free\n", bytes,
                cudaGetErrorString(e), free_b >> 20, total_b >> 20);
        fprintf(stderr, "HINT: %s\n", cuda_hint(e));   /* out of memory, or no usable device (no GPU, old driver) */
        exit(1);
    }
    mem_note_alloc(p, bytes > 0 ? bytes : 16);
    return p;
}
void backend_free(void *p) {
    if (p == NULL) return;
    cudaCheck(cudaFree(p));
    mem_note_free(p);
}
void backend_to_host(void *dst, const void *src, size_t bytes) {
    if (bytes) cudaCheck(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}
void backend_from_host(void *dst, const void *src, size_t bytes) {
    if (bytes) cudaCheck(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}
void backend_zero(void *p, size_t bytes) { if (bytes) cudaCheck(cudaMemset(p, 0, bytes)); }
void backend_add_int(int *p, int n) {
    add_int_kernel<<<1, 1>>>(p, n);
    cudaCheckLaunch();
}
int backend_graph_begin(void) {
#ifdef CUDA_API_PER_THREAD_DEFAULT_STREAM
    cudaCheck(cudaStreamBeginCapture(cudaStreamPerThread, cudaStreamCaptureModeThreadLocal));
    return 1;
#else
    return 0;   /* the kernels go to the legacy stream, which cannot be captured */
#endif
}
void *backend_graph_end(void) {
    cudaGraph_t g = NULL;
    cudaGraphExec_t exec = NULL;
    cudaCheck(cudaStreamEndCapture(cudaStreamPerThread, &g));
    cudaCheck(cudaGraphInstantiate(&exec, g, 0));
    cudaCheck(cudaGraphDestroy(g));
    return (void *)exec;
}
void backend_graph_launch(void *graph) { cudaCheck(cudaGraphLaunch((cudaGraphExec_t)graph, cudaStreamPerThread)); }
void backend_graph_free(void *graph) { if (graph != NULL) cudaCheck(cudaGraphExecDestroy((cudaGraphExec_t)graph)); }
static cudaEvent_t timer_events[PROFILE_MARKS];
void backend_timer_record(int slot) {
    if (slot < 0 || slot >= PROFILE_MARKS) return;
    if (timer_events[slot] == NULL) cudaCheck(cudaEventCreate(&timer_events[slot]));
    cudaCheck(cudaEventRecord(timer_events[slot], 0));
}
double backend_timer_ms(int from, int to) {
    float ms = 0.0f;
    cudaCheck(cudaEventSynchronize(timer_events[to]));
    cudaCheck(cudaEventElapsedTime(&ms, timer_events[from], timer_events[to]));
    return ms;
}
const char *backend_name(void) {
    static char name[400];
    if (name[0] == 0) {
        int dev = 0;
        cudaDeviceProp prop;
        cudaCheck(cudaGetDevice(&dev));
        cudaCheck(cudaGetDeviceProperties(&prop, dev));
#ifdef ROPEPP_FP32
        const char *prec = "fp32";
#else
        const char *prec = "bf16";
#endif
        snprintf(name, sizeof(name), "cuda (%.200s, sm_%d%d, %d SMs, %s activations)", prop.name, prop.major, prop.minor,
                 prop.multiProcessorCount, prec);
    }
    return name;
}

/* ------------------------------------------------------------------------------------------------ data parallelism */
#include "cuda/dist.cuh"
