// RoPE kernel (see rope.h). Angles are formed in fp32 as HF does (pos * inv_freq), so long positions round alike.
#include "backends/cpu/rope.h"

#include <cmath>
#include <vector>

#include "core/thread_pool.h"

namespace moeinfer::cpu {

void apply_rope(float* x, int64_t T, int64_t n_heads, int64_t head_dim, const int32_t* positions,
                const float* inv_freq, bool interleaved) {
    const int64_t half = head_dim / 2;
    parallel_for(T, [&](int64_t b, int64_t e) {
        std::vector<float> cs(half), sn(half);
        for (int64_t t = b; t < e; ++t) {
            for (int64_t i = 0; i < half; ++i) {
                const float angle = float(positions[t]) * inv_freq[i];
                cs[i] = std::cos(angle);
                sn[i] = std::sin(angle);
            }
            for (int64_t h = 0; h < n_heads; ++h) {
                float* v = x + (t * n_heads + h) * head_dim;
                for (int64_t i = 0; i < half; ++i) {
                    const int64_t i0 = interleaved ? 2 * i : i;
                    const int64_t i1 = interleaved ? 2 * i + 1 : i + half;
                    const float a = v[i0], c = v[i1];
                    v[i0] = a * cs[i] - c * sn[i];
                    v[i1] = c * cs[i] + a * sn[i];
                }
            }
        }
    });
}

}  // namespace moeinfer::cpu
