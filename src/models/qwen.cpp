// Qwen2 / Qwen3 (dense) and Qwen2-MoE / Qwen3-MoE. Qwen3 adds per-head q/k RMSNorm; the MoE variants choose sparse
// layers by decoder_sparse_step and mlp_only_layers; Qwen2-MoE adds a shared expert behind a sigmoid gate.
#include "models/family.h"

namespace moeinfer {

DecoderLayerWeights load_qwen_layer(const Weights& w, const ModelConfig& c, int64_t layer) {
    const bool qwen3 = c.model_type == "qwen3" || c.model_type == "qwen3_moe";
    const std::string p = layer_prefix(layer);
    DecoderLayerWeights d;
    load_layer_norms(w, c, layer, d);
    d.attn = load_attention(w, c, layer, qwen3 ? QkNorm::PerHead : QkNorm::None);
    d.is_moe = c.layer_is_moe(layer);
    if (!d.is_moe) {
        d.mlp = load_mlp(w, p + "mlp.", c.hidden_size, c.intermediate_size);
        return d;
    }
    d.moe = load_experts(w, c, p + "mlp.gate.weight", p + "mlp.experts", "gate_proj", "up_proj", "down_proj");
    if (c.shared_expert_intermediate_size > 0) {
        d.moe.has_shared = true;
        d.moe.shared = load_mlp(w, p + "mlp.shared_expert.", c.hidden_size, c.shared_expert_intermediate_size);
        // HF stores the gate as a [1, H] Linear; llama.cpp's GGUF as an [H] vector.
        const Tensor* g = w.find(p + "mlp.shared_expert_gate.weight");
        const bool vec = g && g->shape == std::vector<int64_t>{c.hidden_size};
        d.moe.shared_gate = w.require(p + "mlp.shared_expert_gate.weight", vec ? std::vector<int64_t>{c.hidden_size}
                                                                                : std::vector<int64_t>{1, c.hidden_size});
        d.moe.shared_gate.shape = {1, c.hidden_size};
    }
    return d;
}

}  // namespace moeinfer
