/*
test_tasks.c — checks of data/tasks.h, the synthetic long-context task generators: determinism, exact length,
the needle and the answer (re-derived from the text, independently of the generator), depth placement, the
training targets, teacher-forced scoring and the --mix parser. One line per check, then
"test_tasks: N passed, M failed".

Build: gcc -std=c11 -Wall -Wextra -O2 -I. tests/test_tasks.c -o tests/test_tasks -lm
*/
#pragma GCC diagnostic ignored "-Wunknown-pragmas"   /* ropepp.h's `omp` pragmas, built here without -fopenmp */
#define ROPEPP_IMPLEMENTATION
#define ROPEPP_TASKS_IMPLEMENTATION
#include "ropepp.h"
#include "data/tasks.h"
#include "testutil.h"

static const int LENGTHS[] = {256, 300, 1000, 4096};
#define N_LENGTHS 4
static const double DEPTHS[] = {0.0, 0.5, 1.0, -1.0};
#define N_DEPTHS 4
#define T_MAX 8192

/* The first failure of a group of checks that share one output line. */
typedef struct { int ok; char why[400]; } Verdict;

/* Record a failure (only the first is kept). */
static void fail(Verdict *v, const char *fmt, ...) {
    if (!v->ok) return;
    v->ok = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->why, sizeof(v->why), fmt, ap);
    va_end(ap);
}

/* The sample's tokens as a NUL-terminated string (text tasks are bytes). */
static void sample_text(const TaskSample *s, char *out) {
    for (int t = 0; t < s->n; t++) out[t] = (char)s->tokens[t];
    out[s->n] = '\0';
}

/* Occurrences of needle in hay[0 .. len). */
static int count_in(const char *hay, int len, const char *needle) {
    int n = 0, nl = (int)strlen(needle);
    for (int i = 0; i + nl <= len; i++) if (memcmp(hay + i, needle, nl) == 0) n++;
    return n;
}

/* Offset of the first occurrence of needle in hay[from .. len), or -1. */
static int find_in(const char *hay, int from, int len, const char *needle) {
    int nl = (int)strlen(needle);
    for (int i = from; i + nl <= len; i++) if (memcmp(hay + i, needle, nl) == 0) return i;
    return -1;
}

/* Copy hay[from ..) up to the stop string into out (at most n-1 bytes); returns 0 if the stop was found. */
static int read_until(const char *hay, int from, const char *stop, char *out, int n) {
    const char *e = strstr(hay + from, stop);
    if (e == NULL || e - (hay + from) >= n) return -1;
    int len = (int)(e - (hay + from));
    memcpy(out, hay + from, len);
    out[len] = '\0';
    return 0;
}

/* Haystack lines before the line that starts at byte `at` of the context [c0, c1), and all of them: lines that
   are exactly the noise sentence or a prefix of it count as haystack. */
static void haystack_lines(const char *text, int c0, int c1, int at, int *before, int *total) {
    const char *garbage = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
    *before = 0; *total = 0;
    int start = c0;
    for (int i = c0; i <= c1; i++) {
        if (i < c1 && text[i] != '\n') continue;
        int len = i - start;
        int is_noise = len <= (int)strlen(garbage) && memcmp(text + start, garbage, len) == 0;
        if (is_noise) {
            (*total)++;
            if (start < at) (*before)++;
        }
        start = i + 1;
    }
}

/* Check the tokens at the answer span equal `expected` and the answer ends the sequence. */
static void check_answer_span(Verdict *v, const TaskSample *s, const char *text, const char *expected, const char *tag) {
    int len = (int)strlen(expected);
    if (s->answer_len != len || memcmp(text + s->answer_start, expected, len) != 0)
        fail(v, "%s: answer span '%.*s' != expected '%s'", tag, s->answer_len, text + s->answer_start, expected);
    if (s->answer_start + s->answer_len != s->n) fail(v, "%s: the answer does not end the sequence", tag);
}

/* passkey: the information line is in the context exactly once, the key only inside it (twice), the answer span
   is its key, and the garbage prefix is round(depth * n_garbage) characters. */
static void verify_passkey(Verdict *ans, Verdict *dep, const TaskSample *s, double depth, const char *tag) {
    char text[T_MAX + 1];
    sample_text(s, text);
    const char *question = "\nWhat is the pass key? The pass key is ";
    int q = find_in(text, 0, s->n, question);
    int p = find_in(text, 0, s->n, "The pass key is ");
    if (q < 0 || p < 0 || p > q) { fail(ans, "%s: no question or no information line", tag); return; }
    char key[16];
    memcpy(key, text + p + 16, 5);
    key[5] = '\0';
    char line[96];
    snprintf(line, sizeof(line), "The pass key is %s. Remember it. %s is the pass key.", key, key);
    if (count_in(text, q, line) != 1) fail(ans, "%s: information line found %d times", tag, count_in(text, q, line));
    if (count_in(text, q, key) != 2) fail(ans, "%s: key %s found %d times in the context (want 2)", tag, key, count_in(text, q, key));
    if (s->answer_start != q + (int)strlen(question)) fail(ans, "%s: answer does not follow the question", tag);
    check_answer_span(ans, s, text, key, tag);
    int intro = find_in(text, 0, s->n, "\n");
    int n_prefix = p - 1 - (intro + 1);
    int n_suffix = q - (p + (int)strlen(line) + 1);
    int n_garbage = n_prefix + n_suffix;
    if (depth >= 0 && n_prefix != (int)floor(depth * n_garbage + 0.5))
        fail(dep, "%s: garbage prefix %d of %d at depth %g", tag, n_prefix, n_garbage, depth);
}

/* niah_single / niah_multikey: the queried key's needle is in the context exactly once, its value only there,
   the answer span is that value, and round(depth * m) haystack lines precede it. */
static void verify_niah_one(Verdict *ans, Verdict *dep, const TaskSample *s, double depth, int n_keys, const char *tag) {
    char text[T_MAX + 1], key[64], needle[128], value[16];
    sample_text(s, text);
    int c0 = find_in(text, 0, s->n, "afterwards.\n") + 12;
    const char *question = "\nWhat is the special magic number for ";
    int q = find_in(text, 0, s->n, question);
    if (c0 < 12 || q < 0 || read_until(text, q + (int)strlen(question), " mentioned", key, sizeof(key)) != 0) {
        fail(ans, "%s: template not found", tag);
        return;
    }
    snprintf(needle, sizeof(needle), "One of the special magic numbers for %s is: ", key);
    int at = find_in(text, c0, q, needle);
    if (at < 0 || count_in(text, q, needle) != 1) { fail(ans, "%s: needle for '%s' found %d times", tag, key, count_in(text, q, needle)); return; }
    if (count_in(text, q, "One of the special magic numbers for ") != n_keys) fail(ans, "%s: want %d needles", tag, n_keys);
    if (read_until(text, at + (int)strlen(needle), ".", value, sizeof(value)) != 0 || strlen(value) != 7) {
        fail(ans, "%s: needle value unreadable", tag);
        return;
    }
    if (count_in(text, q, value) != 1) fail(ans, "%s: value %s found %d times in the context", tag, value, count_in(text, q, value));
    check_answer_span(ans, s, text, value, tag);
    int before, total;
    haystack_lines(text, c0, q, at, &before, &total);
    if (depth >= 0 && before != (int)floor(depth * total + 0.5))
        fail(dep, "%s: %d of %d haystack lines before the needle at depth %g", tag, before, total, depth);
}

/* niah_multivalue: the key's 4 needles appear in order, each value exactly once; the answer is "v1, v2, v3, v4";
   the first needle is preceded by round(depth * m) haystack lines. */
static void verify_niah_multivalue(Verdict *ans, Verdict *dep, const TaskSample *s, double depth, const char *tag) {
    char text[T_MAX + 1], key[64], needle[128], value[16], expected[128] = "";
    sample_text(s, text);
    int c0 = find_in(text, 0, s->n, "afterwards.\n") + 12;
    const char *question = "\nWhat are all the special magic numbers for ";
    int q = find_in(text, 0, s->n, question);
    if (c0 < 12 || q < 0 || read_until(text, q + (int)strlen(question), " mentioned", key, sizeof(key)) != 0) {
        fail(ans, "%s: template not found", tag);
        return;
    }
    snprintf(needle, sizeof(needle), "One of the special magic numbers for %s is: ", key);
    if (count_in(text, q, needle) != 4) { fail(ans, "%s: %d needles for '%s' (want 4)", tag, count_in(text, q, needle), key); return; }
    int from = c0, first = -1;
    for (int j = 0; j < 4; j++) {
        int at = find_in(text, from, q, needle);
        if (first < 0) first = at;
        if (read_until(text, at + (int)strlen(needle), ".", value, sizeof(value)) != 0) { fail(ans, "%s: value unreadable", tag); return; }
        if (count_in(text, q, value) != 1) fail(ans, "%s: value %s found %d times", tag, value, count_in(text, q, value));
        if (j > 0) strcat(expected, ", ");
        strcat(expected, value);
        from = at + 1;
    }
    check_answer_span(ans, s, text, expected, tag);
    int before, total;
    haystack_lines(text, c0, q, first, &before, &total);
    if (depth >= 0 && before != (int)floor(depth * total + 0.5))
        fail(dep, "%s: %d of %d haystack lines before the first needle at depth %g", tag, before, total, depth);
}

/* vt: follow the chain from the queried value through the context; each assignment is there exactly once and the
   answer is the 5 names in chain order; the first chain line is preceded by round(depth * m) haystack lines. */
static void verify_vt(Verdict *ans, Verdict *dep, const TaskSample *s, double depth, const char *tag) {
    char text[T_MAX + 1], value[16], pat[64], name[8], expected[64] = "";
    sample_text(s, text);
    const char *intro = "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n";
    int c0 = (int)strlen(intro);
    const char *question = "\nQuestion: Find all variables that are assigned the value ";
    int q = find_in(text, 0, s->n, question);
    if (memcmp(text, intro, c0) != 0 || q < 0 || read_until(text, q + (int)strlen(question), " ", value, sizeof(value)) != 0) {
        fail(ans, "%s: template not found", tag);
        return;
    }
    if (count_in(text, q, value) != 1) fail(ans, "%s: value %s found %d times in the context", tag, value, count_in(text, q, value));
    snprintf(pat, sizeof(pat), " = %s\n", value);
    int at = find_in(text, c0, q + 1, pat);
    if (at < 9 || memcmp(text + at - 9, "VAR ", 4) != 0) { fail(ans, "%s: no 'VAR X = %s' line", tag, value); return; }
    int first = at - 9;
    memcpy(name, text + at - 5, 5);
    name[5] = '\0';
    for (int j = 0; j < 5; j++) {
        if (j > 0) strcat(expected, " ");
        strcat(expected, name);
        snprintf(pat, sizeof(pat), "VAR %s = ", name);
        if (count_in(text, q, pat) != 1) fail(ans, "%s: '%s' found %d times", tag, pat, count_in(text, q, pat));
        if (j == 4) break;
        snprintf(pat, sizeof(pat), " = VAR %s \n", name);
        int nx = find_in(text, c0, q + 1, pat);
        if (nx < 9 || count_in(text, q + 1, pat) != 1) { fail(ans, "%s: chain breaks after %s", tag, name); return; }
        memcpy(name, text + nx - 5, 5);
    }
    check_answer_span(ans, s, text, expected, tag);
    int before, total;
    haystack_lines(text, c0, q, first, &before, &total);
    if (depth >= 0 && before != (int)floor(depth * total + 0.5))
        fail(dep, "%s: %d of %d haystack lines before the chain at depth %g", tag, before, total, depth);
}

/* mqar: keys in [1, V/2) and values in [V/2, V), distinct; the pairs open the sequence; every key is queried once
   at an even offset of the query region and followed by its value; score_pos lists exactly those positions. */
static void verify_mqar(Verdict *ans, const TaskSample *s, int V, int n_kv, const char *tag) {
    static unsigned char seen[1 << 16];
    memset(seen, 0, V);
    for (int t = 0; t < s->n; t++) if (s->tokens[t] < 0 || s->tokens[t] >= V) { fail(ans, "%s: token out of [0, V)", tag); return; }
    for (int i = 0; i < n_kv; i++) {
        int k = s->tokens[2 * i], v = s->tokens[2 * i + 1];
        if (k < 1 || k >= V / 2 || v < V / 2 || v >= V) fail(ans, "%s: pair %d = (%d, %d) out of range", tag, i, k, v);
        if (seen[k] || seen[v]) fail(ans, "%s: key or value repeated", tag);
        seen[k] = 1; seen[v] = 1;
    }
    if (s->n_score != n_kv) { fail(ans, "%s: %d scored positions, want %d", tag, s->n_score, n_kv); return; }
    int queried[4096];
    memset(queried, 0, sizeof(int) * n_kv);
    for (int j = 0; j < s->n_score; j++) {
        int p = s->score_pos[j];
        if (p < 2 * n_kv || (p - 2 * n_kv) % 2 != 0 || p + 1 >= s->n || (j > 0 && p <= s->score_pos[j - 1])) {
            fail(ans, "%s: bad query position %d", tag, p);
            return;
        }
        int i;
        for (i = 0; i < n_kv; i++) if (s->tokens[2 * i] == s->tokens[p]) break;
        if (i == n_kv) { fail(ans, "%s: query at %d is not a key", tag, p); return; }
        if (s->tokens[p + 1] != s->tokens[2 * i + 1]) fail(ans, "%s: query at %d not followed by its value", tag, p);
        queried[i]++;
    }
    for (int i = 0; i < n_kv; i++) if (queried[i] != 1) fail(ans, "%s: key %d queried %d times", tag, i, queried[i]);
    if (s->answer_start != s->score_pos[s->n_score - 1] + 1 || s->answer_len != 1) fail(ans, "%s: answer span", tag);
}

/* Targets: answer_only 0 -> next token everywhere (-1 at T-1); 1 -> next token at score_pos only. Text tasks also:
   score_pos = answer_start-1 .. answer_start+answer_len-2. */
static void verify_targets(Verdict *v, const TaskSample *s, int answer_only, const char *tag) {
    static unsigned char scored[T_MAX];
    memset(scored, 0, s->n);
    for (int i = 0; i < s->n_score; i++) scored[s->score_pos[i]] = 1;
    if (s->task != TASK_MQAR) {
        if (s->n_score != s->answer_len) fail(v, "%s: n_score %d != answer_len %d", tag, s->n_score, s->answer_len);
        for (int i = 0; i < s->n_score; i++)
            if (s->score_pos[i] != s->answer_start - 1 + i) fail(v, "%s: score_pos[%d] = %d", tag, i, s->score_pos[i]);
    }
    for (int t = 0; t < s->n; t++) {
        int want = -1;
        if (t < s->n - 1 && (!answer_only || scored[t])) want = s->tokens[t + 1];
        if (s->targets[t] != want) { fail(v, "%s answer_only=%d: targets[%d] = %d, want %d", tag, answer_only, t, s->targets[t], want); return; }
    }
}

/* Generate every task over the grid of lengths and depths and check length, answer, depth and targets. */
static void test_grid(void) {
    TaskSample s, s2;
    task_sample_alloc(&s, T_MAX);
    task_sample_alloc(&s2, T_MAX);
    char err[300];
    for (int task = 0; task < TASK_COUNT; task++) {
        Verdict len = {1, ""}, ans = {1, ""}, dep = {1, ""}, tgt = {1, ""}, shortv = {1, ""};
        int n_ok = 0, n_short = 0;
        TaskOptions o = task_options_default();
        int min_len = task_min_len(task, &o);
        for (int li = 0; li < N_LENGTHS; li++) {
            for (int di = 0; di < N_DEPTHS; di++) {
                for (int rep = 0; rep < 3; rep++) {
                    int T = LENGTHS[li];
                    char tag[96];
                    snprintf(tag, sizeof(tag), "T=%d depth=%g seed=%d", T, DEPTHS[di], rep);
                    o.depth = DEPTHS[di];
                    o.answer_only = 0;
                    Rng rng = {1000 + 17 * (uint64_t)rep + (uint64_t)li};
                    int rc = task_generate(&s, task, T, &o, &rng, err, sizeof(err));
                    if (T < min_len) {
                        n_short++;
                        if (rc == 0 || strstr(err, "too short") == NULL) fail(&shortv, "%s: T < min %d accepted or unclear error '%s'", tag, min_len, err);
                        continue;
                    }
                    if (rc != 0) { fail(&len, "%s: %s", tag, err); continue; }
                    n_ok++;
                    if (s.n != T) fail(&len, "%s: n = %d", tag, s.n);
                    for (int t = 0; t < T; t++)
                        if (s.tokens[t] < 0 || s.tokens[t] > 255) { fail(&len, "%s: token %d out of range", tag, s.tokens[t]); break; }
                    if (s.answer_len < 1 || s.answer_start < 1 || s.answer_start + s.answer_len > T) fail(&len, "%s: answer span out of range", tag);
                    if (task == TASK_PASSKEY) verify_passkey(&ans, &dep, &s, DEPTHS[di], tag);
                    if (task == TASK_NIAH_SINGLE) verify_niah_one(&ans, &dep, &s, DEPTHS[di], 1, tag);
                    if (task == TASK_NIAH_MULTIKEY) verify_niah_one(&ans, &dep, &s, DEPTHS[di], 4, tag);
                    if (task == TASK_NIAH_MULTIVALUE) verify_niah_multivalue(&ans, &dep, &s, DEPTHS[di], tag);
                    if (task == TASK_VT) verify_vt(&ans, &dep, &s, DEPTHS[di], tag);
                    if (task == TASK_MQAR) {
                        int n_kv = T / 16 < 127 ? T / 16 : 127;
                        verify_mqar(&ans, &s, 256, n_kv, tag);
                    }
                    verify_targets(&tgt, &s, 0, tag);
                    Rng rng2 = {1000 + 17 * (uint64_t)rep + (uint64_t)li};
                    o.answer_only = 1;
                    if (task_generate(&s2, task, T, &o, &rng2, err, sizeof(err)) != 0) { fail(&tgt, "%s: %s", tag, err); continue; }
                    if (memcmp(s.tokens, s2.tokens, sizeof(int) * T) != 0) fail(&tgt, "%s: answer_only changed the tokens", tag);
                    verify_targets(&tgt, &s2, 1, tag);
                }
            }
        }
        const char *name = task_name(task);
        check(len.ok && n_ok > 0, "%s: %d samples of exactly T tokens for T in {256,300,1000,4096} x depth {0,0.5,1,random} %s", name, n_ok, len.why);
        if (n_short > 0) check(shortv.ok, "%s: T below the minimum %d is refused with a 'too short' error (%d cases) %s", name, min_len, n_short, shortv.why);
        if (task == TASK_MQAR)
            check(ans.ok, "%s: pairs, distinct keys/values in their halves, every key queried once and followed by its value %s", name, ans.why);
        else
            check(ans.ok, "%s: the needle is in the context exactly once and the answer span is the answer read back from it %s", name, ans.why);
        if (task != TASK_MQAR) check(dep.ok, "%s: the needle sits at round(depth * haystack) for depths 0, 0.5, 1 %s", name, dep.why);
        check(tgt.ok, "%s: targets are next tokens everywhere, or only on the scored positions (answer_only) %s", name, tgt.why);
    }
    task_sample_free(&s);
    task_sample_free(&s2);
}

/* The length range just above each text task's minimum, and the minimum itself, also fit exactly. */
static void test_min_lengths(void) {
    TaskSample s;
    task_sample_alloc(&s, T_MAX);
    char err[300];
    for (int task = 0; task < TASK_MQAR; task++) {
        int min_len = task_min_len(task, NULL), bad = 0, refused = 0;
        for (int T = min_len; T < min_len + 200; T++) {
            for (int rep = 0; rep < 3; rep++) {
                Rng rng = {(uint64_t)(T * 7 + rep)};
                TaskOptions o = task_options_default();
                o.depth = rep == 0 ? -1.0 : (rep == 1 ? 0.0 : 1.0);
                if (task_generate(&s, task, T, &o, &rng, err, sizeof(err)) != 0 || s.n != T || s.answer_start + s.answer_len != T) bad++;
            }
        }
        Rng rng = {5};
        if (task_generate(&s, task, min_len - 1, NULL, &rng, err, sizeof(err)) != 0) refused = 1;
        check(bad == 0 && refused, "%s: minimum T = %d; every T in [min, min+200) gives exactly T tokens, min-1 is refused (%s)", task_name(task), min_len, err);
    }
    task_sample_free(&s);
}

/* Same seed -> same bytes; a different seed -> different bytes (every task). */
static void test_determinism(void) {
    TaskSample a, b;
    task_sample_alloc(&a, 4096);
    task_sample_alloc(&b, 4096);
    char err[300];
    for (int task = 0; task < TASK_COUNT; task++) {
        int same_ok = 1, diff_ok = 1;
        int Ts[2] = {1000, 4096};
        for (int i = 0; i < 2; i++) {
            Rng r1 = {42}, r2 = {42}, r3 = {43};
            task_generate(&a, task, Ts[i], NULL, &r1, err, sizeof(err));
            task_generate(&b, task, Ts[i], NULL, &r2, err, sizeof(err));
            if (memcmp(a.tokens, b.tokens, sizeof(int) * Ts[i]) != 0 || a.answer_start != b.answer_start || r1.state != r2.state) same_ok = 0;
            task_generate(&b, task, Ts[i], NULL, &r3, err, sizeof(err));
            if (memcmp(a.tokens, b.tokens, sizeof(int) * Ts[i]) == 0) diff_ok = 0;
        }
        check(same_ok, "%s: same seed gives the same bytes (T = 1000, 4096)", task_name(task));
        check(diff_ok, "%s: a different seed gives different bytes", task_name(task));
    }
    task_sample_free(&a);
    task_sample_free(&b);
}

/* Teacher-forced scoring: perfect / answer-only / off-by-one / one-wrong-token / random predictors. */
static void test_scoring(void) {
    TaskSample s;
    task_sample_alloc(&s, 4096);
    int *argmax = (int *)mallocCheck(sizeof(int) * 4096);
    char err[300];
    for (int task = 0; task < TASK_COUNT; task++) {
        int T = 1000, n = 100;
        int perfect = 0, copier = 0, lag = 0, lead = 0, onewrong = 0, random_sum = 0;
        double frac_onewrong = 0.0, frac_perfect = 0.0;
        Rng rng = {7}, noise = {99};
        for (int k = 0; k < n; k++) {
            task_generate(&s, task, T, NULL, &rng, err, sizeof(err));
            int V = 256;
            /* perfect model: predicts every next token */
            for (int t = 0; t < T; t++) argmax[t] = t + 1 < T ? s.tokens[t + 1] : 0;
            perfect += task_score_argmax(&s, argmax);
            frac_perfect += task_score_fraction(&s, argmax);
            /* copies the answer at the scored positions, noise elsewhere */
            for (int t = 0; t < T; t++) argmax[t] = task_randint(&noise, 0, V - 1);
            for (int i = 0; i < s.n_score; i++) argmax[s.score_pos[i]] = s.tokens[s.score_pos[i] + 1];
            copier += task_score_argmax(&s, argmax);
            /* off by one (lagging): predicts the current token */
            for (int t = 0; t < T; t++) argmax[t] = s.tokens[t];
            lag += task_score_argmax(&s, argmax);
            /* off by one (leading): predicts the token after next */
            for (int t = 0; t < T; t++) argmax[t] = t + 2 < T ? s.tokens[t + 2] : -1;
            lead += task_score_argmax(&s, argmax);
            /* one wrong token in the answer */
            for (int t = 0; t < T; t++) argmax[t] = t + 1 < T ? s.tokens[t + 1] : 0;
            int wrong = s.score_pos[s.n_score / 2];
            argmax[wrong] = (argmax[wrong] + 1) % V;
            onewrong += task_score_argmax(&s, argmax);
            frac_onewrong += task_score_fraction(&s, argmax) - (double)(s.n_score - 1) / s.n_score;
            /* uniform random bytes */
            for (int t = 0; t < T; t++) argmax[t] = task_randint(&noise, 0, V - 1);
            random_sum += task_score_argmax(&s, argmax);
        }
        const char *name = task_name(task);
        check(perfect == n && fabs(frac_perfect - n) < 1e-9, "%s: a perfect model scores 1 (%d/%d)", name, perfect, n);
        check(copier == n, "%s: a model right only at the scored positions scores 1 (%d/%d)", name, copier, n);
        if (task != TASK_MQAR) {
            check(lag == 0 && lead == 0, "%s: off-by-one predictors (lagging %d, leading %d of %d) score 0", name, lag, lead, n);
        } else {
            check(lag == 0, "%s: an off-by-one predictor (lagging) scores 0 (%d/%d)", name, lag, n);
        }
        check(onewrong == 0 && fabs(frac_onewrong) < 1e-9, "%s: one wrong answer token scores 0, fraction (n-1)/n", name);
        check(random_sum == 0, "%s: a random predictor scores 0 (%d/%d)", name, random_sum, n);
    }
    /* MQAR: a random predictor over the values [V/2, V) gets about 1/(V/2) of the queries */
    int Vs[2] = {64, 256};
    for (int vi = 0; vi < 2; vi++) {
        int V = Vs[vi], T = 256, n = 500;
        TaskOptions o = task_options_default();
        o.mqar_vocab = V;
        o.mqar_kv = 16;
        Rng rng = {11}, noise = {12};
        double sum = 0.0;
        for (int k = 0; k < n; k++) {
            task_generate(&s, TASK_MQAR, T, &o, &rng, err, sizeof(err));
            for (int t = 0; t < T; t++) argmax[t] = task_randint(&noise, V / 2, V - 1);
            sum += task_score_fraction(&s, argmax);
        }
        double acc = sum / n, want = 1.0 / (V / 2), sd = sqrt(want * (1 - want) / (n * 16.0));
        check(fabs(acc - want) < 5 * sd, "mqar V=%d: a random predictor over the values scores %.4f, near 1/(V/2) = %.4f", V, acc, want);
    }
    free(argmax);
    task_sample_free(&s);
}

/* MQAR options: Zoology's canonical sizes, the power-law front-loading, and the option errors. */
static void test_mqar_options(void) {
    TaskSample s;
    task_sample_alloc(&s, 4096);
    char err[300];
    int sizes[][3] = {{8192, 64, 4}, {8192, 256, 64}, {8192, 1024, 256}, {256, 4096, 127}, {64, 100, 25}, {4, 4, 1}};
    Verdict v = {1, ""};
    for (int i = 0; i < 6; i++) {
        TaskOptions o = task_options_default();
        o.mqar_vocab = sizes[i][0];
        o.mqar_kv = sizes[i][2];
        Rng rng = {(uint64_t)i + 1};
        char tag[64];
        snprintf(tag, sizeof(tag), "V=%d T=%d n_kv=%d", sizes[i][0], sizes[i][1], sizes[i][2]);
        if (task_generate(&s, TASK_MQAR, sizes[i][1], &o, &rng, err, sizeof(err)) != 0) { fail(&v, "%s: %s", tag, err); continue; }
        verify_mqar(&v, &s, sizes[i][0], sizes[i][2], tag);
    }
    check(v.ok, "mqar: (V, T, n_kv) = (8192,64,4) (8192,256,64) (8192,1024,256) (256,4096,127) (64,100,25) (4,4,1) %s", v.why);

    /* front-loading: p(g) ∝ (g+1)^-0.99 puts the mean query gap far below the uniform 0.5 */
    double mean = 0.0;
    int n = 200, T = 1024, n_kv = 32, space = (T - 2 * n_kv) / 2;
    TaskOptions o = task_options_default();
    o.mqar_kv = n_kv;
    Rng rng = {3};
    for (int k = 0; k < n; k++) {
        task_generate(&s, TASK_MQAR, T, &o, &rng, err, sizeof(err));
        for (int j = 0; j < s.n_score; j++) mean += (double)((s.score_pos[j] - 2 * n_kv) / 2) / space;
    }
    mean /= (double)n * n_kv;
    check(mean > 0.05 && mean < 0.35, "mqar: the power-law gaps front-load the queries (mean gap %.3f of the query region; uniform 0.5)", mean);

    struct { int V, T, kv; const char *what; } bad[] = {
        {2, 64, 1, "vocab"}, {256, 64, 17, "too short"}, {64, 1024, 32, "distinct keys"}, {256, 300, 0, ""}};
    int all_ok = 1;
    for (int i = 0; i < 4; i++) {
        o = task_options_default();
        o.mqar_vocab = bad[i].V;
        o.mqar_kv = bad[i].kv;
        Rng r = {1};
        int rc = task_generate(&s, TASK_MQAR, bad[i].T, &o, &r, err, sizeof(err));
        if (bad[i].what[0] == '\0') { if (rc != 0) all_ok = 0; continue; }   /* the default n_kv always fits */
        if (rc == 0 || strstr(err, bad[i].what) == NULL) { all_ok = 0; printf("  got: %s\n", rc == 0 ? "accepted" : err); }
    }
    check(all_ok, "mqar: V < 4, 4*n_kv > T and n_kv >= V/2 are refused with clear errors");

    /* other argument errors */
    Rng r = {1};
    o = task_options_default();
    o.depth = 1.5;
    int e1 = task_generate(&s, TASK_PASSKEY, 1000, &o, &r, err, sizeof(err)) != 0 && strstr(err, "depth") != NULL;
    o.depth = NAN;
    int e2 = task_generate(&s, TASK_PASSKEY, 1000, &o, &r, err, sizeof(err)) != 0;
    int e3 = task_generate(&s, TASK_PASSKEY, 5000, NULL, &r, err, sizeof(err)) != 0 && strstr(err, "capacity") != NULL;
    int e4 = task_generate(&s, 99, 1000, NULL, &r, err, sizeof(err)) != 0 && strstr(err, "unknown task") != NULL;
    check(e1 && e2 && e3 && e4, "depth 1.5 / NaN, T above the buffer capacity and an unknown task id are refused");
    task_sample_free(&s);
}

/* Task names round-trip. */
static void test_names(void) {
    int ok = 1;
    for (int t = 0; t < TASK_COUNT; t++) if (task_from_name(task_name(t)) != t) ok = 0;
    check(ok && task_from_name("niah") == -1 && task_from_name("") == -1 && strcmp(task_name(-1), "?") == 0,
          "task names round-trip; unknown names give -1");
}

/* --mix parsing: good and bad specs, and the pick frequencies. */
static void test_mix(void) {
    TaskMix mix;
    char err[300];
    int rc = task_mix_parse("passkey:0.2,mqar:0.1", &mix, err, sizeof(err));
    check(rc == 0 && mix.n == 2 && mix.item[0].task == TASK_PASSKEY && fabs(mix.item[0].prop - 0.2) < 1e-12 &&
          mix.item[1].task == TASK_MQAR && fabs(mix.item[1].prop - 0.1) < 1e-12 && fabs(mix.total - 0.3) < 1e-12,
          "mix 'passkey:0.2,mqar:0.1' -> (passkey, 0.2), (mqar, 0.1)");
    rc = task_mix_parse("passkey:0.1,niah_single:0.1,niah_multikey:0.1,niah_multivalue:0.1,vt:0.1,mqar:0.5", &mix, err, sizeof(err));
    check(rc == 0 && mix.n == 6 && fabs(mix.total - 1.0) < 1e-12, "mix with all six tasks summing to exactly 1 is accepted");
    rc = task_mix_parse("vt:1", &mix, err, sizeof(err));
    check(rc == 0 && mix.n == 1 && mix.item[0].prop == 1.0, "mix 'vt:1' is accepted");
    rc = task_mix_parse("", &mix, err, sizeof(err));
    check(rc == 0 && mix.n == 0, "mix '' means no tasks");

    struct { const char *spec, *expect; } bad[] = {
        {"foo:0.1", "unknown task 'foo'"},
        {"passkey:0", "(0, 1]"},
        {"passkey:-0.1", "(0, 1]"},
        {"passkey:1.5", "(0, 1]"},
        {"passkey:nan", "(0, 1]"},
        {"passkey:abc", "(0, 1]"},
        {"passkey:0.1x", "(0, 1]"},
        {"passkey:", "(0, 1]"},
        {"passkey", "no ':proportion'"},
        {"passkey:0.6,mqar:0.5", "sum to 1.1"},
        {"passkey:0.1,", "empty entry"},
        {",passkey:0.1", "empty entry"},
        {"passkey:0.1,passkey:0.2", "listed twice"},
        {"Passkey:0.1", "unknown task"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        rc = task_mix_parse(bad[i].spec, &mix, err, sizeof(err));
        check(rc != 0 && strstr(err, bad[i].expect) != NULL, "mix '%s' is refused: %s", bad[i].spec, err);
    }

    task_mix_parse("passkey:0.2,mqar:0.1", &mix, err, sizeof(err));
    Rng rng = {5};
    int count[TASK_COUNT + 1] = {0}, n = 200000;
    for (int i = 0; i < n; i++) {
        int t = task_mix_pick(&mix, &rng);
        count[t < 0 ? TASK_COUNT : t]++;
    }
    double fp = (double)count[TASK_PASSKEY] / n, fm = (double)count[TASK_MQAR] / n, ft = (double)count[TASK_COUNT] / n;
    check(fabs(fp - 0.2) < 0.005 && fabs(fm - 0.1) < 0.005 && fabs(ft - 0.7) < 0.005,
          "mix pick frequencies passkey %.3f mqar %.3f text %.3f (want 0.2, 0.1, 0.7)", fp, fm, ft);
}

/* BOS and blank filler: with bos, tokens[0] is TASK_BOS and the rest is exactly the sample of length T-1 made from
   the same RNG state, with score_pos and the answer one position on; targets follow verify_targets' rule (BOS's
   target ignored in answer_only). MQAR with blank filler: every token of the query region that is not a queried
   key or its value is 0, and the pairs are still valid. */
static void test_bos_and_blank(void) {
    static TaskSample a, b;
    task_sample_alloc(&a, 2048);
    task_sample_alloc(&b, 2048);
    for (int task = 0; task < TASK_COUNT; task++) {
        Verdict v = {1, ""};
        for (int answer_only = 0; answer_only <= 1; answer_only++) {
            int T = 1000;
            TaskOptions o = task_options_default();
            o.answer_only = answer_only;
            o.mqar_kv = 16;
            o.bos = 1;
            Rng r1 = {77}, r2 = {77};
            char err[256];
            if (task_generate(&a, task, T, &o, &r1, err, sizeof(err)) != 0) { fail(&v, "bos: %s", err); break; }
            o.bos = 0;
            if (task_generate(&b, task, T - 1, &o, &r2, err, sizeof(err)) != 0) { fail(&v, "no bos: %s", err); break; }
            if (a.n != T || a.tokens[0] != TASK_BOS) fail(&v, "tokens[0] = %d, n = %d", a.tokens[0], a.n);
            if (memcmp(a.tokens + 1, b.tokens, sizeof(int) * (size_t)(T - 1)) != 0) fail(&v, "the tokens after the BOS differ from the sample at T-1");
            if (a.n_score != b.n_score || a.answer_start != b.answer_start + 1 || a.answer_len != b.answer_len) fail(&v, "answer span not shifted by one");
            for (int i = 0; i < a.n_score && i < b.n_score; i++) if (a.score_pos[i] != b.score_pos[i] + 1) fail(&v, "score_pos[%d] not shifted", i);
            verify_targets(&v, &a, answer_only, task_name(task));
        }
        TaskOptions o = task_options_default();
        o.bos = 1;
        int need = task_min_len(task, &o);
        o.bos = 0;
        int need0 = task_min_len(task, &o);
        check(v.ok && need == need0 + 1, "%s with --task-bos: BOS first, then the T-1 sample from the same RNG, answers one on; min length %d = %d + 1 %s",
              task_name(task), need, need0, v.why);
    }
    /* auto n_kv with BOS: the pairs of length T (4 at T 64, the setup), not of T-1 */
    TaskOptions o = task_options_default();
    o.bos = 1;
    Rng r = {5};
    char err[256];
    int rc = task_generate(&a, TASK_MQAR, 64, &o, &r, err, sizeof(err));
    check(rc == 0 && a.n_score == 4, "mqar with BOS at T 64: 4 pairs (T/16), as without (%d)", a.n_score);
    Verdict v = {1, ""};
    int zeros = 0;
    for (int rep = 0; rep < 20; rep++) {
        o = task_options_default();
        o.mqar_blank = 1;
        o.mqar_kv = 8;
        int T = 200;
        if (task_generate(&a, TASK_MQAR, T, &o, &r, err, sizeof(err)) != 0) { fail(&v, "%s", err); break; }
        verify_mqar(&v, &a, 256, 8, "blank");
        static unsigned char keep[4096];
        memset(keep, 0, (size_t)T);
        for (int i = 0; i < a.n_score; i++) { keep[a.score_pos[i]] = 1; keep[a.score_pos[i] + 1] = 1; }
        for (int t = 16; t < T; t++) {
            if (keep[t]) continue;
            if (a.tokens[t] != 0) { fail(&v, "filler token %d at %d", a.tokens[t], t); break; }
            zeros++;
        }
    }
    check(v.ok && zeros > 20 * 100, "mqar blank filler: every non-query token of the query region is 0 (%d of them), pairs and queries valid %s", zeros, v.why);
    task_sample_free(&a);
    task_sample_free(&b);
}

/* Gradients of one forward_loss + backward of (inputs, targets) (B, T) into g (num_params). */
/* the parameter gradient of the batch's loss into g (num_params); returns the loss */
static double grads_of(Model *m, const int *inputs, const int *targets, int B, int T, double *g) {
    model_zero_grad(m);
    double loss = model_forward_loss(m, inputs, targets, B, T, 1);
    model_backward(m);
    model_grads_to_host(m, g);
    return loss;
}

/* Answer-only loss touches exactly the answer positions: in a batch of a text row (every target) and an MQAR row
   (answer-only, BOS, blank filler), the parameter gradient of the mean loss equals the mean of the gradients of
   each single target position taken alone: the text row's T-1 positions and the MQAR row's n_kv answers, nothing
   from its filler. The same row with every target trained gives another gradient (so the check can fail).
   Float build: sums of a few hundred float products, so 1e-4 of the largest gradient is far above rounding. */
static void test_answer_only_gradient(void) {
    Config c = config_default();
    c.vocab_size = 256; c.dim = 16; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 1; c.ffn_dim = 32; c.pe = PE_ROPE;
    c.train_seq = 32;
    Model m;
    model_init(&m, &c, INIT_TORCH_DEFAULT, 3);
    int T = 32, B = 2;
    size_t np = m.num_params;
    int inputs[64], targets[64], single[64];
    Rng r = {11};
    for (int t = 0; t < T; t++) inputs[t] = task_randint(&r, 0, 255);
    for (int t = 0; t < T; t++) targets[t] = t + 1 < T ? inputs[t + 1] : -1;
    TaskSample s;
    task_sample_alloc(&s, T);
    TaskOptions o = task_options_default();
    o.answer_only = 1; o.bos = 1; o.mqar_blank = 1; o.mqar_kv = 3;
    char err[256];
    int rc = task_generate(&s, TASK_MQAR, T, &o, &r, err, sizeof(err));
    memcpy(inputs + T, s.tokens, sizeof(int) * (size_t)T);
    memcpy(targets + T, s.targets, sizeof(int) * (size_t)T);
    int n_set = 0;
    for (int t = 0; t < B * T; t++) n_set += targets[t] >= 0;
    double *g = (double *)mallocCheck(sizeof(double) * np), *ref = (double *)calloc(np, sizeof(double));
    double *gi = (double *)mallocCheck(sizeof(double) * np);
    grads_of(&m, inputs, targets, B, T, g);
    /* from each single target's gradient and loss: the token mean's reference (ref, 1 / n_set each) and, for
       --mix-weight row (loss_rows), each row's mean, then the mean over the 2 rows (rows_ref): the text row's T-1
       targets weigh 1 / (2 (T-1)) each and the 3 answers 1 / 6 each; that loss is the same weighted sum */
    double *rows_ref = (double *)calloc(np, sizeof(double)), want_loss = 0.0;
    for (int p = 0; p < B * T; p++) {
        if (targets[p] < 0) continue;
        for (int t = 0; t < B * T; t++) single[t] = t == p ? targets[p] : -1;
        double loss = grads_of(&m, inputs, single, B, T, gi);
        double w = 1.0 / (2.0 * (p < T ? T - 1 : 3));
        for (size_t i = 0; i < np; i++) { ref[i] += gi[i] / n_set; rows_ref[i] += gi[i] * w; }
        want_loss += loss * w;
    }
    double err_rel = rel_err(g, ref, np, NULL);
    check(rc == 0 && n_set == T - 1 + 3 && err_rel < 1e-4,
          "answer-only loss: the batch gradient is the mean of the %d single-target gradients (text row + 3 MQAR answers, no filler): rel err %.2e",
          n_set, err_rel);
    m.loss_rows = 1;
    double got_loss = grads_of(&m, inputs, targets, B, T, gi);
    m.loss_rows = 0;
    err_rel = rel_err(gi, rows_ref, np, NULL);
    check(err_rel < 1e-4 && fabs(got_loss - want_loss) < 1e-5 * want_loss,
          "--mix-weight row: the gradient weighs each row's mean alike (text row 1/%d per target, MQAR answers 1/6): rel err %.2e; loss %.6f = %.6f",
          2 * (T - 1), err_rel, got_loss, want_loss);
    double rows_vs_tokens = rel_err(gi, g, np, NULL);
    check(rows_vs_tokens > 1e-2, "... which differs from the token mean's gradient (rel diff %.3f)", rows_vs_tokens);
    /* two text rows (as many targets each): the row mean is the token mean */
    int text2[64];
    for (int t = T; t < B * T; t++) inputs[t] = task_randint(&r, 0, 255);
    for (int t = 0; t < B * T; t++) text2[t] = (t % T) + 1 < T ? inputs[t + 1] : -1;
    double tok_loss = grads_of(&m, inputs, text2, B, T, g);
    m.loss_rows = 1;
    double row_loss = grads_of(&m, inputs, text2, B, T, rows_ref);
    m.loss_rows = 0;
    double same = rel_err(rows_ref, g, np, NULL);
    check(same < (sizeof(real) == 8 ? 1e-12 : 1e-5) && fabs(row_loss - tok_loss) < 1e-6 * tok_loss,
          "rows with as many targets each: the row mean = the token mean (gradient rel err %.1e, loss %.6f = %.6f)", same, row_loss, tok_loss);
    free(rows_ref);
    for (int t = 0; t < T; t++) targets[T + t] = t + 1 < T ? s.tokens[t + 1] : -1;
    grads_of(&m, inputs, targets, B, T, gi);
    double diff = rel_err(gi, g, np, NULL);
    check(diff > 1e-2, "the same batch with every MQAR target trained has another gradient (rel diff %.3f)", diff);
    free(g); free(ref); free(gi);
    task_sample_free(&s);
    model_free(&m);
}

int main(void) {
    test_names();
    test_grid();
    test_min_lengths();
    test_determinism();
    test_scoring();
    test_mqar_options();
    test_mix();
    test_bos_and_blank();
    test_answer_only_gradient();
    return tu_finish("test_tasks");
}
