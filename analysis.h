/*
analysis.h — the statistics and attention measures of the comparison (eval's attn and noise modes, compare.sh's
verdicts), as plain functions on numbers and on one attention row, so that each is tested on hand-computed values
(tests/test_analysis.c). Header-only: include it after ropepp.h (no model code here).

Statistics (two-sided, exact):
  stat_wilson(k, n, &lo, &hi)      95% Wilson score interval of a proportion k/n (z = 1.959964)
  stat_sign_test(n_pos, n_neg)     sign test: P of a split at least this uneven under Binomial(n_pos + n_neg, 1/2),
                                   two-sided (2 x the smaller tail, capped at 1); ties are dropped by the caller
  stat_mcnemar(b, c)               exact McNemar for paired right/wrong outcomes: b = right in arm 1 only, c = right
                                   in arm 2 only; the sign test on the discordant pairs (Binomial(b + c, 1/2))

Attention measures on one row p[0..t] of a causal attention matrix (query t, keys j <= t, sum 1), window T,
position 0 the document's BOS (paper Fig. 5, measured on BOS-started windows):
  attn_sink_mass(p, t)             p[0], the mass on the first position (the attention sink)
  attn_far_ratio(p, t, T)          how far the non-BOS mass reaches: the share of the non-BOS mass (keys 1..t) on
                                   keys more than T/4 before the query (t - j > T/4), divided by the share uniform
                                   attention over keys 1..t would put there; 1 = as uniform, > 1 more global,
                                   < 1 more local. NaN if no key is that far or the non-BOS mass is 0.
  attn_top_key(p, t)               argmax_j p[j] (the lowest j on ties): for the retrieval score, the fraction of
                                   answer tokens whose top key is the needle token being copied
  copy_source(tokens, a, n)        where the answer tokens[a .. a+n) stands earlier in the sequence (the needle):
                                   the start of its last occurrence before a, or -1; answer token i is copied from
                                   copy_source + i, the key the query predicting it (position a - 1 + i) should find

Retrieval without task training (eval ppl --repeat):
  far_repeat_mask(tok, n, m, D, mask)  mask[i] = 1 when token i ends an m-gram tok[i-m+1 .. i] whose most recent
                                   earlier occurrence ends more than D tokens before i (ends at j < i - D, no
                                   occurrence ending in [i - D, i)): token i is then copyable from far context only
*/
#ifndef ROPEPP_ANALYSIS_H
#define ROPEPP_ANALYSIS_H
#include <math.h>

/* 95% Wilson score interval for k successes out of n (n <= 0: [0, 1]). */
static inline void stat_wilson(double k, double n, double *lo, double *hi) {
    if (n <= 0) { *lo = 0; *hi = 1; return; }
    double z = 1.959964, p = k / n, den = 1 + z * z / n;
    double mid = (p + z * z / (2 * n)) / den, half = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den;
    *lo = fmax(0.0, mid - half);
    *hi = fmin(1.0, mid + half);
}

/* Two-sided exact sign test: 2 * P(X <= min(n_pos, n_neg)), X ~ Binomial(n_pos + n_neg, 1/2), capped at 1; 1 when
   n = 0. The terms are summed in log space, so n up to millions is fine. */
static inline double stat_sign_test(long n_pos, long n_neg) {
    long n = n_pos + n_neg, k = n_pos < n_neg ? n_pos : n_neg;
    if (n <= 0) return 1.0;
    double tail = 0.0;
    for (long i = 0; i <= k; i++)
        tail += exp(lgamma((double)n + 1) - lgamma((double)i + 1) - lgamma((double)(n - i) + 1) - (double)n * log(2.0));
    double p = 2.0 * tail;
    return p > 1.0 ? 1.0 : p;
}

/* Exact McNemar test on paired outcomes: b pairs right only in arm 1, c right only in arm 2. */
static inline double stat_mcnemar(long b, long c) { return stat_sign_test(b, c); }

/* The mass on position 0 of a row (keys 0..t). */
static inline double attn_sink_mass(const float *p, int t) {
    (void)t;
    return p[0];
}

/* Share of the non-BOS mass on keys with t - j > T/4, over the share uniform attention on keys 1..t puts there. */
static inline double attn_far_ratio(const float *p, int t, int T) {
    double non_bos = 0.0, far = 0.0;
    long n_far = 0;
    for (int j = 1; j <= t; j++) {
        non_bos += p[j];
        if (4.0 * (double)(t - j) > (double)T) { far += p[j]; n_far++; }
    }
    if (n_far == 0 || t < 1 || !(non_bos > 0.0)) return NAN;
    return (far / non_bos) / ((double)n_far / (double)t);
}

/* argmax over keys 0..t of a row; the lowest index on ties. */
static inline int attn_top_key(const float *p, int t) {
    int best = 0;
    for (int j = 1; j <= t; j++) if (p[j] > p[best]) best = j;
    return best;
}

/* Start of the last occurrence of tokens[a .. a+n) that ends before a, or -1. */
static inline int copy_source(const int *tokens, int a, int n) {
    for (int s = a - n; s >= 0; s--) {
        int i = 0;
        while (i < n && tokens[s + i] == tokens[a + i]) i++;
        if (i == n) return s;
    }
    return -1;
}

/* mask[i] (i in 0..n-1) = 1 when the m-gram ending at i occurred before and its most recent occurrence ends more than
   D tokens earlier; 0 otherwise (and for i < m - 1). Occurrences may overlap. Hash table of the m-grams seen (open
   addressing, each probe checked token by token, so a hash collision never counts): O(n m) time, 2n slots. */
static inline void far_repeat_mask(const int *tok, int n, int m, int D, unsigned char *mask) {
    int cap = 2;
    while (cap < 2 * n) cap *= 2;
    int *slot = (int *)malloc(sizeof(int) * (size_t)cap);   /* the end position of the last occurrence, or -1 */
    if (slot == NULL) { fprintf(stderr, "error: out of memory\n"); exit(1); }
    for (int k = 0; k < cap; k++) slot[k] = -1;
    for (int i = 0; i < n; i++) {
        mask[i] = 0;
        if (i < m - 1) continue;
        uint64_t h = 14695981039346656037ull;   /* FNV-1a over the m tokens */
        for (int k = i - m + 1; k <= i; k++) { h ^= (uint64_t)(uint32_t)tok[k]; h *= 1099511628211ull; }
        int at = (int)(h & (uint64_t)(cap - 1));
        while (slot[at] >= 0) {
            int j = slot[at], same = 1;
            for (int k = 0; k < m && same; k++) same = tok[j - k] == tok[i - k];
            if (same) break;
            at = (at + 1) & (cap - 1);
        }
        if (slot[at] >= 0 && i - slot[at] > D) mask[i] = 1;
        slot[at] = i;
    }
    free(slot);
}
#endif
