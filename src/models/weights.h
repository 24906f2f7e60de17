// Weights: a model's tensors by logical (HF transformers) name, whatever file format they came in.
// GGUF files are read through llama.cpp's names (`blk.N.attn_q.weight`, stacked `blk.N.ffn_gate_exps.weight`);
// the translation lives here so model code is written once against HF names.
#pragma once
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/model_config.h"

namespace moeinfer {

class GgufFile;
class SafetensorsSet;

class Weights {
public:
    // `path`: an HF model directory (config.json + safetensors), a .gguf file, or a .safetensors file with a
    // config.json beside it. Throws std::runtime_error naming the path and what is wrong.
    static std::unique_ptr<Weights> open(const std::string& path);
    // Shapes without data (see Model::load_synthetic): `config_path` is a config.json or a directory holding one.
    static std::unique_ptr<Weights> synthetic(const std::string& config_path);
    ~Weights();
    bool synthetic() const { return synthetic_; }

    const ModelConfig& config() const { return config_; }
    const std::string& path() const { return path_; }
    bool is_gguf() const { return gguf_ != nullptr; }
    const GgufFile* gguf() const { return gguf_.get(); }

    const Tensor* find(const std::string& hf_name) const;  // nullptr when absent
    const std::vector<Tensor>& all_tensors() const;        // every tensor in the file(s), file order
    // Throws "model 'PATH': missing tensor 'NAME'" or "... tensor 'NAME' has shape [..], expected [..]".
    const Tensor& require(const std::string& hf_name, const std::vector<int64_t>& shape) const;
    // Small tensors (norm weights, biases) converted to fp32.
    std::vector<float> require_f32(const std::string& hf_name, const std::vector<int64_t>& shape) const;
    // Per-expert views [rows, cols] of one projection of a layer's experts. Accepts the per-expert layout
    // (`<prefix>.<e>.<proj_name>.weight`), transformers' fused layout (`<prefix>.gate_up_proj` [E, 2·ff, H],
    // `<prefix>.down_proj` [E, H, ff]) and GGUF's stacked `blk.N.ffn_<proj>_exps.weight`.
    // proj: "gate", "up" or "down"; proj_name: the per-expert file name of that projection (e.g. "w1").
    std::vector<Tensor> experts(const std::string& prefix, const std::string& proj, const std::string& proj_name,
                                int64_t num_experts, int64_t rows, int64_t cols) const;

private:
    Weights() = default;
    std::string where() const { return "model '" + path_ + "'"; }
    std::string file_name(const std::string& hf_name) const;  // GGUF translation when needed

    std::string path_;
    ModelConfig config_;
    std::unique_ptr<GgufFile> gguf_;
    std::unique_ptr<SafetensorsSet> safetensors_;
    // Synthetic mode: every required tensor is made up on request (BF16, data == nullptr) and kept here.
    bool synthetic_ = false;
    mutable std::deque<Tensor> made_up_;
    mutable std::vector<Tensor> made_up_list_;
};

// llama.cpp's GGUF name for an HF tensor name ("" when it has none), e.g.
// model.layers.3.self_attn.q_proj.weight → blk.3.attn_q.weight.
std::string gguf_tensor_name(const std::string& hf_name);

}  // namespace moeinfer
