// Row-wise fp32 kernels: RMSNorm, SwiGLU activation, softmax / log-softmax, residual add, and the vector primitives
// other code needs at the active kernel level (kernel_isa.h).
#pragma once
#include <cstdint>

namespace moeinfer::cpu {

// y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w[:]. x, y: [rows, n]; y may alias x.
void rms_norm(const float* x, const float* w, float eps, int64_t rows, int64_t n, float* y);
// out[r, i] = silu(gate[r, i]) * up[r, i], with gate/up rows of stride in_stride and out rows of stride n.
void silu_mul(const float* gate, const float* up, int64_t in_stride, int64_t rows, int64_t n, float* out);
// x[i] += y[i]
void add_inplace(float* x, const float* y, int64_t n);
// In place over one row: x <- softmax(x) / log_softmax(x), computed in double for the normalizer.
void softmax_row(float* x, int64_t n);
void log_softmax_row(float* x, int64_t n);
// Σ a[i] · b[i] in fp32.
float dot(const float* a, const float* b, int64_t n);
// y[i] += a · x[i]
void axpy(float a, const float* x, float* y, int64_t n);
// x[i] ← e^(x[i] − m) for i < n (the vector exp: relative error below 2e-7); returns their sum.
double exp_shifted_sum(float* x, float m, int64_t n);

}  // namespace moeinfer::cpu
