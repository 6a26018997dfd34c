/*
cuda/dist.cuh — data parallelism over GPUs with NCCL: one process per GPU, ZeRO-1 (the optimizer state sharded).
Included by ropepp_cuda.cu (one compilation unit); built only where `make` finds NCCL (ROPEPP_NCCL, the line
"✓ NCCL"), else ropepp.h's single-process dist_* are used. The declarations and what each function does: ropepp.h,
"Data parallelism". Launch (README "Several GPUs"):
  mpirun -np 8 -x ROPEPP_NCCL_ID_FILE=$PWD/run/nccl.id ./train_gpu ...           (OpenMPI as the launcher)
  ROPEPP_NCCL_ID_FILE=... torchrun --standalone --nproc-per-node 8 --no-python ./train_gpu ...   (or srun)
The processes learn their place from the launcher's environment: RANK, WORLD_SIZE, LOCAL_RANK (torchrun, or set by
hand, e.g. from Slurm's SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID), else OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK}
(mpirun). The NCCL
id goes from rank 0 to the others through the file ROPEPP_NCCL_ID_FILE (a path every process sees: a shared
folder across nodes), tagged with the launch identity (ropepp.h, launch_identity); rank 0 removes it once every
process has joined. NVLink multicast (NVLS) is left off unless
NCCL_NVLS_ENABLE is set. Sharding: the parameter array is cut into world_size ranges of shard_len elements
(num_params rounded up, a multiple of 64 so every range starts 128-byte aligned); params and grads are padded to
world_size * shard_len so that the reduce-scatter and the all-gather run in place on them.
*/
#ifdef ROPEPP_NCCL
#include <nccl.h>
#include <errno.h>
#include <unistd.h>
#include <time.h>

#ifdef ROPEPP_FP32
#define NCCL_X ncclFloat32
#else
#define NCCL_X ncclBfloat16
#endif

struct Dist {
    int rank, world_size, local_rank;
    size_t shard_len;       /* the ranges' length (elements), the same on every process */
    ncclComm_t comm;
    double *sum_buf;        /* (DIST_SUM_MAX) device, for dist_sum */
};
#define DIST_SUM_MAX 64

static void nccl_check(ncclResult_t r, const char *file, int line) {
    if (r == ncclSuccess) return;
    fprintf(stderr, "error: NCCL: %s (%s:%d)\nHINT: NCCL_DEBUG=INFO shows what NCCL tried; every process must run the same steps\n",
            ncclGetErrorString(r), file, line);
    exit(1);
}
#define ncclCheck(x) nccl_check((x), __FILE__, __LINE__)

/* the first of the names that is set, as an int in [lo, hi]; -1 if none is set */
static int env_first_int(const char *a, const char *b, const char *c, int lo, int hi) {
    const char *names[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        const char *v = names[i] != NULL ? getenv(names[i]) : NULL;
        if (v == NULL) continue;
        char *end;
        long x = strtol(v, &end, 10);
        if (*v == 0 || *end != 0 || x < lo || x > hi) {
            fprintf(stderr, "error: environment %s='%s' is not an integer in [%d, %d]\n", names[i], v, lo, hi);
            exit(1);
        }
        return (int)x;
    }
    return -1;
}

/* rank 0 makes the id; it reaches the others through ROPEPP_NCCL_ID_FILE, tagged with the launch identity so that
   the file of an earlier launch that died is never read (ropepp.h, rendezvous_id) */
static void nccl_id_rendezvous(ncclUniqueId *id, int rank, int world) {
    if (world == 1) { ncclCheck(ncclGetUniqueId(id)); return; }
    const char *path = getenv("ROPEPP_NCCL_ID_FILE");
    if (path == NULL || path[0] == 0) {
        fprintf(stderr, "error: rank %d of %d: the NCCL id needs a rendezvous, but ROPEPP_NCCL_ID_FILE is not set\n"
                        "HINT: ROPEPP_NCCL_ID_FILE=/a/path/every/process/sees/nccl.id (mpirun: -x ROPEPP_NCCL_ID_FILE=...)\n", rank, world);
        exit(1);
    }
    char launch[512], err[5000];
    if (launch_identity(launch, sizeof(launch)) != 0) {
        fprintf(stderr, "error: rank %d of %d: no launch identity in the environment (torchrun's TORCHELASTIC_RUN_ID, Slurm's "
                        "SLURM_JOB_ID, OpenMPI's OMPI_MCA_ess_base_jobid) to tell this launch's NCCL id from an earlier one's\n"
                        "HINT: export ROPEPP_LAUNCH_ID=$(date +%%s%%N) in the shell that starts the processes (mpirun: -x ROPEPP_LAUNCH_ID)\n", rank, world);
        exit(1);
    }
    if (rank == 0) ncclCheck(ncclGetUniqueId(id));
    if (rendezvous_id(path, launch, rank, world, id, sizeof(*id), 600000, err, sizeof(err)) != 0) {
        fprintf(stderr, "error: %s\n", err);
        exit(1);
    }
}

Dist *dist_init(void) {
    /* Slurm's SLURM_PROCID/SLURM_NTASKS are not read: they are also set in a batch script outside srun */
    int rank = env_first_int("RANK", "OMPI_COMM_WORLD_RANK", NULL, 0, 1 << 20);
    int world = env_first_int("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", NULL, 1, 1 << 20);
    int local = env_first_int("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", NULL, 0, 1 << 20);
    if (rank < 0 && world < 0) return NULL;   /* not launched by a launcher: one process */
    if (rank < 0 || world < 0 || rank >= world) {
        fprintf(stderr, "error: launcher environment: rank %d of world size %d (RANK and WORLD_SIZE both, rank < world size)\n", rank, world);
        exit(1);
    }
    if (local < 0) local = world == 1 ? 0 : -1;
    int n_dev = 0;
    cudaCheck(cudaGetDeviceCount(&n_dev));
    if (local < 0 || local >= n_dev) {
        fprintf(stderr, "error: rank %d: local rank %d, but this node has %d GPU%s (LOCAL_RANK picks the GPU)\n", rank, local, n_dev, n_dev == 1 ? "" : "s");
        exit(1);
    }
    cudaCheck(cudaSetDevice(local));
    setenv("NCCL_NVLS_ENABLE", "0", 0);   /* NVLink multicast off unless asked for */
    Dist *d = (Dist *)calloc(1, sizeof(Dist));
    d->rank = rank; d->world_size = world; d->local_rank = local;
    ncclUniqueId id;
    nccl_id_rendezvous(&id, rank, world);
    ncclCheck(ncclCommInitRank(&d->comm, world, id, rank));
    if (rank == 0 && world > 1) remove(getenv("ROPEPP_NCCL_ID_FILE"));   /* everyone has joined: no stale id for a later run */
    d->sum_buf = (double *)backend_malloc(DIST_SUM_MAX * sizeof(double));
    int v = 0;
    ncclCheck(ncclGetVersion(&v));
    if (rank == 0) printf("data parallel: %d process%s (NCCL %d.%d.%d), rank 0 on GPU %d\n", world, world == 1 ? "" : "es", v / 10000, v / 100 % 100, v % 100, local);
    return d;
}

void dist_free(Dist *d) {
    if (d == NULL) return;
    ncclCheck(ncclCommDestroy(d->comm));
    backend_free(d->sum_buf);
    free(d);
}

int dist_rank(const Dist *d) { return d == NULL ? 0 : d->rank; }
int dist_world_size(const Dist *d) { return d == NULL ? 1 : d->world_size; }

void dist_sum(Dist *d, double *x, int n) {
    if (d == NULL || n <= 0) return;
    if (n > DIST_SUM_MAX) { fprintf(stderr, "error: dist_sum of %d values (at most %d)\n", n, DIST_SUM_MAX); exit(1); }
    backend_from_host(d->sum_buf, x, (size_t)n * sizeof(double));
    ncclCheck(ncclAllReduce(d->sum_buf, d->sum_buf, (size_t)n, ncclFloat64, ncclSum, d->comm, cudaStreamPerThread));
    backend_to_host(x, d->sum_buf, (size_t)n * sizeof(double));
}

void dist_sum_device(Dist *d, floatM *x, size_t n) {
    if (d == NULL || n == 0) return;
    ncclCheck(ncclAllReduce(x, x, n, ncclFloat32, ncclSum, d->comm, cudaStreamPerThread));
}

/* a floatM vector cut to [s0, s0 + len) of the parameter array (zero past num_params); frees the full one */
static floatM *cut_range(floatM *full, size_t s0, size_t len, size_t num_params) {
    if (full == NULL) return NULL;
    floatM *part = (floatM *)backend_malloc(len * sizeof(floatM));
    backend_zero(part, len * sizeof(floatM));
    size_t have = s0 >= num_params ? 0 : (s0 + len <= num_params ? len : num_params - s0);
    if (have > 0) cudaCheck(cudaMemcpy(part, full + s0, have * sizeof(floatM), cudaMemcpyDeviceToDevice));
    backend_free(full);
    return part;
}

void dist_shard_model(Dist *d, Model *m) {
    if (d == NULL) return;
    size_t n = m->num_params, W = (size_t)d->world_size;
    size_t len = ((n + W - 1) / W + 63) / 64 * 64;
    floatX *params = (floatX *)backend_malloc(W * len * sizeof(floatX));
    floatX *grads = (floatX *)backend_malloc(W * len * sizeof(floatX));
    backend_zero(params, W * len * sizeof(floatX));
    backend_zero(grads, W * len * sizeof(floatX));
    cudaCheck(cudaMemcpy(params, m->params_memory, n * sizeof(floatX), cudaMemcpyDeviceToDevice));
    model_move_params(m, params, grads);
    d->shard_len = len;
    m->dist = d;
    m->shard_start = (size_t)d->rank * len;
    m->shard_len = len;
    m->master = cut_range(m->master, m->shard_start, len, n);
    m->adam_m = cut_range(m->adam_m, m->shard_start, len, n);
    m->adam_v = cut_range(m->adam_v, m->shard_start, len, n);
}

/* every process's range of a floatM vector, gathered into a full one (world_size * shard_len); frees the range */
static floatM *gather_range(Dist *d, floatM *part) {
    if (part == NULL) return NULL;
    floatM *full = (floatM *)backend_malloc((size_t)d->world_size * d->shard_len * sizeof(floatM));
    ncclCheck(ncclAllGather(part, full, d->shard_len, ncclFloat32, d->comm, cudaStreamPerThread));
    cudaCheck(cudaDeviceSynchronize());
    backend_free(part);
    return full;
}

void dist_gather_optimizer(Model *m) {
    Dist *d = m->dist;
    if (d == NULL) return;
    m->master = gather_range(d, m->master);
    m->adam_m = gather_range(d, m->adam_m);
    m->adam_v = gather_range(d, m->adam_v);
    m->shard_start = 0;
    m->shard_len = (size_t)d->world_size * d->shard_len;
}

void dist_scatter_optimizer(Model *m) {
    Dist *d = m->dist;
    if (d == NULL) return;
    m->shard_start = (size_t)d->rank * d->shard_len;
    m->shard_len = d->shard_len;
    m->master = cut_range(m->master, m->shard_start, m->shard_len, m->num_params);
    m->adam_m = cut_range(m->adam_m, m->shard_start, m->shard_len, m->num_params);
    m->adam_v = cut_range(m->adam_v, m->shard_start, m->shard_len, m->num_params);
}

void dist_reduce_scatter_grads(Model *m) {
    if (m->dist == NULL) return;
    /* in place: this process's range of grads_memory receives the range's sum over the processes */
    ncclCheck(ncclReduceScatter(m->grads_memory, m->grads_memory + m->shard_start, m->shard_len, NCCL_X, ncclSum,
                                m->dist->comm, cudaStreamPerThread));
}

void dist_all_gather_params(Model *m) {
    if (m->dist == NULL) return;
    /* in place: every process's updated range into everyone's params_memory */
    ncclCheck(ncclAllGather(m->params_memory + m->shard_start, m->params_memory, m->shard_len, NCCL_X,
                            m->dist->comm, cudaStreamPerThread));
}
#endif /* ROPEPP_NCCL */
