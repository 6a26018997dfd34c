/*
cuda/decode.cuh — decoding on the GPU: appending rotated keys and values to the KV cache, the split-K
("flash-decoding") attention of a few new queries over the cache with its combine pass, and sampling the next tokens
(greedy, temperature, top-k, top-p). Part of ropepp_cuda.cu's single compilation unit (included from it);
attention_cached_forward and sample_forward there launch these kernels.

The position of the first new token is read from device memory (pos_dev) when the model gives one, so that a decode
step captured into a CUDA graph replays at the cache's current position; otherwise from the launch argument pos0.

Split-K attention (Tn <= 4 new tokens per sequence). Block (split s, kv head g and head chunk, query row z = b*Tn + t)
owns the keys [s * chunk, (s + 1) * chunk) of row z's prefix 0 .. pos (chunk = ceil((pos + 1) / nsplit), computed
in the kernel from the position, so one launch shape serves every step). It serves every attention head of the GQA
group (for RoPE++ the real and imaginary head of each q head, up to DEC_HMAX of them) from one read of each K/V row:
8 half-warps, each walking keys with its 16 lanes over 8 dims each (a 16-byte load of bf16 per lane per row for head
dim 128), an online softmax per head in registers, DEC_U keys per half-warp in flight. The half-warps' states merge
in shared memory into (max, sum, unnormalized out) of the split; attn_decode_combine_kernel (one block per query
row and head) merges the splits. Bytes read per step are the cache's rows once per kv head: RoPE++ EH (half the kv heads) reads half of RoPE's.
*/
/* ---- cached attention (decoding) */

/* position of the first new token: device memory when given (graph replay), else the launch argument */
__device__ __forceinline__ int decode_pos0(const int *pos_dev, int pos0) { return pos_dev != NULL ? *pos_dev : pos0; }

/* The new tokens' rotated keys and values into the cache rows pos0 .. pos0+Tn-1; one thread per (b, t, g, e) with
   e < rot/2 the rotated pair (e, e + rot/2) and e >= rot/2 a pass-through dim, as rotary_forward_kernel. */
__global__ void kv_append_kernel(floatX *kcache, floatX *vcache, const floatX *qkv, PosEmb pe, const int *pos_dev,
                                 int pos0, int Tn, int Tmax, int HQ, int KVH, int HD, size_t total) {
    const int half = pe.rot / 2, W = half + HD - pe.rot, p0 = decode_pos0(pos_dev, pos0);
    const size_t stride = (size_t)(HQ + 2 * KVH) * HD;
    GRID_STRIDE(i, total) {
        int e = (int)(i % W), g = (int)((i / W) % KVH);
        size_t bt = i / ((size_t)W * KVH);
        int t = (int)(bt % Tn), b = (int)(bt / Tn), p = p0 + t;
        const floatX *x = qkv + bt * stride + (size_t)(HQ + g) * HD;
        const floatX *v = qkv + bt * stride + (size_t)(HQ + KVH + g) * HD;
        size_t row = (((size_t)b * Tmax + p) * KVH + g) * HD;
        if (e < half) {
            float c, s, o1, o2;
            rotary_cs(c, s, pe, rotary_table_index(pe, g, p, e), 0);
            rotary_pair_forward(o1, o2, x2f(x[e]), x2f(x[e + half]), c, s);
            kcache[row + e] = f2x(o1);
            kcache[row + e + half] = f2x(o2);
            vcache[row + e] = v[e];
            vcache[row + e + half] = v[e + half];
        } else {
            int d = pe.rot + e - half;
            kcache[row + d] = x[d];
            vcache[row + d] = v[d];
        }
    }
}

#define DEC_THREADS 128   /* 8 half-warps */
#define DEC_HW (DEC_THREADS / 16)
#define DEC_U 4           /* keys per half-warp per step */
#define DEC_HMAX 4        /* the most attention heads one block serves (HM: 1, 2 or 4, from the GQA group) */

/* 8 consecutive elements of a row, n of them valid (vec: 16-byte loads, one for bf16), kept as floatX */
struct alignas(16) X8 { floatX e[8]; };
__device__ __forceinline__ void load8(X8 &o, const floatX *p, int n, bool vec) {
    if (vec) {
#pragma unroll
        for (int k = 0; k < 8; k += XVEC)
            *reinterpret_cast<uint4 *>(&o.e[k]) = __ldg(reinterpret_cast<const uint4 *>(p + k));
    } else {
#pragma unroll
        for (int k = 0; k < 8; k++) o.e[k] = k < n ? p[k] : f2x(0.0f);
    }
}

/* One block per (split, kv head g x head chunk, query row z): see the file's opening block. Partial results:
   pm, pl (rows, NA, nsplit) the base-2 running max and sum, pacc (rows, NA, nsplit, HD) the unnormalized output. */
template <int HM>
__global__ void __launch_bounds__(DEC_THREADS) attn_decode_kernel(float *pm, float *pl, float *pacc,
        const floatX *qkv, const floatX *kcache, const floatX *vcache, PosEmb pe, const int *pos_dev, int pos0,
        int Tn, int Tmax, int HQ, int KVH, int HD, int nsplit, int nchunk, float scale2) {
    __shared__ float qs[HM][128];
    __shared__ float sm_m[DEC_HW][HM], sm_l[DEC_HW][HM];
    __shared__ float sm_acc[DEC_HW][HM][128];
    const int s = blockIdx.x, z = blockIdx.z, g = blockIdx.y / nchunk, chunk_i = blockIdx.y % nchunk;
    const int NA = HQ * (pe.imag ? 2 : 1), group = NA / KVH;
    const int a0 = g * group + chunk_i * HM, nh = min(HM, group - chunk_i * HM);
    const int b = z / Tn, t = z % Tn, pos = decode_pos0(pos_dev, pos0) + t, half = pe.rot / 2;
    const size_t stride = (size_t)(HQ + 2 * KVH) * HD;
    /* the block's queries: rotated (real, or imaginary for the odd heads of RoPE++), rounded to floatX as the stored
       qr of the training path, plus the query noise of the noise experiment */
    for (int i = threadIdx.x; i < nh * HD; i += blockDim.x) {
        const int h = i / HD, d = i % HD, a = a0 + h, qh = pe.imag ? a / 2 : a, imag = pe.imag ? a % 2 : 0;
        const floatX *x = qkv + (size_t)z * stride + (size_t)qh * HD;
        float v;
        if (d < pe.rot) {
            const int j = d < half ? d : d - half;
            float c, sn, o1, o2;
            rotary_cs(c, sn, pe, rotary_table_index(pe, pe.per_group ? qh / (HQ / KVH) : 0, pos, j), imag);
            rotary_pair_forward(o1, o2, x2f(x[j]), x2f(x[j + half]), c, sn);
            v = roundx(d < half ? o1 : o2);
        } else {
            v = x2f(x[d]);
        }
        if (pe.noise_target != NOISE_NONE && pe.noise_sigma != 0.0 && (pe.noise_target == NOISE_IMAG) == (imag != 0))
            v = roundx(v + roundx((float)(pe.noise_sigma * noise_normal_dev(pe.noise_seed, ((size_t)z * NA + a) * HD + d))));
        qs[h][d] = v;
    }
    __syncthreads();
    const int hw = threadIdx.x >> 4, l16 = threadIdx.x & 15, d0 = l16 * 8, nd = max(0, min(8, HD - d0));
    float q[HM][8], acc[HM][8], m[HM], l[HM], slope2[HM];
#pragma unroll
    for (int h = 0; h < HM; h++) {
        m[h] = -INFINITY; l[h] = 0.0f;
        slope2[h] = (pe.alibi != NULL && h < nh) ? pe.alibi[a0 + h] * LOG2E_F : 0.0f;
#pragma unroll
        for (int k = 0; k < 8; k++) { q[h][k] = (h < nh && k < nd) ? qs[h][d0 + k] : 0.0f; acc[h][k] = 0.0f; }
    }
    const int len = pos + 1, chunk = (len + nsplit - 1) / nsplit;
    const int j0 = min(len, s * chunk), j1 = min(len, j0 + chunk);
    const size_t rowstride = (size_t)KVH * HD;
    const floatX *kbase = kcache + ((size_t)b * Tmax * KVH + g) * HD + d0;
    const floatX *vbase = vcache + ((size_t)b * Tmax * KVH + g) * HD + d0;
    const bool vec = (HD % 8 == 0) && nd == 8 && ((((uintptr_t)kcache | (uintptr_t)vcache) & 15) == 0);
    for (int jb = j0; jb < j1; jb += DEC_HW * DEC_U) {
        X8 kr[DEC_U], vr[DEC_U];
#pragma unroll
        for (int u = 0; u < DEC_U; u++) {
            const int j = jb + hw + DEC_HW * u;
            if (j < j1 && nd > 0) {
                load8(kr[u], kbase + (size_t)j * rowstride, nd, vec);
                load8(vr[u], vbase + (size_t)j * rowstride, nd, vec);
            } else {
#pragma unroll
                for (int k = 0; k < 8; k++) { kr[u].e[k] = f2x(0.0f); vr[u].e[k] = f2x(0.0f); }
            }
        }
#pragma unroll
        for (int h = 0; h < HM; h++) {
            if (h >= nh) break;
            float sc[DEC_U], mx = -INFINITY;
#pragma unroll
            for (int u = 0; u < DEC_U; u++) {
                float dot = 0.0f;
#pragma unroll
                for (int k = 0; k < 8; k++) dot += q[h][k] * x2f(kr[u].e[k]);
                dot = half_sum(dot);
                const int j = jb + hw + DEC_HW * u;
                sc[u] = j < j1 ? dot * scale2 - slope2[h] * (float)(pos - j) : -INFINITY;
                mx = fmaxf(mx, sc[u]);
            }
            const float mnew = fmaxf(m[h], mx);
            if (mnew == -INFINITY) continue;
            const float corr = exp2f(m[h] - mnew);
            float p[DEC_U], psum = 0.0f;
#pragma unroll
            for (int u = 0; u < DEC_U; u++) { p[u] = exp2f(sc[u] - mnew); psum += p[u]; }
            l[h] = l[h] * corr + psum;
            m[h] = mnew;
#pragma unroll
            for (int k = 0; k < 8; k++) {
                float a = acc[h][k] * corr;
#pragma unroll
                for (int u = 0; u < DEC_U; u++) a += p[u] * x2f(vr[u].e[k]);
                acc[h][k] = a;
            }
        }
    }
    /* merge the half-warps in a fixed order */
#pragma unroll
    for (int h = 0; h < HM; h++) {
        if (l16 == 0) { sm_m[hw][h] = m[h]; sm_l[hw][h] = l[h]; }
#pragma unroll
        for (int k = 0; k < 8; k++) if (k < nd) sm_acc[hw][h][d0 + k] = acc[h][k];
    }
    __syncthreads();
    for (int i = threadIdx.x; i < nh * HD; i += blockDim.x) {
        const int h = i / HD, d = i % HD;
        float M = -INFINITY;
        for (int w = 0; w < DEC_HW; w++) M = fmaxf(M, sm_m[w][h]);
        float L = 0.0f, o = 0.0f;
        if (M != -INFINITY)
            for (int w = 0; w < DEC_HW; w++)
                if (sm_m[w][h] != -INFINITY) {
                    const float f = exp2f(sm_m[w][h] - M);
                    L += sm_l[w][h] * f;
                    o += sm_acc[w][h][d] * f;
                }
        const size_t out = ((size_t)z * NA + a0 + h) * nsplit + s;
        if (d == 0) { pm[out] = M; pl[out] = L; }
        pacc[out * HD + d] = o;
    }
}

/* One block per (query row z, head a): merges the splits of attn_decode_kernel,
     out = sum_s 2^(m_s - M) acc_s / sum_s 2^(m_s - M) l_s,   M = max_s m_s
   (an empty split has m_s = -inf and adds nothing). The weights 2^(m_s - M) go to shared memory (nsplit floats,
   dynamic), then each thread owns one dim d and sums over the splits in order: its loads are independent of each
   other (8 in flight), and a warp's 32 dims are one coalesced 128-byte read per split. The reductions over the
   splits run in a fixed order, so the result is the same on every run. (Before 2026-12-04 one warp per (z, a)
   did the whole merge, split after split: 64 warps at batch 8, 11-18% of a 32k-context step in the ncu profile
   of bench/decode/2026-12-04-profile.) */
#define DEC_COMBINE_THREADS 128
__global__ void __launch_bounds__(DEC_COMBINE_THREADS) attn_decode_combine_kernel(floatX *out, const float *pm,
        const float *pl, const float *pacc, int HD, int nsplit) {
    /* dynamic only: a static array beside it would put the dynamic part after the 1024-byte alignment that
       sm90_smem's declaration gives every extern __shared__ array of this compilation unit, past the bytes the
       launch asks for (compute-sanitizer memcheck, 2026-12-04) */
    extern __shared__ float wsplit[];   /* (nsplit) weights, then (DEC_COMBINE_THREADS / 32) partial results */
    float *red = wsplit + nsplit;
    const size_t base = (size_t)blockIdx.x * nsplit;
    const int tid = threadIdx.x, lane = tid & 31, wid = tid >> 5, nw = DEC_COMBINE_THREADS / 32;
    float M = -INFINITY;
    for (int s = tid; s < nsplit; s += DEC_COMBINE_THREADS) M = fmaxf(M, pm[base + s]);
    for (int o = 16; o > 0; o >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
    if (lane == 0) red[wid] = M;
    __syncthreads();
    M = red[0];
    for (int k = 1; k < nw; k++) M = fmaxf(M, red[k]);
    __syncthreads();   /* red is reused below */
    float L = 0.0f;
    for (int s = tid; s < nsplit; s += DEC_COMBINE_THREADS) {
        const float ms = pm[base + s], f = ms == -INFINITY ? 0.0f : exp2f(ms - M);
        wsplit[s] = f;
        L += pl[base + s] * f;
    }
    for (int o = 16; o > 0; o >>= 1) L += __shfl_xor_sync(0xffffffffu, L, o);
    if (lane == 0) red[wid] = L;
    __syncthreads();   /* also makes wsplit visible to every thread */
    L = 0.0f;
    for (int k = 0; k < nw; k++) L += red[k];
    const float inv = 1.0f / L;
    for (int d = tid; d < HD; d += DEC_COMBINE_THREADS) {
        const float *p = pacc + base * HD + d;
        float v = 0.0f;
#pragma unroll 8
        for (int s = 0; s < nsplit; s++) v += p[(size_t)s * HD] * wsplit[s];
        out[(size_t)blockIdx.x * HD + d] = f2x(v * inv);
    }
}

/* ---- sampling (sample_forward): the CPU sampler sample_token on B rows at once */

/* rng_uniform's draw number k (0-based) from splitmix64 state `state`: the state after k + 1 draws, finalized */
__device__ __forceinline__ double rng_uniform_at(uint64_t state, uint64_t k) {
    uint64_t x = state + k * 0x9E3779B97F4A7C15ull;
    return (double)(splitmix64_dev(&x) >> 11) * (1.0 / 9007199254740992.0);
}

#define SAMPLE_THREADS 1024
/* row-wide argmax with the first index on ties (sample_token's `>` scan); every thread gets it */
__device__ void block_argmax(float &best, int &besti) {
    __shared__ float bv[32];
    __shared__ int bi[32];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        float v2 = __shfl_xor_sync(0xffffffffu, best, o);
        int i2 = __shfl_xor_sync(0xffffffffu, besti, o);
        if (v2 > best || (v2 == best && i2 < besti)) { best = v2; besti = i2; }
    }
    __syncthreads();
    if (lane == 0) { bv[w] = best; bi[w] = besti; }
    __syncthreads();
    best = -INFINITY; besti = 0x7fffffff;
    for (int k = 0; k < nw; k++) if (bv[k] > best || (bv[k] == best && bi[k] < besti)) { best = bv[k]; besti = bi[k]; }
}

__device__ double block_sum_d(double v) {
    __shared__ double buf[32];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if (lane == 0) buf[w] = v;
    __syncthreads();
    double r = 0.0;
    for (int k = 0; k < nw; k++) r += buf[k];
    return r;
}

__device__ int block_min_i(int v) {
    __shared__ int buf[32];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads();
    if (lane == 0) buf[w] = v;
    __syncthreads();
    int r = 0x7fffffff;
    for (int k = 0; k < nw; k++) r = min(r, buf[k]);
    return r;
}

/* one block per row b: greedy writes the argmax; otherwise the probabilities
   prob[b, i] = exp((logit_i - max) / temperature) / sum, in double as sample_token, and idx[b, i] = i */
__global__ void __launch_bounds__(SAMPLE_THREADS) sample_probs_kernel(int *tokens, double *prob, int *idx,
        const floatX *logits, size_t row_stride, int V, double temperature) {
    const int b = blockIdx.x;
    const floatX *x = logits + (size_t)b * row_stride;
    float best = -INFINITY;
    int besti = 0x7fffffff;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float v = x2f(x[i]);
        if (v > best) { best = v; besti = i; }
    }
    block_argmax(best, besti);
    if (temperature <= 0.0) {
        if (threadIdx.x == 0) tokens[b] = besti;
        return;
    }
    double sum = 0.0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        double e = exp(((double)x2f(x[i]) - (double)best) / temperature);
        prob[(size_t)b * V + i] = e;
        idx[(size_t)b * V + i] = i;
        sum += e;
    }
    sum = block_sum_d(sum);
    for (int i = threadIdx.x; i < V; i += blockDim.x) prob[(size_t)b * V + i] /= sum;
}

/* one block per row b over its probabilities p (V, descending when top-k or top-p is on, else in token order) and
   their tokens id: keep the first n (top-k, then the shortest prefix whose sum reaches top-p), draw
   r = u * sum(kept) with u the row's uniform, and take the first i with r < cumsum(p)[i] (else the last kept), as
   sample_token. Each thread owns a contiguous segment; the segments' sums are scanned in thread order. */
__global__ void __launch_bounds__(SAMPLE_THREADS) sample_select_kernel(int *tokens, const double *prob,
        const int *idx, const uint64_t *rng, int V, int top_k, double top_p) {
    __shared__ double seg_cum[SAMPLE_THREADS + 1];
    __shared__ double total_sh;
    const int b = blockIdx.x, tid = threadIdx.x;
    const double *p = prob + (size_t)b * V;
    const int *id = idx + (size_t)b * V;
    const int per = (V + blockDim.x - 1) / blockDim.x, i0 = min(V, tid * per), i1 = min(V, i0 + per);
    int n = (top_k > 0 && top_k < V) ? top_k : V;
    double s = 0.0;
    for (int i = i0; i < min(i1, n); i++) s += p[i];
    seg_cum[tid + 1] = s;
    __syncthreads();
    if (tid == 0) {
        seg_cum[0] = 0.0;
        for (int k = 1; k <= (int)blockDim.x; k++) seg_cum[k] += seg_cum[k - 1];
    }
    __syncthreads();
    if (top_p < 1.0) {   /* n = 1 + the first i < n with cum[i] >= top_p */
        double cum = seg_cum[tid];
        int first = 0x7fffffff;
        for (int i = i0; i < min(i1, n); i++) { cum += p[i]; if (cum >= top_p) { first = i; break; } }
        first = block_min_i(first);
        if (first != 0x7fffffff) n = first + 1;
    }
    /* total = sum of the kept n */
    if (tid == 0) total_sh = 0.0;
    __syncthreads();
    {
        double cum = seg_cum[tid];
        for (int i = i0; i < min(i1, n); i++) { cum += p[i]; if (i == n - 1) total_sh = cum; }
    }
    __syncthreads();
    const double r = rng_uniform_at(rng[0], (uint64_t)b) * total_sh;
    double cum = seg_cum[tid];
    int first = 0x7fffffff;
    for (int i = i0; i < min(i1, n); i++) { cum += p[i]; if (r < cum) { first = i; break; } }
    first = block_min_i(first);
    if (tid == 0) tokens[b] = id[first != 0x7fffffff ? first : n - 1];
}

/* one thread: the sampler state moves past the B draws; or any int of backend memory += n */
__global__ void add_u64_kernel(uint64_t *x, uint64_t n) { *x += n; }
__global__ void add_int_kernel(int *x, int n) { *x += n; }

/* offsets of B segments of V for cub's segmented sort: seg[i] = i * V, i <= B */
__global__ void segment_offsets_kernel(int *seg, int B, int V) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= B) seg[i] = i * V;
}
