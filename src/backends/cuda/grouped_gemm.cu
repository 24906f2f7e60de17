// MoE expert products with a row per expert or more (prefill, batched decode) on tensor cores, with the experts'
// row ranges read on the device: y rows [offsets[e], offsets[e+1]) = x rows (through row_token) · W[e]ᵀ. cuBLAS's
// grouped GEMM took the group sizes on the host, which cost a stream sync per MoE layer in every prefill step; here
// the launch is sized for the worst case (Σ_e ⌈rows_e / BM⌉ ≤ ⌈N_rows / BM⌉ + active experts) and each block finds
// its (expert, row tile) from the offsets, so a step never waits for the device.
//
// A block computes a BM × 128 tile of y (BM = 32, 64 or 128 token rows of one expert × 128 weight rows) with 8
// warps of m16n8k16 MMAs, 2 along M and 4 along N; K in 64-wide steps, 3 stages deep with cp.async. x rows are
// loaded straight from their token's row (row_token), so no gathered copy of x is made. The gate|up form
// (grouped_gemm_swiglu) spends a block's 128 weight rows on 64 features' gate and up rows and writes SwiGLU's output.
#include <algorithm>
#include <stdexcept>

#include "backends/cuda/mma.cuh"
#include "backends/cuda/ops.h"
#include "backends/cuda/swiglu.cuh"

namespace moeinfer::cuda {
namespace {

constexpr int kBN = 128, kBK = 64, kStages = 3, kThreads = 256;

struct GroupedGemmArgs {
    const bf16* x;
    const int32_t* row_token;  // nullptr: x row r for y row r
    const int32_t* offsets;    // [E + 1]
    const bf16* W;             // [E, N, K]; with SwiGLU [E, 2·N, K]: N gate rows, then N up rows
    int64_t E, N, K;
    bf16* y;  // [N_rows, N]
};

// This block's row tile: the blockIdx.y-th of all experts' tiles in expert order. Warp 0 scans the offsets 32
// experts at a time (a prefix sum of tile counts across the lanes); false: past the last tile.
template <int kBM>
__device__ bool find_tile(const GroupedGemmArgs& a, int64_t& e_out, int64_t& r0, int64_t& r1) {
    __shared__ int64_t found[3];
    const int lane = threadIdx.x & 31;
    if (threadIdx.x < 32) {
        const int64_t j = blockIdx.y;
        int64_t before = 0;  // tiles of the experts scanned so far
        bool hit = false;
        for (int64_t base = 0; base < a.E && !hit; base += 32) {
            const int64_t e = base + lane;
            const int64_t lo = e < a.E ? a.offsets[e] : 0, rows = e < a.E ? a.offsets[e + 1] - lo : 0;
            const int64_t tiles = (rows + kBM - 1) / kBM;
            int64_t incl = tiles;
#pragma unroll
            for (int d = 1; d < 32; d <<= 1) {
                const int64_t v = __shfl_up_sync(0xffffffffu, incl, d);
                if (lane >= d) incl += v;
            }
            const bool mine = tiles > 0 && before + incl - tiles <= j && j < before + incl;
            const unsigned ballot = __ballot_sync(0xffffffffu, mine);
            if (mine) {
                found[0] = e;
                found[1] = lo + (j - (before + incl - tiles)) * kBM;
                found[2] = min(lo + rows, found[1] + kBM);
            }
            hit = ballot != 0;
            before += __shfl_sync(0xffffffffu, incl, 31);
        }
        if (!hit && lane == 0) found[0] = -1;
    }
    __syncthreads();
    e_out = found[0], r0 = found[1], r1 = found[2];
    return e_out >= 0;
}

template <int kBM>
struct Smem {
    bf16 x[kStages][kBM * kBK];
    bf16 w[kStages][kBN * kBK];
};

// kSwiGLU: the block's 128 weight rows are 64 gate rows and the 64 up rows of the same features, so warps 2-3 along
// N hold the up values of warps 0-1's gate values, fragment for fragment; the epilogue meets them in shared memory
// and writes silu(gate) · up for 64 features (each product rounded to bf16 first, as silu_mul after a plain GEMM).
template <int kBM, bool kSwiGLU>
__global__ void __launch_bounds__(kThreads) grouped_gemm_kernel(GroupedGemmArgs a) {
    constexpr int kMTiles = kBM / 32;  // m16 tiles per warp (2 warps along M)
    constexpr int kXLoads = kBM * 8 / kThreads, kWLoads = kBN * 8 / kThreads;  // 16-byte chunks per thread and stage
    int64_t e, r0, r1;
    if (!find_tile<kBM>(a, e, r0, r1)) return;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    Smem<kBM>& sm = *reinterpret_cast<Smem<kBM>*>(smem_raw);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, wm = warp & 1, wn = warp >> 1;
    const int g = lane >> 2, t4 = lane & 3;
    const int64_t N = a.N, K = a.K, n0 = int64_t(blockIdx.x) * (kSwiGLU ? kBN / 2 : kBN);
    const int chunk = threadIdx.x & 7, row0 = threadIdx.x >> 3;  // this thread copies chunk `chunk` of rows row0 + 32i

    const bf16* xsrc[kXLoads];
    bool xvalid[kXLoads];
#pragma unroll
    for (int i = 0; i < kXLoads; ++i) {
        const int64_t r = r0 + row0 + 32 * i;
        xvalid[i] = r < r1;
        xsrc[i] = a.x + (xvalid[i] ? (a.row_token ? int64_t(a.row_token[r]) : r) * K : 0);
    }
    const bf16* wsrc[kWLoads];
#pragma unroll
    for (int i = 0; i < kWLoads; ++i) {
        const int r = row0 + 32 * i;
        int64_t w_row = min(n0 + r, N - 1);
        if constexpr (kSwiGLU) w_row = min(n0 + (r % (kBN / 2)), N - 1) + (r < kBN / 2 ? 0 : N);
        wsrc[i] = a.W + (e * (kSwiGLU ? 2 * N : N) + w_row) * K;
    }

    auto load_stage = [&](int stage, int64_t k0) {
        const int64_t k = k0 + 8 * chunk;
        const bool in_k = k < K;
#pragma unroll
        for (int i = 0; i < kXLoads; ++i)
            cp_async16_or_zero(chunk_at<kBK>(sm.x[stage], row0 + 32 * i, chunk), xsrc[i] + (in_k ? k : 0),
                               in_k && xvalid[i]);
#pragma unroll
        for (int i = 0; i < kWLoads; ++i)
            cp_async16_or_zero(chunk_at<kBK>(sm.w[stage], row0 + 32 * i, chunk), wsrc[i] + (in_k ? k : 0), in_k);
    };

    float acc[kMTiles][4][4] = {};
    const int n_steps = int((K + kBK - 1) / kBK);
#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
        if (s < n_steps) load_stage(s, int64_t(s) * kBK);
        cp_async_commit();
    }
    for (int step = 0; step < n_steps; ++step) {
        cp_async_wait<kStages - 2>();
        __syncthreads();  // this step's tiles are in; every warp is done with the stage the next load overwrites
        const int next = step + kStages - 1;
        if (next < n_steps) load_stage(next % kStages, int64_t(next) * kBK);
        cp_async_commit();
        bf16* xs = sm.x[step % kStages];
        bf16* ws = sm.w[step % kStages];
#pragma unroll
        for (int kk = 0; kk < kBK / 16; ++kk) {
            uint32_t af[kMTiles][4], bfr[2][4];
#pragma unroll
            for (int mi = 0; mi < kMTiles; ++mi)
                ldmatrix_x4(af[mi], chunk_at<kBK>(xs, wm * (kBM / 2) + mi * 16 + (lane & 15), 2 * kk + (lane >> 4)));
#pragma unroll
            for (int nj = 0; nj < 2; ++nj)
                ldmatrix_x4(bfr[nj], chunk_at<kBK>(ws, wn * 32 + nj * 16 + (lane & 7) + ((lane >> 4) << 3),
                                                   2 * kk + ((lane >> 3) & 1)));
#pragma unroll
            for (int mi = 0; mi < kMTiles; ++mi)
#pragma unroll
                for (int nj = 0; nj < 2; ++nj) {
                    mma_bf16(acc[mi][2 * nj], af[mi], bfr[nj][0], bfr[nj][1]);
                    mma_bf16(acc[mi][2 * nj + 1], af[mi], bfr[nj][2], bfr[nj][3]);
                }
        }
    }
    cp_async_wait<0>();

    if constexpr (kSwiGLU) {
        // Warps 2-3 along N post their up fragments; warps 0-1 take the ones matching theirs.
        constexpr int kAcc = kMTiles * 16;  // accumulator floats per thread
        float* up_s = reinterpret_cast<float*>(smem_raw);  // [2 (wm), 2 (wn % 2), kAcc, 32 lanes]
        float* mine = up_s + ((wm * 2 + (wn & 1)) * kAcc) * 32 + lane;
        __syncthreads();  // every warp is done with the pipeline's buffers
        if (wn >= 2) {
#pragma unroll
            for (int i = 0; i < kAcc; ++i) mine[i * 32] = acc[i / 16][(i / 4) % 4][i % 4];
        }
        __syncthreads();
        if (wn >= 2) return;
#pragma unroll
        for (int i = 0; i < kAcc; ++i) {
            const float g = __bfloat162float(__float2bfloat16(acc[i / 16][(i / 4) % 4][i % 4]));
            acc[i / 16][(i / 4) % 4][i % 4] = silu_times(g, __bfloat162float(__float2bfloat16(mine[i * 32])));
        }
    }
    // acc[mi][ni]: rows g and g + 8 of m16 tile mi, columns 2·t4 and 2·t4 + 1 of n8 tile ni (warps 0-1 along N only
    // with SwiGLU, whose 64 columns are features).
    const bool pairs = N % 2 == 0;  // a bf16 pair store is 4-byte aligned only then
#pragma unroll
    for (int mi = 0; mi < kMTiles; ++mi)
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int64_t r = r0 + wm * (kBM / 2) + mi * 16 + g + 8 * half;
            if (r >= r1) continue;
            bf16* yrow = a.y + r * N;
#pragma unroll
            for (int ni = 0; ni < 4; ++ni) {
                const int64_t n = n0 + wn * 32 + ni * 8 + 2 * t4;
                const float v0 = acc[mi][ni][2 * half], v1 = acc[mi][ni][2 * half + 1];
                if (pairs && n + 1 < N) {
                    *reinterpret_cast<__nv_bfloat162*>(yrow + n) = __floats2bfloat162_rn(v0, v1);
                } else {
                    if (n < N) yrow[n] = __float2bfloat16(v0);
                    if (n + 1 < N) yrow[n + 1] = __float2bfloat16(v1);
                }
            }
        }
}

template <int kBM, bool kSwiGLU>
void launch(const GroupedGemmArgs& a, int64_t N_rows, cudaStream_t stream) {
    const int64_t max_tiles = (N_rows + kBM - 1) / kBM + std::min(a.E, N_rows);
    if (max_tiles > 65535) throw std::invalid_argument("cuda::grouped_gemm: too many rows for one launch");
    const int64_t cols = kSwiGLU ? kBN / 2 : kBN;  // output columns per block
    const dim3 grid(unsigned((a.N + cols - 1) / cols), unsigned(max_tiles));
    const int smem = int(sizeof(Smem<kBM>));
    // Above the 48 KB default: opted in per launch (cheap, and right for whichever device is current).
    MOEINFER_CUDA_CHECK(
        cudaFuncSetAttribute(grouped_gemm_kernel<kBM, kSwiGLU>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    grouped_gemm_kernel<kBM, kSwiGLU><<<grid, kThreads, smem, stream>>>(a);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

template <bool kSwiGLU>
void dispatch(const GroupedGemmArgs& a, int64_t N_rows, cudaStream_t stream) {
    if (a.K % 8 != 0) throw std::invalid_argument("cuda::grouped_gemm: in must be a multiple of 8");
    if (N_rows == 0 || a.N == 0 || a.E == 0) return;
    // Tiles about as tall as an expert's rows, so little of the last tile is zero padding: at 1-4 rows an expert
    // (16-64 decoding sequences of the 30B-A3B shape) 32-row tiles were 3-11 % faster than 64-row ones on H100;
    // 128-row ones do prefill (pp4096: 256 rows an expert).
    if (N_rows < 24 * a.E) launch<32, kSwiGLU>(a, N_rows, stream);
    else if (N_rows < 96 * a.E) launch<64, kSwiGLU>(a, N_rows, stream);
    else launch<128, kSwiGLU>(a, N_rows, stream);
}

}  // namespace

void grouped_gemm(const bf16* x, const int32_t* row_token, const int32_t* offsets, int64_t E, int64_t N_rows,
                  const bf16* w, int64_t out, int64_t in, bf16* y, cudaStream_t stream) {
    dispatch<false>(GroupedGemmArgs{x, row_token, offsets, w, E, out, in, y}, N_rows, stream);
}

void grouped_gemm_swiglu(const bf16* x, const int32_t* row_token, const int32_t* offsets, int64_t E, int64_t N_rows,
                         const bf16* w_gate_up, int64_t ff, int64_t in, bf16* y, cudaStream_t stream) {
    dispatch<true>(GroupedGemmArgs{x, row_token, offsets, w_gate_up, E, ff, in, y}, N_rows, stream);
}

}  // namespace moeinfer::cuda
