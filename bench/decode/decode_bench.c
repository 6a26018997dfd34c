/*
decode_bench — time per output token (TPOT) of ropepp's KV-cache decoding vs context length.

For one model shape and position embedding: a random-weight model (model_init), then for each context N of --ctx:
a KVCache for --batch sequences of N + warmup + steps positions, a prefill of N random tokens through model_decode
(in chunks of --chunk tokens; --fill zeros instead leaves the cache at zeros and starts at position N - 1: the decode
kernels' work does not depend on the values, and long prefills of large batches are skipped), then the device loop
as infer runs it: model_sample (greedy) and --warmup untimed model_decode_next steps, then --steps timed ones (wall
clock; the GPU is synchronised before and after by reading the sampled tokens; --graph 0: without a CUDA graph).
One JSON line per context:
  {"impl": "ropepp", "pe": ..., "ctx": N, "batch": B, "tpot_ms": ..., "kv_bytes": kv.bytes, "step_bytes": ...}
tpot_ms is the time of one step, which makes one new token for each of the B sequences. step_bytes: what one step
must read from memory at the timed steps' mean position: the bf16 weights of every matmul (the classifier included;
of the embedding only the B rows looked up) and the K and V of every cached position of every layer.

Build (flags as train_gpu's):  make -f Makefile -f bench/decode/decode.mk decode_bench_gpu
CPU build, for a smoke test:   gcc -std=c11 -O2 -fopenmp -I. bench/decode/decode_bench.c -o /tmp/decode_bench -lm
Run:  decode_bench_gpu --pe ropepp_eh --ctx 2048,4096 --batch 8      (the paper's 376M shape by default)
*/
#define ROPEPP_IMPLEMENTATION
#include "ropepp.h"
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void usage(void) {
    printf("usage: decode_bench [flags]\n"
           "  --pe NAME       position embedding (rope)\n"
           "  --dim C --layers L --heads H --kv-heads KV --ffn F --vocab V   model (1024 8 8 4 3584 50304: 376M)\n"
           "  --rope-base B   rotary base (10000)\n"
           "  --batch B       sequences decoded together (8)\n"
           "  --ctx N[,N...]  context lengths: tokens prefilled before the timed steps (2048)\n"
           "  --steps M       timed decode steps per context (100)\n"
           "  --warmup W      untimed decode steps first (10)\n"
           "  --chunk K       prefill chunk, tokens per model_decode call (1024)\n"
           "  --seed S        weights and tokens (42)\n"
           "  --fill F        prefill (random tokens through the model) or zeros (no prefill; see above) (prefill)\n"
           "  --graph G       1: the decode step replayed from a CUDA graph, 0: launched each time (1)\n");
}

static int int_arg(const char *flag, const char *v, int lo, int hi) {
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || x < lo || x > hi) {
        fprintf(stderr, "error: %s '%s' is not an integer in [%d, %d]\n", flag, v, lo, hi);
        exit(1);
    }
    return (int)x;
}

int main(int argc, char **argv) {
    Config c = config_default();
    c.pe = PE_ROPE; c.dim = 1024; c.n_layers = 8; c.n_heads = 8; c.n_kv_heads = 4; c.ffn_dim = 3584;
    c.vocab_size = 50304; c.train_seq = 4096;
    int B = 8, steps = 100, warmup = 10, chunk = 1024, nctx = 0, fill_zeros = 0, use_graph = 1;
    int ctx[64];
    uint64_t seed = 42;
    const char *ctx_list = "2048";
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) { usage(); return 0; }
        if (i + 1 >= argc) { fprintf(stderr, "error: flag %s needs a value (or is unknown); see --help\n", f); return 1; }
        const char *v = argv[++i];
        if (strcmp(f, "--pe") == 0) {
            c.pe = pe_from_name(v);
            if (c.pe < 0) { fprintf(stderr, "error: unknown --pe '%s'\n", v); return 1; }
        } else if (strcmp(f, "--dim") == 0) c.dim = int_arg(f, v, 1, 65536);
        else if (strcmp(f, "--layers") == 0) c.n_layers = int_arg(f, v, 1, 1024);
        else if (strcmp(f, "--heads") == 0) c.n_heads = int_arg(f, v, 1, 4096);
        else if (strcmp(f, "--kv-heads") == 0) c.n_kv_heads = int_arg(f, v, 1, 4096);
        else if (strcmp(f, "--ffn") == 0) c.ffn_dim = int_arg(f, v, 1, 1 << 20);
        else if (strcmp(f, "--vocab") == 0) c.vocab_size = int_arg(f, v, 2, 1 << 30);
        else if (strcmp(f, "--rope-base") == 0) c.rope_base = atof(v);
        else if (strcmp(f, "--batch") == 0) B = int_arg(f, v, 1, 1 << 16);
        else if (strcmp(f, "--ctx") == 0) ctx_list = v;
        else if (strcmp(f, "--steps") == 0) steps = int_arg(f, v, 1, 1 << 20);
        else if (strcmp(f, "--warmup") == 0) warmup = int_arg(f, v, 0, 1 << 20);
        else if (strcmp(f, "--chunk") == 0) chunk = int_arg(f, v, 1, 1 << 20);
        else if (strcmp(f, "--seed") == 0) seed = (uint64_t)int_arg(f, v, 0, 1 << 30);
        else if (strcmp(f, "--graph") == 0) use_graph = int_arg(f, v, 0, 1);
        else if (strcmp(f, "--fill") == 0) {
            if (strcmp(v, "prefill") != 0 && strcmp(v, "zeros") != 0) { fprintf(stderr, "error: --fill takes prefill or zeros\n"); return 1; }
            fill_zeros = strcmp(v, "zeros") == 0;
        }
        else { fprintf(stderr, "error: unknown flag '%s'; see --help\n", f); return 1; }
    }
    /* --ctx 2048,4096,... */
    {
        char buf[1024];
        snprintf(buf, sizeof(buf), "%s", ctx_list);
        for (char *tok = strtok(buf, ","); tok != NULL; tok = strtok(NULL, ",")) {
            if (nctx == 64) { fprintf(stderr, "error: at most 64 contexts\n"); return 1; }
            ctx[nctx++] = int_arg("--ctx", tok, 1, 1 << 24);
        }
        if (nctx == 0) { fprintf(stderr, "error: --ctx lists no context\n"); return 1; }
    }
    char err[256];
    if (config_validate(&c, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); return 1; }

    Model m;
    double t0 = now_s();
    model_init(&m, &c, INIT_TORCH_DEFAULT, seed);
    fprintf(stderr, "decode_bench | %s | backend %s | %zu parameters | init %.1f s\n", pe_name(c.pe), backend_name(),
            m.num_params, now_s() - t0);
    int V = c.vocab_size;
    float *logits = (float *)mallocCheck((size_t)V * sizeof(float));
    Rng rng = {seed ^ 0xDEC0DEull};
    int status = 0;
    for (int ci = 0; ci < nctx; ci++) {
        int N = ctx[ci], Tmax = N + warmup + steps;
        int K = chunk < N ? chunk : N;
        KVCache kv;
        kvcache_init(&kv, &m, B, Tmax);
        int *toks = (int *)mallocCheck((size_t)B * K * sizeof(int));
        double tp = now_s();
        int last_tn = 1;
        if (fill_zeros) {   /* the cache stays at zeros; one token at position N - 1 gives the logits to sample */
            kv.pos = N - 1;
            backend_from_host(kv.pos_dev, &kv.pos, sizeof(int));
            for (int b = 0; b < B; b++) toks[b] = (int)(rng_u64(&rng) % (uint64_t)V);
            model_decode(&m, &kv, toks, 1);
        } else {   /* prefill: N random tokens per sequence, K at a time ((B, Tn) row-major for model_decode) */
            for (int pos = 0; pos < N; pos += K) {
                int tn = N - pos < K ? N - pos : K;
                for (size_t i = 0; i < (size_t)B * tn; i++) toks[i] = (int)(rng_u64(&rng) % (uint64_t)V);
                model_decode(&m, &kv, toks, tn);
                last_tn = tn;
            }
        }
        Sampler greedy = {0.0, 0, 1.0, 0};
        int *sampled = (int *)mallocCheck((size_t)B * sizeof(int));
        model_sample(&m, &kv, last_tn - 1, &greedy);
        model_tokens_to_host(&m, &kv, sampled);   /* synchronises */
        double prefill_s = now_s() - tp;
        for (int i = 0; i < warmup; i++) model_decode_next(&m, &kv, &greedy, use_graph);
        model_tokens_to_host(&m, &kv, sampled);
        /* the timed steps: the tokens each step samples are the next step's input, on the device */
        double mean_pos = kv.pos + (steps - 1) / 2.0;
        double ts = now_s();
        for (int i = 0; i < steps; i++) model_decode_next(&m, &kv, &greedy, use_graph);
        model_tokens_to_host(&m, &kv, sampled);   /* synchronises */
        double tpot_ms = (now_s() - ts) * 1e3 / steps;
        model_logits_row(&m, B - 1, 0, logits);
        /* bytes one step must read: bf16 matmul weights (not the embedding table: B of its rows; not FoPE's
           coefficients: the tables are built once) and the K and V rows of positions 0 .. mean_pos */
        double weights = 0.0;
        for (int t = 0; t < NUM_PARAM_TENSORS; t++)
            if (t != P_WTE && t != P_FOPE_COS && t != P_FOPE_SIN) weights += (double)m.param_sizes[t] * 2.0;
        weights += (double)B * c.dim * 2.0;
        double kv_read = (double)kv.bytes / kv.Tmax * (mean_pos + 1.0);
        int finite = 1;
        for (int i = 0; i < V; i++) finite &= isfinite(logits[i]) ? 1 : 0;
        if (!finite) status = 1;
        printf("{\"impl\": \"ropepp\", \"pe\": \"%s\", \"ctx\": %d, \"batch\": %d, \"steps\": %d, \"warmup\": %d, "
               "\"tpot_ms\": %.5f, \"tok_s\": %.1f, \"step_bytes\": %.0f, \"weight_bytes\": %.0f, \"kv_read_bytes\": %.0f, "
               "\"fill\": \"%s\", \"graph\": %d, \"kv_bytes\": %zu, \"kv_positions\": %d, \"kv_bytes_per_token\": %.1f, "
               "\"kv_bytes_ctx\": %.0f, \"prefill_s\": %.4f, \"prefill_chunk\": %d, \"finite\": %s, "
               "\"shape\": {\"vocab\": %d, \"dim\": %d, \"layers\": %d, \"heads\": %d, \"kv_heads\": %d, \"ffn\": %d, "
               "\"hq\": %d, \"kvh\": %d, \"na\": %d, \"hd\": %d}, \"num_params\": %zu, \"backend\": \"%s\"}\n",
               pe_name(c.pe), N, B, steps, warmup, tpot_ms, B * 1e3 / tpot_ms, weights + kv_read, weights, kv_read,
               fill_zeros ? "zeros" : "prefill", use_graph, kv.bytes, kv.Tmax,
               (double)kv.bytes / kv.Tmax, (double)kv.bytes / kv.Tmax * N, prefill_s, K, finite ? "true" : "false",
               c.vocab_size, c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.ffn_dim, m.d.HQ, m.d.KVH, m.d.NA, m.d.HD,
               m.num_params, backend_name());
        fflush(stdout);
        free(sampled);
        free(toks);
        kvcache_free(&kv);
    }
    free(logits);
    model_free(&m);
    return status;
}
