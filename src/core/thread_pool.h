// One thread pool for the whole process: kernels split work with parallel_for; the calling thread takes part.
// Static partitioning keeps results independent of timing (each index is always computed by one thread).
#pragma once
#include <cstdint>
#include <functional>

namespace moeinfer {

// Sets the number of threads (including the caller) used by parallel_for; 0 = hardware concurrency.
void set_num_threads(int n);
int num_threads();

// Calls fn(begin, end) on disjoint chunks covering [0, n), in parallel. Chunks hold at least `grain` items.
// Nested calls (from inside fn) run serially in the calling thread.
void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);

}  // namespace moeinfer
