/*
testutil.h — the few helpers the C tests share: pass/fail bookkeeping with one line per check, a closing line
"NAME: N passed, M failed" (non-zero exit on any failure), random fills and error measures.
Include after ropepp.h.
*/
#ifndef ROPEPP_TESTUTIL_H
#define ROPEPP_TESTUTIL_H
#include <stdarg.h>

static int tu_passed = 0, tu_failed = 0;

/* one line per check; returns ok so that a test can go on only when a step worked */
static inline int check(int ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf(ok ? "ok   - " : "FAIL - ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (ok) tu_passed++; else tu_failed++;
    fflush(stdout);
    return ok;
}

static inline int tu_finish(const char *name) {
    printf("%s: %d passed, %d failed\n", name, tu_passed, tu_failed);
    return tu_failed > 0 ? 1 : 0;
}

static inline void fill_uniform(real *x, size_t n, Rng *r, double lo, double hi) {
    for (size_t i = 0; i < n; i++) x[i] = (real)(lo + (hi - lo) * rng_uniform(r));
}

/* max |a - b| / max |b|: the error of a tensor relative to the scale of the reference */
static inline double rel_err(const double *a, const double *b, size_t n, double *max_abs_out) {
    double mad = 0.0, mref = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (d > mad || d != d) mad = d;
        if (fabs(b[i]) > mref) mref = fabs(b[i]);
    }
    if (max_abs_out) *max_abs_out = mad;
    return mref > 0 ? mad / mref : mad;
}

static inline real *alloc_real(size_t n) {
    real *p = (real *)mallocCheck(n * sizeof(real));
    memset(p, 0, n * sizeof(real));
    return p;
}
#endif
