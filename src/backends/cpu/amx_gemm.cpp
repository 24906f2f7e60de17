// AMX tiles for the bf16 products against F16 / BF16 weights (GemmArith::Bf16), on CPUs that have them (Sapphire
// Rapids and later; the avx512 level only). One TDPBF16PS multiplies 16 weight rows × 32 k by 32 k × 16 tokens
// (8192 multiply-adds; a VDPBF16PS does 32), so prefill stops being bound by the vector units.
//  - A tiles are weight rows as stored (BF16, loaded straight from the mapped file with the row stride) or rounded
//    to bf16 once per panel (F16, and panels with a partial last K block or fewer than 32 rows, zero-padded), so
//    every row is computed the same way wherever a thread's range starts: results do not depend on the split.
//  - B tiles are the activations rounded to bf16 (as the AVX-512 panels round them) and laid out once per token chunk
//    in the tile's pair order: row p of a tile holds pair p (k = 2p, 2p + 1) of 16 tokens, a 16 × 16 transpose of
//    32-bit units.
//  - Each step keeps 2 × 2 accumulator tiles (32 rows × 32 tokens) over the whole K; they are stored, transposed to
//    token-major and written to y.
// The products are the bf16 ones of the AVX-512 path (both operands rounded to nearest even, fp32 sums) in another
// order; AMX also treats bf16 subnormals as zero, which no weight or activation of a real model is.
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>

#include "backends/cpu/f32_gemm.h"
#include "core/tensor.h"

#include "backends/cpu/kernel_variant.h"  // after every other include but the kernel-private headers
#include "backends/cpu/float_rows.h"
#include "backends/cpu/simd.h"

namespace moeinfer::cpu::MOEINFER_KERNEL_NS {

#if MOEINFER_AVX512BF16
// The tile instructions in this region only: a function declared with the level's target and defined with another
// would be a second version of it, not its definition.
#pragma GCC push_options
#pragma GCC target("amx-tile,amx-bf16")
namespace {

constexpr int64_t kAmxMinTokens = 32;  // two token tiles; fewer go to the AVX-512 panels

// Palette 1, tiles 0-7 all 16 rows × 64 bytes: 0-3 accumulators, 4-5 weights (A), 6-7 activations (B). In static
// read-only data: GCC 12 drops the stores of a config built on the stack before LDTILECFG.
struct alignas(64) TileConfig {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};
constexpr TileConfig make_tile_config() {
    TileConfig c{};
    c.palette = 1;
    for (int i = 0; i < 8; ++i) c.colsb[i] = 64, c.rows[i] = 16;
    return c;
}
constexpr TileConfig kTileConfig = make_tile_config();

// Tokens per chunk: the chunk's B tiles (2 bytes a token and k) stay within about 1 MiB of L2 while every weight
// panel streams past them.
int64_t token_chunk(int64_t kp) { return std::clamp<int64_t>((1 << 20) / (2 * kp) / 32 * 32, 32, 512); }

// GCC's tile-load intrinsic does not tell the compiler it reads memory: without this, the stores that packed the
// tiles could be left after the loads that read them.
inline void stores_before_tile_loads() { asm volatile("" ::: "memory"); }

// The activations of tokens [t0, t0 + n) as B tiles: tile (j, kb) at dst + (j · kblocks + kb) · 256 dwords holds
// tokens t0 + 16j .. + 15 (zero past n) for k = 32kb .. 32kb + 31 (zero past K), for whole pairs of tiles.
void pack_activations(const float* x, int64_t K, int64_t t0, int64_t n, int64_t kblocks, uint32_t* dst) {
    for (int64_t j = 0; j < (n + 31) / 32 * 2; ++j)
        for (int64_t kb = 0; kb < kblocks; ++kb) {
            __m512 v[16];
            for (int i = 0; i < 16; ++i)
                v[i] = 16 * j + i < n ? load32_bf16<DType::F32>(x + (t0 + 16 * j + i) * K + 32 * kb, K - 32 * kb)
                                      : _mm512_setzero_ps();
            transpose16(v);  // v[p] lane i: pair p of token i
            uint32_t* tile = dst + (j * kblocks + kb) * 256;
            for (int p = 0; p < 16; ++p) _mm512_storeu_ps(reinterpret_cast<float*>(tile + 16 * p), v[p]);
        }
}

// Rows [r0, r0 + nr) (nr ≤ 32) of w as bf16, 32 rows of kp elements from dst, zero-padded.
template <DType D>
void round_rows(const Tensor& w, int64_t r0, int64_t nr, int64_t K, int64_t kp, uint16_t* dst) {
    for (int64_t i = 0; i < 32; ++i)
        for (int64_t k = 0; k < kp; k += 32) {
            const __m512 v = i < nr ? load32_bf16<D>(w.row(r0 + i) + k * 2, K - k) : _mm512_setzero_ps();
            _mm512_storeu_ps(reinterpret_cast<float*>(dst + i * kp + k), v);
        }
}

// y[(t0 + t) · ys + r0 + r] for the 32 × 32 block in accumulator tiles 0-3 (rows r0.., r0+16.. × tokens t0.., t0+16..),
// rows < nr, tokens < nt.
void store_block(float* y, int64_t ys, int64_t t0, int64_t nt, int64_t r0, int64_t nr) {
    alignas(64) float c[4][16][16];
    _tile_stored(0, c[0], 64);
    _tile_stored(1, c[1], 64);
    _tile_stored(2, c[2], 64);
    _tile_stored(3, c[3], 64);
    for (int tile = 0; tile < 4; ++tile) {
        const int64_t rows = std::min<int64_t>(16, nr - 16 * (tile / 2)), tokens = nt - 16 * (tile % 2);
        if (rows <= 0 || tokens <= 0) continue;
        __m512 v[16];
        for (int i = 0; i < 16; ++i) v[i] = _mm512_load_ps(c[tile][i]);
        transpose16(v);  // v[t] lane r: token t, row r
        for (int64_t t = 0; t < std::min<int64_t>(16, tokens); ++t)
            _mm512_mask_storeu_ps(y + (t0 + 16 * (tile % 2) + t) * ys + r0 + 16 * (tile / 2), first_n(rows), v[t]);
    }
}

template <DType D>
void amx_gemm(const float* x, int64_t T, const Tensor& w, int64_t row_begin, int64_t row_end, float* y, int64_t ys) {
    const int64_t K = w.cols(), kp = (K + 31) / 32 * 32, kblocks = kp / 32;
    const int64_t chunk = token_chunk(kp);
    thread_local std::vector<uint32_t> b_tiles;
    thread_local std::vector<uint16_t> a_rows;
    b_tiles.resize((std::min(chunk, T) + 31) / 32 * 2 * kblocks * 256);
    a_rows.resize(32 * kp);
    _tile_loadconfig(&kTileConfig);
    for (int64_t tc0 = 0; tc0 < T; tc0 += chunk) {
        const int64_t tc = std::min(chunk, T - tc0);
        pack_activations(x, K, tc0, tc, kblocks, b_tiles.data());
        for (int64_t r0 = row_begin; r0 < row_end; r0 += 32) {
            const int64_t nr = std::min<int64_t>(32, row_end - r0);
            // Weight rows straight from memory where a whole 32-row panel of whole K blocks is there to read.
            const bool direct = D == DType::BF16 && nr == 32 && K == kp;
            const uint8_t* a = direct ? w.row(r0) : reinterpret_cast<const uint8_t*>(a_rows.data());
            const int64_t a_stride = direct ? int64_t(w.row_bytes()) : kp * 2;
            if (!direct) round_rows<D>(w, r0, nr, K, kp, a_rows.data());
            stores_before_tile_loads();
            for (int64_t t0 = 0; t0 < tc; t0 += 32) {
                const uint32_t* b0 = b_tiles.data() + (t0 / 16) * kblocks * 256;
                const uint32_t* b1 = b0 + kblocks * 256;  // zero tiles past the chunk's last token
                _tile_zero(0);
                _tile_zero(1);
                _tile_zero(2);
                _tile_zero(3);
                for (int64_t kb = 0; kb < kblocks; ++kb) {
                    _tile_loadd(4, a + kb * 64, a_stride);
                    _tile_loadd(5, a + 16 * a_stride + kb * 64, a_stride);
                    _tile_loadd(6, b0 + kb * 256, 64);
                    _tile_loadd(7, b1 + kb * 256, 64);
                    _tile_dpbf16ps(0, 4, 6);
                    _tile_dpbf16ps(1, 4, 7);
                    _tile_dpbf16ps(2, 5, 6);
                    _tile_dpbf16ps(3, 5, 7);
                }
                store_block(y, ys, tc0 + t0, std::min<int64_t>(32, tc - t0), r0, nr);
            }
        }
    }
    _tile_release();
}

}  // namespace
#pragma GCC pop_options

bool amx_available() {
    static const bool ok = [] {
        __builtin_cpu_init();
        if (!__builtin_cpu_supports("amx-tile") || !__builtin_cpu_supports("amx-bf16")) return false;
        const char* env = std::getenv("MOEINFER_AMX");  // "0": the AVX-512 panels instead (comparisons, tests)
        if (env && std::strcmp(env, "0") == 0) return false;
        // Linux hands out the tile state (8 KiB per thread) only on request, once per process.
        constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
        return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
    }();
    return ok;
}

bool amx_bf16_gemm(const float* x, int64_t T, const Tensor& w, int64_t row_begin, int64_t row_end, float* y,
                   int64_t y_stride) {
    if (T < kAmxMinTokens || !amx_available()) return false;
    if (w.dtype == DType::BF16) amx_gemm<DType::BF16>(x, T, w, row_begin, row_end, y, y_stride);
    else if (w.dtype == DType::F16) amx_gemm<DType::F16>(x, T, w, row_begin, row_end, y, y_stride);
    else return false;
    return true;
}

#else

// AMX is used from the avx512 level only (every AMX CPU has AVX-512 BF16); the avx512vnni level's panels do the
// products its table would have sent to AMX.
bool amx_available() { return false; }
#if MOEINFER_AVX512
bool amx_bf16_gemm(const float*, int64_t, const Tensor&, int64_t, int64_t, float*, int64_t) { return false; }
#endif

#endif

}  // namespace moeinfer::cpu::MOEINFER_KERNEL_NS
