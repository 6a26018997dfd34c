/* tests/cpu_ref.c — the header's CPU ops (float) under cpu_* names, linked into tests/test_gpu beside the CUDA
   backend so that both run on the same inputs. Build: gcc -std=c11 -O2 -fopenmp -I. -c tests/cpu_ref.c
   The renames below apply to every public function of parts 1 and 2 of ropepp.h; ROPEPP_CPU_REF makes the header
   leave out parts 3 and 4 (model, data), which test_gpu takes from its CUDA build. A function added to part 1 or 2
   gets a line here (else the link of tests/test_gpu fails with a duplicate symbol). */
#define ROPEPP_CPU_REF
#define malloc_check cpu_malloc_check
#define fopen_check cpu_fopen_check
#define fread_check cpu_fread_check
#define fwrite_check cpu_fwrite_check
#define fclose_check cpu_fclose_check
#define flag_number cpu_flag_number
#define flag_int cpu_flag_int
#define name_nearest cpu_name_nearest
#define wall_seconds cpu_wall_seconds
#define fmt_duration cpu_fmt_duration
#define rng_u64 cpu_rng_u64
#define rng_uniform cpu_rng_uniform
#define rng_normal cpu_rng_normal
#define noise_normal cpu_noise_normal
#define pe_name cpu_pe_name
#define pe_from_name cpu_pe_from_name
#define pe_info cpu_pe_info
#define pe_is_rotary cpu_pe_is_rotary
#define pe_is_imag cpu_pe_is_imag
#define pe_scalable cpu_pe_scalable
#define pe_names cpu_pe_names
#define pe_list cpu_pe_list
#define config_default cpu_config_default
#define config_validate cpu_config_validate
#define config_dims cpu_config_dims
#define config_rotary_frac cpu_config_rotary_frac
#define attention_param_count cpu_attention_param_count
#define encoder_forward cpu_encoder_forward
#define encoder_backward cpu_encoder_backward
#define rmsnorm_forward cpu_rmsnorm_forward
#define rmsnorm_backward cpu_rmsnorm_backward
#define residual_forward cpu_residual_forward
#define matmul_forward cpu_matmul_forward
#define matmul_backward cpu_matmul_backward
#define matmul_forward_loops cpu_matmul_forward_loops
#define matmul_backward_loops cpu_matmul_backward_loops
#define matmul_library cpu_matmul_library
#define rotary_forward cpu_rotary_forward
#define rotary_backward cpu_rotary_backward
#define attention_core_forward cpu_attention_core_forward
#define attention_core_backward cpu_attention_core_backward
#define attention_flash_forward cpu_attention_flash_forward
#define attention_flash_backward cpu_attention_flash_backward
#define attention_softmax_saved_size cpu_attention_stats_size
#define attention_forward cpu_attention_forward
#define attention_backward cpu_attention_backward
#define attention_cached_forward cpu_attention_cached_forward
#define attention_probs_forward cpu_attention_probs_forward
#define sample_forward cpu_sample_forward
#define swiglu_forward cpu_swiglu_forward
#define swiglu_backward cpu_swiglu_backward
#define crossentropy_forward cpu_crossentropy_forward
#define crossentropy_backward cpu_crossentropy_backward
#define crossentropy_forward_backward cpu_crossentropy_forward_backward
#define adamw_update cpu_adamw_update
#define global_norm_squared cpu_global_norm_squared
#define copy_master_to_params cpu_copy_master_to_params
#define backend_malloc cpu_backend_malloc
#define backend_free cpu_backend_free
#define backend_to_host cpu_backend_to_host
#define backend_from_host cpu_backend_from_host
#define backend_zero cpu_backend_zero
#define backend_add_int cpu_backend_add_int
#define backend_graph_begin cpu_backend_graph_begin
#define backend_graph_end cpu_backend_graph_end
#define backend_graph_launch cpu_backend_graph_launch
#define backend_graph_free cpu_backend_graph_free
#define backend_scratch_epoch cpu_backend_scratch_epoch
#define backend_name cpu_backend_name
#define backend_timer_record cpu_backend_timer_record
#define backend_timer_ms cpu_backend_timer_ms
#define backend_memory_peak cpu_backend_memory_peak
#define ROPEPP_IMPLEMENTATION
#include "ropepp.h"
#include "tests/cpu_ref.h"   /* after the header: the compiler checks these declarations against the bodies */
