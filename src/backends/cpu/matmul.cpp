// Matmul kernels over stored-dtype weights (see matmul.h). A tile of kTileRows weight rows is converted to fp32
// once and reused for every token, so prefill converts each weight row once per call, not once per token.
#include "backends/cpu/matmul.h"

#include <algorithm>

#include "backends/cpu/simd.h"
#include "core/check.h"
#include "core/thread_pool.h"
#include "formats/dequant.h"

namespace moeinfer::cpu {
namespace {

constexpr int64_t kTileRows = 16;

std::vector<float>& tile_buffer(size_t n) {
    thread_local std::vector<float> buf;
    if (buf.size() < n) buf.resize(n);
    return buf;
}

}  // namespace

void matmul_rows(const float* x, int64_t T, const Tensor& w, int64_t row_begin, int64_t row_end, float* y,
                 int64_t y_stride) {
    const int64_t in = w.cols();
    const bool direct = w.dtype == DType::F32;
    std::vector<float>& buf = tile_buffer(direct ? 0 : kTileRows * in);
    for (int64_t r0 = row_begin; r0 < row_end; r0 += kTileRows) {
        const int64_t nr = std::min(kTileRows, row_end - r0);
        const float* tile;
        if (direct) {
            tile = static_cast<const float*>(w.data) + r0 * in;
        } else {
            for (int64_t r = 0; r < nr; ++r) dequantize_row(w.dtype, w.row(r0 + r), buf.data() + r * in, in);
            tile = buf.data();
        }
        for (int64_t t = 0; t < T; ++t) {
            const float* xt = x + t * in;
            float* yt = y + t * y_stride + r0;
            for (int64_t r = 0; r < nr; ++r) yt[r] = dot_f32(xt, tile + r * in, in);
        }
    }
}

void matmul(const float* x, int64_t T, const Tensor& w, float* y) {
    MOE_CHECK(w.shape.size() == 2, "matmul weight " + w.name + " must be 2-D");
    const int64_t out = w.rows();
    const int64_t tiles = (out + kTileRows - 1) / kTileRows;
    parallel_for(tiles, [&](int64_t b, int64_t e) {
        matmul_rows(x, T, w, b * kTileRows, std::min(out, e * kTileRows), y, out);
    });
}

void grouped_matmul(const float* x, const std::vector<MatmulGroup>& groups, int64_t out, float* y) {
    const int64_t tiles_per_group = (out + kTileRows - 1) / kTileRows;
    const int64_t items = static_cast<int64_t>(groups.size()) * tiles_per_group;
    parallel_for(items, [&](int64_t b, int64_t e) {
        for (int64_t item = b; item < e; ++item) {
            const MatmulGroup& g = groups[item / tiles_per_group];
            const int64_t r0 = (item % tiles_per_group) * kTileRows;
            const int64_t in = g.weight->cols();
            matmul_rows(x + g.row_begin * in, g.row_end - g.row_begin, *g.weight, r0, std::min(out, r0 + kTileRows),
                        y + g.row_begin * out, out);
        }
    });
}

}  // namespace moeinfer::cpu
