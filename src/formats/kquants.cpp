// K-quant and Q5_0/Q5_1 block formats (see kquants.h). Dequantization evaluates the same float expressions in
// the same order as llama.cpp (every product of an fp16 scale and a small integer is exact in fp32, so results
// are identical bit for bit); quantization is our own implementation of the reference scale searches.
#include "formats/kquants.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/half.h"

namespace moeinfer {

namespace {

constexpr float kZeroGroup = 1e-15f;  // groups whose largest |x| is below this quantize to zero (as GGML)

void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// Round to nearest, ties to even (the default FP environment), like GGML's nearest_int.
int nearest(float f) { return static_cast<int>(std::lrintf(f)); }

// --- Q4_K / Q5_K: 8 sub-blocks of 32, x = d*sc*q - dmin*m with 6-bit sc, m. ---

// The 12 scale bytes: sub-blocks 0-3 keep sc and m in the low 6 bits of bytes 0-3 and 4-7; sub-blocks 4-7 put
// their low 4 bits in bytes 8-11 (sc low nibble, m high nibble) and their top 2 bits in the spare top bits of
// bytes 0-3 (sc) and 4-7 (m).
void pack_scale_min(uint8_t* s, int j, int sc, int m) {
    if (j < 4) {
        s[j] = static_cast<uint8_t>((s[j] & 0xc0) | sc);
        s[j + 4] = static_cast<uint8_t>((s[j + 4] & 0xc0) | m);
    } else {
        s[j + 4] = static_cast<uint8_t>((sc & 15) | ((m & 15) << 4));
        s[j - 4] = static_cast<uint8_t>(s[j - 4] | ((sc >> 4) << 6));
        s[j] = static_cast<uint8_t>(s[j] | ((m >> 4) << 6));
    }
}

struct AffineFit {
    float scale;   // x ~ scale * q - offset, q in [0, nmax]
    float offset;  // >= 0: the fitted minimum is never above zero, so it is stored as a positive subtrahend
};

// Weighted least-squares search for an asymmetric 32-element quantizer: try grids slightly finer and coarser
// than (max - min) / nmax, refit scale and min in closed form for each rounding, keep the lowest weighted error.
// This is the "qkx2" search of GGML's reference quantizer; `q` receives the best levels.
AffineFit fit_affine(const float* x, const float* w, int n, int nmax, float rmin, float rdelta, int nsteps,
                     uint8_t* q) {
    float lo = x[0], hi = x[0], sw = w[0], swx = w[0] * x[0];
    for (int i = 1; i < n; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
        sw += w[i];
        swx += w[i] * x[i];
    }
    lo = std::min(lo, 0.0f);
    if (hi == lo) {
        std::fill(q, q + n, uint8_t{0});
        return {0.0f, -lo};
    }
    // The grid origin is the best minimum found so far (it starts at min(x, 0)), as in GGML's search.
    float best_scale = (hi - lo) / nmax, best_min = lo;
    auto levels = [&](float iscale, uint8_t* out) {
        for (int i = 0; i < n; ++i)
            out[i] = static_cast<uint8_t>(std::clamp(nearest(iscale * (x[i] - best_min)), 0, nmax));
    };
    auto error = [&](const uint8_t* l, float scale, float minv) {
        float e = 0.0f;
        for (int i = 0; i < n; ++i) {
            const float diff = scale * l[i] + minv - x[i];
            e += w[i] * diff * diff;
        }
        return e;
    };
    levels(nmax / (hi - lo), q);
    float best_err = error(q, best_scale, best_min);
    uint8_t trial[32];
    for (int step = 0; step <= nsteps; ++step) {
        levels((rmin + rdelta * step + nmax) / (hi - best_min), trial);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < n; ++i) {
            sl += w[i] * trial[i];
            sl2 += w[i] * trial[i] * trial[i];
            sxl += w[i] * trial[i] * x[i];
        }
        const float det = sw * sl2 - sl * sl;
        if (det <= 0) continue;
        float scale = (sw * sxl - swx * sl) / det;
        float minv = (sl2 * swx - sl * sxl) / det;
        if (minv > 0) {  // a positive minimum cannot be stored: pin it to zero and refit the scale alone
            minv = 0;
            scale = sxl / sl2;
        }
        const float err = error(trial, scale, minv);
        if (err < best_err) {
            std::copy(trial, trial + n, q);
            best_err = err;
            best_scale = scale;
            best_min = minv;
        }
    }
    return {best_scale, -best_min};
}

// Shared by Q4_K (nmax 15) and Q5_K (nmax 31): fills the 4-byte d/dmin header and 12 scale bytes of `blk` and
// the 256 levels in `L`.
void quantize_superblock_affine(const float* x, uint8_t* blk, int nmax, float rmin, int nsteps, uint8_t* L) {
    AffineFit fits[8];
    float max_scale = 0, max_offset = 0;
    for (int j = 0; j < 8; ++j) {
        const float* xs = x + 32 * j;
        float sum2 = 0;
        for (int i = 0; i < 32; ++i) sum2 += xs[i] * xs[i];
        const float rms = std::sqrt(sum2 / 32);
        float w[32];  // favour the large-magnitude values, which dominate a dot product's error
        for (int i = 0; i < 32; ++i) w[i] = rms + std::fabs(xs[i]);
        fits[j] = fit_affine(xs, w, 32, nmax, rmin, 0.1f, nsteps, L + 32 * j);
        max_scale = std::max(max_scale, fits[j].scale);
        max_offset = std::max(max_offset, fits[j].offset);
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_offset = max_offset > 0 ? 63.0f / max_offset : 0.0f;
    uint8_t* scales = blk + 4;
    std::memset(scales, 0, 12);
    for (int j = 0; j < 8; ++j)
        pack_scale_min(scales, j, std::clamp(nearest(inv_scale * fits[j].scale), 0, 63),
                       std::clamp(nearest(inv_offset * fits[j].offset), 0, 63));
    store_u16(blk, fp32_to_fp16(max_scale / 63.0f));
    store_u16(blk + 2, fp32_to_fp16(max_offset / 63.0f));
    // Requantize against the scales as stored (6-bit multiples of fp16 super-scales), not the fitted ones.
    const float d = fp16_at(blk), dmin = fp16_at(blk + 2);
    for (int j = 0; j < 8; ++j) {
        int sc, m;
        unpack_scale_min(scales, j, sc, m);
        const float dj = d * sc, mj = dmin * m;
        for (int i = 0; i < 32; ++i)
            L[32 * j + i] = dj == 0.0f ? 0 : static_cast<uint8_t>(std::clamp(nearest((x[32 * j + i] + mj) / dj), 0, nmax));
    }
}

// --- Q6_K: 16 sub-blocks of 16, x = d * sc * q with int8 sc and q in [-32, 31]. ---

// Symmetric search ("qx" in GGML): levels in [-nmax, nmax-1] around grids near nmax / |max|, weights x^2,
// keeping the scale that maximizes the explained energy (sum w x l)^2 / sum w l^2.
float fit_symmetric(const float* x, int n, int nmax, int8_t* L) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; ++i)
        if (std::fabs(x[i]) > amax) {
            amax = std::fabs(x[i]);
            max = x[i];
        }
    if (amax < kZeroGroup) {
        std::fill(L, L + n, int8_t{0});
        return 0.0f;
    }
    auto sums = [&](float iscale, float& sxl, float& sl2) {
        sxl = sl2 = 0;
        for (int i = 0; i < n; ++i) {
            const int l = std::clamp(nearest(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sxl += w * x[i] * l;
            sl2 += w * l * l;
        }
    };
    auto assign = [&](float iscale) {
        for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(std::clamp(nearest(iscale * x[i]), -nmax, nmax - 1));
    };
    float sxl, sl2;
    float iscale = -nmax / max;
    sums(iscale, sxl, sl2);
    assign(iscale);
    float scale = sl2 > 0 ? sxl / sl2 : 0.0f;
    float best = scale * sxl;
    for (int step = -9; step <= 9; ++step) {
        if (step == 0) continue;
        iscale = -(nmax + 0.1f * step) / max;
        sums(iscale, sxl, sl2);
        if (sl2 > 0 && sxl * sxl > best * sl2) {
            assign(iscale);
            scale = sxl / sl2;
            best = scale * sxl;
        }
    }
    return scale;
}

// Q6_K element e of a super-block: half h = e / 128, group g = (e % 128) / 32, lane l = e % 32. Its low nibble
// is in ql[64h + l + 32(g&1)] (low half for g < 2, high half otherwise) and its top 2 bits in qh[32h + l]
// at bit 2g. Its scale is scales[e / 16].
void q6_position(int e, int& ql_index, int& ql_shift, int& qh_index, int& qh_shift) {
    const int h = e / 128, g = (e % 128) / 32, l = e % 32;
    ql_index = 64 * h + l + 32 * (g & 1);
    ql_shift = g < 2 ? 0 : 4;
    qh_index = 32 * h + l;
    qh_shift = 2 * g;
}

}  // namespace

void dequantize_row_q4_k(const void* src, float* dst, int64_t n) {
    const auto* blk = static_cast<const uint8_t*>(src);
    for (int64_t b = 0; b < n / kQK_K; ++b, blk += 144, dst += kQK_K) {
        const float d = fp16_at(blk), dmin = fp16_at(blk + 2);
        const uint8_t* qs = blk + 16;
        for (int c = 0; c < 4; ++c) {  // 64-element chunks share 32 bytes: low nibbles first, then high
            int sc, m;
            unpack_scale_min(blk + 4, 2 * c, sc, m);
            const float d1 = d * sc, m1 = dmin * m;
            unpack_scale_min(blk + 4, 2 * c + 1, sc, m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; ++l) dst[64 * c + l] = d1 * (qs[32 * c + l] & 15) - m1;
            for (int l = 0; l < 32; ++l) dst[64 * c + 32 + l] = d2 * (qs[32 * c + l] >> 4) - m2;
        }
    }
}

void dequantize_row_q5_k(const void* src, float* dst, int64_t n) {
    const auto* blk = static_cast<const uint8_t*>(src);
    for (int64_t b = 0; b < n / kQK_K; ++b, blk += 176, dst += kQK_K) {
        const float d = fp16_at(blk), dmin = fp16_at(blk + 2);
        const uint8_t* qh = blk + 16;
        const uint8_t* qs = blk + 48;
        for (int c = 0; c < 4; ++c) {  // sub-block j takes its 5th bit from bit j of qh[l]
            int sc, m;
            unpack_scale_min(blk + 4, 2 * c, sc, m);
            const float d1 = d * sc, m1 = dmin * m;
            unpack_scale_min(blk + 4, 2 * c + 1, sc, m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; ++l)
                dst[64 * c + l] = d1 * ((qs[32 * c + l] & 15) + (((qh[l] >> (2 * c)) & 1) << 4)) - m1;
            for (int l = 0; l < 32; ++l)
                dst[64 * c + 32 + l] = d2 * ((qs[32 * c + l] >> 4) + (((qh[l] >> (2 * c + 1)) & 1) << 4)) - m2;
        }
    }
}

void dequantize_row_q6_k(const void* src, float* dst, int64_t n) {
    const auto* blk = static_cast<const uint8_t*>(src);
    for (int64_t b = 0; b < n / kQK_K; ++b, blk += 210, dst += kQK_K) {
        const uint8_t* ql = blk;
        const uint8_t* qh = blk + 128;
        const auto* scales = reinterpret_cast<const int8_t*>(blk + 192);
        const float d = fp16_at(blk + 208);
        for (int e = 0; e < kQK_K; ++e) {
            int qi, qsh, hi, hsh;
            q6_position(e, qi, qsh, hi, hsh);
            const int q = (((ql[qi] >> qsh) & 15) | (((qh[hi] >> hsh) & 3) << 4)) - 32;
            // (d * scale) first, then * q: the same association as llama.cpp, since d*scale*q can round.
            const float ds = d * scales[e / 16];
            dst[e] = ds * q;
        }
    }
}

void dequantize_row_q5_0(const void* src, float* dst, int64_t n) {
    const auto* blk = static_cast<const uint8_t*>(src);
    for (int64_t b = 0; b < n / 32; ++b, blk += 22, dst += 32) {
        const float d = fp16_at(blk);
        uint32_t qh;
        std::memcpy(&qh, blk + 2, 4);
        const uint8_t* qs = blk + 6;
        for (int j = 0; j < 16; ++j) {
            const int x0 = ((qs[j] & 15) | (((qh >> j) & 1) << 4)) - 16;
            const int x1 = ((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
            dst[j] = x0 * d;
            dst[j + 16] = x1 * d;
        }
    }
}

void dequantize_row_q5_1(const void* src, float* dst, int64_t n) {
    const auto* blk = static_cast<const uint8_t*>(src);
    for (int64_t b = 0; b < n / 32; ++b, blk += 24, dst += 32) {
        const float d = fp16_at(blk), m = fp16_at(blk + 2);
        uint32_t qh;
        std::memcpy(&qh, blk + 4, 4);
        const uint8_t* qs = blk + 8;
        for (int j = 0; j < 16; ++j) {
            const int x0 = (qs[j] & 15) | (((qh >> j) & 1) << 4);
            const int x1 = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
            dst[j] = x0 * d + m;
            dst[j + 16] = x1 * d + m;
        }
    }
}

void quantize_row_q4_k(const float* src, void* dst, int64_t n) {
    auto* blk = static_cast<uint8_t*>(dst);
    uint8_t L[kQK_K];
    for (int64_t b = 0; b < n / kQK_K; ++b, blk += 144, src += kQK_K) {
        quantize_superblock_affine(src, blk, 15, -1.0f, 20, L);
        uint8_t* qs = blk + 16;
        for (int c = 0; c < 4; ++c)
            for (int l = 0; l < 32; ++l) qs[32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

void quantize_row_q5_k(const float* src, void* dst, int64_t n) {
    auto* blk = static_cast<uint8_t*>(dst);
    uint8_t L[kQK_K];
    for (int64_t b = 0; b < n / kQK_K; ++b, blk += 176, src += kQK_K) {
        quantize_superblock_affine(src, blk, 31, -0.5f, 15, L);
        uint8_t* qh = blk + 16;
        uint8_t* qs = blk + 48;
        std::memset(qh, 0, 32);
        for (int c = 0; c < 4; ++c)
            for (int l = 0; l < 32; ++l) {
                const int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
                qs[32 * c + l] = static_cast<uint8_t>((lo & 15) | ((hi & 15) << 4));
                qh[l] = static_cast<uint8_t>(qh[l] | ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
            }
    }
}

void quantize_row_q6_k(const float* src, void* dst, int64_t n) {
    auto* blk = static_cast<uint8_t*>(dst);
    int8_t L[kQK_K];
    for (int64_t b = 0; b < n / kQK_K; ++b, blk += 210, src += kQK_K) {
        float scales[16];
        float max_scale = 0, max_abs = 0;
        for (int j = 0; j < 16; ++j) {
            scales[j] = fit_symmetric(src + 16 * j, 16, 32, L + 16 * j);
            if (std::fabs(scales[j]) > max_abs) {
                max_abs = std::fabs(scales[j]);
                max_scale = scales[j];
            }
        }
        std::memset(blk, 0, 210);
        if (max_abs < kZeroGroup) continue;  // all-zero block: zero scales and d
        // The sub-block with the largest |scale| gets int8 scale -128; the others are relative to it.
        const float iscale = -128.0f / max_scale;
        store_u16(blk + 208, fp32_to_fp16(1.0f / iscale));
        auto* sc = reinterpret_cast<int8_t*>(blk + 192);
        for (int j = 0; j < 16; ++j) sc[j] = static_cast<int8_t>(std::min(127, nearest(iscale * scales[j])));
        const float d = fp16_at(blk + 208);
        for (int j = 0; j < 16; ++j) {
            const float dj = d * sc[j];
            for (int i = 0; i < 16; ++i)
                L[16 * j + i] = dj == 0.0f ? 0 : static_cast<int8_t>(std::clamp(nearest(src[16 * j + i] / dj), -32, 31));
        }
        for (int e = 0; e < kQK_K; ++e) {
            const int q = L[e] + 32;
            int qi, qsh, hi, hsh;
            q6_position(e, qi, qsh, hi, hsh);
            blk[qi] = static_cast<uint8_t>(blk[qi] | ((q & 15) << qsh));
            blk[128 + hi] = static_cast<uint8_t>(blk[128 + hi] | ((q >> 4) << hsh));
        }
    }
}

void quantize_row_q5_0(const float* src, void* dst, int64_t n) {
    auto* blk = static_cast<uint8_t*>(dst);
    for (int64_t b = 0; b < n / 32; ++b, blk += 22, src += 32) {
        float amax = 0, max = 0;  // the signed extreme maps to -16, using the full [-16, 15] range on its side
        for (int j = 0; j < 32; ++j)
            if (std::fabs(src[j]) > amax) {
                amax = std::fabs(src[j]);
                max = src[j];
            }
        const float d = max / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_u16(blk, fp32_to_fp16(d));
        uint32_t qh = 0;
        uint8_t* qs = blk + 6;
        for (int j = 0; j < 16; ++j) {
            // Truncation after +16.5 rounds half up, as GGML's reference does.
            const int q0 = std::min(31, static_cast<int>(src[j] * id + 16.5f));
            const int q1 = std::min(31, static_cast<int>(src[j + 16] * id + 16.5f));
            qs[j] = static_cast<uint8_t>((q0 & 15) | ((q1 & 15) << 4));
            qh |= static_cast<uint32_t>(q0 >> 4) << j;
            qh |= static_cast<uint32_t>(q1 >> 4) << (j + 16);
        }
        std::memcpy(blk + 2, &qh, 4);
    }
}

void quantize_row_q5_1(const float* src, void* dst, int64_t n) {
    auto* blk = static_cast<uint8_t*>(dst);
    for (int64_t b = 0; b < n / 32; ++b, blk += 24, src += 32) {
        const auto [lo_it, hi_it] = std::minmax_element(src, src + 32);
        const float lo = *lo_it, hi = *hi_it;
        const float d = (hi - lo) / 31.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_u16(blk, fp32_to_fp16(d));
        store_u16(blk + 2, fp32_to_fp16(lo));
        uint32_t qh = 0;
        uint8_t* qs = blk + 8;
        for (int j = 0; j < 16; ++j) {
            const int q0 = std::min(31, static_cast<int>((src[j] - lo) * id + 0.5f));
            const int q1 = std::min(31, static_cast<int>((src[j + 16] - lo) * id + 0.5f));
            qs[j] = static_cast<uint8_t>((q0 & 15) | ((q1 & 15) << 4));
            qh |= static_cast<uint32_t>(q0 >> 4) << j;
            qh |= static_cast<uint32_t>(q1 >> 4) << (j + 16);
        }
        std::memcpy(blk + 4, &qh, 4);
    }
}

}  // namespace moeinfer
