// HF config.json → ModelConfig, and the range checks every loader runs before building a model.
#include "models/model_config.h"

#include <algorithm>
#include <stdexcept>

namespace moeinfer {

bool ModelConfig::layer_is_moe(int64_t layer) const {
    if (num_experts == 0) return false;
    if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end()) return false;
    return decoder_sparse_step <= 1 || (layer + 1) % decoder_sparse_step == 0;
}

void ModelConfig::validate(const std::string& source) const {
    auto bad = [&](const std::string& field, int64_t v, const std::string& why) {
        throw std::runtime_error(source + ": config value " + field + " = " + std::to_string(v) + " " + why);
    };
    auto positive = [&](const char* field, int64_t v, int64_t max) {
        if (v <= 0) bad(field, v, "must be positive");
        if (v > max) bad(field, v, "is out of range (max " + std::to_string(max) + ")");
    };
    positive("vocab_size", vocab_size, int64_t(1) << 24);
    positive("hidden_size", hidden_size, 1 << 17);
    positive("num_hidden_layers", num_layers, 4096);
    positive("num_attention_heads", num_heads, 4096);
    positive("num_key_value_heads", num_kv_heads, 4096);
    positive("head_dim", head_dim, 4096);
    positive("max_position_embeddings", max_position, int64_t(1) << 24);
    if (num_heads % num_kv_heads != 0)
        bad("num_key_value_heads", num_kv_heads, "does not divide num_attention_heads " + std::to_string(num_heads));
    if (head_dim % 2 != 0) bad("head_dim", head_dim, "must be even for rotary embeddings");
    if (!(rms_eps > 0 && rms_eps < 1)) throw std::runtime_error(source + ": config value rms_norm_eps out of range");
    if (!(rope.theta > 0)) throw std::runtime_error(source + ": config value rope_theta must be positive");
    if (sliding_window < 0) bad("sliding_window", sliding_window, "must not be negative");
    bool has_dense_layer = false;
    for (int64_t l = 0; l < num_layers; ++l) has_dense_layer |= !layer_is_moe(l);
    if (has_dense_layer) positive("intermediate_size", intermediate_size, 1 << 20);
    if (num_experts < 0) bad("num_experts", num_experts, "must not be negative");
    if (num_experts > 0) {
        positive("num_experts", num_experts, 4096);
        positive("num_experts_per_tok", experts_per_token, num_experts);
        positive("moe_intermediate_size", moe_intermediate_size, 1 << 20);
        positive("decoder_sparse_step", decoder_sparse_step, num_layers);
        if (shared_expert_intermediate_size < 0)
            bad("shared_expert_intermediate_size", shared_expert_intermediate_size, "must not be negative");
    }
}

namespace {

// Reads the rope settings from either transformers style into `rope`.
void parse_rope(const json::Value& cfg, const std::string& source, RopeConfig& rope) {
    const json::Value* params = cfg.find("rope_parameters");  // transformers 5.x
    const json::Value* scaling = cfg.find("rope_scaling");    // transformers 4.x
    rope.theta = cfg.get_number("rope_theta", 10000.0);
    const json::Value* p = nullptr;
    if (params && params->is_object()) {
        p = params;
        rope.theta = params->get_number("rope_theta", rope.theta);
    } else if (scaling && scaling->is_object()) {
        p = scaling;
    }
    if (!p) return;
    std::string type = p->get_string("rope_type", p->get_string("type", "default"));
    if (type == "default") return;
    rope.factor = p->get_number("factor", 1.0);
    if (type == "linear") {
        rope.scaling = RopeScaling::Linear;
    } else if (type == "llama3") {
        rope.scaling = RopeScaling::Llama3;
        rope.low_freq_factor = p->get_number("low_freq_factor", 1.0);
        rope.high_freq_factor = p->get_number("high_freq_factor", 4.0);
        rope.original_max_position = p->get_int("original_max_position_embeddings", 8192);
        if (rope.high_freq_factor <= rope.low_freq_factor || rope.original_max_position <= 0)
            throw std::runtime_error(source + ": invalid llama3 rope parameters (need high_freq_factor > "
                                              "low_freq_factor and original_max_position_embeddings > 0)");
    } else {
        throw std::runtime_error(source + ": unsupported rope type '" + type + "' (supported: default, linear, llama3)");
    }
    if (!(rope.factor > 0)) throw std::runtime_error(source + ": rope scaling factor must be positive");
}

std::vector<int64_t> int_list(const json::Value* v) {
    std::vector<int64_t> out;
    if (!v || v->is_null()) return out;
    if (v->is_array()) {
        for (const auto& e : v->as_array()) out.push_back(e.as_int());
    } else {
        out.push_back(v->as_int());
    }
    return out;
}

}  // namespace

ModelConfig config_from_hf(const json::Value& cfg, const std::string& source) {
    try {
        ModelConfig c;
        c.model_type = cfg.get_string("model_type", "");
        if (c.model_type.empty()) throw std::runtime_error(source + ": config.json has no model_type");
        c.vocab_size = cfg.get_int("vocab_size", 0);
        c.hidden_size = cfg.get_int("hidden_size", 0);
        c.num_layers = cfg.get_int("num_hidden_layers", 0);
        c.num_heads = cfg.get_int("num_attention_heads", 0);
        c.num_kv_heads = cfg.get_int("num_key_value_heads", c.num_heads);
        c.head_dim = cfg.get_int("head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
        c.intermediate_size = cfg.get_int("intermediate_size", 0);
        c.max_position = cfg.get_int("max_position_embeddings", 4096);
        c.rms_eps = cfg.get_number("rms_norm_eps", 1e-6);
        c.tie_word_embeddings = cfg.get_bool("tie_word_embeddings", false);
        c.attention_bias = cfg.get_bool("attention_bias", c.model_type == "qwen2" || c.model_type == "qwen2_moe");
        bool window_on = cfg.get_bool("use_sliding_window", c.model_type == "mistral" || c.model_type == "mixtral");
        if (window_on) c.sliding_window = cfg.get_int("sliding_window", 0);
        parse_rope(cfg, source, c.rope);
        // Expert count and width are spelled differently per family.
        c.num_experts = cfg.get_int("num_local_experts", cfg.get_int("num_experts", 0));
        c.experts_per_token = cfg.get_int("num_experts_per_tok", 0);
        c.moe_intermediate_size = cfg.get_int("moe_intermediate_size", c.intermediate_size);
        c.shared_expert_intermediate_size = cfg.get_int("shared_expert_intermediate_size", 0);
        c.norm_topk_prob = cfg.get_bool("norm_topk_prob", c.model_type == "mixtral");
        c.decoder_sparse_step = cfg.get_int("decoder_sparse_step", 1);
        c.mlp_only_layers = int_list(cfg.find("mlp_only_layers"));
        c.eos_token_ids = int_list(cfg.find("eos_token_id"));
        c.bos_token_id = cfg.get_int("bos_token_id", -1);
        if (const json::Value* clip = cfg.find("clip_qkv"); clip && !clip->is_null())
            throw std::runtime_error(source + ": clip_qkv is not supported");
        c.validate(source);
        return c;
    } catch (const json::JsonError& e) {
        throw std::runtime_error(source + ": " + e.what());
    }
}

}  // namespace moeinfer
