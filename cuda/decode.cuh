/*
cuda/decode.cuh — cached attention for decoding: appending rotated keys and values to the KV cache, the query noise
of the noise experiment, and the split-K attention over the cache with its combine pass. Part of ropepp_cuda.cu's
single compilation unit (included from it); attention_cached_forward there launches these kernels.
*/
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

