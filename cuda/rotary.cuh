/*
cuda/rotary.cuh — the rotary transform on the GPU: one force-inlined helper pair used by every CUDA kernel that
rotates queries or keys (the elementwise rotary op, the fused attention kernels' prologues and backward epilogues,
decoding). Part of ropepp_cuda.cu's single compilation unit (included from it; not compiled on its own).

It mirrors the CPU pair rotary_forward / rotary_backward in ropepp.h (part 2, "rotary"), which is written next to
the paper's equations (docs/MATH.md). For a rotated pair of dims (j, j + rot/2) of one head with values (a, b):
  real head        (RoPE, Eq. 1):       out = (a c - b s,  b c + a s)        with (c, s) = (cos, sin)(p theta_j)
  imaginary head   (RoPE++, Eq. 3):     the same with (c, s) -> (s, -c), i.e. RoPE at angle p theta_j - pi/2
Keys are only ever real-rotated. Dims j >= rot pass through (partial rotary). FoPE and the scaling variants change
only the tables (per_group: one table per kv head), never this arithmetic.
*/

/* Table entry of rotated pair j (< rot/2) at position t for kv head g (ignored unless the tables are per group):
   index into pe.cos / pe.sin, shape (per_group ? KVH : 1, T_table, rot/2). */
__device__ __forceinline__ size_t rotary_table_index(const PosEmb &pe, int g, int t, int j) {
    return ((size_t)(pe.per_group ? g : 0) * pe.T_table + t) * (size_t)(pe.rot / 2) + j;
}

/* (c, s) of the real head, or of the imaginary head ((c, s) -> (s, -c)) when imag != 0, from the table values
   (cos_v, sin_v) = (cos, sin)(p theta_j) (kernels that load eight entries at once use this form). */
__device__ __forceinline__ void rotary_cs(float &c, float &s, float cos_v, float sin_v, int imag) {
    c = imag ? sin_v : cos_v;
    s = imag ? -cos_v : sin_v;
}

/* (c, s) as above from table entry tab (rotary_table_index). */
__device__ __forceinline__ void rotary_cs(float &c, float &s, const PosEmb &pe, size_t tab, int imag) {
    rotary_cs(c, s, pe.cos[tab], pe.sin[tab], imag);
}

/* forward of one pair: (o1, o2) = (a c - b s, b c + a s) */
__device__ __forceinline__ void rotary_pair_forward(float &o1, float &o2, float a, float b, float c, float s) {
    o1 = a * c - b * s;
    o2 = b * c + a * s;
}

/* backward of "(o1, o2) = (a c - b s, b c + a s)": (da, db) = (g1 c + g2 s, -g1 s + g2 c), written (the caller
   adds where several heads share the input) */
__device__ __forceinline__ void rotary_pair_backward(float &da, float &db, float g1, float g2, float c, float s) {
    da = g1 * c + g2 * s;
    db = -g1 * s + g2 * c;
}
