// OLMoE: q/k RMSNorm over the whole projection (before heads are split), a sparse MoE FFN in every layer,
// softmax routing without renormalization unless norm_topk_prob.
#include "models/family.h"

namespace moeinfer {

DecoderLayerWeights load_olmoe_layer(const Weights& w, const ModelConfig& c, int64_t layer) {
    const std::string p = layer_prefix(layer);
    DecoderLayerWeights d;
    load_layer_norms(w, c, layer, d);
    d.attn = load_attention(w, c, layer, QkNorm::Full);
    d.is_moe = true;
    d.moe = load_experts(w, c, p + "mlp.gate.weight", p + "mlp.experts", "gate_proj", "up_proj", "down_proj");
    return d;
}

}  // namespace moeinfer
