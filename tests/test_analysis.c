/*
test_analysis.c — analysis.h against values computed by hand: the Wilson interval, the exact sign test and McNemar
test, the Student t distribution (published tables, scipy), Holm, the sign-flip test, the report's rule on both sides
of a non-inferiority margin and on simulated seeds with no true effect, and each attention and growth measure on
hand-built rows and bands whose answer is known. One line per check, then
"test_analysis: N passed, M failed".

Build: make tests/test_analysis (gcc -std=c11 -O2 -I. tests/test_analysis.c -o tests/test_analysis -lm)
*/
#pragma GCC diagnostic ignored "-Wunknown-pragmas"
#define ROPEPP_IMPLEMENTATION
#include "ropepp.h"
#include "analysis.h"
#include "testutil.h"

static int near(double a, double b, double tol) { return fabs(a - b) <= tol; }

static void test_stats(void) {
    double lo, hi;
    /* 8/10: p = .8, z^2 = 3.841459, den = 1.3841459, centre 0.99207/den = 0.716741, half 0.313616/den = 0.226577 */
    stat_wilson(8, 10, &lo, &hi);
    check(near(lo, 0.490164, 2e-6) && near(hi, 0.943318, 2e-6), "Wilson 8/10 = [0.490164, 0.943318] (by hand): [%.6f, %.6f]", lo, hi);
    /* 0/10: centre = half = 0.19207/den = 0.138767 -> [0, 0.277533] */
    stat_wilson(0, 10, &lo, &hi);
    check(lo == 0.0 && near(hi, 0.277533, 2e-6), "Wilson 0/10 = [0, 0.277533]: [%.6f, %.6f]", lo, hi);
    stat_wilson(0, 0, &lo, &hi);
    check(lo == 0.0 && hi == 1.0, "Wilson of no trials is [0, 1]");
    struct { long a, b; double want; const char *how; } sign[] = {
        {9, 1, 22.0 / 1024, "2 (1 + 10) / 2^10"},
        {1, 9, 22.0 / 1024, "symmetric"},
        {12, 3, 2.0 * 576 / 32768, "2 (1 + 15 + 105 + 455) / 2^15"},
        {10, 0, 2.0 / 1024, "2 / 2^10"},
        {5, 5, 1.0, "capped at 1"},
        {0, 0, 1.0, "no pairs"},
    };
    for (int i = 0; i < 6; i++) {
        double p = stat_sign_test(sign[i].a, sign[i].b);
        check(near(p, sign[i].want, 1e-12), "sign test %ld+ %ld-: p = %.9f = %s (%.9f)", sign[i].a, sign[i].b, p, sign[i].how, sign[i].want);
    }
    double p = stat_mcnemar(10, 2);
    check(near(p, 158.0 / 4096, 1e-12), "McNemar b 10, c 2: p = %.9f = 2 (1 + 12 + 66) / 2^12", p);
    p = stat_sign_test(600, 400);
    check(p > 1e-10 && p < 1e-9, "sign test 600+ 400-: p = %.3g (normal approximation z = 6.3: about 3e-10)", p);
}


/* Student t against published table values (two-sided 0.05 critical values: t 12.706 at 1 df, 2.776 at 4, 2.571 at 5;
   e.g. any t table, such as NIST/SEMATECH e-Handbook 1.3.6.7.2), closed forms (1 df: 1/2 + atan(t)/pi; 2 df:
   1/2 + t / (2 sqrt(t^2 + 2))), and scipy 1.17.1 (scipy.stats.t.sf / .ppf, scipy.special.betainc), pasted in. */
static void test_student_t(void) {
    struct { double t, df, p2; const char *src; } tab[] = {
        {12.706, 1, 0.0500008023581, "table 12.706 at 1 df; scipy 2*t.sf = 0.0500008023581"},
        {2.776, 4, 0.05002277832, "table 2.776 at 4 df; scipy 0.05002277832"},
        {2.571, 5, 0.0499746346839, "table 2.571 at 5 df; scipy 0.0499746346839"},
        {3.0, 7, 0.019942126132, "scipy 2*t.sf(3, 7) = 0.019942126132"},
        {0.5, 10, 0.627893605743, "scipy 2*t.sf(0.5, 10) = 0.627893605743"},
    };
    for (int i = 0; i < 5; i++) {
        double p = 2.0 * stat_t_cdf(-tab[i].t, tab[i].df);
        check(near(p, tab[i].p2, 1e-9), "t %.3f at %g df: two-sided p %.10f (%s)", tab[i].t, tab[i].df, p, tab[i].src);
    }
    check(near(stat_t_cdf(1.0, 2), 0.5 + 1.0 / (2.0 * sqrt(3.0)), 1e-12), "t CDF at 2 df: 1/2 + t / (2 sqrt(t^2 + 2)) at t 1 = 0.788675");
    check(near(stat_t_cdf(-1.5, 3), 0.115291932622, 1e-10), "t CDF(-1.5, 3 df) = 0.115291932622 (scipy)");
    check(near(stat_t_cdf(2.0, 1), 0.5 + atan(2.0) / M_PI, 1e-12), "t CDF at 1 df is the Cauchy 1/2 + atan(t)/pi");
    check(near(stat_t_quantile(0.975, 4), 2.7764451052, 1e-8) && near(stat_t_quantile(0.975, 1), 12.7062047362, 1e-7) &&
          near(stat_t_quantile(0.8, 5), 0.919543780241, 1e-9) && near(stat_t_quantile(1 - 0.05 / 16, 2), 12.5897405612, 1e-7) &&
          near(stat_t_quantile(0.025, 4), -2.7764451052, 1e-8),
          "t quantiles: 0.975 at 4 df 2.7764451052, at 1 df 12.7062047362, 0.8 at 5 df 0.919543780241, 1 - 0.05/16 at 2 df 12.5897405612 (scipy t.ppf)");
    check(near(stat_betai(2.5, 3.5, 0.3), 0.296752989296, 1e-11) && near(stat_betai(0.5, 0.5, 0.9), 0.795167235301, 1e-11),
          "incomplete beta I_0.3(2.5, 3.5) = 0.296752989296, I_0.9(0.5, 0.5) = 0.795167235301 (scipy betainc; the latter = 2 asin(sqrt 0.9) / pi)");
}

static void test_seed_stats(void) {
    /* the per-seed EC - rope differences at T 512; scipy ttest_1samp: t 0.999086757800, p 0.4230013984 */
    double v2[3] = {0.81, -0.02, 0.02};
    SeedStat s;
    stat_seeds(v2, 3, 0.0, 1, 0.05, &s);
    check(near(s.t, 0.9990867578, 1e-9) && near(s.p, 0.4230013984, 1e-9), "paired t over 3 seeds: t %.10f p %.10f (scipy 0.9990867578, 0.4230013984)", s.t, s.p);
    check(isnan(s.p_flip), "no sign-flip p below 6 seeds");
    /* 6 seeds: mean 0.158333, sd 0.124164; scipy: t 3.1235807588, p 0.0261462425, CI [0.0280313427, 0.2886353239];
       minimum detectable effect (t_.975,5 + t_.8,5) sd / sqrt 6 = 0.1769133777, at alpha 0.05/4: 0.2397393357 */
    double d6[6] = {0.3, 0.1, -0.05, 0.2, 0.25, 0.15};
    stat_seeds(d6, 6, 0.0, 4, 0.05, &s);
    check(near(s.t, 3.1235807588, 1e-9) && near(s.p, 0.0261462425, 1e-9) && near(s.lo, 0.0280313427, 1e-9) && near(s.hi, 0.2886353239, 1e-9),
          "6 seeds: t %.10f p %.10f CI [%.10f, %.10f] (scipy 3.1235807588, 0.0261462425, [0.0280313427, 0.2886353239])", s.t, s.p, s.lo, s.hi);
    check(near(s.mde_1, 0.1769133777, 1e-8) && near(s.mde_m, 0.2397393357, 1e-8),
          "minimum detectable effect at 80%% power: %.10f at alpha 0.05, %.10f at 0.05/4 (scipy 0.1769133777, 0.2397393357)", s.mde_1, s.mde_m);
    /* sign flip: 5 of 6 positive, |sum| 0.95; patterns with |sum| >= 0.95: the observed one, the one flipping only
       -0.05 (sum 1.05), and their mirrors: 4 / 64 */
    check(near(s.p_flip, 4.0 / 64, 1e-12), "sign-flip p of 6 seeds with the smallest one negative: 4/64 = %.6f", s.p_flip);
    double pos6[6] = {1, 2, 3, 4, 5, 6};
    check(near(stat_sign_flip(pos6, 6, 0.0), 2.0 / 64, 1e-12), "sign-flip p of 6 positive seeds: 2/64 (the pattern and its mirror)");
    double one[6] = {-1, 2, 3, 4, 5, 6};   /* sum 19 of 21: flipping a set of size S gives 21 - 2S: |.| >= 19 for S in {0, 1, 20, 21} */
    check(near(stat_sign_flip(one, 6, 0.0), 4.0 / 64, 1e-12), "sign-flip p with -1 among 1..6: 4/64");
    check(near(stat_sign_flip(pos6, 6, 3.5), 1.0, 1e-12), "sign-flip against null 3.5 (the mean): p 1");
    double p[4] = {0.01, 0.04, 0.03, 0.005}, adj[4];
    /* sorted 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> 0.06 (monotone) */
    stat_holm(p, 4, adj);
    check(near(adj[0], 0.03, 1e-15) && near(adj[1], 0.06, 1e-15) && near(adj[2], 0.06, 1e-15) && near(adj[3], 0.02, 1e-15),
          "Holm of {0.01, 0.04, 0.03, 0.005}: {0.03, 0.06, 0.06, 0.02} (by hand): {%g, %g, %g, %g}", adj[0], adj[1], adj[2], adj[3]);
}

/* Non-inferiority, oriented: d = loss(RoPE) - loss(EH) per seed, null -margin = -0.02. scipy ttest_1samp against
   -0.02: mean 0 -> t 6.9282032303, p 0.0009612531 (CI [-0.00742, 0.00742], above -0.02: not worse); mean -0.05 ->
   t -10.3923048454, p 0.0001421009 (CI [-0.0574, -0.0426], below -0.02: worse by more than the margin); mean -0.02
   -> p 1. */
static void test_noninferiority(void) {
    double ok[6] = {-0.005, 0.0, 0.005, -0.01, 0.01, 0.0}, worse[6] = {-0.05, -0.04, -0.06, -0.045, -0.055, -0.05};
    double edge[6] = {-0.03, -0.01, -0.02, -0.025, -0.015, -0.02};
    Claim c[3] = {{.kind = CLAIM_TEST, .null = -0.02, .d = ok, .n = 6}, {.kind = CLAIM_TEST, .null = -0.02, .d = worse, .n = 6},
                   {.kind = CLAIM_TEST, .null = -0.02, .d = edge, .n = 6}};
    int m = claims_decide(c, 3, 0.05);
    check(m == 3 && near(c[0].s.p, 0.0009612531, 1e-9) && near(c[1].s.p, 0.0001421009, 1e-9) && near(c[2].s.p, 1.0, 1e-12),
          "non-inferiority t-tests against the margin: p %.10f, %.10f, %.3f (scipy 0.0009612531, 0.0001421009, 1)", c[0].s.p, c[1].s.p, c[2].s.p);
    /* Holm: 0.000142 x3, 0.000961 x2, 1 x1 */
    check(near(c[1].p_holm, 3 * 0.0001421009, 1e-9) && near(c[0].p_holm, 2 * 0.0009612531, 1e-9) && c[2].p_holm == 1.0, "Holm over the three");
    check(c[0].verdict == VERDICT_SUPPORTED && c[0].s.lo > -0.02, "within the margin: supported (not worse), CI lower bound %.5f > -0.02", c[0].s.lo);
    check(c[1].verdict == VERDICT_REFUTED && c[1].s.hi < -0.02, "beyond the margin: refuted (worse), CI upper bound %.5f < -0.02", c[1].s.hi);
    check(c[2].verdict == VERDICT_INCONCLUSIVE, "at the margin: inconclusive");
    double d1[1] = {0.5};
    Claim u[3] = {{.kind = CLAIM_TEST, .d = d1, .n = 1}, {.kind = CLAIM_DESCRIBE, .d = ok, .n = 6}, {.kind = CLAIM_UNMEASURABLE}};
    m = claims_decide(u, 3, 0.05);
    check(m == 0 && u[0].verdict == VERDICT_INCONCLUSIVE && isnan(u[0].p_holm) && u[1].verdict == VERDICT_NONE && u[2].verdict == VERDICT_NONE,
          "one seed: inconclusive, untested; descriptive and unmeasurable rows: no verdict, not in Holm's m");
}

/* The rule on simulated seeds with no true effect, the variances: seed sd 0.4, document sd 0.3, 16
   documents; each seed's number is its documents' mean. Over R reports "supported" and "refuted" must each come
   out at most at the nominal 5% (plus 3 binomial standard errors). The v2 rule on the same kind of data (every
   seed's sign + a sign test over the pooled documents) must fail it: the check can fail. */
static double sim_seed(Rng *r, double mean, double *docs_out) {
    double seed_effect = 0.4 * rng_normal(r), s = 0.0;
    for (int k = 0; k < 16; k++) {
        double x = mean + seed_effect + 0.3 * rng_normal(r);
        if (docs_out) docs_out[k] = x;
        s += x;
    }
    return s / 16;
}
static void test_rule_null(void) {
    enum { R = 2000, NC = 4, NS = 6 };
    Rng r = {12345};
    double vals[NC][NS];
    long sup1 = 0, ref1 = 0, sup_any = 0, ref_any = 0, sup_claims = 0, ni_sup = 0;
    for (int rep = 0; rep < R; rep++) {
        /* one claim alone (no correction), and a report of NC claims (three "better" claims with true mean 0 and one
           non-inferiority claim whose true difference sits on the margin) */
        Claim c[NC];
        for (int i = 0; i < NC; i++) {
            double null = i == NC - 1 ? -0.02 : 0.0;
            for (int s = 0; s < NS; s++) vals[i][s] = sim_seed(&r, null, NULL);
            c[i] = (Claim){.kind = CLAIM_TEST, .null = null, .d = vals[i], .n = NS};
        }
        claims_decide(c, 1, 0.05);
        sup1 += c[0].verdict == VERDICT_SUPPORTED; ref1 += c[0].verdict == VERDICT_REFUTED;
        claims_decide(c, NC, 0.05);
        int any_s = 0, any_r = 0;
        for (int i = 0; i < NC; i++) { any_s |= c[i].verdict == VERDICT_SUPPORTED; any_r |= c[i].verdict == VERDICT_REFUTED; sup_claims += c[i].verdict == VERDICT_SUPPORTED; }
        sup_any += any_s; ref_any += any_r; ni_sup += c[NC - 1].verdict == VERDICT_SUPPORTED;
    }
    double lim = 0.05 + 3 * sqrt(0.05 * 0.95 / R);
    check((double)sup1 / R <= lim && (double)ref1 / R <= lim, "no true effect, 1 claim x %d seeds, %d reports: supported %.2f%%, refuted %.2f%% (each <= %.2f%%)",
          NS, R, 100.0 * sup1 / R, 100.0 * ref1 / R, 100 * lim);
    check((double)sup_any / R <= lim && (double)ref_any / R <= lim,
          "no true effect, %d claims per report (Holm): a report with any 'supported' %.2f%%, any 'refuted' %.2f%% (each <= %.2f%%); per claim supported %.2f%%",
          NC, 100.0 * sup_any / R, 100.0 * ref_any / R, 100 * lim, 100.0 * sup_claims / (R * NC));
    check((double)ni_sup / R <= lim, "true difference on the non-inferiority margin: 'not worse' supported in %.2f%% of reports", 100.0 * ni_sup / R);
    /* the v2 rule, 3 seeds: supported = every seed's mean > 0 and the pooled sign test over 48 documents p < 0.05 */
    long v2 = 0;
    for (int rep = 0; rep < R; rep++) {
        double docs[16];
        long pos = 0, neg = 0;
        int all = 1;
        for (int s = 0; s < 3; s++) {
            if (sim_seed(&r, 0.0, docs) <= 0) all = 0;
            for (int k = 0; k < 16; k++) { pos += docs[k] > 0; neg += docs[k] < 0; }
        }
        v2 += all && pos > neg && stat_sign_test(pos, neg) < 0.05;
    }
    check((double)v2 / R > lim, "the v2 rule on the same null data says 'supported' in %.1f%% of reports (the issue: 12%%): it fails this test", 100.0 * v2 / R);
}

static void test_attention(void) {
    /* T 8, query t 7: keys more than T/4 = 2 back are j = 1..4 (j = 0 is the BOS), so uniform over keys 1..7 puts 4/7
       of the non-BOS mass there */
    float row[8] = {0.5f, 0.1f, 0.1f, 0.0f, 0.0f, 0.1f, 0.1f, 0.1f};
    check(near(attn_sink_mass(row, 7), 0.5, 1e-7), "sink mass of the row = p[0] = 0.5");
    check(near(attn_first_k_mass(row, 7, 4), 0.7, 1e-7) && near(attn_first_k_mass(row, 7, 1), 0.5, 1e-7) && near(attn_first_k_mass(row, 1, 4), 0.6, 1e-7),
          "first-k mass: k 4 = 0.5 + 0.1 + 0.1 + 0 = 0.7, k 1 = the sink 0.5, query t 1 stops at key 1: 0.6");
    check(near(attn_far_ratio(row, 7, 8), 0.7, 1e-6), "far ratio: (0.2 / 0.5) / (4/7) = 0.7 (more local than uniform): %.6f", attn_far_ratio(row, 7, 8));
    float uni[8];
    for (int j = 0; j < 8; j++) uni[j] = 0.125f;
    check(near(attn_far_ratio(uni, 7, 8), 1.0, 1e-6), "far ratio of uniform attention is 1: %.6f", attn_far_ratio(uni, 7, 8));
    float far[8] = {0.3f, 0.7f, 0, 0, 0, 0, 0, 0};
    check(near(attn_far_ratio(far, 7, 8), 1.75, 1e-6), "far ratio with all non-BOS mass on key 1: 1 / (4/7) = 1.75: %.6f", attn_far_ratio(far, 7, 8));
    float sink_only[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    check(isnan(attn_far_ratio(sink_only, 7, 8)) && isnan(attn_far_ratio(uni, 2, 8)),
          "far ratio is NaN with no non-BOS mass, or no key beyond T/4 (t 2, T 8)");
    check(attn_top_key(row, 7) == 0, "top key: the BOS's 0.5");
    float peak[8] = {0.2f, 0.1f, 0.1f, 0.4f, 0.1f, 0.05f, 0.05f, 0};
    check(attn_top_key(peak, 7) == 3 && attn_top_key(peak, 2) == 0, "top key 3 over the whole row, 0 when only keys 0..2 count");
    /* "...key 4821 ... key 4821" -> the answer (the last 4 tokens) is copied from position 4 */
    int toks[14] = {7, 9, 1, 1, 4, 8, 2, 1, 3, 3, 4, 8, 2, 1};
    check(copy_source(toks, 10, 4) == 4, "copy source: the answer 4 8 2 1 at 10 stands at 4 (%d)", copy_source(toks, 10, 4));
    check(copy_source(toks, 2, 2) == -1, "copy source: -1 when the answer is not earlier");
}

/* Fig. 6 growth on hand-built bands of an eval at 4T, T 8: [0,4) 3.0, [4,8) 2.0 (the reference), [8,16) 2.5 over 64
   targets, [16,32) 3.5 over 128: (2.5 x 64 + 3.5 x 128) / 192 - 2.0 = 3.1667 - 2 = 1.16667 */
static void test_growth(void) {
    double st[4] = {0, 4, 8, 16}, en[4] = {4, 8, 16, 32}, loss[4] = {3.0, 2.0, 2.5, 3.5}, tok[4] = {32, 32, 64, 128};
    check(near(ppl_growth(st, en, loss, tok, 4, 8), 7.0 / 6.0, 1e-12), "growth past T: 19/6 - 2 = 7/6 (%.6f)", ppl_growth(st, en, loss, tok, 4, 8));
    check(near(ppl_growth(st, en, loss, tok, 3, 8), 0.5, 1e-12), "growth with one band past T: 2.5 - 2.0 = 0.5");
    check(near(ppl_growth(st, en, loss, tok, 4, 16), 1.0, 1e-12), "growth at T 16: [16,32) 3.5 - [8,16) 2.5 = 1.0");
    check(isnan(ppl_growth(st, en, loss, tok, 2, 8)) && isnan(ppl_growth(st, en, loss, tok, 4, 12)),
          "growth is NaN with no band past T (only [0,8) given), or no band exactly [T/2, T) (T 12)");
}

/* far_repeat_mask on hand-built sequences: m 3; (1,2,3) ends at 2, again at 11 (9 later) and at 15 (4 after 11) */
static void test_far_repeat(void) {
    const int tok[16] = {1, 2, 3, 9, 9, 9, 9, 9, 9, 1, 2, 3, 5, 1, 2, 3};
    unsigned char mask[16];
    char got[17];
    far_repeat_mask(tok, 16, 3, 4, mask);
    for (int i = 0; i < 16; i++) got[i] = (char)('0' + mask[i]);
    got[16] = 0;
    check(strcmp(got, "0000000000010000") == 0, "m 3, D 4: only token 11 repeats from far (its gram ended 9 back; 15's most recent is 4 back, the 9-runs 1 back): %s", got);
    far_repeat_mask(tok, 16, 3, 3, mask);
    for (int i = 0; i < 16; i++) got[i] = (char)('0' + mask[i]);
    check(strcmp(got, "0000000000010001") == 0, "m 3, D 3: tokens 11 and 15 (4 > 3 back): %s", got);
    const int t2[5] = {7, 8, 7, 8, 7};
    far_repeat_mask(t2, 5, 1, 1, mask);
    check(!mask[0] && !mask[1] && mask[2] && mask[3] && mask[4], "m 1, D 1: each token seen 2 back counts");
    far_repeat_mask(t2, 5, 1, 2, mask);
    check(!mask[2] && !mask[3] && !mask[4], "m 1, D 2: 2 back is not more than D");
}

int main(void) {
    test_stats();
    test_student_t();
    test_seed_stats();
    test_noninferiority();
    test_rule_null();
    test_growth();
    test_attention();
    test_far_repeat();
    return tu_finish("test_analysis");
}
