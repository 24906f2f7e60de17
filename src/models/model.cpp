// Model loading and the decoder forward: embed → per layer (norm → attention → residual → norm → MLP/MoE →
// residual) → final norm → lm_head on the requested rows only.
#include "models/model.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>
#include <stdexcept>

#include "backends/cpu/elementwise.h"
#include "backends/cpu/matmul.h"
#include "engine/sampler.h"
#include "formats/dequant.h"
#include "formats/gguf.h"
#include "layers/attention.h"
#include "layers/mlp.h"
#include "layers/moe.h"
#include "models/family.h"

namespace moeinfer {

void summarize_row(const float* raw, int64_t V, RowSummary& s) {
    std::vector<float> adjusted;
    const float* row = raw;
    if (s.num_adjust > 0) {
        adjusted.assign(raw, raw + V);
        apply_adjustments(adjusted.data(), s.adjust, s.num_adjust);
        row = adjusted.data();
    }
    const int64_t best = std::max_element(row, row + V) - row;
    s.token = static_cast<int32_t>(best);
    if (s.temperature > 0) {  // inverse CDF in id order over the kept tokens (weights relative to the top one)
        auto tempered = [&](int64_t i) { return std::exp((double(row[i]) - row[best]) / s.temperature); };
        // top-k / top-p keep a prefix of the ids sorted by (logit desc, id asc): mark it.
        std::vector<char> in_prefix(V, 1);
        const bool cut = (s.top_k > 0 && s.top_k < V) || s.top_p < 1;
        if (cut) {
            std::vector<int32_t> order(V);
            std::iota(order.begin(), order.end(), 0);
            std::sort(order.begin(), order.end(),
                      [&](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
            int64_t n = s.top_k > 0 ? std::min<int64_t>(s.top_k, V) : V;
            if (s.top_p < 1) {
                double mass = 0, cum = 0;
                for (int64_t i = 0; i < n; ++i) mass += tempered(order[i]);
                for (int64_t i = 0; i < n; ++i) {
                    cum += tempered(order[i]);
                    if (cum >= s.top_p * mass) {
                        n = i + 1;
                        break;
                    }
                }
            }
            std::fill(in_prefix.begin(), in_prefix.end(), 0);
            for (int64_t i = 0; i < n; ++i) in_prefix[order[i]] = 1;
        }
        auto weight = [&](int64_t i) {
            const double w = tempered(i);
            return in_prefix[i] && w >= s.min_p ? w : 0.0;
        };
        double total = 0;
        for (int64_t i = 0; i < V; ++i) total += weight(i);
        const double target = s.u * total;
        double acc = 0;
        for (int64_t i = 0; i < V; ++i) {
            const double w = weight(i);
            acc += w;
            if (w > 0 && acc > target) {
                s.token = static_cast<int32_t>(i);
                break;
            }
        }
    }
    s.logprob = token_logprob(raw, V, s.token, 0).logprob;  // the raw distribution's, as the host sampler reports
}

std::unique_ptr<Model> Model::load(const std::string& path) { return from_weights(Weights::open(path)); }

std::unique_ptr<Model> Model::load_synthetic(const std::string& config_path) {
    return from_weights(Weights::synthetic(config_path));
}

std::unique_ptr<Model> Model::from_weights(std::unique_ptr<Weights> weights) {
    std::unique_ptr<Model> m(new Model());
    m->weights_ = std::move(weights);
    const std::string path = m->weights_->path();
    const Weights& w = *m->weights_;
    const ModelConfig& c = w.config();
    FamilyLoader loader = find_family(c.model_type);
    if (!loader)
        throw std::runtime_error("model '" + path + "': unsupported architecture '" + c.model_type +
                                 "' (supported: " + supported_families() + ")");
    m->embed_ = w.require("model.embed_tokens.weight", {c.vocab_size, c.hidden_size});
    m->final_norm_ = w.require_f32("model.norm.weight", {c.hidden_size});
    const bool has_head = w.find("lm_head.weight") != nullptr || (w.synthetic() && !c.tie_word_embeddings);
    if (!has_head && !c.tie_word_embeddings && !w.is_gguf())
        throw std::runtime_error("model '" + path + "': missing tensor 'lm_head.weight' (tie_word_embeddings is false)");
    m->lm_head_ = has_head ? w.require("lm_head.weight", {c.vocab_size, c.hidden_size}) : m->embed_;
    for (int64_t l = 0; l < c.num_layers; ++l) {
        m->layers_.push_back(loader(w, c, l));
        m->routed_counts_.emplace_back(m->layers_.back().is_moe ? c.num_experts : 0, 0);
    }
    m->init_rope();
    return m;
}

void Model::init_rope() {
    const ModelConfig& c = config();
    const RopeConfig& r = c.rope;
    const int64_t half = c.head_dim / 2;
    inv_freq_.resize(half);
    for (int64_t i = 0; i < half; ++i) {
        // As HF: inv_freq = 1 / theta^(2i/d), formed in fp32.
        float f = 1.0f / std::pow(float(r.theta), float(2 * i) / float(c.head_dim));
        if (r.scaling == RopeScaling::Linear) {
            f /= float(r.factor);
        } else if (r.scaling == RopeScaling::Llama3) {
            const double wavelen = 2 * std::numbers::pi / f;
            const double low_wavelen = r.original_max_position / r.low_freq_factor;
            const double high_wavelen = r.original_max_position / r.high_freq_factor;
            if (wavelen > low_wavelen) {
                f = float(f / r.factor);
            } else if (wavelen >= high_wavelen) {
                const double smooth =
                    (r.original_max_position / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
                f = float((1 - smooth) * f / r.factor + smooth * f);
            }
        }
        inv_freq_[i] = f;
    }
    // GGUF files of llama3-scaled models carry the per-frequency divisors as a tensor instead.
    if (weights_->is_gguf()) {
        if (const Tensor* ff = weights_->gguf()->tensor("rope_freqs.weight")) {
            if (ff->numel() != half)
                throw std::runtime_error("model '" + weights_->path() + "': rope_freqs.weight has " +
                                         std::to_string(ff->numel()) + " values, expected " + std::to_string(half));
            std::vector<float> factors(half);
            dequantize_row(ff->dtype, ff->data, factors.data(), half);
            for (int64_t i = 0; i < half; ++i) inv_freq_[i] /= factors[i];
        }
    }
}

int64_t Model::parameter_count() const {
    int64_t n = 0;
    for (const Tensor& t : weights_->all_tensors()) n += t.numel();
    return n;
}

int64_t Model::kv_bytes_per_token() const {
    int64_t floats = 0;
    for (int64_t w : kv_widths()) floats += 2 * w;
    return floats * (device_ ? device_->kv_bytes_per_element() : int64_t(sizeof(float)));
}

std::unique_ptr<KvCache> Model::make_kv_cache(int32_t num_blocks, int32_t block_size) const {
    if (device_) return std::make_unique<KvCache>(num_blocks, block_size, device_->allocate_kv(num_blocks, block_size));
    return std::make_unique<KvCache>(num_blocks, block_size, kv_widths());
}

std::vector<int64_t> Model::kv_widths() const {
    const ModelConfig& c = config();
    return std::vector<int64_t>(c.num_layers, c.num_kv_heads * c.head_dim);
}

void Model::forward(const Batch& batch, KvCache& kv, float* logits, RowSummary* summaries) {
    launch_forward(batch, kv, logits, summaries);
    finish_forward();
}

void Model::finish_forward() {
    if (device_) device_->finish();
}

void Model::launch_forward(const Batch& batch, KvCache& kv, float* logits, RowSummary* summaries) {
    const ModelConfig& c = config();
    const int64_t T = batch.num_tokens(), V = c.vocab_size;
    bool refers_back = false;
    for (int64_t t = 0; t < T; ++t) {
        const int32_t id = batch.token_ids[t];
        if (id < 0 && -1 - int64_t(id) < previous_rows_) {
            refers_back = true;
        } else if (id < 0 || id >= V) {
            throw std::invalid_argument("token id " + std::to_string(id) + " is out of range (vocab size " +
                                        std::to_string(V) + (id < 0 ? "; the previous step has " +
                                        std::to_string(previous_rows_) + " summary rows" : std::string()) + ")");
        }
    }
    previous_rows_ = summaries ? static_cast<int64_t>(batch.logit_rows.size()) : 0;
    if (device_) {
        if (!kv.device()) throw std::invalid_argument("Model::forward: a device model needs a KV cache made by make_kv_cache");
        device_->launch(batch, *kv.device(), logits, summaries);
        return;
    }
    if (!refers_back) return cpu_forward(batch, kv, logits, summaries);
    Batch resolved = batch;
    for (int32_t& id : resolved.token_ids)
        if (id < 0) id = previous_tokens_[-1 - int64_t(id)];
    cpu_forward(resolved, kv, logits, summaries);
}

void Model::cpu_forward(const Batch& batch, KvCache& kv, float* logits, RowSummary* summaries) {
    const ModelConfig& c = config();
    const int64_t T = batch.num_tokens(), H = c.hidden_size, V = c.vocab_size;
    std::vector<float> own;
    if (!logits) {
        own.resize(batch.logit_rows.size() * V);
        logits = own.data();
    }
    if (synthetic()) throw std::runtime_error("model '" + weights_->path() + "' has synthetic weights: run it on a device (--device cuda)");
    std::vector<float> x(T * H), normed(T * H), branch(T * H);
    for (int64_t t = 0; t < T; ++t) dequantize_row(embed_.dtype, embed_.row(batch.token_ids[t]), x.data() + t * H, H);

    AttentionContext ctx;
    ctx.meta = {batch.positions.data(), batch.token_seq.data(), batch.block_tables.data(), kv.block_size()};
    ctx.shape = {c.num_heads, c.num_kv_heads, c.head_dim, c.sliding_window, float(1.0 / std::sqrt(double(c.head_dim)))};
    ctx.inv_freq = inv_freq_.data();
    ctx.rope_interleaved = c.rope.interleaved;
    ctx.norm_eps = float(c.rms_eps);
    const float eps = float(c.rms_eps);

    for (size_t l = 0; l < layers_.size(); ++l) {
        const DecoderLayerWeights& lw = layers_[l];
        ctx.k_cache = kv.k(l);
        ctx.v_cache = kv.v(l);
        cpu::rms_norm(x.data(), lw.attn_norm.data(), eps, T, H, normed.data());
        attention_forward(lw.attn, normed.data(), T, ctx, branch.data());
        cpu::add_inplace(x.data(), branch.data(), T * H);
        cpu::rms_norm(x.data(), lw.ffn_norm.data(), eps, T, H, normed.data());
        if (lw.is_moe)
            moe_forward(lw.moe, normed.data(), T, branch.data(), routed_counts_[l]);
        else
            mlp_forward(lw.mlp, normed.data(), T, branch.data());
        cpu::add_inplace(x.data(), branch.data(), T * H);
    }

    const int64_t R = static_cast<int64_t>(batch.logit_rows.size());
    std::vector<float> rows(R * H);
    for (int64_t r = 0; r < R; ++r)
        std::copy_n(x.data() + int64_t(batch.logit_rows[r]) * H, H, rows.data() + r * H);
    cpu::rms_norm(rows.data(), final_norm_.data(), eps, R, H, rows.data());
    cpu::matmul(rows.data(), R, lm_head_, logits);
    previous_tokens_.resize(summaries ? R : 0);
    for (int64_t r = 0; summaries && r < R; ++r) {
        summarize_row(logits + r * V, V, summaries[r]);
        previous_tokens_[r] = summaries[r].token;
    }
}

}  // namespace moeinfer
