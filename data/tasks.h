/*
data/tasks.h — synthetic long-context tasks, for `eval` and for mixing into training: passkey retrieval
(Landmark Attention), RULER's NIAH single / multikey / multivalue and variable tracking on the `noise` haystack,
and MQAR (Zoology) at the token level. Sources: passkey from Mohtashami & Jaggi 2023, "Landmark Attention:
Random-Access Infinite Context Length for Transformers" (arXiv 2305.16300; its code's llama/run_test.py); NIAH and
vt from Hsieh et al. 2024, "RULER: What's the Real Context Size of Your Long-Context Language Models?" (arXiv
2404.06654; its niah and variable_tracking tasks); MQAR from Arora et al. 2023, "Zoology: Measuring and Improving
Recall in Efficient Language Models" (arXiv 2312.04927; its multiquery_ar generator).
Every generator writes one sample of exactly T tokens into caller buffers and is deterministic for a given Rng
state (same state -> same tokens; the state is advanced).

Use:   #include "data/tasks.h"                     declarations (needs ropepp.h's Rng; build with -I.)
       #define ROPEPP_TASKS_IMPLEMENTATION          in exactly one .c file, before the include, for the bodies
       (ropepp.h itself still needs #define ROPEPP_IMPLEMENTATION in exactly one .c file)

API:
  TaskSample s; task_sample_alloc(&s, T_max);       three (T_max) buffers: tokens, targets, score_pos
  TaskOptions o = task_options_default();           depth -1 (random), answer_only 0, no BOS, MQAR V 256, n_kv
                                                    auto, random filler
  task_generate(&s, TASK_PASSKEY, T, &o, &rng, err, sizeof(err))    0, or -1 with a one-line reason in err
  task_min_len(TASK_PASSKEY, &o)                    the shortest T the task fits in (the prompt with no haystack)
  ... forward s.tokens (T); argmax[t] = the model's prediction of token t+1 from position t ...
  task_score_argmax(&s, argmax)                     1 iff every scored prediction is right (exact match), else 0
  task_score_fraction(&s, argmax)                   the fraction of scored predictions that are right
  task_mix_parse("passkey:0.2,mqar:0.1", &mix, err, n)   the --mix spec of train
  task_mix_pick(&mix, &rng)                         a task with its proportion, or -1 (a plain text row)
  task_sample_free(&s)

Tasks (names as every command line takes them):
  passkey          Landmark Attention's prompt: task line, garbage prefix, "The pass key is K. Remember it. K is
                   the pass key.", garbage suffix, "What is the pass key? The pass key is", then " K". K: 5 digits.
                   Answer: the digits.
  niah_single      RULER's niah, noise haystack, 1 key (adj-noun) -> 1 value (7 digits), singularised template.
  niah_multikey    4 needles with distinct keys and values; one key is queried (singularised template).
  niah_multivalue  1 key with 4 values; answer "v1, v2, v3, v4" in the order the needles appear in the context.
  vt               variable tracking: one chain of 5 variables (num_hops 4) in the noise haystack; the answer is
                   the 5 names in chain order, separated by " ".
  mqar             Zoology multi-query associative recall at the token level, vocab V, n_kv pairs.
Text tasks are byte level: each byte of the text is one token (all ASCII, vocab 256); use them with byte models.

Sample layout and scoring:
  tokens    text tasks: prompt, then the answer, which ends the sequence (answer_start + answer_len == T). The
            space the model would emit before the answer ("... The pass key is" + " " + "12345") is part of the
            prompt, so the answer span is exactly the digits / names.
            mqar: "k1 v1 k2 v2 ... " then the query region; each queried key is followed by its value.
  score_pos the positions t whose prediction of tokens[t+1] is scored (n_score of them).
            text tasks: answer_start-1 .. answer_start+answer_len-2 (teacher-forced exact match: if every argmax
            there is right, greedy decoding emits exactly the answer). mqar: every query-key position.
  targets   answer_only = 0: targets[t] = tokens[t+1] everywhere (the ordinary LM stream), -1 at t = T-1.
            answer_only = 1: tokens[t+1] only at score_pos, -1 elsewhere (crossentropy ignores targets < 0), so
            a training row puts its loss on the answer tokens only (Zoology trains MQAR this way).
  bos       TaskOptions.bos = 1: tokens[0] = TASK_BOS (0, the byte NUL, which no task text contains) and the
            sample of length T-1 follows in [1, T); score_pos and answer_start count from the BOS. Documents of
            the long-document corpus (data/docs2shards.c) start with the same token.
  mqar_blank TaskOptions.mqar_blank = 1: the non-query positions of MQAR's query region hold token 0 (Zoology's
            default) instead of uniform random tokens (its random_non_queries); no RNG draws are made for them.
  answer_start/answer_len: the answer span; for mqar the value of the last query (score_pos has all of them).

Depth (TaskOptions.depth): in [0, 1], or < 0 for random.
  passkey: garbage prefix = round(depth * n_garbage) characters (the original draws randint(0, n_garbage)).
  NIAH / vt: the haystack has m lines; a needle at slot s goes before haystack line s (s = m: after the last line),
  s = round(depth * m). single, multikey: the queried needle is at that slot (multikey's other needles at random
  slots). multivalue, vt: the first (farthest) needle line is at that slot and the others at random later slots,
  in order. Random depth: sorted random slots for all needle lines (distinct where there is room, as RULER).
  mqar: depth is not used (the query positions follow the power law).

Exact length: text tasks size the haystack so the total is exactly T. passkey cuts the garbage by characters,
as the original does. NIAH / vt use full noise lines plus, where the bytes do not divide, one last line cut to
the remaining characters (possibly empty). T below task_min_len is an error (the minimum assumes the longest
possible keys, so whether a T fits never depends on the sample).

Deviations from the originals, all for exact-T byte sequences and teacher-forced scoring of tiny models:
  - RULER grows the haystack by whole sentences under a token budget; here the last noise line is cut to fit.
  - multivalue needles are not shuffled, so the answer order (needle order) is learnable; RULER scores bags.
  - vt has no in-context example prepended (it would take ~400 of a small model's few hundred bytes), and uses
    one noise sentence per line (RULER's noise string ends in "\n" before joining, leaving blank lines).
  - mqar puts the value after each queried key (Zoology leaves a random token there and puts the value only in
    the labels), so the sample is also a valid next-token stream; scoring is the same (the key position).
Word keys: RULER draws adj-noun from the wonderwords lists; here from the built-in lists below (~190 each).
*/
#ifndef ROPEPP_TASKS_H
#define ROPEPP_TASKS_H

#include "ropepp.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { TASK_PASSKEY = 0, TASK_NIAH_SINGLE = 1, TASK_NIAH_MULTIKEY = 2, TASK_NIAH_MULTIVALUE = 3, TASK_VT = 4,
       TASK_MQAR = 5, TASK_COUNT = 6 };

typedef struct {
    int *tokens;        /* (T) the full sequence: prompt, then answer */
    int *targets;       /* (T) targets[t] = tokens[t+1], -1 where not trained (see answer_only) and at t = T-1 */
    int *score_pos;     /* (T) positions t whose prediction of tokens[t+1] is scored; the first n_score are used */
    int cap;            /* capacity of the three buffers */
    int n;              /* exact length T requested */
    int answer_start;   /* tokens[answer_start .. answer_start + answer_len) is the answer */
    int answer_len;
    int n_score;        /* scored positions: answer_len for text tasks, n_kv for mqar */
    int task;           /* TASK_* that made it */
} TaskSample;

typedef struct {
    double depth;       /* needle depth in [0, 1] (0: start of the haystack, 1: its end); < 0: random */
    int answer_only;    /* training targets: 0 next token everywhere, 1 only at the scored positions */
    int bos;            /* 1: tokens[0] = TASK_BOS, the sample (length T-1) after it */
    int mqar_vocab;     /* mqar V: keys in [1, V/2), values and filler as Zoology (V >= 4) */
    int mqar_kv;        /* mqar pairs n_kv; 0: T/16 clipped to [1, min(T/4, V/2 - 1)] */
    int mqar_blank;     /* mqar filler: 0 uniform random tokens in [0, V), 1 token 0 (blank) */
} TaskOptions;

/* The beginning-of-sequence token of task rows (TaskOptions.bos) and of the corpus documents: byte 0 (NUL). */
enum { TASK_BOS = 0 };

typedef struct { int task; double prop; } TaskMixItem;
typedef struct {
    int n;                          /* entries */
    TaskMixItem item[TASK_COUNT];   /* each task at most once, in the order given */
    double total;                   /* sum of proportions, <= 1; the rest of the rows stay plain text */
} TaskMix;

const char *task_name(int task);                 /* "passkey", ...; "?" if out of range */
int task_from_name(const char *name);            /* TASK_*, or -1 if unknown */
TaskOptions task_options_default(void);
void task_sample_alloc(TaskSample *s, int cap);  /* mallocs the three (cap) buffers; exits on failure */
void task_sample_free(TaskSample *s);
/* The shortest T at which the task fits (with the longest possible keys); for mqar 4 * n_kv. */
int task_min_len(int task, const TaskOptions *o);
/* One sample of exactly T tokens (T <= s->cap). o NULL: the defaults. 0, or -1 with a one-line reason in err. */
int task_generate(TaskSample *s, int task, int T, const TaskOptions *o, Rng *rng, char *err, size_t errlen);
/* argmax_tokens[t]: the model's argmax prediction of token t+1 from position t, for t in [0, T). */
int task_score_argmax(const TaskSample *s, const int *argmax_tokens);       /* 1 iff all scored are right */
double task_score_fraction(const TaskSample *s, const int *argmax_tokens);  /* fraction of scored right */
/* "task:prop[,task:prop...]", each prop in (0, 1], sum <= 1, each task once; "" = no tasks. 0 or -1 + err. */
int task_mix_parse(const char *spec, TaskMix *mix, char *err, size_t errlen);
int task_mix_pick(const TaskMix *mix, Rng *rng); /* a task with probability its prop, else -1 (plain text) */

#ifdef __cplusplus
}
#endif
#endif /* ROPEPP_TASKS_H */

/* ============================================================================================================
   Implementation
   ============================================================================================================ */
#ifdef ROPEPP_TASKS_IMPLEMENTATION
#ifndef ROPEPP_TASKS_IMPLEMENTATION_DONE
#define ROPEPP_TASKS_IMPLEMENTATION_DONE
#include <stdarg.h>

static const char *const TASK_NAMES[TASK_COUNT] = {
    "passkey", "niah_single", "niah_multikey", "niah_multivalue", "vt", "mqar"
};

/* Landmark Attention's garbage unit, also RULER's `noise` haystack sentence (one per line there). */
static const char *const TASK_GARBAGE =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

/* Key words for NIAH (adj-noun). Stand-ins for the wonderwords lists; words of the garbage sentence and of the
   templates (green, blue, yellow, grass, sky, sun, magic, special, number, key) are left out. */
static const char *const TASK_ADJS[] = {
    "able", "active", "actual", "afraid", "alive", "angry", "ancient", "anxious", "average", "awake",
    "bad", "basic", "big", "bitter", "black", "blind", "bold", "boring", "brave", "brief",
    "bright", "broad", "broken", "brown", "busy", "calm", "careful", "cheap", "chief", "clean",
    "clear", "clever", "close", "cloudy", "cold", "common", "cool", "correct", "crazy", "creative",
    "cruel", "curious", "cute", "dark", "deep", "dirty", "dry", "dull", "eager", "early",
    "easy", "elegant", "empty", "equal", "exact", "fair", "famous", "fancy", "fast", "fierce",
    "fine", "firm", "flat", "fresh", "friendly", "full", "funny", "gentle", "giant", "glad",
    "golden", "good", "grand", "gray", "great", "happy", "hard", "heavy", "helpful", "hidden",
    "high", "honest", "hot", "huge", "humble", "hungry", "ideal", "idle", "jolly", "keen",
    "kind", "large", "late", "lazy", "light", "little", "lively", "local", "lonely", "long",
    "loose", "loud", "lovely", "low", "loyal", "lucky", "mad", "main", "major", "mean",
    "mild", "minor", "modern", "narrow", "nasty", "natural", "neat", "new", "nice", "noble",
    "noisy", "normal", "odd", "old", "open", "orange", "pale", "perfect", "pink", "plain",
    "polite", "poor", "popular", "pretty", "proud", "pure", "purple", "quick", "quiet", "rapid",
    "rare", "raw", "ready", "real", "red", "rich", "right", "rough", "round", "royal",
    "rude", "rural", "sad", "safe", "salty", "sharp", "short", "shy", "silent", "silly",
    "simple", "slow", "small", "smart", "smooth", "soft", "solid", "sour", "spare", "steady",
    "steep", "sticky", "strange", "strict", "strong", "sunny", "super", "sweet", "swift", "tall",
    "tame", "tender", "thick", "thin", "tidy", "tiny", "tough", "tricky", "true", "ugly",
    "useful", "vast", "violet", "warm", "weak", "wet", "white", "whole", "wide", "wild",
    "wise", "witty", "wooden", "young", "zany"
};
static const char *const TASK_NOUNS[] = {
    "account", "actor", "airport", "animal", "answer", "apple", "army", "artist", "baby", "bag",
    "ball", "bank", "basket", "bath", "beach", "bear", "bed", "bell", "bicycle", "bird",
    "boat", "body", "book", "bottle", "box", "bread", "bridge", "brother", "bucket", "butter",
    "button", "cake", "camera", "camp", "candle", "car", "card", "carpet", "castle", "cat",
    "chair", "cheese", "child", "church", "circle", "city", "cloud", "coat", "coffee", "coin",
    "computer", "cookie", "corner", "cotton", "country", "cow", "cup", "dance", "desk", "doctor",
    "dog", "door", "dragon", "dream", "dress", "drum", "duck", "eagle", "engine", "farm",
    "father", "feather", "fence", "field", "finger", "fire", "fish", "flag", "flower", "forest",
    "fork", "fox", "friend", "frog", "garden", "gate", "ghost", "gift", "glass", "glove",
    "goat", "guitar", "hammer", "hat", "heart", "hill", "horse", "hotel", "house", "island",
    "jacket", "jelly", "jungle", "kettle", "king", "kitchen", "kite", "ladder", "lake", "lamp",
    "leaf", "lemon", "letter", "library", "lion", "lizard", "machine", "map", "market", "meadow",
    "milk", "mirror", "monkey", "moon", "mountain", "mouse", "music", "nail", "needle", "nest",
    "night", "ocean", "office", "onion", "owl", "painter", "palace", "paper", "parrot", "pencil",
    "piano", "pillow", "pilot", "planet", "plate", "pocket", "pond", "potato", "queen", "rabbit",
    "river", "road", "robot", "rocket", "roof", "rope", "rose", "salad", "sandwich", "school",
    "sea", "sheep", "shell", "ship", "shoe", "shop", "singer", "snake", "soap", "sock",
    "soldier", "song", "spoon", "square", "star", "station", "stone", "storm", "street", "student",
    "sugar", "table", "teacher", "tent", "tiger", "tomato", "tower", "town", "toy", "train",
    "tree", "truck", "tunnel", "turtle", "umbrella", "valley", "village", "violin", "wagon", "wall",
    "watch", "water", "whale", "window", "winter", "wolf", "yard", "zebra"
};
#define TASK_N_ADJS ((int)(sizeof(TASK_ADJS) / sizeof(TASK_ADJS[0])))
#define TASK_N_NOUNS ((int)(sizeof(TASK_NOUNS) / sizeof(TASK_NOUNS[0])))

enum { TASK_LINE_MAX = 128, TASK_MAX_NEEDLES = 8, TASK_ANSWER_MAX = 128 };

/* Format a one-line error into err (if given). */
static void task_set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (err == NULL || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Uniform integer in [lo, hi]; the modulo bias is below 2^-40 for the ranges used here. */
static int task_randint(Rng *rng, int lo, int hi) {
    return lo + (int)(rng_u64(rng) % (uint64_t)(hi - lo + 1));
}

/* ---------------------------------------------------------------------------------------------- text writer */

/* Appends bytes as tokens; with tok == NULL it only counts, which is how the generators measure the prompt
   before sizing the haystack. */
typedef struct { int *tok; int n; int cap; } TaskText;

/* Append one byte. */
static void text_byte(TaskText *w, int c) {
    if (w->tok != NULL && w->n < w->cap) w->tok[w->n] = c;
    w->n++;
}

/* Append the first n bytes of s. */
static void text_putn(TaskText *w, const char *s, int n) {
    for (int i = 0; i < n; i++) text_byte(w, (unsigned char)s[i]);
}

/* Append a NUL-terminated string. */
static void text_put(TaskText *w, const char *s) {
    for (int i = 0; s[i] != '\0'; i++) text_byte(w, (unsigned char)s[i]);
}

/* Append the first n characters of Landmark's " ".join([garbage] * many) (the passkey garbage, cut by chars). */
static void text_garbage(TaskText *w, int n) {
    int len = (int)strlen(TASK_GARBAGE);
    for (int i = 0; i < n; i++) {
        int j = i % (len + 1);
        text_byte(w, j < len ? (unsigned char)TASK_GARBAGE[j] : ' ');
    }
}

/* ------------------------------------------------------------------------------------ noise haystack context */

/* A needle line (NIAH needle or vt assignment) and the slot it goes in: before haystack line `slot`. */
typedef struct { char text[TASK_LINE_MAX]; int slot; } TaskLine;

/* RULER's `noise` context: m haystack lines (n_full copies of the garbage sentence, then, if partial >= 0, one
   more cut to its first `partial` characters), needle lines inserted before haystack line `slot` (slot m: after
   the last; equal slots keep array order), all joined by "\n". */
static void context_write(TaskText *w, const TaskLine *lines, int k, int n_full, int partial) {
    int m = n_full + (partial >= 0 ? 1 : 0);
    int first = 1;
    for (int i = 0; i <= m; i++) {
        for (int j = 0; j < k; j++) {
            if (lines[j].slot != i) continue;
            if (!first) text_put(w, "\n");
            text_put(w, lines[j].text);
            first = 0;
        }
        if (i == m) break;
        if (!first) text_put(w, "\n");
        if (i < n_full) text_put(w, TASK_GARBAGE);
        else text_putn(w, TASK_GARBAGE, partial);
        first = 0;
    }
}

/* Size the haystack: with the prompt measured at zero haystack lines (fixed_len), each added line costs its
   length + 1 ("\n"); fill the rest of T with full lines and one cut line. Returns the line count m. */
static int haystack_size(int T, int fixed_len, int *n_full, int *partial) {
    int unit = (int)strlen(TASK_GARBAGE) + 1;
    int budget = T - fixed_len;
    *n_full = budget / unit;
    int r = budget % unit;
    *partial = r > 0 ? r - 1 : -1;
    return *n_full + (r > 0 ? 1 : 0);
}

/* Sorted slots in [lo, hi] for k lines: distinct where the range has room (RULER's random.sample), else with
   repeats. k <= TASK_MAX_NEEDLES. */
static void draw_sorted_slots(Rng *rng, int lo, int hi, int k, int *out) {
    int distinct = (hi - lo + 1) >= k;
    for (int i = 0; i < k; i++) {
        int v, again;
        do {
            v = task_randint(rng, lo, hi);
            again = 0;
            if (distinct) {
                for (int j = 0; j < i; j++) if (out[j] == v) again = 1;
            }
        } while (again);
        out[i] = v;
    }
    for (int i = 1; i < k; i++) {           /* insertion sort */
        int v = out[i], j = i - 1;
        while (j >= 0 && out[j] > v) { out[j + 1] = out[j]; j--; }
        out[j + 1] = v;
    }
}

/* Slot of a needle at depth d in [0, 1] among m haystack lines: round(d * m). */
static int depth_slot(double depth, int m) {
    int s = (int)floor(depth * m + 0.5);
    if (s < 0) s = 0;
    if (s > m) s = m;
    return s;
}

/* Slots for an ordered group of k lines (multivalue needles, the vt chain): random depth: sorted random slots;
   depth d: the first at round(d * m), the others at sorted random slots at or after it. */
static void ordered_slots(Rng *rng, double depth, int m, TaskLine *lines, int k) {
    int slots[TASK_MAX_NEEDLES];
    if (depth < 0) {
        draw_sorted_slots(rng, 0, m, k, slots);
    } else {
        slots[0] = depth_slot(depth, m);
        draw_sorted_slots(rng, slots[0], m, k - 1, slots + 1);
    }
    for (int j = 0; j < k; j++) lines[j].slot = slots[j];
}

/* ------------------------------------------------------------------------------------------------- passkey */

static const char *const PASSKEY_INTRO = "There is an important info hidden inside a lot of irrelevant text. "
                                         "Find it and memorize them. I will quiz you about the important "
                                         "information there.";

/* Landmark Attention's passkey prompt (its llama/run_test.py, epfml/landmark-attention), lines joined with "\n":
     There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you about the important information there.
     {garbage prefix}
     The pass key is {K}. Remember it. {K} is the pass key.
     {garbage suffix}
     What is the pass key? The pass key is
   followed by the model's continuation " {K}"; the answer span is the digits of K. */
static void passkey_write(TaskText *w, const char *key, int n_prefix, int n_suffix, int *answer_start) {
    text_put(w, PASSKEY_INTRO);
    text_put(w, "\n");
    text_garbage(w, n_prefix);
    text_put(w, "\n");
    text_put(w, "The pass key is ");
    text_put(w, key);
    text_put(w, ". Remember it. ");
    text_put(w, key);
    text_put(w, " is the pass key.");
    text_put(w, "\n");
    text_garbage(w, n_suffix);
    text_put(w, "\n");
    text_put(w, "What is the pass key? The pass key is");
    text_put(w, " ");
    *answer_start = w->n;
    text_put(w, key);
}

/* Passkey length with no garbage (the key is always 5 digits). */
static int passkey_fixed_len(void) {
    TaskText w = {NULL, 0, 0};
    int a;
    passkey_write(&w, "12345", 0, 0, &a);
    return w.n;
}

/* Passkey sample: key = randint(10000, 99999) (the PI paper's random 5-digit number), garbage sized to T. */
static void passkey_generate(TaskSample *s, int T, double depth, Rng *rng) {
    char key[16];
    snprintf(key, sizeof(key), "%d", task_randint(rng, 10000, 99999));
    int n_garbage = T - passkey_fixed_len();
    int n_prefix = depth < 0 ? task_randint(rng, 0, n_garbage) : (int)floor(depth * n_garbage + 0.5);
    TaskText w = {s->tokens, 0, s->cap};
    passkey_write(&w, key, n_prefix, n_garbage - n_prefix, &s->answer_start);
    s->answer_len = 5;
}

/* ---------------------------------------------------------------------------------------------------- NIAH */

/* RULER niah, base template with the answer prefix appended (prepare.py), then " {answer}".
   Plural (more than one answer: multivalue):
     Some special magic numbers are hidden within the following text. Make sure to memorize it. I will quiz you about the numbers afterwards.\n{context}\nWhat are all the special magic numbers for {query} mentioned in the provided text? The special magic numbers for {query} mentioned in the provided text are
   Singularised (exactly one answer: single, multikey): Some->A, "are all"->"is", "are"->"is", numbers->number:
     A special magic number is hidden within the following text. Make sure to memorize it. I will quiz you about the number afterwards.\n{context}\nWhat is the special magic number for {query} mentioned in the provided text? The special magic number for {query} mentioned in the provided text is */
static void niah_write(TaskText *w, int plural, const TaskLine *needles, int k, int n_full, int partial,
                       const char *query, const char *answer, int *answer_start) {
    if (plural) {
        text_put(w, "Some special magic numbers are hidden within the following text. Make sure to memorize it. "
                    "I will quiz you about the numbers afterwards.\n");
    } else {
        text_put(w, "A special magic number is hidden within the following text. Make sure to memorize it. "
                    "I will quiz you about the number afterwards.\n");
    }
    context_write(w, needles, k, n_full, partial);
    if (plural) {
        text_put(w, "\nWhat are all the special magic numbers for ");
        text_put(w, query);
        text_put(w, " mentioned in the provided text? The special magic numbers for ");
        text_put(w, query);
        text_put(w, " mentioned in the provided text are");
    } else {
        text_put(w, "\nWhat is the special magic number for ");
        text_put(w, query);
        text_put(w, " mentioned in the provided text? The special magic number for ");
        text_put(w, query);
        text_put(w, " mentioned in the provided text is");
    }
    text_put(w, " ");
    *answer_start = w->n;
    text_put(w, answer);
}

/* The needle sentence, always plural as RULER formats it before singularising the template:
     One of the special magic numbers for {key} is: {value}. */
static void niah_needle(TaskLine *line, const char *key, const char *value) {
    snprintf(line->text, sizeof(line->text), "One of the special magic numbers for %s is: %s.", key, value);
    line->slot = 0;
}

/* The longest adj-noun key the word lists can make. */
static void niah_longest_key(char *out, size_t n) {
    int ia = 0, in = 0;
    for (int i = 1; i < TASK_N_ADJS; i++) if (strlen(TASK_ADJS[i]) > strlen(TASK_ADJS[ia])) ia = i;
    for (int i = 1; i < TASK_N_NOUNS; i++) if (strlen(TASK_NOUNS[i]) > strlen(TASK_NOUNS[in])) in = i;
    snprintf(out, n, "%s-%s", TASK_ADJS[ia], TASK_NOUNS[in]);
}

/* The answer text: one value, or the values joined by ", ". */
static void niah_answer(char *out, size_t n, char values[][16], int n_values) {
    size_t len = 0;
    out[0] = '\0';
    for (int j = 0; j < n_values && len + 1 < n; j++) {
        int w = snprintf(out + len, n - len, "%s%s", j > 0 ? ", " : "", values[j]);
        if (w < 0) break;
        len += (size_t)w < n - len ? (size_t)w : n - len - 1;
    }
}

/* NIAH prompt length with no haystack lines and every key as long as possible. */
static int niah_min_len(int n_keys, int n_values) {
    char key[64], values[TASK_MAX_NEEDLES][16], answer[TASK_ANSWER_MAX];
    TaskLine needles[TASK_MAX_NEEDLES];
    niah_longest_key(key, sizeof(key));
    for (int j = 0; j < n_values; j++) snprintf(values[j], sizeof(values[j]), "1234567");
    for (int i = 0; i < n_keys * n_values; i++) niah_needle(&needles[i], key, "1234567");
    niah_answer(answer, sizeof(answer), values, n_values);
    TaskText w = {NULL, 0, 0};
    int a;
    niah_write(&w, n_values > 1, needles, n_keys * n_values, 0, -1, key, answer, &a);
    return w.n;
}

/* NIAH sample with n_keys keys of n_values values each (single 1x1, multikey 4x1, multivalue 1x4); one key is
   queried. Keys adj-noun and values randint(10^6, 10^7 - 1), all distinct. */
static void niah_generate(TaskSample *s, int T, double depth, int n_keys, int n_values, Rng *rng) {
    char keys[TASK_MAX_NEEDLES][64], values[TASK_MAX_NEEDLES][TASK_MAX_NEEDLES][16];
    TaskLine needles[TASK_MAX_NEEDLES];
    int owner[TASK_MAX_NEEDLES];             /* key index of each needle */
    int k = n_keys * n_values;
    for (int i = 0; i < n_keys; i++) {
        int again;
        do {
            snprintf(keys[i], sizeof(keys[i]), "%s-%s", TASK_ADJS[task_randint(rng, 0, TASK_N_ADJS - 1)],
                     TASK_NOUNS[task_randint(rng, 0, TASK_N_NOUNS - 1)]);
            again = 0;
            for (int j = 0; j < i; j++) if (strcmp(keys[i], keys[j]) == 0) again = 1;
        } while (again);
    }
    for (int i = 0; i < k; i++) {
        int again;
        do {
            snprintf(values[i / n_values][i % n_values], 16, "%d", task_randint(rng, 1000000, 9999999));
            again = 0;
            for (int j = 0; j < i; j++)
                if (strcmp(values[i / n_values][i % n_values], values[j / n_values][j % n_values]) == 0) again = 1;
        } while (again);
        niah_needle(&needles[i], keys[i / n_values], values[i / n_values][i % n_values]);
        owner[i] = i / n_values;
    }
    int q = task_randint(rng, 0, n_keys - 1);
    char answer[TASK_ANSWER_MAX];
    niah_answer(answer, sizeof(answer), values[q], n_values);

    TaskText measure = {NULL, 0, 0};
    int a, n_full, partial;
    niah_write(&measure, n_values > 1, needles, k, 0, -1, keys[q], answer, &a);
    int m = haystack_size(T, measure.n, &n_full, &partial);

    if (n_keys == 1) {
        ordered_slots(rng, depth, m, needles, k);             /* multivalue keeps its values in context order */
    } else {
        for (int i = k - 1; i > 0; i--) {                      /* RULER shuffles the needles */
            int j = task_randint(rng, 0, i);
            TaskLine t = needles[i]; needles[i] = needles[j]; needles[j] = t;
            int o = owner[i]; owner[i] = owner[j]; owner[j] = o;
        }
        if (depth < 0) {
            int slots[TASK_MAX_NEEDLES];
            draw_sorted_slots(rng, 0, m, k, slots);
            for (int i = 0; i < k; i++) needles[i].slot = slots[i];
        } else {
            for (int i = 0; i < k; i++)
                needles[i].slot = owner[i] == q ? depth_slot(depth, m) : task_randint(rng, 0, m);
        }
    }
    TaskText w = {s->tokens, 0, s->cap};
    niah_write(&w, n_values > 1, needles, k, n_full, partial, keys[q], answer, &s->answer_start);
    s->answer_len = (int)strlen(answer);
}

/* ------------------------------------------------------------------------------------- variable tracking */

/* RULER variable_tracking, base template with the answer prefix appended, then the names:
     Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n{context}\nQuestion: Find all variables that are assigned the value {value} in the text above. Answer: According to the chain(s) of variable assignment in the text above, 5 variables are assigned the value {value}, they are: {answer}
   (the answer prefix ends in ": ", so the names follow directly). */
static void vt_write(TaskText *w, const TaskLine *lines, int k, int n_full, int partial, const char *value,
                     const char *answer, int *answer_start) {
    text_put(w, "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n");
    context_write(w, lines, k, n_full, partial);
    text_put(w, "\nQuestion: Find all variables that are assigned the value ");
    text_put(w, value);
    text_put(w, " in the text above. Answer: According to the chain(s) of variable assignment in the text above, ");
    text_put(w, "5 variables are assigned the value ");
    text_put(w, value);
    text_put(w, ", they are: ");
    *answer_start = w->n;
    text_put(w, answer);
}

/* vt sample: names 5 random uppercase letters (distinct), value randint(10000, 99999); chain lines
     VAR AAAAA = 12345
     VAR BBBBB = VAR AAAAA        (with RULER's trailing space)
   and so on for num_hops = 4, inserted in order; answer "AAAAA BBBBB CCCCC DDDDD EEEEE". */
static int vt_build(TaskSample *s, int T, double depth, Rng *rng, int measure_only) {
    enum { VT_VARS = 5 };
    char names[VT_VARS][8], value[16], answer[TASK_ANSWER_MAX];
    TaskLine lines[VT_VARS];
    for (int i = 0; i < VT_VARS; i++) {
        int again;
        do {
            for (int c = 0; c < 5; c++) names[i][c] = measure_only ? 'A' : (char)('A' + task_randint(rng, 0, 25));
            names[i][5] = '\0';
            again = 0;
            for (int j = 0; j < i && !measure_only; j++) if (strcmp(names[i], names[j]) == 0) again = 1;
        } while (again);
    }
    snprintf(value, sizeof(value), "%d", measure_only ? 12345 : task_randint(rng, 10000, 99999));
    snprintf(lines[0].text, TASK_LINE_MAX, "VAR %s = %s", names[0], value);
    for (int i = 1; i < VT_VARS; i++) snprintf(lines[i].text, TASK_LINE_MAX, "VAR %s = VAR %s ", names[i], names[i - 1]);
    answer[0] = '\0';
    for (int i = 0; i < VT_VARS; i++) {
        if (i > 0) strcat(answer, " ");
        strcat(answer, names[i]);
    }
    for (int i = 0; i < VT_VARS; i++) lines[i].slot = 0;
    TaskText measure = {NULL, 0, 0};
    int a, n_full, partial;
    vt_write(&measure, lines, VT_VARS, 0, -1, value, answer, &a);
    if (measure_only) return measure.n;
    int m = haystack_size(T, measure.n, &n_full, &partial);
    ordered_slots(rng, depth, m, lines, VT_VARS);
    TaskText w = {s->tokens, 0, s->cap};
    vt_write(&w, lines, VT_VARS, n_full, partial, value, answer, &s->answer_start);
    s->answer_len = (int)strlen(answer);
    return w.n;
}

/* ---------------------------------------------------------------------------------------------------- MQAR */

/* n_kv for mqar: the option, or T/16 clipped to [1, min(T/4, V/2 - 1)]. */
static int mqar_pairs(const TaskOptions *o, int T) {
    if (o->mqar_kv > 0) return o->mqar_kv;
    int n = T / 16;
    int hi = T / 4 < o->mqar_vocab / 2 - 1 ? T / 4 : o->mqar_vocab / 2 - 1;
    if (n > hi) n = hi;
    if (n < 1) n = 1;
    return n;
}

/* Zoology's multiquery_ar, one example:
     keys n_kv distinct from [1, V/2), values n_kv distinct from [V/2, V); tokens 0 .. 2n_kv-1 = k1 v1 k2 v2 ...
     every later token uniform in [0, V) (random_non_queries), or 0 with blank
     gaps g_i distinct in [0, space), space = (T - 2 n_kv) / 2, drawn one at a time without replacement with
     p(g) ∝ a (g+1)^(a-1), a = 0.01; key k_i at 2 n_kv + 2 g_i, scored there (its next token is v_i)
   here v_i is also written at 2 n_kv + 2 g_i + 1 (see the deviations above). */
static void mqar_generate(TaskSample *s, int T, int V, int n_kv, int blank, Rng *rng) {
    const double power_a = 0.01;
    int half = V / 2;
    int space = (T - 2 * n_kv) / 2;
    int *keys = (int *)mallocCheck(sizeof(int) * (size_t)n_kv);
    int *values = (int *)mallocCheck(sizeof(int) * (size_t)n_kv);
    int *gap_key = (int *)mallocCheck(sizeof(int) * (size_t)space);        /* pair index queried at gap g, or -1 */
    double *weight = (double *)mallocCheck(sizeof(double) * (size_t)space);
    unsigned char *used = (unsigned char *)mallocCheck((size_t)V);
    memset(used, 0, (size_t)V);
    for (int i = 0; i < n_kv; i++) {
        int k;
        do { k = task_randint(rng, 1, half - 1); } while (used[k]);
        used[k] = 1;
        keys[i] = k;
    }
    for (int i = 0; i < n_kv; i++) {
        int v;
        do { v = task_randint(rng, half, V - 1); } while (used[v]);
        used[v] = 1;
        values[i] = v;
    }
    for (int i = 0; i < n_kv; i++) {
        s->tokens[2 * i] = keys[i];
        s->tokens[2 * i + 1] = values[i];
    }
    for (int t = 2 * n_kv; t < T; t++) s->tokens[t] = blank ? 0 : task_randint(rng, 0, V - 1);
    double total = 0.0;
    for (int g = 0; g < space; g++) {
        weight[g] = power_a * pow((double)(g + 1), power_a - 1.0);
        total += weight[g];
        gap_key[g] = -1;
    }
    for (int i = 0; i < n_kv; i++) {
        double u = rng_uniform(rng) * total;
        int pick = -1;
        for (int g = 0; g < space; g++) {
            if (gap_key[g] >= 0) continue;
            pick = g;                           /* the last free gap, should rounding carry u past the end */
            u -= weight[g];
            if (u < 0) break;
        }
        gap_key[pick] = i;
        total -= weight[pick];
    }
    s->n_score = 0;
    for (int g = 0; g < space; g++) {
        if (gap_key[g] < 0) continue;
        int p = 2 * n_kv + 2 * g;
        s->tokens[p] = keys[gap_key[g]];
        s->tokens[p + 1] = values[gap_key[g]];
        s->score_pos[s->n_score++] = p;
    }
    s->answer_start = s->score_pos[s->n_score - 1] + 1;
    s->answer_len = 1;
    free(keys); free(values); free(gap_key); free(weight); free(used);
}

/* ----------------------------------------------------------------------------------------------- public API */

/* The command-line name of a task. */
const char *task_name(int task) {
    return (task >= 0 && task < TASK_COUNT) ? TASK_NAMES[task] : "?";
}

/* A task id from its name, or -1. */
int task_from_name(const char *name) {
    for (int i = 0; i < TASK_COUNT; i++) if (strcmp(name, TASK_NAMES[i]) == 0) return i;
    return -1;
}

/* Random depth, next-token targets everywhere, no BOS, MQAR V = 256 with the automatic n_kv and random filler. */
TaskOptions task_options_default(void) {
    TaskOptions o;
    o.depth = -1.0;
    o.answer_only = 0;
    o.bos = 0;
    o.mqar_vocab = 256;
    o.mqar_kv = 0;
    o.mqar_blank = 0;
    return o;
}

/* Allocate the three (cap) buffers of a sample. */
void task_sample_alloc(TaskSample *s, int cap) {
    memset(s, 0, sizeof(*s));
    s->tokens = (int *)mallocCheck(sizeof(int) * (size_t)cap);
    s->targets = (int *)mallocCheck(sizeof(int) * (size_t)cap);
    s->score_pos = (int *)mallocCheck(sizeof(int) * (size_t)cap);
    s->cap = cap;
}

/* Free a sample's buffers. */
void task_sample_free(TaskSample *s) {
    free(s->tokens); free(s->targets); free(s->score_pos);
    memset(s, 0, sizeof(*s));
}

/* The shortest T a task fits in: its prompt measured with no haystack and the longest keys. */
int task_min_len(int task, const TaskOptions *o) {
    TaskOptions def = task_options_default();
    if (o == NULL) o = &def;
    if (o->bos && task >= 0 && task < TASK_COUNT) {
        TaskOptions inner = *o;
        inner.bos = 0;
        return 1 + task_min_len(task, &inner);
    }
    switch (task) {
        case TASK_PASSKEY: return passkey_fixed_len();
        case TASK_NIAH_SINGLE: return niah_min_len(1, 1);
        case TASK_NIAH_MULTIKEY: return niah_min_len(4, 1);
        case TASK_NIAH_MULTIVALUE: return niah_min_len(1, 4);
        case TASK_VT: return vt_build(NULL, 0, 0.0, NULL, 1);
        case TASK_MQAR: return 4 * (o->mqar_kv > 0 ? o->mqar_kv : 1);
        default: return -1;
    }
}

/* Validate, generate one sample, then fill score_pos (text tasks) and the training targets. */
int task_generate(TaskSample *s, int task, int T, const TaskOptions *o, Rng *rng, char *err, size_t errlen) {
    TaskOptions def = task_options_default();
    if (o == NULL) o = &def;
    if (task < 0 || task >= TASK_COUNT) {
        task_set_err(err, errlen, "unknown task id %d (0 .. %d)", task, TASK_COUNT - 1);
        return -1;
    }
    if (T < 2 || T > s->cap) {
        task_set_err(err, errlen, "%s: T = %d must be in [2, %d] (the sample's buffer capacity)", task_name(task), T, s->cap);
        return -1;
    }
    if (!(o->depth <= 1.0)) {
        task_set_err(err, errlen, "%s: depth %g is not in [0, 1] (or < 0 for random)", task_name(task), o->depth);
        return -1;
    }
    if (o->bos) {
        /* BOS, then the sample of T-1 tokens written one position on (same buffers, shifted views) */
        if (T < task_min_len(task, o)) {
            task_set_err(err, errlen, "%s: T = %d is too short: with the BOS it needs %d tokens; use T >= %d", task_name(task), T,
                         task_min_len(task, o), task_min_len(task, o));
            return -1;
        }
        TaskOptions inner = *o;
        inner.bos = 0;
        if (task == TASK_MQAR && inner.mqar_kv == 0) inner.mqar_kv = mqar_pairs(o, T);   /* pairs as at length T */
        TaskSample view = *s;
        view.tokens = s->tokens + 1;
        view.targets = s->targets + 1;
        view.cap = s->cap - 1;
        if (task_generate(&view, task, T - 1, &inner, rng, err, errlen) != 0) return -1;
        s->tokens[0] = TASK_BOS;
        s->targets[0] = o->answer_only ? -1 : s->tokens[1];
        for (int i = 0; i < view.n_score; i++) s->score_pos[i] += 1;
        s->n_score = view.n_score;
        s->answer_start = view.answer_start + 1;
        s->answer_len = view.answer_len;
        s->n = T;
        s->task = task;
        return 0;
    }
    if (task == TASK_MQAR) {
        int V = o->mqar_vocab, n_kv = mqar_pairs(o, T);
        if (V < 4) {
            task_set_err(err, errlen, "mqar: vocab %d is too small (keys come from [1, V/2), values from [V/2, V): V >= 4)", V);
            return -1;
        }
        if (n_kv > V / 2 - 1) {
            task_set_err(err, errlen, "mqar: %d pairs need %d distinct keys but [1, V/2) holds %d; lower n_kv or raise V", n_kv, n_kv, V / 2 - 1);
            return -1;
        }
        if (4 * n_kv > T) {
            task_set_err(err, errlen, "mqar: T = %d is too short for %d pairs (Zoology's constraint 4 * n_kv <= T); lower n_kv or raise T", T, n_kv);
            return -1;
        }
        mqar_generate(s, T, V, n_kv, o->mqar_blank, rng);
    } else {
        int need = task_min_len(task, o);
        if (T < need) {
            task_set_err(err, errlen, "%s: T = %d is too short: the prompt alone needs %d tokens; use T >= %d", task_name(task), T, need, need);
            return -1;
        }
        if (task == TASK_PASSKEY) passkey_generate(s, T, o->depth, rng);
        if (task == TASK_NIAH_SINGLE) niah_generate(s, T, o->depth, 1, 1, rng);
        if (task == TASK_NIAH_MULTIKEY) niah_generate(s, T, o->depth, 4, 1, rng);
        if (task == TASK_NIAH_MULTIVALUE) niah_generate(s, T, o->depth, 1, 4, rng);
        if (task == TASK_VT) vt_build(s, T, o->depth, rng, 0);
        int written = s->answer_start + s->answer_len;
        if (written != T) {
            task_set_err(err, errlen, "%s: internal error: wrote %d tokens for T = %d", task_name(task), written, T);
            return -1;
        }
        s->n_score = s->answer_len;
        for (int i = 0; i < s->answer_len; i++) s->score_pos[i] = s->answer_start - 1 + i;
    }
    s->n = T;
    s->task = task;
    for (int t = 0; t < T; t++) s->targets[t] = -1;
    if (o->answer_only) {
        for (int i = 0; i < s->n_score; i++) s->targets[s->score_pos[i]] = s->tokens[s->score_pos[i] + 1];
    } else {
        for (int t = 0; t < T - 1; t++) s->targets[t] = s->tokens[t + 1];
    }
    return 0;
}

/* Teacher-forced exact match: 1 iff the argmax at every scored position is the next token. */
int task_score_argmax(const TaskSample *s, const int *argmax_tokens) {
    for (int i = 0; i < s->n_score; i++) {
        int t = s->score_pos[i];
        if (argmax_tokens[t] != s->tokens[t + 1]) return 0;
    }
    return 1;
}

/* The fraction of scored positions whose argmax is the next token (MQAR accuracy). */
double task_score_fraction(const TaskSample *s, const int *argmax_tokens) {
    if (s->n_score == 0) return 0.0;
    int right = 0;
    for (int i = 0; i < s->n_score; i++) {
        int t = s->score_pos[i];
        if (argmax_tokens[t] == s->tokens[t + 1]) right++;
    }
    return (double)right / s->n_score;
}

/* Parse "task:prop[,task:prop...]" into mix, refusing unknown or repeated tasks, props outside (0, 1], sum > 1. */
int task_mix_parse(const char *spec, TaskMix *mix, char *err, size_t errlen) {
    memset(mix, 0, sizeof(*mix));
    if (spec == NULL || spec[0] == '\0') return 0;
    const char *p = spec;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        char item[64];
        if (len == 0) {
            task_set_err(err, errlen, "--mix '%s' has an empty entry (expected task:proportion[,task:proportion...], e.g. passkey:0.2,mqar:0.1)", spec);
            return -1;
        }
        if (len >= sizeof(item)) {
            task_set_err(err, errlen, "--mix entry '%.*s' is too long (expected task:proportion, e.g. passkey:0.2)", (int)len, p);
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        char *colon = strchr(item, ':');
        if (colon == NULL) {
            task_set_err(err, errlen, "--mix entry '%s' has no ':proportion' (expected e.g. %s:0.2)", item, item);
            return -1;
        }
        *colon = '\0';
        const char *name = item, *num = colon + 1;
        int task = task_from_name(name);
        if (task < 0) {
            task_set_err(err, errlen, "--mix: unknown task '%s' (tasks: passkey, niah_single, niah_multikey, niah_multivalue, vt, mqar)", name);
            return -1;
        }
        for (int i = 0; i < mix->n; i++) {
            if (mix->item[i].task == task) {
                task_set_err(err, errlen, "--mix: task '%s' is listed twice; give it once with the total proportion", name);
                return -1;
            }
        }
        char *num_end = NULL;
        double prop = strtod(num, &num_end);
        if (num_end == num || *num_end != '\0' || !(prop > 0.0 && prop <= 1.0)) {
            task_set_err(err, errlen, "--mix: proportion '%s' of task '%s' must be a number in (0, 1] (the fraction of training rows)", num, name);
            return -1;
        }
        mix->item[mix->n].task = task;
        mix->item[mix->n].prop = prop;
        mix->n++;
        mix->total += prop;
        if (end == NULL) break;
        p = end + 1;
    }
    if (mix->total > 1.0 + 1e-9) {
        task_set_err(err, errlen, "--mix '%s': the proportions sum to %g > 1 (they are fractions of the training rows); lower them", spec, mix->total);
        return -1;
    }
    return 0;
}

/* Draw the task of one training row: task i with probability prop_i, else -1 (plain text). */
int task_mix_pick(const TaskMix *mix, Rng *rng) {
    double u = rng_uniform(rng);
    for (int i = 0; i < mix->n; i++) {
        if (u < mix->item[i].prop) return mix->item[i].task;
        u -= mix->item[i].prop;
    }
    return -1;
}

#endif /* ROPEPP_TASKS_IMPLEMENTATION_DONE */
#endif /* ROPEPP_TASKS_IMPLEMENTATION */
