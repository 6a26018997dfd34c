#define ROPEPP_IMPLEMENTATION
#include "ropepp.h"
/*
fuzz_readers — libFuzzer target for every file reader of ropepp.h: shard_parse_header, loader_init /
loader_next / loader_seek / loader_reset / loader_max_token, checkpoint_parse_header, checkpoint_read (and, when it
accepts a small model, model_init_from + one forward/backward/update on it, as a resume would), state_read.

Build and run: make fuzz FUZZ_SECONDS=60     (clang -fsanitize=fuzzer,address,undefined; corpus tests/fuzz_corpus)
Reproduce:     ./tests/fuzz_readers crash-<sha1>

Input: byte 0 picks what the bytes become, so that the fuzzer reaches past the magic and size checks without a
seed corpus:
  mode 0         the file is the remaining bytes, raw
  mode 1..7      a valid fp32 checkpoint of a tiny model with position embedding mode-1 (nope .. partial)
  mode 8         a valid fp64 checkpoint (rope)
  mode 9         a valid state file of the tiny rope model (with AdamW moments)
  mode 10, 11    a valid uint16 / uint32 token shard
  for modes >= 1: byte 1 is a signed change of the file length, byte 2 drives B, T, vocab and the seek position,
  and bytes 3.. are XORed onto the file from offset 0 (all zero = the valid file).
Properties checked beyond "no crash, no leak, no undefined behaviour" (UBSan halts here, see below): a reader that
fails leaves a non-empty one-line message; checkpoint_read only accepts finite parameters; loader_next only returns
tokens < vocab.
*/
#include <unistd.h>
#include <sys/stat.h>

/* UBSan in the Makefile's build is recoverable: make every report fatal so that libFuzzer saves the input. */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "halt_on_error=1:print_stacktrace=1"; }

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { N_MODES = 12 };
static unsigned char *tmpl[N_MODES];
static size_t tmpl_len[N_MODES];
static char fpath[512];
static Model state_model;     /* the tiny rope model the state template belongs to (has AdamW moments) */

static void must(int ok, const char *what) {
    if (!ok) { fprintf(stderr, "fuzz_readers: setup failed: %s\n", what); abort(); }
}

/* A failing reader must say why, on one line. */
static void check_err(int rc, const char *err) {
    if (rc != 0 && (err[0] == '\0' || strchr(err, '\n') != NULL)) {
        fprintf(stderr, "fuzz_readers: a reader failed with an empty or multi-line message: '%s'\n", err);
        __builtin_trap();
    }
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    must(fp != NULL, path);
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = (unsigned char *)malloc((size_t)sz + 1);
    must(fread(b, 1, (size_t)sz, fp) == (size_t)sz, "read template");
    fclose(fp);
    *n = (size_t)sz;
    return b;
}

static Config tiny(int pe) {
    Config c = config_default();
    c.vocab_size = 8; c.dim = 8; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 2; c.ffn_dim = 4; c.pe = pe;
    c.train_seq = 64; c.rotary_frac = 0.5;
    if (pe == PE_FOPE) { c.n_heads = 1; c.n_kv_heads = 1; }   /* FoPE needs head dim >= 4 */
    return c;
}

static void remove_tmp(void) { remove(fpath); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    const char *dir = "tests/tmp";
    mkdir("tests", 0755);
    if (mkdir(dir, 0755) != 0 && access(dir, W_OK) != 0) dir = "/tmp";
    snprintf(fpath, sizeof(fpath), "%s/fuzz_readers.%d.bin", dir, (int)getpid());
    char err[512];
    for (int pe = 0; pe < PE_COUNT; pe++) {
        Config c = tiny(pe);
        Model m;
        model_init(&m, &c, INIT_TORCH_DEFAULT, 1 + (uint64_t)pe);
        must(model_save(&m, fpath, err, sizeof(err)) == 0, err);
        tmpl[1 + pe] = slurp(fpath, &tmpl_len[1 + pe]);
        if (pe == PE_ROPE) {
            double *p = (double *)malloc(m.num_params * sizeof(double));
            model_params_to_host(&m, p);
            must(checkpoint_write(fpath, &m.cfg, p, m.num_params, 8, err, sizeof(err)) == 0, err);
            tmpl[8] = slurp(fpath, &tmpl_len[8]);
            free(p);
        }
        model_free(&m);
    }
    Config c = tiny(PE_ROPE);
    model_init(&state_model, &c, INIT_TORCH_DEFAULT, 5);
    int in[4] = {1, 2, 3, 4}, tg[4] = {2, 3, 4, 5};
    model_forward(&state_model, in, tg, 1, 4);
    model_zero_grad(&state_model);
    model_backward(&state_model);
    model_update(&state_model, 1e-3, 0.9, 0.99, 1e-8, 0.1, 0.0);
    TrainState s = {1, 0, 8, 77, 0};
    must(state_write(&state_model, &s, fpath, err, sizeof(err)) == 0, err);
    tmpl[9] = slurp(fpath, &tmpl_len[9]);
    int toks[64];
    for (int i = 0; i < 64; i++) toks[i] = (i * 5 + 3) % 8;
    must(shard_write(fpath, toks, 64, 2, err, sizeof(err)) == 0, err);
    tmpl[10] = slurp(fpath, &tmpl_len[10]);
    must(shard_write(fpath, toks, 64, 4, err, sizeof(err)) == 0, err);
    tmpl[11] = slurp(fpath, &tmpl_len[11]);
    remove(fpath);
    atexit(remove_tmp);
    return 0;
}

static void fuzz_shards(const unsigned char *file, size_t n, unsigned knob) {
    char err[1024];
    int32_t hdr[256];
    memset(hdr, 0, sizeof(hdr));
    memcpy(hdr, file, n < sizeof(hdr) ? n : sizeof(hdr));
    size_t ntok = 0;
    err[0] = 0;
    int w = shard_parse_header(hdr, n, &ntok, err, sizeof(err));
    check_err(w < 0 ? -1 : 0, err);
    if (w >= 0 && !((w == 2 || w == 4) && 1024 + ntok * (size_t)w == n)) __builtin_trap();

    int B = 1 + (int)(knob & 1), T = 1 + (int)((knob >> 1) & 7);
    int vocab = (knob & 0x10) ? 8 : 1 << 17;
    DataLoader dl;
    err[0] = 0;
    int rc = loader_init(&dl, fpath, B, T, vocab, err, sizeof(err));
    check_err(rc, err);
    if (rc == 0) {
        for (int i = 0; i < 5; i++) {
            err[0] = 0;
            int r = loader_next(&dl, err, sizeof(err));
            check_err(r, err);
            if (r != 0) break;
            for (int j = 0; j < B * T; j++)
                if (dl.inputs[j] < 0 || dl.inputs[j] >= vocab || dl.targets[j] < 0 || dl.targets[j] >= vocab) __builtin_trap();
        }
        err[0] = 0;
        int r = loader_seek(&dl, (knob >> 5) & 1, (int64_t)((knob >> 6) & 63) - 2, err, sizeof(err));
        check_err(r, err);
        if (r == 0) { err[0] = 0; check_err(loader_next(&dl, err, sizeof(err)), err); }
        loader_reset(&dl);
        err[0] = 0;
        check_err(loader_next(&dl, err, sizeof(err)), err);
        loader_free(&dl);
    }
    int64_t mx = -1;
    err[0] = 0;
    check_err(loader_max_token(fpath, &mx, err, sizeof(err)), err);
}

static void fuzz_checkpoints(const unsigned char *file, size_t n) {
    char err[1024];
    int32_t hdr[256];
    memset(hdr, 0, sizeof(hdr));
    memcpy(hdr, file, n < sizeof(hdr) ? n : sizeof(hdr));
    Config c;
    int bpp = 0;
    size_t np = 0;
    err[0] = 0;
    int rh = checkpoint_parse_header(hdr, n, &c, &bpp, &np, err, sizeof(err));
    check_err(rh, err);

    double *params = NULL;
    err[0] = 0;
    int rc = checkpoint_read(fpath, &c, &params, &np, err, sizeof(err));
    check_err(rc, err);
    if (rc == 0) {
        if (rh != 0) __builtin_trap();   /* the file reader accepted what the header parser refused */
        for (size_t i = 0; i < np; i++) if (!isfinite(params[i])) __builtin_trap();
        if (np <= 20000) {
            /* what --resume does with it: build the model and train one step */
            Model m;
            model_init_from(&m, &c, params);
            int in[3] = {0, 1 % c.vocab_size, 0}, tg[3] = {1 % c.vocab_size, 0, -1};
            model_forward(&m, in, tg, 1, 3);
            model_zero_grad(&m);
            model_backward(&m);
            model_update(&m, 1e-3, 0.9, 0.99, 1e-8, 0.1, 1.0);
            model_free(&m);
        }
        free(params);
    }
}

static void fuzz_state(const unsigned char *file, size_t n) {
    char err[1024];
    TrainState s;
    err[0] = 0;
    check_err(state_read(&state_model, &s, fpath, err, sizeof(err)), err);
    /* a model without moments whose parameter count is whatever the header says (if small) */
    if (n >= 1024) {
        int64_t hn;
        memcpy(&hn, file + 16, 8);
        if (hn >= 0 && hn <= 4096) {
            Model m;
            memset(&m, 0, sizeof(m));
            m.num_params = (size_t)hn;
            err[0] = 0;
            check_err(state_read(&m, &s, fpath, err, sizeof(err)), err);
            backend_free(m.adam_m);
            backend_free(m.adam_v);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned mode = data[0] % N_MODES;
    unsigned char *file;
    size_t n;
    unsigned knob = size > 2 ? data[2] : 0;
    if (mode == 0) {
        n = size - 1;
        file = (unsigned char *)malloc(n + 1);
        memcpy(file, data + 1, n);
        knob = n > 0 ? data[size - 1] : 0;
    } else {
        long len = (long)tmpl_len[mode] + (size > 1 ? (int8_t)data[1] : 0);
        size_t patch = size > 3 ? size - 3 : 0;
        if ((size_t)len < patch) len = (long)patch;
        n = (size_t)len;
        file = (unsigned char *)calloc(1, n + 1);
        memcpy(file, tmpl[mode], n < tmpl_len[mode] ? n : tmpl_len[mode]);
        for (size_t i = 0; i < patch; i++) file[i] ^= data[3 + i];
    }
    remove(fpath);   /* a new file, not a truncated one: ext4 flushes a file truncated and rewritten (auto_da_alloc) */
    FILE *fp = fopen(fpath, "wb");
    if (fp == NULL) { free(file); return 0; }
    if (n > 0 && fwrite(file, 1, n, fp) != n) { fclose(fp); free(file); return 0; }
    fclose(fp);
    fuzz_shards(file, n, knob);
    fuzz_checkpoints(file, n);
    fuzz_state(file, n);
    free(file);
    return 0;
}
