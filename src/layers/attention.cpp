// Attention layer forward (see attention.h).
#include "layers/attention.h"

#include "backends/cpu/elementwise.h"
#include "backends/cpu/matmul.h"
#include "backends/cpu/rope.h"

namespace moeinfer {
namespace {

void add_bias(float* y, int64_t T, const std::vector<float>& bias) {
    if (bias.empty()) return;
    const int64_t n = static_cast<int64_t>(bias.size());
    for (int64_t t = 0; t < T; ++t) cpu::add_inplace(y + t * n, bias.data(), n);
}

}  // namespace

void attention_forward(const AttentionWeights& w, const float* x, int64_t T, const AttentionContext& ctx, float* out) {
    const auto& s = ctx.shape;
    const int64_t q_width = s.num_heads * s.head_dim, kv_width = s.num_kv_heads * s.head_dim;
    std::vector<float> q(T * q_width), k(T * kv_width), v(T * kv_width), attn(T * q_width);
    // One parallel region (and one activation quantization) for the three projections of the same input.
    cpu::matmul_jobs(x, {{&w.q, 0, T, q.data(), q_width}, {&w.k, 0, T, k.data(), kv_width}, {&w.v, 0, T, v.data(), kv_width}});
    add_bias(q.data(), T, w.q_bias);
    add_bias(k.data(), T, w.k_bias);
    add_bias(v.data(), T, w.v_bias);
    if (w.qk_norm == QkNorm::PerHead) {
        cpu::rms_norm(q.data(), w.q_norm.data(), ctx.norm_eps, T * s.num_heads, s.head_dim, q.data());
        cpu::rms_norm(k.data(), w.k_norm.data(), ctx.norm_eps, T * s.num_kv_heads, s.head_dim, k.data());
    } else if (w.qk_norm == QkNorm::Full) {
        cpu::rms_norm(q.data(), w.q_norm.data(), ctx.norm_eps, T, q_width, q.data());
        cpu::rms_norm(k.data(), w.k_norm.data(), ctx.norm_eps, T, kv_width, k.data());
    }
    cpu::apply_rope(q.data(), T, s.num_heads, s.head_dim, ctx.meta.positions, ctx.inv_freq, ctx.rope_interleaved);
    cpu::apply_rope(k.data(), T, s.num_kv_heads, s.head_dim, ctx.meta.positions, ctx.inv_freq, ctx.rope_interleaved);
    cpu::write_kv(k.data(), v.data(), T, ctx.meta, s, ctx.k_cache, ctx.v_cache);
    cpu::paged_attention(q.data(), T, ctx.meta, s, ctx.k_cache, ctx.v_cache, attn.data());
    cpu::matmul(attn.data(), T, w.o, out);
}

}  // namespace moeinfer
