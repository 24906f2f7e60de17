// Read-bandwidth probe: the hardware limit beside decode throughput (batch-1 decode reads every active weight
// once per token). Sums a 1 GiB buffer with T threads, best of 5 passes. Usage: membw [threads]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "backends/cpu/elementwise.h"
#include "core/thread_pool.h"

int main(int argc, char** argv) {
    using namespace moeinfer;
    set_num_threads(argc > 1 ? std::atoi(argv[1]) : 0);
    const int64_t n = (int64_t(1) << 30) / sizeof(float);
    std::vector<float> buf(n, 1.0f), ones(4096, 1.0f);
    double best = 0;
    for (int pass = 0; pass < 5; ++pass) {
        std::vector<double> partial(num_threads() * 16, 0.0);
        auto t0 = std::chrono::steady_clock::now();
        parallel_for(n / 4096, [&](int64_t b, int64_t e) {
            double s = 0;
            for (int64_t i = b; i < e; ++i) s += cpu::dot(buf.data() + i * 4096, ones.data(), 4096);
            partial[b % partial.size()] += s;
        });
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::max(best, n * sizeof(float) / dt / 1e9);
    }
    std::printf("read bandwidth, %d threads: %.1f GB/s\n", num_threads(), best);
    return 0;
}
