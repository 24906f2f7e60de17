// Mixtral: Mistral attention with a sparse MoE FFN in every layer (`block_sparse_moe`, experts w1=gate, w3=up,
// w2=down), softmax routing with the top-k weights renormalized.
#include "models/family.h"

namespace moeinfer {

DecoderLayerWeights load_mixtral_layer(const Weights& w, const ModelConfig& c, int64_t layer) {
    const std::string p = layer_prefix(layer);
    DecoderLayerWeights d;
    load_layer_norms(w, c, layer, d);
    d.attn = load_attention(w, c, layer, QkNorm::None);
    d.is_moe = true;
    // transformers 5 names the block `mlp` with fused experts; older checkpoints use block_sparse_moe + w1/w2/w3.
    if (w.find(p + "block_sparse_moe.gate.weight"))
        d.moe = load_experts(w, c, p + "block_sparse_moe.gate.weight", p + "block_sparse_moe.experts", "w1", "w3", "w2");
    else
        d.moe = load_experts(w, c, p + "mlp.gate.weight", p + "mlp.experts", "gate_proj", "up_proj", "down_proj");
    d.moe.normalize_topk = true;
    return d;
}

}  // namespace moeinfer
