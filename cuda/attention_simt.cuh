/*
cuda/attention_simt.cuh — the fused causal flash-style attention on CUDA cores (fp32 math): forward, dq and dk/dv.
The fallback for head dims other than 64 and 128 and for the fp32 build (exact CPU parity). Part of ropepp_cuda.cu's
single compilation unit (included from it). The op functions attention_forward / attention_backward there launch it.
*/
/* ------------------------------------------------------------------------------------------------ fused attention */

#define ATT_B 64                 /* query and key tile */
#define ATT_THREADS 256          /* 16 x 16 threads: ty owns 4 rows, tx 4 score columns (tx + 16 j) */
#define ATT_LDP (ATT_B + 4)      /* row stride of score tiles in shared memory (floats) */

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
        for (int idx = tid; idx < qvalid * half; idx += ATT_THREADS) {
            int r = idx / half, j = idx % half;
            float c, s, x0 = Qs[r * LD + j], x1 = Qs[r * LD + j + half], y0, y1;
            rotary_cs(c, s, pe, rotary_table_index(pe, g, p0 + r, j), is_imag);
            rotary_pair_forward(y0, y1, x0, x1, c, s);
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
            if (tx == 0 && A.lse2 != NULL) A.lse2[((size_t)b * A.NA + a) * T + t] = m[i] + log2f(l[i]);
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
            lse[i] = t < T ? A.lse2_in[si] : 0.0f;
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
            float c, s, g1 = Ks[r * LD + j], g2 = Ks[r * LD + j + half], da, db;
            rotary_cs(c, s, pe, rotary_table_index(pe, g, t, j), is_imag);
            rotary_pair_backward(da, db, g1, g2, c, s);
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
                LSEs[tid] = t < T ? A.lse2_in[si] : 0.0f;
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
    const int half = pe.rot / 2;
    floatX *kb = A.dqkv + (row0 + k0) * A.stride + (size_t)(A.HQ + g) * HD;
    for (int idx = tid; idx < kvalid * half; idx += ATT_THREADS) {
        int r = idx / half, j = idx % half, t = k0 + r;
        float c, s, g1 = Qs[r * LD + j], g2 = Qs[r * LD + j + half], da, db;
        rotary_cs(c, s, pe, rotary_table_index(pe, g, t, j), 0);
        rotary_pair_backward(da, db, g1, g2, c, s);
        floatX *p = kb + (size_t)r * A.stride;
        p[j] = f2x(da);
        p[j + half] = f2x(db);
    }
    const int npass = HD - pe.rot;
    for (int idx = tid; idx < kvalid * npass; idx += ATT_THREADS) {
        int r = idx / npass, d = pe.rot + idx % npass;
        floatX *p = kb + (size_t)r * A.stride;
        p[d] = f2x(Qs[r * LD + d]);
    }
}

