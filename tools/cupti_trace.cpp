// Kernel tracer for GPU machines without Nsight Systems: a CUDA injection library (the driver loads it at cuInit from
// CUDA_INJECTION64_PATH and calls InitializeInjection) that records every kernel through CUPTI's activity API and, at
// exit, writes them to CUPTI_TRACE_CSV (default cupti_trace.csv) in the columns of `nsys stats --report
// cuda_gpu_trace`, so scripts/timeline_table.py reads it unchanged. scripts/gpu_timeline.sh builds and runs it:
//   g++ -std=c++20 -O2 -fPIC -shared tools/cupti_trace.cpp -I$CUDA/include -L$CUDA/lib64 -lcupti -o libcupti_trace.so
//   CUDA_INJECTION64_PATH=$PWD/libcupti_trace.so CUPTI_TRACE_CSV=trace.csv build-cuda/moeinfer bench ...
#include <cupti.h>
#include <cxxabi.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

// The kernel record of this CUPTI (older versions stay defined in cupti_activity_deprecated.h). start, end and name
// sit at the same offsets in every version since CUpti_ActivityKernel4, so a newer CUPTI's records read right too.
using KernelRecord = CUpti_ActivityKernel10;

struct Kernel {
    uint64_t start, end;
    std::string name;  // copied: the record's name pointer belongs to CUPTI, with no lifetime promised
};

struct Trace {
    std::mutex mu;
    std::vector<Kernel> kernels;
    size_t dropped = 0;  // records CUPTI lost for want of buffer space: the table would miss kernels
};

// Never destroyed: CUPTI can hand back buffers from its own thread while the process's static destructors run.
Trace& trace() {
    static Trace* t = new Trace;
    return *t;
}

bool ok(CUptiResult r, const char* call) {
    if (r == CUPTI_SUCCESS) return true;
    const char* what = nullptr;
    if (cuptiGetResultString(r, &what) != CUPTI_SUCCESS || !what) what = "unknown CUPTI error";
    std::fprintf(stderr, "cupti_trace: %s: %s\n", call, what);
    return false;
}

constexpr size_t kBufferBytes = size_t{8} << 20;  // ~40k kernel records: few buffer round trips during a run

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
    *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));  // CUPTI wants 8-byte aligned buffers
    *size = *buffer ? kBufferBytes : 0;  // no buffer: CUPTI drops records and counts them, reported at exit
    *max_records = 0;                    // as many as fit
}

void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t* buffer, size_t, size_t valid) {
    std::vector<Kernel> got;  // parsed before taking the lock, which is then held only to append
    CUpti_Activity* record = nullptr;
    for (;;) {
        CUptiResult r = cuptiActivityGetNextRecord(buffer, valid, &record);
        if (r == CUPTI_ERROR_MAX_LIMIT_REACHED || !ok(r, "cuptiActivityGetNextRecord")) break;  // end of the buffer
        if (record->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) continue;
        const auto* k = reinterpret_cast<const KernelRecord*>(record);
        got.push_back({k->start, k->end, k->name ? k->name : "?"});
    }
    size_t dropped = 0;
    ok(cuptiActivityGetNumDroppedRecords(ctx, stream, &dropped), "cuptiActivityGetNumDroppedRecords");
    std::free(buffer);
    Trace& t = trace();
    std::lock_guard lock(t.mu);
    t.kernels.insert(t.kernels.end(), std::make_move_iterator(got.begin()), std::make_move_iterator(got.end()));
    t.dropped += dropped;
}

std::string demangle(const std::string& name) {
    int status = 0;
    char* s = abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status);
    std::string out = status == 0 && s ? s : name;  // extern "C" kernels are not mangled: keep them as they are
    std::free(s);
    return out;
}

std::string csv_quoted(const std::string& s) {
    std::string out = "\"";
    for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

void write_trace() {
    // Forced: also hands back buffers that are not full and records of kernels still in flight.
    ok(cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED), "cuptiActivityFlushAll");
    const char* path = std::getenv("CUPTI_TRACE_CSV");
    if (!path || !*path) path = "cupti_trace.csv";
    Trace& t = trace();
    std::lock_guard lock(t.mu);
    std::FILE* f = std::fopen(path, "w");
    if (!f) {
        std::perror((std::string("cupti_trace: ") + path).c_str());
        return;
    }
    std::sort(t.kernels.begin(), t.kernels.end(), [](const Kernel& a, const Kernel& b) { return a.start < b.start; });
    std::unordered_map<std::string, std::string> names;  // raw -> quoted demangled: a run repeats few kernels often
    size_t bad = 0;
    std::fputs("Start (ns),Duration (ns),Name\n", f);
    for (const Kernel& k : t.kernels) {
        if (k.start == 0 || k.end < k.start) {  // no timestamps (the kernel never completed): no time to place it at
            ++bad;
            continue;
        }
        auto it = names.find(k.name);
        if (it == names.end()) it = names.emplace(k.name, csv_quoted(demangle(k.name))).first;
        std::fprintf(f, "%llu,%llu,%s\n", static_cast<unsigned long long>(k.start),
                     static_cast<unsigned long long>(k.end - k.start), it->second.c_str());
    }
    if (std::fclose(f) != 0) std::perror((std::string("cupti_trace: ") + path).c_str());
    std::fprintf(stderr, "cupti_trace: %zu kernels to %s", t.kernels.size() - bad, path);
    if (bad) std::fprintf(stderr, ", %zu without timestamps skipped", bad);
    if (t.dropped) std::fprintf(stderr, ", %zu records dropped by CUPTI (trace incomplete)", t.dropped);
    std::fputc('\n', stderr);
}

}  // namespace

// Called by the CUDA driver during cuInit, before any context exists; returns 1 for success, as NVIDIA's samples do.
extern "C" int InitializeInjection(void) {
    // CONCURRENT_KERNEL, not KERNEL: KERNEL serializes every launch, which would erase the gaps and overlaps the
    // trace is for. Kernels launched by CUDA graphs come as one record per node, with real timestamps.
    if (!ok(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed), "cuptiActivityRegisterCallbacks") ||
        !ok(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "cuptiActivityEnable(CONCURRENT_KERNEL)"))
        return 1;  // the application runs on untraced
    if (std::atexit(write_trace) != 0) std::fprintf(stderr, "cupti_trace: atexit failed: no trace will be written\n");
    return 1;
}
