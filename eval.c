/*
eval — the paper's analyses on any ropepp checkpoint, each one command that prints a table and writes CSV and an
SVG plot under --out (default results/eval):
  ./eval ppl      [--ckpt F]   perplexity vs context length, from 1/2x to 8x the training length, per position
                               band, with and without eval-time rope scaling; and the official sliding-window ppl
  ./eval patterns [--ckpt F]   attention mass by distance per layer and head: real vs imaginary heads (Figure 5)
  ./eval tasks    [--ckpt F]   long-context tasks (passkey, RULER-style NIAH, variable tracking, MQAR) at 1x..8x the
                               training length: exact match of the teacher-forced argmax, with 95% intervals
  ./eval noise    [--ckpt F]   the noise experiment: N(0, sigma^2) on the real or the imaginary queries, task
                               accuracy vs sigma (docs/MATH.md, The noise experiment)
  ./eval curves                the characteristic curves c_Re, c_Im vs dt with their Ci/Si closed forms (Eq. 5, 7)
  ./eval plot --csv F --x COL --y COL --group COL [--where COL=VAL]... --out FILE.svg
                               one line per value of --group from any of these CSVs (compare.sh's combined plots)
Build: make eval (CPU); make eval_gpu (CUDA). `./eval MODE --help` lists the flags of a mode.

Dims legend as in ropepp.h: B batch, T sequence length, L layers, NA attention heads, V vocab.
*/
#define ROPEPP_IMPLEMENTATION
#include "ropepp.h"
#define ROPEPP_TASKS_IMPLEMENTATION
#include "data/tasks.h"
#include <sys/stat.h>
#include <time.h>

/* ------------------------------------------------------------------------------------------- SVG line plots */
typedef struct {
    const char *name;
    int n;
    const double *x;   /* (n) */
    const double *y;   /* (n) NaN = gap */
} Series;

static const char *const palette[10] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
                                        "#17becf", "#7f7f7f", "#bcbd22"};

static double nice_step(double range, int ticks) {
    double raw = range / ticks, mag = pow(10.0, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1.0 : f < 3.0 ? 2.0 : f < 7.0 ? 5.0 : 10.0) * mag;
}

/* A line plot with axes, ticks, grid and a legend. logx: x on a log scale (ticks at powers of 10, or of 2 when the
   x range is narrower than 3 decades). */
static void svg_plot(const char *path, const char *title, const char *xlabel, const char *ylabel, int logx,
                     const Series *s, int ns) {
    size_t longest = 0;
    for (int k = 0; k < ns; k++) if (strlen(s[k].name) > longest) longest = strlen(s[k].name);
    const double ml = 80, mt = 45, mb = 60, mr = 60 + 7.5 * (double)longest, W = ml + 490 + mr, H = 470;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            double x = logx ? log10(s[k].x[i]) : s[k].x[i], y = s[k].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            x0 = fmin(x0, x); x1 = fmax(x1, x); y0 = fmin(y0, y); y1 = fmax(y1, y);
        }
    if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
    if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
    double ypad = 0.05 * (y1 - y0);
    y0 -= ypad; y1 += ypad;
    FILE *fp = fopen(path, "w");
    if (fp == NULL) { fprintf(stderr, "warning: cannot write plot %s: %s\n", path, strerror(errno)); return; }
    double pw = W - ml - mr, ph = H - mt - mb;
#define PX(x) (ml + ((x) - x0) / (x1 - x0) * pw)
#define PY(y) (mt + ph - ((y) - y0) / (y1 - y0) * ph)
    fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"13\">\n", W, H);
    fprintf(fp, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(fp, "<text x=\"%.0f\" y=\"25\" text-anchor=\"middle\" font-size=\"16\">%s</text>\n", ml + pw / 2, title);
    /* y ticks */
    double ys = nice_step(y1 - y0, 6);
    for (double y = ceil(y0 / ys) * ys; y <= y1 + 1e-12; y += ys) {
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", ml, PY(y), ml + pw, PY(y));
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", ml - 6, PY(y) + 4, fabs(y) < 1e-12 * ys ? 0.0 : y);
    }
    /* x ticks */
    if (logx) {
        double base = (x1 - x0) < 3.0 ? log10(2.0) : 1.0;
        for (double e = ceil(x0 / base) * base; e <= x1 + 1e-9; e += base) {
            fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", PX(e), mt, PX(e), mt + ph);
            fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", PX(e), mt + ph + 18, pow(10.0, e));
        }
    } else {
        double xs = nice_step(x1 - x0, 7);
        for (double x = ceil(x0 / xs) * xs; x <= x1 + 1e-12; x += xs) {
            fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", PX(x), mt, PX(x), mt + ph);
            fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", PX(x), mt + ph + 18, x);
        }
    }
    fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"black\"/>\n", ml, mt, pw, ph);
    fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", ml + pw / 2, H - 15, xlabel);
    fprintf(fp, "<text transform=\"translate(20,%.1f) rotate(-90)\" text-anchor=\"middle\">%s</text>\n", mt + ph / 2, ylabel);
    for (int k = 0; k < ns; k++) {
        const char *col = palette[k % 10];
        /* beyond 10 series the colours repeat, dashed */
        fprintf(fp, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", col, k >= 10 ? " stroke-dasharray=\"6,3\"" : "");
        for (int i = 0; i < s[k].n; i++) {
            double x = logx ? log10(s[k].x[i]) : s[k].x[i], y = s[k].y[i];
            if (isfinite(x) && isfinite(y)) fprintf(fp, "%.1f,%.1f ", PX(x), PY(y));
        }
        fprintf(fp, "\"/>\n");
        if (s[k].n <= 40)
            for (int i = 0; i < s[k].n; i++) {
                double x = logx ? log10(s[k].x[i]) : s[k].x[i], y = s[k].y[i];
                if (isfinite(x) && isfinite(y)) fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", PX(x), PY(y), col);
            }
        double ly = mt + 10 + 22 * k;
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n", ml + pw + 12, ly, ml + pw + 36, ly, col);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", ml + pw + 42, ly + 4, s[k].name);
    }
#undef PX
#undef PY
    fprintf(fp, "</svg>\n");
    fclose(fp);
    printf("wrote %s\n", path);
}

/* ------------------------------------------------------------------------------------------------ options */
typedef struct {
    const char *ckpt, *data, *out, *lengths, *scalings, *tasks, *sigmas;
    int samples, seq, stride, head_dim;
    double base, depth;
    uint64_t seed;
} Options;

static void usage(const char *mode) {
    printf("usage: eval MODE [flags]    modes: ppl, tasks, noise, patterns, curves, plot\n\n");
    if (mode == NULL || strcmp(mode, "ppl") == 0)
        printf("eval ppl: loss and perplexity vs context length (docs/MATH.md, Sliding-window perplexity)\n"
               "  --ckpt FILE        checkpoint (checkpoints/ newest)\n"
               "  --data FILE        token shard to score (data/tinyshakespeare_val.bin)\n"
               "  --lengths LIST     eval lengths, comma-separated (L/2,L,2L,4L,8L with L the training length)\n"
               "  --samples N        windows per length (8)\n"
               "  --scalings LIST    none, ntk:F, pi:F, yarn:F, comma-separated (none,ntk:4 for rotary models)\n"
               "  --stride S         sliding-window stride (L/8); the window is L\n"
               "  --out DIR          results folder (results/eval)\n\n");
    if (mode == NULL || strcmp(mode, "patterns") == 0)
        printf("eval patterns: attention mass by query-key distance per layer and head (real vs imaginary heads)\n"
               "  --ckpt FILE --data FILE --out DIR   as above\n"
               "  --seq T            window length (the training length)\n"
               "  --samples N        windows averaged (4)\n\n");
    if (mode == NULL || strcmp(mode, "tasks") == 0)
        printf("eval tasks: exact match (teacher-forced argmax over the answer) per task and length\n"
               "  --ckpt FILE --out DIR   as above\n"
               "  --tasks LIST       passkey,niah_single,niah_multikey,niah_multivalue,vt,mqar (all that fit the lengths)\n"
               "  --lengths LIST     eval lengths (L, 2L, 4L, 8L)\n"
               "  --samples N        samples per task and length (20)\n"
               "  --depth D          needle depth in [0, 1]; -1 = random (-1)\n"
               "  --scalings S       one of none, ntk:F, pi:F, yarn:F (none)\n"
               "  --seed N           task seed (1)\n\n");
    if (mode == NULL || strcmp(mode, "noise") == 0)
        printf("eval noise: task accuracy vs Gaussian sigma on the rotated real / imaginary queries\n"
               "  --ckpt FILE --out DIR --samples N --depth D --seed N   as in tasks\n"
               "  --tasks NAME       one task (passkey if it fits the length, else mqar)\n"
               "  --seq T            length (the training length)\n"
               "  --sigmas LIST      (0,0.2,0.4,0.6,0.8,1.0,1.2,1.5)\n\n");
    if (mode == NULL || strcmp(mode, "plot") == 0)
        printf("eval plot: a line plot of one of these CSVs, one line per value of a column\n"
               "  --csv FILE --x COL --y COL --group COL --out FILE.svg   required\n"
               "  --where COL=VALUE  keep only matching rows (repeatable)    --logx   log x axis\n"
               "  --title T --xlabel T --ylabel T\n\n");
    if (mode == NULL || strcmp(mode, "curves") == 0)
        printf("eval curves: c_Re(dt), c_Im(dt) of paper Eq. 5 and 7 with their closed forms\n"
               "  --head-dim D       head dim (128)\n"
               "  --base B           rope base (10000)\n"
               "  --out DIR          results folder (results/eval)\n");
}

/* The checkpoint of --ckpt (or the newest in checkpoints/): its config and parameters, without building a model. */
static void read_checkpoint(Config *c_out, double **params_out, const Options *o) {
    char path[4200], err[1024];
    const char *ck = o->ckpt;
    if (ck == NULL) {
        int steps[4096];
        int n = checkpoint_list("checkpoints", 0, steps, 4096);
        if (n == 0) { fprintf(stderr, "error: no checkpoint in checkpoints/; train one with ./train or pass --ckpt FILE\n"); exit(1); }
        int best = steps[n - 1];
        snprintf(path, sizeof(path), "checkpoints/model_%08d.ckpt", best);
        ck = path;
    }
    size_t np;
    if (checkpoint_read(ck, c_out, params_out, &np, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); exit(1); }
    printf("%s: %s, C %d, L %d, H %d, KV %d, trained at %d tokens\n", ck, pe_name(c_out->pe), c_out->dim, c_out->n_layers,
           c_out->n_heads, c_out->n_kv_heads, c_out->train_seq);
}

static void load_model(Model *m, Config *c_out, double **params_out, const Options *o) {
    read_checkpoint(c_out, params_out, o);
    model_init_from(m, c_out, *params_out);
}


static void ensure_dir(const char *dir) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s", dir);
    for (char *p = tmp + 1; *p; p++) if (*p == '/') { *p = '\0'; mkdir(tmp, 0755); *p = '/'; }
    mkdir(tmp, 0755);
}

/* ------------------------------------------------------------------------------------------------- ppl mode */
typedef struct { char label[32]; double ntk, pi, yarn; } Scaling;

static int parse_scalings(const char *spec, Scaling *out, int max) {
    int n = 0;
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", spec);
    for (char *tok = strtok(buf, ","); tok != NULL && n < max; tok = strtok(NULL, ",")) {
        Scaling s = {"", 1.0, 1.0, 1.0};
        snprintf(s.label, sizeof(s.label), "%s", tok);
        char *colon = strchr(tok, ':');
        if (strcmp(tok, "none") == 0) { out[n++] = s; continue; }
        if (colon == NULL) { fprintf(stderr, "error: --scalings item '%s' is not none, ntk:F, pi:F or yarn:F\n", tok); exit(1); }
        *colon = '\0';
        double f = flag_number("./eval", "--scalings factor", colon + 1, 1.0, 1e6);
        if (strcmp(tok, "ntk") == 0) s.ntk = f;
        else if (strcmp(tok, "pi") == 0) s.pi = f;
        else if (strcmp(tok, "yarn") == 0) s.yarn = f;
        else { fprintf(stderr, "error: --scalings kind '%s' is not ntk, pi or yarn\n", tok); exit(1); }
        out[n++] = s;
    }
    return n;
}

static int mode_ppl(Options *o) {
    Model m;
    Config c;
    double *params;
    load_model(&m, &c, &params, o);
    int L = c.train_seq;
    char err[1024];
    int *tok;
    size_t ntok;
    if (shard_read_all(o->data, c.vocab_size, &tok, &ntok, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); return 1; }
    int lengths[32], nl = 0;
    if (o->lengths) {
        char buf[512];
        snprintf(buf, sizeof(buf), "%s", o->lengths);
        for (char *t = strtok(buf, ","); t && nl < 32; t = strtok(NULL, ",")) lengths[nl++] = (int)flag_number("./eval", "--lengths", t, 2, 1 << 24);
    } else {
        int mult[5] = {1, 2, 4, 8, 16};   /* in halves of L */
        for (int i = 0; i < 5; i++) lengths[nl++] = L * mult[i] / 2;
    }
    Scaling sc[8];
    int ns = parse_scalings(o->scalings ? o->scalings : (pe_scalable(c.pe) ? "none,ntk:4" : "none"), sc, 8);
    if (!pe_scalable(c.pe)) {
        for (int i = 0; i < ns; i++) if (strcmp(sc[i].label, "none") != 0) { fprintf(stderr, "error: rope scaling does not apply to %s; use --scalings none\n", pe_name(c.pe)); return 1; }
    }
    ensure_dir(o->out);
    char path[4200];
    snprintf(path, sizeof(path), "%s/ppl_%s.csv", o->out, pe_name(c.pe));
    FILE *csv = fopen(path, "w");
    if (csv == NULL) { fprintf(stderr, "error: cannot write %s\n", path); return 1; }
    fprintf(csv, "pe,scaling,length,band,band_start,band_end,loss,ppl,tokens\n");
    /* bands of positions: [0, L/2), [L/2, L), [L, 2L), [2L, 4L), [4L, 8L) */
    int band_edges[6] = {0, L / 2, L, 2 * L, 4 * L, 8 * L};
    double *plot_x = (double *)mallocCheck(sizeof(double) * nl * ns), *plot_y = (double *)mallocCheck(sizeof(double) * nl * ns);
    printf("\nloss (nats/token) by position band; windows of each length from %s\n", o->data);
    printf("%-10s %7s %8s %8s |", "scaling", "length", "loss", "ppl");
    for (int b = 0; b < 5; b++) printf(" [%d,%d)", band_edges[b], band_edges[b + 1]);
    printf("\n");
    for (int si = 0; si < ns; si++) {
        Config cs = c;
        cs.ntk_factor = sc[si].ntk; cs.pi_factor = sc[si].pi; cs.yarn_factor = sc[si].yarn;
        if (config_validate(&cs, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); return 1; }
        Model ms;
        model_init_from(&ms, &cs, params);
        for (int li = 0; li < nl; li++) {
            int T = lengths[li];
            if ((size_t)T + 1 > ntok) { fprintf(stderr, "error: length %d needs more than the %zu tokens of %s\n", T, ntok, o->data); return 1; }
            double band_sum[5] = {0}, total = 0.0;
            size_t band_n[5] = {0}, total_n = 0;
            for (int k = 0; k < o->samples; k++) {
                size_t start = o->samples > 1 ? (size_t)((double)k * (ntok - T - 1) / (o->samples - 1)) : 0;
                model_forward_loss(&ms, tok + start, tok + start + 1, 1, T, 0);
                for (int t = 0; t < T; t++) {
                    double l = ms.losses_host[t];
                    total += l; total_n++;
                    for (int b = 0; b < 5; b++) if (t >= band_edges[b] && t < band_edges[b + 1]) { band_sum[b] += l; band_n[b]++; }
                }
            }
            double mean = total / total_n;
            printf("%-10s %7d %8.4f %8.3f |", sc[si].label, T, mean, exp(mean));
            for (int b = 0; b < 5; b++) {
                if (band_n[b]) printf(" %*.4f", (int)(snprintf(NULL, 0, " [%d,%d)", band_edges[b], band_edges[b + 1]) - 1), band_sum[b] / band_n[b]);
                else printf(" %*s", (int)(snprintf(NULL, 0, " [%d,%d)", band_edges[b], band_edges[b + 1]) - 1), "-");
                if (band_n[b]) fprintf(csv, "%s,%s,%d,band,%d,%d,%.6f,%.6f,%zu\n", pe_name(c.pe), sc[si].label, T, band_edges[b], band_edges[b + 1], band_sum[b] / band_n[b], exp(band_sum[b] / band_n[b]), band_n[b]);
            }
            printf("\n");
            fprintf(csv, "%s,%s,%d,all,0,%d,%.6f,%.6f,%zu\n", pe_name(c.pe), sc[si].label, T, T, mean, exp(mean), total_n);
            plot_x[si * nl + li] = T;
            plot_y[si * nl + li] = exp(mean);
        }
        model_free(&ms);
    }
    /* the official test_ppl recipe (docs/MATH.md, Sliding-window perplexity) at window L and stride S over the whole shard:
       window [max(i+S-L, 0), i+S), score its last S tokens (the first window S-1), ppl = exp(sum NLL / i_last);
       printed with the exact token-weighted ppl, which that recipe biases by about (1 + S / i_last) */
    int S = o->stride > 0 ? o->stride : (L / 8 > 0 ? L / 8 : 1);
    double nll = 0.0;
    size_t scored = 0, i_last = 0;
    for (size_t i = 0; i + 1 < ntok; i += S) {
        size_t end = i + S < ntok - 1 ? i + S : ntok - 1;
        size_t begin = end > (size_t)L ? end - L : 0;
        int T = (int)(end - begin);
        model_forward_loss(&m, tok + begin, tok + begin + 1, 1, T, 0);
        size_t from = end - begin > (size_t)S ? end - begin - S : 1;
        if (i == 0) from = 0;
        for (size_t t = from; t < (size_t)T; t++) { nll += m.losses_host[t]; scored++; }
        i_last = i;
    }
    printf("\nsliding window (window %d, stride %d, %zu tokens scored): ppl %.4f; official test_ppl formula exp(sum NLL / i_last) %.4f\n",
           L, S, scored, exp(nll / scored), exp(nll / (double)(i_last > 0 ? i_last : 1)));
    fprintf(csv, "%s,none,%d,sliding,0,%d,%.6f,%.6f,%zu\n", pe_name(c.pe), L, L, nll / scored, exp(nll / scored), scored);
    fclose(csv);
    printf("wrote %s\n", path);
    Series s[8];
    for (int si = 0; si < ns; si++) { s[si].name = sc[si].label; s[si].n = nl; s[si].x = plot_x + si * nl; s[si].y = plot_y + si * nl; }
    char title[256];
    snprintf(title, sizeof(title), "%s: perplexity vs eval length (trained at %d)", pe_name(c.pe), L);
    snprintf(path, sizeof(path), "%s/ppl_%s.svg", o->out, pe_name(c.pe));
    svg_plot(path, title, "eval length (tokens)", "perplexity", 1, s, ns);
    free(plot_x); free(plot_y); free(tok); free(params);
    model_free(&m);
    return 0;
}

/* -------------------------------------------------------------------------------------------- patterns mode */
static int mode_patterns(Options *o) {
    Model m;
    Config c;
    double *params;
    load_model(&m, &c, &params, o);
    int T = o->seq > 0 ? o->seq : c.train_seq, NA = m.d.NA, Lyr = c.n_layers;
    char err[1024];
    int *tok;
    size_t ntok;
    if (shard_read_all(o->data, c.vocab_size, &tok, &ntok, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); return 1; }
    if ((size_t)T + 1 > ntok) { fprintf(stderr, "error: --seq %d needs more tokens than %s has\n", T, o->data); return 1; }
    /* distance buckets: 0, 1, [2,4), [4,8), ... up to T; averaged over queries t >= T/2 */
    int nb = 2;
    while ((1 << (nb - 1)) < T) nb++;
    double *mass = (double *)calloc((size_t)Lyr * NA * nb, sizeof(double));
    double *meand = (double *)calloc((size_t)Lyr * NA, sizeof(double)), *sink = (double *)calloc((size_t)Lyr * NA, sizeof(double));
    float *p = (float *)mallocCheck((size_t)NA * T * T * sizeof(float));
    size_t nq = 0;
    for (int k = 0; k < o->samples; k++) {
        size_t start = o->samples > 1 ? (size_t)((double)k * (ntok - T - 1) / (o->samples - 1)) : 0;
        model_forward(&m, tok + start, NULL, 1, T);
        for (int l = 0; l < Lyr; l++) {
            model_attention_probs(&m, l, p);
            for (int a = 0; a < NA; a++)
                for (int t = T / 2; t < T; t++) {
                    const float *row = p + ((size_t)a * T + t) * T;
                    for (int j = 0; j <= t; j++) {
                        int dist = t - j, b = dist == 0 ? 0 : 1;
                        while (b < nb - 1 && dist >= (1 << b)) b++;
                        mass[((size_t)l * NA + a) * nb + b] += row[j];
                        meand[(size_t)l * NA + a] += row[j] * dist;
                        if (j < 4) sink[(size_t)l * NA + a] += row[j];
                    }
                }
        }
        nq += (size_t)(T - T / 2);
    }
    ensure_dir(o->out);
    char path[4200];
    snprintf(path, sizeof(path), "%s/patterns_%s.csv", o->out, pe_name(c.pe));
    FILE *csv = fopen(path, "w");
    if (csv == NULL) { fprintf(stderr, "error: cannot write %s\n", path); return 1; }
    fprintf(csv, "pe,layer,head,kind,mean_distance,first4_mass");
    for (int b = 0; b < nb; b++) fprintf(csv, ",mass_d%d", b == 0 ? 0 : (1 << (b - 1)));
    fprintf(csv, "\n");
    printf("\nattention by query-key distance (queries in [%d, %d), %d windows): mean distance, mass on the first 4 tokens\n", T / 2, T, o->samples);
    printf("%5s %5s %5s %10s %8s\n", "layer", "head", "kind", "mean dist", "first4");
    double kind_sum[2] = {0}, kind_sink[2] = {0};
    int kind_n[2] = {0};
    double *kind_mass = (double *)calloc(2 * (size_t)nb, sizeof(double));
    for (int l = 0; l < Lyr; l++)
        for (int a = 0; a < NA; a++) {
            int imag = m.d.imag && a % 2 == 1;
            double md = meand[(size_t)l * NA + a] / nq, sk = sink[(size_t)l * NA + a] / nq;
            printf("%5d %5d %5s %10.2f %8.4f\n", l, a, imag ? "imag" : "real", md, sk);
            fprintf(csv, "%s,%d,%d,%s,%.6f,%.6f", pe_name(c.pe), l, a, imag ? "imag" : "real", md, sk);
            for (int b = 0; b < nb; b++) {
                double v = mass[((size_t)l * NA + a) * nb + b] / nq;
                fprintf(csv, ",%.6f", v);
                kind_mass[(size_t)imag * nb + b] += v;
            }
            fprintf(csv, "\n");
            kind_sum[imag] += md; kind_sink[imag] += sk; kind_n[imag]++;
        }
    fclose(csv);
    printf("\nsummary: real heads mean distance %.2f, first-4 mass %.4f", kind_sum[0] / kind_n[0], kind_sink[0] / kind_n[0]);
    if (kind_n[1]) printf(" | imaginary heads mean distance %.2f, first-4 mass %.4f", kind_sum[1] / kind_n[1], kind_sink[1] / kind_n[1]);
    printf("\nwrote %s\n", path);
    double *bx = (double *)mallocCheck(sizeof(double) * nb), *by = (double *)mallocCheck(sizeof(double) * 2 * nb);
    for (int b = 0; b < nb; b++) {
        bx[b] = b == 0 ? 0.5 : (double)(1 << (b - 1));   /* distance 0 plotted at 0.5 on the log axis */
        for (int k = 0; k < 2; k++) by[k * nb + b] = kind_n[k] ? kind_mass[(size_t)k * nb + b] / kind_n[k] : NAN;
    }
    Series s[2] = {{m.d.imag ? "real heads" : "all heads", nb, bx, by}, {"imaginary heads", nb, bx, by + nb}};
    char title[256];
    snprintf(title, sizeof(title), "%s: attention mass by distance (T %d)", pe_name(c.pe), T);
    snprintf(path, sizeof(path), "%s/patterns_%s.svg", o->out, pe_name(c.pe));
    svg_plot(path, title, "query-key distance (bucket start; 0 at 0.5)", "mean attention mass", 1, s, kind_n[1] ? 2 : 1);
    free(mass); free(meand); free(sink); free(p); free(tok); free(params); free(kind_mass); free(bx); free(by);
    model_free(&m);
    return 0;
}


/* ------------------------------------------------------------------------------------------------ tasks mode */
/* Wilson 95% interval for k successes out of n */
static void wilson(double k, double n, double *lo, double *hi) {
    if (n <= 0) { *lo = 0; *hi = 1; return; }
    double z = 1.959964, p = k / n, den = 1 + z * z / n;
    double mid = (p + z * z / (2 * n)) / den, half = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den;
    *lo = fmax(0.0, mid - half);
    *hi = fmin(1.0, mid + half);
}

/* Score `samples` generated samples of a task at length T: the fraction right (exact match per sample for the
   text tasks, per query for MQAR), and the counts behind it. */
static double score_task(Model *m, int task, int T, const Options *o, uint64_t seed, double *k_out, double *n_out) {
    TaskOptions to = task_options_default();
    to.depth = o->depth;
    to.mqar_vocab = m->cfg.vocab_size;
    TaskSample s;
    task_sample_alloc(&s, T);
    Rng rng = {seed};
    int V = m->cfg.vocab_size;
    int *argmax = (int *)mallocCheck((size_t)T * sizeof(int));
    float *row = (float *)mallocCheck((size_t)V * sizeof(float));
    double k = 0.0, n = 0.0;
    char err[512];
    for (int i = 0; i < o->samples; i++) {
        if (task_generate(&s, task, T, &to, &rng, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); exit(1); }
        model_forward(m, s.tokens, NULL, 1, T);
        for (int t = 0; t < T; t++) argmax[t] = -1;
        for (int j = 0; j < s.n_score; j++) {
            int t = s.score_pos[j], best = 0;
            model_logits_row(m, 0, t, row);
            for (int v = 1; v < V; v++) if (row[v] > row[best]) best = v;
            argmax[t] = best;
        }
        if (task == TASK_MQAR) { k += task_score_fraction(&s, argmax) * s.n_score; n += s.n_score; }
        else { k += task_score_argmax(&s, argmax); n += 1; }
    }
    task_sample_free(&s);
    free(argmax);
    free(row);
    *k_out = k;
    *n_out = n;
    return n > 0 ? k / n : 0.0;
}

static int parse_task_list(const char *spec, int *out) {
    int n = 0;
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", spec);
    for (char *t = strtok(buf, ","); t && n < TASK_COUNT; t = strtok(NULL, ",")) {
        int id = task_from_name(t);
        if (id < 0) { fprintf(stderr, "error: unknown task '%s'; tasks: passkey niah_single niah_multikey niah_multivalue vt mqar\n", t); exit(1); }
        out[n++] = id;
    }
    return n;
}

static int mode_tasks(Options *o) {
    Config c;
    double *params;
    read_checkpoint(&c, &params, o);
    Scaling sc[1];
    parse_scalings(o->scalings ? o->scalings : "none", sc, 1);
    Config cs = c;
    cs.ntk_factor = sc[0].ntk; cs.pi_factor = sc[0].pi; cs.yarn_factor = sc[0].yarn;
    char err[512];
    if (config_validate(&cs, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); return 1; }
    Model m;
    model_init_from(&m, &cs, params);
    int L = c.train_seq, lengths[32], nl = 0, tasks[TASK_COUNT], nt;
    if (o->lengths) {
        char buf[512];
        snprintf(buf, sizeof(buf), "%s", o->lengths);
        for (char *t = strtok(buf, ","); t && nl < 32; t = strtok(NULL, ",")) lengths[nl++] = (int)flag_number("./eval", "--lengths", t, 4, 1 << 24);
    } else {
        for (int f = 1; f <= 8; f *= 2) lengths[nl++] = L * f;
    }
    if (o->tasks) nt = parse_task_list(o->tasks, tasks);
    else { nt = 0; for (int t = 0; t < TASK_COUNT; t++) tasks[nt++] = t; }
    if (c.vocab_size < 256) {   /* text tasks are byte-level */
        int k = 0;
        for (int i = 0; i < nt; i++) if (tasks[i] == TASK_MQAR) tasks[k++] = tasks[i];
        nt = k;
    }
    ensure_dir(o->out);
    char path[4200];
    snprintf(path, sizeof(path), "%s/tasks_%s.csv", o->out, pe_name(c.pe));
    FILE *csv = fopen(path, "w");
    if (csv == NULL) { fprintf(stderr, "error: cannot write %s\n", path); return 1; }
    fprintf(csv, "pe,scaling,task,length,accuracy,ci_low,ci_high,correct,scored,samples\n");
    printf("\naccuracy (exact match of the teacher-forced argmax; MQAR per query) with 95%% Wilson intervals, %d samples, scaling %s\n",
           o->samples, sc[0].label);
    printf("%-16s", "task");
    for (int li = 0; li < nl; li++) printf(" %20d", lengths[li]);
    printf("\n");
    double *ys = (double *)mallocCheck(sizeof(double) * nt * nl), *xs = (double *)mallocCheck(sizeof(double) * nl);
    TaskOptions to = task_options_default();
    to.mqar_vocab = c.vocab_size;
    for (int li = 0; li < nl; li++) xs[li] = lengths[li];
    for (int ti = 0; ti < nt; ti++) {
        printf("%-16s", task_name(tasks[ti]));
        for (int li = 0; li < nl; li++) {
            ys[ti * nl + li] = NAN;
            if (task_min_len(tasks[ti], &to) > lengths[li]) { printf(" %20s", "(too short)"); continue; }
            double k, n, lo, hi;
            double acc = score_task(&m, tasks[ti], lengths[li], o, o->seed * 1000003ull + (uint64_t)ti * 7919u + (uint64_t)lengths[li], &k, &n);
            wilson(k, n, &lo, &hi);
            printf("   %5.1f%% [%4.1f,%5.1f]", 100 * acc, 100 * lo, 100 * hi);
            fflush(stdout);
            fprintf(csv, "%s,%s,%s,%d,%.6f,%.6f,%.6f,%.0f,%.0f,%d\n", pe_name(c.pe), sc[0].label, task_name(tasks[ti]), lengths[li], acc, lo, hi, k, n, o->samples);
            ys[ti * nl + li] = 100 * acc;
        }
        printf("\n");
    }
    fclose(csv);
    printf("wrote %s\n", path);
    Series s[TASK_COUNT];
    for (int ti = 0; ti < nt; ti++) { s[ti].name = task_name(tasks[ti]); s[ti].n = nl; s[ti].x = xs; s[ti].y = ys + ti * nl; }
    char title[256];
    snprintf(title, sizeof(title), "%s: task accuracy vs length (trained at %d)", pe_name(c.pe), L);
    snprintf(path, sizeof(path), "%s/tasks_%s.svg", o->out, pe_name(c.pe));
    svg_plot(path, title, "length (tokens)", "accuracy (%)", 1, s, nt);
    free(ys); free(xs); free(params);
    model_free(&m);
    return 0;
}

/* ------------------------------------------------------------------------------------------------ noise mode */
static int mode_noise(Options *o) {
    Model m;
    Config c;
    double *params;
    load_model(&m, &c, &params, o);
    int T = o->seq > 0 ? o->seq : c.train_seq, task;
    TaskOptions to = task_options_default();
    to.mqar_vocab = c.vocab_size;
    if (o->tasks) {
        int list[TASK_COUNT];
        if (parse_task_list(o->tasks, list) != 1) { fprintf(stderr, "error: eval noise takes one task\n"); return 1; }
        task = list[0];
    } else {
        task = (c.vocab_size >= 256 && task_min_len(TASK_PASSKEY, &to) <= T) ? TASK_PASSKEY : TASK_MQAR;
    }
    if (task_min_len(task, &to) > T) { fprintf(stderr, "error: task %s needs --seq >= %d\n", task_name(task), task_min_len(task, &to)); return 1; }
    double sig[64];
    int ns = 0;
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", o->sigmas ? o->sigmas : "0,0.2,0.4,0.6,0.8,1.0,1.2,1.5");
    for (char *t = strtok(buf, ","); t && ns < 64; t = strtok(NULL, ",")) sig[ns++] = flag_number("./eval", "--sigmas", t, 0, 1e3);
    int ntarget = m.d.imag ? 2 : 1;
    ensure_dir(o->out);
    char path[4200], err[512];
    snprintf(path, sizeof(path), "%s/noise_%s.csv", o->out, pe_name(c.pe));
    FILE *csv = fopen(path, "w");
    if (csv == NULL) { fprintf(stderr, "error: cannot write %s\n", path); return 1; }
    fprintf(csv, "pe,task,length,target,sigma,accuracy,ci_low,ci_high\n");
    printf("\nnoise experiment: %s at length %d, %d samples; N(0, sigma^2) on the rotated %s queries\n", task_name(task), T, o->samples,
           m.d.imag ? "real or imaginary" : "(real)");
    printf("%6s %22s%s\n", "sigma", "real", m.d.imag ? "              imaginary" : "");
    double *ys = (double *)mallocCheck(sizeof(double) * 2 * ns);
    for (int i = 0; i < ns; i++) {
        printf("%6.2f", sig[i]);
        for (int tg = 0; tg < ntarget; tg++) {
            int target = tg == 0 ? NOISE_REAL : NOISE_IMAG;
            if (model_set_noise(&m, target, sig[i], 0xA0153ull + (uint64_t)i, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); return 1; }
            double k, n, lo, hi;
            double acc = score_task(&m, task, T, o, o->seed * 1000003ull + 17, &k, &n);   /* the same samples for every sigma */
            wilson(k, n, &lo, &hi);
            printf("   %5.1f%% [%4.1f,%5.1f]", 100 * acc, 100 * lo, 100 * hi);
            fflush(stdout);
            fprintf(csv, "%s,%s,%d,%s,%.3f,%.6f,%.6f,%.6f\n", pe_name(c.pe), task_name(task), T, tg == 0 ? "real" : "imag", sig[i], acc, lo, hi);
            ys[tg * ns + i] = 100 * acc;
        }
        printf("\n");
    }
    model_set_noise(&m, NOISE_NONE, 0.0, 0, err, sizeof(err));
    fclose(csv);
    printf("wrote %s\n", path);
    Series s[2] = {{"noise on real queries", ns, sig, ys}, {"noise on imaginary queries", ns, sig, ys + ns}};
    char title[256];
    snprintf(title, sizeof(title), "%s: %s accuracy vs query noise (length %d)", pe_name(c.pe), task_name(task), T);
    snprintf(path, sizeof(path), "%s/noise_%s.svg", o->out, pe_name(c.pe));
    svg_plot(path, title, "noise sigma", "accuracy (%)", 0, s, ntarget);
    free(ys); free(params);
    model_free(&m);
    return 0;
}


/* ------------------------------------------------------------------------------------------------ plot mode */
/* A line plot of a CSV with a header row: x and y columns, one series per value of the group column, rows kept
   only where every --where COL=VAL holds. */
typedef struct { const char *csv, *x, *y, *group, *title, *xlabel, *ylabel, *path; const char *where[8]; int n_where, logx; } PlotArgs;

static int csv_split(char *line, char **cols, int max) {
    int n = 0;
    char *p = line;
    while (n < max) {
        cols[n++] = p;
        char *comma = strchr(p, ',');
        if (comma == NULL) break;
        *comma = '\0';
        p = comma + 1;
    }
    char *nl = strpbrk(cols[n - 1], "\r\n");
    if (nl) *nl = '\0';
    return n;
}

static int col_index(char **hdr, int n, const char *name) {
    for (int i = 0; i < n; i++) if (strcmp(hdr[i], name) == 0) return i;
    return -1;
}

static int mode_plot(const PlotArgs *a) {
    if (!a->csv || !a->x || !a->y || !a->group || !a->path) { fprintf(stderr, "error: eval plot needs --csv, --x, --y, --group and --out FILE.svg\n"); return 1; }
    FILE *fp = fopen(a->csv, "r");
    if (fp == NULL) { fprintf(stderr, "error: cannot open '%s': %s\n", a->csv, strerror(errno)); return 1; }
    char line[4096], hline[4096], *hdr[64], *cols[64];
    if (fgets(hline, sizeof(hline), fp) == NULL) { fprintf(stderr, "error: '%s' is empty\n", a->csv); fclose(fp); return 1; }
    int nh = csv_split(hline, hdr, 64);
    int xi = col_index(hdr, nh, a->x), yi = col_index(hdr, nh, a->y), gi = col_index(hdr, nh, a->group);
    if (xi < 0 || yi < 0 || gi < 0) { fprintf(stderr, "error: '%s' has no column '%s'\n", a->csv, xi < 0 ? a->x : yi < 0 ? a->y : a->group); fclose(fp); return 1; }
    int wi[8];
    const char *wv[8];
    for (int k = 0; k < a->n_where; k++) {
        char name[256];
        const char *eq = strchr(a->where[k], '=');
        if (eq == NULL) { fprintf(stderr, "error: --where '%s' is not COL=VALUE\n", a->where[k]); fclose(fp); return 1; }
        snprintf(name, sizeof(name), "%.*s", (int)(eq - a->where[k]), a->where[k]);
        wi[k] = col_index(hdr, nh, name);
        wv[k] = eq + 1;
        if (wi[k] < 0) { fprintf(stderr, "error: '%s' has no column '%s'\n", a->csv, name); fclose(fp); return 1; }
    }
    enum { MAXS = 16, MAXP = 512 };
    static char names[MAXS][64];
    static double xs[MAXS][MAXP], ys[MAXS][MAXP];
    int counts[MAXS] = {0}, ns = 0;
    while (fgets(line, sizeof(line), fp) != NULL) {
        int nc = csv_split(line, cols, 64);
        if (nc < nh) continue;
        int keep = 1;
        for (int k = 0; k < a->n_where; k++) keep &= strcmp(cols[wi[k]], wv[k]) == 0;
        if (!keep) continue;
        int s = 0;
        while (s < ns && strcmp(names[s], cols[gi]) != 0) s++;
        if (s == ns) { if (ns == MAXS) continue; snprintf(names[ns++], 64, "%s", cols[gi]); }
        if (counts[s] < MAXP) { xs[s][counts[s]] = atof(cols[xi]); ys[s][counts[s]] = atof(cols[yi]); counts[s]++; }
    }
    fclose(fp);
    if (ns == 0) { fprintf(stderr, "error: no rows of '%s' match\n", a->csv); return 1; }
    Series s[MAXS];
    for (int k = 0; k < ns; k++) {
        for (int i = 1; i < counts[k]; i++)   /* sort by x */
            for (int j = i; j > 0 && xs[k][j - 1] > xs[k][j]; j--) {
                double tx = xs[k][j], ty = ys[k][j];
                xs[k][j] = xs[k][j - 1]; ys[k][j] = ys[k][j - 1]; xs[k][j - 1] = tx; ys[k][j - 1] = ty;
            }
        s[k].name = names[k]; s[k].n = counts[k]; s[k].x = xs[k]; s[k].y = ys[k];
    }
    svg_plot(a->path, a->title ? a->title : a->y, a->xlabel ? a->xlabel : a->x, a->ylabel ? a->ylabel : a->y, a->logx, s, ns);
    return 0;
}

/* ---------------------------------------------------------------------------------------------- curves mode */
static int mode_curves(Options *o) {
    int n = 241, HD = o->head_dim;
    double *x = (double *)mallocCheck(sizeof(double) * n), *y = (double *)mallocCheck(sizeof(double) * 4 * n);
    ensure_dir(o->out);
    char path[4200];
    snprintf(path, sizeof(path), "%s/curves.csv", o->out);
    FILE *csv = fopen(path, "w");
    if (csv == NULL) { fprintf(stderr, "error: cannot write %s\n", path); return 1; }
    fprintf(csv, "dt,c_re,c_im,c_re_closed,c_im_closed\n");
    printf("characteristic curves, head dim %d, base %g (closed forms: (Ci(dt) - Ci(dt/b)) / ln b, (Si(dt) - Si(dt/b)) / ln b)\n", HD, o->base);
    printf("%10s %9s %9s %9s %9s\n", "dt", "c_Re", "closed", "c_Im", "closed");
    for (int i = 0; i < n; i++) {
        double dt = pow(10.0, -1.0 + 6.0 * i / (n - 1)), cr, cim, c1, s1, c2, s2;
        characteristic_curves(&cr, &cim, dt, HD, o->base);
        cisi(dt, &c1, &s1);
        cisi(dt / o->base, &c2, &s2);
        x[i] = dt;
        y[i] = cr; y[n + i] = cim; y[2 * n + i] = (c1 - c2) / log(o->base); y[3 * n + i] = (s1 - s2) / log(o->base);
        fprintf(csv, "%.6g,%.9f,%.9f,%.9f,%.9f\n", dt, cr, cim, y[2 * n + i], y[3 * n + i]);
        if (i % 40 == 0) printf("%10.3g %9.5f %9.5f %9.5f %9.5f\n", dt, cr, y[2 * n + i], cim, y[3 * n + i]);
    }
    fclose(csv);
    printf("wrote %s\n", path);
    Series s[4] = {{"c_Re (sum)", n, x, y}, {"c_Im (sum)", n, x, y + n}, {"Ci closed form", n, x, y + 2 * n}, {"Si closed form", n, x, y + 3 * n}};
    char title[256];
    snprintf(title, sizeof(title), "characteristic curves, head dim %d, base %g", HD, o->base);
    snprintf(path, sizeof(path), "%s/curves.svg", o->out);
    svg_plot(path, title, "relative distance dt", "mean over frequencies", 1, s, 4);
    free(x); free(y);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) { usage(NULL); return argc < 2 ? 1 : 0; }
    const char *mode = argv[1];
    if (strcmp(mode, "plot") == 0) {
        PlotArgs p;
        memset(&p, 0, sizeof(p));
        for (int i = 2; i < argc; i++) {
            const char *f = argv[i];
            if (strcmp(f, "--help") == 0) { usage("plot"); return 0; }
            if (strcmp(f, "--logx") == 0) { p.logx = 1; continue; }
            if (i + 1 >= argc) { fprintf(stderr, "error: flag %s needs a value; see ./eval plot --help\n", f); return 1; }
            const char *v = argv[++i];
            if (strcmp(f, "--csv") == 0) p.csv = v;
            else if (strcmp(f, "--x") == 0) p.x = v;
            else if (strcmp(f, "--y") == 0) p.y = v;
            else if (strcmp(f, "--group") == 0) p.group = v;
            else if (strcmp(f, "--title") == 0) p.title = v;
            else if (strcmp(f, "--xlabel") == 0) p.xlabel = v;
            else if (strcmp(f, "--ylabel") == 0) p.ylabel = v;
            else if (strcmp(f, "--out") == 0) p.path = v;
            else if (strcmp(f, "--where") == 0 && p.n_where < 8) p.where[p.n_where++] = v;
            else { fprintf(stderr, "error: unknown flag '%s' for mode plot; see ./eval plot --help\n", f); return 1; }
        }
        return mode_plot(&p);
    }
    if (strcmp(mode, "ppl") != 0 && strcmp(mode, "patterns") != 0 && strcmp(mode, "curves") != 0 &&
        strcmp(mode, "tasks") != 0 && strcmp(mode, "noise") != 0) {
        fprintf(stderr, "error: unknown mode '%s'; modes: ppl, tasks, noise, patterns, curves (see ./eval --help)\n", mode);
        return 1;
    }
    Options o = {NULL, "data/tinyshakespeare_val.bin", "results/eval", NULL, NULL, NULL, NULL, 0, 0, 0, 128, 10000.0, -1.0, 1};
    o.samples = strcmp(mode, "patterns") == 0 ? 4 : strcmp(mode, "ppl") == 0 ? 8 : 20;
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) { usage(mode); return 0; }
        if (strncmp(f, "--", 2) != 0 || i + 1 >= argc) {
            fprintf(stderr, "error: %s '%s'; see ./eval %s --help\n", strncmp(f, "--", 2) ? "unexpected argument" : "missing value for", f, mode);
            return 1;
        }
        const char *v = argv[++i];
        if (strcmp(f, "--ckpt") == 0) o.ckpt = v;
        else if (strcmp(f, "--data") == 0) o.data = v;
        else if (strcmp(f, "--out") == 0) o.out = v;
        else if (strcmp(f, "--lengths") == 0) o.lengths = v;
        else if (strcmp(f, "--scalings") == 0) o.scalings = v;
        else if (strcmp(f, "--samples") == 0) o.samples = (int)flag_number("./eval", f, v, 1, 1e6);
        else if (strcmp(f, "--seq") == 0) o.seq = (int)flag_number("./eval", f, v, 2, 1 << 20);
        else if (strcmp(f, "--stride") == 0) o.stride = (int)flag_number("./eval", f, v, 1, 1 << 24);
        else if (strcmp(f, "--head-dim") == 0) o.head_dim = (int)flag_number("./eval", f, v, 2, 1 << 20);
        else if (strcmp(f, "--base") == 0) o.base = flag_number("./eval", f, v, 1.0000001, 1e30);
        else if (strcmp(f, "--tasks") == 0) o.tasks = v;
        else if (strcmp(f, "--sigmas") == 0) o.sigmas = v;
        else if (strcmp(f, "--depth") == 0) o.depth = flag_number("./eval", f, v, -1, 1);
        else if (strcmp(f, "--seed") == 0) o.seed = (uint64_t)flag_number("./eval", f, v, 0, 9007199254740992.0);
        else { fprintf(stderr, "error: unknown flag '%s' for mode %s; see ./eval %s --help\n", f, mode, mode); return 1; }
    }
    if (o.head_dim % 2 != 0) { fprintf(stderr, "error: --head-dim must be even\n"); return 1; }
    if (strcmp(mode, "ppl") == 0) return mode_ppl(&o);
    if (strcmp(mode, "patterns") == 0) return mode_patterns(&o);
    if (strcmp(mode, "tasks") == 0) return mode_tasks(&o);
    if (strcmp(mode, "noise") == 0) return mode_noise(&o);
    return mode_curves(&o);
}
