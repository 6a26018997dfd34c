/*
cuda/attention_sm90.cuh — the fused causal flash attention for Hopper (sm_90a), forward and backward (dk/dv, dq):
wgmma from shared-memory descriptors, tiles by the bulk tensor copy engine (TMA) into rings completing on mbarriers,
one producer warp and two consumer warpgroups per block (setmaxnreg moves registers to the consumers), softmax in
fp32. Part of ropepp_cuda.cu's single compilation unit (included from it); compiled into kernels only for sm_90a
(-gencode=arch=compute_90a,code=sm_90a, `make gpu GPU_ARCH=90a`, the default on a Hopper machine); any other target
gets empty kernels that the dispatch never launches (sm90_available() is false), so the mma.sync kernels of
cuda/attention_mma.cuh run instead. ROPEPP_ATTN_SM90=0 in the environment turns this path off (comparisons).
Design notes, checks and timings: bench/attention/README.md and bench/attention/2026-12-04-sm90-bwd/.

Forward (sm90_fwd_kernel); semantics of tc_fwd_kernel (cuda/attention_mma.cuh), the reference on other GPUs:
  block (head pack of P heads, b, query tile of 128 / P positions): the P attention heads that read one kv head are
  stacked along the 128 rows (P heads x 128/P positions), so each K/V tile is loaded once for the GQA group; RoPE++'s
  real head 2h and imaginary head 2h+1 are in the same pack and both come from the raw q of head h.
  prologue (the 256 consumer threads): raw q rows from qkv, rotated with the rotary helper pair (real, or imaginary
  (c, s) -> (s, -c)), rounded to bf16, query noise, written to qr, stored into shared memory in the 128-byte swizzled
  layout that wgmma reads (and that TMA writes for K/V).
  producer (one thread of warpgroup 0): for each causal 128-key tile, waits for the stage to be free, then loads K and
  V (4-D tensor maps (HD, KVH, keys, B); keys past nkeys are zero-filled by the copy engine).
  consumers (warpgroups 1 and 2, 64 rows each, warp w of a warpgroup owns 16 rows as in the mma.sync kernel):
  S = Q K^T (wgmma m64n128k16, both operands from shared memory, K-major), scale, ALiBi, causal mask, online softmax
  in fp32 (base 2), P rounded to bf16 in registers, O += P V (wgmma with A = P from registers, B = V through a
  transposed (MN-major) descriptor). Pipelined inside each warpgroup: S of tile kt and P V of tile kt-1 are issued
  together and the softmax of tile kt runs while the tensor cores do that P V; and the two warpgroups take turns
  (named barriers) to issue, so that one's softmax overlaps the other's products.
  Then out = O / l and lse2 = m + log2(l) (the log2-sum-exp the backward and the decoding read), each written once
  by its owner thread: deterministic.
Backward: D = rowsum(dout * out) (attn_rowdot_kernel), then sm90_bwd_dkv_kernel (dk, dv, and the dS^T tiles into a
  scratch buffer) and sm90_bwd_dq_kernel (dq = dS K from those tiles), each described at its definition; both
  deterministic (one owner per output element, no atomics).
Dims: B batch, T sequence, NA attention heads, KVH kv heads, HD head dim (64 or 128).
*/
#ifndef ROPEPP_FP32
#include <cudaTypedefs.h>   /* CUtensorMap and the cuTensorMapEncodeTiled prototype (header only: no -lcuda) */

#define SM90_THREADS 384      /* warpgroup 0: producer; warpgroups 1, 2: consumers */
#define SM90_BM 128           /* rows of a block: 2 consumer warpgroups x 64 */
#define SM90_BN 128           /* keys of a K/V tile */
#define SM90_STAGES 2         /* K/V ring depth (3 measured no faster on the H200, 2026-12-04) */

/* shared memory of the forward (bytes): the q tile, SM90_STAGES K and V tiles (each HD / 64 boxes of rows x 128 B),
   4 mbarriers per stage, and 1024 B to align the tiles to the 128-byte swizzle's 1024-byte period */
template <int HD> static size_t sm90_fwd_smem() {
    return (size_t)(SM90_BM + 2 * SM90_STAGES * SM90_BN) * HD * 2 + 4 * SM90_STAGES * 8 + 1024;
}

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
__device__ __forceinline__ void mbar_init(uint32_t bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count));
}
/* the producer's arrival, announcing the bytes the copy engine will complete on this barrier */
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
/* wait until the phase of parity `parity` has completed */
__device__ __forceinline__ void mbar_wait(uint32_t bar, unsigned parity) {
    asm volatile("{\n.reg .pred done;\nWAIT:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
                 "@!done bra WAIT;\n}\n" ::"r"(bar), "r"(parity) : "memory");
}
/* one box of a 4-D tensor map into shared memory, completing on mbarrier bar */
__device__ __forceinline__ void tma_load_4d(uint32_t dst, const CUtensorMap *map, uint32_t bar, int c0, int c1, int c2,
                                            int c3) {
    asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5, %6}], [%2];\n"
                 ::"r"(dst), "l"((uint64_t)map), "r"(bar), "r"(c0), "r"(c1), "r"(c2), "r"(c3) : "memory");
}
/* shared-memory matrix descriptor, 128-byte swizzle: start address, leading and stride byte offsets */
__device__ __forceinline__ uint64_t gmma_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
    return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)(lbo >> 4) << 16) | ((uint64_t)(sbo >> 4) << 32) | (1ull << 62);
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
/* wait until at most N committed wgmma groups of this warpgroup are pending */
template <int N> __device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }
/* keeps the compiler from moving accesses of accumulator registers across the asynchronous wgmma */
template <int N> __device__ __forceinline__ void reg_fence(float (&d)[N]) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(d[i])::"memory");
}

/* the same for A fragments in registers, which a wgmma reads until it is waited for */
template <int N> __device__ __forceinline__ void reg_fence_u(uint32_t (&a)[N][4]) {
#pragma unroll
    for (int i = 0; i < N; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) asm volatile("" : "+r"(a[i][j])::"memory");
}

/* d (64 x 128 fp32, accumulator fragments) (+)= A (64 x 16, smem descriptor da) B (16 x 128, smem descriptor db);
   accumulate = 0 overwrites d. Both operands K-major, or MN-major (transposed) where TA / TB is 1. */
template <int TA = 0, int TB = 0>
__device__ __forceinline__ void wgmma_ss_n128(float (&d)[64], uint64_t da, uint64_t db, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
                 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
                 "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
                 "}, %64, %65, p, 1, 1, %67, %68;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                   "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
                   "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                   "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                   "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "l"(da), "l"(db), "r"(accumulate), "n"(TA), "n"(TB));
}
/* the same with N = 64 */
template <int TA = 0, int TB = 0>
__device__ __forceinline__ void wgmma_ss_n64(float (&d)[32], uint64_t da, uint64_t db, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
                 "}, %32, %33, p, 1, 1, %35, %36;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "l"(da), "l"(db), "r"(accumulate), "n"(TA), "n"(TB));
}
/* d (64 x 128 fp32) += A (64 x 16 bf16, fragments a in registers) B (16 x 128, smem descriptor db, MN-major:
   transposed) */
__device__ __forceinline__ void wgmma_rs_n128(float (&d)[64], const uint32_t (&a)[4], uint64_t db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
                 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
                 "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
                 "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                   "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
                   "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                   "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                   "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}
/* d (64 x 64 fp32) += A (64 x 16 bf16, fragments a in registers) B (16 x 64, smem descriptor db, MN-major:
   transposed) */
__device__ __forceinline__ void wgmma_rs_n64(float (&d)[32], const uint32_t (&a)[4], uint64_t db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
                 "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

/* O (64 x HD per warpgroup) += P (64 x 128 keys, bf16 A fragments pa[k-step]) V (the stage's 128 x HD tile at vtile):
   V through a transposed (MN-major) descriptor: rows kk*16.. are the K of step kk, 2048 bytes further each; the next
   64 columns one box further (leading byte offset), the next 8 rows 1024 bytes further (stride byte offset). Issued,
   not waited for. */
template <int HD> __device__ __forceinline__ void sm90_pv(float (&o)[HD / 2], const uint32_t (&pa)[8][4], uint32_t vtile) {
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 8; kk++) {
        const uint64_t dv = gmma_desc(vtile + kk * 2048, SM90_BN * 128, 1024);
        if constexpr (HD == 128) wgmma_rs_n128(o, pa[kk], dv);
        else wgmma_rs_n64(o, pa[kk], dv);
    }
}

/* 2^x as the MUFU instruction alone (ex2.approx.ftz.f32): exp2f adds a fix-up of three instructions per element for
   subnormal results, which here (terms of a softmax sum whose largest term is 1, or probabilities rounded to bf16)
   change nothing at fp32 precision; same approximation otherwise (2 ulp) */
__device__ __forceinline__ float exp2_ftz(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}
/* keeps the compiler from sinking the computation of v below the next asm volatile (a wgmma wait) */
__device__ __forceinline__ void reg_fence1(float &v) { asm volatile("" : "+f"(v)::"memory"); }

/* The online softmax of one 128-key tile for this thread's rows A and B (positions pA, pB): s holds the raw logits of
   keys k0 + 8n + 2(lane % 4) + e as s[4n + e] (row A) and s[4n + 2 + e] (row B); on return s holds exp2 of the scaled,
   biased, masked logits minus the new running max, l the running sums (rescaled), m the new max, and (cA, cB) the
   factors by which O (relative to the old max) must be rescaled. Every row sees key 0 in tile 0, so the running max
   is finite from then on. Compiled per case (MASK: the tile reaches past a row's position or past nkeys; ALIBI: a
   bias slope2 (j - p) per key) because predicated-off instructions still take issue slots: without them a tile costs
   the max, one FFMA (scale folded in: max(raw) * scale2 is the max of the scaled logits, scale2 > 0), the exp2 and
   the sum per element. */
template <bool MASK, bool ALIBI>
__device__ __forceinline__ void sm90_softmax(float (&s)[64], float &cA, float &cB, float &mA, float &mB, float &lA,
                                             float &lB, int k0, int pA, int pB, int nkeys, float scale2, float slope2,
                                             int lane) {
    /* row max and row sum in 4 independent chains each (n % 4), combined at the end: one chain of 32 dependent
       instructions per row would stall on their latency with only two consumer warps per scheduler */
    float mxA[4], mxB[4], rsA[4], rsB[4];
#pragma unroll
    for (int c = 0; c < 4; c++) { mxA[c] = mxB[c] = -INFINITY; rsA[c] = rsB[c] = 0.0f; }
#pragma unroll
    for (int n = 0; n < 16; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int j = k0 + n * 8 + (lane & 3) * 2 + e;
            float vA = s[4 * n + e], vB = s[4 * n + 2 + e];
            if constexpr (ALIBI) {   /* scaled and biased here; raw otherwise */
                vA = vA * scale2 - slope2 * (float)(pA - j);
                vB = vB * scale2 - slope2 * (float)(pB - j);
            }
            if constexpr (MASK) {
                if (j > pA || j >= nkeys) vA = -INFINITY;
                if (j > pB || j >= nkeys) vB = -INFINITY;
            }
            s[4 * n + e] = vA; s[4 * n + 2 + e] = vB;
            mxA[n & 3] = fmaxf(mxA[n & 3], vA); mxB[n & 3] = fmaxf(mxB[n & 3], vB);
        }
    const float sc = ALIBI ? 1.0f : scale2;   /* what still multiplies s: exponent = s sc - m */
    const float mxa = fmaxf(fmaxf(mxA[0], mxA[1]), fmaxf(mxA[2], mxA[3]));
    const float mxb = fmaxf(fmaxf(mxB[0], mxB[1]), fmaxf(mxB[2], mxB[3]));
    const float mnA = fmaxf(mA, quad_max(mxa) * sc), mnB = fmaxf(mB, quad_max(mxb) * sc);
    cA = exp2_ftz(mA - mnA);
    cB = exp2_ftz(mB - mnB);
#pragma unroll
    for (int n = 0; n < 16; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const float eA = exp2_ftz(fmaf(s[4 * n + e], sc, -mnA)), eB = exp2_ftz(fmaf(s[4 * n + 2 + e], sc, -mnB));
            s[4 * n + e] = eA; s[4 * n + 2 + e] = eB;
            rsA[n & 3] += eA; rsB[n & 3] += eB;
        }
    lA = lA * cA + ((rsA[0] + rsA[1]) + (rsA[2] + rsA[3]));
    lB = lB * cB + ((rsB[0] + rsB[1]) + (rsB[2] + rsB[3]));
    mA = mnA;
    mB = mnB;
}
/* the softmax of one tile, its case chosen by warp-uniform branches; computed before the next wgmma wait (fenced),
   so that it overlaps the P V the tensor cores are doing */
__device__ __forceinline__ void sm90_softmax_tile(float (&s)[64], float &cA, float &cB, float &mA, float &mB, float &lA,
                                                  float &lB, int k0, bool need_mask, bool alibi, int pA, int pB,
                                                  int nkeys, float scale2, float slope2, int lane) {
    if (need_mask) {
        if (alibi) sm90_softmax<true, true>(s, cA, cB, mA, mB, lA, lB, k0, pA, pB, nkeys, scale2, slope2, lane);
        else sm90_softmax<true, false>(s, cA, cB, mA, mB, lA, lB, k0, pA, pB, nkeys, scale2, slope2, lane);
    } else {
        if (alibi) sm90_softmax<false, true>(s, cA, cB, mA, mB, lA, lB, k0, pA, pB, nkeys, scale2, slope2, lane);
        else sm90_softmax<false, false>(s, cA, cB, mA, mB, lA, lB, k0, pA, pB, nkeys, scale2, slope2, lane);
    }
    reg_fence(s);
    reg_fence1(cA); reg_fence1(cB); reg_fence1(lA); reg_fence1(lB); reg_fence1(mA); reg_fence1(mB);
}

/* S (64 x 128 keys per warpgroup) = Q (this warpgroup's 64 rows of the q tile at qtile) K^T (the stage's tile at
   ktile); both K-major, 128-byte swizzled: k-step kk is 32 bytes into box kk / 4. Issued, not waited for. */
template <int HD> __device__ __forceinline__ void sm90_qk(float (&s)[64], uint32_t qtile, uint32_t ktile) {
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
        const uint64_t da = gmma_desc(qtile + (kk >> 2) * (SM90_BM * 128) + (kk & 3) * 32, 16, 1024);
        const uint64_t db = gmma_desc(ktile + (kk >> 2) * (SM90_BN * 128) + (kk & 3) * 32, 16, 1024);
        wgmma_ss_n128(s, da, db, kk > 0);
    }
}
/* an m64 accumulator (N = 8 x K columns) rounded to bf16 as the wgmma A fragments of K k-steps of 16: the
   accumulator layout is the A layout (P for P V in the forward; P^T for dV and dS^T for dK in the backward) */
template <int K>
__device__ __forceinline__ void sm90_pack_a(uint32_t (&pa)[K][4], const float (&s)[8 * K]) {
#pragma unroll
    for (int kk = 0; kk < K; kk++) {
        pa[kk][0] = pack_bf16(s[8 * kk + 0], s[8 * kk + 1]);
        pa[kk][1] = pack_bf16(s[8 * kk + 2], s[8 * kk + 3]);
        pa[kk][2] = pack_bf16(s[8 * kk + 4], s[8 * kk + 5]);
        pa[kk][3] = pack_bf16(s[8 * kk + 6], s[8 * kk + 7]);
    }
}

/* named barriers 2 and 3 (0: __syncthreads, 1: the consumers' prologue), 256 threads: the two consumer warpgroups */
__device__ __forceinline__ void named_bar_sync(int id) { asm volatile("bar.sync %0, 256;\n" ::"r"(id) : "memory"); }
__device__ __forceinline__ void named_bar_arrive(int id) { asm volatile("bar.arrive %0, 256;\n" ::"r"(id) : "memory"); }
/* end of warpgroup wgc's turn: let the other one issue (warpgroup 1 skips its last arrival, see the kernel) */
__device__ __forceinline__ void sm90_turn_end(int wgc, bool last) {
    if (!(wgc == 1 && last)) named_bar_arrive(3 - wgc);
}
#endif /* sm_90a device code */

extern __shared__ __align__(1024) unsigned char sm90_smem[];

/* Forward: grid (NA / P, B, query tiles of 128 / P positions), heaviest tiles first; 384 threads. */
template <int HD>
__global__ void __launch_bounds__(SM90_THREADS, 1)
sm90_fwd_kernel(const AttnArgs A, const __grid_constant__ CUtensorMap tmap_k, const __grid_constant__ CUtensorMap tmap_v,
                int P) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int NB = HD / 64;                         /* 128-byte boxes per row */
    constexpr int CH = HD / 8;                          /* 16-byte chunks per row */
    constexpr int NO = HD / 2;                          /* O accumulator registers per thread */
    constexpr uint32_t QBOX = SM90_BM * 128, KVBOX = SM90_BN * 128;   /* bytes of one box */
    constexpr uint32_t TILE_BYTES = SM90_BN * HD * 2;
    const uint32_t raw = smem_u32(sm90_smem), base = (raw + 1023u) & ~1023u;
    unsigned char *gbase = sm90_smem + (base - raw);   /* generic pointer of the aligned base */
    const uint32_t qs = base, ks = qs + NB * QBOX, vs = ks + SM90_STAGES * NB * KVBOX;
    const uint32_t bars = vs + SM90_STAGES * NB * KVBOX;   /* full_k[S], full_v[S], empty_k[S], empty_v[S] */
    const PosEmb &pe = A.pe;
    const int BMpos = SM90_BM / P;
    const int qt = gridDim.z - 1 - blockIdx.z, a0 = blockIdx.x * P, b = blockIdx.y;
    const int g = a0 / A.agroup, T = A.T, NA = A.NA;
    const int q0 = qt * BMpos, qvalid = min(BMpos, T - q0);
    const size_t row0 = (size_t)b * T;
    const int nkt = (A.qpos0 + q0 + qvalid + SM90_BN - 1) / SM90_BN;

    if (threadIdx.x == 0) {
        for (int s = 0; s < SM90_STAGES; s++) {
            mbar_init(bars + 8 * s, 1);                         /* full K */
            mbar_init(bars + 8 * (SM90_STAGES + s), 1);         /* full V */
            mbar_init(bars + 8 * (2 * SM90_STAGES + s), 8);     /* empty K: one arrival per consumer warp */
            mbar_init(bars + 8 * (3 * SM90_STAGES + s), 8);     /* empty V */
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    if (threadIdx.x < 128) {
        /* producer */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n");
        if (threadIdx.x == 0) {
            for (int kt = 0; kt < nkt; kt++) {
                const int st = kt % SM90_STAGES;
                const unsigned ph = ((kt / SM90_STAGES) - 1) & 1;   /* phase of the stage's previous tile */
                const uint32_t fk = bars + 8 * st, fv = bars + 8 * (SM90_STAGES + st);
                if (kt >= SM90_STAGES) mbar_wait(bars + 8 * (2 * SM90_STAGES + st), ph);
                mbar_expect_tx(fk, TILE_BYTES);
                for (int bb = 0; bb < NB; bb++)
                    tma_load_4d(ks + (st * NB + bb) * KVBOX, &tmap_k, fk, bb * 64, g, kt * SM90_BN, b);
                if (kt >= SM90_STAGES) mbar_wait(bars + 8 * (3 * SM90_STAGES + st), ph);
                mbar_expect_tx(fv, TILE_BYTES);
                for (int bb = 0; bb < NB; bb++)
                    tma_load_4d(vs + (st * NB + bb) * KVBOX, &tmap_v, fv, bb * 64, g, kt * SM90_BN, b);
            }
        }
        return;
    }
    asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n");
    const int ctid = threadIdx.x - 128, lane = ctid & 31, cw = ctid >> 5, wgc = cw >> 2;

    /* 1. q rows of the pack: rotated (real, or imaginary for the odd heads of RoPE++) and rounded like qr, noised,
          written to qr and into the swizzled tile. Thread item: 16-byte chunk c of row r, with its rotated partner
          chunk c + half/8 when c < half/8. Every load of the thread is issued before any is used (one global
          latency per tile: waiting on each item in turn cost a quarter of the kernel's time at T 4096). */
    {
        constexpr int NIT = SM90_BM * CH / 256;   /* items per thread: 8 (HD 128), 4 (HD 64) */
        const int half = pe.rot / 2, hch = half / 8, rch = pe.rot / 8;
        const bool noise_on = pe.noise_target != NOISE_NONE && pe.noise_sigma != 0.0;
        uint4 raw[NIT][2];
#pragma unroll
        for (int it = 0; it < NIT; it++) {
            const int i = ctid + it * 256, r = i / CH, c = i % CH;
            const int t = q0 + r % BMpos, a = a0 + r / BMpos, h = pe.imag ? a >> 1 : a;
            raw[it][0] = raw[it][1] = make_uint4(0u, 0u, 0u, 0u);
            if ((c >= hch && c < rch) || t >= T) continue;
            const bf16 *src = A.qkv + (row0 + t) * A.stride + (size_t)h * HD;
            raw[it][0] = *reinterpret_cast<const uint4 *>(src + c * 8);
            if (c < hch) raw[it][1] = *reinterpret_cast<const uint4 *>(src + (c + hch) * 8);
        }
#pragma unroll
        for (int it = 0; it < NIT; it++) {
            const int i = ctid + it * 256, r = i / CH, c = i % CH;
            if (c >= hch && c < rch) continue;   /* second chunk of a rotated pair: done with its first */
            const int t = q0 + r % BMpos, a = a0 + r / BMpos;
            const int is_imag = pe.imag && (a & 1);
            const int npart = c < hch ? 2 : 1;
            float x[2][8];
            unpack8(x[0], raw[it][0]);
            unpack8(x[1], raw[it][1]);
            if (t < T && npart == 2) {
                const size_t tab = rotary_table_index(pe, g, A.qpos0 + t, c * 8);
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    float cs, sn, o1, o2;
                    rotary_cs(cs, sn, pe, tab + e, is_imag);
                    rotary_pair_forward(o1, o2, x[0][e], x[1][e], cs, sn);
                    x[0][e] = roundx(o1);
                    x[1][e] = roundx(o2);
                }
            }
#pragma unroll
            for (int part = 0; part < 2; part++) {
                if (part >= npart) break;
                const int cc = c + part * hch;
                if (t < T) {
                    const size_t o = ((row0 + t) * NA + a) * HD + cc * 8;
                    if (noise_on && ((pe.noise_target == NOISE_IMAG) == (is_imag != 0))) {
#pragma unroll
                        for (int e = 0; e < 8; e++)
                            x[part][e] = roundx(x[part][e] + roundx((float)(pe.noise_sigma * noise_normal_dev(pe.noise_seed, o + e))));
                    }
                    if (A.qr != NULL) *reinterpret_cast<uint4 *>(A.qr + o) = pack8(x[part]);
                }
                /* swizzled: box cc / 8, row r, 16-byte chunk (cc % 8) ^ (r % 8) */
                *reinterpret_cast<uint4 *>(gbase + (cc >> 3) * QBOX + r * 128 + (((cc & 7) ^ (r & 7)) << 4)) = pack8(x[part]);
            }
        }
        /* generic-proxy stores -> visible to wgmma (async proxy), then every consumer thread is past the prologue */
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        asm volatile("bar.sync 1, 256;\n" ::: "memory");
    }

    /* 2. this warp's 16 rows (as the mma.sync kernel's warps): head, positions */
    const int R0 = wgc * 64 + (cw & 3) * 16;
    const int hp = R0 / BMpos, a = a0 + hp, pl0 = R0 % BMpos;
    const int tA = q0 + pl0 + (lane >> 2), tB = tA + 8;
    const int pA = A.qpos0 + tA, pB = A.qpos0 + tB;
    const int pw_min = A.qpos0 + q0 + pl0;
    /* key tiles this warpgroup needs: up to its last row's position (the block's last tile for the other) */
    const int wg_pl_max = (wgc * 64) % BMpos + (BMpos < 64 ? BMpos : 64) - 1;
    const int wg_nkt = min(nkt, (A.qpos0 + q0 + wg_pl_max + SM90_BN) / SM90_BN);
    const bool alibi = pe.alibi != NULL;
    const float scale2 = A.scale2, slope2 = alibi ? pe.alibi[a] * LOG2E_F : 0.0f;
    const int nkeys = A.nkeys;

    float o[NO];
#pragma unroll
    for (int n = 0; n < NO; n++) o[n] = 0.0f;
    float mA = -INFINITY, mB = -INFINITY, lA = 0.0f, lB = 0.0f;
    const uint32_t qwg = qs + wgc * 64 * 128;

    /* 3. online softmax over the causal key tiles, pipelined inside the warpgroup: S(kt) = Q K(kt)^T and
          O += P(kt-1) V(kt-1) are issued together; the softmax of S(kt) runs while the tensor cores do P V; O is rescaled
          and P(kt) packed once that product is done. K stages are released after their S, V stages after their P V. */
    const uint32_t full_k = bars, full_v = bars + 8 * SM90_STAGES;
    const uint32_t empty_k = bars + 16 * SM90_STAGES, empty_v = bars + 24 * SM90_STAGES;
    float s[64];
    uint32_t pa[8][4];
    /* tile 0 (every warpgroup has it), then the steady state: one straight path, so that the compiler can follow
       which wgmma group is pending */
    /* Turns (ping-pong): the two warpgroups issue their tensor-core work alternately, each waiting on its named barrier
       (2 + wgc) for the other's arrival, so one's softmax runs while the other's products occupy the tensor cores.
       Both pass the same nkt + 1 issue points (tile 0, tiles 1 .. wg_nkt - 1, the last P V, then empty turns for
       tiles past their rows); warpgroup 1 opens with one arrival and skips the one after its last point, so every
       barrier phase gets exactly 128 waiting and 128 arriving threads. */
    const int npoints = nkt + 1;
    int point = 0;
    if (wgc == 1) named_bar_arrive(2);
    mbar_wait(full_k, 0);
    named_bar_sync(2 + wgc);
    sm90_qk<HD>(s, qwg, ks);
    wgmma_commit();
    sm90_turn_end(wgc, ++point == npoints);
    wgmma_wait<0>();
    reg_fence(s);
    __syncwarp();
    if (lane == 0) mbar_arrive(empty_k);
    {
        float cA, cB;
        const bool need_mask = SM90_BN - 1 > pw_min || SM90_BN > nkeys;
        sm90_softmax_tile(s, cA, cB, mA, mB, lA, lB, 0, need_mask, alibi, pA, pB, nkeys, scale2, slope2, lane);
        sm90_pack_a<8>(pa, s);
    }
    for (int kt = 1; kt < wg_nkt; kt++) {
        const int st = kt % SM90_STAGES, sp = (kt - 1) % SM90_STAGES, k0 = kt * SM90_BN;
        mbar_wait(full_k + 8 * st, (kt / SM90_STAGES) & 1);
        mbar_wait(full_v + 8 * sp, ((kt - 1) / SM90_STAGES) & 1);
        named_bar_sync(2 + wgc);
        sm90_qk<HD>(s, qwg, ks + st * NB * KVBOX);
        wgmma_commit();
        sm90_pv<HD>(o, pa, vs + sp * NB * KVBOX);
        wgmma_commit();
        sm90_turn_end(wgc, ++point == npoints);
        wgmma_wait<1>();   /* S(kt) done, P V may still run */
        reg_fence(s);
        __syncwarp();
        if (lane == 0) mbar_arrive(empty_k + 8 * st);
        const bool need_mask = k0 + SM90_BN - 1 > pw_min || k0 + SM90_BN > nkeys;
        float cA, cB;
        sm90_softmax_tile(s, cA, cB, mA, mB, lA, lB, k0, need_mask, alibi, pA, pB, nkeys, scale2, slope2, lane);
        wgmma_wait<0>();
        reg_fence(o);
        __syncwarp();
        if (lane == 0) mbar_arrive(empty_v + 8 * sp);
#pragma unroll
        for (int n = 0; n < NO / 4; n++) { o[4 * n] *= cA; o[4 * n + 1] *= cA; o[4 * n + 2] *= cB; o[4 * n + 3] *= cB; }
        sm90_pack_a<8>(pa, s);
    }
    {   /* the last tile's P V (every warpgroup has at least tile 0) */
        const int sp = (wg_nkt - 1) % SM90_STAGES;
        mbar_wait(full_v + 8 * sp, ((wg_nkt - 1) / SM90_STAGES) & 1);
        named_bar_sync(2 + wgc);
        sm90_pv<HD>(o, pa, vs + sp * NB * KVBOX);
        wgmma_commit();
        sm90_turn_end(wgc, ++point == npoints);
        wgmma_wait<0>();
        reg_fence(o);
        __syncwarp();
        if (lane == 0) mbar_arrive(empty_v + 8 * sp);
    }
    /* tiles past this warpgroup's rows (the other one needs them): released unread */
    for (int kt = wg_nkt; kt < nkt; kt++) {
        __syncwarp();
        if (lane == 0) {
            mbar_arrive(empty_k + 8 * (kt % SM90_STAGES));
            mbar_arrive(empty_v + 8 * (kt % SM90_STAGES));
        }
        named_bar_sync(2 + wgc);   /* an empty turn */
        sm90_turn_end(wgc, ++point == npoints);
    }

    /* 4. out and the row statistics (log2-sum-exp of the scaled logits), as the other kernels */
    lA = quad_sum(lA); lB = quad_sum(lB);
    const float iA = 1.0f / lA, iB = 1.0f / lB;
    const int col = (lane & 3) * 2;
    if (tA < T) {
        bf16 *op = A.out + ((row0 + tA) * NA + a) * HD + col;
#pragma unroll
        for (int n = 0; n < NO / 4; n++) *reinterpret_cast<uint32_t *>(op + n * 8) = pack_bf16(o[4 * n] * iA, o[4 * n + 1] * iA);
        if ((lane & 3) == 0 && A.lse2 != NULL) A.lse2[((size_t)b * NA + a) * T + tA] = mA + log2f(lA);
    }
    if (tB < T) {
        bf16 *op = A.out + ((row0 + tB) * NA + a) * HD + col;
#pragma unroll
        for (int n = 0; n < NO / 4; n++) *reinterpret_cast<uint32_t *>(op + n * 8) = pack_bf16(o[4 * n + 2] * iB, o[4 * n + 3] * iB);
        if ((lane & 3) == 0 && A.lse2 != NULL) A.lse2[((size_t)b * NA + a) * T + tB] = mB + log2f(lB);
    }
#endif
}

/* ------------------------------------------------------------------------------------------------ backward dk, dv */
/* Backward dk, dv on Hopper: grid (kv heads of the chunk, sequences of the chunk, key tiles of 128), key tile 0 (the
   longest) first; 384 threads. The semantics of tc_bwd_dkv_kernel (cuda/attention_mma.cuh), the reference on other
   GPUs, with the same outputs: dv and dk (through the key rotary backward) into dqkv, and, where A.dS is set, each
   64 x 64 dS^T tile (bf16) for tc_bwd_dq_ds_kernel.
   producer (warpgroup 0): its thread 0 loads the block's 128 rotated keys (kr) and values (qkv) once, then for every
   item (attention head a of the GQA group, 64-query tile at or after the block's first key) the rotated queries (qr)
   and dout of that tile into a two-stage ring (4-D tensor maps; rows past T zero-filled by the copy engine); its
   warp 1 puts the tile's 64 lse2 and D values beside them (plain loads: rows of T floats need not be 16-byte
   aligned for a bulk copy).
   consumers (warpgroups 1 and 2, 64 keys each; warp w of a warpgroup owns 16 keys, thread rows kA and kA + 8), per
   item whose queries reach the warpgroup's keys, differentiating
       S = Q K^T scale, P = exp(S - lse), O = P V        (attention_forward, per head):
     S^T  = K Q^T            wgmma m64n64k16, K (smem, K-major) x Q tile (smem, K-major)
     dP^T = V dO^T           the same with V and the dout tile; both issued together
     P^T  = exp2(S^T scale2 - lse2) on the causal keys (ALiBi bias as in the forward), else 0
     dV  += P^T dO           A = P^T from registers (bf16), B = the dout tile through a transposed descriptor
     dS^T = P^T (dP^T - D)   D = rowsum(dout * out) (attn_rowdot_kernel)
     dK  += dS^T Q           A = dS^T from registers, B = the query tile transposed
   then dv into dqkv, dk times the softmax scale through shared memory (dk_rotary_store). Each output element has one
   owner thread: deterministic. */
#define SM90B_BK 128   /* keys of a block: 2 consumer warpgroups x 64 */
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
/* P^T = exp2(S^T scale2 - lse2) of one (64 keys, 64 queries) item in place: s[4n + e] is (key kA, query
   q0 + 8n + col + e), s[4n + 2 + e] the same query for key kB; lse2 of the tile's queries in shared memory. Compiled
   per case as the forward's softmax (predicated-off instructions still take issue slots): MASK (P^T = 0 for keys
   after the query, the diagonal item only) and ALIBI (the bias -slope2 (t - k) after the scale, as the forward). */
template <bool MASK, bool ALIBI>
__device__ __forceinline__ void sm90_bwd_p(float (&s)[32], const float *lse, int q0, int col, int kA, int kB,
                                           float scale2, float slope2) {
#pragma unroll
    for (int n = 0; n < 8; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int t = q0 + 8 * n + col + e;
            const float l = lse[8 * n + col + e];
            float xA = fmaf(s[4 * n + e], scale2, -l), xB = fmaf(s[4 * n + 2 + e], scale2, -l);
            if constexpr (ALIBI) { xA -= slope2 * (float)(t - kA); xB -= slope2 * (float)(t - kB); }
            s[4 * n + e] = exp2_ftz(xA);
            s[4 * n + 2 + e] = exp2_ftz(xB);
            if constexpr (MASK) {
                if (kA > t) s[4 * n + e] = 0.0f;
                if (kB > t) s[4 * n + 2 + e] = 0.0f;
            }
        }
}
#endif
#define SM90B_BQ 64    /* queries of a Q / dout tile */
#define SM90B_STAGES 2 /* Q / dout ring depth (4 measured no faster on the H200, 2026-12-04) */

/* shared memory of the dk/dv kernel (bytes): K and V (128 rows), SM90B_STAGES query and dout tiles (64 rows), each
   HD / 64 boxes of rows x 128 B; per stage 64 lse2 and 64 D floats; 1 + 2 x SM90B_STAGES mbarriers; 1024 B for the
   swizzle alignment. The epilogue's fp32 dk (128 x (HD + 8)) overlays the tiles. */
template <int HD> static size_t sm90_bwd_smem() {
    const size_t tiles = (size_t)(2 * SM90B_BK + 2 * SM90B_STAGES * SM90B_BQ) * HD * 2 +
                         (size_t)SM90B_STAGES * 2 * SM90B_BQ * sizeof(float) + (1 + 2 * SM90B_STAGES) * 8 + 1024;
    const size_t dks = (size_t)SM90B_BK * (HD + 8) * sizeof(float) + 1024;
    return tiles > dks ? tiles : dks;
}

template <int HD>
__global__ void __launch_bounds__(SM90_THREADS, 1)
sm90_bwd_dkv_kernel(const AttnArgs A, const __grid_constant__ CUtensorMap tmap_k, const __grid_constant__ CUtensorMap tmap_v,
                    const __grid_constant__ CUtensorMap tmap_q, const __grid_constant__ CUtensorMap tmap_do) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int NB = HD / 64;                         /* 128-byte boxes per row */
    constexpr int NO = HD / 2;                          /* dk / dv accumulator registers per thread */
    constexpr uint32_t KBOX = SM90B_BK * 128, QBOX = SM90B_BQ * 128;   /* bytes of one box */
    constexpr uint32_t KV_BYTES = 2 * SM90B_BK * HD * 2, ITEM_BYTES = 2 * SM90B_BQ * HD * 2;
    const uint32_t raw = smem_u32(sm90_smem), base = (raw + 1023u) & ~1023u;
    float *DKs = reinterpret_cast<float *>(sm90_smem + (base - raw));   /* the epilogue's (BK, HD + 8) fp32 dk */
    const uint32_t ks = base, vs = ks + NB * KBOX, qs = vs + NB * KBOX, dos = qs + SM90B_STAGES * NB * QBOX;
    const uint32_t stats = dos + SM90B_STAGES * NB * QBOX;  /* per stage: lse2[64], D[64] */
    float *stats_g = reinterpret_cast<float *>(sm90_smem + (stats - raw));
    const uint32_t bars = stats + SM90B_STAGES * 2 * SM90B_BQ * 4;   /* kv_full, full[S], empty[S] */
    const uint32_t kv_full = bars, full = bars + 8, empty = bars + 8 * (1 + SM90B_STAGES);
    const int g = A.g0 + blockIdx.x, b = A.b0 + blockIdx.y, kt = blockIdx.z;
    const int T = A.T, NA = A.NA;
    const int k0 = kt * SM90B_BK, kvalid = min(SM90B_BK, T - k0);
    const size_t row0 = (size_t)b * T;
    const int qt_first = k0 / SM90B_BQ, nqi = (T + SM90B_BQ - 1) / SM90B_BQ - qt_first;
    const int nitems = A.agroup * nqi;

    if (threadIdx.x == 0) {
        mbar_init(kv_full, 1);
        for (int s = 0; s < SM90B_STAGES; s++) {
            /* the tensor copies' arrival and one per thread of the statistics warp; one per consumer thread (each
               thread's own release of what it wrote or read, which is also what compute-sanitizer's racecheck
               follows) */
            mbar_init(full + 8 * s, 1 + 32);
            mbar_init(empty + 8 * s, 256);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    if (threadIdx.x < 128) {
        /* producer */
        /* 24 + 2 x 240 = 3 x 168, the registers of the launch: setmaxnreg.inc waits for registers the other warpgroups
           released, so a larger total would hang. (At 24 the statistics warp's loop spills 4 bytes.) */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n");
        if (threadIdx.x == 0) {
            mbar_expect_tx(kv_full, KV_BYTES);
            for (int bb = 0; bb < NB; bb++) {
                tma_load_4d(ks + bb * KBOX, &tmap_k, kv_full, bb * 64, g, k0, b);
                tma_load_4d(vs + bb * KBOX, &tmap_v, kv_full, bb * 64, g, k0, b);
            }
            for (int it = 0; it < nitems; it++) {
                const int st = it % SM90B_STAGES;
                const int a = g * A.agroup + it / nqi, q0 = (qt_first + it % nqi) * SM90B_BQ;
                if (it >= SM90B_STAGES) mbar_wait(empty + 8 * st, ((it / SM90B_STAGES) - 1) & 1);
                mbar_expect_tx(full + 8 * st, ITEM_BYTES);
                for (int bb = 0; bb < NB; bb++) {
                    tma_load_4d(qs + (st * NB + bb) * QBOX, &tmap_q, full + 8 * st, bb * 64, a, q0, b);
                    tma_load_4d(dos + (st * NB + bb) * QBOX, &tmap_do, full + 8 * st, bb * 64, a, q0, b);
                }
            }
        } else if (threadIdx.x >= 32 && threadIdx.x < 64) {
            const int lane = threadIdx.x - 32;
            for (int it = 0; it < nitems; it++) {
                const int st = it % SM90B_STAGES;
                const int a = g * A.agroup + it / nqi, q0 = (qt_first + it % nqi) * SM90B_BQ;
                const size_t si = ((size_t)b * NA + a) * T;
                if (it >= SM90B_STAGES) mbar_wait(empty + 8 * st, ((it / SM90B_STAGES) - 1) & 1);
                for (int i = lane; i < 2 * SM90B_BQ; i += 32) {
                    const int t = q0 + (i & (SM90B_BQ - 1));
                    /* past T: lse2 = inf makes P = exp2(-inf) = 0 there */
                    stats_g[st * 2 * SM90B_BQ + i] = i < SM90B_BQ ? (t < T ? A.lse2_in[si + t] : INFINITY)
                                                                  : (t < T ? A.D[si + t] : 0.0f);
                }
                mbar_arrive(full + 8 * st);
            }
        }
        return;
    }
    asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n");
    const int ctid = threadIdx.x - 128, lane = ctid & 31, cw = ctid >> 5, wgc = cw >> 2;
    const int kwg = k0 + wgc * 64;                      /* this warpgroup's first key */
    const int kA = kwg + (cw & 3) * 16 + (lane >> 2), kB = kA + 8;
    const int col = (lane & 3) * 2;                     /* this thread's first query (S^T) or dim (dk, dv) column */
    const uint32_t kwt = ks + wgc * 64 * 128, vwt = vs + wgc * 64 * 128;   /* its 64 rows inside each box */
    const float scale2 = A.scale2;

    float dk[NO], dv[NO];
#pragma unroll
    for (int n = 0; n < NO; n++) dk[n] = dv[n] = 0.0f;
    mbar_wait(kv_full, 0);

    for (int it = 0; it < nitems; it++) {
        const int st = it % SM90B_STAGES;
        const int a = g * A.agroup + it / nqi, q0 = (qt_first + it % nqi) * SM90B_BQ;
        mbar_wait(full + 8 * st, (it / SM90B_STAGES) & 1);
        if (kwg < T && q0 + SM90B_BQ - 1 >= kwg) {
            const uint32_t qt = qs + st * NB * QBOX, dot = dos + st * NB * QBOX;
            float s[32], dp[32];
            /* S^T = K Q^T and dP^T = V dO^T, both K-major: k-step kk is 32 bytes into box kk / 4 */
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++)
                wgmma_ss_n64(s, gmma_desc(kwt + (kk >> 2) * KBOX + (kk & 3) * 32, 16, 1024),
                             gmma_desc(qt + (kk >> 2) * QBOX + (kk & 3) * 32, 16, 1024), kk > 0);
            wgmma_commit();
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++)
                wgmma_ss_n64(dp, gmma_desc(vwt + (kk >> 2) * KBOX + (kk & 3) * 32, 16, 1024),
                             gmma_desc(dot + (kk >> 2) * QBOX + (kk & 3) * 32, 16, 1024), kk > 0);
            wgmma_commit();
            const float *lse = stats_g + st * 2 * SM90B_BQ, *Dq = lse + SM90B_BQ;   /* of queries q0 .. q0 + 63 */
            const float slope2 = A.pe.alibi != NULL ? A.pe.alibi[a] * LOG2E_F : 0.0f;
            wgmma_wait<1>();   /* S^T done, dP^T may still run */
            reg_fence(s);
            /* P^T; the mask only on the diagonal item (queries and keys in the same 64 positions) */
            const bool diag = q0 < kwg + 64;
            if (diag) {
                if (slope2 != 0.0f) sm90_bwd_p<true, true>(s, lse, q0, col, kA, kB, scale2, slope2);
                else sm90_bwd_p<true, false>(s, lse, q0, col, kA, kB, scale2, slope2);
            } else {
                if (slope2 != 0.0f) sm90_bwd_p<false, true>(s, lse, q0, col, kA, kB, scale2, slope2);
                else sm90_bwd_p<false, false>(s, lse, q0, col, kA, kB, scale2, slope2);
            }
            /* dV += P^T dO: the accumulator layout of P^T is the A layout; dout rows kk*16 .. are 2048 bytes further */
            uint32_t pa[4][4], da[4][4];
            sm90_pack_a<4>(pa, s);
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                const uint64_t db = gmma_desc(dot + kk * 2048, QBOX, 1024);
                if constexpr (HD == 128) wgmma_rs_n128(dv, pa[kk], db);
                else wgmma_rs_n64(dv, pa[kk], db);
            }
            wgmma_commit();
            wgmma_wait<1>();   /* dP^T done, dV may still run */
            reg_fence(dp);
            /* dS^T = P^T (dP^T - D) */
#pragma unroll
            for (int n = 0; n < 8; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const float d = Dq[8 * n + col + e];
                    s[4 * n + e] *= dp[4 * n + e] - d;
                    s[4 * n + 2 + e] *= dp[4 * n + 2 + e] - d;
                }
            sm90_pack_a<4>(da, s);
            /* dK += dS^T Q */
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                const uint64_t db = gmma_desc(qt + kk * 2048, QBOX, 1024);
                if constexpr (HD == 128) wgmma_rs_n128(dk, da[kk], db);
                else wgmma_rs_n64(dk, da[kk], db);
            }
            wgmma_commit();
            /* dS^T of this (64-query tile, 64-key tile) pair for the dq kernel, as tc_bwd_dkv_kernel stores it: rows
               keys, columns queries, while dK runs */
            if (A.dS != NULL) {
                const int qi = q0 / 64, kj = kwg / 64;
                bf16 *dst = A.dS + (((size_t)blockIdx.y * A.nag + a - A.g0 * A.agroup) * A.ntri + (size_t)qi * (qi + 1) / 2 + kj) * 4096 +
                            (size_t)(kA - kwg) * 64 + col;
#pragma unroll
                for (int kk = 0; kk < 4; kk++) {
                    *reinterpret_cast<uint32_t *>(dst + kk * 16) = da[kk][0];
                    *reinterpret_cast<uint32_t *>(dst + 8 * 64 + kk * 16) = da[kk][1];
                    *reinterpret_cast<uint32_t *>(dst + kk * 16 + 8) = da[kk][2];
                    *reinterpret_cast<uint32_t *>(dst + 8 * 64 + kk * 16 + 8) = da[kk][3];
                }
            }
            wgmma_wait<0>();
            reg_fence(dv);
            reg_fence(dk);
            reg_fence_u(pa);
            reg_fence_u(da);
        }
        mbar_arrive(empty + 8 * st);   /* the stage is free (also for items this warpgroup skips) */
    }

    /* dv straight into dqkv; dk (times the softmax scale) through shared memory for the key rotary backward */
    asm volatile("bar.sync 1, 256;\n" ::: "memory");   /* both consumer warpgroups are done with the tiles */
    constexpr int LDK = HD + 8;
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        const int c = rr ? kB : kA, r = c - k0;
#pragma unroll
        for (int n = 0; n < NO / 4; n++)
            *reinterpret_cast<float2 *>(DKs + r * LDK + n * 8 + col) =
                make_float2(dk[4 * n + 2 * rr] * A.scale, dk[4 * n + 2 * rr + 1] * A.scale);
        if (c < T) {
            bf16 *pv = A.dqkv + (row0 + c) * A.stride + (size_t)(A.HQ + A.KVH + g) * HD + col;
#pragma unroll
            for (int n = 0; n < NO / 4; n++)
                *reinterpret_cast<uint32_t *>(pv + n * 8) = pack_bf16(dv[4 * n + 2 * rr], dv[4 * n + 2 * rr + 1]);
        }
    }
    asm volatile("bar.sync 1, 256;\n" ::: "memory");
    dk_rotary_store<HD>(A, DKs, LDK, g, k0, kvalid, row0, ctid, 256);
#endif
}

/* ------------------------------------------------------------------------------------------------ backward dq */
/* Backward dq on Hopper from the dS^T tiles sm90_bwd_dkv_kernel stored: dQ = dS K scale, then the rotary backward of
   each head and the real + imaginary sum (tc_dq_rotary_store), as tc_bwd_dq_ds_kernel (the reference on other GPUs).
   Block (pack of P = 2 heads when the GQA group is even, else 1 head; sequence; query tile of 128 / P positions),
   heaviest tiles first, 384 threads: consumer warpgroup w owns 64 rows, i.e. one head's 64-query tile (head a0 + w
   for P = 2, positions q0 + 64 w for P = 1), so each of its dS tiles is one stored 64 x 64 dS^T tile.
   producer (one thread): for each 64-key tile kt up to the block's last query, the rotated keys (kr) and the dS^T
   tile of each warpgroup whose queries reach kt, into a three-stage ring (TMA, 128-byte swizzle).
   consumers: dQ (64 x HD fp32) += dS (64 queries x 64 keys: the stored dS^T read through a transposed descriptor) K
   (64 keys x HD, transposed descriptor), 4 wgmma k-steps per tile, the previous tile's stage released once its
   products are done. Deterministic: one owner per output element. */
#define SM90D_STAGES 3
template <int HD> static size_t sm90_dq_smem() {
    const size_t tiles = (size_t)SM90D_STAGES * (64 * HD * 2 + 2 * 4096 * 2) + 2 * SM90D_STAGES * 8 + 1024;
    const size_t dqs = (size_t)TC_BM * (HD + 8) * sizeof(float) + 1024;
    return tiles > dqs ? tiles : dqs;
}
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
/* one box of a 2-D tensor map into shared memory, completing on mbarrier bar */
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap *map, uint32_t bar, int c0, int c1) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];\n"
                 ::"r"(dst), "l"((uint64_t)map), "r"(bar), "r"(c0), "r"(c1) : "memory");
}
#endif

/* tmap_ds: the chunk's dS buffer as rows of 64 bf16 (tile index * 64 + key), boxes of 64 x 64 */
template <int HD>
__global__ void __launch_bounds__(SM90_THREADS, 1)
sm90_bwd_dq_kernel(const AttnArgs A, const __grid_constant__ CUtensorMap tmap_k, const __grid_constant__ CUtensorMap tmap_ds,
                   int P) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int NB = HD / 64, NO = HD / 2;
    constexpr uint32_t KBOX = 64 * 128, KTILE = NB * KBOX, DTILE = 64 * 128;
    constexpr uint32_t STAGE = KTILE + 2 * DTILE;
    const uint32_t raw = smem_u32(sm90_smem), base = (raw + 1023u) & ~1023u;
    float *DQs = reinterpret_cast<float *>(sm90_smem + (base - raw));   /* the epilogue's (TC_BM, HD + 8) fp32 dq */
    const uint32_t bars = base + SM90D_STAGES * STAGE, full = bars, empty = bars + 8 * SM90D_STAGES;
    const int BMpos = TC_BM / P;
    const int qt = gridDim.z - 1 - blockIdx.z, a0 = A.g0 * A.agroup + blockIdx.x * P, b = A.b0 + blockIdx.y;
    const int g = a0 / A.agroup, T = A.T;
    const int q0 = qt * BMpos;
    const size_t row0 = (size_t)b * T;
    const int nkt = (min(q0 + BMpos, T) - 1) / 64 + 1;   /* key tiles up to the block's last query */
    /* warpgroup w's head and first query; its dS^T tiles (qi, kj <= qi) start at tile row tbase[w] */
    int pw[2], qi[2], tbase[2];
#pragma unroll
    for (int w = 0; w < 2; w++) {
        const int a = a0 + (w * 64) / BMpos;
        pw[w] = q0 + (w * 64) % BMpos;
        qi[w] = pw[w] / 64;
        tbase[w] = (int)((((size_t)blockIdx.y * A.nag + a - A.g0 * A.agroup) * A.ntri + (size_t)qi[w] * (qi[w] + 1) / 2) * 64);
    }

    if (threadIdx.x == 0) {
        for (int s = 0; s < SM90D_STAGES; s++) {
            mbar_init(full + 8 * s, 1);
            mbar_init(empty + 8 * s, 256);   /* one arrival per consumer thread */
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    if (threadIdx.x < 128) {
        /* producer */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n");
        if (threadIdx.x == 0) {
            for (int kt = 0; kt < nkt; kt++) {
                const int st = kt % SM90D_STAGES;
                const uint32_t sbase = base + st * STAGE, bar = full + 8 * st;
                if (kt >= SM90D_STAGES) mbar_wait(empty + 8 * st, ((kt / SM90D_STAGES) - 1) & 1);
                unsigned bytes = KTILE;
#pragma unroll
                for (int w = 0; w < 2; w++)
                    if (pw[w] < T && kt <= qi[w]) bytes += DTILE;
                mbar_expect_tx(bar, bytes);
                for (int bb = 0; bb < NB; bb++) tma_load_4d(sbase + bb * KBOX, &tmap_k, bar, bb * 64, g, kt * 64, b);
#pragma unroll
                for (int w = 0; w < 2; w++)
                    if (pw[w] < T && kt <= qi[w]) tma_load_2d(sbase + KTILE + w * DTILE, &tmap_ds, bar, 0, tbase[w] + kt * 64);
            }
        }
        return;
    }
    asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n");
    const int ctid = threadIdx.x - 128, lane = ctid & 31, cw = ctid >> 5, wgc = cw >> 2;
    const bool rows_valid = (wgc ? pw[1] : pw[0]) < T;
    const int my_qi = wgc ? qi[1] : qi[0];
    float d[NO];
#pragma unroll
    for (int n = 0; n < NO; n++) d[n] = 0.0f;
    int prev = -1;   /* the stage whose products may still run */
    for (int kt = 0; kt < nkt; kt++) {
        const int st = kt % SM90D_STAGES;
        mbar_wait(full + 8 * st, (kt / SM90D_STAGES) & 1);
        if (rows_valid && kt <= my_qi) {
            const uint32_t kts = base + st * STAGE, dts = kts + KTILE + wgc * DTILE;
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                /* keys kk*16 .. are rows of both tiles, 2048 bytes further; K's next 64 dims one box further */
                const uint64_t da = gmma_desc(dts + kk * 2048, DTILE, 1024), db = gmma_desc(kts + kk * 2048, KBOX, 1024);
                if constexpr (HD == 128) wgmma_ss_n128<1, 1>(d, da, db, 1);
                else wgmma_ss_n64<1, 1>(d, da, db, 1);
            }
            wgmma_commit();
            wgmma_wait<1>();   /* the previous tile's products are done */
        } else {
            wgmma_wait<0>();
        }
        reg_fence(d);
        if (prev >= 0) mbar_arrive(empty + 8 * prev);
        prev = st;
    }
    wgmma_wait<0>();
    reg_fence(d);

    /* the epilogue of tc_bwd_dq_ds_kernel: the accumulator rows of warp cw are rows cw * 16 .. as there */
    asm volatile("bar.sync 1, 256;\n" ::: "memory");   /* every consumer is done with the stages: DQs overlays them */
    float dq[HD / 8][4];
#pragma unroll
    for (int n = 0; n < HD / 8; n++) {
        dq[n][0] = d[4 * n];
        dq[n][1] = d[4 * n + 1];
        dq[n][2] = d[4 * n + 2];
        dq[n][3] = d[4 * n + 3];
    }
    tc_dq_to_smem<HD>(A, dq, DQs, cw, lane);
    asm volatile("bar.sync 1, 256;\n" ::: "memory");
    tc_dq_rotary_store<HD>(A, P, DQs, a0, q0, row0, ctid, 256);
#endif
}

/* 1 in a kernel compiled for sm_90a, else 0: whether this binary carries the Hopper kernels for the device */
__global__ void sm90_probe_kernel(int *flag) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    *flag = 1;
#else
    *flag = 0;
#endif
}

/* cuTensorMapEncodeTiled through the runtime's driver entry point (no link against libcuda), or NULL */
static PFN_cuTensorMapEncodeTiled_v12000 sm90_encode_fn(void) {
    static PFN_cuTensorMapEncodeTiled_v12000 fn = NULL;
    static int tried = 0;
    if (!tried) {
        tried = 1;
        void *p = NULL;
        cudaDriverEntryPointQueryResult q;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) == cudaSuccess &&
            q == cudaDriverEntryPointSuccess)
            fn = (PFN_cuTensorMapEncodeTiled_v12000)p;
        (void)cudaGetLastError();
    }
    return fn;
}

/* whether the Hopper kernels can run here: a compute capability 9.0 device, sm_90a code in this binary, the tensor-map
   encoder in the driver; checked once */
static bool sm90_available(void) {
    static int v = -1;
    if (v < 0) {
        v = 0;
        int dev = 0, major = 0, minor = 0;
        if (cudaGetDevice(&dev) == cudaSuccess &&
            cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
            cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) == cudaSuccess && major == 9 &&
            minor == 0 && sm90_encode_fn() != NULL) {
            int *d = NULL, h = 0;
            if (cudaMalloc(&d, sizeof(int)) == cudaSuccess) {
                sm90_probe_kernel<<<1, 1>>>(d);
                if (cudaMemcpy(&h, d, sizeof(int), cudaMemcpyDeviceToHost) == cudaSuccess) v = h;
                cudaFree(d);
            }
        }
        (void)cudaGetLastError();   /* a binary without code for this device: the launch failed, v stays 0 */
    }
    return v == 1;
}
/* ROPEPP_ATTN_SM90=0 in the environment turns the Hopper path off (read at each call: tests and benchmarks switch) */
static bool sm90_disabled(void) {
    const char *e = getenv("ROPEPP_ATTN_SM90");
    return e != NULL && e[0] == '0';
}
/* 1 when attention_forward and attention_backward take the Hopper kernels for bf16 head dims 64 and 128 here (tests
   report it) */
int attention_sm90_active(void) { return !sm90_disabled() && sm90_available(); }

/* A 4-D tensor map (HD, NH, rows, B) over a bf16 tensor whose element (d, head h, row j, sequence b) sits at
   base + b * bstride + j * rstride + h * HD + d (strides in elements): the forward's keys and values (NH = KVH), the
   backward's rotated queries and dout (NH = NA); boxes of 64 dims x 1 head x box_rows rows x 1 sequence, 128-byte
   swizzle; rows >= nrows read as zero. False if the driver refuses it. */
static bool sm90_tensor_map(CUtensorMap *map, const bf16 *base, int HD, int NH, int nrows, int B, size_t rstride,
                            size_t bstride, int box_rows) {
    const cuuint64_t dims[4] = {(cuuint64_t)HD, (cuuint64_t)NH, (cuuint64_t)nrows, (cuuint64_t)B};
    const cuuint64_t strides[3] = {(cuuint64_t)HD * 2, (cuuint64_t)rstride * 2, (cuuint64_t)bstride * 2};
    const cuuint32_t box[4] = {64, 1, (cuuint32_t)box_rows, 1}, estr[4] = {1, 1, 1, 1};
    return sm90_encode_fn()(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, (void *)base, dims, strides, box, estr,
                            CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <int HD> static void sm90_fwd_launch_t(const AttnArgs *A, const CUtensorMap &tk, const CUtensorMap &tv) {
    static int done = 0;
    if (!done) {
        cudaCheck(cudaFuncSetAttribute(sm90_fwd_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm90_fwd_smem<HD>()));
        done = 1;
    }
    const int P = tc_pack(A->agroup), BMpos = SM90_BM / P;
    dim3 grid((unsigned)(A->NA / P), (unsigned)A->B, (unsigned)((A->T + BMpos - 1) / BMpos));
    sm90_fwd_kernel<HD><<<grid, SM90_THREADS, sm90_fwd_smem<HD>()>>>(*A, tk, tv, P);
    cudaCheckLaunch();
}
/* The Hopper forward where it applies (else false, nothing launched): the shapes of the mma.sync kernel (tc_fwd_ok),
   on a device and binary with sm_90a, with encodable tensor maps. */
static bool sm90_fwd_launch(const AttnArgs *A) {
    if (!tc_fwd_ok(A) || !attention_sm90_active()) return false;
    CUtensorMap tk, tv;
    if (!sm90_tensor_map(&tk, A->kptr, A->HD, A->KVH, A->nkeys, A->B, A->k_rstride, A->k_bstride, SM90_BN) ||
        !sm90_tensor_map(&tv, A->vptr, A->HD, A->KVH, A->nkeys, A->B, A->v_rstride, A->v_bstride, SM90_BN))
        return false;
    if (A->HD == 64) sm90_fwd_launch_t<64>(A, tk, tv);
    else sm90_fwd_launch_t<128>(A, tk, tv);
    return true;
}

/* The Hopper dk/dv kernel for one chunk of the backward (ng kv heads from A->g0, nb sequences from A->b0; A->dS set
   or NULL as attn_bwd_tc_launch in ropepp_cuda.cu decides) where it applies (tc_bwd_ok's shapes, the Hopper path active, encodable
   tensor maps over the whole tensors), else false and nothing launched: tc_bwd_dkv_kernel runs instead. */
static bool sm90_dkv_launch(const AttnArgs *A, int ng, int nb) {
    if (!attention_sm90_active()) return false;
    const int T = A->T, B = A->B, HD = A->HD;
    CUtensorMap tk, tv, tq, tdo;
    if (!sm90_tensor_map(&tk, A->kr, HD, A->KVH, T, B, (size_t)A->KVH * HD, (size_t)T * A->KVH * HD, SM90B_BK) ||
        !sm90_tensor_map(&tv, A->qkv + (size_t)(A->HQ + A->KVH) * HD, HD, A->KVH, T, B, A->stride, (size_t)T * A->stride, SM90B_BK) ||
        !sm90_tensor_map(&tq, A->qr, HD, A->NA, T, B, (size_t)A->NA * HD, (size_t)T * A->NA * HD, SM90B_BQ) ||
        !sm90_tensor_map(&tdo, A->dout, HD, A->NA, T, B, (size_t)A->NA * HD, (size_t)T * A->NA * HD, SM90B_BQ))
        return false;
    dim3 grid((unsigned)ng, (unsigned)nb, (unsigned)((T + SM90B_BK - 1) / SM90B_BK));
    if (HD == 64) {
        static int done = 0;
        if (!done) { cudaCheck(cudaFuncSetAttribute(sm90_bwd_dkv_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm90_bwd_smem<64>())); done = 1; }
        sm90_bwd_dkv_kernel<64><<<grid, SM90_THREADS, sm90_bwd_smem<64>()>>>(*A, tk, tv, tq, tdo);
    } else {
        static int done = 0;
        if (!done) { cudaCheck(cudaFuncSetAttribute(sm90_bwd_dkv_kernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm90_bwd_smem<128>())); done = 1; }
        sm90_bwd_dkv_kernel<128><<<grid, SM90_THREADS, sm90_bwd_smem<128>()>>>(*A, tk, tv, tq, tdo);
    }
    cudaCheckLaunch();
    return true;
}

/* The Hopper dq for one chunk of the backward (cb sequences from C->b0, C->nag heads from kv head C->g0, C->dS filled
   by the dk/dv kernel) where it applies, else false and nothing launched: tc_bwd_dq_ds_kernel runs instead. */
static bool sm90_dq_launch(const AttnArgs *C, int cb, size_t ds_bytes) {
    if (!attention_sm90_active()) return false;
    const int T = C->T, HD = C->HD, P = C->agroup % 2 == 0 ? 2 : 1, BMpos = TC_BM / P;
    CUtensorMap tk, tds;
    const size_t ds_rows = ds_bytes / 128;
    const cuuint64_t dims[2] = {64, (cuuint64_t)ds_rows}, strides[1] = {128};
    const cuuint32_t box[2] = {64, 64}, estr[2] = {1, 1};
    if (ds_rows > 0x7fffffffull || C->nag % P != 0 ||
        !sm90_tensor_map(&tk, C->kr, HD, C->KVH, T, C->B, (size_t)C->KVH * HD, (size_t)T * C->KVH * HD, 64) ||
        sm90_encode_fn()(&tds, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, (void *)C->dS, dims, strides, box, estr,
                         CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                         CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS)
        return false;
    dim3 grid((unsigned)(C->nag / P), (unsigned)cb, (unsigned)((T + BMpos - 1) / BMpos));
    if (HD == 64) {
        static int done = 0;
        if (!done) { cudaCheck(cudaFuncSetAttribute(sm90_bwd_dq_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm90_dq_smem<64>())); done = 1; }
        sm90_bwd_dq_kernel<64><<<grid, SM90_THREADS, sm90_dq_smem<64>()>>>(*C, tk, tds, P);
    } else {
        static int done = 0;
        if (!done) { cudaCheck(cudaFuncSetAttribute(sm90_bwd_dq_kernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm90_dq_smem<128>())); done = 1; }
        sm90_bwd_dq_kernel<128><<<grid, SM90_THREADS, sm90_dq_smem<128>()>>>(*C, tk, tds, P);
    }
    cudaCheckLaunch();
    return true;
}
#endif /* !ROPEPP_FP32 */
#ifdef ROPEPP_FP32
int attention_sm90_active(void) { return 0; }   /* the fp32 build keeps the fp32-math kernels */
#endif
