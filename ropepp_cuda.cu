/*
ropepp_cuda.cu — the CUDA op backend of ropepp.h: every op of part 2 of the header, on the GPU.

Build: nvcc -O3 -std=c++17 -I. -gencode=arch=compute_90,code=sm_90 -c ropepp_cuda.cu            (bf16 activations)
       nvcc ... -DROPEPP_FP32 -c ropepp_cuda.cu                                                (fp32 activations)
and link with a C translation unit that defines ROPEPP_CUDA and ROPEPP_IMPLEMENTATION (the model code) and with
-lcublas. floatX is __nv_bfloat16 (float with ROPEPP_FP32); floatM (masters, moments, tables, statistics) is float.

Every op has the CPU body's meaning: same arguments, backward ACCUMULATES (+=) into gradients (crossentropy_backward
writes, and may alias logits). All math is fp32 (AdamW in double, as on the CPU); every reduction has a fixed order,
so two runs of the same program give bit-identical results (no atomics anywhere).

Attention (the op the model calls) is a fused causal flash-style kernel (online softmax, nothing of size T x T):
  forward   1. keys: one elementwise kernel rotates k and writes kr (what a KV cache holds).
            2. one block per (64-query tile, attention head, batch): loads the raw q of its projected head from qkv,
               rotates it in shared memory (real, or imaginary with (c, s) -> (s, -c) for the odd heads of RoPE++),
               adds the query noise, writes qr, then walks the causal key tiles of its kv head (GQA) with ALiBi,
               writing out and the row logsumexp (base 2) as `stats` (B, NA, T).
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
them in the bf16 build.
*/
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cublas_v2.h>
#include <cub/device/device_radix_sort.cuh>
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
enum { SCR_D = 0, SCR_PARTIAL, SCR_ENC, SCR_PSUM, SCR_Q, SCR_DEC, SCR_DS, SCR_COUNT };
static void *scratch[SCR_COUNT];
static size_t scratch_cap[SCR_COUNT];
static void *scratch_get(int slot, size_t bytes) {
    if (bytes > scratch_cap[slot]) {
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

/* ------------------------------------------------------------------------------------------------ rotary */

/* One thread per (row, head, e): e < rot/2 is the pair (j, j + rot/2), e >= rot/2 a pass-through dim.
   Real: (a c - b s, b c + a s); imaginary: (c, s) -> (s, -c). */
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
            size_t tab = ((size_t)(pe.per_group ? h / group : 0) * pe.T_table + t) * half + j;
            float c = pe.cos[tab], s = pe.sin[tab];
            float a = x2f(x[j]), b = x2f(x[j + half]);
            ore[j] = f2x(a * c - b * s);
            ore[j + half] = f2x(b * c + a * s);
            if (imag_out) {
                oim[j] = f2x(a * s + b * c);
                oim[j + half] = f2x(b * s - a * c);
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
            size_t tab = ((size_t)(pe.per_group ? h / group : 0) * pe.T_table + t) * half + j;
            float c = pe.cos[tab], s = pe.sin[tab];
            float g1 = x2f(gre[j]), g2 = x2f(gre[j + half]);
            float da = g1 * c + g2 * s, db = -g1 * s + g2 * c;
            if (imag_out) {
                float i1 = x2f(gim[j]), i2 = x2f(gim[j + half]);
                da += i1 * s - i2 * c;
                db += i1 * c + i2 * s;
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
/* The unfused op with the (B, NA, T, T) probability matrix (analysis and tests; the model calls attention_*). */

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

/* ------------------------------------------------------------------------------------------------ fused attention */

#define ATT_B 64                 /* query and key tile */
#define ATT_THREADS 256          /* 16 x 16 threads: ty owns 4 rows, tx 4 score columns (tx + 16 j) */
#define ATT_LDP (ATT_B + 4)      /* row stride of score tiles in shared memory (floats) */

extern __shared__ __align__(16) float att_smem[];

struct AttnArgs {
    const floatX *qkv;     /* (B, T, QKV) */
    floatX *out;           /* (B, T, NA, HD) */
    floatX *qr;            /* (B, T, NA, HD) */
    const floatX *kr;      /* (B, T, KVH, HD) */
    float *stats;          /* (B, NA, T) log2-sum-exp of the scaled logits */
    const float *stats_in;
    const floatX *dout;    /* (B, T, NA, HD) */
    const float *D;        /* (B, NA, T) rowsum(dout * out) */
    floatX *dqkv;          /* (B, T, QKV) */
    /* forward keys and values: those of (b, key j, kv head g) at ptr + b * bstride + j * rstride + g * HD */
    const floatX *kptr, *vptr;
    size_t k_bstride, k_rstride, v_bstride, v_rstride;
    int qpos0;             /* absolute position of query row 0 (0 in training, the cache fill when decoding) */
    int nkeys;             /* keys per sequence: qpos0 + T */
    PosEmb pe;
    int B, T, HQ, KVH, HD, NA;
    int qgroup;            /* HQ / KVH: table group of q head h is h / qgroup (FoPE) */
    int agroup;            /* NA / KVH: kv head of attention head a is a / agroup */
    size_t stride;         /* QKV */
    float scale;           /* 1/sqrt(HD) */
    float scale2;          /* scale * log2(e) */
    /* backward in chunks of sequences and kv heads: blockIdx.y is sequence b0 + blockIdx.y, the kernels' kv heads
       start at g0; dS (sequences, nag, ntri, 64, 64) bf16 holds dS^T of the chunk's nag attention heads (those of
       kv heads g0 ...) for every causal (64-query tile i, 64-key tile j <= i) pair at tile i (i + 1) / 2 + j, or
       is NULL */
    int b0, g0, nag;
    int ntri;
    floatX *dS;
};

/* columns of a (64, HDP) tile that thread tx owns: CPT = HDP / 16 of them */
template <int HDP> __device__ __forceinline__ int tile_col(int tx, int k) {
    constexpr int CPT = HDP / 16;
    if constexpr (CPT >= 4) return (k >> 2) * 64 + tx * 4 + (k & 3);
    else if constexpr (CPT == 2) return tx * 2 + k;
    else return tx;
}

template <int HDP> __device__ __forceinline__ void lds_cols(float (&v)[HDP / 16], const float *row, int tx) {
    constexpr int CPT = HDP / 16;
    if constexpr (CPT >= 4) {
#pragma unroll
        for (int g = 0; g < CPT / 4; g++) {
            float4 f = *reinterpret_cast<const float4 *>(row + g * 64 + tx * 4);
            v[4 * g + 0] = f.x; v[4 * g + 1] = f.y; v[4 * g + 2] = f.z; v[4 * g + 3] = f.w;
        }
    } else if constexpr (CPT == 2) {
        float2 f = *reinterpret_cast<const float2 *>(row + tx * 2);
        v[0] = f.x; v[1] = f.y;
    } else {
        v[0] = row[tx];
    }
}

/* dst (64, HDP) fp32 with row stride HDP + 4 <- rows of src (floatX, row stride in elements), zero beyond
   rows_valid rows and HD columns. */
template <int HDP> __device__ __forceinline__ void load_tile(float *dst, const floatX *src, size_t row_stride,
                                                            int rows_valid, int HD) {
    constexpr int LD = HDP + 4;
    for (int idx = threadIdx.x; idx < ATT_B * HDP; idx += ATT_THREADS) {
        int r = idx / HDP, d = idx % HDP;
        float v = 0.0f;
        if (r < rows_valid && d < HD) v = x2f(src[(size_t)r * row_stride + d]);
        dst[r * LD + d] = v;
    }
}

/* s[i][j] = A[ty*4+i, :] . Bm[tx+16j, :] over HDP dims (both (64, HDP) tiles with row stride HDP + 4) */
template <int HDP> __device__ __forceinline__ void dot_tile(float (&s)[4][4], const float *A, const float *Bm, int ty,
                                                           int tx) {
    constexpr int LD = HDP + 4;
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) s[i][j] = 0.0f;
#pragma unroll 4
    for (int d = 0; d < HDP; d += 4) {
        float4 a[4], b[4];
#pragma unroll
        for (int i = 0; i < 4; i++) a[i] = *reinterpret_cast<const float4 *>(A + (ty * 4 + i) * LD + d);
#pragma unroll
        for (int j = 0; j < 4; j++) b[j] = *reinterpret_cast<const float4 *>(Bm + (tx + 16 * j) * LD + d);
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                float acc = s[i][j];
                acc = fmaf(a[i].x, b[j].x, acc);
                acc = fmaf(a[i].y, b[j].y, acc);
                acc = fmaf(a[i].z, b[j].z, acc);
                acc = fmaf(a[i].w, b[j].w, acc);
                s[i][j] = acc;
            }
    }
}

/* o[i][k] += sum_c P[ty*4+i, c] V[c, col(k)] over the 64 rows of V; P has row stride ATT_LDP, V HDP + 4 */
template <int HDP> __device__ __forceinline__ void acc_tile(float (&o)[4][HDP / 16], const float *P, const float *V,
                                                           int ty, int tx) {
    constexpr int LD = HDP + 4, CPT = HDP / 16;
#pragma unroll 2
    for (int c = 0; c < ATT_B; c += 4) {
        float p[4][4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float4 f = *reinterpret_cast<const float4 *>(P + (ty * 4 + i) * ATT_LDP + c);
            p[i][0] = f.x; p[i][1] = f.y; p[i][2] = f.z; p[i][3] = f.w;
        }
#pragma unroll
        for (int cc = 0; cc < 4; cc++) {
            float v[CPT];
            lds_cols<HDP>(v, V + (c + cc) * LD, tx);
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int k = 0; k < CPT; k++) o[i][k] = fmaf(p[i][cc], v[k], o[i][k]);
        }
    }
}

template <int HDP> static size_t attn_fwd_smem() { return (size_t)(3 * ATT_B * (HDP + 4) + ATT_B * ATT_LDP) * sizeof(float); }
template <int HDP> static size_t attn_dq_smem() { return (size_t)(5 * ATT_B * (HDP + 4) + ATT_B * ATT_LDP) * sizeof(float); }
template <int HDP> static size_t attn_dkv_smem() {
    return (size_t)(4 * ATT_B * (HDP + 4) + 2 * ATT_B * ATT_LDP + 2 * ATT_B) * sizeof(float);
}

/* Forward: one block per (query tile, attention head a, batch b). Query row t sits at absolute position
   qpos0 + t and sees keys 0 .. qpos0 + t (training: qpos0 = 0; cached prefill: the cache fill). */
template <int HDP> __global__ void __launch_bounds__(ATT_THREADS) attn_fwd_kernel(AttnArgs A) {
    constexpr int LD = HDP + 4, CPT = HDP / 16;
    float *Qs = att_smem, *Ks = Qs + ATT_B * LD, *Vs = Ks + ATT_B * LD, *Ps = Vs + ATT_B * LD;
    const int qt = gridDim.x - 1 - blockIdx.x;   /* longest rows first */
    const int a = blockIdx.y, b = blockIdx.z;
    const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
    const PosEmb &pe = A.pe;
    const int T = A.T, HD = A.HD;
    const int h = pe.imag ? a >> 1 : a, is_imag = pe.imag && (a & 1);
    const int g = a / A.agroup;
    const int q0 = qt * ATT_B, qvalid = min(ATT_B, T - q0), p0 = A.qpos0 + q0;
    const size_t row0 = (size_t)b * T;

    /* 1. the raw q of projected head h, rotated in place (real or imaginary), rounded to floatX like qr */
    load_tile<HDP>(Qs, A.qkv + (row0 + q0) * A.stride + (size_t)h * HD, A.stride, qvalid, HD);
    __syncthreads();
    const int half = pe.rot / 2;
    if (half > 0) {
        const int tg = pe.per_group ? h / A.qgroup : 0;
        for (int idx = tid; idx < qvalid * half; idx += ATT_THREADS) {
            int r = idx / half, j = idx % half;
            size_t tab = ((size_t)tg * pe.T_table + p0 + r) * half + j;
            float c = pe.cos[tab], s = pe.sin[tab];
            float x0 = Qs[r * LD + j], x1 = Qs[r * LD + j + half], y0, y1;
            if (!is_imag) { y0 = x0 * c - x1 * s; y1 = x1 * c + x0 * s; }
            else { y0 = x0 * s + x1 * c; y1 = x1 * s - x0 * c; }
            Qs[r * LD + j] = roundx(y0);
            Qs[r * LD + j + half] = roundx(y1);
        }
    }
    __syncthreads();
    /* 2. query noise (the noise experiment), then qr (when asked for) */
    const int noisy = pe.noise_target != NOISE_NONE && pe.noise_sigma != 0.0 &&
                      ((pe.noise_target == NOISE_IMAG) == (is_imag != 0));
    if (noisy || A.qr != NULL) {
        for (int idx = tid; idx < qvalid * HD; idx += ATT_THREADS) {
            int r = idx / HD, d = idx % HD, t = q0 + r;
            size_t o = ((row0 + t) * A.NA + a) * HD + d;
            float v = Qs[r * LD + d];
            if (noisy) {
                v = roundx(v + roundx((float)(pe.noise_sigma * noise_normal_dev(pe.noise_seed, o))));
                Qs[r * LD + d] = v;
            }
            if (A.qr != NULL) A.qr[o] = f2x(v);
        }
    }

    /* 3. online softmax over the causal key tiles */
    const float scale2 = A.scale2;
    const float slope2 = pe.alibi != NULL ? pe.alibi[a] * LOG2E_F : 0.0f;
    float o[4][CPT], m[4], l[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        m[i] = -INFINITY; l[i] = 0.0f;
#pragma unroll
        for (int k = 0; k < CPT; k++) o[i][k] = 0.0f;
    }
    const floatX *kbase = A.kptr + b * A.k_bstride + (size_t)g * HD;
    const floatX *vbase = A.vptr + b * A.v_bstride + (size_t)g * HD;
    const int kt_last = (p0 + qvalid - 1) / ATT_B;
    for (int kt = 0; kt <= kt_last; kt++) {
        const int k0 = kt * ATT_B, kvalid = min(ATT_B, A.nkeys - k0);
        __syncthreads();   /* Qs written; the last tile's Ks, Vs, Ps read */
        load_tile<HDP>(Ks, kbase + (size_t)k0 * A.k_rstride, A.k_rstride, kvalid, HD);
        load_tile<HDP>(Vs, vbase + (size_t)k0 * A.v_rstride, A.v_rstride, kvalid, HD);
        __syncthreads();
        float s[4][4];
        dot_tile<HDP>(s, Qs, Ks, ty, tx);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int t = p0 + ty * 4 + i;   /* absolute position */
            float mx = -INFINITY;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int jj = k0 + tx + 16 * j;
                float v = s[i][j] * scale2 - slope2 * (float)(t - jj);
                if (jj > t) v = -INFINITY;
                s[i][j] = v;
                mx = fmaxf(mx, v);
            }
            mx = half_max(mx);
            /* m[i] is finite after tile 0 (key 0 is visible to every row), so a fully masked later row is fine */
            const float mnew = fmaxf(m[i], mx);
            const float corr = exp2f(m[i] - mnew);
            float rs = 0.0f;
#pragma unroll
            for (int j = 0; j < 4; j++) { float p = exp2f(s[i][j] - mnew); s[i][j] = p; rs += p; }
            rs = half_sum(rs);
            l[i] = l[i] * corr + rs;
            m[i] = mnew;
#pragma unroll
            for (int k = 0; k < CPT; k++) o[i][k] *= corr;
#pragma unroll
            for (int j = 0; j < 4; j++) Ps[(ty * 4 + i) * ATT_LDP + tx + 16 * j] = s[i][j];
        }
        __syncthreads();
        acc_tile<HDP>(o, Ps, Vs, ty, tx);
    }
    /* 4. out and the row statistics */
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int t = q0 + ty * 4 + i;
        if (t < T) {
            const float inv = 1.0f / l[i];
            floatX *op = A.out + ((row0 + t) * A.NA + a) * HD;
#pragma unroll
            for (int k = 0; k < CPT; k++) {
                int d = tile_col<HDP>(tx, k);
                if (d < HD) op[d] = f2x(o[i][k] * inv);
            }
            if (tx == 0 && A.stats != NULL) A.stats[((size_t)b * A.NA + a) * T + t] = m[i] + log2f(l[i]);
        }
    }
}

/* D[b, a, t] = sum_d dout * out, one warp per (b, t, a) */
__global__ void attn_rowdot_kernel(float *D, const floatX *dout, const floatX *out, int B, int T, int NA, int HD) {
    size_t w = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (w >= (size_t)B * T * NA) return;
    int a = (int)(w % NA);
    size_t bt = w / NA;
    int t = (int)(bt % T), b = (int)(bt / T);
    const floatX *g = dout + w * HD, *o = out + w * HD;
    float acc = 0.0f;
    for (int d = lane; d < HD; d += 32) acc += x2f(g[d]) * x2f(o[d]);
    acc = warp_sum(acc);
    if (lane == 0) D[((size_t)b * NA + a) * T + t] = acc;
}

/* Backward dq: one block per (query tile, projected q head h, batch b). The attention heads of h (1, or 2 for
   RoPE++: real 2h and imaginary 2h+1) each get their dq, their rotary backward, and the sum goes into dqkv once. */
template <int HDP> __global__ void __launch_bounds__(ATT_THREADS) attn_bwd_dq_kernel(AttnArgs A) {
    constexpr int LD = HDP + 4, CPT = HDP / 16;
    float *Qs = att_smem, *dOs = Qs + ATT_B * LD, *Ks = dOs + ATT_B * LD, *Vs = Ks + ATT_B * LD;
    float *DQs = Vs + ATT_B * LD, *Ps = DQs + ATT_B * LD;
    const int qt = gridDim.x - 1 - blockIdx.x;
    const int h = blockIdx.y, b = blockIdx.z;
    const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
    const PosEmb &pe = A.pe;
    const int T = A.T, HD = A.HD, NA = A.NA;
    const int q0 = qt * ATT_B, qvalid = min(ATT_B, T - q0);
    const size_t row0 = (size_t)b * T;
    const int nh = pe.imag ? 2 : 1, half = pe.rot / 2;
    const int tg = pe.per_group ? h / A.qgroup : 0;
    const float scale2 = A.scale2;

    for (int idx = tid; idx < ATT_B * LD; idx += ATT_THREADS) DQs[idx] = 0.0f;
    for (int hh = 0; hh < nh; hh++) {
        const int a = h * nh + hh, is_imag = pe.imag && hh == 1, g = a / A.agroup;
        const float slope2 = pe.alibi != NULL ? pe.alibi[a] * LOG2E_F : 0.0f;
        __syncthreads();   /* the previous head is done with Qs, dOs, Ks */
        load_tile<HDP>(Qs, A.qr + ((row0 + q0) * NA + a) * HD, (size_t)NA * HD, qvalid, HD);
        load_tile<HDP>(dOs, A.dout + ((row0 + q0) * NA + a) * HD, (size_t)NA * HD, qvalid, HD);
        float lse[4], Dr[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int t = q0 + ty * 4 + i;
            size_t si = ((size_t)b * NA + a) * T + t;
            lse[i] = t < T ? A.stats_in[si] : 0.0f;
            Dr[i] = t < T ? A.D[si] : 0.0f;
        }
        float dq[4][CPT];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int k = 0; k < CPT; k++) dq[i][k] = 0.0f;
        const floatX *kbase = A.kr + (row0 * A.KVH + g) * HD;
        const floatX *vbase = A.qkv + row0 * A.stride + (size_t)(A.HQ + A.KVH + g) * HD;
        for (int kt = 0; kt <= qt; kt++) {
            const int k0 = kt * ATT_B, kvalid = min(ATT_B, T - k0);
            __syncthreads();
            load_tile<HDP>(Ks, kbase + (size_t)k0 * A.KVH * HD, (size_t)A.KVH * HD, kvalid, HD);
            load_tile<HDP>(Vs, vbase + (size_t)k0 * A.stride, A.stride, kvalid, HD);
            __syncthreads();
            float s[4][4], dp[4][4];
            dot_tile<HDP>(s, Qs, Ks, ty, tx);
            dot_tile<HDP>(dp, dOs, Vs, ty, tx);
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int t = q0 + ty * 4 + i;
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const int jj = k0 + tx + 16 * j;
                    float p = 0.0f;
                    if (jj <= t && t < T) p = exp2f(s[i][j] * scale2 - slope2 * (float)(t - jj) - lse[i]);
                    Ps[(ty * 4 + i) * ATT_LDP + tx + 16 * j] = p * (dp[i][j] - Dr[i]);
                }
            }
            __syncthreads();
            acc_tile<HDP>(dq, Ps, Ks, ty, tx);
        }
        /* this head's dq (times the softmax scale) through Ks, then its rotary backward into DQs */
        __syncthreads();
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int k = 0; k < CPT; k++) Ks[(ty * 4 + i) * LD + tile_col<HDP>(tx, k)] = dq[i][k] * A.scale;
        __syncthreads();
        for (int idx = tid; idx < qvalid * half; idx += ATT_THREADS) {
            int r = idx / half, j = idx % half, t = q0 + r;
            size_t tab = ((size_t)tg * pe.T_table + t) * half + j;
            float c = pe.cos[tab], s = pe.sin[tab];
            float g1 = Ks[r * LD + j], g2 = Ks[r * LD + j + half], da, db;
            if (!is_imag) { da = g1 * c + g2 * s; db = -g1 * s + g2 * c; }
            else { da = g1 * s - g2 * c; db = g1 * c + g2 * s; }
            DQs[r * LD + j] += da;
            DQs[r * LD + j + half] += db;
        }
        const int npass = HD - pe.rot;
        for (int idx = tid; idx < qvalid * npass; idx += ATT_THREADS) {
            int r = idx / npass, d = pe.rot + idx % npass;
            DQs[r * LD + d] += Ks[r * LD + d];
        }
    }
    __syncthreads();
    for (int idx = tid; idx < qvalid * HD; idx += ATT_THREADS) {
        int r = idx / HD, d = idx % HD;
        floatX *p = A.dqkv + (row0 + q0 + r) * A.stride + (size_t)h * HD + d;
        *p = f2x(DQs[r * LD + d]);
    }
}

/* Backward dk, dv: one block per (key tile, kv head g, batch b), over every attention head of the group and every
   query tile at or after the key tile; then the key rotary backward, into dqkv. */
template <int HDP> __global__ void __launch_bounds__(ATT_THREADS) attn_bwd_dkv_kernel(AttnArgs A) {
    constexpr int LD = HDP + 4, CPT = HDP / 16;
    float *Ks = att_smem, *Vs = Ks + ATT_B * LD, *Qs = Vs + ATT_B * LD, *dOs = Qs + ATT_B * LD;
    float *PT = dOs + ATT_B * LD, *DST = PT + ATT_B * ATT_LDP, *LSEs = DST + ATT_B * ATT_LDP, *Ds = LSEs + ATT_B;
    const int kt = blockIdx.x;   /* longest first: key tile 0 sees every query tile */
    const int g = blockIdx.y, b = blockIdx.z;
    const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
    const PosEmb &pe = A.pe;
    const int T = A.T, HD = A.HD, NA = A.NA;
    const int k0 = kt * ATT_B, kvalid = min(ATT_B, T - k0);
    const int nqt = (T + ATT_B - 1) / ATT_B;
    const size_t row0 = (size_t)b * T;
    const float scale2 = A.scale2;

    load_tile<HDP>(Ks, A.kr + ((row0 + k0) * A.KVH + g) * HD, (size_t)A.KVH * HD, kvalid, HD);
    load_tile<HDP>(Vs, A.qkv + (row0 + k0) * A.stride + (size_t)(A.HQ + A.KVH + g) * HD, A.stride, kvalid, HD);
    float dk[4][CPT], dv[4][CPT];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int k = 0; k < CPT; k++) { dk[i][k] = 0.0f; dv[i][k] = 0.0f; }
    for (int a = g * A.agroup; a < (g + 1) * A.agroup; a++) {
        const float slope2 = pe.alibi != NULL ? pe.alibi[a] * LOG2E_F : 0.0f;
        for (int qt = kt; qt < nqt; qt++) {
            const int q0 = qt * ATT_B, qvalid = min(ATT_B, T - q0);
            __syncthreads();   /* Ks, Vs loaded; the last tile's Qs, dOs, PT, DST, LSEs, Ds read */
            load_tile<HDP>(Qs, A.qr + ((row0 + q0) * NA + a) * HD, (size_t)NA * HD, qvalid, HD);
            load_tile<HDP>(dOs, A.dout + ((row0 + q0) * NA + a) * HD, (size_t)NA * HD, qvalid, HD);
            if (tid < ATT_B) {
                const int t = q0 + tid;
                size_t si = ((size_t)b * NA + a) * T + t;
                LSEs[tid] = t < T ? A.stats_in[si] : 0.0f;
                Ds[tid] = t < T ? A.D[si] : 0.0f;
            }
            __syncthreads();
            float s[4][4], dp[4][4];
            dot_tile<HDP>(s, Ks, Qs, ty, tx);    /* s[i][j] = k_(k0+ty*4+i) . q_(q0+tx+16j) */
            dot_tile<HDP>(dp, Vs, dOs, ty, tx);  /* dp[i][j] = v_c . dout_r */
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int c = k0 + ty * 4 + i;
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const int r = tx + 16 * j, t = q0 + r;
                    float p = 0.0f;
                    if (c <= t && t < T) p = exp2f(s[i][j] * scale2 - slope2 * (float)(t - c) - LSEs[r]);
                    PT[(ty * 4 + i) * ATT_LDP + r] = p;
                    DST[(ty * 4 + i) * ATT_LDP + r] = p * (dp[i][j] - Ds[r]);
                }
            }
            __syncthreads();
            acc_tile<HDP>(dv, PT, dOs, ty, tx);
            acc_tile<HDP>(dk, DST, Qs, ty, tx);
        }
    }
    /* dv straight into dqkv; dk through shared memory for the key rotary backward */
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int ci = ty * 4 + i;
        if (ci < kvalid) {
            floatX *pv = A.dqkv + (row0 + k0 + ci) * A.stride + (size_t)(A.HQ + A.KVH + g) * HD;
#pragma unroll
            for (int k = 0; k < CPT; k++) {
                int d = tile_col<HDP>(tx, k);
                if (d < HD) pv[d] = f2x(dv[i][k]);
            }
        }
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int k = 0; k < CPT; k++) Qs[(ty * 4 + i) * LD + tile_col<HDP>(tx, k)] = dk[i][k] * A.scale;
    __syncthreads();
    const int half = pe.rot / 2, tg = pe.per_group ? g : 0;
    floatX *kb = A.dqkv + (row0 + k0) * A.stride + (size_t)(A.HQ + g) * HD;
    for (int idx = tid; idx < kvalid * half; idx += ATT_THREADS) {
        int r = idx / half, j = idx % half, t = k0 + r;
        size_t tab = ((size_t)tg * pe.T_table + t) * half + j;
        float c = pe.cos[tab], s = pe.sin[tab];
        float g1 = Qs[r * LD + j], g2 = Qs[r * LD + j + half];
        floatX *p = kb + (size_t)r * A.stride;
        p[j] = f2x(g1 * c + g2 * s);
        p[j + half] = f2x(-g1 * s + g2 * c);
    }
    const int npass = HD - pe.rot;
    for (int idx = tid; idx < kvalid * npass; idx += ATT_THREADS) {
        int r = idx / npass, d = pe.rot + idx % npass;
        floatX *p = kb + (size_t)r * A.stride;
        p[d] = f2x(Qs[r * LD + d]);
    }
}

/* ------------------------------------------------------------------------------------------------ tensor-core attention */
/* bf16 build, head dims 64 and 128, rotated dims a multiple of 16, 16-byte aligned tensors: flash attention on the
   tensor cores (mma.sync m16n8k16 bf16 -> fp32, operands through ldmatrix from XOR-swizzled shared memory, tiles
   streamed by cp.async, two stages). Same semantics, statistics and determinism as the kernels above, which stay as
   the fallback (other head dims, the fp32 build).
   Head packing: the attention heads that read one kv head (the GQA group; for RoPE++ the real head 2h and the
   imaginary head 2h+1 of q head h are always in it) are stacked along the rows of a block — P heads x 128/P query
   positions = 128 rows, one warp per 16 rows — so each K/V tile is loaded once for all of them.
     forward  block (head pack, b, query tile): q rotated (real, or imaginary (c, s) -> (s, -c)), noised, written to
              qr, kept in registers; online softmax in fp32 over 64-key tiles, P rounded to bf16 for P V.
     dk, dv   block (kv head, b, 64-key tile; 128 with ROPEPP_ATTN_DKV_BK=128): warps own 16 keys; loop over every
              head of the group and every 64-query tile at or after the keys: S^T = K Q^T, dV += P^T dO,
              dP^T = V dO^T, dK += dS^T Q; then dv into dqkv, dk through the key rotary backward into dqkv. Where
              the tiles fit ROPEPP_ATTN_DS_MB (in chunks of sequences, or of one sequence's kv heads, each with a
              grid of at least ROPEPP_ATTN_DS_MIN_BLOCKS blocks) it also stores each 64 x 64 dS^T tile (bf16).
     dq       block (head pack, b, query tile), after dk/dv: dQ += dS K from the stored dS^T tiles (one matmul);
              else recomputing S = Q K^T, dP = dO V^T, dS = P (dP - D) first (three). Then each head's rotary
              backward and the real + imaginary sum into dqkv once (through shared memory).
   The forward takes 64-row blocks (4 warps, two per SM) with ROPEPP_ATTN_FWD_BM=64.
   Each output element has one owner: deterministic, no atomics. */
#ifndef ROPEPP_FP32
typedef __nv_bfloat16 bf16;
#define TC_THREADS 256
#define TC_BM 128   /* rows of a forward / dq block: 8 warps x 16 */
#define TC_BN 64    /* key tile of the forward and dq kernels */
#define TC_BK 128   /* keys of a dk/dv block: 8 warps x 16 */
#define TC_BQ 64    /* query tile of the dk/dv kernel */

__device__ __forceinline__ uint32_t smem_u32(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }
/* element offset of (row r, 16-byte chunk c) in a tile of rows of HD bf16; chunks XOR-swizzled by r % 8 so that
   ldmatrix's 8 rows fall in distinct banks */
template <int HD> __device__ __forceinline__ int swz(int r, int c) { return r * HD + ((c ^ (r & 7)) << 3); }

__device__ __forceinline__ void cp_async16(uint32_t dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async4(uint32_t dst, const void *src, bool valid) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 4 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldsm4(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
__device__ __forceinline__ void ldsm4t(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
/* d (16x8 fp32) += a (16x16 bf16, row) b (16x8 bf16, col) */
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}
__device__ __forceinline__ float2 unpack_bf16(uint32_t u) {
    __nv_bfloat162 v = *reinterpret_cast<__nv_bfloat162 *>(&u);
    return __bfloat1622float2(v);
}
__device__ __forceinline__ void ld8(float (&f)[8], const bf16 *p) {
    uint4 u = *reinterpret_cast<const uint4 *>(p);
    float2 v0 = unpack_bf16(u.x), v1 = unpack_bf16(u.y), v2 = unpack_bf16(u.z), v3 = unpack_bf16(u.w);
    f[0] = v0.x; f[1] = v0.y; f[2] = v1.x; f[3] = v1.y; f[4] = v2.x; f[5] = v2.y; f[6] = v3.x; f[7] = v3.y;
}
__device__ __forceinline__ uint4 pack8(const float (&f)[8]) {
    uint4 u;
    u.x = pack_bf16(f[0], f[1]); u.y = pack_bf16(f[2], f[3]); u.z = pack_bf16(f[4], f[5]); u.w = pack_bf16(f[6], f[7]);
    return u;
}
__device__ __forceinline__ void ld8f(float (&f)[8], const float *p) {
    float4 a = *reinterpret_cast<const float4 *>(p), b = *reinterpret_cast<const float4 *>(p + 4);
    f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w; f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
}
__device__ __forceinline__ float quad_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

/* the A fragment (16 x 16 bf16) of columns kk*16 .. kk*16+15 of a warp's 16 x 64 fp32 accumulator tile s */
__device__ __forceinline__ void pack_a(uint32_t (&pa)[4], const float (&s)[8][4], int kk) {
    pa[0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
    pa[1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
    pa[2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
    pa[3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
}
/* acc (16 x HD, fp32 fragments) += a (16 x 16 bf16 A fragment) x rows r0 .. r0+15 of a swizzled (rows, HD) tile:
   P V, dS K, P^T dO, dS^T Q */
template <int HD> __device__ __forceinline__ void mma_a_tile(float (&acc)[HD / 8][4], const uint32_t (&a)[4],
                                                            const bf16 *tile, int r0, int lane) {
#pragma unroll
    for (int dp = 0; dp < HD / 16; dp++) {
        uint32_t bb[4];
        ldsm4t(bb, smem_u32(tile + swz<HD>(r0 + (lane & 7) + ((lane >> 3) & 1) * 8, dp * 2 + (lane >> 4))));
        mma16816(acc[2 * dp], a, bb[0], bb[1]);
        mma16816(acc[2 * dp + 1], a, bb[2], bb[3]);
    }
}

/* ROWS rows of HD from src (row stride rstride elements) into a swizzled tile; rows >= valid are zero-filled */
template <int HD, int ROWS, int NT = TC_THREADS>
__device__ __forceinline__ void tc_load_rows(bf16 *dst, const bf16 *src, size_t rstride, int valid) {
    constexpr int CH = HD / 8;
#pragma unroll
    for (int k = 0; k < ROWS * CH / NT; k++) {
        const int i = threadIdx.x + k * NT, r = i / CH, c = i % CH;
        const bool ok = r < valid;
        cp_async16(smem_u32(dst + swz<HD>(r, c)), src + (size_t)(ok ? r : 0) * rstride + c * 8, ok);
    }
}
/* the TC_BM rows of a head pack (row r: head a0 + r / BMpos, position q0 + r % BMpos) of a (B, T, NA, HD) tensor */
template <int HD> __device__ __forceinline__ void tc_load_pack(bf16 *dst, const bf16 *src, size_t row0, int q0, int T,
                                                              int NA, int a0, int BMpos) {
    constexpr int CH = HD / 8;
#pragma unroll
    for (int k = 0; k < TC_BM * CH / TC_THREADS; k++) {
        const int i = threadIdx.x + k * TC_THREADS, r = i / CH, c = i % CH;
        const int t = q0 + r % BMpos;
        const bool ok = t < T;
        cp_async16(smem_u32(dst + swz<HD>(r, c)), src + ((row0 + (ok ? t : q0)) * NA + a0 + r / BMpos) * HD + c * 8, ok);
    }
}

/* Forward: grid (NA / P, B, query tiles of BM / P positions), heaviest tiles first; BM rows, BM / 16 warps (BM = 128,
   or 64 with two blocks per SM). */
template <int HD, int BM> __global__ void __launch_bounds__(BM * 2, 256 / (BM * 2)) tc_fwd_kernel(AttnArgs A, int P) {
    constexpr int CH = HD / 8, KS = HD / 16, NO = HD / 8, NT = BM * 2;
    bf16 *Qs = reinterpret_cast<bf16 *>(att_smem);
    bf16 *Ks = Qs + BM * HD, *Vs = Ks + 2 * TC_BN * HD;   /* two stages each */
    const PosEmb &pe = A.pe;
    const int BMpos = BM / P;
    const int qt = gridDim.z - 1 - blockIdx.z, a0 = blockIdx.x * P, b = blockIdx.y;
    const int g = a0 / A.agroup, T = A.T, NA = A.NA;
    const int q0 = qt * BMpos, qvalid = min(BMpos, T - q0);
    const size_t row0 = (size_t)b * T;
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int nkt = (A.qpos0 + q0 + qvalid + TC_BN - 1) / TC_BN;
    const bf16 *kbase = A.kptr + b * A.k_bstride + (size_t)g * HD;
    const bf16 *vbase = A.vptr + b * A.v_bstride + (size_t)g * HD;

    /* raw q rows of the pack (group 0), then key/value tile 0 (group 1) */
#pragma unroll
    for (int k = 0; k < BM * CH / NT; k++) {
        const int i = tid + k * NT, r = i / CH, c = i % CH;
        const int t = q0 + r % BMpos, a = a0 + r / BMpos, h = pe.imag ? a >> 1 : a;
        const bool ok = t < T;
        cp_async16(smem_u32(Qs + swz<HD>(r, c)), A.qkv + (row0 + (ok ? t : q0)) * A.stride + (size_t)h * HD + c * 8, ok);
    }
    cp_async_commit();
    tc_load_rows<HD, TC_BN, NT>(Ks, kbase, A.k_rstride, min(TC_BN, A.nkeys));
    tc_load_rows<HD, TC_BN, NT>(Vs, vbase, A.v_rstride, min(TC_BN, A.nkeys));
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();

    /* 1. rotation in place (real, or imaginary for the odd heads of RoPE++), rounded to floatX like qr; the table
          loads of four pairs are issued before their use */
    const int half = pe.rot / 2, hch = half / 8;
    if (hch > 0) {
        const int npair = BM * hch;
        for (int base = 0; base < npair; base += 4 * NT) {
            float cs[4][8], sn[4][8];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const int i = base + u * NT + tid, r = i / hch, c = i % hch;
                const int t = q0 + r % BMpos, a = a0 + r / BMpos, h = pe.imag ? a >> 1 : a;
                if (i < npair && t < T) {
                    const int tg = pe.per_group ? h / A.qgroup : 0;
                    const size_t tab = ((size_t)tg * pe.T_table + A.qpos0 + t) * half + c * 8;
                    ld8f(cs[u], pe.cos + tab);
                    ld8f(sn[u], pe.sin + tab);
                }
            }
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const int i = base + u * NT + tid, r = i / hch, c = i % hch;
                const int t = q0 + r % BMpos, a = a0 + r / BMpos, is_imag = pe.imag && (a & 1);
                if (i < npair && t < T) {
                    float x0[8], x1[8], y0[8], y1[8];
                    ld8(x0, Qs + swz<HD>(r, c));
                    ld8(x1, Qs + swz<HD>(r, c + hch));
#pragma unroll
                    for (int e = 0; e < 8; e++) {
                        float u0, u1;
                        if (!is_imag) { u0 = x0[e] * cs[u][e] - x1[e] * sn[u][e]; u1 = x1[e] * cs[u][e] + x0[e] * sn[u][e]; }
                        else { u0 = x0[e] * sn[u][e] + x1[e] * cs[u][e]; u1 = x1[e] * sn[u][e] - x0[e] * cs[u][e]; }
                        y0[e] = roundx(u0);
                        y1[e] = roundx(u1);
                    }
                    *reinterpret_cast<uint4 *>(Qs + swz<HD>(r, c)) = pack8(y0);
                    *reinterpret_cast<uint4 *>(Qs + swz<HD>(r, c + hch)) = pack8(y1);
                }
            }
        }
        __syncthreads();
    }
    /* query noise (the noise experiment), then qr */
    const bool noise_on = pe.noise_target != NOISE_NONE && pe.noise_sigma != 0.0;
    if (noise_on || A.qr != NULL) {
        for (int i = tid; i < BM * CH; i += NT) {
            const int r = i / CH, c = i % CH;
            const int t = q0 + r % BMpos, a = a0 + r / BMpos, is_imag = pe.imag && (a & 1);
            if (t >= T) continue;
            const size_t o = ((row0 + t) * NA + a) * HD + c * 8;
            if (noise_on && ((pe.noise_target == NOISE_IMAG) == (is_imag != 0))) {
                float y[8];
                ld8(y, Qs + swz<HD>(r, c));
#pragma unroll
                for (int e = 0; e < 8; e++)
                    y[e] = roundx(y[e] + roundx((float)(pe.noise_sigma * noise_normal_dev(pe.noise_seed, o + e))));
                *reinterpret_cast<uint4 *>(Qs + swz<HD>(r, c)) = pack8(y);
            }
            if (A.qr != NULL) *reinterpret_cast<uint4 *>(A.qr + o) = *reinterpret_cast<const uint4 *>(Qs + swz<HD>(r, c));
        }
        __syncthreads();
    }

    /* 2. this warp's 16 rows: q fragments in registers */
    uint32_t qf[KS][4];
#pragma unroll
    for (int ks = 0; ks < KS; ks++) ldsm4(qf[ks], smem_u32(Qs + swz<HD>(w * 16 + (lane & 15), ks * 2 + (lane >> 4))));
    const int hp = (w * 16) / BMpos, a = a0 + hp, pl0 = (w * 16) % BMpos;
    const int tA = q0 + pl0 + (lane >> 2), tB = tA + 8;                 /* rows g and g + 8 */
    const int pA = A.qpos0 + tA, pB = A.qpos0 + tB;                      /* absolute positions */
    const int pw_min = A.qpos0 + q0 + pl0, pw_max = pw_min + 15;
    const float scale2 = A.scale2, slope2 = pe.alibi != NULL ? pe.alibi[a] * LOG2E_F : 0.0f;
    const int nkeys = A.nkeys;

    float o[NO][4];
#pragma unroll
    for (int n = 0; n < NO; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float mA = -INFINITY, mB = -INFINITY, lA = 0.0f, lB = 0.0f;

    /* 3. online softmax over the causal key tiles */
    for (int kt = 0; kt < nkt; kt++) {
        const int k0 = kt * TC_BN;
        if (kt + 1 < nkt) {
            const int k1 = k0 + TC_BN, st = (kt + 1) & 1;
            tc_load_rows<HD, TC_BN, NT>(Ks + st * TC_BN * HD, kbase + (size_t)k1 * A.k_rstride, A.k_rstride, min(TC_BN, nkeys - k1));
            tc_load_rows<HD, TC_BN, NT>(Vs + st * TC_BN * HD, vbase + (size_t)k1 * A.v_rstride, A.v_rstride, min(TC_BN, nkeys - k1));
        }
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        if (k0 <= pw_max) {   /* else every key of the tile is after every row of this warp */
            const bf16 *Kt = Ks + (kt & 1) * TC_BN * HD, *Vt = Vs + (kt & 1) * TC_BN * HD;
            float s[8][4];
#pragma unroll
            for (int n = 0; n < 8; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
            for (int ks = 0; ks < KS; ks++)
#pragma unroll
                for (int np = 0; np < 4; np++) {
                    uint32_t bb[4];
                    ldsm4(bb, smem_u32(Kt + swz<HD>(np * 16 + (lane & 7) + (lane >> 4) * 8, ks * 2 + ((lane >> 3) & 1))));
                    mma16816(s[2 * np], qf[ks], bb[0], bb[1]);
                    mma16816(s[2 * np + 1], qf[ks], bb[2], bb[3]);
                }
            const bool need_mask = k0 + TC_BN - 1 > pw_min || k0 + TC_BN > nkeys;
            float mxA = -INFINITY, mxB = -INFINITY;
#pragma unroll
            for (int n = 0; n < 8; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int j = k0 + n * 8 + (lane & 3) * 2 + e;
                    float vA = s[n][e] * scale2, vB = s[n][2 + e] * scale2;
                    if (slope2 != 0.0f) { vA -= slope2 * (float)(pA - j); vB -= slope2 * (float)(pB - j); }
                    if (need_mask) {
                        if (j > pA || j >= nkeys) vA = -INFINITY;
                        if (j > pB || j >= nkeys) vB = -INFINITY;
                    }
                    s[n][e] = vA; s[n][2 + e] = vB;
                    mxA = fmaxf(mxA, vA); mxB = fmaxf(mxB, vB);
                }
            /* every row sees key 0 in tile 0, so the running max is finite from then on */
            const float mnA = fmaxf(mA, quad_max(mxA)), mnB = fmaxf(mB, quad_max(mxB));
            const float cA = exp2f(mA - mnA), cB = exp2f(mB - mnB);
            float rsA = 0.0f, rsB = 0.0f;
#pragma unroll
            for (int n = 0; n < 8; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const float eA = exp2f(s[n][e] - mnA), eB = exp2f(s[n][2 + e] - mnB);
                    s[n][e] = eA; s[n][2 + e] = eB;
                    rsA += eA; rsB += eB;
                }
            lA = lA * cA + rsA; lB = lB * cB + rsB;
            mA = mnA; mB = mnB;
#pragma unroll
            for (int n = 0; n < NO; n++) { o[n][0] *= cA; o[n][1] *= cA; o[n][2] *= cB; o[n][3] *= cB; }
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                uint32_t pa[4];
                pack_a(pa, s, kk);
                mma_a_tile<HD>(o, pa, Vt, kk * 16, lane);
            }
        }
        __syncthreads();
    }
    cp_async_wait<0>();

    /* 4. out and the row statistics (log2-sum-exp of the scaled logits, as the other kernels) */
    lA = quad_sum(lA); lB = quad_sum(lB);
    const float iA = 1.0f / lA, iB = 1.0f / lB;
    const int col = (lane & 3) * 2;
    if (tA < T) {
        bf16 *op = A.out + ((row0 + tA) * NA + a) * HD + col;
#pragma unroll
        for (int n = 0; n < NO; n++) *reinterpret_cast<uint32_t *>(op + n * 8) = pack_bf16(o[n][0] * iA, o[n][1] * iA);
        if ((lane & 3) == 0 && A.stats != NULL) A.stats[((size_t)b * NA + a) * T + tA] = mA + log2f(lA);
    }
    if (tB < T) {
        bf16 *op = A.out + ((row0 + tB) * NA + a) * HD + col;
#pragma unroll
        for (int n = 0; n < NO; n++) *reinterpret_cast<uint32_t *>(op + n * 8) = pack_bf16(o[n][2] * iB, o[n][3] * iB);
        if ((lane & 3) == 0 && A.stats != NULL) A.stats[((size_t)b * NA + a) * T + tB] = mB + log2f(lB);
    }
}

/* The end of both dq kernels: each head's dq (times the softmax scale), fp32 into DQs (which overlays the finished
   tile stages), then per projected q head the rotary backward of each of its heads (real, then imaginary), summed,
   written into dqkv once. */
template <int HD> __device__ __forceinline__ void tc_dq_epilogue(const AttnArgs &A, int P, const float (&dq)[HD / 8][4],
                                                                float *DQs, int a0, int q0, size_t row0) {
    constexpr int CH = HD / 8, NO = HD / 8, LDQ = HD + 8;
    const PosEmb &pe = A.pe;
    const int BMpos = TC_BM / P, T = A.T;
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    /* each head's dq (times the softmax scale), fp32 into DQs */
    {
        const int col = (lane & 3) * 2, r = w * 16 + (lane >> 2);
#pragma unroll
        for (int n = 0; n < NO; n++) {
            *reinterpret_cast<float2 *>(DQs + r * LDQ + n * 8 + col) = make_float2(dq[n][0] * A.scale, dq[n][1] * A.scale);
            *reinterpret_cast<float2 *>(DQs + (r + 8) * LDQ + n * 8 + col) = make_float2(dq[n][2] * A.scale, dq[n][3] * A.scale);
        }
    }
    __syncthreads();
    /* per projected q head: the rotary backward of each of its heads (real, then imaginary), summed, into dqkv */
    {
        const int half = pe.rot / 2, hch = half / 8, rch = pe.rot / 8;
        const int nh = pe.imag ? P / 2 : P, per = pe.imag ? 2 : 1;
        const int hbase = pe.imag ? a0 >> 1 : a0;
        for (int i = tid; i < nh * BMpos * CH; i += TC_THREADS) {
            const int c = i % CH, pl = (i / CH) % BMpos, hh = i / (CH * BMpos), t = q0 + pl;
            if (t >= T || (c >= hch && c < rch)) continue;
            const int h = hbase + hh;
            const float *src = DQs + (size_t)(hh * per * BMpos + pl) * LDQ;
            bf16 *dst = A.dqkv + (row0 + t) * A.stride + (size_t)h * HD;
            if (c < hch) {
                float cs[8], sn[8], da[8], db[8];
                const int tg = pe.per_group ? h / A.qgroup : 0;
                const size_t tab = ((size_t)tg * pe.T_table + t) * half + c * 8;
                ld8f(cs, pe.cos + tab);
                ld8f(sn, pe.sin + tab);
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    const float g1 = src[c * 8 + e], g2 = src[(c + hch) * 8 + e];
                    da[e] = g1 * cs[e] + g2 * sn[e];
                    db[e] = -g1 * sn[e] + g2 * cs[e];
                }
                if (per == 2) {
                    const float *si = src + BMpos * LDQ;
#pragma unroll
                    for (int e = 0; e < 8; e++) {
                        const float i1 = si[c * 8 + e], i2 = si[(c + hch) * 8 + e];
                        da[e] += i1 * sn[e] - i2 * cs[e];
                        db[e] += i1 * cs[e] + i2 * sn[e];
                    }
                }
                *reinterpret_cast<uint4 *>(dst + c * 8) = pack8(da);
                *reinterpret_cast<uint4 *>(dst + (c + hch) * 8) = pack8(db);
            } else {
                float v[8];
#pragma unroll
                for (int e = 0; e < 8; e++) v[e] = src[c * 8 + e];
                if (per == 2) {
#pragma unroll
                    for (int e = 0; e < 8; e++) v[e] += src[BMpos * LDQ + c * 8 + e];
                }
                *reinterpret_cast<uint4 *>(dst + c * 8) = pack8(v);
            }
        }
    }
}

/* Backward dq: grid (NA / P, B, query tiles), as the forward. */
template <int HD> __global__ void __launch_bounds__(TC_THREADS, 1) tc_bwd_dq_kernel(AttnArgs A, int P) {
    constexpr int KS = HD / 16, NO = HD / 8;
    bf16 *Qs = reinterpret_cast<bf16 *>(att_smem), *dOs = Qs + TC_BM * HD;
    bf16 *Ks = dOs + TC_BM * HD, *Vs = Ks + 2 * TC_BN * HD;
    float *DQs = reinterpret_cast<float *>(Ks);   /* after the loop: (TC_BM, HD + 8) fp32 */
    const PosEmb &pe = A.pe;
    const int BMpos = TC_BM / P;
    const int qt = gridDim.z - 1 - blockIdx.z, a0 = blockIdx.x * P, b = blockIdx.y;
    const int g = a0 / A.agroup, T = A.T, NA = A.NA;
    const int q0 = qt * BMpos, qvalid = min(BMpos, T - q0);
    const size_t row0 = (size_t)b * T;
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int nkt = (q0 + qvalid + TC_BN - 1) / TC_BN;
    const size_t krs = (size_t)A.KVH * HD;
    const bf16 *kbase = A.kr + (row0 * A.KVH + g) * HD;
    const bf16 *vbase = A.qkv + row0 * A.stride + (size_t)(A.HQ + A.KVH + g) * HD;

    tc_load_pack<HD>(Qs, A.qr, row0, q0, T, NA, a0, BMpos);
    tc_load_pack<HD>(dOs, A.dout, row0, q0, T, NA, a0, BMpos);
    tc_load_rows<HD, TC_BN>(Ks, kbase, krs, min(TC_BN, T));
    tc_load_rows<HD, TC_BN>(Vs, vbase, A.stride, min(TC_BN, T));
    cp_async_commit();

    const int hp = (w * 16) / BMpos, a = a0 + hp, pl0 = (w * 16) % BMpos;
    const int tA = q0 + pl0 + (lane >> 2), tB = tA + 8;
    const int pw_min = q0 + pl0, pw_max = pw_min + 15;
    const float scale2 = A.scale2, slope2 = pe.alibi != NULL ? pe.alibi[a] * LOG2E_F : 0.0f;
    const size_t sA = ((size_t)b * NA + a) * T + tA, sB = sA + 8;
    const bool vA = tA < T, vB = tB < T;
    const float lseA = vA ? A.stats_in[sA] : 0.0f, lseB = vB ? A.stats_in[sB] : 0.0f;
    const float DA = vA ? A.D[sA] : 0.0f, DB = vB ? A.D[sB] : 0.0f;
    const uint32_t qrow = smem_u32(Qs), drow = smem_u32(dOs);

    float dq[NO][4];
#pragma unroll
    for (int n = 0; n < NO; n++) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;

    for (int kt = 0; kt < nkt; kt++) {
        const int k0 = kt * TC_BN;
        if (kt + 1 < nkt) {
            const int k1 = k0 + TC_BN, st = (kt + 1) & 1;
            tc_load_rows<HD, TC_BN>(Ks + st * TC_BN * HD, kbase + (size_t)k1 * krs, krs, min(TC_BN, T - k1));
            tc_load_rows<HD, TC_BN>(Vs + st * TC_BN * HD, vbase + (size_t)k1 * A.stride, A.stride, min(TC_BN, T - k1));
        }
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        if (k0 <= pw_max) {
            const bf16 *Kt = Ks + (kt & 1) * TC_BN * HD, *Vt = Vs + (kt & 1) * TC_BN * HD;
            float s[8][4], dp[8][4];
#pragma unroll
            for (int n = 0; n < 8; n++) {
                s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
                dp[n][0] = dp[n][1] = dp[n][2] = dp[n][3] = 0.0f;
            }
#pragma unroll
            for (int ks = 0; ks < KS; ks++) {
                uint32_t af[4], df[4];
                ldsm4(af, qrow + 2 * swz<HD>(w * 16 + (lane & 15), ks * 2 + (lane >> 4)));
                ldsm4(df, drow + 2 * swz<HD>(w * 16 + (lane & 15), ks * 2 + (lane >> 4)));
#pragma unroll
                for (int np = 0; np < 4; np++) {
                    const int rr = np * 16 + (lane & 7) + (lane >> 4) * 8, cc = ks * 2 + ((lane >> 3) & 1);
                    uint32_t bk[4], bv[4];
                    ldsm4(bk, smem_u32(Kt + swz<HD>(rr, cc)));
                    ldsm4(bv, smem_u32(Vt + swz<HD>(rr, cc)));
                    mma16816(s[2 * np], af, bk[0], bk[1]);
                    mma16816(s[2 * np + 1], af, bk[2], bk[3]);
                    mma16816(dp[2 * np], df, bv[0], bv[1]);
                    mma16816(dp[2 * np + 1], df, bv[2], bv[3]);
                }
            }
            /* dS = P (dP - D), P recomputed from the saved log2-sum-exp */
#pragma unroll
            for (int n = 0; n < 8; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int j = k0 + n * 8 + (lane & 3) * 2 + e;
                    float xA = s[n][e] * scale2 - lseA, xB = s[n][2 + e] * scale2 - lseB;
                    if (slope2 != 0.0f) { xA -= slope2 * (float)(tA - j); xB -= slope2 * (float)(tB - j); }
                    const float PA = (vA && j <= tA) ? exp2f(xA) : 0.0f, PB = (vB && j <= tB) ? exp2f(xB) : 0.0f;
                    s[n][e] = PA * (dp[n][e] - DA);
                    s[n][2 + e] = PB * (dp[n][2 + e] - DB);
                }
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                uint32_t pa[4];
                pack_a(pa, s, kk);
                mma_a_tile<HD>(dq, pa, Kt, kk * 16, lane);
            }
        }
        __syncthreads();
    }
    cp_async_wait<0>();
    __syncthreads();   /* K/V stages free: DQs overlays them */

    tc_dq_epilogue<HD>(A, P, dq, DQs, a0, q0, row0);
}

/* Backward dq from the dS^T tiles the dk/dv kernel stored (A.dS): dQ = dS K, one matmul per key tile instead of
   the three of tc_bwd_dq_kernel (which recomputes S and dP), then the same epilogue. Grid and rows as that kernel;
   each warp stages its 16 queries x 64 keys of dS^T (XOR-swizzled 32-byte rows) next to the block's K tile. */
__device__ __forceinline__ int sw16(int k, int c) { return k * 16 + ((c ^ ((k >> 2) & 1)) << 3); }
template <int HD> __global__ void __launch_bounds__(TC_THREADS, 1) tc_bwd_dq_ds_kernel(AttnArgs A, int P) {
    constexpr int NO = HD / 8;
    bf16 *Ks = reinterpret_cast<bf16 *>(att_smem);           /* two stages of (TC_BN, HD) */
    bf16 *Ss = Ks + 2 * TC_BN * HD;                           /* two stages of 8 warps x (64 keys, 16 queries) */
    float *DQs = reinterpret_cast<float *>(att_smem);         /* after the loop: (TC_BM, HD + 8) fp32 */
    const int BMpos = TC_BM / P;
    const int qt = gridDim.z - 1 - blockIdx.z, a0 = A.g0 * A.agroup + blockIdx.x * P, b = A.b0 + blockIdx.y;
    const int g = a0 / A.agroup, T = A.T;
    const int q0 = qt * BMpos, qvalid = min(BMpos, T - q0);
    const size_t row0 = (size_t)b * T;
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int nkt = (q0 + qvalid + TC_BN - 1) / TC_BN;
    const size_t krs = (size_t)A.KVH * HD;
    const bf16 *kbase = A.kr + (row0 * A.KVH + g) * HD;
    /* this warp's 16 rows: head a, positions pw .. pw + 15 inside query tile qi (at column pw % 64 of its tiles) */
    const int a = a0 + (w * 16) / BMpos, pw = q0 + (w * 16) % BMpos, qi = pw / 64;
    const bool active = pw < T;
    const bf16 *sbase = A.dS + (((size_t)blockIdx.y * A.nag + a - A.g0 * A.agroup) * A.ntri + (size_t)qi * (qi + 1) / 2) *
                        4096 + pw % 64;
    auto load = [&](int kt, int st) {
        const int k1 = kt * TC_BN;
        tc_load_rows<HD, TC_BN>(Ks + st * TC_BN * HD, kbase + (size_t)k1 * krs, krs, min(TC_BN, T - k1));
        if (active && kt <= qi) {
            bf16 *S = Ss + (st * 8 + w) * 64 * 16;
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const int i = lane + 32 * u, k = i >> 1, c = i & 1;
                const bool ok = k1 + k < T;
                cp_async16(smem_u32(S + sw16(k, c)), sbase + (size_t)kt * 4096 + (size_t)(ok ? k : 0) * 64 + c * 8, ok);
            }
        }
    };
    load(0, 0);
    cp_async_commit();

    float dq[NO][4];
#pragma unroll
    for (int n = 0; n < NO; n++) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;
    for (int kt = 0; kt < nkt; kt++) {
        if (kt + 1 < nkt) load(kt + 1, (kt + 1) & 1);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        if (active && kt <= qi) {
            const bf16 *Kt = Ks + (kt & 1) * TC_BN * HD, *S = Ss + ((kt & 1) * 8 + w) * 64 * 16;
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                /* A = dS (queries x keys) from the stored dS^T: transposed 8x8 loads */
                uint32_t pa[4];
                const int m = lane >> 3;
                ldsm4t(pa, smem_u32(S + sw16(kk * 16 + (lane & 7) + (m >> 1) * 8, m & 1)));
                mma_a_tile<HD>(dq, pa, Kt, kk * 16, lane);
            }
        }
        __syncthreads();
    }
    cp_async_wait<0>();
    __syncthreads();   /* the stages are free: DQs overlays them */
    tc_dq_epilogue<HD>(A, P, dq, DQs, a0, q0, row0);
}

/* Backward dk, dv: grid (KVH, B, key tiles of BK), key tile 0 (the longest) first; BK / 16 warps. BK = 128 (8 warps),
   or 64 (4 warps, two blocks per SM) when 128-key tiles would leave SMs idle (few kv heads, short batches). */
template <int HD, int BK> __global__ void __launch_bounds__(BK * 2, 256 / (BK * 2)) tc_bwd_dkv_kernel(AttnArgs A) {
    constexpr int KS = HD / 16, NO = HD / 8, NT = BK * 2;
    bf16 *Ks = reinterpret_cast<bf16 *>(att_smem), *Vs = Ks + BK * HD;
    bf16 *Qs = Vs + BK * HD, *dOs = Qs + 2 * TC_BQ * HD;   /* two stages each */
    float *LSEs = reinterpret_cast<float *>(dOs + 2 * TC_BQ * HD), *Ds = LSEs + 2 * TC_BQ;
    const PosEmb &pe = A.pe;
    const int g = A.g0 + blockIdx.x, b = A.b0 + blockIdx.y, kt = blockIdx.z;
    const int T = A.T, NA = A.NA;
    const int k0 = kt * BK, kvalid = min(BK, T - k0);
    const size_t row0 = (size_t)b * T;
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int qt_first = k0 / TC_BQ, nqt = (T + TC_BQ - 1) / TC_BQ, nqi = nqt - qt_first;
    const int nitems = A.agroup * nqi;
    const float scale2 = A.scale2;

    tc_load_rows<HD, BK, NT>(Ks, A.kr + ((row0 + k0) * A.KVH + g) * HD, (size_t)A.KVH * HD, kvalid);
    tc_load_rows<HD, BK, NT>(Vs, A.qkv + (row0 + k0) * A.stride + (size_t)(A.HQ + A.KVH + g) * HD, A.stride, kvalid);
    auto load_item = [&](int it, int st) {
        const int a = g * A.agroup + it / nqi, q0 = (qt_first + it % nqi) * TC_BQ;
        tc_load_rows<HD, TC_BQ, NT>(Qs + st * TC_BQ * HD, A.qr + ((row0 + q0) * NA + a) * HD, (size_t)NA * HD, min(TC_BQ, T - q0));
        tc_load_rows<HD, TC_BQ, NT>(dOs + st * TC_BQ * HD, A.dout + ((row0 + q0) * NA + a) * HD, (size_t)NA * HD, min(TC_BQ, T - q0));
        if (tid < 2 * TC_BQ) {
            const int n = tid & (TC_BQ - 1);
            const bool ok = q0 + n < T;
            const size_t si = ((size_t)b * NA + a) * T + (ok ? q0 + n : q0);
            if (tid < TC_BQ) cp_async4(smem_u32(LSEs + st * TC_BQ + n), A.stats_in + si, ok);
            else cp_async4(smem_u32(Ds + st * TC_BQ + n), A.D + si, ok);
        }
    };
    load_item(0, 0);
    cp_async_commit();

    const int kw0 = k0 + w * 16;
    const int cA = kw0 + (lane >> 2), cB = cA + 8;   /* this thread's key rows */
    const uint32_t krow = smem_u32(Ks), vrow = smem_u32(Vs);
    float dk[NO][4], dv[NO][4];
#pragma unroll
    for (int n = 0; n < NO; n++) {
        dk[n][0] = dk[n][1] = dk[n][2] = dk[n][3] = 0.0f;
        dv[n][0] = dv[n][1] = dv[n][2] = dv[n][3] = 0.0f;
    }

    for (int it = 0; it < nitems; it++) {
        const int st = it & 1;
        if (it + 1 < nitems) load_item(it + 1, st ^ 1);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const int a = g * A.agroup + it / nqi, q0 = (qt_first + it % nqi) * TC_BQ;
        if (kw0 < T && q0 + TC_BQ - 1 >= kw0) {
            const bf16 *Qt = Qs + st * TC_BQ * HD, *dOt = dOs + st * TC_BQ * HD;
            const float *lse = LSEs + st * TC_BQ, *Dv = Ds + st * TC_BQ;
            const float slope2 = pe.alibi != NULL ? pe.alibi[a] * LOG2E_F : 0.0f;
            float s[8][4];
#pragma unroll
            for (int n = 0; n < 8; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
            for (int ks = 0; ks < KS; ks++) {
                uint32_t af[4];
                ldsm4(af, krow + 2 * swz<HD>(w * 16 + (lane & 15), ks * 2 + (lane >> 4)));
#pragma unroll
                for (int np = 0; np < 4; np++) {
                    uint32_t bq[4];
                    ldsm4(bq, smem_u32(Qt + swz<HD>(np * 16 + (lane & 7) + (lane >> 4) * 8, ks * 2 + ((lane >> 3) & 1))));
                    mma16816(s[2 * np], af, bq[0], bq[1]);
                    mma16816(s[2 * np + 1], af, bq[2], bq[3]);
                }
            }
            /* P^T (keys x queries) */
#pragma unroll
            for (int n = 0; n < 8; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int r = n * 8 + (lane & 3) * 2 + e, t = q0 + r;
                    float xA = s[n][e] * scale2 - lse[r], xB = s[n][2 + e] * scale2 - lse[r];
                    if (slope2 != 0.0f) { xA -= slope2 * (float)(t - cA); xB -= slope2 * (float)(t - cB); }
                    s[n][e] = (cA <= t && t < T) ? exp2f(xA) : 0.0f;
                    s[n][2 + e] = (cB <= t && t < T) ? exp2f(xB) : 0.0f;
                }
            /* dV += P^T dO */
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                uint32_t pa[4];
                pack_a(pa, s, kk);
                mma_a_tile<HD>(dv, pa, dOt, kk * 16, lane);
            }
            /* dP^T = V dO^T, then dS^T = P^T (dP^T - D) */
            float dp[8][4];
#pragma unroll
            for (int n = 0; n < 8; n++) dp[n][0] = dp[n][1] = dp[n][2] = dp[n][3] = 0.0f;
#pragma unroll
            for (int ks = 0; ks < KS; ks++) {
                uint32_t af[4];
                ldsm4(af, vrow + 2 * swz<HD>(w * 16 + (lane & 15), ks * 2 + (lane >> 4)));
#pragma unroll
                for (int np = 0; np < 4; np++) {
                    uint32_t bq[4];
                    ldsm4(bq, smem_u32(dOt + swz<HD>(np * 16 + (lane & 7) + (lane >> 4) * 8, ks * 2 + ((lane >> 3) & 1))));
                    mma16816(dp[2 * np], af, bq[0], bq[1]);
                    mma16816(dp[2 * np + 1], af, bq[2], bq[3]);
                }
            }
#pragma unroll
            for (int n = 0; n < 8; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const float Dr = Dv[n * 8 + (lane & 3) * 2 + e];
                    s[n][e] *= dp[n][e] - Dr;
                    s[n][2 + e] *= dp[n][2 + e] - Dr;
                }
            /* dS^T of this (query tile, 64-key tile) pair for the dq kernel: rows keys, columns queries */
            bf16 *dst = NULL;
            if (A.dS != NULL) {
                const int qi = q0 / 64, kj = kw0 / 64;
                dst = A.dS + (((size_t)blockIdx.y * A.nag + a - A.g0 * A.agroup) * A.ntri + (size_t)qi * (qi + 1) / 2 + kj) * 4096 +
                      (size_t)(kw0 % 64 + (lane >> 2)) * 64 + (lane & 3) * 2;
            }
            /* dK += dS^T Q */
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                uint32_t pa[4];
                pack_a(pa, s, kk);
                if (dst != NULL) {
                    *reinterpret_cast<uint32_t *>(dst + kk * 16) = pa[0];
                    *reinterpret_cast<uint32_t *>(dst + 8 * 64 + kk * 16) = pa[1];
                    *reinterpret_cast<uint32_t *>(dst + kk * 16 + 8) = pa[2];
                    *reinterpret_cast<uint32_t *>(dst + 8 * 64 + kk * 16 + 8) = pa[3];
                }
                mma_a_tile<HD>(dk, pa, Qt, kk * 16, lane);
            }
        }
        __syncthreads();
    }
    cp_async_wait<0>();

    /* dv straight into dqkv; dk (times the softmax scale) through shared memory for the key rotary backward */
    const int col = (lane & 3) * 2;
    __syncthreads();   /* every warp is done with the tiles: DKs overlays them */
    float *DKs = reinterpret_cast<float *>(att_smem);
    constexpr int LDK = HD + 8;
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        const int c = rr ? cB : cA, r = w * 16 + (lane >> 2) + rr * 8;
#pragma unroll
        for (int n = 0; n < NO; n++)
            *reinterpret_cast<float2 *>(DKs + r * LDK + n * 8 + col) =
                make_float2(dk[n][2 * rr] * A.scale, dk[n][2 * rr + 1] * A.scale);
        if (c < T) {
            bf16 *pv = A.dqkv + (row0 + c) * A.stride + (size_t)(A.HQ + A.KVH + g) * HD + col;
#pragma unroll
            for (int n = 0; n < NO; n++) {
                *reinterpret_cast<uint32_t *>(pv + n * 8) = pack_bf16(dv[n][2 * rr], dv[n][2 * rr + 1]);
            }
        }
    }
    __syncthreads();
    {
        constexpr int CH = HD / 8;
        const int half = pe.rot / 2, hch = half / 8, rch = pe.rot / 8, tg = pe.per_group ? g : 0;
        for (int i = tid; i < kvalid * CH; i += NT) {
            const int r = i / CH, c = i % CH, t = k0 + r;
            if (c >= hch && c < rch) continue;
            const float *src = DKs + r * LDK;
            bf16 *dst = A.dqkv + (row0 + t) * A.stride + (size_t)(A.HQ + g) * HD;
            float x[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
            if (c < hch) {
                float cs[8], sn[8], y[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
                const size_t tab = ((size_t)tg * pe.T_table + t) * half + c * 8;
                ld8f(cs, pe.cos + tab);
                ld8f(sn, pe.sin + tab);
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    const float g1 = src[c * 8 + e], g2 = src[(c + hch) * 8 + e];
                    x[e] += g1 * cs[e] + g2 * sn[e];
                    y[e] += -g1 * sn[e] + g2 * cs[e];
                }
                *reinterpret_cast<uint4 *>(dst + (c + hch) * 8) = pack8(y);
            } else {
#pragma unroll
                for (int e = 0; e < 8; e++) x[e] += src[c * 8 + e];
            }
            *reinterpret_cast<uint4 *>(dst + c * 8) = pack8(x);
        }
    }
}

template <int HD, int BM> static size_t tc_fwd_smem() { return (size_t)(BM + 4 * TC_BN) * HD * sizeof(bf16); }
template <int HD> static size_t tc_dq_smem() {
    return (size_t)2 * TC_BM * HD * sizeof(bf16) + (size_t)TC_BM * (HD + 8) * sizeof(float);
}
template <int HD> static size_t tc_dq_ds_smem() {
    const size_t tiles = (size_t)2 * TC_BN * HD * sizeof(bf16) + (size_t)2 * 8 * 64 * 16 * sizeof(bf16);
    const size_t dqs = (size_t)TC_BM * (HD + 8) * sizeof(float);
    return tiles > dqs ? tiles : dqs;
}
template <int HD, int BK> static size_t tc_dkv_smem() {
    const size_t tiles = (size_t)(2 * BK + 4 * TC_BQ) * HD * sizeof(bf16) + (size_t)4 * TC_BQ * sizeof(float);
    const size_t dks = (size_t)BK * (HD + 8) * sizeof(float);
    return tiles > dks ? tiles : dks;
}
template <int HD> static void tc_set_smem(void) {
    static int done = 0;
    if (done) return;
    cudaCheck(cudaFuncSetAttribute(tc_fwd_kernel<HD, 128>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)tc_fwd_smem<HD, 128>()));
    cudaCheck(cudaFuncSetAttribute(tc_fwd_kernel<HD, 64>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)tc_fwd_smem<HD, 64>()));
    cudaCheck(cudaFuncSetAttribute(tc_bwd_dq_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)tc_dq_smem<HD>()));
    cudaCheck(cudaFuncSetAttribute(tc_bwd_dq_ds_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)tc_dq_ds_smem<HD>()));
    cudaCheck(cudaFuncSetAttribute(tc_bwd_dkv_kernel<HD, 128>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)tc_dkv_smem<HD, 128>()));
    cudaCheck(cudaFuncSetAttribute(tc_bwd_dkv_kernel<HD, 64>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)tc_dkv_smem<HD, 64>()));
    done = 1;
}
#endif /* !ROPEPP_FP32 */

#ifndef ROPEPP_FP32
/* ROPEPP_ATTN_SIMT=1 in the environment forces the fp32-math kernels (comparisons, benchmarks). */
static int tc_disabled(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("ROPEPP_ATTN_SIMT");
        v = (e != NULL && e[0] != '\0' && e[0] != '0') ? 1 : 0;
    }
    return v;
}
static bool al16(const void *p) { return ((uintptr_t)p & 15u) == 0; }
static bool tc_shape_ok(const AttnArgs *A) {
    if (tc_disabled() || (A->HD != 64 && A->HD != 128)) return false;
    if (A->pe.rot % 16 != 0 || A->pe.rot > A->HD || A->pe.rot < 0) return false;
    if (A->pe.rot > 0 && (!al16(A->pe.cos) || !al16(A->pe.sin))) return false;
    return true;
}
/* heads stacked per block: the largest of 4, 2, 1 dividing the GQA group (RoPE++ groups are even) */
static int tc_pack(int agroup) { return agroup % 4 == 0 ? 4 : agroup % 2 == 0 ? 2 : 1; }
static bool tc_fwd_ok(const AttnArgs *A) {
    return tc_shape_ok(A) && al16(A->qkv) && al16(A->out) && (A->qr == NULL || al16(A->qr)) && al16(A->kptr) &&
           al16(A->vptr) && A->k_rstride % 8 == 0 && A->v_rstride % 8 == 0 && A->k_bstride % 8 == 0 &&
           A->v_bstride % 8 == 0;
}
static bool tc_bwd_ok(const AttnArgs *A) {
    return tc_shape_ok(A) && al16(A->qkv) && al16(A->qr) && al16(A->kr) && al16(A->dout) && al16(A->dqkv);
}
/* rows per forward block: 128 (8 warps); ROPEPP_ATTN_FWD_BM=64 gives 64 (4 warps, two blocks per SM) */
static int tc_fwd_bm(void) {
    const char *e = getenv("ROPEPP_ATTN_FWD_BM");
    return (e != NULL && atoi(e) == 64) ? 64 : 128;
}
template <int HD, int BM> static void tc_fwd_launch_t(const AttnArgs *A) {
    const int P = tc_pack(A->agroup), BMpos = BM / P;
    dim3 grid((unsigned)(A->NA / P), (unsigned)A->B, (unsigned)((A->T + BMpos - 1) / BMpos));
    tc_set_smem<HD>();
    tc_fwd_kernel<HD, BM><<<grid, BM * 2, tc_fwd_smem<HD, BM>()>>>(*A, P);
    cudaCheckLaunch();
}
static void tc_fwd_launch(const AttnArgs *A) {
    const int bm = tc_fwd_bm();
    if (A->HD == 64) { if (bm == 64) tc_fwd_launch_t<64, 64>(A); else tc_fwd_launch_t<64, 128>(A); }
    else { if (bm == 64) tc_fwd_launch_t<128, 64>(A); else tc_fwd_launch_t<128, 128>(A); }
}
/* key rows per dk/dv block: 64 (4 warps, two blocks per SM; measured as fast as 128 at every benchmark shape and
   faster on small grids: few kv heads, short batches); ROPEPP_ATTN_DKV_BK=128 gives 128 (8 warps) */
static int tc_dkv_bk(const AttnArgs *A) {
    (void)A;
    const char *e = getenv("ROPEPP_ATTN_DKV_BK");
    return (e != NULL && atoi(e) == 128) ? 128 : 64;
}
/* bytes of dS^T tiles one sequence needs, and the most the backward may hold (ROPEPP_ATTN_DS_MB, default 1024;
   0 = always recompute S and dP in the dq kernel) */
static size_t tc_ds_bytes_per_seq(const AttnArgs *A) {
    const size_t n = (size_t)(A->T + 63) / 64;
    return (size_t)A->NA * (n * (n + 1) / 2) * 4096 * sizeof(bf16);
}
static size_t tc_ds_cap(void) {
    const char *e = getenv("ROPEPP_ATTN_DS_MB");
    return (e != NULL && e[0] != '\0' ? (size_t)atol(e) : (size_t)1024) << 20;
}
template <int HD> static void tc_dkv_launch(const AttnArgs *A, int ng, int nb, int BK) {
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
    return e != NULL && e[0] != '\0' ? (size_t)atol(e) : 512;
}
template <int HD> static void tc_bwd_launch_hd(const AttnArgs *A) {
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
                tc_dkv_launch<HD>(&C, cg, cb, BK);
                tc_bwd_dq_ds_kernel<HD><<<dim3((unsigned)(C.nag / P), (unsigned)cb, nqt), TC_THREADS,
                                          tc_dq_ds_smem<HD>()>>>(C, P);
                cudaCheckLaunch();
            }
        return;
    }
    tc_bwd_dq_kernel<HD><<<dim3((unsigned)(A->NA / P), (unsigned)A->B, nqt), TC_THREADS, tc_dq_smem<HD>()>>>(*A, P);
    cudaCheckLaunch();
    tc_dkv_launch<HD>(A, A->KVH, A->B, BK);
}
static void tc_bwd_launch(const AttnArgs *A) {
    if (A->HD == 64) tc_bwd_launch_hd<64>(A);
    else tc_bwd_launch_hd<128>(A);
}
#endif /* !ROPEPP_FP32 */

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

size_t attention_stats_size(int B, int T, int NA) { return (size_t)B * NA * T; }

void attention_forward(floatX *out, floatX *qr, floatX *kr, floatM *stats, const floatX *qkv, const PosEmb *pe,
                       int B, int T, int HQ, int KVH, int HD) {
    attn_check_shape(pe, B, T, HQ, KVH, HD);
    AttnArgs A = attn_args(pe, B, T, HQ, KVH, HD);
    /* keys: rotated once, stored (the KV cache's content); the attention kernel reads kr */
    rotary_forward(kr, qkv + (size_t)HQ * HD, A.stride, pe, 0, 1, B, T, KVH, HD);
    A.qkv = qkv; A.out = out; A.qr = qr; A.kr = kr; A.stats = stats;
    A.kptr = kr; A.k_bstride = (size_t)T * KVH * HD; A.k_rstride = (size_t)KVH * HD;
    A.vptr = qkv + (size_t)(HQ + KVH) * HD; A.v_bstride = (size_t)T * A.stride; A.v_rstride = A.stride;
    A.qpos0 = 0; A.nkeys = T;
    attn_fwd_launch(&A);
}

void attention_backward(floatX *dqkv, const floatX *dout, const floatX *qr, const floatX *kr, const floatM *stats,
                        const floatX *qkv, const floatX *out, const PosEmb *pe, int B, int T, int HQ, int KVH,
                        int HD) {
    attn_check_shape(pe, B, T, HQ, KVH, HD);
    AttnArgs A = attn_args(pe, B, T, HQ, KVH, HD);
    size_t rows = (size_t)B * T * A.NA;
    float *D = (float *)scratch_get(SCR_D, rows * sizeof(float));
    attn_rowdot_kernel<<<(unsigned)((rows + 7) / 8), 256>>>(D, dout, out, B, T, A.NA, HD);
    cudaCheckLaunch();
    A.qkv = qkv; A.qr = (floatX *)qr; A.kr = kr; A.stats_in = stats; A.dout = dout; A.D = D; A.dqkv = dqkv;
#ifndef ROPEPP_FP32
    if (tc_bwd_ok(&A)) { tc_bwd_launch(&A); return; }
#endif
    unsigned nt = (unsigned)((T + ATT_B - 1) / ATT_B);
    dim3 gq(nt, (unsigned)HQ, (unsigned)B), gk(nt, (unsigned)KVH, (unsigned)B);
    switch (attn_hdp(HD)) {
    case 16:
        attn_set_smem<16>();
        attn_bwd_dq_kernel<16><<<gq, ATT_THREADS, attn_dq_smem<16>()>>>(A);
        attn_bwd_dkv_kernel<16><<<gk, ATT_THREADS, attn_dkv_smem<16>()>>>(A);
        break;
    case 32:
        attn_set_smem<32>();
        attn_bwd_dq_kernel<32><<<gq, ATT_THREADS, attn_dq_smem<32>()>>>(A);
        attn_bwd_dkv_kernel<32><<<gk, ATT_THREADS, attn_dkv_smem<32>()>>>(A);
        break;
    case 64:
        attn_set_smem<64>();
        attn_bwd_dq_kernel<64><<<gq, ATT_THREADS, attn_dq_smem<64>()>>>(A);
        attn_bwd_dkv_kernel<64><<<gk, ATT_THREADS, attn_dkv_smem<64>()>>>(A);
        break;
    default:
        attn_set_smem<128>();
        attn_bwd_dq_kernel<128><<<gq, ATT_THREADS, attn_dq_smem<128>()>>>(A);
        attn_bwd_dkv_kernel<128><<<gk, ATT_THREADS, attn_dkv_smem<128>()>>>(A);
        break;
    }
    cudaCheckLaunch();
}

/* ---- cached attention (decoding) */

/* the new tokens' rotated keys and values into the cache rows pos0 .. pos0+Tn-1; one thread per (b, t, g, d) */
__global__ void kv_append_kernel(floatX *kcache, floatX *vcache, const floatX *qkv, PosEmb pe, int pos0, int Tn,
                                 int Tmax, int HQ, int KVH, int HD, size_t total) {
    const int half = pe.rot / 2;
    const size_t stride = (size_t)(HQ + 2 * KVH) * HD;
    GRID_STRIDE(i, total) {
        int d = (int)(i % HD), g = (int)((i / HD) % KVH);
        size_t bt = i / ((size_t)HD * KVH);
        int t = (int)(bt % Tn), b = (int)(bt / Tn), p = pos0 + t;
        const floatX *x = qkv + bt * stride + (size_t)(HQ + g) * HD;
        size_t row = (((size_t)b * Tmax + p) * KVH + g) * HD;
        vcache[row + d] = qkv[bt * stride + (size_t)(HQ + KVH + g) * HD + d];
        if (d < half) {
            size_t tab = ((size_t)(pe.per_group ? g : 0) * pe.T_table + p) * half + d;
            float c = pe.cos[tab], s = pe.sin[tab], a = x2f(x[d]), bb = x2f(x[d + half]);
            kcache[row + d] = f2x(a * c - bb * s);
            kcache[row + d + half] = f2x(bb * c + a * s);
        } else if (d >= pe.rot) {
            kcache[row + d] = x[d];
        }
    }
}

/* q (B, T, NA, HD) += N(0, sigma^2) on the heads of the noise target, as the CPU query_noise_forward */
__global__ void query_noise_kernel(floatX *q, PosEmb pe, int NA, int HD, size_t total) {
    GRID_STRIDE(i, total) {
        int a = (int)((i / HD) % NA);
        int is_imag = pe.imag && (a % 2 == 1);
        if ((pe.noise_target == NOISE_IMAG) != (is_imag != 0)) continue;
        q[i] = f2x(x2f(q[i]) + roundx((float)(pe.noise_sigma * noise_normal_dev(pe.noise_seed, i))));
    }
}

/* Split-K decoding (few new queries): block (split s, head a, query row z = b * Tn + t) runs an online softmax
   over keys [s * DEC_CHUNK, ...) up to the query's position, one warp per key at a time (lanes over dims), and
   writes (max, sum, unnormalized out) of its split; decode_combine merges the splits in order. */
#define DEC_CHUNK 64
#define DEC_WARPS 4
__global__ void __launch_bounds__(DEC_WARPS * 32) attn_decode_kernel(float *pm, float *pl, float *pacc,
        const floatX *qr, const floatX *kcache, const floatX *vcache, const float *alibi, int pos0, int Tn, int Tmax,
        int NA, int KVH, int HD, int nsplit, float scale2) {
    __shared__ float qs[128];
    __shared__ float wm[DEC_WARPS], wl[DEC_WARPS], wacc[DEC_WARPS][128];
    const int s = blockIdx.x, a = blockIdx.y, z = blockIdx.z;
    const int b = z / Tn, t = z % Tn, pos = pos0 + t, g = a / (NA / KVH);
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    for (int d = threadIdx.x; d < HD; d += blockDim.x) qs[d] = x2f(qr[((size_t)z * NA + a) * HD + d]);
    __syncthreads();
    const float slope2 = alibi != NULL ? alibi[a] * LOG2E_F : 0.0f;
    const int j0 = s * DEC_CHUNK, j1 = min(j0 + DEC_CHUNK, pos + 1);
    float m = -INFINITY, l = 0.0f, acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int j = j0 + w; j < j1; j += DEC_WARPS) {
        const floatX *kj = kcache + (((size_t)b * Tmax + j) * KVH + g) * HD;
        const floatX *vj = vcache + (((size_t)b * Tmax + j) * KVH + g) * HD;
        float dot = 0.0f;
#pragma unroll
        for (int r = 0; r < 4; r++) { int d = lane + 32 * r; if (d < HD) dot += qs[d] * x2f(kj[d]); }
        dot = warp_sum(dot);
        const float sc = dot * scale2 - slope2 * (float)(pos - j);
        const float mnew = fmaxf(m, sc), corr = exp2f(m - mnew), p = exp2f(sc - mnew);
        l = l * corr + p;
#pragma unroll
        for (int r = 0; r < 4; r++) { int d = lane + 32 * r; acc[r] = acc[r] * corr + (d < HD ? p * x2f(vj[d]) : 0.0f); }
        m = mnew;
    }
    if (lane == 0) { wm[w] = m; wl[w] = l; }
#pragma unroll
    for (int r = 0; r < 4; r++) { int d = lane + 32 * r; if (d < HD) wacc[w][d] = acc[r]; }
    __syncthreads();
    float M = -INFINITY;
    for (int k = 0; k < DEC_WARPS; k++) M = fmaxf(M, wm[k]);
    const size_t out = ((size_t)z * NA + a) * nsplit + s;
    if (threadIdx.x == 0) {
        float L = 0.0f;
        if (M != -INFINITY)
            for (int k = 0; k < DEC_WARPS; k++) if (wm[k] != -INFINITY) L += wl[k] * exp2f(wm[k] - M);
        pm[out] = M;
        pl[out] = L;
    }
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        float v = 0.0f;
        if (M != -INFINITY)
            for (int k = 0; k < DEC_WARPS; k++) if (wm[k] != -INFINITY) v += wacc[k][d] * exp2f(wm[k] - M);
        pacc[out * HD + d] = v;
    }
}

/* one warp per (query row z, head a): merge the splits in order */
__global__ void attn_decode_combine_kernel(floatX *out, const float *pm, const float *pl, const float *pacc,
                                           int rows, int NA, int HD, int nsplit) {
    int wi = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (wi >= rows * NA) return;
    const size_t base = (size_t)wi * nsplit;
    float M = -INFINITY;
    for (int s = 0; s < nsplit; s++) M = fmaxf(M, pm[base + s]);
    float L = 0.0f;
    for (int s = 0; s < nsplit; s++) if (pm[base + s] != -INFINITY) L += pl[base + s] * exp2f(pm[base + s] - M);
    const float inv = 1.0f / L;
    for (int d = lane; d < HD; d += 32) {
        float v = 0.0f;
        for (int s = 0; s < nsplit; s++)
            if (pm[base + s] != -INFINITY) v += pacc[(base + s) * HD + d] * exp2f(pm[base + s] - M);
        out[(size_t)wi * HD + d] = f2x(v * inv);
    }
}

void attention_cached_forward(floatX *out, floatX *kcache, floatX *vcache, const floatX *qkv, const PosEmb *pe,
                              int pos0, int B, int Tn, int Tmax, int HQ, int KVH, int HD) {
    attn_check_shape(pe, B, Tn, HQ, KVH, HD);
    char msg[256];
    if (pos0 < 0 || pos0 + Tn > Tmax) {
        snprintf(msg, sizeof(msg), "cached attention: positions %d..%d do not fit a cache of %d", pos0, pos0 + Tn - 1, Tmax);
        fail(msg, "make the KV cache longer (Tmax) or start a new sequence");
    }
    if (pe->rot > 0 && pe->T_table < pos0 + Tn) {
        snprintf(msg, sizeof(msg), "position tables hold %d positions but the cache reaches %d", pe->T_table, pos0 + Tn);
        fail(msg, "build the position-embedding tables for the whole cache (kvcache_init does)");
    }
    AttnArgs A = attn_args(pe, B, Tn, HQ, KVH, HD);
    size_t total = (size_t)B * Tn * KVH * HD;
    kv_append_kernel<<<grid_for(total, 256), 256>>>(kcache, vcache, qkv, *pe, pos0, Tn, Tmax, HQ, KVH, HD, total);
    cudaCheckLaunch();
    const float scale2 = A.scale2;
    if (Tn <= 4) {
        /* decoding: rotated (noisy) queries, then split-K over the cache */
        size_t nq = (size_t)B * Tn * A.NA * HD;
        floatX *qr = (floatX *)scratch_get(SCR_Q, nq * sizeof(floatX));
        PosEmb at = *pe;
        int half = pe->rot / 2;
        /* a shifted view of the tables: row t reads position pos0 + t (per-group tables keep their T_table stride) */
        if (half > 0) { at.cos = pe->cos + (size_t)pos0 * half; at.sin = pe->sin + (size_t)pos0 * half; }
        rotary_forward(qr, qkv, A.stride, &at, pe->imag, HQ / KVH, B, Tn, HQ, HD);
        if (pe->noise_target != NOISE_NONE && pe->noise_sigma != 0.0) {
            query_noise_kernel<<<grid_for(nq, 256), 256>>>(qr, *pe, A.NA, HD, nq);
            cudaCheckLaunch();
        }
        int nsplit = (pos0 + Tn + DEC_CHUNK - 1) / DEC_CHUNK;
        size_t rows = (size_t)B * Tn;
        size_t np = rows * A.NA * nsplit;
        float *part = (float *)scratch_get(SCR_DEC, np * (2 + (size_t)HD) * sizeof(float));
        float *pm = part, *pl = part + np, *pacc = part + 2 * np;
        dim3 grid((unsigned)nsplit, (unsigned)A.NA, (unsigned)rows);
        attn_decode_kernel<<<grid, DEC_WARPS * 32>>>(pm, pl, pacc, qr, kcache, vcache, pe->alibi, pos0, Tn, Tmax,
                                                     A.NA, KVH, HD, nsplit, scale2);
        cudaCheckLaunch();
        attn_decode_combine_kernel<<<(unsigned)((rows * A.NA + 7) / 8), 256>>>(out, pm, pl, pacc, (int)rows, A.NA,
                                                                              HD, nsplit);
        cudaCheckLaunch();
    } else {
        /* prefill: the flash kernel with absolute query positions and the cache as keys and values */
        A.qkv = qkv; A.out = out; A.qr = NULL; A.stats = NULL;
        A.kptr = kcache; A.k_bstride = (size_t)Tmax * KVH * HD; A.k_rstride = (size_t)KVH * HD;
        A.vptr = vcache; A.v_bstride = A.k_bstride; A.v_rstride = A.k_rstride;
        A.qpos0 = pos0; A.nkeys = pos0 + Tn;
        attn_fwd_launch(&A);
    }
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
                                             float dloss, int V, bool vec) {
    int n = blockIdx.x;
    int y = targets[n];
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

void crossentropy_backward(floatX *dlogits, const floatX *logits, const int *targets, double dloss, int N, int V) {
    if (N <= 0) return;
    crossentropy_backward_kernel<<<N, 256>>>(dlogits, NULL, logits, targets, (float)dloss, V,
                                             vec_ok(logits, (size_t)V) && vec_ok(dlogits, (size_t)V));
    cudaCheckLaunch();
}

void crossentropy_forward_backward(floatM *losses, floatX *dlogits, const floatX *logits, const int *targets,
                                   double dloss, int N, int V) {
    if (N <= 0) return;
    crossentropy_backward_kernel<<<N, 256>>>(dlogits, losses, logits, targets, (float)dloss, V,
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
        fprintf(stderr, "HINT: lower the batch size (--batch) or sequence length (--seq), or use a smaller model\n");
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
