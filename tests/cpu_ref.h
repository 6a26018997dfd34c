/* tests/cpu_ref.h — the CPU ops of ropepp.h under cpu_* names (float), for tests/test_gpu.cu to compare the CUDA
   backend against op by op. tests/cpu_ref.c is the translation unit that defines them (ROPEPP_CPU_REF mode of the
   header, compiled by the C compiler). PosEmb is shared: its tables are float (floatM) in both builds. */
#ifndef ROPEPP_CPU_REF_H
#define ROPEPP_CPU_REF_H
#include <stddef.h>
#include <stdint.h>
#include "ropepp.h"

/* CPU_REF(f) is cpu_f, the name the Makefile gives the header's f in tests/cpu_ref.o; tests/cpu_ref.c includes this
   file with CPU_REF(f) = f, so that the compiler checks these declarations against the header's bodies */
#ifndef CPU_REF
#define CPU_REF(name) cpu_##name
#endif

#ifdef __cplusplus
extern "C" {
#endif

double CPU_REF(noise_normal)(uint64_t seed, uint64_t index);
void CPU_REF(encoder_forward)(float *out, const int *inp, const float *wte, int N, int C);
void CPU_REF(encoder_backward)(float *dwte, const float *dout, const int *inp, int N, int C);
void CPU_REF(rmsnorm_forward)(float *out, float *rstd, const float *inp, const float *weight, int N, int C, double eps);
void CPU_REF(rmsnorm_backward)(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                               const float *rstd, int N, int C);
void CPU_REF(residual_forward)(float *out, const float *a, const float *b, size_t n);
void CPU_REF(matmul_forward)(float *out, const float *inp, const float *weight, int N, int IC, int OC);
void CPU_REF(matmul_backward)(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                              int N, int IC, int OC);
void CPU_REF(rotary_forward)(float *out, const float *inp, size_t inp_stride, const PosEmb *pe, int imag_out, int group,
                             int B, int T, int NH, int HD);
void CPU_REF(rotary_backward)(float *dinp, const float *dout, size_t inp_stride, const PosEmb *pe, int imag_out,
                              int group, int B, int T, int NH, int HD);
void CPU_REF(attention_core_forward)(float *out, float *att, const float *q, const float *k, const float *v,
                                     size_t v_stride, const float *alibi, int B, int T, int NA, int KVH, int HD);
void CPU_REF(attention_core_backward)(float *dq, float *dk, float *dv, const float *dout, const float *att,
                                      const float *q, const float *k, const float *v, size_t v_stride,
                                      int B, int T, int NA, int KVH, int HD);
size_t CPU_REF(attention_softmax_saved_size)(int B, int T, int NA);
void CPU_REF(attention_forward)(float *out, float *qr, float *kr, float *softmax_saved, const float *qkv,
                                const PosEmb *pe, int B, int T, int HQ, int KVH, int HD);
void CPU_REF(attention_backward)(float *dqkv, const float *dout, const float *qr, const float *kr,
                                 const float *softmax_saved, const float *qkv, const float *out, const PosEmb *pe,
                                 int B, int T, int HQ, int KVH, int HD);
void CPU_REF(attention_probs_forward)(float *out, const float *qr, const float *kr, const float *alibi, int B, int T,
                                      int NA, int KVH, int HD, int t0, int t1);
void CPU_REF(attention_cached_forward)(float *out, float *kcache, float *vcache, const float *qkv, const PosEmb *pe,
                                       int pos0, const int *pos_dev, int B, int Tn, int Tmax, int HQ, int KVH, int HD);
void CPU_REF(swiglu_forward)(float *out, const float *inp, int N, int F);
void CPU_REF(swiglu_backward)(float *dinp, const float *dout, const float *inp, int N, int F);
void CPU_REF(crossentropy_forward)(float *losses, const float *logits, const int *targets, int N, int V);
void CPU_REF(crossentropy_backward)(float *dlogits, const float *logits, const int *targets, const float *weights,
                                    double dloss, int N, int V);
void CPU_REF(crossentropy_forward_backward)(float *losses, float *dlogits, const float *logits, const int *targets,
                                            const float *weights, double dloss, int N, int V);
void CPU_REF(adamw_update)(float *params, float *master, const float *grads, float *m, float *v, size_t n, double lr,
                           double beta1, double beta2, double eps, double weight_decay, double grad_scale, int step);
void CPU_REF(global_norm_squared)(float *out, const float *g, size_t n);
void CPU_REF(copy_master_to_params)(float *params, const float *master, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* ROPEPP_CPU_REF_H */
