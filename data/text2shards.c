/*
text2shards — turn any text file into byte-level token shards (vocab 256) in llm.c's format.

Build: make data/text2shards            (make builds the default Tiny Shakespeare shards with it)
Run:   ./data/text2shards data/tinyshakespeare.txt --val-frac 0.1 --out data/tinyshakespeare
       -> data/tinyshakespeare_train.bin (first 90% of the bytes), data/tinyshakespeare_val.bin (last 10%)

Each byte of the file is one token (0..255), so UTF-8 text round-trips exactly. The shard format
(docs/FORMATS.md): 256 x int32 header (magic 20240520, version 1, token count), then uint16 tokens; --u32
writes uint32 tokens (magic 20240801) instead.
*/
#define ROPEPP_IMPLEMENTATION
#include "ropepp.h"

static void usage(void) {
    printf("usage: text2shards INPUT.txt [--out PREFIX] [--val-frac F] [--u32]\n"
           "  Writes PREFIX_train.bin and PREFIX_val.bin: byte-level tokens (vocab 256) in llm.c's shard format.\n"
           "  --out PREFIX    output prefix (default: INPUT without its extension)\n"
           "  --val-frac F    fraction of the text, taken from the end, for validation (default 0.1; 0 = no val file)\n"
           "  --u32           write uint32 tokens (magic 20240801) instead of uint16 (magic 20240520)\n");
}

int main(int argc, char **argv) {
    const char *input = NULL, *prefix = NULL;
    double val_frac = 0.1;
    int width = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { usage(); return 0; }
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) prefix = argv[++i];
        else if (strcmp(argv[i], "--val-frac") == 0 && i + 1 < argc) {
            char *end;
            val_frac = strtod(argv[++i], &end);
            if (*end != '\0' || !(val_frac >= 0.0 && val_frac < 1.0)) {
                fprintf(stderr, "error: --val-frac '%s' must be a number in [0, 1)\n", argv[i]);
                return 1;
            }
        } else if (strcmp(argv[i], "--u32") == 0) width = 4;
        else if (argv[i][0] == '-') { fprintf(stderr, "error: unknown flag '%s'; see text2shards --help\n", argv[i]); return 1; }
        else if (input == NULL) input = argv[i];
        else { fprintf(stderr, "error: more than one input file ('%s'); see text2shards --help\n", argv[i]); return 1; }
    }
    if (input == NULL) { usage(); return 1; }
    char prefix_buf[4096];
    if (prefix == NULL) {
        snprintf(prefix_buf, sizeof(prefix_buf), "%s", input);
        char *dot = strrchr(prefix_buf, '.');
        if (dot != NULL && strchr(dot, '/') == NULL) *dot = '\0';
        prefix = prefix_buf;
    }
    FILE *fp = fopen(input, "rb");
    if (fp == NULL) { fprintf(stderr, "error: cannot open '%s': %s\n", input, strerror(errno)); return 1; }
    size_t cap = 1 << 20, n = 0;
    unsigned char *text = (unsigned char *)mallocCheck(cap);
    size_t got;
    while ((got = fread(text + n, 1, cap - n, fp)) > 0) {
        n += got;
        if (n == cap) { cap *= 2; unsigned char *t2 = (unsigned char *)realloc(text, cap); if (!t2) { fprintf(stderr, "error: out of memory\n"); return 1; } text = t2; }
    }
    fclose(fp);
    size_t n_val = (size_t)(val_frac * (double)n);
    size_t n_train = n - n_val;
    if (n_train < 2 || (val_frac > 0.0 && n_val < 2)) {
        fprintf(stderr, "error: '%s' has %zu bytes: too little text for a train split of %zu and a val split of %zu\n", input, n, n_train, n_val);
        return 1;
    }
    int *tok = (int *)mallocCheck(n * sizeof(int));
    for (size_t i = 0; i < n; i++) tok[i] = text[i];
    char path[4200], err[512];
    snprintf(path, sizeof(path), "%s_train.bin", prefix);
    if (shard_write(path, tok, n_train, width, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); return 1; }
    printf("wrote %s: %zu tokens\n", path, n_train);
    if (n_val > 0) {
        snprintf(path, sizeof(path), "%s_val.bin", prefix);
        if (shard_write(path, tok + n_train, n_val, width, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); return 1; }
        printf("wrote %s: %zu tokens\n", path, n_val);
    }
    free(tok);
    free(text);
    return 0;
}
