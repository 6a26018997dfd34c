/*
bench/attention/bench_attention.cu — times the CUDA backend's attention op alone (attention_forward and
attention_backward of ropepp.h, as the model calls them: key rotation, fused q rotation + qr/kr writes, flash
attention, lse; backward: D = rowsum(dout * out), dq with the q rotary backward, dk/dv with the key rotary backward)
on random bf16 data, causal, and prints one JSON line per (mode, T). bench_attention.py runs it beside PyTorch SDPA.

Build (repository root, after `make ropepp_cuda.o`):
  nvcc -O3 -std=c++17 -I. -gencode=arch=compute_90,code=sm_90 bench/attention/bench_attention.cu ropepp_cuda.o \
       -o bench_attention -lcublas -lcublasLt
Run:  ./bench_attention [--tokens 16384] [--T 1024,2048,4096,8192,16384] [--modes rope,ropepp_eh,ropepp_ec]
                        [--hd 128] [--iters 30] [--warmup 5]
      B = tokens / T. Modes: rope = 8 q heads, 4 kv heads; ropepp_eh = 4 q heads -> 8 attention heads, 2 kv heads;
      ropepp_ec = 8 q heads -> 16 attention heads, 4 kv heads (the config's H 8, KV 4, as the paper's 376M model).
      ROPEPP_ATTN_SIMT=1 in the environment times the fp32-math fallback kernels instead; ROPEPP_ATTN_DKV_BK=128
      and ROPEPP_ATTN_FWD_BM=64 select the other block sizes (defaults: 64-key dk/dv blocks, 128-row forward blocks).
*/
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <vector>
#include <algorithm>
#include <string>
#ifndef ROPEPP_CUDA
#define ROPEPP_CUDA
#endif
#include "ropepp.h"

/* ropepp_cuda.o calls the header's malloc_check; this program has no ROPEPP_IMPLEMENTATION */
extern "C" void *malloc_check(size_t size, const char *file, int line) {
    void *p = malloc(size);
    if (p == NULL) { fprintf(stderr, "error: malloc of %zu bytes failed at %s:%d\n", size, file, line); exit(1); }
    return p;
}

static void ck(cudaError_t e, const char *what) {
    if (e != cudaSuccess) { fprintf(stderr, "error: %s: %s\n", what, cudaGetErrorString(e)); exit(1); }
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return ((z >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
static floatX *rand_x(size_t n, double scale) {
    std::vector<floatX> h(n);
    for (size_t i = 0; i < n; i++) {
        double u1 = urand(), u2 = urand();
        h[i] = __float2bfloat16((float)(scale * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2)));
    }
    floatX *d = (floatX *)backend_malloc(n * sizeof(floatX));
    backend_from_host(d, h.data(), n * sizeof(floatX));
    return d;
}

static std::vector<int> parse_list(const char *s) {
    std::vector<int> v;
    while (*s) { v.push_back(atoi(s)); const char *c = strchr(s, ','); if (!c) break; s = c + 1; }
    return v;
}

static double median(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* defined in ropepp_cuda.cu: 1 when attention_forward and attention_backward run the sm_90a kernels (cuda/attention_sm90.cuh) here */
int attention_sm90_active(void);

int main(int argc, char **argv) {
    int tokens = 16384, HD = 128, iters = 30, warmup = 5;
    std::vector<int> Ts = {1024, 2048, 4096, 8192, 16384};
    std::string modes = "rope,ropepp_eh,ropepp_ec";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--T") && i + 1 < argc) Ts = parse_list(argv[++i]);
        else if (!strcmp(argv[i], "--modes") && i + 1 < argc) modes = argv[++i];
        else if (!strcmp(argv[i], "--hd") && i + 1 < argc) HD = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
        else { fprintf(stderr, "usage: %s [--tokens N] [--T list] [--modes list] [--hd HD] [--iters N] [--warmup N]\n", argv[0]); return 2; }
    }
    const char *simt = getenv("ROPEPP_ATTN_SIMT");
    const char *bk = getenv("ROPEPP_ATTN_DKV_BK");
    std::string impl_s = (simt && simt[0] && simt[0] != '0') ? "ropepp_simt" : "ropepp_tc";
    if (bk && bk[0]) impl_s += std::string("_bk") + bk;   /* dk/dv block size forced (64 or 128 keys) */
    const char *fbm = getenv("ROPEPP_ATTN_FWD_BM");
    if (fbm && fbm[0]) impl_s += std::string("_fwd") + fbm;   /* forward block rows forced (64 or 128) */
    const char *sm90 = getenv("ROPEPP_ATTN_SM90");
    if (sm90 && sm90[0] == '0') impl_s += "_mma";   /* Hopper kernels turned off: the mma.sync ones */
    const char *impl = impl_s.c_str();
    fprintf(stderr, "attention forward, dk/dv and dq on the Hopper kernels (wgmma + TMA): %s\n", attention_sm90_active() ? "yes" : "no");
    cudaEvent_t e0, e1;
    ck(cudaEventCreate(&e0), "event");
    ck(cudaEventCreate(&e1), "event");
    std::vector<std::string> ml;
    for (size_t p = 0; p < modes.size();) {
        size_t c = modes.find(',', p);
        if (c == std::string::npos) c = modes.size();
        ml.push_back(modes.substr(p, c - p));
        p = c + 1;
    }
    for (const std::string &mode : ml) {
        int HQ, KVH, imag;   /* H 8, KV 4: EH projects 4 and 2, EC attends with 16 (ropepp.h config_dims) */
        if (mode == "rope") { HQ = 8; KVH = 4; imag = 0; }
        else if (mode == "ropepp_eh") { HQ = 4; KVH = 2; imag = 1; }
        else if (mode == "ropepp_ec") { HQ = 8; KVH = 4; imag = 1; }
        else { fprintf(stderr, "unknown mode %s\n", mode.c_str()); return 2; }
        const int NA = HQ * (imag ? 2 : 1);
        for (int T : Ts) {
            const int B = tokens / T > 0 ? tokens / T : 1, half = HD / 2;
            /* RoPE tables (theta_j = 10000^(-2j/HD)), one table for all heads */
            std::vector<float> cs((size_t)T * half), sn((size_t)T * half);
            for (int t = 0; t < T; t++)
                for (int j = 0; j < half; j++) {
                    double th = pow(10000.0, -2.0 * j / HD);
                    cs[(size_t)t * half + j] = (float)cos(t * th);
                    sn[(size_t)t * half + j] = (float)sin(t * th);
                }
            float *dcos = (float *)backend_malloc(cs.size() * 4), *dsin = (float *)backend_malloc(sn.size() * 4);
            backend_from_host(dcos, cs.data(), cs.size() * 4);
            backend_from_host(dsin, sn.data(), sn.size() * 4);
            PosEmb P;
            memset(&P, 0, sizeof(P));
            P.rot = HD; P.imag = imag; P.per_group = 0; P.T_table = T;
            P.cos = dcos; P.sin = dsin; P.alibi = NULL; P.noise_target = NOISE_NONE;
            const size_t N = (size_t)B * T, QKV = (size_t)(HQ + 2 * KVH) * HD;
            floatX *qkv = rand_x(N * QKV, 1.0), *dout = rand_x(N * NA * HD, 1.0);
            floatX *out = (floatX *)backend_malloc(N * NA * HD * sizeof(floatX));
            floatX *qr = (floatX *)backend_malloc(N * NA * HD * sizeof(floatX));
            floatX *kr = (floatX *)backend_malloc(N * KVH * HD * sizeof(floatX));
            floatX *dqkv = (floatX *)backend_malloc(N * QKV * sizeof(floatX));
            backend_zero(dqkv, N * QKV * sizeof(floatX));
            float *stats = (float *)backend_malloc(attention_softmax_saved_size(B, T, NA) * sizeof(float));
            for (int i = 0; i < warmup; i++) {
                attention_forward(out, qr, kr, stats, qkv, &P, B, T, HQ, KVH, HD);
                attention_backward(dqkv, dout, qr, kr, stats, qkv, out, &P, B, T, HQ, KVH, HD);
            }
            ck(cudaDeviceSynchronize(), "warmup");
            std::vector<float> tf, tb;
            for (int i = 0; i < iters; i++) {
                ck(cudaEventRecord(e0), "record");
                attention_forward(out, qr, kr, stats, qkv, &P, B, T, HQ, KVH, HD);
                ck(cudaEventRecord(e1), "record");
                ck(cudaEventSynchronize(e1), "sync");
                float ms;
                ck(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
                tf.push_back(ms);
            }
            for (int i = 0; i < iters; i++) {
                ck(cudaEventRecord(e0), "record");
                attention_backward(dqkv, dout, qr, kr, stats, qkv, out, &P, B, T, HQ, KVH, HD);
                ck(cudaEventRecord(e1), "record");
                ck(cudaEventSynchronize(e1), "sync");
                float ms;
                ck(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
                tb.push_back(ms);
            }
            ck(cudaGetLastError(), "kernels");
            /* a finite output (the tests check the values) */
            std::vector<floatX> ho(NA * HD);
            backend_to_host(ho.data(), out + (N - 1) * NA * HD, ho.size() * sizeof(floatX));
            bool finite = true;
            for (auto &x : ho) finite = finite && std::isfinite(__bfloat162float(x));
            const double flops = 4.0 * B * NA * (double)T * T * HD / 2.0;
            const double mf = median(tf), mb = median(tb);
            printf("{\"impl\": \"%s\", \"mode\": \"%s\", \"B\": %d, \"T\": %d, \"HQ\": %d, \"KVH\": %d, \"NA\": %d, \"HD\": %d, "
                   "\"iters\": %d, \"fwd_ms\": %.5f, \"bwd_ms\": %.5f, \"fwd_tflops\": %.2f, \"bwd_tflops\": %.2f, "
                   "\"fwd_ms_min\": %.5f, \"bwd_ms_min\": %.5f, \"finite\": %s}\n",
                   impl, mode.c_str(), B, T, HQ, KVH, NA, HD, iters, mf, mb, flops / mf * 1e-9, 2.5 * flops / mb * 1e-9,
                   *std::min_element(tf.begin(), tf.end()), *std::min_element(tb.begin(), tb.end()),
                   finite ? "true" : "false");
            fflush(stdout);
            backend_free(qkv); backend_free(dout); backend_free(out); backend_free(qr); backend_free(kr);
            backend_free(dqkv); backend_free(stats); backend_free(dcos); backend_free(dsin);
        }
    }
    return 0;
}
