/*
test_ops — gradient checks for every op of ropepp.h, in double, against central finite differences; plus the
paper's properties, parameter counts, ALiBi slopes, LR schedules, AdamW and the characteristic curves.

Build/run: make tests/test_ops && ./tests/test_ops        (part of make test; built with -DROPEPP_DOUBLE)

Method: for an op y = f(x), take a fixed random R and the scalar S = sum(R * y). The backward called with
dout = R gives dS/dx; the check compares it with (S(x + h) - S(x - h)) / 2h for every element of x. The error
is max |analytic - numeric| / max |numeric| over the tensor. In double with h = 1e-5 the truncation error is
O(h^2 f''') ~ 1e-10 and the rounding error ~ 1e-16 / 1e-5 = 1e-11, so a correct backward lands near 1e-9 or
below; the threshold is 1e-6, while a wrong term in a backward gives an error of order 1.
*/
#define ROPEPP_IMPLEMENTATION
#include "ropepp.h"
#include "analysis.h"   /* characteristic_curves, cisi */
#include "testutil.h"

#define GRAD_TOL 1e-6

/* ---- the generic finite-difference check ---- */
typedef double (*LossFn)(void *ctx);

static double fd_check(const char *what, real *x, size_t n, const real *analytic, LossFn loss, void *ctx) {
    const double h = 1e-5;
    double *num = (double *)mallocCheck(n * sizeof(double)), *ana = (double *)mallocCheck(n * sizeof(double));
    for (size_t i = 0; i < n; i++) {
        real save = x[i];
        x[i] = save + h;
        double lp = loss(ctx);
        x[i] = save - h;
        double lm = loss(ctx);
        x[i] = save;
        num[i] = (lp - lm) / (2 * h);
        ana[i] = analytic[i];
    }
    double mabs;
    double rel = rel_err(ana, num, n, &mabs);
    check(rel < GRAD_TOL, "grad %-44s rel err %.2e (max abs %.2e, %zu elements)", what, rel, mabs, n);
    free(num);
    free(ana);
    return rel;
}

static double dot(const real *a, const real *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static double worst = 0.0;
static void track(double e) { if (e > worst) worst = e; }

/* ---- encoder ---- */
typedef struct { real *out, *wte, *R; int *inp; int N, C; } EncCtx;
static double enc_loss(void *p) {
    EncCtx *c = (EncCtx *)p;
    encoder_forward(c->out, c->inp, c->wte, c->N, c->C);
    return dot(c->out, c->R, (size_t)c->N * c->C);
}
static void test_encoder(Rng *r) {
    int V = 5, N = 9, C = 4;
    EncCtx c = {alloc_real((size_t)N * C), alloc_real((size_t)V * C), alloc_real((size_t)N * C), (int *)mallocCheck(N * sizeof(int)), N, C};
    fill_uniform(c.wte, (size_t)V * C, r, -1, 1);
    fill_uniform(c.R, (size_t)N * C, r, -1, 1);
    for (int i = 0; i < N; i++) c.inp[i] = i % 3;   /* repeated tokens: gradients must add up */
    real *dwte = alloc_real((size_t)V * C);
    encoder_backward(dwte, c.R, c.inp, N, C);
    track(fd_check("encoder dwte (repeated tokens)", c.wte, (size_t)V * C, dwte, enc_loss, &c));
    free(c.out); free(c.wte); free(c.R); free(c.inp); free(dwte);
}

/* ---- rmsnorm ---- */
typedef struct { real *out, *inp, *w, *R; floatM *rstd; int N, C; } RmsCtx;
static double rms_loss(void *p) {
    RmsCtx *c = (RmsCtx *)p;
    rmsnorm_forward(c->out, c->rstd, c->inp, c->w, c->N, c->C, 1e-5);
    return dot(c->out, c->R, (size_t)c->N * c->C);
}
static void test_rmsnorm(Rng *r) {
    int N = 5, C = 7;
    RmsCtx c = {alloc_real((size_t)N * C), alloc_real((size_t)N * C), alloc_real(C), alloc_real((size_t)N * C), alloc_real(N), N, C};
    fill_uniform(c.inp, (size_t)N * C, r, -2, 2);
    fill_uniform(c.w, C, r, 0.5, 1.5);
    fill_uniform(c.R, (size_t)N * C, r, -1, 1);
    rms_loss(&c);
    real *dinp = alloc_real((size_t)N * C), *dw = alloc_real(C);
    rmsnorm_backward(dinp, dw, c.R, c.inp, c.w, c.rstd, N, C);
    track(fd_check("rmsnorm dinp", c.inp, (size_t)N * C, dinp, rms_loss, &c));
    track(fd_check("rmsnorm dweight", c.w, C, dw, rms_loss, &c));
    free(c.out); free(c.inp); free(c.w); free(c.R); free(c.rstd); free(dinp); free(dw);
}

/* ---- matmul ---- */
typedef struct { real *out, *inp, *w, *R; int N, IC, OC; } MmCtx;
static double mm_loss(void *p) {
    MmCtx *c = (MmCtx *)p;
    matmul_forward(c->out, c->inp, c->w, c->N, c->IC, c->OC);
    return dot(c->out, c->R, (size_t)c->N * c->OC);
}
static void test_matmul(Rng *r) {
    int N = 7, IC = 6, OC = 5;   /* N not a multiple of the 4-row tile */
    MmCtx c = {alloc_real((size_t)N * OC), alloc_real((size_t)N * IC), alloc_real((size_t)OC * IC), alloc_real((size_t)N * OC), N, IC, OC};
    fill_uniform(c.inp, (size_t)N * IC, r, -1, 1);
    fill_uniform(c.w, (size_t)OC * IC, r, -1, 1);
    fill_uniform(c.R, (size_t)N * OC, r, -1, 1);
    real *dinp = alloc_real((size_t)N * IC), *dw = alloc_real((size_t)OC * IC);
    matmul_backward(dinp, dw, c.R, c.inp, c.w, N, IC, OC);
    track(fd_check("matmul dinp", c.inp, (size_t)N * IC, dinp, mm_loss, &c));
    track(fd_check("matmul dweight", c.w, (size_t)OC * IC, dw, mm_loss, &c));
    /* the forward itself against a plain triple loop */
    mm_loss(&c);
    double e = 0.0;
    for (int n = 0; n < N; n++) for (int o = 0; o < OC; o++) {
        double s = 0.0;
        for (int i = 0; i < IC; i++) s += c.inp[n * IC + i] * c.w[o * IC + i];
        e = fmax(e, fabs(s - c.out[n * OC + o]));
    }
    check(e < 1e-12, "matmul forward equals the triple loop (max abs %.1e)", e);
    free(c.out); free(c.inp); free(c.w); free(c.R); free(dinp); free(dw);
}

/* ---- swiglu ---- */
typedef struct { real *out, *inp, *R; int N, F; } SwCtx;
static double sw_loss(void *p) {
    SwCtx *c = (SwCtx *)p;
    swiglu_forward(c->out, c->inp, c->N, c->F);
    return dot(c->out, c->R, (size_t)c->N * c->F);
}
static void test_swiglu(Rng *r) {
    int N = 4, F = 6;
    SwCtx c = {alloc_real((size_t)N * F), alloc_real((size_t)N * 2 * F), alloc_real((size_t)N * F), N, F};
    fill_uniform(c.inp, (size_t)N * 2 * F, r, -3, 3);
    fill_uniform(c.R, (size_t)N * F, r, -1, 1);
    real *dinp = alloc_real((size_t)N * 2 * F);
    swiglu_backward(dinp, c.R, c.inp, N, F);
    track(fd_check("swiglu dinp (gate and up)", c.inp, (size_t)N * 2 * F, dinp, sw_loss, &c));
    free(c.out); free(c.inp); free(c.R); free(dinp);
}

/* ---- cross-entropy ---- */
typedef struct { real *logits; floatM *losses; int *targets; int N, V; } CeCtx;
static double ce_loss(void *p) {
    CeCtx *c = (CeCtx *)p;
    crossentropy_forward(c->losses, c->logits, c->targets, c->N, c->V);
    double s = 0.0;
    for (int i = 0; i < c->N; i++) s += c->losses[i] * (0.5 + i);   /* a different weight per row */
    return s;
}
static void test_crossentropy(Rng *r) {
    int N = 5, V = 7;
    CeCtx c = {alloc_real((size_t)N * V), alloc_real(N), (int *)mallocCheck(N * sizeof(int)), N, V};
    fill_uniform(c.logits, (size_t)N * V, r, -3, 3);
    for (int i = 0; i < N; i++) c.targets[i] = (i * 3) % V;
    c.targets[2] = -1;   /* ignored */
    real *dl = alloc_real((size_t)N * V);
    real *row = alloc_real(V);
    floatM w[5];
    for (int n = 0; n < N; n++) w[n] = (floatM)(0.5 + n);   /* ce_loss's weights, as the weights argument */
    crossentropy_backward(dl, c.logits, c.targets, w, 1.0, N, V);
    track(fd_check("crossentropy dlogits with per-target weights (one target ignored)", c.logits, (size_t)N * V, dl, ce_loss, &c));
    /* without weights, row by row with dloss = that weight: the same */
    int same = 1;
    for (int n = 0; n < N; n++) {
        crossentropy_backward(row, c.logits + (size_t)n * V, c.targets + n, NULL, 0.5 + n, 1, V);
        for (int i = 0; i < V; i++) same &= fabs((double)row[i] - (double)dl[(size_t)n * V + i]) <= 1e-6 * fabs((double)row[i]) + 1e-300;
    }
    check(same, "crossentropy backward: weights w[n] with dloss 1 = row n alone with dloss w[n] (within float rounding of w)");
    ce_loss(&c);
    check(c.losses[2] == 0.0, "crossentropy: an ignored target (-1) has loss 0");
    /* in place: dlogits may overwrite logits */
    real *copy = alloc_real((size_t)N * V);
    memcpy(copy, c.logits, (size_t)N * V * sizeof(real));
    crossentropy_backward(copy, copy, c.targets, NULL, 1.0, N, V);
    real *ref = alloc_real((size_t)N * V);
    crossentropy_backward(ref, c.logits, c.targets, NULL, 1.0, N, V);
    check(memcmp(copy, ref, (size_t)N * V * sizeof(real)) == 0, "crossentropy backward in place equals out of place");
    free(c.logits); free(c.losses); free(c.targets); free(dl); free(row); free(copy); free(ref);
}

/* ---- rotary ---- */
typedef struct { real *out, *inp, *R; PosEmb *pe; size_t stride; int imag, group, B, T, NH, HD; } RotCtx;
static size_t rot_out_n(RotCtx *c) { return (size_t)c->B * c->T * c->NH * (c->imag ? 2 : 1) * c->HD; }
static double rot_loss(void *p) {
    RotCtx *c = (RotCtx *)p;
    rotary_forward(c->out, c->inp, c->stride, c->pe, c->imag, c->group, c->B, c->T, c->NH, c->HD);
    return dot(c->out, c->R, rot_out_n(c));
}
static void test_rotary_case(Rng *r, const char *name, int rot, int imag, int per_group, int group) {
    int B = 2, T = 5, NH = 4, HD = 8, half = rot / 2;
    int ngroups = per_group ? NH / group : 1;
    size_t stride = (size_t)NH * HD + 3;   /* rows with extra columns, as inside the fused qkv */
    PosEmb pe;
    memset(&pe, 0, sizeof(pe));
    pe.rot = rot; pe.imag = imag; pe.per_group = per_group; pe.T_table = T + 2;
    real *tc = alloc_real((size_t)ngroups * pe.T_table * (half ? half : 1)), *ts = alloc_real((size_t)ngroups * pe.T_table * (half ? half : 1));
    fill_uniform(tc, (size_t)ngroups * pe.T_table * half, r, -1.5, 1.5);   /* any tables: the op is linear in x */
    fill_uniform(ts, (size_t)ngroups * pe.T_table * half, r, -1.5, 1.5);
    pe.cos = tc; pe.sin = ts;
    RotCtx c = {NULL, alloc_real((size_t)B * T * stride), NULL, &pe, stride, imag, group, B, T, NH, HD};
    c.out = alloc_real(rot_out_n(&c));
    c.R = alloc_real(rot_out_n(&c));
    fill_uniform(c.inp, (size_t)B * T * stride, r, -1, 1);
    fill_uniform(c.R, rot_out_n(&c), r, -1, 1);
    real *dinp = alloc_real((size_t)B * T * stride);
    rotary_backward(dinp, c.R, stride, &pe, imag, group, B, T, NH, HD);
    char what[128];
    snprintf(what, sizeof(what), "rotary %s", name);
    track(fd_check(what, c.inp, (size_t)B * T * stride, dinp, rot_loss, &c));
    free(tc); free(ts); free(c.out); free(c.inp); free(c.R); free(dinp);
}

/* ---- attention core ---- */
typedef struct { real *out, *q, *k, *v, *R; floatM *att; const floatM *alibi; size_t vstride; int B, T, NA, KVH, HD; } AttCtx;
static double att_loss(void *p) {
    AttCtx *c = (AttCtx *)p;
    attention_core_forward(c->out, c->att, c->q, c->k, c->v, c->vstride, c->alibi, c->B, c->T, c->NA, c->KVH, c->HD);
    return dot(c->out, c->R, (size_t)c->B * c->T * c->NA * c->HD);
}
static void test_attention_core(Rng *r, int NA, int KVH, int use_alibi) {
    int B = 2, T = 7, HD = 6;
    size_t vstride = (size_t)KVH * HD + 2;
    double sl[16];
    real slopes[16];
    alibi_slopes(sl, NA);
    for (int a = 0; a < NA; a++) slopes[a] = sl[a];
    size_t nq = (size_t)B * T * NA * HD, nk = (size_t)B * T * KVH * HD, nv = (size_t)B * T * vstride;
    AttCtx c = {alloc_real(nq), alloc_real(nq), alloc_real(nk), alloc_real(nv), alloc_real(nq), alloc_real((size_t)B * NA * T * T), use_alibi ? slopes : NULL, vstride, B, T, NA, KVH, HD};
    fill_uniform(c.q, nq, r, -1, 1); fill_uniform(c.k, nk, r, -1, 1); fill_uniform(c.v, nv, r, -1, 1); fill_uniform(c.R, nq, r, -1, 1);
    att_loss(&c);
    real *dq = alloc_real(nq), *dk = alloc_real(nk), *dv = alloc_real(nv);
    attention_core_backward(dq, dk, dv, c.R, c.att, c.q, c.k, c.v, vstride, B, T, NA, KVH, HD);
    char what[128];
    snprintf(what, sizeof(what), "attention core dq (group %d%s)", NA / KVH, use_alibi ? ", alibi" : "");
    track(fd_check(what, c.q, nq, dq, att_loss, &c));
    snprintf(what, sizeof(what), "attention core dk (group %d%s)", NA / KVH, use_alibi ? ", alibi" : "");
    track(fd_check(what, c.k, nk, dk, att_loss, &c));
    snprintf(what, sizeof(what), "attention core dv (group %d%s)", NA / KVH, use_alibi ? ", alibi" : "");
    track(fd_check(what, c.v, nv, dv, att_loss, &c));
    /* causality: the output at t must not change when a later key/value changes */
    att_loss(&c);
    real o_before = c.out[((size_t)1 * T + 2) * NA * HD];
    c.k[((size_t)1 * T + 5) * KVH * HD] += 3.0;
    c.v[((size_t)1 * T + 5) * vstride] += 3.0;
    att_loss(&c);
    check(c.out[((size_t)1 * T + 2) * NA * HD] == o_before, "attention core is causal (group %d%s)", NA / KVH, use_alibi ? ", alibi" : "");
    free(c.out); free(c.q); free(c.k); free(c.v); free(c.R); free(c.att); free(dq); free(dk); free(dv);
}

/* ---- the attention op with each position embedding, from the fused qkv ---- */
typedef struct { real *out, *qr, *kr, *qkv, *R; floatM *softmax_saved; PosEmb *pe; int B, T, HQ, KVH, HD; } AopCtx;
static double aop_loss(void *p) {
    AopCtx *c = (AopCtx *)p;
    attention_forward(c->out, c->qr, c->kr, c->softmax_saved, c->qkv, c->pe, c->B, c->T, c->HQ, c->KVH, c->HD);
    return dot(c->out, c->R, (size_t)c->B * c->T * c->HQ * (c->pe->imag ? 2 : 1) * c->HD);
}
static void test_attention_op(Rng *r, int pe_kind) {
    Config cfg = config_default();
    cfg.pe = pe_kind; cfg.dim = 32; cfg.n_heads = 4; cfg.n_kv_heads = 2; cfg.train_seq = 16; cfg.rotary_frac = 0.5;
    if (pe_kind == PE_ROPEPP_EH) cfg.n_kv_heads = 2;
    Dims d = config_dims(&cfg);
    int B = 2, T = 6, half = d.rot / 2;
    int ngroups = pe_kind == PE_FOPE ? d.KVH : 1;
    PosEmb pe;
    memset(&pe, 0, sizeof(pe));
    pe.rot = d.rot; pe.imag = d.imag; pe.per_group = pe_kind == PE_FOPE; pe.T_table = T;
    size_t ntab = (size_t)ngroups * T * (half ? half : 1);
    real *tc = alloc_real(ntab), *ts = alloc_real(ntab);
    for (int g = 0; g < ngroups; g++) for (int t = 0; t < T; t++) for (int j = 0; j < half; j++) {
        double th = pow(10000.0, -2.0 * j / d.rot) * (1.0 + 0.3 * g);
        tc[((size_t)g * T + t) * half + j] = cos(t * th);
        ts[((size_t)g * T + t) * half + j] = sin(t * th);
    }
    pe.cos = tc; pe.sin = ts;
    double sl[16];
    real slopes[16];
    alibi_slopes(sl, d.NA);
    for (int a = 0; a < d.NA; a++) slopes[a] = sl[a];
    pe.alibi = pe_kind == PE_ALIBI ? slopes : NULL;
    size_t nqkv = (size_t)B * T * d.QKV, nout = (size_t)B * T * d.NA * d.HD;
    AopCtx c = {alloc_real(nout), alloc_real(nout), alloc_real((size_t)B * T * d.KVH * d.HD), alloc_real(nqkv), alloc_real(nout),
                alloc_real(attention_softmax_saved_size(B, T, d.NA)), &pe, B, T, d.HQ, d.KVH, d.HD};
    fill_uniform(c.qkv, nqkv, r, -1, 1);
    fill_uniform(c.R, nout, r, -1, 1);
    aop_loss(&c);
    real *dqkv = alloc_real(nqkv);
    attention_backward(dqkv, c.R, c.qr, c.kr, c.softmax_saved, c.qkv, c.out, &pe, B, T, d.HQ, d.KVH, d.HD);
    char what[128];
    snprintf(what, sizeof(what), "attention op dqkv, %s (q heads %d, kv %d, attn %d)", pe_name(pe_kind), d.HQ, d.KVH, d.NA);
    track(fd_check(what, c.qkv, nqkv, dqkv, aop_loss, &c));
    free(tc); free(ts); free(c.out); free(c.qr); free(c.kr); free(c.qkv); free(c.R); free(c.softmax_saved); free(dqkv);
}

/* ---- paper properties of the imaginary head (docs/MATH.md, RoPE++) ---- */
static void test_imaginary_properties(Rng *r) {
    int T = 9, HD = 8, half = HD / 2;
    real *tc = alloc_real((size_t)T * half), *ts = alloc_real((size_t)T * half);
    double theta[4];
    for (int j = 0; j < half; j++) theta[j] = pow(10000.0, -2.0 * j / HD);
    for (int t = 0; t < T; t++) for (int j = 0; j < half; j++) { tc[t * half + j] = cos(t * theta[j]); ts[t * half + j] = sin(t * theta[j]); }
    PosEmb pe;
    memset(&pe, 0, sizeof(pe));
    pe.rot = HD; pe.T_table = T; pe.cos = tc; pe.sin = ts;
    /* the same q at every position; real and imaginary heads of it */
    real q[8], *x = alloc_real((size_t)T * HD), *both = alloc_real((size_t)T * 2 * HD);
    fill_uniform(q, HD, r, -1, 1);
    for (int t = 0; t < T; t++) memcpy(x + t * HD, q, sizeof(q));
    rotary_forward(both, x, HD, &pe, 1, 1, 1, T, 1, HD);
    double worst_im = 0.0, worst_re = 0.0;
    for (int t = 0; t < T; t++) for (int s = 0; s <= t; s++) {
        const real *q_re = both + (size_t)t * 2 * HD, *q_im = q_re + HD, *k_re = both + (size_t)s * 2 * HD;
        double want_im = 0.0, want_re = 0.0;
        for (int j = 0; j < half; j++) {
            double m2 = q[j] * q[j] + q[j + half] * q[j + half];
            want_im += m2 * sin(theta[j] * (t - s));
            want_re += m2 * cos(theta[j] * (t - s));
        }
        worst_im = fmax(worst_im, fabs(dot(q_im, k_re, HD) - want_im));
        worst_re = fmax(worst_re, fabs(dot(q_re, k_re, HD) - want_re));
    }
    check(worst_im < 1e-12, "k = q: imaginary score = sum_j |q_j|^2 sin(theta_j dt) (max abs %.1e)", worst_im);
    check(worst_re < 1e-12, "k = q: real score = sum_j |q_j|^2 cos(theta_j dt) (max abs %.1e)", worst_re);
    /* equivalent form: imaginary = real RoPE applied to -rotate_half(q) = (b, -a) per pair */
    real *y = alloc_real((size_t)T * HD), *yr = alloc_real((size_t)T * HD);
    for (int t = 0; t < T; t++) for (int j = 0; j < half; j++) { y[t * HD + j] = q[j + half]; y[t * HD + j + half] = -q[j]; }
    rotary_forward(yr, y, HD, &pe, 0, 1, 1, T, 1, HD);
    double e = 0.0;
    for (int t = 0; t < T; t++) for (int i = 0; i < HD; i++) e = fmax(e, fabs(yr[t * HD + i] - both[(size_t)t * 2 * HD + HD + i]));
    check(e < 1e-14, "imaginary query = RoPE(-rotate_half(q)) (max abs %.1e)", e);
    free(tc); free(ts); free(x); free(both); free(y); free(yr);
}

/* The noise experiment: sigma * noise_normal(seed, index) lands on exactly the targeted heads, the same for the
   same seed, and the rest of the attention op is untouched. */
static void test_noise(Rng *r) {
    int B = 1, T = 5, HQ = 2, KVH = 1, HD = 4, NA = 2 * HQ, half = HD / 2;
    real *tc = alloc_real((size_t)T * half), *ts = alloc_real((size_t)T * half);
    for (int t = 0; t < T; t++) for (int j = 0; j < half; j++) { tc[t * half + j] = cos(t * (j + 1.0)); ts[t * half + j] = sin(t * (j + 1.0)); }
    PosEmb pe;
    memset(&pe, 0, sizeof(pe));
    pe.rot = HD; pe.imag = 1; pe.T_table = T; pe.cos = tc; pe.sin = ts;
    size_t nqkv = (size_t)B * T * (HQ + 2 * KVH) * HD, nq = (size_t)B * T * NA * HD;
    real *qkv = alloc_real(nqkv), *out = alloc_real(nq), *q0 = alloc_real(nq), *q1 = alloc_real(nq), *q2 = alloc_real(nq);
    real *kr = alloc_real((size_t)B * T * KVH * HD), *att = alloc_real(attention_softmax_saved_size(B, T, NA));
    fill_uniform(qkv, nqkv, r, -1, 1);
    attention_forward(out, q0, kr, att, qkv, &pe, B, T, HQ, KVH, HD);
    for (int target = NOISE_REAL; target <= NOISE_IMAG; target++) {
        pe.noise_target = target; pe.noise_sigma = 0.7; pe.noise_seed = 99;
        attention_forward(out, q1, kr, att, qkv, &pe, B, T, HQ, KVH, HD);
        attention_forward(out, q2, kr, att, qkv, &pe, B, T, HQ, KVH, HD);
        double e = 0.0;
        int untouched_ok = 1;
        for (size_t i = 0; i < nq; i++) {
            int head = (int)((i / HD) % NA), is_imag = head % 2 == 1;
            int hit = (target == NOISE_IMAG) == is_imag;
            double want = q0[i] + (hit ? 0.7 * noise_normal(99, i) : 0.0);
            e = fmax(e, fabs(q1[i] - want));
            if (!hit && q1[i] != q0[i]) untouched_ok = 0;
        }
        check(e < 1e-12 && untouched_ok && memcmp(q1, q2, nq * sizeof(real)) == 0,
              "noise on %s queries: sigma * N(0,1)(seed, index) on those heads only, repeatable (max abs %.1e)",
              target == NOISE_REAL ? "real" : "imaginary", e);
    }
    double s1 = 0.0, s2 = 0.0;
    for (uint64_t i = 0; i < 200000; i++) { double z = noise_normal(7, i); s1 += z; s2 += z * z; }
    check(fabs(s1 / 200000) < 0.01 && fabs(s2 / 200000 - 1.0) < 0.02, "noise_normal has mean 0 and variance 1 (%.4f, %.4f)", s1 / 200000, s2 / 200000);
    free(tc); free(ts); free(qkv); free(out); free(q0); free(q1); free(q2); free(kr); free(att);
}

static void test_param_counts(void) {
    /* docs/MATH.md, Parameter counts: C 768, H 12, KV 4, d 64 */
    Config c = config_default();
    c.dim = 768; c.n_heads = 12; c.n_kv_heads = 4;
    size_t want[3] = {1572864, 1081344, 2162688};
    int pes[3] = {PE_ROPE, PE_ROPEPP_EH, PE_ROPEPP_EC};
    for (int i = 0; i < 3; i++) {
        c.pe = pes[i];
        size_t got = attention_param_count(&c);
        check(got == want[i], "attention parameters %s C768 H12 KV4 = %zu (want %zu)", pe_name(pes[i]), got, want[i]);
    }
    /* KV cache per token per layer (K+V elements): 512 / 256 / 512 */
    int kv[3] = {512, 256, 512};
    for (int i = 0; i < 3; i++) {
        c.pe = pes[i];
        Dims d = config_dims(&c);
        check(2 * d.KVH * d.HD == kv[i], "KV cache elements per token per layer %s = %d (want %d)", pe_name(pes[i]), 2 * d.KVH * d.HD, kv[i]);
    }
    /* FoPE basis of the 376M config: M = 46, P = 32 (docs/MATH.md, FoPE) */
    c.pe = PE_FOPE; c.dim = 1024; c.n_heads = 8; c.train_seq = 4096;
    Dims d = config_dims(&c);
    check(d.fope_m == 46 && d.fope_p == 32, "FoPE head dim 128, L_train 4096: M = %d (46), P = %d (32)", d.fope_m, d.fope_p);
}

static void test_alibi_slopes(void) {
    double s[12];
    alibi_slopes(s, 8);
    double e = 0.0;
    for (int h = 0; h < 8; h++) e = fmax(e, fabs(s[h] - pow(2.0, -(h + 1))));
    check(e < 1e-15, "ALiBi slopes, 8 heads: 1/2 .. 1/256");
    alibi_slopes(s, 12);
    double want[12] = {0.5, 0.25, 0.125, 0.0625, 1.0 / 32, 1.0 / 64, 1.0 / 128, 1.0 / 256,
                       pow(2.0, -0.5), pow(2.0, -1.5), pow(2.0, -2.5), pow(2.0, -3.5)};
    e = 0.0;
    for (int h = 0; h < 12; h++) e = fmax(e, fabs(s[h] - want[h]));
    check(e < 1e-15, "ALiBi slopes, 12 heads: 2^-1..2^-8 then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5");
}

static void test_schedules(void) {
    /* docs/MATH.md, Learning-rate schedules */
    check(lr_lambda(SCHED_CONSTANT, 0, 500, 100000, 0) == 0.0, "constant_with_warmup: the first step has lr 0");
    check(fabs(lr_lambda(SCHED_CONSTANT, 250, 500, 100000, 0) - 0.5) < 1e-15, "constant_with_warmup: k/W in warmup");
    check(lr_lambda(SCHED_CONSTANT, 90000, 500, 100000, 0) == 1.0, "constant_with_warmup: 1 after warmup");
    /* decay phase: W 0, stable 1, D 9999 of N 10000 */
    check(lr_lambda(SCHED_WSD, 0, 0, 10000, 9999) == 1.0 && lr_lambda(SCHED_WSD, 1, 0, 10000, 9999) == 1.0, "wsd: lambda(0) = lambda(1) = 1 (stable 1 step)");
    double last = lr_lambda(SCHED_WSD, 9999, 0, 10000, 9999), want = 0.5 * (1 - cos(M_PI / 9999));
    check(fabs(last - want) < 1e-20 && last * 5e-4 < 2e-11, "wsd: the last step's lr is %.2e (~1e-11 at peak 5e-4)", last * 5e-4);
    check(fabs(lr_lambda(SCHED_WSD, 5000, 0, 10000, 9999) - 0.5 * (1 + cos(M_PI * 4999.0 / 9999))) < 1e-15, "wsd: cosine in the decay");
    check(fabs(lr_lambda(SCHED_COSINE, 500 + 4750, 500, 10000, 0) - 0.5) < 1e-12, "cosine: 1/2 half way after warmup");
    check(lr_lambda(SCHED_COSINE, 10000, 500, 10000, 0) == 0.0, "cosine: 0 at the end");
}

static void test_adamw(Rng *r) {
    /* against the textbook AdamW (Loshchilov & Hutter, torch's formula) written independently here */
    size_t n = 17;
    real *p = alloc_real(n), *master = alloc_real(n), *g = alloc_real(n), *m = alloc_real(n), *v = alloc_real(n);
    double rp[17], rm[17] = {0}, rv[17] = {0};
    fill_uniform(master, n, r, -1, 1);
    for (size_t i = 0; i < n; i++) rp[i] = master[i];
    double lr = 1e-2, b1 = 0.95, b2 = 0.99, eps = 1e-8, wd = 0.1, e = 0.0;
    for (int step = 1; step <= 5; step++) {
        fill_uniform(g, n, r, -1, 1);
        adamw_update(p, master, g, m, v, n, lr, b1, b2, eps, wd, 0.5, step);
        for (size_t i = 0; i < n; i++) {
            double gi = 0.5 * g[i];
            rp[i] -= lr * wd * rp[i];
            rm[i] = b1 * rm[i] + (1 - b1) * gi;
            rv[i] = b2 * rv[i] + (1 - b2) * gi * gi;
            double mh = rm[i] / (1 - pow(b1, step)), vh = rv[i] / (1 - pow(b2, step));
            rp[i] -= lr * mh / (sqrt(vh) + eps);
        }
    }
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs(rp[i] - master[i]) + fabs(p[i] - master[i]));
    check(e < 1e-12, "AdamW 5 steps equal the textbook update with decoupled decay (max abs %.1e)", e);
    free(p); free(master); free(g); free(m); free(v);
}

static void test_characteristic_curves(void) {
    /* cisi against tabulated values (Abramowitz & Stegun table 5.1) */
    double ci, si;
    cisi(1.0, &ci, &si);
    check(fabs(si - 0.946083070367183) < 1e-13 && fabs(ci - 0.337403922900968) < 1e-13, "Si(1), Ci(1) match the tables");
    cisi(10.0, &ci, &si);
    check(fabs(si - 1.658347594218874) < 1e-13 && fabs(ci + 0.045456433004455) < 1e-13, "Si(10), Ci(10) match the tables");
    cisi(M_PI, &ci, &si);
    check(fabs(si - 1.851937051982466) < 1e-13, "Si(pi) matches the table");
    /* the sum over a wide head approximates the integral: c_Re -> (Ci(dt) - Ci(dt/b)) / ln b, c_Im -> (Si(dt) - Si(dt/b)) / ln b.
       Left Riemann sum with n = HD/2 points: error ~ |f(0) - f(1)| / (2n) + oscillation terms, < 1e-4 at n = 1e5. */
    double base = 1e4, e_re = 0.0, e_im = 0.0;
    double dts[6] = {0.5, 2.0, 10.0, 50.0, 200.0, 1000.0};
    for (int i = 0; i < 6; i++) {
        double cr, cim, c1, s1, c2, s2;
        characteristic_curves(&cr, &cim, dts[i], 200000, base);
        cisi(dts[i], &c1, &s1);
        cisi(dts[i] / base, &c2, &s2);
        e_re = fmax(e_re, fabs(cr - (c1 - c2) / log(base)));
        e_im = fmax(e_im, fabs(cim - (s1 - s2) / log(base)));
    }
    check(e_re < 1e-4, "c_Re(dt) = (Ci(dt) - Ci(dt/1e4)) / ln 1e4 for dt 0.5..1000 (max abs %.1e)", e_re);
    check(e_im < 1e-4, "c_Im(dt) = (Si(dt) - Si(dt/1e4)) / ln 1e4 for dt 0.5..1000 (max abs %.1e)", e_im);
    /* the paper's point: c_Im > 0 for moderate dt (semantic aggregation), while c_Re decays and oscillates */
    double cr, cim;
    characteristic_curves(&cr, &cim, 100.0, 128, base);
    check(cim > 0.0, "c_Im(100) > 0 at head dim 128 (%.3f)", cim);
}

int main(void) {
    Rng r = {12345};
    printf("test_ops: gradient checks in double, threshold %.0e (relative to the largest numeric gradient)\n", GRAD_TOL);
    test_encoder(&r);
    test_rmsnorm(&r);
    test_matmul(&r);
    test_swiglu(&r);
    test_crossentropy(&r);
    test_rotary_case(&r, "rope (real, rot = HD)", 8, 0, 0, 1);
    test_rotary_case(&r, "ropepp (real + imaginary heads)", 8, 1, 0, 1);
    test_rotary_case(&r, "partial (rot 4 of 8, rest pass through)", 4, 0, 0, 1);
    test_rotary_case(&r, "partial + imaginary (rot 4 of 8)", 4, 1, 0, 1);
    test_rotary_case(&r, "fope (per-group tables, group 2)", 8, 0, 1, 2);
    test_rotary_case(&r, "none (rot 0: copy)", 0, 0, 0, 1);
    int groups[3][2] = {{4, 4}, {4, 2}, {4, 1}};
    for (int i = 0; i < 3; i++) for (int al = 0; al < 2; al++) test_attention_core(&r, groups[i][0], groups[i][1], al);
    test_attention_core(&r, 6, 3, 1);   /* ALiBi with a non-power-of-two head count */
    for (int pe = 0; pe < PE_COUNT; pe++) test_attention_op(&r, pe);
    test_imaginary_properties(&r);
    test_noise(&r);
    test_param_counts();
    test_alibi_slopes();
    test_schedules();
    test_adamw(&r);
    test_characteristic_curves();
    printf("worst gradient-check error over all ops: %.2e\n", worst);
    return tu_finish("test_ops");
}
