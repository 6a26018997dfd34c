/*
train — train a RoPE++ (or baseline) language model. One program, two builds:
  make train && ./train              CPU (OpenMP), float
  make train_gpu && ./train_gpu      CUDA (bf16 activations, fp32 master weights)
With no arguments it trains the default small model on the shipped Tiny Shakespeare (byte-level) and prints a
sample. `./train --help` lists every flag and its default.

Every step prints one line (step, loss, lr, grad norm, ms, tokens/s); validation loss every --val-every steps;
a JSONL log of the same numbers goes to --log. Checkpoints (docs/FORMATS.md) go to --ckpt-dir: a model file and a
state file (AdamW moments, step, loader position, RNG), written atomically; --resume continues from the newest so
that the losses are bit-identical to an uninterrupted run.
*/
#define ROPEPP_IMPLEMENTATION
#include "ropepp.h"
#define ROPEPP_TASKS_IMPLEMENTATION
#include "data/tasks.h"
#include <time.h>
#include <sys/stat.h>
#include <sys/types.h>

/* ------------------------------------------------------------------------------------------------ options */
typedef struct {
    Config model;
    const char *train_pattern, *val_pattern, *ckpt_dir, *log_path, *init_from, *prompt, *mix;
    int vocab;                  /* 0 = from the data */
    int batch, seq, steps, warmup, schedule, decay_steps, val_every, val_batches, ckpt_every, keep, resume, profile;
    int sample_len, init;
    double lr, beta1, beta2, eps, weight_decay, clip, temperature, peak_tflops;
    uint64_t seed;
    unsigned given;             /* GIVEN_* bits: which of those flags, so that resume compares only those */
} Options;
enum { GIVEN_PE = 1u << 0, GIVEN_DIM = 1u << 1, GIVEN_LAYERS = 1u << 2, GIVEN_HEADS = 1u << 3, GIVEN_KV = 1u << 4,
       GIVEN_FFN = 1u << 5, GIVEN_BASE = 1u << 6, GIVEN_FRAC = 1u << 7, GIVEN_PI = 1u << 8, GIVEN_YARN = 1u << 9,
       GIVEN_YARN_LEN = 1u << 10, GIVEN_NTK = 1u << 11, GIVEN_EPS = 1u << 12 };

static Options default_options(void) {
    Options o;
    memset(&o, 0, sizeof(o));
    o.model = config_default();
    o.train_pattern = "data/tinyshakespeare_train.bin";
    o.val_pattern = "data/tinyshakespeare_val.bin";
    o.ckpt_dir = "checkpoints";
    o.log_path = "log/train.jsonl";
    o.prompt = "\n";
    o.vocab = 0;
    o.batch = 16; o.seq = 128; o.steps = 1000; o.warmup = -1; o.schedule = SCHED_WSD; o.decay_steps = -1;
    o.val_every = 100; o.val_batches = 20; o.ckpt_every = 0; o.keep = 3; o.resume = 0; o.profile = 0;
    o.sample_len = 300; o.init = INIT_TORCH_DEFAULT;
    o.lr = 3e-3; o.beta1 = 0.95; o.beta2 = 0.99; o.eps = 1e-8; o.weight_decay = 0.1; o.clip = 0.0;
    o.temperature = 0.8; o.seed = 42;
    o.peak_tflops = 770.0;   /* bf16 8192^3 matmul measured on an H100: bench/peak/2026-11-24.txt */
    return o;
}

static void usage(const Options *d) {
    const Config *c = &d->model;
    char names[256];
    printf("usage: train [flags]    (train_gpu: the same flags)\n\n"
           "model\n"
           "  --pe NAME            position embedding: %s (%s); --list-pe describes them\n"
           "  --dim C              model dim (%d)\n"
           "  --layers L           layers (%d)\n"
           "  --heads H            heads; ropepp_eh projects H/2, ropepp_ec attends with 2H (%d)\n"
           "  --kv-heads KV        kv heads, must divide heads (%d)\n"
           "  --ffn F              SwiGLU hidden dim (%d)\n"
           "  --rotary-frac F      partial: fraction of each head that is rotated (%g)\n"
           "  --rope-base B        rotary base theta (%g)\n"
           "  --pi-factor S        linear position interpolation: theta /= S (1 = off)\n"
           "  --yarn-factor S      the authors' YaRN variant with factor S (1 = off)\n"
           "  --yarn-orig-len N    YaRN's original window (0 = --seq)\n"
           "  --ntk-factor L       NTK: base *= L (1 = off)\n"
           "  --norm-eps E         RMSNorm eps (%g)\n"
           "  --init NAME          torch_default (embedding N(0,1), Linear U(+-1/sqrt(fan_in))) or hf (N(0,0.02)) (torch_default)\n"
           "  --seed N             init and sampling seed (%llu)\n\n"
           "data\n"
           "  --train PATTERN      training shards, a file or a glob (%s)\n"
           "  --val PATTERN        validation shards (%s; \"\" = none)\n"
           "  --vocab V            vocabulary size (0 = 256 for byte data, else max token + 1) (0)\n"
           "  --batch B            sequences per step (%d)\n"
           "  --seq T              sequence length (%d)\n"
           "  --mix SPEC           rows of generated long-context tasks mixed into the batches, e.g. passkey:0.2,mqar:0.1\n"
           "                       (tasks: passkey niah_single niah_multikey niah_multivalue vt mqar; text tasks need a long --seq)\n\n"
           "optimization (AdamW, docs/MATH.md)\n"
           "  --steps N            optimizer steps (%d)\n"
           "  --lr LR              peak learning rate (%g)\n"
           "  --warmup W           linear warmup steps from 0 (-1 = 5%% of --steps)\n"
           "  --schedule NAME      constant | wsd (warmup-stable-decay) | cosine (wsd)\n"
           "  --decay-steps D      wsd: cosine decay to 0 over the last D steps (-1 = 20%% of --steps)\n"
           "  --beta1 B1 --beta2 B2 --eps E    AdamW (%g, %g, %g)\n"
           "  --weight-decay WD    decoupled, not on RMSNorm weights (%g)\n"
           "  --clip G             global gradient-norm clipping (0 = off) (%g)\n\n"
           "evaluation, checkpoints, logs\n"
           "  --val-every N        validation every N steps and at the end (0 = only at the end) (%d)\n"
           "  --val-batches N      batches per validation (%d)\n"
           "  --ckpt-dir DIR       checkpoint folder (%s; \"\" = no checkpoints, e.g. for speed runs)\n"
           "  --ckpt-every N       checkpoint every N steps (0 = only at the end) (%d)\n"
           "  --keep N             keep the newest N checkpoints (%d)\n"
           "  --resume             continue from the newest checkpoint in --ckpt-dir\n"
           "  --init-from CKPT     start from these weights with a fresh optimizer (may change --seq, --rope-base)\n"
           "  --log FILE           JSONL log of every step and validation (%s; \"\" = none)\n"
           "  --sample N           bytes to generate after training (%d; 0 = none)\n"
           "  --prompt TEXT        prompt for the sample (a newline)\n"
           "  --temperature T      sampling temperature (%g)\n"
           "  --profile            after training, where each step's time went: ms per step of every op (steps 3 on)\n"
           "  --peak-tflops P      GPU build: peak for MFU, or env ROPEPP_PEAK_TFLOPS (%g, measured bf16 on H100)\n"
           "  --list-pe            the position embeddings, one a line (name, facts, description), then exit\n"
           "  --help               this text\n",
           pe_names(names, sizeof(names), " ", -1), pe_name(c->pe), c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->ffn_dim, c->rotary_frac,
           c->rope_base, c->norm_eps, (unsigned long long)d->seed, d->train_pattern, d->val_pattern, d->batch,
           d->seq, d->steps, d->lr, d->beta1, d->beta2, d->eps, d->weight_decay, d->clip,
           d->val_every, d->val_batches, d->ckpt_dir, d->ckpt_every, d->keep, d->log_path, d->sample_len,
           d->temperature, d->peak_tflops);
}

static void die_flag(const char *flag, const char *value, const char *want) {
    fprintf(stderr, "error: %s '%s' is not %s; see ./train --help\n", flag, value, want);
    exit(1);
}

/* every flag that takes a value (an unknown flag at the end of the line is reported as unknown, not as missing
   its value) */
static const char *const value_flags[] = {
    "--pe", "--dim", "--layers", "--heads", "--kv-heads", "--ffn", "--rotary-frac", "--rope-base", "--pi-factor",
    "--yarn-factor", "--yarn-orig-len", "--ntk-factor", "--norm-eps", "--vocab", "--init", "--seed", "--train", "--val",
    "--batch", "--seq", "--steps", "--lr", "--warmup", "--schedule", "--decay-steps", "--beta1", "--beta2", "--eps",
    "--weight-decay", "--clip", "--val-every", "--val-batches", "--ckpt-dir", "--ckpt-every", "--keep", "--init-from",
    "--log", "--sample", "--prompt", "--temperature", "--peak-tflops", "--mix"};

static void parse_args(Options *o, int argc, char **argv) {
    Config *c = &o->model;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) { Options d = default_options(); usage(&d); exit(0); }
        if (strcmp(f, "--list-pe") == 0) { pe_list(stdout); exit(0); }
        if (strcmp(f, "--resume") == 0) { o->resume = 1; continue; }
        if (strcmp(f, "--profile") == 0) { o->profile = 1; continue; }
        if (strncmp(f, "--", 2) != 0) { fprintf(stderr, "error: unexpected argument '%s'; flags start with --, see ./train --help\n", f); exit(1); }
        if (i + 1 >= argc) {
            int known = 0;
            for (size_t k = 0; k < sizeof(value_flags) / sizeof(value_flags[0]); k++) known |= strcmp(f, value_flags[k]) == 0;
            if (known) fprintf(stderr, "error: flag %s needs a value; see ./train --help\n", f);
            else fprintf(stderr, "error: unknown flag '%s'; see ./train --help\n", f);
            exit(1);
        }
        const char *v = argv[++i];
        if (strcmp(f, "--pe") == 0) { c->pe = pe_from_name(v); if (c->pe < 0) { char names[256], want[300]; snprintf(want, sizeof(want), "one of %s", pe_names(names, sizeof(names), " ", -1)); die_flag(f, v, want); } o->given |= GIVEN_PE; }
        else if (strcmp(f, "--dim") == 0) { c->dim = flag_int("./train", f, v, 1, 65536); o->given |= GIVEN_DIM; }
        else if (strcmp(f, "--layers") == 0) { c->n_layers = flag_int("./train", f, v, 1, 1024); o->given |= GIVEN_LAYERS; }
        else if (strcmp(f, "--heads") == 0) { c->n_heads = flag_int("./train", f, v, 1, 4096); o->given |= GIVEN_HEADS; }
        else if (strcmp(f, "--kv-heads") == 0) { c->n_kv_heads = flag_int("./train", f, v, 1, 4096); o->given |= GIVEN_KV; }
        else if (strcmp(f, "--ffn") == 0) { c->ffn_dim = flag_int("./train", f, v, 1, 1 << 20); o->given |= GIVEN_FFN; }
        else if (strcmp(f, "--rotary-frac") == 0) { c->rotary_frac = flag_number("./train", f, v, 1e-9, 1.0); o->given |= GIVEN_FRAC; }
        else if (strcmp(f, "--rope-base") == 0) { c->rope_base = flag_number("./train", f, v, 1.0000001, 1e30); o->given |= GIVEN_BASE; }
        else if (strcmp(f, "--pi-factor") == 0) { c->pi_factor = flag_number("./train", f, v, 1.0, 1e6); o->given |= GIVEN_PI; }
        else if (strcmp(f, "--yarn-factor") == 0) { c->yarn_factor = flag_number("./train", f, v, 1.0, 1e6); o->given |= GIVEN_YARN; }
        else if (strcmp(f, "--yarn-orig-len") == 0) { c->yarn_orig_len = flag_int("./train", f, v, 0, 1 << 24); o->given |= GIVEN_YARN_LEN; }
        else if (strcmp(f, "--ntk-factor") == 0) { c->ntk_factor = flag_number("./train", f, v, 1.0, 1e6); o->given |= GIVEN_NTK; }
        else if (strcmp(f, "--norm-eps") == 0) { c->norm_eps = flag_number("./train", f, v, 1e-30, 0.5); o->given |= GIVEN_EPS; }
        else if (strcmp(f, "--vocab") == 0) o->vocab = flag_int("./train", f, v, 0, 1 << 30);
        else {
            if (strcmp(f, "--init") == 0) {
                if (strcmp(v, "torch_default") == 0) o->init = INIT_TORCH_DEFAULT;
                else if (strcmp(v, "hf") == 0) o->init = INIT_HF;
                else die_flag(f, v, "torch_default or hf");
            } else if (strcmp(f, "--seed") == 0) o->seed = (uint64_t)flag_number("./train", f, v, 0, 9007199254740992.0);
            else if (strcmp(f, "--train") == 0) o->train_pattern = v;
            else if (strcmp(f, "--val") == 0) o->val_pattern = v;
            else if (strcmp(f, "--batch") == 0) o->batch = flag_int("./train", f, v, 1, 1 << 20);
            else if (strcmp(f, "--seq") == 0) o->seq = flag_int("./train", f, v, 1, 1 << 24);
            else if (strcmp(f, "--steps") == 0) o->steps = flag_int("./train", f, v, 0, 1 << 30);
            else if (strcmp(f, "--lr") == 0) o->lr = flag_number("./train", f, v, 0.0, 10.0);
            else if (strcmp(f, "--warmup") == 0) o->warmup = flag_int("./train", f, v, -1, 1 << 30);
            else if (strcmp(f, "--schedule") == 0) { o->schedule = schedule_from_name(v); if (o->schedule < 0) die_flag(f, v, "one of constant wsd cosine"); }
            else if (strcmp(f, "--decay-steps") == 0) o->decay_steps = flag_int("./train", f, v, -1, 1 << 30);
            else if (strcmp(f, "--beta1") == 0) o->beta1 = flag_number("./train", f, v, 0.0, 0.999999);
            else if (strcmp(f, "--beta2") == 0) o->beta2 = flag_number("./train", f, v, 0.0, 0.999999999);
            else if (strcmp(f, "--eps") == 0) o->eps = flag_number("./train", f, v, 1e-30, 1.0);
            else if (strcmp(f, "--weight-decay") == 0) o->weight_decay = flag_number("./train", f, v, 0.0, 10.0);
            else if (strcmp(f, "--clip") == 0) o->clip = flag_number("./train", f, v, 0.0, 1e30);
            else if (strcmp(f, "--val-every") == 0) o->val_every = flag_int("./train", f, v, 0, 1 << 30);
            else if (strcmp(f, "--val-batches") == 0) o->val_batches = flag_int("./train", f, v, 1, 1 << 20);
            else if (strcmp(f, "--ckpt-dir") == 0) o->ckpt_dir = v;
            else if (strcmp(f, "--ckpt-every") == 0) o->ckpt_every = flag_int("./train", f, v, 0, 1 << 30);
            else if (strcmp(f, "--keep") == 0) o->keep = flag_int("./train", f, v, 1, 1 << 20);
            else if (strcmp(f, "--init-from") == 0) o->init_from = v;
            else if (strcmp(f, "--mix") == 0) o->mix = v;
            else if (strcmp(f, "--log") == 0) o->log_path = v;
            else if (strcmp(f, "--sample") == 0) o->sample_len = flag_int("./train", f, v, 0, 1 << 20);
            else if (strcmp(f, "--prompt") == 0) o->prompt = v;
            else if (strcmp(f, "--temperature") == 0) o->temperature = flag_number("./train", f, v, 0.0, 100.0);
            else if (strcmp(f, "--peak-tflops") == 0) o->peak_tflops = flag_number("./train", f, v, 1e-6, 1e9);
            else { fprintf(stderr, "error: unknown flag '%s'; see ./train --help\n", f); exit(1); }
        }
    }
    if (o->decay_steps < 0) o->decay_steps = o->steps / 5;
    if (o->warmup < 0) o->warmup = o->steps / 20;
    if (o->decay_steps > o->steps) { fprintf(stderr, "error: --decay-steps %d is more than --steps %d\n", o->decay_steps, o->steps); exit(1); }
    if (o->schedule == SCHED_WSD && o->warmup > o->steps - o->decay_steps) {
        fprintf(stderr, "error: --warmup %d runs into the decay (last %d of %d steps); lower one of them\n", o->warmup, o->decay_steps, o->steps);
        exit(1);
    }
}

/* -------------------------------------------------------------------------------------------- checkpoints */
static void ckpt_path(char *out, size_t n, const char *dir, int step, const char *ext) {
    snprintf(out, n, "%s/model_%08d.%s", dir, step, ext);
}

static void save_checkpoint(Model *m, const Options *o, const DataLoader *dl, const Rng *rng) {
    mkdir(o->ckpt_dir, 0755);
    char path[4200], err[512];
    /* state first, model last: a checkpoint counts once its model file exists next to a state file */
    TrainState s = {m->step, dl->shard, dl->pos, rng->state};
    ckpt_path(path, sizeof(path), o->ckpt_dir, m->step, "state");
    if (state_write(m, &s, path, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); exit(1); }
    ckpt_path(path, sizeof(path), o->ckpt_dir, m->step, "ckpt");
    if (model_save(m, path, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); exit(1); }
    printf("saved %s (+ .state)\n", path);
    int steps[4096];
    int n = checkpoint_list(o->ckpt_dir, 1, steps, 4096);
    for (int i = 0; i + o->keep < n; i++) {
        ckpt_path(path, sizeof(path), o->ckpt_dir, steps[i], "ckpt");
        remove(path);
        ckpt_path(path, sizeof(path), o->ckpt_dir, steps[i], "state");
        remove(path);
    }
}

/* On resume the checkpoint decides the model; flags that set the shape must agree with it. */
static void check_resume_config(const Config *ck, const Options *o) {
    const Config *f = &o->model;
    const char *what = NULL;
    unsigned g = o->given;   /* compare only what was given: an omitted flag holds its default, not the user's intent */
    if ((g & GIVEN_PE) && ck->pe != f->pe) what = "--pe";
    else if ((g & GIVEN_DIM) && ck->dim != f->dim) what = "--dim";
    else if ((g & GIVEN_LAYERS) && ck->n_layers != f->n_layers) what = "--layers";
    else if ((g & GIVEN_HEADS) && ck->n_heads != f->n_heads) what = "--heads";
    else if ((g & GIVEN_KV) && ck->n_kv_heads != f->n_kv_heads) what = "--kv-heads";
    else if ((g & GIVEN_FFN) && ck->ffn_dim != f->ffn_dim) what = "--ffn";
    else if (o->vocab != 0 && ck->vocab_size != o->vocab) what = "--vocab";
    else if ((g & GIVEN_BASE) && ck->rope_base != f->rope_base) what = "--rope-base";
    else if ((g & GIVEN_FRAC) && ck->pe == PE_PARTIAL && ck->rotary_frac != f->rotary_frac) what = "--rotary-frac";
    else if ((g & GIVEN_PI) && ck->pi_factor != f->pi_factor) what = "--pi-factor";
    else if ((g & GIVEN_YARN) && ck->yarn_factor != f->yarn_factor) what = "--yarn-factor";
    else if ((g & GIVEN_YARN_LEN) && ck->yarn_orig_len != f->yarn_orig_len) what = "--yarn-orig-len";
    else if ((g & GIVEN_NTK) && ck->ntk_factor != f->ntk_factor) what = "--ntk-factor";
    else if ((g & GIVEN_EPS) && ck->norm_eps != f->norm_eps) what = "--norm-eps";
    if (what != NULL) {
        fprintf(stderr, "error: the checkpoint in %s was trained with another %s than given now (checkpoint: %s dim %d layers %d heads %d kv %d ffn %d vocab %d base %g)\n"
                        "HINT: drop the shape flags to resume as saved, or use --init-from to start a new run from those weights\n",
                o->ckpt_dir, what, pe_name(ck->pe), ck->dim, ck->n_layers, ck->n_heads, ck->n_kv_heads, ck->ffn_dim, ck->vocab_size, ck->rope_base);
        exit(1);
    }
}

/* ------------------------------------------------------------------------------------------------- helpers */
static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static double evaluate(Model *m, DataLoader *val, int batches) {
    loader_reset(val);
    double sum = 0.0;
    char err[512];
    for (int i = 0; i < batches; i++) {
        if (loader_next(val, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); exit(1); }
        sum += model_forward_loss(m, val->inputs, val->targets, val->B, val->T, 0);
    }
    return sum / batches;
}

static void print_token(int tok, int tokenizer) {
    if (tokenizer == TOKENIZER_BYTES) { putchar(tok); return; }
    printf("<%d>", tok);
}

static void sample(Model *m, const Options *o, Rng *rng) {
    int T = o->seq, V = m->cfg.vocab_size;
    int *ctx = (int *)mallocCheck((size_t)(T + o->sample_len + strlen(o->prompt) + 1) * sizeof(int));
    int n = 0;
    for (const char *p = o->prompt; *p; p++) ctx[n++] = (unsigned char)*p % V;
    if (n == 0) ctx[n++] = 0;
    float *logits = (float *)mallocCheck((size_t)V * sizeof(float));
    printf("---- sample (%d tokens, temperature %g) ----\n%s", o->sample_len, o->temperature, o->prompt);
    for (int i = 0; i < o->sample_len; i++) {
        int start = n > T ? n - T : 0, len = n - start;
        model_forward(m, ctx + start, NULL, 1, len);
        model_logits_row(m, 0, len - 1, logits);
        int tok = sample_token(logits, V, o->temperature, 0, 1.0, rng);
        ctx[n++] = tok;
        print_token(tok, m->cfg.tokenizer);
        fflush(stdout);
    }
    printf("\n----\n");
    free(ctx);
    free(logits);
}

/* ---------------------------------------------------------------------------------------------------- main */
int main(int argc, char **argv) {
    Options o = default_options();
    parse_args(&o, argc, argv);
    char err[1024];
    /* every error below jumps to `out`, which frees what was made (zeroed structs free as no-ops) */
    int status = 1;
    Model model;
    DataLoader train_dl, val_dl;
    memset(&model, 0, sizeof(model));
    memset(&train_dl, 0, sizeof(train_dl));
    memset(&val_dl, 0, sizeof(val_dl));
    FILE *logf = NULL;
    Profile *prof = NULL;           /* --profile */
    TaskMix mix;
    TaskOptions task_opt;
    TaskSample task_row;
    memset(&mix, 0, sizeof(mix));
    memset(&task_row, 0, sizeof(task_row));

    /* vocabulary: flag, or from the data */
    int vocab = o.vocab;
    if (vocab == 0) {
        int mx;
        if (loader_max_token(o.train_pattern, &mx, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
        vocab = mx < 256 ? 256 : mx + 1;
    }

    Rng rng = {o.seed ^ 0x5EED5EEDull};
    TrainState resume_state = {0, 0, 0, 0};
    int resumed = 0;
    if (o.resume && o.ckpt_dir[0] == 0) {
        fprintf(stderr, "error: --resume needs a checkpoint folder, but --ckpt-dir is \"\"\nHINT: pass the --ckpt-dir the run wrote to\n");
        goto out;
    }
    if (o.resume) {
        int steps[4096];
        int n = checkpoint_list(o.ckpt_dir, 1, steps, 4096);
        if (n == 0) {
            fprintf(stderr, "error: --resume: no checkpoint (model_*.ckpt with its .state) in '%s'\nHINT: train with --ckpt-dir %s first, or drop --resume\n", o.ckpt_dir, o.ckpt_dir);
            goto out;
        }
        char path[4200];
        ckpt_path(path, sizeof(path), o.ckpt_dir, steps[n - 1], "ckpt");
        Config ck;
        double *params;
        size_t np;
        if (checkpoint_read(path, &ck, &params, &np, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
        check_resume_config(&ck, &o);
        model_init_from(&model, &ck, params);
        free(params);
        ckpt_path(path, sizeof(path), o.ckpt_dir, steps[n - 1], "state");
        if (state_read(&model, &resume_state, path, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
        rng.state = resume_state.rng;
        vocab = ck.vocab_size;
        resumed = 1;
        printf("resumed from %s/model_%08d at step %d\n", o.ckpt_dir, steps[n - 1], model.step);
    } else if (o.init_from != NULL) {
        Config ck;
        double *params;
        size_t np;
        if (checkpoint_read(o.init_from, &ck, &params, &np, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
        /* weights only; the new run may change the sequence length and the rope base (the long-context stage) */
        if (o.given & GIVEN_BASE) ck.rope_base = o.model.rope_base;
        if (ck.pe != PE_FOPE) ck.train_seq = o.seq;   /* FoPE's basis was fixed by its training length */
        model_init_from(&model, &ck, params);
        free(params);
        vocab = ck.vocab_size;
        printf("initialised from %s (fresh optimizer)\n", o.init_from);
    } else {
        o.model.vocab_size = vocab;
        o.model.train_seq = o.seq;
        /* what the tokens are, for infer: bytes up to 256, Llama-3 from 128000 on, GPT-2 (llm.c's data) between */
        o.model.tokenizer = vocab <= 256 ? TOKENIZER_BYTES : vocab >= 128000 ? TOKENIZER_LLAMA3 : TOKENIZER_GPT2;
        if (config_validate(&o.model, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
        model_init(&model, &o.model, o.init, o.seed);
    }
    const Config *c = &model.cfg;
    const Dims *d = &model.d;

    int have_val = o.val_pattern != NULL && o.val_pattern[0] != '\0';
    if (loader_init(&train_dl, o.train_pattern, o.batch, o.seq, vocab, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
    if (have_val && loader_init(&val_dl, o.val_pattern, o.batch, o.seq, vocab, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
    if (resumed && loader_seek(&train_dl, resume_state.shard, resume_state.pos, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
    /* long-context tasks mixed into the batches: a row is replaced by a generated sample with the task's
       proportion; the draws come from the run's RNG, which the state file saves, so resume stays exact */
    if (o.mix != NULL) {
        if (task_mix_parse(o.mix, &mix, err, sizeof(err)) != 0) { fprintf(stderr, "error: --mix: %s\n", err); goto out; }
        task_opt = task_options_default();
        task_opt.mqar_vocab = vocab;
        for (int i = 0; i < mix.n; i++) {
            int need = task_min_len(mix.item[i].task, &task_opt);
            if (need > o.seq) { fprintf(stderr, "error: --mix: task %s needs --seq >= %d (has %d)\n", task_name(mix.item[i].task), need, o.seq); goto out; }
            if (mix.item[i].task != TASK_MQAR && vocab < 256) { fprintf(stderr, "error: --mix: text task %s needs a byte-level vocabulary (256)\n", task_name(mix.item[i].task)); goto out; }
        }
        task_sample_alloc(&task_row, o.seq);
    }

    if (o.log_path && o.log_path[0]) {
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s", o.log_path);
        char *slash = strrchr(dir, '/');
        if (slash) { *slash = '\0'; mkdir(dir, 0755); }
        logf = fopen(o.log_path, resumed ? "a" : "w");
        if (logf == NULL) { fprintf(stderr, "error: cannot write log '%s': %s\n", o.log_path, strerror(errno)); goto out; }
    }

    size_t tokens_per_step = (size_t)o.batch * o.seq;
#ifdef ROPEPP_CUDA
    double flops_per_step = model_flops_per_token(c, o.seq) * (double)tokens_per_step;
    const char *peak_env = getenv("ROPEPP_PEAK_TFLOPS");
    if (peak_env != NULL) o.peak_tflops = flag_number("./train", "ROPEPP_PEAK_TFLOPS", peak_env, 1e-6, 1e9);
#endif
    printf("ropepp train | %s | backend %s\n", pe_name(c->pe), backend_name());
    printf("model: V %d, C %d, L %d, H %d (q heads %d, attention heads %d), KV %d (projected %d), HD %d, F %d, rot %d | %zu parameters (%.2fM)\n",
           c->vocab_size, c->dim, c->n_layers, c->n_heads, d->HQ, d->NA, c->n_kv_heads, d->KVH, d->HD, c->ffn_dim, d->rot,
           model.num_params, model.num_params / 1e6);
    printf("data: %s (%d shard%s), batch %d x seq %d = %zu tokens/step | %d steps, lr %g, %s warmup %d decay %d\n",
           o.train_pattern, train_dl.n_files, train_dl.n_files == 1 ? "" : "s", o.batch, o.seq, tokens_per_step, o.steps,
           o.lr, schedule_name(o.schedule), o.warmup, o.schedule == SCHED_WSD ? o.decay_steps : 0);

    double t_start = now_ms(), total_ms = 0.0, last_val = -1.0;
    int first_step = model.step;
    if (o.profile) {
        prof = (Profile *)mallocCheck(sizeof(Profile));
        memset(prof, 0, sizeof(*prof));
    }
    for (int step = model.step; step < o.steps; step++) {
        double t0 = now_ms();
        if (loader_next(&train_dl, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
        for (int b = 0; mix.n > 0 && b < o.batch; b++) {
            int task = task_mix_pick(&mix, &rng);
            if (task < 0) continue;
            if (task_generate(&task_row, task, o.seq, &task_opt, &rng, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
            memcpy(train_dl.inputs + (size_t)b * o.seq, task_row.tokens, (size_t)o.seq * sizeof(int));
            memcpy(train_dl.targets + (size_t)b * o.seq, task_row.targets, (size_t)o.seq * sizeof(int));
        }
        model.profile = prof;
        model_zero_grad(&model);
        double loss = model_forward_loss(&model, train_dl.inputs, train_dl.targets, o.batch, o.seq, 1);
        model_backward(&model);
        double lr = o.lr * lr_lambda(o.schedule, step, o.warmup, o.steps, o.decay_steps);
        double norm = model_update(&model, lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.clip);
        profile_collect(prof, step - first_step >= 2);   /* waits for the device: the step's time includes it */
        model.profile = NULL;
        double ms = now_ms() - t0;
        total_ms += ms;
        if (!isfinite(loss)) {
            fprintf(stderr, "error: loss is %f at step %d: training diverged\nHINT: lower --lr or set --clip 1.0\n", loss, step + 1);
            goto out;
        }
        double tok_s = tokens_per_step / (ms / 1e3);
#ifdef ROPEPP_CUDA
        double mfu = flops_per_step / (ms / 1e3) / (o.peak_tflops * 1e12) * 100.0;
        printf("step %5d/%d | loss %.4f | lr %.2e | norm %.3f | %7.1f ms | %9.0f tok/s | MFU %.1f%%\n", step + 1, o.steps, loss, lr, norm, ms, tok_s, mfu);
#else
        printf("step %5d/%d | loss %.4f | lr %.2e | norm %.3f | %7.1f ms | %8.0f tok/s\n", step + 1, o.steps, loss, lr, norm, ms, tok_s);
#endif
        if (logf) fprintf(logf, "{\"step\": %d, \"loss\": %.17g, \"lr\": %.17g, \"norm\": %.17g, \"ms\": %.3f, \"tok_s\": %.1f}\n", step + 1, loss, lr, norm, ms, tok_s);
        int last = step + 1 == o.steps;
        if (have_val && (last || (o.val_every > 0 && (step + 1) % o.val_every == 0))) {
            last_val = evaluate(&model, &val_dl, o.val_batches);
            printf("val loss %.4f (%d batches) | %.1f s\n", last_val, o.val_batches, (now_ms() - t_start) / 1e3);
            if (logf) { fprintf(logf, "{\"step\": %d, \"val_loss\": %.17g}\n", step + 1, last_val); fflush(logf); }
        }
        if (o.ckpt_dir[0] != 0 && (last || (o.ckpt_every > 0 && (step + 1) % o.ckpt_every == 0)))
            save_checkpoint(&model, &o, &train_dl, &rng);
    }
    int done = model.step - first_step;
    double secs = (now_ms() - t_start) / 1e3;
    printf("done: %d steps in %.1f s (%.0f tok/s training)%s", done, secs, done > 0 ? done * tokens_per_step / (total_ms / 1e3) : 0.0,
           last_val >= 0 ? "" : "\n");
    if (last_val >= 0) printf(" | final val loss %.4f\n", last_val);
#ifdef ROPEPP_CUDA
    printf("peak GPU memory: %.2f GiB (model tensors and scratch; as torch.cuda.max_memory_allocated, no CUDA context)\n",
           backend_memory_peak() / 1073741824.0);
    if (logf) fprintf(logf, "{\"peak_memory_bytes\": %zu}\n", backend_memory_peak());
#endif
    if (prof != NULL) profile_print(prof, stdout);
    if (o.sample_len > 0) sample(&model, &o, &rng);
    status = 0;
out:
    if (logf) fclose(logf);
    free(prof);
    if (task_row.tokens != NULL) task_sample_free(&task_row);
    loader_free(&train_dl);
    loader_free(&val_dl);
    model_free(&model);
    return status;
}
