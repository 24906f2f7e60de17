// Llama and Mistral: dense decoder, optional q/k/v bias (Llama's attention_bias), Mistral's sliding window comes
// from the config. Also the dense path for Qwen2 (always biased) and Qwen3 (per-head q/k RMSNorm).
#include "models/family.h"

namespace moeinfer {

DecoderLayerWeights load_llama_layer(const Weights& w, const ModelConfig& c, int64_t layer) {
    DecoderLayerWeights d;
    load_layer_norms(w, c, layer, d);
    d.attn = load_attention(w, c, layer, QkNorm::None);
    d.mlp = load_mlp(w, layer_prefix(layer) + "mlp.", c.hidden_size, c.intermediate_size);
    return d;
}

}  // namespace moeinfer
