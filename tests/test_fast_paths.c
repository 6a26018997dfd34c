/*
test_fast_paths — the CPU's fast op bodies against the readable reference they replace, on the same inputs:
  matmul:  cblas_sgemm / cblas_dgemm (ROPEPP_BLAS) against matmul_forward_loops / matmul_backward_loops
  attention: attention_flash_forward / _backward (blocked over keys, online softmax) against
           attention_core_forward / _backward (the (T, T) probabilities), T over several key blocks, GQA, ALiBi
  exp:     the float build's vectorizable exp_real against exp in double, relative error <= 2e-7 on [-87, 88] (measured 9.7e-8)
           (float rounds at 6e-8: the polynomial and the range reduction add a few roundings)

Build/run: make test (runs both builds)
  tests/test_fast_paths        (-DROPEPP_DOUBLE)
  tests/test_fast_paths_float  (float)

Tolerances, relative to the largest reference element of the tensor. The two sides compute the same sums in
another order (BLAS blocks them for the cache, and uses FMA), so they differ by rounding only: a sum of K terms
of unit size rounds at about sqrt(K) ulps, here K <= 300 (measured: double <= 1.1e-15, float <= 7e-7): bound
1e-14 in double, 5e-6 in float. A wrong index, transpose or beta gives errors of order 1. Without BLAS (NO_BLAS=1) the matmul checks
report that there is nothing to compare and pass no check. Attention: the same bounds (sums over at most T = 150
keys and HD = 24 dims; measured below them).
*/
#define ROPEPP_IMPLEMENTATION
#include "ropepp.h"
#include "tests/testutil.h"

static const double TOL = sizeof(real) == 8 ? 1e-14 : 5e-6;

static double max_rel(const real *a, const real *ref, size_t n) {
    double mad = 0.0, mref = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)ref[i]);
        if (d > mad || d != d) mad = d;
        if (fabs((double)ref[i]) > mref) mref = fabs((double)ref[i]);
    }
    return mref > 0 ? mad / mref : mad;
}

static void test_matmul(Rng *r, int N, int IC, int OC) {
#ifdef ROPEPP_BLAS
    size_t nx = (size_t)N * IC, nw = (size_t)OC * IC, no = (size_t)N * OC;
    real *x = alloc_real(nx), *w = alloc_real(nw), *g = alloc_real(no);
    real *o1 = alloc_real(no), *o2 = alloc_real(no), *dx1 = alloc_real(nx), *dx2 = alloc_real(nx);
    real *dw1 = alloc_real(nw), *dw2 = alloc_real(nw);
    fill_uniform(x, nx, r, -1, 1);
    fill_uniform(w, nw, r, -1, 1);
    fill_uniform(g, no, r, -1, 1);
    fill_uniform(dw1, nw, r, -1, 1);   /* dweight accumulates: start from the same non-zero values */
    memcpy(dw2, dw1, nw * sizeof(real));
    fill_uniform(dx1, nx, r, 5, 6);    /* dinp is written: old contents must not leak in */
    fill_uniform(dx2, nx, r, -6, -5);
    matmul_forward(o1, x, w, N, IC, OC);
    matmul_forward_loops(o2, x, w, N, IC, OC);
    double e = max_rel(o1, o2, no);
    check(e < TOL, "matmul_forward N %d IC %d OC %d: BLAS = loops (rel %.1e)", N, IC, OC, e);
    matmul_backward(dx1, dw1, g, x, w, N, IC, OC);
    matmul_backward_loops(dx2, dw2, g, x, w, N, IC, OC);
    e = max_rel(dx1, dx2, nx);
    check(e < TOL, "matmul_backward dinp N %d IC %d OC %d: BLAS = loops (rel %.1e)", N, IC, OC, e);
    e = max_rel(dw1, dw2, nw);
    check(e < TOL, "matmul_backward dweight (+=) N %d IC %d OC %d: BLAS = loops (rel %.1e)", N, IC, OC, e);
    matmul_backward(NULL, dw1, g, x, w, N, IC, OC);   /* dinp NULL: only the weight gradient, accumulated again */
    matmul_backward_loops(NULL, dw2, g, x, w, N, IC, OC);
    e = max_rel(dw1, dw2, nw);
    check(e < TOL, "matmul_backward dweight only (dinp NULL) N %d IC %d OC %d: BLAS = loops (rel %.1e)", N, IC, OC, e);
    free(x); free(w); free(g); free(o1); free(o2); free(dx1); free(dx2); free(dw1); free(dw2);
#else
    (void)r;
    printf("note - matmul N %d IC %d OC %d: built without BLAS (NO_BLAS=1 or none found), nothing to compare\n", N, IC, OC);
#endif
}

static void test_attention(Rng *r, int B, int T, int NA, int KVH, int HD, int with_alibi) {
    size_t nq = (size_t)B * T * NA * HD, nk = (size_t)B * T * KVH * HD, vstride = (size_t)KVH * HD + 5;
    size_t nv = (size_t)B * T * vstride, natt = (size_t)B * NA * T * T;
    real *q = alloc_real(nq), *k = alloc_real(nk), *v = alloc_real(nv), *g = alloc_real(nq);
    real *o1 = alloc_real(nq), *o2 = alloc_real(nq), *att = alloc_real(natt), *lse = alloc_real((size_t)B * NA * T);
    real *dq1 = alloc_real(nq), *dq2 = alloc_real(nq), *dk1 = alloc_real(nk), *dk2 = alloc_real(nk);
    real *dv1 = alloc_real(nv), *dv2 = alloc_real(nv), *alibi = alloc_real(NA);
    fill_uniform(q, nq, r, -2, 2);   /* scores up to ~HD: peaked rows, where an online-softmax slip shows */
    fill_uniform(k, nk, r, -2, 2);
    fill_uniform(v, nv, r, -1, 1);
    fill_uniform(g, nq, r, -1, 1);
    fill_uniform(dq1, nq, r, -1, 1);   /* the backward accumulates: the same non-zero start on both sides */
    memcpy(dq2, dq1, nq * sizeof(real));
    fill_uniform(dk1, nk, r, -1, 1);
    memcpy(dk2, dk1, nk * sizeof(real));
    fill_uniform(dv1, nv, r, -1, 1);
    memcpy(dv2, dv1, nv * sizeof(real));
    for (int a = 0; a < NA; a++) alibi[a] = (real)(0.5 / (a + 1));
    const real *al = with_alibi ? alibi : NULL;
    attention_flash_forward(o1, lse, q, k, v, vstride, al, B, T, NA, KVH, HD);
    attention_core_forward(o2, att, q, k, v, vstride, al, B, T, NA, KVH, HD);
    double e = max_rel(o1, o2, nq);
    check(e < TOL, "attention B %d T %d NA %d KVH %d HD %d%s: flash forward = core (rel %.1e)", B, T, NA, KVH, HD,
          with_alibi ? " alibi" : "", e);
    attention_flash_backward(dq1, dk1, dv1, g, lse, o1, q, k, v, vstride, al, B, T, NA, KVH, HD);
    attention_core_backward(dq2, dk2, dv2, g, att, q, k, v, vstride, B, T, NA, KVH, HD);
    double eq = max_rel(dq1, dq2, nq), ek = max_rel(dk1, dk2, nk), ev = max_rel(dv1, dv2, nv);
    check(eq < TOL && ek < TOL && ev < TOL, "attention B %d T %d NA %d KVH %d HD %d%s: flash backward = core (dq %.1e, dk %.1e, dv %.1e)",
          B, T, NA, KVH, HD, with_alibi ? " alibi" : "", eq, ek, ev);
    free(q); free(k); free(v); free(g); free(o1); free(o2); free(att); free(lse); free(dq1); free(dq2); free(dk1);
    free(dk2); free(dv1); free(dv2); free(alibi);
}

static void test_exp(void) {
    double worst = 0.0, at = 0.0;
    for (int k = 0; k <= 1750000; k++) {   /* a step of 1e-4 over [-87, 88] */
        double x = -87.0 + 1e-4 * k;
        real xr = (real)x;
        double e = fabs((double)exp_real(xr) / exp((double)xr) - 1.0);
        if (e > worst || e != e) { worst = e; at = xr; }
    }
    check(worst <= (sizeof(real) == 8 ? 1e-16 : 2e-7), "exp_real = exp on [-87, 88] (max rel err %.2e at %.4f)", worst, at);
    check(exp_real((real)-INFINITY) >= 0 && exp_real((real)-INFINITY) < 1e-37, "exp_real(-inf) = %.2g (0 or below 1e-37)",
          (double)exp_real((real)-INFINITY));
}

int main(void) {
    printf("test_fast_paths (%s): fast CPU op bodies against the readable reference; matmul: %s\n",
           sizeof(real) == 8 ? "double" : "float", matmul_library());
    Rng r = {7};
    test_matmul(&r, 7, 6, 5);        /* smaller than any BLAS block, ragged for the loops' 4x4 tiles */
    test_matmul(&r, 130, 67, 259);   /* several blocks with edges */
    test_matmul(&r, 64, 300, 96);
    test_attention(&r, 2, 150, 6, 2, 24, 0);   /* 3 key blocks, the last ragged; 3 heads per kv head */
    test_attention(&r, 2, 150, 6, 2, 24, 1);
    test_attention(&r, 3, 5, 2, 2, 8, 0);      /* T below one block */
    test_exp();
    return tu_finish(sizeof(real) == 8 ? "test_fast_paths" : "test_fast_paths_float");
}
