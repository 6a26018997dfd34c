/*
ropepp.h — RoPE++ ("Beyond Real: Imaginary Extension of Rotary Position Embeddings for Long-Context LLMs",
arXiv 2512.07525) and its position-embedding baselines (RoPE, FoPE, ALiBi, partial rotary, NoPE): the whole model
in one stb-style header, forward and backward, in plain C with OpenMP.

Use:   #include "ropepp.h"                         declarations only (any number of files)
       #define ROPEPP_IMPLEMENTATION               in exactly one .c file, before the include, for the bodies
       #define ROPEPP_DOUBLE                       optional: compute in double (the gradient checks use this)
       #define ROPEPP_CUDA                         the CUDA build: op bodies come from ropepp_cuda.cu instead
Build: make            (CPU programs: train, tests)     make test      (every CPU check)

The file has four parts, each calling only the ones above it:
  1. basics     element types, xxxCheck helpers, RNG, config, position-embedding names
  2. ops        one name_forward / name_backward pair per op, outputs first; backward accumulates (+=) except
                where a declaration says WRITES (the gradients the model passes straight on)
  3. model      parameters, activations, model_forward (all logits) or model_forward_loss (training: classifier
                and loss in chunks, their backward in the same pass) / model_backward / model_update, the op
                profiler, schedules, checkpoints
  4. data       llm.c token shards, loader, byte tokenizer, sampler

Dims legend (used in every shape comment):
  B  batch            T  sequence length     C  model dim          L  layers          V  vocab
  H  config heads     KV config kv heads     HD head dim = C/H     F  ffn hidden dim  N  B*T rows
  HQ projected q heads  (H/2 for ropepp_eh, else H)
  KVH projected kv heads (KV/2 for ropepp_eh, else KV)
  NA attention heads    (2H for ropepp_ec, else H); attention head a reads kv head a / (NA/KVH)
  QKV = (HQ + 2*KVH) * HD, the width of the fused q/k/v projection
The math and the official code's conventions: docs/MATH.md, quoted here next to each piece by section name. File formats: docs/FORMATS.md.
*/
#ifndef ROPEPP_H
#define ROPEPP_H

#if defined(ROPEPP_IMPLEMENTATION) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L   /* glob, fileno, fsync, strdup: include this header before any system header */
#endif
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#if defined(ROPEPP_CUDA) && !defined(ROPEPP_FP32) && defined(__CUDACC__)
#include <cuda_bf16.h>   /* C++ templates: outside extern "C" */
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------------------------
   1. Basics
   ------------------------------------------------------------------------------------------------------------ */

/* Element types. floatX: activations, parameters as the ops read them, gradients. floatM: master weights, AdamW
   moments, position-embedding tables, norm statistics and losses. On the CPU both are `real` (float, or double
   with ROPEPP_DOUBLE). The CUDA build uses bf16 activations (fp32 with ROPEPP_FP32) and fp32 masters. */
#ifdef ROPEPP_DOUBLE
typedef double real;
#else
typedef float real;
#endif
#if defined(ROPEPP_CUDA)
typedef float floatM;
#  if defined(ROPEPP_FP32)
typedef float floatX;
#  elif defined(__CUDACC__)
typedef __nv_bfloat16 floatX;
#  else
typedef struct { uint16_t bits; } floatX;   /* bf16 storage; only the CUDA file does arithmetic on it */
#  endif
#else
typedef real floatM;
typedef real floatX;
#endif

/* xxxCheck helpers: report file:line, what failed and a one-line HINT, then exit(1). For programs; the file
   readers below return an error message instead of exiting, so that tests and fuzzers can call them. */
void *malloc_check(size_t size, const char *file, int line);
FILE *fopen_check(const char *path, const char *mode, const char *file, int line);
void fread_check(void *ptr, size_t size, size_t nmemb, FILE *fp, const char *file, int line);
void fwrite_check(const void *ptr, size_t size, size_t nmemb, FILE *fp, const char *file, int line);
void fclose_check(FILE *fp, const char *file, int line);
#define mallocCheck(size) malloc_check(size, __FILE__, __LINE__)
#define fopenCheck(path, mode) fopen_check(path, mode, __FILE__, __LINE__)
#define freadCheck(ptr, size, nmemb, fp) fread_check(ptr, size, nmemb, fp, __FILE__, __LINE__)
#define fwriteCheck(ptr, size, nmemb, fp) fwrite_check(ptr, size, nmemb, fp, __FILE__, __LINE__)
#define fcloseCheck(fp) fclose_check(fp, __FILE__, __LINE__)

/* RNG: splitmix64. One uint64 of state, so a checkpoint can save and restore it exactly. */
typedef struct { uint64_t state; } Rng;
uint64_t rng_u64(Rng *r);
double rng_uniform(Rng *r);                 /* [0, 1) with 53 random bits */
double rng_normal(Rng *r);                  /* N(0, 1), Box-Muller */
/* Counter-based normal: the same value for the same (seed, index) on any backend and thread order. */
double noise_normal(uint64_t seed, uint64_t index);

/* Position embeddings. The id is what a checkpoint stores (append only, never renumber); every fact a program,
   script or test needs about one is its row of pe_table (ropepp.h part 1 bodies), read through the functions
   below. `./train --list-pe` prints the table. Adding one: docs/ADDING_A_PE.md. */
typedef enum { PE_NOPE = 0, PE_ROPE = 1, PE_ROPEPP_EH = 2, PE_ROPEPP_EC = 3, PE_FOPE = 4, PE_ALIBI = 5,
               PE_PARTIAL = 6, PE_COUNT = 7 } PeKind;
typedef struct {
    const char *name;          /* what every command line takes (--pe NAME) and every output file prints */
    int rotary;                /* 1: q and k are rotated with cos/sin tables (rot > 0) */
    int imag;                  /* 1: RoPE++: each q head also makes an imaginary attention head (docs/MATH.md) */
    int halves_heads;          /* 1: projects H/2 q heads and KV/2 kv heads (RoPE++ EH); else H and KV */
    int partial;               /* 1: rotates only a fraction (Config.rotary_frac) of each head's dims */
    int per_group;             /* 1: one rotary table per kv head (FoPE) */
    int scalable;              /* 1: takes the rope scaling variants (PI, YaRN, NTK) */
    int alibi;                 /* 1: linear distance bias with per-head slopes instead of rotation */
    const char *description;   /* one line for --help and --list-pe */
} PeInfo;
const PeInfo *pe_info(int pe);               /* NULL if pe is not in [0, PE_COUNT) */
const char *pe_name(int pe);                 /* "unknown" if out of range */
int pe_from_name(const char *name);          /* -1 if unknown */
int pe_is_rotary(int pe);                    /* 0 for an unknown id, as are the others */
int pe_is_imag(int pe);
int pe_scalable(int pe);
/* the names of every PE (which < 0) or of those with pe_scalable (which = 1), separated by sep, into buf */
const char *pe_names(char *buf, size_t n, const char *sep, int which);
void pe_list(FILE *f);                       /* the table, one PE a line: name, facts, description */
enum { INIT_TORCH_DEFAULT = 0, INIT_HF = 1 };
extern const char *const init_names[];      /* by value: "torch_default", "hf", NULL (--init) */
enum { TOKENIZER_BYTES = 0, TOKENIZER_GPT2 = 1, TOKENIZER_LLAMA3 = 2 };
enum { NOISE_NONE = 0, NOISE_REAL = 1, NOISE_IMAG = 2 };

/* Everything needed to rebuild a model; it is what a checkpoint header stores (docs/FORMATS.md). */
typedef struct {
    int vocab_size;      /* V */
    int dim;             /* C */
    int n_layers;        /* L */
    int n_heads;         /* H: the config's heads (EC attends with 2H, EH projects H/2) */
    int n_kv_heads;      /* KV: the config's kv heads (EH projects KV/2) */
    int ffn_dim;         /* F */
    int pe;              /* PeKind */
    int train_seq;       /* L_train: FoPE's floor 2*pi/L_train, YaRN's default original length */
    int yarn_orig_len;   /* YaRN's original window (0 = train_seq; the authors hard-code 4096) */
    int tokenizer;       /* TOKENIZER_* */
    int init;            /* INIT_* used to create it (information only) */
    double rope_base;    /* theta base, 10000 (500000 in the long-context stage) */
    double rotary_frac;  /* partial: fraction of each head that is rotated (the "pythia" baseline: 0.25) */
    double pi_factor;    /* linear position interpolation s: theta /= s (1 = off) */
    double yarn_factor;  /* the authors' YaRN variant with factor s (1 = off) */
    double ntk_factor;   /* eval-time NTK: base *= lambda (1 = off) */
    double norm_eps;     /* RMSNorm eps, 1e-5 */
} Config;

/* Sizes derived from a Config: head counts per mode (docs/MATH.md, Head layouts) and the FoPE basis (docs/MATH.md, FoPE). */
typedef struct {
    int HD;      /* head dim C/H, never recomputed for EH/EC */
    int HQ;      /* projected q heads */
    int KVH;     /* projected kv heads */
    int NA;      /* attention heads */
    int QKV;     /* (HQ + 2*KVH) * HD */
    int imag;    /* 1 for RoPE++: q head h makes attention heads 2h (real) and 2h+1 (imaginary) */
    int rot;     /* rotated dims per head: HD for rope/ropepp/fope, round(frac*HD) for partial, 0 otherwise */
    int fope_m;  /* FoPE input frequencies kept (omega_m >= 2*pi/L_train) */
    int fope_p;  /* FoPE output channels min(M, HD/4) */
} Dims;

Config config_default(void);
/* 0 if the config is usable, else -1 with a one-line reason (what is wrong and what to do) in err. */
int config_validate(const Config *c, char *err, size_t errlen);
/* The rotary fraction the model uses, as a checkpoint or settings.txt stores it: rotary_frac for partial (the only
   PE with one), 1 for every other PE whatever the field holds (docs/FORMATS.md). */
double config_rotary_frac(const Config *c);
Dims config_dims(const Config *c);
size_t attention_param_count(const Config *c);   /* q/k/v/o parameters of one layer */

/* ------------------------------------------------------------------------------------------------------------
   2. Ops. Signature order as in llm.c: outputs, saved-for-backward, inputs, weights, sizes. Backward
   accumulates into its gradient outputs (+=) and the caller zeroes, except where a line below says WRITES: the
   gradients the model passes straight on (matmul's dinp, swiglu, attention, cross-entropy) are written (=), so
   the model never clears a scratch buffer. Matmul weights are (out, in): y = x W^T.
   ------------------------------------------------------------------------------------------------------------ */

/* The position embedding of one layer as the attention op sees it. Tables live in backend memory. */
typedef struct {
    int rot;               /* rotated dims: pairs (j, j + rot/2) for j < rot/2; dims >= rot pass through */
    int imag;              /* 1: each q head h makes attention heads 2h (real) and 2h+1 (imaginary) */
    int per_group;         /* 1: the tables differ per kv head (FoPE), else one table for all heads */
    int T_table;           /* positions the tables hold */
    const floatM *cos;     /* (per_group ? KVH : 1, T_table, rot/2) multiplies (a, b) as below */
    const floatM *sin;     /* (per_group ? KVH : 1, T_table, rot/2) */
    const floatM *alibi;   /* (NA) slopes, or NULL */
    double noise_sigma;    /* noise experiment: N(0, sigma^2) on the rotated queries (forward only) */
    int noise_target;      /* NOISE_NONE, NOISE_REAL or NOISE_IMAG */
    uint64_t noise_seed;   /* redrawn by the model on every forward and layer */
} PosEmb;

/* encoder: out = wte[inp] */
void encoder_forward(floatX *out, const int *inp, const floatX *wte, int N, int C);
void encoder_backward(floatX *dwte, const floatX *dout, const int *inp, int N, int C);
/* rmsnorm: out = inp * rstd * weight, rstd = 1/sqrt(mean(inp^2) + eps) */
void rmsnorm_forward(floatX *out, floatM *rstd, const floatX *inp, const floatX *weight, int N, int C, double eps);
void rmsnorm_backward(floatX *dinp, floatX *dweight, const floatX *dout, const floatX *inp, const floatX *weight,
                      const floatM *rstd, int N, int C);
/* residual: out = a + b (its backward is the identity: the model adds straight into the residual gradient) */
void residual_forward(floatX *out, const floatX *a, const floatX *b, size_t n);
/* matmul: out = inp weight^T. Backward WRITES dinp (=) and accumulates dweight (+=). On the CPU these go through
   cblas_sgemm / cblas_dgemm when the build found a BLAS (ROPEPP_BLAS, see the Makefile), else through the plain
   loops below, which are always compiled: they are the readable reference the BLAS path is tested against. */
void matmul_forward(floatX *out, const floatX *inp, const floatX *weight, int N, int IC, int OC);
void matmul_backward(floatX *dinp, floatX *dweight, const floatX *dout, const floatX *inp, const floatX *weight,
                     int N, int IC, int OC);
void matmul_forward_loops(floatX *out, const floatX *inp, const floatX *weight, int N, int IC, int OC);
void matmul_backward_loops(floatX *dinp, floatX *dweight, const floatX *dout, const floatX *inp,
                           const floatX *weight, int N, int IC, int OC);
const char *matmul_library(void);   /* "OpenBLAS 0.3.21 (...)" or "plain loops (no BLAS)" */
/* rotary: the position embedding applied to heads read from rows of stride inp_stride. */
void rotary_forward(floatX *out, const floatX *inp, size_t inp_stride, const PosEmb *pe, int imag_out,
                    int group, int B, int T, int NH, int HD);
void rotary_backward(floatX *dinp, const floatX *dout, size_t inp_stride, const PosEmb *pe, int imag_out,
                     int group, int B, int T, int NH, int HD);
/* attention core: causal softmax(q k^T / sqrt(HD) - slope * (i - j)) v with GQA */
void attention_core_forward(floatX *out, floatM *att, const floatX *q, const floatX *k, const floatX *v,
                            size_t v_stride, const floatM *alibi, int B, int T, int NA, int KVH, int HD);
void attention_core_backward(floatX *dq, floatX *dk, floatX *dv, const floatX *dout, const floatM *att,
                             const floatX *q, const floatX *k, const floatX *v, size_t v_stride,
                             int B, int T, int NA, int KVH, int HD);
/* softmax_saved: what the attention forward keeps of its softmax for the backward, backend's choice: the CPU keeps
   the row log-sum-exp (natural log) of the scaled logits (B, NA, T), the GPU the row log2-sum-exp (B, NA, T). */
size_t attention_softmax_saved_size(int B, int T, int NA);   /* floatM elements of softmax_saved per layer */
/* the same attention blocked over keys, as the model's CPU attention runs it: saves lse (B, NA, T), the
   log-sum-exp of each row's scores, instead of the probabilities; backward accumulates like the core's. CPU only. */
void attention_flash_forward(floatX *out, floatM *lse, const floatX *q, const floatX *k, const floatX *v,
                             size_t v_stride, const floatM *alibi, int B, int T, int NA, int KVH, int HD);
void attention_flash_backward(floatX *dq, floatX *dk, floatX *dv, const floatX *dout, const floatM *lse,
                              const floatX *out, const floatX *q, const floatX *k, const floatX *v, size_t v_stride,
                              const floatM *alibi, int B, int T, int NA, int KVH, int HD);
/* attention: the op the model calls — position embedding, noise and attention core from the fused qkv.
   Backward WRITES dqkv (every element). */
void attention_forward(floatX *out, floatX *qr, floatX *kr, floatM *softmax_saved, const floatX *qkv, const PosEmb *pe,
                       int B, int T, int HQ, int KVH, int HD);
void attention_backward(floatX *dqkv, const floatX *dout, const floatX *qr, const floatX *kr, const floatM *softmax_saved,
                        const floatX *qkv, const floatX *out, const PosEmb *pe, int B, int T, int HQ, int KVH,
                        int HD);
/* attention probabilities for analysis: out (B, NA, t1 - t0, T) float, backend = rows t0 <= t < t1 of
   p[b, a, t, j] = softmax_j(q_t . k_j / sqrt(HD) - alibi[a] (t - j)) for j <= t, 0 for j > t, from the rotated
   qr (B, T, NA, HD) and kr (B, T, KVH, HD) of a forward (head a reads kv head a / (NA / KVH)); alibi: NA slopes or
   NULL. q.k in float (keys four at a time on the CPU, one warp a key on the GPU), the softmax in double. */
void attention_probs_forward(float *out, const floatX *qr, const floatX *kr, const floatM *alibi, int B, int T, int NA,
                             int KVH, int HD, int t0, int t1);
/* cached attention for decoding: the Tn new tokens sit at positions pos0 .. pos0+Tn-1; their rotated keys and
   values are written into the cache at those rows, then each new query attends to cache rows 0 .. its position.
   out (B, Tn, NA, HD); kcache, vcache (B, Tmax, KVH, HD); qkv (B, Tn, QKV). pos_dev: NULL, or one backend int
   holding the same pos0, which the GPU decode kernels (Tn <= 4) read instead of the argument so that a step
   captured into a CUDA graph replays at the cache's current position (the CPU reads the argument). */
void attention_cached_forward(floatX *out, floatX *kcache, floatX *vcache, const floatX *qkv, const PosEmb *pe,
                              int pos0, const int *pos_dev, int B, int Tn, int Tmax, int HQ, int KVH, int HD);
/* sampling: tokens[b] (B backend ints) = sample_token on row b of logits (rows row_stride elements apart, V each):
   temperature 0 = greedy (the first argmax), else softmax(logits / temperature) with top-k (0 = off) and top-p
   (1 = off). Row b draws the b-th next uniform of the splitmix64 state *rng (one backend uint64, as Rng), which
   advances by B draws (none when greedy). The GPU computes the same double-precision probabilities, sorts them
   (stable, descending) and sums them in another order; it agrees with the CPU except where the uniform lands within
   rounding (~1e-16) of a boundary between two tokens' cumulative probabilities. */
void sample_forward(int *tokens, uint64_t *rng, const floatX *logits, size_t row_stride, int B, int V,
                    double temperature, int top_k, double top_p);
/* swiglu: out = silu(gate) * up, inp = [gate | up]. Backward WRITES dinp. */
void swiglu_forward(floatX *out, const floatX *inp, int N, int F);
void swiglu_backward(floatX *dinp, const floatX *dout, const floatX *inp, int N, int F);
/* cross-entropy: losses[n] = -log softmax(logits[n])[targets[n]], 0 where targets[n] < 0 (ignored).
   Backward WRITES dlogits = dloss w[n] (softmax - onehot) (not +=), so that it may overwrite logits in place;
   weights (N) gives each target's factor w[n] (the loss mean over rows, train --mix-weight row), NULL: 1. */
void crossentropy_forward(floatM *losses, const floatX *logits, const int *targets, int N, int V);
void crossentropy_backward(floatX *dlogits, const floatX *logits, const int *targets, const floatM *weights, double dloss,
                           int N, int V);
/* both at once, as a training step needs them (one pass over the logits on the GPU); dlogits may be logits */
void crossentropy_forward_backward(floatM *losses, floatX *dlogits, const floatX *logits, const int *targets,
                                   const floatM *weights, double dloss, int N, int V);
/* AdamW (torch.optim.AdamW), on grads scaled by grad_scale (clipping); updates master and its floatX copy. */
void adamw_update(floatX *params, floatM *master, const floatX *grads, floatM *m, floatM *v, size_t n, double lr,
                  double beta1, double beta2, double eps, double weight_decay, double grad_scale, int step);
void global_norm_squared(floatM *out, const floatX *g, size_t n);   /* out[0] += sum g^2 */
void copy_master_to_params(floatX *params, const floatM *master, size_t n);

/* Backend memory: host malloc on the CPU, cudaMalloc in the CUDA build. The model touches its tensors only
   through these and the ops. */
void *backend_malloc(size_t bytes);
void backend_free(void *p);
void backend_to_host(void *dst, const void *src, size_t bytes);
void backend_from_host(void *dst, const void *src, size_t bytes);
void backend_zero(void *p, size_t bytes);
void backend_add_int(int *p, int n);   /* *p += n for one backend int, in order with the queued work */
/* Graphs (CUDA): backend_graph_begin starts capturing the work queued from here on instead of running it and
   returns 1, or returns 0 where the backend has no graphs (CPU: the caller runs the work itself);
   backend_graph_end ends the capture and returns a replayable graph; backend_graph_launch queues one replay. */
int backend_graph_begin(void);
void *backend_graph_end(void);
void backend_graph_launch(void *graph);
void backend_graph_free(void *graph);
size_t backend_scratch_epoch(void);   /* changes when the backend moves its own scratch memory (a graph's input) */
const char *backend_name(void);
/* Timer marks for the op profiler: record mark `slot` (0 .. PROFILE_MARKS-1) in the order of the work queued
   so far (CPU: the wall clock now; CUDA: an event on the stream), and the milliseconds between two recorded
   marks (CUDA: waits for the later one). */
#define PROFILE_MARKS 4096
void backend_timer_record(int slot);
double backend_timer_ms(int from, int to);
/* The most bytes the backend's allocations held at once (CUDA: model tensors and scratch, as PyTorch's
   max_memory_allocated counts; CPU: 0, not tracked). */
size_t backend_memory_peak(void);

/* ------------------------------------------------------------------------------------------------------------
   3. Model
   ------------------------------------------------------------------------------------------------------------ */

enum { P_WTE, P_LN1W, P_QKVW, P_ATTPROJW, P_LN2W, P_FCW, P_FCPROJW, P_LNFW, P_LMW, P_FOPE_COS, P_FOPE_SIN,
       NUM_PARAM_TENSORS };
extern const char *const param_names[NUM_PARAM_TENSORS];

typedef struct {
    floatX *wte;        /* (V, C) */
    floatX *ln1w;       /* (L, C) */
    floatX *qkvw;       /* (L, QKV, C): q rows (HQ*HD), k rows (KVH*HD), v rows (KVH*HD) */
    floatX *attprojw;   /* (L, C, NA*HD): input columns in interleaved head order */
    floatX *ln2w;       /* (L, C) */
    floatX *fcw;        /* (L, 2F, C): gate rows, then up rows */
    floatX *fcprojw;    /* (L, C, F) */
    floatX *lnfw;       /* (C) */
    floatX *lmw;        /* (V, C) */
    floatX *fope_cos;   /* (L, KVH, M, P) frozen */
    floatX *fope_sin;   /* (L, KVH, M, P) frozen */
} ParamTensors;

typedef struct {
    /* floatX activations */
    floatX *encoded;    /* (B, T, C) residual stream entering layer 0 */
    floatX *ln1;        /* (L, B, T, C) */
    floatX *qkv;        /* (L, B, T, QKV) */
    floatX *qr;         /* (L, B, T, NA, HD) rotated queries */
    floatX *kr;         /* (L, B, T, KVH, HD) rotated keys (what a KV cache holds) */
    floatX *atty;       /* (L, B, T, NA, HD) attention output */
    floatX *res2;       /* (L, B, T, C) residual after attention */
    floatX *ln2;        /* (L, B, T, C) */
    floatX *fch;        /* (L, B, T, 2F) gate | up */
    floatX *fchs;       /* (L, B, T, F) swiglu */
    floatX *res3;       /* (L, B, T, C) residual after the MLP */
    floatX *lnf;        /* (B, T, C) */
    floatX *logits;     /* (B, T, V) of the last model_forward (its own allocation, made by the first one; NULL
                           before); overwritten by dlogits in backward. model_forward_loss never makes it. */
    floatX *scratch_a;  /* (B, T, max(C, NA*HD, 2F, QKV)) or more (scratch_a_size): the projections before their
                           residual add, the classifier's chunks of logits (B*T/4 rows at least), gradients */
    floatX *scratch_b;  /* (B, T, max(C, NA*HD, 2F, QKV)) gradient scratch */
    floatX *dres;       /* (B, T, C) gradient of the residual stream */
    /* floatM activations */
    floatM *ln1_rstd;   /* (L, B, T) */
    floatM *ln2_rstd;   /* (L, B, T) */
    floatM *lnf_rstd;   /* (B, T) */
    floatM *softmax_saved;   /* (L, attention_softmax_saved_size(B, T, NA)): the row log-sum-exp (CPU natural log, GPU base 2) */
    floatM *losses;     /* (B, T) */
    floatM *norm;       /* (1) squared gradient norm */
} Activations;

/* Op profiler (train --profile): the model marks the end of every op it queues; profile_collect adds the time
   between consecutive marks of a step to the row of the later mark's label, so the rows say where a step's
   device time goes, including the time the device waits for the host (the "host" rows). */
#define PROFILE_ROWS 64
typedef struct {
    int n_marks;                          /* marks recorded in this step */
    const char *mark_label[PROFILE_MARKS];
    int n_rows;
    const char *row_label[PROFILE_ROWS];  /* in first-seen order */
    double row_ms[PROFILE_ROWS];          /* summed over the collected steps */
    long row_calls[PROFILE_ROWS];
    int steps;                            /* steps collected */
    int overflow;                         /* marks or rows that did not fit */
} Profile;
void profile_mark(Profile *p, const char *label);   /* p NULL: nothing */
/* End of a step: waits for the device; with count the step's intervals are added to the rows, else dropped
   (warm-up). Starts the next step. */
void profile_collect(Profile *p, int count);
/* A table: label, ms per step, share, calls per step; the total; and the sums by kind (attention, matmul, other,
   host waits). */
void profile_print(const Profile *p, FILE *f);

typedef struct Dist Dist;   /* data parallelism over processes (dist_init); NULL = this process alone */

typedef struct {
    Config cfg;
    Dims d;
    size_t param_sizes[NUM_PARAM_TENSORS];   /* elements per tensor, in checkpoint order */
    size_t num_params;
    floatX *params_memory;  ParamTensors params;   /* what the ops read; (world_size * shard_len) when sharded */
    floatX *grads_memory;   ParamTensors grads;    /* same size as params_memory, the padding zero */
    /* ZeRO-1: this process updates the range [shard_start, shard_start + shard_len) of the parameter array (its
       end clipped to num_params), and master, adam_m, adam_v hold only that range. Alone: 0 and num_params. */
    Dist *dist;
    size_t shard_start, shard_len;
    floatM *master;         /* (shard_len) master weights, same order */
    floatM *adam_m;         /* (shard_len) or NULL until the first update */
    floatM *adam_v;         /* (shard_len) */
    /* gradient accumulation: backward adds the gradient of loss_weight * (this forward's mean loss); 1, or 1/N
       for each of the N micro-batches (times the processes) that make one optimizer step */
    double loss_weight;
    /* activations, allocated for B_cap * T_cap rows on first use */
    int B_cap, T_cap;
    floatX *acts_memory; floatM *actsM_memory; Activations acts;
    int *inputs;            /* (B, T) backend */
    int *targets;           /* (B, T) backend */
    floatM *losses_host;    /* (B, T) host */
    /* the loss over the batch: 0 the mean over its targets; 1 (train --mix-weight row) the mean over the rows that
       have targets of each row's mean over its targets, so that a task row with a few answer targets weighs as
       much as a text row: target n of row b has the factor 1 / (rows with targets x targets of row b) */
    int loss_rows;
    floatM *target_w;       /* (B, T) backend: those factors, 0 for ignored targets (with loss_rows) */
    floatM *target_w_host;  /* (B, T) host */
    /* position-embedding tables, for T_table positions */
    int T_table;
    floatM *pe_cos;         /* (L or 1, G, T_table, rot/2); L only for FoPE, G = KVH for FoPE else 1 */
    floatM *pe_sin;
    floatM *pe_alibi;       /* (NA) */
    /* state of the last forward */
    int B, T;
    double loss;            /* mean loss over non-ignored targets, or -1 without targets */
    size_t n_targets;       /* non-ignored targets */
    int lm_head_backward_done;   /* last forward: 0 model_forward, 1 model_forward_loss with the LM head's (the
                                    classifier's) backward done, -1 model_forward_loss without (no model_backward) */
    size_t logits_cap;      /* rows acts.logits holds */
    int head_rows;          /* rows per classifier chunk in model_forward_loss (0: as many as scratch_a holds) */
    int step;               /* optimizer steps done */
    /* noise experiment (forward only) */
    double noise_sigma; int noise_target; uint64_t noise_seed; uint64_t n_forwards;
    const double *noise_layer_scale;   /* (L) layer l's sigma is noise_sigma * scale[l] (eval noise --relative), or NULL */
    Profile *profile;       /* NULL, or where the ops' times go (train --profile) */
} Model;

/* Sampler settings (sample_token): temperature 0 = greedy, top_k 0 = off, top_p 1 = off. vocab: only ids < vocab
   are drawn (the tokenizer's vocabulary of a model padded past it, as llm.c pads 50257 to 50304; 0 = all). */
typedef struct { double temperature; int top_k; double top_p; int vocab; } Sampler;

/* KV cache for decoding: the post-rotary keys and the values of every layer (RoPE++ EH holds half of RoPE's), and
   the state of device-side decoding (the position, the sampler's RNG, the captured step). */
typedef struct {
    int B, Tmax;        /* sequences, positions held */
    int pos;            /* positions filled so far */
    floatX *k;          /* (L, B, Tmax, KVH, HD) backend */
    floatX *v;          /* (L, B, Tmax, KVH, HD) backend */
    size_t bytes;       /* of k and v together */
    int *pos_dev;       /* (1) backend: pos, read by the decode kernels */
    uint64_t *rng;      /* (1) backend: the sampler's splitmix64 state (kvcache_init: seed 0; kvcache_seed) */
    int sampled;        /* 1: the model's token buffer holds the B tokens sampled last (model_sample) */
    int warm;           /* one uncaptured model_decode_next done at this cache (sizes the scratch before capture) */
    void *graph;        /* the captured model_decode_next step, or NULL */
    Sampler graph_sampler;      /* the settings it was captured with */
    const void *graph_mem[5];   /* the memory it reads and writes: model activations, logits, tables; scratch epoch */
} KVCache;

/* Build a model with fresh weights (INIT_*) from a seed. Exits with a message on an invalid config. */
void model_init(Model *m, const Config *c, int init, uint64_t seed);
/* Build a model from host parameters in table order (fp64). */
void model_init_from(Model *m, const Config *c, const double *params);
void model_free(Model *m);
/* Forward over (B, T) host tokens; the logits of every row are kept (model_logits_row). With targets (-1 =
   ignored) returns the mean loss, else -1. */
double model_forward(Model *m, const int *inputs, const int *targets, int B, int T);
/* The mean loss without ever holding the (B, T, V) logits: the classifier and cross-entropy run on chunks of rows
   in scratch. With backward, each chunk's backward runs right there (into the classifier's weight gradient, so
   zero the gradients first: model_zero_grad) and model_backward continues from the final norm. Same numbers as
   model_forward + model_backward. */
double model_forward_loss(Model *m, const int *inputs, const int *targets, int B, int T, int backward);
void model_zero_grad(Model *m);
void model_backward(Model *m);
/* Decoding: run Tn new tokens of each of the cache's B sequences (tokens (B, Tn), host) through the cache at
   positions kv->pos .. kv->pos+Tn-1; their logits are then read with model_logits_row(m, b, t), t < Tn. Tn > 4
   (a prompt) goes through the training attention kernel, fewer through the split-K decode kernel. */
void kvcache_init(KVCache *kv, Model *m, int B, int Tmax);
void kvcache_seed(KVCache *kv, uint64_t seed);   /* the sampler's RNG state (as Rng r = {seed}) */
void kvcache_free(KVCache *kv);
void model_decode(Model *m, KVCache *kv, const int *tokens, int Tn);
/* Decoding without host round trips: model_sample draws the next token of each sequence from the logits of row t
   of the last model_decode (t < its Tn) into the model's token buffer (backend); model_decode_next runs those B
   tokens at kv->pos and samples the next B into the same buffer, all queued on the backend with nothing read back;
   with use_graph the step is captured once into a CUDA graph (after one uncaptured step; again when the sampler
   settings change) and replayed, the position read from kv->pos_dev (CPU, or with the query-noise experiment on:
   the step runs uncaptured). model_tokens_to_host copies the B tokens sampled last to the host (waits for them). */
void model_sample(Model *m, KVCache *kv, int t, const Sampler *s);
void model_decode_next(Model *m, KVCache *kv, const Sampler *s, int use_graph);
void model_tokens_to_host(Model *m, KVCache *kv, int *tokens);
/* AdamW step on every trainable tensor (no weight decay on RMSNorm weights, FoPE frozen); clip > 0 clips the
   global gradient norm. Returns the gradient norm before clipping. */
double model_update(Model *m, double lr, double beta1, double beta2, double eps, double weight_decay, double clip);
/* Training FLOPs per token at sequence length T: 6 per matmul weight (forward 2, backward 4) plus causal
   attention, q.k and p.v over T/2 keys on average in NA heads: 3 passes * 2 matmuls * 2 * NA * HD * T / 2. */
double model_flops_per_token(const Config *c, int T);
/* The noise experiment (docs/MATH.md, The noise experiment): from the next forward on, N(0, sigma^2) is added to the rotated real
   (NOISE_REAL) or imaginary (NOISE_IMAG, RoPE++ only) queries of every layer, redrawn on every forward from
   seed. Forward only. Returns 0, or -1 with a message. */
int model_set_noise(Model *m, int target, double sigma, uint64_t seed, char *err, size_t errlen);
/* Attention probabilities of layer l of the last model_forward, out (B, NA, T, T) on the host, recomputed on the
   backend from the saved rotated queries and keys (attention_probs_forward: any backend gives them, also one that
   never stores T x T; the GPU computes them on the device). Only the query
   rows t0 <= t < t1 are written (the analyses read some rows; each costs t + 1 dot products); the rest of out is
   left as it was. */
void model_attention_probs(Model *m, int l, int t0, int t1, float *out);
/* n floatX values of backend memory as a malloc'd host float array (eval's query RMS, bf16 gradients). */
float *backend_floatX_to_host(const floatX *src, size_t n);
/* Copy the logits of row (b, t) of the last forward (before backward) to host. */
void model_logits_row(Model *m, int b, int t, float *out);
/* Parameters to host as double, in table order (num_params). */
void model_params_to_host(Model *m, double *out);
void model_grads_to_host(Model *m, double *out);
/* Swap params_memory and grads_memory for buffers the caller filled (e.g. padded for sharding: the same contents
   first) and point the tensors into them; frees the old ones. */
void model_move_params(Model *m, floatX *params, floatX *grads);

/* Data parallelism (train_gpu built with NCCL: cuda/dist.cuh): one process per GPU, launched by mpirun or with
   torchrun/Slurm's environment (RANK, WORLD_SIZE, LOCAL_RANK); every process runs the same steps on its own part
   of the data. The optimizer is sharded as ZeRO-1 (Rajbhandari et al. 2020, stage 1): the gradients are
   reduce-scattered (summed over the processes), each process updates its range of the fp32 master weights and
   AdamW moments (Model.shard_start/shard_len), and the bf16 parameters are all-gathered. Every function takes
   d == NULL (and a Model with dist == NULL) as "this process alone": nothing to exchange. Without NCCL only that
   exists: dist_init refuses a launch with WORLD_SIZE > 1. */
/* From the launcher's environment; selects the GPU LOCAL_RANK before any allocation. Returns NULL when not
   launched by one (no RANK / OMPI_COMM_WORLD_RANK); exits with a message on an error. */
Dist *dist_init(void);
/* The launch's identity, the same in every process of one launch and new at the next: ROPEPP_LAUNCH_ID, else the
   launcher's (torchrun: TORCHELASTIC_RUN_ID and TORCHELASTIC_RESTART_COUNT; Slurm: SLURM_JOB_ID, SLURM_STEP_ID and
   SLURM_RESTART_COUNT; OpenMPI: OMPI_MCA_ess_base_jobid, or PMIX_NAMESPACE from OpenMPI 5). Into out; 0, or -1
   when none is set. */
int launch_identity(char *out, size_t n);
/* The NCCL id's rendezvous (cuda/dist.cuh) through the file path that every process sees. Rank 0 writes the id
   (bytes) with the launch identity and world size (tmp + rename); any other rank waits, up to timeout_ms, for a file
   of its own launch and world size and reads the id from it: a file left by an earlier launch is never read.
   Returns 0, or -1 with err (cannot write; timed out, naming the launch the file is from). */
int rendezvous_id(const char *path, const char *launch, int rank, int world, void *id, size_t bytes, int timeout_ms,
                  char *err, size_t errlen);
void dist_free(Dist *d);
int dist_rank(const Dist *d);                      /* 0 alone */
int dist_world_size(const Dist *d);                /* 1 alone */
void dist_sum(Dist *d, double *x, int n);          /* host values (n), in place: the sum over the processes */
/* Shard m over d's processes (after the model and its optimizer state are loaded, full, on every process):
   params/grads padded to world_size * shard_len, master and moments cut to this process's range. */
void dist_shard_model(Dist *d, Model *m);
/* Back to the full master weights and moments on every process (to write a checkpoint), and cut again. */
void dist_gather_optimizer(Model *m);
void dist_scatter_optimizer(Model *m);
/* What model_update calls: grads [shard_start, +shard_len) = their sum over the processes; a floatM device
   vector's sum over the processes, in place; every process's updated range of params_memory to all. */
void dist_reduce_scatter_grads(Model *m);
void dist_sum_device(Dist *d, floatM *x, size_t n);
void dist_all_gather_params(Model *m);

/* Learning-rate schedules (docs/MATH.md, Learning-rate schedules; k = 0-based optimizer step; lr = peak * lambda(k)). */
enum { SCHED_CONSTANT = 0, SCHED_WSD = 1, SCHED_COSINE = 2 };
const char *schedule_name(int s);
int schedule_from_name(const char *name);
double lr_lambda(int sched, int k, int warmup, int total, int decay);

void alibi_slopes(double *out, int n);         /* flash-attn slopes for n heads */

/* Checkpoints (docs/FORMATS.md). Readers return 0, or -1 with a one-line message in err. Version 2 files end in an
   8-byte trailer: the CRC-32 of every byte before it, then the magic again; every read checks it. Version 1 files
   (no trailer, no checksum) still load. */
enum { CKPT_MAGIC = 20251207, CKPT_VERSION = 2, STATE_MAGIC = 20251209, STATE_VERSION = 2, TRAILER_BYTES = 8 };
/* CRC-32 of zlib, gzip and PNG (ISO-HDLC: reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF):
   crc32_update(0, "123456789", 9) = 0xCBF43926. Chain calls over several buffers: crc = crc32_update(crc, next, n). */
uint32_t crc32_update(uint32_t crc, const void *buf, size_t n);
int checkpoint_parse_header(const int32_t *hdr, size_t file_size, Config *c, int *bytes_per_param,
                            size_t *num_params, char *err, size_t errlen);
int checkpoint_read(const char *path, Config *c, double **params, size_t *num_params, char *err, size_t errlen);
/* Write a model file atomically (tmp + rename). bytes_per_param: 4 or 8. Returns 0 or -1 with err. */
int checkpoint_write(const char *path, const Config *c, const double *params, size_t num_params,
                     int bytes_per_param, char *err, size_t errlen);
int model_save(Model *m, const char *path, char *err, size_t errlen);     /* fp32 model file */
int model_load(Model *m, const char *path, char *err, size_t errlen);     /* builds m */
/* Steps of every checkpoint dir/model_%08d.ckpt in a folder (exactly that name), ascending (with require_state:
   only those whose .state file exists too), into *steps (malloc'd, free it; NULL when there is none). Returns
   how many (0 if the folder does not exist). */
int64_t checkpoint_list(const char *dir, int require_state, int **steps);
/* The step of the newest of them, or -1 when there is none. */
int checkpoint_newest(const char *dir, int require_state);
/* The checksum a model file stores (0 for a version 1 file, which has none), after checking it against the file's
   bytes: a mismatch is an error that calls the file corrupt. A .state names its model file by this value. */
int checkpoint_checksum(const char *path, uint32_t *checksum, char *err, size_t errlen);
/* ckpt_checksum: the checksum of the model file this state belongs to (0 in a version 1 state). */
typedef struct { int step; int64_t shard; int64_t pos; uint64_t rng; uint32_t ckpt_checksum; } TrainState;
int state_write(Model *m, const TrainState *s, const char *path, char *err, size_t errlen);
int state_read(Model *m, TrainState *s, const char *path, char *err, size_t errlen);
/* The checkpoint a user names: a model file, or a run folder (its newest model_*.ckpt); NULL = RUN_LATEST, the
   run ./train started last. flag: the flag that named it (--ckpt, --init-from), which the hints name. Writes the
   file's path to out. Returns 0, or -1 with a one-line message in err. */
#define RUN_LATEST "runs/latest"
int checkpoint_resolve(const char *path, const char *flag, char *out, size_t outlen, char *err, size_t errlen);
/* The longest path a flag may name (a run folder, a log, a checkpoint): the file names added to it (model_*.state.tmp)
   stay inside the 4096-byte path buffers and Linux's PATH_MAX, so that no path is ever cut. */
enum { PATH_LEN_MAX = 4000 };
/* 0, or -1 with err naming the flag when path is longer than PATH_LEN_MAX. */
int path_check(const char *path, const char *flag, char *err, size_t errlen);

/* Settings: what a checkpoint or a run folder stores, against a flag given now (docs/SETTINGS.md). One rule for
   every program: each stored field with a flag is, per use, applied on top (the flag's value replaces the stored
   one) or refused when the flag's value differs (an error naming the flag); never dropped. */
enum { USE_RESUME = 0, USE_INIT_FROM = 1, USE_EVAL = 2, USE_COUNT = 3 };
typedef struct {
    const char *flag;        /* "--pi-factor" */
    char type;               /* 'i' int, 'd' double, 's' string (const char *), 'u' uint64_t */
    size_t offset;           /* of the field in the struct the table describes */
    char rule[USE_COUNT];    /* per use: 'a' applied on top, 'r' refused when it differs, '-' no such flag there */
    const char *const *names;   /* an 'i' field that is a choice: names[v] as the user writes it, NULL-terminated
                                   (NULL: the number) */
} SettingRule;
extern const SettingRule config_rules[];   /* the Config fields (a Config is what a checkpoint stores) */
extern const int config_rule_count;
int settings_find(const SettingRule *rules, int n, const char *flag);   /* index, or -1 */
/* For every rule i with bit i of `given` set: apply (copy the field from `flags` into `stored`) or refuse. `what`
   names the stored side in the message ("the checkpoint runs/x/model_00000100.ckpt"). Returns 0 or -1 with err. */
int settings_apply(void *stored, const void *flags, uint64_t given, const SettingRule *rules, int n, int use,
                   const char *what, char *err, size_t errlen);
/* A run's settings file (RUN_DIR/settings.txt): one `--flag value` a line, the value C-escaped (\\ \n \t \xNN).
   settings_write writes it atomically; settings_read returns malloc'd arrays (free with settings_free). */
int settings_write(const char *path, const char *const *flags, const char *const *values, int n, char *err, size_t errlen);
int settings_read(const char *path, char ***flags, char ***values, int *n, char *err, size_t errlen);
void settings_free(char **flags, char **values, int n);

/* ------------------------------------------------------------------------------------------------------------
   4. Data: llm.c token shards, the loader, the byte tokenizer, the sampler
   ------------------------------------------------------------------------------------------------------------ */
enum { SHARD_MAGIC_U16 = 20240520, SHARD_MAGIC_U32 = 20240801, SHARD_VERSION = 1 };
/* Validate a shard header against the file size. Returns bytes per token (2 or 4) and the count, or -1. */
int shard_parse_header(const int32_t *hdr, size_t file_size, size_t *ntok, char *err, size_t errlen);
int shard_write(const char *path, const int *tokens, size_t n, int bytes_per_token, char *err, size_t errlen);
/* Read a whole (validated) shard into *tokens (malloc'd, n of them); every token must be < vocab. */
int shard_read_all(const char *path, int vocab, int **tokens, size_t *n, char *err, size_t errlen);

typedef struct {
    char **files; int n_files;    /* shard paths, sorted */
    int B, T, vocab;
    int rank, world_size;         /* this process reads rows [rank*B, rank*B + B) of each global batch of world_size*B */
    int64_t shard;                /* current shard */
    int64_t pos;                  /* first token of the next global batch in it (the same on every process) */
    FILE *fp; int width; size_t ntok;
    unsigned char *buf;           /* (B*T + 1) * width bytes */
    int *inputs;                  /* (B, T) */
    int *targets;                 /* (B, T) */
    /* document rows (loader_use_docs; data_seed 0: off). Then shard is the epoch and pos the next global batch's
       first row of that epoch's row list. */
    uint64_t data_seed;
    int *doc_tok; int64_t doc_ntok;                  /* every shard's tokens, concatenated */
    int64_t n_docs; int64_t *doc_start, *doc_len;    /* each document: its BOS and its length in tokens */
    int64_t *order;                                  /* (n_docs) this epoch's document order */
    int64_t n_rows; int64_t *row_start, *row_len;    /* this epoch's rows: first token and tokens (<= T + 1) */
} DataLoader;
/* pattern: a file or a glob. Every shard is validated; each must hold at least B*T+1 tokens. */
int loader_init(DataLoader *dl, const char *pattern, int B, int T, int vocab, char *err, size_t errlen);
/* The same for process `rank` of world_size (data parallelism): the data is read in global batches of world_size*B
   rows of T+1 tokens (world_size*B*T + 1 tokens, llm.c's layout), of which this process gets rows
   [rank*B, rank*B + B): the processes read disjoint parts that together are exactly what one process with
   batch world_size*B reads. A shard's tail shorter than a global batch is skipped. */
int loader_init_rank(DataLoader *dl, const char *pattern, int B, int T, int vocab, int rank, int world_size,
                     char *err, size_t errlen);
int loader_next(DataLoader *dl, char *err, size_t errlen);      /* fills inputs/targets, checks tokens < vocab */
void loader_reset(DataLoader *dl);
int loader_seek(DataLoader *dl, int64_t shard, int64_t pos, char *err, size_t errlen);
void loader_free(DataLoader *dl);
/* The largest token of the shards pattern matches (uint16 or uint32, read unsigned), or -1 when they hold none. */
int loader_max_token(const char *pattern, int64_t *max_token, char *err, size_t errlen);
/* Document rows for training on a corpus of documents (data/docs2shards: each starts with the BOS token 0):
   every shard is read into memory and cut at its BOS tokens into documents; each epoch orders the documents by
   doc_order(data_seed, epoch) and cuts each document into rows of T+1 tokens from its BOS on (offsets 0, T,
   2T, ...), so every document's BOS stands at position 0 of a row, as in `eval ppl --docs`. A document's last row
   is padded: inputs BOS, targets -1 (ignored). Global batches of world_size*B consecutive rows, as in the stream
   layout; the rows left at an epoch's end that do not fill one are skipped. shard/pos become epoch/row, so
   loader_seek and the state file work unchanged. The order depends on data_seed and the data alone (not on the
   model), so every arm of a seed reads the same rows. Errors: data_seed 0, a shard that does not start with BOS
   (not a document corpus), an epoch with fewer rows than one global batch. Call after loader_init(_rank). */
int loader_use_docs(DataLoader *dl, uint64_t data_seed, char *err, size_t errlen);
/* perm[0..n) = a permutation of 0..n-1: Fisher-Yates with splitmix64 seeded by data_seed + epoch * 2^32 (the same
   on every machine). */
void doc_order(uint64_t data_seed, int64_t epoch, int64_t n, int64_t *perm);

/* llm.c's tokenizer file (gpt2_tokenizer.bin, for decoding GPT-2-vocab models): 256 x uint32 header (magic
   20240328, version 1 or 2, vocab size, v2: end-of-text token), then per token a uint8 length and its bytes. */
typedef struct {
    int vocab_size;
    int eot_token;
    char **tokens;      /* (vocab_size) NUL-terminated byte strings */
} Tokenizer;
int tokenizer_read(Tokenizer *t, const char *path, char *err, size_t errlen);
const char *tokenizer_decode(const Tokenizer *t, int token);   /* NULL if out of range */
void tokenizer_free(Tokenizer *t);
/* A generated token as text on f (a terminal, samples.txt), never a raw control byte: a byte-level model's token
   (byte_level) as itself when printable ASCII, newline or tab, else \xNN (control bytes, ESC, DEL and 128-255,
   which alone are not text); another model's token as its tokenizer piece (t may be NULL), control bytes escaped
   the same way and UTF-8 kept, or <id> without a piece. */
void token_print(FILE *f, int token, int byte_level, const Tokenizer *t);

/* Sample a token from probabilities softmax(logits / temperature) with top-k (0 = off) and top-p (1 = off);
   temperature 0 = greedy. */
int sample_token(const float *logits, int V, double temperature, int top_k, double top_p, Rng *rng);

#ifdef __cplusplus
}
#endif
#endif /* ROPEPP_H */

/* ============================================================================================================
   Implementation
   ============================================================================================================ */
#ifdef ROPEPP_IMPLEMENTATION
#ifndef ROPEPP_IMPLEMENTATION_DONE
#define ROPEPP_IMPLEMENTATION_DONE
#include <stdarg.h>
#include <stddef.h>
#include <ctype.h>
#include <errno.h>
#include <time.h>
#include <glob.h>
#include <sys/stat.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(ROPEPP_BLAS) && !defined(ROPEPP_CUDA)
#include <cblas.h>
#endif

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---------------------------------------------------------------------------------------------- 1. basics */

void *malloc_check(size_t size, const char *file, int line) {
    void *p = malloc(size > 0 ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "error: malloc of %zu bytes failed at %s:%d\n"
                        "HINT: the model or batch is too large for this machine's memory; lower --batch, --seq or the model size\n",
                size, file, line);
        exit(1);
    }
    return p;
}

FILE *fopen_check(const char *path, const char *mode, const char *file, int line) {
    FILE *fp = fopen(path, mode);
    if (fp == NULL) {
        fprintf(stderr, "error: cannot open '%s' (mode %s): %s, at %s:%d\n"
                        "HINT: check the path; data shards are made by `make` (data/), checkpoints by ./train\n",
                path, mode, strerror(errno), file, line);
        exit(1);
    }
    return fp;
}

void fread_check(void *ptr, size_t size, size_t nmemb, FILE *fp, const char *file, int line) {
    size_t got = fread(ptr, size, nmemb, fp);
    if (got != nmemb) {
        fprintf(stderr, "error: short read (%zu of %zu items of %zu bytes)%s at %s:%d\n"
                        "HINT: the file is truncated or was written by another program; regenerate it\n",
                got, nmemb, size, feof(fp) ? " at end of file" : "", file, line);
        exit(1);
    }
}

void fwrite_check(const void *ptr, size_t size, size_t nmemb, FILE *fp, const char *file, int line) {
    size_t put = fwrite(ptr, size, nmemb, fp);
    if (put != nmemb) {
        fprintf(stderr, "error: short write (%zu of %zu items) at %s:%d: %s\n"
                        "HINT: the disk may be full or the folder read-only\n",
                put, nmemb, file, line, strerror(errno));
        exit(1);
    }
}

void fclose_check(FILE *fp, const char *file, int line) {
    if (fclose(fp) != 0) {
        fprintf(stderr, "error: fclose failed at %s:%d: %s\nHINT: the disk may be full\n", file, line,
                strerror(errno));
        exit(1);
    }
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (err == NULL || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
uint64_t rng_u64(Rng *r) { return splitmix64(&r->state); }
double rng_uniform(Rng *r) { return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }
double rng_normal(Rng *r) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}
double noise_normal(uint64_t seed, uint64_t index) {
    uint64_t x = seed ^ (index * 0xD1B54A32D192ED03ull);
    double u1 = (double)(splitmix64(&x) >> 11) * (1.0 / 9007199254740992.0);
    double u2 = (double)(splitmix64(&x) >> 11) * (1.0 / 9007199254740992.0);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* The position embeddings (docs/MATH.md has each one's equations). Row i is PeKind i (the checkpoint code).
      name         rotary imag halves_heads partial per_group scalable alibi  description */
static const PeInfo pe_table[PE_COUNT] = {
    {"nope",      0, 0, 0, 0, 0, 0, 0, "no position embedding (causal mask only)"},
    {"rope",      1, 0, 0, 0, 0, 1, 0, "RoPE: rotate q and k by p theta_j (Eq. 1)"},
    {"ropepp_eh", 1, 1, 1, 0, 0, 1, 0, "RoPE++ EH: real + imaginary heads from H/2 q, KV/2 kv heads (Eq. 2-4)"},
    {"ropepp_ec", 1, 1, 0, 0, 0, 1, 0, "RoPE++ EC: real + imaginary heads, 2H attention heads (Eq. 2-4)"},
    {"fope",      1, 0, 0, 0, 1, 0, 0, "FoPE: frozen Fourier mix of the kept frequencies, one per kv head"},
    {"alibi",     0, 0, 0, 0, 0, 0, 1, "ALiBi: score minus slope_a * (t - j)"},
    {"partial",   1, 0, 0, 1, 0, 1, 0, "partial RoPE: only rotary_frac of each head rotated (pythia)"},
};

const PeInfo *pe_info(int pe) { return (pe >= 0 && pe < PE_COUNT) ? &pe_table[pe] : NULL; }
const char *pe_name(int pe) { return (pe >= 0 && pe < PE_COUNT) ? pe_table[pe].name : "unknown"; }
int pe_from_name(const char *name) {
    for (int i = 0; i < PE_COUNT; i++) if (strcmp(name, pe_table[i].name) == 0) return i;
    return -1;
}
int pe_is_rotary(int pe) { return pe >= 0 && pe < PE_COUNT && pe_table[pe].rotary; }
int pe_is_imag(int pe) { return pe >= 0 && pe < PE_COUNT && pe_table[pe].imag; }
int pe_scalable(int pe) { return pe >= 0 && pe < PE_COUNT && pe_table[pe].scalable; }
const char *pe_names(char *buf, size_t n, const char *sep, int which) {
    size_t used = 0;
    if (n > 0) buf[0] = '\0';
    for (int i = 0; i < PE_COUNT; i++) {
        if (which == 1 && !pe_table[i].scalable) continue;
        int w = snprintf(buf + used, n > used ? n - used : 0, "%s%s", used ? sep : "", pe_table[i].name);
        if (w > 0) used += (size_t)w;
        if (used >= n) { if (n > 0) buf[n - 1] = '\0'; break; }
    }
    return buf;
}
void pe_list(FILE *f) {
    fprintf(f, "# name      id rotary imag halves_heads partial per_group scalable alibi  description\n");
    for (int i = 0; i < PE_COUNT; i++) {
        const PeInfo *p = &pe_table[i];
        fprintf(f, "%-10s %3d %6d %4d %12d %7d %9d %8d %5d  %s\n", p->name, i, p->rotary, p->imag, p->halves_heads,
                p->partial, p->per_group, p->scalable, p->alibi, p->description);
    }
}

Config config_default(void) {
    Config c;
    memset(&c, 0, sizeof(c));
    c.vocab_size = 256; c.dim = 128; c.n_layers = 4; c.n_heads = 4; c.n_kv_heads = 2; c.ffn_dim = 384;
    c.pe = PE_ROPEPP_EH; c.train_seq = 128; c.yarn_orig_len = 0; c.tokenizer = TOKENIZER_BYTES;
    c.init = INIT_TORCH_DEFAULT; c.rope_base = 10000.0; c.rotary_frac = 0.25; c.pi_factor = 1.0;
    c.yarn_factor = 1.0; c.ntk_factor = 1.0; c.norm_eps = 1e-5;
    return c;
}

/* FoPE's basis (docs/MATH.md, FoPE): omega_m = base^(-2m/HD), m = 0..HD/2-1, keep omega_m >= 2*pi/L_train (M of them),
   P = min(M, HD/4) output channels. */
static void fope_basis(const Config *c, int HD, int *M, int *P) {
    double floor_freq = 2.0 * M_PI / (double)c->train_seq;
    int m_kept = 0;
    for (int m = 0; m < HD / 2; m++) {
        double omega = pow(c->rope_base, -2.0 * m / (double)HD);
        if (omega >= floor_freq) m_kept++;
    }
    *M = m_kept;
    *P = m_kept < HD / 4 ? m_kept : HD / 4;
}

Dims config_dims(const Config *c) {
    Dims d;
    memset(&d, 0, sizeof(d));
    d.HD = c->n_heads > 0 ? c->dim / c->n_heads : 0;
    const PeInfo *p = pe_info(c->pe);
    if (p == NULL) return d;   /* config_validate reports the unknown id */
    d.HQ = p->halves_heads ? c->n_heads / 2 : c->n_heads;
    d.KVH = p->halves_heads ? c->n_kv_heads / 2 : c->n_kv_heads;
    d.imag = p->imag;
    d.NA = d.imag ? 2 * d.HQ : d.HQ;   /* EH: 2 (H/2) = H; EC: 2H */
    d.QKV = (d.HQ + 2 * d.KVH) * d.HD;
    if (p->partial) d.rot = (int)floor(c->rotary_frac * d.HD + 0.5);
    else d.rot = p->rotary ? d.HD : 0;
    if (p->per_group && d.HD > 0 && c->train_seq > 0) fope_basis(c, d.HD, &d.fope_m, &d.fope_p);
    return d;
}

size_t attention_param_count(const Config *c) {
    Dims d = config_dims(c);
    return (size_t)d.QKV * c->dim + (size_t)c->dim * d.NA * d.HD;
}

double config_rotary_frac(const Config *c) {
    const PeInfo *pe = pe_info(c->pe);
    return pe != NULL && pe->partial ? c->rotary_frac : 1.0;
}

int config_validate(const Config *c, char *err, size_t errlen) {
    if (c->pe < 0 || c->pe >= PE_COUNT) {
        char names[256];
        set_err(err, errlen, "unknown position embedding id %d; use one of %s", c->pe, pe_names(names, sizeof(names), " ", -1));
        return -1;
    }
    if (c->vocab_size < 2 || c->vocab_size > (1 << 30)) { set_err(err, errlen, "vocab size %d is out of range [2, 2^30]", c->vocab_size); return -1; }
    if (c->dim < 2 || c->dim > (1 << 16)) { set_err(err, errlen, "dim %d is out of range [2, 65536]", c->dim); return -1; }
    if (c->n_layers < 1 || c->n_layers > 1024) { set_err(err, errlen, "layers %d is out of range [1, 1024]", c->n_layers); return -1; }
    if (c->ffn_dim < 1 || c->ffn_dim > (1 << 20)) { set_err(err, errlen, "ffn dim %d is out of range [1, 2^20]", c->ffn_dim); return -1; }
    if (c->n_heads < 1 || c->dim % c->n_heads != 0) {
        set_err(err, errlen, "heads (%d) must divide dim (%d); pick heads so that dim/heads is the head dim", c->n_heads, c->dim);
        return -1;
    }
    if (c->n_kv_heads < 1 || c->n_heads % c->n_kv_heads != 0) {
        set_err(err, errlen, "kv heads (%d) must divide heads (%d)", c->n_kv_heads, c->n_heads);
        return -1;
    }
    if (pe_info(c->pe)->halves_heads && (c->n_heads % 2 != 0 || c->n_kv_heads % 2 != 0)) {
        set_err(err, errlen, "ropepp_eh projects heads/2 q heads and kv_heads/2 kv heads, so heads (%d) and kv heads (%d) must be even",
                c->n_heads, c->n_kv_heads);
        return -1;
    }
    int HD = c->dim / c->n_heads;
    if (pe_is_rotary(c->pe) && HD % 2 != 0) { set_err(err, errlen, "head dim %d (dim/heads) must be even for rotary position embeddings", HD); return -1; }
    if (c->train_seq < 1 || c->train_seq > (1 << 24)) { set_err(err, errlen, "train_seq %d is out of range [1, 2^24]", c->train_seq); return -1; }
    if (c->yarn_orig_len < 0) { set_err(err, errlen, "yarn original length %d must be >= 0 (0 = train_seq)", c->yarn_orig_len); return -1; }
    if (!(c->rope_base > 1.0 && c->rope_base < 1e30)) { set_err(err, errlen, "rope base %g must be > 1", c->rope_base); return -1; }
    if (!(c->norm_eps > 0.0 && c->norm_eps < 1.0)) { set_err(err, errlen, "norm eps %g must be in (0, 1)", c->norm_eps); return -1; }
    if (!(c->pi_factor >= 1.0 && c->pi_factor < 1e6)) { set_err(err, errlen, "PI factor %g must be >= 1 (1 = off)", c->pi_factor); return -1; }
    if (!(c->yarn_factor >= 1.0 && c->yarn_factor < 1e6)) { set_err(err, errlen, "YaRN factor %g must be >= 1 (1 = off)", c->yarn_factor); return -1; }
    if (!(c->ntk_factor >= 1.0 && c->ntk_factor < 1e6)) { set_err(err, errlen, "NTK factor %g must be >= 1 (1 = off)", c->ntk_factor); return -1; }
    if (c->pi_factor != 1.0 && c->yarn_factor != 1.0) { set_err(err, errlen, "PI and YaRN scaling cannot be combined; choose one"); return -1; }
    int scaled = (c->pi_factor != 1.0 || c->yarn_factor != 1.0 || c->ntk_factor != 1.0);
    if (scaled && !pe_scalable(c->pe)) {
        char names[256];
        set_err(err, errlen, "rope scaling (PI, YaRN, NTK) applies to %s only, not %s", pe_names(names, sizeof(names), ", ", 1),
                pe_name(c->pe));
        return -1;
    }
    if (pe_info(c->pe)->partial) {
        if (!(c->rotary_frac > 0.0 && c->rotary_frac <= 1.0)) {   /* before the int conversion: NaN or 1e300 is UB there */
            set_err(err, errlen, "rotary fraction %g must be in (0, 1]", c->rotary_frac);
            return -1;
        }
        int rot = (int)floor(c->rotary_frac * HD + 0.5);
        if (rot < 2 || rot % 2 != 0) {
            set_err(err, errlen, "rotary fraction %g of head dim %d gives %d rotated dims; it must be an even number >= 2", c->rotary_frac, HD, rot);
            return -1;
        }
    }
    if (pe_info(c->pe)->per_group) {
        int M, P;
        if (HD < 4) { set_err(err, errlen, "fope needs head dim >= 4 (has %d)", HD); return -1; }
        fope_basis(c, HD, &M, &P);
        if (M < 1) { set_err(err, errlen, "fope keeps no frequency: train_seq %d is below 2*pi; use a longer train_seq", c->train_seq); return -1; }
    }
    if (c->tokenizer < 0 || c->tokenizer > 2) { set_err(err, errlen, "unknown tokenizer id %d", c->tokenizer); return -1; }
    return 0;
}

/* ---------------------------------------------------------------------------------------------- 2. ops (CPU) */
#ifndef ROPEPP_CUDA

/* exp in the compute precision, for the exponentials of softmax, cross-entropy and SiLU. Double build: exp (the
   gradient checks). Float build: Cephes' expf (S. Moshier) written out so that the compiler vectorizes the loops
   that call it (glibc's expf is a call per element): exp(x) = 2^n exp(r), n = round(x / ln 2), r = x - n ln 2 in two
   parts, exp(r) by a degree-7 polynomial on |r| <= ln(2)/2; inputs are clamped to [-87, 88], so exp(-inf) gives
   1.6e-38, not 0 (negligible beside the 1 that every softmax row holds). Relative error < 1e-7 (measured; tested <= 2e-7)
   (tests/test_fast_paths). Sums of exponentials still add up in double where a row is long. */
static inline real exp_real(real x) {
#ifdef ROPEPP_DOUBLE
    return exp(x);
#else
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = fmaf(-n, 0.693359375f, x);   /* fmaf: -fassociative-math may not merge the two steps */
    r = fmaf(n, 2.12194440e-4f, r);
    float p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r
               + 1.6666665459e-1f) * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;   /* 2^n as a float's exponent field, n in [-125, 127] */
    float two_n;
    memcpy(&two_n, &bits, sizeof(two_n));
    return p * two_n;
#endif
}

void encoder_forward(floatX *out, const int *inp, const floatX *wte, int N, int C) {
    /* out[n, :] = wte[inp[n], :]   out (N, C), inp (N), wte (V, C) */
    #pragma omp parallel for
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * C, wte + (size_t)inp[n] * C, (size_t)C * sizeof(floatX));
}

void encoder_backward(floatX *dwte, const floatX *dout, const int *inp, int N, int C) {
    /* forward: out[n, :] = wte[inp[n], :]   =>   dwte[inp[n], :] += dout[n, :]
       Rows may repeat, so threads split the channels, not the rows.   dwte (V, C), dout (N, C) */
    #pragma omp parallel for
    for (int c = 0; c < C; c++)
        for (int n = 0; n < N; n++) dwte[(size_t)inp[n] * C + c] += dout[(size_t)n * C + c];
}

void rmsnorm_forward(floatX *out, floatM *rstd, const floatX *inp, const floatX *weight, int N, int C, double eps) {
    /* out (N, C), rstd (N), inp (N, C), weight (C). Statistics in double; the official code upcasts to fp32. */
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const floatX *x = inp + (size_t)n * C;
        double ss = 0.0;
        for (int i = 0; i < C; i++) ss += (double)x[i] * x[i];
        double r = 1.0 / sqrt(ss / C + eps);
        floatX *o = out + (size_t)n * C;
        for (int i = 0; i < C; i++) o[i] = (floatX)((real)(x[i] * r) * weight[i]);
        rstd[n] = (floatM)r;
    }
}

void rmsnorm_backward(floatX *dinp, floatX *dweight, const floatX *dout, const floatX *inp, const floatX *weight,
                      const floatM *rstd, int N, int C) {
    /* forward: out_i = w_i * x_i * r,  r = (mean_k x_k^2 + eps)^(-1/2)
       dr/dx_i = -r^3 x_i / C, so with g_i = dout_i * w_i:
         dx_i = r g_i - (r^3 / C) x_i sum_k g_k x_k
         dw_i = sum_n dout_i x_i r */
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const floatX *x = inp + (size_t)n * C, *g = dout + (size_t)n * C;
        double r = rstd[n], dot = 0.0;
        for (int i = 0; i < C; i++) dot += (double)g[i] * weight[i] * x[i];
        double k = r * r * r * dot / C;
        floatX *dx = dinp + (size_t)n * C;
        for (int i = 0; i < C; i++) dx[i] += (floatX)(r * g[i] * weight[i] - k * x[i]);
    }
    /* dw: rows in fixed blocks of 64 (the sum does not depend on the thread count), each block's partial sums a
       vector over i read row by row (the column-by-column loop strides through memory), then the blocks in order */
    int nb = (N + 63) / 64;
    double *part = (double *)mallocCheck((size_t)nb * C * sizeof(double));
    #pragma omp parallel for
    for (int blk = 0; blk < nb; blk++) {
        double *p = part + (size_t)blk * C;
        for (int i = 0; i < C; i++) p[i] = 0.0;
        for (int n = blk * 64; n < N && n < blk * 64 + 64; n++) {
            const floatX *x = inp + (size_t)n * C, *g = dout + (size_t)n * C;
            double r = rstd[n];
            for (int i = 0; i < C; i++) p[i] += (double)g[i] * x[i] * r;
        }
    }
    for (int blk = 1; blk < nb; blk++)
        for (int i = 0; i < C; i++) part[i] += part[(size_t)blk * C + i];
    for (int i = 0; i < C; i++) dweight[i] += (floatX)part[i];
    free(part);
}

void residual_forward(floatX *out, const floatX *a, const floatX *b, size_t n) {
    /* out (n) = a (n) + b (n) */
    #pragma omp parallel for
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void matmul_forward_loops(floatX *out, const floatX *inp, const floatX *weight, int N, int IC, int OC) {
    /* out[n, o] = sum_i inp[n, i] weight[o, i]   out (N, OC), inp (N, IC), weight (OC, IC)
       Tiles of 4 rows x 4 outputs: the 16 dot products share every load of inp and weight (about 1.2x the
       untiled loop on 2 cores); each dot product still sums over i in order, so the bits do not change. */
    #pragma omp parallel for schedule(static)
    for (int n0 = 0; n0 < N; n0 += 4) {
        for (int o0 = 0; o0 < OC; o0 += 4) {
            if (n0 + 4 <= N && o0 + 4 <= OC) {
                const floatX *x0 = inp + (size_t)n0 * IC, *x1 = x0 + IC, *x2 = x1 + IC, *x3 = x2 + IC;
                const floatX *w0 = weight + (size_t)o0 * IC, *w1 = w0 + IC, *w2 = w1 + IC, *w3 = w2 + IC;
                real acc[4][4] = {{0}};
                for (int i = 0; i < IC; i++) {
                    real a[4] = {x0[i], x1[i], x2[i], x3[i]}, w[4] = {w0[i], w1[i], w2[i], w3[i]};
                    for (int r = 0; r < 4; r++)
                        for (int c = 0; c < 4; c++) acc[r][c] += a[r] * w[c];
                }
                for (int r = 0; r < 4; r++)
                    for (int c = 0; c < 4; c++) out[(size_t)(n0 + r) * OC + o0 + c] = acc[r][c];
            } else {   /* the ragged edge: one dot product at a time */
                for (int n = n0; n < N && n < n0 + 4; n++)
                    for (int o = o0; o < OC && o < o0 + 4; o++) {
                        const floatX *x = inp + (size_t)n * IC, *w = weight + (size_t)o * IC;
                        real acc = 0;
                        for (int i = 0; i < IC; i++) acc += x[i] * w[i];
                        out[(size_t)n * OC + o] = acc;
                    }
            }
        }
    }
}

void matmul_backward_loops(floatX *dinp, floatX *dweight, const floatX *dout, const floatX *inp,
                           const floatX *weight, int N, int IC, int OC) {
    /* forward: out[n, o] = sum_i inp[n, i] weight[o, i]
         dinp[n, i]     = sum_o dout[n, o] weight[o, i]   (written)
         dweight[o, i] += sum_n dout[n, o] inp[n, i]
       dinp (N, IC), dweight (OC, IC), dout (N, OC). Either gradient output may be NULL.
       Blocks of 4 rows of dinp share each weight row, blocks of 4 rows of dweight share each inp row (about
       1.35x on 2 cores); the sums run in the same order as without blocks. */
    if (dinp != NULL) {
        #pragma omp parallel for
        for (int n0 = 0; n0 < N; n0 += 4) {
            int rows = N - n0 < 4 ? N - n0 : 4;
            memset(dinp + (size_t)n0 * IC, 0, (size_t)rows * IC * sizeof(floatX));
            for (int o = 0; o < OC; o++) {
                const floatX *w = weight + (size_t)o * IC;
                real g[4] = {0, 0, 0, 0};
                for (int r = 0; r < rows; r++) g[r] = dout[(size_t)(n0 + r) * OC + o];
                if (rows == 4) {
                    floatX *d0 = dinp + (size_t)n0 * IC, *d1 = d0 + IC, *d2 = d1 + IC, *d3 = d2 + IC;
                    for (int i = 0; i < IC; i++) { real wi = w[i]; d0[i] += g[0] * wi; d1[i] += g[1] * wi; d2[i] += g[2] * wi; d3[i] += g[3] * wi; }
                } else {
                    for (int r = 0; r < rows; r++) {
                        floatX *dx = dinp + (size_t)(n0 + r) * IC;
                        for (int i = 0; i < IC; i++) dx[i] += g[r] * w[i];
                    }
                }
            }
        }
    }
    if (dweight != NULL) {
        #pragma omp parallel for
        for (int o0 = 0; o0 < OC; o0 += 4) {
            int cols = OC - o0 < 4 ? OC - o0 : 4;
            for (int n = 0; n < N; n++) {
                const floatX *x = inp + (size_t)n * IC, *g = dout + (size_t)n * OC + o0;
                if (cols == 4) {
                    floatX *w0 = dweight + (size_t)o0 * IC, *w1 = w0 + IC, *w2 = w1 + IC, *w3 = w2 + IC;
                    real a0 = g[0], a1 = g[1], a2 = g[2], a3 = g[3];
                    for (int i = 0; i < IC; i++) { real xi = x[i]; w0[i] += a0 * xi; w1[i] += a1 * xi; w2[i] += a2 * xi; w3[i] += a3 * xi; }
                } else {
                    for (int c = 0; c < cols; c++) {
                        floatX *dw = dweight + (size_t)(o0 + c) * IC;
                        real gc = g[c];
                        for (int i = 0; i < IC; i++) dw[i] += gc * x[i];
                    }
                }
            }
        }
    }
}

#ifdef ROPEPP_BLAS
/* C (M, Nc) = alpha op(A) op(B) + beta C, row-major, op = transpose where trans_a / trans_b: cblas_sgemm, or
   cblas_dgemm in the double build. BLAS blocks the sums for the cache, so the bits differ from the loops'. */
static void gemm_row_major(int trans_a, int trans_b, int M, int Nc, int K, const floatX *A, int lda,
                           const floatX *B, int ldb, real beta, floatX *C, int ldc) {
    enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
#ifdef ROPEPP_DOUBLE
    cblas_dgemm(CblasRowMajor, ta, tb, M, Nc, K, 1.0, A, lda, B, ldb, beta, C, ldc);
#else
    cblas_sgemm(CblasRowMajor, ta, tb, M, Nc, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
#endif
}

void matmul_forward(floatX *out, const floatX *inp, const floatX *weight, int N, int IC, int OC) {
    /* out (N, OC) = inp (N, IC) weight^T, weight (OC, IC), as matmul_forward_loops */
    if (N <= 0) return;
    gemm_row_major(0, 1, N, OC, IC, inp, IC, weight, IC, 0, out, OC);
}

void matmul_backward(floatX *dinp, floatX *dweight, const floatX *dout, const floatX *inp, const floatX *weight,
                     int N, int IC, int OC) {
    /* forward: out = inp weight^T
         dinp (N, IC)     = dout (N, OC) weight (OC, IC)         (written: beta 0)
         dweight (OC, IC) += dout^T (OC, N) inp (N, IC)          (accumulated: beta 1) */
    if (N <= 0) return;
    if (dinp != NULL) gemm_row_major(0, 0, N, IC, OC, dout, OC, weight, IC, 0, dinp, IC);
    if (dweight != NULL) gemm_row_major(1, 0, OC, IC, N, dout, OC, inp, IC, 1, dweight, IC);
}

const char *matmul_library(void) {
    static char name[160];
    snprintf(name, sizeof(name), "%s", openblas_get_config());
    return name;
}
#else
/* The same product in plain loops (the build without BLAS): C (M, Nc) = op(A) op(B) + beta C, row-major. The
   loop order keeps the innermost loop on contiguous memory: a dot over K when B is transposed, else rows of B
   added into rows of C. */
static void gemm_row_major(int trans_a, int trans_b, int M, int Nc, int K, const floatX *A, int lda,
                           const floatX *B, int ldb, real beta, floatX *C, int ldc) {
    for (int m = 0; m < M; m++) {
        floatX *c = C + (size_t)m * ldc;
        if (trans_b) {
            for (int n = 0; n < Nc; n++) {
                const floatX *b = B + (size_t)n * ldb;
                real acc = 0;
                for (int k = 0; k < K; k++) acc += (trans_a ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k]) * b[k];
                c[n] = acc + (beta != 0 ? beta * c[n] : 0);
            }
        } else {
            for (int n = 0; n < Nc; n++) c[n] = beta != 0 ? beta * c[n] : 0;
            for (int k = 0; k < K; k++) {
                real a = trans_a ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k];
                const floatX *b = B + (size_t)k * ldb;
                for (int n = 0; n < Nc; n++) c[n] += a * b[n];
            }
        }
    }
}

void matmul_forward(floatX *out, const floatX *inp, const floatX *weight, int N, int IC, int OC) {
    matmul_forward_loops(out, inp, weight, N, IC, OC);
}

void matmul_backward(floatX *dinp, floatX *dweight, const floatX *dout, const floatX *inp, const floatX *weight,
                     int N, int IC, int OC) {
    matmul_backward_loops(dinp, dweight, dout, inp, weight, N, IC, OC);
}

const char *matmul_library(void) { return "plain loops (no BLAS)"; }
#endif

/* Rotary position embeddings, docs/MATH.md (Pairs, RoPE, RoPE++), in the rotate_half layout of the official code: pair j is
   (x_j, x_{j+rot/2}). With (c, s) = tables[p, j] and (a, b) = (x_j, x_{j+rot/2}):
     real (RoPE, paper Eq. 1):            out_j = a c - b s,   out_{j+rot/2} = b c + a s
     imaginary (RoPE++, paper Eq. 2-4):   RoPE at angle p theta - pi/2, i.e. (c, s) -> (s, -c):
                                          out_j = a s + b c,   out_{j+rot/2} = b s - a c
   rope / ropepp:  c = cos(p theta_j), s = sin(p theta_j), theta_j = base^(-2j/HD) (scaled, see pe tables)
   partial:        the same on the first rot dims only, theta_j = base^(-2j/rot); dims >= rot pass through
   fope:           c = Cc_j(p), s = S_j(p), per kv head (docs/MATH.md, FoPE); slots j >= P have c = s = 1
   Keys are only ever real-rotated. Queries of RoPE++ make both heads: output head 2h real, 2h+1 imaginary.
   inp rows (B, T) of stride inp_stride hold NH heads of HD; out is (B, T, NH * (imag_out ? 2 : 1), HD).
   group: heads per table group (FoPE: q head h uses the table of kv head h / group). */
void rotary_forward(floatX *out, const floatX *inp, size_t inp_stride, const PosEmb *pe, int imag_out, int group,
                    int B, int T, int NH, int HD) {
    int half = pe->rot / 2, NO = NH * (imag_out ? 2 : 1);
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < NH; h++) {
                const floatX *x = inp + ((size_t)b * T + t) * inp_stride + (size_t)h * HD;
                floatX *o_re = out + (((size_t)b * T + t) * NO + (size_t)h * (imag_out ? 2 : 1)) * HD;
                floatX *o_im = o_re + HD;
                size_t tab = (((size_t)(pe->per_group ? h / group : 0)) * pe->T_table + t) * half;
                for (int j = 0; j < half; j++) {
                    real c = (real)pe->cos[tab + j], s = (real)pe->sin[tab + j];
                    real a = x[j], bb = x[j + half];
                    o_re[j] = a * c - bb * s;
                    o_re[j + half] = bb * c + a * s;
                    if (imag_out) {
                        o_im[j] = a * s + bb * c;
                        o_im[j + half] = bb * s - a * c;
                    }
                }
                for (int j = pe->rot; j < HD; j++) {
                    o_re[j] = x[j];
                    if (imag_out) o_im[j] = x[j];
                }
            }
        }
    }
}

void rotary_backward(floatX *dinp, const floatX *dout, size_t inp_stride, const PosEmb *pe, int imag_out,
                     int group, int B, int T, int NH, int HD) {
    /* forward (real):  out_j = a c - b s,  out_{j+h} = b c + a s
         => da += g_j c + g_{j+h} s,   db += -g_j s + g_{j+h} c
       forward (imag):  out_j = a s + b c,  out_{j+h} = b s - a c
         => da += g_j s - g_{j+h} c,   db += g_j c + g_{j+h} s
       The real and imaginary heads come from the same q head, so their gradients add. Pass-through dims:
       dx_j += g_j (from each head). */
    int half = pe->rot / 2, NO = NH * (imag_out ? 2 : 1);
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < NH; h++) {
                floatX *dx = dinp + ((size_t)b * T + t) * inp_stride + (size_t)h * HD;
                const floatX *g_re = dout + (((size_t)b * T + t) * NO + (size_t)h * (imag_out ? 2 : 1)) * HD;
                const floatX *g_im = g_re + HD;
                size_t tab = (((size_t)(pe->per_group ? h / group : 0)) * pe->T_table + t) * half;
                for (int j = 0; j < half; j++) {
                    real c = (real)pe->cos[tab + j], s = (real)pe->sin[tab + j];
                    real g1 = g_re[j], g2 = g_re[j + half];
                    real da = g1 * c + g2 * s, db = -g1 * s + g2 * c;
                    if (imag_out) {
                        real i1 = g_im[j], i2 = g_im[j + half];
                        da += i1 * s - i2 * c;
                        db += i1 * c + i2 * s;
                    }
                    dx[j] += da;
                    dx[j + half] += db;
                }
                for (int j = pe->rot; j < HD; j++) dx[j] += g_re[j] + (imag_out ? g_im[j] : (real)0);
            }
        }
    }
}

/* Causal attention with GQA (attention head a reads kv head a / (NA/KVH), as HF repeat_kv and flash-attn) and
   optional ALiBi (docs/MATH.md, ALiBi: the bias is added after scaling, logit = q.k / sqrt(HD) - m_a (t - j)):
     att[t, j] = softmax_j( q_t . k_j / sqrt(HD) - m_a (t - j) ),  j <= t;     out_t = sum_j att[t, j] v_j
   out (B, T, NA, HD), att (B, NA, T, T) saved probabilities, q (B, T, NA, HD), k (B, T, KVH, HD),
   v rows (B, T) of stride v_stride holding KVH heads of HD. */
void attention_core_forward(floatX *out, floatM *att, const floatX *q, const floatX *k, const floatX *v,
                            size_t v_stride, const floatM *alibi, int B, int T, int NA, int KVH, int HD) {
    int group = NA / KVH;
    double scale = 1.0 / sqrt((double)HD);
    #pragma omp parallel for collapse(3)
    for (int b = 0; b < B; b++) {
        for (int a = 0; a < NA; a++) {
            for (int t = 0; t < T; t++) {
                int g = a / group;
                const floatX *qt = q + (((size_t)b * T + t) * NA + a) * HD;
                floatM *row = att + (((size_t)b * NA + a) * T + t) * T;
                double mx = -INFINITY;
                for (int j = 0; j <= t; j++) {
                    const floatX *kj = k + (((size_t)b * T + j) * KVH + g) * HD;
                    real dot = 0;
                    for (int i = 0; i < HD; i++) dot += qt[i] * kj[i];
                    double s = dot * scale;
                    if (alibi != NULL) s -= (double)alibi[a] * (double)(t - j);
                    row[j] = (floatM)s;
                    if (s > mx) mx = s;
                }
                double sum = 0.0;
                for (int j = 0; j <= t; j++) { double e = exp((double)row[j] - mx); row[j] = (floatM)e; sum += e; }
                for (int j = 0; j <= t; j++) row[j] = (floatM)(row[j] / sum);
                for (int j = t + 1; j < T; j++) row[j] = 0;
                floatX *ot = out + (((size_t)b * T + t) * NA + a) * HD;
                for (int i = 0; i < HD; i++) ot[i] = 0;
                for (int j = 0; j <= t; j++) {
                    const floatX *vj = v + ((size_t)b * T + j) * v_stride + (size_t)g * HD;
                    real p = (real)row[j];
                    for (int i = 0; i < HD; i++) ot[i] += p * vj[i];
                }
            }
        }
    }
}

void attention_core_backward(floatX *dq, floatX *dk, floatX *dv, const floatX *dout, const floatM *att,
                             const floatX *q, const floatX *k, const floatX *v, size_t v_stride,
                             int B, int T, int NA, int KVH, int HD) {
    /* forward: out_t = sum_j p_j v_j,  p = softmax(s),  s_j = q_t . k_j / sqrt(HD) - m (t - j)
         dv_j += p_j dout_t
         dp_j  = dout_t . v_j
         ds_j  = p_j (dp_j - sum_k p_k dp_k)            (softmax backward; the ALiBi bias has no parameters)
         dq_t += sum_j ds_j k_j / sqrt(HD),   dk_j += ds_j q_t / sqrt(HD)
       Threads own one (b, kv head) each, so dk and dv of that kv head are written by one thread only.
       dq (B, T, NA, HD), dk (B, T, KVH, HD), dv rows of stride v_stride. */
    int group = NA / KVH;
    double scale = 1.0 / sqrt((double)HD);
    #pragma omp parallel
    {
        double *dp = (double *)mallocCheck((size_t)T * sizeof(double));
        #pragma omp for collapse(2)
        for (int b = 0; b < B; b++) {
            for (int g = 0; g < KVH; g++) {
                for (int a = g * group; a < (g + 1) * group; a++) {
                    for (int t = 0; t < T; t++) {
                        const floatM *p = att + (((size_t)b * NA + a) * T + t) * T;
                        const floatX *go = dout + (((size_t)b * T + t) * NA + a) * HD;
                        const floatX *qt = q + (((size_t)b * T + t) * NA + a) * HD;
                        floatX *dqt = dq + (((size_t)b * T + t) * NA + a) * HD;
                        double psum = 0.0;
                        for (int j = 0; j <= t; j++) {
                            const floatX *vj = v + ((size_t)b * T + j) * v_stride + (size_t)g * HD;
                            floatX *dvj = dv + ((size_t)b * T + j) * v_stride + (size_t)g * HD;
                            real d = 0, pj = (real)p[j];
                            for (int i = 0; i < HD; i++) { d += go[i] * vj[i]; dvj[i] += pj * go[i]; }
                            dp[j] = d;
                            psum += p[j] * d;
                        }
                        for (int j = 0; j <= t; j++) {
                            real ds = (real)(p[j] * (dp[j] - psum) * scale);
                            const floatX *kj = k + (((size_t)b * T + j) * KVH + g) * HD;
                            floatX *dkj = dk + (((size_t)b * T + j) * KVH + g) * HD;
                            for (int i = 0; i < HD; i++) { dqt[i] += ds * kj[i]; dkj[i] += ds * qt[i]; }
                        }
                    }
                }
            }
        }
        free(dp);
    }
}

/* Causal attention blocked over keys (flash-style), the CPU bodies of attention_forward / attention_backward: the
   equations of attention_core_forward / attention_core_backward above, without the (T, T) probabilities.
   For each (b, kv head), key block of ATT_BK keys and head a of the group, the query rows at or after the block
   (t = j0 .. T-1) are one matrix: their scores against the block's keys are one product S = Q K_blk^T, and the
   products with the values and the gradients below are matrix products too (gemm_row_major: BLAS, or the loops).
   Forward, the online softmax (Milakov & Gimelshein 2018; FlashAttention, Dao et al. 2022): per query t a running max m_t, sum
   l_t and unnormalised output o_t; for each key block, with s_j = q_t . k_j / sqrt(HD) - slope_a (t - j):
       m' = max(m, max_j s_j),   c = exp(m - m'),   l = c l + sum_j exp(s_j - m'),   o = c o + sum_j exp(s_j - m') v_j
   and at the end out_t = o_t / l_t, lse_t = m_t + log(l_t) = log sum_j exp(s_j). lse (B, NA, T) is all that is
   saved. Backward recomputes p_j = exp(s_j - lse_t) block by block, with D_t = dout_t . out_t = sum_j p_j dp_j:
       dv_j += p_j dout_t,   dp_j = dout_t . v_j,   ds_j = p_j (dp_j - D_t),
       dq_t += sum_j ds_j k_j / sqrt(HD),   dk_j += ds_j q_t / sqrt(HD)
   Threads own one (b, kv head) each: every dq, dk and dv row is written by one thread. Shapes as attention_core_*. */
enum { ATT_BK = 64 };   /* keys per block: the scores of a block are (T, ATT_BK) reals per thread */

void attention_flash_forward(floatX *out, floatM *lse, const floatX *q, const floatX *k, const floatX *v,
                             size_t v_stride, const floatM *alibi, int B, int T, int NA, int KVH, int HD) {
    int group = NA / KVH;
    real scale = (real)(1.0 / sqrt((double)HD));
    const int qs = NA * HD, ks = KVH * HD, vs = (int)v_stride;   /* row strides of q/out, k, v */
    #pragma omp parallel
    {
        real *S = (real *)mallocCheck((size_t)T * ATT_BK * sizeof(real));   /* (Tq, ATT_BK) scores, then p */
        real *m = (real *)mallocCheck((size_t)group * T * sizeof(real));
        double *l = (double *)mallocCheck((size_t)group * T * sizeof(double));
        #pragma omp for collapse(2) schedule(dynamic)
        for (int b = 0; b < B; b++) {
            for (int g = 0; g < KVH; g++) {
                for (int ai = 0; ai < group; ai++)
                    for (int t = 0; t < T; t++) {
                        m[(size_t)ai * T + t] = -INFINITY;
                        l[(size_t)ai * T + t] = 0.0;
                        memset(out + (((size_t)b * T + t) * NA + g * group + ai) * HD, 0, (size_t)HD * sizeof(floatX));
                    }
                for (int j0 = 0; j0 < T; j0 += ATT_BK) {
                    int nk = T - j0 < ATT_BK ? T - j0 : ATT_BK, Tq = T - j0;
                    const floatX *kb = k + (((size_t)b * T + j0) * KVH + g) * HD;   /* (nk, HD), row stride ks */
                    const floatX *vb = v + ((size_t)b * T + j0) * v_stride + (size_t)g * HD;   /* (nk, HD), vs */
                    for (int ai = 0; ai < group; ai++) {
                        int a = g * group + ai;
                        real slope = alibi != NULL ? (real)alibi[a] : 0;
                        const size_t row0 = (((size_t)b * T + j0) * NA + a) * HD;   /* query row t = j0 of head a */
                        /* S (Tq, nk) = Q_rows (Tq, HD) K_blk^T */
                        gemm_row_major(0, 1, Tq, nk, HD, q + row0, qs, kb, ks, 0, S, ATT_BK);
                        for (int r = 0; r < Tq; r++) {
                            int t = j0 + r, n = r + 1 < nk ? r + 1 : nk;   /* keys j0 .. j0+n-1, all <= t */
                            real *sr = S + (size_t)r * ATT_BK;
                            for (int jj = 0; jj < n; jj++) sr[jj] = sr[jj] * scale - slope * (real)(t - j0 - jj);
                            real mold = m[(size_t)ai * T + t], mx = mold;
                            for (int jj = 0; jj < n; jj++) mx = sr[jj] > mx ? sr[jj] : mx;
                            real c = exp_real(mold - mx);   /* first block: exp(-inf) = 0 times l = 0, o = 0 */
                            double ls = 0.0;
                            for (int jj = 0; jj < n; jj++) { sr[jj] = exp_real(sr[jj] - mx); ls += sr[jj]; }
                            for (int jj = n; jj < nk; jj++) sr[jj] = 0;   /* keys after t */
                            l[(size_t)ai * T + t] = c * l[(size_t)ai * T + t] + ls;
                            m[(size_t)ai * T + t] = mx;
                            floatX *ot = out + row0 + (size_t)r * qs;
                            for (int i = 0; i < HD; i++) ot[i] *= c;
                        }
                        /* out_rows (Tq, HD) += P (Tq, nk) V_blk (nk, HD) */
                        gemm_row_major(0, 0, Tq, HD, nk, S, ATT_BK, vb, vs, 1, out + row0, qs);
                    }
                }
                for (int ai = 0; ai < group; ai++)
                    for (int t = 0; t < T; t++) {
                        int a = g * group + ai;
                        double lt = l[(size_t)ai * T + t];
                        floatX *ot = out + (((size_t)b * T + t) * NA + a) * HD;
                        real inv = (real)(1.0 / lt);
                        for (int i = 0; i < HD; i++) ot[i] *= inv;
                        lse[((size_t)b * NA + a) * T + t] = (floatM)((double)m[(size_t)ai * T + t] + log(lt));
                    }
            }
        }
        free(S); free(m); free(l);
    }
}

void attention_flash_backward(floatX *dq, floatX *dk, floatX *dv, const floatX *dout, const floatM *lse,
                              const floatX *out, const floatX *q, const floatX *k, const floatX *v, size_t v_stride,
                              const floatM *alibi, int B, int T, int NA, int KVH, int HD) {
    int group = NA / KVH;
    real scale = (real)(1.0 / sqrt((double)HD));
    const int qs = NA * HD, ks = KVH * HD, vs = (int)v_stride;   /* row strides of q/dq/dout, k/dk, v/dv */
    #pragma omp parallel
    {
        real *P = (real *)mallocCheck((size_t)T * ATT_BK * sizeof(real));    /* (Tq, ATT_BK): scores, then p */
        real *dS = (real *)mallocCheck((size_t)T * ATT_BK * sizeof(real));   /* (Tq, ATT_BK): dp, then ds */
        real *D = (real *)mallocCheck((size_t)group * T * sizeof(real));
        #pragma omp for collapse(2) schedule(dynamic)
        for (int b = 0; b < B; b++) {
            for (int g = 0; g < KVH; g++) {
                for (int ai = 0; ai < group; ai++)
                    for (int t = 0; t < T; t++) {   /* D_t = dout_t . out_t */
                        size_t row = (((size_t)b * T + t) * NA + g * group + ai) * HD;
                        real acc = 0;
                        for (int i = 0; i < HD; i++) acc += dout[row + i] * out[row + i];
                        D[(size_t)ai * T + t] = acc;
                    }
                for (int j0 = 0; j0 < T; j0 += ATT_BK) {
                    int nk = T - j0 < ATT_BK ? T - j0 : ATT_BK, Tq = T - j0;
                    const size_t krow0 = (((size_t)b * T + j0) * KVH + g) * HD;                  /* k, dk: (nk, HD) */
                    const size_t vrow0 = ((size_t)b * T + j0) * v_stride + (size_t)g * HD;       /* v, dv: (nk, HD) */
                    for (int ai = 0; ai < group; ai++) {
                        int a = g * group + ai;
                        real slope = alibi != NULL ? (real)alibi[a] : 0;
                        const size_t row0 = (((size_t)b * T + j0) * NA + a) * HD;   /* query row t = j0 of head a */
                        /* S (Tq, nk) = Q_rows K_blk^T and dP (Tq, nk) = dO_rows V_blk^T (dp_j = dout_t . v_j) */
                        gemm_row_major(0, 1, Tq, nk, HD, q + row0, qs, k + krow0, ks, 0, P, ATT_BK);
                        gemm_row_major(0, 1, Tq, nk, HD, dout + row0, qs, v + vrow0, vs, 0, dS, ATT_BK);
                        for (int r = 0; r < Tq; r++) {
                            int t = j0 + r, n = r + 1 < nk ? r + 1 : nk;
                            real *pr = P + (size_t)r * ATT_BK, *dr = dS + (size_t)r * ATT_BK;
                            real lt = (real)lse[((size_t)b * NA + a) * T + t], Dt = D[(size_t)ai * T + t];
                            for (int jj = 0; jj < n; jj++) {
                                pr[jj] = exp_real(pr[jj] * scale - slope * (real)(t - j0 - jj) - lt);   /* p_j */
                                dr[jj] = pr[jj] * (dr[jj] - Dt) * scale;                               /* ds_j / sqrt(HD) */
                            }
                            for (int jj = n; jj < nk; jj++) { pr[jj] = 0; dr[jj] = 0; }   /* keys after t */
                        }
                        /* dq_t += sum_j ds_j k_j / sqrt(HD):   dQ_rows (Tq, HD) += dS (Tq, nk) K_blk (nk, HD)
                           dk_j += ds_j q_t / sqrt(HD):         dK_blk (nk, HD) += dS^T Q_rows
                           dv_j += p_j dout_t:                  dV_blk (nk, HD) += P^T dO_rows */
                        gemm_row_major(0, 0, Tq, HD, nk, dS, ATT_BK, k + krow0, ks, 1, dq + row0, qs);
                        gemm_row_major(1, 0, nk, HD, Tq, dS, ATT_BK, q + row0, qs, 1, dk + krow0, ks);
                        gemm_row_major(1, 0, nk, HD, Tq, P, ATT_BK, dout + row0, qs, 1, dv + vrow0, vs);
                    }
                }
            }
        }
        free(P); free(dS); free(D);
    }
}

size_t attention_softmax_saved_size(int B, int T, int NA) { return (size_t)B * NA * T; }   /* lse of attention_flash_forward */

/* The noise experiment (docs/MATH.md, The noise experiment): q += N(0, sigma^2) on the rotated real (or imaginary) queries, every
   layer, head of that type and position, redrawn on every forward. q (B, T, NA, HD). */
static void query_noise_forward(floatX *q, const PosEmb *pe, int B, int T, int NA, int HD) {
    if (pe->noise_target == NOISE_NONE || pe->noise_sigma == 0.0) return;
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            for (int a = 0; a < NA; a++) {
                int is_imag = pe->imag && (a % 2 == 1);
                if ((pe->noise_target == NOISE_IMAG) != is_imag) continue;
                size_t base = (((size_t)b * T + t) * NA + a) * HD;
                for (int i = 0; i < HD; i++)
                    q[base + i] += (floatX)(pe->noise_sigma * noise_normal(pe->noise_seed, base + i));
            }
        }
    }
}

void attention_forward(floatX *out, floatX *qr, floatX *kr, floatM *softmax_saved, const floatX *qkv, const PosEmb *pe,
                       int B, int T, int HQ, int KVH, int HD) {
    /* qkv (B, T, QKV) -> rotated queries qr (B, T, NA, HD), rotated keys kr (B, T, KVH, HD), then the core.
       With no rotation (nope, alibi) the tables are empty and rot = 0: rotary_forward copies. */
    size_t stride = (size_t)(HQ + 2 * KVH) * HD;
    int NA = HQ * (pe->imag ? 2 : 1);
    rotary_forward(qr, qkv, stride, pe, pe->imag, HQ / KVH, B, T, HQ, HD);
    rotary_forward(kr, qkv + (size_t)HQ * HD, stride, pe, 0, 1, B, T, KVH, HD);
    query_noise_forward(qr, pe, B, T, NA, HD);
    attention_flash_forward(out, softmax_saved, qr, kr, qkv + (size_t)(HQ + KVH) * HD, stride, pe->alibi, B, T, NA, KVH, HD);
}

void attention_backward(floatX *dqkv, const floatX *dout, const floatX *qr, const floatX *kr, const floatM *softmax_saved,
                        const floatX *qkv, const floatX *out, const PosEmb *pe, int B, int T, int HQ, int KVH,
                        int HD) {
    /* The chain of attention_forward backwards: core -> (dqr, dkr, dv), then each rotary backward into dqkv,
       which is written: cleared first. */
    size_t stride = (size_t)(HQ + 2 * KVH) * HD;
    memset(dqkv, 0, (size_t)B * T * stride * sizeof(floatX));
    int NA = HQ * (pe->imag ? 2 : 1);
    size_t nq = (size_t)B * T * NA * HD, nk = (size_t)B * T * KVH * HD;
    floatX *dqr = (floatX *)mallocCheck(nq * sizeof(floatX));
    floatX *dkr = (floatX *)mallocCheck(nk * sizeof(floatX));
    memset(dqr, 0, nq * sizeof(floatX));
    memset(dkr, 0, nk * sizeof(floatX));
    attention_flash_backward(dqr, dkr, dqkv + (size_t)(HQ + KVH) * HD, dout, softmax_saved, out, qr, kr,
                             qkv + (size_t)(HQ + KVH) * HD, stride, pe->alibi, B, T, NA, KVH, HD);
    rotary_backward(dqkv, dqr, stride, pe, pe->imag, HQ / KVH, B, T, HQ, HD);
    rotary_backward(dqkv + (size_t)HQ * HD, dkr, stride, pe, 0, 1, B, T, KVH, HD);
    free(dqr);
    free(dkr);
}

void attention_probs_forward(float *out, const floatX *qr, const floatX *kr, const floatM *alibi, int B, int T, int NA,
                             int KVH, int HD, int t0, int t1) {
    int group = NA / KVH, nrows = t1 - t0;
    float *q = (float *)mallocCheck((size_t)B * T * NA * HD * sizeof(float));
    float *k = (float *)mallocCheck((size_t)B * T * KVH * HD * sizeof(float));
    for (size_t i = 0; i < (size_t)B * T * NA * HD; i++) q[i] = (float)qr[i];
    for (size_t i = 0; i < (size_t)B * T * KVH * HD; i++) k[i] = (float)kr[i];
    double scale = 1.0 / sqrt((double)HD);
    /* one row per iteration, dealt out dynamically: a row costs t + 1 dot products, and with B 1 the heads alone
       would leave most cores idle */
    #pragma omp parallel for collapse(3) schedule(dynamic, 8)
    for (int b = 0; b < B; b++) {
        for (int a = 0; a < NA; a++) {
            for (int t = t0; t < t1; t++) {
                float *row = out + (((size_t)b * NA + a) * nrows + (t - t0)) * T;
                const float *qt = q + (((size_t)b * T + t) * NA + a) * HD;
                /* the dot products q_t . k_j in float (the float q and k of a bf16 or float model lose nothing; a
                   double model's rows agree to ~1e-7 relative), four keys at a time: four independent SIMD sums,
                   where one sum waits on its own adds (~3x the speed of one double sum per key at T 2048) */
                const size_t ks = (size_t)KVH * HD;   /* floats from key j to key j + 1 */
                const float *k0 = k + ((size_t)b * T * KVH + a / group) * HD;   /* key 0 of this kv head */
                int j = 0;
                for (; j + 3 <= t; j += 4) {
                    const float *kj = k0 + (size_t)j * ks;
                    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
                    #pragma omp simd reduction(+:s0, s1, s2, s3)
                    for (int d = 0; d < HD; d++) {
                        s0 += qt[d] * kj[d];
                        s1 += qt[d] * kj[ks + d];
                        s2 += qt[d] * kj[2 * ks + d];
                        s3 += qt[d] * kj[3 * ks + d];
                    }
                    row[j] = s0; row[j + 1] = s1; row[j + 2] = s2; row[j + 3] = s3;
                }
                for (; j <= t; j++) {
                    const float *kj = k0 + (size_t)j * ks;
                    float s0 = 0.0f;
                    #pragma omp simd reduction(+:s0)
                    for (int d = 0; d < HD; d++) s0 += qt[d] * kj[d];
                    row[j] = s0;
                }
                double mx = -INFINITY, sum = 0.0;
                for (j = 0; j <= t; j++) {
                    double s = (double)row[j] * scale - (alibi != NULL ? (double)alibi[a] * (t - j) : 0.0);
                    row[j] = (float)s;
                    if (s > mx) mx = s;
                }
                for (int j = 0; j <= t; j++) { double e = exp(row[j] - mx); row[j] = (float)e; sum += e; }
                for (int j = 0; j <= t; j++) row[j] = (float)(row[j] / sum);
                for (int j = t + 1; j < T; j++) row[j] = 0.0f;
            }
        }
    }
    free(q);
    free(k);
}

void attention_cached_forward(floatX *out, floatX *kcache, floatX *vcache, const floatX *qkv, const PosEmb *pe,
                              int pos0, const int *pos_dev, int B, int Tn, int Tmax, int HQ, int KVH, int HD) {
    (void)pos_dev;   /* holds pos0; read by the GPU's captured steps only */
    /* out (B, Tn, NA, HD); kcache, vcache (B, Tmax, KVH, HD); qkv (B, Tn, QKV).
       The same math as attention_forward with absolute positions: the tables are read from row pos0 on (a
       shifted view of the same tables), and the causal ALiBi distance is (pos0 + t) - j. */
    size_t stride = (size_t)(HQ + 2 * KVH) * HD;
    int NA = HQ * (pe->imag ? 2 : 1), half = pe->rot / 2, group = NA / KVH;
    PosEmb at = *pe;
    if (half > 0) { at.cos = pe->cos + (size_t)pos0 * half; at.sin = pe->sin + (size_t)pos0 * half; }
    floatX *qr = (floatX *)mallocCheck((size_t)B * Tn * NA * HD * sizeof(floatX));
    floatX *kr = (floatX *)mallocCheck((size_t)B * Tn * KVH * HD * sizeof(floatX));
    rotary_forward(qr, qkv, stride, &at, pe->imag, HQ / KVH, B, Tn, HQ, HD);
    rotary_forward(kr, qkv + (size_t)HQ * HD, stride, &at, 0, 1, B, Tn, KVH, HD);
    query_noise_forward(qr, pe, B, Tn, NA, HD);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tn; t++) {
            size_t row = ((size_t)b * Tmax + pos0 + t) * KVH * HD;
            memcpy(kcache + row, kr + ((size_t)b * Tn + t) * KVH * HD, (size_t)KVH * HD * sizeof(floatX));
            memcpy(vcache + row, qkv + ((size_t)b * Tn + t) * stride + (size_t)(HQ + KVH) * HD, (size_t)KVH * HD * sizeof(floatX));
        }
    double scale = 1.0 / sqrt((double)HD);
    int Tk = pos0 + Tn;
    #pragma omp parallel
    {
        double *p = (double *)mallocCheck((size_t)Tk * sizeof(double));
        #pragma omp for collapse(3)
        for (int b = 0; b < B; b++) {
            for (int a = 0; a < NA; a++) {
                for (int t = 0; t < Tn; t++) {
                    int g = a / group, i = pos0 + t;
                    const floatX *qt = qr + (((size_t)b * Tn + t) * NA + a) * HD;
                    double mx = -INFINITY, sum = 0.0;
                    for (int j = 0; j <= i; j++) {
                        const floatX *kj = kcache + (((size_t)b * Tmax + j) * KVH + g) * HD;
                        real dot = 0;
                        for (int d = 0; d < HD; d++) dot += qt[d] * kj[d];
                        p[j] = dot * scale - (pe->alibi ? (double)pe->alibi[a] * (double)(i - j) : 0.0);
                        if (p[j] > mx) mx = p[j];
                    }
                    for (int j = 0; j <= i; j++) { p[j] = exp(p[j] - mx); sum += p[j]; }
                    floatX *ot = out + (((size_t)b * Tn + t) * NA + a) * HD;
                    for (int d = 0; d < HD; d++) ot[d] = 0;
                    for (int j = 0; j <= i; j++) {
                        const floatX *vj = vcache + (((size_t)b * Tmax + j) * KVH + g) * HD;
                        real w = (real)(p[j] / sum);
                        for (int d = 0; d < HD; d++) ot[d] += w * vj[d];
                    }
                }
            }
        }
        free(p);
    }
    free(qr);
    free(kr);
}

void swiglu_forward(floatX *out, const floatX *inp, int N, int F) {
    /* out[n, i] = silu(g) u, g = inp[n, i], u = inp[n, F + i], silu(g) = g / (1 + exp(-g))
       out (N, F), inp (N, 2F) */
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const floatX *g = inp + (size_t)n * 2 * F, *u = g + F;
        floatX *o = out + (size_t)n * F;
        for (int i = 0; i < F; i++) {
            real gi = g[i], sg = 1 / (1 + exp_real(-gi));
            o[i] = gi * sg * u[i];
        }
    }
}

void swiglu_backward(floatX *dinp, const floatX *dout, const floatX *inp, int N, int F) {
    /* forward: out = silu(g) u,  silu(g) = g sig(g),  sig = 1/(1+exp(-g))
         du = dout silu(g)
         dg = dout u silu'(g),   silu'(g) = sig(g) (1 + g (1 - sig(g)))   (written) */
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const floatX *g = inp + (size_t)n * 2 * F, *u = g + F, *d = dout + (size_t)n * F;
        floatX *dg = dinp + (size_t)n * 2 * F, *du = dg + F;
        for (int i = 0; i < F; i++) {
            real gi = g[i], sg = 1 / (1 + exp_real(-gi));
            du[i] = d[i] * gi * sg;
            dg[i] = d[i] * u[i] * sg * (1 + gi * (1 - sg));
        }
    }
}

/* max_i x_i into *mx, and sum_i exp(x_i - mx) (in double): the two cross-entropy functions share this code so that
   their losses are the same bits */
static double softmax_row_sum(const floatX *x, int V, real *mx_out) {
    real mx = x[0];
    for (int i = 1; i < V; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < V; i++) sum += exp_real(x[i] - mx);
    *mx_out = mx;
    return sum;
}

void crossentropy_forward(floatM *losses, const floatX *logits, const int *targets, int N, int V) {
    /* losses[n] = logsumexp(logits[n]) - logits[n, targets[n]]   losses (N), logits (N, V), targets (N)
       logsumexp(x) = mx + log(sum_i exp(x_i - mx)), mx = max_i x_i (no overflow) */
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) { losses[n] = 0; continue; }
        const floatX *x = logits + (size_t)n * V;
        real mx;
        double sum = softmax_row_sum(x, V, &mx);
        losses[n] = (floatM)((double)mx + log(sum) - (double)x[targets[n]]);
    }
}

void crossentropy_backward(floatX *dlogits, const floatX *logits, const int *targets, const floatM *weights, double dloss,
                           int N, int V) {
    /* forward: loss = sum_n w_n loss_n, loss_n = logsumexp(x) - x_y  =>  dx_i = dloss w_n (softmax(x)_i - [i == y]);
       0 for ignored rows. Written (=), not accumulated: dlogits may be logits. The body is the one below, without
       the losses. */
    crossentropy_forward_backward(NULL, dlogits, logits, targets, weights, dloss, N, V);
}

void crossentropy_forward_backward(floatM *losses, floatX *dlogits, const floatX *logits, const int *targets,
                                   const floatM *weights, double dloss_all, int N, int V) {
    /* the two above in one sweep over the rows (losses may be NULL); each row is read three times:
         mx = max_i x_i,   sum = sum_i exp(x_i - mx),   loss = mx + log(sum) - x_y
         dx_i = dloss (exp(x_i - mx) / sum - [i == y])
       dx may be x: x_y is read first, and the last pass reads x_i just before it writes dx_i. */
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const floatX *x = logits + (size_t)n * V;
        floatX *dx = dlogits + (size_t)n * V;
        int y = targets[n];
        if (y < 0) {
            if (losses != NULL) losses[n] = 0;
            for (int i = 0; i < V; i++) dx[i] = 0;
            continue;
        }
        double xy = x[y], dloss = weights != NULL ? dloss_all * (double)weights[n] : dloss_all;
        real mx;
        double sum = softmax_row_sum(x, V, &mx);
        if (losses != NULL) losses[n] = (floatM)((double)mx + log(sum) - xy);
        real scale = (real)(dloss / sum);
        for (int i = 0; i < V; i++) dx[i] = exp_real(x[i] - mx) * scale;
        dx[y] -= (real)dloss;
    }
}

void adamw_update(floatX *params, floatM *master, const floatX *grads, floatM *m, floatM *v, size_t n, double lr,
                  double beta1, double beta2, double eps, double weight_decay, double grad_scale, int step) {
    /* torch.optim.AdamW, one step t = step (1-based):
         p *= 1 - lr wd;  m = lerp(m, g, 1 - b1);  v = b2 v + (1 - b2) g^2
         p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) */
    double bc1 = 1.0 - pow(beta1, step), bc2_sqrt = sqrt(1.0 - pow(beta2, step));
    double step_size = lr / bc1;
    #pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        double g = (double)grads[i] * grad_scale;
        double p = (double)master[i] * (1.0 - lr * weight_decay);
        double mi = (double)m[i] + (g - (double)m[i]) * (1.0 - beta1);
        double vi = (double)v[i] * beta2 + (1.0 - beta2) * g * g;
        p -= step_size * mi / (sqrt(vi) / bc2_sqrt + eps);
        m[i] = (floatM)mi;
        v[i] = (floatM)vi;
        master[i] = (floatM)p;
        params[i] = (floatX)master[i];
    }
}

void global_norm_squared(floatM *out, const floatX *g, size_t n) {
    double acc = 0.0;
    #pragma omp parallel for reduction(+ : acc)
    for (size_t i = 0; i < n; i++) acc += (double)g[i] * g[i];
    out[0] += (floatM)acc;
}

void copy_master_to_params(floatX *params, const floatM *master, size_t n) {
    for (size_t i = 0; i < n; i++) params[i] = (floatX)master[i];
}

void *backend_malloc(size_t bytes) { return mallocCheck(bytes); }
void backend_free(void *p) { free(p); }
void backend_to_host(void *dst, const void *src, size_t bytes) { if (bytes) memcpy(dst, src, bytes); }
void backend_from_host(void *dst, const void *src, size_t bytes) { if (bytes) memcpy(dst, src, bytes); }
void backend_zero(void *p, size_t bytes) { if (bytes) memset(p, 0, bytes); }
void backend_add_int(int *p, int n) { *p += n; }
int backend_graph_begin(void) { return 0; }   /* no graphs on the CPU: the caller runs the work */
void *backend_graph_end(void) { return NULL; }
void backend_graph_launch(void *graph) { (void)graph; }
void backend_graph_free(void *graph) { (void)graph; }
size_t backend_scratch_epoch(void) { return 0; }
static double timer_marks[PROFILE_MARKS];
void backend_timer_record(int slot) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (slot >= 0 && slot < PROFILE_MARKS) timer_marks[slot] = ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
double backend_timer_ms(int from, int to) { return timer_marks[to] - timer_marks[from]; }
size_t backend_memory_peak(void) { return 0; }
const char *backend_name(void) {
#ifdef _OPENMP
    static char name[64];
    snprintf(name, sizeof(name), "cpu (%s, OpenMP %d threads)", sizeof(real) == 8 ? "double" : "float",
             omp_get_max_threads());
    return name;
#else
    return sizeof(real) == 8 ? "cpu (double, no OpenMP)" : "cpu (float, no OpenMP)";
#endif
}

#endif /* !ROPEPP_CUDA */

#ifndef ROPEPP_CPU_REF   /* tests/cpu_ref.c builds parts 1 and 2 only, under cpu_* names */
/* ---------------------------------------------------------------------------------------------- 3. model */

const char *const param_names[NUM_PARAM_TENSORS] = {"wte", "ln1w", "qkvw", "attprojw", "ln2w", "fcw", "fcprojw",
                                                    "lnfw", "lmw", "fope_cos", "fope_sin"};

static void param_sizes(const Config *c, const Dims *d, size_t *sizes) {
    size_t V = c->vocab_size, C = c->dim, L = c->n_layers, F = c->ffn_dim;
    sizes[P_WTE] = V * C;
    sizes[P_LN1W] = L * C;
    sizes[P_QKVW] = L * (size_t)d->QKV * C;
    sizes[P_ATTPROJW] = L * C * (size_t)d->NA * d->HD;
    sizes[P_LN2W] = L * C;
    sizes[P_FCW] = L * 2 * F * C;
    sizes[P_FCPROJW] = L * C * F;
    sizes[P_LNFW] = C;
    sizes[P_LMW] = V * C;
    sizes[P_FOPE_COS] = L * (size_t)d->KVH * d->fope_m * d->fope_p;
    sizes[P_FOPE_SIN] = sizes[P_FOPE_COS];
}

static int param_is_norm(int t) { return t == P_LN1W || t == P_LN2W || t == P_LNFW; }
static int param_is_frozen(int t) { return t == P_FOPE_COS || t == P_FOPE_SIN; }

static size_t param_offset(const Model *m, int t) {
    size_t off = 0;
    for (int i = 0; i < t; i++) off += m->param_sizes[i];
    return off;
}

static void point_params(ParamTensors *p, floatX *mem, const size_t *sizes) {
    floatX **ptrs[NUM_PARAM_TENSORS] = {&p->wte, &p->ln1w, &p->qkvw, &p->attprojw, &p->ln2w, &p->fcw,
                                        &p->fcprojw, &p->lnfw, &p->lmw, &p->fope_cos, &p->fope_sin};
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) { *ptrs[i] = mem; mem += sizes[i]; }
}

/* Fresh weights (docs/MATH.md, Initialization). torch_default: what the authors' ZeRO-3 runs most likely got — embedding
   N(0, 1), every Linear U(-1/sqrt(fan_in), +1/sqrt(fan_in)), norms 1. hf: N(0, 0.02) everywhere, norms 1.
   FoPE coefficients (docs/MATH.md, FoPE): xavier-normal with gain 0.3 over (KVH, M, P) (fan_in M*P, fan_out KVH*P),
   plus a step identity: [g, step*p, p] += 1 with step = ceil(M/P), for p < P and step*p < M. */
static void init_params_host(double *p, const Config *c, const Dims *d, const size_t *sizes, int init, uint64_t seed) {
    Rng rng = {seed};
    double *t = p;
    for (int k = 0; k < NUM_PARAM_TENSORS; k++) {
        size_t n = sizes[k];
        if (param_is_norm(k)) {
            for (size_t i = 0; i < n; i++) t[i] = 1.0;
        } else if (param_is_frozen(k)) {
            int KVH = d->KVH, M = d->fope_m, P = d->fope_p;
            double std = 0.3 * sqrt(2.0 / ((double)M * P + (double)KVH * P));
            int step = (M + P - 1) / (P > 0 ? P : 1);
            for (size_t i = 0; i < n; i++) t[i] = std * rng_normal(&rng);
            for (int l = 0; l < c->n_layers; l++)
                for (int g = 0; g < KVH; g++)
                    for (int q = 0; q < P && step * q < M; q++)
                        t[(((size_t)l * KVH + g) * M + (size_t)step * q) * P + q] += 1.0;
        } else if (init == INIT_HF) {
            for (size_t i = 0; i < n; i++) t[i] = 0.02 * rng_normal(&rng);
        } else if (k == P_WTE) {
            for (size_t i = 0; i < n; i++) t[i] = rng_normal(&rng);
        } else {
            int fan_in = c->dim;
            if (k == P_ATTPROJW) fan_in = d->NA * d->HD;
            if (k == P_FCPROJW) fan_in = c->ffn_dim;
            double bound = 1.0 / sqrt((double)fan_in);
            for (size_t i = 0; i < n; i++) t[i] = bound * (2.0 * rng_uniform(&rng) - 1.0);
        }
        t += n;
    }
}

void model_init_from(Model *m, const Config *c, const double *params) {
    char err[256];
    if (config_validate(c, err, sizeof(err)) != 0) {
        fprintf(stderr, "error: invalid model config: %s\n", err);
        exit(1);
    }
    memset(m, 0, sizeof(*m));
    m->cfg = *c;
    m->d = config_dims(c);
    param_sizes(c, &m->d, m->param_sizes);
    m->num_params = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) m->num_params += m->param_sizes[i];
    size_t n = m->num_params;
    m->params_memory = (floatX *)backend_malloc(n * sizeof(floatX));
    m->grads_memory = (floatX *)backend_malloc(n * sizeof(floatX));
    m->master = (floatM *)backend_malloc(n * sizeof(floatM));
    point_params(&m->params, m->params_memory, m->param_sizes);
    point_params(&m->grads, m->grads_memory, m->param_sizes);
    floatM *host = (floatM *)mallocCheck(n * sizeof(floatM));
    for (size_t i = 0; i < n; i++) host[i] = (floatM)params[i];
    backend_from_host(m->master, host, n * sizeof(floatM));
    free(host);
    copy_master_to_params(m->params_memory, m->master, n);
    backend_zero(m->grads_memory, n * sizeof(floatX));
    m->shard_start = 0;
    m->shard_len = n;
    m->loss_weight = 1.0;
    m->loss = -1.0;
}

void model_init(Model *m, const Config *c, int init, uint64_t seed) {
    char err[256];
    if (config_validate(c, err, sizeof(err)) != 0) {
        fprintf(stderr, "error: invalid model config: %s\n", err);
        exit(1);
    }
    Config cc = *c;
    cc.init = init;
    Dims d = config_dims(&cc);
    size_t sizes[NUM_PARAM_TENSORS], n = 0;
    param_sizes(&cc, &d, sizes);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) n += sizes[i];
    double *p = (double *)mallocCheck(n * sizeof(double));
    init_params_host(p, &cc, &d, sizes, init, seed);
    model_init_from(m, &cc, p);
    free(p);
}

void model_free(Model *m) {
    backend_free(m->params_memory); backend_free(m->grads_memory); backend_free(m->master);
    backend_free(m->adam_m); backend_free(m->adam_v);
    backend_free(m->acts_memory); backend_free(m->actsM_memory); backend_free(m->acts.logits);
    backend_free(m->inputs); backend_free(m->targets); free(m->losses_host);
    backend_free(m->target_w); free(m->target_w_host);
    backend_free(m->pe_cos); backend_free(m->pe_sin); backend_free(m->pe_alibi);
    memset(m, 0, sizeof(*m));
}

/* Rotary frequencies with every scaling option (docs/MATH.md: Frequencies and tables, Scaling variants, Partial rotary), for rot dims:
     theta_j = (base * lambda)^(-2j/rot)                      eval-time NTK: base * lambda, no exponent
     PI:    theta_j /= s
     YaRN:  r_j = L_orig theta_j / (2 pi),  gamma_j = clip((r_j - 1) / (32 - 1), 0, 1)
            theta_j = (1 - gamma_j) theta_j / s + gamma_j theta_j,   mscale = 0.1 ln(s) + 1 on cos and sin */
static void rope_frequencies(double *theta, double *mscale, const Config *c, int rot) {
    double base = c->rope_base * c->ntk_factor;
    *mscale = 1.0;
    for (int j = 0; j < rot / 2; j++) {
        double th = pow(base, -2.0 * j / (double)rot);
        if (c->pi_factor != 1.0) th /= c->pi_factor;
        if (c->yarn_factor != 1.0) {
            double s = c->yarn_factor;
            double L0 = c->yarn_orig_len > 0 ? c->yarn_orig_len : c->train_seq;
            double r = L0 * th / (2.0 * M_PI);
            double gamma = (r - 1.0) / 31.0;
            if (gamma < 0.0) gamma = 0.0;
            if (gamma > 1.0) gamma = 1.0;
            th = (1.0 - gamma) * th / s + gamma * th;
        }
        theta[j] = th;
    }
    if (c->yarn_factor != 1.0) *mscale = 0.1 * log(c->yarn_factor) + 1.0;
}

/* Build the cos/sin tables for positions 0..T_table-1 (and the ALiBi slopes) in backend memory. */
static void model_build_pe(Model *m, int T_table) {
    const Config *c = &m->cfg;
    const Dims *d = &m->d;
    int half = d->rot / 2;
    backend_free(m->pe_cos); backend_free(m->pe_sin); backend_free(m->pe_alibi);
    m->pe_cos = m->pe_sin = m->pe_alibi = NULL;
    m->T_table = T_table;
    if (half > 0) {
        int fope = c->pe == PE_FOPE;
        size_t per_layer = (size_t)(fope ? d->KVH : 1) * T_table * half;
        size_t n = per_layer * (fope ? c->n_layers : 1);
        floatM *hc = (floatM *)mallocCheck(n * sizeof(floatM)), *hs = (floatM *)mallocCheck(n * sizeof(floatM));
        if (!fope) {
            double theta[4096], mscale;
            if (half > 4096) { fprintf(stderr, "error: head dim too large for the rope table\n"); exit(1); }
            rope_frequencies(theta, &mscale, c, d->rot);
            for (int t = 0; t < T_table; t++)
                for (int j = 0; j < half; j++) {
                    double ang = (double)t * theta[j];
                    hc[(size_t)t * half + j] = (floatM)(cos(ang) * mscale);
                    hs[(size_t)t * half + j] = (floatM)(sin(ang) * mscale);
                }
        } else {
            /* FoPE (docs/MATH.md, FoPE), per layer l and kv head g, for output slot p < P:
                 Cc_p(t) = sum_m cos(omega_m t) C_cos[l, g, m, p],   S_p(t) = sum_m sin(omega_m t) C_sin[l, g, m, p]
               slots p = P..HD/2-1 are padded with Cc = S = 1 (a position-free map). */
            int M = d->fope_m, P = d->fope_p, KVH = d->KVH;
            size_t ncoef = m->param_sizes[P_FOPE_COS];
            floatM *coef = (floatM *)mallocCheck(2 * ncoef * sizeof(floatM));
            backend_to_host(coef, m->master + param_offset(m, P_FOPE_COS), 2 * ncoef * sizeof(floatM));
            const floatM *ccos = coef, *csin = coef + ncoef;
            for (int l = 0; l < c->n_layers; l++)
                for (int g = 0; g < KVH; g++)
                    for (int t = 0; t < T_table; t++) {
                        size_t row = (((size_t)l * KVH + g) * T_table + t) * half;
                        for (int p = 0; p < half; p++) {
                            double cc = 1.0, ss = 1.0;
                            if (p < P) {
                                cc = 0.0; ss = 0.0;
                                for (int mm = 0; mm < M; mm++) {
                                    double omega = pow(c->rope_base, -2.0 * mm / (double)d->HD);
                                    size_t ci = (((size_t)l * KVH + g) * M + mm) * P + p;
                                    cc += cos(omega * t) * (double)ccos[ci];
                                    ss += sin(omega * t) * (double)csin[ci];
                                }
                            }
                            hc[row + p] = (floatM)cc;
                            hs[row + p] = (floatM)ss;
                        }
                    }
            free(coef);
        }
        m->pe_cos = (floatM *)backend_malloc(n * sizeof(floatM));
        m->pe_sin = (floatM *)backend_malloc(n * sizeof(floatM));
        backend_from_host(m->pe_cos, hc, n * sizeof(floatM));
        backend_from_host(m->pe_sin, hs, n * sizeof(floatM));
        free(hc); free(hs);
    }
    if (c->pe == PE_ALIBI) {
        double slopes[4096];
        floatM hsl[4096];
        if (d->NA > 4096) { fprintf(stderr, "error: too many heads for ALiBi\n"); exit(1); }
        alibi_slopes(slopes, d->NA);
        for (int a = 0; a < d->NA; a++) hsl[a] = (floatM)slopes[a];
        m->pe_alibi = (floatM *)backend_malloc((size_t)d->NA * sizeof(floatM));
        backend_from_host(m->pe_alibi, hsl, (size_t)d->NA * sizeof(floatM));
    }
}

static PosEmb model_pe(const Model *m, int l) {
    PosEmb pe;
    memset(&pe, 0, sizeof(pe));
    int fope = m->cfg.pe == PE_FOPE;
    pe.rot = m->d.rot;
    pe.imag = m->d.imag;
    pe.per_group = fope;
    pe.T_table = m->T_table;
    size_t layer = fope ? (size_t)l * m->d.KVH * m->T_table * (m->d.rot / 2) : 0;
    pe.cos = m->pe_cos ? m->pe_cos + layer : NULL;
    pe.sin = m->pe_sin ? m->pe_sin + layer : NULL;
    pe.alibi = m->pe_alibi;
    pe.noise_sigma = m->noise_sigma * (m->noise_layer_scale != NULL ? m->noise_layer_scale[l] : 1.0);
    pe.noise_target = m->noise_target;
    uint64_t x = m->noise_seed ^ (m->n_forwards * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)l << 48);
    pe.noise_seed = splitmix64(&x);
    return pe;
}

static size_t grad_scratch_width(const Model *m) {
    size_t w = (size_t)m->cfg.dim;
    size_t cand[3] = {(size_t)m->d.NA * m->d.HD, 2 * (size_t)m->cfg.ffn_dim, (size_t)m->d.QKV};
    for (int i = 0; i < 3; i++) if (cand[i] > w) w = cand[i];
    return w;
}

/* floatX elements of scratch_a for N rows: the gradient scratch, and room for model_forward_loss's chunks of
   logits, a quarter of the rows (4 chunks) at least */
static size_t scratch_a_size(const Model *m, size_t N) {
    size_t R = (N + 3) / 4;
    R = R > 64 ? (R + 63) / 64 * 64 : R;
    size_t SW = N * grad_scratch_width(m), LG = R * m->cfg.vocab_size;
    return SW > LG ? SW : LG;
}

/* Allocate activations for B*T rows (one floatX and one floatM allocation, pointed into in this order). */
static void model_alloc_acts(Model *m, int B, int T) {
    backend_free(m->acts_memory); backend_free(m->actsM_memory); backend_free(m->acts.logits);
    backend_free(m->inputs); backend_free(m->targets); free(m->losses_host);
    backend_free(m->target_w); free(m->target_w_host);
    m->acts.logits = NULL;
    m->logits_cap = 0;
    size_t N = (size_t)B * T, L = m->cfg.n_layers, C = m->cfg.dim, F = m->cfg.ffn_dim;
    size_t NAHD = (size_t)m->d.NA * m->d.HD, KVHD = (size_t)m->d.KVH * m->d.HD, QKV = m->d.QKV;
    size_t SW = grad_scratch_width(m), SA = scratch_a_size(m, N);
    Activations *a = &m->acts;
    floatX **xp[] = {&a->encoded, &a->ln1, &a->qkv, &a->qr, &a->kr, &a->atty, &a->res2, &a->ln2,
                     &a->fch, &a->fchs, &a->res3, &a->lnf, &a->scratch_a, &a->scratch_b, &a->dres};
    size_t xs[] = {N * C, L * N * C, L * N * QKV, L * N * NAHD, L * N * KVHD, L * N * NAHD, L * N * C,
                   L * N * C, L * N * 2 * F, L * N * F, L * N * C, N * C, SA, N * SW, N * C};
    size_t nx = 0, nm = 0;
    for (size_t i = 0; i < sizeof(xs) / sizeof(xs[0]); i++) nx += xs[i];
    floatM **mp[] = {&a->ln1_rstd, &a->ln2_rstd, &a->lnf_rstd, &a->softmax_saved, &a->losses, &a->norm};
    size_t ms[] = {L * N, L * N, N, L * attention_softmax_saved_size(B, T, m->d.NA), N, 1};
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) nm += ms[i];
    m->acts_memory = (floatX *)backend_malloc(nx * sizeof(floatX));
    m->actsM_memory = (floatM *)backend_malloc(nm * sizeof(floatM));
    floatX *px = m->acts_memory;
    for (size_t i = 0; i < sizeof(xs) / sizeof(xs[0]); i++) { *xp[i] = px; px += xs[i]; }
    floatM *pm = m->actsM_memory;
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) { *mp[i] = pm; pm += ms[i]; }
    m->inputs = (int *)backend_malloc(N * sizeof(int));
    m->targets = (int *)backend_malloc(N * sizeof(int));
    m->losses_host = (floatM *)mallocCheck(N * sizeof(floatM));
    m->target_w = (floatM *)backend_malloc(N * sizeof(floatM));
    m->target_w_host = (floatM *)mallocCheck(N * sizeof(floatM));
    m->B_cap = B;
    m->T_cap = T;
}

/* Activation pointers of layer l for the current (B, T): the same layout as allocated for (B_cap, T_cap) but
   strided by the current sizes, so a smaller batch uses a prefix of every tensor. */
typedef struct {
    floatX *ln1, *qkv, *qr, *kr, *atty, *res2, *ln2, *fch, *fchs, *res3;
    floatM *ln1_rstd, *ln2_rstd, *softmax_saved;
} LayerActs;

static LayerActs layer_acts(const Model *m, int l) {
    const Activations *a = &m->acts;
    size_t N = (size_t)m->B * m->T, C = m->cfg.dim, F = m->cfg.ffn_dim;
    size_t NAHD = (size_t)m->d.NA * m->d.HD, KVHD = (size_t)m->d.KVH * m->d.HD;
    LayerActs la;
    la.ln1 = a->ln1 + l * N * C;
    la.qkv = a->qkv + l * N * m->d.QKV;
    la.qr = a->qr + l * N * NAHD;
    la.kr = a->kr + l * N * KVHD;
    la.atty = a->atty + l * N * NAHD;
    la.res2 = a->res2 + l * N * C;
    la.ln2 = a->ln2 + l * N * C;
    la.fch = a->fch + l * N * 2 * F;
    la.fchs = a->fchs + l * N * F;
    la.res3 = a->res3 + l * N * C;
    la.ln1_rstd = a->ln1_rstd + l * N;
    la.ln2_rstd = a->ln2_rstd + l * N;
    la.softmax_saved = a->softmax_saved + l * attention_softmax_saved_size(m->B, m->T, m->d.NA);
    return la;
}

static const floatX *layer_param(const floatX *base, int l, size_t per_layer) { return base + (size_t)l * per_layer; }

static void check_tokens(const Model *m, const int *inputs, const int *targets, size_t n) {
    int V = m->cfg.vocab_size;
    for (size_t i = 0; i < n; i++) {
        int bad_in = inputs[i] < 0 || inputs[i] >= V, bad_tg = targets != NULL && targets[i] >= V;
        if (bad_in || bad_tg) {
            fprintf(stderr, "error: token %d at position %zu is outside the vocabulary [0, %d)\n"
                            "HINT: the data was tokenized for another vocabulary; pass the matching --vocab\n",
                    bad_in ? inputs[i] : targets[i], i, V);
            exit(1);
        }
    }
}

/* ---- op profiler */

void profile_mark(Profile *p, const char *label) {
    if (p == NULL) return;
    if (p->n_marks >= PROFILE_MARKS) { p->overflow = 1; return; }
    backend_timer_record(p->n_marks);
    p->mark_label[p->n_marks++] = label;
}

void profile_collect(Profile *p, int count) {
    if (p == NULL) return;
    for (int i = 1; count && i < p->n_marks; i++) {
        const char *label = p->mark_label[i];
        int r = 0;
        while (r < p->n_rows && strcmp(p->row_label[r], label) != 0) r++;
        if (r == p->n_rows) {
            if (r == PROFILE_ROWS) { p->overflow = 1; continue; }
            p->row_label[p->n_rows++] = label;
        }
        p->row_ms[r] += backend_timer_ms(i - 1, i);
        p->row_calls[r]++;
    }
    if (count && p->n_marks > 1) p->steps++;
    if (!count && p->n_marks > 0) (void)backend_timer_ms(0, p->n_marks - 1);   /* wait for the device alike */
    p->n_marks = 0;
}

void profile_print(const Profile *p, FILE *f) {
    if (p->steps == 0) { fprintf(f, "profile: no steps collected (the first 2 are warm-up)\n"); return; }
    double total = 0.0;
    for (int r = 0; r < p->n_rows; r++) total += p->row_ms[r];
    fprintf(f, "profile over %d steps (device time between consecutive op ends; \"host\" rows: the device waits)\n", p->steps);
    fprintf(f, "  %-26s %10s %7s %9s\n", "op", "ms/step", "share", "calls");
    for (int r = 0; r < p->n_rows; r++)
        fprintf(f, "  %-26s %10.3f %6.1f%% %9.1f\n", p->row_label[r], p->row_ms[r] / p->steps,
                total > 0 ? 100.0 * p->row_ms[r] / total : 0.0, (double)p->row_calls[r] / p->steps);
    fprintf(f, "  %-26s %10.3f\n", "total", total / p->steps);
    /* by kind, as bench/train/torch_train.py --profile-out groups PyTorch's kernels */
    const char *kinds[4] = {"attention", "matmul", "host", "other"};
    double by[4] = {0, 0, 0, 0};
    for (int r = 0; r < p->n_rows; r++) {
        int k = 3;
        for (int j = 0; j < 3; j++) if (strncmp(p->row_label[r], kinds[j], strlen(kinds[j])) == 0) { k = j; break; }
        by[k] += p->row_ms[r];
    }
    fprintf(f, "  by kind: attention %.3f | matmul %.3f | other %.3f | host waits %.3f ms/step\n", by[0] / p->steps,
            by[1] / p->steps, by[3] / p->steps, by[2] / p->steps);
    if (p->overflow) fprintf(f, "  (some marks did not fit: more than %d marks or %d ops per step)\n", PROFILE_MARKS, PROFILE_ROWS);
}

/* Make room for B*T activation rows and tables for T_table positions; set the current (B, T). */
static void model_prepare(Model *m, int B, int T, int T_table) {
    if (B < 1 || T < 1) { fprintf(stderr, "error: the model needs B >= 1 and T >= 1\n"); exit(1); }
    if (m->acts_memory == NULL || (size_t)B * T > (size_t)m->B_cap * m->T_cap || T > m->T_cap)
        model_alloc_acts(m, B > m->B_cap ? B : m->B_cap, T > m->T_cap ? T : m->T_cap);
    if (m->T_table < T_table || m->T_table < m->T_cap) model_build_pe(m, T_table > m->T_cap ? T_table : m->T_cap);
    m->B = B;
    m->T = T;
}

/* Embedding -> L blocks -> final norm -> logits, on the tokens already in m->inputs. Without a cache the
   attention sees the T tokens of each row; with one, it sees the cache too (decoding). */
static void model_forward_body(Model *m, KVCache *kv) {
    const Config *c = &m->cfg;
    const Dims *d = &m->d;
    int C = c->dim, F = c->ffn_dim, L = c->n_layers, B = m->B, T = m->T;
    size_t N = (size_t)B * T, NAHD = (size_t)d->NA * d->HD;
    const ParamTensors *p = &m->params;
    Activations *a = &m->acts;
    Profile *pr = m->profile;
    encoder_forward(a->encoded, m->inputs, p->wte, (int)N, C);
    profile_mark(pr, "encoder");
    const floatX *res = a->encoded;
    for (int l = 0; l < L; l++) {
        LayerActs la = layer_acts(m, l);
        PosEmb pe = model_pe(m, l);
        rmsnorm_forward(la.ln1, la.ln1_rstd, res, layer_param(p->ln1w, l, C), (int)N, C, c->norm_eps);
        profile_mark(pr, "rmsnorm");
        matmul_forward(la.qkv, la.ln1, layer_param(p->qkvw, l, (size_t)d->QKV * C), (int)N, C, d->QKV);
        profile_mark(pr, "matmul qkv");
        if (kv == NULL) {
            attention_forward(la.atty, la.qr, la.kr, la.softmax_saved, la.qkv, &pe, B, T, d->HQ, d->KVH, d->HD);
        } else {
            size_t layer = (size_t)l * kv->B * kv->Tmax * d->KVH * d->HD;
            attention_cached_forward(la.atty, kv->k + layer, kv->v + layer, la.qkv, &pe, kv->pos, kv->pos_dev, B, T,
                                     kv->Tmax, d->HQ, d->KVH, d->HD);
        }
        profile_mark(pr, "attention");
        /* the projections go through scratch: only the residual sums are kept */
        matmul_forward(a->scratch_a, la.atty, layer_param(p->attprojw, l, (size_t)C * NAHD), (int)N, (int)NAHD, C);
        profile_mark(pr, "matmul attproj");
        residual_forward(la.res2, res, a->scratch_a, N * C);
        profile_mark(pr, "residual");
        rmsnorm_forward(la.ln2, la.ln2_rstd, la.res2, layer_param(p->ln2w, l, C), (int)N, C, c->norm_eps);
        profile_mark(pr, "rmsnorm");
        matmul_forward(la.fch, la.ln2, layer_param(p->fcw, l, (size_t)2 * F * C), (int)N, C, 2 * F);
        profile_mark(pr, "matmul fc");
        swiglu_forward(la.fchs, la.fch, (int)N, F);
        profile_mark(pr, "swiglu");
        matmul_forward(a->scratch_a, la.fchs, layer_param(p->fcprojw, l, (size_t)C * F), (int)N, F, C);
        profile_mark(pr, "matmul fcproj");
        residual_forward(la.res3, la.res2, a->scratch_a, N * C);
        profile_mark(pr, "residual");
        res = la.res3;
    }
    rmsnorm_forward(a->lnf, a->lnf_rstd, res, p->lnfw, (int)N, C, c->norm_eps);
    profile_mark(pr, "rmsnorm");
    m->n_forwards++;
}

/* logits (B, T, V) = lnf W_lm^T for every row, into acts.logits (grown to B*T rows when needed) */
static void model_classifier(Model *m) {
    size_t N = (size_t)m->B * m->T, V = m->cfg.vocab_size;
    if (m->acts.logits == NULL || m->logits_cap < N) {
        backend_free(m->acts.logits);
        m->acts.logits = (floatX *)backend_malloc(N * V * sizeof(floatX));
        m->logits_cap = N;
    }
    matmul_forward(m->acts.logits, m->acts.lnf, m->params.lmw, (int)N, m->cfg.dim, (int)V);
    profile_mark(m->profile, "matmul lm head");
}

/* the loss of the last forward: the mean over its non-ignored targets, or with loss_rows the sum of the losses
   times their factors (the mean over rows of the row means) */
static double model_mean_loss(Model *m, const int *targets, size_t N) {
    backend_to_host(m->losses_host, m->acts.losses, N * sizeof(floatM));
    double sum = 0.0;
    if (m->loss_rows) {
        for (size_t i = 0; i < N; i++) if (targets[i] >= 0) sum += (double)m->target_w_host[i] * m->losses_host[i];
        m->loss = sum;
        return m->loss;
    }
    for (size_t i = 0; i < N; i++) if (targets[i] >= 0) sum += m->losses_host[i];
    m->loss = m->n_targets > 0 ? sum / (double)m->n_targets : 0.0;
    return m->loss;
}

/* loss_rows: target_w[b, t] = 1 / (rows with targets x targets of row b) where targets[b, t] >= 0, else 0 */
static void model_row_weights(Model *m, const int *targets, int B, int T) {
    int64_t *nb = (int64_t *)calloc((size_t)B, sizeof(int64_t));   /* (B) targets per row */
    int rows = 0;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) nb[b] += targets[(size_t)b * T + t] >= 0;
        rows += nb[b] > 0;
    }
    for (size_t n = 0; n < (size_t)B * T; n++)
        m->target_w_host[n] = targets[n] >= 0 ? (floatM)(1.0 / ((double)rows * (double)nb[n / T])) : (floatM)0;
    free(nb);
    backend_from_host(m->target_w, m->target_w_host, (size_t)B * T * sizeof(floatM));
}

/* the factor of each target's loss in the gradient of loss_weight x (the forward's loss): dloss times target_w[n]
   with loss_rows (model_target_weights), else dloss alone = loss_weight / n_targets */
static double model_dloss(const Model *m) {
    if (m->loss_rows) return m->loss_weight;
    return m->n_targets > 0 ? m->loss_weight / (double)m->n_targets : 0.0;
}
static const floatM *model_target_weights(const Model *m) { return m->loss_rows ? m->target_w : NULL; }

/* OpenMP threads sized to the work (CPU; no-op on the GPU). The threads of a team meet at a barrier after each op;
   while other programs hold the cores, a barrier waits for a preempted thread for a time slice (milliseconds), so a
   pass of many tiny ops (decoding a token, scoring a short window) ran 100x slower than on one thread
   (bench/cpu/README.md). A forward of `flops` gets one thread per THREAD_MIN_FLOPS of it, at most the threads there
   were at the first call (OMP_NUM_THREADS); a training step (flops < 0) gets all of them. OpenBLAS's OpenMP
   flavour is told too (it keeps its own count). */
#define THREAD_MIN_FLOPS 1e9
static void threads_for_work(double flops) {
#if defined(_OPENMP) && !defined(ROPEPP_CUDA)
    static int most = 0;
    if (most == 0) most = omp_get_max_threads();
    double fit = flops < 0 ? most : flops / THREAD_MIN_FLOPS;
    int n = fit >= most ? most : (fit < 1.0 ? 1 : (int)fit);
    if (n == omp_get_max_threads()) return;
    omp_set_num_threads(n);
#ifdef ROPEPP_BLAS
    openblas_set_num_threads(n);
#endif
#else
    (void)flops;
#endif
}

/* the start of model_forward and model_forward_loss: checks, room, the tokens (and targets) to the backend, then
   the layers up to the final norm */
static void model_run_body(Model *m, const int *inputs, const int *targets, int B, int T) {
    size_t N = (size_t)B * T;
    check_tokens(m, inputs, targets, N);
    model_prepare(m, B, T, T);
    profile_mark(m->profile, "host: gap");
    backend_from_host(m->inputs, inputs, N * sizeof(int));
    m->n_targets = 0;   /* the non-ignored targets */
    if (targets != NULL) {
        backend_from_host(m->targets, targets, N * sizeof(int));
        for (size_t i = 0; i < N; i++) m->n_targets += targets[i] >= 0;
        if (m->loss_rows) model_row_weights(m, targets, B, T);
    }
    profile_mark(m->profile, "host: token upload");
    model_forward_body(m, NULL);
}

double model_forward(Model *m, const int *inputs, const int *targets, int B, int T) {
    size_t N = (size_t)B * T;
    threads_for_work(model_flops_per_token(&m->cfg, T) / 3.0 * (double)N);
    model_run_body(m, inputs, targets, B, T);
    model_classifier(m);
    m->loss = -1.0;
    m->lm_head_backward_done = 0;
    if (targets == NULL) return -1.0;
    crossentropy_forward(m->acts.losses, m->acts.logits, m->targets, (int)N, m->cfg.vocab_size);
    profile_mark(m->profile, "crossentropy");
    return model_mean_loss(m, targets, N);
}

double model_forward_loss(Model *m, const int *inputs, const int *targets, int B, int T, int backward) {
    size_t N = (size_t)B * T;
    if (targets == NULL) { fprintf(stderr, "error: model_forward_loss needs targets\n"); exit(1); }
    threads_for_work(backward ? -1.0 : model_flops_per_token(&m->cfg, T) / 3.0 * (double)N);
    model_run_body(m, inputs, targets, B, T);
    /* chunks of R rows: logits (R, V) in scratch_a, the loss, and with backward dlogits in place, then dlnf rows
       (into scratch_b, which model_backward reads) and the classifier's weight gradient (+=) */
    int C = m->cfg.dim, V = m->cfg.vocab_size;
    Activations *a = &m->acts;
    size_t R = scratch_a_size(m, (size_t)m->B_cap * m->T_cap) / (size_t)V;
    if (R > 64) R -= R % 64;
    if (m->head_rows > 0 && (size_t)m->head_rows < R) R = (size_t)m->head_rows;
    if (R > N) R = N;
    double dloss = model_dloss(m);
    const floatM *w = model_target_weights(m);
    for (size_t r0 = 0; r0 < N; r0 += R) {
        int rows = (int)(N - r0 < R ? N - r0 : R);
        matmul_forward(a->scratch_a, a->lnf + r0 * C, m->params.lmw, rows, C, V);
        profile_mark(m->profile, "matmul lm head");
        if (!backward) {
            crossentropy_forward(a->losses + r0, a->scratch_a, m->targets + r0, rows, V);
            profile_mark(m->profile, "crossentropy");
            continue;
        }
        crossentropy_forward_backward(a->losses + r0, a->scratch_a, a->scratch_a, m->targets + r0, w ? w + r0 : NULL, dloss, rows, V);
        profile_mark(m->profile, "crossentropy fwd+bwd");
        matmul_backward(a->scratch_b + r0 * C, m->grads.lmw, a->scratch_a, a->lnf + r0 * C, m->params.lmw, rows, C, V);
        profile_mark(m->profile, "matmul lm head bwd");
    }
    m->lm_head_backward_done = backward ? 1 : -1;
    return model_mean_loss(m, targets, N);
}

void kvcache_init(KVCache *kv, Model *m, int B, int Tmax) {
    size_t n = (size_t)m->cfg.n_layers * B * Tmax * m->d.KVH * m->d.HD;
    memset(kv, 0, sizeof(*kv));
    kv->B = B;
    kv->Tmax = Tmax;
    kv->pos = 0;
    kv->bytes = 2 * n * sizeof(floatX);
    kv->k = (floatX *)backend_malloc(n * sizeof(floatX));
    kv->v = (floatX *)backend_malloc(n * sizeof(floatX));
    backend_zero(kv->k, n * sizeof(floatX));
    backend_zero(kv->v, n * sizeof(floatX));
    kv->pos_dev = (int *)backend_malloc(sizeof(int));
    kv->rng = (uint64_t *)backend_malloc(sizeof(uint64_t));
    backend_zero(kv->pos_dev, sizeof(int));
    kvcache_seed(kv, 0);
    if (m->T_table < Tmax) model_build_pe(m, Tmax);
}

void kvcache_seed(KVCache *kv, uint64_t seed) { backend_from_host(kv->rng, &seed, sizeof(seed)); }

void kvcache_free(KVCache *kv) {
    backend_graph_free(kv->graph);
    backend_free(kv->k);
    backend_free(kv->v);
    backend_free(kv->pos_dev);
    backend_free(kv->rng);
    memset(kv, 0, sizeof(*kv));
}

void model_decode(Model *m, KVCache *kv, const int *tokens, int Tn) {
    if (kv->pos + Tn > kv->Tmax) {
        fprintf(stderr, "error: the KV cache holds %d positions; %d more do not fit after %d\n", kv->Tmax, Tn, kv->pos);
        exit(1);
    }
    size_t N = (size_t)kv->B * Tn;
    threads_for_work(model_flops_per_token(&m->cfg, kv->pos + Tn) / 3.0 * (double)N);
    check_tokens(m, tokens, NULL, N);
    model_prepare(m, kv->B, Tn, kv->Tmax);
    backend_from_host(m->inputs, tokens, N * sizeof(int));
    model_forward_body(m, kv);
    model_classifier(m);
    kv->pos += Tn;
    backend_add_int(kv->pos_dev, Tn);
    kv->sampled = 0;
    m->loss = -1.0;
    m->lm_head_backward_done = 0;
}

void model_sample(Model *m, KVCache *kv, int t, const Sampler *s) {
    if (m->acts.logits == NULL || m->B != kv->B || t < 0 || t >= m->T) {
        fprintf(stderr, "error: model_sample: no logits row %d of a model_decode on this cache\n", t);
        exit(1);
    }
    size_t V = m->cfg.vocab_size;
    int Vs = s->vocab > 0 && s->vocab < (int)V ? s->vocab : (int)V;
    sample_forward(m->inputs, kv->rng, m->acts.logits + (size_t)t * V, (size_t)m->T * V, kv->B, Vs,
                   s->temperature, s->top_k, s->top_p);
    kv->sampled = 1;
}

/* one decode step on the device: the B sampled tokens in m->inputs at kv->pos_dev, then the next B into m->inputs */
static void decode_next_body(Model *m, KVCache *kv, const Sampler *s) {
    model_forward_body(m, kv);
    model_classifier(m);
    int V = m->cfg.vocab_size, Vs = s->vocab > 0 && s->vocab < V ? s->vocab : V;
    sample_forward(m->inputs, kv->rng, m->acts.logits, (size_t)V, kv->B, Vs, s->temperature, s->top_k, s->top_p);
    backend_add_int(kv->pos_dev, 1);
}

void model_decode_next(Model *m, KVCache *kv, const Sampler *s, int use_graph) {
    if (!kv->sampled) {
        fprintf(stderr, "error: model_decode_next needs sampled tokens: call model_sample after model_decode first\n");
        exit(1);
    }
    if (kv->pos + 1 > kv->Tmax) {
        fprintf(stderr, "error: the KV cache holds %d positions; 1 more does not fit after %d\n", kv->Tmax, kv->pos);
        exit(1);
    }
    model_prepare(m, kv->B, 1, kv->Tmax);
    threads_for_work(model_flops_per_token(&m->cfg, kv->pos + 1) / 3.0 * kv->B);
    /* the noise experiment redraws its noise every forward (a graph would replay one draw); the profiler's marks
       are host clocks on the CPU and events to read back on the GPU: both run the step uncaptured */
    int graph_ok = use_graph && !(m->noise_target != NOISE_NONE && m->noise_sigma != 0.0) && m->profile == NULL;
    const void *mem[5] = {m->acts_memory, m->acts.logits, m->pe_cos, m->pe_sin, (const void *)backend_scratch_epoch()};
    const Sampler *g = &kv->graph_sampler;
    if (kv->graph != NULL && (!graph_ok || memcmp(kv->graph_mem, mem, sizeof(mem)) != 0 ||
                              g->temperature != s->temperature || g->top_k != s->top_k || g->top_p != s->top_p || g->vocab != s->vocab)) {
        backend_graph_free(kv->graph);
        kv->graph = NULL;
        kv->warm = 0;   /* run uncaptured once more first: it sizes the scratch for these settings */
    }
    if (graph_ok && kv->graph == NULL && kv->warm && backend_graph_begin()) {
        decode_next_body(m, kv, s);
        kv->graph = backend_graph_end();
        kv->graph_sampler = *s;
        memcpy(kv->graph_mem, mem, sizeof(mem));
    }
    if (kv->graph != NULL) {
        backend_graph_launch(kv->graph);
        m->n_forwards++;   /* as the body would count */
    } else {
        decode_next_body(m, kv, s);
        kv->warm = 1;
    }
    kv->pos += 1;
    m->loss = -1.0;
    m->lm_head_backward_done = 0;
}

void model_tokens_to_host(Model *m, KVCache *kv, int *tokens) {
    if (!kv->sampled) { fprintf(stderr, "error: model_tokens_to_host: nothing sampled yet (model_sample)\n"); exit(1); }
    backend_to_host(tokens, m->inputs, (size_t)kv->B * sizeof(int));
}

void model_zero_grad(Model *m) {
    profile_mark(m->profile, "host: gap");
    backend_zero(m->grads_memory, m->num_params * sizeof(floatX));
    profile_mark(m->profile, "zero grads");
}

void model_backward(Model *m) {
    if (m->loss < 0.0 || m->lm_head_backward_done < 0) {
        fprintf(stderr, "error: model_backward needs a forward with targets first (model_forward, or model_forward_loss with backward)\n");
        exit(1);
    }
    const Config *c = &m->cfg;
    const Dims *d = &m->d;
    int C = c->dim, F = c->ffn_dim, V = c->vocab_size, L = c->n_layers, B = m->B, T = m->T;
    int N = B * T;
    size_t NAHD = (size_t)d->NA * d->HD;
    const ParamTensors *p = &m->params;
    ParamTensors *g = &m->grads;
    Activations *a = &m->acts;
    double dloss = model_dloss(m);

    /* loss = mean over targets (or the weighted sum, loss_rows): dlogits overwrites logits (after model_forward_loss with backward the classifier's
       backward is done and dlnf waits in scratch_b). The scratch buffers need no clearing: every op below that
       writes one WRITES it (=); only the residual gradient dres is accumulated into. */
    Profile *pr = m->profile;
    profile_mark(pr, "host: backward start");
    floatX *sa = a->scratch_a, *sb = a->scratch_b, *dlnf = sa;
    if (m->lm_head_backward_done) {
        dlnf = sb;
    } else {
        crossentropy_backward(a->logits, a->logits, m->targets, model_target_weights(m), dloss, N, V);
        profile_mark(pr, "crossentropy bwd");
        matmul_backward(sa, g->lmw, a->logits, a->lnf, p->lmw, N, C, V);
        profile_mark(pr, "matmul lm head bwd");
    }
    backend_zero(a->dres, (size_t)N * C * sizeof(floatX));
    const floatX *res_last = L > 0 ? layer_acts(m, L - 1).res3 : a->encoded;
    rmsnorm_backward(a->dres, g->lnfw, dlnf, res_last, p->lnfw, a->lnf_rstd, N, C);
    profile_mark(pr, "rmsnorm bwd");
    for (int l = L - 1; l >= 0; l--) {
        LayerActs la = layer_acts(m, l);
        PosEmb pe = model_pe(m, l);
        const floatX *res_in = l > 0 ? layer_acts(m, l - 1).res3 : a->encoded;
        /* MLP: res3 = res2 + fcproj(swiglu(fc(rmsnorm(res2)))); dres holds d res3 = d res2 (residual) */
        matmul_backward(sa, g->fcprojw + (size_t)l * C * F, a->dres, la.fchs, layer_param(p->fcprojw, l, (size_t)C * F), N, F, C);
        profile_mark(pr, "matmul fcproj bwd");
        swiglu_backward(sb, sa, la.fch, N, F);
        profile_mark(pr, "swiglu bwd");
        matmul_backward(sa, g->fcw + (size_t)l * 2 * F * C, sb, la.ln2, layer_param(p->fcw, l, (size_t)2 * F * C), N, C, 2 * F);
        profile_mark(pr, "matmul fc bwd");
        rmsnorm_backward(a->dres, g->ln2w + (size_t)l * C, sa, la.res2, layer_param(p->ln2w, l, C), la.ln2_rstd, N, C);
        profile_mark(pr, "rmsnorm bwd");
        /* attention: res2 = res_in + attproj(attention(qkv(rmsnorm(res_in)))) */
        matmul_backward(sa, g->attprojw + (size_t)l * C * NAHD, a->dres, la.atty, layer_param(p->attprojw, l, (size_t)C * NAHD), N, (int)NAHD, C);
        profile_mark(pr, "matmul attproj bwd");
        attention_backward(sb, sa, la.qr, la.kr, la.softmax_saved, la.qkv, la.atty, &pe, B, T, d->HQ, d->KVH, d->HD);
        profile_mark(pr, "attention bwd");
        matmul_backward(sa, g->qkvw + (size_t)l * d->QKV * C, sb, la.ln1, layer_param(p->qkvw, l, (size_t)d->QKV * C), N, C, d->QKV);
        profile_mark(pr, "matmul qkv bwd");
        rmsnorm_backward(a->dres, g->ln1w + (size_t)l * C, sa, res_in, layer_param(p->ln1w, l, C), la.ln1_rstd, N, C);
        profile_mark(pr, "rmsnorm bwd");
    }
    encoder_backward(g->wte, a->dres, m->inputs, N, C);
    profile_mark(pr, "encoder bwd");
    m->lm_head_backward_done = 0;
    m->loss = -1.0;   /* logits now hold dlogits */
}

double model_update(Model *m, double lr, double beta1, double beta2, double eps, double weight_decay, double clip) {
    /* this process's range of the parameter array (all of it alone; ZeRO-1 with several, see dist_init) */
    size_t n = m->num_params, s0 = m->shard_start, s1 = m->shard_start + m->shard_len;
    if (s1 > n) s1 = n;
    if (s0 > s1) s0 = s1;
    if (m->adam_m == NULL) {
        m->adam_m = (floatM *)backend_malloc(m->shard_len * sizeof(floatM));
        m->adam_v = (floatM *)backend_malloc(m->shard_len * sizeof(floatM));
        backend_zero(m->adam_m, m->shard_len * sizeof(floatM));
        backend_zero(m->adam_v, m->shard_len * sizeof(floatM));
    }
    if (m->acts_memory == NULL) model_alloc_acts(m, 1, 1);
    profile_mark(m->profile, "host: update start");
    dist_reduce_scatter_grads(m);
    profile_mark(m->profile, "reduce-scatter grads");
    /* global gradient norm: the range's sum of squares, summed over the processes; frozen tensors have zero
       gradients */
    backend_zero(m->acts.norm, sizeof(floatM));
    global_norm_squared(m->acts.norm, m->grads_memory + s0, s1 - s0);
    dist_sum_device(m->dist, m->acts.norm, 1);
    profile_mark(m->profile, "grad norm");
    floatM norm2;
    backend_to_host(&norm2, m->acts.norm, sizeof(floatM));
    profile_mark(m->profile, "host: norm readback");
    double norm = sqrt((double)norm2);
    /* torch.nn.utils.clip_grad_norm_: coef = min(1, clip / (norm + 1e-6)) */
    double scale = 1.0;
    if (clip > 0.0) { scale = clip / (norm + 1e-6); if (scale > 1.0) scale = 1.0; }
    m->step++;
    size_t off = 0;
    for (int t = 0; t < NUM_PARAM_TENSORS; t++) {
        /* the part [a, b) of tensor t inside the range; master and moments are indexed from s0 */
        size_t a = off > s0 ? off : s0, b = off + m->param_sizes[t] < s1 ? off + m->param_sizes[t] : s1;
        if (!param_is_frozen(t) && b > a)
            adamw_update(m->params_memory + a, m->master + (a - s0), m->grads_memory + a, m->adam_m + (a - s0),
                         m->adam_v + (a - s0), b - a, lr, beta1, beta2, eps, param_is_norm(t) ? 0.0 : weight_decay,
                         scale, m->step);
        off += m->param_sizes[t];
    }
    profile_mark(m->profile, "adamw");
    dist_all_gather_params(m);
    profile_mark(m->profile, "all-gather params");
    return norm;
}

int model_set_noise(Model *m, int target, double sigma, uint64_t seed, char *err, size_t errlen) {
    if (target != NOISE_NONE && target != NOISE_REAL && target != NOISE_IMAG) { set_err(err, errlen, "unknown noise target %d", target); return -1; }
    if (target == NOISE_IMAG && !m->d.imag) {
        set_err(err, errlen, "noise on imaginary queries needs a RoPE++ model (ropepp_eh or ropepp_ec), not %s", pe_name(m->cfg.pe));
        return -1;
    }
    if (!(sigma >= 0.0 && sigma < 1e6)) { set_err(err, errlen, "noise sigma %g must be >= 0", sigma); return -1; }
    m->noise_target = target;
    m->noise_sigma = sigma;
    m->noise_seed = seed;
    return 0;
}

double model_flops_per_token(const Config *c, int T) {
    Dims d = config_dims(c);
    double C = c->dim, L = c->n_layers, F = c->ffn_dim, V = c->vocab_size;
    double matmul_params = L * ((double)d.QKV * C + C * d.NA * d.HD + 3.0 * F * C) + V * C;
    return 6.0 * matmul_params + 6.0 * L * d.NA * d.HD * (double)T;
}

static void floatX_to_float(float *dst, const floatX *src_host, size_t n) {
#if defined(ROPEPP_CUDA) && !defined(ROPEPP_FP32)
    for (size_t i = 0; i < n; i++) { uint16_t b; memcpy(&b, src_host + i, 2); uint32_t u = (uint32_t)b << 16; memcpy(dst + i, &u, 4); }
#else
    for (size_t i = 0; i < n; i++) dst[i] = (float)src_host[i];
#endif
}

float *backend_floatX_to_host(const floatX *src, size_t n) {
    floatX *tmp = (floatX *)mallocCheck(n * sizeof(floatX));
    float *out = (float *)mallocCheck(n * sizeof(float));
    backend_to_host(tmp, src, n * sizeof(floatX));
    floatX_to_float(out, tmp, n);
    free(tmp);
    return out;
}

void model_attention_probs(Model *m, int l, int t0, int t1, float *out) {
    /* p[b, a, t, j] = softmax_j(q_t . k_j / sqrt(HD) - m_a (t - j)), j <= t, as in attention_core_forward; computed
       where the activations are (attention_probs_forward), the rows copied into their places in out */
    int B = m->B, T = m->T, NA = m->d.NA;
    if (t0 < 0) t0 = 0;
    if (t1 > T) t1 = T;
    if (t1 <= t0) return;
    size_t nrows = (size_t)(t1 - t0), n = (size_t)B * NA * nrows * T;
    LayerActs la = layer_acts(m, l);
    float *rows = (float *)backend_malloc(n * sizeof(float));
    attention_probs_forward(rows, la.qr, la.kr, m->pe_alibi, B, T, NA, m->d.KVH, m->d.HD, t0, t1);
    float *host = (float *)mallocCheck(n * sizeof(float));
    backend_to_host(host, rows, n * sizeof(float));
    backend_free(rows);
    for (size_t ba = 0; ba < (size_t)B * NA; ba++)
        memcpy(out + (ba * T + (size_t)t0) * T, host + ba * nrows * T, nrows * T * sizeof(float));
    free(host);
}

void model_logits_row(Model *m, int b, int t, float *out) {
    int V = m->cfg.vocab_size;
    if (m->acts.logits == NULL) {
        fprintf(stderr, "error: model_logits_row: no logits (model_forward keeps them, model_forward_loss does not)\n");
        exit(1);
    }
    size_t off = ((size_t)b * m->T + t) * V;
    floatX *tmp = (floatX *)mallocCheck((size_t)V * sizeof(floatX));
    backend_to_host(tmp, m->acts.logits + off, (size_t)V * sizeof(floatX));
    floatX_to_float(out, tmp, (size_t)V);
    free(tmp);
}

/* the functions that read the whole master array or the whole moments: not on a sharded model (gather first) */
static void check_not_sharded(const Model *m, const char *what) {
    if (m->shard_start == 0 && m->shard_len >= m->num_params) return;
    fprintf(stderr, "error: %s needs the full optimizer state, but this process holds only its shard (call dist_gather_optimizer first)\n", what);
    exit(1);
}

void model_params_to_host(Model *m, double *out) {
    check_not_sharded(m, "model_params_to_host");
    floatM *tmp = (floatM *)mallocCheck(m->num_params * sizeof(floatM));
    backend_to_host(tmp, m->master, m->num_params * sizeof(floatM));
    for (size_t i = 0; i < m->num_params; i++) out[i] = (double)tmp[i];
    free(tmp);
}

void model_move_params(Model *m, floatX *params, floatX *grads) {
    backend_free(m->params_memory);
    backend_free(m->grads_memory);
    m->params_memory = params;
    m->grads_memory = grads;
    point_params(&m->params, m->params_memory, m->param_sizes);
    point_params(&m->grads, m->grads_memory, m->param_sizes);
}

void model_grads_to_host(Model *m, double *out) {
#if defined(ROPEPP_CUDA) && !defined(ROPEPP_FP32)
    float *g = backend_floatX_to_host(m->grads_memory, m->num_params);
    for (size_t i = 0; i < m->num_params; i++) out[i] = g[i];
    free(g);
#else
    floatX *tmp = (floatX *)mallocCheck(m->num_params * sizeof(floatX));
    backend_to_host(tmp, m->grads_memory, m->num_params * sizeof(floatX));
    for (size_t i = 0; i < m->num_params; i++) out[i] = (double)tmp[i];   /* exact in the double build */
    free(tmp);
#endif
}

/* ---- the launch identity and the NCCL id's rendezvous file (docs/FORMATS.md), plain C so that tests/test_dist.c
   runs them on the CPU */
#include <unistd.h>
int launch_identity(char *out, size_t n) {
    const char *own = getenv("ROPEPP_LAUNCH_ID"), *tr = getenv("TORCHELASTIC_RUN_ID"), *sj = getenv("SLURM_JOB_ID");
    const char *om = getenv("OMPI_MCA_ess_base_jobid"), *px = getenv("PMIX_NAMESPACE");
    const char *trc = getenv("TORCHELASTIC_RESTART_COUNT"), *ss = getenv("SLURM_STEP_ID"), *sr = getenv("SLURM_RESTART_COUNT");
    if (own != NULL && own[0]) snprintf(out, n, "ROPEPP_LAUNCH_ID %s", own);
    else if (tr != NULL && tr[0]) snprintf(out, n, "torchrun %s restart %s", tr, trc ? trc : "0");
    else if (sj != NULL && sj[0]) snprintf(out, n, "slurm %s step %s restart %s", sj, ss ? ss : "-", sr ? sr : "0");
    else if (om != NULL && om[0]) snprintf(out, n, "openmpi %s", om);
    else if (px != NULL && px[0]) snprintf(out, n, "pmix %s", px);
    else return -1;
    return 0;
}

enum { RDV_LAUNCH = 256 };
typedef struct { char magic[8]; int32_t world; int32_t bytes; char launch[RDV_LAUNCH]; } RendezvousHeader;

int rendezvous_id(const char *path, const char *launch, int rank, int world, void *id, size_t bytes, int timeout_ms,
                  char *err, size_t errlen) {
    RendezvousHeader h;
    memset(&h, 0, sizeof(h));
    memcpy(h.magic, "RPPNCCL1", 8);
    h.world = world;
    h.bytes = (int32_t)bytes;
    snprintf(h.launch, sizeof(h.launch), "%s", launch);
    if (rank == 0) {
        char tmp[4200];
        snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
        FILE *fp = fopen(tmp, "wb");
        if (fp == NULL || fwrite(&h, sizeof(h), 1, fp) != 1 || fwrite(id, bytes, 1, fp) != 1 || fclose(fp) != 0 || rename(tmp, path) != 0) {
            set_err(err, errlen, "rank 0: cannot write the NCCL id to '%s': %s", path, strerror(errno));
            return -1;
        }
        return 0;
    }
    unsigned char *buf = (unsigned char *)mallocCheck(sizeof(h) + bytes);
    RendezvousHeader seen;
    memset(&seen, 0, sizeof(seen));
    for (int waited_ms = 0;; waited_ms += 20) {
        FILE *fp = fopen(path, "rb");
        if (fp != NULL) {
            int whole = fread(buf, sizeof(h) + bytes, 1, fp) == 1;
            fclose(fp);
            if (whole) memcpy(&seen, buf, sizeof(seen));
            if (whole && memcmp(buf, &h, sizeof(h)) == 0) {   /* this launch's file (a stale one is waited past) */
                memcpy(id, buf + sizeof(h), bytes);
                free(buf);
                return 0;
            }
        }
        if (waited_ms >= timeout_ms) {
            seen.launch[RDV_LAUNCH - 1] = 0;
            set_err(err, errlen, "rank %d: no NCCL id of this launch (%s, %d processes) in '%s' after %.1f s%s%s%s; did rank 0 start, "
                    "and does every process see the path and the same launch identity?", rank, launch, world, path, timeout_ms / 1000.0,
                    seen.launch[0] ? " (the file there is of another launch: " : "", seen.launch, seen.launch[0] ? ")" : "");
            free(buf);
            return -1;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* ---- data parallelism, single process (the NCCL build's are in cuda/dist.cuh) */
#ifndef ROPEPP_NCCL
Dist *dist_init(void) {
    const char *names[2] = {"WORLD_SIZE", "OMPI_COMM_WORLD_SIZE"};
    for (int i = 0; i < 2; i++) {
        const char *w = getenv(names[i]);
        if (w != NULL && atoi(w) > 1) {
            fprintf(stderr, "error: launched as %s=%s processes, but this program was built without NCCL: it trains on one "
                            "device only\nHINT: build train_gpu where `make` finds NCCL (the line '✓ NCCL'; see README), or launch one process\n", names[i], w);
            exit(1);
        }
    }
    return NULL;
}
void dist_free(Dist *d) { (void)d; }
int dist_rank(const Dist *d) { (void)d; return 0; }
int dist_world_size(const Dist *d) { (void)d; return 1; }
/* one process: every sum over the processes is the value itself, every range is the whole array */
void dist_sum(Dist *d, double *x, int n) { (void)d; (void)x; (void)n; }
void dist_shard_model(Dist *d, Model *m) { (void)d; (void)m; }
void dist_gather_optimizer(Model *m) { (void)m; }
void dist_scatter_optimizer(Model *m) { (void)m; }
void dist_reduce_scatter_grads(Model *m) { (void)m; }
void dist_sum_device(Dist *d, floatM *x, size_t n) { (void)d; (void)x; (void)n; }
void dist_all_gather_params(Model *m) { (void)m; }
#endif

static const char *const sched_names[3] = {"constant", "wsd", "cosine"};
const char *schedule_name(int s) { return (s >= 0 && s < 3) ? sched_names[s] : "unknown"; }
int schedule_from_name(const char *name) {
    for (int i = 0; i < 3; i++) if (strcmp(name, sched_names[i]) == 0) return i;
    return -1;
}

double lr_lambda(int sched, int k, int warmup, int total, int decay) {
    /* docs/MATH.md, Learning-rate schedules (HF 4.51 semantics):
         constant_with_warmup:  k < W ? k / W : 1
         warmup_stable_decay:   k < W ? k / W : k < N - D ? 1 : k < N ? (1 + cos(pi (k - (N - D)) / D)) / 2 : 0
         cosine:                k < W ? k / W : max(0, (1 + cos(pi (k - W) / (N - W))) / 2) */
    if (k < warmup) return (double)k / (double)(warmup > 0 ? warmup : 1);
    if (sched == SCHED_CONSTANT) return 1.0;
    if (sched == SCHED_WSD) {
        int start = total - decay;
        if (k < start) return 1.0;
        if (k >= total) return 0.0;
        double progress = (double)(k - start) / (double)(decay > 0 ? decay : 1);
        return 0.5 * (1.0 + cos(M_PI * progress));
    }
    double progress = (double)(k - warmup) / (double)(total - warmup > 0 ? total - warmup : 1);
    double v = 0.5 * (1.0 + cos(M_PI * progress));
    return v > 0.0 ? v : 0.0;
}

static void alibi_slopes_pow2(double *out, int n) {
    /* flash-attn / ALiBi paper: m_h = (2^(-8/n))^(h+1), h = 0..n-1 */
    double start = pow(2.0, -8.0 / n);
    for (int h = 0; h < n; h++) out[h] = pow(start, h + 1);
}

void alibi_slopes(double *out, int n) {
    /* docs/MATH.md, ALiBi: a power of two uses the list above; otherwise c = 2^floor(log2 n): the list for c, then the
       even-indexed entries of the list for 2c, truncated to n - c. */
    int c = 1;
    while (c * 2 <= n) c *= 2;
    if (c == n) { alibi_slopes_pow2(out, n); return; }
    alibi_slopes_pow2(out, c);
    double *tmp = (double *)mallocCheck(sizeof(double) * 2 * c);
    alibi_slopes_pow2(tmp, 2 * c);
    for (int i = 0; i < n - c; i++) out[c + i] = tmp[2 * i];
    free(tmp);
}

/* ---------------------------------------------------------------------------------------------- checkpoints */

static void hdr_put_double(int32_t *h, int slot, double v) { memcpy(h + slot, &v, sizeof(double)); }
static double hdr_get_double(const int32_t *h, int slot) { double v; memcpy(&v, h + slot, sizeof(double)); return v; }
static void hdr_put_i64(int32_t *h, int slot, int64_t v) { memcpy(h + slot, &v, sizeof(int64_t)); }
static int64_t hdr_get_i64(const int32_t *h, int slot) { int64_t v; memcpy(&v, h + slot, sizeof(int64_t)); return v; }

static int file_size_of(FILE *fp, size_t *size) {
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || st.st_size < 0) return -1;
    *size = (size_t)st.st_size;
    return 0;
}

/* fopen(path, "rb") of a regular file; a folder or a missing file is an error naming `what` (a checkpoint, a
   shard...) with a way out. */
static FILE *fopen_file(const char *path, const char *what, const char *hint, char *err, size_t errlen) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "'%s' is a folder, not a %s file%s%s", path, what, hint[0] ? "; " : "", hint);
        return NULL;
    }
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) set_err(err, errlen, "cannot open %s '%s': %s%s%s", what, path, strerror(errno), hint[0] ? "; " : "", hint);
    return fp;
}

uint32_t crc32_update(uint32_t crc, const void *buf, size_t n) {
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t r = i;
        for (int k = 0; k < 8; k++) r = r & 1u ? 0xEDB88320u ^ (r >> 1) : r >> 1;
        table[i] = r;
    }
    const unsigned char *p = (const unsigned char *)buf;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}

/* A version 2 file's trailer against its bytes: the CRC-32 of bytes [0, size - 8), then magic. Reads the whole file;
   leaves fp just past the 1024-byte header. The checksum in *checksum. what: "checkpoint" or "state". */
static int trailer_check(FILE *fp, size_t fsize, int32_t magic, const char *path, const char *what, uint32_t *checksum,
                         char *err, size_t errlen) {
    if (fsize < 1024 + TRAILER_BYTES) {
        set_err(err, errlen, "%s: %s file of %zu bytes is shorter than its header and trailer (truncated); use an earlier checkpoint", path, what, fsize);
        return -1;
    }
    size_t chunk = (size_t)1 << 20, left = fsize - TRAILER_BYTES;
    unsigned char *buf = (unsigned char *)mallocCheck(chunk);
    uint32_t crc = 0;
    int ok = fseek(fp, 0, SEEK_SET) == 0;
    while (ok && left > 0) {
        size_t k = left < chunk ? left : chunk;
        ok = fread(buf, 1, k, fp) == k;
        crc = crc32_update(crc, buf, k);
        left -= k;
    }
    int32_t t[2];
    ok = ok && fread(t, sizeof(t), 1, fp) == 1 && fseek(fp, 1024, SEEK_SET) == 0;
    free(buf);
    if (!ok) { set_err(err, errlen, "%s: read error: %s", path, strerror(errno)); return -1; }
    if ((uint32_t)t[0] != crc || t[1] != magic) {
        set_err(err, errlen, "%s is corrupt: its bytes do not match the CRC-32 in its trailer (stored %08x, computed %08x%s), "
                "so it was damaged or truncated after it was written; use an earlier checkpoint or a backup copy",
                path, (uint32_t)t[0], crc, t[1] != magic ? ", end marker damaged" : "");
        return -1;
    }
    *checksum = crc;
    return 0;
}

int checkpoint_parse_header(const int32_t *h, size_t file_size, Config *c, int *bytes_per_param,
                            size_t *num_params, char *err, size_t errlen) {
    if (h[0] != CKPT_MAGIC) {
        set_err(err, errlen, "not a ropepp checkpoint, or a corrupt one (magic %d, expected %d); pass a .ckpt written by ./train", h[0], CKPT_MAGIC);
        return -1;
    }
    if (h[1] != 1 && h[1] != CKPT_VERSION) {
        set_err(err, errlen, "checkpoint version %d is not supported (this build reads versions 1 and %d): written by a newer ./train, or the file is corrupt", h[1], CKPT_VERSION);
        return -1;
    }
    if (h[2] != 4 && h[2] != 8) { set_err(err, errlen, "checkpoint stores %d bytes per parameter; only 4 (fp32) and 8 (fp64) exist", h[2]); return -1; }
    Config k;
    memset(&k, 0, sizeof(k));
    k.vocab_size = h[3]; k.dim = h[4]; k.n_layers = h[5]; k.n_heads = h[6]; k.n_kv_heads = h[7]; k.ffn_dim = h[8];
    k.pe = h[9]; k.train_seq = h[10]; k.yarn_orig_len = h[11]; k.tokenizer = h[12]; k.init = h[15];
    k.rope_base = hdr_get_double(h, 32); k.rotary_frac = hdr_get_double(h, 34); k.pi_factor = hdr_get_double(h, 36);
    k.yarn_factor = hdr_get_double(h, 38); k.ntk_factor = hdr_get_double(h, 40); k.norm_eps = hdr_get_double(h, 42);
    if (k.pe < 0 || k.pe >= PE_COUNT) {
        set_err(err, errlen, "checkpoint names unknown position embedding id %d; it was written by a newer or foreign program", k.pe);
        return -1;
    }
    k.rotary_frac = config_rotary_frac(&k);   /* partial only (docs/FORMATS.md); older files hold 0.25 here */
    char why[200];
    if (config_validate(&k, why, sizeof(why)) != 0) { set_err(err, errlen, "checkpoint config is invalid: %s", why); return -1; }
    Dims d = config_dims(&k);
    if (h[13] != d.fope_m || h[14] != d.fope_p) {
        set_err(err, errlen, "checkpoint FoPE basis (M %d, P %d) does not match its config (M %d, P %d)", h[13], h[14], d.fope_m, d.fope_p);
        return -1;
    }
    if (h[18] != NUM_PARAM_TENSORS) { set_err(err, errlen, "checkpoint has %d tensors, expected %d", h[18], NUM_PARAM_TENSORS); return -1; }
    size_t sizes[NUM_PARAM_TENSORS], n = 0;
    param_sizes(&k, &d, sizes);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) n += sizes[i];
    if (hdr_get_i64(h, 16) != (int64_t)n) {
        set_err(err, errlen, "checkpoint says %lld parameters but its config needs %zu", (long long)hdr_get_i64(h, 16), n);
        return -1;
    }
    size_t want = 1024 + n * (size_t)h[2] + (h[1] >= 2 ? TRAILER_BYTES : 0);
    if (file_size != want) {
        set_err(err, errlen, "checkpoint is %zu bytes but its header needs %zu (truncated or corrupt); use an earlier checkpoint", file_size, want);
        return -1;
    }
    *c = k;
    *bytes_per_param = h[2];
    *num_params = n;
    return 0;
}

/* A model file opened and its 1024-byte header read into h (not yet checked); its size in *fsize. NULL with err. */
static FILE *checkpoint_open(const char *path, int32_t *h, size_t *fsize, char *err, size_t errlen) {
    FILE *fp = fopen_file(path, "checkpoint", "", err, errlen);
    if (fp == NULL) return NULL;
    if (file_size_of(fp, fsize) != 0 || *fsize < 1024 || fread(h, 1024, 1, fp) != 1) {
        set_err(err, errlen, "checkpoint '%s' is shorter than its 1024-byte header (truncated)", path);
        fclose(fp);
        return NULL;
    }
    return fp;
}

int checkpoint_read(const char *path, Config *c, double **params, size_t *num_params, char *err, size_t errlen) {
    int32_t h[256];
    size_t fsize = 0;
    FILE *fp = checkpoint_open(path, h, &fsize, err, errlen);
    if (fp == NULL) return -1;
    int bpp;
    uint32_t crc;
    char why[300];
    if (h[0] == CKPT_MAGIC && h[1] == CKPT_VERSION && trailer_check(fp, fsize, CKPT_MAGIC, path, "checkpoint", &crc, err, errlen) != 0) {
        fclose(fp);
        return -1;
    }
    if (checkpoint_parse_header(h, fsize, c, &bpp, num_params, why, sizeof(why)) != 0) {
        set_err(err, errlen, "%s: %s", path, why);
        fclose(fp);
        return -1;
    }
    size_t n = *num_params;
    double *p = (double *)mallocCheck(n * sizeof(double));
    int ok = 1;
    if (bpp == 8) {
        ok = fread(p, sizeof(double), n, fp) == n;
    } else {
        float *tmp = (float *)mallocCheck(n * sizeof(float));
        ok = fread(tmp, sizeof(float), n, fp) == n;
        for (size_t i = 0; ok && i < n; i++) p[i] = tmp[i];
        free(tmp);
    }
    fclose(fp);
    for (size_t i = 0; ok && i < n; i++) if (!isfinite(p[i])) {
        set_err(err, errlen, "%s: parameter %zu is not finite (the run diverged before this was written); use an earlier checkpoint", path, i);
        free(p);
        return -1;
    }
    if (!ok) { set_err(err, errlen, "%s: short read of parameters", path); free(p); return -1; }
    *params = p;
    return 0;
}

/* Write to path.tmp, flush to disk, then rename over path: a crash leaves the old file intact. */
static FILE *atomic_open(const char *path, char *tmp, size_t tmplen, char *err, size_t errlen) {
    snprintf(tmp, tmplen, "%s.tmp", path);
    FILE *fp = fopen(tmp, "wb");
    if (fp == NULL) set_err(err, errlen, "cannot write '%s': %s", tmp, strerror(errno));
    return fp;
}

#include <unistd.h>
static int atomic_close(FILE *fp, const char *tmp, const char *path, char *err, size_t errlen) {
    int bad = fflush(fp) != 0 || fsync(fileno(fp)) != 0;
    bad |= fclose(fp) != 0;
    if (bad) { set_err(err, errlen, "writing '%s' failed: %s (disk full?)", tmp, strerror(errno)); remove(tmp); return -1; }
    if (rename(tmp, path) != 0) { set_err(err, errlen, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno)); return -1; }
    return 0;
}

int checkpoint_write(const char *path, const Config *c, const double *params, size_t num_params,
                     int bytes_per_param, char *err, size_t errlen) {
    /* refuse what no reader would accept, instead of writing it */
    if (bytes_per_param != 4 && bytes_per_param != 8) { set_err(err, errlen, "cannot write %d bytes per parameter; only 4 (fp32) and 8 (fp64) exist", bytes_per_param); return -1; }
    char why[256];
    if (config_validate(c, why, sizeof(why)) != 0) { set_err(err, errlen, "refusing to write an invalid config: %s", why); return -1; }
    Dims d = config_dims(c);
    size_t sizes[NUM_PARAM_TENSORS], want = 0;
    param_sizes(c, &d, sizes);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) want += sizes[i];
    if (num_params != want) { set_err(err, errlen, "%zu parameters given but the config needs %zu", num_params, want); return -1; }
    int32_t h[256];
    memset(h, 0, sizeof(h));
    h[0] = CKPT_MAGIC; h[1] = CKPT_VERSION; h[2] = bytes_per_param;
    h[3] = c->vocab_size; h[4] = c->dim; h[5] = c->n_layers; h[6] = c->n_heads; h[7] = c->n_kv_heads;
    h[8] = c->ffn_dim; h[9] = c->pe; h[10] = c->train_seq; h[11] = c->yarn_orig_len; h[12] = c->tokenizer;
    h[13] = d.fope_m; h[14] = d.fope_p; h[15] = c->init; h[18] = NUM_PARAM_TENSORS;
    hdr_put_i64(h, 16, (int64_t)num_params);
    hdr_put_double(h, 32, c->rope_base); hdr_put_double(h, 34, config_rotary_frac(c)); hdr_put_double(h, 36, c->pi_factor);
    hdr_put_double(h, 38, c->yarn_factor); hdr_put_double(h, 40, c->ntk_factor); hdr_put_double(h, 42, c->norm_eps);
    char tmp[4096];
    FILE *fp = atomic_open(path, tmp, sizeof(tmp), err, errlen);
    if (fp == NULL) return -1;
    int ok = fwrite(h, sizeof(h), 1, fp) == 1;
    uint32_t crc = crc32_update(0, h, sizeof(h));
    if (bytes_per_param == 8) {
        ok = ok && fwrite(params, sizeof(double), num_params, fp) == num_params;
        crc = crc32_update(crc, params, num_params * sizeof(double));
    } else {
        float *f = (float *)mallocCheck(num_params * sizeof(float));
        for (size_t i = 0; i < num_params; i++) f[i] = (float)params[i];
        ok = ok && fwrite(f, sizeof(float), num_params, fp) == num_params;
        crc = crc32_update(crc, f, num_params * sizeof(float));
        free(f);
    }
    int32_t trailer[2] = {(int32_t)crc, CKPT_MAGIC};
    ok = ok && fwrite(trailer, sizeof(trailer), 1, fp) == 1;
    if (!ok) { set_err(err, errlen, "writing '%s' failed: %s (disk full?)", tmp, strerror(errno)); fclose(fp); remove(tmp); return -1; }
    return atomic_close(fp, tmp, path, err, errlen);
}

#include <dirent.h>
static int step_ascending(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return x < y ? -1 : x > y;
}

int64_t checkpoint_list(const char *dir, int require_state, int **steps) {
    *steps = NULL;
    DIR *d = opendir(dir);
    if (d == NULL) return 0;
    int64_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        /* model_ and 8 or more digits, as ckpt_path writes them: the name must come back from the step */
        const char *p = e->d_name;
        if (strncmp(p, "model_", 6) != 0 || !isdigit((unsigned char)p[6])) continue;
        long long step = 0;
        int digits = 0;
        for (p += 6; isdigit((unsigned char)*p) && digits < 11; p++, digits++) step = step * 10 + (*p - '0');
        char name[64];
        if (step > 0x7fffffff || strcmp(p, ".ckpt") != 0) continue;
        snprintf(name, sizeof(name), "model_%08d.ckpt", (int)step);
        if (strcmp(name, e->d_name) != 0) continue;
        if (require_state) {
            char state[4200];
            struct stat st;
            snprintf(state, sizeof(state), "%s/model_%08d.state", dir, (int)step);
            if (stat(state, &st) != 0) continue;
        }
        if (n == cap) {   /* grow by doubling */
            cap = cap ? 2 * cap : 64;
            int *grown = (int *)mallocCheck((size_t)cap * sizeof(int));
            if (n > 0) memcpy(grown, *steps, (size_t)n * sizeof(int));
            free(*steps);
            *steps = grown;
        }
        (*steps)[n++] = (int)step;
    }
    closedir(d);
    if (n > 0) qsort(*steps, (size_t)n, sizeof(int), step_ascending);
    return n;
}

int checkpoint_newest(const char *dir, int require_state) {
    int *steps;
    int64_t n = checkpoint_list(dir, require_state, &steps);
    int newest = n > 0 ? steps[n - 1] : -1;
    free(steps);
    return newest;
}

int model_save(Model *m, const char *path, char *err, size_t errlen) {
    double *p = (double *)mallocCheck(m->num_params * sizeof(double));
    model_params_to_host(m, p);
    int r = checkpoint_write(path, &m->cfg, p, m->num_params, (int)sizeof(floatM), err, errlen);
    free(p);
    return r;
}

int model_load(Model *m, const char *path, char *err, size_t errlen) {
    Config c;
    double *p = NULL;
    size_t n;
    if (checkpoint_read(path, &c, &p, &n, err, errlen) != 0) return -1;
    model_init_from(m, &c, p);
    free(p);
    return 0;
}

int checkpoint_checksum(const char *path, uint32_t *checksum, char *err, size_t errlen) {
    int32_t h[256];
    size_t fsize = 0;
    FILE *fp = checkpoint_open(path, h, &fsize, err, errlen);
    if (fp == NULL) return -1;
    int r = 0;
    *checksum = 0;
    if (h[0] != CKPT_MAGIC || (h[1] != 1 && h[1] != CKPT_VERSION)) {
        set_err(err, errlen, "%s: not a ropepp checkpoint of version 1 or %d, or a corrupt one (magic %d, version %d)", path, CKPT_VERSION, h[0], h[1]);
        r = -1;
    } else if (h[1] == CKPT_VERSION) {
        r = trailer_check(fp, fsize, CKPT_MAGIC, path, "checkpoint", checksum, err, errlen);
    }
    fclose(fp);
    return r;
}

/* The AdamW moments from the device to fp, added to *crc. */
static int write_moments(FILE *fp, const floatM *dev, size_t n, uint32_t *crc) {
    floatM *tmp = (floatM *)mallocCheck(n * sizeof(floatM));
    backend_to_host(tmp, dev, n * sizeof(floatM));
    int ok = fwrite(tmp, sizeof(floatM), n, fp) == n;
    *crc = crc32_update(*crc, tmp, n * sizeof(floatM));
    free(tmp);
    return ok;
}

int state_write(Model *m, const TrainState *s, const char *path, char *err, size_t errlen) {
    check_not_sharded(m, "state_write");
    int32_t h[256];
    memset(h, 0, sizeof(h));
    h[0] = STATE_MAGIC; h[1] = STATE_VERSION; h[2] = (int)sizeof(floatM); h[3] = s->step;
    hdr_put_i64(h, 4, (int64_t)m->num_params); hdr_put_i64(h, 6, s->shard); hdr_put_i64(h, 8, s->pos);
    memcpy(h + 10, &s->rng, sizeof(uint64_t));
    h[12] = m->adam_m != NULL;
    h[14] = (int32_t)s->ckpt_checksum;
    char tmp[4096];
    FILE *fp = atomic_open(path, tmp, sizeof(tmp), err, errlen);
    if (fp == NULL) return -1;
    int ok = fwrite(h, sizeof(h), 1, fp) == 1;
    uint32_t crc = crc32_update(0, h, sizeof(h));
    if (m->adam_m != NULL) ok = ok && write_moments(fp, m->adam_m, m->num_params, &crc) && write_moments(fp, m->adam_v, m->num_params, &crc);
    int32_t trailer[2] = {(int32_t)crc, STATE_MAGIC};
    ok = ok && fwrite(trailer, sizeof(trailer), 1, fp) == 1;
    if (!ok) { set_err(err, errlen, "writing '%s' failed (disk full?)", tmp); fclose(fp); remove(tmp); return -1; }
    return atomic_close(fp, tmp, path, err, errlen);
}

int state_read(Model *m, TrainState *s, const char *path, char *err, size_t errlen) {
    check_not_sharded(m, "state_read");
    FILE *fp = fopen_file(path, "state", "", err, errlen);
    if (fp == NULL) return -1;
    int32_t h[256];
    size_t fsize = 0;
    if (file_size_of(fp, &fsize) != 0 || fsize < sizeof(h) || fread(h, sizeof(h), 1, fp) != 1) {
        set_err(err, errlen, "state file '%s' is shorter than its header (truncated)", path); fclose(fp); return -1;
    }
    const char *bad = NULL;
    uint32_t crc = 0;
    if (h[0] == STATE_MAGIC && h[1] == STATE_VERSION && trailer_check(fp, fsize, STATE_MAGIC, path, "state", &crc, err, errlen) != 0) {
        fclose(fp);
        return -1;
    }
    size_t trailer = h[1] == STATE_VERSION ? TRAILER_BYTES : 0;
    if (h[0] != STATE_MAGIC) bad = "wrong magic (not a ropepp state file, or a corrupt one)";
    else if (h[1] != 1 && h[1] != STATE_VERSION) bad = "unsupported version (written by a newer ./train, or corrupt)";
    else if (h[2] != (int)sizeof(floatM)) bad = "stored with another precision than this build's master weights";
    else if (hdr_get_i64(h, 4) != (int64_t)m->num_params) bad = "parameter count does not match the model file";
    else if (h[3] < 0 || hdr_get_i64(h, 6) < 0 || hdr_get_i64(h, 8) < 0) bad = "negative step or loader position";
    else if (h[12] != 0 && h[12] != 1) bad = "corrupt moments flag";
    else if (fsize != 1024 + (h[12] ? 2 * m->num_params * sizeof(floatM) : 0) + trailer) bad = "file size does not match its header (truncated)";
    if (bad != NULL) { set_err(err, errlen, "%s: %s; resume from an earlier checkpoint or start fresh", path, bad); fclose(fp); return -1; }
    s->step = h[3]; s->shard = hdr_get_i64(h, 6); s->pos = hdr_get_i64(h, 8);
    memcpy(&s->rng, h + 10, sizeof(uint64_t));
    s->ckpt_checksum = h[1] == STATE_VERSION ? (uint32_t)h[14] : 0;
    m->step = s->step;
    if (h[12]) {
        size_t n = m->num_params;
        floatM *tmp = (floatM *)mallocCheck(n * sizeof(floatM));
        if (m->adam_m == NULL) { m->adam_m = (floatM *)backend_malloc(n * sizeof(floatM)); m->adam_v = (floatM *)backend_malloc(n * sizeof(floatM)); }
        int ok = fread(tmp, sizeof(floatM), n, fp) == n;
        if (ok) backend_from_host(m->adam_m, tmp, n * sizeof(floatM));
        ok = ok && fread(tmp, sizeof(floatM), n, fp) == n;
        if (ok) backend_from_host(m->adam_v, tmp, n * sizeof(floatM));
        free(tmp);
        if (!ok) { set_err(err, errlen, "%s: short read of AdamW moments", path); fclose(fp); return -1; }
    }
    fclose(fp);
    return 0;
}

static int name_desc(const void *a, const void *b) { return strcmp(*(const char *const *)b, *(const char *const *)a); }

/* Why the run folder dir has no checkpoint, for the error: which run it is (runs/latest is a link), whether it is
   likely still training (its train.jsonl written in the last minute) and up to 3 other runs beside it that have
   checkpoints (newest names first: run names end in their date and time). Into out. */
static void no_checkpoint_why(const char *dir, char *out, size_t n) {
    char link[4096], parent[4096];
    ssize_t ln = readlink(dir, link, sizeof(link) - 1);   /* runs/latest -> the run's name */
    link[ln > 0 ? ln : 0] = '\0';
    snprintf(parent, sizeof(parent), "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash != NULL) *slash = '\0'; else snprintf(parent, sizeof(parent), ".");
    const char *base = ln > 0 ? link : (slash != NULL ? dir + (slash - parent) + 1 : dir);
    size_t len = (size_t)snprintf(out, n, " (the run %s", base);
    char log[4200];
    struct stat st, self;
    if (stat(dir, &self) != 0) memset(&self, 0, sizeof(self));
    snprintf(log, sizeof(log), "%s/train.jsonl", dir);
    double ago = stat(log, &st) == 0 ? difftime(time(NULL), st.st_mtime) : -1.0;
    if (ago >= 0 && ago < 60)
        len += (size_t)snprintf(out + len, n - len, ": its train.jsonl was written %.0f s ago, so it is likely still training; it writes a checkpoint every --ckpt-every steps (settings.txt), at the end and on Ctrl-C)", ago);
    else len += (size_t)snprintf(out + len, n - len, ": no checkpoint was written; a run writes one every --ckpt-every steps, at the end and on Ctrl-C)");
    DIR *d = opendir(parent);
    if (d == NULL || len >= n) { if (d) closedir(d); return; }
    char *names[256];
    int k = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && k < 256) {
        char sub[4400];
        snprintf(sub, sizeof(sub), "%s/%s", parent, e->d_name);
        if (e->d_name[0] == '.' || lstat(sub, &st) != 0 || !S_ISDIR(st.st_mode)) continue;   /* links (latest) left out */
        if ((st.st_dev == self.st_dev && st.st_ino == self.st_ino) || checkpoint_newest(sub, 0) < 0) continue;
        names[k] = (char *)mallocCheck(strlen(sub) + 1);
        strcpy(names[k++], sub);
    }
    closedir(d);
    qsort(names, (size_t)k, sizeof(names[0]), name_desc);
    if (k > 0) len += (size_t)snprintf(out + len, n - len, "; runs with checkpoints:");
    for (int i = 0; i < k; i++) {
        if (i < 3 && len < n) len += (size_t)snprintf(out + len, n - len, "%s %s", i ? "," : "", names[i]);
        free(names[i]);
    }
    if (k > 3 && len < n) snprintf(out + len, n - len, " and %d more", k - 3);
}

int checkpoint_resolve(const char *path, const char *flag, char *out, size_t outlen, char *err, size_t errlen) {
    const char *p = path != NULL ? path : RUN_LATEST;
    struct stat st;
    if (path_check(p, flag, err, errlen) != 0) return -1;
    if (stat(p, &st) != 0) {
        if (path == NULL)
            set_err(err, errlen, "no run to read: %s does not exist; train one with ./train (it writes runs/<pe>-<date>-<time>), or pass %s FILE or a run folder", RUN_LATEST, flag);
        else
            set_err(err, errlen, "cannot open checkpoint '%s': %s; pass %s a .ckpt file or a run folder (ls runs/)", p,
                    strerror(errno), flag);
        return -1;
    }
    int newest = S_ISDIR(st.st_mode) ? checkpoint_newest(p, 0) : 0;
    if (newest < 0) {
        char why[1200];
        no_checkpoint_why(p, why, sizeof(why));
        set_err(err, errlen, "no checkpoint (model_*.ckpt) in the folder '%s'%s; pass a run folder that has one, or a checkpoint file: %s DIR/model_NNNNNNNN.ckpt", p, why, flag);
        return -1;
    }
    int len = S_ISDIR(st.st_mode) ? snprintf(out, outlen, "%s/model_%08d.ckpt", p, newest) : snprintf(out, outlen, "%s", p);
    if (len < 0 || (size_t)len >= outlen) { set_err(err, errlen, "%s: the checkpoint's path is %d characters long, more than the %zu this program takes", flag, len, outlen - 1); return -1; }
    return 0;
}

int path_check(const char *path, const char *flag, char *err, size_t errlen) {
    size_t len = strlen(path);
    if (len <= PATH_LEN_MAX) return 0;
    set_err(err, errlen, "%s: the path is %zu characters long; paths up to %d are taken (room for the file names added to it): "
            "pick a shorter one (a symlink to the folder, or a relative path)", flag, len, (int)PATH_LEN_MAX);
    return -1;
}

/* ---- settings (docs/SETTINGS.md holds this table in words; tests/test_settings.c checks the two agree) */
const char *const init_names[] = {"torch_default", "hf", NULL};

const SettingRule config_rules[] = {
    /* flag               type offset                              resume, init-from, infer/eval */
    {"--pe",              'i', offsetof(Config, pe),               {'r', 'r', '-'}, NULL},
    {"--vocab",           'i', offsetof(Config, vocab_size),       {'r', 'r', '-'}, NULL},
    {"--dim",             'i', offsetof(Config, dim),              {'r', 'r', '-'}, NULL},
    {"--layers",          'i', offsetof(Config, n_layers),         {'r', 'r', '-'}, NULL},
    {"--heads",           'i', offsetof(Config, n_heads),          {'r', 'r', '-'}, NULL},
    {"--kv-heads",        'i', offsetof(Config, n_kv_heads),       {'r', 'r', '-'}, NULL},
    {"--ffn",             'i', offsetof(Config, ffn_dim),          {'r', 'r', '-'}, NULL},
    {"--init",            'i', offsetof(Config, init),             {'r', 'r', '-'}, init_names},
    {"--seq",             'i', offsetof(Config, train_seq),        {'r', 'a', '-'}, NULL},
    {"--rope-base",       'd', offsetof(Config, rope_base),        {'r', 'a', '-'}, NULL},
    {"--rotary-frac",     'd', offsetof(Config, rotary_frac),      {'r', 'a', '-'}, NULL},
    {"--pi-factor",       'd', offsetof(Config, pi_factor),        {'r', 'a', 'a'}, NULL},
    {"--yarn-factor",     'd', offsetof(Config, yarn_factor),      {'r', 'a', 'a'}, NULL},
    {"--yarn-orig-len",   'i', offsetof(Config, yarn_orig_len),    {'r', 'a', '-'}, NULL},
    {"--ntk-factor",      'd', offsetof(Config, ntk_factor),       {'r', 'a', 'a'}, NULL},
    {"--norm-eps",        'd', offsetof(Config, norm_eps),         {'r', 'a', '-'}, NULL},
};
const int config_rule_count = (int)(sizeof(config_rules) / sizeof(config_rules[0]));

int settings_find(const SettingRule *rules, int n, const char *flag) {
    for (int i = 0; i < n; i++) if (strcmp(rules[i].flag, flag) == 0) return i;
    return -1;
}

/* a field as the user writes it: the PE's name for --pe, a choice's name (the rule's names), the shortest decimal
   that reads back the same double */
static void setting_text(char *out, size_t n, const void *base, const SettingRule *r) {
    const char *p = (const char *)base + r->offset;
    if (r->type == 'i') {
        int v;
        memcpy(&v, p, sizeof(v));
        int n_names = 0;
        while (r->names != NULL && r->names[n_names] != NULL) n_names++;
        if (strcmp(r->flag, "--pe") == 0) snprintf(out, n, "%s", pe_name(v));
        else if (v >= 0 && v < n_names) snprintf(out, n, "%s", r->names[v]);
        else snprintf(out, n, "%d", v);
    }
    else if (r->type == 'd') {
        double v;
        memcpy(&v, p, sizeof(v));
        snprintf(out, n, "%.15g", v);
        if (strtod(out, NULL) != v) snprintf(out, n, "%.17g", v);
    }
    else if (r->type == 'u') { uint64_t v; memcpy(&v, p, sizeof(v)); snprintf(out, n, "%llu", (unsigned long long)v); }
    else { const char *v; memcpy(&v, p, sizeof(v)); snprintf(out, n, "'%s'", v ? v : ""); }
}

int settings_apply(void *stored, const void *flags, uint64_t given, const SettingRule *rules, int n, int use,
                   const char *what, char *err, size_t errlen) {
    for (int i = 0; i < n && i < 64; i++) {
        if (!(given >> i & 1u)) continue;
        const SettingRule *r = &rules[i];
        char *dst = (char *)stored + r->offset;
        const char *src = (const char *)flags + r->offset;
        size_t size = r->type == 'i' ? sizeof(int) : r->type == 'd' ? sizeof(double) : r->type == 'u' ? sizeof(uint64_t) : sizeof(char *);
        int same;
        if (r->type == 's') {
            const char *a, *b;
            memcpy(&a, dst, sizeof(a)); memcpy(&b, src, sizeof(b));
            same = strcmp(a ? a : "", b ? b : "") == 0;
        } else if (r->type == 'd') {
            double a, b;
            memcpy(&a, dst, sizeof(a)); memcpy(&b, src, sizeof(b));
            same = a == b;
        } else {
            same = memcmp(dst, src, size) == 0;
        }
        if (r->rule[use] == 'a') { memcpy(dst, src, size); continue; }
        if (same) continue;
        char a[256], b[256];
        setting_text(a, sizeof(a), stored, r);
        setting_text(b, sizeof(b), flags, r);
        static const char *const hints[USE_COUNT] = {
            "a resumed run keeps it; drop the flag, or start a new run from these weights with --init-from",
            "the weights fix it; drop the flag, or train a new model without --init-from",
            "this program cannot change it"};
        set_err(err, errlen, "%s %s differs from %s (%s there); %s (docs/SETTINGS.md)", r->flag, b, what, a, hints[use]);
        return -1;
    }
    return 0;
}

static void settings_escape(FILE *fp, const char *v) {
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '\\') fputs("\\\\", fp);
        else if (*p == '\n') fputs("\\n", fp);
        else if (*p == '\t') fputs("\\t", fp);
        else if (*p < 32 || *p == 127) fprintf(fp, "\\x%02x", *p);
        else fputc(*p, fp);
    }
}

int settings_write(const char *path, const char *const *flags, const char *const *values, int n, char *err, size_t errlen) {
    char tmp[4200];
    FILE *fp = atomic_open(path, tmp, sizeof(tmp), err, errlen);
    if (fp == NULL) return -1;
    for (int i = 0; i < n; i++) {
        fputs(flags[i], fp);
        fputc(' ', fp);
        settings_escape(fp, values[i]);
        fputc('\n', fp);
    }
    return atomic_close(fp, tmp, path, err, errlen);
}

void settings_free(char **flags, char **values, int n) {
    for (int i = 0; i < n; i++) { free(flags[i]); free(values[i]); }
    free(flags);
    free(values);
}

int settings_read(const char *path, char ***flags_out, char ***values_out, int *n_out, char *err, size_t errlen) {
    FILE *fp = fopen_file(path, "settings", "", err, errlen);
    if (fp == NULL) return -1;
    int cap = 64, n = 0;
    char **flags = (char **)mallocCheck(cap * sizeof(char *)), **values = (char **)mallocCheck(cap * sizeof(char *));
    char line[8192];
    int lineno = 0;
    while (fgets(line, sizeof(line), fp) != NULL) {
        lineno++;
        size_t len = strlen(line);
        char *sp = strchr(line, ' ');
        if (len == 0 || line[len - 1] != '\n' || strncmp(line, "--", 2) != 0 || sp == NULL) {
            set_err(err, errlen, "%s line %d is not `--flag value` (truncated or edited?)", path, lineno);
            fclose(fp); settings_free(flags, values, n);
            return -1;
        }
        line[len - 1] = '\0';
        *sp = '\0';
        char *v = (char *)mallocCheck(strlen(sp + 1) + 1), *w = v;
        for (const char *q = sp + 1; *q; q++) {
            if (*q != '\\') { *w++ = *q; continue; }
            q++;
            if (*q == 'n') *w++ = '\n';
            else if (*q == 't') *w++ = '\t';
            else if (*q == '\\') *w++ = '\\';
            else if (*q == 'x' && isxdigit((unsigned char)q[1]) && isxdigit((unsigned char)q[2])) {
                char hex[3] = {q[1], q[2], 0};
                *w++ = (char)strtol(hex, NULL, 16);
                q += 2;
            } else {
                set_err(err, errlen, "%s line %d: bad escape in the value of %s", path, lineno, line);
                free(v); fclose(fp); settings_free(flags, values, n);
                return -1;
            }
        }
        *w = '\0';
        if (n == cap) {
            cap *= 2;
            flags = (char **)realloc(flags, cap * sizeof(char *));
            values = (char **)realloc(values, cap * sizeof(char *));
            if (flags == NULL || values == NULL) { fprintf(stderr, "error: out of memory\n"); exit(1); }
        }
        flags[n] = strdup(line);
        values[n] = v;
        n++;
    }
    fclose(fp);
    *flags_out = flags;
    *values_out = values;
    *n_out = n;
    return 0;
}

/* ---------------------------------------------------------------------------------------------- 4. data */

int shard_parse_header(const int32_t *h, size_t file_size, size_t *ntok, char *err, size_t errlen) {
    int width;
    if (h[0] == SHARD_MAGIC_U16) width = 2;
    else if (h[0] == SHARD_MAGIC_U32) width = 4;
    else {
        set_err(err, errlen, "not a token shard (magic %d; expected %d for uint16 or %d for uint32 tokens); make shards with data/text2shards", h[0], SHARD_MAGIC_U16, SHARD_MAGIC_U32);
        return -1;
    }
    if (h[1] != SHARD_VERSION) { set_err(err, errlen, "shard version %d is not supported (expected %d)", h[1], SHARD_VERSION); return -1; }
    if (h[2] < 0) { set_err(err, errlen, "shard token count %d is negative (corrupt header)", h[2]); return -1; }
    size_t want = 1024 + (size_t)(uint32_t)h[2] * width;
    if (file_size != want) {
        set_err(err, errlen, "shard is %zu bytes but its header promises %d tokens (%zu bytes): truncated or corrupt; regenerate it", file_size, h[2], want);
        return -1;
    }
    *ntok = (size_t)(uint32_t)h[2];
    return width;
}

int shard_write(const char *path, const int *tokens, size_t n, int bytes_per_token, char *err, size_t errlen) {
    if (bytes_per_token != 2 && bytes_per_token != 4) { set_err(err, errlen, "bytes per token %d is not 2 (uint16) or 4 (uint32)", bytes_per_token); return -1; }
    if (n > 0x7fffffffu) { set_err(err, errlen, "%zu tokens do not fit one shard (max 2^31-1); split the input", n); return -1; }
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (bytes_per_token == 2 && tokens[i] > 65535)) {
            set_err(err, errlen, "token %d at position %zu does not fit a uint%d shard; %s", tokens[i], i, 8 * bytes_per_token,
                    tokens[i] < 0 ? "token ids must be >= 0" : "write uint32 tokens (bytes_per_token 4, text2shards --u32)");
            return -1;
        }
    int32_t h[256];
    memset(h, 0, sizeof(h));
    h[0] = bytes_per_token == 2 ? SHARD_MAGIC_U16 : SHARD_MAGIC_U32;
    h[1] = SHARD_VERSION;
    h[2] = (int32_t)n;
    char tmp[4096];
    FILE *fp = atomic_open(path, tmp, sizeof(tmp), err, errlen);
    if (fp == NULL) return -1;
    int ok = fwrite(h, sizeof(h), 1, fp) == 1;
    for (size_t i = 0; ok && i < n; i++) {
        if (bytes_per_token == 2) { uint16_t t = (uint16_t)tokens[i]; ok = fwrite(&t, 2, 1, fp) == 1; }
        else { uint32_t t = (uint32_t)tokens[i]; ok = fwrite(&t, 4, 1, fp) == 1; }
    }
    if (!ok) { set_err(err, errlen, "writing '%s' failed (disk full?)", tmp); fclose(fp); remove(tmp); return -1; }
    return atomic_close(fp, tmp, path, err, errlen);
}

static int shard_open(const char *path, FILE **fpo, int *width, size_t *ntok, char *err, size_t errlen) {
    FILE *fp = fopen_file(path, "shard", "run `make` to build the default shards, or pass a shard file", err, errlen);
    if (fp == NULL) return -1;
    int32_t h[256];
    size_t fsize = 0;
    if (file_size_of(fp, &fsize) != 0 || fsize < sizeof(h) || fread(h, sizeof(h), 1, fp) != 1) {
        set_err(err, errlen, "shard '%s' is shorter than its 1024-byte header (truncated)", path);
        fclose(fp);
        return -1;
    }
    char why[300];
    int w = shard_parse_header(h, fsize, ntok, why, sizeof(why));
    if (w < 0) { set_err(err, errlen, "%s: %s", path, why); fclose(fp); return -1; }
    *width = w;
    *fpo = fp;
    return 0;
}

int shard_read_all(const char *path, int vocab, int **tokens, size_t *n, char *err, size_t errlen) {
    FILE *fp;
    int width;
    size_t count;
    if (shard_open(path, &fp, &width, &count, err, errlen) != 0) return -1;
    unsigned char *raw = (unsigned char *)mallocCheck(count * width + 1);
    int *t = (int *)mallocCheck((count + 1) * sizeof(int));
    int ok = fread(raw, (size_t)width, count, fp) == count;
    fclose(fp);
    for (size_t i = 0; ok && i < count; i++) {
        uint32_t v;
        if (width == 2) { uint16_t u; memcpy(&u, raw + 2 * i, 2); v = u; } else memcpy(&v, raw + 4 * i, 4);
        if (v >= (uint32_t)vocab) {
            set_err(err, errlen, "token %u at position %zu of '%s' is >= vocab %d; the data was made for another model", v, i, path, vocab);
            free(raw); free(t);
            return -1;
        }
        t[i] = (int)v;
    }
    free(raw);
    if (!ok) { set_err(err, errlen, "short read in shard '%s'", path); free(t); return -1; }
    *tokens = t;
    *n = count;
    return 0;
}

void loader_free(DataLoader *dl) {
    if (dl->fp) fclose(dl->fp);
    for (int i = 0; i < dl->n_files; i++) free(dl->files[i]);
    free(dl->files); free(dl->buf); free(dl->inputs); free(dl->targets);
    free(dl->doc_tok); free(dl->doc_start); free(dl->doc_len); free(dl->order); free(dl->row_start); free(dl->row_len);
    memset(dl, 0, sizeof(*dl));
}

static int loader_open_shard(DataLoader *dl, int64_t shard, char *err, size_t errlen) {
    if (dl->fp) { fclose(dl->fp); dl->fp = NULL; }
    if (shard_open(dl->files[shard], &dl->fp, &dl->width, &dl->ntok, err, errlen) != 0) return -1;
    dl->shard = shard;
    return 0;
}

int loader_init(DataLoader *dl, const char *pattern, int B, int T, int vocab, char *err, size_t errlen) {
    return loader_init_rank(dl, pattern, B, T, vocab, 0, 1, err, errlen);
}

int loader_init_rank(DataLoader *dl, const char *pattern, int B, int T, int vocab, int rank, int world_size,
                     char *err, size_t errlen) {
    memset(dl, 0, sizeof(*dl));
    if (B < 1 || T < 1) { set_err(err, errlen, "batch %d and sequence length %d must be >= 1", B, T); return -1; }
    if (world_size < 1 || rank < 0 || rank >= world_size) { set_err(err, errlen, "rank %d is not in 0 .. world size %d - 1", rank, world_size); return -1; }
    glob_t g;
    memset(&g, 0, sizeof(g));
    int gr = glob(pattern, 0, NULL, &g);
    if (gr != 0 || g.gl_pathc == 0) {
        set_err(err, errlen, "no data shard matches '%s'; run `make` to build data/tinyshakespeare_{train,val}.bin or pass a path", pattern);
        globfree(&g);
        return -1;
    }
    dl->n_files = (int)g.gl_pathc;
    dl->files = (char **)mallocCheck(sizeof(char *) * g.gl_pathc);
    for (size_t i = 0; i < g.gl_pathc; i++) dl->files[i] = strdup(g.gl_pathv[i]);
    globfree(&g);
    dl->B = B; dl->T = T; dl->vocab = vocab; dl->rank = rank; dl->world_size = world_size;
    size_t global = (size_t)world_size * B * T + 1;   /* tokens of one global batch */
    for (int i = 0; i < dl->n_files; i++) {
        if (loader_open_shard(dl, i, err, errlen) != 0) { loader_free(dl); return -1; }
        if (dl->ntok < global) {
            set_err(err, errlen, "shard '%s' holds %zu tokens, fewer than one batch needs (processes %d x B %d x T %d + 1 = %zu); lower --batch or --seq",
                    dl->files[i], dl->ntok, world_size, B, T, global);
            loader_free(dl);
            return -1;
        }
    }
    dl->buf = (unsigned char *)mallocCheck(((size_t)B * T + 1) * 4);
    dl->inputs = (int *)mallocCheck((size_t)B * T * sizeof(int));
    dl->targets = (int *)mallocCheck((size_t)B * T * sizeof(int));
    if (loader_open_shard(dl, 0, err, errlen) != 0) { loader_free(dl); return -1; }
    dl->pos = 0;
    return 0;
}

void doc_order(uint64_t data_seed, int64_t epoch, int64_t n, int64_t *perm) {
    uint64_t x = data_seed + ((uint64_t)epoch << 32);
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(splitmix64(&x) % (uint64_t)(i + 1));
        int64_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
}

/* the rows of one epoch (document rows): each document in doc_order, cut at offsets 0, T, 2T, ... */
static void loader_doc_epoch(DataLoader *dl, int64_t epoch) {
    doc_order(dl->data_seed, epoch, dl->n_docs, dl->order);
    int64_t r = 0;
    for (int64_t k = 0; k < dl->n_docs; k++) {
        int64_t d = dl->order[k];
        for (int64_t o = 0; o + 1 < dl->doc_len[d]; o += dl->T) {
            dl->row_start[r] = dl->doc_start[d] + o;
            dl->row_len[r] = dl->doc_len[d] - o < dl->T + 1 ? dl->doc_len[d] - o : dl->T + 1;
            r++;
        }
    }
    dl->n_rows = r;
    dl->shard = epoch;
}

int loader_use_docs(DataLoader *dl, uint64_t data_seed, char *err, size_t errlen) {
    if (data_seed == 0) { set_err(err, errlen, "document rows need a data seed >= 1 (0 reads the stream as stored)"); return -1; }
    dl->data_seed = data_seed;
    dl->doc_ntok = 0;
    for (int i = 0; i < dl->n_files; i++) {   /* every shard, in sorted order, into one array */
        int *t; size_t n;
        if (shard_read_all(dl->files[i], dl->vocab, &t, &n, err, errlen) != 0) return -1;
        if (n == 0 || t[0] != 0) {
            set_err(err, errlen, "shard '%s' does not start with the BOS token 0: not a corpus of documents (make one with data/docs2shards or scripts/make_corpus.sh), or drop --data-seed", dl->files[i]);
            free(t);
            return -1;
        }
        dl->doc_tok = (int *)realloc(dl->doc_tok, ((size_t)dl->doc_ntok + n) * sizeof(int));
        if (dl->doc_tok == NULL) { fprintf(stderr, "error: out of memory reading the documents\n"); exit(1); }
        memcpy(dl->doc_tok + dl->doc_ntok, t, n * sizeof(int));
        dl->doc_ntok += (int64_t)n;
        free(t);
    }
    int64_t nd = 0, nr = 0;
    for (int64_t i = 0; i < dl->doc_ntok; i++) nd += dl->doc_tok[i] == 0;
    dl->doc_start = (int64_t *)mallocCheck((size_t)nd * sizeof(int64_t));
    dl->doc_len = (int64_t *)mallocCheck((size_t)nd * sizeof(int64_t));
    dl->order = (int64_t *)mallocCheck((size_t)nd * sizeof(int64_t));
    dl->n_docs = 0;
    for (int64_t i = 0; i < dl->doc_ntok; i++) {
        if (dl->doc_tok[i] == 0) { dl->doc_start[dl->n_docs] = i; dl->n_docs++; }
        dl->doc_len[dl->n_docs - 1] = i + 1 - dl->doc_start[dl->n_docs - 1];   /* doc_tok[0] is a BOS */
    }
    for (int64_t d = 0; d < nd; d++) nr += dl->doc_len[d] > 1 ? (dl->doc_len[d] - 2) / dl->T + 1 : 0;
    if (nr < (int64_t)dl->world_size * dl->B) {
        set_err(err, errlen, "the %lld documents make %lld rows of T %d, fewer than one batch (processes %d x B %d); lower --batch or --seq",
                (long long)nd, (long long)nr, dl->T, dl->world_size, dl->B);
        return -1;
    }
    dl->row_start = (int64_t *)mallocCheck((size_t)nr * sizeof(int64_t));
    dl->row_len = (int64_t *)mallocCheck((size_t)nr * sizeof(int64_t));
    if (dl->fp) { fclose(dl->fp); dl->fp = NULL; }
    loader_doc_epoch(dl, 0);
    dl->pos = 0;
    return 0;
}

void loader_reset(DataLoader *dl) {
    char err[256];
    if (dl->data_seed != 0) { if (dl->shard != 0) loader_doc_epoch(dl, 0); dl->pos = 0; return; }
    if (dl->shard != 0 && loader_open_shard(dl, 0, err, sizeof(err)) != 0) { fprintf(stderr, "error: %s\n", err); exit(1); }
    dl->pos = 0;
}

int loader_seek(DataLoader *dl, int64_t shard, int64_t pos, char *err, size_t errlen) {
    if (dl->data_seed != 0) {   /* document rows: shard is the epoch, pos the row */
        if (shard < 0 || shard > (1 << 30)) { set_err(err, errlen, "saved loader epoch %lld is out of range; resume with the same data", (long long)shard); return -1; }
        loader_doc_epoch(dl, shard);
        if (pos < 0 || pos > dl->n_rows) { set_err(err, errlen, "saved loader row %lld is past the %lld rows of an epoch; resume with the same data", (long long)pos, (long long)dl->n_rows); return -1; }
        dl->pos = pos;
        return 0;
    }
    if (shard < 0 || shard >= dl->n_files) { set_err(err, errlen, "saved loader shard %lld is not among the %d shards given; resume with the same data", (long long)shard, dl->n_files); return -1; }
    if (loader_open_shard(dl, shard, err, errlen) != 0) return -1;
    if (pos < 0 || (size_t)pos > dl->ntok) { set_err(err, errlen, "saved loader position %lld is past the end of shard '%s'; resume with the same data", (long long)pos, dl->files[shard]); return -1; }
    dl->pos = pos;
    return 0;
}

int loader_next(DataLoader *dl, char *err, size_t errlen) {
    if (dl->data_seed != 0) {   /* document rows: B rows of this process, each from one document */
        int64_t global_rows = (int64_t)dl->world_size * dl->B;
        if (dl->pos + global_rows > dl->n_rows) { loader_doc_epoch(dl, dl->shard + 1); dl->pos = 0; }
        for (int b = 0; b < dl->B; b++) {
            int64_t r = dl->pos + (int64_t)dl->rank * dl->B + b;
            const int *src = dl->doc_tok + dl->row_start[r];
            int64_t n = dl->row_len[r];
            for (int t = 0; t < dl->T; t++) {
                dl->inputs[(size_t)b * dl->T + t] = t < n ? src[t] : 0;
                dl->targets[(size_t)b * dl->T + t] = t + 1 < n ? src[t + 1] : -1;
            }
        }
        dl->pos += global_rows;
        return 0;
    }
    size_t need = (size_t)dl->B * dl->T + 1, global = (size_t)dl->world_size * dl->B * dl->T;
    if ((size_t)dl->pos + global + 1 > dl->ntok) {
        if (loader_open_shard(dl, (dl->shard + 1) % dl->n_files, err, errlen) != 0) return -1;
        dl->pos = 0;
    }
    int64_t start = dl->pos + (int64_t)dl->rank * dl->B * dl->T;   /* this process's rows of the global batch */
    if (fseek(dl->fp, (long)(1024 + (size_t)start * dl->width), SEEK_SET) != 0 ||
        fread(dl->buf, (size_t)dl->width, need, dl->fp) != need) {
        set_err(err, errlen, "read failed in shard '%s' at token %lld (file changed on disk?)", dl->files[dl->shard], (long long)start);
        return -1;
    }
    for (size_t i = 0; i < need; i++) {
        uint32_t t;
        if (dl->width == 2) { uint16_t u; memcpy(&u, dl->buf + 2 * i, 2); t = u; }
        else memcpy(&t, dl->buf + 4 * i, 4);
        if (t >= (uint32_t)dl->vocab) {
            set_err(err, errlen, "token %u at position %lld of shard '%s' is >= vocab %d; pass the vocab the data was made with (--vocab)", t, (long long)(start + (int64_t)i), dl->files[dl->shard], dl->vocab);
            return -1;
        }
        if (i + 1 < need) dl->inputs[i] = (int)t;
        if (i > 0) dl->targets[i - 1] = (int)t;
    }
    dl->pos += (int64_t)global;
    return 0;
}

int loader_max_token(const char *pattern, int64_t *max_token, char *err, size_t errlen) {
    glob_t g;
    memset(&g, 0, sizeof(g));
    if (glob(pattern, 0, NULL, &g) != 0 || g.gl_pathc == 0) {
        set_err(err, errlen, "no data shard matches '%s'; run `make` to build data/tinyshakespeare_{train,val}.bin or pass a path", pattern);
        globfree(&g);
        return -1;
    }
    int64_t mx = -1;
    for (size_t f = 0; f < g.gl_pathc; f++) {
        FILE *fp; int w; size_t n;
        if (shard_open(g.gl_pathv[f], &fp, &w, &n, err, errlen) != 0) { globfree(&g); return -1; }
        unsigned char buf[1 << 16];
        size_t left = n;
        while (left > 0) {
            size_t k = left < sizeof(buf) / (size_t)w ? left : sizeof(buf) / (size_t)w;
            if (fread(buf, (size_t)w, k, fp) != k) { set_err(err, errlen, "short read in '%s'", g.gl_pathv[f]); fclose(fp); globfree(&g); return -1; }
            for (size_t i = 0; i < k; i++) {
                uint32_t t;
                if (w == 2) { uint16_t u; memcpy(&u, buf + 2 * i, 2); t = u; } else memcpy(&t, buf + 4 * i, 4);
                if ((int64_t)t > mx) mx = t;
            }
            left -= k;
        }
        fclose(fp);
    }
    globfree(&g);
    *max_token = mx;
    return 0;
}

int tokenizer_read(Tokenizer *t, const char *path, char *err, size_t errlen) {
    memset(t, 0, sizeof(*t));
    FILE *fp = fopen_file(path, "tokenizer", "", err, errlen);
    if (fp == NULL) return -1;
    uint32_t h[256];
    if (fread(h, sizeof(h), 1, fp) != 1) { set_err(err, errlen, "tokenizer '%s' is shorter than its 1024-byte header (truncated)", path); fclose(fp); return -1; }
    const char *bad = NULL;
    if (h[0] != 20240328) bad = "wrong magic (not an llm.c tokenizer file)";
    else if (h[1] != 1 && h[1] != 2) bad = "unsupported version (llm.c writes 1 or 2)";
    else if (h[2] < 1 || h[2] > (1u << 24)) bad = "vocab size out of range";
    else if (h[1] == 1 && h[2] != 50257) bad = "version 1 files hold the 50257 GPT-2 tokens";
    else if (h[1] == 2 && h[3] >= h[2]) bad = "end-of-text token outside the vocabulary";
    if (bad != NULL) { set_err(err, errlen, "tokenizer '%s': %s", path, bad); fclose(fp); return -1; }
    t->vocab_size = (int)h[2];
    t->eot_token = h[1] == 1 ? 50256 : (int)h[3];
    t->tokens = (char **)mallocCheck((size_t)t->vocab_size * sizeof(char *));
    for (int i = 0; i < t->vocab_size; i++) {
        unsigned char len;
        if (fread(&len, 1, 1, fp) != 1 || len == 0) {
            set_err(err, errlen, "tokenizer '%s': token %d is %s", path, i, len == 0 && !feof(fp) ? "empty" : "missing (truncated file)");
            for (int k = 0; k < i; k++) free(t->tokens[k]);
            free(t->tokens); t->tokens = NULL; fclose(fp);
            return -1;
        }
        t->tokens[i] = (char *)mallocCheck((size_t)len + 1);
        if (fread(t->tokens[i], 1, len, fp) != len) {
            set_err(err, errlen, "tokenizer '%s': token %d is cut short (truncated file)", path, i);
            for (int k = 0; k <= i; k++) free(t->tokens[k]);
            free(t->tokens); t->tokens = NULL; fclose(fp);
            return -1;
        }
        t->tokens[i][len] = '\0';
    }
    fclose(fp);
    return 0;
}

const char *tokenizer_decode(const Tokenizer *t, int token) {
    return (t->tokens != NULL && token >= 0 && token < t->vocab_size) ? t->tokens[token] : NULL;
}

static void byte_print(FILE *f, unsigned char b, int keep_high) {
    if ((b >= 32 && b < 127) || b == '\n' || b == '\t' || (keep_high && b >= 128)) fputc(b, f);
    else fprintf(f, "\\x%02x", b);
}

void token_print(FILE *f, int token, int byte_level, const Tokenizer *t) {
    if (byte_level) { byte_print(f, (unsigned char)token, 0); return; }
    const char *piece = t != NULL ? tokenizer_decode(t, token) : NULL;
    if (piece == NULL) { fprintf(f, "<%d>", token); return; }
    for (const unsigned char *p = (const unsigned char *)piece; *p; p++) byte_print(f, *p, 1);
}

void tokenizer_free(Tokenizer *t) {
    if (t->tokens != NULL) for (int i = 0; i < t->vocab_size; i++) free(t->tokens[i]);
    free(t->tokens);
    memset(t, 0, sizeof(*t));
}

typedef struct { double p; int i; } ProbIndex;
static int prob_desc(const void *a, const void *b) {
    double pa = ((const ProbIndex *)a)->p, pb = ((const ProbIndex *)b)->p;
    return pa < pb ? 1 : pa > pb ? -1 : 0;
}

int sample_token(const float *logits, int V, double temperature, int top_k, double top_p, Rng *rng) {
    int best = 0;
    for (int i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
    if (temperature <= 0.0) return best;
    ProbIndex *pi = (ProbIndex *)mallocCheck((size_t)V * sizeof(ProbIndex));
    double sum = 0.0;
    for (int i = 0; i < V; i++) { pi[i].p = exp(((double)logits[i] - logits[best]) / temperature); pi[i].i = i; sum += pi[i].p; }
    for (int i = 0; i < V; i++) pi[i].p /= sum;
    int n = V;
    if ((top_k > 0 && top_k < V) || top_p < 1.0) {
        qsort(pi, (size_t)V, sizeof(ProbIndex), prob_desc);
        if (top_k > 0 && top_k < n) n = top_k;
        if (top_p < 1.0) {
            double cum = 0.0;
            for (int i = 0; i < n; i++) { cum += pi[i].p; if (cum >= top_p) { n = i + 1; break; } }
        }
    }
    double total = 0.0;
    for (int i = 0; i < n; i++) total += pi[i].p;
    double r = rng_uniform(rng) * total, cum = 0.0;
    int tok = pi[n - 1].i;
    for (int i = 0; i < n; i++) { cum += pi[i].p; if (r < cum) { tok = pi[i].i; break; } }
    free(pi);
    return tok;
}

#ifndef ROPEPP_CUDA
void sample_forward(int *tokens, uint64_t *rng, const floatX *logits, size_t row_stride, int B, int V,
                    double temperature, int top_k, double top_p) {
    /* the op's CPU body: sample_token row by row, the rows drawing from one Rng in order */
    float *row = (float *)mallocCheck((size_t)V * sizeof(float));
    Rng r = {*rng};
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < V; i++) row[i] = (float)logits[(size_t)b * row_stride + i];
        tokens[b] = sample_token(row, V, temperature, top_k, top_p, &r);
    }
    *rng = r.state;
    free(row);
}
#endif

#endif /* !ROPEPP_CPU_REF */
#endif /* ROPEPP_IMPLEMENTATION_DONE */
#endif /* ROPEPP_IMPLEMENTATION */
