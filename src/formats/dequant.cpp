// Scalar reference dequantize/quantize for GGML block layouts:
//   Q8_0 block (34 bytes) = fp16 d, int8 q[32];    x[j] = q[j] * d
//   Q4_0 block (18 bytes) = fp16 d, uint8 qs[16];  x[j] = ((qs[j] & 15) - 8) * d, x[j+16] = ((qs[j] >> 4) - 8) * d
#include "formats/dequant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "core/half.h"
#include "formats/kquants.h"

namespace moeinfer {

namespace {

constexpr int kQK = 32;  // elements per Q8_0 / Q4_0 block

void check_n(const char* what, DType t, int64_t n) {
    const DTypeInfo& info = dtype_info(t);
    if (n < 0 || n % info.block_elems != 0)
        throw std::invalid_argument(std::string(what) + ": " + std::to_string(n) +
                                    " elements is not a multiple of the " + info.name + " block size " +
                                    std::to_string(info.block_elems));
}

[[noreturn]] void unsupported(const char* what, DType t) {
    throw std::invalid_argument(std::string(what) + ": unsupported dtype " + dtype_name(t) + " (" +
                                std::to_string(static_cast<uint32_t>(t)) + ")");
}

uint16_t load_u16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

void store_u16(uint8_t* p, uint16_t v) {
    std::memcpy(p, &v, 2);
}

}  // namespace

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
    const auto* s = static_cast<const uint8_t*>(src);
    switch (t) {
        case DType::F32:
            std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
            return;
        case DType::F16:
            for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(load_u16(s + 2 * i));
            return;
        case DType::BF16:
            for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(load_u16(s + 2 * i));
            return;
        case DType::Q8_0:
            check_n("dequantize_row", t, n);
            for (int64_t b = 0; b < n / kQK; ++b, s += 34) {
                const float d = fp16_to_fp32(load_u16(s));
                const auto* q = reinterpret_cast<const int8_t*>(s + 2);
                for (int j = 0; j < kQK; ++j) dst[b * kQK + j] = q[j] * d;
            }
            return;
        case DType::Q4_0:
            check_n("dequantize_row", t, n);
            for (int64_t b = 0; b < n / kQK; ++b, s += 18) {
                const float d = fp16_to_fp32(load_u16(s));
                const uint8_t* qs = s + 2;
                float* y = dst + b * kQK;
                for (int j = 0; j < kQK / 2; ++j) {
                    y[j] = (static_cast<int>(qs[j] & 0x0f) - 8) * d;
                    y[j + kQK / 2] = (static_cast<int>(qs[j] >> 4) - 8) * d;
                }
            }
            return;
        case DType::Q4_K: check_n("dequantize_row", t, n); return dequantize_row_q4_k(src, dst, n);
        case DType::Q5_K: check_n("dequantize_row", t, n); return dequantize_row_q5_k(src, dst, n);
        case DType::Q6_K: check_n("dequantize_row", t, n); return dequantize_row_q6_k(src, dst, n);
        case DType::Q5_0: check_n("dequantize_row", t, n); return dequantize_row_q5_0(src, dst, n);
        case DType::Q5_1: check_n("dequantize_row", t, n); return dequantize_row_q5_1(src, dst, n);
        default:
            unsupported("dequantize_row", t);
    }
}

void quantize_row(DType t, const float* src, void* dst, int64_t n) {
    auto* out = static_cast<uint8_t*>(dst);
    switch (t) {
        case DType::F32:
            std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
            return;
        case DType::F16:
            for (int64_t i = 0; i < n; ++i) store_u16(out + 2 * i, fp32_to_fp16(src[i]));
            return;
        case DType::BF16:
            for (int64_t i = 0; i < n; ++i) store_u16(out + 2 * i, fp32_to_bf16(src[i]));
            return;
        case DType::Q8_0:
            check_n("quantize_row", t, n);
            for (int64_t b = 0; b < n / kQK; ++b, out += 34) {
                const float* x = src + b * kQK;
                float amax = 0.0f;
                for (int j = 0; j < kQK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
                const float d = amax / 127.0f;
                const float id = d != 0.0f ? 1.0f / d : 0.0f;
                store_u16(out, fp32_to_fp16(d));
                auto* q = reinterpret_cast<int8_t*>(out + 2);
                for (int j = 0; j < kQK; ++j) q[j] = static_cast<int8_t>(std::round(x[j] * id));
            }
            return;
        case DType::Q4_0:
            check_n("quantize_row", t, n);
            for (int64_t b = 0; b < n / kQK; ++b, out += 18) {
                const float* x = src + b * kQK;
                // The signed extreme maps to -8, so the full [-8, 7] range is used on the side that needs it.
                float amax = 0.0f, max = 0.0f;
                for (int j = 0; j < kQK; ++j) {
                    if (amax < std::fabs(x[j])) {
                        amax = std::fabs(x[j]);
                        max = x[j];
                    }
                }
                const float d = max / -8.0f;
                const float id = d != 0.0f ? 1.0f / d : 0.0f;
                store_u16(out, fp32_to_fp16(d));
                uint8_t* qs = out + 2;
                for (int j = 0; j < kQK / 2; ++j) {
                    const int lo = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
                    const int hi = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + kQK / 2] * id + 8.5f)));
                    qs[j] = static_cast<uint8_t>(lo | (hi << 4));
                }
            }
            return;
        case DType::Q4_K: check_n("quantize_row", t, n); return quantize_row_q4_k(src, dst, n);
        case DType::Q5_K: check_n("quantize_row", t, n); return quantize_row_q5_k(src, dst, n);
        case DType::Q6_K: check_n("quantize_row", t, n); return quantize_row_q6_k(src, dst, n);
        case DType::Q5_0: check_n("quantize_row", t, n); return quantize_row_q5_0(src, dst, n);
        case DType::Q5_1: check_n("quantize_row", t, n); return quantize_row_q5_1(src, dst, n);
        default:
            unsupported("quantize_row", t);
    }
}

}  // namespace moeinfer
