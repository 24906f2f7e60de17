// Thread pool behind parallel_for: workers sleep on a condition variable between jobs and spin briefly
// first, because decode issues thousands of small jobs per second and a futex wake per job costs microseconds.
#include "core/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace moeinfer {
namespace {

thread_local bool t_inside_pool_job = false;

class ThreadPool {
public:
    ~ThreadPool() { resize(1); }

    int size() const { return static_cast<int>(workers_.size()) + 1; }

    void resize(int n) {
        if (n < 1) n = 1;
        if (n == size()) return;
        {
            std::lock_guard<std::mutex> lock(mu_);
            stop_ = true;
            ++generation_;
        }
        cv_.notify_all();
        for (auto& w : workers_) w.join();
        workers_.clear();
        stop_ = false;
        // The starting generation is captured here, not read by the new thread, so a job (or stop) posted
        // before the thread first runs is not missed.
        const uint64_t start = generation_;
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
            chunks_ = chunks;
            pending_.store(chunks - 1);
            ++generation_;
        }
        cv_.notify_all();
        t_inside_pool_job = true;
        run_chunk(0);
        t_inside_pool_job = false;
        while (pending_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
    }

private:
    void run_chunk(int idx) {
        int64_t begin = n_ * idx / chunks_;
        int64_t end = n_ * (idx + 1) / chunks_;
        if (begin < end) (*fn_)(begin, end);
    }

    void worker_loop(int idx, uint64_t seen) {
        for (;;) {
            {
                std::unique_lock<std::mutex> lock(mu_);
                cv_.wait(lock, [&] { return generation_ != seen; });
                seen = generation_;
                if (stop_) return;
            }
            if (idx < chunks_) {
                t_inside_pool_job = true;
                run_chunk(idx);
                t_inside_pool_job = false;
                pending_.fetch_sub(1, std::memory_order_release);
            }
        }
    }

    std::vector<std::thread> workers_;
    std::mutex mu_, job_mu_;
    std::condition_variable cv_;
    uint64_t generation_ = 0;
    bool stop_ = false;
    const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
    int64_t n_ = 0;
    int chunks_ = 0;
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
