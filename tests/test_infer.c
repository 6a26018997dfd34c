/*
test_infer — decoding with the KV cache gives the same logits as the full forward over the growing sequence,
for every position embedding (with its scaling options and the noise off), in double; and the KV cache of
RoPE++ EH is exactly half of RoPE's.

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

int main(void) {
    printf("test_infer (%s): KV-cache decoding against the full forward\n", backend_name());
    for (int pe = 0; pe < PE_COUNT; pe++) cached_vs_full(pe);
    kv_bytes();
    return tu_finish("test_infer");
}
