/*
train — train a RoPE++ (or baseline) language model. One program, two builds:
  make train && ./train              CPU (OpenMP), float
  make train_gpu && ./train_gpu      CUDA (bf16 activations, fp32 master weights)
With no arguments it trains the default small model on the shipped Tiny Shakespeare (byte-level) and prints a
sample. `./train --help` lists every flag and its default.

Every step prints one line (step, loss, lr, grad norm, ms, tokens/s); validation loss every --val-every steps;
a JSONL log of the same numbers goes to --log. Checkpoints (docs/FORMATS.md) go to --ckpt-dir: a model file and a
state file (AdamW moments, step, loader position, RNG), written atomically; --resume continues from the newest so
that the losses are bit-identical to an uninterrupted run (checkpoints are taken at optimizer steps, after all of
a step's --grad-accum micro-batches).

Several GPUs (train_gpu built with NCCL, README "Several GPUs"): one process per GPU, data parallel with the
optimizer sharded (ZeRO-1), e.g.  mpirun -np 8 ./train_gpu ...  or, with torchrun/Slurm's RANK, WORLD_SIZE and
LOCAL_RANK,  ROPEPP_NCCL_ID_FILE=/shared/path ./train_gpu ...  in each process. --batch is per process.
*/
#define ROPEPP_IMPLEMENTATION
#include "ropepp.h"
#include "cli.h"
#define ROPEPP_TASKS_IMPLEMENTATION
#include "data/tasks.h"
#include <time.h>
#include <signal.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>

/* ------------------------------------------------------------------------------------------------ options */
typedef struct {
    Config model;
    const char *train_pattern, *val_pattern, *out, *log_path, *init_from, *prompt, *mix;
    const char *tokenizer;      /* --tokenizer FILE: how the samples of a token-id model are printed (NULL: <id>) */
    int vocab;                  /* 0 = from the data */
    int batch, seq, steps, warmup, schedule, decay_steps, val_every, val_batches, ckpt_every, keep, resume, profile;
    int sample_len, sample_every, init;
    int mix_all_targets, task_bos, mqar_blank, mqar_kv;   /* --mix-loss all, --task-bos, --mqar-filler blank, --mqar-kv */
    int mix_row_mean;           /* --mix-weight row (1) or token (0) */
    int grad_accum;             /* micro-batches per optimizer step */
    double lr, beta1, beta2, eps, weight_decay, clip, temperature, peak_tflops;
    uint64_t seed;
    uint64_t data_seed;         /* --data-seed: document rows in a seeded order (0 = the stream as stored) */
    int out_given;              /* --out or --ckpt-dir was given (else a new folder under runs/) */
    uint64_t model_given;       /* bit i: config_rules[i]'s flag was given */
    uint64_t run_given;         /* bit i: run_rules[i]'s flag was given */
} Options;

/* The run's own settings (settings.txt in the run folder) and what a flag given on --resume does to each
   (docs/SETTINGS.md): 'a' applied, 'r' refused when it differs. The model's settings follow config_rules. The
   schedule flags are applied, then checked: the learning rate of every step already done must stay the same. */
/* the names of the run settings that are a choice, by value (as parse_flag reads them) */
static const char *const mix_loss_names[] = {"answer", "all", NULL};
static const char *const mix_weight_names[] = {"token", "row", NULL};
static const char *const mqar_filler_names[] = {"random", "blank", NULL};
static const SettingRule run_rules[] = {
    {"--train",        's', offsetof(Options, train_pattern), {'r', '-', '-'}, NULL},
    {"--val",          's', offsetof(Options, val_pattern),   {'r', '-', '-'}, NULL},
    {"--vocab",        'i', offsetof(Options, vocab),         {'r', '-', '-'}, NULL},
    {"--batch",        'i', offsetof(Options, batch),         {'r', '-', '-'}, NULL},
    {"--grad-accum",   'i', offsetof(Options, grad_accum),    {'r', '-', '-'}, NULL},
    {"--seq",          'i', offsetof(Options, seq),           {'r', '-', '-'}, NULL},
    {"--mix",          's', offsetof(Options, mix),           {'r', '-', '-'}, NULL},
    {"--mix-loss",     'i', offsetof(Options, mix_all_targets), {'r', '-', '-'}, mix_loss_names},
    {"--mix-weight",   'i', offsetof(Options, mix_row_mean),  {'r', '-', '-'}, mix_weight_names},
    {"--task-bos",     'i', offsetof(Options, task_bos),      {'r', '-', '-'}, NULL},
    {"--mqar-filler",  'i', offsetof(Options, mqar_blank),    {'r', '-', '-'}, mqar_filler_names},
    {"--mqar-kv",      'i', offsetof(Options, mqar_kv),       {'r', '-', '-'}, NULL},
    {"--seed",         'u', offsetof(Options, seed),          {'r', '-', '-'}, NULL},
    {"--data-seed",    'u', offsetof(Options, data_seed),     {'r', '-', '-'}, NULL},
    {"--init",         'i', offsetof(Options, init),          {'r', '-', '-'}, init_names},
    {"--beta1",        'd', offsetof(Options, beta1),         {'r', '-', '-'}, NULL},
    {"--beta2",        'd', offsetof(Options, beta2),         {'r', '-', '-'}, NULL},
    {"--eps",          'd', offsetof(Options, eps),           {'r', '-', '-'}, NULL},
    {"--weight-decay", 'd', offsetof(Options, weight_decay),  {'r', '-', '-'}, NULL},
    {"--clip",         'd', offsetof(Options, clip),          {'r', '-', '-'}, NULL},
    {"--steps",        'i', offsetof(Options, steps),         {'a', '-', '-'}, NULL},
    {"--lr",           'd', offsetof(Options, lr),            {'a', '-', '-'}, NULL},
    {"--warmup",       'i', offsetof(Options, warmup),        {'a', '-', '-'}, NULL},
    {"--schedule",     'i', offsetof(Options, schedule),      {'a', '-', '-'}, NULL},
    {"--decay-steps",  'i', offsetof(Options, decay_steps),   {'a', '-', '-'}, NULL},
    {"--val-every",    'i', offsetof(Options, val_every),     {'a', '-', '-'}, NULL},
    {"--val-batches",  'i', offsetof(Options, val_batches),   {'a', '-', '-'}, NULL},
    {"--ckpt-every",   'i', offsetof(Options, ckpt_every),    {'a', '-', '-'}, NULL},
    {"--keep",         'i', offsetof(Options, keep),          {'a', '-', '-'}, NULL},
    {"--log",          's', offsetof(Options, log_path),      {'a', '-', '-'}, NULL},
    {"--sample",       'i', offsetof(Options, sample_len),    {'a', '-', '-'}, NULL},
    {"--sample-every", 'i', offsetof(Options, sample_every),  {'a', '-', '-'}, NULL},
    {"--prompt",       's', offsetof(Options, prompt),        {'a', '-', '-'}, NULL},
    {"--tokenizer",    's', offsetof(Options, tokenizer),     {'a', '-', '-'}, NULL},
    {"--temperature",  'd', offsetof(Options, temperature),   {'a', '-', '-'}, NULL},
};
static const int run_rule_count = (int)(sizeof(run_rules) / sizeof(run_rules[0]));

static Options default_options(void) {
    Options o;
    memset(&o, 0, sizeof(o));
    o.model = config_default();
    o.train_pattern = "data/tinyshakespeare_train.bin";
    o.val_pattern = "data/tinyshakespeare_val.bin";
    o.out = NULL;               /* runs/<pe>-<date>-<time> */
    o.log_path = NULL;          /* OUT/train.jsonl */
    o.prompt = "\n";
    o.vocab = 0;
    o.batch = 16; o.seq = 128; o.steps = 1000; o.warmup = -1; o.schedule = SCHED_WSD; o.decay_steps = -1;
    o.val_every = 100; o.val_batches = 20; o.ckpt_every = -1; o.keep = 3; o.resume = 0; o.profile = 0;
    o.sample_len = 300; o.sample_every = 0; o.init = INIT_TORCH_DEFAULT; o.grad_accum = 1; o.mix_row_mean = 1;
    o.lr = 3e-3; o.beta1 = 0.95; o.beta2 = 0.99; o.eps = 1e-8; o.weight_decay = 0.1; o.clip = 0.0;
    o.temperature = 0.8; o.seed = 42;
    o.peak_tflops = 770.0;   /* bf16 8192^3 matmul measured on an H100: bench/peak/2026-11-24.txt */
    return o;
}

static void usage(const Options *d) {
    const Config *c = &d->model;
    char names[256];
    printf("usage: train [flags]    (train_gpu: the same flags)\n\n"
           "A run is a folder (--out): its checkpoints, train.jsonl, settings.txt (every setting), command.txt (each\n"
           "command line) and samples.txt. ./infer, ./eval and --resume take the folder.\n\n"
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
           "  --data-seed N        0: the training shards as one stream, in order; N >= 1: a corpus of BOS-led documents\n"
           "                       (data/docs2shards), each cut into rows from its BOS on, in an order seeded by N (0)\n"
           "  --vocab V            vocabulary size (0 = 256 for byte data, else max token + 1, up to 262144) (0)\n"
           "  --batch B            sequences per micro-batch and process (%d)\n"
           "  --grad-accum N       micro-batches per optimizer step: a step sees N x B x processes sequences (1)\n"
           "  --seq T              sequence length (%d)\n"
           "  --mix SPEC           rows of generated long-context tasks mixed into the batches, e.g. passkey:0.2,mqar:0.1\n"
           "                       (tasks: passkey niah_single niah_multikey niah_multivalue vt mqar; text tasks need a long --seq)\n"
           "  --mix-loss WHICH     task rows' targets: answer (the answer tokens only, the rest ignored) or all (answer)\n"
           "  --mix-weight HOW     the batch's loss with --mix: row (each row's mean over its targets, then the mean over\n"
           "                       the rows: a task row weighs as much as a text row) or token (the mean over every target,\n"
           "                       where a task row's few answer targets are ~1%% of the gradient) (row)\n"
           "  --task-bos [0|1]     task rows start with the BOS token 0, as the documents of data/docs2shards do\n"
           "  --mqar-filler KIND   MQAR's non-query positions: random (uniform tokens) or blank (token 0) (random)\n"
           "  --mqar-kv N          MQAR key-value pairs per row (0 = seq/16)\n\n"
           "optimization (AdamW, docs/MATH.md)\n"
           "  --steps N            optimizer steps (%d)\n"
           "  --lr LR              peak learning rate (%g)\n"
           "  --warmup W           linear warmup steps from 0 (-1 = 5%% of --steps)\n"
           "  --schedule NAME      constant | wsd (warmup-stable-decay) | cosine (wsd)\n"
           "  --decay-steps D      wsd: cosine decay to 0 over the last D steps (-1 = 20%% of --steps)\n"
           "  --beta1 B1 --beta2 B2 --eps E    AdamW (%g, %g, %g)\n"
           "  --weight-decay WD    decoupled, not on RMSNorm weights (%g)\n"
           "  --clip G             global gradient-norm clipping (0 = off) (%g)\n\n"
           "run folder, evaluation, checkpoints, logs\n"
           "  --out DIR            the run folder (runs/<pe>-<date>-<time>; runs/latest points to the newest one in runs/; \"\" = write nothing)\n"
           "                       a new run refuses a folder that already holds a run\n"
           "  --ckpt-dir DIR       the old name of --out\n"
           "  --resume [DIR]       continue the run in DIR (or --out; alone: runs/latest) with every setting it was\n"
           "                       started with; flags given now are applied or refused as docs/SETTINGS.md says\n"
           "                       (e.g. --steps N extends the stable phase, keeping the learning rate continuous)\n"
           "  --init-from CKPT     start a new run from these weights (a .ckpt or a run folder) with a fresh optimizer;\n"
           "                       --seq, --rope-base and the scaling flags apply on top, shape flags must agree\n"
           "  --val-every N        validation every N steps and at the end (0 = only at the end) (%d)\n"
           "  --val-batches N      batches per validation (%d)\n"
           "  --ckpt-every N       checkpoint every N steps (-1 = 10%% of --steps, so ./infer works on a run still training;\n"
           "                       0 = only at the end and on Ctrl-C) (%d)\n"
           "  --keep N             keep the newest N checkpoints of this run (%d)\n"
           "  --log FILE           JSONL log of every step and validation (OUT/train.jsonl; \"\" = none)\n"
           "  --sample N           bytes to generate after training (%d; 0 = none)\n"
           "  --sample-every N     also generate a sample every N steps (0 = off); all go to OUT/samples.txt\n"
           "  --prompt TEXT        prompt for the sample (a newline)\n"
           "  --tokenizer FILE     llm.c's tokenizer file (gpt2_tokenizer.bin): a token-id model's samples as text, not <id>\n"
           "  --temperature T      sampling temperature (%g)\n"
           "  --profile            after training, where each step's time went: ms per step of every op (steps 3 on)\n"
           "  --peak-tflops P      GPU build: peak for MFU, or env ROPEPP_PEAK_TFLOPS (%g, measured bf16 on H100)\n"
           "  --list-pe            the position embeddings, one a line (name, facts, description), then exit\n"
           "  --help               this text\n\n"
           "Ctrl-C (SIGINT), SIGTERM, SIGHUP and SIGUSR1 finish the step, write a checkpoint and a log line, and exit\n"
           "with 128 + the signal's number (130, 143, 129, 138); a second one exits at once. A closed stdout (| head)\n"
           "does not stop a run. One train at a time writes a run folder (its lock: train.lock).\n",
           pe_names(names, sizeof(names), " ", -1), pe_name(c->pe), c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->ffn_dim, c->rotary_frac,
           c->rope_base, c->norm_eps, (unsigned long long)d->seed, d->train_pattern, d->val_pattern, d->batch,
           d->seq, d->steps, d->lr, d->beta1, d->beta2, d->eps, d->weight_decay, d->clip,
           d->val_every, d->val_batches, d->ckpt_every, d->keep, d->sample_len,
           d->temperature, d->peak_tflops);
}

static void die_flag(const char *flag, const char *value, const char *want) {
    fprintf(stderr, "error: %s '%s' is not %s; see ./train --help\n", flag, value, want);
    exit(1);
}

/* a choice flag: the index of v in names (NULL-terminated, as in the rules' names), or exit naming the choices */
static int parse_choice(const char *flag, const char *v, const char *const *names) {
    char want[256] = "";
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(v, names[i]) == 0) return i;
        size_t len = strlen(want);
        snprintf(want + len, sizeof(want) - len, "%s%s", i == 0 ? "" : names[i + 1] != NULL ? ", " : " or ", names[i]);
    }
    die_flag(flag, v, want);
    return -1;
}

/* every flag that takes a value (an unknown flag at the end of the line is reported as unknown, not as missing
   its value) */
static const char *const value_flags[] = {
    "--pe", "--dim", "--layers", "--heads", "--kv-heads", "--ffn", "--rotary-frac", "--rope-base", "--pi-factor",
    "--yarn-factor", "--yarn-orig-len", "--ntk-factor", "--norm-eps", "--vocab", "--init", "--seed", "--data-seed", "--train", "--val",
    "--batch", "--seq", "--steps", "--lr", "--warmup", "--schedule", "--decay-steps", "--beta1", "--beta2", "--eps",
    "--weight-decay", "--clip", "--val-every", "--val-batches", "--out", "--ckpt-dir", "--ckpt-every", "--keep",
    "--init-from", "--log", "--sample", "--sample-every", "--prompt", "--tokenizer", "--temperature", "--peak-tflops", "--mix", "--mix-loss", "--mix-weight", "--mqar-filler", "--mqar-kv", "--grad-accum"};

/* the flags that take no value, besides --help */
static const char *const switch_flags[] = {"--resume", "--profile", "--task-bos", "--list-pe"};

/* exit(1) on an unknown flag, naming the nearest known one (edit distance 2 at most) */
static void die_unknown_flag(const char *f) {
    const char *best = NULL;
    int best_d = 3;
    name_nearest(f, value_flags, (int)(sizeof(value_flags) / sizeof(value_flags[0])), &best, &best_d);
    name_nearest(f, switch_flags, (int)(sizeof(switch_flags) / sizeof(switch_flags[0])), &best, &best_d);
    char eq[300];
    if (flag_equals_hint(f, eq, sizeof(eq))[0]) fprintf(stderr, "error: unknown flag '%s'%s\n", f, eq);
    else if (best != NULL) fprintf(stderr, "error: unknown flag '%s' (did you mean %s?); see ./train --help\n", f, best);
    else fprintf(stderr, "error: unknown flag '%s'; see ./train --help\n", f);
    exit(1);
}

static void mark_given(Options *o, const char *f) {
    int i = settings_find(config_rules, config_rule_count, f);
    if (i >= 0) o->model_given |= 1ull << i;
    i = settings_find(run_rules, run_rule_count, f);
    if (i >= 0) o->run_given |= 1ull << i;
}

/* One flag and its value into o (from the command line or a run's settings.txt). 0, or -1 if the flag is unknown. */
static int parse_flag(Options *o, const char *f, const char *v) {
    Config *c = &o->model;
    if (strcmp(f, "--pe") == 0) { c->pe = pe_from_name(v); if (c->pe < 0) { char names[256], want[300]; snprintf(want, sizeof(want), "one of %s", pe_names(names, sizeof(names), " ", -1)); die_flag(f, v, want); } }
    else if (strcmp(f, "--dim") == 0) c->dim = flag_int("./train", f, v, 1, 65536);
    else if (strcmp(f, "--layers") == 0) c->n_layers = flag_int("./train", f, v, 1, 1024);
    else if (strcmp(f, "--heads") == 0) c->n_heads = flag_int("./train", f, v, 1, 4096);
    else if (strcmp(f, "--kv-heads") == 0) c->n_kv_heads = flag_int("./train", f, v, 1, 4096);
    else if (strcmp(f, "--ffn") == 0) c->ffn_dim = flag_int("./train", f, v, 1, 1 << 20);
    else if (strcmp(f, "--rotary-frac") == 0) c->rotary_frac = flag_number("./train", f, v, 1e-9, 1.0);
    else if (strcmp(f, "--rope-base") == 0) c->rope_base = flag_number("./train", f, v, 1.0000001, 1e30);
    else if (strcmp(f, "--pi-factor") == 0) c->pi_factor = flag_number("./train", f, v, 1.0, 1e6);
    else if (strcmp(f, "--yarn-factor") == 0) c->yarn_factor = flag_number("./train", f, v, 1.0, 1e6);
    else if (strcmp(f, "--yarn-orig-len") == 0) c->yarn_orig_len = flag_int("./train", f, v, 0, 1 << 24);
    else if (strcmp(f, "--ntk-factor") == 0) c->ntk_factor = flag_number("./train", f, v, 1.0, 1e6);
    else if (strcmp(f, "--norm-eps") == 0) c->norm_eps = flag_number("./train", f, v, 1e-30, 0.5);
    else if (strcmp(f, "--vocab") == 0) { o->vocab = flag_int("./train", f, v, 0, 1 << 30); c->vocab_size = o->vocab; }
    else if (strcmp(f, "--init") == 0) { o->init = parse_choice(f, v, init_names); c->init = o->init; }
    else if (strcmp(f, "--seed") == 0) o->seed = (uint64_t)flag_number("./train", f, v, 0, 9007199254740992.0);
    else if (strcmp(f, "--data-seed") == 0) o->data_seed = (uint64_t)flag_number("./train", f, v, 0, 9007199254740992.0);
    else if (strcmp(f, "--train") == 0) o->train_pattern = v;
    else if (strcmp(f, "--val") == 0) o->val_pattern = v;
    else if (strcmp(f, "--batch") == 0) o->batch = flag_int("./train", f, v, 1, 1 << 20);
    else if (strcmp(f, "--grad-accum") == 0) o->grad_accum = flag_int("./train", f, v, 1, 1 << 16);
    else if (strcmp(f, "--seq") == 0) { o->seq = flag_int("./train", f, v, 1, 1 << 24); c->train_seq = o->seq; }
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
    else if (strcmp(f, "--out") == 0 || strcmp(f, "--ckpt-dir") == 0) { o->out = v; o->out_given = 1; }
    else if (strcmp(f, "--ckpt-every") == 0) o->ckpt_every = flag_int("./train", f, v, -1, 1 << 30);
    else if (strcmp(f, "--keep") == 0) o->keep = flag_int("./train", f, v, 1, 1 << 20);
    else if (strcmp(f, "--init-from") == 0) o->init_from = v;
    else if (strcmp(f, "--mix") == 0) o->mix = v;
    else if (strcmp(f, "--mix-loss") == 0) o->mix_all_targets = parse_choice(f, v, mix_loss_names);
    else if (strcmp(f, "--mix-weight") == 0) o->mix_row_mean = parse_choice(f, v, mix_weight_names);
    else if (strcmp(f, "--mqar-filler") == 0) o->mqar_blank = parse_choice(f, v, mqar_filler_names);
    else if (strcmp(f, "--mqar-kv") == 0) o->mqar_kv = flag_int("./train", f, v, 0, 1 << 20);
    else if (strcmp(f, "--task-bos") == 0) o->task_bos = flag_int("./train", f, v, 0, 1);   /* settings.txt: 0 or 1 */
    else if (strcmp(f, "--log") == 0) o->log_path = v;
    else if (strcmp(f, "--sample") == 0) o->sample_len = flag_int("./train", f, v, 0, 1 << 20);
    else if (strcmp(f, "--sample-every") == 0) o->sample_every = flag_int("./train", f, v, 0, 1 << 30);
    else if (strcmp(f, "--prompt") == 0) o->prompt = v;
    else if (strcmp(f, "--tokenizer") == 0) o->tokenizer = v;
    else if (strcmp(f, "--temperature") == 0) o->temperature = flag_number("./train", f, v, 0.0, 100.0);
    else if (strcmp(f, "--peak-tflops") == 0) o->peak_tflops = flag_number("./train", f, v, 1e-6, 1e9);
    else return -1;
    mark_given(o, f);
    return 0;
}

static void parse_args(Options *o, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) { Options d = default_options(); usage(&d); exit(0); }
        if (strcmp(f, "--list-pe") == 0) { pe_list(stdout); exit(0); }
        if (strcmp(f, "--resume") == 0) {   /* --resume [DIR] */
            o->resume = 1;
            if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) { o->out = argv[++i]; o->out_given = 1; }
            continue;
        }
        if (strcmp(f, "--profile") == 0) { o->profile = 1; continue; }
        if (strcmp(f, "--task-bos") == 0) {   /* --task-bos [0|1] */
            const char *v = "1";
            if (i + 1 < argc && (strcmp(argv[i + 1], "0") == 0 || strcmp(argv[i + 1], "1") == 0)) v = argv[++i];
            parse_flag(o, f, v);
            continue;
        }
        if (strncmp(f, "--", 2) != 0) { fprintf(stderr, "error: unexpected argument '%s'; flags start with --, see ./train --help\n", f); exit(1); }
        if (i + 1 >= argc) {
            int known = 0;
            for (size_t k = 0; k < sizeof(value_flags) / sizeof(value_flags[0]); k++) known |= strcmp(f, value_flags[k]) == 0;
            if (!known) die_unknown_flag(f);
            fprintf(stderr, "error: flag %s needs a value; see ./train --help\n", f);
            exit(1);
        }
        const char *v = argv[++i];
        if (parse_flag(o, f, v) != 0) die_unknown_flag(f);
    }
}

/* the schedule's -1 defaults, and whether it holds together */
static void finish_schedule(Options *o) {
    if (o->decay_steps < 0) o->decay_steps = o->steps / 5;
    if (o->warmup < 0) o->warmup = o->steps / 20;
    if (o->ckpt_every < 0) o->ckpt_every = o->steps / 10;   /* 0 under 10 steps: at the end only */
    if (o->decay_steps > o->steps) { fprintf(stderr, "error: --decay-steps %d is more than --steps %d\n", o->decay_steps, o->steps); exit(1); }
    if (o->schedule == SCHED_COSINE && o->warmup > o->steps) {   /* the cosine would never start */
        fprintf(stderr, "error: --warmup %d is longer than the run (--steps %d): the cosine decay would never start; lower --warmup\n", o->warmup, o->steps);
        exit(1);
    }
    if (o->schedule == SCHED_WSD && o->warmup > o->steps - o->decay_steps) {
        fprintf(stderr, "error: --warmup %d runs into the decay (last %d of %d steps); lower one of them\n", o->warmup, o->decay_steps, o->steps);
        exit(1);
    }
}

/* What settings.txt stores: every setting of the run, resolved (warmup and decay in steps), one `--flag value`
   a line. --out, --resume, --init-from, --profile and --peak-tflops belong to one command line, not to the run. */
static int write_settings(const char *path, const Options *o, const Config *c, char *err, size_t errlen) {
    enum { N = 64 };
    const char *flags[N], *values[N];
    char buf[N][64];
    int n = 0;
#define PUT_S(flag, v) do { flags[n] = flag; values[n] = (v); n++; } while (0)
#define PUT_F(flag, fmt, v) do { snprintf(buf[n], sizeof(buf[n]), fmt, v); flags[n] = flag; values[n] = buf[n]; n++; } while (0)
    PUT_S("--pe", pe_name(c->pe));
    PUT_F("--vocab", "%d", c->vocab_size);
    PUT_F("--dim", "%d", c->dim);
    PUT_F("--layers", "%d", c->n_layers);
    PUT_F("--heads", "%d", c->n_heads);
    PUT_F("--kv-heads", "%d", c->n_kv_heads);
    PUT_F("--ffn", "%d", c->ffn_dim);
    /* partial's own setting: another PE has no rotary fraction, so none is recorded (the flag would be refused) */
    if (pe_info(c->pe)->partial) PUT_F("--rotary-frac", "%.17g", c->rotary_frac);
    PUT_F("--rope-base", "%.17g", c->rope_base);
    PUT_F("--pi-factor", "%.17g", c->pi_factor);
    PUT_F("--yarn-factor", "%.17g", c->yarn_factor);
    PUT_F("--yarn-orig-len", "%d", c->yarn_orig_len);
    PUT_F("--ntk-factor", "%.17g", c->ntk_factor);
    PUT_F("--norm-eps", "%.17g", c->norm_eps);
    PUT_S("--init", init_names[o->init]);
    PUT_F("--seed", "%llu", (unsigned long long)o->seed);
    PUT_F("--data-seed", "%llu", (unsigned long long)o->data_seed);
    PUT_S("--train", o->train_pattern);
    PUT_S("--val", o->val_pattern);
    PUT_F("--batch", "%d", o->batch);
    PUT_F("--grad-accum", "%d", o->grad_accum);
    PUT_F("--seq", "%d", o->seq);
    if (o->mix != NULL) PUT_S("--mix", o->mix);
    PUT_S("--mix-loss", mix_loss_names[o->mix_all_targets]);
    PUT_S("--mix-weight", mix_weight_names[o->mix_row_mean]);
    PUT_F("--task-bos", "%d", o->task_bos);
    PUT_S("--mqar-filler", mqar_filler_names[o->mqar_blank]);
    PUT_F("--mqar-kv", "%d", o->mqar_kv);
    PUT_F("--steps", "%d", o->steps);
    PUT_F("--lr", "%.17g", o->lr);
    PUT_F("--warmup", "%d", o->warmup);
    PUT_S("--schedule", schedule_name(o->schedule));
    PUT_F("--decay-steps", "%d", o->decay_steps);
    PUT_F("--beta1", "%.17g", o->beta1);
    PUT_F("--beta2", "%.17g", o->beta2);
    PUT_F("--eps", "%.17g", o->eps);
    PUT_F("--weight-decay", "%.17g", o->weight_decay);
    PUT_F("--clip", "%.17g", o->clip);
    PUT_F("--val-every", "%d", o->val_every);
    PUT_F("--val-batches", "%d", o->val_batches);
    PUT_F("--ckpt-every", "%d", o->ckpt_every);
    PUT_F("--keep", "%d", o->keep);
    if (o->log_path != NULL) PUT_S("--log", o->log_path);
    PUT_F("--sample", "%d", o->sample_len);
    PUT_F("--sample-every", "%d", o->sample_every);
    PUT_S("--prompt", o->prompt);
    if (o->tokenizer != NULL) PUT_S("--tokenizer", o->tokenizer);
    PUT_F("--temperature", "%.17g", o->temperature);
#undef PUT_S
#undef PUT_F
    return settings_write(path, flags, values, n, err, errlen);
}

/* --resume: the run's settings.txt read back as if given on the command line, then the flags given now on top
   (run_rules; the model's flags are checked against the checkpoint later). The strings stay owned by *keep. */
static int merge_resume(Options *o, char ***keep_flags, char ***keep_values, int *keep_n, char *err, size_t errlen) {
    char path[4200];
    struct stat st;
    if (stat(o->out, &st) == 0 && S_ISREG(st.st_mode)) {   /* --resume RUN/model_N.ckpt */
        char dir[4200];
        snprintf(dir, sizeof(dir), "%s", o->out);
        char *slash = strrchr(dir, '/');
        if (slash != NULL) *slash = '\0'; else snprintf(dir, sizeof(dir), ".");
        snprintf(err, errlen, "--resume takes a run folder, and '%s' is a file; --resume %s continues that run from its newest "
                              "checkpoint (a new run from this checkpoint's weights: --init-from %s)", o->out, dir, o->out);
        return -1;
    }
    snprintf(path, sizeof(path), "%s/settings.txt", o->out);
    if (stat(path, &st) != 0) {
        if (checkpoint_newest(o->out, 0) >= 0)
            snprintf(err, errlen, "--resume: '%s' has checkpoints but no settings.txt (not written by this ./train): its data, batch and "
                                  "schedule are unknown; start a new run from its weights with --init-from %s", o->out, o->out);
        else
            snprintf(err, errlen, "--resume: no run to continue in '%s' (no settings.txt, no checkpoint); train one first, or pass the run folder", o->out);
        return -1;
    }
    if (settings_read(path, keep_flags, keep_values, keep_n, err, errlen) != 0) return -1;
    Options s = default_options();
    s.mix_row_mean = 0;   /* a settings.txt from before --mix-weight: those runs trained with the token mean */
    for (int i = 0; i < *keep_n; i++)
        if (parse_flag(&s, (*keep_flags)[i], (*keep_values)[i]) != 0) {
            snprintf(err, errlen, "%s: unknown setting '%s' (written by another version?)", path, (*keep_flags)[i]);
            return -1;
        }
    char what[4300];
    snprintf(what, sizeof(what), "the run %s (settings.txt)", o->out);
    if (settings_apply(&s, o, o->run_given, run_rules, run_rule_count, USE_RESUME, what, err, errlen) != 0) return -1;
    s.model_given = o->model_given;
    s.run_given = o->run_given;
    s.out = o->out; s.out_given = 1; s.resume = 1; s.profile = o->profile; s.peak_tflops = o->peak_tflops;
    s.init_from = o->init_from;
    /* a model flag given now is compared with the checkpoint; keep its value */
    for (int i = 0; i < config_rule_count; i++)
        if (o->model_given >> i & 1u) memcpy((char *)&s.model + config_rules[i].offset, (const char *)&o->model + config_rules[i].offset,
                                             config_rules[i].type == 'd' ? sizeof(double) : sizeof(int));
    *o = s;
    return 0;
}

/* two numbers as text with enough digits to tell them apart: %.6g, more where they agree to 6 digits */
static void distinct_numbers(char *a_out, char *b_out, size_t n, double a, double b) {
    for (int digits = 6; digits <= 17; digits++) {
        snprintf(a_out, n, "%.*g", digits, a);
        snprintf(b_out, n, "%.*g", digits, b);
        if (strcmp(a_out, b_out) != 0) return;
    }
}

/* A run whose learning rate has begun its final decay (wsd past steps - decay, or cosine) cannot be extended by
   --steps: the rate of the steps done would change. The rule (docs/SETTINGS.md, "Training on after a run
   finished"): a new stage from its weights, --init-from, which warms up to the peak again and decays over the new
   steps, with a fresh AdamW. Into out: that command for the run folder `run`, with its data and batch settings that
   differ from the defaults (--init-from takes the model from the checkpoint, not those). */
static void next_stage_command(const Options *o, const char *run, int steps, char *out, size_t n) {
    Options d = default_options();
    size_t len = (size_t)snprintf(out, n, "./train --init-from %s --steps %d", run, steps);
    const char *str_flags[3] = {"--train", "--val", "--mix"};
    const char *str_now[3] = {o->train_pattern, o->val_pattern, o->mix}, *str_def[3] = {d.train_pattern, d.val_pattern, d.mix};
    for (int i = 0; i < 3 && len < n; i++)
        if (str_now[i] != NULL && (str_def[i] == NULL || strcmp(str_now[i], str_def[i]) != 0))
            len += (size_t)snprintf(out + len, n - len, " %s '%s'", str_flags[i], str_now[i]);
    const char *int_flags[3] = {"--batch", "--seq", "--grad-accum"};
    int int_now[3] = {o->batch, o->seq, o->grad_accum}, int_def[3] = {d.batch, d.seq, d.grad_accum};
    for (int i = 0; i < 3 && len < n; i++)
        if (int_now[i] != int_def[i]) len += (size_t)snprintf(out + len, n - len, " %s %d", int_flags[i], int_now[i]);
    if (o->lr != d.lr && len < n) len += (size_t)snprintf(out + len, n - len, " --lr %.17g", o->lr);
    if (o->schedule != d.schedule && len < n) snprintf(out + len, n - len, " --schedule %s", schedule_name(o->schedule));
}

/* whether the learning rate of step k (0-based) is in the run's final decay */
static int in_final_decay(const Options *o, int k) {
    return (o->schedule == SCHED_WSD && o->decay_steps > 0 && k >= o->steps - o->decay_steps) ||
           (o->schedule == SCHED_COSINE && k >= o->warmup);
}

/* --resume with schedule flags: the steps already done (0..done-1) must keep their learning rate, so that the
   curve continues where it was (a WSD run extends its stable phase; a run already in its decay cannot). */
static int check_schedule_kept(const Options *old, const Options *o, int done, char *err, size_t errlen) {
    for (int k = 0; k < done; k++) {
        double a = old->lr * lr_lambda(old->schedule, k, old->warmup, old->steps, old->decay_steps);
        double b = o->lr * lr_lambda(o->schedule, k, o->warmup, o->steps, o->decay_steps);
        if (a != b) {
            char flags[128] = "";
            const char *names[5] = {"--steps", "--lr", "--warmup", "--schedule", "--decay-steps"};
            for (int i = 0; i < 5; i++)
                if (o->run_given >> settings_find(run_rules, run_rule_count, names[i]) & 1u) { strcat(flags, " "); strcat(flags, names[i]); }
            char then[32], now[32], next[1200];
            distinct_numbers(then, now, sizeof(then), a, b);
            next_stage_command(old, o->out, o->steps > done ? o->steps - done : o->steps, next, sizeof(next));
            snprintf(err, errlen, "the schedule given now (%s) changes the learning rate of step %d, already done (%s then, %s now): "
                     "%s; continue from a checkpoint taken before that step, or train on from its weights in a new stage (warmup "
                     "to the peak again, then the decay; docs/SETTINGS.md): %s",
                     flags[0] ? flags + 1 : "none given", k + 1, then, now, in_final_decay(old, done - 1)
                         ? "the run was already in its final decay, so --steps cannot extend it"
                         : "the learning rate of a resumed run stays continuous", next);
            return -1;
        }
    }
    return 0;
}

/* --rotary-frac is partial's own setting: every other PE rotates all of a head's dims (or none) whatever the value,
   so given for one it would be dropped; it is refused instead, at a fresh start, on --init-from and on --resume
   alike. pe: the model's; whose: where that PE comes from. 0, or -1 with err. */
static int check_rotary_frac(const Options *o, int pe, const char *whose, char *err, size_t errlen) {
    int i = settings_find(config_rules, config_rule_count, "--rotary-frac");
    if (!(o->model_given >> i & 1u) || pe_info(pe)->partial) return 0;
    snprintf(err, errlen, "--rotary-frac %g is used by --pe partial only, and this model is %s (%s), which has no rotary fraction; "
             "drop the flag, or train --pe partial", o->model.rotary_frac, pe_name(pe), whose);
    return -1;
}

/* -------------------------------------------------------------------------------------------- checkpoints */
static void ckpt_path(char *out, size_t n, const char *dir, int step, const char *ext) {
    snprintf(out, n, "%s/model_%08d.%s", dir, step, ext);
}

/* The .state of the run's checkpoint at step into s (and m's moments and step). It must exist and name that model
   file (its step and checksum): a missing or another checkpoint's state is an error that says what to do. 0 or -1. */
static int read_state_of(Model *m, const char *dir, int step, TrainState *s, char *err, size_t errlen) {
    char ckpt[4200], state[4200];
    ckpt_path(ckpt, sizeof(ckpt), dir, step, "ckpt");
    ckpt_path(state, sizeof(state), dir, step, "state");
    struct stat st;
    if (stat(state, &st) != 0) {
        snprintf(err, errlen, "%s has no state file beside it (%s: %s), and the run cannot go on without it (it holds the "
                 "optimizer moments, data position and RNG); put it back, or move the .ckpt away to resume from the "
                 "checkpoint before it, or continue from these weights with a fresh optimizer: ./train --init-from %s --out NEWDIR",
                 ckpt, state, strerror(errno), ckpt);
        return -1;
    }
    uint32_t crc;
    if (checkpoint_checksum(ckpt, &crc, err, errlen) != 0 || state_read(m, s, state, err, errlen) != 0) return -1;
    const char *fix = "put back the .state written with this checkpoint, or continue from its weights with a fresh optimizer: ./train --init-from";
    if (s->step != step) {
        snprintf(err, errlen, "%s is the state of step %d, but its model file %s is step %d; %s %s --out NEWDIR", state, s->step, ckpt, step, fix, ckpt);
        return -1;
    }
    if (s->ckpt_checksum != crc) {
        snprintf(err, errlen, "%s belongs to another model file than %s (it names checksum %08x, the model file's is %08x): "
                 "another run's state, or an earlier write's; %s %s --out NEWDIR", state, ckpt, s->ckpt_checksum, crc, fix, ckpt);
        return -1;
    }
    return 0;
}

/* The run's checkpoint at this step into its folder: the model file, its .state, then the model file renamed into
   place; older ones past --keep are removed. 0, or -1 with the error printed. */
static int write_checkpoint(Model *m, const Options *o, const DataLoader *dl, const Rng *rng) {
    char path[4200], fresh[4300], err[512];
    /* the model file as .ckpt.new (read back: its checksum), the state naming it, then the rename: a checkpoint
       counts once its model file exists, and it always has its state */
    TrainState s = {m->step, dl->shard, dl->pos, rng->state, 0};
    ckpt_path(path, sizeof(path), o->out, m->step, "ckpt");
    snprintf(fresh, sizeof(fresh), "%s.new", path);
    if (model_save(m, fresh, err, sizeof(err)) != 0 || checkpoint_checksum(fresh, &s.ckpt_checksum, err, sizeof(err)) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return -1;
    }
    ckpt_path(path, sizeof(path), o->out, m->step, "state");
    if (state_write(m, &s, path, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); return -1; }
    ckpt_path(path, sizeof(path), o->out, m->step, "ckpt");
    if (rename(fresh, path) != 0) { fprintf(stderr, "error: cannot rename '%s' to '%s': %s\n", fresh, path, strerror(errno)); return -1; }
    printf("saved %s (+ .state)\n", path);
    int *steps;
    int64_t n = checkpoint_list(o->out, 1, &steps);
    for (int64_t i = 0; i + o->keep < n; i++) {
        ckpt_path(path, sizeof(path), o->out, steps[i], "ckpt");
        remove(path);
        ckpt_path(path, sizeof(path), o->out, steps[i], "state");
        remove(path);
    }
    free(steps);
    return 0;
}

/* Every process calls it (the sharded optimizer state is gathered for the write); rank 0 writes. */
static int save_checkpoint(Model *m, const Options *o, const DataLoader *dl, const Rng *rng) {
    dist_gather_optimizer(m);
    int rc = dist_rank(m->dist) == 0 ? write_checkpoint(m, o, dl, rng) : 0;
    dist_scatter_optimizer(m);
    return rc;
}

/* ------------------------------------------------------------------------------------------- run folder, log */
/* mkdir -p DIR. 0, or -1 with why in err: the part of the path that is a file, not a folder, or the system's reason;
   the folders it made before the failure are removed again. */
static int mkdir_p(const char *dir, char *err, size_t errlen) {
    char tmp[4096];
    size_t len = strlen(dir), first_made = 0;   /* the end of the first prefix this call made (0: none yet) */
    if (len >= sizeof(tmp)) { snprintf(err, errlen, "the path is %zu characters long, more than %zu", len, sizeof(tmp) - 1); return -1; }
    memcpy(tmp, dir, len + 1);
    for (size_t k = 1; k <= len; k++) {   /* each prefix that ends a component, the whole path last */
        if (tmp[k] != '/' && tmp[k] != '\0') continue;
        char keep = tmp[k];
        tmp[k] = '\0';
        struct stat st;
        if (mkdir(tmp, 0755) == 0) { if (first_made == 0) first_made = k; }
        else {   /* there already (a folder: fine), or not made */
            int e = errno;
            if (stat(tmp, &st) == 0 && !S_ISDIR(st.st_mode)) snprintf(err, errlen, "'%s' is a file, not a directory", tmp);
            else if (stat(tmp, &st) != 0) snprintf(err, errlen, "cannot create '%s': %s", tmp, strerror(e));
            else { tmp[k] = keep; continue; }
            for (size_t j = k; first_made > 0 && j-- > first_made;)   /* the made ones, deepest first */
                if (tmp[j] == '/') { tmp[j] = '\0'; rmdir(tmp); }
            return -1;
        }
        tmp[k] = keep;
    }
    return 0;
}

/* a new run's folder: runs/<pe>-<date>-<time>[-N], claimed with mkdir so that two runs never share one
   (runs/latest is pointed at it once the folder is known to be usable: point_latest) */
static void new_run_folder(char *out, size_t n, int pe) {
    mkdir("runs", 0755);
    time_t now = time(NULL);
    struct tm tmv;
    localtime_r(&now, &tmv);
    char stamp[32];
    strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tmv);
    for (int k = 1; k < 1000; k++) {
        if (k == 1) snprintf(out, n, "runs/%s-%s", pe_name(pe), stamp);
        else snprintf(out, n, "runs/%s-%s-%d", pe_name(pe), stamp, k);
        if (mkdir(out, 0755) == 0) break;
        if (errno != EEXIST) { fprintf(stderr, "error: cannot create the run folder '%s': %s\n", out, strerror(errno)); exit(1); }
    }
}

/* runs/latest -> the new run's folder when that folder sits directly in runs/ (the default one, or --out runs/NAME);
   a run folder elsewhere leaves it alone */
static void point_latest(const char *out) {
    if (strncmp(out, "runs/", 5) != 0) return;
    char name[4096];
    snprintf(name, sizeof(name), "%s", out + 5);
    size_t len = strlen(name);
    while (len > 0 && name[len - 1] == '/') name[--len] = '\0';
    if (len == 0 || strchr(name, '/') != NULL || strcmp(name, "latest") == 0) return;
    char link_path[] = RUN_LATEST;
    unlink(link_path);
    if (symlink(name, link_path) != 0) fprintf(stderr, "warning: cannot point %s at %s: %s\n", link_path, out, strerror(errno));
}

/* One writer per run folder: an exclusive flock on DIR/train.lock, which the kernel releases when the process ends
   however it ends (the file stays, holding the last holder's pid). *fd = the lock's descriptor, kept open for the
   run. 0, or -1 with err naming the pid that holds it; where the file system has no locks, a warning and 0. */
static int lock_run_folder(const char *dir, int *fd, char *err, size_t errlen) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/train.lock", dir);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0) { snprintf(err, errlen, "cannot create the run folder's lock '%s': %s", path, strerror(errno)); return -1; }
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e != EWOULDBLOCK) { fprintf(stderr, "warning: cannot lock '%s' (%s): nothing keeps a second ./train from writing this run folder\n", path, strerror(e)); return 0; }
        char pid[24] = "";
        ssize_t n = pread(*fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(*fd);
        *fd = -1;
        snprintf(err, errlen, "the run folder '%s' is in use: another ./train (pid %s, in %s) is writing it\n"
                 "HINT: wait for it to end, or stop it with kill -INT %s (it writes a checkpoint), then --resume %s",
                 dir, pid[0] ? pid : "unknown", path, pid[0] ? pid : "PID", dir);
        return -1;
    }
    char line[24];
    int len = snprintf(line, sizeof(line), "%d\n", (int)getpid());
    if (ftruncate(*fd, 0) != 0 || pwrite(*fd, line, (size_t)len, 0) != len) fprintf(stderr, "warning: cannot write the pid into '%s': %s\n", path, strerror(errno));
    return 0;
}

/* a folder that a new run must not write into: it holds another run's settings, checkpoints or log */
static int holds_a_run(const char *dir, const char *log_path) {
    char path[4200];
    struct stat st;
    snprintf(path, sizeof(path), "%s/settings.txt", dir);
    if (stat(path, &st) == 0 || checkpoint_newest(dir, 0) >= 0) return 1;
    return log_path != NULL && stat(log_path, &st) == 0 && st.st_size > 0;
}

/* Append one line to the log (fd < 0: none), whole or not at all: built in a buffer and written to the O_APPEND
   descriptor; a write cut short (a full disk, a file size limit) is cut back off with ftruncate. 0, or -1 with the
   system's reason in err (a log that cannot be written stops the run: main). */
static int log_line(int fd, const char *path, char *err, size_t errlen, const char *fmt, ...) {
    if (fd < 0) return 0;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (len < 0 || len >= (int)sizeof(line)) { snprintf(err, errlen, "a log line for '%s' is longer than %zu bytes", path, sizeof(line) - 1); return -1; }
    off_t before = lseek(fd, 0, SEEK_END);
    size_t done = 0;
    int e = 0;
    while (done < (size_t)len && e == 0) {   /* a short write is retried: the retry returns the reason (ENOSPC, EFBIG) */
        ssize_t w = write(fd, line + done, (size_t)len - done);
        if (w > 0) done += (size_t)w;
        else e = w < 0 ? errno : EIO;
    }
    if (done == (size_t)len) return 0;
    int cut = done > 0 && (before < 0 || ftruncate(fd, before) != 0);
    snprintf(err, errlen, "cannot write the log '%s': %s%s", path, strerror(e), cut ? " (and a part of the line is left in it)" : "");
    return -1;
}

/* a number for a JSON line: %.17g, or null where it is not finite (JSON has no inf or nan) */
static const char *json_number(char *buf, size_t n, double v) {
    if (isfinite(v)) snprintf(buf, n, "%.17g", v);
    else snprintf(buf, n, "null");
    return buf;
}

/* one line of the log as its writer leaves it: a JSON object, '{' ... '}' and the newline, whose braces outside
   strings close only at its end (a half line, or two glued together, is not) */
static int log_line_whole(const char *line) {
    size_t len = strlen(line);
    if (len < 3 || line[0] != '{' || line[len - 1] != '\n' || line[len - 2] != '}') return 0;
    int in_string = 0, depth = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        char ch = line[i];
        if (in_string) { if (ch == '\\') i++; else if (ch == '"') in_string = 0; continue; }
        if (ch == '"') in_string = 1;
        else if (ch == '{') depth++;
        else if (ch == '}' && --depth == 0 && i + 2 != len) return 0;
        if (depth > 1) return 0;   /* the log's lines hold no nested objects */
    }
    return depth == 0 && !in_string;
}

/* --resume: keep the log's lines up to the checkpoint's step (lines of later steps are redone; a line that is not
   whole, cut by a crash or glued to another, is dropped), rewritten atomically. Lines without a step (a final
   summary) stay when they precede the first line of a later step. */
static int log_trim(const char *path, int step, int *dropped, char *err, size_t errlen) {
    *dropped = 0;
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) return 0;   /* no log yet */
    char tmp[4300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *out = fopen(tmp, "wb");
    if (out == NULL) { snprintf(err, errlen, "cannot write '%s': %s", tmp, strerror(errno)); fclose(fp); return -1; }
    char line[4096];
    int cut = 0;
    while (fgets(line, sizeof(line), fp) != NULL) {
        int s = -1;
        int whole = log_line_whole(line);
        if (whole && sscanf(line, "{\"step\": %d", &s) == 1 && s > step) cut = 1;
        if (!cut && whole) { fputs(line, out); continue; }
        (*dropped)++;
    }
    fclose(fp);
    if (fclose(out) != 0 || rename(tmp, path) != 0) { snprintf(err, errlen, "cannot rewrite the log '%s': %s", path, strerror(errno)); return -1; }
    return 0;
}

/* ------------------------------------------------------------------------------------------------ signals */
/* SIGINT (Ctrl-C), SIGTERM (kill, timeout, Slurm's time limit), SIGHUP (the terminal closed) and SIGUSR1 (Slurm's
   --signal) finish the step, write a checkpoint and exit with 128 + the signal's number: 130, 143, 129, 138. A
   second one exits at once. SIGPIPE is ignored: a reader that went away (| tee, | head) never ends a run. */
static volatile sig_atomic_t stop_requested = 0;   /* the first signal's number */
static void on_signal(int sig) {
    if (stop_requested) {
        static const char msg[] = "\nsecond interrupt: exiting now, without a checkpoint\n";
        ssize_t r = write(2, msg, sizeof(msg) - 1);
        (void)r;
        _exit(128 + sig);
    }
    stop_requested = sig;
    static const char msg_int[] = "\ninterrupt: finishing this step, then writing a checkpoint (Ctrl-C again exits at once)\n";
    static const char msg_other[] = "\nsignal: finishing this step, then writing a checkpoint (a second signal exits at once)\n";
    ssize_t r = sig == SIGINT ? write(2, msg_int, sizeof(msg_int) - 1) : write(2, msg_other, sizeof(msg_other) - 1);
    (void)r;
}

static void catch_stop_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;   /* a write to the log or a pipe is not cut by the signal */
    sigemptyset(&sa.sa_mask);
    const int sigs[4] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1};
    for (int i = 0; i < 4; i++) sigaction(sigs[i], &sa, NULL);
}

static const char *signal_name(int sig) {
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : sig == SIGUSR1 ? "SIGUSR1" : "a signal";
}

/* Training diverged at `step` (a loss or gradient norm that is not finite): what went, and where the last good
   weights are (no checkpoint of the diverged ones is written). */
static void report_divergence(const Options *o, double loss, double norm, int step) {
    char what[96];
    if (!isfinite(loss)) snprintf(what, sizeof(what), "loss is %f", loss);
    else snprintf(what, sizeof(what), "gradient norm is %f (loss %.4f)", norm, loss);
    fprintf(stderr, "error: %s at step %d: training diverged (no checkpoint of the diverged weights is written)\n", what, step);
    int newest = o->out != NULL && o->out[0] ? checkpoint_newest(o->out, 1) : -1;
    if (newest >= 0) fprintf(stderr, "the last good weights: %s/model_%08d.ckpt (step %d)\n", o->out, newest, newest);
    fprintf(stderr, "HINT: lower --lr%s\n", o->clip > 0.0 ? "" : " or set --clip 1.0");
}

/* --vocab 0: the vocabulary from the training shards, 256 for bytes, else the largest token + 1, printed before
   the model is made; above VOCAB_AUTO_MAX (Gemma's 256000 fits) refused: a uint16 shard labelled uint32 reads
   pairs of tokens as one, up to 2^32. 0, or -1 with err. */
enum { VOCAB_AUTO_MAX = 1 << 18 };
static int vocab_from_data(const char *pattern, int *vocab, char *err, size_t errlen) {
    int64_t mx;
    if (loader_max_token(pattern, &mx, err, errlen) != 0) return -1;
    if (mx >= VOCAB_AUTO_MAX) {
        snprintf(err, errlen, "the training data '%s' holds token %lld, so --vocab 0 would make a vocabulary of %lld, above the %d it takes "
                 "from the data (is it a uint16 shard labelled uint32?); pass --vocab N, the size of the tokenizer the data was made with",
                 pattern, (long long)mx, (long long)mx + 1, (int)VOCAB_AUTO_MAX);
        return -1;
    }
    *vocab = mx < 256 ? 256 : (int)mx + 1;
    if (*vocab > 256) printf("vocab %d: the largest token of '%s' + 1 (--vocab 0)\n", *vocab, pattern);
    return 0;
}

/* ------------------------------------------------------------------------------------------------- helpers */
static double now_ms(void) { return wall_seconds() * 1e3; }

/* seconds as 42.1s, 3m07s or 2h05m */

/* Mean validation loss over up to `batches` (B, T) batches from the start of the validation shards, each target at
   most once: the loader would wrap around to the first batch again when the shards hold fewer batches, so it
   stops there. With several processes, batch k W + r is process r's k-th (its rows of global batch k), so the same
   batches are scored on any number of processes. *used = the batches scored (each holds B * T targets). 0, or -1
   with err. */
static int evaluate(Model *m, DataLoader *val, int batches, double *loss, int *used, char *err, size_t errlen) {
    loader_reset(val);
    double sum[2] = {0.0, 0.0};   /* loss sum, batches */
    int loss_rows = m->loss_rows;
    m->loss_rows = 0;   /* the validation loss is the mean over its targets, whatever --mix-weight */
    const int64_t first_end = (int64_t)val->world_size * val->B * val->T;   /* pos after the first global batch */
    for (int k = 0; k * val->world_size + val->rank < batches; k++) {
        if (loader_next(val, err, errlen) != 0) { m->loss_rows = loss_rows; return -1; }
        if (k > 0 && val->shard == 0 && val->pos == first_end) break;   /* back at the first batch */
        sum[0] += model_forward_loss(m, val->inputs, val->targets, val->B, val->T, 0);
        sum[1] += 1.0;
    }
    m->loss_rows = loss_rows;
    dist_sum(m->dist, sum, 2);
    *loss = sum[0] / sum[1];
    *used = (int)sum[1];
    return 0;
}

/* --tokenizer FILE for the samples of a token-id model: read and checked against the model (0, or -1 with err) */
static int load_sample_tokenizer(Tokenizer *t, const char *path, const Config *c, char *err, size_t errlen) {
    if (c->tokenizer == TOKENIZER_BYTES) {
        snprintf(err, errlen, "--tokenizer %s: this model is byte-level (vocab %d), its samples are its bytes; drop the flag", path, c->vocab_size);
        return -1;
    }
    if (tokenizer_read(t, path, err, errlen) != 0) return -1;
    if (t->vocab_size > c->vocab_size) {
        snprintf(err, errlen, "--tokenizer %s has %d tokens, more than the model's vocabulary %d", path, t->vocab_size, c->vocab_size);
        return -1;
    }
    return 0;
}

/* the prompt as the model reads it: byte-level models see its bytes, printed as token_print prints tokens */
static void put_prompt(FILE *f, const char *prompt, int tokenizer) {
    if (tokenizer != TOKENIZER_BYTES) { fputs(prompt, f); return; }
    for (const unsigned char *p = (const unsigned char *)prompt; *p; p++) token_print(f, *p, 1, NULL);
}

/* sample_len tokens after the prompt, printed as they come (token_print: never a raw control byte) and appended to
   `samples` (may be NULL); tok: the --tokenizer of a token-id model, or NULL */
static void sample(Model *m, const Options *o, const Tokenizer *tok_text, Rng *rng, FILE *samples) {
    int T = o->seq, V = m->cfg.vocab_size;
    int *ctx = (int *)mallocCheck((size_t)(T + o->sample_len + strlen(o->prompt) + 1) * sizeof(int));
    int n = 0;
    for (const char *p = o->prompt; *p; p++) ctx[n++] = (unsigned char)*p % V;
    if (n == 0) ctx[n++] = 0;
    float *logits = (float *)mallocCheck((size_t)V * sizeof(float));
    printf("---- sample at step %d (%d tokens, temperature %g) ----\n", m->step, o->sample_len, o->temperature);
    put_prompt(stdout, o->prompt, m->cfg.tokenizer);
    if (samples) {
        fprintf(samples, "---- step %d (%d tokens, temperature %g) ----\n", m->step, o->sample_len, o->temperature);
        put_prompt(samples, o->prompt, m->cfg.tokenizer);
    }
    for (int i = 0; i < o->sample_len; i++) {
        int start = n > T ? n - T : 0, len = n - start;
        model_forward(m, ctx + start, NULL, 1, len);
        model_logits_row(m, 0, len - 1, logits);
        int tok = sample_token(logits, V, o->temperature, 0, 1.0, rng);
        ctx[n++] = tok;
        token_print(stdout, tok, m->cfg.tokenizer == TOKENIZER_BYTES, tok_text);
        if (samples) token_print(samples, tok, m->cfg.tokenizer == TOKENIZER_BYTES, tok_text);
        fflush(stdout);
    }
    printf("\n----\n");
    if (samples) { fprintf(samples, "\n"); fflush(samples); }
    free(ctx);
    free(logits);
}

/* The --mix batch: each of the B rows of inputs/targets (B, T) is replaced, with its task's proportion, by a
   generated task sample (tokens and its targets: the answer tokens only unless --mix-loss all; ignored targets
   are -1, which the cross-entropy skips). Draws come from rng, which the state file saves. With several processes
   the rows are drawn for the global batch (every process's B rows, in rank order) and each keeps its own, so the
   RNG stays the same on every process. 0, or -1 with err. */
static int mix_batch(int *inputs, int *targets, int B, int T, int rank, int world, const TaskMix *mix,
                     const TaskOptions *task_opt, TaskSample *row, Rng *rng, char *err, size_t errlen) {
    for (int b = 0; mix->n > 0 && b < B * world; b++) {
        int task = task_mix_pick(mix, rng);
        if (task < 0) continue;
        if (task_generate(row, task, T, task_opt, rng, err, errlen) != 0) return -1;
        if (b / B != rank) continue;
        memcpy(inputs + (size_t)(b % B) * T, row->tokens, (size_t)T * sizeof(int));
        memcpy(targets + (size_t)(b % B) * T, row->targets, (size_t)T * sizeof(int));
    }
    return 0;
}

/* One optimizer step's N micro-batches (--grad-accum), each (B, T), read and mixed into inputs/targets (N, B, T),
   and share[i], the weight of micro-batch i's mean loss in the step's loss: the step's loss is the mean over every
   target of all its micro-batches and processes (--mix-weight token), or over every row that has targets of the
   row means (row, rows_mean), so a micro-batch weighs by its part of those targets (rows). 1 / (N x processes)
   each when they hold as many, as always without --mix. 0, or -1 with err. */
static int load_step(DataLoader *dl, int *inputs, int *targets, double *share, int N, int rows_mean, Dist *dist, const TaskMix *mix,
                     const TaskOptions *task_opt, TaskSample *row, Rng *rng, char *err, size_t errlen) {
    size_t BT = (size_t)dl->B * dl->T;
    double total = 0.0;
    for (int micro = 0; micro < N; micro++) {
        if (loader_next(dl, err, errlen) != 0) return -1;
        if (mix_batch(dl->inputs, dl->targets, dl->B, dl->T, dl->rank, dl->world_size, mix, task_opt, row, rng, err, errlen) != 0) return -1;
        memcpy(inputs + micro * BT, dl->inputs, BT * sizeof(int));
        memcpy(targets + micro * BT, dl->targets, BT * sizeof(int));
        int64_t count = 0;   /* targets, or rows with a target */
        for (int b = 0; b < dl->B; b++) {
            int64_t in_row = 0;
            for (int t = 0; t < dl->T; t++) in_row += dl->targets[(size_t)b * dl->T + t] >= 0;
            count += rows_mean ? in_row > 0 : in_row;
        }
        share[micro] = (double)count;
        total += (double)count;
    }
    dist_sum(dist, &total, 1);
    for (int micro = 0; micro < N; micro++) share[micro] = total > 0.0 ? share[micro] / total : 0.0;
    return 0;
}

/* ---------------------------------------------------------------------------------------------------- main */
int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);   /* whole lines reach a file or pipe even when the run is killed */
    signal(SIGPIPE, SIG_IGN);           /* a closed stdout: its writes fail (EPIPE), the run goes on */
    Options o = default_options();
    parse_args(&o, argc, argv);
    /* data parallelism: one process per GPU under mpirun/torchrun/Slurm (NULL alone); only rank 0 prints and
       writes the run folder (settings, log, checkpoints, samples) */
    Dist *dist = dist_init();
    int rank = dist_rank(dist), world = dist_world_size(dist);
    if (rank != 0 && freopen("/dev/null", "w", stdout) == NULL) { fprintf(stderr, "error: rank %d: cannot silence stdout\n", rank); return 1; }
    char err[16384];
    /* every error below jumps to `out`, which frees what was made (zeroed structs free as no-ops) */
    int status = 1;
    Model model;
    DataLoader train_dl, val_dl;
    memset(&model, 0, sizeof(model));
    memset(&train_dl, 0, sizeof(train_dl));
    memset(&val_dl, 0, sizeof(val_dl));
    int logfd = -1, lockfd = -1;   /* the log; the run folder's lock (lock_run_folder) */
    FILE *samples = NULL;
    Tokenizer tok_text;             /* --tokenizer */
    memset(&tok_text, 0, sizeof(tok_text));
    Profile *prof = NULL;           /* --profile */
    TaskMix mix;
    TaskOptions task_opt;
    TaskSample task_row;
    memset(&mix, 0, sizeof(mix));
    memset(&task_row, 0, sizeof(task_row));
    char **stored_flags = NULL, **stored_values = NULL;
    int stored_n = 0;
    char out_dir[4096], log_buf[4200];
    int started = 0;                /* step 1 began: a failure from here on writes a checkpoint first */
    int *step_in = NULL, *step_tg = NULL;   /* (grad_accum, B, T): a step's micro-batches (load_step) */
    double *step_share = NULL;              /* (grad_accum): the weight of each one's mean loss */
    Rng rng = {0};

    /* ---- settings: the command line, or (--resume) the run's settings with the command line on top */
    if (o.resume && o.init_from != NULL) { fprintf(stderr, "error: --resume and --init-from cannot be combined: a resumed run already has its weights\n"); goto out; }
    char latest_dir[4200];
    if (o.resume && !o.out_given) {
        /* the run runs/latest points to, by its own name: what this run prints (and its hints) stays true after
           another run moves runs/latest */
        char name[4096];
        ssize_t nl = readlink(RUN_LATEST, name, sizeof(name) - 1);
        if (nl > 0 && nl < (ssize_t)sizeof(name) - 1 && name[0] != '/') {
            name[nl] = '\0';
            snprintf(latest_dir, sizeof(latest_dir), "runs/%s", name);
            o.out = latest_dir;
        } else {
            o.out = RUN_LATEST;
        }
        o.out_given = 1;
    }
    if (o.resume && o.out[0] == '\0') {
        fprintf(stderr, "error: --resume needs a run folder, but --out is \"\"\nHINT: pass the folder the run wrote to: --resume DIR\n");
        goto out;
    }
    if (o.out != NULL && path_check(o.out, o.resume ? "--resume" : "--out", err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
    struct stat out_st;
    if (o.resume && rank == 0 && stat(o.out, &out_st) == 0 && S_ISDIR(out_st.st_mode) && lock_run_folder(o.out, &lockfd, err, sizeof(err)) != 0) {
        fprintf(stderr, "error: %s\n", err);
        goto out;
    }
    Options before = o;             /* --resume: the run's own schedule, to check the one given now against */
    if (o.resume) {
        if (merge_resume(&o, &stored_flags, &stored_values, &stored_n, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
        before = default_options();
        for (int i = 0; i < stored_n; i++) parse_flag(&before, stored_flags[i], stored_values[i]);
    }
    if (o.log_path != NULL && path_check(o.log_path, "--log", err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
    finish_schedule(&o);
    if (o.lr == 0.0 && o.steps > 0) fprintf(stderr, "warning: --lr 0: the weights will not change (the steps only measure the loss)\n");

    /* vocabulary: flag, or from the data */
    int vocab = o.vocab;
    if (vocab == 0 && vocab_from_data(o.train_pattern, &vocab, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }

    rng.state = o.seed ^ 0x5EED5EEDull;
    TrainState resume_state = {0, 0, 0, 0, 0};
    int resumed = 0;
    if (o.resume) {
        int newest = checkpoint_newest(o.out, 0);   /* a newest checkpoint without its state is refused below */
        if (newest >= 0) {
            char path[4200];
            ckpt_path(path, sizeof(path), o.out, newest, "ckpt");
            Config ck;
            double *params;
            size_t np;
            if (checkpoint_read(path, &ck, &params, &np, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
            char what[4300];
            snprintf(what, sizeof(what), "the checkpoint %s", path);
            if (check_rotary_frac(&o, ck.pe, what, err, sizeof(err)) != 0 ||
                settings_apply(&ck, &o.model, o.model_given, config_rules, config_rule_count, USE_RESUME, what, err, sizeof(err)) != 0) {
                fprintf(stderr, "error: %s\n", err);
                free(params);
                goto out;
            }
            model_init_from(&model, &ck, params);
            free(params);
            if (read_state_of(&model, o.out, newest, &resume_state, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
            rng.state = resume_state.rng;
            vocab = ck.vocab_size;
            resumed = 1;
        }
        /* else: the run was stopped before its first checkpoint; it starts again from step 0 with its settings */
        if (check_schedule_kept(&before, &o, model.step, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
        if (resumed) printf("resumed from %s/model_%08d at step %d\n", o.out, model.step, model.step);
        else printf("restarting the run in %s from step 0: it was stopped before its first checkpoint\n", o.out);
    }
    if (!resumed && o.init_from != NULL) {
        char path[4200];
        if (checkpoint_resolve(o.init_from, "--init-from", path, sizeof(path), err, sizeof(err)) != 0) { fprintf(stderr, "error: --init-from: %s\n", err); goto out; }
        Config ck;
        double *params;
        size_t np;
        if (checkpoint_read(path, &ck, &params, &np, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
        /* weights only: the shape must agree; the new stage's --seq and the rotary settings given apply on top */
        o.model.train_seq = o.seq;
        uint64_t given = o.model_given | 1ull << settings_find(config_rules, config_rule_count, "--seq");
        char what[4300];
        snprintf(what, sizeof(what), "the checkpoint %s", path);
        Dims d0 = config_dims(&ck);
        int trained_len = ck.train_seq;
        if (settings_apply(&ck, &o.model, given, config_rules, config_rule_count, USE_INIT_FROM, what, err, sizeof(err)) != 0 ||
            check_rotary_frac(&o, ck.pe, what, err, sizeof(err)) != 0 || config_validate(&ck, err, sizeof(err)) != 0) {
            fprintf(stderr, "error: --init-from: %s\n", err);
            free(params);
            goto out;
        }
        /* YaRN's original length is the length the weights were trained at (the source's), not the new --seq,
           as FoPE's basis stays the source's: pinned unless --yarn-orig-len is given */
        if (ck.yarn_factor != 1.0 && ck.yarn_orig_len == 0 && !(o.model_given >> settings_find(config_rules, config_rule_count, "--yarn-orig-len") & 1u)) {
            ck.yarn_orig_len = trained_len;
            printf("YaRN original length %d: the length %s was trained at (--yarn-orig-len sets another)\n", trained_len, path);
        }
        Dims d1 = config_dims(&ck);
        if (d1.fope_m != d0.fope_m || d1.fope_p != d0.fope_p) {
            fprintf(stderr, "error: --init-from: --seq %d changes FoPE's frequency basis (M %d -> %d) that the weights were trained with; keep --seq at a length that keeps it\n",
                    o.seq, d0.fope_m, d1.fope_m);
            free(params);
            goto out;
        }
        model_init_from(&model, &ck, params);
        free(params);
        vocab = ck.vocab_size;
        printf("initialised from %s (fresh optimizer)\n", path);
    } else if (!resumed) {
        o.model.vocab_size = vocab;
        o.model.train_seq = o.seq;
        o.model.init = o.init;
        /* what the tokens are, for infer: bytes up to 256, Llama-3 from 128000 on, GPT-2 (llm.c's data) between */
        o.model.tokenizer = vocab <= 256 ? TOKENIZER_BYTES : vocab >= 128000 ? TOKENIZER_LLAMA3 : TOKENIZER_GPT2;
        const char *whose = o.resume ? "the run's settings.txt" : o.model_given >> settings_find(config_rules, config_rule_count, "--pe") & 1u ? "--pe" : "the default --pe";
        if (check_rotary_frac(&o, o.model.pe, whose, err, sizeof(err)) != 0 || config_validate(&o.model, err, sizeof(err)) != 0) {
            fprintf(stderr, "error: %s\n", err);
            goto out;
        }
        model_init(&model, &o.model, o.init, o.seed);
    }
    const Config *c = &model.cfg;
    const Dims *d = &model.d;
    dist_shard_model(dist, &model);
    if (o.tokenizer != NULL && load_sample_tokenizer(&tok_text, o.tokenizer, c, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }

    /* ---- everything the run will read, checked before step 1: shards (headers, sizes, every token < vocab) and
       the task mix */
    int have_val = o.val_pattern != NULL && o.val_pattern[0] != '\0';
    if (loader_init_rank(&train_dl, o.train_pattern, o.batch, o.seq, vocab, rank, world, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
    if (o.data_seed != 0) {   /* document rows: each document's BOS at position 0 of a row, a seeded order */
        if (loader_use_docs(&train_dl, o.data_seed, err, sizeof(err)) != 0) { fprintf(stderr, "error: --data-seed: %s\n", err); goto out; }
        if (rank == 0) {
            printf("data: %lld documents, %lld rows of T %d an epoch, order seed %llu; first documents:", (long long)train_dl.n_docs,
                   (long long)train_dl.n_rows, o.seq, (unsigned long long)o.data_seed);
            for (int64_t k = 0; k < train_dl.n_docs && k < 8; k++) printf(" %lld", (long long)train_dl.order[k]);
            printf("\n");
        }
    }
    if (have_val && loader_init_rank(&val_dl, o.val_pattern, o.batch, o.seq, vocab, rank, world, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
    for (int k = 0; k < 1 + have_val; k++) {
        const char *pattern = k == 0 ? o.train_pattern : o.val_pattern;
        int64_t mx;
        if (loader_max_token(pattern, &mx, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
        if (mx >= vocab) {
            fprintf(stderr, "error: the %s data '%s' holds token %lld, outside the vocabulary of %d; pass the vocab the data was made with (--vocab) or other data\n",
                    k == 0 ? "training" : "validation", pattern, (long long)mx, vocab);
            goto out;
        }
    }
    if (resumed && loader_seek(&train_dl, resume_state.shard, resume_state.pos, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
    /* long-context tasks mixed into the batches: a row is replaced by a generated sample with the task's
       proportion; the draws come from the run's RNG, which the state file saves, so resume stays exact */
    /* the task-row flags act on the rows of --mix alone: without --mix they would be dropped, so they are refused */
    if (o.mix == NULL) {
        const char *const task_flags[] = {"--mix-loss", "--mix-weight", "--task-bos", "--mqar-filler", "--mqar-kv"};
        for (int i = 0; i < (int)(sizeof(task_flags) / sizeof(task_flags[0])); i++) {
            int k = settings_find(run_rules, run_rule_count, task_flags[i]);
            if (k >= 0 && (o.run_given >> k & 1u)) {
                fprintf(stderr, "error: %s acts on the task rows of --mix, and this run has none; add --mix TASK:FRACTION (./train --help) or drop %s\n",
                        task_flags[i], task_flags[i]);
                goto out;
            }
        }
    }
    if (o.mix != NULL) {
        if (task_mix_parse(o.mix, &mix, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }   /* its messages name --mix */
        task_opt = task_options_default();
        task_opt.mqar_vocab = vocab;
        task_opt.answer_only = !o.mix_all_targets;
        task_opt.bos = o.task_bos;
        task_opt.mqar_blank = o.mqar_blank;
        task_opt.mqar_kv = o.mqar_kv;
        model.loss_rows = o.mix_row_mean;
        for (int i = 0; i < mix.n; i++) {
            int need = task_min_len(mix.item[i].task, &task_opt);
            if (need > o.seq) { fprintf(stderr, "error: --mix: task %s needs --seq >= %d (has %d)\n", task_name(mix.item[i].task), need, o.seq); goto out; }
            if (mix.item[i].task != TASK_MQAR && vocab < 256) { fprintf(stderr, "error: --mix: text task %s needs a byte-level vocabulary (256)\n", task_name(mix.item[i].task)); goto out; }
            /* a short haystack leaves the needle at a near-fixed distance from the answer: position alone answers */
            if (mix.item[i].task != TASK_MQAR && o.seq < 2 * need)
                printf("note: --mix: task %s at --seq %d has at most %d tokens of haystack, fewer than its prompt: the needle's distance from the answer varies by at most that much, so position can stand in for retrieval (docs/TASK_PILOTS.md); --seq >= %d gives a haystack as long as the prompt\n",
                       task_name(mix.item[i].task), o.seq, o.seq - need, 2 * need);
        }
        task_sample_alloc(&task_row, o.seq);
    }

    /* ---- the run folder: created and written to (settings, command line, log, samples) before step 1. With
       several processes only rank 0 writes it, but every process takes part in writing a checkpoint (the sharded
       optimizer state is gathered), so whether checkpoints are written is decided the same way on all of them. */
    const int saves = o.out == NULL || o.out[0] != '\0';
    if (o.out == NULL) {
        if (rank == 0) new_run_folder(out_dir, sizeof(out_dir), c->pe);
        else out_dir[0] = '\0';
        o.out = out_dir;
    }
    int have_out = rank == 0 && saves;
    const char *log_path = rank == 0 ? o.log_path : "";
    if (log_path == NULL && have_out) { snprintf(log_buf, sizeof(log_buf), "%s/train.jsonl", o.out); log_path = log_buf; }
    if (log_path == NULL) log_path = "";
    if (have_out) {
        if (mkdir_p(o.out, err, sizeof(err)) != 0) { fprintf(stderr, "error: cannot write the run folder '%s': %s\n", o.out, err); goto out; }
        if (!o.resume && lock_run_folder(o.out, &lockfd, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
        if (!o.resume && holds_a_run(o.out, log_path)) {
            fprintf(stderr, "error: '%s' already holds a run (settings, checkpoints or a log); a new run never overwrites one\n"
                            "HINT: continue it with --resume %s, or pick another --out (or leave --out out for a new folder under runs/)\n", o.out, o.out);
            goto out;
        }
        if (!o.resume) point_latest(o.out);
        char path[4200];
        snprintf(path, sizeof(path), "%s/settings.txt", o.out);
        if (write_settings(path, &o, c, err, sizeof(err)) != 0) { fprintf(stderr, "error: cannot write the run folder: %s\n", err); goto out; }
        snprintf(path, sizeof(path), "%s/command.txt", o.out);
        FILE *cmd = fopen(path, "a");
        if (cmd == NULL) { fprintf(stderr, "error: cannot write '%s': %s\n", path, strerror(errno)); goto out; }
        for (int i = 0; i < argc; i++) {   /* shell-quoted, so that the line can be pasted back */
            fputs(i ? " '" : "'", cmd);
            for (const char *p = argv[i]; *p; p++) { if (*p == '\'') fputs("'\\''", cmd); else fputc(*p, cmd); }
            fputc('\'', cmd);
        }
        fputc('\n', cmd);
        if (fclose(cmd) != 0) { fprintf(stderr, "error: cannot write '%s': %s\n", path, strerror(errno)); goto out; }
        if (o.sample_len > 0) {
            snprintf(path, sizeof(path), "%s/samples.txt", o.out);
            samples = fopen(path, "a");
            if (samples == NULL) { fprintf(stderr, "error: cannot write '%s': %s\n", path, strerror(errno)); goto out; }
        }
    }
    if (log_path[0]) {
        char dir[4200];
        snprintf(dir, sizeof(dir), "%s", log_path);
        char *slash = strrchr(dir, '/');
        if (slash) { *slash = '\0'; if (mkdir_p(dir, err, sizeof(err)) != 0) { fprintf(stderr, "error: cannot write log '%s': %s\n", log_path, err); goto out; } }
        if (o.resume) {
            int dropped;
            if (log_trim(log_path, model.step, &dropped, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
            if (dropped > 0) printf("log: dropped %d line%s past step %d from %s (those steps run again)\n", dropped, dropped == 1 ? "" : "s", model.step, log_path);
        } else {
            struct stat st;
            if (stat(log_path, &st) == 0 && st.st_size > 0) {
                fprintf(stderr, "error: the log '%s' already holds another run's lines; a new run never overwrites them\nHINT: pass another --log, or --resume that run\n", log_path);
                goto out;
            }
        }
        logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (logfd < 0) { fprintf(stderr, "error: cannot write log '%s': %s\n", log_path, strerror(errno)); goto out; }
    }

    size_t tokens_per_step = (size_t)o.batch * o.seq * o.grad_accum * world;
    char accum_text[96] = "";   /* the factors beyond batch x seq, where there are any */
    if (o.grad_accum > 1 || world > 1) snprintf(accum_text, sizeof(accum_text), " x grad accum %d x processes %d", o.grad_accum, world);
#ifdef ROPEPP_CUDA
    double flops_per_step = model_flops_per_token(c, o.seq) * (double)tokens_per_step / world;   /* per GPU */
    const char *peak_env = getenv("ROPEPP_PEAK_TFLOPS");
    if (peak_env != NULL) o.peak_tflops = flag_number("./train", "ROPEPP_PEAK_TFLOPS", peak_env, 1e-6, 1e9);
#endif
    printf("ropepp train | %s | backend %s\n", pe_name(c->pe), backend_name());
    if (have_out) printf("run folder: %s (checkpoints, %s, settings.txt, command.txt%s)\n", o.out, log_path[0] ? "train.jsonl" : "no log",
                         o.sample_len > 0 ? ", samples.txt" : "");
    printf("model: V %d, C %d, L %d, H %d (q heads %d, attention heads %d), KV %d (projected %d), HD %d, F %d, rot %d | %zu parameters (%.2fM)\n",
           c->vocab_size, c->dim, c->n_layers, c->n_heads, d->HQ, d->NA, c->n_kv_heads, d->KVH, d->HD, c->ffn_dim, d->rot,
           model.num_params, model.num_params / 1e6);
    printf("data: %s (%d shard%s), batch %d x seq %d%s = %zu tokens/step | %d steps, lr %g, %s warmup %d decay %d\n",
           o.train_pattern, train_dl.n_files, train_dl.n_files == 1 ? "" : "s", o.batch, o.seq, accum_text, tokens_per_step, o.steps,
           o.lr, schedule_name(o.schedule), o.warmup, o.schedule == SCHED_WSD ? o.decay_steps : 0);
    if (mix.n > 0)
        printf("mix: %s | task rows' loss on %s, %s | %s | mqar filler %s\n", o.mix, o.mix_all_targets ? "every token" : "the answer tokens only",
               o.mix_row_mean ? "each row weighs the same (--mix-weight row)" : "each target weighs the same (--mix-weight token)",
               o.task_bos ? "BOS first" : "no BOS", o.mqar_blank ? "blank" : "random");

    catch_stop_signals();

    double t_start = now_ms(), total_ms = 0.0, last_val = -1.0;
    int first_step = model.step, saved_step = -1, interrupted = 0;
    if (first_step >= o.steps && first_step > 0 && in_final_decay(&o, first_step - 1)) {
        char next[1200];
        next_stage_command(&o, o.out, o.steps, next, sizeof(next));
        printf("the run is at step %d of %d: nothing to train. Its learning rate has decayed (%s), so --steps cannot extend it; "
               "train on from its weights in a new stage, which warms up to lr %g again and decays over its steps (docs/SETTINGS.md):\n  %s\n",
               first_step, o.steps, schedule_name(o.schedule), o.lr, next);
    } else if (first_step >= o.steps) printf("the run is at step %d of %d: nothing to train (pass --steps N to extend it)\n", first_step, o.steps);
    if (o.profile) {
        prof = (Profile *)mallocCheck(sizeof(Profile));
        memset(prof, 0, sizeof(*prof));
    }
    step_in = (int *)mallocCheck((size_t)o.grad_accum * o.batch * o.seq * sizeof(int));
    step_tg = (int *)mallocCheck((size_t)o.grad_accum * o.batch * o.seq * sizeof(int));
    step_share = (double *)mallocCheck((size_t)o.grad_accum * sizeof(double));
    started = 1;
    for (int step = model.step; step < o.steps; step++) {
        double t0 = now_ms();
        model.profile = prof;
        model_zero_grad(&model);
        /* the step's gradient and loss: its micro-batches' mean losses, each weighed by its share of the step */
        if (load_step(&train_dl, step_in, step_tg, step_share, o.grad_accum, model.loss_rows, dist, &mix, &task_opt, &task_row, &rng, err, sizeof(err)) != 0) {
            fprintf(stderr, "error: %s\n", err);
            goto out;
        }
        double loss = 0.0;
        for (int micro = 0; micro < o.grad_accum; micro++) {
            size_t off = (size_t)micro * o.batch * o.seq;
            model.loss_weight = step_share[micro];
            loss += step_share[micro] * model_forward_loss(&model, step_in + off, step_tg + off, o.batch, o.seq, 1);
            model_backward(&model);
        }
        /* over the processes: the loss, and whether any of them was asked to stop (all stop after the same step) */
        double shared[2] = {loss, stop_requested ? 1.0 : 0.0};
        dist_sum(dist, shared, 2);
        loss = shared[0];
        int stop_now = world > 1 ? shared[1] > 0.0 : stop_requested != 0;
        double lr = o.lr * lr_lambda(o.schedule, step, o.warmup, o.steps, o.decay_steps);
        double norm = model_update(&model, lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.clip);
        profile_collect(prof, step - first_step >= 2);   /* waits for the device: the step's time includes it */
        model.profile = NULL;
        double ms = now_ms() - t0;
        total_ms += ms;
        if (!isfinite(loss) || !isfinite(norm)) {
            report_divergence(&o, loss, norm, step + 1);
            started = 0;
            goto out;
        }
        double tok_s = tokens_per_step / (ms / 1e3);
        double elapsed = (now_ms() - t_start) / 1e3;
        char el[32], eta[32];
        fmt_duration(el, sizeof(el), elapsed);
        fmt_duration(eta, sizeof(eta), elapsed / (step + 1 - first_step) * (o.steps - step - 1));
#ifdef ROPEPP_CUDA
        double mfu = flops_per_step / (ms / 1e3) / (o.peak_tflops * 1e12) * 100.0;
        printf("step %5d/%d | loss %.4f | lr %.2e | norm %.3f | %7.1f ms | %9.0f tok/s | MFU %.1f%% | %s, ETA %s\n", step + 1, o.steps, loss, lr, norm, ms, tok_s, mfu, el, eta);
#else
        printf("step %5d/%d | loss %.4f | lr %.2e | norm %.3f | %7.1f ms | %8.0f tok/s | %s, ETA %s\n", step + 1, o.steps, loss, lr, norm, ms, tok_s, el, eta);
#endif
        char jl[32], jr[32], jn[32];
        if (log_line(logfd, log_path, err, sizeof(err), "{\"step\": %d, \"loss\": %s, \"lr\": %s, \"norm\": %s, \"ms\": %.3f, \"tok_s\": %.1f}\n", step + 1,
                     json_number(jl, sizeof(jl), loss), json_number(jr, sizeof(jr), lr), json_number(jn, sizeof(jn), norm), ms, tok_s) != 0) {
            fprintf(stderr, "error: %s; the run stops here (step %d is not in the log)\n", err, step + 1);
            goto out;
        }
        int last = step + 1 == o.steps;
        if (have_val && (last || (o.val_every > 0 && (step + 1) % o.val_every == 0))) {
            int vb;
            if (evaluate(&model, &val_dl, o.val_batches, &last_val, &vb, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
            long long vtok = (long long)vb * o.batch * o.seq;
            printf("val loss %.4f (%d batches, %lld targets%s) | %.1f s\n", last_val, vb, vtok,
                   vb < o.val_batches ? ": all the validation shards hold, each once" : "", (now_ms() - t_start) / 1e3);
            char jv[32];
            if (log_line(logfd, log_path, err, sizeof(err), "{\"step\": %d, \"val_loss\": %s, \"val_targets\": %lld}\n", step + 1,
                         json_number(jv, sizeof(jv), last_val), vtok) != 0) {
                fprintf(stderr, "error: %s; the run stops here (the validation of step %d is not in the log)\n", err, step + 1);
                goto out;
            }
        }
        if (saves && (last || (o.ckpt_every > 0 && (step + 1) % o.ckpt_every == 0))) {
            if (save_checkpoint(&model, &o, &train_dl, &rng) != 0) { started = 0; goto out; }
            saved_step = model.step;
        }
        if (rank == 0 && o.sample_every > 0 && (step + 1) % o.sample_every == 0 && !last && o.sample_len > 0) {
            Rng srng = {o.seed ^ (uint64_t)(step + 1) * 0x9E3779B97F4A7C15ull};   /* not the run's RNG: resume stays exact */
            sample(&model, &o, &tok_text, &srng, samples);
        }
        if (stop_now) { interrupted = 1; break; }
    }
    started = 0;
    if (interrupted) {
        if (saves && saved_step != model.step && save_checkpoint(&model, &o, &train_dl, &rng) != 0) goto out;
        if (log_line(logfd, log_path, err, sizeof(err), "{\"step\": %d, \"interrupted\": true}\n", model.step) != 0) fprintf(stderr, "warning: %s\n", err);
        int sig = stop_requested ? (int)stop_requested : SIGINT;   /* several processes: another one was signalled */
        if (sig != SIGINT) fprintf(stderr, "stopped by %s\n", signal_name(sig));
        printf("interrupted at step %d of %d%s%s\n", model.step, o.steps, have_out ? "; continue with ./train --resume " : " (no run folder: nothing saved)",
               have_out ? o.out : "");
        status = 128 + sig;
        goto out;
    }
    int done = model.step - first_step;
    double secs = (now_ms() - t_start) / 1e3;
    printf("done: %d steps in %.1f s (%.0f tok/s training)%s", done, secs, done > 0 ? done * tokens_per_step / (total_ms / 1e3) : 0.0,
           last_val >= 0 ? "" : "\n");
    if (last_val >= 0) printf(" | final val loss %.4f\n", last_val);
#ifdef ROPEPP_CUDA
    printf("peak GPU memory: %.2f GiB (model tensors and scratch; as torch.cuda.max_memory_allocated, no CUDA context)\n",
           backend_memory_peak() / 1073741824.0);
    if (log_line(logfd, log_path, err, sizeof(err), "{\"peak_memory_bytes\": %zu}\n", backend_memory_peak()) != 0) { fprintf(stderr, "error: %s\n", err); goto out; }
#endif
    if (prof != NULL) profile_print(prof, stdout);
    if (o.sample_len > 0 && model.step == 0) printf("no sample: the model is untrained (step 0)\n");
    else if (rank == 0 && o.sample_len > 0 && done > 0) sample(&model, &o, &tok_text, &rng, samples);
    if (have_out) printf("run folder: %s  (./infer --ckpt %s, ./eval ppl --ckpt %s, ./eval plot --run %s)\n", o.out, o.out, o.out, o.out);
    status = 0;
out:
    /* a failure after step 1 began: the steps done so far are kept (alone: with several processes the failing one
       cannot count on the others to join the gathering of the optimizer state; they are stopped by the launcher) */
    if (started && status != 0 && o.out != NULL && o.out[0] && model.step > 0 && model.step != saved_step) {
        if (world == 1) {
            fprintf(stderr, "saving the %d steps done before stopping:\n", model.step);
            save_checkpoint(&model, &o, &train_dl, &rng);
        } else {
            fprintf(stderr, "rank %d: stopping at step %d without a checkpoint of it (several processes): resume from the newest one written\n", rank, model.step);
        }
    }
    if (logfd >= 0) close(logfd);
    if (lockfd >= 0) close(lockfd);   /* after the last write to the folder */
    if (samples) fclose(samples);
    tokenizer_free(&tok_text);
    free(prof);
    free(step_in);
    free(step_tg);
    free(step_share);
    if (task_row.tokens != NULL) task_sample_free(&task_row);
    loader_free(&train_dl);
    loader_free(&val_dl);
    model_free(&model);
    if (status == 0 || status > 128) dist_free(dist);   /* after a failure the others may be gone: no collective */
    if (stored_flags) settings_free(stored_flags, stored_values, stored_n);
    return status;
}
