#define ROPEPP_IMPLEMENTATION
#include "ropepp.h"
/*
test_files — every file reader of ropepp.h against bad input, in process: token shards (shard_parse_header,
shard_write, loader_init / loader_next / loader_seek / loader_reset / loader_max_token), checkpoints
(checkpoint_parse_header, checkpoint_read, checkpoint_write, model_save / model_load) and state files
(state_write / state_read), their CRC-32 trailers (one flipped byte in the header, each tensor or the trailer is
refused as corrupt; version 1 files without one still load). Each bad case must return -1 with a one-line message
that names the problem; each good case must round-trip exactly. Last, crash safety: a writer SIGKILLed in the middle of checkpoint_write never
leaves a torn checkpoint behind (tmp + rename).

Build: make tests/test_files      Run from the repository root: ./tests/test_files
Temporary files: tests/tmp/test_files.<pid>/ (removed at the end; TEST_KEEP=1 keeps them).
*/
#include <ctype.h>
#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "testutil.h"

static int contains_ci(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++) {
        size_t i = 0;
        while (i < n && p[i] && tolower((unsigned char)p[i]) == tolower((unsigned char)needle[i])) i++;
        if (i == n) return 1;
    }
    return n == 0;
}

/* A reader's failure: rc -1, a non-empty one-line message that contains the keyword. */
static void expect_fail(int rc, const char *err, const char *keyword, const char *what) {
    int one_line = err[0] != '\0' && strchr(err, '\n') == NULL;
    int ok = rc == -1 && one_line && contains_ci(err, keyword);
    if (ok) check(1, "%s -> \"%s\"", what, err);
    else check(0, "%s: rc %d (want -1), message \"%s\" (want one line containing \"%s\")", what, rc, err, keyword);
}

/* ------------------------------------------------------------------------------------------- temp files */
static char tmpdir[512];

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", tmpdir, name); }

static int write_bytes(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (fp == NULL) return -1;
    int ok = (n == 0 || fwrite(data, 1, n, fp) == n);
    ok &= fclose(fp) == 0;
    return ok ? 0 : -1;
}

static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) return NULL;
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = (unsigned char *)malloc(sz > 0 ? (size_t)sz : 1);
    if (b && sz > 0 && fread(b, 1, (size_t)sz, fp) != (size_t)sz) { free(b); b = NULL; }
    fclose(fp);
    *n = (size_t)sz;
    return b;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* ------------------------------------------------------------------------------------------- token shards */
/* A raw shard: header fields as given, then `nbytes` of payload. */
static void write_raw_shard(const char *path, int32_t magic, int32_t version, int32_t count, const void *payload,
                            size_t nbytes) {
    unsigned char *b = (unsigned char *)calloc(1, 1024 + nbytes);
    int32_t h[256];
    memset(h, 0, sizeof(h));
    h[0] = magic; h[1] = version; h[2] = count;
    memcpy(b, h, sizeof(h));
    if (nbytes) memcpy(b + 1024, payload, nbytes);
    write_bytes(path, b, 1024 + nbytes);
    free(b);
}

typedef struct { const int *tok; size_t n; } RefShard;

/* The loader's documented behaviour: batches of B*T+1 tokens at pos, pos += B*T; when a batch would run past the
   end of a shard, go to the next shard (wrapping around) at position 0. */
typedef struct { const RefShard *s; int n_files; int shard; size_t pos; int B, T; } RefLoader;

static void ref_next(RefLoader *r, int *inputs, int *targets) {
    size_t need = (size_t)r->B * r->T + 1;
    if (r->pos + need > r->s[r->shard].n) { r->shard = (r->shard + 1) % r->n_files; r->pos = 0; }
    const int *t = r->s[r->shard].tok + r->pos;
    for (size_t i = 0; i + 1 < need; i++) { inputs[i] = t[i]; targets[i] = t[i + 1]; }
    r->pos += (size_t)r->B * r->T;
}

static int batches_match(DataLoader *dl, RefLoader *ref, int nbatches, int *first_bad, char *err, size_t errlen) {
    size_t BT = (size_t)ref->B * ref->T;
    int *in = (int *)malloc(BT * sizeof(int)), *tg = (int *)malloc(BT * sizeof(int));
    int ok = 1;
    *first_bad = -1;
    for (int b = 0; b < nbatches && ok; b++) {
        ref_next(ref, in, tg);
        if (loader_next(dl, err, errlen) != 0) { ok = 0; *first_bad = b; break; }
        if (memcmp(in, dl->inputs, BT * sizeof(int)) != 0 || memcmp(tg, dl->targets, BT * sizeof(int)) != 0 ||
            dl->shard != ref->shard || (size_t)dl->pos != ref->pos) { ok = 0; *first_bad = b; }
    }
    free(in); free(tg);
    return ok;
}

static void test_shard_good(void) {
    char err[1024] = "", p0[600], p1[600], p2[600], pat[600];
    DataLoader dl;
    int first_bad;

    /* one uint16 shard, exact read-back and wrap-around onto itself */
    int t16[100];
    for (int i = 0; i < 100; i++) t16[i] = (i * 7919 + 13) % 65536;
    path_of(p0, sizeof(p0), "single_u16.bin");
    check(shard_write(p0, t16, 100, 2, err, sizeof(err)) == 0, "shard_write uint16 (100 tokens)");
    {
        size_t n = 0;
        unsigned char *b = read_bytes(p0, &n);
        size_t ntok = 0;
        int w = b && n >= 1024 ? shard_parse_header((const int32_t *)b, n, &ntok, err, sizeof(err)) : -2;
        int32_t h[3] = {0, 0, 0};
        if (b && n >= 12) memcpy(h, b, 12);
        check(n == 1024 + 200 && w == 2 && ntok == 100 && h[0] == SHARD_MAGIC_U16 && h[1] == 1 && h[2] == 100,
              "uint16 shard on disk: %zu bytes, magic %d, version %d, count %d, parsed width %d ntok %zu (FORMATS.md)",
              n, h[0], h[1], h[2], w, ntok);
        int same = b != NULL;
        for (int i = 0; same && i < 100; i++) { uint16_t u; memcpy(&u, b + 1024 + 2 * i, 2); same = u == (uint16_t)t16[i]; }
        check(same, "uint16 shard payload is the tokens, little-endian");
        free(b);
    }
    if (check(loader_init(&dl, p0, 2, 5, 65536, err, sizeof(err)) == 0, "loader_init on one uint16 shard (%s)", err)) {
        RefShard rs[1] = {{t16, 100}};
        RefLoader ref = {rs, 1, 0, 0, 2, 5};
        int ok = batches_match(&dl, &ref, 25, &first_bad, err, sizeof(err));
        check(ok, "uint16: 25 batches (wrapping around the shard twice) equal the tokens written%s",
              ok ? "" : " (first mismatch at a batch)");
        loader_reset(&dl);
        ref.shard = 0; ref.pos = 0;
        check(batches_match(&dl, &ref, 3, &first_bad, err, sizeof(err)), "loader_reset starts again at token 0");
        loader_free(&dl);
    }

    /* three shards through a glob: uint16, uint32 (tokens above 65535), uint16 */
    int a[57], b32[43], c[31];
    for (int i = 0; i < 57; i++) a[i] = (i * 31 + 5) % 60000;
    for (int i = 0; i < 43; i++) b32[i] = 65536 + (i * 104729) % 65000;
    for (int i = 0; i < 31; i++) c[i] = (i * 17 + 1) % 1000;
    path_of(p0, sizeof(p0), "multi_00.bin");
    path_of(p1, sizeof(p1), "multi_01.bin");
    path_of(p2, sizeof(p2), "multi_02.bin");
    path_of(pat, sizeof(pat), "multi_*.bin");
    /* written out of order: the loader must sort */
    int w_ok = shard_write(p2, c, 31, 2, err, sizeof(err)) == 0 && shard_write(p0, a, 57, 2, err, sizeof(err)) == 0 &&
               shard_write(p1, b32, 43, 4, err, sizeof(err)) == 0;
    check(w_ok, "shard_write uint16 + uint32 shards");
    {
        size_t n = 0;
        unsigned char *bb = read_bytes(p1, &n);
        size_t ntok = 0;
        int w = bb && n >= 1024 ? shard_parse_header((const int32_t *)bb, n, &ntok, err, sizeof(err)) : -2;
        int32_t m = 0;
        if (bb) memcpy(&m, bb, 4);
        int same = bb != NULL && n == 1024 + 43 * 4;
        for (int i = 0; same && i < 43; i++) { uint32_t u; memcpy(&u, bb + 1024 + 4 * i, 4); same = u == (uint32_t)b32[i]; }
        check(w == 4 && ntok == 43 && m == SHARD_MAGIC_U32 && same, "uint32 shard on disk: magic %d, width %d, %zu tokens, payload exact", m, w, ntok);
        free(bb);
    }
    if (check(loader_init(&dl, pat, 2, 3, 1 << 17, err, sizeof(err)) == 0, "loader_init on a glob of 3 mixed-width shards (%s)", err)) {
        int sorted = dl.n_files == 3 && strcmp(dl.files[0], p0) == 0 && strcmp(dl.files[1], p1) == 0 && strcmp(dl.files[2], p2) == 0;
        check(sorted, "the glob matched 3 shards, sorted by name");
        RefShard rs[3] = {{a, 57}, {b32, 43}, {c, 31}};
        RefLoader ref = {rs, 3, 0, 0, 2, 3};
        int ok = batches_match(&dl, &ref, 60, &first_bad, err, sizeof(err));
        check(ok, "60 batches across shard boundaries and the wrap-around to shard 0 equal the tokens written%s%s",
              ok ? "" : ": first mismatch at batch ", ok ? "" : (first_bad >= 0 ? "(see above)" : ""));
        if (!ok) printf("       first bad batch %d, loader at shard %lld pos %lld, ref at shard %d pos %zu, err '%s'\n",
                        first_bad, (long long)dl.shard, (long long)dl.pos, ref.shard, ref.pos, err);

        /* seek into the middle of the uint32 shard */
        check(loader_seek(&dl, 1, 5, err, sizeof(err)) == 0, "loader_seek(shard 1, pos 5)");
        ref.shard = 1; ref.pos = 5;
        check(batches_match(&dl, &ref, 12, &first_bad, err, sizeof(err)), "after loader_seek(1, 5): 12 batches equal the tokens from there on");
        /* seek to the very end of the last shard: the next batch wraps to shard 0 */
        check(loader_seek(&dl, 2, 31, err, sizeof(err)) == 0, "loader_seek(shard 2, pos = its token count) is allowed");
        ref.shard = 2; ref.pos = 31;
        check(batches_match(&dl, &ref, 2, &first_bad, err, sizeof(err)) && dl.shard == 0, "after a seek to the end of the last shard the next batch wraps to shard 0");

        err[0] = 0;
        expect_fail(loader_seek(&dl, 3, 0, err, sizeof(err)), err, "shard", "loader_seek to shard 3 of 3");
        err[0] = 0;
        expect_fail(loader_seek(&dl, -1, 0, err, sizeof(err)), err, "shard", "loader_seek to shard -1");
        err[0] = 0;
        expect_fail(loader_seek(&dl, 0, 58, err, sizeof(err)), err, "past the end", "loader_seek past the end of a shard");
        err[0] = 0;
        expect_fail(loader_seek(&dl, 0, -1, err, sizeof(err)), err, "position", "loader_seek to a negative position");
        loader_free(&dl);
    }
    {
        int64_t mx = -1;
        int want = 0;
        for (int i = 0; i < 57; i++) if (a[i] > want) want = a[i];
        for (int i = 0; i < 43; i++) if (b32[i] > want) want = b32[i];
        for (int i = 0; i < 31; i++) if (c[i] > want) want = c[i];
        int rc = loader_max_token(pat, &mx, err, sizeof(err));
        check(rc == 0 && mx == want, "loader_max_token over the glob is the largest token written (%lld, want %d)", (long long)mx, want);
    }

    /* exactly B*T+1 tokens is enough */
    int t11[11];
    for (int i = 0; i < 11; i++) t11[i] = i;
    path_of(p0, sizeof(p0), "exact.bin");
    shard_write(p0, t11, 11, 2, err, sizeof(err));
    if (check(loader_init(&dl, p0, 2, 5, 256, err, sizeof(err)) == 0, "a shard of exactly B*T+1 tokens is accepted")) {
        RefShard rs[1] = {{t11, 11}};
        RefLoader ref = {rs, 1, 0, 0, 2, 5};
        check(batches_match(&dl, &ref, 3, &first_bad, err, sizeof(err)), "a B*T+1-token shard yields the same batch every time");
        loader_free(&dl);
    }
}

static void test_shard_bad(void) {
    char err[1024] = "", p[600], p2[600];
    DataLoader dl;
    size_t ntok;
    uint16_t tok16[200];
    uint32_t tok32[200];
    for (int i = 0; i < 200; i++) { tok16[i] = (uint16_t)(i % 256); tok32[i] = (uint32_t)(i % 256); }

#define LOADER_FAIL(path_, B_, T_, V_, kw_, what_)                                   \
    do {                                                                             \
        err[0] = 0;                                                                  \
        int rc_ = loader_init(&dl, path_, B_, T_, V_, err, sizeof(err));             \
        expect_fail(rc_, err, kw_, what_);                                           \
        if (rc_ == 0) loader_free(&dl);                                              \
    } while (0)

    path_of(p, sizeof(p), "missing.bin");
    LOADER_FAIL(p, 2, 5, 256, "no data shard", "loader_init on a missing file");
    check(contains_ci(err, "missing.bin"), "the missing-file message names the path");
    int64_t mx;
    err[0] = 0;
    expect_fail(loader_max_token(p, &mx, err, sizeof(err)), err, "no data shard", "loader_max_token on a missing file");

    path_of(p, sizeof(p), "nomatch_*.bin");
    LOADER_FAIL(p, 2, 5, 256, "no data shard", "loader_init on a glob that matches nothing");

    path_of(p, sizeof(p), "empty.bin");
    write_bytes(p, "", 0);
    LOADER_FAIL(p, 2, 5, 256, "shorter", "empty shard file");

    path_of(p, sizeof(p), "short.bin");
    {
        int32_t h[25];
        memset(h, 0, sizeof(h));
        h[0] = SHARD_MAGIC_U16; h[1] = 1; h[2] = 0;
        write_bytes(p, h, sizeof(h));
    }
    LOADER_FAIL(p, 2, 5, 256, "shorter", "shard shorter than its 1024-byte header");
    err[0] = 0;
    expect_fail(loader_max_token(p, &mx, err, sizeof(err)), err, "shorter", "loader_max_token on a short shard");

    path_of(p, sizeof(p), "magic.bin");
    write_raw_shard(p, 12345, 1, 100, tok16, 200);
    LOADER_FAIL(p, 2, 5, 256, "magic", "shard with a wrong magic");
    path_of(p, sizeof(p), "ckptmagic.bin");
    write_raw_shard(p, CKPT_MAGIC, 1, 100, tok16, 200);
    LOADER_FAIL(p, 2, 5, 256, "magic", "a checkpoint magic where a shard is expected");

    path_of(p, sizeof(p), "version.bin");
    write_raw_shard(p, SHARD_MAGIC_U16, 2, 100, tok16, 200);
    LOADER_FAIL(p, 2, 5, 256, "version", "shard version 2");
    path_of(p, sizeof(p), "version0.bin");
    write_raw_shard(p, SHARD_MAGIC_U32, 0, 100, tok32, 400);
    LOADER_FAIL(p, 2, 5, 256, "version", "uint32 shard version 0");

    path_of(p, sizeof(p), "negative.bin");
    write_raw_shard(p, SHARD_MAGIC_U16, 1, -100, tok16, 200);
    LOADER_FAIL(p, 2, 5, 256, "negative", "shard with a negative token count");
    path_of(p, sizeof(p), "negative_min.bin");
    write_raw_shard(p, SHARD_MAGIC_U32, 1, INT32_MIN, tok32, 0);
    LOADER_FAIL(p, 2, 5, 256, "negative", "shard with token count INT32_MIN");

    /* size != 1024 + count * width */
    path_of(p, sizeof(p), "u16_trunc.bin");
    write_raw_shard(p, SHARD_MAGIC_U16, 1, 100, tok16, 198);
    LOADER_FAIL(p, 2, 5, 256, "truncated", "uint16 shard one token short of its count");
    path_of(p, sizeof(p), "u16_odd.bin");
    write_raw_shard(p, SHARD_MAGIC_U16, 1, 100, tok16, 201);
    LOADER_FAIL(p, 2, 5, 256, "truncated", "uint16 shard with one stray byte");
    path_of(p, sizeof(p), "u16_long.bin");
    write_raw_shard(p, SHARD_MAGIC_U16, 1, 100, tok16, 202);
    LOADER_FAIL(p, 2, 5, 256, "truncated", "uint16 shard one token longer than its count");
    path_of(p, sizeof(p), "u16_hdronly.bin");
    write_raw_shard(p, SHARD_MAGIC_U16, 1, 100, tok16, 0);
    LOADER_FAIL(p, 2, 5, 256, "truncated", "uint16 shard that is only a header");
    path_of(p, sizeof(p), "u32_trunc.bin");
    write_raw_shard(p, SHARD_MAGIC_U32, 1, 100, tok32, 396);
    LOADER_FAIL(p, 2, 5, 256, "truncated", "uint32 shard one token short of its count");
    path_of(p, sizeof(p), "u32_as_u16.bin");
    write_raw_shard(p, SHARD_MAGIC_U32, 1, 100, tok32, 200);
    LOADER_FAIL(p, 2, 5, 256, "truncated", "uint32 magic on a file sized for uint16 tokens");
    path_of(p, sizeof(p), "u32_long.bin");
    write_raw_shard(p, SHARD_MAGIC_U32, 1, 100, tok32, 402);
    LOADER_FAIL(p, 2, 5, 256, "truncated", "uint32 shard with two stray bytes");
    path_of(p, sizeof(p), "u32_huge.bin");
    write_raw_shard(p, SHARD_MAGIC_U32, 1, INT32_MAX, tok32, 400);
    LOADER_FAIL(p, 2, 5, 256, "truncated", "uint32 shard claiming 2^31-1 tokens");

    /* shard_parse_header directly, on the same kinds of headers */
    {
        int32_t h[256];
        memset(h, 0, sizeof(h));
        h[0] = SHARD_MAGIC_U16; h[1] = 1; h[2] = 10;
        ntok = 0;
        check(shard_parse_header(h, 1024 + 20, &ntok, err, sizeof(err)) == 2 && ntok == 10, "shard_parse_header: a good uint16 header gives width 2, 10 tokens");
        h[0] = SHARD_MAGIC_U32;
        check(shard_parse_header(h, 1024 + 40, &ntok, err, sizeof(err)) == 4 && ntok == 10, "shard_parse_header: a good uint32 header gives width 4, 10 tokens");
        h[2] = 0;
        check(shard_parse_header(h, 1024, &ntok, err, sizeof(err)) == 4 && ntok == 0, "shard_parse_header: an empty shard header parses (count 0)");
        h[2] = 10;
        err[0] = 0; expect_fail(shard_parse_header(h, 1024 + 20, &ntok, err, sizeof(err)), err, "truncated", "shard_parse_header: uint32 count 10 with 20 payload bytes");
        h[0] = 0;
        err[0] = 0; expect_fail(shard_parse_header(h, 1024 + 40, &ntok, err, sizeof(err)), err, "magic", "shard_parse_header: magic 0");
        h[0] = SHARD_MAGIC_U16; h[1] = -1;
        err[0] = 0; expect_fail(shard_parse_header(h, 1024 + 20, &ntok, err, sizeof(err)), err, "version", "shard_parse_header: version -1");
        h[1] = 1; h[2] = -5;
        err[0] = 0; expect_fail(shard_parse_header(h, 1024, &ntok, err, sizeof(err)), err, "negative", "shard_parse_header: count -5");
        h[2] = 10;
        err[0] = 0; expect_fail(shard_parse_header(h, 0, &ntok, err, sizeof(err)), err, "truncated", "shard_parse_header: file size 0");
        err[0] = 0; expect_fail(shard_parse_header(h, (size_t)-1, &ntok, err, sizeof(err)), err, "truncated", "shard_parse_header: file size SIZE_MAX");
    }

    /* a token >= vocab is found by loader_next, in the second batch */
    {
        uint16_t t[40];
        for (int i = 0; i < 40; i++) t[i] = (uint16_t)(i + 1);
        t[15] = 300;
        path_of(p, sizeof(p), "badtoken.bin");
        write_raw_shard(p, SHARD_MAGIC_U16, 1, 40, t, sizeof(t));
        if (check(loader_init(&dl, p, 2, 5, 256, err, sizeof(err)) == 0, "loader_init accepts a shard whose tokens are checked later")) {
            check(loader_next(&dl, err, sizeof(err)) == 0, "the first batch (tokens < vocab) loads");
            err[0] = 0;
            expect_fail(loader_next(&dl, err, sizeof(err)), err, "vocab", "loader_next meets token 300 with vocab 256");
            check(contains_ci(err, "300"), "the message names the token value 300");
            loader_free(&dl);
        }
        /* the last token of a batch is a target only; it must be checked too */
        for (int i = 0; i < 40; i++) t[i] = 1;
        t[10] = 256;
        write_raw_shard(p, SHARD_MAGIC_U16, 1, 40, t, sizeof(t));
        if (loader_init(&dl, p, 2, 5, 256, err, sizeof(err)) == 0) {
            err[0] = 0;
            expect_fail(loader_next(&dl, err, sizeof(err)), err, "vocab", "loader_next meets token 256 = vocab as the last target of a batch");
            loader_free(&dl);
        }
        uint32_t u[40];
        for (int i = 0; i < 40; i++) u[i] = 7;
        u[3] = 0xFFFFFFFFu;
        path_of(p, sizeof(p), "badtoken32.bin");
        write_raw_shard(p, SHARD_MAGIC_U32, 1, 40, u, sizeof(u));
        if (loader_init(&dl, p, 2, 5, 1 << 20, err, sizeof(err)) == 0) {
            err[0] = 0;
            expect_fail(loader_next(&dl, err, sizeof(err)), err, "vocab", "loader_next meets uint32 token 0xFFFFFFFF (would be negative as int)");
            loader_free(&dl);
        }
    }

    /* too few tokens for one batch */
    path_of(p, sizeof(p), "tiny.bin");
    write_raw_shard(p, SHARD_MAGIC_U16, 1, 10, tok16, 20);
    LOADER_FAIL(p, 2, 5, 256, "fewer", "shard of 10 tokens with B*T+1 = 11");
    path_of(p, sizeof(p), "zero.bin");
    write_raw_shard(p, SHARD_MAGIC_U16, 1, 0, tok16, 0);
    LOADER_FAIL(p, 1, 1, 256, "fewer", "shard of 0 tokens");
    path_of(p, sizeof(p), "hundred.bin");
    write_raw_shard(p, SHARD_MAGIC_U16, 1, 100, tok16, 200);
    LOADER_FAIL(p, 1 << 20, 1 << 24, 256, "fewer", "B*T = 2^44 is refused before anything is allocated");
    LOADER_FAIL(p, 0, 5, 256, "batch", "batch 0");
    LOADER_FAIL(p, 2, -1, 256, "sequence", "sequence length -1");

    /* a glob where one shard of several is bad: the bad one is named */
    path_of(p, sizeof(p), "mixbad_00.bin");
    write_raw_shard(p, SHARD_MAGIC_U16, 1, 100, tok16, 200);
    path_of(p2, sizeof(p2), "mixbad_01.bin");
    write_raw_shard(p2, SHARD_MAGIC_U16, 1, 100, tok16, 150);
    path_of(p, sizeof(p), "mixbad_*.bin");
    LOADER_FAIL(p, 2, 5, 256, "truncated", "glob of a good and a truncated shard");
    check(contains_ci(err, "mixbad_01.bin"), "the message names the bad shard (mixbad_01.bin)");

    /* a directory is not a shard */
    path_of(p, sizeof(p), "adir.bin");
    mkdir(p, 0755);
    err[0] = 0;
    {
        int rc = loader_init(&dl, p, 2, 5, 256, err, sizeof(err));
        check(rc == -1 && err[0] != '\0' && strchr(err, '\n') == NULL, "a directory named like a shard is refused (\"%s\")", err);
        if (rc == 0) loader_free(&dl);
    }
#undef LOADER_FAIL
}

/* shard_write must not silently write tokens the format cannot hold. */
static void test_shard_write_bad(void) {
    char err[1024] = "", p[600];
    int toks[4] = {1, 2, 70000, 3};
    path_of(p, sizeof(p), "w_u16_big.bin");
    err[0] = 0;
    int rc = shard_write(p, toks, 4, 2, err, sizeof(err));
    expect_fail(rc, err, "70000", "shard_write refuses token 70000 in a uint16 shard instead of truncating it to 4464");
    int neg[3] = {1, -1, 2};
    path_of(p, sizeof(p), "w_neg.bin");
    err[0] = 0;
    rc = shard_write(p, neg, 3, 4, err, sizeof(err));
    expect_fail(rc, err, "-1", "shard_write refuses a negative token");
    path_of(p, sizeof(p), "w_width3.bin");
    err[0] = 0;
    rc = shard_write(p, toks, 2, 3, err, sizeof(err));
    expect_fail(rc, err, "3", "shard_write refuses bytes_per_token 3");
    path_of(p, sizeof(p), "no_such_dir/x.bin");
    err[0] = 0;
    expect_fail(shard_write(p, toks, 2, 4, err, sizeof(err)), err, "cannot write", "shard_write into a missing folder");
}


/* ------------------------------------------------------------------------------------- document rows */
/* loader_use_docs on a hand-built corpus of 5 documents in 2 shards (B 1, T 4): doc d's tokens after its BOS are
   distinct numbers, so each row says which document and offset it holds. */
static void test_doc_rows(void) {
    char err[1024] = "", pa[600], pb[600], pat[600];
    int a[11] = {0, 1, 2, 3, 4, 5, 6, 7, 0, 9, 10};                    /* docs 0 (8 tokens), 1 (3) */
    int b[15] = {0, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 0, 22, 0};   /* docs 2 (12), 3 (2), 4 (BOS alone) */
    path_of(pa, sizeof(pa), "docs_a.bin"); path_of(pb, sizeof(pb), "docs_b.bin"); path_of(pat, sizeof(pat), "docs_*.bin");
    check(shard_write(pa, a, 11, 2, err, sizeof(err)) == 0 && shard_write(pb, b, 15, 2, err, sizeof(err)) == 0, "two document shards written");
    /* by hand: the document of each token after a BOS (the rows of doc d: 2, 1, 3, 1, 0 at T 4) */
    int doc_of[23];
    for (int v = 0; v < 23; v++) doc_of[v] = v >= 1 && v <= 7 ? 0 : v == 9 || v == 10 ? 1 : v >= 11 && v <= 21 ? 2 : v == 22 ? 3 : -1;
    const int doc_rows[5] = {2, 1, 3, 1, 0}, second_tok[5] = {1, 9, 11, 22, -1};

    /* doc_order: a permutation, the same for the same (seed, epoch), another for another seed or epoch */
    enum { N = 1000 };
    static int64_t p1[N], p2[N], p3[N], p4[N];
    doc_order(5, 0, N, p1); doc_order(5, 0, N, p2); doc_order(6, 0, N, p3); doc_order(5, 1, N, p4);
    int seen[N] = {0}, perm = 1, same = 1, diff_seed = 0, diff_epoch = 0;
    for (int i = 0; i < N; i++) {
        if (p1[i] < 0 || p1[i] >= N || seen[p1[i]]++) perm = 0;
        same &= p1[i] == p2[i]; diff_seed += p1[i] != p3[i]; diff_epoch += p1[i] != p4[i];
    }
    check(perm, "doc_order(5, 0, 1000) is a permutation of 0..999: every document once");
    check(same, "doc_order is deterministic: seed 5 twice gives the same order");
    check(diff_seed > N / 2 && diff_epoch > N / 2, "another seed moves %d of 1000 documents, another epoch %d", diff_seed, diff_epoch);

    DataLoader dl, d2;
    if (!check(loader_init(&dl, pat, 1, 4, 256, err, sizeof(err)) == 0 && loader_use_docs(&dl, 5, err, sizeof(err)) == 0,
               "loader_use_docs on the two shards (%s)", err)) return;
    check(dl.n_docs == 5 && dl.n_rows == 7, "5 documents (one a lone BOS) and 7 rows of T 4 (want 2 + 1 + 3 + 1 + 0): %lld, %lld",
          (long long)dl.n_docs, (long long)dl.n_rows);
    int64_t order0[5];
    memcpy(order0, dl.order, sizeof(order0));
    int target_seen[23] = {0}, bos_rows = 0, bos_ok = 1, pad_ok = 1, rows_of[5] = {0}, order_ok = 1, k = 0, last_doc = -1;
    for (int r = 0; r < 7; r++) {
        if (loader_next(&dl, err, sizeof(err)) != 0) { check(0, "loader_next row %d: %s", r, err); break; }
        int d = dl.targets[0] >= 0 && dl.targets[0] < 23 ? doc_of[dl.targets[0]] : -1;   /* every row has a target */
        if (d < 0) { order_ok = 0; continue; }
        rows_of[d]++;
        if (dl.inputs[0] == 0) {   /* a document's first row: BOS then its first token */
            bos_rows++;
            bos_ok &= dl.inputs[1] == second_tok[d];
            while (k < 5 && order0[k] == 4) k++;   /* the lone BOS makes no row */
            order_ok &= k < 5 && order0[k] == d && d != last_doc;
            k++; last_doc = d;
        } else order_ok &= d == last_doc;   /* a document's rows follow each other */
        for (int t = 0; t < 4; t++) {   /* padding only at a row's end: targets -1 from the first one on, inputs BOS after it */
            if (dl.targets[t] >= 0) { target_seen[dl.targets[t]]++; pad_ok &= t == 0 || dl.targets[t - 1] >= 0; }
            else pad_ok &= t == 0 || dl.targets[t - 1] >= 0 || dl.inputs[t] == 0;
        }
    }
    int once = 1;
    for (int v = 1; v <= 22; v++) once &= target_seen[v] == (v == 8 ? 0 : 1);   /* 8 is not in the corpus */
    check(bos_rows == 4 && bos_ok, "every document with a target starts a row with its BOS at position 0, then its first token (%d rows)", bos_rows);
    check(once && target_seen[0] == 0, "one epoch scores every token after a BOS once, and no BOS (no row crosses into the next document)");
    check(pad_ok, "a document's last row is padded at its end: input BOS, target -1");
    int rows_ok = 1;
    for (int d = 0; d < 5; d++) rows_ok &= rows_of[d] == doc_rows[d];
    check(order_ok && rows_ok, "rows come in the epoch's document order, each document's rows together");
    /* the next batch starts epoch 1, in doc_order(5, 1) */
    int rc = loader_next(&dl, err, sizeof(err));
    check(rc == 0 && dl.shard == 1 && dl.pos == 1, "after 7 rows the loader starts epoch 1 (epoch %lld, next row %lld)", (long long)dl.shard, (long long)dl.pos);
    int64_t want1[5];
    doc_order(5, 1, 5, want1);
    check(memcmp(dl.order, want1, sizeof(want1)) == 0, "epoch 1 reads the documents in doc_order(5, 1)");
    /* determinism and resume: a second loader with the same seed, seeked to (epoch 1, row 0), reads the same row */
    if (check(loader_init(&d2, pat, 1, 4, 256, err, sizeof(err)) == 0 && loader_use_docs(&d2, 5, err, sizeof(err)) == 0 &&
              loader_seek(&d2, 1, 0, err, sizeof(err)) == 0 && loader_next(&d2, err, sizeof(err)) == 0, "a second loader, seed 5, seeked to epoch 1 row 0")) {
        check(memcmp(d2.inputs, dl.inputs, 4 * sizeof(int)) == 0 && memcmp(d2.targets, dl.targets, 4 * sizeof(int)) == 0,
              "it reads the same row as the first loader after a whole epoch");
        expect_fail(loader_seek(&d2, 0, 8, err, sizeof(err)), err, "past", "loader_seek to row 8 of a 7-row epoch");
        loader_reset(&d2);
        check(d2.shard == 0 && d2.pos == 0 && memcmp(d2.order, order0, sizeof(order0)) == 0, "loader_reset goes back to epoch 0, row 0, its order");
        loader_free(&d2);
    }
    loader_free(&dl);
    /* two processes of B 1 read together what one process of B 2 reads */
    DataLoader r0, r1, one;
    if (check(loader_init_rank(&r0, pat, 1, 4, 256, 0, 2, err, sizeof(err)) == 0 && loader_use_docs(&r0, 9, err, sizeof(err)) == 0 &&
              loader_init_rank(&r1, pat, 1, 4, 256, 1, 2, err, sizeof(err)) == 0 && loader_use_docs(&r1, 9, err, sizeof(err)) == 0 &&
              loader_init(&one, pat, 2, 4, 256, err, sizeof(err)) == 0 && loader_use_docs(&one, 9, err, sizeof(err)) == 0, "document rows on 2 processes")) {
        int ok = 1;
        for (int s = 0; s < 5 && ok; s++) {
            ok = loader_next(&r0, err, sizeof(err)) == 0 && loader_next(&r1, err, sizeof(err)) == 0 && loader_next(&one, err, sizeof(err)) == 0;
            ok = ok && memcmp(r0.targets, one.targets, 4 * sizeof(int)) == 0 && memcmp(r1.targets, one.targets + 4, 4 * sizeof(int)) == 0;
        }
        check(ok, "5 batches: process 0 reads row 0 and process 1 row 1 of the single process's B 2 batch");
        loader_free(&r0); loader_free(&r1); loader_free(&one);
    }
    /* errors */
    int stream[12] = {5, 1, 2, 0, 3, 4, 5, 6, 7, 8, 9, 10};
    char ps[600];
    path_of(ps, sizeof(ps), "stream.bin");
    shard_write(ps, stream, 12, 2, err, sizeof(err));
    if (loader_init(&dl, ps, 1, 4, 256, err, sizeof(err)) == 0) { expect_fail(loader_use_docs(&dl, 1, err, sizeof(err)), err, "BOS", "a shard that does not start with BOS"); loader_free(&dl); }
    if (loader_init(&dl, pa, 1, 4, 256, err, sizeof(err)) == 0) { expect_fail(loader_use_docs(&dl, 0, err, sizeof(err)), err, "seed", "data seed 0"); loader_free(&dl); }
    {   /* docs 0 and 1: 3 rows */
        if (loader_init(&dl, pa, 2, 4, 256, err, sizeof(err)) == 0) { check(loader_use_docs(&dl, 1, err, sizeof(err)) == 0, "3 rows fill a batch of 2"); loader_free(&dl); }
    }
    if (loader_init(&dl, pb, 13, 1, 256, err, sizeof(err)) == 0) {   /* T 1: docs 2, 3 and 4 make 11 + 1 + 0 rows */
        expect_fail(loader_use_docs(&dl, 1, err, sizeof(err)), err, "fewer than one batch", "12 rows of T 1 for B 13");
        loader_free(&dl);
    }
}

/* ------------------------------------------------------------------------------------------- checkpoints */
static Config tiny_config(int pe) {
    Config c = config_default();
    c.vocab_size = 64; c.dim = 32; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.ffn_dim = 48; c.pe = pe;
    c.train_seq = 128; c.rope_base = 20000.0; c.norm_eps = 1e-6;
    c.rotary_frac = pe == PE_PARTIAL ? 0.25 : 1.0;
    return c;
}

/* The parameter count of docs/FORMATS.md, computed independently of ropepp.h. */
static size_t formats_num_params(const Config *c) {
    size_t V = c->vocab_size, C = c->dim, L = c->n_layers, H = c->n_heads, KV = c->n_kv_heads, F = c->ffn_dim;
    size_t HD = C / H;
    size_t HQ = c->pe == PE_ROPEPP_EH ? H / 2 : H, KVH = c->pe == PE_ROPEPP_EH ? KV / 2 : KV;
    size_t NA = c->pe == PE_ROPEPP_EC ? 2 * H : H;
    size_t fope = 0;
    if (c->pe == PE_FOPE) {
        size_t M = 0;
        for (size_t m = 0; m < HD / 2; m++)
            if (pow(c->rope_base, -2.0 * (double)m / (double)HD) >= 2.0 * M_PI / c->train_seq) M++;
        size_t P = M < HD / 4 ? M : HD / 4;
        fope = 2 * L * KVH * M * P;
    }
    return V * C + L * C + L * (HQ + 2 * KVH) * HD * C + L * C * NA * HD + L * C + L * 2 * F * C + L * C * F + C + V * C + fope;
}

static int same_double(double a, double b) { return memcmp(&a, &b, sizeof(double)) == 0; }

static int config_equal(const Config *a, const Config *b, char *why, size_t n) {
#define INTF(f) if (a->f != b->f) { snprintf(why, n, #f " %d != %d", a->f, b->f); return 0; }
#define DBLF(f) if (!same_double(a->f, b->f)) { snprintf(why, n, #f " %.17g != %.17g", a->f, b->f); return 0; }
    INTF(vocab_size) INTF(dim) INTF(n_layers) INTF(n_heads) INTF(n_kv_heads) INTF(ffn_dim) INTF(pe) INTF(train_seq)
    INTF(yarn_orig_len) INTF(tokenizer) INTF(init)
    DBLF(rope_base) DBLF(rotary_frac) DBLF(pi_factor) DBLF(yarn_factor) DBLF(ntk_factor) DBLF(norm_eps)
#undef INTF
#undef DBLF
    why[0] = 0;
    return 1;
}

/* Recompute a version 2 file's trailer after a deliberate edit, so that the edit reaches the checks behind the
   checksum. */
static void reseal(unsigned char *buf, size_t size, int32_t magic) {
    if (size < 1024 + TRAILER_BYTES) return;
    uint32_t crc = crc32_update(0, buf, size - TRAILER_BYTES);
    memcpy(buf + size - 8, &crc, 4);
    memcpy(buf + size - 4, &magic, 4);
}

/* A version 1 file as ./train wrote it before checksums: the version slot 1 and no trailer. */
static void to_version1(unsigned char *buf, size_t *size) {
    int32_t one = 1;
    memcpy(buf + 4, &one, 4);
    *size -= TRAILER_BYTES;
}

static void roundtrip_one(const Config *c0, const char *label) {
    char err[1024] = "", p[600], why[256];
    Model m;
    model_init(&m, c0, c0->init, 1234);
    size_t n = m.num_params;
    size_t want_n = formats_num_params(&m.cfg);
    check(n == want_n, "%s: model_init has %zu parameters, FORMATS.md's table gives %zu", label, n, want_n);
    double *ref = (double *)malloc(n * sizeof(double));
    model_params_to_host(&m, ref);
    for (int bpp = 4; bpp <= 8; bpp += 4) {
        path_of(p, sizeof(p), bpp == 4 ? "rt32.ckpt" : "rt64.ckpt");
        if (!check(checkpoint_write(p, &m.cfg, ref, n, bpp, err, sizeof(err)) == 0, "%s fp%d: checkpoint_write (%s)", label, bpp * 8, err)) continue;
        size_t fsz = 0;
        unsigned char *raw = read_bytes(p, &fsz);
        int hdr_ok = raw != NULL && fsz == 1024 + n * (size_t)bpp + 8;
        if (hdr_ok) {
            const int32_t *h = (const int32_t *)raw;
            int64_t np;
            memcpy(&np, h + 16, 8);
            double base, eps;
            memcpy(&base, h + 32, 8);
            memcpy(&eps, h + 42, 8);
            int32_t t[2];
            memcpy(t, raw + fsz - 8, 8);
            hdr_ok = h[0] == 20251207 && h[1] == 2 && h[2] == bpp && h[3] == m.cfg.vocab_size && h[4] == m.cfg.dim &&
                     h[5] == m.cfg.n_layers && h[6] == m.cfg.n_heads && h[7] == m.cfg.n_kv_heads && h[8] == m.cfg.ffn_dim &&
                     h[9] == m.cfg.pe && h[10] == m.cfg.train_seq && h[12] == m.cfg.tokenizer && h[13] == m.d.fope_m &&
                     h[14] == m.d.fope_p && h[15] == m.cfg.init && np == (int64_t)n && h[18] == 11 &&
                     same_double(base, m.cfg.rope_base) && same_double(eps, m.cfg.norm_eps) &&
                     (uint32_t)t[0] == crc32_update(0, raw, fsz - 8) && t[1] == 20251207;
        }
        check(hdr_ok, "%s fp%d: file is 1024 + %zu*%d + 8 bytes with the header slots and trailer of FORMATS.md", label, bpp * 8, n, bpp);
        /* the header parses on its own too */
        if (raw != NULL && fsz >= 1024) {
            Config hc; int hb = 0; size_t hn = 0;
            int rc = checkpoint_parse_header((const int32_t *)raw, fsz, &hc, &hb, &hn, err, sizeof(err));
            check(rc == 0 && hb == bpp && hn == n && config_equal(&hc, &m.cfg, why, sizeof(why)),
                  "%s fp%d: checkpoint_parse_header agrees (%s%s)", label, bpp * 8, rc ? err : "", why);
        }
        int payload_ok = raw != NULL && fsz == 1024 + n * (size_t)bpp + 8;
        for (size_t i = 0; payload_ok && i < n; i++) {
            if (bpp == 8) { double v; memcpy(&v, raw + 1024 + 8 * i, 8); payload_ok = same_double(v, ref[i]); }
            else { float v; memcpy(&v, raw + 1024 + 4 * i, 4); float w = (float)ref[i]; payload_ok = memcmp(&v, &w, 4) == 0; }
        }
        check(payload_ok, "%s fp%d: payload is every parameter in table order", label, bpp * 8);
        free(raw);

        Config c;
        double *got = NULL;
        size_t gn = 0;
        int rc = checkpoint_read(p, &c, &got, &gn, err, sizeof(err));
        if (!check(rc == 0, "%s fp%d: checkpoint_read (%s)", label, bpp * 8, rc ? err : "")) continue;
        check(config_equal(&c, &m.cfg, why, sizeof(why)), "%s fp%d: config round-trips exactly %s", label, bpp * 8, why);
        int exact = gn == n;
        size_t bad = 0;
        for (size_t i = 0; exact && i < n; i++) {
            double want = bpp == 8 ? ref[i] : (double)(float)ref[i];
            if (!same_double(got[i], want)) { exact = 0; bad = i; }
        }
        check(exact, "%s fp%d: %zu parameters round-trip bit-exactly%s", label, bpp * 8, n, exact ? "" : " (mismatch)");
        if (!exact) printf("       first mismatch at %zu\n", bad);
        free(got);
    }
    /* model_save / model_load */
    path_of(p, sizeof(p), "model_save.ckpt");
    if (check(model_save(&m, p, err, sizeof(err)) == 0, "%s: model_save (%s)", label, err)) {
        Model m2;
        if (check(model_load(&m2, p, err, sizeof(err)) == 0, "%s: model_load (%s)", label, err)) {
            double *got = (double *)malloc(m2.num_params * sizeof(double));
            model_params_to_host(&m2, got);
            int exact = m2.num_params == n && memcmp(got, ref, n * sizeof(double)) == 0 && config_equal(&m2.cfg, &m.cfg, why, sizeof(why));
            check(exact, "%s: model_save + model_load give the same config and parameters %s", label, why);
            free(got);
            model_free(&m2);
        }
    }
    free(ref);
    model_free(&m);
}

static void test_checkpoint_roundtrip(void) {
    for (int pe = 0; pe < PE_COUNT; pe++) {
        Config c = tiny_config(pe);
        char label[64];
        snprintf(label, sizeof(label), "round trip %s", pe_name(pe));
        roundtrip_one(&c, label);
    }
    Config c = tiny_config(PE_ROPEPP_EC);
    c.yarn_factor = 4.0; c.yarn_orig_len = 64; c.ntk_factor = 2.5; c.tokenizer = TOKENIZER_GPT2; c.init = INIT_HF;
    c.norm_eps = 1e-5; c.rope_base = 500000.0;
    roundtrip_one(&c, "round trip ropepp_ec + YaRN/NTK, gpt2 tokenizer, hf init");
    c = tiny_config(PE_PARTIAL);
    c.pi_factor = 3.0; c.rotary_frac = 0.5; c.tokenizer = TOKENIZER_LLAMA3; c.n_kv_heads = 1;
    roundtrip_one(&c, "round trip partial 0.5 + PI, kv heads 1");
}

/* rotary_frac (header slots 34-35) is partial's only (docs/FORMATS.md): other PEs write 1 whatever their config holds
   (./train's default is 0.25 for every PE), and a file that holds 0.25 there, as older ./train wrote, still reads,
   as 1; partial keeps its own. */
static void test_checkpoint_rotary_frac(void) {
    for (int k = 0; k < 3; k++) {
        int pe = k == 0 ? PE_ROPEPP_EC : k == 1 ? PE_ROPE : PE_PARTIAL;
        Config c = tiny_config(pe);
        c.rotary_frac = 0.25;
        Model m;
        model_init(&m, &c, c.init, 99);
        double *params = (double *)malloc(m.num_params * sizeof(double));
        model_params_to_host(&m, params);
        char p[600], err[1024] = "";
        path_of(p, sizeof(p), "frac.ckpt");
        double want = pe == PE_PARTIAL ? 0.25 : 1.0, stored = -1.0, read = -1.0;
        int ok = checkpoint_write(p, &c, params, m.num_params, 4, err, sizeof(err)) == 0;
        size_t n = 0;
        unsigned char *raw = ok ? read_bytes(p, &n) : NULL;
        if (raw != NULL && n >= 1024) memcpy(&stored, raw + 34 * 4, sizeof(double));
        check(ok && stored == want, "%s with rotary_frac 0.25 in its config: the checkpoint stores %g (want %g)", pe_name(pe), stored, want);
        if (raw != NULL && n >= 1024) {
            double old = 0.25;
            memcpy(raw + 34 * 4, &old, sizeof(double));   /* as ./train wrote it before, in version 1 */
            to_version1(raw, &n);
            ok = write_bytes(p, raw, n) == 0;
            Config cr;
            double *pr = NULL;
            size_t np = 0;
            ok = ok && checkpoint_read(p, &cr, &pr, &np, err, sizeof(err)) == 0;
            if (ok) read = cr.rotary_frac;
            check(ok && read == want, "%s file holding rotary_frac 0.25: reads%s, rotary_frac %g (want %g) %s", pe_name(pe), ok ? "" : " NOT", read, want, err);
            free(pr);
        }
        free(raw);
        free(params);
        model_free(&m);
    }
}

/* Build a mutated copy of a checkpoint file and check checkpoint_parse_header and checkpoint_read both refuse it. */
typedef struct {
    const unsigned char *base;
    size_t size;
} CkptBase;

static void mut_param(int32_t *h, unsigned char *all, size_t *size, void *arg);
static void ckpt_case(const CkptBase *b, void (*mut)(int32_t *h, unsigned char *all, size_t *size, void *arg), void *arg,
                      const char *keyword, const char *what) {
    char err[1024] = "", p[600], w[512];
    size_t size = b->size;
    unsigned char *buf = (unsigned char *)malloc(b->size + 64);
    memcpy(buf, b->base, b->size);
    memset(buf + b->size, 0x41, 64);
    int32_t h[256];
    memcpy(h, buf, 1024);
    mut(h, buf, &size, arg);
    memcpy(buf, h, 1024);
    reseal(buf, size, CKPT_MAGIC);
    Config c;
    int bpp = -7;
    size_t np = 12345;
    if (size >= 1024 && mut != mut_param) {   /* the header parser sees only the header, not the values */
        err[0] = 0;
        snprintf(w, sizeof(w), "checkpoint_parse_header: %s", what);
        expect_fail(checkpoint_parse_header(h, size, &c, &bpp, &np, err, sizeof(err)), err, keyword, w);
    }
    path_of(p, sizeof(p), "bad.ckpt");
    write_bytes(p, buf, size);
    double *params = NULL;
    err[0] = 0;
    snprintf(w, sizeof(w), "checkpoint_read: %s", what);
    int rc = checkpoint_read(p, &c, &params, &np, err, sizeof(err));
    expect_fail(rc, err, keyword, w);
    if (rc == 0) free(params);
    else if (params != NULL) check(0, "checkpoint_read: %s: left a pointer in *params on failure", what);
    free(buf);
}

typedef struct { int slot; int32_t value; } SlotSet;
static void mut_slots(int32_t *h, unsigned char *all, size_t *size, void *arg) {
    (void)all; (void)size;
    for (const SlotSet *s = (const SlotSet *)arg; s->slot >= 0; s++) h[s->slot] = s->value;
}
typedef struct { int slot; double value; } DSet;
static void mut_double(int32_t *h, unsigned char *all, size_t *size, void *arg) {
    (void)all; (void)size;
    const DSet *d = (const DSet *)arg;
    memcpy(h + d->slot, &d->value, 8);
}
static void mut_i64(int32_t *h, unsigned char *all, size_t *size, void *arg) {
    (void)all; (void)size;
    int64_t v;
    memcpy(&v, h + 16, 8);
    v += *(const int64_t *)arg;
    memcpy(h + 16, &v, 8);
}
static void mut_size(int32_t *h, unsigned char *all, size_t *size, void *arg) {
    (void)h; (void)all;
    long delta = *(const long *)arg;
    *size = (size_t)((long)*size + delta);
}
static void mut_set_size(int32_t *h, unsigned char *all, size_t *size, void *arg) {
    (void)h; (void)all;
    *size = *(const size_t *)arg;
}
typedef struct { size_t index; double value; int bpp; } PSet;
static void mut_param(int32_t *h, unsigned char *all, size_t *size, void *arg) {
    (void)h; (void)size;
    const PSet *ps = (const PSet *)arg;
    if (ps->bpp == 8) memcpy(all + 1024 + 8 * ps->index, &ps->value, 8);
    else { float f = (float)ps->value; memcpy(all + 1024 + 4 * ps->index, &f, 4); }
}

static void test_checkpoint_bad(void) {
    char err[1024] = "", p[600], label[256];
    Config c = tiny_config(PE_ROPE);
    Model m;
    model_init(&m, &c, INIT_TORCH_DEFAULT, 7);
    path_of(p, sizeof(p), "base32.ckpt");
    model_save(&m, p, err, sizeof(err));
    size_t n32 = 0, n64 = 0;
    unsigned char *b32 = read_bytes(p, &n32);
    double *ref = (double *)malloc(m.num_params * sizeof(double));
    model_params_to_host(&m, ref);
    path_of(p, sizeof(p), "base64.ckpt");
    checkpoint_write(p, &m.cfg, ref, m.num_params, 8, err, sizeof(err));
    unsigned char *b64 = read_bytes(p, &n64);
    if (!check(b32 && b64 && n32 == 1032 + 4 * m.num_params && n64 == 1032 + 8 * m.num_params, "base checkpoints for the bad cases written")) {
        free(b32); free(b64); free(ref); model_free(&m);
        return;
    }
    CkptBase B32 = {b32, n32}, B64 = {b64, n64};

    { SlotSet s[] = {{0, 0}, {-1, 0}};                      ckpt_case(&B32, mut_slots, s, "magic", "magic 0"); }
    { SlotSet s[] = {{0, SHARD_MAGIC_U16}, {-1, 0}};        ckpt_case(&B32, mut_slots, s, "magic", "a shard's magic"); }
    { SlotSet s[] = {{0, STATE_MAGIC}, {-1, 0}};            ckpt_case(&B32, mut_slots, s, "magic", "a state file's magic"); }
    { SlotSet s[] = {{1, 3}, {-1, 0}};                      ckpt_case(&B32, mut_slots, s, "version", "version 3"); }
    { SlotSet s[] = {{1, 0}, {-1, 0}};                      ckpt_case(&B64, mut_slots, s, "version", "version 0 (fp64 file)"); }
    { SlotSet s[] = {{2, 2}, {-1, 0}};                      ckpt_case(&B32, mut_slots, s, "bytes per parameter", "2 bytes per parameter"); }
    { SlotSet s[] = {{2, 16}, {-1, 0}};                     ckpt_case(&B64, mut_slots, s, "bytes per parameter", "16 bytes per parameter"); }
    { SlotSet s[] = {{2, 0}, {-1, 0}};                      ckpt_case(&B32, mut_slots, s, "bytes per parameter", "0 bytes per parameter"); }
    { SlotSet s[] = {{2, 8}, {-1, 0}};                      ckpt_case(&B32, mut_slots, s, "truncated", "fp32 data labelled fp64"); }
    { SlotSet s[] = {{2, 4}, {-1, 0}};                      ckpt_case(&B64, mut_slots, s, "truncated", "fp64 data labelled fp32"); }
    { SlotSet s[] = {{9, 7}, {-1, 0}};                      ckpt_case(&B32, mut_slots, s, "position embedding", "position embedding id 7"); }
    { SlotSet s[] = {{9, -1}, {-1, 0}};                     ckpt_case(&B32, mut_slots, s, "position embedding", "position embedding id -1"); }
    { SlotSet s[] = {{9, INT32_MAX}, {-1, 0}};              ckpt_case(&B32, mut_slots, s, "position embedding", "position embedding id INT32_MAX"); }
    { SlotSet s[] = {{6, 3}, {-1, 0}};                      ckpt_case(&B32, mut_slots, s, "divide dim", "heads 3 with dim 32"); }
    { SlotSet s[] = {{6, 0}, {-1, 0}};                      ckpt_case(&B32, mut_slots, s, "heads", "heads 0"); }
    { SlotSet s[] = {{6, -4}, {-1, 0}};                     ckpt_case(&B32, mut_slots, s, "heads", "heads -4"); }
    { SlotSet s[] = {{7, 3}, {-1, 0}};                      ckpt_case(&B32, mut_slots, s, "kv heads", "kv heads 3 with heads 4"); }
    { SlotSet s[] = {{7, 0}, {-1, 0}};                      ckpt_case(&B32, mut_slots, s, "kv heads", "kv heads 0"); }
    { SlotSet s[] = {{7, 8}, {-1, 0}};                      ckpt_case(&B32, mut_slots, s, "kv heads", "kv heads 8 with heads 4"); }
    { SlotSet s[] = {{9, PE_ROPEPP_EH}, {4, 48}, {6, 3}, {7, 1}, {-1, 0}}; ckpt_case(&B32, mut_slots, s, "even", "ropepp_eh with 3 heads"); }
    { SlotSet s[] = {{9, PE_ROPEPP_EH}, {7, 1}, {-1, 0}};  ckpt_case(&B32, mut_slots, s, "even", "ropepp_eh with 1 kv head"); }
    { SlotSet s[] = {{3, 0}, {-1, 0}};                      ckpt_case(&B32, mut_slots, s, "vocab", "vocab 0"); }
    { SlotSet s[] = {{4, 0}, {-1, 0}};                      ckpt_case(&B32, mut_slots, s, "dim", "dim 0"); }
    { SlotSet s[] = {{5, 0}, {-1, 0}};                      ckpt_case(&B32, mut_slots, s, "layers", "layers 0"); }
    { SlotSet s[] = {{8, -1}, {-1, 0}};                     ckpt_case(&B32, mut_slots, s, "ffn", "ffn -1"); }
    { SlotSet s[] = {{4, 30}, {6, 2}, {7, 2}, {-1, 0}};     ckpt_case(&B32, mut_slots, s, "even", "rope with an odd head dim (30/2)"); }
    { SlotSet s[] = {{10, 0}, {-1, 0}};                     ckpt_case(&B32, mut_slots, s, "train_seq", "train_seq 0"); }
    { SlotSet s[] = {{11, -1}, {-1, 0}};                    ckpt_case(&B32, mut_slots, s, "yarn", "yarn original length -1"); }
    { SlotSet s[] = {{12, 3}, {-1, 0}};                     ckpt_case(&B32, mut_slots, s, "tokenizer", "tokenizer id 3"); }
    { SlotSet s[] = {{13, 4}, {-1, 0}};                     ckpt_case(&B32, mut_slots, s, "FoPE", "FoPE M 4 on a rope model"); }
    { SlotSet s[] = {{18, 10}, {-1, 0}};                    ckpt_case(&B32, mut_slots, s, "tensors", "10 tensors"); }
    { SlotSet s[] = {{3, 1 << 30}, {4, 65536}, {6, 4}, {7, 2}, {-1, 0}}; ckpt_case(&B32, mut_slots, s, "parameters", "vocab 2^30 x dim 65536 (count mismatch, nothing allocated)"); }
    { int64_t d = 1;                                        ckpt_case(&B32, mut_i64, &d, "parameters", "parameter count + 1"); }
    { int64_t d = -1;                                       ckpt_case(&B64, mut_i64, &d, "parameters", "parameter count - 1 (fp64)"); }
    { int64_t d = (int64_t)1 << 40;                         ckpt_case(&B32, mut_i64, &d, "parameters", "parameter count + 2^40"); }
    { DSet d = {32, NAN};                                   ckpt_case(&B32, mut_double, &d, "rope base", "rope base NaN"); }
    { DSet d = {32, 0.5};                                   ckpt_case(&B32, mut_double, &d, "rope base", "rope base 0.5"); }
    { DSet d = {42, 0.0};                                   ckpt_case(&B32, mut_double, &d, "eps", "norm eps 0"); }
    { DSet d = {42, NAN};                                   ckpt_case(&B32, mut_double, &d, "eps", "norm eps NaN"); }
    { DSet d = {36, 0.5};                                   ckpt_case(&B32, mut_double, &d, "PI", "PI factor 0.5"); }
    { DSet d = {38, INFINITY};                              ckpt_case(&B32, mut_double, &d, "YaRN", "YaRN factor inf"); }
    { DSet d = {40, NAN};                                   ckpt_case(&B32, mut_double, &d, "NTK", "NTK factor NaN"); }
    {
        /* partial with a nonsense rotary fraction (also: converting it to an int must not be undefined) */
        double bad[] = {NAN, 1e300, -1e300, -1.0, 0.0, 2.0, INFINITY};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            DSet d = {34, bad[i]};
            Config pc = tiny_config(PE_PARTIAL);
            Model pm;
            model_init(&pm, &pc, 0, 1);
            char pp[600], e2[512];
            path_of(pp, sizeof(pp), "partial_base.ckpt");
            model_save(&pm, pp, e2, sizeof(e2));
            size_t pn = 0;
            unsigned char *pb = read_bytes(pp, &pn);
            CkptBase PB = {pb, pn};
            snprintf(label, sizeof(label), "partial with rotary fraction %g", bad[i]);
            ckpt_case(&PB, mut_double, &d, "rotary fraction", label);
            free(pb);
            model_free(&pm);
        }
    }
    { long d = -1;  ckpt_case(&B32, mut_size, &d, "truncated", "fp32 file 1 byte short"); }
    { long d = -4;  ckpt_case(&B32, mut_size, &d, "truncated", "fp32 file one parameter short"); }
    { long d = 4;   ckpt_case(&B32, mut_size, &d, "truncated", "fp32 file with 4 extra bytes"); }
    { long d = -8;  ckpt_case(&B64, mut_size, &d, "truncated", "fp64 file one parameter short"); }
    { long d = 1;   ckpt_case(&B64, mut_size, &d, "truncated", "fp64 file with 1 extra byte"); }
    { size_t s = 1024; ckpt_case(&B32, mut_set_size, &s, "truncated", "header only"); }
    { size_t s = 1023; ckpt_case(&B32, mut_set_size, &s, "shorter", "1023 bytes (less than a header)"); }
    { size_t s = 0;    ckpt_case(&B32, mut_set_size, &s, "shorter", "empty file"); }
    { PSet ps = {5, NAN, 4};       ckpt_case(&B32, mut_param, &ps, "not finite", "fp32 parameter 5 is NaN"); }
    { PSet ps = {m.num_params - 1, INFINITY, 4}; ckpt_case(&B32, mut_param, &ps, "not finite", "fp32 last parameter is +inf"); }
    { PSet ps = {0, -INFINITY, 8}; ckpt_case(&B64, mut_param, &ps, "not finite", "fp64 parameter 0 is -inf"); }
    { PSet ps = {77, NAN, 8};      ckpt_case(&B64, mut_param, &ps, "parameter 77", "fp64 parameter 77 is NaN (the index is named)"); }

    /* missing file, a directory, a shard passed as a checkpoint */
    Config cc;
    double *params = NULL;
    size_t np;
    path_of(p, sizeof(p), "nonexistent.ckpt");
    err[0] = 0;
    expect_fail(checkpoint_read(p, &cc, &params, &np, err, sizeof(err)), err, "cannot open", "checkpoint_read: missing file");
    check(contains_ci(err, "nonexistent.ckpt"), "checkpoint_read: the message names the missing path");
    path_of(p, sizeof(p), "adir.ckpt");
    mkdir(p, 0755);
    err[0] = 0;
    {
        int rc = checkpoint_read(p, &cc, &params, &np, err, sizeof(err));
        check(rc == -1 && err[0] && !strchr(err, '\n'), "checkpoint_read: a directory is refused (\"%s\")", err);
        if (rc == 0) free(params);
    }
    {
        int t[64];
        for (int i = 0; i < 64; i++) t[i] = i;
        path_of(p, sizeof(p), "shard_as.ckpt");
        shard_write(p, t, 64, 2, err, sizeof(err));
        err[0] = 0;
        expect_fail(checkpoint_read(p, &cc, &params, &np, err, sizeof(err)), err, "magic", "checkpoint_read: a token shard");
    }

    /* checkpoint_write: bad arguments must not produce a file that no reader accepts */
    path_of(p, sizeof(p), "no_such_dir/x.ckpt");
    err[0] = 0;
    expect_fail(checkpoint_write(p, &m.cfg, ref, m.num_params, 4, err, sizeof(err)), err, "cannot write", "checkpoint_write into a missing folder");
    path_of(p, sizeof(p), "w_bpp3.ckpt");
    err[0] = 0;
    expect_fail(checkpoint_write(p, &m.cfg, ref, m.num_params, 3, err, sizeof(err)), err, "bytes per parameter",
                "checkpoint_write refuses bytes_per_param 3");
    path_of(p, sizeof(p), "w_count.ckpt");
    err[0] = 0;
    expect_fail(checkpoint_write(p, &m.cfg, ref, m.num_params - 1, 4, err, sizeof(err)), err, "parameters",
                "checkpoint_write refuses a parameter count that does not match the config");
    {
        Config bc = m.cfg;
        bc.n_heads = 3;
        path_of(p, sizeof(p), "w_cfg.ckpt");
        err[0] = 0;
        expect_fail(checkpoint_write(p, &bc, ref, m.num_params, 4, err, sizeof(err)), err, "heads",
                    "checkpoint_write refuses an invalid config (heads 3, dim 32)");
    }
    free(ref);
    free(b32);
    free(b64);
    model_free(&m);
}

/* ------------------------------------------------------------------------------------------- state files */
static void train_one_step(Model *m) {
    int in[8], tg[8];
    for (int i = 0; i < 8; i++) { in[i] = (i * 5 + 1) % m->cfg.vocab_size; tg[i] = (i * 3 + 2) % m->cfg.vocab_size; }
    model_forward(m, in, tg, 2, 4);
    model_zero_grad(m);
    model_backward(m);
    model_update(m, 1e-3, 0.9, 0.99, 1e-8, 0.1, 0.0);
}

static void state_case(const unsigned char *base, size_t size, Model *fresh, int slot, int32_t value, long dsize,
                       const char *keyword, const char *what) {
    char err[1024] = "", p[600], w[400];
    unsigned char *buf = (unsigned char *)calloc(1, size + 64);
    memcpy(buf, base, size);
    if (slot >= 0) memcpy(buf + 4 * slot, &value, 4);
    size_t n = (size_t)((long)size + dsize);
    reseal(buf, n, STATE_MAGIC);
    path_of(p, sizeof(p), "bad.state");
    write_bytes(p, buf, n);
    TrainState s = {-99, -99, -99, 99, 0};
    int step0 = fresh->step;
    err[0] = 0;
    snprintf(w, sizeof(w), "state_read: %s", what);
    int rc = state_read(fresh, &s, p, err, sizeof(err));
    expect_fail(rc, err, keyword, w);
    if (rc != 0 && (s.step != -99 || fresh->step != step0)) check(0, "state_read: %s: changed the state or model step on failure", what);
    free(buf);
}

static void test_state(void) {
    char err[1024] = "", p[600];
    Config c = tiny_config(PE_ROPEPP_EH);
    Model m;
    model_init(&m, &c, INIT_TORCH_DEFAULT, 3);
    train_one_step(&m);
    train_one_step(&m);
    TrainState s = {2, 3, 123456789012LL, 0xDEADBEEFCAFEBABEull, 0x89ABCDEFu};
    path_of(p, sizeof(p), "good.state");
    if (!check(state_write(&m, &s, p, err, sizeof(err)) == 0, "state_write after 2 AdamW steps (%s)", err)) { model_free(&m); return; }
    size_t sz = 0;
    unsigned char *base = read_bytes(p, &sz);
    size_t n = m.num_params;
    check(base && sz == 1032 + 2 * n * sizeof(floatM), "state file is 1024 + 2 x %zu x %zu + 8 bytes (FORMATS.md)", n, sizeof(floatM));
    if (base && sz >= 1024) {
        const int32_t *h = (const int32_t *)base;
        int64_t np, sh, ps; uint64_t rng;
        memcpy(&np, h + 4, 8); memcpy(&sh, h + 6, 8); memcpy(&ps, h + 8, 8); memcpy(&rng, h + 10, 8);
        int32_t t[2];
        memcpy(t, base + sz - 8, 8);
        check(h[0] == 20251209 && h[1] == 2 && h[2] == (int)sizeof(floatM) && h[3] == 2 && np == (int64_t)n && sh == 3 &&
              ps == 123456789012LL && rng == 0xDEADBEEFCAFEBABEull && (uint32_t)h[14] == 0x89ABCDEFu &&
              (uint32_t)t[0] == crc32_update(0, base, sz - 8) && t[1] == 20251209, "state header slots and trailer as in FORMATS.md");
    }
    {
        Model m2;
        model_init(&m2, &c, INIT_TORCH_DEFAULT, 3);
        TrainState s2;
        memset(&s2, 0, sizeof(s2));
        int rc = state_read(&m2, &s2, p, err, sizeof(err));
        check(rc == 0, "state_read of a good file (%s)", rc ? err : "");
        check(s2.step == 2 && s2.shard == 3 && s2.pos == 123456789012LL && s2.rng == 0xDEADBEEFCAFEBABEull && m2.step == 2 &&
              s2.ckpt_checksum == 0x89ABCDEFu, "state round-trips step, loader shard/pos, RNG and its checkpoint's checksum");
        int same = rc == 0 && m2.adam_m && m2.adam_v;
        if (same) {
            floatM *a = (floatM *)malloc(n * sizeof(floatM)), *b = (floatM *)malloc(n * sizeof(floatM));
            backend_to_host(a, m.adam_m, n * sizeof(floatM)); backend_to_host(b, m2.adam_m, n * sizeof(floatM));
            same = memcmp(a, b, n * sizeof(floatM)) == 0;
            backend_to_host(a, m.adam_v, n * sizeof(floatM)); backend_to_host(b, m2.adam_v, n * sizeof(floatM));
            same = same && memcmp(a, b, n * sizeof(floatM)) == 0;
            free(a); free(b);
        }
        check(same, "AdamW m and v round-trip bit-exactly");
        /* reading again into a model that already has moments reuses them */
        check(state_read(&m2, &s2, p, err, sizeof(err)) == 0, "state_read twice into the same model");
        model_free(&m2);
    }
    {
        /* a fresh model (no moments yet) writes a header-only state */
        Model f;
        model_init(&f, &c, INIT_TORCH_DEFAULT, 3);
        TrainState s0 = {0, 0, 0, 42, 0};
        char p0[600];
        path_of(p0, sizeof(p0), "fresh.state");
        check(state_write(&f, &s0, p0, err, sizeof(err)) == 0, "state_write before any update");
        size_t fs = 0;
        unsigned char *fb = read_bytes(p0, &fs);
        check(fs == 1032, "a state without moments is just the 1024-byte header and the trailer");
        free(fb);
        Model f2;
        model_init(&f2, &c, INIT_TORCH_DEFAULT, 3);
        TrainState r;
        check(state_read(&f2, &r, p0, err, sizeof(err)) == 0 && r.rng == 42 && f2.adam_m == NULL, "state_read of a header-only state");
        model_free(&f2);
        model_free(&f);
    }

    Model fresh;
    model_init(&fresh, &c, INIT_TORCH_DEFAULT, 3);
    state_case(base, sz, &fresh, 0, 0, 0, "magic", "magic 0");
    state_case(base, sz, &fresh, 0, CKPT_MAGIC, 0, "magic", "a checkpoint's magic");
    state_case(base, sz, &fresh, 1, 3, 0, "version", "version 3");
    state_case(base, sz, &fresh, 2, sizeof(floatM) == 4 ? 8 : 4, 0, "precision", "other bytes per value than this build");
    state_case(base, sz, &fresh, 3, -1, 0, "negative", "step -1");
    state_case(base, sz, &fresh, 7, -1, 0, "negative", "negative loader shard");
    state_case(base, sz, &fresh, 9, INT32_MIN, 0, "negative", "negative loader position");
    state_case(base, sz, &fresh, 12, 2, 0, "moments", "moments flag 2");
    state_case(base, sz, &fresh, 4, (int32_t)(n + 1), 0, "parameter count", "parameter count + 1 in the header");
    state_case(base, sz, &fresh, 5, 1, 0, "parameter count", "parameter count + 2^32 in the header");
    state_case(base, sz, &fresh, -1, 0, -1, "truncated", "1 byte short");
    state_case(base, sz, &fresh, -1, 0, -(long)(n * sizeof(floatM)), "truncated", "the v moments missing");
    state_case(base, sz, &fresh, -1, 0, 8, "truncated", "8 extra bytes");
    state_case(base, sz, &fresh, -1, 0, -(long)sz + 1024, "truncated", "header only but moments flag set");
    state_case(base, sz, &fresh, -1, 0, -(long)sz + 100, "shorter", "100 bytes");
    state_case(base, sz, &fresh, -1, 0, -(long)sz, "shorter", "empty file");
    {
        /* the state of another model: parameter count mismatch */
        Config oc = tiny_config(PE_ROPE);
        Model other;
        model_init(&other, &oc, INIT_TORCH_DEFAULT, 3);
        TrainState r;
        err[0] = 0;
        expect_fail(state_read(&other, &r, p, err, sizeof(err)), err, "parameter count", "state_read: the state of a different model");
        model_free(&other);
    }
    {
        TrainState r;
        char q[600];
        path_of(q, sizeof(q), "nonexistent.state");
        err[0] = 0;
        expect_fail(state_read(&fresh, &r, q, err, sizeof(err)), err, "cannot open", "state_read: missing file");
        path_of(q, sizeof(q), "base32.ckpt");
        err[0] = 0;
        expect_fail(state_read(&fresh, &r, q, err, sizeof(err)), err, "magic", "state_read: a checkpoint file");
    }
    free(base);
    model_free(&fresh);
    model_free(&m);
}

/* ------------------------------------------------------------------------------------------- checksums */
/* crc32_update against published values (the CRC catalogue's check value, Python's zlib.crc32), then one flipped
   byte anywhere in a checkpoint's header or trailer and in each tensor refused as corrupt (checkpoint_read and
   checkpoint_checksum), the same for a state file, and version 1 files (no trailer) still load. */
static void flip_case(const unsigned char *base, size_t size, size_t at, int is_state, Model *fresh, int *refused, int *named) {
    char err[1024] = "", p[600];
    unsigned char *buf = (unsigned char *)malloc(size);
    memcpy(buf, base, size);
    buf[at] ^= 0x10;
    path_of(p, sizeof(p), is_state ? "flip.state" : "flip.ckpt");
    write_bytes(p, buf, size);
    free(buf);
    int rc, rc2 = -1;
    if (is_state) {
        TrainState s;
        rc = state_read(fresh, &s, p, err, sizeof(err));
    } else {
        Config c;
        double *params = NULL;
        size_t np;
        uint32_t crc;
        char e2[1024] = "";
        rc = checkpoint_read(p, &c, &params, &np, err, sizeof(err));
        if (rc == 0) free(params);
        rc2 = checkpoint_checksum(p, &crc, e2, sizeof(e2));
        if (rc2 == 0) rc = 0;
    }
    if (rc == -1 && contains_ci(err, "corrupt") && !strchr(err, '\n')) (*refused)++;
    else printf("       byte %zu flipped: rc %d, \"%s\"\n", at, rc, err);
    if (contains_ci(err, p)) (*named)++;
}

static void test_checksums(void) {
    check(crc32_update(0, "123456789", 9) == 0xCBF43926u, "CRC-32 of \"123456789\" is 0xCBF43926 (the CRC catalogue's check value)");
    check(crc32_update(0, "a", 1) == 0xE8B7BE43u, "CRC-32 of \"a\" is 0xE8B7BE43 (Python zlib.crc32(b'a'))");
    unsigned char *big = (unsigned char *)malloc(256 * 4099);
    for (size_t i = 0; i < 256 * 4099; i++) big[i] = (unsigned char)i;
    uint32_t chained = crc32_update(crc32_update(0, big, 1000), big + 1000, 256 * 4099 - 1000);
    check(crc32_update(0, big, 256 * 4099) == 0x1FF605C6u && chained == 0x1FF605C6u,
          "CRC-32 of bytes 0..255 x 4099 is 0x1FF605C6 (zlib.crc32(bytes(range(256))*4099)), in one call or chained");
    unsigned char zero[1024] = {0};
    check(crc32_update(0, zero, 1024) == 0xEFB5AF2Eu, "CRC-32 of 1024 zero bytes is 0xEFB5AF2E (zlib.crc32(bytes(1024)))");
    free(big);

    char err[1024] = "", p[600];
    Config c = tiny_config(PE_ROPE);
    Model m;
    model_init(&m, &c, INIT_TORCH_DEFAULT, 5);
    path_of(p, sizeof(p), "sum.ckpt");
    if (!check(model_save(&m, p, err, sizeof(err)) == 0, "checksums: base checkpoint written (%s)", err)) { model_free(&m); return; }
    size_t size = 0;
    unsigned char *base = read_bytes(p, &size);
    uint32_t crc = 0;
    check(checkpoint_checksum(p, &crc, err, sizeof(err)) == 0 && crc == crc32_update(0, base, size - 8) && crc == *(uint32_t *)(base + size - 8),
          "checkpoint_checksum returns the trailer's CRC-32 of the header and parameters");
    int refused = 0, named = 0;
    for (size_t at = 0; at < 1024; at++) flip_case(base, size, at, 0, NULL, &refused, &named);
    check(refused == 1024 && named == 1024, "each of the 1024 header bytes flipped (rope base, YaRN factor, norm eps, ... too): "
          "%d refused as corrupt by checkpoint_read and checkpoint_checksum, %d messages name the file", refused, named);
    size_t off = 1024;
    for (int t = 0; t < NUM_PARAM_TENSORS; t++) {
        size_t bytes = m.param_sizes[t] * 4;
        if (bytes == 0) continue;
        refused = named = 0;
        size_t at[3] = {off, off + bytes / 2 + 1, off + bytes - 1};
        for (int k = 0; k < 3; k++) flip_case(base, size, at[k], 0, NULL, &refused, &named);
        check(refused == 3 && named == 3, "tensor %d (%zu bytes): its first, a middle and its last byte flipped are refused as corrupt, naming the file", t, bytes);
        off += bytes;
    }
    refused = named = 0;
    for (size_t at = size - 8; at < size; at++) flip_case(base, size, at, 0, NULL, &refused, &named);
    check(off == size - 8 && refused == 8 && named == 8, "each of the 8 trailer bytes (CRC-32, end marker) flipped is refused as corrupt");

    /* version 1: the same bytes without the trailer load, with checksum 0 (none stored) */
    {
        unsigned char *old = (unsigned char *)malloc(size);
        memcpy(old, base, size);
        size_t n1 = size;
        to_version1(old, &n1);
        path_of(p, sizeof(p), "old_v1.ckpt");
        write_bytes(p, old, n1);
        Config c1;
        double *params = NULL;
        size_t np = 0;
        uint32_t sum = 1;
        int rc = checkpoint_read(p, &c1, &params, &np, err, sizeof(err));
        int same = rc == 0 && np == m.num_params;
        for (size_t i = 0; same && i < np; i++) { float f; memcpy(&f, base + 1024 + 4 * i, 4); same = params[i] == (double)f; }
        check(same && checkpoint_checksum(p, &sum, err, sizeof(err)) == 0 && sum == 0,
              "a version 1 checkpoint (no trailer) still loads with the same parameters; its checksum reads as 0 (%s)", rc ? err : "");
        free(params);
        free(old);
        size_t fn = 0;
        unsigned char *fx = read_bytes("tests/fixtures/rope.ckpt", &fn);
        int version = fx != NULL && fn >= 8 ? ((int32_t *)fx)[1] : -1;
        free(fx);
        rc = checkpoint_read("tests/fixtures/rope.ckpt", &c1, &params, &np, err, sizeof(err));
        check(rc == 0 && checkpoint_checksum("tests/fixtures/rope.ckpt", &sum, err, sizeof(err)) == 0 && (version != 1 || sum == 0),
              "the committed fixture tests/fixtures/rope.ckpt (version %d; make fixtures writes version 2) loads (%s)", version, rc ? err : "");
        if (rc == 0) free(params);
    }
    free(base);

    /* a state file: header, m, v and trailer */
    train_one_step(&m);
    TrainState s = {1, 0, 16, 7, crc};
    path_of(p, sizeof(p), "sum.state");
    if (check(state_write(&m, &s, p, err, sizeof(err)) == 0, "checksums: base state written (%s)", err)) {
        unsigned char *sb = read_bytes(p, &size);
        Model fresh;
        model_init(&fresh, &c, INIT_TORCH_DEFAULT, 5);
        size_t mb = m.num_params * sizeof(floatM);
        size_t at[] = {0, 12, 14 * 4 + 2, 1023, 1024, 1024 + mb / 2, 1024 + mb, 1024 + mb + mb / 3, size - 9, size - 8, size - 1};
        refused = named = 0;
        int nat = (int)(sizeof(at) / sizeof(at[0]));
        for (int k = 0; k < nat; k++) flip_case(sb, size, at[k], 1, &fresh, &refused, &named);
        check(refused == nat && named == nat, "a state with one byte flipped in its header, m, v or trailer: %d of %d refused as corrupt, naming the file", refused, nat);
        size_t n1 = size;
        to_version1(sb, &n1);
        path_of(p, sizeof(p), "old_v1.state");
        write_bytes(p, sb, n1);
        TrainState r;
        memset(&r, 0, sizeof(r));
        int rc = state_read(&fresh, &r, p, err, sizeof(err));
        check(rc == 0 && r.step == 1 && r.pos == 16 && r.rng == 7 && r.ckpt_checksum == 0,
              "a version 1 state (no trailer, no checkpoint checksum) still loads (%s)", rc ? err : "");
        model_free(&fresh);
        free(sb);
    }
    model_free(&m);
}

/* ------------------------------------------------------------------------------------------- checkpoint_list */
/* What --resume picks from: complete checkpoints only, never a .tmp file or a state without its model; every one
   of a folder, beyond the 4096 the list once stopped at (issue 32). */
static void test_checkpoint_list(void) {
    char dir[600], p[700];
    path_of(dir, sizeof(dir), "list");
    mkdir(dir, 0755);
    const char *names[] = {"model_00000003.ckpt", "model_00000003.state", "model_00000010.ckpt", "model_00000010.state",
                           "model_00000001.ckpt", "model_00000001.state", "model_00000007.ckpt",
                           "model_00000012.ckpt.tmp", "model_00000012.state", "model_00000013.state",
                           "model_00000014.state.tmp", "model_00000020.ckpt.bak", "model_00000021.ckptx",
                           "xmodel_00000022.ckpt", "notes.txt",
                           /* not the name ckpt_path writes for any step: 8 digits at least, no sign, no overflow */
                           "model_30.ckpt", "model_-0000004.ckpt", "model_99999999999.ckpt", "model_0000000x.ckpt"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        write_bytes(p, "x", 1);
    }
    int *steps;
    int64_t n = checkpoint_list(dir, 1, &steps);
    check(n == 3 && steps[0] == 1 && steps[1] == 3 && steps[2] == 10,
          "checkpoint_list with states: steps 1 3 10 ascending (got %lld: %d %d %d); .tmp, .bak, lone states and other names ignored",
          (long long)n, n > 0 ? steps[0] : -1, n > 1 ? steps[1] : -1, n > 2 ? steps[2] : -1);
    free(steps);
    n = checkpoint_list(dir, 0, &steps);
    check(n == 4 && steps[0] == 1 && steps[1] == 3 && steps[2] == 7 && steps[3] == 10,
          "checkpoint_list without states: steps 1 3 7 10 (got %lld)", (long long)n);
    free(steps);
    check(checkpoint_newest(dir, 1) == 10 && checkpoint_newest(dir, 0) == 10, "checkpoint_newest: step 10, with or without states");
    path_of(p, sizeof(p), "no_such_folder");
    check(checkpoint_list(p, 1, &steps) == 0 && steps == NULL && checkpoint_newest(p, 0) == -1,
          "checkpoint_list of a missing folder is empty, and it has no newest");
    remove_tree(dir);
    /* 5000 checkpoints (more than the 4096 the list once stopped at; --keep allows 1,048,576), created in a shuffled
       order: all listed, the newest found */
    mkdir(dir, 0755);
    int want = 5000, order_ok = 1;
    for (int i = 0; i < want; i++) {
        snprintf(p, sizeof(p), "%s/model_%08d.ckpt", dir, (int)((i * 7919LL) % want));
        write_bytes(p, "", 0);
    }
    n = checkpoint_list(dir, 0, &steps);
    for (int64_t i = 0; i < n; i++) order_ok &= steps[i] == (int)i;
    check(n == want && order_ok && checkpoint_newest(dir, 0) == want - 1,
          "a folder of %d checkpoints: all listed, ascending, the newest is step %d (got %lld listed, newest %d)", want, want - 1,
          (long long)n, checkpoint_newest(dir, 0));
    free(steps);
    remove_tree(dir);
}

/* ------------------------------------------------------------------------------------------- crash safety */
static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {}
}

/* Files in tmpdir/crash/ other than the checkpoint itself (the writer's temporary). */
static int stray_files(const char *dir, const char *keep) {
    DIR *d = opendir(dir);
    if (d == NULL) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, keep)) n++;
    closedir(d);
    return n;
}

static void test_crash_safety(void) {
    char err[1024] = "", dir[600], P[700];
    path_of(dir, sizeof(dir), "crash");
    mkdir(dir, 0755);
    snprintf(P, sizeof(P), "%s/model.ckpt", dir);
    /* 16.5M parameters, 132 MB as fp64 */
    Config c = config_default();
    c.vocab_size = 256; c.dim = 1024; c.n_layers = 1; c.n_heads = 8; c.n_kv_heads = 8; c.ffn_dim = 4096; c.pe = PE_ROPE;
    c.train_seq = 128;
    size_t n = formats_num_params(&c);
    double *X = (double *)malloc(n * sizeof(double)), *Y = (double *)malloc(n * sizeof(double));
    if (X == NULL || Y == NULL) { check(0, "crash safety: cannot allocate 2 x %zu doubles", n); free(X); free(Y); return; }
    for (size_t i = 0; i < n; i++) { X[i] = (double)(i % 1999) * 1e-3 - 1.0; Y[i] = -X[i] - 0.25; }
    double t0 = (double)clock();
    if (!check(checkpoint_write(P, &c, X, n, 8, err, sizeof(err)) == 0, "crash safety: wrote the original %.0f MB checkpoint (%s)",
               (1024 + 8.0 * n) / 1e6, err)) { free(X); free(Y); return; }
    (void)t0;
    int rounds = 6, interrupted = 0, all_ok = 1, replaced = 0;
    for (int r = 0; r < rounds; r++) {
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) { check(0, "crash safety: fork failed"); break; }
        if (pid == 0) {
            char e2[512];
            for (;;) checkpoint_write(P, &c, Y, n, 8, e2, sizeof(e2));
            _exit(0);
        }
        sleep_ms(30 + (r * 10) % 60);
        int stray = stray_files(dir, "model.ckpt");
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        int killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        stray = stray || stray_files(dir, "model.ckpt");
        interrupted += stray > 0;
        Config rc;
        double *got = NULL;
        size_t gn = 0;
        int rd = checkpoint_read(P, &rc, &got, &gn, err, sizeof(err));
        int isX = rd == 0 && gn == n && memcmp(got, X, n * sizeof(double)) == 0;
        int isY = rd == 0 && gn == n && !isX && memcmp(got, Y, n * sizeof(double)) == 0;
        int ok = killed && (isX || isY);
        all_ok &= ok;
        check(ok, "crash safety round %d: writer SIGKILLed after %d ms%s; %s still loads and holds %s", r + 1, 30 + (r * 10) % 60,
              stray ? " mid-write" : "", "the checkpoint",
              isX ? "exactly the original parameters" : isY ? "exactly the complete new parameters (a rename finished first)" :
              rd == 0 ? "a MIX of parameters (torn write)" : err);
        if (isY) {
            replaced++;
            checkpoint_write(P, &c, X, n, 8, err, sizeof(err));   /* back to the original for the next round */
        }
        free(got);
    }
    check(interrupted > 0, "crash safety: %d of %d kills landed while the writer had its temporary file open (%d completed a rename first)",
          interrupted, rounds, replaced);
    (void)all_ok;
    remove_tree(dir);
    free(X);
    free(Y);
}

/* ------------------------------------------------------------------------------------------- main */
/* ------------------------------------------------------------------------------------------- tokenizer file */
static void write_tokenizer(const char *path, uint32_t magic, uint32_t version, uint32_t vocab, uint32_t eot, int n_tokens, int empty_at) {
    FILE *fp = fopenCheck(path, "wb");
    uint32_t h[256];
    memset(h, 0, sizeof(h));
    h[0] = magic; h[1] = version; h[2] = vocab; h[3] = eot;
    fwriteCheck(h, sizeof(h), 1, fp);
    for (int i = 0; i < n_tokens; i++) {
        char piece[32];
        int len = i == empty_at ? 0 : snprintf(piece, sizeof(piece), "<%d>", i);
        unsigned char l = (unsigned char)len;
        fwriteCheck(&l, 1, 1, fp);
        if (len > 0) fwriteCheck(piece, 1, (size_t)len, fp);
    }
    fcloseCheck(fp);
}

static void test_tokenizer(const char *dir) {
    char path[1100], err[1300];
    Tokenizer t;
    snprintf(path, sizeof(path), "%s/tok.bin", dir);
    write_tokenizer(path, 20240328, 2, 300, 299, 300, -1);
    if (check(tokenizer_read(&t, path, err, sizeof(err)) == 0, "tokenizer v2 with 300 tokens reads (%s)", err)) {
        const char *p0 = tokenizer_decode(&t, 0), *p299 = tokenizer_decode(&t, 299);
        check(p0 && strcmp(p0, "<0>") == 0 && p299 && strcmp(p299, "<299>") == 0 && t.eot_token == 299, "tokenizer decodes tokens 0 and 299 and the end-of-text token");
        check(tokenizer_decode(&t, 300) == NULL && tokenizer_decode(&t, -1) == NULL, "tokenizer_decode is NULL outside the vocabulary");
        tokenizer_free(&t);
    }
    struct { const char *what, *key; uint32_t magic, version, vocab, eot; int n, empty_at; } bad[] = {
        {"wrong magic", "magic", 20240520, 2, 300, 299, 300, -1},
        {"unknown version", "version", 20240328, 3, 300, 299, 300, -1},
        {"version 1 with a non-GPT-2 vocabulary", "50257", 20240328, 1, 300, 0, 300, -1},
        {"end-of-text token outside the vocabulary", "end-of-text", 20240328, 2, 300, 300, 300, -1},
        {"truncated token list", "truncated", 20240328, 2, 300, 299, 150, -1},
        {"an empty token", "empty", 20240328, 2, 300, 299, 300, 7},
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        write_tokenizer(path, bad[k].magic, bad[k].version, bad[k].vocab, bad[k].eot, bad[k].n, bad[k].empty_at);
        int rc = tokenizer_read(&t, path, err, sizeof(err));
        check(rc == -1 && strstr(err, bad[k].key) != NULL && t.tokens == NULL, "tokenizer: %s is refused (%s)", bad[k].what, err);
    }
    FILE *fp = fopenCheck(path, "wb");
    fwriteCheck("short", 1, 5, fp);
    fcloseCheck(fp);
    check(tokenizer_read(&t, path, err, sizeof(err)) == -1 && strstr(err, "truncated") != NULL, "tokenizer: a file shorter than the header is refused (%s)", err);
}

int main(void) {
    mkdir("tests", 0755);
    mkdir("tests/tmp", 0755);
    snprintf(tmpdir, sizeof(tmpdir), "tests/tmp/test_files.%d", (int)getpid());
    if (mkdir(tmpdir, 0755) != 0) {
        printf("FAIL - cannot create %s (run from the repository root)\n", tmpdir);
        printf("test_files: 0 passed, 1 failed\n");
        return 1;
    }
    test_shard_good();
    test_shard_bad();
    test_shard_write_bad();
    test_doc_rows();
    test_checkpoint_roundtrip();
    test_checkpoint_rotary_frac();
    test_checkpoint_bad();
    test_state();
    test_checksums();
    test_checkpoint_list();
    test_crash_safety();
    test_tokenizer(tmpdir);
    const char *keep = getenv("TEST_KEEP");
    if (keep == NULL || strcmp(keep, "1") != 0) remove_tree(tmpdir);
    return tu_finish("test_files");
}
