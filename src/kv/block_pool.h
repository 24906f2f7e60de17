// BlockPool: hands out KV-cache block ids with reference counts, so sequences can share blocks (prefix reuse,
// beams, copy-on-write) without copying. Full blocks can be registered under a hash chained over
// (parent hash, token ids); when their last owner lets go they stay cached (LRU) until the space is needed.
// Block contents live in KvCache; this class only does bookkeeping.
#pragma once
#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

namespace moeinfer {

class BlockPool {
public:
    explicit BlockPool(int32_t num_blocks);

    int32_t num_blocks() const { return static_cast<int32_t>(refcount_.size()); }
    // Blocks allocate() can hand out: never-used/freed ones plus cached ones it may evict.
    int32_t num_free() const { return static_cast<int32_t>(free_.size() + lru_.size()); }
    int32_t num_cached() const { return static_cast<int32_t>(lru_.size()); }  // unreferenced, kept for reuse
    int32_t num_in_use() const { return num_blocks() - num_free(); }          // referenced by some sequence
    // A block with refcount 1, or -1 when none is left (the caller decides: wait, preempt, or fail).
    // Prefers never-cached blocks; otherwise evicts the least recently released cached block.
    int32_t allocate();
    void incref(int32_t block);  // one more owner (a sequence sharing this block)
    void decref(int32_t block);  // drops an owner; at zero the block is freed, or kept cached if registered
    int32_t refcount(int32_t block) const { return refcount_.at(block); }

    // Prefix cache. `hash` must identify the block's content (chained over the prefix); `tokens` guard
    // against hash collisions. register_block is a no-op if the hash is already cached.
    void register_block(int32_t block, uint64_t hash, const int32_t* tokens, int32_t n);
    // The cached block for (hash, tokens) with one more owner, or -1 on a miss.
    int32_t acquire_cached(uint64_t hash, const int32_t* tokens, int32_t n);

private:
    struct CacheEntry {
        uint64_t hash = 0;
        bool registered = false;
        std::vector<int32_t> tokens;
        std::list<int32_t>::iterator lru_pos;  // valid while refcount is 0
    };
    void forget(int32_t block);

    std::vector<int32_t> refcount_;
    std::vector<int32_t> free_;  // LIFO: the most recently freed block is reused first (warm in cache)
    std::vector<CacheEntry> entry_;
    std::unordered_map<uint64_t, int32_t> by_hash_;
    std::list<int32_t> lru_;  // cached blocks with refcount 0, least recently released first
};

// Hash of one full block given its parent's hash (0 for the first block).
uint64_t chain_block_hash(uint64_t parent, const int32_t* tokens, int32_t n);

// Blocks owned by one sequence, in position order: token at position p lives in blocks[p / block_size].
struct BlockTable {
    std::vector<int32_t> blocks;
    // Makes room for `num_tokens` tokens; returns false (allocating nothing) when the pool runs short.
    bool reserve(BlockPool& pool, int64_t num_tokens, int64_t block_size);
    void release(BlockPool& pool);  // drops every block
};

}  // namespace moeinfer
