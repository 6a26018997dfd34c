/*
docs2shards — a long-document corpus from a list of text files: one document per file, each starting with the BOS
token 0 (byte NUL, the task rows' TASK_BOS), in byte-level token shards (vocab 256) in llm.c's format. ~1/20 of
the files are held out for validation (chosen by a hash of the path, so a file stays on its side when the list
grows). The order is the sorted paths, so the same list gives the same bytes on any machine.

Build: make data/docs2shards
Run:   find /usr/lib/python3.11 /usr/include -name '*.py' -o -name '*.h' | ./data/docs2shards --list - --out data/code
       -> data/code_train.bin, data/code_val.bin (BOS + bytes of each file, in sorted-path order),
          data/code_files.tsv (split, bytes, path of every file; skipped files with the reason)
       scripts/make_corpus.sh does this for the Python standard library and /usr/include and records the versions.

Files with a NUL byte (not text) or empty files are skipped and listed as such; a listed file that cannot be read
is an error and nothing is written. It prints the FNV-1a 64 hash of the sorted list ("path\n" each) and of the
tokens written, which the comparison's report records.
*/
#define ROPEPP_IMPLEMENTATION
#include "ropepp.h"
#include "cli.h"

enum { DOC_BOS = 0 };   /* data/tasks.h's TASK_BOS */

static void usage(void) {
    printf("usage: docs2shards --list FILE|- --out PREFIX [--val-every N] [--max-bytes N]\n"
           "  One document per listed file: BOS (token 0), then its bytes. Writes PREFIX_train.bin, PREFIX_val.bin\n"
           "  (llm.c shards, uint16 byte tokens) and PREFIX_files.tsv (split, bytes, path).\n"
           "  --list FILE     paths, one per line (- = stdin); sorted and deduplicated before use\n"
           "  --out PREFIX    output prefix (required)\n"
           "  --val-every N   hold out the files whose path hash is 0 mod N: about 1/N of them (20, i.e. ~5%%)\n"
           "  --max-bytes N   skip files larger than N bytes (8388608)\n");
}

/* FNV-1a 64 over n bytes, continuing from h (start with 14695981039346656037). */
static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 1099511628211ull; }
    return h;
}
static const uint64_t FNV_START = 14695981039346656037ull;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Reads the whole file into *out (malloc'd), *n bytes. 0, or -1 with err. */
static int read_file(const char *path, unsigned char **out, size_t *n, size_t max_bytes, char *err, size_t errlen) {
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) { snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno)); return -1; }
    size_t cap = 1 << 16, len = 0, got;
    unsigned char *buf = (unsigned char *)mallocCheck(cap);
    while ((got = fread(buf + len, 1, cap - len, fp)) > 0) {
        len += got;
        if (len > max_bytes) break;
        if (len == cap) { cap *= 2; buf = (unsigned char *)realloc(buf, cap); if (buf == NULL) { fprintf(stderr, "error: out of memory\n"); exit(1); } }
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) { free(buf); snprintf(err, errlen, "read error in '%s'", path); return -1; }
    *out = buf;
    *n = len;
    return 0;
}

int main(int argc, char **argv) {
    const char *list = NULL, *prefix = NULL;
    int val_every = 20;
    size_t max_bytes = 8u << 20;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { usage(); return 0; }
        if (i + 1 >= argc) { fprintf(stderr, "error: %s needs a value; see docs2shards --help\n", argv[i]); return 1; }
        if (strcmp(argv[i], "--list") == 0) list = argv[++i];
        else if (strcmp(argv[i], "--out") == 0) prefix = argv[++i];
        else if (strcmp(argv[i], "--val-every") == 0) val_every = flag_int("docs2shards", "--val-every", argv[++i], 2, 1 << 20);
        else if (strcmp(argv[i], "--max-bytes") == 0) max_bytes = (size_t)flag_number("docs2shards", "--max-bytes", argv[++i], 1, 1e12);
        else { fprintf(stderr, "error: unknown flag '%s'; see docs2shards --help\n", argv[i]); return 1; }
    }
    if (list == NULL || prefix == NULL) { fprintf(stderr, "error: --list and --out are required; see docs2shards --help\n"); return 1; }
    FILE *lf = strcmp(list, "-") == 0 ? stdin : fopen(list, "r");
    if (lf == NULL) { fprintf(stderr, "error: cannot open list '%s': %s\n", list, strerror(errno)); return 1; }
    size_t np = 0, pcap = 1024;
    char **paths = (char **)mallocCheck(pcap * sizeof(char *));
    char line[8192];
    while (fgets(line, sizeof(line), lf) != NULL) {
        size_t len = strlen(line);
        if (len == sizeof(line) - 1 && line[len - 1] != '\n') { fprintf(stderr, "error: a path in the list is longer than %zu bytes\n", sizeof(line) - 2); return 1; }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0) continue;
        if (np == pcap) { pcap *= 2; paths = (char **)realloc(paths, pcap * sizeof(char *)); if (paths == NULL) { fprintf(stderr, "error: out of memory\n"); return 1; } }
        paths[np] = (char *)mallocCheck(len + 1);
        memcpy(paths[np++], line, len + 1);
    }
    if (lf != stdin) fclose(lf);
    qsort(paths, np, sizeof(char *), cmp_str);
    size_t nu = 0;   /* dedup */
    for (size_t i = 0; i < np; i++) {
        if (nu > 0 && strcmp(paths[nu - 1], paths[i]) == 0) { free(paths[i]); continue; }
        paths[nu++] = paths[i];
    }
    np = nu;
    if (np == 0) { fprintf(stderr, "error: the list '%s' names no files\n", list); return 1; }
    uint64_t list_hash = FNV_START;
    for (size_t i = 0; i < np; i++) {
        list_hash = fnv1a(list_hash, (const unsigned char *)paths[i], strlen(paths[i]));
        list_hash = fnv1a(list_hash, (const unsigned char *)"\n", 1);
    }
    /* tokens of each split (int for shard_write), grown as files are read */
    int *tok[2] = {NULL, NULL};
    size_t ntok[2] = {0, 0}, cap[2] = {0, 0}, ndoc[2] = {0, 0}, skipped = 0;
    char path[4200], err[1024];
    snprintf(path, sizeof(path), "%s_files.tsv", prefix);
    FILE *man = fopen(path, "w");
    if (man == NULL) { fprintf(stderr, "error: cannot write '%s': %s\n", path, strerror(errno)); return 1; }
    fprintf(man, "split\tbytes\tpath\n");
    for (size_t i = 0; i < np; i++) {
        unsigned char *buf;
        size_t n;
        if (read_file(paths[i], &buf, &n, max_bytes, err, sizeof(err)) != 0) {
            fprintf(stderr, "error: %s (nothing written: fix the list)\n", err);
            fclose(man);
            remove(path);
            return 1;
        }
        const char *why = n == 0 ? "skipped-empty" : n > max_bytes ? "skipped-too-large" : memchr(buf, 0, n) != NULL ? "skipped-binary" : NULL;
        if (why != NULL) {
            fprintf(man, "%s\t%zu\t%s\n", why, n, paths[i]);
            skipped++;
            free(buf);
            continue;
        }
        int split = fnv1a(FNV_START, (const unsigned char *)paths[i], strlen(paths[i])) % (uint64_t)val_every == 0;
        if (ntok[split] + n + 1 > cap[split]) {
            cap[split] = (ntok[split] + n + 1) * 2;
            tok[split] = (int *)realloc(tok[split], cap[split] * sizeof(int));
            if (tok[split] == NULL) { fprintf(stderr, "error: out of memory\n"); return 1; }
        }
        tok[split][ntok[split]++] = DOC_BOS;
        for (size_t j = 0; j < n; j++) tok[split][ntok[split]++] = buf[j];
        ndoc[split]++;
        fprintf(man, "%s\t%zu\t%s\n", split ? "val" : "train", n, paths[i]);
        free(buf);
    }
    fclose(man);
    printf("wrote %s\n", path);
    if (ndoc[0] == 0 || ndoc[1] == 0) {
        fprintf(stderr, "error: %zu training and %zu held-out documents: both splits need one (list more files or lower --val-every)\n", ndoc[0], ndoc[1]);
        return 1;
    }
    uint64_t data_hash = FNV_START;
    for (int split = 0; split < 2; split++) {
        snprintf(path, sizeof(path), "%s_%s.bin", prefix, split ? "val" : "train");
        if (ntok[split] > (size_t)INT32_MAX) { fprintf(stderr, "error: %s would hold %zu tokens, more than a shard's int32 count\n", path, ntok[split]); return 1; }
        if (shard_write(path, tok[split], ntok[split], 2, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); return 1; }
        for (size_t j = 0; j < ntok[split]; j++) { unsigned char b = (unsigned char)tok[split][j]; data_hash = fnv1a(data_hash, &b, 1); }
        printf("wrote %s: %zu documents, %zu tokens\n", path, ndoc[split], ntok[split]);
        free(tok[split]);
    }
    printf("files: %zu listed, %zu skipped (binary, empty or too large)\n", np, skipped);
    printf("list hash (FNV-1a 64 of the sorted paths, one per line): %016llx\n", (unsigned long long)list_hash);
    printf("data hash (FNV-1a 64 of the train then val tokens): %016llx\n", (unsigned long long)data_hash);
    for (size_t i = 0; i < np; i++) free(paths[i]);
    free(paths);
    return 0;
}
