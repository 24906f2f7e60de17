// Tensor-core building blocks shared by the mma.sync kernels (prefill and decode attention, grouped expert GEMM):
// cp.async copies into shared memory, ldmatrix loads of 8 × 8 bf16 tiles, the m16n8k16 bf16 MMA with fp32
// accumulators, the XOR-swizzled row layout that lets ldmatrix read 8 rows of 16-byte chunks without bank conflicts,
// and the attention kernels' online-softmax step.
#pragma once
#include <cmath>
#include <cstdint>

#include "backends/cuda/common.h"

namespace moeinfer::cuda {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(smem_addr(dst)), "l"(src));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }
template <int kPending>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(kPending)); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}
// d += a · b for one 16×8 tile (a: 16×16 row-major fragment, b: 16×8 column-major fragment).
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
}

// A [rows, D] bf16 tile in shared memory whose 16-byte chunk c of row r sits at chunk c ^ (r % 8): the 8 rows one
// ldmatrix phase reads fall in 8 different bank groups (D ≥ 64, so a row has at least 8 chunks).
template <int D>
__device__ __forceinline__ bf16* chunk_at(bf16* tile, int row, int chunk) {
    return tile + row * D + ((chunk ^ (row & 7)) << 3);
}

// One online-softmax step of FlashAttention-style kernels for the two rows (g and g + 8 of 16) a thread holds in
// m16n8 accumulator fragments: s, kTiles tiles of 8 scores in log2 units (-inf where masked), becomes P (each score
// exponentiated against the new running max); m is the running max, l this thread's share of the running sum (the
// 4 threads of a row group hold one share each), o the kOTiles output tiles, rescaled by the change of max. Each
// row's max is taken over the 4 threads of its group. A row with nothing visible yet stays at zero.
template <int kTiles, int kOTiles>
__device__ __forceinline__ void online_softmax_step(float (&s)[kTiles][4], float (&m)[2], float (&l)[2],
                                                    float (&o)[kOTiles][4]) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        float mx = m[r];
#pragma unroll
        for (int j = 0; j < kTiles; ++j) mx = fmaxf(mx, fmaxf(s[j][2 * r], s[j][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float base = mx == -INFINITY ? 0.0f : mx;
        const float corr = exp2f(m[r] - base);  // 0 while m is -inf
        m[r] = mx;
        float sum = 0.0f;
#pragma unroll
        for (int j = 0; j < kTiles; ++j) {
            s[j][2 * r] = exp2f(s[j][2 * r] - base);
            s[j][2 * r + 1] = exp2f(s[j][2 * r + 1] - base);
            sum += s[j][2 * r] + s[j][2 * r + 1];
        }
        l[r] = l[r] * corr + sum;
#pragma unroll
        for (int j = 0; j < kOTiles; ++j) {
            o[j][2 * r] *= corr;
            o[j][2 * r + 1] *= corr;
        }
    }
}

// cp.async of 16 bytes that writes zeros instead of reading when !valid (src must still be a mapped address).
__device__ __forceinline__ void cp_async16_or_zero(void* dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_addr(dst)), "l"(src), "r"(valid ? 16 : 0));
}

}  // namespace moeinfer::cuda
