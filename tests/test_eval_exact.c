/*
test_eval_exact.c — every evaluation that aggregates over tokens or samples counts each exactly once and says how
many: ./eval ppl (sliding window and per-length windows), ./eval patterns, ./eval tasks, ./eval noise and ./train's
validation loss are run as a user runs them on a tiny random model, and the counts and values they write are
compared with a brute-force computation done here, target by target, with the simplest code that defines it:
  - sliding window, window L, stride S: target p (the prediction of token p+1 from position p) belongs to window
    k = floor(p / S), which ends at e = min((k+1) S, N - 1) and starts at max(e - L, 0); its loss is the
    cross-entropy of the last logits row of a forward over the tokens [max(e - L, 0), p].
  - per-length windows of T: n = min(samples, floor((N - 1) / T)) windows, window k at slot floor(k W / n) of the
    W = floor((N - 1) / T) slots of T tokens: n * T targets, none twice.
  - patterns: the same windows; the mean query-key distance averaged over the queries t >= T/2 of every window.
  - tasks / noise at sigma 0: the samples regenerated from the seed in the CSV; a text sample is right when the
    argmax at every answer position is the next token, MQAR counts each query.
  - train's validation: the batches of B*T targets from the start of the shard, never wrapping around.
Plus the two cases of issue 13 §2 with the values computed there independently: a model trained by ./train
(--pe rope --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 192 --seq 64 --batch 16 --steps 300 --pi-factor 4)
scored on the first 100 tokens of the validation shard at stride 48 (99 targets, ppl 15.813) and on the whole
validation shard at stride 64 (111,538 targets, ppl 10.914). That model takes ~20-30 s to train on one core.
Tolerances: the programs run in float32 and write 6 decimals; the brute force sums float32 logits in double, so
the mean losses agree to ~1e-6 (2e-5 allowed); the issue's values are given to 3 decimals (±0.002 allowed; the
bug they catch moves them by 0.055 and 1.4).

Build: make tests/test_eval_exact (needs ./train and ./eval built); run from the repository root (make test).
*/
#define ROPEPP_IMPLEMENTATION
#define ROPEPP_TASKS_IMPLEMENTATION
#include "ropepp.h"
#include "data/tasks.h"
#include "testutil.h"
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

/* run a shell command with its output to dir/log; 0 on exit status 0 */
static int run(const char *cmd) {
    char full[8192];
    snprintf(full, sizeof(full), "%s > %s/log 2>&1", cmd, dir);
    int rc = system(full);
    if (rc != 0) {
        printf("# command failed: %s\n", cmd);
        snprintf(full, sizeof(full), "tail -5 %s/log | sed 's/^/#   /'", dir);
        if (system(full) != 0) printf("# (no log)\n");
    }
    return rc == 0;
}

/* The CSV row whose first columns equal `prefix` (e.g. "rope,none,16,sliding,"): its fields, split at commas.
   Returns the field count, 0 when no row matches. */
static int csv_row(const char *path, const char *prefix, char fields[][64], int max) {
    FILE *fp = fopen(path, "r");
    if (fp == NULL) return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), fp) != NULL) {
        if (strncmp(line, prefix, strlen(prefix)) != 0) continue;
        line[strcspn(line, "\r\n")] = '\0';
        for (char *tok = strtok(line, ","); tok != NULL && n < max; tok = strtok(NULL, ",")) snprintf(fields[n++], 64, "%s", tok);
        break;
    }
    fclose(fp);
    return n;
}

/* the column index of `name` in the CSV's header row, -1 when absent */
static int csv_col(const char *path, const char *name) {
    FILE *fp = fopen(path, "r");
    if (fp == NULL) return -1;
    char line[4096];
    int col = -1;
    if (fgets(line, sizeof(line), fp) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        int i = 0;
        for (char *tok = strtok(line, ","); tok != NULL; tok = strtok(NULL, ","), i++) if (strcmp(tok, name) == 0) { col = i; break; }
    }
    fclose(fp);
    return col;
}

/* cross-entropy (nats) of token `target` under the logits row (V), in double */
static double xent(const float *row, int V, int target) {
    double mx = row[0], s = 0.0;
    for (int v = 1; v < V; v++) if (row[v] > mx) mx = row[v];
    for (int v = 0; v < V; v++) s += exp((double)row[v] - mx);
    return log(s) + mx - (double)row[target];
}

/* loss of predicting tok[p + 1] from the context tok[begin .. p] (a fresh forward over just that context) */
static double target_loss(Model *m, const int *tok, size_t begin, size_t p, float *row) {
    model_forward(m, tok + begin, NULL, 1, (int)(p - begin + 1));
    model_logits_row(m, 0, (int)(p - begin), row);
    return xent(row, m->cfg.vocab_size, tok[p + 1]);
}

/* ----------------------------------------------------------------------------------------------- eval ppl */
/* The row of ./eval ppl's CSV (under out) whose band column is `band` at length T: its tokens, windows and loss.
   Returns 1 when the row and the three columns are there. */
static int ppl_row(const char *out, const Model *m, int T, const char *band, unsigned long long *tokens,
                   unsigned long long *windows, double *loss) {
    char csv[1024], f[16][64], prefix[64];
    snprintf(csv, sizeof(csv), "%s/ppl_%s.csv", out, pe_name(m->cfg.pe));
    snprintf(prefix, sizeof(prefix), "%s,none,%d,%s,", pe_name(m->cfg.pe), T, band);
    int nf = csv_row(csv, prefix, f, 16);
    int ci = csv_col(csv, "tokens"), li = csv_col(csv, "loss"), wi = csv_col(csv, "windows");
    if (nf == 0 || ci < 0 || li < 0 || wi < 0 || ci >= nf || li >= nf || wi >= nf) return 0;
    *tokens = strtoull(f[ci], NULL, 10);
    *windows = strtoull(f[wi], NULL, 10);
    *loss = atof(f[li]);
    return 1;
}

static void check_sliding(Model *m, const char *ck, const char *shard, const int *tok, size_t N, int L, int S, float *row) {
    char cmd[2048], out[512], label[128];
    snprintf(out, sizeof(out), "%s/ppl_s%d", dir, S);
    snprintf(cmd, sizeof(cmd), "./eval ppl --ckpt %s --data %s --lengths %d --samples 1 --scalings none --stride %d --out %s", ck, shard, L, S, out);
    snprintf(label, sizeof(label), "sliding window L %d stride %d over %zu targets", L, S, N - 1);
    if (!check(run(cmd), "%s: ./eval ppl runs", label)) return;
    unsigned long long tokens, windows;
    double got;
    if (!check(ppl_row(out, m, L, "sliding", &tokens, &windows, &got), "%s: the CSV has the sliding row with loss, tokens, windows", label)) return;
    double nll = 0.0;
    size_t count = 0;
    for (size_t p = 0; p + 1 < N; p++) {
        size_t k = p / (size_t)S, e = (k + 1) * (size_t)S < N - 1 ? (k + 1) * (size_t)S : N - 1;
        size_t begin = e > (size_t)L ? e - (size_t)L : 0;
        nll += target_loss(m, tok, begin, p, row);
        count++;
    }
    size_t want_windows = (N - 1 + (size_t)S - 1) / (size_t)S;
    check(tokens == count, "%s: %llu targets scored (brute force: %zu, each once)", label, tokens, count);
    check(windows == want_windows, "%s: %llu windows (ceil(%zu / %d) = %zu)", label, windows, N - 1, S, want_windows);
    double want = nll / (double)count;
    check(fabs(got - want) < 2e-5, "%s: mean loss %.6f = brute force %.6f", label, got, want);
}

static void check_lengths(Model *m, const char *ck, const char *shard, const int *tok, size_t N, int T, int samples, float *row) {
    char cmd[2048], out[512], label[128];
    snprintf(out, sizeof(out), "%s/ppl_len", dir);
    snprintf(cmd, sizeof(cmd), "./eval ppl --ckpt %s --data %s --lengths %d --samples %d --scalings none --out %s", ck, shard, T, samples, out);
    snprintf(label, sizeof(label), "ppl at length %d, %d samples asked, %zu targets", T, samples, N - 1);
    if (!check(run(cmd), "%s: ./eval ppl runs", label)) return;
    unsigned long long tokens, windows;
    double got;
    if (!check(ppl_row(out, m, T, "all", &tokens, &windows, &got), "%s: the CSV has the row with loss, tokens, windows", label)) return;
    size_t W = (N - 1) / (size_t)T, n = (size_t)samples < W ? (size_t)samples : W;
    double nll = 0.0;
    size_t count = 0;
    unsigned char *seen = (unsigned char *)calloc(N, 1);
    int twice = 0;
    for (size_t k = 0; k < n; k++) {
        size_t start = (k * W / n) * (size_t)T;
        for (size_t p = start; p < start + (size_t)T; p++) {
            nll += target_loss(m, tok, start, p, row);
            count++;
            twice |= seen[p];
            seen[p] = 1;
        }
    }
    free(seen);
    check(!twice, "%s: the brute-force windows share no target", label);
    check(windows == n, "%s: %llu windows (min(%d, %zu))", label, windows, samples, W);
    check(tokens == count, "%s: %llu targets scored (brute force %zu)", label, tokens, count);
    double want = nll / (double)count;
    check(fabs(got - want) < 2e-5, "%s: mean loss %.6f = brute force %.6f", label, got, want);
}

/* ------------------------------------------------------------------------------------------ eval patterns */
static void check_patterns(Model *m, const char *ck, const char *shard, const int *tok, size_t N, int T, int samples) {
    char cmd[2048], csv[1024], out[512], label[128];
    snprintf(out, sizeof(out), "%s/pat", dir);
    snprintf(cmd, sizeof(cmd), "./eval patterns --ckpt %s --data %s --seq %d --samples %d --out %s", ck, shard, T, samples, out);
    snprintf(label, sizeof(label), "patterns at T %d, %d samples asked", T, samples);
    if (!check(run(cmd), "%s: ./eval patterns runs", label)) return;
    snprintf(csv, sizeof(csv), "%s/patterns_%s.csv", out, pe_name(m->cfg.pe));
    int wi = csv_col(csv, "windows"), qi = csv_col(csv, "queries"), di = csv_col(csv, "mean_distance");
    if (!check(wi >= 0 && qi >= 0 && di >= 0, "%s: the CSV has windows, queries, mean_distance", label)) return;
    size_t W = (N - 1) / (size_t)T, n = (size_t)samples < W ? (size_t)samples : W;
    int NA = m->d.NA;
    float *p = (float *)mallocCheck((size_t)NA * T * T * sizeof(float));
    double *meand = (double *)calloc((size_t)NA, sizeof(double));
    size_t nq = 0;
    for (size_t k = 0; k < n; k++) {
        size_t start = (k * W / n) * (size_t)T;
        model_forward(m, tok + start, NULL, 1, T);
        model_attention_probs(m, 0, 0, m->T, p);
        for (int a = 0; a < NA; a++)
            for (int t = T / 2; t < T; t++)
                for (int j = 0; j <= t; j++) meand[a] += p[((size_t)a * T + t) * T + j] * (double)(t - j);
        nq += (size_t)(T - T / 2);
    }
    for (int a = 0; a < NA; a++) {
        char f[64][64], prefix[64];
        snprintf(prefix, sizeof(prefix), "%s,0,%d,", pe_name(m->cfg.pe), a);
        int nf = csv_row(csv, prefix, f, 64);
        if (!check(nf > di, "%s: layer 0 head %d has a row", label, a)) continue;
        check(strtoull(f[wi], NULL, 10) == n && strtoull(f[qi], NULL, 10) == nq,
              "%s, head %d: %s windows, %s queries (brute force %zu, %zu)", label, a, f[wi], f[qi], n, nq);
        check(fabs(atof(f[di]) - meand[a] / nq) < 2e-5, "%s, head %d: mean distance %s = brute force %.6f", label, a, f[di], meand[a] / nq);
    }
    free(p);
    free(meand);
}

/* ----------------------------------------------------------------------------------------- tasks and noise */
/* Right and scored counts of `samples` samples generated from `seed`, as eval defines them (see the top). */
static void brute_task(Model *m, int task, int T, int samples, uint64_t seed, long long *right, long long *scored) {
    TaskOptions to = task_options_default();
    to.mqar_vocab = m->cfg.vocab_size;
    TaskSample s;
    task_sample_alloc(&s, T);
    Rng rng = {seed};
    char err[512];
    int V = m->cfg.vocab_size;
    float *row = (float *)mallocCheck((size_t)V * sizeof(float));
    *right = 0;
    *scored = 0;
    for (int i = 0; i < samples; i++) {
        if (task_generate(&s, task, T, &to, &rng, err, sizeof(err)) != 0) { printf("# %s\n", err); break; }
        model_forward(m, s.tokens, NULL, 1, T);
        int all = 1;
        for (int j = 0; j < s.n_score; j++) {
            int t = s.score_pos[j], best = 0;
            model_logits_row(m, 0, t, row);
            for (int v = 1; v < V; v++) if (row[v] > row[best]) best = v;
            int ok = best == s.tokens[t + 1];
            all &= ok;
            if (task == TASK_MQAR) { *right += ok; (*scored)++; }
        }
        if (task != TASK_MQAR) { *right += all; (*scored)++; }
    }
    free(row);
    task_sample_free(&s);
}

static void check_tasks(Model *m, const char *ck, int T, int samples) {
    char cmd[2048], csv[1024], out[512];
    snprintf(out, sizeof(out), "%s/tasks", dir);
    snprintf(cmd, sizeof(cmd), "./eval tasks --ckpt %s --tasks mqar,passkey --lengths %d --samples %d --out %s", ck, T, samples, out);
    if (!check(run(cmd), "./eval tasks runs (mqar, passkey at %d, %d samples)", T, samples)) return;
    snprintf(csv, sizeof(csv), "%s/tasks_%s.csv", out, pe_name(m->cfg.pe));
    int ki = csv_col(csv, "correct"), ni = csv_col(csv, "scored"), si = csv_col(csv, "seed"), ai = csv_col(csv, "accuracy");
    if (!check(ki >= 0 && ni >= 0 && si >= 0 && ai >= 0, "tasks CSV has correct, scored, seed, accuracy")) return;
    const int tasks[2] = {TASK_MQAR, TASK_PASSKEY};
    for (int i = 0; i < 2; i++) {
        char f[16][64], prefix[64];
        snprintf(prefix, sizeof(prefix), "%s,none,%s,%d,", pe_name(m->cfg.pe), task_name(tasks[i]), T);
        int nf = csv_row(csv, prefix, f, 16);
        if (!check(nf > si, "tasks: %s has a row", task_name(tasks[i]))) continue;
        long long k, n;
        brute_task(m, tasks[i], T, samples, strtoull(f[si], NULL, 10), &k, &n);
        check(atoll(f[ni]) == n && atoll(f[ki]) == k && fabs(atof(f[ai]) - (double)k / n) < 1e-6,
              "tasks %s: %s right of %s scored, accuracy %s (brute force %lld of %lld%s)", task_name(tasks[i]), f[ki], f[ni], f[ai], k, n,
              tasks[i] == TASK_MQAR ? ": every query of every sample" : ": one per sample");
    }
    snprintf(out, sizeof(out), "%s/noise", dir);
    snprintf(cmd, sizeof(cmd), "./eval noise --ckpt %s --tasks mqar --seq %d --samples %d --sigmas 0,0.5 --out %s", ck, T, samples, out);
    if (!check(run(cmd), "./eval noise runs (mqar at %d)", T)) return;
    snprintf(csv, sizeof(csv), "%s/noise_%s.csv", out, pe_name(m->cfg.pe));
    ki = csv_col(csv, "correct"); ni = csv_col(csv, "scored"); si = csv_col(csv, "seed");
    if (!check(ki >= 0 && ni >= 0 && si >= 0, "noise CSV has correct, scored, seed")) return;
    char f[16][64], prefix[64];
    snprintf(prefix, sizeof(prefix), "%s,mqar,%d,real,0.000,", pe_name(m->cfg.pe), T);
    if (!check(csv_row(csv, prefix, f, 16) > si, "noise: the sigma 0 row")) return;
    long long k, n;
    brute_task(m, TASK_MQAR, T, samples, strtoull(f[si], NULL, 10), &k, &n);
    check(atoll(f[ni]) == n && atoll(f[ki]) == k, "noise sigma 0: %s right of %s scored (brute force %lld of %lld)", f[ki], f[ni], k, n);
    snprintf(prefix, sizeof(prefix), "%s,mqar,%d,real,0.500,", pe_name(m->cfg.pe), T);
    check(csv_row(csv, prefix, f, 16) > si && atoll(f[ni]) == n, "noise sigma 0.5: %s scored, the same samples (%lld)", f[ni], n);
}

/* ------------------------------------------------------------------------------------ train's validation */
static void check_train_val(const int *tok, size_t N) {
    /* a validation shard of 2.5 batches: --val-batches 5 must score 2 batches, not wrap around to the first again */
    int B = 2, T = 16;
    char cmd[2048], ckdir[512], vshard[512], log[512], err[512] = "";
    path_of(ckdir, sizeof(ckdir), "trainck");
    path_of(vshard, sizeof(vshard), "val_short.bin");
    path_of(log, sizeof(log), "train.jsonl");
    size_t nv = (size_t)(2.5 * B * T) + 1;
    if (!check(nv <= N && shard_write(vshard, tok, nv, 2, err, sizeof(err)) == 0, "a validation shard of %zu tokens (2.5 batches of %d x %d)", nv, B, T)) return;
    snprintf(cmd, sizeof(cmd), "./train --pe rope --dim 32 --layers 1 --heads 2 --kv-heads 2 --ffn 64 --batch %d --seq %d --steps 1 "
             "--val %s --val-batches 5 --val-every 0 --sample 0 --ckpt-dir %s --log %s", B, T, vshard, ckdir, log);
    if (!check(run(cmd), "./train with --val-batches 5 on that shard runs")) return;
    FILE *fp = fopen(log, "r");
    char line[4096];
    double val = NAN;
    long long targets = -1;
    while (fp && fgets(line, sizeof(line), fp) != NULL) {
        char *v = strstr(line, "\"val_loss\": "), *n = strstr(line, "\"val_targets\": ");
        if (v) val = atof(v + 12);
        if (n) targets = atoll(n + 15);
    }
    if (fp) fclose(fp);
    char ck[600];
    snprintf(ck, sizeof(ck), "%s/model_00000001.ckpt", ckdir);
    Config c;
    double *params;
    size_t np;
    if (!check(checkpoint_read(ck, &c, &params, &np, err, sizeof(err)) == 0, "read the trained checkpoint (%s)", err)) return;
    Model m;
    model_init_from(&m, &c, params);
    float *row = (float *)mallocCheck((size_t)c.vocab_size * sizeof(float));
    /* batch b holds the tokens [b B T, (b + 1) B T + 1) as B rows of T inputs; 2.5 batches fit 2 whole ones */
    double nll = 0.0;
    long long count = 0;
    for (size_t r = 0; r < 2 * (size_t)B; r++)
        for (size_t p = r * T; p < (r + 1) * T; p++) { nll += target_loss(&m, tok, r * T, p, row); count++; }
    check(targets == count, "train validation: %lld targets (2 whole batches of the 2.5 the shard holds: %lld), none twice", targets, count);
    check(fabs(val - nll / count) < 2e-5, "train validation: loss %.6f = brute force %.6f", val, nll / count);
    free(row);
    free(params);
    model_free(&m);
}

/* --------------------------------------------------------------------------------------- the issue's cases */
static void check_issue_cases(void) {
    char cmd[2048], ckdir[512], v100[512], err[512] = "";
    path_of(ckdir, sizeof(ckdir), "issue_ck");
    snprintf(cmd, sizeof(cmd), "./train --pe rope --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 192 --seq 64 --batch 16 --steps 300 "
             "--pi-factor 4 --sample 0 --log '' --ckpt-dir %s", ckdir);
    if (!check(run(cmd), "issue 13 model trained (rope, C 64, L 2, 300 steps, PI 4)")) return;
    int *val;
    size_t nval;
    if (!check(shard_read_all("data/tinyshakespeare_val.bin", 256, &val, &nval, err, sizeof(err)) == 0, "read the validation shard (%s)", err)) return;
    path_of(v100, sizeof(v100), "val100.bin");
    if (!check(shard_write(v100, val, 100, 2, err, sizeof(err)) == 0, "its first 100 tokens as a shard")) { free(val); return; }
    free(val);
    const char *data[2] = {v100, "data/tinyshakespeare_val.bin"};
    const int stride[2] = {48, 64};
    const unsigned long long want_n[2] = {99, 111538};
    const double want_ppl[2] = {15.813, 10.914};
    for (int i = 0; i < 2; i++) {
        char out[512], csv[1024], f[16][64];
        snprintf(out, sizeof(out), "%s/issue%d", dir, i);
        snprintf(cmd, sizeof(cmd), "./eval ppl --ckpt %s/model_00000300.ckpt --data %s --lengths 64 --samples 1 --scalings none --stride %d --out %s",
                 ckdir, data[i], stride[i], out);
        if (!check(run(cmd), "issue case %d: ./eval ppl --stride %d runs", i + 1, stride[i])) continue;
        snprintf(csv, sizeof(csv), "%s/ppl_rope.csv", out);
        int ci = csv_col(csv, "tokens"), pi = csv_col(csv, "ppl");
        int nf = csv_row(csv, "rope,none,64,sliding,", f, 16);
        if (!check(nf > ci && nf > pi && ci >= 0 && pi >= 0, "issue case %d: the sliding row", i + 1)) continue;
        check(strtoull(f[ci], NULL, 10) == want_n[i], "issue case %d (%s, stride %d): %s targets scored (right: %llu)", i + 1, data[i], stride[i], f[ci], want_n[i]);
        check(fabs(atof(f[pi]) - want_ppl[i]) <= 0.002, "issue case %d: ppl %s (right: %.3f)", i + 1, f[pi], want_ppl[i]);
    }
}

int main(void) {
    snprintf(dir, sizeof(dir), "tests/tmp/test_eval_exact.%d", (int)getpid());
    mkdir("tests/tmp", 0755);
    mkdir(dir, 0755);
    char err[1024], ck[512], shard[512];
    /* a tiny random model, saved and read back so that this test uses the same fp32 weights as ./eval */
    Config c = config_default();
    c.vocab_size = 256; c.dim = 32; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 2; c.ffn_dim = 64; c.pe = PE_ROPEPP_EC;
    c.train_seq = 16; c.rotary_frac = 1.0;
    Model m0;
    model_init(&m0, &c, INIT_TORCH_DEFAULT, 7);
    double *p0 = (double *)mallocCheck(m0.num_params * sizeof(double));
    model_params_to_host(&m0, p0);
    path_of(ck, sizeof(ck), "tiny.ckpt");
    int ok = check(checkpoint_write(ck, &c, p0, m0.num_params, 4, err, sizeof(err)) == 0, "tiny ropepp_ec checkpoint written (%s)", err);
    free(p0);
    model_free(&m0);
    Config cr;
    double *params = NULL;
    size_t np;
    ok = ok && check(checkpoint_read(ck, &cr, &params, &np, err, sizeof(err)) == 0, "and read back (%s)", err);
    if (!ok) return tu_finish("test_eval_exact");
    Model m;
    model_init_from(&m, &cr, params);
    /* 143 random tokens: 142 targets, a multiple of none of the strides */
    size_t N = 143;
    int *tok = (int *)mallocCheck(N * sizeof(int));
    Rng r = {12345};
    for (size_t i = 0; i < N; i++) tok[i] = (int)(rng_u64(&r) % 256);
    path_of(shard, sizeof(shard), "tok.bin");
    check(shard_write(shard, tok, N, 2, err, sizeof(err)) == 0, "a shard of %zu random tokens", N);
    float *row = (float *)mallocCheck(256 * sizeof(float));
    int L = cr.train_seq;
    const int strides[] = {1, 2, 5, 7, 12, 16};
    for (size_t i = 0; i < sizeof(strides) / sizeof(strides[0]); i++) check_sliding(&m, ck, shard, tok, N, L, strides[i], row);
    /* --stride longer than the window would leave targets unscored: refused */
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "./eval ppl --ckpt %s --data %s --lengths 16 --samples 1 --scalings none --stride 17 --out %s/x > %s/log17 2>&1", ck, shard, dir, dir);
    int rc = system(cmd);
    snprintf(cmd, sizeof(cmd), "grep -q 'longer than the window' %s/log17", dir);
    check(rc != 0 && system(cmd) == 0, "--stride 17 > window 16 is refused with a reason");
    check_lengths(&m, ck, shard, tok, N, 16, 3, row);     /* 3 of the 8 slots */
    check_lengths(&m, ck, shard, tok, N, 32, 8, row);     /* 8 asked, the shard holds 4 windows of 32 */
    check_lengths(&m, ck, shard, tok, N, 142, 2, row);    /* exactly one window */
    check_patterns(&m, ck, shard, tok, N, 16, 20);        /* 20 asked, 8 fit */
    check_tasks(&m, ck, 256, 6);
    check_train_val(tok, N);
    free(row);
    free(tok);
    free(params);
    model_free(&m);
    check_issue_cases();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (tu_failed == 0 && system(cmd) != 0) printf("# could not remove %s\n", dir);
    return tu_finish("test_eval_exact");
}
