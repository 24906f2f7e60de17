// Model: a loaded decoder-only transformer (any supported family) and its batched forward on the CPU.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/batch.h"
#include "kv/kv_cache.h"
#include "layers/layer_weights.h"
#include "models/device_forward.h"
#include "models/weights.h"

namespace moeinfer {

// Fills s.token / s.logprob from one logits row as RowSummary describes (the host form of the device kernel).
void summarize_row(const float* row, int64_t V, RowSummary& s);

class Model {
public:
    // Loads a model directory / GGUF / safetensors file; throws std::runtime_error naming what is wrong.
    static std::unique_ptr<Model> load(const std::string& path);
    // Shapes only, from an HF config.json (or a directory holding one): every tensor has data == nullptr, for a
    // device backend that fills them with random values (benchmarks of model shapes nobody has to download).
    static std::unique_ptr<Model> load_synthetic(const std::string& config_path);
    bool synthetic() const { return weights_->synthetic(); }

    // Moves the forward to a device (e.g. cuda::make_cuda_forward(*this)); KV caches made afterwards live there.
    void set_device(std::unique_ptr<DeviceForward> device) { device_ = std::move(device); }
    DeviceForward* device() const { return device_.get(); }
    // A cache of num_blocks blocks for this model: host fp32, or on the device when one is set.
    std::unique_ptr<KvCache> make_kv_cache(int32_t num_blocks, int32_t block_size) const;
    int64_t kv_bytes_per_token() const;  // K and V over all layers, in the cache's element type

    const ModelConfig& config() const { return weights_->config(); }
    const Weights& weights() const { return *weights_; }
    int64_t parameter_count() const;
    std::vector<int64_t> kv_widths() const;  // per layer floats per token of K (and of V)

    // Runs every token of `batch` through the model, writing their K/V into `kv`, and the logits of the rows in
    // batch.logit_rows into logits: [logit_rows.size(), vocab]. Token ids must be < vocab (checked).
    // With `summaries`, also each row's argmax and its logprob; `logits` may then be null (a device model then
    // returns only the summaries: greedy decoding without moving vocab-sized rows to the host).
    void forward(const Batch& batch, KvCache& kv, float* logits, RowSummary* summaries = nullptr);
    // The same step in two halves, so a host can prepare the next step while a device computes this one:
    // launch_forward queues it (a device model returns at once; on the CPU it is computed here) and
    // finish_forward waits until `logits` / `summaries` hold its results — they must stay valid until then. At most
    // two steps may be launched and not finished. A launched batch may feed token id previous_row_token(r): the
    // token the previous launched step chose for its summary row r, which then never has to reach the host first.
    void launch_forward(const Batch& batch, KvCache& kv, float* logits, RowSummary* summaries = nullptr);
    void finish_forward();
    static constexpr int32_t previous_row_token(int32_t row) { return -1 - row; }
    // Device time idle between the previous finished step's end and the last finished step's start (-1 unknown).
    double last_step_gap_seconds() const { return device_ ? device_->last_step_gap_seconds() : -1; }

    const Tensor& embedding() const { return embed_; }
    const Tensor& lm_head() const { return lm_head_; }
    const std::vector<float>& final_norm() const { return final_norm_; }
    const std::vector<DecoderLayerWeights>& layers() const { return layers_; }
    const std::vector<float>& inv_freq() const { return inv_freq_; }

    // Tokens routed to each expert so far: [layer][expert] (empty rows for dense layers).
    const std::vector<std::vector<uint64_t>>& routed_counts() const { return routed_counts_; }

private:
    Model() = default;
    static std::unique_ptr<Model> from_weights(std::unique_ptr<Weights> weights);
    void init_rope();
    void cpu_forward(const Batch& batch, KvCache& kv, float* logits, RowSummary* summaries);

    std::unique_ptr<Weights> weights_;
    std::unique_ptr<DeviceForward> device_;
    Tensor embed_;      // [V, H]
    Tensor lm_head_;    // [V, H] (the embedding when tied)
    std::vector<float> final_norm_;  // [H]
    std::vector<DecoderLayerWeights> layers_;
    std::vector<float> inv_freq_;    // [head_dim / 2]
    std::vector<std::vector<uint64_t>> routed_counts_;
    std::vector<int32_t> previous_tokens_;  // CPU: the last step's summary tokens (previous_row_token)
    int64_t previous_rows_ = 0;             // summary rows of the last launched step
};

}  // namespace moeinfer
