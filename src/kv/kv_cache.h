// KvCache: the storage behind the block pool. Per layer, K and V are [num_blocks, block_size, width] with
// width = kv_heads × head_dim (fp32). Width is per layer, so an MLA layer can hold its compressed latent instead,
// and a sliding-window layer can simply drop blocks that left its window.
#pragma once
#include <cstdint>
#include <vector>

#include "kv/block_pool.h"
#include "models/device_forward.h"

namespace moeinfer {

class KvCache {
public:
    // widths[l]: floats per token for layer l (K and V each). Throws std::runtime_error if the allocation is absurd.
    KvCache(int32_t num_blocks, int32_t block_size, std::vector<int64_t> widths);
    // A cache whose storage lives on a device (no host copy): k()/v() are unavailable, copy_block goes to the device.
    KvCache(int32_t num_blocks, int32_t block_size, std::unique_ptr<DeviceKv> device);

    int32_t block_size() const { return block_size_; }
    int32_t num_blocks() const { return pool_.num_blocks(); }
    BlockPool& pool() { return pool_; }
    DeviceKv* device() { return device_.get(); }
    float* k(int64_t layer) { return storage_[layer].data(); }
    float* v(int64_t layer) { return storage_[layer].data() + storage_[layer].size() / 2; }
    // Copy-on-write: copies block `src`'s K and V rows into block `dst` in every layer (a beam about to write
    // into a partially filled block it shares with other beams gets its own copy first).
    void copy_block(int32_t src, int32_t dst);
    // Blocks needed for `bytes` of cache given per-token byte cost over all layers.
    static int32_t blocks_for_bytes(int64_t bytes, int32_t block_size, int64_t bytes_per_token);

private:
    int32_t block_size_;
    BlockPool pool_;
    std::vector<std::vector<float>> storage_;  // per layer: K blocks then V blocks
    std::vector<int64_t> widths_;
    std::unique_ptr<DeviceKv> device_;
};

}  // namespace moeinfer
