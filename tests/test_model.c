/*
test_model — whole-model checks for each of the 7 position embeddings on a tiny config
(V 11, C 16, L 2, H 4, KV 2, F 24, B 2, T 7).

Build/run: make test (runs both builds, double first)
  tests/test_model        (-DROPEPP_DOUBLE) gradient of the mean loss with respect to every trainable parameter
                          against central differences, per tensor; writes tests/tmp/model_ref_<pe>.bin
  tests/test_model_float  (float) loss and gradients against the double build's file, and determinism

Thresholds. Double: 1e-6 relative to the largest numeric gradient of the tensor (see test_ops.c for why; a
correct model lands near 1e-9). Float vs double: 1e-6 on the loss and 1e-5 relative per gradient tensor:
float32 rounds at 6e-8 relative and the longest chain (logits <- 2 layers of attention and MLP <- embedding)
goes through some tens of roundings that partly cancel; measured: loss ~5e-8, gradients ~4e-7. A wrong
formula anywhere gives errors of order 1.
Also: weight decay skips the RMSNorm weights and FoPE's coefficients stay frozen; two runs are bit-identical;
model_forward_loss (the chunked classifier of training) matches model_forward + model_backward: bit for bit with the
plain matmul loops, within 1e-14 (double) / 1e-6 (float) of the largest gradient with BLAS (another association).
*/
#define ROPEPP_IMPLEMENTATION
#include "ropepp.h"
#include "testutil.h"
#include <sys/stat.h>

enum { V = 11, B = 2, T = 7 };

static Config tiny_config(int pe) {
    Config c = config_default();
    c.vocab_size = V; c.dim = 16; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.ffn_dim = 24;
    c.pe = pe; c.train_seq = T; c.rotary_frac = 0.5;
    /* scaling options ride along on the rotary variants so that each is exercised end to end */
    if (pe == PE_ROPE) { c.yarn_factor = 4.0; c.yarn_orig_len = 16; }
    if (pe == PE_ROPEPP_EH) c.ntk_factor = 3.0;
    if (pe == PE_ROPEPP_EC) c.pi_factor = 2.0;
    return c;
}

static void tiny_batch(int *inp, int *tgt) {
    for (int i = 0; i < B * T; i++) { inp[i] = (i * 7 + 3) % V; tgt[i] = (i * 5 + 1) % V; }
    tgt[4] = -1;   /* one ignored target */
}

/* The tiny model of a position embedding, one forward + backward on the tiny batch: returns the loss, *g the
   gradients (malloc'd, num_params) */
static double tiny_forward_backward(Model *m, int pe, int *inp, int *tgt, double **g) {
    Config c = tiny_config(pe);
    model_init(m, &c, INIT_TORCH_DEFAULT, 1000 + pe);
    tiny_batch(inp, tgt);
    double loss = model_forward(m, inp, tgt, B, T);
    model_zero_grad(m);
    model_backward(m);
    *g = (double *)mallocCheck(m->num_params * sizeof(double));
    model_grads_to_host(m, *g);
    return loss;
}

#ifdef ROPEPP_DOUBLE
static void grad_check(int pe) {
    Model m;
    int inp[B * T], tgt[B * T];
    double *g;
    double loss = tiny_forward_backward(&m, pe, inp, tgt, &g);
    /* reference file for the float build */
    mkdir("tests/tmp", 0755);
    char path[256];
    snprintf(path, sizeof(path), "tests/tmp/model_ref_%s.bin", pe_name(pe));
    FILE *fp = fopenCheck(path, "wb");
    fwriteCheck(&loss, sizeof(double), 1, fp);
    fwriteCheck(g, sizeof(double), m.num_params, fp);
    fcloseCheck(fp);

    const double h = 1e-5;
    double worst = 0.0;
    size_t off = 0;
    for (int t = 0; t < NUM_PARAM_TENSORS; t++) {
        size_t n = m.param_sizes[t];
        if (n == 0) continue;
        if (t == P_FOPE_COS || t == P_FOPE_SIN) {   /* frozen: no gradient */
            double mx = 0.0;
            for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(g[off + i]));
            check(mx == 0.0, "%-9s %-8s frozen: zero gradient", pe_name(pe), param_names[t]);
            off += n;
            continue;
        }
        double *num = (double *)mallocCheck(n * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            real *p = m.params_memory + off + i, save = *p;
            *p = save + h;
            double lp = model_forward(&m, inp, tgt, B, T);
            *p = save - h;
            double lm = model_forward(&m, inp, tgt, B, T);
            *p = save;
            num[i] = (lp - lm) / (2 * h);
        }
        double mabs, rel = rel_err(g + off, num, n, &mabs);
        worst = fmax(worst, rel);
        check(rel < 1e-6, "%-9s %-8s rel err %.2e (max abs %.1e, %zu params)", pe_name(pe), param_names[t], rel, mabs, n);
        free(num);
        off += n;
    }
    printf("# %s: loss %.6f, worst gradient error %.2e over %zu parameters\n", pe_name(pe), loss, worst, m.num_params);
    free(g);
    model_free(&m);
}
#else
static void float_vs_double(int pe) {
    Model m;
    int inp[B * T], tgt[B * T];
    double *g;
    double loss = tiny_forward_backward(&m, pe, inp, tgt, &g);
    double *ref = (double *)mallocCheck(m.num_params * sizeof(double));
    char path[256];
    snprintf(path, sizeof(path), "tests/tmp/model_ref_%s.bin", pe_name(pe));
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) { check(0, "%s: reference %s missing (run tests/test_model first)", pe_name(pe), path); free(g); free(ref); model_free(&m); return; }
    double ref_loss;
    freadCheck(&ref_loss, sizeof(double), 1, fp);
    freadCheck(ref, sizeof(double), m.num_params, fp);
    fclose(fp);
    check(fabs(loss - ref_loss) / ref_loss < 1e-6, "%-9s loss float %.7f vs double %.7f", pe_name(pe), loss, ref_loss);
    size_t off = 0;
    double worst = 0.0;
    for (int t = 0; t < NUM_PARAM_TENSORS; t++) {
        size_t n = m.param_sizes[t];
        if (n > 0 && t != P_FOPE_COS && t != P_FOPE_SIN) worst = fmax(worst, rel_err(g + off, ref + off, n, NULL));
        off += n;
    }
    check(worst < 1e-5, "%-9s gradients float vs double: worst tensor rel err %.2e", pe_name(pe), worst);
    /* determinism: a second forward + backward gives the same bits */
    double loss2 = model_forward(&m, inp, tgt, B, T);
    model_zero_grad(&m);
    model_backward(&m);
    double *g2 = (double *)mallocCheck(m.num_params * sizeof(double));
    model_grads_to_host(&m, g2);
    check(loss2 == loss && memcmp(g, g2, m.num_params * sizeof(double)) == 0, "%-9s forward + backward is bit-for-bit repeatable", pe_name(pe));
    free(g); free(g2); free(ref);
    model_free(&m);
}
#endif

/* Weight decay skips the RMSNorm weights; FoPE coefficients are frozen; with zero gradients AdamW is a pure
   decay p *= 1 - lr * wd on everything else. */
static void test_decay_groups(void) {
    Config c = tiny_config(PE_FOPE);
    Model m;
    model_init(&m, &c, INIT_TORCH_DEFAULT, 7);
    double *before = (double *)mallocCheck(m.num_params * sizeof(double)), *after = (double *)mallocCheck(m.num_params * sizeof(double));
    model_params_to_host(&m, before);
    model_zero_grad(&m);
    model_update(&m, 0.1, 0.95, 0.99, 1e-8, 0.5, 0.0);
    model_params_to_host(&m, after);
    size_t off = 0;
    for (int t = 0; t < NUM_PARAM_TENSORS; t++) {
        double want = (t == P_LN1W || t == P_LN2W || t == P_LNFW || t == P_FOPE_COS || t == P_FOPE_SIN) ? 1.0 : 0.95, e = 0.0;
        for (size_t i = 0; i < m.param_sizes[t]; i++) e = fmax(e, fabs(after[off + i] - want * before[off + i]));
        check(e < 1e-6, "zero-gradient AdamW step scales %-8s by %.2f (max abs err %.1e)", param_names[t], want, e);
        off += m.param_sizes[t];
    }
    free(before); free(after);
    model_free(&m);
}

/* model_attention_probs recomputes the probabilities on the host from the saved rotated q and k; the readable
   attention op (attention_core_forward) computes them from the same q, k, v: the two must agree (float output:
   1e-6), and so must that op's output and the layer's saved attention output (the model's blocked attention,
   float: 1e-5 relative, double: 1e-12). */
static void test_attention_probs(int pe) {
    Config c = tiny_config(pe);
    Model m;
    model_init(&m, &c, INIT_TORCH_DEFAULT, 1000 + pe);
    int inp[B * T], tgt[B * T];
    tiny_batch(inp, tgt);
    model_forward(&m, inp, tgt, B, T);
    int NA = m.d.NA, KVH = m.d.KVH, HD = m.d.HD, QKV = m.d.QKV, HQ = m.d.HQ;
    size_t n = (size_t)B * NA * T * T, no = (size_t)B * T * NA * HD;
    float *p = (float *)mallocCheck(n * sizeof(float));
    real *att = alloc_real(n), *out = alloc_real(no);
    double e = 0.0, eo = 0.0, omax = 0.0;
    for (int l = 0; l < c.n_layers; l++) {
        LayerActs la = layer_acts(&m, l);
        model_attention_probs(&m, l, 0, T, p);
        attention_core_forward(out, att, la.qr, la.kr, la.qkv + (size_t)(HQ + KVH) * HD, (size_t)QKV, m.pe_alibi,
                               B, T, NA, KVH, HD);
        for (size_t i = 0; i < n; i++) e = fmax(e, fabs((double)p[i] - (double)att[i]));
        for (size_t i = 0; i < no; i++) { eo = fmax(eo, fabs((double)out[i] - (double)la.atty[i])); omax = fmax(omax, fabs((double)out[i])); }
    }
    check(e < 1e-6, "%-9s attention probabilities recomputed on the host = attention_core_forward's (max abs %.1e)", pe_name(pe), e);
    /* a row range: rows [t0, t1) of every (b, head) as the whole call gives them (p holds the last layer's), the
       other rows untouched */
    float *p2 = (float *)mallocCheck(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p2[i] = -7.0f;
    int t0 = T / 2, t1 = T / 2 + 2, rows_ok = 1;
    model_attention_probs(&m, c.n_layers - 1, t0, t1, p2);
    for (size_t i = 0; i < n; i++) {
        int t = (int)(i / T % T);
        rows_ok &= t >= t0 && t < t1 ? p2[i] == p[i] : p2[i] == -7.0f;
    }
    check(rows_ok, "%-9s attention probabilities of rows [%d, %d) alone: those rows as the whole call's, the others untouched", pe_name(pe), t0, t1);
    free(p2);
    check(eo <= (sizeof(real) == 8 ? 1e-12 : 1e-5) * omax, "%-9s the model's attention output = attention_core_forward's (max abs %.1e)", pe_name(pe), eo);
    free(p); free(att); free(out);
    model_free(&m);
}

/* model_forward_loss (the training path: classifier + cross-entropy in chunks of rows, their backward in the same
   pass) gives the same loss and gradients as model_forward + model_backward, bit for bit on the CPU with the plain
   matmul loops (each row's sums and each weight gradient's row order are the same), and never allocates the (B, T, V) logits */
static void test_forward_loss(int pe) {
    Config c = tiny_config(pe);
    int inp[B * T], tgt[B * T];
    tiny_batch(inp, tgt);
    Model m;
    model_init(&m, &c, INIT_TORCH_DEFAULT, 2000 + pe);
    m.head_rows = 3;   /* 14 rows: chunks of 3, 3, 3, 3, 2 */
    double l0 = model_forward_loss(&m, inp, tgt, B, T, 0);
    check(m.acts.logits == NULL, "%-9s model_forward_loss holds no (B, T, V) logits", pe_name(pe));
    model_zero_grad(&m);
    double l1 = model_forward_loss(&m, inp, tgt, B, T, 1);
    model_backward(&m);
    double *g1 = (double *)mallocCheck(m.num_params * sizeof(double));
    model_grads_to_host(&m, g1);
    double l2 = model_forward(&m, inp, tgt, B, T);
    model_zero_grad(&m);
    model_backward(&m);
    double *g2 = (double *)mallocCheck(m.num_params * sizeof(double));
    model_grads_to_host(&m, g2);
#ifdef ROPEPP_BLAS
    /* BLAS may block a 3-row product differently from a 14-row one (its kernels pick the blocking by size), so each
       logit is a dot product of C terms associated differently: a few roundings of each of the 14 x V logits, far
       under 1e-13 relative in double (1e-5 in float) after the mean. Without BLAS the loops are the same: bit-exact. */
    double lerr = fmax(fabs(l0 - l2), fabs(l1 - l2));
    check(lerr <= (sizeof(real) == 8 ? 1e-13 : 1e-5) * fabs(l2), "%-9s model_forward_loss loss = model_forward's (%.17g; BLAS: diff %.1e)",
          pe_name(pe), l2, lerr);
#else
    check(l0 == l2 && l1 == l2, "%-9s model_forward_loss loss = model_forward's (%.17g)", pe_name(pe), l2);
#endif
#ifdef ROPEPP_BLAS
    /* with BLAS each chunk's classifier weight gradient is summed over its rows before it is added (beta 1), where
       the loops add row by row: the same sum associated differently, so a few roundings apart. Relative to the
       largest gradient: 14 rows of rounding (measured 2e-16 and 2e-7), bound 1e-14 in double, 1e-6 in float. */
    double e = 0.0, gmax = 0.0;
    for (size_t i = 0; i < m.num_params; i++) { e = fmax(e, fabs(g1[i] - g2[i])); gmax = fmax(gmax, fabs(g2[i])); }
    check(e <= (sizeof(real) == 8 ? 1e-14 : 1e-6) * gmax,
          "%-9s model_forward_loss (5 classifier chunks) + model_backward gradients = model_forward + model_backward's "
          "(BLAS: max abs diff %.1e, %.1e of the largest)", pe_name(pe), e, e / gmax);
#else
    check(memcmp(g1, g2, m.num_params * sizeof(double)) == 0,
          "%-9s model_forward_loss (5 classifier chunks) + model_backward gradients = model_forward + model_backward's", pe_name(pe));
#endif
    free(g1); free(g2);
    model_free(&m);
}

/* YaRN's frequencies as a model loaded from a checkpoint uses them (its cos/sin table at position 1, divided by the
   mscale 0.1 ln s + 1): weights trained at L0 continued at 4 L0 with --yarn-factor 4 store yarn_orig_len L0, and
   the table follows YaRN with L0, not train_seq. Expected values: numpy, theta_j = base^(-2j/HD),
   r = L0 theta / (2 pi), g = clip((r - 1) / 31, 0, 1), theta' = (1 - g) theta / s + g theta (docs/MATH.md). */
static void test_yarn_frequencies(void) {
    struct { double base; int hd, l0, seq; double want[8]; } cases[] = {
        /* issue 32's case: base 100, head_dim 8, 64 -> 256 (with train_seq 256 instead: 1, .170, .0324, .00813) */
        {100.0, 8, 64, 256, {0.47223991188422504, 0.09604961577286979, 0.02504497976400354, 0.00790569415042095}},
        /* test_cli's case: base 10000, head_dim 16, 16 -> 64 */
        {10000.0, 16, 16, 64, {2.8741481668073365e-01, 7.9056941504209485e-02, 2.5000000000000001e-02, 7.9056941504209478e-03,
                               2.5000000000000001e-03, 7.9056941504209485e-04, 2.5000000000000001e-04, 7.9056941504209485e-05}},
    };
    for (int k = 0; k < 2; k++) {
        Config c = config_default();
        c.vocab_size = V; c.n_heads = 2; c.n_kv_heads = 2; c.dim = 2 * cases[k].hd; c.n_layers = 1; c.ffn_dim = 8;
        c.pe = PE_ROPE; c.rope_base = cases[k].base; c.train_seq = cases[k].seq; c.yarn_orig_len = cases[k].l0; c.yarn_factor = 4.0;
        Model m;
        model_init(&m, &c, INIT_TORCH_DEFAULT, 1);
        char path[256], err[512] = "";
        mkdir("tests/tmp", 0755);
        snprintf(path, sizeof(path), "tests/tmp/test_model_yarn_%d.ckpt", (int)getpid());
        Model r;
        int ok = model_save(&m, path, err, sizeof(err)) == 0 && model_load(&r, path, err, sizeof(err)) == 0;
        remove(path);
        if (ok) model_prepare(&r, 1, 2, 2);   /* builds the cos/sin table */
        double worst = ok ? 0.0 : 1.0, mscale = 0.1 * log(4.0) + 1.0;
        int half = cases[k].hd / 2;
        for (int j = 0; ok && j < half; j++) {
            double cs = (double)r.pe_cos[half + j] / mscale, sn = (double)r.pe_sin[half + j] / mscale;
            double e = fabs(atan2(sn, cs) - cases[k].want[j]) / cases[k].want[j];
            if (e > worst) worst = e;
        }
        check(ok && r.cfg.yarn_orig_len == cases[k].l0 && worst < (sizeof(real) == 8 ? 1e-12 : 1e-5),
              "YaRN s 4, base %g, head_dim %d, trained at %d, now %d: the loaded model's frequencies match YaRN with L0 %d "
              "(max rel err %.1e) %s", cases[k].base, cases[k].hd, cases[k].l0, cases[k].seq, cases[k].l0, worst, err);
        if (ok) model_free(&r);
        model_free(&m);
    }
}

int main(void) {
#ifdef ROPEPP_DOUBLE
    printf("test_model (double): whole-model gradient checks, threshold 1e-6\n");
    for (int pe = 0; pe < PE_COUNT; pe++) grad_check(pe);
#else
    printf("test_model (float): against the double build, loss 1e-6 and gradients 1e-5 relative\n");
    for (int pe = 0; pe < PE_COUNT; pe++) float_vs_double(pe);
#endif
    for (int pe = 0; pe < PE_COUNT; pe++) test_attention_probs(pe);
    for (int pe = 0; pe < PE_COUNT; pe++) test_forward_loss(pe);
    test_decay_groups();
    test_yarn_frequencies();
    return tu_finish(sizeof(real) == 8 ? "test_model" : "test_model_float");
}
