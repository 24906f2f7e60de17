// BlockPool and BlockTable bookkeeping (see block_pool.h).
#include "kv/block_pool.h"

#include "core/check.h"

namespace moeinfer {

BlockPool::BlockPool(int32_t num_blocks) : refcount_(num_blocks, 0) {
    free_.reserve(num_blocks);
    for (int32_t b = num_blocks - 1; b >= 0; --b) free_.push_back(b);
}

int32_t BlockPool::allocate() {
    if (free_.empty()) return -1;
    const int32_t b = free_.back();
    free_.pop_back();
    refcount_[b] = 1;
    return b;
}

void BlockPool::incref(int32_t block) {
    MOE_CHECK(refcount_.at(block) > 0, "incref of a free block");
    ++refcount_[block];
}

void BlockPool::decref(int32_t block) {
    MOE_CHECK(refcount_.at(block) > 0, "decref of a free block");
    if (--refcount_[block] == 0) free_.push_back(block);
}

bool BlockTable::reserve(BlockPool& pool, int64_t num_tokens, int64_t block_size) {
    const int64_t need = (num_tokens + block_size - 1) / block_size - static_cast<int64_t>(blocks.size());
    if (need <= 0) return true;
    if (need > pool.num_free()) return false;
    for (int64_t i = 0; i < need; ++i) blocks.push_back(pool.allocate());
    return true;
}

void BlockTable::release(BlockPool& pool) {
    for (int32_t b : blocks) pool.decref(b);
    blocks.clear();
}

}  // namespace moeinfer
