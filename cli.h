/*
cli.h — the command-line helpers that train, eval, infer and the data tools share: numbers from flags with their
range in the error, "did you mean" for a misspelled flag, the --flag=value hint, and the wall clock and duration
format of the progress lines. Header-only; include it after ropepp.h. Not part of the model.

   Numbers on a command line: the value, or exit(1) with "error: FLAG 'TEXT' is not a number in [lo, hi]; see
   PROGRAM --help" (flag_int: an integer).
double flag_number(const char *program, const char *flag, const char *text, double lo, double hi);
int flag_int(const char *program, const char *flag, const char *text, int lo, int hi);
   "did you mean" for an unknown flag s: the name of names[0..n) nearest to s by edit distance (Levenshtein), if
   nearer than *best_d, goes into *best and its distance into *best_d; start with *best = NULL, *best_d = 3 (a
   suggestion at distance 2 at most) and search several lists in turn. Names over 63 characters are never near.
void name_nearest(const char *s, const char *const *names, int n, const char **best, int *best_d);
   An unknown flag written --flag=value: the hint "; write it as --flag value (the value is the next word)" in out,
   else "" (every program reads a flag's value from the next word). Returns out.
const char *flag_equals_hint(const char *s, char *out, size_t n);
   Progress lines (train's steps, eval's windows): a monotonic wall clock in seconds, and a duration as 42.1s,
   3m07s or 2h05m.
double wall_seconds(void);
void fmt_duration(char *out, size_t n, double secs);
*/
#ifndef ROPEPP_CLI_H
#define ROPEPP_CLI_H
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* a bound of a flag's range as the user writes it: an integer as one (16777216, not 1.67772e+07), else %g */
static inline void bound_text(char *out, size_t n, double x) {
    if (fabs(x) < 1e17 && x == (double)(long long)x) snprintf(out, n, "%lld", (long long)x);
    else snprintf(out, n, "%g", x);
}

static inline double flag_number(const char *program, const char *flag, const char *text, double lo, double hi) {
    char *end;
    errno = 0;
    double x = strtod(text, &end);
    if (*text == '\0' || *end != '\0' || errno != 0 || !(x >= lo && x <= hi)) {
        char a[32], b[32];
        bound_text(a, sizeof(a), lo);
        bound_text(b, sizeof(b), hi);
        fprintf(stderr, "error: %s '%s' is not a number in [%s, %s]; see %s --help\n", flag, text, a, b, program);
        exit(1);
    }
    return x;
}

static inline double wall_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline void fmt_duration(char *out, size_t n, double secs) {
    if (!(secs >= 0)) secs = 0;
    if (secs < 60) snprintf(out, n, "%.1fs", secs);
    else if (secs < 3600) snprintf(out, n, "%dm%02ds", (int)(secs / 60), (int)secs % 60);
    else snprintf(out, n, "%dh%02dm", (int)(secs / 3600), (int)(secs / 60) % 60);
}

static inline int flag_int(const char *program, const char *flag, const char *text, int lo, int hi) {
    char *end;
    errno = 0;
    long x = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || errno != 0 || x < lo || x > hi) {
        fprintf(stderr, "error: %s '%s' is not an integer in [%d, %d]; see %s --help\n", flag, text, lo, hi, program);
        exit(1);
    }
    return (int)x;
}

static inline int name_distance(const char *a, const char *b) {
    const int na = (int)strlen(a), nb = (int)strlen(b);
    if (na > 63 || nb > 63) return 99;
    int prev[64], cur[64];
    for (int j = 0; j <= nb; j++) prev[j] = j;
    for (int i = 1; i <= na; i++) {
        cur[0] = i;
        for (int j = 1; j <= nb; j++) {
            int d = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < d) d = prev[j] + 1;
            if (cur[j - 1] + 1 < d) d = cur[j - 1] + 1;
            cur[j] = d;
        }
        for (int j = 0; j <= nb; j++) prev[j] = cur[j];
    }
    return prev[nb];
}
static inline const char *flag_equals_hint(const char *s, char *out, size_t n) {
    const char *eq = strchr(s, '=');
    out[0] = '\0';
    if (strncmp(s, "--", 2) == 0 && eq != NULL && eq > s + 2)
        snprintf(out, n, "; write it as %.*s %s (the value is the next word)", (int)(eq - s), s, eq + 1);
    return out;
}

static inline void name_nearest(const char *s, const char *const *names, int n, const char **best, int *best_d) {
    for (int k = 0; k < n; k++) {
        int d = name_distance(s, names[k]);
        if (d < *best_d) { *best_d = d; *best = names[k]; }
    }
}

#endif
