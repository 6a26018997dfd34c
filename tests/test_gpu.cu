/*
tests/test_gpu.cu — CPU <-> GPU parity for every op of ropepp.h, end-to-end parity of the GPU model against the
PyTorch float64 fixtures, and GPU determinism. Needs a CUDA GPU.

Two binaries from this one file (the precision is the build's, as for train_gpu):
  tests/test_gpu        bf16 activations (ropepp_cuda.o)
  tests/test_gpu_fp32   fp32 activations (-DROPEPP_FP32, ropepp_cuda_fp32.o)
Build (see the Makefile):
  gcc  -std=c11 -O2 -fopenmp -I. -c tests/cpu_ref.c -o tests/cpu_ref_plain.o
  bash tests/cpu_ref_rename.sh tests/cpu_ref_plain.o tests/cpu_ref.o
  nvcc -O3 -std=c++17 -I. -gencode=arch=compute_90,code=sm_90 [-DROPEPP_FP32] tests/test_gpu.cu tests/cpu_ref.o \
       ropepp_cuda[_fp32].o -o tests/test_gpu[_fp32] -lcublas -Xcompiler -fopenmp
Run:   tests/test_gpu [--fixtures DIR] [--no-fixtures] [--bench] [--bench-only] [--quick]   (from the repository
       root; --quick: a few attention cases and no model runs, for compute-sanitizer; --bench-only: timings alone)

Every check prints the largest absolute error, max |ref| and their ratio ("rel", the error relative to the largest
reference value) against a tolerance, and the program exits 1 if any check fails.
Tolerances. fp32: 1e-5 relative to max |ref| for every op (fp32 arithmetic, different summation order); the
whole model against float64 PyTorch: logits and loss 1e-5, gradients 1e-4 (a backward pass is some hundred
dependent fp32 operations deep), the loss over 10 AdamW steps 1e-4.
bf16: a bf16 value has an 8-bit significand, so one rounding costs up to u = 2^-8 = 3.9e-3 relative; the CPU
reference runs in float on the same (bf16-rounded) inputs, so an op that rounds its result once gets 2u, a short
chain (norm, rotary, accumulate into a bf16 gradient) 4u, attention (rounded q/k/out feeding a softmax and a
backward) 8u; the whole model (logits, gradients through 2 layers of such ops) 16u; loss values 4u.
*/
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <stdarg.h>
#include <math.h>
#include <vector>
#include <string>

#ifndef ROPEPP_CUDA
#define ROPEPP_CUDA
#endif
#define ROPEPP_IMPLEMENTATION
/* The model part of the header compiled here as C++. In the bf16 build floatX must be the header's plain C storage
   struct (as in train.c), not __nv_bfloat16: hide __CUDACC__ while the header is read (the host code here never
   does arithmetic on floatX; it converts through bit patterns). */
#ifndef ROPEPP_FP32
#pragma push_macro("__CUDACC__")
#undef __CUDACC__
#endif
#include "ropepp.h"
#ifndef ROPEPP_FP32
#pragma pop_macro("__CUDACC__")
#endif
#include "tests/cpu_ref.h"

/* ------------------------------------------------------------------------------------------------ helpers */

static const bool IS_FP32 = sizeof(floatX) == 4;
static const double U = 1.0 / 256.0;   /* bf16 unit roundoff */

/* tolerances: fp32, bf16 (multiples of U) */
static double tol_of(double fp32, double bf16_units) { return IS_FP32 ? fp32 : bf16_units * U; }
#define TOL_ROUND1 tol_of(1e-5, 2)    /* one rounding of the result */
#define TOL_CHAIN tol_of(1e-5, 4)     /* a few roundings */
#define TOL_ATT tol_of(1e-5, 8)       /* attention forward / backward */

static float bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) return f;   /* inf, nan */
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}
static float qx(float f) { return IS_FP32 ? f : bf16_round(f); }
static void quantize(std::vector<float> &v) { for (auto &x : v) x = qx(x); }

static void f_to_x(floatX *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (IS_FP32) { memcpy((char *)dst + 4 * i, &src[i], 4); continue; }
        float r = bf16_round(src[i]);
        uint32_t u;
        memcpy(&u, &r, 4);
        uint16_t h = (uint16_t)(u >> 16);
        memcpy((char *)dst + 2 * i, &h, 2);
    }
}
static void x_to_f(float *dst, const floatX *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (IS_FP32) { memcpy(&dst[i], (const char *)src + 4 * i, 4); continue; }
        uint16_t h;
        memcpy(&h, (const char *)src + 2 * i, 2);
        uint32_t u = (uint32_t)h << 16;
        memcpy(&dst[i], &u, 4);
    }
}

/* device buffers through the backend's own memory functions */
static floatX *up_x(std::vector<float> &h) {   /* quantizes h to floatX in place, then uploads */
    quantize(h);
    std::vector<char> tmp(h.size() * sizeof(floatX) + 1);
    f_to_x((floatX *)tmp.data(), h.data(), h.size());
    floatX *d = (floatX *)backend_malloc(h.size() * sizeof(floatX));
    backend_from_host(d, tmp.data(), h.size() * sizeof(floatX));
    return d;
}
static floatX *alloc_x(size_t n) {
    floatX *d = (floatX *)backend_malloc(n * sizeof(floatX));
    backend_zero(d, n * sizeof(floatX));
    return d;
}
static float *up_f(const std::vector<float> &h) {
    float *d = (float *)backend_malloc(h.size() * sizeof(float) + 4);
    backend_from_host(d, h.data(), h.size() * sizeof(float));
    return d;
}
static int *up_i(const std::vector<int> &h) {
    int *d = (int *)backend_malloc(h.size() * sizeof(int) + 4);
    backend_from_host(d, h.data(), h.size() * sizeof(int));
    return d;
}
static std::vector<float> down_x(const floatX *d, size_t n) {
    std::vector<char> tmp(n * sizeof(floatX) + 1);
    backend_to_host(tmp.data(), d, n * sizeof(floatX));
    std::vector<float> h(n);
    x_to_f(h.data(), (const floatX *)tmp.data(), n);
    return h;
}
static std::vector<float> down_f(const float *d, size_t n) {
    std::vector<float> h(n);
    backend_to_host(h.data(), d, n * sizeof(float));
    return h;
}

static Rng g_rng = {20251207};
static std::vector<float> randn(size_t n, double scale) {
    std::vector<float> v(n);
    for (auto &x : v) x = (float)(scale * rng_normal(&g_rng));
    return v;
}

/* ------------------------------------------------------------------------------------------------ checks */

static int n_checks = 0, n_failed = 0;
/* worst rel error per position embedding: [pe][0] op-level forward, [1] op-level backward, [2] model logits+loss,
   [3] model gradients, [4] loss trajectory */
static double pe_worst[PE_COUNT][5];

static double check(const char *what, const std::string &tag, const float *ref, const float *got, size_t n, double tol) {
    double max_abs = 0.0, max_ref = 0.0;
    size_t worst = 0;
    bool bad = false;
    for (size_t i = 0; i < n; i++) {
        double r = ref[i], g = got[i];
        if (!std::isfinite(g) || !std::isfinite(r)) { bad = true; worst = i; break; }
        double e = fabs(r - g);
        if (e > max_abs) { max_abs = e; worst = i; }
        if (fabs(r) > max_ref) max_ref = fabs(r);
    }
    double rel = max_ref > 0 ? max_abs / max_ref : max_abs;
    bool ok = !bad && rel <= tol;
    n_checks++;
    if (!ok) n_failed++;
    printf("  %-30s %-44s max|ref| %9.3e  max_abs %9.3e  rel %9.3e  tol %7.1e  %s", what, tag.c_str(), max_ref, max_abs,
           rel, tol, ok ? "ok" : "FAIL");
    if (!ok && n > 0) printf("  (worst [%zu]: ref %.7g got %.7g)", worst, (double)ref[worst], (double)got[worst]);
    printf("\n");
    return bad ? INFINITY : rel;
}
static double check_v(const char *what, const std::string &tag, const std::vector<float> &ref,
                      const std::vector<float> &got, double tol) {
    if (ref.size() != got.size()) { printf("  %s %s: size mismatch\n", what, tag.c_str()); n_failed++; return INFINITY; }
    return check(what, tag, ref.data(), got.data(), ref.size(), tol);
}
static void note_pe(int pe, int slot, double rel) { if (rel > pe_worst[pe][slot]) pe_worst[pe][slot] = rel; }

static std::string fmt(const char *f, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, sizeof(buf), f, ap);
    va_end(ap);
    return std::string(buf);
}

/* ------------------------------------------------------------------------------------------------ simple ops */

static void test_simple_ops(void) {
    printf("\n== elementwise, norm, matmul, loss and optimizer ops\n");
    /* encoder */
    {
        int N = 1000, C = 200, V = 37;
        std::vector<int> inp(N);
        for (auto &t : inp) t = (int)(rng_u64(&g_rng) % V);
        inp[5] = V - 1;
        std::vector<float> wte = randn((size_t)V * C, 1.0), dout = randn((size_t)N * C, 1.0), dwte = randn((size_t)V * C, 0.5);
        floatX *d_wte = up_x(wte), *d_dout = up_x(dout), *d_dwte = up_x(dwte), *d_out = alloc_x((size_t)N * C);
        int *d_inp = up_i(inp);
        std::vector<float> out((size_t)N * C);
        cpu_encoder_forward(out.data(), inp.data(), wte.data(), N, C);
        encoder_forward(d_out, d_inp, d_wte, N, C);
        check_v("encoder_forward", fmt("N%d C%d V%d", N, C, V), out, down_x(d_out, out.size()), 0.0);
        cpu_encoder_backward(dwte.data(), dout.data(), inp.data(), N, C);
        encoder_backward(d_dwte, d_dout, d_inp, N, C);
        check_v("encoder_backward", fmt("N%d C%d V%d", N, C, V), dwte, down_x(d_dwte, dwte.size()), TOL_ROUND1);
        backend_free(d_wte); backend_free(d_dout); backend_free(d_dwte); backend_free(d_out); backend_free(d_inp);
    }
    /* rmsnorm */
    int shapes[3][2] = {{74, 48}, {130, 1024}, {3, 7}};
    for (auto &sh : shapes) {
        int N = sh[0], C = sh[1];
        std::string tag = fmt("N%d C%d", N, C);
        std::vector<float> x = randn((size_t)N * C, 2.0), w = randn(C, 1.0), dout = randn((size_t)N * C, 1.0);
        std::vector<float> dx = randn((size_t)N * C, 0.3), dw = randn(C, 0.3);
        for (auto &v : w) v += 1.0f;
        floatX *d_x = up_x(x), *d_w = up_x(w), *d_dout = up_x(dout), *d_dx = up_x(dx), *d_dw = up_x(dw);
        floatX *d_out = alloc_x((size_t)N * C);
        float *d_rstd = (float *)backend_malloc((size_t)N * 4);
        std::vector<float> out((size_t)N * C), rstd(N);
        cpu_rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5);
        rmsnorm_forward(d_out, d_rstd, d_x, d_w, N, C, 1e-5);
        check_v("rmsnorm_forward.out", tag, out, down_x(d_out, out.size()), TOL_CHAIN);
        check_v("rmsnorm_forward.rstd", tag, rstd, down_f(d_rstd, N), tol_of(1e-5, 0.01));
        /* both backwards from the CPU's rstd, so that only the backward is compared */
        backend_from_host(d_rstd, rstd.data(), (size_t)N * 4);
        cpu_rmsnorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), N, C);
        rmsnorm_backward(d_dx, d_dw, d_dout, d_x, d_w, d_rstd, N, C);
        check_v("rmsnorm_backward.dinp", tag, dx, down_x(d_dx, dx.size()), TOL_CHAIN);
        check_v("rmsnorm_backward.dweight", tag, dw, down_x(d_dw, dw.size()), TOL_CHAIN);
        backend_free(d_x); backend_free(d_w); backend_free(d_dout); backend_free(d_dx); backend_free(d_dw);
        backend_free(d_out); backend_free(d_rstd);
    }
    /* residual (10007: element by element; 10000: 16-byte vectors) */
    for (size_t n : {(size_t)10007, (size_t)10000}) {
        std::vector<float> a = randn(n, 1.0), b = randn(n, 1.0), out(n);
        floatX *d_a = up_x(a), *d_b = up_x(b), *d_o = alloc_x(n);
        cpu_residual_forward(out.data(), a.data(), b.data(), n);
        residual_forward(d_o, d_a, d_b, n);
        check_v("residual_forward", fmt("n%zu", n), out, down_x(d_o, n), TOL_ROUND1);
        backend_free(d_a); backend_free(d_b); backend_free(d_o);
    }
    /* matmul */
    int mm[4][3] = {{74, 48, 144}, {130, 320, 77}, {37, 64, 11}, {256, 128, 512}};
    for (auto &s : mm) {
        int N = s[0], IC = s[1], OC = s[2];
        std::string tag = fmt("N%d IC%d OC%d", N, IC, OC);
        std::vector<float> x = randn((size_t)N * IC, 1.0), w = randn((size_t)OC * IC, 1.0 / sqrt(IC)),
                           dout = randn((size_t)N * OC, 1.0), dx = randn((size_t)N * IC, 0.5), dw = randn((size_t)OC * IC, 0.5);
        floatX *d_x = up_x(x), *d_w = up_x(w), *d_dout = up_x(dout), *d_dx = up_x(dx), *d_dw = up_x(dw);
        floatX *d_out = alloc_x((size_t)N * OC);
        std::vector<float> out((size_t)N * OC);
        cpu_matmul_forward(out.data(), x.data(), w.data(), N, IC, OC);
        matmul_forward(d_out, d_x, d_w, N, IC, OC);
        check_v("matmul_forward", tag, out, down_x(d_out, out.size()), TOL_ROUND1);
        cpu_matmul_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), N, IC, OC);
        matmul_backward(d_dx, d_dw, d_dout, d_x, d_w, N, IC, OC);
        check_v("matmul_backward.dinp", tag, dx, down_x(d_dx, dx.size()), TOL_ROUND1);
        check_v("matmul_backward.dweight", tag, dw, down_x(d_dw, dw.size()), TOL_ROUND1);
        /* NULL dinp: only dweight (accumulates a second time) */
        cpu_matmul_backward(NULL, dw.data(), dout.data(), x.data(), w.data(), N, IC, OC);
        matmul_backward(NULL, d_dw, d_dout, d_x, d_w, N, IC, OC);
        check_v("matmul_backward.dweight(2x)", tag, dw, down_x(d_dw, dw.size()), TOL_CHAIN);
        backend_free(d_x); backend_free(d_w); backend_free(d_dout); backend_free(d_dx); backend_free(d_dw);
        backend_free(d_out);
    }
    /* swiglu (F 100: element by element; F 96: 16-byte vectors) */
    for (int F : {100, 96}) {
        int N = 74;
        std::vector<float> x = randn((size_t)N * 2 * F, 2.0), dout = randn((size_t)N * F, 1.0), dx = randn((size_t)N * 2 * F, 0.5);
        floatX *d_x = up_x(x), *d_dout = up_x(dout), *d_dx = up_x(dx), *d_o = alloc_x((size_t)N * F);
        std::vector<float> out((size_t)N * F);
        cpu_swiglu_forward(out.data(), x.data(), N, F);
        swiglu_forward(d_o, d_x, N, F);
        check_v("swiglu_forward", fmt("N%d F%d", N, F), out, down_x(d_o, out.size()), TOL_ROUND1);
        cpu_swiglu_backward(dx.data(), dout.data(), x.data(), N, F);
        swiglu_backward(d_dx, d_dout, d_x, N, F);
        check_v("swiglu_backward", fmt("N%d F%d", N, F), dx, down_x(d_dx, dx.size()), TOL_ROUND1);
        backend_free(d_x); backend_free(d_dout); backend_free(d_dx); backend_free(d_o);
    }
    /* cross-entropy (backward in place over the logits, as the model calls it) */
    int ce[3][2] = {{74, 11}, {64, 5000}, {5, 50304}};
    for (auto &s : ce) {
        int N = s[0], V = s[1];
        std::string tag = fmt("N%d V%d", N, V);
        std::vector<float> logits = randn((size_t)N * V, 3.0), losses(N), dl((size_t)N * V);
        std::vector<int> tg(N);
        for (auto &t : tg) t = (int)(rng_u64(&g_rng) % V);
        tg[1] = -1;
        floatX *d_l = up_x(logits);
        int *d_t = up_i(tg);
        float *d_loss = (float *)backend_malloc((size_t)N * 4);
        cpu_crossentropy_forward(losses.data(), logits.data(), tg.data(), N, V);
        crossentropy_forward(d_loss, d_l, d_t, N, V);
        check_v("crossentropy_forward", tag, losses, down_f(d_loss, N), tol_of(1e-5, 0.01));
        cpu_crossentropy_backward(dl.data(), logits.data(), tg.data(), NULL, 1.0 / (N - 1), N, V);
        crossentropy_backward(d_l, d_l, d_t, NULL, 1.0 / (N - 1), N, V);
        check_v("crossentropy_backward(inplace)", tag, dl, down_x(d_l, dl.size()), TOL_ROUND1);
        /* the fused op of model_forward_loss: losses and dlogits (in place) in one pass */
        backend_free(d_l);
        d_l = up_x(logits);
        std::vector<float> losses2(N), dl2((size_t)N * V);
        /* with per-target weights (train --mix-weight row): dlogits of row n scaled by w[n] */
        std::vector<float> w(N);
        for (int n = 0; n < N; n++) w[n] = 0.5f + (float)(n % 7) / 4.0f;
        float *d_w = (float *)backend_malloc((size_t)N * 4);
        backend_from_host(d_w, w.data(), (size_t)N * 4);
        cpu_crossentropy_forward_backward(losses2.data(), dl2.data(), logits.data(), tg.data(), w.data(), 0.25, N, V);
        crossentropy_forward_backward(d_loss, d_l, d_l, d_t, d_w, 0.25, N, V);
        backend_free(d_w);
        check_v("crossentropy_forward_backward.losses", tag, losses2, down_f(d_loss, N), tol_of(1e-5, 0.01));
        check_v("crossentropy_forward_backward.dlogits(inplace)", tag, dl2, down_x(d_l, dl2.size()), TOL_ROUND1);
        backend_free(d_l); backend_free(d_t); backend_free(d_loss);
    }
    /* AdamW, two steps, plus the gradient norm and the master copy */
    {
        size_t n = 5003;
        std::vector<float> master = randn(n, 0.5), grads = randn(n, 0.01), m = randn(n, 0.001), v(n), params(n);
        for (auto &x : v) x = (float)(1e-5 * fabs(rng_normal(&g_rng)));
        quantize(grads);
        for (size_t i = 0; i < n; i++) params[i] = qx(master[i]);
        floatX *d_p = up_x(params), *d_g = up_x(grads);
        float *d_master = up_f(master), *d_m = up_f(m), *d_v = up_f(v);
        for (int step = 1; step <= 2; step++) {
            cpu_adamw_update(params.data(), master.data(), grads.data(), m.data(), v.data(), n, 1e-3, 0.95, 0.99, 1e-8, 0.1,
                             0.7, step);
            adamw_update(d_p, d_master, d_g, d_m, d_v, n, 1e-3, 0.95, 0.99, 1e-8, 0.1, 0.7, step);
        }
        check_v("adamw_update.master", fmt("n%zu 2 steps", n), master, down_f(d_master, n), 1e-6);
        check_v("adamw_update.m", fmt("n%zu 2 steps", n), m, down_f(d_m, n), 1e-6);
        check_v("adamw_update.v", fmt("n%zu 2 steps", n), v, down_f(d_v, n), 1e-6);
        check_v("adamw_update.params", fmt("n%zu 2 steps", n), params, down_x(d_p, n), TOL_ROUND1);
        size_t nn = 100003;
        std::vector<float> g = randn(nn, 1.0);
        floatX *d_gg = up_x(g);
        float out = 1.5f, *d_out = up_f(std::vector<float>(1, 1.5f));
        cpu_global_norm_squared(&out, g.data(), nn);
        global_norm_squared(d_out, d_gg, nn);
        check_v("global_norm_squared", fmt("n%zu (+=)", nn), std::vector<float>(1, out), down_f(d_out, 1), 1e-6);
        std::vector<float> cp(n);
        cpu_copy_master_to_params(cp.data(), master.data(), n);
        copy_master_to_params(d_p, d_master, n);
        check_v("copy_master_to_params", fmt("n%zu", n), cp, down_x(d_p, n), TOL_ROUND1);
        backend_free(d_p); backend_free(d_g); backend_free(d_master); backend_free(d_m); backend_free(d_v);
        backend_free(d_gg); backend_free(d_out);
    }
}

/* ------------------------------------------------------------------------------------------------ attention */

typedef struct {
    int pe, B, T, H, KV, HD;       /* H, KV: the config's heads (EH projects H/2, KV/2; EC attends with 2H) */
    double noise_sigma;
    int noise_target;
} AttCase;

/* host and device position-embedding tables for one case, built like model_build_pe */
typedef struct {
    PosEmb h, d;                   /* host pointers / device pointers */
    std::vector<float> cos_, sin_, alibi_;
    float *dcos, *dsin, *dalibi;
    int HQ, KVH, NA;
} PeTables;

static void pe_build(PeTables *P, int pe, int HD, int H, int KV, int T_table, double noise_sigma, int noise_target,
                     uint64_t noise_seed) {
    /* head counts and rotated dims from the header's config_dims (partial: the even rotated width nearest a
       quarter of the head, at least 2, given to it as rotary_frac) */
    Config c = config_default();
    c.pe = pe; c.n_heads = H; c.n_kv_heads = KV; c.dim = H * HD;
    int rot_partial = 2 * (int)floor(HD * 0.25 / 2 + 0.5);
    c.rotary_frac = (rot_partial < 2 ? 2 : rot_partial) / (double)HD;
    Dims d = config_dims(&c);
    P->HQ = d.HQ; P->KVH = d.KVH; P->NA = d.NA;
    int imag = d.imag, rot = d.rot, per_group = pe_info(pe)->per_group;
    int half = rot / 2, G = per_group ? P->KVH : 1;
    memset(&P->h, 0, sizeof(PosEmb));
    P->h.rot = rot; P->h.imag = imag; P->h.per_group = per_group; P->h.T_table = T_table;
    P->h.noise_sigma = noise_sigma; P->h.noise_target = noise_target; P->h.noise_seed = noise_seed;
    P->cos_.assign((size_t)G * T_table * half + 1, 0.0f);
    P->sin_.assign((size_t)G * T_table * half + 1, 0.0f);
    for (int g = 0; g < G; g++)
        for (int t = 0; t < T_table; t++)
            for (int j = 0; j < half; j++) {
                size_t i = ((size_t)g * T_table + t) * half + j;
                double th = pow(10000.0, -2.0 * j / rot);
                if (pe == PE_FOPE) {
                    /* per kv head mixtures of frequencies; slots j >= P padded with 1 */
                    int P_ = half / 2 > 0 ? half / 2 : 1;
                    if (j >= P_) { P->cos_[i] = 1.0f; P->sin_[i] = 1.0f; continue; }
                    double a1 = 0.8 + 0.1 * g, a2 = 0.2 - 0.05 * g;
                    P->cos_[i] = (float)(a1 * cos(t * th) + a2 * cos(t * th * 0.5 + g));
                    P->sin_[i] = (float)(a1 * sin(t * th) + a2 * sin(t * th * 0.5));
                } else {
                    P->cos_[i] = (float)cos(t * th);
                    P->sin_[i] = (float)sin(t * th);
                }
            }
    P->alibi_.assign(P->NA + 1, 0.0f);
    if (pe == PE_ALIBI) {
        std::vector<double> sl(P->NA);
        alibi_slopes(sl.data(), P->NA);
        for (int a = 0; a < P->NA; a++) P->alibi_[a] = (float)sl[a];
    }
    P->dcos = up_f(P->cos_);
    P->dsin = up_f(P->sin_);
    P->dalibi = up_f(P->alibi_);
    P->h.cos = half > 0 ? P->cos_.data() : NULL;
    P->h.sin = half > 0 ? P->sin_.data() : NULL;
    P->h.alibi = pe == PE_ALIBI ? P->alibi_.data() : NULL;
    P->d = P->h;
    P->d.cos = half > 0 ? P->dcos : NULL;
    P->d.sin = half > 0 ? P->dsin : NULL;
    P->d.alibi = pe == PE_ALIBI ? P->dalibi : NULL;
}
static void pe_free(PeTables *P) { backend_free(P->dcos); backend_free(P->dsin); backend_free(P->dalibi); }

static void test_attention_case(const AttCase &ac) {
    int B = ac.B, T = ac.T, HD = ac.HD;
    PeTables P;
    pe_build(&P, ac.pe, HD, ac.H, ac.KV, T + 3, ac.noise_sigma, ac.noise_target, 0x5eed0000ull + T);
    int HQ = P.HQ, KVH = P.KVH, NA = P.NA, imag = P.h.imag;
    size_t QKV = (size_t)(HQ + 2 * KVH) * HD, N = (size_t)B * T;
    std::string tag = fmt("%s B%d T%d HQ%d KVH%d NA%d HD%d%s", pe_name(ac.pe), B, T, HQ, KVH, NA, HD,
                          ac.noise_target == NOISE_REAL ? " noise:real" : ac.noise_target == NOISE_IMAG ? " noise:imag" : "");
    printf("\n-- %s\n", tag.c_str());
    std::vector<float> qkv = randn(N * QKV, 1.0), dout = randn(N * NA * HD, 1.0), dqkv0 = randn(N * QKV, 0.3);
    floatX *d_qkv = up_x(qkv), *d_dout = up_x(dout);
    quantize(dqkv0);

    /* fused attention forward + backward */
    std::vector<float> out(N * NA * HD), qr(N * NA * HD), kr(N * KVH * HD), att((size_t)B * NA * T * T);
    cpu_attention_forward(out.data(), qr.data(), kr.data(), att.data(), qkv.data(), &P.h, B, T, HQ, KVH, HD);
    floatX *d_out = alloc_x(out.size()), *d_qr = alloc_x(qr.size()), *d_kr = alloc_x(kr.size());
    float *d_stats = (float *)backend_malloc(attention_softmax_saved_size(B, T, NA) * sizeof(float));
    attention_forward(d_out, d_qr, d_kr, d_stats, d_qkv, &P.d, B, T, HQ, KVH, HD);
    double r;
    r = check_v("attention_forward.qr", tag, qr, down_x(d_qr, qr.size()), TOL_CHAIN); note_pe(ac.pe, 0, r);
    r = check_v("attention_forward.kr", tag, kr, down_x(d_kr, kr.size()), TOL_CHAIN); note_pe(ac.pe, 0, r);
    r = check_v("attention_forward.out", tag, out, down_x(d_out, out.size()), TOL_ATT); note_pe(ac.pe, 0, r);
    {   /* eval attn's probabilities (attention_probs_forward) of rows [T/3, T) from the GPU's own qr and kr: the CPU
           op on the same values; only the float dot products' order differs (1e-5 in both builds) */
        int t0 = T / 3, nr = T - T / 3;
        std::vector<float> gq = down_x(d_qr, qr.size()), gk = down_x(d_kr, kr.size()), pc((size_t)B * NA * nr * T);
        cpu_attention_probs_forward(pc.data(), gq.data(), gk.data(), P.h.alibi, B, T, NA, KVH, HD, t0, T);
        float *d_p = (float *)backend_malloc(pc.size() * sizeof(float));
        attention_probs_forward(d_p, d_qr, d_kr, P.d.alibi, B, T, NA, KVH, HD, t0, T);
        check_v("attention_probs_forward", tag, pc, down_f(d_p, pc.size()), 1e-5);
        backend_free(d_p);
    }
    std::vector<float> dqkv = dqkv0;
    floatX *d_dqkv = up_x(dqkv);
    cpu_attention_backward(dqkv.data(), dout.data(), qr.data(), kr.data(), att.data(), qkv.data(), out.data(), &P.h, B,
                           T, HQ, KVH, HD);
    attention_backward(d_dqkv, d_dout, d_qr, d_kr, d_stats, d_qkv, d_out, &P.d, B, T, HQ, KVH, HD);
    std::vector<float> g = down_x(d_dqkv, dqkv.size());
    /* per part: dq, dk, dv columns */
    std::vector<float> rq, gq, rk, gk, rv, gv;
    for (size_t n = 0; n < N; n++)
        for (size_t c = 0; c < QKV; c++) {
            float a = dqkv[n * QKV + c], b = g[n * QKV + c];
            if (c < (size_t)HQ * HD) { rq.push_back(a); gq.push_back(b); }
            else if (c < (size_t)(HQ + KVH) * HD) { rk.push_back(a); gk.push_back(b); }
            else { rv.push_back(a); gv.push_back(b); }
        }
    r = check_v("attention_backward.dq", tag, rq, gq, TOL_ATT); note_pe(ac.pe, 1, r);
    r = check_v("attention_backward.dk", tag, rk, gk, TOL_ATT); note_pe(ac.pe, 1, r);
    r = check_v("attention_backward.dv", tag, rv, gv, TOL_ATT); note_pe(ac.pe, 1, r);
    if (T >= 128) {
        /* determinism: a second forward + backward on fresh buffers gives the same bits (out, qr, stats, dqkv) */
        std::vector<float> dq2 = dqkv0;
        floatX *d_out2 = alloc_x(out.size()), *d_qr2 = alloc_x(qr.size()), *d_kr2 = alloc_x(kr.size()), *d_dqkv2 = up_x(dq2);
        float *d_stats2 = (float *)backend_malloc(attention_softmax_saved_size(B, T, NA) * sizeof(float));
        attention_forward(d_out2, d_qr2, d_kr2, d_stats2, d_qkv, &P.d, B, T, HQ, KVH, HD);
        attention_backward(d_dqkv2, d_dout, d_qr2, d_kr2, d_stats2, d_qkv, d_out2, &P.d, B, T, HQ, KVH, HD);
        size_t ns = attention_softmax_saved_size(B, T, NA);
        bool same = down_x(d_out2, out.size()) == down_x(d_out, out.size()) &&
                    down_x(d_qr2, qr.size()) == down_x(d_qr, qr.size()) &&
                    down_x(d_dqkv2, dqkv.size()) == g;
        std::vector<float> s1 = down_f(d_stats, ns), s2 = down_f(d_stats2, ns);
        same = same && memcmp(s1.data(), s2.data(), ns * sizeof(float)) == 0;
        n_checks++;
        if (!same) n_failed++;
        printf("  %-30s %-44s %s\n", "attention fwd+bwd run twice", tag.c_str(), same ? "bit-identical ok" : "DIFFERENT FAIL");
        backend_free(d_out2); backend_free(d_qr2); backend_free(d_kr2); backend_free(d_dqkv2); backend_free(d_stats2);
    }

    /* the separate ops: rotary (q with the imaginary heads, k) and the unfused core with its T x T matrix */
    if (ac.noise_target == NOISE_NONE) {
        std::vector<float> rq_c(N * NA * HD), rk_c(N * KVH * HD);
        floatX *d_rq = alloc_x(rq_c.size()), *d_rk = alloc_x(rk_c.size());
        cpu_rotary_forward(rq_c.data(), qkv.data(), QKV, &P.h, imag, HQ / KVH, B, T, HQ, HD);
        rotary_forward(d_rq, d_qkv, QKV, &P.d, imag, HQ / KVH, B, T, HQ, HD);
        r = check_v("rotary_forward.q", tag, rq_c, down_x(d_rq, rq_c.size()), TOL_ROUND1); note_pe(ac.pe, 0, r);
        cpu_rotary_forward(rk_c.data(), qkv.data() + (size_t)HQ * HD, QKV, &P.h, 0, 1, B, T, KVH, HD);
        rotary_forward(d_rk, d_qkv + (size_t)HQ * HD, QKV, &P.d, 0, 1, B, T, KVH, HD);
        r = check_v("rotary_forward.k", tag, rk_c, down_x(d_rk, rk_c.size()), TOL_ROUND1); note_pe(ac.pe, 0, r);
        std::vector<float> gqr = randn(N * NA * HD, 1.0), gkr = randn(N * KVH * HD, 1.0), dx = dqkv0;
        floatX *d_gqr = up_x(gqr), *d_gkr = up_x(gkr), *d_dx = up_x(dx);
        cpu_rotary_backward(dx.data(), gqr.data(), QKV, &P.h, imag, HQ / KVH, B, T, HQ, HD);
        cpu_rotary_backward(dx.data() + (size_t)HQ * HD, gkr.data(), QKV, &P.h, 0, 1, B, T, KVH, HD);
        rotary_backward(d_dx, d_gqr, QKV, &P.d, imag, HQ / KVH, B, T, HQ, HD);
        rotary_backward(d_dx + (size_t)HQ * HD, d_gkr, QKV, &P.d, 0, 1, B, T, KVH, HD);
        r = check_v("rotary_backward", tag, dx, down_x(d_dx, dx.size()), TOL_CHAIN); note_pe(ac.pe, 1, r);
        backend_free(d_rq); backend_free(d_rk); backend_free(d_gqr); backend_free(d_gkr); backend_free(d_dx);

        /* core on the CPU's rotated q, k (rounded to floatX) */
        std::vector<float> q = qr, k = kr;
        floatX *d_q = up_x(q), *d_k = up_x(k);
        const float *v = qkv.data() + (size_t)(HQ + KVH) * HD;
        std::vector<float> o2(N * NA * HD), att2((size_t)B * NA * T * T);
        float *d_att = (float *)backend_malloc(att2.size() * sizeof(float));
        floatX *d_o2 = alloc_x(o2.size());
        cpu_attention_core_forward(o2.data(), att2.data(), q.data(), k.data(), v, QKV, P.h.alibi, B, T, NA, KVH, HD);
        attention_core_forward(d_o2, d_att, d_q, d_k, d_qkv + (size_t)(HQ + KVH) * HD, QKV, P.d.alibi, B, T, NA, KVH, HD);
        r = check_v("attention_core_forward.out", tag, o2, down_x(d_o2, o2.size()), TOL_ROUND1); note_pe(ac.pe, 0, r);
        r = check_v("attention_core_forward.att", tag, att2, down_f(d_att, att2.size()), tol_of(1e-5, 0.01));
        note_pe(ac.pe, 0, r);
        std::vector<float> dq = randn(N * NA * HD, 0.3), dk = randn(N * KVH * HD, 0.3), dvv = dqkv0;
        floatX *d_dq = up_x(dq), *d_dk = up_x(dk), *d_dv = up_x(dvv);
        /* both from the CPU probabilities */
        backend_from_host(d_att, att2.data(), att2.size() * sizeof(float));
        cpu_attention_core_backward(dq.data(), dk.data(), dvv.data() + (size_t)(HQ + KVH) * HD, dout.data(), att2.data(),
                                    q.data(), k.data(), v, QKV, B, T, NA, KVH, HD);
        attention_core_backward(d_dq, d_dk, d_dv + (size_t)(HQ + KVH) * HD, d_dout, d_att, d_q, d_k,
                                d_qkv + (size_t)(HQ + KVH) * HD, QKV, B, T, NA, KVH, HD);
        r = check_v("attention_core_backward.dq", tag, dq, down_x(d_dq, dq.size()), TOL_CHAIN); note_pe(ac.pe, 1, r);
        r = check_v("attention_core_backward.dk", tag, dk, down_x(d_dk, dk.size()), TOL_CHAIN); note_pe(ac.pe, 1, r);
        r = check_v("attention_core_backward.dv", tag, dvv, down_x(d_dv, dvv.size()), TOL_CHAIN); note_pe(ac.pe, 1, r);
        backend_free(d_q); backend_free(d_k); backend_free(d_att); backend_free(d_o2); backend_free(d_dq);
        backend_free(d_dk); backend_free(d_dv);
    }
    backend_free(d_qkv); backend_free(d_dout); backend_free(d_out); backend_free(d_qr); backend_free(d_kr);
    backend_free(d_stats); backend_free(d_dqkv);
    pe_free(&P);
}

/* Cached attention (decoding): a cache whose rows < pos0 hold earlier (random) keys/values, Tn new tokens. */
static void test_cached_case(int pe, int B, int H, int KV, int HD, int pos0, int Tn, int noise_target) {
    int Tmax = pos0 + Tn + 5;
    PeTables P;
    pe_build(&P, pe, HD, H, KV, Tmax + 2, noise_target != NOISE_NONE ? 0.5 : 0.0, noise_target, 77);
    int HQ = P.HQ, KVH = P.KVH, NA = P.NA;
    size_t QKV = (size_t)(HQ + 2 * KVH) * HD, N = (size_t)B * Tn, nc = (size_t)B * Tmax * KVH * HD;
    std::string tag = fmt("%s B%d pos0 %d Tn%d HQ%d KVH%d HD%d%s", pe_name(pe), B, pos0, Tn, HQ, KVH, HD,
                          noise_target == NOISE_IMAG ? " noise:imag" : noise_target == NOISE_REAL ? " noise:real" : "");
    std::vector<float> qkv = randn(N * QKV, 1.0), kc = randn(nc, 1.0), vc = randn(nc, 1.0);
    floatX *d_qkv = up_x(qkv), *d_kc = up_x(kc), *d_vc = up_x(vc);
    std::vector<float> out(N * NA * HD);
    floatX *d_out = alloc_x(out.size());
    cpu_attention_cached_forward(out.data(), kc.data(), vc.data(), qkv.data(), &P.h, pos0, NULL, B, Tn, Tmax, HQ, KVH, HD);
    int *d_pos = up_i({pos0});   /* the position in device memory, as a captured decode step reads it */
    attention_cached_forward(d_out, d_kc, d_vc, d_qkv, &P.d, pos0, d_pos, B, Tn, Tmax, HQ, KVH, HD);
    double r;
    r = check_v("attention_cached_forward.out", tag, out, down_x(d_out, out.size()), TOL_ATT); note_pe(pe, 0, r);
    r = check_v("attention_cached_forward.kcache", tag, kc, down_x(d_kc, nc), TOL_CHAIN); note_pe(pe, 0, r);
    r = check_v("attention_cached_forward.vcache", tag, vc, down_x(d_vc, nc), 0.0); note_pe(pe, 0, r);
    backend_free(d_qkv); backend_free(d_kc); backend_free(d_vc); backend_free(d_out); backend_free(d_pos);
    pe_free(&P);
}

static bool g_quick = false;

/* defined in ropepp_cuda.cu: 1 when attention_forward and attention_backward (dk/dv and dq) run the Hopper kernels
   (cuda/attention_sm90.cuh) here */
int attention_sm90_active(void);

/* The Hopper forward, dk/dv and dq (bf16 build, head dims 64 and 128, on an H100/H200 with a binary built for sm_90a;
   elsewhere the same cases run the mma.sync kernels): every position embedding x GQA group 1, 2, 4, 8 (EC doubles the
   attention heads: packs of 1, 2, 4 heads) x head dim 64 and 128, lengths of one, two and three 128-key tiles with
   tails (the dk/dv kernel's second warpgroup past T at T 77 and 129), against the CPU ops with the bf16 tolerances;
   determinism for T >= 128 (test_attention_case). The long cases of test_attention run before this with the Hopper
   path active where it is, covering the backward's dS^T chunks and the recomputing dq. Then two long cases with the
   Hopper path turned off (ROPEPP_ATTN_SM90=0), so the mma.sync kernels stay tested on Hopper too.
   ROPEPP_REQUIRE_SM90=1 makes a missing Hopper path a failure (bench/attention/sm90_run.sh sets it). */
static void test_attention_sm90(void) {
    const int active = attention_sm90_active();
    printf("\n-- Hopper attention forward, dk/dv and dq (wgmma + TMA): %s\n", active ? "active" : "not active (mma.sync kernels)");
    const char *req = getenv("ROPEPP_REQUIRE_SM90");
    if (req != NULL && req[0] == '1') {
        n_checks++;
        if (!active) { n_failed++; printf("  ROPEPP_REQUIRE_SM90=1 but the Hopper path is not active FAIL\n"); }
    }
    /* {B, T, H, KV}: GQA group 1, 2, 4, 8 */
    const int shapes[4][4] = {{1, 129, 2, 2}, {2, 77, 4, 2}, {1, 257, 8, 2}, {1, 200, 8, 1}};
    for (int pe = 0; pe < PE_COUNT; pe++)
        for (int HD = 64; HD <= 128; HD += 64)
            for (auto &sh : shapes) {
                AttCase ac = {pe, sh[0], sh[1], sh[2], sh[3], HD, 0.0, NOISE_NONE};
                if (pe == PE_ROPEPP_EH && (ac.H % 2 || ac.KV % 2)) continue;
                test_attention_case(ac);
            }
    test_attention_case({PE_ROPEPP_EC, 2, 300, 8, 2, 128, 0.5, NOISE_IMAG});
    test_attention_case({PE_ROPE, 1, 300, 8, 2, 64, 0.5, NOISE_REAL});
    setenv("ROPEPP_ATTN_SM90", "0", 1);
    printf("   (Hopper kernels turned off for the next two cases: the mma.sync ones)\n");
    test_attention_case({PE_ROPEPP_EC, 1, 1037, 8, 4, 128, 0.0, NOISE_NONE});
    test_attention_case({PE_ALIBI, 1, 1000, 8, 2, 64, 0.0, NOISE_NONE});
    unsetenv("ROPEPP_ATTN_SM90");
}

static void test_attention(void) {
    if (g_quick) {   /* a few cases for compute-sanitizer */
        printf("\n== attention (quick)\n");
        test_attention_case({PE_ROPEPP_EC, 1, 130, 4, 2, 32, 0.5, NOISE_IMAG});
        test_attention_case({PE_FOPE, 2, 37, 4, 2, 16, 0.0, NOISE_NONE});
        test_attention_case({PE_ALIBI, 1, 67, 6, 3, 12, 0.0, NOISE_NONE});
        test_attention_case({PE_PARTIAL, 1, 70, 2, 1, 128, 0.0, NOISE_NONE});
        test_attention_case({PE_ROPEPP_EC, 1, 150, 4, 2, 64, 0.5, NOISE_IMAG});   /* bf16: tensor-core kernels */
        test_attention_case({PE_FOPE, 1, 200, 4, 2, 128, 0.0, NOISE_NONE});
        setenv("ROPEPP_ATTN_FWD_BM", "64", 1);   /* the other block sizes */
        setenv("ROPEPP_ATTN_DKV_BK", "128", 1);
        test_attention_case({PE_ROPEPP_EC, 1, 150, 4, 2, 64, 0.5, NOISE_IMAG});
        test_attention_case({PE_ALIBI, 1, 140, 4, 4, 128, 0.0, NOISE_NONE});
        unsetenv("ROPEPP_ATTN_FWD_BM");
        unsetenv("ROPEPP_ATTN_DKV_BK");
        test_cached_case(PE_ROPEPP_EH, 2, 4, 2, 16, 50, 1, NOISE_NONE);
        test_cached_case(PE_ROPE, 1, 4, 2, 64, 20, 9, NOISE_REAL);
        return;
    }
    printf("\n== attention (fused forward/backward, rotary, core, cached) for every position embedding\n");
    /* {B, T, H, KV, HD}: GQA groups 1, 2, 4 (EC doubles them), T not a multiple of the 64 tile, several tiles */
    int shapes[6][5] = {{2, 37, 4, 2, 16}, {1, 130, 4, 1, 64}, {2, 67, 6, 6, 12}, {1, 200, 2, 2, 128},
                        {2, 70, 8, 2, 8}, {1, 129, 4, 2, 32}};
    for (int pe = 0; pe < PE_COUNT; pe++)
        for (auto &s : shapes) {
            AttCase ac = {pe, s[0], s[1], s[2], s[3], s[4], 0.0, NOISE_NONE};
            if (pe == PE_ROPEPP_EH && (ac.H % 2 || ac.KV % 2)) continue;   /* EH projects H/2 and KV/2 heads */
            test_attention_case(ac);
        }
    /* the noise experiment: GPU noise = CPU noise (same counter-based draws) */
    test_attention_case({PE_ROPE, 2, 37, 4, 2, 16, 0.5, NOISE_REAL});
    test_attention_case({PE_ROPEPP_EC, 2, 37, 4, 2, 16, 0.5, NOISE_IMAG});
    test_attention_case({PE_ROPEPP_EH, 1, 70, 4, 2, 32, 0.5, NOISE_REAL});
    /* cached attention: decoding (split-K kernel, Tn <= 4) and prefill (flash kernel at an offset) */
    printf("\n-- cached attention\n");
    for (int pe = 0; pe < PE_COUNT; pe++) {
        test_cached_case(pe, 2, 4, 2, 16, 50, 1, NOISE_NONE);
        test_cached_case(pe, 1, 6, 6, 12, 130, 3, NOISE_NONE);
        test_cached_case(pe, 2, 4, 2, 64, 70, 37, NOISE_NONE);
        test_cached_case(pe, 1, 2, 2, 128, 0, 66, NOISE_NONE);
    }
    test_cached_case(PE_ROPEPP_EC, 2, 4, 2, 16, 20, 1, NOISE_IMAG);
    test_cached_case(PE_ROPE, 1, 4, 2, 32, 20, 9, NOISE_REAL);

    /* Long sequences at head dims 64 and 128, lengths that are no multiple of any tile: in the bf16 build these take
       the tensor-core kernels (rotated dims a multiple of 16). Every head packing (GQA group 1, 2, 4, 8), per-group
       FoPE tables, partial rotation, ALiBi, the noise experiment, a cached prefill at an offset, and determinism. */
    printf("\n-- long sequences, head dims 64 and 128 (bf16 build: tensor-core attention)\n");
    /* the backward's dq from stored dS^T tiles also where the grid is smaller than pays off on a GPU (the
       default ROPEPP_ATTN_DS_MIN_BLOCKS sends those to the recompute path, as the short cases above) */
    setenv("ROPEPP_ATTN_DS_MIN_BLOCKS", "0", 1);
    /* the default kernels (128-row forward blocks, 64-key dk/dv blocks), and the other block sizes, forced through
       ROPEPP_ATTN_DKV_BK / ROPEPP_ATTN_FWD_BM, for some cases */
    setenv("ROPEPP_ATTN_DKV_BK", "128", 1);
    printf("   (dk/dv blocks of 128 keys forced for the next two cases)\n");
    test_attention_case({PE_ROPEPP_EC, 1, 1037, 8, 4, 128, 0.0, NOISE_NONE});
    test_attention_case({PE_ROPE, 2, 1000, 8, 4, 64, 0.0, NOISE_NONE});
    unsetenv("ROPEPP_ATTN_DKV_BK");
    setenv("ROPEPP_ATTN_FWD_BM", "64", 1);
    printf("   (forward blocks of 64 rows forced for the next two cases)\n");
    test_attention_case({PE_ROPEPP_EC, 1, 1037, 8, 4, 128, 0.0, NOISE_NONE});
    test_attention_case({PE_ROPEPP_EH, 1, 1000, 8, 4, 128, 0.0, NOISE_NONE});
    unsetenv("ROPEPP_ATTN_FWD_BM");
    /* the backward's dq: by default from the dS^T tiles the dk/dv kernel stores, in chunks of sequences that fit
       ROPEPP_ATTN_DS_MB; 0 forces the dq kernel that recomputes S and dP */
    setenv("ROPEPP_ATTN_DS_MB", "0", 1);
    printf("   (dq recomputing S and dP forced for the next two cases)\n");
    test_attention_case({PE_ROPEPP_EC, 1, 1037, 8, 4, 128, 0.0, NOISE_NONE});
    test_attention_case({PE_ROPE, 2, 1000, 8, 4, 64, 0.0, NOISE_NONE});
    setenv("ROPEPP_ATTN_DS_MB", "2", 1);
    printf("   (dS^T room for one sequence: three chunks of one sequence for the next case)\n");
    test_attention_case({PE_ROPEPP_EH, 3, 333, 8, 4, 128, 0.0, NOISE_NONE});
    setenv("ROPEPP_ATTN_DS_MB", "3", 1);
    printf("   (dS^T room for one kv head of one sequence: chunks of (sequence, kv head) for the next two cases)\n");
    test_attention_case({PE_ROPE, 2, 1000, 8, 4, 64, 0.0, NOISE_NONE});
    test_attention_case({PE_ROPEPP_EC, 1, 700, 8, 4, 128, 0.5, NOISE_IMAG});
    unsetenv("ROPEPP_ATTN_DS_MB");
    test_attention_case({PE_ALIBI, 1, 1037, 4, 4, 64, 0.0, NOISE_NONE});
    test_attention_case({PE_FOPE, 1, 1000, 8, 2, 128, 0.0, NOISE_NONE});
    test_attention_case({PE_PARTIAL, 1, 1037, 4, 2, 128, 0.0, NOISE_NONE});
    test_attention_case({PE_NOPE, 1, 1000, 8, 1, 64, 0.0, NOISE_NONE});
    test_attention_case({PE_ROPEPP_EC, 1, 1037, 4, 2, 64, 0.5, NOISE_IMAG});
    test_attention_case({PE_ROPEPP_EH, 2, 333, 4, 2, 128, 0.5, NOISE_REAL});
    test_cached_case(PE_ROPEPP_EC, 1, 8, 4, 128, 500, 300, NOISE_NONE);
    test_cached_case(PE_FOPE, 2, 4, 2, 64, 77, 200, NOISE_NONE);
    unsetenv("ROPEPP_ATTN_DS_MIN_BLOCKS");
    test_attention_sm90();
}

/* ------------------------------------------------------------------------------------------------ model vs fixtures */

static int read_all(const char *path, std::vector<char> &buf) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf.resize(n > 0 ? (size_t)n : 0);
    size_t got = n > 0 ? fread(buf.data(), 1, (size_t)n, fp) : 0;
    fclose(fp);
    return got == (size_t)n ? 0 : -1;
}

static void test_fixture(const char *dir, int pe) {
    char ckpt[1024], fixp[1024], err[512];
    snprintf(ckpt, sizeof(ckpt), "%s/%s.ckpt", dir, pe_name(pe));
    snprintf(fixp, sizeof(fixp), "%s/%s.fix", dir, pe_name(pe));
    printf("\n-- fixture %s\n", fixp);
    Config c;
    double *params = NULL;
    size_t np = 0;
    if (checkpoint_read(ckpt, &c, &params, &np, err, sizeof(err)) != 0) {
        printf("  FAIL: %s\n", err);
        n_failed++; n_checks++;
        return;
    }
    std::vector<char> fx;
    if (read_all(fixp, fx) != 0 || fx.size() < 1024) {
        printf("  FAIL: cannot read %s\n", fixp);
        n_failed++; n_checks++;
        free(params);
        return;
    }
    int32_t h[256];
    memcpy(h, fx.data(), 1024);
    int B = h[2], T = h[3], V = h[4], S = h[5], sched = h[6], W = h[7], NS = h[8], D = h[9];
    int64_t nfix;
    memcpy(&nfix, h + 10, 8);
    double hp[6];
    for (int i = 0; i < 6; i++) memcpy(&hp[i], h + 32 + 2 * i, 8);
    double lr_peak = hp[0], b1 = hp[1], b2 = hp[2], eps = hp[3], wd = hp[4], clip = hp[5];
    size_t BT = (size_t)B * T;
    size_t want = 1024 + 2 * BT * 4 + 8 * (BT * V + 1 + np + 2 * (size_t)S);
    if (h[0] != 20251208 || h[1] != 1 || (size_t)nfix != np || V != c.vocab_size || fx.size() != want) {
        printf("  FAIL: %s: bad header or size (magic %d version %d params %lld/%zu vocab %d/%d size %zu/%zu)\n", fixp,
               h[0], h[1], (long long)nfix, np, V, c.vocab_size, fx.size(), want);
        n_failed++; n_checks++;
        free(params);
        return;
    }
    const char *p = fx.data() + 1024;
    std::vector<int> inputs(BT), targets(BT);
    memcpy(inputs.data(), p, BT * 4); p += BT * 4;
    memcpy(targets.data(), p, BT * 4); p += BT * 4;
    std::vector<double> logits(BT * V), grads(np), losses(S), lrs(S);
    double loss0;
    memcpy(logits.data(), p, BT * V * 8); p += BT * V * 8;
    memcpy(&loss0, p, 8); p += 8;
    memcpy(grads.data(), p, np * 8); p += np * 8;
    memcpy(losses.data(), p, S * 8); p += S * 8;
    memcpy(lrs.data(), p, S * 8);

    Model m;
    model_init_from(&m, &c, params);
    free(params);
    std::string tag = fmt("%s B%d T%d V%d L%d C%d", pe_name(pe), B, T, V, c.n_layers, c.dim);
    double tol_logits = tol_of(1e-5, 16), tol_loss = tol_of(1e-5, 4), tol_grad = tol_of(1e-4, 16),
           tol_traj = tol_of(1e-4, 4);
    std::vector<float> ref_traj(S), got_traj(S);
    for (int k = 0; k < S; k++) {
        double loss = model_forward(&m, inputs.data(), targets.data(), B, T);
        ref_traj[k] = (float)losses[k];
        got_traj[k] = (float)loss;
        if (k == 0) {
            std::vector<float> rl(BT * V), gl(BT * V);
            for (size_t i = 0; i < BT * V; i++) rl[i] = (float)logits[i];
            for (int b = 0; b < B; b++)
                for (int t = 0; t < T; t++) model_logits_row(&m, b, t, gl.data() + ((size_t)b * T + t) * V);
            double r = check_v("model.logits", tag, rl, gl, tol_logits);
            note_pe(pe, 2, r);
            std::vector<float> a1(1, (float)loss0), a2(1, (float)loss);
            r = check_v("model.loss", tag, a1, a2, tol_loss);
            note_pe(pe, 2, r);
        }
        model_zero_grad(&m);
        model_backward(&m);
        if (k == 0) {
            std::vector<double> gg(np);
            model_grads_to_host(&m, gg.data());
            size_t off = 0;
            for (int t = 0; t < NUM_PARAM_TENSORS; t++) {
                size_t sz = m.param_sizes[t];
                if (sz > 0) {
                    std::vector<float> rg(sz), ggot(sz);
                    for (size_t i = 0; i < sz; i++) { rg[i] = (float)grads[off + i]; ggot[i] = (float)gg[off + i]; }
                    double r = check_v(fmt("model.grad.%s", param_names[t]).c_str(), tag, rg, ggot, tol_grad);
                    if (t != P_FOPE_COS && t != P_FOPE_SIN) note_pe(pe, 3, r);
                }
                off += sz;
            }
            /* the training path: classifier + cross-entropy in chunks of 5 rows with their backward in the forward */
            model_zero_grad(&m);
            m.head_rows = 5;
            double loss_t = model_forward_loss(&m, inputs.data(), targets.data(), B, T, 1);
            model_backward(&m);
            m.head_rows = 0;
            std::vector<float> a1(1, (float)loss0), a2(1, (float)loss_t);
            note_pe(pe, 2, check_v("model_forward_loss.loss", tag, a1, a2, tol_loss));
            model_grads_to_host(&m, gg.data());
            std::vector<float> rg(np), ggot(np);
            for (size_t i = 0; i < np; i++) { rg[i] = (float)grads[i]; ggot[i] = (float)gg[i]; }
            note_pe(pe, 3, check_v("model_forward_loss.grads (all)", tag, rg, ggot, tol_grad));
        }
        double lam = lr_peak * lr_lambda(sched, k, W, NS, D);
        if (fabs(lam - lrs[k]) > 1e-12 * fabs(lrs[k]) + 1e-18)
            printf("  note: step %d: the fixture's lr %.10g differs from lr_peak * lr_lambda = %.10g (the fixture's is used)\n",
                   k, lrs[k], lam);
        model_update(&m, lrs[k], b1, b2, eps, wd, clip);
    }
    double r = check_v("model.loss_trajectory", fmt("%s, %d AdamW steps", tag.c_str(), S), ref_traj, got_traj, tol_traj);
    note_pe(pe, 4, r);
    printf("  losses: ");
    for (int k = 0; k < S; k++) printf("%.6f/%.6f ", ref_traj[k], got_traj[k]);
    printf("(ref/gpu)\n");
    model_free(&m);
}

/* ------------------------------------------------------------------------------------------------ determinism */

static void run_training(int pe, int steps, std::vector<double> &params_out, std::vector<double> &losses) {
    Config c = config_default();
    c.vocab_size = 300; c.dim = 128; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.ffn_dim = 256;
    c.pe = pe; c.train_seq = 128; c.rotary_frac = 0.25;
    int B = 2, T = 130;
    Rng r = {99};
    std::vector<int> inp((size_t)B * T), tg((size_t)B * T);
    for (size_t i = 0; i < inp.size(); i++) { inp[i] = (int)(rng_u64(&r) % 300); tg[i] = (int)(rng_u64(&r) % 300); }
    tg[7] = -1;
    Model m;
    model_init(&m, &c, INIT_TORCH_DEFAULT, 1234);
    if (pe == PE_ROPEPP_EC) { m.noise_sigma = 0.2; m.noise_target = NOISE_IMAG; m.noise_seed = 4242; }
    losses.clear();
    for (int s = 0; s < steps; s++) {
        model_zero_grad(&m);
        losses.push_back(model_forward_loss(&m, inp.data(), tg.data(), B, T, 1));
        model_backward(&m);
        model_update(&m, 1e-3, 0.9, 0.95, 1e-8, 0.1, 1.0);
    }
    params_out.assign(m.num_params, 0.0);
    model_params_to_host(&m, params_out.data());
    model_free(&m);
}

static void test_determinism(void) {
    printf("\n== determinism: two identical runs of 3 x (forward, backward, AdamW) give bit-identical parameters\n");
    for (int pe = 0; pe < PE_COUNT; pe++) {
        std::vector<double> p1, p2, l1, l2;
        run_training(pe, 3, p1, l1);
        run_training(pe, 3, p2, l2);
        bool same = p1.size() == p2.size() && memcmp(p1.data(), p2.data(), p1.size() * sizeof(double)) == 0 &&
                    memcmp(l1.data(), l2.data(), l1.size() * sizeof(double)) == 0;
        size_t ndiff = 0;
        for (size_t i = 0; i < p1.size() && i < p2.size(); i++) ndiff += p1[i] != p2[i];
        n_checks++;
        if (!same) n_failed++;
        printf("  %-10s %zu params, losses %.6f %.6f %.6f: %s (%zu differ)\n", pe_name(pe), p1.size(), l1[0], l1[1],
               l1[2], same ? "bit-identical ok" : "DIFFERENT FAIL", ndiff);
    }
}

/* ------------------------------------------------------------------------------------------------ benchmark */

static void bench(void) {
    printf("\n== benchmark (not a test)\n");
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    int pes[3] = {PE_ROPE, PE_ROPEPP_EH, PE_ROPEPP_EC};
    int Ts[2] = {1024, 4096};
    for (int ti = 0; ti < 2; ti++)
        for (int pi = 0; pi < 3; pi++) {
            int pe = pes[pi], B = 4, T = Ts[ti], H = 8, KV = 4, HD = 128;
            PeTables P;
            pe_build(&P, pe, HD, H, KV, T, 0.0, NOISE_NONE, 0);
            int HQ = P.HQ, KVH = P.KVH, NA = P.NA;
            size_t QKV = (size_t)(HQ + 2 * KVH) * HD, N = (size_t)B * T;
            std::vector<float> qkv = randn(N * QKV, 1.0), dout = randn(N * NA * HD, 1.0);
            floatX *d_qkv = up_x(qkv), *d_dout = up_x(dout), *d_out = alloc_x(N * NA * HD), *d_qr = alloc_x(N * NA * HD),
                   *d_kr = alloc_x(N * KVH * HD), *d_dqkv = alloc_x(N * QKV);
            float *d_stats = (float *)backend_malloc(attention_softmax_saved_size(B, T, NA) * 4);
            float tf = 0, tb = 0;
            int reps = 5;
            for (int it = 0; it < reps + 1; it++) {
                cudaEventRecord(e0);
                attention_forward(d_out, d_qr, d_kr, d_stats, d_qkv, &P.d, B, T, HQ, KVH, HD);
                cudaEventRecord(e1);
                cudaEventSynchronize(e1);
                float ms;
                cudaEventElapsedTime(&ms, e0, e1);
                if (it > 0) tf += ms;
                cudaEventRecord(e0);
                attention_backward(d_dqkv, d_dout, d_qr, d_kr, d_stats, d_qkv, d_out, &P.d, B, T, HQ, KVH, HD);
                cudaEventRecord(e1);
                cudaEventSynchronize(e1);
                cudaEventElapsedTime(&ms, e0, e1);
                if (it > 0) tb += ms;
            }
            tf /= reps; tb /= reps;
            double flops = 4.0 * B * NA * HD * (double)T * T / 2.0;   /* causal: QK^T and PV */
            printf("  attention %-10s B%d T%d NA%d KVH%d HD%d: fwd %7.3f ms (%5.1f TFLOP/s)  bwd %7.3f ms (%5.1f TFLOP/s, 2.5x fwd flops)\n",
                   pe_name(pe), B, T, NA, KVH, HD, tf, flops / tf * 1e-9, tb, 2.5 * flops / tb * 1e-9);
            /* decoding: one new token at the end of a T-long cache */
            size_t nc = (size_t)B * T * KVH * HD;
            floatX *d_kc = alloc_x(nc), *d_vc = alloc_x(nc), *d_o1 = alloc_x((size_t)B * NA * HD);
            float td = 0;
            for (int it = 0; it < 11; it++) {
                cudaEventRecord(e0);
                attention_cached_forward(d_o1, d_kc, d_vc, d_qkv, &P.d, T - 1, NULL, B, 1, T, HQ, KVH, HD);
                cudaEventRecord(e1);
                cudaEventSynchronize(e1);
                float ms;
                cudaEventElapsedTime(&ms, e0, e1);
                if (it > 0) td += ms;
            }
            td /= 10;
            printf("  decode    %-10s B%d at position %d: %7.3f ms per token per layer (KV cache %.1f MB per layer)\n",
                   pe_name(pe), B, T - 1, td, 2.0 * nc * sizeof(floatX) / 1e6);
            backend_free(d_qkv); backend_free(d_dout); backend_free(d_out); backend_free(d_qr); backend_free(d_kr);
            backend_free(d_dqkv); backend_free(d_stats); backend_free(d_kc); backend_free(d_vc); backend_free(d_o1);
            pe_free(&P);
        }
    /* a whole training step at the paper's 376M shape (seq 1024 to keep it short) */
    for (int pi = 0; pi < 3; pi++) {
        Config c = config_default();
        c.vocab_size = 50304; c.dim = 1024; c.n_layers = 8; c.n_heads = 8; c.n_kv_heads = 4; c.ffn_dim = 3584;
        c.pe = pes[pi]; c.train_seq = 4096;
        int B = 8, T = 1024;
        std::vector<int> inp((size_t)B * T), tg((size_t)B * T);
        for (size_t i = 0; i < inp.size(); i++) { inp[i] = (int)(rng_u64(&g_rng) % 50304); tg[i] = (int)(rng_u64(&g_rng) % 50304); }
        Model m;
        model_init(&m, &c, INIT_TORCH_DEFAULT, 1);
        float tot = 0;
        int reps = 3;
        for (int it = 0; it < reps + 1; it++) {
            cudaEventRecord(e0);
            model_forward(&m, inp.data(), tg.data(), B, T);
            model_zero_grad(&m);
            model_backward(&m);
            model_update(&m, 1e-4, 0.95, 0.99, 1e-8, 0.1, 0.0);
            cudaEventRecord(e1);
            cudaEventSynchronize(e1);
            float ms;
            cudaEventElapsedTime(&ms, e0, e1);
            if (it > 0) tot += ms;
        }
        tot /= reps;
        printf("  train step %-10s 376M shape (%zu params) B%d T%d: %8.1f ms, %8.0f tokens/s\n", pe_name(pes[pi]),
               m.num_params, B, T, tot, B * T / (tot * 1e-3));
        model_free(&m);
    }
}

/* ------------------------------------------------------------------------------------------------ main */

int main(int argc, char **argv) {
    const char *fixdir = "tests/fixtures";
    bool do_bench = false, do_fix = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--fixtures") && i + 1 < argc) fixdir = argv[++i];
        else if (!strcmp(argv[i], "--no-fixtures")) do_fix = false;
        else if (!strcmp(argv[i], "--bench")) do_bench = true;
        else if (!strcmp(argv[i], "--bench-only")) {   /* the benchmark alone (no checks) */
            bench();
            return 0;
        }
        else if (!strcmp(argv[i], "--quick")) { g_quick = true; do_fix = false; }
        else {
            fprintf(stderr, "usage: %s [--fixtures DIR] [--no-fixtures] [--bench] [--bench-only] [--quick]\n", argv[0]);
            return 2;
        }
    }
    printf("test_gpu: %s, activations %s; CPU reference: the header's float ops\n", backend_name(),
           IS_FP32 ? "fp32" : "bf16");
    printf("tolerances are max |gpu - ref| / max |ref|; bf16 unit roundoff u = 2^-8 = %.2e\n", U);
    test_simple_ops();
    test_attention();
    if (do_fix) {
        printf("\n== the GPU model against the PyTorch float64 fixtures (%s)\n", fixdir);
        for (int pe = 0; pe < PE_COUNT; pe++) test_fixture(fixdir, pe);
    }
    if (!g_quick) test_determinism();
    printf("\n== worst rel error per position embedding (%s)\n", IS_FP32 ? "fp32" : "bf16");
    printf("  %-10s %12s %12s %12s %12s %12s\n", "pe", "ops fwd", "ops bwd", "model fwd", "model grads", "10 steps");
    for (int pe = 0; pe < PE_COUNT; pe++)
        printf("  %-10s %12.3e %12.3e %12.3e %12.3e %12.3e\n", pe_name(pe), pe_worst[pe][0], pe_worst[pe][1],
               pe_worst[pe][2], pe_worst[pe][3], pe_worst[pe][4]);
    if (do_bench) bench();
    printf("\n%s: %d of %d checks failed\n", n_failed ? "FAIL" : "PASS", n_failed, n_checks);
    return n_failed ? 1 : 0;
}
