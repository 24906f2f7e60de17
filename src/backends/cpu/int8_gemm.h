// Int8 products of Q8_0 / Q4_0 weights with int8-quantized activations (VNNI VPDPBUSD, 64 multiply-adds per
// instruction), register-blocked over rows × tokens so each unpacked weight block feeds several tokens.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace moeinfer::cpu {

// Activations quantized per block of 32: x ≈ d · q with d = max|x| / 127, q = round(x / d).
struct Q8Activations {
    int64_t T = 0, K = 0, nb = 0;  // tokens, row length, blocks per row
    std::vector<int8_t> q;         // [T, K]
    std::vector<uint8_t> qu;       // [T, K] q + 128 (q ^ 0x80): the unsigned operand against signed weights
    std::vector<float> d;          // [T, nb]
    std::vector<int32_t> sum;      // [T, nb] Σq of each block (the K-quant "min" term needs it)
    // [T, K] q in Q4_0 nibble order per group of 4 blocks (K % 128 == 0, else empty): the 16 values each block's
    // low nibbles hold (elements 0-15) for blocks 0..3, then the 16 its high nibbles hold (16-31), so one
    // 512-bit load of 4 blocks' packed bytes lines up with one activation load per nibble half.
    std::vector<int8_t> q4i;
    // Copies for the prefill panels (panel_gemm.cpp), built only when T ≥ kPanelMinTokens (panel_gemm.h: no smaller
    // batch reaches a panel), in tiles of 8 tokens: tile i holds tokens 8i..8i+7 block by
    // block, [nb][8][32] bytes, so one pointer and constant offsets reach a group of tokens and a group's blocks are
    // contiguous. tile_index(t, b) is the byte offset of token t's block b; d_tiles and dsum_tiles (d, and d · Σq)
    // are [tiles][nb][8] floats at tile_index(t, b) / 32.
    std::vector<int8_t> q_tiles;
    std::vector<uint8_t> qu_tiles;
    std::vector<float> d_tiles, dsum_tiles;
    int64_t tile_index(int64_t t, int64_t b) const { return (((t / 8) * nb + b) * 8 + t % 8) * 32; }
};

// x: [T, K] with K a multiple of 32.
void quantize_activations(const float* x, int64_t T, int64_t K, Q8Activations& out);

// y[t · y_stride + r] = Σ_k w[r, k] · x̂[t0 + t, k] for r in [row_begin, row_end), t < nt, where x̂ is the
// dequantized activation. w: Q8_0 or Q4_0 [rows, K].
void int8_gemm(const Tensor& w, int64_t row_begin, int64_t row_end, const Q8Activations& a, int64_t t0, int64_t nt,
               float* y, int64_t y_stride);

// The same contract for Q4_K, Q5_K and Q6_K weights (K a multiple of 256), in kquant_gemm.cpp.
void kquant_gemm(const Tensor& w, int64_t row_begin, int64_t row_end, const Q8Activations& a, int64_t t0, int64_t nt,
                 float* y, int64_t y_stride);

}  // namespace moeinfer::cpu
