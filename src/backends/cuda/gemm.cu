// cuBLASLt wrapper for y = x · Wᵀ with row-major bf16 x [T, in] and W [out, in]. cuBLASLt is column-major, so the
// same bytes are read as Wc [in, out] and Xc [in, T], and we ask for Yc [out, T] = Wcᵀ · Xc: the "TN" layout that
// cuBLASLt's fastest Hopper kernels take, and Yc is exactly row-major y. Descriptors, the heuristic's algorithm and
// pointer alignments are cached per shape, so a decode step pays no heuristic query after its first call (and the
// call sequence is graph-capturable once warm).
#include <cublasLt.h>

#include <map>
#include <tuple>

#include "backends/cuda/gemm.h"

namespace moeinfer::cuda {
namespace {

void check_cublas(cublasStatus_t st, const char* what, const char* file, int line) {
    if (st != CUBLAS_STATUS_SUCCESS) {
        throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + what + ": " +
                                 cublasLtGetStatusString(st));
    }
}
#define CUBLAS_CHECK(expr) check_cublas((expr), #expr, __FILE__, __LINE__)

// Largest power of two ≤ 256 dividing the address: cuBLASLt assumes 256-byte aligned operands unless told.
uint32_t alignment_of(const void* p) {
    const auto a = reinterpret_cast<uintptr_t>(p);
    uint32_t al = 256;
    while (al > 1 && (a % al) != 0) al >>= 1;
    return al;
}

}  // namespace

struct Gemm::Impl {
    // (T, out, in, out dtype, alignment of x, w, y) → plan
    using Key = std::tuple<int64_t, int64_t, int64_t, int, uint32_t, uint32_t, uint32_t>;
    struct Plan {
        cublasLtMatmulDesc_t desc = nullptr;
        cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
        cublasLtMatmulAlgo_t algo{};
    };
    cublasLtHandle_t handle = nullptr;
    DeviceBuffer workspace;
    std::map<Key, Plan> plans;

    ~Impl() {
        for (auto& [key, p] : plans) {
            cublasLtMatrixLayoutDestroy(p.a);
            cublasLtMatrixLayoutDestroy(p.b);
            cublasLtMatrixLayoutDestroy(p.c);
            cublasLtMatmulDescDestroy(p.desc);
        }
        if (handle) cublasLtDestroy(handle);
    }

    const Plan& plan(int64_t T, int64_t out, int64_t in, cudaDataType_t ytype, const void* x, const void* w,
                     const void* y) {
        const Key key{T, out, in, int(ytype), alignment_of(x), alignment_of(w), alignment_of(y)};
        if (auto it = plans.find(key); it != plans.end()) return it->second;
        Plan p;
        CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
        const cublasOperation_t transa = CUBLAS_OP_T, transb = CUBLAS_OP_N;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &transa, sizeof(transa)));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &transb, sizeof(transb)));
        CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, in, out, in));  // Wc [in, out]
        CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, in, T, in));    // Xc [in, T]
        CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, ytype, out, T, out));        // Yc [out, T]

        cublasLtMatmulPreference_t pref = nullptr;
        CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
        const uint64_t ws = workspace.bytes();
        CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                          sizeof(ws)));
        const uint32_t al_a = std::get<5>(key), al_b = std::get<4>(key), al_c = std::get<6>(key);
        CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a,
                                                          sizeof(al_a)));
        CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b,
                                                          sizeof(al_b)));
        CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c,
                                                          sizeof(al_c)));
        CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c,
                                                          sizeof(al_c)));
        cublasLtMatmulHeuristicResult_t result{};
        int found = 0;
        const cublasStatus_t st =
            cublasLtMatmulAlgoGetHeuristic(handle, p.desc, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
        cublasLtMatmulPreferenceDestroy(pref);
        if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
            cublasLtMatrixLayoutDestroy(p.a);
            cublasLtMatrixLayoutDestroy(p.b);
            cublasLtMatrixLayoutDestroy(p.c);
            cublasLtMatmulDescDestroy(p.desc);
            throw std::runtime_error("cuda::Gemm: cuBLASLt has no algorithm for T=" + std::to_string(T) +
                                     " out=" + std::to_string(out) + " in=" + std::to_string(in));
        }
        p.algo = result.algo;
        return plans.emplace(key, p).first->second;
    }

    void run(const bf16* x, int64_t T, const bf16* w, int64_t out, int64_t in, void* y, cudaDataType_t ytype,
             cudaStream_t stream) {
        if (T == 0 || out == 0) return;
        const Plan& p = plan(T, out, in, ytype, x, w, y);
        const float alpha = 1.0f, beta = 0.0f;
        CUBLAS_CHECK(cublasLtMatmul(handle, p.desc, &alpha, w, p.a, x, p.b, &beta, y, p.c, y, p.c, &p.algo,
                                    workspace.get(), workspace.bytes(), stream));
    }
};

Gemm::Gemm(size_t workspace_bytes) : impl_(std::make_unique<Impl>()) {
    CUBLAS_CHECK(cublasLtCreate(&impl_->handle));
    impl_->workspace = DeviceBuffer(workspace_bytes);
}

Gemm::~Gemm() = default;

void Gemm::matmul(const bf16* x, int64_t T, const bf16* w, int64_t out, int64_t in, bf16* y, cudaStream_t stream) {
    impl_->run(x, T, w, out, in, y, CUDA_R_16BF, stream);
}

void Gemm::matmul(const bf16* x, int64_t T, const bf16* w, int64_t out, int64_t in, float* y, cudaStream_t stream) {
    impl_->run(x, T, w, out, in, y, CUDA_R_32F, stream);
}

}  // namespace moeinfer::cuda
