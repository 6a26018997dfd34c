/*
infer — text generation with a KV cache from any ropepp checkpoint (every position embedding).
  make infer && ./infer --prompt "ROMEO:"            the newest checkpoint of the last run (runs/latest)
  echo "JULIET:" | ./infer --ckpt runs/rope-20261129-081500 --max-new 400     (a run folder, or a .ckpt file)
  ./infer --ckpt gpt2.ckpt --prompt-tokens 464,3290 --tokenizer gpt2_tokenizer.bin   (llm.c's tokenizer file)
  (make infer_gpu: the same on the GPU)

The prompt goes through the model once (filling the cache), then one token at a time; the cache holds the
post-rotary keys and the values (RoPE++ EH: half of RoPE's). Generation stops at the context limit — the
training length, or the length given by --ctx with a rope scaling option such as --ntk-factor — with a message.
The scaling flags apply on top of what the checkpoint stores (docs/SETTINGS.md): a factor not given keeps the
checkpoint's value.
At the end it prints the KV-cache size and the time per output token. `./infer --help` lists every flag.
*/
#define ROPEPP_IMPLEMENTATION
#include "ropepp.h"
#include "cli.h"
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *ckpt, *prompt, *prompt_tokens, *tokenizer;
    int max_new, top_k, ctx;
    double temperature, top_p;
    Config scaling;        /* the scaling flags given (pi_factor, yarn_factor, ntk_factor) */
    uint64_t given;        /* bit i: config_rules[i]'s flag was given */
    uint64_t seed;
} Options;

static void usage(void) {
    char scalable[256];
    pe_names(scalable, sizeof(scalable), ", ", 1);
    printf("usage: infer [flags]\n"
           "  --ckpt FILE|DIR      a checkpoint, or a run folder (its newest checkpoint) (runs/latest: the last run)\n"
           "  --ckpt-dir DIR       the old name of --ckpt DIR\n"
           "  --prompt TEXT        prompt (default: read standard input when it is not a terminal)\n"
           "  --prompt-tokens LIST comma-separated token ids, for models that are not byte-level\n"
           "  --tokenizer FILE     llm.c tokenizer file (gpt2_tokenizer.bin) to print the text of non-byte tokens; only\n"
           "                       ids < its vocabulary are sampled (llm.c pads 50257 to 50304) and its end-of-text ends the text\n"
           "  --max-new N          tokens to generate (200)\n"
           "  --temperature T      0 = greedy (0.8)\n"
           "  --top-k K            keep the K most likely tokens (0 = all)\n"
           "  --top-p P            nucleus sampling (1 = off)\n"
           "  --seed N             sampling seed (1)\n"
           "  --ctx N              context limit (default: the training length; past it, scalable PEs want a scaling flag)\n"
           "  --ntk-factor L       eval-time NTK: rope base x L (replaces the checkpoint's; 1 = off)\n"
           "  --pi-factor S        linear position interpolation by S (replaces the checkpoint's)\n"
           "  --yarn-factor S      the authors' YaRN variant with factor S (replaces the checkpoint's)\n"
           "                       the three scaling flags apply to %s only (./train --list-pe: scalable)\n"
           "  --help               this text\n", scalable);
}

static char *read_stdin(void) {
    size_t cap = 4096, n = 0;
    char *buf = (char *)mallocCheck(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, stdin)) > 0) {
        n += got;
        if (n + 1 >= cap) { cap *= 2; char *b2 = (char *)realloc(buf, cap); if (!b2) { fprintf(stderr, "error: out of memory\n"); exit(1); } buf = b2; }
    }
    buf[n] = '\0';
    return buf;
}

int main(int argc, char **argv) {
    Options o;
    memset(&o, 0, sizeof(o));
    o.max_new = 200; o.temperature = 0.8; o.top_p = 1.0; o.seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) { usage(); return 0; }
        if (strncmp(f, "--", 2) != 0) { fprintf(stderr, "error: unexpected argument '%s'; see ./infer --help\n", f); return 1; }
        static const char *const flags[] = {"--ckpt", "--ckpt-dir", "--prompt", "--prompt-tokens", "--tokenizer", "--max-new",
                                            "--temperature", "--top-k", "--top-p", "--seed", "--ctx", "--ntk-factor",
                                            "--pi-factor", "--yarn-factor", "--help"};
        const int n_flags = (int)(sizeof(flags) / sizeof(flags[0]));
        int known = 0;
        for (int k = 0; k < n_flags; k++) known |= strcmp(f, flags[k]) == 0;
        if (!known) {   /* named before its value is looked for, with the nearest flag (edit distance 2 at most) */
            const char *best = NULL;
            int best_d = 3;
            char eq[300];
            name_nearest(f, flags, n_flags, &best, &best_d);
            if (flag_equals_hint(f, eq, sizeof(eq))[0]) fprintf(stderr, "error: unknown flag '%s'%s\n", f, eq);
            else if (best != NULL) fprintf(stderr, "error: unknown flag '%s' (did you mean %s?); see ./infer --help\n", f, best);
            else fprintf(stderr, "error: unknown flag '%s'; see ./infer --help\n", f);
            return 1;
        }
        if (i + 1 >= argc) { fprintf(stderr, "error: missing value for '%s'; see ./infer --help\n", f); return 1; }
        const char *v = argv[++i];
        if (strcmp(f, "--ckpt") == 0 || strcmp(f, "--ckpt-dir") == 0) o.ckpt = v;
        else if (strcmp(f, "--prompt") == 0) o.prompt = v;
        else if (strcmp(f, "--prompt-tokens") == 0) o.prompt_tokens = v;
        else if (strcmp(f, "--tokenizer") == 0) o.tokenizer = v;
        else if (strcmp(f, "--max-new") == 0) o.max_new = flag_int("./infer", f, v, 0, 1 << 24);
        else if (strcmp(f, "--temperature") == 0) o.temperature = flag_number("./infer", f, v, 0, 100);
        else if (strcmp(f, "--top-k") == 0) o.top_k = flag_int("./infer", f, v, 0, 1 << 30);
        else if (strcmp(f, "--top-p") == 0) o.top_p = flag_number("./infer", f, v, 1e-9, 1.0);
        else if (strcmp(f, "--seed") == 0) o.seed = (uint64_t)flag_number("./infer", f, v, 0, 9007199254740992.0);
        else if (strcmp(f, "--ctx") == 0) o.ctx = flag_int("./infer", f, v, 1, 1 << 24);
        else if (strcmp(f, "--ntk-factor") == 0) o.scaling.ntk_factor = flag_number("./infer", f, v, 1, 1e6);
        else if (strcmp(f, "--pi-factor") == 0) o.scaling.pi_factor = flag_number("./infer", f, v, 1, 1e6);
        else if (strcmp(f, "--yarn-factor") == 0) o.scaling.yarn_factor = flag_number("./infer", f, v, 1, 1e6);
        int rule = settings_find(config_rules, config_rule_count, f);
        if (rule >= 0) o.given |= 1ull << rule;
    }
    char path[4200], err[8800];
    if (checkpoint_resolve(o.ckpt, "--ckpt", path, sizeof(path), err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); return 1; }
    o.ckpt = path;
    Config c;
    double *params;
    size_t np;
    if (checkpoint_read(o.ckpt, &c, &params, &np, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); return 1; }
    /* eval-time scaling on top of the checkpoint's (one rule in every program: docs/SETTINGS.md) */
    char what[4300];
    snprintf(what, sizeof(what), "the checkpoint %s", o.ckpt);
    if (settings_apply(&c, &o.scaling, o.given, config_rules, config_rule_count, USE_EVAL, what, err, sizeof(err)) != 0 ||
        config_validate(&c, err, sizeof(err)) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    int scaled = c.ntk_factor != 1.0 || c.pi_factor != 1.0 || c.yarn_factor != 1.0;
    /* how to go past the context limit, for this model: from its row of pe_table (scalable: takes the rope scaling
       options; rotary but not scalable, like FoPE: positions past the training length are unseen and nothing
       rescales them; not rotary, like ALiBi and NoPE: nothing says where the model stops working) */
    const PeInfo *pe = pe_info(c.pe);
    char longer[200];
    if (pe->scalable) snprintf(longer, sizeof(longer), "pass --ctx N with --ntk-factor (or --pi-factor, --yarn-factor)");
    else if (pe->rotary) snprintf(longer, sizeof(longer), "pass --ctx N (%s takes no rope scaling option)", pe->name);
    else snprintf(longer, sizeof(longer), "pass --ctx N");
    Model m;
    model_init_from(&m, &c, params);
    free(params);

    /* the prompt */
    char *owned = NULL;
    const char *text = o.prompt;
    if (text == NULL && o.prompt_tokens == NULL) {
        if (isatty(STDIN_FILENO)) { fprintf(stderr, "error: no prompt: pass --prompt TEXT or pipe text into standard input\n"); return 1; }
        owned = read_stdin();
        text = owned;
    }
    int V = c.vocab_size, n_prompt = 0;
    int *prompt = NULL;
    if (o.prompt_tokens != NULL) {
        prompt = (int *)mallocCheck((strlen(o.prompt_tokens) / 2 + 2) * sizeof(int));
        const char *p = o.prompt_tokens;
        while (*p) {
            char *end;
            long t = strtol(p, &end, 10);
            if (end == p || t < 0 || t >= V) { fprintf(stderr, "error: --prompt-tokens: '%s' is not a token id in [0, %d)\n", p, V); return 1; }
            prompt[n_prompt++] = (int)t;
            p = *end == ',' ? end + 1 : end;
            if (*end != ',' && *end != '\0') { fprintf(stderr, "error: --prompt-tokens takes comma-separated integers\n"); return 1; }
        }
    } else {
        if (c.tokenizer != TOKENIZER_BYTES) {
            fprintf(stderr, "error: this model is not byte-level (tokenizer %d, vocab %d); pass the prompt as token ids, --prompt-tokens 464,3290, and --tokenizer FILE (llm.c's gpt2_tokenizer.bin) to print the output as text\n", c.tokenizer, V);
            return 1;
        }
        size_t len = strlen(text);
        prompt = (int *)mallocCheck((len + 1) * sizeof(int));
        for (size_t i = 0; i < len; i++) prompt[n_prompt++] = (unsigned char)text[i];
    }
    if (n_prompt == 0) { fprintf(stderr, "error: the prompt is empty\n"); return 1; }

    /* context limit: the training length, or --ctx (for a rotary model past the training length a warning: a
       scalable one without a scaling option; one that takes none, like FoPE, always; none for a PE that is not
       rotary, where nothing says where the model stops working) */
    int limit = o.ctx > 0 ? o.ctx : c.train_seq;
    if (o.ctx > c.train_seq && !scaled && pe->scalable)
        fprintf(stderr, "warning: --ctx %d is past the training length %d without a rope scaling option (--ntk-factor, --pi-factor, --yarn-factor); expect degraded text\n", o.ctx, c.train_seq);
    else if (o.ctx > c.train_seq && pe->rotary && !pe->scalable)
        fprintf(stderr, "warning: --ctx %d is past the training length %d; %s takes no rope scaling option, so the positions past it were never trained\n", o.ctx, c.train_seq, pe->name);
    if (n_prompt > limit) {
        fprintf(stderr, "error: the prompt is %d tokens, longer than the context limit %d\nHINT: shorten it, or %s\n", n_prompt, limit, longer);
        return 1;
    }
    int total = n_prompt + o.max_new < limit ? n_prompt + o.max_new : limit;

    Tokenizer tok_text;
    memset(&tok_text, 0, sizeof(tok_text));
    if (o.tokenizer != NULL) {
        if (tokenizer_read(&tok_text, o.tokenizer, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); return 1; }
        if (tok_text.vocab_size > V) { fprintf(stderr, "error: the tokenizer has %d tokens, more than the model's vocabulary %d\n", tok_text.vocab_size, V); return 1; }
        for (int i = 0; i < n_prompt && c.tokenizer != TOKENIZER_BYTES; i++) token_print(stdout, prompt[i], 0, &tok_text);
    }
    KVCache kv;
    kvcache_init(&kv, &m, 1, total);
    kvcache_seed(&kv, o.seed);
    /* ids past the tokenizer's vocabulary (a padded model) are never drawn; its end-of-text token ends the text */
    Sampler smp = {o.temperature, o.top_k, o.top_p, tok_text.vocab_size};
    int eot = tok_text.tokens != NULL ? tok_text.eot_token : -1;
    if (smp.vocab > 0 && smp.vocab < V) fprintf(stderr, "sampling ids < %d, the tokenizer's vocabulary (the model's is padded to %d)\n", smp.vocab, V);
    fprintf(stderr, "%s | %s | %zu parameters | trained at %d, rope base %g, pi %g, yarn %g, ntk %g | backend %s\n", o.ckpt, pe_name(c.pe),
            m.num_params, c.train_seq, c.rope_base, c.pi_factor, c.yarn_factor, c.ntk_factor, backend_name());
    for (int i = 0; i < n_prompt && c.tokenizer == TOKENIZER_BYTES; i++) token_print(stdout, prompt[i], 1, NULL);
    fflush(stdout);

    double t0 = wall_seconds();
    model_decode(&m, &kv, prompt, n_prompt);
    /* then the device loop: tokens, position and sampling stay on the backend (a CUDA graph per step on the GPU);
       each new token is copied back only to be printed */
    model_sample(&m, &kv, n_prompt - 1, &smp);
    int tok = 0;
    model_tokens_to_host(&m, &kv, &tok);
    double t_prompt = wall_seconds() - t0;
    int generated = 0;
    double t_gen = 0.0;
    while (generated < o.max_new) {
        if (generated > 0) {
            if (kv.pos >= total) break;
            double t1 = wall_seconds();
            model_decode_next(&m, &kv, &smp, 1);
            model_tokens_to_host(&m, &kv, &tok);
            t_gen += wall_seconds() - t1;
        }
        if (tok == eot) break;
        token_print(stdout, tok, c.tokenizer == TOKENIZER_BYTES, &tok_text);   /* <id> without --tokenizer */
        fflush(stdout);
        generated++;
    }
    printf("\n");
    fflush(stdout);   /* the text ends its line before the statistics on standard error */
    if (tok == eot)
        fprintf(stderr, "[stopped after %d tokens: the end-of-text token %d of the tokenizer]\n", generated, eot);
    else if (generated < o.max_new)
        fprintf(stderr, "[stopped after %d tokens: reached the context limit of %d tokens; %s to go further]\n", generated, limit, longer);
    int decode_steps = generated > 1 ? generated - 1 : 1;
    fprintf(stderr, "prompt %d tokens in %.1f ms | %d new tokens | %.3f ms per output token | KV cache %zu bytes (%d positions, %.0f bytes/token)\n",
            n_prompt, t_prompt * 1e3, generated, t_gen * 1e3 / decode_steps, kv.bytes, kv.Tmax, (double)kv.bytes / kv.Tmax);
    kvcache_free(&kv);
    tokenizer_free(&tok_text);
    free(prompt);
    free(owned);
    model_free(&m);
    return 0;
}
