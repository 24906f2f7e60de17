// cuda_roofline: the two ceilings of the card (device copy bandwidth, bf16 GEMM rate through cuBLASLt) and how
// close the first decode building blocks come to them (batch-1 GEMV through cuBLASLt, paged decode attention).
// Times are medians of CUDA-event timings after warm-up; inputs are random (never zeros) and rotated over several
// copies where one copy would fit in L2. Usage: cuda_roofline (prints a table to stdout).
#include <algorithm>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "backends/cuda/gemm.h"
#include "backends/cuda/ops.h"
#include "core/half.h"

using namespace moeinfer;
using namespace moeinfer::cuda;

namespace {

// Median milliseconds of `reps` runs of fn(i) (i counts runs, for rotating inputs), after `warmup` runs.
double median_ms(int warmup, int reps, const std::function<void(int)>& fn) {
    for (int i = 0; i < warmup; ++i) fn(i);
    cudaEvent_t a, b;
    MOEINFER_CUDA_CHECK(cudaEventCreate(&a));
    MOEINFER_CUDA_CHECK(cudaEventCreate(&b));
    std::vector<float> ms(reps);
    for (int i = 0; i < reps; ++i) {
        MOEINFER_CUDA_CHECK(cudaEventRecord(a));
        fn(warmup + i);
        MOEINFER_CUDA_CHECK(cudaEventRecord(b));
        MOEINFER_CUDA_CHECK(cudaEventSynchronize(b));
        MOEINFER_CUDA_CHECK(cudaEventElapsedTime(&ms[i], a, b));
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    std::sort(ms.begin(), ms.end());
    return ms[reps / 2];
}

// A device buffer of n random bf16 values (stddev `scale`), made on the host by a cheap generator.
DeviceBuffer random_bf16(size_t n, uint32_t seed, float scale) {
    std::vector<uint16_t> h(n);
    std::minstd_rand rng(seed);
    for (auto& x : h) x = fp32_to_bf16(scale * (float(rng() % 20001) / 10000.0f - 1.0f));
    DeviceBuffer b(n * 2);
    MOEINFER_CUDA_CHECK(cudaMemcpy(b.get(), h.data(), n * 2, cudaMemcpyHostToDevice));
    return b;
}

}  // namespace

int main() try {
    if (!gpu_available()) {
        std::printf("cuda_roofline: no CUDA device\n");
        return 0;
    }
    cudaDeviceProp prop{};
    MOEINFER_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s, %d SMs, L2 %.0f MB, %.1f GiB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize / 1e6,
                prop.totalGlobalMem / double(1 << 30));

    // 1. Copy bandwidth: 1 GiB device-to-device, counting bytes read plus bytes written.
    const size_t copy_bytes = size_t(1) << 30;
    DeviceBuffer src = random_bf16(copy_bytes / 2, 1, 1.0f), dst(copy_bytes);
    const double copy_ms = median_ms(3, 20, [&](int) {
        MOEINFER_CUDA_CHECK(cudaMemcpyAsync(dst.get(), src.get(), copy_bytes, cudaMemcpyDeviceToDevice));
    });
    const double bw = 2.0 * copy_bytes / (copy_ms * 1e-3) / 1e12;
    std::printf("copy D2D 1 GiB: %.3f ms, %.3f TB/s (read + write)\n", copy_ms, bw);
    src = DeviceBuffer();
    dst = DeviceBuffer();

    // 2. bf16 GEMM rate, 8192^3, fp32 accumulation (cuBLASLt through cuda::Gemm).
    Gemm gemm;
    {
        const int64_t n = 8192;
        DeviceBuffer x = random_bf16(n * n, 2, 1.0f), w = random_bf16(n * n, 3, 0.02f), y(n * n * 2);
        const double ms = median_ms(5, 20, [&](int) { gemm.matmul(x.as<bf16>(), n, w.as<bf16>(), n, n, y.as<bf16>(), nullptr); });
        std::printf("gemm bf16 8192^3: %.3f ms, %.1f TFLOP/s\n", ms, 2.0 * n * n * n / (ms * 1e-3) / 1e12);
    }

    // 3. Batch-1 GEMV (decode linear layers of a Llama-3.1-8B shape) as a fraction of copy bandwidth.
    std::printf("%-28s %10s %10s %8s %10s %8s\n", "T=1 (out x in)", "cuBLASLt", "TB/s", "of copy", "gemv() us",
                "of copy");
    const int64_t shapes[][2] = {{4096, 4096}, {6144, 4096}, {28672, 4096}, {4096, 14336}, {128256, 4096}};
    for (const auto& s : shapes) {
        const int64_t out = s[0], in = s[1];
        const size_t wbytes = size_t(out) * in * 2;
        const int copies = int(std::max<size_t>(1, std::min<size_t>(8, (size_t(256) << 20) / wbytes + 1)));
        std::vector<DeviceBuffer> ws;
        for (int c = 0; c < copies; ++c) ws.push_back(random_bf16(out * in, 10 + c, 0.02f));
        DeviceBuffer x = random_bf16(in, 9, 1.0f), y(out * 2);
        const double ms = median_ms(5, 50, [&](int i) {
            gemm.matmul(x.as<bf16>(), 1, ws[i % copies].as<bf16>(), out, in, y.as<bf16>(), nullptr);
        });
        const double ms2 = median_ms(5, 50, [&](int i) {
            gemv(x.as<bf16>(), 1, ws[i % copies].as<bf16>(), out, in, y.as<bf16>(), nullptr);
        });
        const double tbs = wbytes / (ms * 1e-3) / 1e12, tbs2 = wbytes / (ms2 * 1e-3) / 1e12;
        std::printf("%8ld x %-18ld %10.1f %10.3f %7.0f%% %10.1f %7.0f%%\n", long(out), long(in), ms * 1e3, tbs,
                    100.0 * tbs / bw, ms2 * 1e3, 100.0 * tbs2 / bw);
    }

    // 4. Paged decode attention, 32 query heads / 8 kv heads / head_dim 128, block 16: bytes = K and V read once.
    std::printf("%-28s %10s %10s %8s %6s\n", "decode attn (seqs x ctx)", "us", "TB/s", "of copy", "splits");
    const int64_t nh = 32, nkv = 8, hd = 128, bs = 16;
    const int64_t cases[][2] = {{1, 4096}, {1, 32768}, {16, 4096}, {64, 2048}, {256, 1024}};
    for (const auto& c : cases) {
        const int64_t S = c[0], len = c[1], max_blocks = (len + bs - 1) / bs, num_blocks = S * max_blocks;
        std::vector<int32_t> table(num_blocks);
        for (int64_t i = 0; i < num_blocks; ++i) table[i] = int32_t((i * 7919) % num_blocks);  // scattered blocks
        std::vector<int32_t> lens(S, int32_t(len));
        DeviceBuffer dtab(table.size() * 4), dlens(lens.size() * 4);
        MOEINFER_CUDA_CHECK(cudaMemcpy(dtab.get(), table.data(), table.size() * 4, cudaMemcpyHostToDevice));
        MOEINFER_CUDA_CHECK(cudaMemcpy(dlens.get(), lens.data(), lens.size() * 4, cudaMemcpyHostToDevice));
        const size_t cache_elems = size_t(num_blocks) * bs * nkv * hd;
        DeviceBuffer kc = random_bf16(cache_elems, 20, 1.0f), vc = random_bf16(cache_elems, 21, 1.0f);
        DeviceBuffer q = random_bf16(S * nh * hd, 22, 1.0f), out(S * nh * hd * 2);
        const int splits = choose_decode_splits(S, nkv, len, bs, prop.multiProcessorCount);
        DeviceBuffer wsp(sizeof(float) * std::max<int64_t>(1, decode_attention_workspace_floats(S, nh, hd, splits)));
        DecodeAttentionArgs args{q.as<bf16>(), dlens.as<int32_t>(), S, nh, 0, 0.088f, len, splits,
                                 wsp.as<float>(), out.as<bf16>()};
        args.split_heads = choose_decode_split_heads(S, nkv, prop.multiProcessorCount);
        const PagedKv kv{dtab.as<int32_t>(), max_blocks, bs, nkv, hd};
        const double ms = median_ms(3, 20, [&](int) { paged_decode_attention(args, kv, kc.as<bf16>(), vc.as<bf16>(), nullptr); });
        const double tbs = 2.0 * cache_elems * 2 / (ms * 1e-3) / 1e12;
        std::printf("%8ld x %-18ld %10.1f %10.3f %7.0f%% %6d\n", long(S), long(len), ms * 1e3, tbs, 100.0 * tbs / bw,
                    splits);
    }
    MOEINFER_CUDA_CHECK(cudaDeviceSynchronize());
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "cuda_roofline: %s\n", e.what());
    return 1;
}
