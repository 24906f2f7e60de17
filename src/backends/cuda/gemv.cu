// Skinny GEMM for decode: y[r, :] = x[r, :] · W[e(r)]ᵀ for a handful of rows r, where cuBLASLt reaches only half of
// the memory bandwidth on 4096-wide weights. Decode is bound by reading W once, so the kernel is built around that
// read: a block owns 4 weight rows and its 256 threads split K between them, each streaming 16-byte pieces of all
// 4 rows (2 pieces per row in flight before any arithmetic, bypassing L1: the weights are touched once). Many
// small blocks keep every SM's load queue full even for 4096-row matrices, where one warp per row left most of
// the machine idle. The few activation rows stay in L1/L2. fp32 accumulation; warp shuffles, then shared memory.
// gemv_rms folds the RMSNorm before a decode product into it: each block sums the squares of the few fp32 residual
// rows itself (one pass over 8-16 KB from L2, after its first weight loads are in flight) and rounds the normalized
// values to bf16 as it loads them, so the norm costs no launch of its own on a decode step's chain.
// The grouped form serves MoE: rows are expert-contiguous (moe_permute's offsets), grid.y walks the non-empty
// experts (moe_permute's list of them) on the device, so no host sync is needed and the launch is graph-capturable.
// Experts with more than kXRows rows loop over row chunks, re-reading their weights (from L2 when it holds them).
// Once about half the experts hold a row (8-64 decoding sequences of a 128-expert model), grouped products run on
// tensor cores instead (grouped_mma_kernel: weights streamed through shared memory, read once per 16 rows); the
// host switches to cuBLAS grouped GEMMs when experts average many rows outside CUDA graphs (prefill).
#include "backends/cuda/mma.cuh"
#include "backends/cuda/ops.h"
#include "backends/cuda/pdl.cuh"
#include "backends/cuda/reduce.cuh"
#include "backends/cuda/swiglu.cuh"

namespace moeinfer::cuda {
namespace {

constexpr int kThreads = 256;
// Most rows gemv_rms takes: one row pass of the ≤ 4-row kernels, so a block sums each row's squares once.
constexpr int64_t kGemvNormRows = 4;
// What a kernel reads besides weights and bf16 activation rows, as compile-time flags (kMode): a kernel's register
// count, whatever path a launch takes, sets how many of its blocks stay resident, so a path only some launches take
// gets its own instantiations (a runtime switch to a MoE combine folded into gemv_rms took the batch-1 kernel from 74
// to 128 registers and the 8B decode from 228 to 175 tok/s on H200; the folded norm as its own instantiation, 64
// registers where the shared kernel had 74, took the 8B decode from 228.9 to 231.4 on H200, neutral on H100).
constexpr int kNormedIn = 1;  // x rows are the normalized fp32 residual rows (gemv_rms)
// Template parameters of the kernel: kXRows activation rows per pass (1, 2, 4, 8: registers hold kXRows·kWRows
// accumulators, so batch 1 runs with room for more resident blocks), kWRows weight rows per block (4; 8 or 16 at
// batch 1 when K is short, so a block still streams ~16-32 KB instead of retiring after a few loads), kUnroll
// K pieces per thread in flight per weight row and kBlock threads (256; at batch 1 with K under 1536 the K pieces
// of a row rounded up to whole warps: 256 threads over a 768-wide MoE down projection left 160 of them idle but
// holding registers, which capped the resident blocks and cost the kernel four waves).

__device__ __forceinline__ uint4 load_stream(const uint4* p) {
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p));
    return r;
}

__device__ __forceinline__ float dot8(const uint4& w, const uint4& x) {
    const __nv_bfloat162* wp = reinterpret_cast<const __nv_bfloat162*>(&w);
    const __nv_bfloat162* xp = reinterpret_cast<const __nv_bfloat162*>(&x);
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 a = __bfloat1622float2(wp[i]), b = __bfloat1622float2(xp[i]);
        s = fmaf(a.x, b.x, s);
        s = fmaf(a.y, b.y, s);
    }
    return s;
}

__device__ __forceinline__ void store(float* y, float v, bool accumulate) { *y = accumulate ? *y + v : v; }
__device__ __forceinline__ void store(bf16* y, float v, bool) { *y = __float2bfloat16(v); }

// What one launch multiplies. Row groups: dense (one group of T rows), grouped by expert (offsets from
// moe_permute) or direct (row r alone uses expert expert_of_row[r]: decode MoE without a permutation).
struct GemvArgs {
    const bf16* W;
    int64_t expert_stride, N, K;
    const int32_t* offsets;        // grouped: [E + 1]
    const int32_t* active;         // grouped: the experts with rows, ascending, then -1s
    const int32_t* expert_of_row;  // direct: [T]
    int64_t E, T;
    const bf16* x;
    const int32_t* row_token;      // x row of output row r (nullptr: r / x_row_div)
    int64_t x_row_div;
    bool swiglu;                   // x rows are [gate K | up K]; the input is silu(gate) · up, rounded to bf16
    bool accumulate = false;       // fp32 y: y += x · Wᵀ (a residual add fused into the product)
    // The RMSNorm before the product folded into it (gemv_rms): x rows are bf16(xf[r] · inv_rms(xf[r]) · norm_w),
    // as rms_norm writes them, from the fp32 residual rows xf [T, K].
    const float* xf = nullptr;
    const float* norm_w = nullptr;
    float eps = 0.0f;
};

// 1 / rms of rows xf[r, K] for r < nr, computed by the block's first `users` threads (whole warps; the threads that
// call it), each summing the squares of pieces threadIdx.x, + users, ..., then warps, then the warps' sums in order
// through shared memory and named barrier 1 (barrier 0 stays with the whole block). Every caller gets every row's.
template <int kXRows, int kWarps>
__device__ __forceinline__ void block_inv_rms(const float* xf, int nr, int64_t K, float eps, int users,
                                              float (&part)[kXRows][kWarps], float (&inv)[kXRows]) {
    float ss[kXRows];
#pragma unroll
    for (int r = 0; r < kXRows; ++r) ss[r] = 0.0f;
    for (int64_t i = threadIdx.x; i < K / 8; i += users)
#pragma unroll
        for (int r = 0; r < kXRows; ++r)
            if (r < nr) {
                const float4* p = reinterpret_cast<const float4*>(xf + r * K) + 2 * i;
                const float4 a = __ldg(p), b = __ldg(p + 1);
                ss[r] += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w + b.x * b.x + b.y * b.y + b.z * b.z + b.w * b.w;
            }
#pragma unroll
    for (int r = 0; r < kXRows; ++r) {
        const float v = warp_sum(ss[r]);
        if ((threadIdx.x & 31) == 0) part[r][threadIdx.x >> 5] = v;
    }
    asm volatile("bar.sync 1, %0;" ::"r"(users) : "memory");
#pragma unroll
    for (int r = 0; r < kXRows; ++r) {
        float t = 0.0f;
        for (int w = 0; w < users / 32; ++w) t += part[r][w];
        inv[r] = rsqrtf(t / float(K) + eps);
    }
}

// Piece i (8 values) of a normalized activation row, rounded to bf16 as rms_norm rounds it.
__device__ __forceinline__ uint4 load_x_normed(const float* row, const float* w, int64_t i, float inv) {
    const float4* r = reinterpret_cast<const float4*>(row) + 2 * i;
    const float4* g = reinterpret_cast<const float4*>(w) + 2 * i;
    const float4 a = __ldg(r), b = __ldg(r + 1), wa = __ldg(g), wb = __ldg(g + 1);
    uint4 out;
    __nv_bfloat162* o = reinterpret_cast<__nv_bfloat162*>(&out);
    o[0] = __floats2bfloat162_rn(a.x * inv * wa.x, a.y * inv * wa.y);
    o[1] = __floats2bfloat162_rn(a.z * inv * wa.z, a.w * inv * wa.w);
    o[2] = __floats2bfloat162_rn(b.x * inv * wb.x, b.y * inv * wb.y);
    o[3] = __floats2bfloat162_rn(b.z * inv * wb.z, b.w * inv * wb.w);
    return out;
}

// The row range and expert of this block's group; false when the block has no group.
__device__ bool find_group(const GemvArgs& a, int64_t& e_out, int64_t& r0, int64_t& r1) {
    if (a.expert_of_row) {
        r0 = blockIdx.y, r1 = r0 + 1;
        e_out = a.expert_of_row[r0];
        return true;
    }
    if (!a.offsets) {
        e_out = 0, r0 = 0, r1 = a.T;
        return blockIdx.y == 0;
    }
    // The blockIdx.y-th expert that has rows, from moe_permute's list: one load (a scan of the offsets here was a
    // chain of dependent loads at the start of every block).
    const int32_t found = a.active[blockIdx.y];
    if (found < 0) return false;
    e_out = found, r0 = a.offsets[found], r1 = a.offsets[found + 1];
    return true;
}

// Piece i (8 values) of an activation row; with SwiGLU, silu(gate) · up as silu_mul computes it.
__device__ __forceinline__ uint4 load_x(const bf16* row, int64_t i, int64_t K, bool swiglu) {
    const uint4 g = __ldg(reinterpret_cast<const uint4*>(row) + i);
    if (!swiglu) return g;
    const uint4 u = __ldg(reinterpret_cast<const uint4*>(row + K) + i);
    uint4 out;
    const __nv_bfloat162* gp = reinterpret_cast<const __nv_bfloat162*>(&g);
    const __nv_bfloat162* up = reinterpret_cast<const __nv_bfloat162*>(&u);
    __nv_bfloat162* op = reinterpret_cast<__nv_bfloat162*>(&out);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const float2 gf = __bfloat1622float2(gp[j]), uf = __bfloat1622float2(up[j]);
        op[j] = __floats2bfloat162_rn(silu_times(gf.x, uf.x), silu_times(gf.y, uf.y));
    }
    return out;
}

template <int kXRows, int kWRows, int kUnroll, typename OutT, int kBlock, int kMode>
__device__ __forceinline__ void gemv_body(const GemvArgs& a, OutT* __restrict__ y) {
    constexpr bool kNormed = kMode & kNormedIn;
    // Dense products (launched with launch_pdl) issue their first weight loads before waiting for the kernel that
    // writes x; grouped and direct ones first need the expert routing that kernel may still be writing.
    const bool dense = !a.offsets && !a.expert_of_row;
    bool waited = !dense;
    if (!dense) pdl_wait();
    int64_t e, r0, r1;
    if (!find_group(a, e, r0, r1)) return;
    __shared__ float partial[kBlock / 32][kWRows][kXRows];
    __shared__ float norm_part[kXRows][kBlock / 32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t N = a.N, K = a.K, K8 = K / 8;  // 16-byte pieces per row
    const int64_t n0 = int64_t(blockIdx.x) * kWRows;
    const int64_t x_stride = a.swiglu ? 2 * K : K;
    const uint4* w[kWRows];
#pragma unroll
    for (int c = 0; c < kWRows; ++c)
        w[c] = reinterpret_cast<const uint4*>(a.W + e * a.expert_stride + min(n0 + c, N - 1) * K);

    for (int64_t rb = r0; rb < r1; rb += kXRows) {
        const int nr = int(min(int64_t(kXRows), r1 - rb));
        const bf16* xr[kXRows];
#pragma unroll
        for (int r = 0; r < kXRows; ++r) {
            const int64_t row = rb + min(r, nr - 1);
            xr[r] = a.x + (a.row_token ? int64_t(a.row_token[row]) : row / a.x_row_div) * x_stride;
        }
        float acc[kWRows][kXRows];
#pragma unroll
        for (int c = 0; c < kWRows; ++c)
#pragma unroll
            for (int r = 0; r < kXRows; ++r) acc[c][r] = 0.0f;
        float inv[kXRows];  // gemv_rms: each row's 1 / rms, computed once x may be read

        // The block's threads split K: every weight piece is loaded by exactly one thread, all loads of an
        // iteration issued before the first FMA.
        for (int64_t i0 = threadIdx.x; i0 < K8; i0 += int64_t(kBlock) * kUnroll) {
            uint4 wv[kUnroll][kWRows];
#pragma unroll
            for (int u = 0; u < kUnroll; ++u) {
                const int64_t i = i0 + int64_t(u) * kBlock;
#pragma unroll
                for (int c = 0; c < kWRows; ++c) wv[u][c] = i < K8 ? load_stream(w[c] + i) : make_uint4(0, 0, 0, 0);
            }
            if (!waited) {
                pdl_wait();
                waited = true;
                // gemv_rms: one row pass (T ≤ kXRows), and K8 % 32 == 0, so the threads of this first iteration
                // are the first min(kBlock, K8) threads, whole warps.
                if constexpr (kNormed)
                    block_inv_rms(a.xf + rb * K, nr, K, a.eps, int(min(int64_t(kBlock), K8)), norm_part, inv);
            }
#pragma unroll
            for (int u = 0; u < kUnroll; ++u) {
                const int64_t i = i0 + int64_t(u) * kBlock;
                if (i >= K8) break;
#pragma unroll
                for (int r = 0; r < kXRows; ++r) {
                    if (r < nr) {
                        uint4 xv;
                        if constexpr (kNormed) xv = load_x_normed(a.xf + (rb + r) * K, a.norm_w, i, inv[r]);
                        else xv = load_x(xr[r], i, K, a.swiglu);
#pragma unroll
                        for (int c = 0; c < kWRows; ++c) acc[c][r] += dot8(wv[u][c], xv);
                    }
                }
            }
        }
        if (!waited) {  // a thread with no K piece still waits before it writes
            pdl_wait();
            waited = true;
        }
        pdl_trigger();  // the next kernel's blocks may now take the SM slots this grid no longer needs
        // Reduce: warps first (shuffles), then the block's warps through shared memory.
#pragma unroll
        for (int c = 0; c < kWRows; ++c)
#pragma unroll
            for (int r = 0; r < kXRows; ++r)
                if (r < nr) {
                    const float v = warp_sum(acc[c][r]);
                    if (lane == 0) partial[warp][c][r] = v;
                }
        __syncthreads();
        if (threadIdx.x < kWRows * nr) {
            const int c = threadIdx.x / nr, r = threadIdx.x % nr;
            float s = 0.0f;
#pragma unroll
            for (int wi = 0; wi < kBlock / 32; ++wi) s += partial[wi][c][r];
            if (n0 + c < N) store(y + (rb + r) * N + n0 + c, s, a.accumulate);
        }
        __syncthreads();  // partial is reused by the next row pass
    }
}

template <int kXRows, int kWRows, int kUnroll, typename OutT, int kBlock, int kMode>
__global__ void __launch_bounds__(kBlock) gemv_kernel(GemvArgs a, OutT* __restrict__ y) {
    gemv_body<kXRows, kWRows, kUnroll, OutT, kBlock, kMode>(a, y);
}

// The same with launch bounds for 5 resident blocks an SM (≤ 102 registers at 128 threads; the 256-thread batch-1
// kernel takes 72, 3 blocks an SM). In this form the 30B-A3B shape's q|k|v product — 640 blocks of 8 rows, K = 2048
// as 2 pieces a row for each of 128 threads — is one wave, so every weight load is issued before it waits for the MoE
// combine; in 1.6 waves only the first wave's were. (Asking for 1 block an SM is not the same as asking nothing:
// `__launch_bounds__(256, 1)` took these kernels from 72 to 119-124 registers and every decode 3-5 % slower.)
template <int kXRows, int kWRows, int kUnroll, typename OutT, int kBlock, int kMode>
__global__ void __launch_bounds__(kBlock, 5) gemv_one_wave_kernel(GemvArgs a, OutT* __restrict__ y) {
    gemv_body<kXRows, kWRows, kUnroll, OutT, kBlock, kMode>(a, y);
}

// Grouped products with up to a few rows per expert on tensor cores (the model sends them here from half a row
// per expert on, e.g. 8-15 decoding sequences of the 30B-A3B shape; from one row on it uses grouped_gemm.cu). A
// block owns 64 weight rows of one expert and streams them through shared memory in 64-wide K steps, kStages deep
// with cp.async, so the bytes in flight are not bounded by registers as the gemv's are; the expert's rows (up to
// 16 at a time, zero-padded) are the M side of m16n8k16 MMAs, each warp 16 weight rows. Each expert's weights are
// read once per 16 of its rows. fp32 accumulation, bf16 output.
constexpr int kMmaRowsN = 64;  // weight rows per block
constexpr int kMmaK = 64;      // K step
constexpr int kMmaStages = 3;
// Grouped products take the MMA kernel from N_rows ≥ E / kMmaMinRowsDen: from about half the experts holding a row
// on, the gemv's per-row passes over an expert cost more than reading its weights once for up to 16 rows.
constexpr int64_t kMmaMinRowsDen = 2;

struct MmaSmem {
    bf16 w[kMmaStages][kMmaRowsN * kMmaK];
    bf16 x[kMmaStages][16 * kMmaK];
};

__global__ void __launch_bounds__(128) grouped_mma_kernel(GemvArgs a, bf16* __restrict__ y) {
    pdl_wait();  // the routing and x come from the kernels before
    int64_t e, r0, r1;
    if (!find_group(a, e, r0, r1)) return;
    extern __shared__ __align__(128) unsigned char mma_smem_raw[];
    MmaSmem& sm = *reinterpret_cast<MmaSmem*>(mma_smem_raw);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t4 = lane & 3;
    const int64_t N = a.N, K = a.K, n0 = int64_t(blockIdx.x) * kMmaRowsN;
    const int64_t x_stride = a.swiglu ? 2 * K : K;
    const bf16* W = a.W + e * a.expert_stride;
    const int n_steps = int((K + kMmaK - 1) / kMmaK);

    for (int64_t rb = r0; rb < r1; rb += 16) {
        const int nr = int(min(int64_t(16), r1 - rb));
        // This thread's x row (one 16-byte chunk of one row per step: 16 rows × 8 chunks = 128 threads).
        const int xr = threadIdx.x >> 3, xc = threadIdx.x & 7;
        const int64_t xrow = rb + min(xr, nr - 1);
        const bf16* xsrc = a.x + (a.row_token ? int64_t(a.row_token[xrow]) : xrow) * x_stride;
        auto load_stage = [&](int stage, int step) {
            const int64_t k0 = int64_t(step) * kMmaK;
            for (int i = threadIdx.x; i < kMmaRowsN * 8; i += 128) {
                const int r = i >> 3, c = i & 7;
                const int64_t k = k0 + 8 * c;
                const bool ok = k < K;
                cp_async16_or_zero(chunk_at<kMmaK>(sm.w[stage], r, c), W + min(n0 + r, N - 1) * K + (ok ? k : 0), ok);
            }
            const int64_t k = k0 + 8 * xc;
            uint4 v = make_uint4(0, 0, 0, 0);
            if (xr < nr && k < K) v = load_x(xsrc, k / 8, K, a.swiglu);
            *reinterpret_cast<uint4*>(chunk_at<kMmaK>(sm.x[stage], xr, xc)) = v;
        };
        float acc[2][4] = {};
#pragma unroll
        for (int s = 0; s < kMmaStages - 1; ++s) {
            if (s < n_steps) load_stage(s, s);
            cp_async_commit();
        }
        for (int step = 0; step < n_steps; ++step) {
            cp_async_wait<kMmaStages - 2>();
            __syncthreads();  // this step's tile is in; every warp is done with the stage the next load overwrites
            const int next = step + kMmaStages - 1;
            if (next < n_steps) load_stage(next % kMmaStages, next);
            cp_async_commit();
            bf16* ws = sm.w[step % kMmaStages];
            bf16* xs = sm.x[step % kMmaStages];
#pragma unroll
            for (int kk = 0; kk < kMmaK / 16; ++kk) {
                uint32_t af[4], b[4];
                ldmatrix_x4(af, chunk_at<kMmaK>(xs, lane & 15, 2 * kk + (lane >> 4)));
                ldmatrix_x4(b, chunk_at<kMmaK>(ws, warp * 16 + (lane & 7) + ((lane >> 4) << 3), 2 * kk + ((lane >> 3) & 1)));
                mma_bf16(acc[0], af, b[0], b[1]);
                mma_bf16(acc[1], af, b[2], b[3]);
            }
        }
        pdl_trigger();
        // acc[j]: rows g / g + 8 of the 16, weight rows n0 + 16·warp + 8j + 2·t4 (+1).
#pragma unroll
        for (int j = 0; j < 2; ++j)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int row = g + 8 * h;
                if (row >= nr) continue;
                const int64_t n = n0 + 16 * warp + 8 * j + 2 * t4;
                bf16* out = y + (rb + row) * N + n;
                if (n < N) out[0] = __float2bfloat16(acc[j][2 * h]);
                if (n + 1 < N) out[1] = __float2bfloat16(acc[j][2 * h + 1]);
            }
        __syncthreads();  // the stages are reused by the next 16 rows
    }
}

// gemv_kernel for short K (K8 < 512) with every thread's K pieces in flight at once and (nearly) none idle: one
// piece per thread in blocks of K8 rounded up to 32, 64, 96, 128, 160, 192 or 256 threads, else 256 threads with
// two. The one block-size ladder of both callers (batch 1 and several rows per group).
template <int kXRows, int kWRows, typename OutT, int kMode>
void launch_short(const GemvArgs& a, int64_t K8, dim3 grid, OutT* y, cudaStream_t stream) {
    if (K8 <= 32) launch_pdl(gemv_kernel<kXRows, kWRows, 1, OutT, 32, kMode>, grid, 32, 0, stream, a, y);
    else if (K8 <= 64) launch_pdl(gemv_kernel<kXRows, kWRows, 1, OutT, 64, kMode>, grid, 64, 0, stream, a, y);
    else if (K8 <= 96) launch_pdl(gemv_kernel<kXRows, kWRows, 1, OutT, 96, kMode>, grid, 96, 0, stream, a, y);
    else if (K8 <= 128) launch_pdl(gemv_kernel<kXRows, kWRows, 1, OutT, 128, kMode>, grid, 128, 0, stream, a, y);
    else if (K8 <= 160) launch_pdl(gemv_kernel<kXRows, kWRows, 1, OutT, 160, kMode>, grid, 160, 0, stream, a, y);
    else if (K8 <= 192) launch_pdl(gemv_kernel<kXRows, kWRows, 1, OutT, 192, kMode>, grid, 192, 0, stream, a, y);
    else if (K8 <= 256) launch_pdl(gemv_kernel<kXRows, kWRows, 1, OutT, 256, kMode>, grid, 256, 0, stream, a, y);
    else launch_pdl(gemv_kernel<kXRows, kWRows, 2, OutT, 256, kMode>, grid, 256, 0, stream, a, y);
}

// rows_per_group: the most rows one group has (known for dense and direct; 8 for grouped, which can be anything).
// kMode other than 0 serves decode steps only (≤ kGemvNormRows rows): the larger kernels are not built for it.
template <typename OutT, int kMode = 0>
void launch(const GemvArgs& a, int64_t groups, int64_t rows_per_group, OutT* y, cudaStream_t stream) {
    if (a.T == 0 || a.N == 0 || groups == 0) return;
    if (a.K % 8 != 0) throw std::invalid_argument("cuda::gemv: K must be a multiple of 8");
    const int64_t K8 = a.K / 8;
    auto grid = [&](int w_rows) { return dim3(unsigned((a.N + w_rows - 1) / w_rows), unsigned(groups)); };
    if (rows_per_group <= 1 && (kMode & kNormedIn) && K8 == 2 * 128) {
        // gemv_rms at batch 1 over K = 2048 (a decode step's q|k|v after the MoE combine): one wave, every weight
        // load before the wait (gemv_one_wave_kernel). Measured on H100 (30B-A3B decode +0.9 %); the same form for
        // the o projection (K = 4096, 2 blocks an SM) and for the experts' gate|up (which cannot load before their
        // wait for the routing) was not faster.
        if constexpr ((kMode & kNormedIn) != 0)
            launch_pdl(gemv_one_wave_kernel<1, 8, 2, OutT, 128, kMode>, grid(8), 128, 0, stream, a, y);
    } else if (rows_per_group <= 1) {
        // Batch 1, measured on H100 (8B shape decode 166.1 -> 170.9 tok/s, 30B-A3B 225.7 -> 233.5 against 4 rows ×
        // 2 pieces): 8 weight rows per block throughout; long K (the 14336-wide down projection) in 128-thread blocks
        // with 2 pieces per row in flight, K of 2048-8191 one piece per row and thread.
        if (K8 >= 1024) launch_pdl(gemv_kernel<1, 8, 2, OutT, 128, kMode>, grid(8), 128, 0, stream, a, y);
        else if (K8 >= 3 * kThreads / 4)
            launch_pdl(gemv_kernel<1, 8, 1, OutT, kThreads, kMode>, grid(8), kThreads, 0, stream, a, y);
        else launch_short<1, 16, OutT, kMode>(a, K8, grid(16), y, stream);  // K8 < 192: 16 rows per block
    } else if (kMode != 0 && rows_per_group > kGemvNormRows) {
        throw std::invalid_argument("cuda::gemv: a folded norm takes at most 4 rows");
    } else if (K8 < 2 * kThreads) {
        // Short K with several x rows (MoE experts at 16-64 decoding sequences): more weight rows per block, in
        // blocks of K's size, so a block streams 12-32 KB instead of retiring after a few loads with half its
        // threads idle (every expert is active there and these launches are most of a step).
        if (rows_per_group <= 2) launch_short<2, 8, OutT, kMode>(a, K8, grid(8), y, stream);
        else if (rows_per_group <= 4) launch_short<4, 8, OutT, kMode>(a, K8, grid(8), y, stream);
        else if constexpr (kMode == 0) launch_short<8, 4, OutT, 0>(a, K8, grid(4), y, stream);
    } else if (rows_per_group <= 2) {
        launch_pdl(gemv_kernel<2, 4, 2, OutT, kThreads, kMode>, grid(4), kThreads, 0, stream, a, y);
    } else if (rows_per_group <= 4) {
        launch_pdl(gemv_kernel<4, 4, 2, OutT, kThreads, kMode>, grid(4), kThreads, 0, stream, a, y);
    } else if constexpr (kMode == 0) {
        launch_pdl(gemv_kernel<8, 4, 2, OutT, kThreads, 0>, grid(4), kThreads, 0, stream, a, y);
    }
    MOEINFER_CUDA_LAUNCH_CHECK();
}

GemvArgs dense(const bf16* x, int64_t T, const bf16* w, int64_t out, int64_t in, bool swiglu) {
    return GemvArgs{w, 0, out, in, nullptr, nullptr, nullptr, 1, T, x, nullptr, 1, swiglu};
}

}  // namespace

void gemv(const bf16* x, int64_t T, const bf16* w, int64_t out, int64_t in, bf16* y, cudaStream_t stream) {
    launch(dense(x, T, w, out, in, false), 1, T, y, stream);
}
void gemv(const bf16* x, int64_t T, const bf16* w, int64_t out, int64_t in, float* y, cudaStream_t stream) {
    launch(dense(x, T, w, out, in, false), 1, T, y, stream);
}
void gemv_add(const bf16* x, int64_t T, const bf16* w, int64_t out, int64_t in, float* y, cudaStream_t stream) {
    GemvArgs a = dense(x, T, w, out, in, false);
    a.accumulate = true;
    launch(a, 1, T, y, stream);
}
void gemv_swiglu(const bf16* gate_up, int64_t T, const bf16* w, int64_t out, int64_t in, bf16* y, cudaStream_t stream) {
    launch(dense(gate_up, T, w, out, in, true), 1, T, y, stream);
}
void gemv_swiglu_add(const bf16* gate_up, int64_t T, const bf16* w, int64_t out, int64_t in, float* y,
                     cudaStream_t stream) {
    GemvArgs a = dense(gate_up, T, w, out, in, true);
    a.accumulate = true;
    launch(a, 1, T, y, stream);
}
void grouped_gemv(const bf16* x, const int32_t* row_token, const int32_t* offsets, const int32_t* active, int64_t E,
                  int64_t N_rows, const bf16* w, int64_t out, int64_t in, bool swiglu, bf16* y, cudaStream_t stream) {
    const GemvArgs a{w, out * in, out, in, offsets, active, nullptr, E, N_rows, x, row_token, 1, swiglu};
    // Rows per pass from the average rows per expert (a decode batch spread over many experts has ~1).
    const int64_t avg = (N_rows + E - 1) / E;
    if (N_rows * kMmaMinRowsDen >= E && N_rows > 0) {
        if (in % 8 != 0) throw std::invalid_argument("cuda::grouped_gemv: K must be a multiple of 8");
        const dim3 grid(unsigned((out + kMmaRowsN - 1) / kMmaRowsN), unsigned(std::min(E, N_rows)));
        static_assert(sizeof(MmaSmem) <= 48 * 1024, "grouped_mma_kernel's stages must fit the default shared memory");
        launch_pdl(grouped_mma_kernel, grid, 128, sizeof(MmaSmem), stream, a, y);
        MOEINFER_CUDA_LAUNCH_CHECK();
        return;
    }
    launch(a, std::min(E, N_rows), avg <= 1 ? 1 : avg <= 2 ? 2 : avg <= 4 ? 4 : 8, y, stream);
}
namespace {
template <typename OutT>
void launch_rms(const float* x, const float* norm_w, float eps, int64_t T, const bf16* w, int64_t out, int64_t in,
                OutT* y, cudaStream_t stream) {
    if (!gemv_rms_supported(T, in)) throw std::invalid_argument("cuda::gemv_rms: needs T ≤ 4 and in % 256 == 0");
    GemvArgs a = dense(nullptr, T, w, out, in, false);
    a.xf = x, a.norm_w = norm_w, a.eps = eps;
    launch<OutT, kNormedIn>(a, 1, T, y, stream);
}
}  // namespace

void gemv_rms(const float* x, const float* norm_w, float eps, int64_t T, const bf16* w, int64_t out, int64_t in,
              bf16* y, cudaStream_t stream) {
    launch_rms(x, norm_w, eps, T, w, out, in, y, stream);
}
void gemv_rms(const float* x, const float* norm_w, float eps, int64_t T, const bf16* w, int64_t out, int64_t in,
              float* y, cudaStream_t stream) {
    launch_rms(x, norm_w, eps, T, w, out, in, y, stream);
}

bool gemv_rms_supported(int64_t T, int64_t in) { return T >= 1 && T <= kGemvNormRows && in % 256 == 0; }

void direct_expert_gemv(const bf16* x, int64_t x_row_div, const int32_t* expert_of_row, int64_t N_rows, const bf16* w,
                        int64_t out, int64_t in, bool swiglu, bf16* y, cudaStream_t stream) {
    const GemvArgs a{w, out * in, out, in, nullptr, nullptr, expert_of_row, 0, N_rows, x, nullptr, x_row_div, swiglu};
    launch(a, N_rows, 1, y, stream);
}

}  // namespace moeinfer::cuda
