// Matmul kernels over stored-dtype weights (see matmul.h). Per weight dtype:
//  - Q8_0 / Q4_0 / Q4_K / Q5_K / Q6_K: activations are quantized to int8 blocks once per call; int8 VNNI products.
//  - F16 / BF16 with few tokens (decode): fused dot products read the stored row directly.
//  - F32 / F16 / BF16 from a few tokens up (kPackedMinTokens*), on AVX-512: the cache-blocked packed GEMM (f32_gemm.h).
//  - otherwise: a tile of kTileRows rows is converted to fp32 once, then the register-blocked micro-kernel runs
//    over 4 rows × 4 tokens at a time, so prefill converts each weight row once per call, not once per token.
#include "backends/cpu/matmul.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "backends/cpu/f32_gemm.h"
#include "backends/cpu/fused_dot.h"
#include "backends/cpu/int8_gemm.h"
#include "backends/cpu/microkernel.h"
#include "backends/cpu/panel_gemm.h"
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

std::atomic<GemmArith>& arith_setting() {
    static std::atomic<GemmArith> arith{[] {
        const char* env = std::getenv("MOEINFER_BF16_GEMM");  // "0" keeps the exact fp32 products
        const bool bf16 = !env || std::strcmp(env, "0") != 0;
        return bf16_gemm_available() && bf16 ? GemmArith::Bf16 : GemmArith::Fp32;
    }()};
    return arith;
}

struct Activations {
    const float* x;       // [T, in]
    const Q8Activations* xq;  // when the weights want int8 activations, else nullptr
    int64_t t0;               // first token of this slice within *xq
    int64_t T;
};

bool is_kquant_int8(DType t) { return t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K; }
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
        row_begin = panel_gemm(w, row_begin, row_end, *a.xq, a.t0, T, y, y_stride);  // prefill: whole panels
        if (row_begin < row_end)
            (is_kquant_int8(w.dtype) ? kquant_gemm : int8_gemm)(w, row_begin, row_end, *a.xq, a.t0, T, y, y_stride);
        return;
    }
    if ((w.dtype == DType::F16 || w.dtype == DType::BF16) && T <= kFusedMaxTokens) {
        const auto* w0 = reinterpret_cast<const uint16_t*>(w.row(row_begin));
        for (int64_t t = 0; t < T; ++t)
            dot_rows_half(w.dtype, float_gemm_arith(), a.x + t * in, w0, in, row_end - row_begin, in, y + t * y_stride + row_begin);
        return;
    }
    const bool plain = w.dtype == DType::F32 || w.dtype == DType::F16 || w.dtype == DType::BF16;
    const int64_t packed_min_tokens = w.dtype == DType::F32 ? kPackedMinTokensF32 : kPackedMinTokens;
    if (plain && T >= packed_min_tokens && f32_gemm_available()) {
        const bool halves = w.dtype == DType::F16 || w.dtype == DType::BF16;
        f32_gemm(a.x, T, w, row_begin, row_end, y, y_stride, halves ? float_gemm_arith() : GemmArith::Fp32);
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
            const size_t row_bytes = w.row_bytes();
            for (int64_t r = 0; r < nr; ++r)
                row_to_f32(w.dtype, static_cast<const uint8_t*>(w.data) + (r0 + r) * row_bytes, buf.data() + r * in, in);
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

GemmArith float_gemm_arith() { return arith_setting().load(std::memory_order_relaxed); }
void set_float_gemm_arith(GemmArith arith) {
    arith_setting().store(arith == GemmArith::Bf16 && !bf16_gemm_available() ? GemmArith::Fp32 : arith,
                          std::memory_order_relaxed);
}

void matmul_rows(const float* x, int64_t T, const Tensor& w, int64_t row_begin, int64_t row_end, float* y,
                 int64_t y_stride) {
    Q8Activations q;
    rows_kernel(prepare(x, T, w.cols(), wants_q8(w.dtype, w.cols()), q), w, row_begin, row_end, y, y_stride);
}

void matmul(const float* x, int64_t T, const Tensor& w, float* y) {
    MOE_CHECK(w.shape.size() == 2, "matmul weight " + w.name + " must be 2-D");
    matmul_jobs(x, {{&w, 0, T, y, w.rows()}});
}

void matmul_jobs(const float* x, const std::vector<MatmulJob>& jobs) {
    if (jobs.empty()) return;
    const int64_t in = jobs[0].weight->cols();
    int64_t rows = 0, max_tiles = 0;
    bool quantize = false;
    for (const MatmulJob& j : jobs) {
        MOE_CHECK(j.weight->cols() == in, "matmul_jobs: weight " + j.weight->name + " has another input width");
        rows = std::max(rows, j.row_end);
        quantize |= wants_q8(j.weight->dtype, in);
        max_tiles = std::max(max_tiles, (j.weight->rows() + kTileRows - 1) / kTileRows);
    }
    // Kept per calling thread: its buffers (several MB in prefill) are reused instead of being allocated and
    // page-faulted in again by every call.
    thread_local Q8Activations q;
    const Activations all = prepare(x, rows, in, quantize, q);  // quantized once for every job
    // Items are (job, output-row tile) pairs numbered tile-major, so each thread's contiguous chunk holds about the
    // same share of every job's rows: the work splits evenly however unevenly tokens fall to jobs (experts). A job's
    // tiles inside one chunk are consecutive, so one rows_kernel call covers them (the packed GEMM prepares a job's
    // activations once per call).
    std::vector<std::pair<int32_t, int32_t>> items;  // (job, tile)
    for (int64_t t = 0; t < max_tiles; ++t)
        for (size_t j = 0; j < jobs.size(); ++j)
            if (jobs[j].row_end > jobs[j].row_begin && t * kTileRows < jobs[j].weight->rows())
                items.emplace_back(static_cast<int32_t>(j), static_cast<int32_t>(t));
    parallel_for(static_cast<int64_t>(items.size()), [&](int64_t b, int64_t e) {
        std::vector<std::pair<int64_t, int64_t>> range(jobs.size(), {INT64_MAX, -1});  // first, last tile per job
        for (int64_t i = b; i < e; ++i) {
            auto& [lo, hi] = range[items[i].first];
            lo = std::min<int64_t>(lo, items[i].second);
            hi = std::max<int64_t>(hi, items[i].second);
        }
        for (size_t jn = 0; jn < jobs.size(); ++jn) {
            if (range[jn].second < 0) continue;
            const MatmulJob& j = jobs[jn];
            const Activations a{x + j.row_begin * in, all.xq, j.row_begin, j.row_end - j.row_begin};
            rows_kernel(a, *j.weight, range[jn].first * kTileRows,
                        std::min(j.weight->rows(), (range[jn].second + 1) * kTileRows), j.y, j.y_stride);
        }
    });
}

void grouped_matmul(const float* x, const std::vector<MatmulGroup>& groups, int64_t out, float* y) {
    std::vector<MatmulJob> jobs;
    jobs.reserve(groups.size());
    for (const MatmulGroup& g : groups) jobs.push_back({g.weight, g.row_begin, g.row_end, y + g.row_begin * out, out});
    matmul_jobs(x, jobs);
}

}  // namespace moeinfer::cpu
