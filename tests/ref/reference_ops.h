// Naive reference implementations of the CPU kernels: plain loops, fp64 accumulation, written from the math and
// not from the kernels, so kernel tests compare against an independent definition.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "layers/layer_weights.h"

namespace moeinfer::ref {

// All rows of `w` as fp32, via dequantize_row (the format's definition): [rows * cols].
std::vector<float> dequantize(const Tensor& w);

// y[t, r] = Σ_i x[t, i] · w[r, i]. x: [T, in]; w: [out, in] fp32; y: [T, out].
void matmul(const float* x, int64_t T, const float* w, int64_t out, int64_t in, float* y);

// y[r, :] = x[r, :] / sqrt(mean(x[r, :]²) + eps) · w. x, y: [rows, n].
void rms_norm(const float* x, const float* w, float eps, int64_t rows, int64_t n, float* y);

double silu(double x);

// y = softmax(x) / log_softmax(x) over n values, in double.
std::vector<double> softmax(const float* x, int64_t n);
std::vector<double> log_softmax(const float* x, int64_t n);

// In place on x: [T, n_heads, head_dim]. Pair i (i < head_dim/2) is (i, i + d/2) when !interleaved, (2i, 2i+1)
// when interleaved, rotated by angle = pos · inv_freq[i]. The angle is rounded to fp32 as HF and GGML form it
// (position tensor times fp32 inv_freq); the rotation itself is done in double.
void rope(float* x, int64_t T, int64_t n_heads, int64_t head_dim, const int32_t* positions, const float* inv_freq,
          bool interleaved);

// Causal GQA attention of one sequence's queries over its contiguous keys/values.
// q: [T, num_heads, head_dim] at positions[T]; k, v: [ctx, num_kv_heads, head_dim] indexed by position (ctx must
// exceed every query position); out: [T, num_heads, head_dim]. Key j is visible to query p iff j <= p and
// (window == 0 or p - window < j). Query head h reads kv head h / (num_heads / num_kv_heads).
void attention(const float* q, int64_t T, const int32_t* positions, const float* k, const float* v,
               int64_t num_heads, int64_t num_kv_heads, int64_t head_dim, int64_t window, float scale, float* out);

// Softmax over all E experts, the k largest (ties → lower id), optionally renormalized. ids, weights: [T, k].
void route_topk(const float* logits, int64_t T, int64_t E, int64_t k, bool normalize, int32_t* ids, float* weights);

// Textbook MoE: per token, route, then Σ_slot w · down(silu(gate(x)) · up(x)) looping over that token's own
// experts, plus sigmoid(shared_gate · x) · shared(x) when present. x: [T, H]; out: [T, H]; counts[e] += picks.
void moe(const MoeWeights& w, const float* x, int64_t T, float* out, std::vector<uint64_t>* counts = nullptr);

}  // namespace moeinfer::ref
