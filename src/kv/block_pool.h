// BlockPool: hands out KV-cache block ids with reference counts, so sequences can share blocks (prefix reuse,
// beams, copy-on-write) without copying. Block contents live in KvCache; this class only does bookkeeping.
#pragma once
#include <cstdint>
#include <vector>

namespace moeinfer {

class BlockPool {
public:
    explicit BlockPool(int32_t num_blocks);

    int32_t num_blocks() const { return static_cast<int32_t>(refcount_.size()); }
    int32_t num_free() const { return static_cast<int32_t>(free_.size()); }
    // A free block with refcount 1, or -1 when none is left (the caller decides: wait, preempt, or fail).
    int32_t allocate();
    void incref(int32_t block);  // one more owner (a sequence sharing this block)
    void decref(int32_t block);  // drops an owner; the block returns to the free list at zero
    int32_t refcount(int32_t block) const { return refcount_.at(block); }

private:
    std::vector<int32_t> refcount_;
    std::vector<int32_t> free_;  // LIFO: the most recently freed block is reused first (warm in cache)
};

// Blocks owned by one sequence, in position order: token at position p lives in blocks[p / block_size].
struct BlockTable {
    std::vector<int32_t> blocks;
    // Makes room for `num_tokens` tokens; returns false (allocating nothing) when the pool runs short.
    bool reserve(BlockPool& pool, int64_t num_tokens, int64_t block_size);
    void release(BlockPool& pool);  // drops every block
};

}  // namespace moeinfer
