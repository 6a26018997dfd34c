/* tests/cpu_ref.c — the header's CPU ops (float) under cpu_* names, linked into tests/test_gpu beside the CUDA
   backend so that both run on the same inputs. Build: gcc -std=c11 -O2 -fopenmp -I. -c tests/cpu_ref.c */
#define ROPEPP_CPU_REF
#define ROPEPP_IMPLEMENTATION
#include "ropepp.h"
#include "tests/cpu_ref.h"   /* after the header: the compiler checks these declarations against the bodies */
