// Architecture families: each family file turns a model's tensors into the shared layer weights, using the
// helpers below. Adding a family = one file with a register line in registry.cpp + a golden test.
#pragma once
#include <string>
#include <vector>

#include "layers/layer_weights.h"
#include "models/model_config.h"
#include "models/weights.h"

namespace moeinfer {

using FamilyLoader = DecoderLayerWeights (*)(const Weights& w, const ModelConfig& c, int64_t layer);

// The loader for an HF model_type, or nullptr when the family is not supported.
FamilyLoader find_family(const std::string& model_type);
std::string supported_families();  // "llama, mistral, ..." for error messages

// Shared helpers. `p` is the layer prefix "model.layers.N.".
std::string layer_prefix(int64_t layer);
AttentionWeights load_attention(const Weights& w, const ModelConfig& c, int64_t layer, QkNorm qk_norm);
MlpWeights load_mlp(const Weights& w, const std::string& prefix, int64_t hidden, int64_t ff);  // prefix ends in '.'
// Experts under `prefix` (e.g. "model.layers.3.mlp.experts") with per-expert file names gate/up/down.
MoeWeights load_experts(const Weights& w, const ModelConfig& c, const std::string& router_name,
                        const std::string& prefix, const char* gate_name, const char* up_name, const char* down_name);
// Norms around attention and FFN (input_layernorm / post_attention_layernorm).
void load_layer_norms(const Weights& w, const ModelConfig& c, int64_t layer, DecoderLayerWeights& out);

}  // namespace moeinfer
