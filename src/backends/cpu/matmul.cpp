// Matmul kernels over stored-dtype weights (see matmul.h). Per weight dtype:
//  - Q8_0 / Q4_0 / Q4_K / Q6_K: activations are quantized to int8 blocks once per call; int8 VNNI products.
//  - F16 / BF16 with few tokens (decode): fused dot products read the stored row directly.
//  - F32 / F16 / BF16 from a few tokens up (kPackedMinTokens*), on AVX-512: the cache-blocked packed GEMM (f32_gemm.h).
//  - otherwise: a tile of kTileRows rows is converted to fp32 once, then the register-blocked micro-kernel runs
//    over 4 rows × 4 tokens at a time, so prefill converts each weight row once per call, not once per token.
#include "backends/cpu/matmul.h"

#include <algorithm>

#include "backends/cpu/f32_gemm.h"
#include "backends/cpu/fused_dot.h"
#include "backends/cpu/int8_gemm.h"
#include "backends/cpu/microkernel.h"
#include "core/check.h"
#include "core/thread_pool.h"
#include "formats/dequant.h"

namespace moeinfer::cpu {
namespace {

constexpr int64_t kTileRows = 16;
constexpr int64_t kFusedMaxTokens = 3;  // up to this many tokens, F16/BF16 rows are read in place
// From this many tokens the packed GEMM wins (Zen 5, 2 threads, 2048 × 2048 weights from DRAM): for F16 / BF16 right
// after the fused dot's range; F32 weights, twice the bytes to pack, tie at 6 and lose at 4 to the micro-kernel
// that reads the rows in place.
constexpr int64_t kPackedMinTokens = 4;
constexpr int64_t kPackedMinTokensF32 = 8;

struct Activations {
    const float* x;       // [T, in]
    const Q8Activations* xq;  // when the weights want int8 activations, else nullptr
    int64_t t0;               // first token of this slice within *xq
    int64_t T;
};

bool is_kquant_int8(DType t) { return t == DType::Q4_K || t == DType::Q6_K; }
bool wants_q8(DType t, int64_t in) {
    return ((t == DType::Q8_0 || t == DType::Q4_0) && in % 32 == 0) || (is_kquant_int8(t) && in % 256 == 0);
}

std::vector<float>& tile_buffer(size_t n) {
    thread_local std::vector<float> buf;
    if (buf.size() < n) buf.resize(n);
    return buf;
}

void rows_kernel(const Activations& a, const Tensor& w, int64_t row_begin, int64_t row_end, float* y,
                 int64_t y_stride) {
    const int64_t in = w.cols(), T = a.T;
    if (a.xq && wants_q8(w.dtype, in)) {
        (is_kquant_int8(w.dtype) ? kquant_gemm : int8_gemm)(w, row_begin, row_end, *a.xq, a.t0, T, y, y_stride);
        return;
    }
    if ((w.dtype == DType::F16 || w.dtype == DType::BF16) && T <= kFusedMaxTokens) {
        auto dot = w.dtype == DType::F16 ? dot_rows_f16 : dot_rows_bf16;
        const auto* w0 = reinterpret_cast<const uint16_t*>(w.row(row_begin));
        for (int64_t t = 0; t < T; ++t) dot(a.x + t * in, w0, in, row_end - row_begin, in, y + t * y_stride + row_begin);
        return;
    }
    const bool plain = w.dtype == DType::F32 || w.dtype == DType::F16 || w.dtype == DType::BF16;
    const int64_t packed_min_tokens = w.dtype == DType::F32 ? kPackedMinTokensF32 : kPackedMinTokens;
    if (plain && T >= packed_min_tokens && f32_gemm_available()) {
        f32_gemm(a.x, T, w, row_begin, row_end, y, y_stride);
        return;
    }
    const bool direct = w.dtype == DType::F32;
    std::vector<float>& buf = tile_buffer(direct ? 0 : kTileRows * in);
    for (int64_t r0 = row_begin; r0 < row_end; r0 += kTileRows) {
        const int64_t nr = std::min(kTileRows, row_end - r0);
        const float* tile;
        if (direct) {
            tile = static_cast<const float*>(w.data) + r0 * in;
        } else {
            for (int64_t r = 0; r < nr; ++r) row_to_f32(w.dtype, w.row(r0 + r), buf.data() + r * in, in);
            tile = buf.data();
        }
        for (int64_t t = 0; t < T; t += 4)
            for (int64_t r = 0; r < nr; r += 4)
                micro_gemm(tile + r * in, std::min<int64_t>(4, nr - r), a.x + t * in, in, std::min<int64_t>(4, T - t),
                           in, y + t * y_stride + r0 + r, y_stride);
    }
}

Activations prepare(const float* x, int64_t T, int64_t in, bool quantize, Q8Activations& storage) {
    if (quantize) quantize_activations(x, T, in, storage);
    return {x, quantize ? &storage : nullptr, 0, T};
}

}  // namespace

void matmul_rows(const float* x, int64_t T, const Tensor& w, int64_t row_begin, int64_t row_end, float* y,
                 int64_t y_stride) {
    Q8Activations q;
    rows_kernel(prepare(x, T, w.cols(), wants_q8(w.dtype, w.cols()), q), w, row_begin, row_end, y, y_stride);
}

void matmul(const float* x, int64_t T, const Tensor& w, float* y) {
    MOE_CHECK(w.shape.size() == 2, "matmul weight " + w.name + " must be 2-D");
    const int64_t out = w.rows();
    Q8Activations q;
    const Activations a = prepare(x, T, w.cols(), wants_q8(w.dtype, w.cols()), q);
    const int64_t tiles = (out + kTileRows - 1) / kTileRows;
    parallel_for(tiles, [&](int64_t b, int64_t e) {
        rows_kernel(a, w, b * kTileRows, std::min(out, e * kTileRows), y, out);
    });
}

void grouped_matmul(const float* x, const std::vector<MatmulGroup>& groups, int64_t out, float* y) {
    if (groups.empty()) return;
    const int64_t in = groups[0].weight->cols();
    int64_t rows = 0;
    bool quantize = false;
    for (const MatmulGroup& g : groups) {
        rows = std::max(rows, g.row_end);
        quantize |= wants_q8(g.weight->dtype, in);
    }
    Q8Activations q;
    const Activations all = prepare(x, rows, in, quantize, q);
    // Items are (tile, group) pairs numbered tile-major, so each thread's contiguous chunk holds about the same
    // share of every group's rows: the work splits evenly however unevenly tokens fall to groups (experts), and one
    // rows_kernel call covers all of a group's rows in the chunk (the packed GEMM prepares a group's activations
    // once per call).
    const int64_t G = static_cast<int64_t>(groups.size());
    const int64_t tiles_per_group = (out + kTileRows - 1) / kTileRows;
    parallel_for(G * tiles_per_group, [&](int64_t b, int64_t e) {
        for (int64_t gi = 0; gi < G; ++gi) {
            // Tiles i with b <= i·G + gi < e.
            const int64_t tile_begin = std::max<int64_t>(0, (b - gi + G - 1) / G);
            const int64_t tile_end = std::min(tiles_per_group, (e - gi + G - 1) / G);
            const MatmulGroup& g = groups[gi];
            if (tile_begin >= tile_end || g.row_end == g.row_begin) continue;
            const Activations a{x + g.row_begin * in, all.xq, g.row_begin, g.row_end - g.row_begin};
            rows_kernel(a, *g.weight, tile_begin * kTileRows, std::min(out, tile_end * kTileRows),
                        y + g.row_begin * out, out);
        }
    });
}

}  // namespace moeinfer::cpu
