// Weight-loading helpers shared by the family files (see family.h).
#include "models/family.h"

namespace moeinfer {

std::string layer_prefix(int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }

AttentionWeights load_attention(const Weights& w, const ModelConfig& c, int64_t layer, QkNorm qk_norm) {
    const std::string p = layer_prefix(layer) + "self_attn.";
    const int64_t H = c.hidden_size, qw = c.num_heads * c.head_dim, kvw = c.num_kv_heads * c.head_dim;
    AttentionWeights a;
    a.q = w.require(p + "q_proj.weight", {qw, H});
    a.k = w.require(p + "k_proj.weight", {kvw, H});
    a.v = w.require(p + "v_proj.weight", {kvw, H});
    a.o = w.require(p + "o_proj.weight", {H, qw});
    if (c.attention_bias) {
        a.q_bias = w.require_f32(p + "q_proj.bias", {qw});
        a.k_bias = w.require_f32(p + "k_proj.bias", {kvw});
        a.v_bias = w.require_f32(p + "v_proj.bias", {kvw});
    }
    a.qk_norm = qk_norm;
    if (qk_norm == QkNorm::PerHead) {
        a.q_norm = w.require_f32(p + "q_norm.weight", {c.head_dim});
        a.k_norm = w.require_f32(p + "k_norm.weight", {c.head_dim});
    } else if (qk_norm == QkNorm::Full) {
        a.q_norm = w.require_f32(p + "q_norm.weight", {qw});
        a.k_norm = w.require_f32(p + "k_norm.weight", {kvw});
    }
    return a;
}

MlpWeights load_mlp(const Weights& w, const std::string& prefix, int64_t hidden, int64_t ff) {
    return {w.require(prefix + "gate_proj.weight", {ff, hidden}), w.require(prefix + "up_proj.weight", {ff, hidden}),
            w.require(prefix + "down_proj.weight", {hidden, ff})};
}

MoeWeights load_experts(const Weights& w, const ModelConfig& c, const std::string& router_name,
                        const std::string& prefix, const char* gate_name, const char* up_name, const char* down_name) {
    const int64_t E = c.num_experts, H = c.hidden_size, ff = c.moe_intermediate_size;
    MoeWeights m;
    m.router = w.require(router_name, {E, H});
    m.gate = w.experts(prefix, "gate", gate_name, E, ff, H);
    m.up = w.experts(prefix, "up", up_name, E, ff, H);
    m.down = w.experts(prefix, "down", down_name, E, H, ff);
    m.top_k = c.experts_per_token;
    m.normalize_topk = c.norm_topk_prob;
    return m;
}

void load_layer_norms(const Weights& w, const ModelConfig& c, int64_t layer, DecoderLayerWeights& out) {
    const std::string p = layer_prefix(layer);
    out.attn_norm = w.require_f32(p + "input_layernorm.weight", {c.hidden_size});
    out.ffn_norm = w.require_f32(p + "post_attention_layernorm.weight", {c.hidden_size});
}

}  // namespace moeinfer
