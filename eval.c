/*
eval — the paper's analyses on any ropepp checkpoint, each one command that prints a table and writes CSV and an
SVG plot under --out (default: the run folder's eval/; results/eval for curves). --ckpt takes a checkpoint or a run
folder (its newest checkpoint); without it, the last run (runs/latest):
  ./eval ppl      [--ckpt F]   perplexity vs context length, from 1/2x to 8x the training length, per position
                               band, with and without eval-time rope scaling; and the sliding-window ppl of the
                               whole shard (every target scored once)
  ./eval patterns [--ckpt F]   attention mass by distance per layer and head: real vs imaginary heads (Figure 5)
  ./eval tasks    [--ckpt F]   long-context tasks (passkey, RULER-style NIAH, variable tracking, MQAR) at 1x..8x the
                               training length: exact match of the teacher-forced argmax, with 95% intervals
  ./eval noise    [--ckpt F]   the noise experiment: N(0, sigma^2) on the real or the imaginary queries, task
                               accuracy vs sigma (docs/MATH.md, The noise experiment)
  ./eval attn     [--ckpt F]   paper Fig. 5 on BOS-started documents: sink mass, first-4 mass, far ratio, retrieval per head
  ./eval stat sign|mcnemar|wilson A B   the report's exact tests from counts; stat growth, stat claims: the
                               report's seed-level statistics and verdicts (docs/STATS.md)
  ./eval curves                the characteristic curves c_Re, c_Im vs dt with their Ci/Si closed forms (Eq. 5, 7)
  ./eval plot --csv F --x COL --y COL --group COL [--where COL=VAL]... --out FILE.svg
                               one line per value of --group from any of these CSVs (compare.sh's combined plots)
  ./eval plot --run DIR [--run DIR]... [--y loss|val_loss]
                               loss curves from runs' train.jsonl, one line per run, on one plot
Build: make eval (CPU); make eval_gpu (CUDA). `./eval MODE --help` lists the flags of a mode; a flag that the mode
does not use is refused (eval_flags). Long modes (ppl, tasks, noise) print progress with an ETA to stderr.

Dims legend as in ropepp.h: B batch, T sequence length, L layers, NA attention heads, V vocab.
*/
#define ROPEPP_IMPLEMENTATION
#include "ropepp.h"
#include "cli.h"
#define ROPEPP_TASKS_IMPLEMENTATION
#include "data/tasks.h"
#include "analysis.h"
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

/* Output files (tables, plots) are written to PATH.tmp and renamed over PATH once closed whole (atomic_open /
   atomic_close of ropepp.h, as checkpoints): an eval stopped half way (Ctrl-C, kill, a crash) leaves the previous
   file as it was instead of an empty or cut one. */
enum { OUT_MAX = 8 };
static struct { FILE *fp; char path[4200]; } out_files[OUT_MAX];
static FILE *out_open(const char *path) {
    for (int i = 0; i < OUT_MAX; i++) {
        if (out_files[i].fp != NULL) continue;
        char tmp[4300], err[4600];
        FILE *fp = atomic_open(path, tmp, sizeof(tmp), err, sizeof(err));
        if (fp == NULL) { fprintf(stderr, "error: %s\n", err); return NULL; }
        out_files[i].fp = fp;
        snprintf(out_files[i].path, sizeof(out_files[i].path), "%s", path);
        return fp;
    }
    fprintf(stderr, "error: more than %d output files open at once\n", OUT_MAX);
    exit(1);
}
/* closes an out_open file and puts it in place; 0, or -1 with the reason printed */
static int out_close(FILE *fp) {
    for (int i = 0; i < OUT_MAX; i++) {
        if (out_files[i].fp != fp) continue;
        char tmp[4300], err[4600];
        snprintf(tmp, sizeof(tmp), "%s.tmp", out_files[i].path);
        out_files[i].fp = NULL;
        if (atomic_close(fp, tmp, out_files[i].path, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); return -1; }
        return 0;
    }
    return fclose(fp);
}

/* How svg_plot_styled draws: log axes; a fixed y range (y_lo < y_hi, else from the data); per series (NULL: series
   k in colour k, solid) a colour index, and a style: 0 a solid line, 1 a dashed line with a marker at each point,
   2 markers only. */
typedef struct { int logx, logy; double y_lo, y_hi; const int *color, *style; } PlotStyle;

/* A line plot with axes, ticks, grid and a legend. logx / logy: that axis on a log scale (ticks at powers of 10, or
   of 2 when the range is narrower than 3 decades; points <= 0 are left out). */
static void svg_plot_styled(const char *path, const char *title, const char *xlabel, const char *ylabel, const PlotStyle *st,
                            const Series *s, int ns) {
    int logx = st->logx, logy = st->logy;
    size_t longest = 0;
    for (int k = 0; k < ns; k++) if (strlen(s[k].name) > longest) longest = strlen(s[k].name);
    const double ml = 80, mt = 45, mb = 60, mr = 60 + 7.5 * (double)longest, W = ml + 490 + mr, H = 470;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            double x = logx ? log10(s[k].x[i]) : s[k].x[i], y = logy ? log10(s[k].y[i]) : s[k].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            x0 = fmin(x0, x); x1 = fmax(x1, x); y0 = fmin(y0, y); y1 = fmax(y1, y);
        }
    if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
    if (st->y_hi > st->y_lo) { y0 = st->y_lo; y1 = st->y_hi; }
    else {
        if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
        double ypad = 0.05 * (y1 - y0);
        y0 -= ypad; y1 += ypad;
    }
    FILE *fp = out_open(path);
    if (fp == NULL) { fprintf(stderr, "warning: cannot write plot %s: %s\n", path, strerror(errno)); return; }
    double pw = W - ml - mr, ph = H - mt - mb;
#define PX(x) (ml + ((x) - x0) / (x1 - x0) * pw)
#define PY(y) (mt + ph - ((y) - y0) / (y1 - y0) * ph)
    fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"13\">\n", W, H);
    fprintf(fp, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(fp, "<text x=\"%.0f\" y=\"25\" text-anchor=\"middle\" font-size=\"16\">%s</text>\n", ml + pw / 2, title);
    /* y ticks (log: at 1, 2, 5 times powers of 10 inside the range, every 1..9 when it spans less than a decade) */
    double ys = nice_step(y1 - y0, 6);
    if (logy) {
        int fine = y1 - y0 < 1.0;
        for (double e = floor(y0); e <= y1; e += 1.0)
            for (int m = 1; m <= (fine ? 9 : 5); m += fine || m == 1 ? 1 : 3) {
                double y = e + log10((double)m);
                if (y < y0 || y > y1) continue;
                fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", ml, PY(y), ml + pw, PY(y));
                fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", ml - 6, PY(y) + 4, pow(10.0, y));
            }
    } else
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
        const char *col = palette[(st->color ? st->color[k] : k) % 10];
        /* beyond 10 series the colours repeat, dashed */
        int style = st->style ? st->style[k] : 0;
        const char *dash = style == 1 || (st->style == NULL && k >= 10) ? " stroke-dasharray=\"6,3\"" : "";
        if (style != 2) {
            fprintf(fp, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", col, dash);
            for (int i = 0; i < s[k].n; i++) {
                double x = logx ? log10(s[k].x[i]) : s[k].x[i], y = logy ? log10(s[k].y[i]) : s[k].y[i];
                if (isfinite(x) && isfinite(y)) fprintf(fp, "%.1f,%.1f ", PX(x), PY(y));
            }
            fprintf(fp, "\"/>\n");
        }
        if (s[k].n <= 40 || style != 0)
            for (int i = 0; i < s[k].n; i++) {
                double x = logx ? log10(s[k].x[i]) : s[k].x[i], y = logy ? log10(s[k].y[i]) : s[k].y[i];
                if (isfinite(x) && isfinite(y)) fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%s\" fill=\"%s\" stroke=\"black\" stroke-width=\"0.5\"/>\n", PX(x), PY(y), style ? "4" : "3", col);
            }
        double ly = mt + 10 + 22 * k;
        if (style != 2) fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"%s/>\n", ml + pw + 12, ly, ml + pw + 36, ly, col, dash);
        if (style != 0) fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\" stroke=\"black\" stroke-width=\"0.5\"/>\n", ml + pw + 24, ly, col);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", ml + pw + 42, ly + 4, s[k].name);
    }
#undef PX
#undef PY
    fprintf(fp, "</svg>\n");
    if (out_close(fp) != 0) return;
    printf("wrote %s\n", path);
}

/* svg_plot_styled with one solid line per series in its own colour; logx as there */
static void svg_plot(const char *path, const char *title, const char *xlabel, const char *ylabel, int logx,
                     const Series *s, int ns) {
    PlotStyle st = {logx, 0, 0.0, 0.0, NULL, NULL};
    svg_plot_styled(path, title, xlabel, ylabel, &st, s, ns);
}

/* ------------------------------------------------------------------------------------------------ options */
typedef struct {
    const char *ckpt, *data, *out, *lengths, *scalings, *tasks, *sigmas;
    int samples, seq, stride, head_dim;
    double base, depth;
    uint64_t seed;
    int task_bos, mqar_blank, mqar_kv;   /* how the task samples are made: as the model was trained (train's flags) */
    int docs, relative, repeat;          /* ppl --docs, noise --relative, ppl --repeat */
    uint32_t given;                      /* bit i: eval_flags[i] was given */
    int docs_from;                       /* ppl --docs: each document's loss from this position on */
} Options;

/* ------------------------------------------------------------------------------------------ flags per mode */
/* Which modes use each flag. A flag is applied or refused, never dropped: main refuses a flag that the chosen
   mode does not read (the modes here are what each mode_* function reads of Options; its --help lists the same).
   --task-bos, --mqar-filler and --mqar-kv repeat train's flags: they say how the model's task rows were made, one
   set for every mode that makes task samples (tasks, noise, attn; scripts/compare.sh passes them so), and each
   sample is made with them. --depth is the evaluation's own choice: refused where no task uses it. */
enum { M_PPL = 1, M_TASKS = 2, M_NOISE = 4, M_PATTERNS = 8, M_ATTN = 16, M_CURVES = 32, M_COUNT = 6 };
static const char *const mode_names[M_COUNT] = {"ppl", "tasks", "noise", "patterns", "attn", "curves"};
typedef struct {
    const char *flag;
    int takes_value;   /* 0: a switch (--docs) */
    int modes;         /* M_* bits */
} EvalFlag;
static const EvalFlag eval_flags[] = {
    {"--ckpt",        1, M_PPL | M_TASKS | M_NOISE | M_PATTERNS | M_ATTN},
    {"--data",        1, M_PPL | M_PATTERNS | M_ATTN},
    {"--out",         1, M_PPL | M_TASKS | M_NOISE | M_PATTERNS | M_ATTN | M_CURVES},
    {"--samples",     1, M_PPL | M_TASKS | M_NOISE | M_PATTERNS | M_ATTN},
    {"--lengths",     1, M_PPL | M_TASKS},
    {"--scalings",    1, M_PPL | M_TASKS},
    {"--stride",      1, M_PPL},
    {"--docs",        0, M_PPL},
    {"--docs-from",   1, M_PPL},
    {"--repeat",      0, M_PPL},
    {"--seq",         1, M_NOISE | M_PATTERNS | M_ATTN},
    {"--tasks",       1, M_TASKS | M_NOISE | M_ATTN},
    {"--depth",       1, M_TASKS | M_NOISE | M_ATTN},
    {"--seed",        1, M_TASKS | M_NOISE | M_ATTN},
    {"--task-bos",    0, M_TASKS | M_NOISE | M_ATTN},
    {"--mqar-filler", 1, M_TASKS | M_NOISE | M_ATTN},
    {"--mqar-kv",     1, M_TASKS | M_NOISE | M_ATTN},
    {"--sigmas",      1, M_NOISE},
    {"--relative",    0, M_NOISE},
    {"--head-dim",    1, M_CURVES},
    {"--base",        1, M_CURVES},
};
static const int eval_flag_count = (int)(sizeof(eval_flags) / sizeof(eval_flags[0]));

static int eval_flag_find(const char *flag) {
    for (int i = 0; i < eval_flag_count; i++) if (strcmp(eval_flags[i].flag, flag) == 0) return i;
    return -1;
}

/* 1 if the flag was given on the command line */
static int flag_given(const Options *o, const char *flag) {
    int i = eval_flag_find(flag);
    return i >= 0 && (o->given >> i & 1u);
}

/* the modes of a bit set as text: "ppl, tasks" */
static void mode_list(char *out, size_t n, int modes) {
    out[0] = '\0';
    for (int k = 0; k < M_COUNT; k++)
        if (modes & (1 << k)) snprintf(out + strlen(out), n - strlen(out), "%s%s", out[0] ? ", " : "", mode_names[k]);
}

/* The task options of the task modes: --depth, --task-bos, --mqar-filler, --mqar-kv, MQAR over the model's vocab. */
static TaskOptions eval_task_options(const Options *o, int vocab) {
    TaskOptions to = task_options_default();
    to.depth = o->depth;
    to.mqar_vocab = vocab;
    to.bos = o->task_bos;
    to.mqar_blank = o->mqar_blank;
    to.mqar_kv = o->mqar_kv;
    return to;
}

static void usage(const char *mode) {
    if (mode == NULL)
        printf("usage: eval MODE [flags]    modes: ppl, tasks, noise, patterns, attn, curves, plot, stat\n");
    else
        printf("usage: eval %s [flags]    (every mode: ./eval --help)\n", mode);
    if (mode == NULL || (strcmp(mode, "plot") != 0 && strcmp(mode, "stat") != 0 && strcmp(mode, "curves") != 0))
        printf("--ckpt takes a checkpoint file or a run folder (its newest checkpoint); default: the last run (runs/latest).\n"
               "Scalings apply on top of what the checkpoint stores: \"none\" scores the model as trained (docs/SETTINGS.md).\n");
    printf("\n");
    if (mode == NULL || strcmp(mode, "attn") == 0)
        printf("eval attn: paper Fig. 5 per layer and head: sink mass, first-4 mass, far ratio, retrieval score (analysis.h)\n"
               "  --ckpt FILE --out DIR --seed N   as above\n"
               "  --data FILE        held-out shard with BOS-started documents (scripts/make_corpus.sh; default: the run's --val)\n"
               "  --seq T            window length (the training length)\n"
               "  --samples N        documents and task samples (64)\n"
               "  --tasks NAME       the text task of the retrieval score (niah_multikey, else niah_single, else passkey)\n"
               "  --depth D          needle depth of the task samples in [0, 1]; -1 = random (-1)\n"
               "  --task-bos         task samples start with the BOS token (as trained)\n"
               "  --mqar-filler K --mqar-kv N   as in tasks (train's flags, accepted by every task mode as one set)\n\n");
    if (mode == NULL || strcmp(mode, "stat") == 0)
        printf("eval stat: the report's statistics (analysis.h; the rule: docs/STATS.md)\n"
               "  eval stat sign POS NEG      two-sided exact sign test p\n"
               "  eval stat mcnemar B C       exact McNemar p from the discordant pairs\n"
               "  eval stat wilson K N        95%% Wilson interval\n"
               "  eval stat growth PPL_CSV T [SCALING]   paper Fig. 6: loss of the bands past T minus the loss of [T/2, T), at\n"
               "                              the CSV's longest length (SCALING: none)\n"
               "  eval stat claims FILE [--alpha A] [--svg OUT.svg]   every claim of a report: one number per seed, paired t,\n"
               "                              95%% CI, sign-flip (>= 6 seeds), Holm, the rule, the verdict table in markdown;\n"
               "                              FILE: tab-separated 'claim ID test|describe|unmeasurable NULL SOURCE CLAIM METRIC'\n"
               "                              and 'value ID SEED VALUE' lines (docs/STATS.md); alpha 0.05\n\n");
    if (mode == NULL || strcmp(mode, "ppl") == 0)
        printf("eval ppl: loss and perplexity vs context length (docs/MATH.md, Sliding-window perplexity)\n"
               "  --ckpt FILE|DIR    checkpoint, or a run folder (runs/latest)\n"
               "  --data FILE        token shard to score (the run's --val from its settings.txt; else data/tinyshakespeare_val.bin)\n"
               "  --lengths LIST     eval lengths, comma-separated (L/2,L,2L,4L,8L with L the training length)\n"
               "  --samples N        windows per length (8)\n"
               "  --scalings LIST    none, ntk:F, pi:F, yarn:F, comma-separated (none,ntk:4 for rotary models); each on\n"
               "                     top of the checkpoint's own scaling (none = as trained; pi:1 turns a trained PI off)\n"
               "  --stride S         sliding-window stride (L/2: each target with at least L/2 tokens of context); the window is L\n"
               "  --docs             windows start at the BOS of documents longer than the longest length (a corpus\n"
               "                     of scripts/make_corpus.sh), the same documents at every length; no sliding window\n"
               "  --docs-from P      with --docs: each document's loss (ppl_docs_*.csv, column from) over the targets from\n"
               "                     position P on, past the start-of-document cost (64; 0 = every target)\n"
               "  --repeat           the far-repeat loss instead (docs/FORMATS.md, ppl_repeat): windows from document BOS,\n"
               "                     loss on tokens that repeat a 16-gram last seen more than L/4 back vs the other tokens\n"
               "                     past L/4 (analysis.h far_repeat_mask); --lengths (default L), --samples documents\n"
               "  --out DIR          results folder (the run folder's eval/)\n\n");
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
               "  --seed N           task seed (1)\n"
               "  --task-bos         samples start with the BOS token 0 (as train --task-bos)\n"
               "  --mqar-filler K    random or blank (as train --mqar-filler) (random)\n"
               "  --mqar-kv N        MQAR pairs (0 = length/16)\n\n");
    if (mode == NULL || strcmp(mode, "noise") == 0)
        printf("eval noise: task accuracy vs Gaussian sigma on the rotated real / imaginary queries\n"
               "  --ckpt FILE --out DIR --samples N --depth D --seed N   as in tasks\n"
               "  --tasks NAME       one task (passkey if it fits the length, else mqar)\n"
               "  --seq T            length (the training length)\n"
               "  --sigmas LIST      (0,0.2,0.4,0.6,0.8,1.0,1.2,1.5; with --relative 0,0.25,0.5,0.75,1,1.5)\n"
               "  --relative         sigma times each layer's query RMS (measured on clean forwards of the first 8 samples)\n"
               "  --task-bos --mqar-filler K --mqar-kv N   as in tasks\n"
               "  RoPE++ models also get the ablation: every imaginary vs every real head's output zeroed (McNemar)\n\n");
    if (mode == NULL || strcmp(mode, "plot") == 0)
        printf("eval plot: a line plot of a CSV that eval writes, one line per value of a column\n"
               "  --csv FILE --x COL --y COL --group COL --out FILE.svg   required\n"
               "  --where COL=VALUE  keep only matching rows (repeatable)    --log-x, --log-y   log x / y axis\n"
               "  --title T --xlabel T --ylabel T\n"
               "  --run DIR          a run folder: plot its train.jsonl (repeatable: one colour per run): the training loss as\n"
               "                     a solid line, a trailing mean of --smooth N steps (5%% of the steps), and the validation\n"
               "                     loss dashed with a marker per validation; --y loss or --y val_loss keeps one; --x is step;\n"
               "                     --out defaults to the first run's loss.svg (loss_vs_runs.svg for several runs)\n\n");
    if (mode == NULL || strcmp(mode, "curves") == 0)
        printf("eval curves: c_Re(dt), c_Im(dt) of paper Eq. 5 and 7 with their closed forms\n"
               "  --head-dim D       head dim (128)\n"
               "  --base B           rope base (10000)\n"
               "  --out DIR          results folder (results/eval)\n");
}

/* The checkpoint of --ckpt (a file, a run folder, or the last run): its config and parameters, without building a
   model. Without --out, the results go to eval/ beside the checkpoint, so that runs never overwrite each other's. */
static char ckpt_path_buf[4200], out_buf[4300];
static void read_checkpoint(Config *c_out, double **params_out, Options *o) {
    char err[8800];
    if (checkpoint_resolve(o->ckpt, "--ckpt", ckpt_path_buf, sizeof(ckpt_path_buf), err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); exit(1); }
    const char *ck = ckpt_path_buf;
    o->ckpt = ck;
    size_t np;
    if (checkpoint_read(ck, c_out, params_out, &np, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); exit(1); }
    if (o->out == NULL) {
        const char *slash = strrchr(ck, '/');
        if (slash == NULL) snprintf(out_buf, sizeof(out_buf), "eval");
        else snprintf(out_buf, sizeof(out_buf), "%.*s/eval", (int)(slash - ck), ck);
        o->out = out_buf;
    }
    printf("%s: %s, C %d, L %d, H %d, KV %d, trained at %d tokens, rope base %g, pi %g, yarn %g, ntk %g\n", ck, pe_name(c_out->pe),
           c_out->dim, c_out->n_layers, c_out->n_heads, c_out->n_kv_heads, c_out->train_seq, c_out->rope_base, c_out->pi_factor,
           c_out->yarn_factor, c_out->ntk_factor);
}

static void load_model(Model *m, Config *c_out, double **params_out, Options *o) {
    read_checkpoint(c_out, params_out, o);
    model_init_from(m, c_out, *params_out);
}


static void ensure_dir(const char *dir) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s", dir);
    for (char *p = tmp + 1; *p; p++) if (*p == '/') { *p = '\0'; mkdir(tmp, 0755); *p = '/'; }
    mkdir(tmp, 0755);
}

/* ------------------------------------------------------------------------------------------------ progress */
/* Progress of a long evaluation on stderr, as train's step lines: items done / total, elapsed and ETA. The ETA
   comes from the work done (each item weighs its work: a ppl window its forward flops, a task sample its
   tokens). The first line after a second, then at most once a second, and only when 5% more is done or 10 s have
   passed since the last; always a closing line. */
typedef struct {
    const char *what;          /* "eval ppl: windows" */
    int64_t done, total;       /* items */
    double work_done, work_total;
    double t0, t_last;         /* seconds */
    double frac_last;          /* fraction done at the last line */
} Progress;

static void progress_start(Progress *p, const char *what, int64_t total, double work_total) {
    p->what = what;
    p->done = 0; p->total = total;
    p->work_done = 0.0; p->work_total = work_total;
    p->t0 = wall_seconds(); p->t_last = p->t0;
    p->frac_last = 0.0;
}

/* one item of `work` (its tokens) done */
static void progress_step(Progress *p, double work) {
    if (p == NULL) return;
    p->done++;
    p->work_done += work;
    double t = wall_seconds(), frac = p->work_total > 0 ? p->work_done / p->work_total : 1.0;
    if (p->done >= p->total || t - p->t_last < 1.0 || (p->frac_last > 0 && frac - p->frac_last < 0.05 && t - p->t_last < 10.0)) return;
    char el[32], eta[32];
    fmt_duration(el, sizeof(el), t - p->t0);
    fmt_duration(eta, sizeof(eta), (t - p->t0) / frac * (1.0 - frac));
    fprintf(stderr, "%s %lld/%lld (%.0f%%) | %s, ETA %s\n", p->what, (long long)p->done, (long long)p->total, 100 * frac, el, eta);
    p->t_last = t;
    p->frac_last = frac;
}

/* the closing line: every item done, in how long */
static void progress_end(const Progress *p) {
    char el[32];
    fmt_duration(el, sizeof(el), wall_seconds() - p->t0);
    fprintf(stderr, "%s %lld/%lld done in %s\n", p->what, (long long)p->done, (long long)p->total, el);
}

/* Starts of the documents (runs that begin with the BOS token 0) of at least min_len tokens in a shard, in order;
   *out malloc'd. Returns how many. */
static size_t doc_starts(const int *tok, size_t ntok, size_t min_len, size_t **out) {
    size_t n = 0, cap = 64;
    *out = (size_t *)mallocCheck(cap * sizeof(size_t));
    size_t i = 0;
    while (i < ntok) {
        if (tok[i] != TASK_BOS) { i++; continue; }
        size_t e = i + 1;
        while (e < ntok && tok[e] != TASK_BOS) e++;
        if (e - i >= min_len) {
            if (n == cap) { cap *= 2; *out = (size_t *)realloc(*out, cap * sizeof(size_t)); if (*out == NULL) { fprintf(stderr, "error: out of memory\n"); exit(1); } }
            (*out)[n++] = i;
        }
        i = e;
    }
    return n;
}

/* ------------------------------------------------------------------------------------------------- ppl mode */
/* one --scalings item: "none" (flag NULL: the checkpoint as stored) or KIND:F, the flag it stands for */
typedef struct { char label[32]; const char *flag; double factor; } Scaling;

/* the model config to score with: the checkpoint's, with the item applied on top (the rule of docs/SETTINGS.md) */
static void scaled_config(Config *out, const Config *stored, const Scaling *s, const char *ckpt) {
    *out = *stored;
    if (s->flag == NULL) return;
    Config flags = *stored;
    if (strcmp(s->flag, "--ntk-factor") == 0) flags.ntk_factor = s->factor;
    else if (strcmp(s->flag, "--pi-factor") == 0) flags.pi_factor = s->factor;
    else flags.yarn_factor = s->factor;
    char what[4300], err[8800];
    snprintf(what, sizeof(what), "the checkpoint %s", ckpt);
    uint64_t given = 1ull << settings_find(config_rules, config_rule_count, s->flag);
    if (settings_apply(out, &flags, given, config_rules, config_rule_count, USE_EVAL, what, err, sizeof(err)) != 0 ||
        config_validate(out, err, sizeof(err)) != 0) {
        fprintf(stderr, "error: --scalings %s: %s\n", s->label, err);
        exit(1);
    }
}

/* The items of --scalings into out (max of them); more than max is refused (too_many: what to say), not cut. */
static int parse_scalings(const char *spec, Scaling *out, int max, const char *too_many) {
    int n = 0;
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", spec);
    for (char *tok = strtok(buf, ","); tok != NULL; tok = strtok(NULL, ",")) {
        if (n == max) { fprintf(stderr, "error: --scalings '%s' has too many items: %s\n", spec, too_many); exit(1); }
        Scaling s = {"", NULL, 1.0};
        snprintf(s.label, sizeof(s.label), "%s", tok);
        char *colon = strchr(tok, ':');
        if (strcmp(tok, "none") == 0) { out[n++] = s; continue; }
        if (colon == NULL) { fprintf(stderr, "error: --scalings item '%s' is not none, ntk:F, pi:F or yarn:F\n", tok); exit(1); }
        *colon = '\0';
        double f = flag_number("./eval", "--scalings factor", colon + 1, 1.0, 1e6);
        s.factor = f;
        if (strcmp(tok, "ntk") == 0) s.flag = "--ntk-factor";
        else if (strcmp(tok, "pi") == 0) s.flag = "--pi-factor";
        else if (strcmp(tok, "yarn") == 0) s.flag = "--yarn-factor";
        else { fprintf(stderr, "error: --scalings kind '%s' is not ntk, pi or yarn\n", tok); exit(1); }
        out[n++] = s;
    }
    return n;
}

/* ---------------------------------------------------------------------------------------- counted windows */
/* Windows of T inputs and their T next-token targets, spread over a shard of ntok tokens without sharing a target:
   window k starts at starts[k] and covers tokens [starts[k], starts[k] + T] (T + 1 tokens). The shard holds
   W = (ntok - 1) / T such slots; n = min(want, W) of them are used, slot floor(k W / n) for window k, so every
   target is scored at most once over the windows. Returns n (0 when the shard is shorter than T + 1 tokens).
   starts: (want) out. */
static int64_t disjoint_windows(size_t ntok, int T, int64_t want, size_t *starts) {
    uint64_t slots = ntok > 0 ? (uint64_t)(ntok - 1) / (uint64_t)T : 0;
    int64_t n = (uint64_t)want < slots ? want : (int64_t)slots;
    for (int64_t k = 0; k < n; k++) starts[k] = (size_t)((uint64_t)k * slots / (uint64_t)n) * (size_t)T;
    return n;
}

/* Sliding-window negative log-likelihood over a whole shard (the Hugging Face strided-perplexity recipe, each
   target once): windows end at S, 2S, ... and at the last target; the window ending at `end` holds the inputs
   [max(end - L, 0), end) and scores only the targets it adds, the predictions at positions [end - S, end)
   (the first window: [0, S); the last: what is left). So each of the ntok - 1 targets is scored exactly once,
   with at least L - S tokens of context once that many exist. Needs 1 <= S <= L (S > L would skip targets).
   Returns the summed NLL in nats; *scored = the number of targets summed (= ntok - 1), *windows = forwards run.
   progress: NULL, or a step per window. */
static double sliding_window_nll(Model *m, const int *tok, size_t ntok, int L, int S, size_t *scored, size_t *windows,
                                 Progress *progress) {
    size_t ntargets = ntok - 1, n = 0, w = 0;
    double nll = 0.0;
    for (size_t first = 0; first < ntargets; first += (size_t)S) {
        size_t end = first + (size_t)S < ntargets ? first + (size_t)S : ntargets;
        size_t begin = end > (size_t)L ? end - (size_t)L : 0;   /* begin <= first because S <= L */
        model_forward_loss(m, tok + begin, tok + begin + 1, 1, (int)(end - begin), 0);
        for (size_t t = first - begin; t < end - begin; t++) { nll += m->losses_host[t]; n++; }
        w++;
        progress_step(progress, (double)(end - begin) * model_flops_per_token(&m->cfg, (int)(end - begin)));
    }
    *scored = n;
    *windows = w;
    return nll;
}

/* eval ppl --repeat: a retrieval measure that needs no task training. Windows of each length from the BOS of
   held-out documents (as --docs); in each, the loss on the targets that end a 16-gram whose most recent earlier
   occurrence ends more than L/4 back (far_repeat_mask: copyable from far context only) and on the other targets past
   L/4. One CSV line per window (docs/FORMATS.md). */
enum { REPEAT_NGRAM = 16 };
static int mode_ppl_repeat(Options *o) {
    Model m;
    Config c;
    double *params;
    load_model(&m, &c, &params, o);
    int L = c.train_seq, D = c.train_seq / 4;
    char err[1024], path[4200];
    int *tok;
    size_t ntok;
    if (shard_read_all(o->data, c.vocab_size, &tok, &ntok, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); return 1; }
    int lengths[32], nl = 0, longest = 0;
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", o->lengths ? o->lengths : "");
    if (o->lengths == NULL) lengths[nl++] = L;
    for (char *t = strtok(buf, ","); t && nl < 32; t = strtok(NULL, ",")) lengths[nl++] = (int)flag_number("./eval", "--lengths", t, 2, 1 << 24);
    for (int i = 0; i < nl; i++) if (lengths[i] > longest) longest = lengths[i];
    size_t *docs, nd = doc_starts(tok, ntok, (size_t)longest + 1, &docs);
    if (nd == 0) { fprintf(stderr, "error: --repeat: %s has no document (BOS token 0 first) of %d tokens or more\nHINT: build a corpus with scripts/make_corpus.sh\n", o->data, longest + 1); return 1; }
    int64_t nw = (int64_t)((size_t)o->samples < nd ? (size_t)o->samples : nd);
    ensure_dir(o->out);
    snprintf(path, sizeof(path), "%s/ppl_repeat_%s.csv", o->out, pe_name(c.pe));
    FILE *csv = out_open(path);
    if (csv == NULL) { fprintf(stderr, "error: cannot write %s\n", path); return 1; }
    fprintf(csv, "pe,length,ngram,min_distance,doc_start,repeat_tokens,repeat_loss,other_tokens,other_loss\n");
    printf("far-repeat loss: %lld documents, targets ending a %d-gram last seen more than %d tokens back vs the other targets past %d\n",
           (long long)nw, REPEAT_NGRAM, D, D);
    printf("%7s %9s %9s %9s %9s\n", "length", "repeat_n", "repeat", "other_n", "other");
    for (int li = 0; li < nl; li++) {
        int T = lengths[li];
        unsigned char *mask = (unsigned char *)mallocCheck((size_t)T + 1);
        double rs = 0, os = 0;
        size_t rn = 0, on = 0;
        for (int64_t k = 0; k < nw; k++) {
            const int *w = tok + docs[(size_t)k * nd / (size_t)nw];
            model_forward_loss(&m, w, w + 1, 1, T, 0);
            far_repeat_mask(w, T + 1, REPEAT_NGRAM, D, mask);   /* target t + 1 is predicted at position t */
            double wr = 0, wo = 0;
            size_t wrn = 0, won = 0;
            for (int t = D; t < T; t++) {
                double l = m.losses_host[t];
                if (mask[t + 1]) { wr += l; wrn++; } else { wo += l; won++; }
            }
            fprintf(csv, "%s,%d,%d,%d,%zu,%zu,%.6f,%zu,%.6f\n", pe_name(c.pe), T, REPEAT_NGRAM, D, docs[(size_t)k * nd / (size_t)nw],
                    wrn, wrn ? wr / wrn : NAN, won, won ? wo / won : NAN);
            rs += wr; rn += wrn; os += wo; on += won;
        }
        printf("%7d %9zu %9.4f %9zu %9.4f\n", T, rn, rn ? rs / rn : NAN, on, on ? os / on : NAN);
        free(mask);
    }
    out_close(csv);
    printf("wrote %s\n", path);
    free(tok); free(docs); free(params);
    model_free(&m);
    return 0;
}

static int mode_ppl(Options *o) {
    if (o->repeat) return mode_ppl_repeat(o);
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
    /* --docs: every window starts at the BOS of a held-out document longer than the longest length, the same
       documents at every length (spread evenly over those that qualify) */
    size_t *docs = NULL, nd = 0;
    if (o->docs) {
        int longest = 0;
        for (int i = 0; i < nl; i++) if (lengths[i] > longest) longest = lengths[i];
        nd = doc_starts(tok, ntok, (size_t)longest + 1, &docs);
        if (nd == 0) { fprintf(stderr, "error: --docs: %s has no document (BOS token 0 first) of %d tokens or more\nHINT: build a corpus with scripts/make_corpus.sh\n", o->data, longest + 1); return 1; }
        printf("windows start at the BOS of %d of the %zu documents of at least %d tokens; each document's loss from position %d on (--docs-from)\n",
               o->samples < (int)nd ? o->samples : (int)nd, nd, longest + 1, o->docs_from);
        for (int i = 0; i < nl; i++)
            if (lengths[i] <= o->docs_from) { fprintf(stderr, "error: --docs-from %d leaves no target at length %d: pass lengths above it or a smaller --docs-from\n", o->docs_from, lengths[i]); return 1; }
    }
    FILE *dcsv = NULL;   /* --docs: each document's loss, for paired tests between models */
    Scaling sc[8];
    int ns = parse_scalings(o->scalings ? o->scalings : (pe_scalable(c.pe) ? "none,ntk:4" : "none"), sc, 8, "one run scores at most 8");
    if (!pe_scalable(c.pe)) {
        for (int i = 0; i < ns; i++) if (strcmp(sc[i].label, "none") != 0) { fprintf(stderr, "error: rope scaling does not apply to %s; use --scalings none\n", pe_name(c.pe)); return 1; }
    }
    int S = o->stride > 0 ? o->stride : (L / 2 > 0 ? L / 2 : 1);
    if (S > L) { fprintf(stderr, "error: --stride %d is longer than the window %d (the training length): the targets between windows would go unscored\n", S, L); return 1; }
    if (ntok < 2) { fprintf(stderr, "error: %s holds %zu tokens; scoring needs at least 2\n", o->data, ntok); return 1; }
    ensure_dir(o->out);
    char path[4200];
    snprintf(path, sizeof(path), "%s/ppl_%s.csv", o->out, pe_name(c.pe));
    FILE *csv = out_open(path);
    if (csv == NULL) { fprintf(stderr, "error: cannot write %s\n", path); return 1; }
    fprintf(csv, "pe,scaling,length,band,band_start,band_end,loss,ppl,tokens,windows\n");
    if (o->docs) {
        snprintf(path, sizeof(path), "%s/ppl_docs_%s.csv", o->out, pe_name(c.pe));
        dcsv = out_open(path);
        if (dcsv == NULL) { fprintf(stderr, "error: cannot write %s\n", path); return 1; }
        fprintf(dcsv, "pe,scaling,length,doc_start,loss,from\n");
        snprintf(path, sizeof(path), "%s/ppl_%s.csv", o->out, pe_name(c.pe));
    }
    /* bands of positions: [0, L/2), [L/2, L), [L, 2L), [2L, 4L), [4L, 8L) */
    int band_edges[6] = {0, L / 2, L, 2 * L, 4 * L, 8 * L};
    double *plot_x = (double *)mallocCheck(sizeof(double) * nl * ns), *plot_y = (double *)mallocCheck(sizeof(double) * nl * ns);
    size_t *starts = (size_t *)mallocCheck(sizeof(size_t) * (size_t)o->samples);
    /* the windows to run, for the progress lines (and a length the shard cannot fill is found before the work) */
    int64_t total_windows = 0;
    double total_work = 0.0;
    for (int li = 0; li < nl; li++) {
        int64_t nw = o->docs ? (int64_t)((size_t)o->samples < nd ? (size_t)o->samples : nd) : disjoint_windows(ntok, lengths[li], o->samples, starts);
        if (nw == 0) { fprintf(stderr, "error: length %d needs more than the %zu tokens of %s\n", lengths[li], ntok, o->data); return 1; }
        total_windows += nw * ns;
        total_work += (double)nw * ns * lengths[li] * model_flops_per_token(&c, lengths[li]);
    }
    if (!o->docs) {
        size_t sliding = (ntok - 1 + (size_t)S - 1) / (size_t)S;
        total_windows += (int64_t)sliding;
        total_work += (double)sliding * L * model_flops_per_token(&c, L);
    }
    Progress progress;
    progress_start(&progress, "eval ppl: windows", total_windows, total_work);
    printf("\nloss (nats/token) by position band; up to %d windows of each length from %s, no target in two windows\n", o->samples, o->data);
    printf("%-10s %7s %7s %8s %8s |", "scaling", "length", "windows", "loss", "ppl");
    for (int b = 0; b < 5; b++) printf(" [%d,%d)", band_edges[b], band_edges[b + 1]);
    printf("\n");
    for (int si = 0; si < ns; si++) {
        Config cs;
        scaled_config(&cs, &c, &sc[si], o->ckpt);
        Model ms;
        model_init_from(&ms, &cs, params);
        for (int li = 0; li < nl; li++) {
            int T = lengths[li];
            int64_t nw;
            if (o->docs) {   /* the same held-out documents at every length, each window from a document's BOS */
                nw = (int64_t)((size_t)o->samples < nd ? (size_t)o->samples : nd);
                for (int64_t k = 0; k < nw; k++) starts[k] = docs[(size_t)k * nd / (size_t)nw];
            } else {
                nw = disjoint_windows(ntok, T, o->samples, starts);
            }
            if (nw == 0) { fprintf(stderr, "error: length %d needs more than the %zu tokens of %s\n", T, ntok, o->data); return 1; }
            double band_sum[5] = {0}, total = 0.0;
            size_t band_n[5] = {0}, total_n = 0;
            for (int64_t k = 0; k < nw; k++) {
                model_forward_loss(&ms, tok + starts[k], tok + starts[k] + 1, 1, T, 0);
                progress_step(&progress, T * model_flops_per_token(&c, T));
                if (dcsv != NULL) {
                    double dl = 0.0;   /* the targets from --docs-from on: past the start-of-document cost */
                    for (int t = o->docs_from; t < T; t++) dl += ms.losses_host[t];
                    fprintf(dcsv, "%s,%s,%d,%zu,%.6f,%d\n", pe_name(c.pe), sc[si].label, T, starts[k], dl / (T - o->docs_from), o->docs_from);
                }
                for (int t = 0; t < T; t++) {
                    double l = ms.losses_host[t];
                    total += l; total_n++;
                    for (int b = 0; b < 5; b++) if (t >= band_edges[b] && t < band_edges[b + 1]) { band_sum[b] += l; band_n[b]++; }
                }
            }
            double mean = total / total_n;
            printf("%-10s %7d %7lld %8.4f %8.3f |", sc[si].label, T, (long long)nw, mean, exp(mean));
            for (int b = 0; b < 5; b++) {
                if (band_n[b]) printf(" %*.4f", (int)(snprintf(NULL, 0, " [%d,%d)", band_edges[b], band_edges[b + 1]) - 1), band_sum[b] / band_n[b]);
                else printf(" %*s", (int)(snprintf(NULL, 0, " [%d,%d)", band_edges[b], band_edges[b + 1]) - 1), "-");
                if (band_n[b]) fprintf(csv, "%s,%s,%d,band,%d,%d,%.6f,%.6f,%zu,%lld\n", pe_name(c.pe), sc[si].label, T, band_edges[b], band_edges[b + 1], band_sum[b] / band_n[b], exp(band_sum[b] / band_n[b]), band_n[b], (long long)nw);
            }
            printf("\n");
            fprintf(csv, "%s,%s,%d,all,0,%d,%.6f,%.6f,%zu,%lld\n", pe_name(c.pe), sc[si].label, T, T, mean, exp(mean), total_n, (long long)nw);
            plot_x[si * nl + li] = T;
            plot_y[si * nl + li] = exp(mean);
        }
        model_free(&ms);
    }
    if (!o->docs) {   /* --docs scores documents only: the sliding window over a whole corpus shard would dominate */
        /* the sliding-window perplexity of the whole shard at window L, stride S: every target once */
        size_t scored, windows;
        double nll = sliding_window_nll(&m, tok, ntok, L, S, &scored, &windows, &progress);
        printf("\nsliding window (window %d, stride %d, %zu windows): %zu of the %zu targets scored, each once: loss %.4f, ppl %.4f\n",
               L, S, windows, scored, ntok - 1, nll / scored, exp(nll / scored));
        fprintf(csv, "%s,none,%d,sliding,0,%d,%.6f,%.6f,%zu,%zu\n", pe_name(c.pe), L, L, nll / scored, exp(nll / scored), scored, windows);
    }
    progress_end(&progress);
    out_close(csv);
    printf("wrote %s\n", path);
    Series s[8];
    for (int si = 0; si < ns; si++) { s[si].name = sc[si].label; s[si].n = nl; s[si].x = plot_x + si * nl; s[si].y = plot_y + si * nl; }
    char title[256];
    snprintf(title, sizeof(title), "%s: perplexity vs eval length (trained at %d)", pe_name(c.pe), L);
    snprintf(path, sizeof(path), "%s/ppl_%s.svg", o->out, pe_name(c.pe));
    svg_plot(path, title, "eval length (tokens)", "perplexity", 1, s, ns);
    free(plot_x); free(plot_y); free(tok); free(params); free(starts); free(docs);
    if (dcsv != NULL) out_close(dcsv);
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
    size_t *starts = (size_t *)mallocCheck(sizeof(size_t) * (size_t)o->samples);
    int64_t nw = disjoint_windows(ntok, T, o->samples, starts);
    if (nw == 0) { fprintf(stderr, "error: --seq %d needs more tokens than %s has\n", T, o->data); return 1; }
    /* distance buckets: 0, 1, [2,4), [4,8), ... up to T; averaged over queries t >= T/2 */
    int nb = 2;
    while ((1 << (nb - 1)) < T) nb++;
    double *mass = (double *)calloc((size_t)Lyr * NA * nb, sizeof(double));
    double *meand = (double *)calloc((size_t)Lyr * NA, sizeof(double)), *sink = (double *)calloc((size_t)Lyr * NA, sizeof(double));
    float *p = (float *)mallocCheck((size_t)NA * T * T * sizeof(float));
    size_t nq = 0;
    for (int64_t k = 0; k < nw; k++) {
        model_forward(&m, tok + starts[k], NULL, 1, T);
        for (int l = 0; l < Lyr; l++) {
            model_attention_probs(&m, l, T / 2, T, p);   /* the queries read below */
            for (int a = 0; a < NA; a++)
                for (int t = T / 2; t < T; t++) {
                    const float *row = p + ((size_t)a * T + t) * T;
                    for (int j = 0; j <= t; j++) {
                        int dist = t - j, b = dist == 0 ? 0 : 1;
                        while (b < nb - 1 && dist >= (1 << b)) b++;
                        mass[((size_t)l * NA + a) * nb + b] += row[j];
                        meand[(size_t)l * NA + a] += row[j] * dist;
                    }
                    sink[(size_t)l * NA + a] += attn_first_k_mass(row, t, ATTN_FIRST_K);
                }
        }
        nq += (size_t)(T - T / 2);
    }
    ensure_dir(o->out);
    char path[4200];
    snprintf(path, sizeof(path), "%s/patterns_%s.csv", o->out, pe_name(c.pe));
    FILE *csv = out_open(path);
    if (csv == NULL) { fprintf(stderr, "error: cannot write %s\n", path); return 1; }
    fprintf(csv, "pe,layer,head,kind,windows,queries,mean_distance,first4_mass");
    for (int b = 0; b < nb; b++) fprintf(csv, ",mass_d%d", b == 0 ? 0 : (1 << (b - 1)));
    fprintf(csv, "\n");
    printf("\nattention by query-key distance (queries in [%d, %d) of %lld disjoint windows: %zu queries per head): mean distance, mass on the first 4 tokens\n",
           T / 2, T, (long long)nw, nq);
    printf("%5s %5s %5s %10s %8s\n", "layer", "head", "kind", "mean dist", "first4");
    double kind_sum[2] = {0}, kind_sink[2] = {0};
    int kind_n[2] = {0};
    double *kind_mass = (double *)calloc(2 * (size_t)nb, sizeof(double));
    for (int l = 0; l < Lyr; l++)
        for (int a = 0; a < NA; a++) {
            int imag = m.d.imag && a % 2 == 1;
            double md = meand[(size_t)l * NA + a] / nq, sk = sink[(size_t)l * NA + a] / nq;
            printf("%5d %5d %5s %10.2f %8.4f\n", l, a, imag ? "imag" : "real", md, sk);
            fprintf(csv, "%s,%d,%d,%s,%lld,%zu,%.6f,%.6f", pe_name(c.pe), l, a, imag ? "imag" : "real", (long long)nw, nq, md, sk);
            for (int b = 0; b < nb; b++) {
                double v = mass[((size_t)l * NA + a) * nb + b] / nq;
                fprintf(csv, ",%.6f", v);
                kind_mass[(size_t)imag * nb + b] += v;
            }
            fprintf(csv, "\n");
            kind_sum[imag] += md; kind_sink[imag] += sk; kind_n[imag]++;
        }
    out_close(csv);
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
    free(mass); free(meand); free(sink); free(p); free(tok); free(params); free(kind_mass); free(bx); free(by); free(starts);
    model_free(&m);
    return 0;
}


/* ------------------------------------------------------------------------------------------------ tasks mode */
/* Score `samples` samples of a task at length T, generated in turn from one Rng seeded with `seed`: the fraction
   right, and the counts behind it: *n_out = what was scored, each once (the samples for the text tasks, exact
   match of the whole answer; every query of every sample for MQAR), *k_out = how many of those were right;
   correct (samples) or NULL: 1 where every scored prediction of the sample is right (paired tests). progress: NULL,
   or a step per sample. */
static double score_task(Model *m, int task, int T, const Options *o, uint64_t seed, int64_t *k_out, int64_t *n_out,
                         unsigned char *correct, Progress *progress) {
    TaskOptions to = eval_task_options(o, m->cfg.vocab_size);
    TaskSample s;
    task_sample_alloc(&s, T);
    Rng rng = {seed};
    int V = m->cfg.vocab_size;
    int *argmax = (int *)mallocCheck((size_t)T * sizeof(int));
    float *row = (float *)mallocCheck((size_t)V * sizeof(float));
    int64_t k = 0, n = 0;
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
        if (task == TASK_MQAR) { k += llround(task_score_fraction(&s, argmax) * s.n_score); n += s.n_score; }
        else { k += task_score_argmax(&s, argmax); n += 1; }
        if (correct != NULL) correct[i] = (unsigned char)task_score_argmax(&s, argmax);
        progress_step(progress, T);
    }
    task_sample_free(&s);
    free(argmax);
    free(row);
    *k_out = k;
    *n_out = n;
    return n > 0 ? (double)k / (double)n : 0.0;
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

/* What the run that wrote `ckpt` mixed into its batches (--mix in settings.txt beside it): 1 and the spec ("" for
   none), or 0 when unknown (a checkpoint outside a run folder). */
static int training_mix(const char *ckpt, char *mix, size_t n) {
    char path[4300], err[512];
    const char *slash = strrchr(ckpt, '/');
    snprintf(path, sizeof(path), "%.*ssettings.txt", slash ? (int)(slash - ckpt + 1) : 0, ckpt);
    char **flags, **values;
    int nf;
    if (settings_read(path, &flags, &values, &nf, err, sizeof(err)) != 0) return 0;
    mix[0] = '\0';
    for (int i = 0; i < nf; i++) if (strcmp(flags[i], "--mix") == 0) snprintf(mix, n, "%s", values[i]);
    settings_free(flags, values, nf);
    return 1;
}

/* 1 if task `name` is in a --mix spec ("passkey:0.2,mqar:0.1") */
static int mix_has(const char *mix, const char *name) {
    size_t len = strlen(name);
    for (const char *p = mix; (p = strstr(p, name)) != NULL; p += len)
        if ((p == mix || p[-1] == ',') && p[len] == ':') return 1;
    return 0;
}

/* Whether the model was trained on a task (eval tasks and noise): 1 in the --mix of the run that wrote it, 0 not
   in it (a task never in its batches cannot score above chance), -1 unknown (no settings.txt beside the
   checkpoint). mix, mix_known: from training_mix. */
static int task_trained(const char *mix, int mix_known, int task) {
    return mix_known ? mix_has(mix, task_name(task)) : -1;
}

/* a task's name in tables and plots: marked " (not trained)" where task_trained says 0 */
static void task_label(char *out, size_t n, int task, int trained) {
    snprintf(out, n, "%s%s", task_name(task), trained == 0 ? " (not trained)" : "");
}

/* what a plot title adds when one of its tasks is marked (not trained) */
static const char *untrained_title(int untrained) { return untrained ? "; (not trained): not in --mix" : ""; }

/* The note under a task table: a task marked (not trained) scores about 0% because it was never trained on, or
   whether it was is unknown. Nothing when every task was trained on. */
static void print_training_note(int untrained, int mix_known, const char *mix) {
    if (untrained > 0)
        printf("note: %s; a task marked (not trained) was never in its batches, so it cannot score above chance: train with --mix to measure it\n",
               mix[0] ? "the model was trained with a task mix that leaves some of these out" : "the model was trained without --mix (no task rows)");
    else if (!mix_known)
        printf("note: no settings.txt beside the checkpoint, so whether the model was trained on these tasks (--mix) is unknown\n");
}

/* --depth is read by the text tasks only (mqar draws its own query positions): given for a task list of mqar alone
   it would be dropped, so it is refused (exits). (--mqar-filler and --mqar-kv describe the model's training, one
   set for every task list: see eval_flags.) */
static void check_task_flags(const Options *o, const char *mode, const int *tasks, int nt) {
    int text = 0;
    for (int i = 0; i < nt; i++) text |= tasks[i] != TASK_MQAR;
    if (!text && flag_given(o, "--depth")) {
        fprintf(stderr, "error: --depth is not used by eval %s on these tasks (it applies to the text tasks, not mqar); drop it, or add a text task to --tasks\n", mode);
        exit(1);
    }
}

static int mode_tasks(Options *o) {
    Config c;
    double *params;
    read_checkpoint(&c, &params, o);
    Scaling sc[1];
    parse_scalings(o->scalings ? o->scalings : "none", sc, 1, "eval tasks takes one --scalings item (eval ppl takes a list)");
    Config cs;
    scaled_config(&cs, &c, &sc[0], o->ckpt);
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
        for (int i = 0; i < nt; i++) {
            if (tasks[i] == TASK_MQAR) tasks[k++] = tasks[i];
            else if (o->tasks) {   /* asked for by name: refused, not dropped */
                fprintf(stderr, "error: --tasks %s: a text task needs a byte-level model (vocab 256; this one has %d); use mqar\n", task_name(tasks[i]), c.vocab_size);
                return 1;
            }
        }
        nt = k;
    }
    check_task_flags(o, "tasks", tasks, nt);
    ensure_dir(o->out);
    char path[4200];
    snprintf(path, sizeof(path), "%s/tasks_%s.csv", o->out, pe_name(c.pe));
    FILE *csv = out_open(path);
    if (csv == NULL) { fprintf(stderr, "error: cannot write %s\n", path); return 1; }
    fprintf(csv, "pe,scaling,task,length,accuracy,ci_low,ci_high,correct,scored,samples,seed,in_training_mix\n");
    /* a task the model never saw in training scores about 0%: say so, instead of a silent 0% panel */
    char mix[1024];
    int mix_known = training_mix(o->ckpt, mix, sizeof(mix)), untrained = 0;
    printf("\naccuracy (exact match of the teacher-forced argmax; MQAR per query) with 95%% Wilson intervals and right/scored,\n"
           "%d samples, scaling %s\n", o->samples, sc[0].label);
    printf("%-16s", "task");
    for (int li = 0; li < nl; li++) printf(" %30d", lengths[li]);
    printf("\n");
    double *ys = (double *)mallocCheck(sizeof(double) * nt * nl), *xs = (double *)mallocCheck(sizeof(double) * nl);
    TaskOptions to = eval_task_options(o, c.vocab_size);
    for (int li = 0; li < nl; li++) xs[li] = lengths[li];
    /* the samples to score, for the progress lines */
    int64_t total_samples = 0;
    double total_work = 0.0;
    for (int ti = 0; ti < nt; ti++)
        for (int li = 0; li < nl; li++)
            if (task_min_len(tasks[ti], &to) <= lengths[li]) { total_samples += o->samples; total_work += (double)o->samples * lengths[li]; }
    Progress progress;
    progress_start(&progress, "eval tasks: samples", total_samples, total_work);
    static char names[TASK_COUNT][64];
    for (int ti = 0; ti < nt; ti++) {
        int trained = task_trained(mix, mix_known, tasks[ti]);
        untrained += trained == 0;
        task_label(names[ti], sizeof(names[ti]), tasks[ti], trained);
        printf("%-16s", trained == 0 ? names[ti] : task_name(tasks[ti]));
        if (trained == 0) printf("\n%-16s", "");
        for (int li = 0; li < nl; li++) {
            ys[ti * nl + li] = NAN;
            if (task_min_len(tasks[ti], &to) > lengths[li]) { printf(" %30s", "(too short)"); continue; }
            int64_t k, n;
            double lo, hi;
            uint64_t seed = o->seed * 1000003ull + (uint64_t)ti * 7919u + (uint64_t)lengths[li];
            double acc = score_task(&m, tasks[ti], lengths[li], o, seed, &k, &n, NULL, &progress);
            stat_wilson((double)k, (double)n, &lo, &hi);
            char counts[32];
            snprintf(counts, sizeof(counts), "%lld/%lld", (long long)k, (long long)n);
            printf("   %5.1f%% [%4.1f,%5.1f] %9s", 100 * acc, 100 * lo, 100 * hi, counts);
            fflush(stdout);
            fprintf(csv, "%s,%s,%s,%d,%.6f,%.6f,%.6f,%lld,%lld,%d,%llu,%s\n", pe_name(c.pe), sc[0].label, task_name(tasks[ti]), lengths[li], acc, lo, hi,
                    (long long)k, (long long)n, o->samples, (unsigned long long)seed, trained < 0 ? "unknown" : trained ? "yes" : "no");
            ys[ti * nl + li] = 100 * acc;
        }
        printf("\n");
    }
    progress_end(&progress);
    out_close(csv);
    print_training_note(untrained, mix_known, mix);
    printf("wrote %s\n", path);
    Series s[TASK_COUNT];
    for (int ti = 0; ti < nt; ti++) { s[ti].name = names[ti]; s[ti].n = nl; s[ti].x = xs; s[ti].y = ys + ti * nl; }
    char title[256];
    snprintf(title, sizeof(title), "%s: task accuracy vs length (trained at %d)%s", pe_name(c.pe), L, untrained_title(untrained));
    snprintf(path, sizeof(path), "%s/tasks_%s.svg", o->out, pe_name(c.pe));
    PlotStyle pct = {1, 0, 0.0, 100.0, NULL, NULL};   /* accuracy in %: the axis 0-100, also when every task is at 0 */
    svg_plot_styled(path, title, "length (tokens)", "accuracy (%)", &pct, s, nt);
    free(ys); free(xs); free(params);
    model_free(&m);
    return 0;
}

/* ------------------------------------------------------------------------------------------------ noise mode */
/* Each layer's query RMS over the rotated queries of the first n samples of a task (clean forwards): rms (L). */
static void query_rms(Model *m, int task, int T, const Options *o, uint64_t seed, int n, double *rms) {
    TaskOptions to = eval_task_options(o, m->cfg.vocab_size);
    TaskSample s;
    task_sample_alloc(&s, T);
    Rng rng = {seed};
    char err[512];
    int Lyr = m->cfg.n_layers;
    size_t nq = (size_t)T * m->d.NA * m->d.HD;
    for (int l = 0; l < Lyr; l++) rms[l] = 0.0;
    for (int i = 0; i < n; i++) {
        if (task_generate(&s, task, T, &to, &rng, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); exit(1); }
        model_forward(m, s.tokens, NULL, 1, T);
        for (int l = 0; l < Lyr; l++) {
            float *q = backend_floatX_to_host(layer_acts(m, l).qr, nq);
            double ss = 0.0;
            for (size_t e = 0; e < nq; e++) ss += (double)q[e] * q[e];
            rms[l] += ss / (double)nq / n;
            free(q);
        }
    }
    for (int l = 0; l < Lyr; l++) rms[l] = sqrt(rms[l]);
    task_sample_free(&s);
}

/* Discordant pairs of two arms' per-sample outcomes: b right only in arm a, c right only in arm b. */
static void discordant(const unsigned char *a, const unsigned char *b, int n, long *only_a, long *only_b) {
    *only_a = 0; *only_b = 0;
    for (int i = 0; i < n; i++) { *only_a += a[i] && !b[i]; *only_b += !a[i] && b[i]; }
}

/* A copy of the parameters (table order) with the output columns of every real (kind 0) or imaginary (kind 1)
   attention head zeroed in attprojw (L, C, NA*HD): the head's output no longer reaches the residual stream. */
static double *params_zero_heads(const Model *m, const double *params, int kind) {
    double *p = (double *)mallocCheck(sizeof(double) * m->num_params);
    memcpy(p, params, sizeof(double) * m->num_params);
    size_t off = param_offset(m, P_ATTPROJW);
    int C = m->cfg.dim, NA = m->d.NA, HD = m->d.HD;
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int r = 0; r < C; r++)
            for (int a = kind; a < NA; a += 2)
                for (int d = 0; d < HD; d++) p[off + ((size_t)l * C + r) * NA * HD + (size_t)a * HD + d] = 0.0;
    return p;
}

static int mode_noise(Options *o) {
    Model m;
    Config c;
    double *params;
    load_model(&m, &c, &params, o);
    int T = o->seq > 0 ? o->seq : c.train_seq, task;
    TaskOptions to = eval_task_options(o, c.vocab_size);
    if (o->tasks) {
        int list[TASK_COUNT];
        if (parse_task_list(o->tasks, list) != 1) { fprintf(stderr, "error: eval noise takes one task\n"); return 1; }
        task = list[0];
    } else {
        task = (c.vocab_size >= 256 && task_min_len(TASK_PASSKEY, &to) <= T) ? TASK_PASSKEY : TASK_MQAR;
    }
    if (task_min_len(task, &to) > T) { fprintf(stderr, "error: task %s needs --seq >= %d\n", task_name(task), task_min_len(task, &to)); return 1; }
    check_task_flags(o, "noise", &task, 1);
    /* a task the model never saw in training scores about 0% at every sigma: said in the table and the plot, as
       in eval tasks */
    char mix[1024], label[96];
    int mix_known = training_mix(o->ckpt, mix, sizeof(mix)), trained = task_trained(mix, mix_known, task);
    task_label(label, sizeof(label), task, trained);
    double sig[64];
    int ns = 0;
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", o->sigmas ? o->sigmas : o->relative ? "0,0.25,0.5,0.75,1,1.5" : "0,0.2,0.4,0.6,0.8,1.0,1.2,1.5");
    for (char *t = strtok(buf, ","); t && ns < 64; t = strtok(NULL, ",")) sig[ns++] = flag_number("./eval", "--sigmas", t, 0, 1e3);
    int ntarget = m.d.imag ? 2 : 1, N = o->samples;
    uint64_t task_seed = o->seed * 1000003ull + 17;   /* the same samples for every sigma, arm and ablation */
    double *rms = (double *)mallocCheck(sizeof(double) * c.n_layers);
    if (o->relative) {
        query_rms(&m, task, T, o, task_seed, N < 8 ? N : 8, rms);
        m.noise_layer_scale = rms;
        printf("query RMS per layer:");
        for (int l = 0; l < c.n_layers; l++) printf(" %.4f", rms[l]);
        printf(" (sigma is relative to it)\n");
    }
    ensure_dir(o->out);
    char path[4200], err[512];
    snprintf(path, sizeof(path), "%s/noise_%s.csv", o->out, pe_name(c.pe));
    FILE *csv = out_open(path);
    if (csv == NULL) { fprintf(stderr, "error: cannot write %s\n", path); return 1; }
    fprintf(csv, "pe,task,length,target,sigma,relative,accuracy,ci_low,ci_high,correct,scored,real_only,imag_only,p_mcnemar,seed,in_training_mix\n");
    const char *in_mix = trained < 0 ? "unknown" : trained ? "yes" : "no";
    printf("\nnoise experiment: %s at length %d, %d samples; N(0, sigma^2%s) on the rotated %s queries, the same noise seeds in each arm\n",
           label, T, N, o->relative ? " x layer query RMS^2" : "", m.d.imag ? "real or imaginary" : "(real)");
    printf("%6s %32s%s\n", "sigma", "real (right/scored)", m.d.imag ? "    imaginary (right/scored)  McNemar (real-only / imag-only, p)" : "");
    double *ys = (double *)mallocCheck(sizeof(double) * 2 * ns);
    unsigned char *ok[2];
    ok[0] = (unsigned char *)mallocCheck((size_t)N); ok[1] = (unsigned char *)mallocCheck((size_t)N);
    int64_t total_samples = (int64_t)N * (ns * ntarget + (m.d.imag ? 2 : 0));   /* every sigma and arm, then the ablation */
    Progress progress;
    progress_start(&progress, "eval noise: samples", total_samples, (double)total_samples * T);
    for (int i = 0; i < ns; i++) {
        printf("%6.2f", sig[i]);
        for (int tg = 0; tg < ntarget; tg++) {
            int target = tg == 0 ? NOISE_REAL : NOISE_IMAG;
            if (model_set_noise(&m, target, sig[i], 0xA0153ull + (uint64_t)i, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); return 1; }
            int64_t k, n;
            double lo, hi;
            double acc = score_task(&m, task, T, o, task_seed, &k, &n, ok[tg], &progress);
            stat_wilson((double)k, (double)n, &lo, &hi);
            char counts[32];
            snprintf(counts, sizeof(counts), "%lld/%lld", (long long)k, (long long)n);
            printf("   %5.1f%% [%4.1f,%5.1f] %9s", 100 * acc, 100 * lo, 100 * hi, counts);
            fflush(stdout);
            long b = 0, cc = 0;
            double p = NAN;
            if (tg == 1) { discordant(ok[0], ok[1], N, &b, &cc); p = stat_mcnemar(b, cc); printf("   %ld / %ld, p %.3g", b, cc, p); }
            fprintf(csv, "%s,%s,%d,%s,%.3f,%d,%.6f,%.6f,%.6f,%lld,%lld,%ld,%ld,%.6g,%llu,%s\n", pe_name(c.pe), task_name(task), T, tg == 0 ? "real" : "imag",
                    sig[i], o->relative, acc, lo, hi, (long long)k, (long long)n, b, cc, p, (unsigned long long)task_seed, in_mix);
            ys[tg * ns + i] = 100 * acc;
        }
        printf("\n");
    }
    model_set_noise(&m, NOISE_NONE, 0.0, 0, err, sizeof(err));
    if (m.d.imag) {   /* ablation: every imaginary head's output zeroed vs every real head's, on the same samples */
        printf("\nablation (%s, the same %d samples): heads' outputs zeroed in every layer\n", task_name(task), N);
        for (int kind = 0; kind < 2; kind++) {
            double *pz = params_zero_heads(&m, params, kind);
            Model mz;
            model_init_from(&mz, &c, pz);
            int64_t k, n;
            double lo, hi;
            double acc = score_task(&mz, task, T, o, task_seed, &k, &n, ok[kind], &progress);
            stat_wilson((double)k, (double)n, &lo, &hi);
            long b = 0, cc = 0;
            double p = NAN;
            if (kind == 1) { discordant(ok[0], ok[1], N, &b, &cc); p = stat_mcnemar(b, cc); }
            printf("  %-15s %5.1f%% [%4.1f,%5.1f]", kind == 0 ? "real zeroed" : "imag zeroed", 100 * acc, 100 * lo, 100 * hi);
            if (kind == 1) printf("   McNemar: right only with real zeroed %ld, only with imag zeroed %ld, p %.3g", b, cc, p);
            printf("\n");
            fprintf(csv, "%s,%s,%d,%s,0,%d,%.6f,%.6f,%.6f,%lld,%lld,%ld,%ld,%.6g,%llu,%s\n", pe_name(c.pe), task_name(task), T,
                    kind == 0 ? "zero_real_heads" : "zero_imag_heads", o->relative, acc, lo, hi, (long long)k, (long long)n, b, cc, p,
                    (unsigned long long)task_seed, in_mix);
            model_free(&mz);
            free(pz);
        }
    }
    progress_end(&progress);
    out_close(csv);
    print_training_note(trained == 0, mix_known, mix);
    for (int i = 0; i < ns; i++)   /* nothing to lose: the rows with noise cannot show an effect */
        if (sig[i] == 0.0 && ys[i] == 0.0)
            printf("note: without noise (sigma 0) the accuracy is already 0%%: the model does not solve %s at length %d, so the "
                   "noise rows cannot show an effect (%s%s%s)\n", task_name(task), T,
                   trained > 0 ? "train longer: " : "train longer, or with --mix ", task_name(task), trained > 0 ? " is already in the training mix" : ":...");
    printf("wrote %s\n", path);
    Series s[2] = {{"noise on real queries", ns, sig, ys}, {"noise on imaginary queries", ns, sig, ys + ns}};
    char title[256];
    snprintf(title, sizeof(title), "%s: %s accuracy vs query noise (length %d)%s", pe_name(c.pe), label, T, untrained_title(trained == 0));
    snprintf(path, sizeof(path), "%s/noise_%s.svg", o->out, pe_name(c.pe));
    PlotStyle pct = {0, 0, 0.0, 100.0, NULL, NULL};   /* accuracy in %: the axis 0-100 */
    svg_plot_styled(path, title, o->relative ? "noise sigma / layer query RMS" : "noise sigma", "accuracy (%)", &pct, s, ntarget);
    free(ys); free(params); free(rms); free(ok[0]); free(ok[1]);
    m.noise_layer_scale = NULL;
    model_free(&m);
    return 0;
}

/* ------------------------------------------------------------------------------------------------ attn mode */
/* Paper Fig. 5 measures per layer and attention head (analysis.h): on BOS-started windows of held-out documents,
   queries in the second half, the sink mass (position 0), the mass on the first ATTN_FIRST_K positions (BOS
   included: Fig. 5's "initial positions") and the far ratio (non-BOS mass beyond T/4 over uniform); on fixed text-task samples, the retrieval score (the fraction of answer tokens whose top key is the
   needle token being copied). Real head 2h and imaginary head 2h+1 share q head h (column qhead). */
static int mode_attn(Options *o) {
    Model m;
    Config c;
    double *params;
    load_model(&m, &c, &params, o);
    int T = o->seq > 0 ? o->seq : c.train_seq, NA = m.d.NA, Lyr = c.n_layers;
    char err[1024];
    int *tok;
    size_t ntok, *docs;
    if (shard_read_all(o->data, c.vocab_size, &tok, &ntok, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); return 1; }
    size_t nd = doc_starts(tok, ntok, (size_t)T, &docs);
    if (nd == 0) { fprintf(stderr, "error: %s has no document (BOS token 0 first) of %d tokens or more\nHINT: build a corpus with scripts/make_corpus.sh\n", o->data, T); return 1; }
    int nwin = (size_t)o->samples > nd ? (int)nd : o->samples;
    size_t nh = (size_t)Lyr * NA;
    double *sink = (double *)calloc(nh, sizeof(double)), *far = (double *)calloc(nh, sizeof(double));
    double *first = (double *)calloc(nh, sizeof(double));
    double *hits = (double *)calloc(nh, sizeof(double));
    long *far_n = (long *)calloc(nh, sizeof(long));
    float *p = (float *)mallocCheck((size_t)NA * T * T * sizeof(float));
    long nq = 0;
    for (int k = 0; k < nwin; k++) {
        model_forward(&m, tok + docs[(size_t)k * nd / nwin], NULL, 1, T);
        for (int l = 0; l < Lyr; l++) {
            model_attention_probs(&m, l, T / 2, T, p);   /* the queries read below */
            for (int a = 0; a < NA; a++)
                for (int t = T / 2; t < T; t++) {
                    const float *row = p + ((size_t)a * T + t) * T;
                    size_t h = (size_t)l * NA + a;
                    sink[h] += attn_sink_mass(row, t);
                    first[h] += attn_first_k_mass(row, t, ATTN_FIRST_K);
                    double r = attn_far_ratio(row, t, T);
                    if (!isnan(r)) { far[h] += r; far_n[h]++; }
                }
        }
        nq += T - T / 2;
    }
    /* retrieval on the text task (the niah one that fits, else passkey) */
    TaskOptions to = eval_task_options(o, c.vocab_size);
    int task = -1;
    if (o->tasks) {
        int list[TASK_COUNT];
        if (parse_task_list(o->tasks, list) != 1 || list[0] == TASK_MQAR) { fprintf(stderr, "error: eval attn takes one text task\n"); return 1; }
        task = list[0];
        if (task_min_len(task, &to) > T) { fprintf(stderr, "error: task %s needs --seq >= %d\n", task_name(task), task_min_len(task, &to)); return 1; }
    } else {
        int order[3] = {TASK_NIAH_MULTIKEY, TASK_NIAH_SINGLE, TASK_PASSKEY};
        for (int i = 0; i < 3 && task < 0; i++) if (c.vocab_size >= 256 && task_min_len(order[i], &to) <= T) task = order[i];
    }
    long n_answer = 0;
    if (task >= 0) {
        TaskSample ts;
        task_sample_alloc(&ts, T);
        Rng rng = {o->seed * 1000003ull + 29};
        for (int k = 0; k < o->samples; k++) {
            if (task_generate(&ts, task, T, &to, &rng, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); return 1; }
            int src = copy_source(ts.tokens, ts.answer_start, ts.answer_len);
            if (src < 0) continue;
            model_forward(&m, ts.tokens, NULL, 1, T);
            for (int l = 0; l < Lyr; l++) {
                model_attention_probs(&m, l, ts.answer_start - 1, ts.answer_start - 1 + ts.answer_len, p);   /* the answer rows */
                for (int a = 0; a < NA; a++)
                    for (int i = 0; i < ts.answer_len; i++) {
                        int t = ts.answer_start - 1 + i;
                        hits[(size_t)l * NA + a] += attn_top_key(p + ((size_t)a * T + t) * T, t) == src + i;
                    }
            }
            n_answer += ts.answer_len;
        }
        task_sample_free(&ts);
    }
    ensure_dir(o->out);
    char path[4200];
    snprintf(path, sizeof(path), "%s/attn_%s.csv", o->out, pe_name(c.pe));
    FILE *csv = out_open(path);
    if (csv == NULL) { fprintf(stderr, "error: cannot write %s\n", path); return 1; }
    fprintf(csv, "pe,length,layer,head,qhead,kind,sink_mass,far_ratio,retrieval,retrieval_n,windows,first_k_mass,first_k\n");
    printf("\nattention (paper Fig. 5) at T %d: %d BOS-started documents, queries in [%d, %d); retrieval on %d %s samples (%ld answer tokens)\n",
           T, nwin, T / 2, T, task >= 0 ? o->samples : 0, task >= 0 ? task_name(task) : "(no text task fits)", n_answer);
    printf("%5s %5s %5s %5s %10s %10s %10s\n", "layer", "head", "qhead", "kind", "sink", "far/unif", "retrieval");
    double ksum[2][4] = {{0}}; int kn[2] = {0, 0};
    for (int l = 0; l < Lyr; l++)
        for (int a = 0; a < NA; a++) {
            size_t h = (size_t)l * NA + a;
            int imag = m.d.imag && a % 2 == 1;
            double sk = sink[h] / nq, fr = far_n[h] ? far[h] / far_n[h] : NAN, rt = n_answer ? hits[h] / n_answer : NAN;
            printf("%5d %5d %5d %5s %10.4f %10.4f %10.4f\n", l, a, m.d.imag ? a / 2 : a, imag ? "imag" : "real", sk, fr, rt);
            fprintf(csv, "%s,%d,%d,%d,%d,%s,%.6f,%.6f,%.6f,%ld,%d,%.6f,%d\n", pe_name(c.pe), T, l, a, m.d.imag ? a / 2 : a, imag ? "imag" : "real", sk, fr, rt,
                    n_answer, nwin, first[h] / nq, ATTN_FIRST_K);
            ksum[imag][3] += first[h] / nq;
            ksum[imag][0] += sk; ksum[imag][1] += fr; ksum[imag][2] += rt; kn[imag]++;
        }
    out_close(csv);
    for (int k = 0; k < 2; k++)
        if (kn[k]) printf("summary: %s heads: sink %.4f, far/uniform %.4f, retrieval %.4f, first %d %.4f (means over %d heads)\n", k ? "imaginary" : "real",
                          ksum[k][0] / kn[k], ksum[k][1] / kn[k], ksum[k][2] / kn[k], ATTN_FIRST_K, ksum[k][3] / kn[k], kn[k]);
    if (pe_is_rotary(c.pe)) {   /* what the frequencies alone predict at these distances (paper Eq. 5, 7) */
        printf("characteristic curves, head dim %d, base %g:", m.d.HD, c.rope_base);
        for (int f = 8; f >= 1; f /= 2) {
            double cr, ci;
            characteristic_curves(&cr, &ci, (double)T / f, m.d.HD, c.rope_base);
            printf("  dt=T/%d: c_Re %.4f c_Im %.4f", f, cr, ci);
        }
        printf("\n");
    }
    printf("wrote %s\n", path);
    free(sink); free(first); free(far); free(far_n); free(hits); free(p); free(tok); free(docs); free(params);
    model_free(&m);
    return 0;
}

/* ------------------------------------------------------------------------------------------------ plot mode */
/* A line plot of a CSV with a header row: x and y columns, one series per value of the group column, rows kept
   only where every --where COL=VAL holds. */
typedef struct { const char *csv, *x, *y, *group, *title, *xlabel, *ylabel, *path; const char *where[8]; int n_where, logx, logy;
                 const char *runs[16]; int n_runs, smooth; } PlotArgs;

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
    if (!a->csv || !a->x || !a->y || !a->group || !a->path) { fprintf(stderr, "error: eval plot needs --csv, --x, --y, --group and --out FILE.svg (or --run DIR for loss curves)\n"); return 1; }
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
        /* several rows at one x in a line would zigzag: the rows differ in a column not selected */
        for (int i = 1; i < counts[k]; i++)
            if (xs[k][i] == xs[k][i - 1]) {
                fprintf(stderr, "error: the line '%s' has several rows at %s = %g; keep one kind of row with --where COL=VALUE%s\n",
                        names[k], a->x, xs[k][i], col_index(hdr, nh, "band") >= 0 ? " (here: --where band=all)" : "");
                return 1;
            }
        s[k].name = names[k]; s[k].n = counts[k]; s[k].x = xs[k]; s[k].y = ys[k];
    }
    PlotStyle st = {a->logx, a->logy, 0.0, 0.0, NULL, NULL};
    svg_plot_styled(a->path, a->title ? a->title : a->y, a->xlabel ? a->xlabel : a->x, a->ylabel ? a->ylabel : a->y, &st, s, ns);
    return 0;
}

/* The points of one key of a run's log (RUN/train.jsonl, or a .jsonl file): x[] the steps, y[] the values (malloc'd).
   Returns how many, or -1 when the log cannot be opened (message printed). */
static int log_points(const char *run, const char *key, double **x_out, double **y_out) {
    enum { MAXP = 100000 };
    char path[4300], pattern[64], line[4096];
    struct stat st;
    if (stat(run, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(path, sizeof(path), "%s/train.jsonl", run);
    else snprintf(path, sizeof(path), "%s", run);
    FILE *fp = fopen(path, "r");
    if (fp == NULL) { fprintf(stderr, "error: cannot open the log '%s': %s (--run takes a run folder or its train.jsonl)\n", path, strerror(errno)); return -1; }
    snprintf(pattern, sizeof(pattern), "\"%s\": ", key);
    double *x = (double *)mallocCheck(sizeof(double) * MAXP), *y = (double *)mallocCheck(sizeof(double) * MAXP);
    int n = 0, step;
    while (n < MAXP && fgets(line, sizeof(line), fp) != NULL) {
        const char *v = strstr(line, pattern);
        if (sscanf(line, "{\"step\": %d", &step) != 1 || v == NULL) continue;
        x[n] = step;
        y[n] = atof(v + strlen(pattern));
        n++;
    }
    fclose(fp);
    *x_out = x;
    *y_out = y;
    return n;
}

/* y[i] = the mean of y[max(0, i - w + 1) .. i] (a trailing window of w points), in place */
static void window_mean(double *y, int n, int w) {
    double sum = 0.0, *orig = (double *)mallocCheck(sizeof(double) * (n > 0 ? n : 1));
    memcpy(orig, y, sizeof(double) * n);
    for (int i = 0; i < n; i++) {
        sum += orig[i];
        if (i >= w) sum -= orig[i - w];
        y[i] = sum / (i + 1 < w ? i + 1 : w);
    }
    free(orig);
}

/* Loss curves of runs: per run (one colour each) the training loss as a trailing mean of --smooth N logged steps
   (default: 5% of the run's steps, at least 1; 1 = raw) as a solid line, and the validation loss as a dashed line
   with a marker per validation; --y loss or --y val_loss keeps one of them; --log-y a log y axis. */
static int mode_plot_runs(const PlotArgs *a) {
    int want_train = a->y == NULL || strcmp(a->y, "loss") == 0, want_val = a->y == NULL || strcmp(a->y, "val_loss") == 0;
    if (!want_train && !want_val) { fprintf(stderr, "error: --y '%s' with --run: loss or val_loss (default: both)\n", a->y); return 1; }
    Series s[32];
    int color[32], style[32], ns = 0, rc = 0, smooth_used = 0;
    static char names[32][320];
    for (int r = 0; r < a->n_runs && rc == 0; r++) {
        char name[4300];
        snprintf(name, sizeof(name), "%s", a->runs[r]);
        size_t len = strlen(name);
        while (len > 1 && name[len - 1] == '/') name[--len] = '\0';
        const char *base = strrchr(name, '/');
        base = base ? base + 1 : name;
        for (int k = 0; k < 2; k++) {
            if (!(k == 0 ? want_train : want_val)) continue;
            const char *key = k == 0 ? "loss" : "val_loss";
            double *x, *y;
            int n = log_points(a->runs[r], key, &x, &y);
            if (n < 0) { rc = 1; break; }
            printf("%s: %d point%s of %s\n", a->runs[r], n, n == 1 ? "" : "s", key);
            if (n == 0) {
                free(x); free(y);
                if (k == 1 && want_train) continue;   /* a run without a validation yet: its training curve alone */
                fprintf(stderr, "error: '%s' has no line with \"%s\" (keys: loss, val_loss)\n", a->runs[r], key);
                rc = 1;
                break;
            }
            int w = a->smooth > 0 ? a->smooth : (n / 20 > 1 ? n / 20 : 1);
            if (k == 0) { window_mean(y, n, w); if (w > smooth_used) smooth_used = w; }
            snprintf(names[ns], sizeof(names[ns]), "%.200s %s", base, k == 0 ? "train" : "val");
            s[ns].name = names[ns]; s[ns].n = n; s[ns].x = x; s[ns].y = y;
            color[ns] = r; style[ns] = k;
            ns++;
        }
    }
    if (rc == 0) {
        char out[4300], title[256], ylabel[128];
        if (a->path) snprintf(out, sizeof(out), "%s", a->path);
        else {
            struct stat st;
            int dir = stat(a->runs[0], &st) == 0 && S_ISDIR(st.st_mode);
            /* one run: RUN/loss.svg; several: RUN/loss_vs_runs.svg, so that the first run's own plot stays */
            snprintf(out, sizeof(out), "%s/%s%s.svg", dir ? a->runs[0] : ".", a->y ? a->y : "loss", a->n_runs > 1 ? "_vs_runs" : "");
        }
        char smooth[64] = "";
        if (want_train) snprintf(smooth, sizeof(smooth), smooth_used > 1 ? "mean of the last %d steps" : "raw, every step", smooth_used);
        if (want_train && want_val) snprintf(title, sizeof(title), "training loss (solid: %s), validation loss (dashed)", smooth);
        else if (want_train) snprintf(title, sizeof(title), "training loss (%s)", smooth);
        else snprintf(title, sizeof(title), "validation loss");
        snprintf(ylabel, sizeof(ylabel), "loss (nats/token%s)", a->logy ? ", log scale" : "");
        PlotStyle st = {a->logx, a->logy, 0.0, 0.0, color, style};
        svg_plot_styled(out, a->title ? a->title : title, a->xlabel ? a->xlabel : "step", a->ylabel ? a->ylabel : ylabel, &st, s, ns);
    }
    for (int k = 0; k < ns; k++) { free((void *)s[k].x); free((void *)s[k].y); }
    return rc;
}

/* ------------------------------------------------------------------------------------------------ stat mode */
/* The report's statistics (analysis.h; the rule and its reasons: docs/STATS.md):
     eval stat sign POS NEG | mcnemar B C | wilson K N     exact tests from counts
     eval stat growth PPL_CSV T [SCALING]                  paper Fig. 6 growth past T of one run (ppl_growth)
     eval stat claims FILE [--alpha A] [--svg OUT.svg]     every claim of a report: rules, verdict table, figure
   A claims file is tab-separated, '#' lines ignored; every claim is declared before its values:
     claim  ID  test|describe|unmeasurable  NULL  SOURCE  CLAIM  METRIC (unmeasurable: the reason)
     value  ID  SEED  VALUE        one per unit (document, head pair, sample); a seed's number is their mean */
enum { CL_MAX = 64, CL_SEEDS = 20 };
typedef struct {
    char id[48], source[160], text[400], metric[800];
    int kind, ns;
    double null;
    int seed[CL_SEEDS];
    long units[CL_SEEDS];
    double sum[CL_SEEDS], d[CL_SEEDS];
} ClaimRow;

/* splits line at tabs into at most max fields (the newline dropped); returns the count */
static int tab_split(char *line, char **f, int max) {
    int n = 0;
    char *nl = strpbrk(line, "\r\n");
    if (nl) *nl = '\0';
    for (char *p = line; n < max; ) {
        f[n++] = p;
        char *tab = strchr(p, '\t');
        if (tab == NULL) break;
        *tab = '\0';
        p = tab + 1;
    }
    return n;
}

/* a finite number that is the whole of text, else -1 */
static int parse_finite(const char *text, double *out) {
    char *end;
    errno = 0;
    *out = strtod(text, &end);
    return (end == text || *end != '\0' || errno != 0 || !isfinite(*out)) ? -1 : 0;
}

/* Reads a claims file into rows (at most CL_MAX); 0, or -1 with the line and reason printed. */
static int claims_read(const char *path, ClaimRow *rows, int *nrows) {
    FILE *fp = fopen(path, "r");
    if (fp == NULL) { fprintf(stderr, "error: cannot open claims file '%s': %s\n", path, strerror(errno)); return -1; }
    static const char *kinds[3] = {"test", "describe", "unmeasurable"};
    char line[4096], *f[8];
    long ln = 0;
    int n = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), fp) != NULL) {
        ln++;
        if (strchr(line, '\n') == NULL && !feof(fp)) { fprintf(stderr, "error: %s line %ld is longer than %zu characters\n", path, ln, sizeof(line) - 2); rc = -1; break; }
        if (line[0] == '#' || line[0] == '\n' || line[0] == '\0') continue;
        int nf = tab_split(line, f, 8);
        for (int i = 0; i < nf; i++)
            if (strchr(f[i], '|')) { fprintf(stderr, "error: %s line %ld: a '|' would break the report's table\n", path, ln); rc = -1; }
        if (rc) break;
        if (strcmp(f[0], "claim") == 0) {
            if (nf != 7) { fprintf(stderr, "error: %s line %ld: a claim line has 7 tab-separated fields (claim ID KIND NULL SOURCE CLAIM METRIC), not %d\n", path, ln, nf); rc = -1; break; }
            if (n == CL_MAX) { fprintf(stderr, "error: %s: more than %d claims\n", path, CL_MAX); rc = -1; break; }
            ClaimRow *c = &rows[n];
            memset(c, 0, sizeof(*c));
            c->kind = -1;
            for (int k = 0; k < 3; k++) if (strcmp(f[2], kinds[k]) == 0) c->kind = k;
            if (c->kind < 0) { fprintf(stderr, "error: %s line %ld: kind '%s' is not test, describe or unmeasurable\n", path, ln, f[2]); rc = -1; break; }
            if (parse_finite(f[3], &c->null) != 0) { fprintf(stderr, "error: %s line %ld: null '%s' is not a finite number\n", path, ln, f[3]); rc = -1; break; }
            if (f[1][0] == '\0' || strlen(f[1]) >= sizeof(c->id) || strlen(f[4]) >= sizeof(c->source) || strlen(f[5]) >= sizeof(c->text) || strlen(f[6]) >= sizeof(c->metric)) {
                fprintf(stderr, "error: %s line %ld: an empty ID or a field too long (ID %zu, source %zu, claim %zu, metric %zu characters at most)\n",
                        path, ln, sizeof(c->id) - 1, sizeof(c->source) - 1, sizeof(c->text) - 1, sizeof(c->metric) - 1);
                rc = -1; break;
            }
            for (int k = 0; k < n; k++) if (strcmp(rows[k].id, f[1]) == 0) { fprintf(stderr, "error: %s line %ld: claim '%s' declared twice\n", path, ln, f[1]); rc = -1; }
            if (rc) break;
            snprintf(c->id, sizeof(c->id), "%s", f[1]); snprintf(c->source, sizeof(c->source), "%s", f[4]);
            snprintf(c->text, sizeof(c->text), "%s", f[5]); snprintf(c->metric, sizeof(c->metric), "%s", f[6]);
            n++;
        } else if (strcmp(f[0], "value") == 0) {
            if (nf != 4) { fprintf(stderr, "error: %s line %ld: a value line has 4 tab-separated fields (value ID SEED VALUE), not %d\n", path, ln, nf); rc = -1; break; }
            int k = 0;
            while (k < n && strcmp(rows[k].id, f[1]) != 0) k++;
            if (k == n) { fprintf(stderr, "error: %s line %ld: value for claim '%s', which no earlier claim line declares\n", path, ln, f[1]); rc = -1; break; }
            ClaimRow *c = &rows[k];
            double seed, v;
            if (parse_finite(f[2], &seed) != 0 || seed != floor(seed) || seed < 0 || seed > 1e9) { fprintf(stderr, "error: %s line %ld: seed '%s' is not an integer in [0, 1e9]\n", path, ln, f[2]); rc = -1; break; }
            if (parse_finite(f[3], &v) != 0) { fprintf(stderr, "error: %s line %ld: value '%s' is not a finite number\n", path, ln, f[3]); rc = -1; break; }
            if (c->kind == 2) { fprintf(stderr, "error: %s line %ld: claim '%s' is unmeasurable and takes no values\n", path, ln, f[1]); rc = -1; break; }
            int s = 0;
            while (s < c->ns && c->seed[s] != (int)seed) s++;
            if (s == c->ns) {
                if (c->ns == CL_SEEDS) { fprintf(stderr, "error: %s line %ld: claim '%s' has more than %d seeds\n", path, ln, f[1], CL_SEEDS); rc = -1; break; }
                c->seed[c->ns++] = (int)seed;
            }
            c->sum[s] += v;
            c->units[s]++;
        } else { fprintf(stderr, "error: %s line %ld: '%s' is not claim or value\n", path, ln, f[0]); rc = -1; }
    }
    fclose(fp);
    if (rc) return -1;
    for (int k = 0; k < n; k++) {   /* seeds in ascending order, each its units' mean */
        ClaimRow *c = &rows[k];
        for (int i = 1; i < c->ns; i++)
            for (int j = i; j > 0 && c->seed[j] < c->seed[j - 1]; j--) {
                int ts = c->seed[j]; c->seed[j] = c->seed[j - 1]; c->seed[j - 1] = ts;
                long tu = c->units[j]; c->units[j] = c->units[j - 1]; c->units[j - 1] = tu;
                double tv = c->sum[j]; c->sum[j] = c->sum[j - 1]; c->sum[j - 1] = tv;
            }
        for (int s = 0; s < c->ns; s++) c->d[s] = c->sum[s] / (double)c->units[s];
    }
    *nrows = n;
    return 0;
}

/* the colour index of a seed: its rank among every seed of every row (so one seed has one colour in the figure) */
static int seed_colour(const ClaimRow *r, int n, int seed) {
    int below = 0, seen[CL_MAX * CL_SEEDS], ns = 0;
    for (int i = 0; i < n; i++)
        for (int s = 0; s < r[i].ns; s++) {
            int k = 0;
            while (k < ns && seen[k] != r[i].seed[s]) k++;
            if (k == ns) { seen[ns++] = r[i].seed[s]; below += r[i].seed[s] < seed; }
        }
    return below;
}

/* The per-seed effects, one strip per claim with values (its own scale): seeds as dots, the mean with its 95% CI,
   the null dashed. Each strip's label names the claim and its verdict. */
static void svg_effects(const char *path, const ClaimRow *r, const Claim *c, int n, const char *const *verdict) {
    const double ml = 20, lw = 420, pw = 380, rh = 46, top = 40, W = ml + lw + pw + 60;
    int rows = 0;
    for (int i = 0; i < n; i++) rows += r[i].kind != CLAIM_UNMEASURABLE && r[i].ns > 0;
    double H = top + rh * rows + 40;
    FILE *fp = out_open(path);
    if (fp == NULL) return;
    fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    fprintf(fp, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(fp, "<text x=\"%.0f\" y=\"22\" font-size=\"15\">per-seed effects (dots: seeds; black: mean and 95%% CI; dashed: the null; right = the paper's direction)</text>\n", ml);
    int row = 0;
    for (int i = 0; i < n; i++) {
        if (r[i].kind == CLAIM_UNMEASURABLE || r[i].ns == 0) continue;
        double lo = c[i].null, hi = c[i].null;
        for (int s = 0; s < r[i].ns; s++) { lo = fmin(lo, r[i].d[s]); hi = fmax(hi, r[i].d[s]); }
        if (isfinite(c[i].s.lo)) { lo = fmin(lo, c[i].s.lo); hi = fmax(hi, c[i].s.hi); }
        double pad = 0.08 * (hi - lo > 0 ? hi - lo : 1.0);
        lo -= pad; hi += pad;
        double y = top + rh * row + rh / 2, x0 = ml + lw;
#define EX(v) (x0 + ((v) - lo) / (hi - lo) * pw)
        if (row % 2 == 0) fprintf(fp, "<rect x=\"0\" y=\"%.1f\" width=\"%.0f\" height=\"%.0f\" fill=\"#f4f4f4\"/>\n", y - rh / 2, W, rh);
        fprintf(fp, "<text x=\"%.0f\" y=\"%.1f\">%s: %s</text>\n", ml, y - 3, r[i].id, verdict[i]);
        fprintf(fp, "<text x=\"%.0f\" y=\"%.1f\" fill=\"#555\" font-size=\"10\">%.60s</text>\n", ml, y + 11, r[i].source);
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\"/>\n", x0, y + 8, x0 + pw, y + 8);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"start\">%.3g</text>\n", x0, y + 20, lo);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%.3g</text>\n", x0 + pw, y + 20, hi);
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\" stroke-dasharray=\"4,3\"/>\n", EX(c[i].null), y - 16, EX(c[i].null), y + 12);
        if (EX(c[i].null) - x0 > 30 && x0 + pw - EX(c[i].null) > 30)   /* clear of the end labels */
            fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\" fill=\"#444\">%g</text>\n", EX(c[i].null), y + 20, c[i].null);
        if (isfinite(c[i].s.lo))
            fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\" stroke-width=\"2\"/>\n", EX(c[i].s.lo), y, EX(c[i].s.hi), y);
        fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"6\" height=\"6\" fill=\"black\" transform=\"rotate(45 %.1f %.1f)\"/>\n", EX(c[i].s.mean) - 3, y - 3, EX(c[i].s.mean), y);
        for (int s = 0; s < r[i].ns; s++)
            fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\" fill-opacity=\"0.8\"><title>seed %d: %g</title></circle>\n",
                    EX(r[i].d[s]), y - 9, palette[seed_colour(r, n, r[i].seed[s]) % 10], r[i].seed[s], r[i].d[s]);
#undef EX
        row++;
    }
    int most = 0;   /* the legend: the seeds of the row with the most */
    for (int i = 1; i < n; i++) if (r[i].ns > r[most].ns) most = i;
    fprintf(fp, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">each strip has its own scale (ends and null labelled); seeds:</text>\n", ml, H - 14);
    for (int s = 0; s < r[most].ns; s++) {
        double x = ml + 380 + 60 * s;
        fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/><text x=\"%.1f\" y=\"%.0f\" font-size=\"11\">%d</text>\n", x, H - 18, palette[seed_colour(r, n, r[most].seed[s]) % 10], x + 7, H - 14, r[most].seed[s]);
    }
    fprintf(fp, "</svg>\n");
    if (out_close(fp) == 0) fprintf(stderr, "wrote %s\n", path);   /* stdout is the report's markdown */
}

/* eval stat claims: the decision rules, then the verdict table and the controls' table, in markdown on stdout. */
static int stat_claims(const char *path, double alpha, const char *svg) {
    static ClaimRow r[CL_MAX];
    Claim c[CL_MAX];
    int n;
    if (claims_read(path, r, &n) != 0) return 1;
    if (n == 0) { fprintf(stderr, "error: %s declares no claim\n", path); return 1; }
    for (int i = 0; i < n; i++) c[i] = (Claim){.kind = r[i].kind, .null = r[i].null, .d = r[i].d, .n = r[i].ns};
    int m = claims_decide(c, n, alpha), max_seeds = 0;
    for (int i = 0; i < n; i++) if (r[i].kind == CLAIM_TEST && r[i].ns > max_seeds) max_seeds = r[i].ns;
    char margins[1024] = "";
    for (int i = 0; i < n; i++)
        if (r[i].kind == CLAIM_TEST && r[i].null < 0)
            snprintf(margins + strlen(margins), sizeof(margins) - strlen(margins), "%s%.47s %g", margins[0] ? ", " : "", r[i].id, -r[i].null);
    printf("## Decision rules (the same for every claim and run: analysis.h, docs/STATS.md)\n\n");
    printf("- The unit of replication is the trained model: each claim is **one number per seed** (the seed's mean over its\n"
           "  documents, head pairs or samples), oriented so that larger is the paper's direction. Across the seeds: the mean,\n"
           "  its 95%% Student t interval and the paired t-test of H0: mean = null (two-sided, df = seeds - 1); from 6 seeds on\n"
           "  also the exact sign-flip test over the 2^n sign patterns (shown beside the t-test: with n seeds it cannot go\n"
           "  below 2 / 2^n, so it does not decide).\n");
    if (m > 0) printf("- Holm's correction over the **m = %d** tested claims of this report, at alpha = %g.", m, alpha);
    else printf("- No claim of this report could be tested (each needs 2 seeds with data), so Holm's correction has nothing to\n"
                "  correct (m = 0).");
    printf(" **supported**: the\n"
           "  Holm-adjusted p < alpha with the mean on the paper's side of the null; **refuted**: the same on the other side;\n"
           "  **inconclusive** otherwise, and with fewer than 2 seeds. The rule is symmetric: the same test decides both.\n");
    printf("- The null is 0 for a claim that one arm is better. For a non-inferiority claim (\"not worse by more than a margin\")\n"
           "  the metric is baseline - new and the null is -margin: supported = significantly above -margin (not worse; with\n"
           "  m = 1 the 95%% CI lies above -margin), refuted = significantly below (worse by more than the margin). Margins:\n"
           "  %s.\n", margins[0] ? margins : "none in this report");
    printf("- \"Detectable\" is the true effect the t-test finds with 80%% power at two-sided alpha / m (Holm's first, most\n"
           "  stringent step) and at alpha, from the observed seed sd: (t_{1-a/2,n-1} + t_{0.8,n-1}) sd / sqrt(n); not\n"
           "  estimable below 3 seeds. A metric that cannot be measured says why instead of a verdict; controls are described\n"
           "  without verdicts and are not in m.\n\n");
    printf("## Verdicts\n\n");
    if (max_seeds < 2) printf("**%d seed%s at most: the rule needs 2 seeds, so every testable row is inconclusive; the values are shown, not tested.**\n\n", max_seeds, max_seeds == 1 ? "" : "s");
    else if (max_seeds < 6) printf("**%d seeds at most: the rule above gives a verdict from 2 seeds, but only for an effect about as large as the row's "
                                   "\"detectable\" (alpha/m) column, and the sign-flip test cannot back it below 6 seeds. So a verdict here rests on "
                                   "the t-test alone, and an inconclusive row means \"no effect that large\", not \"no effect\".**\n\n", max_seeds);
    printf("| claim (paper) | metric (larger = the paper's direction) | per seed (units) | mean [95%% CI] | null | t-test p (Holm) | sign-flip p | detectable at 80%% (alpha/m; alpha) | verdict |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    const char *verdict[CL_MAX];
    static char vbuf[CL_MAX][64];
    for (int i = 0; i < n; i++) {
        verdict[i] = c[i].verdict == VERDICT_SUPPORTED ? "supported" : c[i].verdict == VERDICT_REFUTED ? "refuted" :
                     c[i].verdict == VERDICT_INCONCLUSIVE ? "inconclusive" : r[i].kind == CLAIM_DESCRIBE ? "descriptive" : "not measurable";
        if (r[i].kind == CLAIM_DESCRIBE) continue;
        if (r[i].kind == CLAIM_UNMEASURABLE) {
            printf("| %s (%s) | — | — | — | — | — | — | — | not measurable: %s |\n", r[i].text, r[i].source, r[i].metric);
            continue;
        }
        char seeds[512] = "", mean[128], pcol[128], flip[64], mde[128];
        for (int s = 0; s < r[i].ns; s++)
            snprintf(seeds + strlen(seeds), sizeof(seeds) - strlen(seeds), "%s%+.4g", s ? " " : "", r[i].d[s]);
        int same = 1;
        for (int s = 1; s < r[i].ns; s++) same &= r[i].units[s] == r[i].units[0];
        if (r[i].ns > 0) snprintf(seeds + strlen(seeds), sizeof(seeds) - strlen(seeds), same ? " (%ld each)" : " (units differ)", r[i].units[0]);
        else snprintf(seeds, sizeof(seeds), "no data");
        if (r[i].ns >= 2) snprintf(mean, sizeof(mean), "%+.4g [%+.4g, %+.4g]", c[i].s.mean, c[i].s.lo, c[i].s.hi);
        else if (r[i].ns == 1) snprintf(mean, sizeof(mean), "%+.4g", c[i].s.mean);
        else snprintf(mean, sizeof(mean), "—");
        if (r[i].ns >= 2) snprintf(pcol, sizeof(pcol), "%.3g (%.3g)", c[i].s.p, c[i].p_holm);
        else snprintf(pcol, sizeof(pcol), "untested (%d seed%s)", r[i].ns, r[i].ns == 1 ? "" : "s");
        if (isnan(c[i].s.p_flip)) snprintf(flip, sizeof(flip), "— (< 6 seeds)"); else snprintf(flip, sizeof(flip), "%.3g", c[i].s.p_flip);
        if (isnan(c[i].s.mde_m)) snprintf(mde, sizeof(mde), "not estimable (< 3 seeds)");
        else snprintf(mde, sizeof(mde), "%.3g; %.3g", c[i].s.mde_m, c[i].s.mde_1);
        snprintf(vbuf[i], sizeof(vbuf[i]), "**%s**", verdict[i]);
        printf("| %s (%s) | %s | %s | %s | %g | %s | %s | %s | %s |\n", r[i].text, r[i].source, r[i].metric, seeds, mean, r[i].null, pcol, flip, mde, vbuf[i]);
    }
    int nd = 0;
    for (int i = 0; i < n; i++) nd += r[i].kind == CLAIM_DESCRIBE;
    if (nd > 0) {
        printf("\n## Controls and other arms (descriptive: no test, no verdict, not in m)\n\n");
        printf("| quantity | metric | per seed (units) | mean [95%% CI] |\n|---|---|---|---|\n");
        for (int i = 0; i < n; i++) {
            if (r[i].kind != CLAIM_DESCRIBE) continue;
            char seeds[512] = "", mean[128] = "—";
            for (int s = 0; s < r[i].ns; s++) snprintf(seeds + strlen(seeds), sizeof(seeds) - strlen(seeds), "%s%+.4g", s ? " " : "", r[i].d[s]);
            if (r[i].ns > 0) snprintf(seeds + strlen(seeds), sizeof(seeds) - strlen(seeds), " (%ld)", r[i].units[0]); else snprintf(seeds, sizeof(seeds), "no data");
            if (r[i].ns >= 2) snprintf(mean, sizeof(mean), "%+.4g [%+.4g, %+.4g]", c[i].s.mean, c[i].s.lo, c[i].s.hi);
            else if (r[i].ns == 1) snprintf(mean, sizeof(mean), "%+.4g", c[i].s.mean);
            printf("| %s (%s) | %s | %s | %s |\n", r[i].text, r[i].source, r[i].metric, seeds, mean);
        }
    }
    if (svg) svg_effects(svg, r, c, n, verdict);
    return 0;
}

/* eval stat growth: ppl_growth on the position bands of a ppl_*.csv (eval ppl), at its longest length for SCALING. */
static int stat_growth(const char *path, double T, const char *scaling) {
    FILE *fp = fopen(path, "r");
    if (fp == NULL) { fprintf(stderr, "error: cannot open '%s': %s\n", path, strerror(errno)); return 1; }
    char hline[4096], line[4096], *hdr[32], *col[32];
    if (fgets(hline, sizeof(hline), fp) == NULL) { fprintf(stderr, "error: '%s' is empty\n", path); fclose(fp); return 1; }
    int nh = csv_split(hline, hdr, 32);
    int ic[6];
    const char *names[6] = {"scaling", "length", "band", "band_start", "band_end", "loss"};
    for (int k = 0; k < 6; k++) if ((ic[k] = col_index(hdr, nh, names[k])) < 0) { fprintf(stderr, "error: '%s' has no column '%s' (not an eval ppl CSV)\n", path, names[k]); fclose(fp); return 1; }
    int it = col_index(hdr, nh, "tokens");
    if (it < 0) { fprintf(stderr, "error: '%s' has no column 'tokens' (not an eval ppl CSV)\n", path); fclose(fp); return 1; }
    enum { NB = 32 };
    double st[NB], en[NB], lo[NB], tk[NB], longest = -1;
    int nb = 0;
    long ln = 1;
    while (fgets(line, sizeof(line), fp) != NULL) {
        ln++;
        int nc = csv_split(line, col, 32);
        if (nc < nh) { fprintf(stderr, "error: %s line %ld has %d columns, the header %d\n", path, ln, nc, nh); fclose(fp); return 1; }
        if (strcmp(col[ic[0]], scaling) != 0 || strcmp(col[ic[2]], "band") != 0) continue;
        double L, s, e, l, t;
        if (parse_finite(col[ic[1]], &L) || parse_finite(col[ic[3]], &s) || parse_finite(col[ic[4]], &e) || parse_finite(col[ic[5]], &l) || parse_finite(col[it], &t)) {
            fprintf(stderr, "error: %s line %ld: a number column is not a finite number\n", path, ln); fclose(fp); return 1;
        }
        if (L < longest) continue;
        if (L > longest) { longest = L; nb = 0; }
        if (nb == NB) { fprintf(stderr, "error: %s: more than %d bands at length %g\n", path, NB, L); fclose(fp); return 1; }
        st[nb] = s; en[nb] = e; lo[nb] = l; tk[nb] = t; nb++;
    }
    fclose(fp);
    double g = ppl_growth(st, en, lo, tk, nb, T);
    if (isnan(g)) { fprintf(stderr, "error: %s: at length %g (scaling %s) no band starts at or past %g, or none is [%g, %g)\n", path, longest, scaling, T, T / 2, T); return 1; }
    printf("%.6f\n", g);
    return 0;
}

static int mode_stat(int argc, char **argv) {
    const char *usage_line = "usage: eval stat sign POS NEG | mcnemar B C | wilson K N | growth PPL_CSV T [SCALING] | claims FILE [--alpha A] [--svg OUT.svg]";
    if (argc >= 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) { usage("stat"); return 0; }
    if (argc >= 4 && strcmp(argv[2], "claims") == 0) {
        double alpha = 0.05;
        const char *svg = NULL;
        for (int i = 4; i < argc; i++) {
            if (i + 1 < argc && strcmp(argv[i], "--alpha") == 0) alpha = flag_number("./eval", "--alpha", argv[++i], 1e-6, 0.5);
            else if (i + 1 < argc && strcmp(argv[i], "--svg") == 0) svg = argv[++i];
            else { fprintf(stderr, "error: eval stat claims takes --alpha A and --svg FILE, not '%s'\n%s\n", argv[i], usage_line); return 1; }
        }
        return stat_claims(argv[3], alpha, svg);
    }
    if ((argc == 5 || argc == 6) && strcmp(argv[2], "growth") == 0)
        return stat_growth(argv[3], flag_number("./eval", "stat growth T", argv[4], 2, 1e9), argc == 6 ? argv[5] : "none");
    if (argc != 5) { fprintf(stderr, "%s\n", usage_line); return 1; }
    double a = flag_number("./eval", "stat", argv[3], 0, 1e15), b = flag_number("./eval", "stat", argv[4], 0, 1e15);
    if (strcmp(argv[2], "sign") == 0) printf("%.6g\n", stat_sign_test((long)a, (long)b));
    else if (strcmp(argv[2], "mcnemar") == 0) printf("%.6g\n", stat_mcnemar((long)a, (long)b));
    else if (strcmp(argv[2], "wilson") == 0) {
        if (a > b) { fprintf(stderr, "error: wilson K N needs K <= N\n"); return 1; }
        double lo, hi;
        stat_wilson(a, b, &lo, &hi);
        printf("%.6f %.6f\n", lo, hi);
    } else { fprintf(stderr, "error: eval stat takes sign, mcnemar, wilson, growth or claims\n%s\n", usage_line); return 1; }
    return 0;
}

/* ---------------------------------------------------------------------------------------------- curves mode */
static int mode_curves(Options *o) {
    if (o->out == NULL) o->out = "results/eval";
    int n = 241, HD = o->head_dim;
    double *x = (double *)mallocCheck(sizeof(double) * n), *y = (double *)mallocCheck(sizeof(double) * 4 * n);
    ensure_dir(o->out);
    char path[4200];
    snprintf(path, sizeof(path), "%s/curves.csv", o->out);
    FILE *csv = out_open(path);
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
    out_close(csv);
    printf("wrote %s\n", path);
    Series s[4] = {{"c_Re (sum)", n, x, y}, {"c_Im (sum)", n, x, y + n}, {"Ci closed form", n, x, y + 2 * n}, {"Si closed form", n, x, y + 3 * n}};
    char title[256];
    snprintf(title, sizeof(title), "characteristic curves, head dim %d, base %g", HD, o->base);
    snprintf(path, sizeof(path), "%s/curves.svg", o->out);
    svg_plot(path, title, "relative distance dt", "mean over frequencies", 1, s, 4);
    free(x); free(y);
    return 0;
}

/* The --val of the run that holds checkpoint `ckpt` (a file or run folder, NULL = runs/latest), from the
   settings.txt beside it, into out. 0 when there is one, non-empty and readable; -1 otherwise (no run folder,
   no settings, a run without validation data, or the file gone). */
static int run_validation_data(const char *ckpt, char *out, size_t outlen) {
    char path[4200], err[512];
    if (checkpoint_resolve(ckpt, "--ckpt", path, sizeof(path), err, sizeof(err)) != 0) return -1;
    char *slash = strrchr(path, '/');
    if (slash != NULL) snprintf(slash + 1, sizeof(path) - (size_t)(slash + 1 - path), "settings.txt");
    else snprintf(path, sizeof(path), "settings.txt");
    char **flags = NULL, **values = NULL;
    int n = 0, found = -1;
    if (settings_read(path, &flags, &values, &n, err, sizeof(err)) != 0) return -1;
    for (int i = 0; i < n; i++)
        if (strcmp(flags[i], "--val") == 0 && values[i][0] != '\0' && access(values[i], R_OK) == 0) {
            snprintf(out, outlen, "%s", values[i]);
            found = 0;
        }
    settings_free(flags, values, n);
    return found;
}

/* The error for an unknown flag f of a mode, naming the nearest of names[0..n) (edit distance 2 at most) */
static void unknown_flag(const char *f, const char *mode, const char *const *names, int n) {
    const char *best = NULL;
    int best_d = 3;
    char eq[300];
    name_nearest(f, names, n, &best, &best_d);
    if (flag_equals_hint(f, eq, sizeof(eq))[0]) fprintf(stderr, "error: unknown flag '%s' for mode %s%s\n", f, mode, eq);
    else if (best != NULL) fprintf(stderr, "error: unknown flag '%s' for mode %s (did you mean %s?); see ./eval %s --help\n", f, mode, best, mode);
    else fprintf(stderr, "error: unknown flag '%s' for mode %s; see ./eval %s --help\n", f, mode, mode);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);   /* whole lines reach a file or pipe even when the eval is killed (as train) */
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) { usage(NULL); return argc < 2 ? 1 : 0; }
    const char *mode = argv[1];
    if (strcmp(mode, "plot") == 0) {
        PlotArgs p;
        memset(&p, 0, sizeof(p));
        for (int i = 2; i < argc; i++) {
            const char *f = argv[i];
            if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) { usage("plot"); return 0; }
            if (strcmp(f, "--log-x") == 0) { p.logx = 1; continue; }
            if (strcmp(f, "--log-y") == 0) { p.logy = 1; continue; }
            static const char *const plot_flags[] = {"--csv", "--x", "--y", "--group", "--title", "--xlabel", "--ylabel",
                                                     "--out", "--where", "--run", "--smooth", "--log-x", "--log-y", "--help"};
            const int n_plot_flags = (int)(sizeof(plot_flags) / sizeof(plot_flags[0]));
            int known = 0;
            for (int k = 0; k < n_plot_flags; k++) known |= strcmp(f, plot_flags[k]) == 0;
            if (!known) { unknown_flag(f, "plot", plot_flags, n_plot_flags); return 1; }   /* before its value is looked for */
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
            else if (strcmp(f, "--run") == 0 && p.n_runs < 16) p.runs[p.n_runs++] = v;
            else if (strcmp(f, "--smooth") == 0) p.smooth = (int)flag_number("./eval", f, v, 1, 1e6);
            else { fprintf(stderr, "error: %s given too often (--where: 8 at most, --run: 16)\n", f); return 1; }
        }
        if (p.n_runs > 0 && p.csv) { fprintf(stderr, "error: eval plot takes --csv or --run, not both\n"); return 1; }
        if (p.smooth > 0 && p.n_runs == 0) { fprintf(stderr, "error: --smooth applies to the training loss of --run DIR, not to --csv\n"); return 1; }
        return p.n_runs > 0 ? mode_plot_runs(&p) : mode_plot(&p);
    }
    if (strcmp(mode, "stat") == 0) return mode_stat(argc, argv);
    int mode_bit = 0;
    for (int k = 0; k < M_COUNT; k++) if (strcmp(mode, mode_names[k]) == 0) mode_bit = 1 << k;
    if (mode_bit == 0) {
        char modes[128];
        mode_list(modes, sizeof(modes), (1 << M_COUNT) - 1);
        fprintf(stderr, "error: unknown mode '%s'; modes: %s, plot, stat (see ./eval --help)\n", mode, modes);
        return 1;
    }
    Options o = {NULL, "data/tinyshakespeare_val.bin", NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 128, 10000.0, -1.0, 1, 0, 0, 0, 0, 0, 0, 0, 64};
    o.samples = mode_bit == M_PATTERNS ? 4 : mode_bit == M_PPL ? 8 : mode_bit == M_ATTN ? 64 : 20;
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) { usage(mode); return 0; }
        if (strncmp(f, "--", 2) != 0) { fprintf(stderr, "error: unexpected argument '%s'; see ./eval %s --help\n", f, mode); return 1; }
        int fi = eval_flag_find(f);
        if (fi < 0) {   /* naming the nearest flag of this mode (edit distance 2 at most) */
            const char *names[sizeof(eval_flags) / sizeof(eval_flags[0])];
            int n = 0;
            for (int k = 0; k < eval_flag_count; k++) if (eval_flags[k].modes & mode_bit) names[n++] = eval_flags[k].flag;
            unknown_flag(f, mode, names, n);
            return 1;
        }
        if (!(eval_flags[fi].modes & mode_bit)) {   /* a flag this mode does not read would be dropped: refused */
            char modes[128];
            mode_list(modes, sizeof(modes), eval_flags[fi].modes);
            fprintf(stderr, "error: %s is not used by eval %s (it applies to %s); see ./eval %s --help\n", f, mode, modes, mode);
            return 1;
        }
        o.given |= 1u << fi;
        if (strcmp(f, "--task-bos") == 0) { o.task_bos = 1; continue; }
        if (strcmp(f, "--docs") == 0) { o.docs = 1; continue; }
        if (strcmp(f, "--repeat") == 0) { o.repeat = 1; continue; }
        if (strcmp(f, "--relative") == 0) { o.relative = 1; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "error: missing value for '%s'; see ./eval %s --help\n", f, mode); return 1; }
        const char *v = argv[++i];
        if (strcmp(f, "--ckpt") == 0) o.ckpt = v;
        else if (strcmp(f, "--data") == 0) o.data = v;
        else if (strcmp(f, "--out") == 0) o.out = v;
        else if (strcmp(f, "--lengths") == 0) o.lengths = v;
        else if (strcmp(f, "--scalings") == 0) o.scalings = v;
        else if (strcmp(f, "--samples") == 0) o.samples = (int)flag_number("./eval", f, v, 1, 1e6);
        else if (strcmp(f, "--seq") == 0) o.seq = (int)flag_number("./eval", f, v, 2, 1 << 20);
        else if (strcmp(f, "--stride") == 0) o.stride = (int)flag_number("./eval", f, v, 1, 1 << 24);
        else if (strcmp(f, "--docs-from") == 0) o.docs_from = flag_int("./eval", f, v, 0, 1 << 24);
        else if (strcmp(f, "--head-dim") == 0) o.head_dim = (int)flag_number("./eval", f, v, 2, 1 << 20);
        else if (strcmp(f, "--base") == 0) o.base = flag_number("./eval", f, v, 1.0000001, 1e30);
        else if (strcmp(f, "--tasks") == 0) o.tasks = v;
        else if (strcmp(f, "--sigmas") == 0) o.sigmas = v;
        else if (strcmp(f, "--depth") == 0) o.depth = flag_number("./eval", f, v, -1, 1);
        else if (strcmp(f, "--seed") == 0) o.seed = (uint64_t)flag_number("./eval", f, v, 0, 9007199254740992.0);
        else if (strcmp(f, "--mqar-kv") == 0) o.mqar_kv = flag_int("./eval", f, v, 0, 1 << 20);
        else if (strcmp(f, "--mqar-filler") == 0) {
            if (strcmp(v, "random") == 0) o.mqar_blank = 0;
            else if (strcmp(v, "blank") == 0) o.mqar_blank = 1;
            else { fprintf(stderr, "error: --mqar-filler '%s' is not random or blank\n", v); return 1; }
        }
    }
    /* within a mode: a flag whose only use the other flags turn off */
    if (!o.docs && flag_given(&o, "--docs-from")) {
        fprintf(stderr, "error: --docs-from sets where eval ppl --docs starts each document's loss; without --docs there are no documents: add --docs or drop it\n");
        return 1;
    }
    if (o.docs && flag_given(&o, "--stride")) {
        fprintf(stderr, "error: --stride is not used by eval ppl --docs (it sets the sliding window over the whole shard, which --docs leaves out); drop one of them\n");
        return 1;
    }
    if (o.repeat && (o.docs || flag_given(&o, "--stride") || flag_given(&o, "--scalings"))) {
        fprintf(stderr, "error: eval ppl --repeat scores documents as stored: --docs (implied), --stride and --scalings are not used by it; drop them\n");
        return 1;
    }
    if (o.head_dim % 2 != 0) { fprintf(stderr, "error: --head-dim must be even\n"); return 1; }
    /* the modes that read text score the run's own validation data by default (settings.txt beside the checkpoint,
       its --val), not Tiny Shakespeare's, which a model trained on other tokens cannot be scored on */
    static char run_val[4096];
    if ((mode_bit & (M_PPL | M_PATTERNS | M_ATTN)) && !flag_given(&o, "--data") &&
        run_validation_data(o.ckpt, run_val, sizeof(run_val)) == 0 && strcmp(run_val, o.data) != 0) {
        printf("data: %s, the run's validation data (its --val; --data FILE scores other data)\n", run_val);
        o.data = run_val;
    }
    if (mode_bit == M_PPL) return mode_ppl(&o);
    if (mode_bit == M_PATTERNS) return mode_patterns(&o);
    if (mode_bit == M_TASKS) return mode_tasks(&o);
    if (mode_bit == M_NOISE) return mode_noise(&o);
    if (mode_bit == M_ATTN) return mode_attn(&o);
    return mode_curves(&o);
}
