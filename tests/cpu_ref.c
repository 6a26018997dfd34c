/* tests/cpu_ref.c — the header's CPU ops (float), linked into tests/test_gpu beside the CUDA backend so that both run
   on the same inputs. ROPEPP_CPU_REF makes the header leave out parts 3 and 4 (model, data), which test_gpu takes
   from its CUDA build. tests/cpu_ref_rename.sh renames every symbol this file defines to cpu_NAME after it is compiled
   (nm lists them, objcopy renames them), so no list of names is kept by hand. */
#define ROPEPP_CPU_REF
#define ROPEPP_IMPLEMENTATION
#include "ropepp.h"
#define CPU_REF(name) name   /* the declarations of cpu_ref.h under the header's names: checked against the bodies */
#include "tests/cpu_ref.h"
