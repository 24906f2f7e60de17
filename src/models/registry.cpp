// model_type → family loader.
#include <utility>

#include "models/family.h"

namespace moeinfer {

DecoderLayerWeights load_llama_layer(const Weights&, const ModelConfig&, int64_t);
DecoderLayerWeights load_qwen_layer(const Weights&, const ModelConfig&, int64_t);
DecoderLayerWeights load_mixtral_layer(const Weights&, const ModelConfig&, int64_t);
DecoderLayerWeights load_olmoe_layer(const Weights&, const ModelConfig&, int64_t);

namespace {
const std::pair<const char*, FamilyLoader> kFamilies[] = {
    {"llama", load_llama_layer},  {"mistral", load_llama_layer},     {"qwen2", load_qwen_layer},
    {"qwen3", load_qwen_layer},   {"mixtral", load_mixtral_layer},   {"qwen2_moe", load_qwen_layer},
    {"qwen3_moe", load_qwen_layer}, {"olmoe", load_olmoe_layer},
};
}  // namespace

FamilyLoader find_family(const std::string& model_type) {
    for (const auto& [name, loader] : kFamilies)
        if (model_type == name) return loader;
    return nullptr;
}

std::string supported_families() {
    std::string s;
    for (const auto& [name, loader] : kFamilies) s += (s.empty() ? "" : ", ") + std::string(name);
    return s;
}

}  // namespace moeinfer
