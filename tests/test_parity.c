/*
test_parity — the C model against the independent PyTorch float64 reference (ref/), tensor by tensor, for
each of the 7 position embeddings: logits, loss, every parameter gradient, and the losses and learning rates of
10 AdamW steps with a schedule. Fixtures: tests/fixtures/<pe>.{ckpt,fix} (docs/FORMATS.md), written by
`make fixtures` (needs torch); this test needs no Python.

Build/run: make test   (tests/test_parity is the double build, tests/test_parity_float the float build)

Tolerances, relative to the largest |value| of each reference tensor:
  double build: 1e-10 — the same float64 arithmetic in another order; measured ~1e-14 to 1e-12.
  float build:  1e-5 for logits, loss and gradients (float32 rounding 6e-8 through tens of ops), and for
                the 10 step losses: AdamW divides by sqrt(v), so float noise in small gradients moves
                their updates and the losses drift apart a little with every step (measured < 1e-6).
*/
#define ROPEPP_IMPLEMENTATION
#include "ropepp.h"
#include "testutil.h"

#define FIX_MAGIC 20251208

static const char *fixture_dir = "tests/fixtures";

static int read_exact(FILE *fp, void *dst, size_t bytes) { return fread(dst, 1, bytes, fp) == bytes; }

static void parity(int pe) {
    const int is_double = sizeof(real) == 8;
    const double tol = is_double ? 1e-10 : 1e-5, tol_steps = is_double ? 1e-10 : 1e-5;
    char path[512], err[512];
    snprintf(path, sizeof(path), "%s/%s.ckpt", fixture_dir, pe_name(pe));
    Config c;
    double *params;
    size_t np;
    if (checkpoint_read(path, &c, &params, &np, err, sizeof(err)) != 0) { check(0, "%s: %s", pe_name(pe), err); return; }
    check(c.pe == pe, "%-9s fixture checkpoint names position embedding %s", pe_name(pe), pe_name(c.pe));
    Model m;
    model_init_from(&m, &c, params);
    free(params);

    snprintf(path, sizeof(path), "%s/%s.fix", fixture_dir, pe_name(pe));
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) { check(0, "%s: cannot open %s", pe_name(pe), path); model_free(&m); return; }
    int32_t h[256];
    int ok = read_exact(fp, h, sizeof(h)) && h[0] == FIX_MAGIC && h[1] == 1;
    int B = h[2], T = h[3], V = h[4], n_steps = h[5], sched = h[6], W = h[7], N = h[8], D = h[9];
    int64_t nparams;
    memcpy(&nparams, h + 10, 8);
    double hp[6];
    memcpy(hp, h + 32, sizeof(hp));   /* lr, beta1, beta2, eps, weight decay, clip */
    ok = ok && B > 0 && T > 0 && V == c.vocab_size && n_steps >= 0 && n_steps <= 1000 && nparams == (int64_t)m.num_params;
    if (!ok) { check(0, "%s: fixture header is invalid or does not match its checkpoint", pe_name(pe)); fclose(fp); model_free(&m); return; }
    size_t BT = (size_t)B * T;
    int *inp = (int *)mallocCheck(BT * sizeof(int)), *tgt = (int *)mallocCheck(BT * sizeof(int));
    double *logits = (double *)mallocCheck(BT * V * sizeof(double)), loss_ref;
    double *grads = (double *)mallocCheck(m.num_params * sizeof(double));
    double *steps = (double *)mallocCheck((n_steps + 1) * sizeof(double)), *lrs = (double *)mallocCheck((n_steps + 1) * sizeof(double));
    ok = read_exact(fp, inp, BT * sizeof(int)) && read_exact(fp, tgt, BT * sizeof(int)) &&
         read_exact(fp, logits, BT * V * sizeof(double)) && read_exact(fp, &loss_ref, sizeof(double)) &&
         read_exact(fp, grads, m.num_params * sizeof(double)) && read_exact(fp, steps, n_steps * sizeof(double)) &&
         read_exact(fp, lrs, n_steps * sizeof(double));
    fclose(fp);
    if (!ok) { check(0, "%s: fixture %s is truncated", pe_name(pe), path); goto done; }

    /* forward: logits and loss */
    double loss = model_forward(&m, inp, tgt, B, T);
    double *lg = (double *)mallocCheck(BT * V * sizeof(double));
    for (size_t i = 0; i < BT * V; i++) lg[i] = m.acts.logits[i];   /* CPU backend: host memory */
    double mabs, rel = rel_err(lg, logits, BT * V, &mabs);
    check(rel < tol, "%-9s logits      rel %.1e  max abs %.1e", pe_name(pe), rel, mabs);
    check(fabs(loss - loss_ref) / fabs(loss_ref) < tol, "%-9s loss        rel %.1e  (C %.10f, torch %.10f)", pe_name(pe), fabs(loss - loss_ref) / fabs(loss_ref), loss, loss_ref);
    free(lg);

    /* backward: every parameter gradient */
    model_zero_grad(&m);
    model_backward(&m);
    double *g = (double *)mallocCheck(m.num_params * sizeof(double));
    model_grads_to_host(&m, g);
    size_t off = 0;
    for (int t = 0; t < NUM_PARAM_TENSORS; t++) {
        size_t n = m.param_sizes[t];
        if (n > 0) {
            rel = rel_err(g + off, grads + off, n, &mabs);
            check(rel < tol || (mabs == 0.0), "%-9s d%-10s rel %.1e  max abs %.1e", pe_name(pe), param_names[t], rel, mabs);
        }
        off += n;
    }
    free(g);

    /* 10 AdamW steps on the same batch */
    double worst = 0.0, worst_lr = 0.0, last = 0.0;
    for (int k = 0; k < n_steps; k++) {
        double lk = model_forward(&m, inp, tgt, B, T);
        last = lk;
        model_zero_grad(&m);
        model_backward(&m);
        double lr = hp[0] * lr_lambda(sched, k, W, N, D);
        model_update(&m, lr, hp[1], hp[2], hp[3], hp[4], hp[5]);
        worst = fmax(worst, fabs(lk - steps[k]) / fabs(steps[k]));
        worst_lr = fmax(worst_lr, fabs(lr - lrs[k]));
    }
    check(worst_lr < 1e-15, "%-9s %d-step lr schedule (%s) max abs %.1e", pe_name(pe), n_steps, schedule_name(sched), worst_lr);
    check(worst < tol_steps, "%-9s %d AdamW step losses  rel %.1e  (last C %.8f, torch %.8f)", pe_name(pe), n_steps, worst,
          last, n_steps > 0 ? steps[n_steps - 1] : 0.0);
done:
    free(inp); free(tgt); free(logits); free(grads); free(steps); free(lrs);
    model_free(&m);
}

int main(int argc, char **argv) {
    if (argc > 1) fixture_dir = argv[1];
    printf("test_parity (%s): C vs PyTorch float64 fixtures in %s\n", sizeof(real) == 8 ? "double" : "float", fixture_dir);
    for (int pe = 0; pe < PE_COUNT; pe++) parity(pe);
    return tu_finish(sizeof(real) == 8 ? "test_parity" : "test_parity_float");
}
