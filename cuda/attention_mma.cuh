/*
cuda/attention_mma.cuh — the fused causal flash attention on the tensor cores with mma.sync (bf16 in, fp32 accumulate),
sm_80 and later: forward, dk/dv (storing dS^T tiles) and dq, with the forward's launcher (the backward's kernels are
launched by ropepp_cuda.cu's attention dispatch). Part of ropepp_cuda.cu's single compilation unit (included from
it). Used by the bf16 build for head dims 64 and 128.
*/
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
__device__ __forceinline__ void unpack8(float (&f)[8], uint4 u) {
    float2 v0 = unpack_bf16(u.x), v1 = unpack_bf16(u.y), v2 = unpack_bf16(u.z), v3 = unpack_bf16(u.w);
    f[0] = v0.x; f[1] = v0.y; f[2] = v1.x; f[3] = v1.y; f[4] = v2.x; f[5] = v2.y; f[6] = v3.x; f[7] = v3.y;
}
__device__ __forceinline__ void ld8(float (&f)[8], const bf16 *p) { unpack8(f, *reinterpret_cast<const uint4 *>(p)); }
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

/* acc (16 x 64, fp32 fragments) = rows w*16 .. w*16+15 of the swizzled (rows, HD) tile at shared address arow times
   the 64 rows of the swizzled tile bt, transposed: the dk/dv kernel's S^T = K Q^T and dP^T = V dO^T */
template <int HD> __device__ __forceinline__ void mma_rows_tile_t(float (&acc)[8][4], uint32_t arow, const bf16 *bt,
                                                                 int w, int lane) {
#pragma unroll
    for (int n = 0; n < 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < HD / 16; ks++) {
        uint32_t af[4];
        ldsm4(af, arow + 2 * swz<HD>(w * 16 + (lane & 15), ks * 2 + (lane >> 4)));
#pragma unroll
        for (int np = 0; np < 4; np++) {
            uint32_t bq[4];
            ldsm4(bq, smem_u32(bt + swz<HD>(np * 16 + (lane & 7) + (lane >> 4) * 8, ks * 2 + ((lane >> 3) & 1))));
            mma16816(acc[2 * np], af, bq[0], bq[1]);
            mma16816(acc[2 * np + 1], af, bq[2], bq[3]);
        }
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
                const int t = q0 + r % BMpos;
                if (i < npair && t < T) {
                    const size_t tab = rotary_table_index(pe, g, A.qpos0 + t, c * 8);
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
                        float c_e, s_e, u0, u1;
                        rotary_cs(c_e, s_e, cs[u][e], sn[u][e], is_imag);
                        rotary_pair_forward(u0, u1, x0[e], x1[e], c_e, s_e);
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
        if ((lane & 3) == 0 && A.lse2 != NULL) A.lse2[((size_t)b * NA + a) * T + tA] = mA + log2f(lA);
    }
    if (tB < T) {
        bf16 *op = A.out + ((row0 + tB) * NA + a) * HD + col;
#pragma unroll
        for (int n = 0; n < NO; n++) *reinterpret_cast<uint32_t *>(op + n * 8) = pack_bf16(o[n][2] * iB, o[n][3] * iB);
        if ((lane & 3) == 0 && A.lse2 != NULL) A.lse2[((size_t)b * NA + a) * T + tB] = mB + log2f(lB);
    }
}

/* The end of the dq kernels, part 1: warp w's 16 rows of dq (fragments as mma.sync's accumulator, times the softmax
   scale), fp32 into DQs (TC_BM rows of HD + 8, overlaying the finished tile stages). */
template <int HD> __device__ __forceinline__ void tc_dq_to_smem(const AttnArgs &A, const float (&dq)[HD / 8][4],
                                                               float *DQs, int w, int lane) {
    constexpr int NO = HD / 8, LDQ = HD + 8;
    {
        const int col = (lane & 3) * 2, r = w * 16 + (lane >> 2);
#pragma unroll
        for (int n = 0; n < NO; n++) {
            *reinterpret_cast<float2 *>(DQs + r * LDQ + n * 8 + col) = make_float2(dq[n][0] * A.scale, dq[n][1] * A.scale);
            *reinterpret_cast<float2 *>(DQs + (r + 8) * LDQ + n * 8 + col) = make_float2(dq[n][2] * A.scale, dq[n][3] * A.scale);
        }
    }
}
/* part 2, after a barrier over the threads that wrote DQs: per projected q head of the pack (P heads x TC_BM / P
   positions from a0, q0) the rotary backward of each of its heads (real, then imaginary: the transpose of the q
   rotation in attention_forward), summed, written into dqkv once; threads tid of nthreads. */
template <int HD> __device__ __forceinline__ void tc_dq_rotary_store(const AttnArgs &A, int P, const float *DQs, int a0,
                                                                    int q0, size_t row0, int tid, int nthreads) {
    constexpr int CH = HD / 8, LDQ = HD + 8;
    const PosEmb &pe = A.pe;
    const int BMpos = TC_BM / P, T = A.T;
    /* per projected q head: the rotary backward of each of its heads (real, then imaginary), summed, into dqkv */
    {
        const int half = pe.rot / 2, hch = half / 8, rch = pe.rot / 8;
        const int nh = pe.imag ? P / 2 : P, per = pe.imag ? 2 : 1;
        const int hbase = pe.imag ? a0 >> 1 : a0;
        for (int i = tid; i < nh * BMpos * CH; i += nthreads) {
            const int c = i % CH, pl = (i / CH) % BMpos, hh = i / (CH * BMpos), t = q0 + pl;
            if (t >= T || (c >= hch && c < rch)) continue;
            const int h = hbase + hh;
            const float *src = DQs + (size_t)(hh * per * BMpos + pl) * LDQ;
            bf16 *dst = A.dqkv + (row0 + t) * A.stride + (size_t)h * HD;
            if (c < hch) {
                float cs[8], sn[8], da[8], db[8];
                const size_t tab = rotary_table_index(pe, h / A.qgroup, t, c * 8);
                ld8f(cs, pe.cos + tab);
                ld8f(sn, pe.sin + tab);
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    const float g1 = src[c * 8 + e], g2 = src[(c + hch) * 8 + e];
                    float c_e, s_e;
                    rotary_cs(c_e, s_e, cs[e], sn[e], 0);
                    rotary_pair_backward(da[e], db[e], g1, g2, c_e, s_e);
                }
                if (per == 2) {
                    const float *si = src + BMpos * LDQ;
#pragma unroll
                    for (int e = 0; e < 8; e++) {
                        const float i1 = si[c * 8 + e], i2 = si[(c + hch) * 8 + e];
                        float c_e, s_e, da_im, db_im;
                        rotary_cs(c_e, s_e, cs[e], sn[e], 1);
                        rotary_pair_backward(da_im, db_im, i1, i2, c_e, s_e);
                        da[e] += da_im;
                        db[e] += db_im;
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

/* both parts for the mma.sync dq kernels (all TC_THREADS threads) */
template <int HD> __device__ __forceinline__ void tc_dq_epilogue(const AttnArgs &A, int P, const float (&dq)[HD / 8][4],
                                                                float *DQs, int a0, int q0, size_t row0) {
    tc_dq_to_smem<HD>(A, dq, DQs, threadIdx.x >> 5, threadIdx.x & 31);
    __syncthreads();
    tc_dq_rotary_store<HD>(A, P, DQs, a0, q0, row0, threadIdx.x, TC_THREADS);
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
    const float lseA = vA ? A.lse2_in[sA] : 0.0f, lseB = vB ? A.lse2_in[sB] : 0.0f;
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

/* The end of both dk/dv kernels (this one and sm90_bwd_dkv_kernel): dk of kvalid key rows k0 .. (fp32 in DKs, row
   stride ldk, already times the softmax scale) through the key rotary backward (the transpose of rotary_pair_forward
   on the kr = rotate(k) line of attention_forward) into dqkv's k section of kv head g; threads tid of nthreads. */
template <int HD> __device__ __forceinline__ void dk_rotary_store(const AttnArgs &A, const float *DKs, int ldk, int g,
                                                                 int k0, int kvalid, size_t row0, int tid, int nthreads) {
    constexpr int CH = HD / 8;
    const PosEmb &pe = A.pe;
    const int half = pe.rot / 2, hch = half / 8, rch = pe.rot / 8;
    for (int i = tid; i < kvalid * CH; i += nthreads) {
        const int r = i / CH, c = i % CH, t = k0 + r;
        if (c >= hch && c < rch) continue;
        const float *src = DKs + (size_t)r * ldk;
        bf16 *dst = A.dqkv + (row0 + t) * A.stride + (size_t)(A.HQ + g) * HD;
        float x[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        if (c < hch) {
            float cs[8], sn[8], y[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
            const size_t tab = rotary_table_index(pe, g, t, c * 8);
            ld8f(cs, pe.cos + tab);
            ld8f(sn, pe.sin + tab);
#pragma unroll
            for (int e = 0; e < 8; e++) {
                const float g1 = src[c * 8 + e], g2 = src[(c + hch) * 8 + e];
                float c_e, s_e, da, db;
                rotary_cs(c_e, s_e, cs[e], sn[e], 0);
                rotary_pair_backward(da, db, g1, g2, c_e, s_e);
                x[e] += da;
                y[e] += db;
            }
            *reinterpret_cast<uint4 *>(dst + (c + hch) * 8) = pack8(y);
        } else {
#pragma unroll
            for (int e = 0; e < 8; e++) x[e] += src[c * 8 + e];
        }
        *reinterpret_cast<uint4 *>(dst + c * 8) = pack8(x);
    }
}

/* Backward dk, dv: grid (KVH, B, key tiles of BK), key tile 0 (the longest) first; BK / 16 warps. BK = 128 (8 warps),
   or 64 (4 warps, two blocks per SM) when 128-key tiles would leave SMs idle (few kv heads, short batches). */
template <int HD, int BK> __global__ void __launch_bounds__(BK * 2, 256 / (BK * 2)) tc_bwd_dkv_kernel(AttnArgs A) {
    constexpr int NO = HD / 8, NT = BK * 2;
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
            if (tid < TC_BQ) cp_async4(smem_u32(LSEs + st * TC_BQ + n), A.lse2_in + si, ok);
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
            mma_rows_tile_t<HD>(s, krow, Qt, w, lane);
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
            mma_rows_tile_t<HD>(dp, vrow, dOt, w, lane);
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
    dk_rotary_store<HD>(A, DKs, HD + 8, g, k0, kvalid, row0, tid, NT);
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
#endif /* !ROPEPP_FP32 */
