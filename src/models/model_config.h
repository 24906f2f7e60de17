// ModelConfig: everything the forward needs to know about an architecture, parsed once from HF config.json
// (transformers 4.x `rope_theta`/`rope_scaling` and 5.x `rope_parameters`) or GGUF metadata, then validated.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/json.h"

namespace moeinfer {

class GgufFile;

enum class RopeScaling { None, Linear, Llama3 };

struct RopeConfig {
    double theta = 10000.0;
    RopeScaling scaling = RopeScaling::None;
    double factor = 1.0;
    double low_freq_factor = 1.0;
    double high_freq_factor = 4.0;
    int64_t original_max_position = 8192;
    // false: rotate halves (x[i], x[i + d/2]) as HF does; true: rotate adjacent pairs (x[2i], x[2i+1]),
    // which is what llama.cpp's GGUF files for the "llama" arch expect (its converter permutes q/k rows).
    bool interleaved = false;
};

struct ModelConfig {
    std::string model_type;  // HF model_type: llama, mistral, qwen2, qwen3, mixtral, qwen2_moe, qwen3_moe, olmoe
    int64_t vocab_size = 0;
    int64_t hidden_size = 0;
    int64_t num_layers = 0;
    int64_t num_heads = 0;
    int64_t num_kv_heads = 0;
    int64_t head_dim = 0;
    int64_t intermediate_size = 0;  // dense MLP width
    int64_t max_position = 4096;
    double rms_eps = 1e-6;
    RopeConfig rope;
    bool tie_word_embeddings = false;
    bool attention_bias = false;  // q/k/v projections carry a bias (Qwen2 always, Llama when configured)
    int64_t sliding_window = 0;   // 0: full attention
    // Mixture of experts (num_experts == 0: dense model).
    int64_t num_experts = 0;
    int64_t experts_per_token = 0;
    int64_t moe_intermediate_size = 0;
    int64_t shared_expert_intermediate_size = 0;
    bool norm_topk_prob = false;
    int64_t decoder_sparse_step = 1;
    std::vector<int64_t> mlp_only_layers;
    std::vector<int64_t> eos_token_ids;
    int64_t bos_token_id = -1;

    bool is_moe() const { return num_experts > 0; }
    // Qwen-MoE rule: a layer is sparse unless listed in mlp_only_layers or skipped by decoder_sparse_step.
    bool layer_is_moe(int64_t layer) const;
    int64_t kv_bytes_per_token() const { return 2 * num_layers * num_kv_heads * head_dim * 4; }  // fp32 cache
    // Throws std::runtime_error naming `source` and the field when a value is missing or out of range.
    void validate(const std::string& source) const;
};

// Parses an HF config.json object; `source` (the file path) is named in errors.
ModelConfig config_from_hf(const json::Value& cfg, const std::string& source);
// Reads the llama.cpp metadata keys (`<arch>.block_count`, ...) of a GGUF file.
ModelConfig config_from_gguf(const GgufFile& gguf);

}  // namespace moeinfer
