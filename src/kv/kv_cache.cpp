// KvCache storage (see kv_cache.h).
#include "kv/kv_cache.h"

#include "core/check.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace moeinfer {

KvCache::KvCache(int32_t num_blocks, int32_t block_size, std::vector<int64_t> widths)
    : block_size_(block_size), pool_(num_blocks), widths_(widths) {
    if (num_blocks <= 0 || block_size <= 0)
        throw std::runtime_error("KV cache needs a positive number of blocks (got " + std::to_string(num_blocks) + ")");
    storage_.reserve(widths.size());
    for (int64_t w : widths) storage_.emplace_back(static_cast<size_t>(2 * num_blocks) * block_size * w, 0.f);
}

KvCache::KvCache(int32_t num_blocks, int32_t block_size, std::unique_ptr<DeviceKv> device)
    : block_size_(block_size), pool_(num_blocks), device_(std::move(device)) {
    if (num_blocks <= 0 || block_size <= 0)
        throw std::runtime_error("KV cache needs a positive number of blocks (got " + std::to_string(num_blocks) + ")");
}

void KvCache::copy_block(int32_t src, int32_t dst) {
    MOE_CHECK(src >= 0 && src < num_blocks() && dst >= 0 && dst < num_blocks(), "copy_block: block id out of range");
    if (device_) return device_->copy_block(src, dst);
    for (size_t l = 0; l < storage_.size(); ++l) {
        const size_t per_block = static_cast<size_t>(block_size_) * widths_[l];
        for (float* base : {k(l), v(l)})
            std::copy(base + src * per_block, base + (src + 1) * per_block, base + dst * per_block);
    }
}

int32_t KvCache::blocks_for_bytes(int64_t bytes, int32_t block_size, int64_t bytes_per_token) {
    const int64_t per_block = bytes_per_token * block_size;
    return static_cast<int32_t>(std::max<int64_t>(1, bytes / per_block));
}

}  // namespace moeinfer
