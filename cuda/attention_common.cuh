/*
cuda/attention_common.cuh — what the three attention kernel families (attention_simt.cuh, attention_mma.cuh,
attention_sm90.cuh) share: the argument struct AttnArgs that ropepp_cuda.cu's dispatch fills and passes by value,
and the dynamic shared memory they carve their tiles from. Part of ropepp_cuda.cu's single compilation unit.
*/
struct AttnArgs {
    const floatX *qkv;     /* (B, T, QKV) */
    floatX *out;           /* (B, T, NA, HD) */
    floatX *qr;            /* (B, T, NA, HD) */
    const floatX *kr;      /* (B, T, KVH, HD) */
    float *lse2;           /* (B, NA, T) log2-sum-exp of the scaled logits (softmax_saved) */
    const float *lse2_in;
    const floatX *dout;    /* (B, T, NA, HD) */
    const float *D;        /* (B, NA, T) rowsum(dout * out) */
    floatX *dqkv;          /* (B, T, QKV) */
    /* forward keys and values: those of (b, key j, kv head g) at ptr + b * bstride + j * rstride + g * HD */
    const floatX *kptr, *vptr;
    size_t k_bstride, k_rstride, v_bstride, v_rstride;
    int qpos0;             /* absolute position of query row 0 (0 in training, the cache fill when decoding) */
    int nkeys;             /* keys per sequence: qpos0 + T */
    PosEmb pe;
    int B, T, HQ, KVH, HD, NA;
    int qgroup;            /* HQ / KVH: table group of q head h is h / qgroup (FoPE) */
    int agroup;            /* NA / KVH: kv head of attention head a is a / agroup */
    size_t stride;         /* QKV */
    float scale;           /* 1/sqrt(HD) */
    float scale2;          /* scale * log2(e) */
    /* backward in chunks of sequences and kv heads: blockIdx.y is sequence b0 + blockIdx.y, the kernels' kv heads
       start at g0; dS (sequences, nag, ntri, 64, 64) bf16 holds dS^T of the chunk's nag attention heads (those of
       kv heads g0 ...) for every causal (64-query tile i, 64-key tile j <= i) pair at tile i (i + 1) / 2 + j, or
       is NULL */
    int b0, g0, nag;
    int ntri;
    floatX *dS;
};

extern __shared__ __align__(16) float att_smem[];
