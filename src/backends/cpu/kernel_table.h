// The CPU kernels that exist once per instruction-set level (kernel_isa.h), as one list: each entry is
// (return type, name, parameters, arguments). The list declares each level's functions (kernel_variant.h), fills
// each level's table of pointers (kernel_table.cpp) and defines the public functions of the same names in
// moeinfer::cpu (the headers beside this one declare them), which call the active level's (kernel_dispatch.cpp).
#pragma once
#include <cstdint>

#include "backends/cpu/attention.h"
#include "backends/cpu/f32_gemm.h"
#include "backends/cpu/int8_gemm.h"
#include "backends/cpu/kernel_isa.h"
#include "core/dtype.h"
#include "core/tensor.h"

#define MOEINFER_CPU_KERNELS(X)                                                                                       \
    /* elementwise.h */                                                                                               \
    X(void, rms_norm, (const float* x, const float* w, float eps, int64_t rows, int64_t n, float* y),                 \
      (x, w, eps, rows, n, y))                                                                                        \
    X(void, silu_mul, (const float* gate, const float* up, int64_t in_stride, int64_t rows, int64_t n, float* out),   \
      (gate, up, in_stride, rows, n, out))                                                                            \
    X(void, add_inplace, (float* x, const float* y, int64_t n), (x, y, n))                                            \
    X(void, softmax_row, (float* x, int64_t n), (x, n))                                                               \
    X(void, log_softmax_row, (float* x, int64_t n), (x, n))                                                           \
    X(float, dot, (const float* a, const float* b, int64_t n), (a, b, n))                                             \
    X(void, axpy, (float a, const float* x, float* y, int64_t n), (a, x, y, n))                                       \
    X(double, exp_shifted_sum, (float* x, float m, int64_t n), (x, m, n))                                             \
    /* attention.h */                                                                                                 \
    X(void, write_kv,                                                                                                 \
      (const float* k, const float* v, int64_t T, const PagedKvMeta& meta, const AttentionShape& shape,               \
       float* k_cache, float* v_cache),                                                                               \
      (k, v, T, meta, shape, k_cache, v_cache))                                                                       \
    X(void, paged_attention,                                                                                          \
      (const float* q, int64_t T, const PagedKvMeta& meta, const AttentionShape& shape, const float* k_cache,         \
       const float* v_cache, float* out),                                                                             \
      (q, T, meta, shape, k_cache, v_cache, out))                                                                     \
    /* f32_gemm.h, microkernel.h, fused_dot.h */                                                                     \
    X(bool, f32_gemm_available, (), ())                                                                               \
    X(bool, bf16_gemm_available, (), ())                                                                              \
    X(bool, amx_available, (), ())                                                                                    \
    X(void, f32_gemm,                                                                                                 \
      (const float* x, int64_t T, const Tensor& w, int64_t row_begin, int64_t row_end, float* y, int64_t y_stride,    \
       GemmArith arith),                                                                                              \
      (x, T, w, row_begin, row_end, y, y_stride, arith))                                                              \
    X(void, micro_gemm,                                                                                               \
      (const float* w, int64_t nr, const float* x, int64_t x_stride, int64_t nt, int64_t K, float* y,                 \
       int64_t y_stride),                                                                                             \
      (w, nr, x, x_stride, nt, K, y, y_stride))                                                                       \
    X(void, dot_rows_half,                                                                                            \
      (DType wtype, GemmArith arith, const float* x, const uint16_t* w, int64_t row_stride, int64_t nrows,            \
       int64_t n, float* out),                                                                                        \
      (wtype, arith, x, w, row_stride, nrows, n, out))                                                                \
    X(void, row_to_f32, (DType t, const void* src, float* dst, int64_t n), (t, src, dst, n))                          \
    /* int8_gemm.h, panel_gemm.h */                                                                                   \
    X(void, quantize_activations, (const float* x, int64_t T, int64_t K, Q8Activations& out), (x, T, K, out))         \
    X(void, int8_gemm,                                                                                                \
      (const Tensor& w, int64_t row_begin, int64_t row_end, const Q8Activations& a, int64_t t0, int64_t nt, float* y, \
       int64_t y_stride),                                                                                             \
      (w, row_begin, row_end, a, t0, nt, y, y_stride))                                                                \
    X(void, kquant_gemm,                                                                                              \
      (const Tensor& w, int64_t row_begin, int64_t row_end, const Q8Activations& a, int64_t t0, int64_t nt, float* y, \
       int64_t y_stride),                                                                                             \
      (w, row_begin, row_end, a, t0, nt, y, y_stride))                                                                \
    X(int64_t, panel_gemm,                                                                                            \
      (const Tensor& w, int64_t row_begin, int64_t row_end, const Q8Activations& a, int64_t t0, int64_t nt, float* y, \
       int64_t y_stride),                                                                                             \
      (w, row_begin, row_end, a, t0, nt, y, y_stride))

namespace moeinfer::cpu {

// One level's kernels.
struct CpuKernels {
#define MOEINFER_KERNEL_POINTER(ret, name, params, args) ret(*name) params;
    MOEINFER_CPU_KERNELS(MOEINFER_KERNEL_POINTER)
#undef MOEINFER_KERNEL_POINTER
};

// The table of a level this build has and this CPU can run (supported_kernel_isas()); throws for any other.
const CpuKernels& kernel_table(KernelIsa isa);

}  // namespace moeinfer::cpu
