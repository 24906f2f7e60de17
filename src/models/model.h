// Model: a loaded decoder-only transformer (any supported family) and its batched forward on the CPU.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/batch.h"
#include "kv/kv_cache.h"
#include "layers/layer_weights.h"
#include "models/weights.h"

namespace moeinfer {

class Model {
public:
    // Loads a model directory / GGUF / safetensors file; throws std::runtime_error naming what is wrong.
    static std::unique_ptr<Model> load(const std::string& path);

    const ModelConfig& config() const { return weights_->config(); }
    const Weights& weights() const { return *weights_; }
    int64_t parameter_count() const;
    std::vector<int64_t> kv_widths() const;  // per layer floats per token of K (and of V)

    // Runs every token of `batch` through the model, writing their K/V into `kv`, and the logits of the rows in
    // batch.logit_rows into logits: [logit_rows.size(), vocab]. Token ids must be < vocab (checked).
    void forward(const Batch& batch, KvCache& kv, float* logits);

    const Tensor& embedding() const { return embed_; }
    const Tensor& lm_head() const { return lm_head_; }
    const std::vector<float>& final_norm() const { return final_norm_; }
    const std::vector<DecoderLayerWeights>& layers() const { return layers_; }
    const std::vector<float>& inv_freq() const { return inv_freq_; }

    // Tokens routed to each expert so far: [layer][expert] (empty rows for dense layers).
    const std::vector<std::vector<uint64_t>>& routed_counts() const { return routed_counts_; }

private:
    Model() = default;
    void init_rope();

    std::unique_ptr<Weights> weights_;
    Tensor embed_;      // [V, H]
    Tensor lm_head_;    // [V, H] (the embedding when tied)
    std::vector<float> final_norm_;  // [H]
    std::vector<DecoderLayerWeights> layers_;
    std::vector<float> inv_freq_;    // [head_dim / 2]
    std::vector<std::vector<uint64_t>> routed_counts_;
};

}  // namespace moeinfer
