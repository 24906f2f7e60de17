// Thread pool behind parallel_for: workers spin briefly on the job counter, then sleep on a condition variable,
// because decode issues thousands of small jobs per second and a futex wake per job costs microseconds.
#include "core/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace moeinfer {
namespace {

thread_local bool t_inside_pool_job = false;

// About 20-40 µs of polling before a worker blocks: longer than the gap between a decode step's matmuls.
constexpr int kSpinIterations = 2000;

inline void cpu_relax() {
#if defined(__x86_64__)
    _mm_pause();
#else
    std::this_thread::yield();
#endif
}

// A job is published as one atomic word, (generation << 16) | chunks, so a worker that sat one job out can never
// pair the next job's chunk count with an old generation (and run a chunk twice). fn_ and n_ are only read by
// workers taking part, and the next job cannot be posted before they finish.
class ThreadPool {
public:
    ~ThreadPool() { resize(1); }

    int size() const { return static_cast<int>(workers_.size()) + 1; }

    void resize(int n) {
        if (n < 1) n = 1;
        if (n > kMaxThreads) n = kMaxThreads;
        if (n == size()) return;
        {
            std::lock_guard<std::mutex> lock(mu_);
            stop_ = true;
            publish(0);
        }
        cv_.notify_all();
        for (auto& w : workers_) w.join();
        workers_.clear();
        stop_ = false;
        // The starting job word is captured here, not read by the new thread, so a job (or stop) posted before
        // the thread first runs is not missed.
        const uint64_t start = job_.load();
        for (int i = 1; i < n; ++i) workers_.emplace_back([this, i, start] { worker_loop(i, start); });
    }

    void run(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain) {
        int64_t max_chunks = std::max<int64_t>(1, n / std::max<int64_t>(1, grain));
        int chunks = static_cast<int>(std::min<int64_t>(size(), max_chunks));
        if (chunks <= 1 || t_inside_pool_job) {
            fn(0, n);
            return;
        }
        std::unique_lock<std::mutex> job_lock(job_mu_);  // one parallel region at a time
        {
            std::lock_guard<std::mutex> lock(mu_);
            fn_ = &fn;
            n_ = n;
            pending_.store(chunks - 1);
            publish(chunks);
        }
        cv_.notify_all();
        t_inside_pool_job = true;
        run_chunk(0, chunks);
        t_inside_pool_job = false;
        // The workers usually finish within microseconds of this thread: poll (a yield is a system call that can
        // take longer than the wait itself), and only yield the core once the wait gets long.
        for (int i = 0; pending_.load(std::memory_order_acquire) != 0; ++i) {
            if (i < kSpinIterations) cpu_relax();
            else std::this_thread::yield();
        }
    }

private:
    static constexpr int kMaxThreads = 1 << 15;

    void publish(int chunks) {  // under mu_
        const uint64_t generation = (job_.load(std::memory_order_relaxed) >> 16) + 1;
        job_.store((generation << 16) | static_cast<uint64_t>(chunks), std::memory_order_release);
    }

    void run_chunk(int idx, int chunks) {
        int64_t begin = n_ * idx / chunks;
        int64_t end = n_ * (idx + 1) / chunks;
        if (begin < end) (*fn_)(begin, end);
    }

    void worker_loop(int idx, uint64_t seen) {
        for (;;) {
            for (int i = 0; i < kSpinIterations && job_.load(std::memory_order_acquire) == seen; ++i) cpu_relax();
            if (job_.load(std::memory_order_acquire) == seen) {
                std::unique_lock<std::mutex> lock(mu_);
                cv_.wait(lock, [&] { return job_.load(std::memory_order_acquire) != seen; });
            }
            seen = job_.load(std::memory_order_acquire);
            if (stop_) return;
            const int chunks = static_cast<int>(seen & 0xffff);
            if (idx < chunks) {
                t_inside_pool_job = true;
                run_chunk(idx, chunks);
                t_inside_pool_job = false;
                pending_.fetch_sub(1, std::memory_order_release);
            }
        }
    }

    std::vector<std::thread> workers_;
    std::mutex mu_, job_mu_;
    std::condition_variable cv_;
    std::atomic<uint64_t> job_{0};  // (generation << 16) | chunks of the latest job; chunks 0 = stop
    std::atomic<bool> stop_{false};
    const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
    int64_t n_ = 0;
    std::atomic<int> pending_{0};
};

ThreadPool& pool() {
    static ThreadPool p;
    return p;
}

}  // namespace

void set_num_threads(int n) {
    if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    pool().resize(n);
}

int num_threads() { return pool().size(); }

void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain) {
    if (n <= 0) return;
    pool().run(n, fn, grain);
}

}  // namespace moeinfer
