/*
test_settings — the rule "a stored setting and a flag: applied or refused, never dropped" (docs/SETTINGS.md), as
the code runs it. The expected rule comes from the table in docs/SETTINGS.md (the spec), not from the code: for
every model field and every use (train --resume, train --init-from, infer/eval) settings_apply is run with a flag
whose value differs from the stored one, and must apply it (the field takes the flag's value, nothing else moves)
or refuse it (-1, an error naming the flag and both values, the stored config untouched) as the table says; a flag
equal to the stored value is always accepted; a flag not given never changes anything; the table and the code
list the same flags. Also settings.txt round trips (escapes) and rejects a damaged file.
Build and run: make tests/test_settings && ./tests/test_settings   (from the repository root: it reads docs/)
*/
#define ROPEPP_IMPLEMENTATION
#include "ropepp.h"
#include "tests/testutil.h"

/* the first table of docs/SETTINGS.md: flag -> rule per use ('a', 'r', '-') */
typedef struct { char flag[64]; char rule[USE_COUNT]; } DocRow;

static char cell_rule(const char *cell) {
    while (*cell == ' ') cell++;
    if (strncmp(cell, "applied", 7) == 0) return 'a';
    if (strncmp(cell, "refused", 7) == 0) return 'r';
    if (strncmp(cell, "—", strlen("—")) == 0) return '-';
    return '?';
}

static int read_doc_table(DocRow *rows, int max) {
    FILE *fp = fopen("docs/SETTINGS.md", "r");
    if (fp == NULL) return -1;
    char line[1024];
    int n = 0, in_table = 0;
    while (fgets(line, sizeof(line), fp) != NULL && n < max) {
        if (strncmp(line, "| flag | field |", 16) == 0) { in_table = 1; continue; }
        if (!in_table) continue;
        if (strncmp(line, "|---", 4) == 0) continue;
        if (line[0] != '|') break;
        /* | `--flag` | field | resume | init-from | eval | */
        char *cols[8];
        int nc = 0;
        for (char *p = line; (p = strchr(p, '|')) != NULL && nc < 8; p++) cols[nc++] = p + 1;
        if (nc < 6) continue;
        char *a = strchr(cols[0], '`'), *b = a ? strchr(a + 1, '`') : NULL;
        if (a == NULL || b == NULL) continue;
        snprintf(rows[n].flag, sizeof(rows[n].flag), "%.*s", (int)(b - a - 1), a + 1);
        for (int u = 0; u < USE_COUNT; u++) rows[n].rule[u] = cell_rule(cols[2 + u]);
        n++;
    }
    fclose(fp);
    return n;
}

/* a value of field r that differs from the one in c (valid for config_validate where that matters) */
static void change_field(Config *c, const SettingRule *r) {
    char *p = (char *)c + r->offset;
    if (r->type == 'd') { double v; memcpy(&v, p, sizeof(v)); v = v * 2.0 + (v == 0 ? 1.0 : 0.0); memcpy(p, &v, sizeof(v)); }
    else { int v; memcpy(&v, p, sizeof(v)); v = v == 0 ? 1 : v + (v % 2 == 0 ? 2 : 1); memcpy(p, &v, sizeof(v)); }
}

int main(void) {
    DocRow rows[64];
    int nrows = read_doc_table(rows, 64);
    if (!check(nrows > 0, "docs/SETTINGS.md has the model table (%d rows)", nrows)) return tu_finish("test_settings");

    /* the table and the code list the same flags */
    for (int i = 0; i < nrows; i++)
        check(settings_find(config_rules, config_rule_count, rows[i].flag) >= 0, "%s (docs) has a rule in config_rules", rows[i].flag);
    for (int i = 0; i < config_rule_count; i++) {
        int found = 0;
        for (int j = 0; j < nrows; j++) found |= strcmp(rows[j].flag, config_rules[i].flag) == 0;
        check(found, "%s (config_rules) is in the table of docs/SETTINGS.md", config_rules[i].flag);
    }

    static const char *const use_names[USE_COUNT] = {"train --resume", "train --init-from", "infer/eval"};
    Config stored0 = config_default();
    stored0.pe = PE_ROPE;
    stored0.pi_factor = 4.0;        /* a model trained with PI 4, as in the issue */
    int applied = 0, refused = 0;
    for (int j = 0; j < nrows; j++) {
        int i = settings_find(config_rules, config_rule_count, rows[j].flag);
        if (i < 0) continue;
        const SettingRule *r = &config_rules[i];
        for (int u = 0; u < USE_COUNT; u++) {
            Config stored = stored0, flags = stored0;
            change_field(&flags, r);
            char err[1024] = "";
            int rc = settings_apply(&stored, &flags, 1ull << i, config_rules, config_rule_count, u, "the checkpoint X", err, sizeof(err));
            if (rows[j].rule[u] == 'a') {
                check(rc == 0 && memcmp(&stored, &flags, sizeof(Config)) == 0,
                      "%s in %s: applied (the stored value is replaced, nothing else changes)", r->flag, use_names[u]);
                applied++;
            } else {
                check(rc == -1 && strstr(err, r->flag) != NULL && strstr(err, "differs") != NULL && memcmp(&stored, &stored0, sizeof(Config)) == 0,
                      "%s in %s: refused with an error naming it (%s)", r->flag, use_names[u], err);
                refused++;
            }
            /* the same value as stored: always accepted, nothing changes */
            Config same = stored0;
            stored = stored0;
            rc = settings_apply(&stored, &same, 1ull << i, config_rules, config_rule_count, u, "the checkpoint X", err, sizeof(err));
            check(rc == 0 && memcmp(&stored, &stored0, sizeof(Config)) == 0, "%s in %s: the stored value given again is accepted", r->flag, use_names[u]);
        }
    }
    printf("# %d field x use pairs applied, %d refused\n", applied, refused);

    /* not given: nothing changes, whatever the flags struct holds */
    {
        Config stored = stored0, flags = config_default();
        flags.dim = 999; flags.pi_factor = 1.0;
        char err[256];
        int rc = settings_apply(&stored, &flags, 0, config_rules, config_rule_count, USE_EVAL, "x", err, sizeof(err));
        check(rc == 0 && memcmp(&stored, &stored0, sizeof(Config)) == 0, "no flag given: the stored config is used as it is (PI 4 kept)");
    }
    /* the case: eval's "none" keeps PI 4; "pi:1" turns it off */
    {
        Config stored = stored0, flags = stored0;
        flags.pi_factor = 1.0;
        char err[256];
        int i = settings_find(config_rules, config_rule_count, "--pi-factor");
        int rc = settings_apply(&stored, &flags, 1ull << i, config_rules, config_rule_count, USE_EVAL, "x", err, sizeof(err));
        check(rc == 0 && stored.pi_factor == 1.0, "--pi-factor 1 given to eval/infer on a PI-4 model turns PI off (got %g)", stored.pi_factor);
    }

    /* the rotary fraction is partial's only: what a model of any other PE uses (and a checkpoint stores) is 1,
       whatever the field holds; partial uses its own */
    {
        int wrong = 0;
        for (int pe = 0; pe < PE_COUNT; pe++) {
            Config c = config_default();
            c.pe = pe;
            c.rotary_frac = 0.5;
            double want = pe == PE_PARTIAL ? 0.5 : 1.0;
            if (config_rotary_frac(&c) != want) { wrong++; printf("# %s: config_rotary_frac %g, want %g\n", pe_name(pe), config_rotary_frac(&c), want); }
        }
        check(wrong == 0, "config_rotary_frac: partial keeps its 0.5, each of the other %d PEs uses 1", PE_COUNT - 1);
    }

    /* settings.txt: round trip with escapes, and a damaged file is refused */
    {
        const char *dir = "tests/tmp";
        char path[256];
        snprintf(path, sizeof(path), "%s/test_settings.%d.txt", dir, (int)getpid());
        const char *flags[3] = {"--prompt", "--val", "--lr"};
        const char *values[3] = {"\nROMEO:\tsays \\ \"hi\" \x01", "", "0.003"};
        char err[512];
        int ok = settings_write(path, flags, values, 3, err, sizeof(err)) == 0;
        char **rf = NULL, **rv = NULL;
        int n = 0;
        ok = ok && settings_read(path, &rf, &rv, &n, err, sizeof(err)) == 0 && n == 3;
        for (int i = 0; ok && i < 3; i++) ok = strcmp(rf[i], flags[i]) == 0 && strcmp(rv[i], values[i]) == 0;
        check(ok, "settings.txt round trip: newline, tab, backslash, control byte and empty values come back exactly (%s)", ok ? "" : err);
        if (rf) settings_free(rf, rv, n);
        FILE *fp = fopen(path, "a");
        if (fp) { fputs("--steps 10", fp); fclose(fp); }   /* a line cut before its newline */
        check(settings_read(path, &rf, &rv, &n, err, sizeof(err)) == -1 && strstr(err, "line 4") != NULL,
              "a settings.txt line cut before its newline is refused: %s", err);
        remove(path);
        check(settings_read(dir, &rf, &rv, &n, err, sizeof(err)) == -1 && strstr(err, "is a folder") != NULL,
              "a folder passed as settings.txt is reported as a folder: %s", err);
    }
    return tu_finish("test_settings");
}
