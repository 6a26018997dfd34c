/*
test_infer — decoding with the KV cache gives the same logits as the full forward over the growing sequence,
for every position embedding (with its scaling options and the noise off), in double; the KV cache of RoPE++ EH is
exactly half of RoPE's; the device-side decode loop (model_sample + model_decode_next: tokens, position and
sampling on the backend) gives the tokens of the host loop (model_decode + model_logits_row + sample_token), the
same whether the step is replayed from a CUDA graph or not; and sample_forward agrees with sample_token.

Build/run: make test (built with -DROPEPP_DOUBLE); make test_gpu also builds it for the GPU in fp32
(tests/test_infer_gpu). Threshold relative to the largest logit: double 1e-12 (the same arithmetic in the same
order; measured 0); GPU fp32 1e-5 (the decode kernel splits the keys differently from the full attention, so
float sums are reordered; ~1e-7 expected).
*/
#define ROPEPP_IMPLEMENTATION
#include "ropepp.h"
#include "testutil.h"

enum { V = 13, LEN = 11, BATCH = 2 };

static Config tiny(int pe) {
    Config c = config_default();
    c.vocab_size = V; c.dim = 16; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.ffn_dim = 24;
    c.pe = pe; c.train_seq = 8; c.rotary_frac = 0.5;
    if (pe == PE_ROPE) { c.yarn_factor = 2.0; c.yarn_orig_len = 16; }
    if (pe == PE_ROPEPP_EC) c.ntk_factor = 4.0;
    return c;
}

static void cached_vs_full(int pe) {
    Config c = tiny(pe);
    Model m;
    model_init(&m, &c, INIT_TORCH_DEFAULT, 31 + pe);
    int seq[BATCH * LEN];
    for (int i = 0; i < BATCH * LEN; i++) seq[i] = (i * 5 + 2) % V;
    /* full forward over every prefix: logits of its last position, per sequence */
    double *full = (double *)mallocCheck((size_t)BATCH * LEN * V * sizeof(double));
    float *row = (float *)mallocCheck(V * sizeof(float));
    int *prefix = (int *)mallocCheck(BATCH * LEN * sizeof(int));
    for (int len = 1; len <= LEN; len++) {
        for (int b = 0; b < BATCH; b++) memcpy(prefix + b * len, seq + b * LEN, len * sizeof(int));
        model_forward(&m, prefix, NULL, BATCH, len);
        for (int b = 0; b < BATCH; b++) {
            model_logits_row(&m, b, len - 1, row);
            for (int v = 0; v < V; v++) full[((size_t)b * LEN + len - 1) * V + v] = row[v];
        }
    }
    /* cached: a prompt of 4 tokens in one call, then one token at a time (positions past train_seq too) */
    KVCache kv;
    kvcache_init(&kv, &m, BATCH, LEN);
    double *cached = (double *)mallocCheck((size_t)BATCH * LEN * V * sizeof(double));
    int chunk[BATCH * 4];
    for (int b = 0; b < BATCH; b++) memcpy(chunk + b * 4, seq + b * LEN, 4 * sizeof(int));
    model_decode(&m, &kv, chunk, 4);
    for (int b = 0; b < BATCH; b++) for (int t = 0; t < 4; t++) {
        model_logits_row(&m, b, t, row);
        for (int v = 0; v < V; v++) cached[((size_t)b * LEN + t) * V + v] = row[v];
    }
    for (int t = 4; t < LEN; t++) {
        int one[BATCH];
        for (int b = 0; b < BATCH; b++) one[b] = seq[b * LEN + t];
        model_decode(&m, &kv, one, 1);
        for (int b = 0; b < BATCH; b++) {
            model_logits_row(&m, b, 0, row);
            for (int v = 0; v < V; v++) cached[((size_t)b * LEN + t) * V + v] = row[v];
        }
    }
    double mabs, rel = rel_err(cached, full, (size_t)BATCH * LEN * V, &mabs);
    double tol = sizeof(floatX) == 8 ? 1e-12 : 1e-5;
    check(rel < tol, "%-9s cached decoding = full forward over %d positions (rel %.1e, max abs %.1e)", pe_name(pe), LEN, rel, mabs);
    kvcache_free(&kv);
    free(full); free(cached); free(row); free(prefix);
    model_free(&m);
}

static void kv_bytes(void) {
    size_t bytes[3];
    int pes[3] = {PE_ROPE, PE_ROPEPP_EH, PE_ROPEPP_EC};
    for (int i = 0; i < 3; i++) {
        Config c = tiny(pes[i]);
        c.yarn_factor = 1.0; c.ntk_factor = 1.0;
        Model m;
        model_init(&m, &c, INIT_TORCH_DEFAULT, 1);
        KVCache kv;
        kvcache_init(&kv, &m, 3, 100);
        bytes[i] = kv.bytes;
        kvcache_free(&kv);
        model_free(&m);
    }
    check(2 * bytes[1] == bytes[0], "KV cache: ropepp_eh %zu bytes = 1/2 of rope %zu", bytes[1], bytes[0]);
    check(bytes[2] == bytes[0], "KV cache: ropepp_ec %zu bytes = rope %zu", bytes[2], bytes[0]);
}

/* Greedy and sampled decoding through the device loop, with and without a graph, against the host loop. Greedy
   must match exactly (the same kernels on the same inputs give the same logits; argmax takes the first maximum).
   Sampled: the same draws from the same RNG state, so the same tokens except where a uniform lands within rounding
   of a cumulative-probability boundary (~1e-16 per draw; 12 draws per case here). */
enum { PROMPT = 5, STEPS = LEN - PROMPT };
static void device_loop(int pe, const Sampler *s, int use_graph, uint64_t seed, int *out) {
    Config c = tiny(pe);
    Model m;
    model_init(&m, &c, INIT_TORCH_DEFAULT, 7 + pe);
    int prompt[BATCH * PROMPT];
    for (int i = 0; i < BATCH * PROMPT; i++) prompt[i] = (i * 3 + 1) % V;
    KVCache kv;
    kvcache_init(&kv, &m, BATCH, LEN);
    kvcache_seed(&kv, seed);
    model_decode(&m, &kv, prompt, PROMPT);
    model_sample(&m, &kv, PROMPT - 1, s);
    model_tokens_to_host(&m, &kv, out);
    for (int i = 1; i < STEPS; i++) {
        model_decode_next(&m, &kv, s, use_graph);
        model_tokens_to_host(&m, &kv, out + i * BATCH);
    }
#ifdef ROPEPP_CUDA
    if (use_graph) check(kv.graph != NULL, "%-9s the decode step was captured into a graph and replayed", pe_name(pe));
#endif
    kvcache_free(&kv);
    model_free(&m);
}

static void host_loop(int pe, const Sampler *s, uint64_t seed, int *out) {
    Config c = tiny(pe);
    Model m;
    model_init(&m, &c, INIT_TORCH_DEFAULT, 7 + pe);
    int prompt[BATCH * PROMPT], tok[BATCH];
    for (int i = 0; i < BATCH * PROMPT; i++) prompt[i] = (i * 3 + 1) % V;
    KVCache kv;
    kvcache_init(&kv, &m, BATCH, LEN);
    float row[V];
    Rng rng = {seed};
    model_decode(&m, &kv, prompt, PROMPT);
    for (int i = 0; i < STEPS; i++) {
        for (int b = 0; b < BATCH; b++) {
            model_logits_row(&m, b, i == 0 ? PROMPT - 1 : 0, row);
            tok[b] = out[i * BATCH + b] = sample_token(row, V, s->temperature, s->top_k, s->top_p, &rng);
        }
        if (i + 1 < STEPS) model_decode(&m, &kv, tok, 1);
    }
    kvcache_free(&kv);
    model_free(&m);
}

static void device_decoding(int pe) {
    Sampler greedy = {0.0, 0, 1.0, 0}, sampled = {0.9, 5, 0.95, 0};
    const Sampler *ss[2] = {&greedy, &sampled};
    for (int k = 0; k < 2; k++) {
        int host[STEPS * BATCH], plain[STEPS * BATCH], graph[STEPS * BATCH];
        host_loop(pe, ss[k], 99, host);
        device_loop(pe, ss[k], 0, 99, plain);
        device_loop(pe, ss[k], 1, 99, graph);
        int same_host = memcmp(host, plain, sizeof(host)) == 0, same_graph = memcmp(plain, graph, sizeof(plain)) == 0;
        check(same_host, "%-9s %s: device loop = host loop (%d tokens)", pe_name(pe), k ? "sampled" : "greedy", STEPS * BATCH);
        check(same_graph, "%-9s %s: graph-replayed steps = uncaptured steps", pe_name(pe), k ? "sampled" : "greedy");
    }
}

/* sample_forward on backend logits against sample_token row by row, 40 steps of 3 rows per setting; for greedy one
   row holds a tie for the maximum (the first index wins). Random logits otherwise: no ties in the probabilities,
   whose order qsort leaves open. Exact agreement expected, as above. */
static void sampler_vs_cpu(void) {
    enum { SB = 3, SV = 1000, DRAWS = 40 };
    Sampler set[5] = {{0.0, 0, 1.0, 0}, {1.0, 0, 1.0, 0}, {0.7, 50, 1.0, 0}, {1.3, 0, 0.8, 0}, {1.0, 20, 0.5, 0}};
    float *host = (float *)mallocCheck((size_t)SB * SV * sizeof(float));
    floatX *xh = (floatX *)mallocCheck((size_t)SB * SV * sizeof(floatX));
    floatX *dl = (floatX *)backend_malloc((size_t)SB * SV * sizeof(floatX));
    int *dtok = (int *)backend_malloc(SB * sizeof(int));
    uint64_t *drng = (uint64_t *)backend_malloc(sizeof(uint64_t));
    Rng data = {5};
    for (int k = 0; k < 5; k++) {
        Rng cpu = {1000 + k};
        backend_from_host(drng, &cpu.state, sizeof(uint64_t));
        int agree = 0, total = 0;
        for (int it = 0; it < DRAWS; it++) {
            for (int i = 0; i < SB * SV; i++) host[i] = (float)(8.0 * rng_uniform(&data) - 4.0);
            if (set[k].temperature == 0.0) host[SV + 17] = host[SV + 900] = 9.0f;   /* row 1: a tie at the maximum */
            for (int i = 0; i < SB * SV; i++) xh[i] = (floatX)host[i];
            backend_from_host(dl, xh, (size_t)SB * SV * sizeof(floatX));
            sample_forward(dtok, drng, dl, SV, SB, SV, set[k].temperature, set[k].top_k, set[k].top_p);
            int tok[SB];
            backend_to_host(tok, dtok, sizeof(tok));
            for (int b = 0; b < SB; b++) {
                int want = sample_token(host + (size_t)b * SV, SV, set[k].temperature, set[k].top_k, set[k].top_p, &cpu);
                agree += want == tok[b];
                total++;
            }
        }
        uint64_t state;
        backend_to_host(&state, drng, sizeof(state));
        check(agree == total && state == cpu.state, "sample_forward = sample_token (temperature %.1f, top-k %d, top-p %.2f): %d/%d tokens, RNG state %s",
              set[k].temperature, set[k].top_k, set[k].top_p, agree, total, state == cpu.state ? "equal" : "DIFFERS");
    }
    backend_free(dl); backend_free(dtok); backend_free(drng);
    free(host); free(xh);
}

int main(void) {
    printf("test_infer (%s): KV-cache decoding against the full forward\n", backend_name());
    for (int pe = 0; pe < PE_COUNT; pe++) cached_vs_full(pe);
    kv_bytes();
    for (int pe = 0; pe < PE_COUNT; pe++) device_decoding(pe);
    sampler_vs_cpu();
    return tu_finish("test_infer");
}
