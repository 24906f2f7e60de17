// BlockPool, prefix cache and BlockTable bookkeeping (see block_pool.h).
#include "kv/block_pool.h"

#include <algorithm>

#include "core/check.h"

namespace moeinfer {

BlockPool::BlockPool(int32_t num_blocks) : refcount_(num_blocks, 0), entry_(num_blocks) {
    free_.reserve(num_blocks);
    for (int32_t b = num_blocks - 1; b >= 0; --b) free_.push_back(b);
}

int32_t BlockPool::allocate() {
    int32_t b;
    if (!free_.empty()) {
        b = free_.back();
        free_.pop_back();
    } else if (!lru_.empty()) {
        b = lru_.front();
        lru_.pop_front();
        forget(b);
    } else {
        return -1;
    }
    refcount_[b] = 1;
    return b;
}

void BlockPool::incref(int32_t block) {
    MOE_CHECK(refcount_.at(block) > 0, "incref of a free block");
    ++refcount_[block];
}

void BlockPool::decref(int32_t block) {
    MOE_CHECK(refcount_.at(block) > 0, "decref of a free block");
    if (--refcount_[block] > 0) return;
    if (entry_[block].registered) {
        entry_[block].lru_pos = lru_.insert(lru_.end(), block);
    } else {
        free_.push_back(block);
    }
}

void BlockPool::forget(int32_t block) {
    CacheEntry& e = entry_[block];
    if (!e.registered) return;
    auto it = by_hash_.find(e.hash);
    if (it != by_hash_.end() && it->second == block) by_hash_.erase(it);
    e = CacheEntry{};
}

void BlockPool::register_block(int32_t block, uint64_t hash, const int32_t* tokens, int32_t n) {
    MOE_CHECK(refcount_.at(block) > 0, "registering a free block");
    if (entry_[block].registered || by_hash_.count(hash)) return;
    CacheEntry& e = entry_[block];
    e.hash = hash;
    e.registered = true;
    e.tokens.assign(tokens, tokens + n);
    by_hash_[hash] = block;
}

int32_t BlockPool::acquire_cached(uint64_t hash, const int32_t* tokens, int32_t n) {
    auto it = by_hash_.find(hash);
    if (it == by_hash_.end()) return -1;
    const int32_t b = it->second;
    const CacheEntry& e = entry_[b];
    if (static_cast<int32_t>(e.tokens.size()) != n || !std::equal(tokens, tokens + n, e.tokens.begin())) return -1;
    if (refcount_[b] == 0) lru_.erase(e.lru_pos);
    ++refcount_[b];
    return b;
}

uint64_t chain_block_hash(uint64_t parent, const int32_t* tokens, int32_t n) {
    // FNV-1a over the parent hash and the token ids, then a final avalanche (splitmix64).
    uint64_t h = 1469598103934665603ull ^ parent;
    auto mix = [&](uint64_t v) {
        for (int i = 0; i < 8; ++i) {
            h ^= (v >> (8 * i)) & 0xff;
            h *= 1099511628211ull;
        }
    };
    mix(parent);
    for (int32_t i = 0; i < n; ++i) mix(static_cast<uint32_t>(tokens[i]));
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

bool BlockTable::reserve(BlockPool& pool, int64_t num_tokens, int64_t block_size) {
    const int64_t need = (num_tokens + block_size - 1) / block_size - static_cast<int64_t>(blocks.size());
    if (need <= 0) return true;
    if (need > pool.num_free()) return false;
    for (int64_t i = 0; i < need; ++i) blocks.push_back(pool.allocate());
    return true;
}

void BlockTable::release(BlockPool& pool) {
    // Tail first: the LRU then evicts a sequence's last blocks before the prefix blocks others may share.
    for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) pool.decref(*it);
    blocks.clear();
}

}  // namespace moeinfer
