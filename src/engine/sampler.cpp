// Sampling (see sampler.h). Filters apply in the order temperature → top-k → top-p → min-p → typical-p (the order of
// HF's warpers; typical-p is measured on what the earlier filters kept).
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "backends/cpu/elementwise.h"

namespace moeinfer {

void SamplingParams::validate() const {
    if (!(temperature >= 0) || !std::isfinite(temperature))
        throw std::invalid_argument("temperature must be >= 0 (got " + std::to_string(temperature) + ")");
    if (top_k < 0) throw std::invalid_argument("top_k must be >= 0 (got " + std::to_string(top_k) + ")");
    if (!(top_p > 0 && top_p <= 1)) throw std::invalid_argument("top_p must be in (0, 1] (got " + std::to_string(top_p) + ")");
    if (!(min_p >= 0 && min_p <= 1)) throw std::invalid_argument("min_p must be in [0, 1] (got " + std::to_string(min_p) + ")");
    if (!(presence_penalty >= -2 && presence_penalty <= 2))
        throw std::invalid_argument("presence_penalty must be in [-2, 2] (got " + std::to_string(presence_penalty) + ")");
    if (!(frequency_penalty >= -2 && frequency_penalty <= 2))
        throw std::invalid_argument("frequency_penalty must be in [-2, 2] (got " + std::to_string(frequency_penalty) + ")");
    if (!(repetition_penalty > 0) || !std::isfinite(repetition_penalty))
        throw std::invalid_argument("repetition_penalty must be > 0 (got " + std::to_string(repetition_penalty) + ")");
    if (!(typical_p > 0 && typical_p <= 1))
        throw std::invalid_argument("typical_p must be in (0, 1] (got " + std::to_string(typical_p) + ")");
    for (const auto& [id, b] : logit_bias) {
        if (id < 0) throw std::invalid_argument("logit_bias: token id " + std::to_string(id) + " is negative");
        if (!(b >= -100 && b <= 100))
            throw std::invalid_argument("logit_bias: bias for token " + std::to_string(id) + " must be in [-100, 100] (got " +
                                        std::to_string(b) + ")");
    }
    if (logprobs < 0 || logprobs > 20) throw std::invalid_argument("logprobs must be in [0, 20] (got " + std::to_string(logprobs) + ")");
}

std::vector<LogitAdjust> logit_adjustments(const SamplingParams& p, const std::vector<int32_t>& prompt,
                                           const std::vector<int32_t>& generated, const std::vector<int32_t>& banned) {
    std::vector<LogitAdjust> out;
    std::unordered_map<int32_t, size_t> at;  // id → index in out
    auto entry = [&](int32_t id) -> LogitAdjust& {
        auto [it, fresh] = at.emplace(id, out.size());
        if (fresh) out.push_back(LogitAdjust{id});
        return out[it->second];
    };
    for (const auto& [id, b] : p.logit_bias) entry(id).bias += b;
    if (p.repetition_penalty != 1.0f) {
        for (int32_t t : prompt) entry(t).rep = p.repetition_penalty;
        for (int32_t t : generated) entry(t).rep = p.repetition_penalty;
    }
    if (p.presence_penalty != 0 || p.frequency_penalty != 0) {
        std::unordered_map<int32_t, int64_t> count;
        for (int32_t t : generated) ++count[t];
        for (const auto& [t, c] : count) entry(t).sub = p.frequency_penalty * float(c) + p.presence_penalty;
    }
    for (int32_t id : banned) entry(id).sub = std::numeric_limits<float>::infinity();
    return out;
}

void apply_adjustments(float* logits, const LogitAdjust* adjust, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const LogitAdjust& a = adjust[i];
        float l = logits[a.id] + a.bias;
        if (a.rep != 1.0f) l = l > 0 ? l / a.rep : l * a.rep;
        logits[a.id] = l - a.sub;
    }
}

void apply_logit_bias(float* logits, int64_t V, const SamplingParams& p) {
    for (const auto& [id, b] : p.logit_bias)
        if (id >= 0 && id < V) logits[id] += b;
}

void apply_penalties(float* logits, int64_t V, const SamplingParams& p, const std::vector<int32_t>& prompt,
                     const std::vector<int32_t>& generated) {
    if (p.repetition_penalty != 1.0f) {
        std::vector<bool> seen(V, false);
        for (int32_t t : prompt) seen[t] = true;
        for (int32_t t : generated) seen[t] = true;
        for (int64_t i = 0; i < V; ++i)
            if (seen[i]) logits[i] = logits[i] > 0 ? logits[i] / p.repetition_penalty : logits[i] * p.repetition_penalty;
    }
    if (p.presence_penalty != 0 || p.frequency_penalty != 0) {
        std::vector<int32_t> count(V, 0);
        for (int32_t t : generated) ++count[t];
        for (int64_t i = 0; i < V; ++i)
            if (count[i]) logits[i] -= p.frequency_penalty * count[i] + p.presence_penalty;
    }
}

TokenLogprob token_logprob(const float* logits, int64_t V, int32_t token, int32_t top_k) {
    std::vector<float> lp(logits, logits + V);
    cpu::log_softmax_row(lp.data(), V);
    TokenLogprob out;
    out.token = token;
    out.logprob = lp[token];
    if (top_k > 0) {
        std::vector<int32_t> idx(V);
        std::iota(idx.begin(), idx.end(), 0);
        const int64_t k = std::min<int64_t>(top_k, V);
        std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                          [&](int32_t a, int32_t b) { return lp[a] > lp[b] || (lp[a] == lp[b] && a < b); });
        for (int64_t i = 0; i < k; ++i) out.top.emplace_back(idx[i], lp[idx[i]]);
    }
    return out;
}

namespace {

// Locally typical filter over unnormalized probabilities (sorted best first): keeps the tokens whose surprisal is
// closest to the entropy, fewest first, until their mass reaches `mass`; the rest get probability 0. As HF's
// TypicalLogitsWarper: the cut is a threshold on |surprisal - entropy|, so ties at the threshold stay.
void typical_filter(std::vector<double>& prob, double mass) {
    const int64_t n = static_cast<int64_t>(prob.size());
    double sum = 0;
    for (double q : prob) sum += q;
    double entropy = 0;
    for (double q : prob)
        if (q > 0) entropy -= (q / sum) * std::log(q / sum);
    std::vector<double> dev(n);
    for (int64_t i = 0; i < n; ++i) dev[i] = prob[i] > 0 ? std::fabs(-std::log(prob[i] / sum) - entropy) : INFINITY;
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return dev[a] < dev[b]; });
    int64_t last = 0;  // number of tokens whose cumulative mass stays below `mass` (HF's last_ind)
    double cum = 0;
    for (; last < n - 1; ++last) {
        cum += prob[order[last]] / sum;
        if (cum >= mass) break;
    }
    const double threshold = dev[order[last]];
    for (int64_t i = 0; i < n; ++i)
        if (dev[i] > threshold) prob[i] = 0;
}

}  // namespace

namespace {

// Candidates after the filters: ids best first and their unnormalized weights (0 = filtered out by typical-p).
struct Filtered {
    std::vector<int32_t> idx;
    std::vector<double> prob;
};

Filtered filter(const float* logits, int64_t V, const SamplingParams& p) {
    Filtered f;
    f.idx.resize(V);
    std::iota(f.idx.begin(), f.idx.end(), 0);
    std::sort(f.idx.begin(), f.idx.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
    int64_t n = (p.top_k > 0) ? std::min<int64_t>(p.top_k, V) : V;
    std::vector<double>& prob = f.prob;
    prob.resize(n);
    const double m = logits[f.idx[0]] / p.temperature;
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += prob[i] = std::exp(logits[f.idx[i]] / p.temperature - m);
    if (p.top_p < 1) {
        double cum = 0;
        for (int64_t i = 0; i < n; ++i) {
            cum += prob[i] / sum;
            if (cum >= p.top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (p.min_p > 0) {
        const double floor = p.min_p * prob[0];
        while (n > 1 && prob[n - 1] < floor) --n;
    }
    prob.resize(n);
    f.idx.resize(n);
    if (p.typical_p < 1) typical_filter(prob, p.typical_p);
    return f;
}

}  // namespace

int32_t sample_from(const std::vector<double>& w, std::mt19937_64& rng) {
    double kept = 0;
    for (double x : w) kept += x;
    double u = std::uniform_real_distribution<double>(0.0, kept)(rng);
    int64_t i = 0;
    const int64_t n = static_cast<int64_t>(w.size());
    for (; i < n - 1; ++i) {
        if (w[i] == 0) continue;
        u -= w[i];
        if (u < 0) break;
    }
    while (w[i] == 0) --i;  // rounding ran past the last positive weight
    return static_cast<int32_t>(i);
}

std::vector<double> sampling_probs(const float* logits, int64_t V, const SamplingParams& p) {
    std::vector<double> dense(V, 0.0);
    if (p.temperature == 0) {
        dense[std::max_element(logits, logits + V) - logits] = 1.0;
        return dense;
    }
    const Filtered f = filter(logits, V, p);
    double sum = 0;
    for (double x : f.prob) sum += x;
    for (size_t i = 0; i < f.idx.size(); ++i) dense[f.idx[i]] = f.prob[i] / sum;
    return dense;
}

namespace {

// sample_token without sorting the vocabulary (typical-p off): the same candidates in the same best-first order,
// produced lazily from a heap, so a draw costs O(V) plus O(log V) per token walked instead of O(V log V). With a
// large vocabulary the full sort cost more than the forward itself (bench/RESULTS.md, engine loop idle time).
// Draws match the sorting path except where summation order moves u across a boundary (~1e-16 relative).
int32_t sample_lazy(const float* logits, int64_t V, const SamplingParams& p, std::mt19937_64& rng) {
    auto better = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
    std::vector<int32_t> cand(V);
    std::iota(cand.begin(), cand.end(), 0);
    const int64_t limit = p.top_k > 0 ? std::min<int64_t>(p.top_k, V) : V;
    if (limit < V) {
        std::nth_element(cand.begin(), cand.begin() + (limit - 1), cand.end(), better);
        cand.resize(limit);
    }
    const int32_t best = *std::min_element(cand.begin(), cand.end(), better);
    const double m = logits[best] / p.temperature;
    auto weight = [&](int32_t id) { return std::exp(logits[id] / p.temperature - m); };
    double sum = 0;
    int64_t above_floor = 0;  // min-p keeps the tokens whose weight reaches min_p × the best's (1)
    for (int32_t id : cand) {
        const double w = weight(id);
        sum += w;
        above_floor += w >= p.min_p;
    }
    std::make_heap(cand.begin(), cand.end(), [&](int32_t a, int32_t b) { return better(b, a); });
    std::vector<int32_t> order;  // best first, popped on demand
    std::vector<double> w;
    auto at = [&](int64_t i) {
        while (static_cast<int64_t>(order.size()) <= i) {
            std::pop_heap(cand.begin(), cand.end(), [&](int32_t a, int32_t b) { return better(b, a); });
            order.push_back(cand.back());
            w.push_back(weight(cand.back()));
            cand.pop_back();
        }
        return w[i];
    };
    int64_t n = limit;
    double kept = sum;
    if (p.top_p < 1) {
        double cum = 0;
        for (int64_t i = 0; i < limit; ++i) {
            cum += at(i) / sum;
            if (cum >= p.top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (p.min_p > 0) n = std::max<int64_t>(1, std::min(n, above_floor));
    if (n < limit) {
        kept = 0;
        for (int64_t i = 0; i < n; ++i) kept += at(i);
    }
    double u = std::uniform_real_distribution<double>(0.0, kept)(rng);
    int64_t i = 0;
    for (; i < n - 1; ++i) {
        if (at(i) == 0) continue;
        u -= w[i];
        if (u < 0) break;
    }
    at(i);
    while (w[i] == 0) --i;  // rounding ran past the last positive weight
    return order[i];
}

}  // namespace

int32_t sample_token(const float* logits, int64_t V, const SamplingParams& p, std::mt19937_64& rng,
                     TokenLogprob* logprob_out) {
    int32_t chosen;
    if (p.temperature == 0) {
        chosen = static_cast<int32_t>(std::max_element(logits, logits + V) - logits);  // first max on ties
    } else if (p.typical_p >= 1) {
        chosen = sample_lazy(logits, V, p, rng);
    } else {
        const Filtered f = filter(logits, V, p);
        chosen = f.idx[sample_from(f.prob, rng)];
    }
    if (logprob_out) *logprob_out = token_logprob(logits, V, chosen, p.logprobs);
    return chosen;
}

}  // namespace moeinfer
