// Paged causal attention for prefill, FlashAttention-2 style on tensor cores (mma.sync m16n8k16 bf16, fp32
// accumulation). The host cuts the batch into query tiles of ≤ 64 consecutive tokens of one sequence
// (PrefillTile); a block takes one tile and one query head. Each of its 4 warps owns 16 query rows and keeps
// everything of them in registers: the Q fragments (loaded once), the score tile S = Q·Kᵀ of the current 64 keys,
// the running max and sum, and the output accumulator O. Between the two products nothing goes through memory:
// the S accumulators of two 8-key column tiles are, once exponentiated and rounded to bf16, exactly the A operand
// of P·V for those 16 keys. K/V tiles of 64 keys stream from the paged cache into shared memory with cp.async,
// double-buffered (the next tile's copies are in flight while the current one is multiplied), in a layout whose
// 16-byte chunks are XOR-swizzled by row so ldmatrix reads them without bank conflicts. Only tiles that cross the
// causal diagonal or the sliding-window edge are masked. Blocks are ordered heads-fastest (the heads of a GQA
// group read the same K/V tile from L2 at about the same time) and the longest tiles (latest positions) first.
#include <cstdint>

#include "backends/cuda/mma.cuh"
#include "backends/cuda/ops.h"
#include "backends/cuda/paged_kv.cuh"

namespace moeinfer::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kBQ = 16 * kWarps;  // query rows per block
constexpr int kBK = 64;           // keys per step

template <int D>
struct Smem {
    bf16 q[kBQ * D];
    bf16 k[2][kBK * D];
    bf16 v[2][kBK * D];
};

template <int D>
__global__ void __launch_bounds__(32 * kWarps, 2) prefill_kernel(PrefillAttentionArgs a, PagedKv kv,
                                                                 const bf16* __restrict__ k_cache,
                                                                 const bf16* __restrict__ v_cache) {
    constexpr int kChunks = D / 8;   // 16-byte chunks per row
    constexpr int kSteps = D / 16;   // k steps of Q·Kᵀ, and pairs of 8-column output tiles of P·V
    extern __shared__ __align__(128) unsigned char smem_raw[];
    Smem<D>& sm = *reinterpret_cast<Smem<D>*>(smem_raw);
    const PrefillTile tile = a.tiles[a.num_tiles - 1 - blockIdx.y];  // latest (longest) tiles first
    const int64_t h = blockIdx.x, nh = a.num_heads, G = nh / kv.num_kv_heads, kvh = h / G;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t4 = lane & 3;  // mma fragment coordinates: row group, thread in group

    const int64_t first = tile.first_pos, last = first + tile.count - 1;
    const int64_t window = a.sliding_window;
    const int64_t lo = window > 0 ? max(int64_t(0), first + 1 - window) : 0;
    const int64_t k_begin = lo / kBK * kBK;
    const int n_steps = int((last - k_begin) / kBK) + 1;
    const int32_t* table = kv.block_tables + int64_t(tile.seq_row) * kv.max_blocks_per_seq;

    // Copies of a K/V tile: 64 rows × kChunks chunks each, spread over the block. Positions past the tile's last
    // query load that query's own row (always written); they are masked, so their values never count.
    auto load_kv = [&](int stage, int64_t k0) {
        for (int i = threadIdx.x; i < kBK * kChunks; i += 32 * kWarps) {
            const int r = i / kChunks, c = i % kChunks;
            const int64_t off = kv_offset(kv, table, min(k0 + r, last), last + 1, kvh, D);
            cp_async16(chunk_at<D>(sm.k[stage], r, c), k_cache + off + 8 * c);
            cp_async16(chunk_at<D>(sm.v[stage], r, c), v_cache + off + 8 * c);
        }
    };

    // Q rows of the tile (zeros past its count), in the same swizzled layout; then the first K/V tile.
    for (int i = threadIdx.x; i < kBQ * kChunks; i += 32 * kWarps) {
        const int r = i / kChunks, c = i % kChunks;
        uint4 val = make_uint4(0, 0, 0, 0);
        if (r < tile.count) val = reinterpret_cast<const uint4*>(a.q + ((int64_t(tile.first_token) + r) * nh + h) * D)[c];
        *reinterpret_cast<uint4*>(chunk_at<D>(sm.q, r, c)) = val;
    }
    load_kv(0, k_begin);
    cp_async_commit();
    __syncthreads();

    // The warp's Q as kSteps A fragments (16 rows × 16 columns each), kept in registers for the whole key loop.
    uint32_t qf[kSteps][4];
#pragma unroll
    for (int s = 0; s < kSteps; ++s) ldmatrix_x4(qf[s], chunk_at<D>(sm.q, warp * 16 + (lane & 15), 2 * s + (lane >> 4)));

    float o[2 * kSteps][4];  // 16 rows × D: 8-column tiles
#pragma unroll
    for (int j = 0; j < 2 * kSteps; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    // Rows g and g + 8 of the warp's 16 (this thread's rows in every fragment): running max (log2 units) and this
    // thread's share of the running sum (the 4 threads of a row group sum their shares at the end).
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    const float scale_log2 = a.scale * 1.4426950408889634f;
    const int64_t qpos[2] = {first + warp * 16 + g, first + warp * 16 + g + 8};

    for (int step = 0; step < n_steps; ++step) {
        const int stage = step & 1;
        const int64_t k0 = k_begin + int64_t(step) * kBK;
        if (step + 1 < n_steps) load_kv(stage ^ 1, k0 + kBK);
        cp_async_commit();
        cp_async_wait<1>();  // this step's tile has landed (the next one may still be in flight)
        __syncthreads();

        // S = Q·Kᵀ: 16 rows × 64 keys as 8 tiles of 8 keys. One ldmatrix.x4 gives the B fragments of two key tiles.
        float s[kBK / 8][4];
#pragma unroll
        for (int j = 0; j < kBK / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
        for (int ks = 0; ks < kSteps; ++ks) {
#pragma unroll
            for (int jp = 0; jp < kBK / 16; ++jp) {
                uint32_t b[4];
                ldmatrix_x4(b, chunk_at<D>(sm.k[stage], jp * 16 + (lane & 7) + ((lane >> 4) << 3),
                                           2 * ks + ((lane >> 3) & 1)));
                mma_bf16(s[2 * jp], qf[ks], b[0], b[1]);
                mma_bf16(s[2 * jp + 1], qf[ks], b[2], b[3]);
            }
        }

        // Mask only where the tile crosses the diagonal (or the window's edge): key > query, or key ≤ query − window.
        const bool full = k0 + kBK - 1 <= first && (window <= 0 || k0 > last - window);
#pragma unroll
        for (int j = 0; j < kBK / 8; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                float x = s[j][e] * scale_log2;
                if (!full) {
                    const int64_t key = k0 + 8 * j + 2 * t4 + (e & 1), qp = qpos[e >> 1];
                    if (key > qp || (window > 0 && key <= qp - window)) x = -INFINITY;
                }
                s[j][e] = x;
            }

        online_softmax_step(s, m, l, o);

        // O += P·V, 16 keys at a time: P's A fragment is two S tiles rounded to bf16; one ldmatrix.x4.trans of V
        // gives the B fragments of two 8-column output tiles.
#pragma unroll
        for (int kk = 0; kk < kBK / 16; ++kk) {
            const uint32_t pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                    pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                    pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int dp = 0; dp < kSteps; ++dp) {
                uint32_t b[4];
                ldmatrix_x4_trans(b, chunk_at<D>(sm.v[stage], kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3),
                                                 2 * dp + (lane >> 4)));
                mma_bf16(o[2 * dp], pa, b[0], b[1]);
                mma_bf16(o[2 * dp + 1], pa, b[2], b[3]);
            }
        }
        __syncthreads();  // every warp is done with this stage before the next step's copies overwrite it
    }

    // Each row's sum over its 4 threads, then O / l as bf16 pairs.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        const int row = warp * 16 + g + 8 * r;
        if (row >= tile.count) continue;
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        bf16* out = a.out + ((int64_t(tile.first_token) + row) * nh + h) * D;
#pragma unroll
        for (int j = 0; j < 2 * kSteps; ++j)
            *reinterpret_cast<__nv_bfloat162*>(out + 8 * j + 2 * t4) =
                __floats2bfloat162_rn(o[j][2 * r] * inv, o[j][2 * r + 1] * inv);
    }
}

template <int D>
void launch(const PrefillAttentionArgs& args, const PagedKv& kv, const bf16* k_cache, const bf16* v_cache,
            cudaStream_t stream) {
    const size_t smem = sizeof(Smem<D>);
    allow_dynamic_smem(prefill_kernel<D>, smem);
    prefill_kernel<D><<<dim3(unsigned(args.num_heads), unsigned(args.num_tiles)), 32 * kWarps, smem, stream>>>(
        args, kv, k_cache, v_cache);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

}  // namespace

bool prefill_attention_supported(int64_t head_dim) { return head_dim == 64 || head_dim == 128; }

void paged_prefill_attention(const PrefillAttentionArgs& args, const PagedKv& kv, const bf16* k_cache,
                             const bf16* v_cache, cudaStream_t stream) {
    if (args.num_tiles == 0) return;
    if (args.num_heads % kv.num_kv_heads != 0)
        throw std::invalid_argument("cuda::paged_prefill_attention: num_heads not a multiple of num_kv_heads");
    if (args.num_tiles > 65535)
        throw std::invalid_argument("cuda::paged_prefill_attention: more than 65535 query tiles in one step");
    switch (kv.head_dim) {
        case 64: launch<64>(args, kv, k_cache, v_cache, stream); break;
        case 128: launch<128>(args, kv, k_cache, v_cache, stream); break;
        default: throw std::invalid_argument("cuda::paged_prefill_attention: head_dim must be 64 or 128");
    }
}

}  // namespace moeinfer::cuda
