// Paged decode attention for small batches on tensor cores. At batch 1 the decode kernel of paged_attention.cu is
// bound by one warp's instruction chain (each lane scores its key against a head in fp32, then walks 32 V rows):
// about 9 µs a layer for a 640-token context of the 30B-A3B shape on H100, for 1.3 MB of keys and values. Here the
// G query heads of one kv head are the M side of m16n8k16 MMAs (rows past G are zeros), as the prefill kernel's
// query rows are: a warp scores its 16 keys against all the group's heads with kSteps·2 MMAs and multiplies P·V with
// as many, where the fp32 kernel's lanes walk every dot product and every V row one FMA at a time. Grid, split
// ranges and the split-K workspace are the decode kernel's (the same merge_kernel follows); a block's 4 warps take 16
// keys each of a 64-key step whose K/V rows stream into shared memory with cp.async (two stages, XOR-swizzled rows),
// each warp keeps an online softmax of its keys, and the warps' (m, l, O) meet in shared memory at the end. P is
// rounded to bf16 for the P·V product, as in the prefill kernel.
// H100, 30B-A3B shape, batch 1, 640-token context (bench/RESULTS.md 2026-11-27 10:24): 9.15 → 6.41 µs a layer,
// decode 266.7 → 277.3 tok/s; launched with PDL, its first keys loaded while RoPE runs: 278.1 → 283.5.
#include <cmath>

#include "backends/cuda/decode_attention_mma.h"
#include "backends/cuda/decode_split.cuh"
#include "backends/cuda/mma.cuh"
#include "backends/cuda/paged_kv.cuh"
#include "backends/cuda/pdl.cuh"

namespace moeinfer::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kWarpKeys = 16;                   // keys a warp takes per step: one k step of P·V
constexpr int kStepKeys = kWarps * kWarpKeys;   // keys per block step
constexpr int kRows = 16;                       // MMA rows: the group's query heads, zeros past G

template <int D>
struct DecodeMmaSmem {
    bf16 q[kRows * D];
    // K/V stages; after the key loop the same bytes hold the warps' O rows for the block's merge.
    union {
        struct {
            bf16 k[2][kStepKeys * D];
            bf16 v[2][kStepKeys * D];
        } kv;
        float o[kWarps][kRows][D];
    } u;
    float m[kWarps][kRows], l[kWarps][kRows];
};

template <int D>
__global__ void __launch_bounds__(32 * kWarps) decode_mma_kernel(DecodeAttentionArgs a, PagedKv kv,
                                                                 const bf16* __restrict__ k_cache,
                                                                 const bf16* __restrict__ v_cache) {
    constexpr int kChunks = D / 8;  // 16-byte chunks per row
    constexpr int kSteps = D / 16;  // k steps of Q·Kᵀ, and pairs of 8-column output tiles of P·V
    constexpr int kRowsPerPass = 32 * kWarps / kChunks;  // K/V rows one pass of the block's threads copies
    if (a.num_splits == 1) pdl_trigger();  // no merge after it: the output projection may start loading weights
    extern __shared__ __align__(128) unsigned char smem_raw[];
    DecodeMmaSmem<D>& sm = *reinterpret_cast<DecodeMmaSmem<D>*>(smem_raw);
    const int64_t kvh = blockIdx.x, seq = blockIdx.y, split = blockIdx.z;
    const int G = int(a.num_heads / kv.num_kv_heads);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t4 = lane & 3;  // mma fragment coordinates: row group, thread in group

    const DecodeSplitRange range = decode_split_range(a, seq, split);
    const int64_t len = range.len, begin = range.begin, end = range.end;
    const int n_steps = end > begin ? int((end - begin + kStepKeys - 1) / kStepKeys) : 0;
    const int32_t* table = kv.block_tables + (a.query_seq ? int64_t(a.query_seq[seq]) : seq) * kv.max_blocks_per_seq;

    // A step's K/V rows: thread i copies chunk i % kChunks of rows i / kChunks, + kRowsPerPass, ...; its rows' cache
    // offsets are looked up first, all together (one round trip), then the copies issued. Rows past `end` are zeros.
    auto load_kv = [&](int stage, int64_t k0) {
        const int c = threadIdx.x % kChunks, r0 = threadIdx.x / kChunks;
        int64_t off[kStepKeys / kRowsPerPass];
#pragma unroll
        for (int p = 0; p < kStepKeys / kRowsPerPass; ++p)
            off[p] = kv_offset(kv, table, k0 + r0 + p * kRowsPerPass, end, kvh, D) + 8 * c;
#pragma unroll
        for (int p = 0; p < kStepKeys / kRowsPerPass; ++p) {
            const int r = r0 + p * kRowsPerPass;
            const bool ok = k0 + r < end;
            cp_async16_or_zero(chunk_at<D>(sm.u.kv.k[stage], r, c), k_cache + off[p], ok);
            cp_async16_or_zero(chunk_at<D>(sm.u.kv.v[stage], r, c), v_cache + off[p], ok);
        }
    };
    // The group's query rows (zeros past G) with the first step, in one copy group.
    const bf16* q = a.q + (seq * a.num_heads + kvh * G) * D;
    auto load_q = [&] {
        for (int i = threadIdx.x; i < kRows * kChunks; i += 32 * kWarps) {
            const int r = i / kChunks, c = i % kChunks;
            cp_async16_or_zero(chunk_at<D>(sm.q, r, c), q + (r < G ? r * D + 8 * c : 0), r < G);
        }
    };
    // Launched with PDL while the RoPE kernel writes q and the newest keys: a first step of older keys only is
    // copied before waiting for it, so its round trip overlaps that kernel; the query always after.
    const bool early = min(end, begin + kStepKeys) <= len - a.fresh_keys;
    if (early && n_steps > 0) load_kv(0, begin);
    pdl_wait();
    load_q();
    if (!early && n_steps > 0) load_kv(0, begin);
    cp_async_commit();

    uint32_t qf[kSteps][4];  // the Q fragments, loaded from shared memory once
    float o[2 * kSteps][4];  // 16 rows × D: 8-column tiles
#pragma unroll
    for (int j = 0; j < 2 * kSteps; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    // Rows g and g + 8: running max (log2 units, scale included) and this thread's share of the running sum.
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    const float scale_log2 = a.scale * 1.4426950408889634f;
    const bool active = n_steps > 0 && begin + warp * kWarpKeys < end;  // the warp has keys in the first step

    for (int step = 0; step < n_steps; ++step) {
        const int stage = step & 1;
        const int64_t k0 = begin + int64_t(step) * kStepKeys;
        if (step + 1 < n_steps) load_kv(stage ^ 1, k0 + kStepKeys);
        cp_async_commit();
        cp_async_wait<1>();  // this step's tile (and Q) has landed; the next one may still be in flight
        __syncthreads();
        if (step == 0)
#pragma unroll
            for (int s = 0; s < kSteps; ++s) ldmatrix_x4(qf[s], chunk_at<D>(sm.q, lane & 15, 2 * s + (lane >> 4)));
        const int64_t kw = k0 + warp * kWarpKeys;  // the warp's first key
        if (kw < end) {
            // S = Q·Kᵀ: 16 rows × the warp's 16 keys as two 8-key tiles; one ldmatrix.x4 gives both B fragments.
            float s[2][4] = {};
#pragma unroll
            for (int ks = 0; ks < kSteps; ++ks) {
                uint32_t b[4];
                ldmatrix_x4(b, chunk_at<D>(sm.u.kv.k[stage], warp * kWarpKeys + (lane & 7) + ((lane >> 4) << 3),
                                           2 * ks + ((lane >> 3) & 1)));
                mma_bf16(s[0], qf[ks], b[0], b[1]);
                mma_bf16(s[1], qf[ks], b[2], b[3]);
            }
#pragma unroll
            for (int j = 0; j < 2; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e)
                    s[j][e] = kw + 8 * j + 2 * t4 + (e & 1) < end ? s[j][e] * scale_log2 : -INFINITY;
            online_softmax_step(s, m, l, o);
            // O += P·V over the warp's 16 keys: P's A fragment is the two S tiles rounded to bf16; one
            // ldmatrix.x4.trans of V gives the B fragments of two 8-column output tiles.
            const uint32_t pa[4] = {pack_bf16(s[0][0], s[0][1]), pack_bf16(s[0][2], s[0][3]),
                                    pack_bf16(s[1][0], s[1][1]), pack_bf16(s[1][2], s[1][3])};
#pragma unroll
            for (int dp = 0; dp < kSteps; ++dp) {
                uint32_t b[4];
                ldmatrix_x4_trans(b, chunk_at<D>(sm.u.kv.v[stage], warp * kWarpKeys + (lane & 7) + (((lane >> 3) & 1) << 3),
                                                 2 * dp + (lane >> 4)));
                mma_bf16(o[2 * dp], pa, b[0], b[1]);
                mma_bf16(o[2 * dp + 1], pa, b[2], b[3]);
            }
        }
        __syncthreads();  // every warp is done with this stage before the next copies (or the merge) overwrite it
    }

    cp_async_wait<0>();  // (no step: the query copies are still owed a wait)
    // The warps' (m, l, O) rows into shared memory (a warp without keys leaves l = 0), then thread i combines
    // column i % D of head i / D over the warps.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        const int row = g + 8 * r;
        if (t4 == 0) {
            sm.m[warp][row] = active ? m[r] : -INFINITY;
            sm.l[warp][row] = active ? l[r] : 0.0f;
        }
        if (active && row < G)
#pragma unroll
            for (int j = 0; j < 2 * kSteps; ++j)
                *reinterpret_cast<float2*>(&sm.u.o[warp][row][8 * j + 2 * t4]) = make_float2(o[j][2 * r], o[j][2 * r + 1]);
    }
    __syncthreads();
    for (int i = threadIdx.x; i < G * D; i += 32 * kWarps) {
        const int row = i / D, d = i % D;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < kWarps; ++w)
            if (sm.l[w][row] > 0.0f) M = fmaxf(M, sm.m[w][row]);
        float L = 0.0f, A = 0.0f;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) {
            if (sm.l[w][row] > 0.0f) {
                const float f = exp2f(sm.m[w][row] - M);
                L += sm.l[w][row] * f;
                A += sm.u.o[w][row][d] * f;
            }
        }
        // M from log2 units to the natural-log ones of the workspace.
        store_decode_result(a, seq, kvh * G + row, split, D, d, A, L, M * 0.6931471805599453f);
    }
}

template <int D>
void launch(const DecodeAttentionArgs& args, const PagedKv& kv, const bf16* k_cache, const bf16* v_cache,
            cudaStream_t stream) {
    const size_t smem = sizeof(DecodeMmaSmem<D>);
    allow_dynamic_smem(decode_mma_kernel<D>, smem);
    const dim3 grid(unsigned(kv.num_kv_heads), unsigned(args.num_seqs), unsigned(args.num_splits));
    launch_pdl(decode_mma_kernel<D>, grid, 32 * kWarps, smem, stream, args, kv, k_cache, v_cache);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

}  // namespace

bool decode_attention_mma_supported(const DecodeAttentionArgs& args, const PagedKv& kv) {
    return (kv.head_dim == 64 || kv.head_dim == 128) && args.num_heads / kv.num_kv_heads <= kRows;
}

void decode_attention_mma(const DecodeAttentionArgs& args, const PagedKv& kv, const bf16* k_cache,
                          const bf16* v_cache, cudaStream_t stream) {
    if (kv.head_dim == 64) launch<64>(args, kv, k_cache, v_cache, stream);
    else launch<128>(args, kv, k_cache, v_cache, stream);
}

}  // namespace moeinfer::cuda
