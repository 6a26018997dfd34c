/*
test_analysis.c — analysis.h against values computed by hand: the Wilson interval, the exact sign test and McNemar
test, and each attention measure on a hand-built attention row whose answer is known. One line per check, then
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

static void test_attention(void) {
    /* T 8, query t 7: keys more than T/4 = 2 back are j = 1..4 (j = 0 is the BOS), so uniform over keys 1..7 puts 4/7
       of the non-BOS mass there */
    float row[8] = {0.5f, 0.1f, 0.1f, 0.0f, 0.0f, 0.1f, 0.1f, 0.1f};
    check(near(attn_sink_mass(row, 7), 0.5, 1e-7), "sink mass of the row = p[0] = 0.5");
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
    test_attention();
    test_far_repeat();
    return tu_finish("test_analysis");
}
