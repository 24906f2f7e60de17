// GGUF export (see gguf_export.h). llama.cpp's "llama" arch expects q/k rows permuted so RoPE rotates adjacent
// pairs; every other arch here keeps HF's half-split order. llama3 rope scaling becomes the rope_freqs tensor.
#include "models/gguf_export.h"

#include <cmath>
#include <deque>
#include <filesystem>
#include <numbers>
#include <optional>
#include <stdexcept>
#include <vector>

#include "formats/dequant.h"
#include "formats/gguf.h"
#include "models/model.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/tokenizer.h"

namespace moeinfer {
namespace {

std::string gguf_arch(const ModelConfig& c) {
    if (c.model_type == "llama" || c.model_type == "mistral" || c.model_type == "mixtral") return "llama";
    if (c.model_type == "qwen2") return "qwen2";
    if (c.model_type == "qwen3") return "qwen3";
    if (c.model_type == "qwen2_moe") return "qwen2moe";
    if (c.model_type == "qwen3_moe") return "qwen3moe";
    throw std::runtime_error("GGUF export: architecture '" + c.model_type + "' has no llama.cpp GGUF equivalent");
}

// The tokenizer that travels with the weights, as tokenizer.ggml.* keys, so the GGUF file is self-contained:
// an HF directory's tokenizer.json (+ tokenizer_config.json / generation_config.json), or the vocabulary of a
// source GGUF. None when the source has no tokenizer (e.g. the random-weight goldens).
std::optional<GgufVocab> source_vocab(const Model& model) {
    namespace fs = std::filesystem;
    fs::path src = model.weights().path();
    if (fs::is_regular_file(src) && src.extension() == ".gguf") {
        try {
            return Tokenizer::from_file(src.string())->to_gguf_vocab();
        } catch (const std::exception&) {
            return std::nullopt;  // a GGUF without tokenizer.ggml.* keys
        }
    }
    if (fs::is_regular_file(src)) src = src.parent_path();  // model.safetensors beside its config.json
    if (!fs::exists(src / "tokenizer.json")) return std::nullopt;
    // A tokenizer.json that is present but unreadable is an error: silently dropping it would ship a GGUF that
    // cannot encode text.
    const auto tok = Tokenizer::from_file(src.string());
    GgufVocab v = tok->to_gguf_vocab();
    const ModelConfig& c = model.config();
    if (static_cast<int64_t>(v.tokens.size()) > c.vocab_size)
        throw std::runtime_error("GGUF export: tokenizer in '" + src.string() + "' has " +
                                 std::to_string(v.tokens.size()) + " tokens, more than the model's vocab_size " +
                                 std::to_string(c.vocab_size));
    // Embedding rows past the tokenizer's last id (padding some models carry) still need token strings.
    for (int64_t id = static_cast<int64_t>(v.tokens.size()); id < c.vocab_size; ++id) {
        v.tokens.push_back("[PAD" + std::to_string(id) + "]");
        v.types.push_back(kTokUnused);
        if (!v.scores.empty()) v.scores.push_back(-1e9f);
    }
    // The stop ids (tokenizer_config eos + generation_config eos_token_id, then config.json's): the first is eos,
    // a second (e.g. ChatML's <|im_end|>) becomes eot, which GGUF readers also stop at.
    const std::vector<int32_t> tok_stops = tok->eos_ids();  // returned by value
    std::vector<int64_t> stops(tok_stops.begin(), tok_stops.end());
    stops.insert(stops.end(), c.eos_token_ids.begin(), c.eos_token_ids.end());
    for (int64_t id : stops) {
        if (!v.eos_id) v.eos_id = static_cast<int32_t>(id);
        else if (!v.eot_id && id != *v.eos_id) v.eot_id = static_cast<int32_t>(id);
    }
    if (!v.bos_id && c.bos_token_id >= 0) v.bos_id = static_cast<int32_t>(c.bos_token_id);
    return v;
}

class Exporter {
public:
    Exporter(GgufWriter& w, DType type, const TensorTypeChooser& choose) : w_(w), type_(type), choose_(choose) {}

    // Adds rows of `src` (any dtype) as `name` in the export type; row_order permutes rows when non-empty.
    void matrix(const std::string& name, const std::vector<const Tensor*>& parts, const std::vector<int64_t>& shape,
                const std::vector<int64_t>& row_order = {}, DType force = DType::Unknown) {
        const int64_t cols = shape.back();
        DType out = (cols % dtype_info(type_).block_elems == 0) ? type_ : DType::F16;
        if (force != DType::Unknown) out = force;
        if (choose_) out = choose_(name, shape, out);
        if (cols % dtype_info(out).block_elems != 0)
            throw std::runtime_error("GGUF export: tensor '" + name + "' rows of " + std::to_string(cols) +
                                     " cannot be stored as " + dtype_name(out));
        std::vector<float> row(cols);
        std::vector<uint8_t>& buf = buffers_.emplace_back();
        const size_t rb = dtype_row_bytes(out, cols);
        int64_t total_rows = 0;
        for (const Tensor* p : parts) total_rows += p->rows();
        buf.resize(total_rows * rb);
        int64_t r_out = 0;
        for (const Tensor* p : parts) {
            for (int64_t r = 0; r < p->rows(); ++r, ++r_out) {
                const int64_t src_row = row_order.empty() ? r : row_order[r];
                dequantize_row(p->dtype, p->row(src_row), row.data(), cols);
                quantize_row(out, row.data(), buf.data() + r_out * rb, cols);
            }
        }
        w_.add_tensor(name, out, shape, buf.data(), buf.size());
    }

    void vector(const std::string& name, std::vector<float> v) {
        const auto& stored = vectors_.emplace_back(std::move(v));
        w_.add_tensor(name, DType::F32, {int64_t(stored.size())}, stored.data(), stored.size() * sizeof(float));
    }

private:
    GgufWriter& w_;
    DType type_;
    const TensorTypeChooser& choose_;
    std::deque<std::vector<uint8_t>> buffers_;  // deque: stable addresses until write()
    std::deque<std::vector<float>> vectors_;
};

// Row order that turns HF's half-split head layout into adjacent pairs: new row 2i ← i, 2i+1 ← i + hd/2.
std::vector<int64_t> pair_permutation(int64_t heads, int64_t hd) {
    std::vector<int64_t> order(heads * hd);
    for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < hd / 2; ++i) {
            order[h * hd + 2 * i] = h * hd + i;
            order[h * hd + 2 * i + 1] = h * hd + i + hd / 2;
        }
    return order;
}

std::vector<float> permuted(const std::vector<float>& v, const std::vector<int64_t>& order) {
    if (v.empty() || order.empty()) return v;
    std::vector<float> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = v[order[i]];
    return out;
}

}  // namespace

void export_gguf(const Model& model, const std::string& path, DType type, const TensorTypeChooser& choose,
                 int file_type) {
    const ModelConfig& c = model.config();
    const std::string arch = gguf_arch(c);
    const std::string a = arch + ".";
    GgufWriter w;
    w.add_string("general.architecture", arch);
    w.add_string("general.name", c.model_type);
    if (file_type >= 0) w.add_u32("general.file_type", uint32_t(file_type));
    w.add_u32(a + "context_length", uint32_t(c.max_position));
    w.add_u32(a + "embedding_length", uint32_t(c.hidden_size));
    w.add_u32(a + "block_count", uint32_t(c.num_layers));
    w.add_u32(a + "feed_forward_length", uint32_t(c.intermediate_size));
    w.add_u32(a + "attention.head_count", uint32_t(c.num_heads));
    w.add_u32(a + "attention.head_count_kv", uint32_t(c.num_kv_heads));
    w.add_u32(a + "attention.key_length", uint32_t(c.head_dim));
    w.add_u32(a + "attention.value_length", uint32_t(c.head_dim));
    w.add_f32(a + "attention.layer_norm_rms_epsilon", float(c.rms_eps));
    w.add_f32(a + "rope.freq_base", float(c.rope.theta));
    w.add_u32(a + "rope.dimension_count", uint32_t(c.head_dim));
    w.add_u32(a + "vocab_size", uint32_t(c.vocab_size));
    if (c.sliding_window) w.add_u32(a + "attention.sliding_window", uint32_t(c.sliding_window));
    if (c.rope.scaling == RopeScaling::Linear) {
        w.add_string(a + "rope.scaling.type", "linear");
        w.add_f32(a + "rope.scaling.factor", float(c.rope.factor));
    }
    if (c.is_moe()) {
        w.add_u32(a + "expert_count", uint32_t(c.num_experts));
        w.add_u32(a + "expert_used_count", uint32_t(c.experts_per_token));
        w.add_u32(a + "expert_feed_forward_length", uint32_t(c.moe_intermediate_size));
        if (c.shared_expert_intermediate_size)
            w.add_u32(a + "expert_shared_feed_forward_length", uint32_t(c.shared_expert_intermediate_size));
        w.add_bool(a + "expert_weights_norm", c.norm_topk_prob);
    }
    if (const auto vocab = source_vocab(model)) {
        write_gguf_vocab(w, *vocab);
    } else {
        if (c.bos_token_id >= 0) w.add_u32("tokenizer.ggml.bos_token_id", uint32_t(c.bos_token_id));
        if (!c.eos_token_ids.empty()) w.add_u32("tokenizer.ggml.eos_token_id", uint32_t(c.eos_token_ids[0]));
    }

    Exporter ex(w, type, choose);
    const int64_t H = c.hidden_size;
    ex.matrix("token_embd.weight", {&model.embedding()}, {c.vocab_size, H});
    ex.vector("output_norm.weight", model.final_norm());
    if (model.lm_head().data != model.embedding().data) ex.matrix("output.weight", {&model.lm_head()}, {c.vocab_size, H});
    if (c.rope.scaling == RopeScaling::Llama3) {
        // Divisors of the unscaled frequencies, so a reader without llama3 logic gets the scaled ones.
        std::vector<float> factors(c.head_dim / 2);
        for (int64_t i = 0; i < c.head_dim / 2; ++i) {
            const float base = 1.0f / std::pow(float(c.rope.theta), float(2 * i) / float(c.head_dim));
            factors[i] = base / model.inv_freq()[i];
        }
        ex.vector("rope_freqs.weight", factors);
    } else if (const GgufFile* src = model.weights().gguf()) {
        // A GGUF source keeps llama3-style divisors in rope_freqs.weight (no scaling key): pass them through.
        if (const Tensor* ff = src->tensor("rope_freqs.weight")) {
            std::vector<float> factors(ff->numel());
            dequantize_row(ff->dtype, ff->data, factors.data(), ff->numel());
            ex.vector("rope_freqs.weight", factors);
        }
    }
    // A model read from a llama-arch GGUF already holds q/k rows in pair order (rope.interleaved): keep them.
    const bool pairs = arch == "llama" && !c.rope.interleaved;
    const auto q_order = pairs ? pair_permutation(c.num_heads, c.head_dim) : std::vector<int64_t>{};
    const auto k_order = pairs ? pair_permutation(c.num_kv_heads, c.head_dim) : std::vector<int64_t>{};
    for (int64_t l = 0; l < c.num_layers; ++l) {
        const DecoderLayerWeights& L = model.layers()[l];
        const std::string p = "blk." + std::to_string(l) + ".";
        const AttentionWeights& at = L.attn;
        ex.vector(p + "attn_norm.weight", L.attn_norm);
        ex.vector(p + "ffn_norm.weight", L.ffn_norm);
        ex.matrix(p + "attn_q.weight", {&at.q}, at.q.shape, q_order);
        ex.matrix(p + "attn_k.weight", {&at.k}, at.k.shape, k_order);
        ex.matrix(p + "attn_v.weight", {&at.v}, at.v.shape);
        ex.matrix(p + "attn_output.weight", {&at.o}, at.o.shape);
        if (!at.q_bias.empty()) {
            ex.vector(p + "attn_q.bias", permuted(at.q_bias, q_order));
            ex.vector(p + "attn_k.bias", permuted(at.k_bias, k_order));
            ex.vector(p + "attn_v.bias", at.v_bias);
        }
        if (at.qk_norm == QkNorm::Full) throw std::runtime_error("GGUF export: full-projection q/k norm has no GGUF arch");
        if (at.qk_norm == QkNorm::PerHead) {
            ex.vector(p + "attn_q_norm.weight", at.q_norm);
            ex.vector(p + "attn_k_norm.weight", at.k_norm);
        }
        if (!L.is_moe) {
            ex.matrix(p + "ffn_gate.weight", {&L.mlp.gate}, L.mlp.gate.shape);
            ex.matrix(p + "ffn_up.weight", {&L.mlp.up}, L.mlp.up.shape);
            ex.matrix(p + "ffn_down.weight", {&L.mlp.down}, L.mlp.down.shape);
            continue;
        }
        const MoeWeights& m = L.moe;
        const int64_t E = c.num_experts, ff = c.moe_intermediate_size;
        auto all = [](const std::vector<Tensor>& v) {
            std::vector<const Tensor*> out;
            for (const Tensor& t : v) out.push_back(&t);
            return out;
        };
        // Routers stay F32: a quantized router flips expert choices for little size gain.
        ex.matrix(p + "ffn_gate_inp.weight", {&m.router}, m.router.shape, {}, DType::F32);
        ex.matrix(p + "ffn_gate_exps.weight", all(m.gate), {E, ff, H});
        ex.matrix(p + "ffn_up_exps.weight", all(m.up), {E, ff, H});
        ex.matrix(p + "ffn_down_exps.weight", all(m.down), {E, H, ff});
        if (m.has_shared) {
            ex.matrix(p + "ffn_gate_shexp.weight", {&m.shared.gate}, m.shared.gate.shape);
            ex.matrix(p + "ffn_up_shexp.weight", {&m.shared.up}, m.shared.up.shape);
            ex.matrix(p + "ffn_down_shexp.weight", {&m.shared.down}, m.shared.down.shape);
            if (m.shared_gate.data)  // llama.cpp stores this [1, H] gate as a vector
                ex.matrix(p + "ffn_gate_inp_shexp.weight", {&m.shared_gate}, {H}, {}, DType::F32);
        }
    }
    w.write(path);
}

}  // namespace moeinfer
