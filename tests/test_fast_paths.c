/*
test_fast_paths — the CPU's fast op bodies against the readable reference they replace, on the same inputs:
  matmul:  cblas_sgemm / cblas_dgemm (ROPEPP_BLAS) against matmul_forward_loops / matmul_backward_loops
  exp:     the float build's vectorizable exp_real against exp in double, relative error <= 2e-7 on [-87, 88] (measured 9.7e-8)
           (float rounds at 6e-8: the polynomial and the range reduction add a few roundings)

Build/run: make test (runs both builds)
  tests/test_fast_paths        (-DROPEPP_DOUBLE)
  tests/test_fast_paths_float  (float)

Tolerances, relative to the largest reference element of the tensor. The two sides compute the same sums in
another order (BLAS blocks them for the cache, and uses FMA), so they differ by rounding only: a sum of K terms
of unit size rounds at about sqrt(K) ulps, here K <= 300 (measured: double <= 1.1e-15, float <= 7e-7): bound
1e-14 in double, 5e-6 in float. A wrong index, transpose or beta gives errors of order 1. Without BLAS (NO_BLAS=1) the matmul checks
report that there is nothing to compare and pass no check.
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
    test_exp();
    return tu_finish(sizeof(real) == 8 ? "test_fast_paths" : "test_fast_paths_float");
}
