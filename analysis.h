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

Statistics at the unit of replication (one number per seed; docs/STATS.md has the rule and why):
  stat_betai(a, b, x)              regularized incomplete beta I_x(a, b) (continued fraction, modified Lentz)
  stat_t_cdf(t, df)                P(T <= t), T ~ Student t with df degrees of freedom
  stat_t_quantile(p, df)           t with P(T <= t) = p (bisection on stat_t_cdf)
  stat_sign_flip(d, n, null)       exact randomization test: P over the 2^n sign patterns of d_i - null that
                                   |sum| is at least the observed one (two-sided); n <= 20
  stat_holm(p, m, adj)             Holm's step-down adjusted p values
  stat_seeds(d, n, null, m, s)     mean, sd, 95% CI, paired t-test against null, sign-flip p (n >= 6) and the
                                   minimum detectable effect of n seeds
  claims_decide(c, nc, alpha)      the report's rule over every claim: Holm over the tested ones, then
                                   supported / refuted / inconclusive
  ppl_growth(...)                  paper Fig. 6: loss of the bands past T minus the loss of [T/2, T)

Attention measures on one row p[0..t] of a causal attention matrix (query t, keys j <= t, sum 1), window T,
position 0 the document's BOS (paper Fig. 5, measured on BOS-started windows):
  attn_sink_mass(p, t)             p[0], the mass on the first position (the attention sink)
  attn_first_k_mass(p, t, k)       p[0] + ... + p[k-1] (keys up to t), the mass on the first k positions, BOS
                                   included (paper Fig. 5, "initial positions"; k = ATTN_FIRST_K)
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

Characteristic curves (paper Eq. 5 and 7; eval curves):
  characteristic_curves(&c_re, &c_im, dt, HD, base)   mean_j cos and sin of theta_j dt, theta_j = base^(-2j/HD)
  cisi(x, &ci, &si)               the cosine and sine integrals Ci(x), Si(x), x > 0 (their large-HD limit)
*/
#ifndef ROPEPP_ANALYSIS_H
#define ROPEPP_ANALYSIS_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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

/* Regularized incomplete beta I_x(a, b), a, b > 0, x in [0, 1]: the continued fraction of Numerical Recipes
   (2nd ed., Sec. 6.4, betacf) evaluated by the modified Lentz method, on the side of x where it converges fast. */
static inline double stat_betacf(double a, double b, double x) {
    const double tiny = 1e-300;
    double qab = a + b, qap = a + 1.0, qam = a - 1.0, c = 1.0, d = 1.0 - qab * x / qap;
    if (fabs(d) < tiny) d = tiny;
    d = 1.0 / d;
    double h = d;
    for (int m = 1; m <= 1000; m++) {
        double m2 = 2.0 * m, aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d; if (fabs(d) < tiny) d = tiny;
        c = 1.0 + aa / c; if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d; h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d; if (fabs(d) < tiny) d = tiny;
        c = 1.0 + aa / c; if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1.0) < 1e-15) break;
    }
    return h;
}
static inline double stat_betai(double a, double b, double x) {
    if (x <= 0.0) return 0.0;
    if (x >= 1.0) return 1.0;
    double front = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x));
    if (x < (a + 1.0) / (a + b + 2.0)) return front * stat_betacf(a, b, x) / a;
    return 1.0 - front * stat_betacf(b, a, 1.0 - x) / b;
}

/* Student t CDF: P(|T| > |t|) = I_{df / (df + t^2)}(df / 2, 1 / 2), split by the sign of t. */
static inline double stat_t_cdf(double t, double df) {
    if (isinf(t)) return t > 0 ? 1.0 : 0.0;
    double tail = 0.5 * stat_betai(0.5 * df, 0.5, df / (df + t * t));
    return t > 0 ? 1.0 - tail : tail;
}

/* The t with stat_t_cdf(t, df) = p, 0 < p < 1: bisection (the CDF is monotone), to 1e-12 relative. */
static inline double stat_t_quantile(double p, double df) {
    if (p == 0.5) return 0.0;
    if (p < 0.5) return -stat_t_quantile(1.0 - p, df);
    double lo = 0.0, hi = 1.0;
    while (stat_t_cdf(hi, df) < p && hi < 1e300) hi *= 2.0;
    for (int i = 0; i < 400 && hi - lo > 1e-12 * hi; i++) {
        double mid = 0.5 * (lo + hi);
        if (stat_t_cdf(mid, df) < p) lo = mid; else hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* Exact sign-flip (randomization) test of H0: the d_i - null are symmetric around 0: the share of the 2^n sign
   patterns whose |sum| reaches the observed |sum| (two-sided; the observed pattern counts, so p >= 2 / 2^n).
   n <= 20 (2^20 patterns); NaN beyond. */
static inline double stat_sign_flip(const double *d, int n, double null) {
    if (n < 1 || n > 20) return NAN;
    double obs = 0.0, scale = 0.0;
    for (int i = 0; i < n; i++) { obs += d[i] - null; scale += fabs(d[i] - null); }
    obs = fabs(obs);
    long hit = 0, total = 1L << n;
    for (long s = 0; s < total; s++) {
        double sum = 0.0;
        for (int i = 0; i < n; i++) sum += (s >> i & 1) ? -(d[i] - null) : d[i] - null;
        if (fabs(sum) >= obs - 1e-12 * scale) hit++;   /* ties in floating point count as at least as extreme */
    }
    return (double)hit / (double)total;
}

/* Holm's step-down adjustment (Holm 1979) of m p values: sorted ascending p_(1) <= ... <= p_(m), adj_(i) =
   max over j <= i of min(1, (m - j + 1) p_(j)); rejecting where adj < alpha is Holm's procedure at level alpha.
   adj: (m) out, in the order of p. */
static inline void stat_holm(const double *p, int m, double *adj) {
    if (m <= 0) return;
    int *order = (int *)malloc((size_t)m * sizeof(int));
    if (order == NULL) { fprintf(stderr, "error: stat_holm: out of memory for %d p values\n", m); exit(1); }
    for (int i = 0; i < m; i++) order[i] = i;
    for (int i = 1; i < m; i++)   /* insertion sort of the indices by p */
        for (int j = i; j > 0 && p[order[j]] < p[order[j - 1]]; j--) { int t = order[j]; order[j] = order[j - 1]; order[j - 1] = t; }
    double run = 0.0;
    for (int i = 0; i < m; i++) {
        double a = fmin(1.0, (double)(m - i) * p[order[i]]);
        run = fmax(run, a);
        adj[order[i]] = run;
    }
    free(order);
}

/* One claim's seeds: d[0..n) one number per seed, oriented so that d > null is the paper's direction. */
typedef struct {
    int n;
    double mean, sd, lo, hi;   /* mean, sample sd over seeds, 95% Student t CI of the mean */
    double t, p;               /* paired t-test of H0: mean = null (df n - 1), two-sided p */
    double p_flip;             /* exact sign-flip p, two-sided (n >= 6; else NaN) */
    double mde_m, mde_1;       /* smallest true effect detected with 80% power by the two-sided t-test at alpha / m
                                  (Holm's first, most stringent step) and at alpha: (t_{1-a/2} + t_{0.8}) sd / sqrt(n),
                                  df n - 1 (the usual approximation to the noncentral t); NaN for n < 3 */
} SeedStat;

/* The across-seed statistics of d (n values) against null; m claims share Holm's correction at level alpha. */
static inline void stat_seeds(const double *d, int n, double null, int m, double alpha, SeedStat *s) {
    double sum = 0.0, ss = 0.0;
    for (int i = 0; i < n; i++) sum += d[i];
    s->n = n;
    s->mean = n > 0 ? sum / n : NAN;
    for (int i = 0; i < n; i++) ss += (d[i] - s->mean) * (d[i] - s->mean);
    s->sd = n > 1 ? sqrt(ss / (n - 1)) : NAN;
    s->lo = s->hi = s->t = s->p = s->mde_m = s->mde_1 = NAN;
    s->p_flip = n >= 6 ? stat_sign_flip(d, n, null) : NAN;
    if (n < 2) return;
    double se = s->sd / sqrt((double)n), df = n - 1, q = stat_t_quantile(0.975, df);
    s->lo = s->mean - q * se;
    s->hi = s->mean + q * se;
    if (se > 0.0) {
        s->t = (s->mean - null) / se;
        s->p = 2.0 * stat_t_cdf(-fabs(s->t), df);
    } else {   /* every seed the same number: exact */
        s->t = s->mean == null ? 0.0 : (s->mean > null ? INFINITY : -INFINITY);
        s->p = s->mean == null ? 1.0 : 0.0;
    }
    if (n >= 3) {
        double pw = stat_t_quantile(0.8, df);
        s->mde_m = (stat_t_quantile(1.0 - alpha / (2.0 * (m > 0 ? m : 1)), df) + pw) * se;
        s->mde_1 = (stat_t_quantile(1.0 - alpha / 2.0, df) + pw) * se;
    }
}

/* The report's rule (docs/STATS.md). Each claim: kind, null (0 for "better", -margin for "not worse by more than
   margin"), its seeds d (oriented: d > null = the paper's direction). Tested claims (CLAIM_TEST with >= 2 seeds)
   share Holm's correction at alpha; supported = Holm-adjusted p < alpha and mean > null, refuted = the same with
   mean < null, inconclusive otherwise. Descriptive and unmeasurable claims get no verdict and do not count in m. */
enum { CLAIM_TEST = 0, CLAIM_DESCRIBE = 1, CLAIM_UNMEASURABLE = 2 };
enum { VERDICT_NONE = 0, VERDICT_INCONCLUSIVE = 1, VERDICT_SUPPORTED = 2, VERDICT_REFUTED = 3 };
typedef struct {
    int kind;
    double null;
    const double *d;   /* (n) one number per seed */
    int n;
    SeedStat s;        /* out */
    double p_holm;     /* out: Holm-adjusted p (NaN if not tested) */
    int verdict;       /* out: VERDICT_* */
} Claim;
static inline int claims_decide(Claim *c, int nc, double alpha) {
    int m = 0;
    for (int i = 0; i < nc; i++) if (c[i].kind == CLAIM_TEST && c[i].n >= 2) m++;
    double *p = (double *)calloc((size_t)m + 1, sizeof(double)), *adj = (double *)calloc((size_t)m + 1, sizeof(double));
    int *idx = (int *)calloc((size_t)m + 1, sizeof(int)), k = 0;
    if (p == NULL || adj == NULL || idx == NULL) { fprintf(stderr, "error: claims_decide: out of memory for %d claims\n", m); exit(1); }
    for (int i = 0; i < nc; i++) {
        stat_seeds(c[i].d, c[i].n, c[i].null, m, alpha, &c[i].s);
        c[i].p_holm = NAN;
        c[i].verdict = c[i].kind == CLAIM_TEST ? VERDICT_INCONCLUSIVE : VERDICT_NONE;
        if (c[i].kind == CLAIM_TEST && c[i].n >= 2) { idx[k] = i; p[k++] = c[i].s.p; }
    }
    stat_holm(p, k, adj);
    for (int j = 0; j < k; j++) {
        Claim *ci = &c[idx[j]];
        ci->p_holm = adj[j];
        if (adj[j] < alpha) ci->verdict = ci->s.mean > ci->null ? VERDICT_SUPPORTED : VERDICT_REFUTED;
    }
    free(p); free(adj); free(idx);
    return m;
}

/* The mass on position 0 of a row (keys 0..t). */
static inline double attn_sink_mass(const float *p, int t) {
    (void)t;
    return p[0];
}

/* The mass on the first k positions of a row, BOS included: p[0] + ... + p[min(k, t + 1) - 1]. k = 4 in eval attn:
   StreamingLLM (Xiao et al. 2024) found four initial tokens enough to hold the attention sink. */
enum { ATTN_FIRST_K = 4 };
static inline double attn_first_k_mass(const float *p, int t, int k) {
    double s = 0.0;
    for (int j = 0; j < k && j <= t; j++) s += p[j];
    return s;
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
/* Paper Fig. 6, how fast the loss grows past the training length T, from eval ppl's position bands at one eval
   length: the token-weighted mean loss of the bands that start at or after T, minus the loss of the band [T/2, T).
   Bands i: [start[i], end[i]) with mean loss[i] over tokens[i] targets. NaN when no band starts at T or later or
   no band is exactly [T/2, T). Lower = slower growth. */
static inline double ppl_growth(const double *start, const double *end, const double *loss, const double *tokens,
                                int nb, double T) {
    double past = 0.0, past_n = 0.0, ref = NAN;
    for (int i = 0; i < nb; i++) {
        if (start[i] >= T) { past += loss[i] * tokens[i]; past_n += tokens[i]; }
        if (start[i] == T / 2 && end[i] == T) ref = loss[i];
    }
    if (!(past_n > 0.0) || isnan(ref)) return NAN;
    return past / past_n - ref;
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
/* Paper analyses. Characteristic curves (Eq. 5 and 7): the mean over frequency pairs j of cos and sin of
   theta_j * dt. For large HD they approach (Ci(dt) - Ci(dt/base)) / ln(base) and (Si(dt) - Si(dt/base)) / ln(base);
   cisi gives the cosine and sine integrals Ci(x), Si(x) for x > 0. */
static inline void characteristic_curves(double *c_re, double *c_im, double dt, int HD, double base) {
    /* Paper Eq. 5 and 7: c_Re(dt) = mean_j cos(theta_j dt), c_Im(dt) = mean_j sin(theta_j dt), theta_j = base^(-2j/HD).
       With x = 2j/HD uniform on [0, 1) and u = dt base^(-x): mean_j f(theta_j dt) ~ integral_0^1 f(dt base^-x) dx
       = (1/ln base) integral_{dt/base}^{dt} f(u)/u du, which is (Ci(dt) - Ci(dt/base)) / ln(base) for cos
       and (Si(dt) - Si(dt/base)) / ln(base) for sin. */
    double sr = 0.0, si = 0.0;
    for (int j = 0; j < HD / 2; j++) {
        double th = pow(base, -2.0 * j / (double)HD);
        sr += cos(th * dt);
        si += sin(th * dt);
    }
    *c_re = sr / (HD / 2);
    *c_im = si / (HD / 2);
}

static inline void cisi(double x, double *ci, double *si) {
    /* Ci(x) = gamma + ln x + sum_{k>=1} (-x^2)^k / (2k (2k)!),  Si(x) = sum_{k>=0} (-1)^k x^(2k+1) / ((2k+1)(2k+1)!)
       for x <= 4; beyond, the continued fraction of E1(ix) = -Ci(x) + i (Si(x) - pi/2) (modified Lentz). */
    const double euler = 0.57721566490153286061;
    if (x <= 4.0) {
        double sum_c = 0.0, sum_s = 0.0, term = 1.0;   /* term = x^n / n! */
        for (int n = 1; n < 80; n++) {
            term *= x / n;
            if (n % 2 == 1) sum_s += ((n / 2) % 2 == 0 ? 1.0 : -1.0) * term / n;
            else sum_c += ((n / 2) % 2 == 0 ? 1.0 : -1.0) * term / n;
            if (term < 1e-18) break;
        }
        *ci = euler + log(x) + sum_c;
        *si = sum_s;
        return;
    }
    /* b = 1 + i x; h = 1/b; iterate */
    double br = 1.0, bi = x, cr = 1e300, ci_ = 0.0;
    double den = br * br + bi * bi, dr = br / den, di = -bi / den, hr = dr, hi = di;
    for (int i = 2; i < 1000; i++) {
        double an = -(double)(i - 1) * (i - 1);
        br += 2.0;
        /* d = 1 / (an d + b) */
        double tr = an * dr + br, ti = an * di + bi;
        den = tr * tr + ti * ti; dr = tr / den; di = -ti / den;
        /* c = b + an / c */
        den = cr * cr + ci_ * ci_;
        double qr = an * cr / den, qi = -an * ci_ / den;
        cr = br + qr; ci_ = bi + qi;
        double delr = cr * dr - ci_ * di, deli = cr * di + ci_ * dr;
        double nhr = hr * delr - hi * deli, nhi = hr * deli + hi * delr;
        hr = nhr; hi = nhi;
        if (fabs(delr - 1.0) + fabs(deli) < 1e-16) break;
    }
    /* h *= (cos x - i sin x) */
    double cs = cos(x), sn = sin(x);
    double fr = hr * cs + hi * sn, fi = hi * cs - hr * sn;
    *ci = -fr;
    *si = M_PI / 2.0 + fi;
}

#endif
