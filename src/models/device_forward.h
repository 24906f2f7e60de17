// DeviceForward: a model's forward pass on an accelerator, behind an interface the engine needs no CUDA for.
// The device keeps its own copy of the weights and its own KV storage (DeviceKv), addressed by the same block ids
// as the host-side BlockPool, so scheduling, prefix caching and copy-on-write stay in host code unchanged.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "engine/batch.h"

namespace moeinfer {

// KV storage for every layer on the device: [num_blocks, block_size, kv_heads, head_dim] for K and for V.
class DeviceKv {
public:
    virtual ~DeviceKv() = default;
    virtual void copy_block(int32_t src, int32_t dst) = 0;  // all layers, K and V
};

class DeviceForward {
public:
    virtual ~DeviceForward() = default;
    virtual std::string name() const = 0;                      // e.g. "cuda:0 (NVIDIA H100 80GB HBM3)"
    virtual int64_t kv_bytes_per_element() const = 0;          // 2 for a bf16 cache
    virtual std::unique_ptr<DeviceKv> allocate_kv(int32_t num_blocks, int32_t block_size) = 0;
    // Same contract as Model::launch_forward / finish_forward: launch queues the step (K/V of every token into
    // `kv`; logits of batch.logit_rows for the host array `logits` [logit_rows.size(), vocab] unless null, their
    // summaries for `summaries` unless null) and returns; finish() returns once those arrays hold the results of
    // the oldest unfinished step. Token ids -1 - r are the previous launched step's summary row r's token.
    virtual void launch(const Batch& batch, DeviceKv& kv, float* logits, RowSummary* summaries) = 0;
    virtual void finish() = 0;
    void forward(const Batch& batch, DeviceKv& kv, float* logits, RowSummary* summaries) {
        launch(batch, kv, logits, summaries);
        finish();
    }
    // Device time idle between the end of the previous finished step and the start of the last finished one
    // (the host preparing work); -1 when unknown.
    virtual double last_step_gap_seconds() const { return -1; }
};

}  // namespace moeinfer
