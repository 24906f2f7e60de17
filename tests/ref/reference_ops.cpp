// Naive reference ops (see reference_ops.h). Deliberately slow and obvious: no tiling, no SIMD, double sums.
#include "reference_ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "formats/dequant.h"

namespace moeinfer::ref {

std::vector<float> dequantize(const Tensor& w) {
    std::vector<float> out(w.rows() * w.cols());
    for (int64_t r = 0; r < w.rows(); ++r) dequantize_row(w.dtype, w.row(r), out.data() + r * w.cols(), w.cols());
    return out;
}

void matmul(const float* x, int64_t T, const float* w, int64_t out, int64_t in, float* y) {
    for (int64_t t = 0; t < T; ++t)
        for (int64_t r = 0; r < out; ++r) {
            double s = 0;
            for (int64_t i = 0; i < in; ++i) s += double(x[t * in + i]) * w[r * in + i];
            y[t * out + r] = float(s);
        }
}

void rms_norm(const float* x, const float* w, float eps, int64_t rows, int64_t n, float* y) {
    for (int64_t r = 0; r < rows; ++r) {
        double ss = 0;
        for (int64_t i = 0; i < n; ++i) ss += double(x[r * n + i]) * x[r * n + i];
        const double inv = 1.0 / std::sqrt(ss / n + eps);
        for (int64_t i = 0; i < n; ++i) y[r * n + i] = float(x[r * n + i] * inv * w[i]);
    }
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }

std::vector<double> softmax(const float* x, int64_t n) {
    const double m = *std::max_element(x, x + n);
    std::vector<double> p(n);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += p[i] = std::exp(double(x[i]) - m);
    for (double& v : p) v /= sum;
    return p;
}

std::vector<double> log_softmax(const float* x, int64_t n) {
    const double m = *std::max_element(x, x + n);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - m);
    std::vector<double> lp(n);
    for (int64_t i = 0; i < n; ++i) lp[i] = double(x[i]) - m - std::log(sum);
    return lp;
}

void rope(float* x, int64_t T, int64_t n_heads, int64_t head_dim, const int32_t* positions, const float* inv_freq,
          bool interleaved) {
    const int64_t half = head_dim / 2;
    for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < n_heads; ++h) {
            float* v = x + (t * n_heads + h) * head_dim;
            for (int64_t i = 0; i < half; ++i) {
                const double angle = float(positions[t]) * inv_freq[i];
                const int64_t a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + half;
                const double x0 = v[a], x1 = v[b];
                v[a] = float(x0 * std::cos(angle) - x1 * std::sin(angle));
                v[b] = float(x1 * std::cos(angle) + x0 * std::sin(angle));
            }
        }
}

void attention(const float* q, int64_t T, const int32_t* positions, const float* k, const float* v,
               int64_t num_heads, int64_t num_kv_heads, int64_t head_dim, int64_t window, float scale, float* out) {
    const int64_t group = num_heads / num_kv_heads;
    for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < num_heads; ++h) {
            const int64_t p = positions[t], kvh = h / group;
            const float* qv = q + (t * num_heads + h) * head_dim;
            std::vector<double> s;
            std::vector<int64_t> keys;
            for (int64_t j = 0; j <= p; ++j) {
                if (window > 0 && !(p - window < j)) continue;
                double d = 0;
                for (int64_t i = 0; i < head_dim; ++i) d += double(qv[i]) * k[(j * num_kv_heads + kvh) * head_dim + i];
                s.push_back(d * scale);
                keys.push_back(j);
            }
            const double m = *std::max_element(s.begin(), s.end());
            double sum = 0;
            for (double& e : s) sum += e = std::exp(e - m);
            float* o = out + (t * num_heads + h) * head_dim;
            for (int64_t i = 0; i < head_dim; ++i) {
                double acc = 0;
                for (size_t n = 0; n < keys.size(); ++n) acc += s[n] * v[(keys[n] * num_kv_heads + kvh) * head_dim + i];
                o[i] = float(acc / sum);
            }
        }
}

void route_topk(const float* logits, int64_t T, int64_t E, int64_t k, bool normalize, int32_t* ids, float* weights) {
    for (int64_t t = 0; t < T; ++t) {
        const std::vector<double> p = softmax(logits + t * E, E);
        std::vector<int32_t> order(E);
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
        double sum = 0;
        for (int64_t s = 0; s < k; ++s) sum += p[order[s]];
        for (int64_t s = 0; s < k; ++s) {
            ids[t * k + s] = order[s];
            weights[t * k + s] = float(normalize ? p[order[s]] / sum : p[order[s]]);
        }
    }
}

namespace {

// Q8_0 / Q4_0 weights multiply int8-quantized activations (32 per block, d = max|x| / 127, round to nearest):
// that is the kernels' documented contract, so the reference rounds the same inputs the same way.
std::vector<float> activations_for(DType weight_dtype, const float* x, int64_t n) {
    std::vector<float> v(x, x + n);
    if ((weight_dtype != DType::Q8_0 && weight_dtype != DType::Q4_0) || n % 32 != 0) return v;
    for (int64_t b = 0; b < n; b += 32) {
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[b + j]));
        const float d = amax / 127.0f, inv = amax > 0 ? 127.0f / amax : 0.0f;
        for (int j = 0; j < 32; ++j) v[b + j] = d * float(std::lrintf(v[b + j] * inv));
    }
    return v;
}

// down(silu(gate(x)) · up(x)) for one token, all in double.
std::vector<double> swiglu(const std::vector<float>& gate, const std::vector<float>& up,
                           const std::vector<float>& down, int64_t ff, int64_t H, const float* x_in, DType dtype) {
    const std::vector<float> x = activations_for(dtype, x_in, H);
    std::vector<float> a(ff);
    for (int64_t f = 0; f < ff; ++f) {
        double g = 0, u = 0;
        for (int64_t i = 0; i < H; ++i) {
            g += double(gate[f * H + i]) * x[i];
            u += double(up[f * H + i]) * x[i];
        }
        a[f] = float(silu(g) * u);  // the kernel keeps this intermediate in fp32
    }
    a = activations_for(dtype, a.data(), ff);
    std::vector<double> y(H, 0.0);
    for (int64_t o = 0; o < H; ++o)
        for (int64_t f = 0; f < ff; ++f) y[o] += down[o * ff + f] * a[f];
    return y;
}

}  // namespace

void moe(const MoeWeights& w, const float* x, int64_t T, float* out, std::vector<uint64_t>* counts) {
    const int64_t E = w.router.rows(), H = w.router.cols(), k = w.top_k;
    const std::vector<float> router = dequantize(w.router);
    std::vector<float> logits(E);
    std::vector<int32_t> ids(k);
    std::vector<float> weights(k);
    for (int64_t t = 0; t < T; ++t) {
        const float* xt = x + t * H;
        matmul(xt, 1, router.data(), E, H, logits.data());
        route_topk(logits.data(), 1, E, k, w.normalize_topk, ids.data(), weights.data());
        std::vector<double> acc(H, 0.0);
        for (int64_t s = 0; s < k; ++s) {
            const int32_t e = ids[s];
            if (counts) ++(*counts)[e];
            const int64_t ff = w.gate[e].rows();
            const std::vector<double> y = swiglu(dequantize(w.gate[e]), dequantize(w.up[e]), dequantize(w.down[e]), ff, H, xt,
                                                w.gate[e].dtype);
            for (int64_t i = 0; i < H; ++i) acc[i] += weights[s] * y[i];
        }
        if (w.has_shared) {
            double gate = 1.0;
            if (w.shared_gate.data) {
                const std::vector<float> sg = dequantize(w.shared_gate);
                double z = 0;
                for (int64_t i = 0; i < H; ++i) z += double(sg[i]) * xt[i];
                gate = 1.0 / (1.0 + std::exp(-z));
            }
            const std::vector<double> y = swiglu(dequantize(w.shared.gate), dequantize(w.shared.up),
                                                 dequantize(w.shared.down), w.shared.gate.rows(), H, xt,
                                                 w.shared.gate.dtype);
            for (int64_t i = 0; i < H; ++i) acc[i] += gate * y[i];
        }
        for (int64_t i = 0; i < H; ++i) out[t * H + i] = float(acc[i]);
    }
}

}  // namespace moeinfer::ref
