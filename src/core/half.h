// fp16 (IEEE binary16) and bf16 <-> fp32 conversions, round-to-nearest-even, exact for subnormals,
// infinities and NaN. F16C instructions are used when the compiler targets them; the scalar path is the reference.
#pragma once
#include <bit>
#include <cstdint>
#include <cstring>

#ifdef __F16C__
#include <immintrin.h>
#endif

namespace moeinfer {

inline float fp16_to_fp32_scalar(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        // Zero or subnormal: mant * 2^-24 is exact in fp32.
        const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
        return std::bit_cast<float>(std::bit_cast<uint32_t>(v) | sign);
    }
    if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));  // inf / NaN (payload kept)
    return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));        // rebias 15 -> 127
}

inline uint16_t fp32_to_fp16_scalar(float f) {
    const uint32_t x = std::bit_cast<uint32_t>(f);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {  // inf stays inf; NaN stays a quiet NaN with the top payload bits
        if (ax == 0x7f800000u) return sign | 0x7c00u;
        return static_cast<uint16_t>(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    }
    if (ax >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds (ties-to-even) past 65504 to inf
    if (ax < 0x38800000u) {                        // below 2^-14: fp16 subnormal or zero
        if (ax <= 0x33000000u) return sign;        // <= 2^-25 rounds to zero (2^-25 is a tie, zero is even)
        const uint32_t e = ax >> 23;
        const uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126u - e;  // units of 2^-24; e in [102, 112] gives shift 14..24
        uint32_t h = mant >> shift;
        const uint32_t rem = mant & ((1u << shift) - 1u);
        const uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (h & 1u))) ++h;  // a carry into 0x400 is the smallest normal: correct
        return static_cast<uint16_t>(sign | h);
    }
    uint32_t h = (ax - 0x38000000u) >> 13;  // rebias 127 -> 15 and drop 13 mantissa bits
    const uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // carry into the exponent is the right answer
    return static_cast<uint16_t>(sign | h);
}

inline float fp16_to_fp32(uint16_t h) {
#ifdef __F16C__
    return _cvtsh_ss(h);
#else
    return fp16_to_fp32_scalar(h);
#endif
}

inline uint16_t fp32_to_fp16(float f) {
#ifdef __F16C__
    return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
#else
    return fp32_to_fp16_scalar(f);
#endif
}

inline float bf16_to_fp32(uint16_t b) {
    return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

inline uint16_t fp32_to_bf16(float f) {
    const uint32_t x = std::bit_cast<uint32_t>(f);
    // Rounding could carry a NaN's payload into inf, so NaN is truncated and forced quiet.
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
    return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// The fp16 value stored (possibly unaligned, little-endian) at p: the scale field of GGML quant blocks.
inline float fp16_at(const void* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return fp16_to_fp32(h);
}

}  // namespace moeinfer
