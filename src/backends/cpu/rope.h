// Rotary position embedding applied in place to q or k rows.
#pragma once
#include <cstdint>

namespace moeinfer::cpu {

// x: [T, n_heads, head_dim]; inv_freq: [head_dim / 2]; positions: [T].
// interleaved=false rotates (x[i], x[i + d/2]) (HF "rotate_half"); true rotates (x[2i], x[2i+1]) (GGUF llama).
void apply_rope(float* x, int64_t T, int64_t n_heads, int64_t head_dim, const int32_t* positions,
                const float* inv_freq, bool interleaved);

}  // namespace moeinfer::cpu
