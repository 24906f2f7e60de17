// Paged causal attention for prefill, FlashAttention-style on tensor cores (WMMA bf16, fp32 accumulation).
// The host cuts the batch into query tiles of ≤ 64 consecutive tokens of one sequence (PrefillTile); a block
// takes one tile and one query head, streams that sequence's keys 64 at a time from the paged cache into shared
// memory, and keeps an online softmax per query row. Each of the 4 warps owns 16 query rows: S = Q·Kᵀ on tensor
// cores into shared memory, mask (causal by position, sliding window) and softmax by the warp's lanes (two per
// row), then O += P·V on tensor cores with O kept in shared memory (rescaled per row between tiles, since WMMA
// accumulators cannot be scaled by row). Keys are read once per tile, not once per query as the decode kernel
// (query_seq mode) would; heads of one GQA group still read their K/V tile separately.
#include <mma.h>

#include "backends/cuda/ops.h"

namespace moeinfer::cuda {
namespace {

using namespace nvcuda;

constexpr int kWarps = 4;
constexpr int kBQ = 16 * kWarps;  // query rows per block
constexpr int kBK = 64;           // keys per step

template <int D>
struct Smem {
    bf16 q[kBQ][D];
    bf16 k[kBK][D];
    bf16 v[kBK][D];
    float s[kWarps][16][kBK];
    bf16 p[kWarps][16][kBK];
    float o[kWarps][16][D];
};

template <int D>
__global__ void __launch_bounds__(32 * kWarps) prefill_kernel(PrefillAttentionArgs a, PagedKv kv,
                                                              const bf16* __restrict__ k_cache,
                                                              const bf16* __restrict__ v_cache) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    Smem<D>& sm = *reinterpret_cast<Smem<D>*>(smem_raw);
    const PrefillTile tile = a.tiles[blockIdx.x];
    const int64_t h = blockIdx.y, nh = a.num_heads, G = nh / kv.num_kv_heads, kvh = h / G;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    constexpr int kPieces = D / 8;  // 16-byte pieces per row

    for (int i = threadIdx.x; i < kBQ * kPieces; i += blockDim.x) {
        const int r = i / kPieces, c = i % kPieces;
        uint4 val = make_uint4(0, 0, 0, 0);
        if (r < tile.count)
            val = reinterpret_cast<const uint4*>(a.q + ((int64_t(tile.first_token) + r) * nh + h) * D)[c];
        reinterpret_cast<uint4*>(&sm.q[r][0])[c] = val;
    }
    for (int i = lane; i < 16 * D; i += 32) sm.o[warp][i / D][i % D] = 0.0f;

    // Lane pair (2r, 2r+1) owns row r of the warp's 16: columns [32·half, 32·half + 32) of each key step.
    const int row = lane >> 1, half = lane & 1;
    const int qrow = warp * 16 + row;
    const int64_t qpos = int64_t(tile.first_pos) + qrow;
    const bool row_valid = qrow < tile.count;
    float m = -INFINITY, l = 0.0f;

    const int64_t last = int64_t(tile.first_pos) + tile.count - 1;
    const int64_t lo = a.sliding_window > 0 ? max(int64_t(0), int64_t(tile.first_pos) + 1 - a.sliding_window) : 0;
    const int32_t* table = kv.block_tables + int64_t(tile.seq_row) * kv.max_blocks_per_seq;
    for (int64_t k0 = lo / kBK * kBK; k0 <= last; k0 += kBK) {
        __syncthreads();  // the previous step's K/V are no longer read
        for (int i = threadIdx.x; i < kBK * kPieces; i += blockDim.x) {
            const int j = i / kPieces, c = i % kPieces;
            const int64_t pos = k0 + j;
            uint4 kval = make_uint4(0, 0, 0, 0), vval = make_uint4(0, 0, 0, 0);
            if (pos <= last) {
                const int64_t off =
                    ((int64_t(table[pos / kv.block_size]) * kv.block_size + pos % kv.block_size) * kv.num_kv_heads + kvh) * D;
                kval = reinterpret_cast<const uint4*>(k_cache + off)[c];
                vval = reinterpret_cast<const uint4*>(v_cache + off)[c];
            }
            reinterpret_cast<uint4*>(&sm.k[j][0])[c] = kval;
            reinterpret_cast<uint4*>(&sm.v[j][0])[c] = vval;
        }
        __syncthreads();

        // S = Q·Kᵀ for the warp's 16 rows × 64 keys.
        for (int n = 0; n < kBK / 16; ++n) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> qa;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> kb;
                wmma::load_matrix_sync(qa, &sm.q[warp * 16][kk * 16], D);
                wmma::load_matrix_sync(kb, &sm.k[n * 16][kk * 16], D);
                wmma::mma_sync(acc, qa, kb, acc);
            }
            wmma::store_matrix_sync(&sm.s[warp][0][n * 16], acc, kBK, wmma::mem_row_major);
        }
        __syncwarp();

        // Online softmax of this row's half of the step, combined with the partner lane.
        float x[32];
        float step_max = -INFINITY;
#pragma unroll
        for (int c = 0; c < 32; ++c) {
            const int col = half * 32 + c;
            const int64_t key = k0 + col;
            const bool ok = row_valid && key <= qpos && (a.sliding_window <= 0 || key > qpos - a.sliding_window);
            x[c] = ok ? sm.s[warp][row][col] * a.scale : -INFINITY;
            step_max = fmaxf(step_max, x[c]);
        }
        step_max = fmaxf(step_max, __shfl_xor_sync(0xffffffffu, step_max, 1));
        const float m_new = fmaxf(m, step_max);
        const float corr = m_new == -INFINITY ? 1.0f : __expf(m - m_new);
        float sum = 0.0f;
#pragma unroll
        for (int c = 0; c < 32; ++c) {
            const float p = m_new == -INFINITY ? 0.0f : __expf(x[c] - m_new);
            sum += p;
            sm.p[warp][row][half * 32 + c] = __float2bfloat16(p);
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        l = l * corr + sum;
        m = m_new;
        for (int c = half * (D / 2); c < (half + 1) * (D / 2); ++c) sm.o[warp][row][c] *= corr;
        __syncwarp();

        // O += P·V for the warp's rows.
        for (int dn = 0; dn < D / 16; ++dn) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::load_matrix_sync(acc, &sm.o[warp][0][dn * 16], D, wmma::mem_row_major);
#pragma unroll
            for (int kk = 0; kk < kBK / 16; ++kk) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> pa;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> vb;
                wmma::load_matrix_sync(pa, &sm.p[warp][0][kk * 16], kBK);
                wmma::load_matrix_sync(vb, &sm.v[kk * 16][dn * 16], D);
                wmma::mma_sync(acc, pa, vb, acc);
            }
            wmma::store_matrix_sync(&sm.o[warp][0][dn * 16], acc, D, wmma::mem_row_major);
        }
        __syncwarp();
    }

    if (row_valid) {
        bf16* out = a.out + ((int64_t(tile.first_token) + qrow) * nh + h) * D;
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        for (int c = half * (D / 2); c < (half + 1) * (D / 2); ++c) out[c] = __float2bfloat16(sm.o[warp][row][c] * inv);
    }
}

template <int D>
void launch(const PrefillAttentionArgs& args, const PagedKv& kv, const bf16* k_cache, const bf16* v_cache,
            cudaStream_t stream) {
    const size_t smem = sizeof(Smem<D>);
    MOEINFER_CUDA_CHECK(cudaFuncSetAttribute(prefill_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    prefill_kernel<D><<<dim3(unsigned(args.num_tiles), unsigned(args.num_heads)), 32 * kWarps, smem, stream>>>(
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
    switch (kv.head_dim) {
        case 64: launch<64>(args, kv, k_cache, v_cache, stream); break;
        case 128: launch<128>(args, kv, k_cache, v_cache, stream); break;
        default: throw std::invalid_argument("cuda::paged_prefill_attention: head_dim must be 64 or 128");
    }
}

}  // namespace moeinfer::cuda
