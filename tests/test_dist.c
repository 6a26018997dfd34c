/*
test_dist — gradient accumulation, the data split between processes and the sharded (ZeRO-1) optimizer update,
on the CPU with the processes simulated in one program (no GPU, no NCCL needed):
  (a) N micro-batches of B/N rows, each with loss_weight 1/N, give the gradient and the AdamW update of one batch
      of B rows (double build: within 1e-12 relative; float build: the gradient within 2e-5 of its largest entry,
      float's rounding of sums taken in another order over a few hundred terms)
  (b) loader_init_rank: at every call the W processes' rows are disjoint and together exactly what one process with
      W*B rows reads (shards of distinct tokens, two shards, several wraps); every token of an epoch is read once;
      a position saved at W processes resumes at another W
  (c) model_update on a shard: W models, each updating only its range [shard_start, +shard_len) of the parameter
      array with master and moments cut to it, give together the parameters of the whole update, and their
      ranges' squared gradient norms sum to the whole one
  (d) the NCCL id's rendezvous file: a stale file of an earlier launch is never read (launch identity)
Build and run:  make tests/test_dist tests/test_dist_float && ./tests/test_dist && ./tests/test_dist_float
*/
#define ROPEPP_IMPLEMENTATION
#include "ropepp.h"
#include "testutil.h"
#include <sys/stat.h>
#include <sys/wait.h>

enum { V = 13, BT = 4, T = 8 };

static Config tiny_config(int pe) {
    Config c = config_default();
    c.vocab_size = V; c.dim = 16; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.ffn_dim = 24;
    c.pe = pe; c.train_seq = T;
    return c;
}

/* a batch of BT rows; every target present (a micro-batch mean is then the batch mean's share) */
static void tiny_batch(int *inp, int *tgt, int step) {
    for (int i = 0; i < BT * T; i++) { inp[i] = (i * 7 + 3 + step) % V; tgt[i] = (i * 5 + 1 + 3 * step) % V; }
}

/* ---------------------------------------------------------------------------------------------- (a) */
static void test_grad_accum(int pe, int N) {
    Config c = tiny_config(pe);
    Model one, acc;
    model_init(&one, &c, INIT_HF, 7);
    model_init(&acc, &c, INIT_HF, 7);
    size_t n = one.num_params;
    double *g1 = (double *)mallocCheck(n * sizeof(double)), *g2 = (double *)mallocCheck(n * sizeof(double));
    double *p1 = (double *)mallocCheck(n * sizeof(double)), *p2 = (double *)mallocCheck(n * sizeof(double));
    int inp[BT * T], tgt[BT * T];
    double worst_g = 0.0, worst_p = 0.0, loss1 = 0.0, loss2 = 0.0;
    int rows = BT / N;
    for (int step = 0; step < 2; step++) {
        tiny_batch(inp, tgt, step);
        model_zero_grad(&one);
        loss1 = model_forward_loss(&one, inp, tgt, BT, T, 1);
        model_backward(&one);
        model_zero_grad(&acc);
        acc.loss_weight = 1.0 / N;
        loss2 = 0.0;
        for (int k = 0; k < N; k++) {
            loss2 += model_forward_loss(&acc, inp + (size_t)k * rows * T, tgt + (size_t)k * rows * T, rows, T, 1) / N;
            model_backward(&acc);
        }
        model_grads_to_host(&one, g1);
        model_grads_to_host(&acc, g2);
        double e = rel_err(g2, g1, n, NULL);   /* max |g2 - g1| / max |g1| */
        if (e > worst_g || e != e) worst_g = e;
        model_update(&one, 1e-2, 0.9, 0.95, 1e-8, 0.1, 0.0);
        model_update(&acc, 1e-2, 0.9, 0.95, 1e-8, 0.1, 0.0);
        model_params_to_host(&one, p1);
        model_params_to_host(&acc, p2);
        double ep = rel_err(p2, p1, n, NULL);
        if (ep > worst_p || ep != ep) worst_p = ep;
    }
#ifdef ROPEPP_DOUBLE
    check(worst_g <= 1e-12 && worst_p <= 1e-12 && fabs(loss1 - loss2) <= 1e-12,
          "grad accum %s: %d micro-batches of %d rows == one batch of %d: gradient rel err %.2e, parameters after 2 AdamW steps %.2e, loss %.2e (<= 1e-12)",
          pe_name(pe), N, rows, BT, worst_g, worst_p, fabs(loss1 - loss2));
#else
    check(worst_g <= 2e-5 && fabs(loss1 - loss2) <= 1e-5 * fabs(loss1),
          "grad accum %s (float): %d micro-batches of %d rows == one batch of %d: gradient err %.2e of its largest entry (<= 2e-5), loss rel err %.2e (<= 1e-5)",
          pe_name(pe), N, rows, BT, worst_g, fabs(loss1 - loss2) / fabs(loss1));
#endif
    free(g1); free(g2); free(p1); free(p2);
    model_free(&one);
    model_free(&acc);
}

/* ---------------------------------------------------------------------------------------------- (b) */
static void test_loader_split(void) {
    mkdir("tests/tmp", 0755);
    /* two shards of distinct tokens 0 .. 8000: token value = global position, so any overlap or gap shows */
    const size_t n0 = 5000, n1 = 3001;
    int *tok = (int *)mallocCheck((n0 + n1) * sizeof(int));
    for (size_t i = 0; i < n0 + n1; i++) tok[i] = (int)i;
    char err[512];
    int okw = shard_write("tests/tmp/dist_a.bin", tok, n0, 4, err, sizeof(err)) == 0 &&
              shard_write("tests/tmp/dist_b.bin", tok + n0, n1, 4, err, sizeof(err)) == 0;
    free(tok);
    if (!check(okw, "loader split: wrote two test shards")) return;
    const char *pattern = "tests/tmp/dist_?.bin";
    const int vocab = (int)(n0 + n1), B = 2, W = 3;
    DataLoader ref, rk[W];
    int ok = loader_init(&ref, pattern, W * B, T, vocab, err, sizeof(err)) == 0;
    for (int r = 0; r < W; r++) ok = ok && loader_init_rank(&rk[r], pattern, B, T, vocab, r, W, err, sizeof(err)) == 0;
    if (!check(ok, "loader split: one loader of %d rows and %d of %d rows open (%s)", W * B, W, B, ok ? "" : err)) return;
    /* calls covering both shards twice; per shard an epoch reads floor((ntok - 1) / (W*B*T)) global batches */
    size_t per_call = (size_t)W * B * T, k0 = (n0 - 1) / per_call, k1 = (n1 - 1) / per_call;
    int calls = (int)(2 * (k0 + k1)), equal = 1, disjoint = 1;
    int *seen = (int *)mallocCheck((n0 + n1) * sizeof(int));
    memset(seen, 0, (n0 + n1) * sizeof(int));
    for (int k = 0; k < calls && equal; k++) {
        equal = loader_next(&ref, err, sizeof(err)) == 0;
        for (int r = 0; r < W && equal; r++) {
            equal = loader_next(&rk[r], err, sizeof(err)) == 0;
            for (int i = 0; equal && i < B * T; i++) {
                equal = rk[r].inputs[i] == ref.inputs[(size_t)r * B * T + i] && rk[r].targets[i] == ref.targets[(size_t)r * B * T + i];
                if (k < (int)(k0 + k1)) { if (seen[rk[r].inputs[i]]++ != 0) disjoint = 0; }   /* the first epoch */
            }
            equal = equal && rk[r].shard == ref.shard && rk[r].pos == ref.pos;
        }
    }
    check(equal, "loader split: at each of %d calls the %d processes' rows are, in rank order, the rows of one loader with batch %d (and the same shard/position)", calls, W, W * B);
    size_t missing = 0;
    for (size_t i = 0; i < k0 * per_call; i++) missing += seen[i] != 1;
    for (size_t i = n0; i < n0 + k1 * per_call; i++) missing += seen[i] != 1;
    size_t extra = 0;
    for (size_t i = k0 * per_call; i < n0; i++) extra += seen[i] != 0;
    for (size_t i = n0 + k1 * per_call; i < n0 + n1; i++) extra += seen[i] != 0;
    check(disjoint && missing == 0 && extra == 0,
          "loader split: over one epoch every input token of the %zu + %zu full global batches is read by exactly one process (disjoint, complete; the shorter tails skipped): %zu missing, %zu outside",
          k0, k1, missing, extra);
    /* a position saved by rank 0 of W (the checkpoint's) continues at W2 = 2 processes as one process of 2B rows */
    int64_t shard = rk[0].shard, pos = rk[0].pos;
    DataLoader ref2, two[2];
    ok = loader_init(&ref2, pattern, 2 * B, T, vocab, err, sizeof(err)) == 0 && loader_seek(&ref2, shard, pos, err, sizeof(err)) == 0;
    for (int r = 0; r < 2; r++)
        ok = ok && loader_init_rank(&two[r], pattern, B, T, vocab, r, 2, err, sizeof(err)) == 0 && loader_seek(&two[r], shard, pos, err, sizeof(err)) == 0;
    for (int k = 0; ok && k < 40; k++) {
        ok = loader_next(&ref2, err, sizeof(err)) == 0;
        for (int r = 0; r < 2 && ok; r++) {
            ok = loader_next(&two[r], err, sizeof(err)) == 0;
            for (int i = 0; ok && i < B * T; i++) ok = two[r].inputs[i] == ref2.inputs[(size_t)r * B * T + i];
        }
    }
    check(ok, "loader split: the position saved at %d processes (shard %lld, token %lld) resumes at 2 processes as one loader of %d rows (40 calls)",
          W, (long long)shard, (long long)pos, 2 * B);
    /* a shard shorter than a global batch is refused with the numbers */
    DataLoader big;
    int refused = loader_init_rank(&big, pattern, 8, 64, vocab, 0, 16, err, sizeof(err)) != 0 && strstr(err, "processes 16") != NULL;
    check(refused, "loader split: shards shorter than one global batch (16 x 8 x 64 + 1 tokens) are refused: %s", err);
    int bad_rank = loader_init_rank(&big, pattern, 1, 4, vocab, 3, 3, err, sizeof(err)) != 0;
    check(bad_rank, "loader split: rank 3 of 3 is refused: %s", err);
    free(seen);
    loader_free(&ref); loader_free(&ref2);
    for (int r = 0; r < W; r++) loader_free(&rk[r]);
    for (int r = 0; r < 2; r++) loader_free(&two[r]);
    remove("tests/tmp/dist_a.bin");
    remove("tests/tmp/dist_b.bin");
}

/* ---------------------------------------------------------------------------------------------- (c) */
static void test_sharded_update(int pe) {
    enum { W = 3 };
    Config c = tiny_config(pe);
    Model full, part[W];
    model_init(&full, &c, INIT_HF, 11);
    size_t n = full.num_params, len = (n + W - 1) / W;
    int inp[BT * T], tgt[BT * T];
    double norm2_parts = 0.0, norm_full = 0.0;
    for (int r = 0; r < W; r++) {
        model_init(&part[r], &c, INIT_HF, 11);
        /* what dist_shard_model does on the GPU: master cut to [r*len, r*len + len) (the last range past the end) */
        size_t s0 = (size_t)r * len, have = s0 + len <= n ? len : n - s0;
        floatM *cut = (floatM *)mallocCheck(len * sizeof(floatM));
        memcpy(cut, part[r].master + s0, have * sizeof(floatM));
        free(part[r].master);
        part[r].master = cut;
        part[r].shard_start = s0;
        part[r].shard_len = len;
    }
    for (int step = 0; step < 2; step++) {
        tiny_batch(inp, tgt, step);
        model_zero_grad(&full);
        model_forward_loss(&full, inp, tgt, BT, T, 1);
        model_backward(&full);
        norm_full = model_update(&full, 1e-2, 0.9, 0.95, 1e-8, 0.1, 0.0);
        norm2_parts = 0.0;
        for (int r = 0; r < W; r++) {
            model_zero_grad(&part[r]);
            model_forward_loss(&part[r], inp, tgt, BT, T, 1);
            model_backward(&part[r]);
            double nr = model_update(&part[r], 1e-2, 0.9, 0.95, 1e-8, 0.1, 0.0);
            norm2_parts += nr * nr;
        }
        /* the all-gather: every range to every process */
        for (int r = 0; r < W; r++) {
            size_t s0 = (size_t)r * len, have = s0 + len <= n ? len : n - s0;
            for (int q = 0; q < W; q++)
                if (q != r) memcpy(part[q].params_memory + s0, part[r].params_memory + s0, have * sizeof(floatX));
        }
    }
    int same = 1;
    for (int r = 0; r < W; r++) same = same && memcmp(part[r].params_memory, full.params_memory, n * sizeof(floatX)) == 0;
    check(same, "sharded update %s: %d processes each updating its third of the %zu parameters give, after 2 steps, the whole update bit for bit", pe_name(pe), W, n);
    double rel = fabs(sqrt(norm2_parts) - norm_full) / norm_full;
    check(rel <= 1e-5, "sharded update %s: the ranges' squared gradient norms sum to the whole one (rel err %.1e <= 1e-5, float partial sums)", pe_name(pe), rel);
    model_free(&full);
    for (int r = 0; r < W; r++) model_free(&part[r]);
}

/* (d) the NCCL id's rendezvous (ropepp.h rendezvous_id, what cuda/dist.cuh calls), on the CPU with real processes:
   the file of an earlier launch that died is never read. Issue 32's case: launch 1's rank 0 wrote its id and died;
   launch 2's rank 1 starts before launch 2's rank 0 has written: before, it read launch 1's id at once (then the
   communicator setup hangs on the GPUs); now it waits for its own launch's file. */
static void test_rendezvous(void) {
    static const char *vars[] = {"ROPEPP_LAUNCH_ID", "TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT", "SLURM_JOB_ID",
                                 "SLURM_STEP_ID", "SLURM_RESTART_COUNT", "OMPI_MCA_ess_base_jobid", "PMIX_NAMESPACE"};
    for (int i = 0; i < 8; i++) unsetenv(vars[i]);
    char launch[512] = "", err[1024] = "";
    check(launch_identity(launch, sizeof(launch)) == -1, "no launcher variables: no launch identity (the GPU build then refuses, naming ROPEPP_LAUNCH_ID)");
    setenv("OMPI_MCA_ess_base_jobid", "3061186561", 1);
    check(launch_identity(launch, sizeof(launch)) == 0 && strcmp(launch, "openmpi 3061186561") == 0, "OpenMPI's job id: '%s'", launch);
    setenv("SLURM_JOB_ID", "812", 1); setenv("SLURM_STEP_ID", "3", 1);
    check(launch_identity(launch, sizeof(launch)) == 0 && strcmp(launch, "slurm 812 step 3 restart 0") == 0, "Slurm's job and step: '%s'", launch);
    setenv("TORCHELASTIC_RUN_ID", "a1b2", 1); setenv("TORCHELASTIC_RESTART_COUNT", "2", 1);
    check(launch_identity(launch, sizeof(launch)) == 0 && strcmp(launch, "torchrun a1b2 restart 2") == 0,
          "torchrun's run id and restart count (an elastic restart is a new launch): '%s'", launch);
    setenv("ROPEPP_LAUNCH_ID", "mine", 1);
    check(launch_identity(launch, sizeof(launch)) == 0 && strcmp(launch, "ROPEPP_LAUNCH_ID mine") == 0, "ROPEPP_LAUNCH_ID first: '%s'", launch);
    for (int i = 0; i < 8; i++) unsetenv(vars[i]);

    char path[256];
    mkdir("tests/tmp", 0755);
    snprintf(path, sizeof(path), "tests/tmp/test_dist_rendezvous.%d.id", (int)getpid());
    unsigned char old_id[128], new_id[128], got[128];
    for (int i = 0; i < 128; i++) { old_id[i] = (unsigned char)i; new_id[i] = (unsigned char)(255 - i); }
    /* launch 1 (2 processes): rank 0 writes, then the launch dies before rank 0 removes the file */
    check(rendezvous_id(path, "slurm 1 step 0 restart 0", 0, 2, old_id, 128, 0, err, sizeof(err)) == 0, "launch 1's rank 0 writes its id (%s)", err);
    /* launch 2's rank 1, with launch 2's rank 0 not started: no id, whatever the wait, and the error names both */
    memset(got, 0, sizeof(got));
    int rc = rendezvous_id(path, "slurm 2 step 0 restart 0", 1, 2, got, 128, 200, err, sizeof(err));
    check(rc == -1 && strstr(err, "another launch: slurm 1") != NULL && strstr(err, "slurm 2") != NULL,
          "launch 2's rank 1 does not take launch 1's stale id (\"%s\")", err);
    check(rendezvous_id(path, "slurm 1 step 0 restart 0", 1, 4, got, 128, 100, err, sizeof(err)) == -1,
          "a file of the same launch name but another world size is not taken either");
    /* launch 2's rank 0 (another process) writes 150 ms later; rank 1, already waiting, gets launch 2's id */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct timespec ts = {0, 150 * 1000 * 1000};
        nanosleep(&ts, NULL);
        _exit(rendezvous_id(path, "slurm 2 step 0 restart 0", 0, 2, new_id, 128, 0, err, sizeof(err)) == 0 ? 0 : 1);
    }
    memset(got, 0, sizeof(got));
    rc = rendezvous_id(path, "slurm 2 step 0 restart 0", 1, 2, got, 128, 10000, err, sizeof(err));
    int status = 1;
    waitpid(pid, &status, 0);
    check(rc == 0 && memcmp(got, new_id, 128) == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "with launch 1's file in place, launch 2's rank 1 waits and reads launch 2's id written by its rank 0 (%s)", rc ? err : "");
    remove(path);
    snprintf(path, sizeof(path), "tests/tmp/no_such_dir_%d/nccl.id", (int)getpid());
    check(rendezvous_id(path, "x", 0, 2, new_id, 128, 0, err, sizeof(err)) == -1 && strstr(err, "cannot write") != NULL,
          "rank 0 reports a path it cannot write (\"%s\")", err);
}

int main(void) {
    test_grad_accum(PE_ROPE, 2);
    test_grad_accum(PE_ROPEPP_EC, 4);
    test_grad_accum(PE_ROPEPP_EH, 2);
    test_loader_split();
    test_sharded_update(PE_ROPE);
    test_sharded_update(PE_ROPEPP_EH);
    test_rendezvous();
#ifdef ROPEPP_DOUBLE
    return tu_finish("test_dist");
#else
    return tu_finish("test_dist_float");
#endif
}
