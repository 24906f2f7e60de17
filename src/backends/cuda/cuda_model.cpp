// CudaForward: the decoder forward on one GPU (see cuda_forward.h). Weights are bf16 on the device, fused where
// one GEMM can serve several projections (q|k|v, gate|up, and per-layer expert stacks [E, 2·ff, H]); the residual
// stream is fp32. One step: embed → per layer (norm → qkv → bias/qk-norm/RoPE/paged-KV write in one kernel →
// paged attention → o → residual-add+norm → MLP or MoE → residual-add+norm of the next layer) → lm_head on the
// requested rows → logits to the host. Decode-sized steps (≤ 4 tokens) launch fewer kernels: o and the MLP's down
// projection add into the residual inside their products, the products after a norm normalize the residual
// themselves (gemv_rms), MoE layers normalize inside the routing launch and add the combined experts in one launch.
// Products of ≤ kGemvRows rows use our gemv (the down projection with SwiGLU fused into its input), larger ones
// cuBLASLt. MoE layers route in fp32 (from the fp32 residual); at ≤ kDirectMoeTokens
// tokens each (token, expert) row multiplies its expert directly, otherwise rows are permuted by expert and the
// grouped gemv runs over the active experts (device-only, graph-capturable) unless the experts average more rows,
// where one grouped cuBLAS GEMM per projection wins and one host sync for the offsets is cheap.
// Uniform steps (every sequence the same few tokens: decode, speculative verification) are captured once per
// (padded size, context bucket, KV cache) as CUDA graphs and replayed: the step's metadata goes to fixed device
// buffers before the graph launch.
#include "backends/cuda/cuda_forward.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <map>
#include <tuple>
#include <vector>

#include "backends/cuda/common.h"
#include "backends/cuda/gemm.h"
#include "backends/cuda/ops.h"
#include "core/half.h"
#include "formats/dequant.h"
#include "models/model.h"

namespace moeinfer::cuda {
namespace {

constexpr int64_t kGemvRows = 4;          // products with at most this many rows use gemv() / gemv_swiglu()
constexpr int64_t kGroupedRowsPerExpert = 1;  // grouped gemv while experts average fewer rows than this
constexpr int64_t kMaxGraphTokens = 64;   // uniform steps up to this many tokens are captured as graphs
constexpr int64_t kMaxGraphChunk = 8;
constexpr size_t kMaxGraphs = 256;        // captured graphs kept at once     // ... with up to this many tokens per sequence (speculative verification)
// Steps with at least this many tokens, in query tiles averaging at least kPrefillTileTokens, use the tensor-core
// prefill attention (a tile's keys are read once for its up to 64 queries). Steps of mostly single tokens (large
// non-graphed decode batches) keep the decode kernel, which reads each K/V row once for a whole GQA group.
constexpr int64_t kPrefillKernelTokens = 16;
constexpr int64_t kPrefillTileTokens = 4;
// MoE steps this small skip the permutation (direct_expert_gemv), add the output projection straight into the
// residual (gemv_add) and route in one launch (route_decode).
constexpr int64_t kDirectMoeTokens = 4;
static_assert(kDirectMoeTokens <= kGemvRows && kDirectMoeTokens <= kRouteDecodeMaxTokens);
// MoE steps up to this size combine the experts' rows inside the residual add + norm (one launch fewer); larger
// ones keep the separate combine, whose grid also splits the columns (the fused form has one block per row).
constexpr int64_t kFusedCombineTokens = 64;

// Pinned host memory (fast, asynchronous copies), grown on demand.
class PinnedBuffer {
public:
    PinnedBuffer() = default;
    PinnedBuffer(const PinnedBuffer&) = delete;
    PinnedBuffer& operator=(const PinnedBuffer&) = delete;
    ~PinnedBuffer() {
        if (ptr_) cudaFreeHost(ptr_);
    }
    void* get(size_t bytes) {
        if (bytes > bytes_) {
            if (ptr_) cudaFreeHost(ptr_);
            ptr_ = nullptr;
            MOEINFER_CUDA_CHECK(cudaMallocHost(&ptr_, bytes));
            bytes_ = bytes;
        }
        return ptr_;
    }

private:
    void* ptr_ = nullptr;
    size_t bytes_ = 0;
};

// Uploads: file dtypes become bf16 on the device; a synthetic tensor (data == nullptr) gets random values.
class Uploader {
public:
    Uploader(cudaStream_t stream, uint64_t seed) : stream_(stream), seed_(seed) {}

    // dst[rows of t] ← t, converted to bf16.
    void put(bf16* dst, const Tensor& t) {
        const int64_t rows = t.rows(), cols = t.cols();
        if (!t.data) {
            fill_random(dst, rows * cols, seed_++ * 0x632be59bd9b4e019ull, 1.0f / std::sqrt(float(cols)), stream_);
            return;
        }
        const int64_t chunk = std::max<int64_t>(1, (int64_t(8) << 20) / cols);  // ~16 MiB of bf16 per copy
        std::vector<float> row(cols);
        for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
            const int64_t n = std::min(chunk, rows - r0);
            MOEINFER_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the staging buffer is free again
            auto* stage = static_cast<uint16_t*>(staging_.get(size_t(n * cols) * 2));
            for (int64_t r = 0; r < n; ++r) {
                uint16_t* out = stage + r * cols;
                if (t.dtype == DType::BF16) {
                    std::memcpy(out, t.row(r0 + r), size_t(cols) * 2);
                    continue;
                }
                dequantize_row(t.dtype, t.row(r0 + r), row.data(), cols);
                for (int64_t i = 0; i < cols; ++i) out[i] = fp32_to_bf16(row[i]);
            }
            MOEINFER_CUDA_CHECK(cudaMemcpyAsync(dst + r0 * cols, stage, size_t(n * cols) * 2, cudaMemcpyHostToDevice,
                                                stream_));
        }
    }
    DeviceBuffer bf16s(const std::vector<const Tensor*>& parts) {  // the parts' rows stacked
        int64_t elems = 0;
        bool synthetic = true;
        for (const Tensor* t : parts) {
            elems += t->numel();
            synthetic = synthetic && !t->data;
        }
        DeviceBuffer b(size_t(elems) * 2);
        if (synthetic && !parts.empty()) {  // one fill for a whole stack (128 experts: one launch, not 384)
            put(b.as<bf16>(), Tensor{"", DType::BF16, {elems / parts[0]->cols(), parts[0]->cols()}, nullptr});
            return b;
        }
        int64_t at = 0;
        for (const Tensor* t : parts) {
            put(b.as<bf16>() + at, *t);
            at += t->numel();
        }
        return b;
    }
    DeviceBuffer f32s(const std::vector<float>& v) {
        if (v.empty()) return {};
        DeviceBuffer b(v.size() * 4);
        MOEINFER_CUDA_CHECK(cudaMemcpy(b.get(), v.data(), v.size() * 4, cudaMemcpyHostToDevice));
        return b;
    }
    void finish() { MOEINFER_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

private:
    cudaStream_t stream_;
    uint64_t seed_;
    PinnedBuffer staging_;
};

struct DevMlp {
    DeviceBuffer gate_up, down;  // [2·ff, H] (gate rows then up rows), [H, ff]
    int64_t ff = 0;
};

struct DevLayer {
    DeviceBuffer attn_norm, ffn_norm;  // fp32 [H]
    DeviceBuffer qkv, qkv_bias, o;     // [qw + 2·kvw, H] bf16, fp32 bias (optional), [H, qw]
    QkNorm qk_norm = QkNorm::None;
    DeviceBuffer q_norm, k_norm;
    bool is_moe = false;
    DevMlp mlp;                        // dense layer
    DeviceBuffer router;               // [E, H]
    DevMlp experts;                    // stacked: gate_up [E, 2·ff, H], down [E, H, ff]
    int64_t top_k = 0;
    bool normalize_topk = false;
    bool has_shared = false;
    DevMlp shared;
    DeviceBuffer shared_gate;          // [1, H] bf16, optional
};

class CudaKv : public DeviceKv {
public:
    // One allocation: [layer][K, V][num_blocks + 1][block_size][width] bf16. Block num_blocks is scratch that
    // padding rows of graph-captured steps write into.
    CudaKv(int64_t layers, int32_t num_blocks, int32_t block_size, int64_t width, cudaStream_t stream)
        : id_(next_id_.fetch_add(1)), layers_(layers), blocks_(num_blocks), block_size_(block_size), block_elems_(int64_t(block_size) * width), stream_(stream),
          buf_(size_t(layers) * 2 * (num_blocks + 1) * block_elems_ * 2) {
        MOEINFER_CUDA_CHECK(cudaMemsetAsync(buf_.get(), 0, buf_.bytes(), stream));
    }
    bf16* k(int64_t l) const { return buf_.as<bf16>() + (2 * l) * plane(); }
    bf16* v(int64_t l) const { return buf_.as<bf16>() + (2 * l + 1) * plane(); }
    int32_t scratch_block() const { return blocks_; }
    // Unique for the process: graphs captured against a cache are keyed by this, never by its address (a new cache
    // may be allocated where a freed one was, with different device buffers).
    uint64_t id() const { return id_; }
    int64_t block_size() const { return block_size_; }
    void copy_block(int32_t src, int32_t dst) override {
        // The same block of all 2·layers planes: one strided copy, ordered with the forward on its stream.
        const size_t bytes = size_t(block_elems_) * 2, pitch = size_t(plane()) * 2;
        MOEINFER_CUDA_CHECK(cudaMemcpy2DAsync(buf_.as<bf16>() + dst * block_elems_, pitch, buf_.as<bf16>() + src * block_elems_,
                                              pitch, bytes, size_t(2 * layers_), cudaMemcpyDeviceToDevice, stream_));
    }

private:
    int64_t plane() const { return int64_t(blocks_ + 1) * block_elems_; }
    static inline std::atomic<uint64_t> next_id_{1};
    uint64_t id_;
    int64_t layers_;
    int32_t blocks_;
    int64_t block_size_;
    int64_t block_elems_;
    cudaStream_t stream_;
    DeviceBuffer buf_;
};

// Step sizes. Graph-captured steps use padded, bucketed values so one graph serves many steps.
struct Dims {
    int64_t T = 0, R = 0, S = 0, max_blocks = 0, max_ctx = 0;
    int splits = 1;
    bool graphed = false;  // captured: no host syncs inside
    int64_t tiles = 0;     // prefill attention tiles (0: every query through the decode kernel)
    int64_t fresh = 0;     // most keys one sequence writes into the cache this step (an upper bound)
    bool identity_rows = false;  // logit row r is token r for every token (R == T)
};

class CudaForward : public DeviceForward {
public:
    CudaForward(const Model& model, const CudaForwardOptions& opt);
    ~CudaForward() override;
    std::string name() const override { return name_; }
    int64_t kv_bytes_per_element() const override { return 2; }
    std::unique_ptr<DeviceKv> allocate_kv(int32_t num_blocks, int32_t block_size) override {
        MOEINFER_CUDA_CHECK(cudaSetDevice(opt_.device));
        return std::make_unique<CudaKv>(c_.num_layers, num_blocks, block_size, c_.num_kv_heads * c_.head_dim, stream_);
    }
    void launch(const Batch& batch, DeviceKv& kv, float* logits, RowSummary* summaries) override;
    void finish() override;
    double last_step_gap_seconds() const override { return last_gap_; }

private:
    void upload(const Model& model);
    void reserve(const Dims& d);
    void run(const Dims& d, CudaKv& kv, int64_t block_size);  // the whole step, device work only (capturable)
    // launch()'s last part, for an empty step too: the step's done event, where finish() is to copy its results and
    // what the next step's ids < 0 may name; then the step counts as launched.
    void end_launch(float* logits, RowSummary* summaries, int64_t R);
    void linear(const bf16* x, int64_t T, const bf16* w, int64_t out, int64_t in, bf16* y);
    void linear(const bf16* x, int64_t T, const bf16* w, int64_t out, int64_t in, float* y);
    void mlp(const DevMlp& m, const bf16* x, int64_t T, bf16* out);
    // An MoE layer from the attention output (branch_, or already in x_ at decode sizes) to the next layer's input:
    // residual add and norm, routing, experts, combine, residual add, and the next norm into xn_ unless the step is
    // small enough for the next product to normalize x_ itself (returns whether xn_ holds the next norm).
    bool moe(const DevLayer& l, int64_t T, const float* next_norm);
    // Expert products over expert-contiguous rows (moe_permute): y_[N, H] in permuted order.
    void grouped_experts(const DevLayer& l, const bf16* x, int64_t T);

    ModelConfig c_;
    CudaForwardOptions opt_;
    std::string name_;
    int num_sms_ = 0;
    cudaStream_t stream_ = nullptr;
    std::unique_ptr<Gemm> gemm_;
    DeviceBuffer embed_, lm_head_, final_norm_, inv_freq_;
    bool tied_ = false;
    bool rope_interleaved_ = false;
    std::vector<DevLayer> layers_;
    int64_t ff_max_ = 0;  // widest MLP / expert / shared intermediate

    // Step buffers, sized for cap_ (tokens), cap_rows_ (logit rows), cap_table_ (block-table ints).
    int64_t cap_ = 0, cap_rows_ = 0, cap_table_ = 0, cap_ws_ = 0;
    DeviceBuffer meta_;  // ids | positions | token_seq | ctx_lens | logit_rows | tables (int32)
    DeviceBuffer summary_ws_;  // summarize_rows' per-chunk statistics
    DeviceBuffer adjust_;      // the step's logit adjustments, their row offsets and saved raw logits
    DeviceBuffer x_, xn_, qkv_, q_, attn_, branch_, moe_out_, gu_, act_, router_, route_mailbox_, topk_ids_, topk_w_,
        offsets_, row_token_, slot_row_, summary_, perm_ws_, y_, shared_, shared_gate_, attn_ws_, rows_, logits_;
    // Launched steps, oldest first (at most two: the host prepares one while the device runs the other). Step k
    // uses pinned slot k % 2 for its metadata and results, and events k % 4, so the events of step k - 1 are
    // still intact when step k finishes and the device's idle gap between them can be read.
    struct Slot {
        PinnedBuffer meta, out;
        float* logits = nullptr;
        RowSummary* summaries = nullptr;
        int64_t R = 0;
    };
    Slot slots_[2];
    cudaEvent_t started_[4] = {}, done_[4] = {};
    uint64_t launched_ = 0, finished_ = 0;
    int64_t summary_rows_ = 0;  // rows of the last launched step's summaries (what ids < 0 may name)
    double last_gap_ = -1;

    struct GraphKey {
        int64_t T, R, ctx;  // (T, R) also fix the tokens per sequence: R is T or the number of sequences
        uint64_t kv;        // CudaKv::id()
        bool operator<(const GraphKey& o) const { return std::tie(T, R, ctx, kv) < std::tie(o.T, o.R, o.ctx, o.kv); }
    };
    std::map<GraphKey, cudaGraphExec_t> graphs_;
    void drop_graphs();
};

int32_t* ints(const DeviceBuffer& b) { return b.as<int32_t>(); }

CudaForward::CudaForward(const Model& model, const CudaForwardOptions& opt) : c_(model.config()), opt_(opt) {
    if (!gpu_available()) throw std::runtime_error("--device cuda: no CUDA device is available on this machine");
    int count = 0;
    MOEINFER_CUDA_CHECK(cudaGetDeviceCount(&count));
    if (opt.device < 0 || opt.device >= count)
        throw std::runtime_error("--device cuda:" + std::to_string(opt.device) + ": this machine has " +
                                 std::to_string(count) + " CUDA device(s)");
    MOEINFER_CUDA_CHECK(cudaSetDevice(opt.device));
    cudaDeviceProp prop{};
    MOEINFER_CUDA_CHECK(cudaGetDeviceProperties(&prop, opt.device));
    num_sms_ = prop.multiProcessorCount;
    name_ = "cuda:" + std::to_string(opt.device) + " (" + prop.name + ")";
    if (c_.num_heads % c_.num_kv_heads != 0 || c_.num_heads / c_.num_kv_heads > 16)
        throw std::runtime_error("--device cuda: at most 16 query heads per kv head are supported");
    if (c_.head_dim != 16 && c_.head_dim != 32 && c_.head_dim != 64 && c_.head_dim != 96 && c_.head_dim != 128 &&
        c_.head_dim != 256)
        throw std::runtime_error("--device cuda: head_dim must be 16, 32, 64, 96, 128 or 256 (model has " +
                                 std::to_string(c_.head_dim) + ")");
    if (c_.num_experts > 1024)
        throw std::runtime_error("--device cuda: at most 1024 experts are supported (model has " +
                                 std::to_string(c_.num_experts) + ")");
    MOEINFER_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    for (int i = 0; i < 4; ++i) {
        MOEINFER_CUDA_CHECK(cudaEventCreate(&started_[i]));
        MOEINFER_CUDA_CHECK(cudaEventCreate(&done_[i]));
    }
    gemm_ = std::make_unique<Gemm>();
    upload(model);
}

CudaForward::~CudaForward() {
    cudaSetDevice(opt_.device);
    if (stream_) cudaStreamSynchronize(stream_);
    for (int i = 0; i < 4; ++i) {
        if (started_[i]) cudaEventDestroy(started_[i]);
        if (done_[i]) cudaEventDestroy(done_[i]);
    }
    drop_graphs();
    if (stream_) cudaStreamDestroy(stream_);
}

void CudaForward::drop_graphs() {
    for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
    graphs_.clear();
}

void CudaForward::upload(const Model& model) {
    Uploader up(stream_, opt_.seed);
    const int64_t H = c_.hidden_size;
    embed_ = up.bf16s({&model.embedding()});
    tied_ = model.lm_head().name == model.embedding().name && model.lm_head().data == model.embedding().data;
    if (!tied_) lm_head_ = up.bf16s({&model.lm_head()});
    final_norm_ = up.f32s(model.final_norm());
    inv_freq_ = up.f32s(model.inv_freq());
    rope_interleaved_ = c_.rope.interleaved;
    auto dev_mlp = [&](const MlpWeights& m) {
        DevMlp d;
        d.ff = m.gate.rows();
        d.gate_up = up.bf16s({&m.gate, &m.up});
        d.down = up.bf16s({&m.down});
        ff_max_ = std::max(ff_max_, d.ff);
        return d;
    };
    for (const DecoderLayerWeights& lw : model.layers()) {
        DevLayer d;
        d.attn_norm = up.f32s(lw.attn_norm);
        d.ffn_norm = up.f32s(lw.ffn_norm);
        const AttentionWeights& a = lw.attn;
        d.qkv = up.bf16s({&a.q, &a.k, &a.v});
        d.o = up.bf16s({&a.o});
        if (!a.q_bias.empty()) {
            std::vector<float> bias(a.q_bias);
            bias.insert(bias.end(), a.k_bias.begin(), a.k_bias.end());
            bias.insert(bias.end(), a.v_bias.begin(), a.v_bias.end());
            d.qkv_bias = up.f32s(bias);
        }
        d.qk_norm = a.qk_norm;
        d.q_norm = up.f32s(a.q_norm);
        d.k_norm = up.f32s(a.k_norm);
        d.is_moe = lw.is_moe;
        if (!lw.is_moe) {
            d.mlp = dev_mlp(lw.mlp);
        } else {
            const MoeWeights& m = lw.moe;
            d.router = up.bf16s({&m.router});
            std::vector<const Tensor*> gu, dn;
            for (size_t e = 0; e < m.gate.size(); ++e) {
                gu.push_back(&m.gate[e]);
                gu.push_back(&m.up[e]);
                dn.push_back(&m.down[e]);
            }
            d.experts.ff = m.gate.empty() ? 0 : m.gate[0].rows();
            d.experts.gate_up = up.bf16s(gu);
            d.experts.down = up.bf16s(dn);
            ff_max_ = std::max(ff_max_, d.experts.ff);
            d.top_k = m.top_k;
            d.normalize_topk = m.normalize_topk;
            d.has_shared = m.has_shared;
            if (m.has_shared) {
                d.shared = dev_mlp(m.shared);
                if (m.shared_gate.shape == std::vector<int64_t>{1, H}) d.shared_gate = up.bf16s({&m.shared_gate});
            }
        }
        layers_.push_back(std::move(d));
    }
    up.finish();
}

void CudaForward::reserve(const Dims& d) {
    const int64_t H = c_.hidden_size, qw = c_.num_heads * c_.head_dim, kvw = c_.num_kv_heads * c_.head_dim;
    const int64_t k = std::max<int64_t>(1, c_.experts_per_token), E = std::max<int64_t>(1, c_.num_experts);
    const int64_t ws = decode_attention_workspace_floats(d.T, c_.num_heads, c_.head_dim, d.splits);
    if (d.T <= cap_ && d.R <= cap_rows_ && d.S * d.max_blocks <= cap_table_ && ws <= cap_ws_) return;
    MOEINFER_CUDA_CHECK(cudaStreamSynchronize(stream_));
    drop_graphs();  // they point into the buffers about to be replaced
    cap_ = std::max(cap_, d.T);
    cap_rows_ = std::max(cap_rows_, d.R);
    cap_table_ = std::max(cap_table_, d.S * d.max_blocks);
    cap_ws_ = std::max(cap_ws_, ws);
    const int64_t T = cap_, N = T * k;
    auto b16 = [](int64_t n) { return DeviceBuffer(size_t(std::max<int64_t>(n, 1)) * 2); };
    auto f32 = [](int64_t n) { return DeviceBuffer(size_t(std::max<int64_t>(n, 1)) * 4); };
    meta_ = f32(8 * T + cap_rows_ + cap_table_);  // ids, positions, seqs, lengths, tiles (≤ T of 4 ints)
    x_ = f32(T * H);
    xn_ = b16(T * H);
    qkv_ = b16(T * (qw + 2 * kvw));
    q_ = b16(T * qw);
    attn_ = b16(T * qw);
    branch_ = b16(T * H);
    moe_out_ = f32(T * H);
    gu_ = b16(N * 2 * ff_max_);
    act_ = b16(N * ff_max_);
    router_ = f32(T * E);
    route_mailbox_ = f32(kRouteDecodeMaxTokens * E);
    fill_mailbox(route_mailbox_.as<float>(), kRouteDecodeMaxTokens * E, stream_);
    topk_ids_ = f32(N);
    topk_w_ = f32(N);
    offsets_ = f32(2 * E + 1);
    row_token_ = f32(N);
    slot_row_ = f32(N);
    perm_ws_ = f32(moe_permute_workspace_ints(N, E));
    y_ = b16(N * H);
    shared_ = b16(T * H);
    shared_gate_ = f32(T);
    attn_ws_ = f32(cap_ws_);
    rows_ = b16(cap_rows_ * H);
    logits_ = f32(cap_rows_ * c_.vocab_size);
    // Tokens, logprobs, then summarize_rows' parameters per row. The tokens of the last step are kept: the next step
    // may feed them (embed_rows' previous tokens).
    summary_ws_ = DeviceBuffer(summarize_workspace_bytes(cap_rows_, c_.vocab_size));
    DeviceBuffer summary = f32((2 + kSummaryParams) * cap_rows_);
    if (summary_rows_ > 0)
        MOEINFER_CUDA_CHECK(cudaMemcpyAsync(summary.get(), summary_.get(), size_t(summary_rows_) * 4,
                                            cudaMemcpyDeviceToDevice, stream_));
    MOEINFER_CUDA_CHECK(cudaStreamSynchronize(stream_));
    summary_ = std::move(summary);
}

// Skinny products (decode) go to our gemv, which reads a batch-1 weight at 59-104% of copy bandwidth where
// cuBLASLt reaches 49-90% (cuda_roofline prints both); everything larger to cuBLASLt's tensor-core GEMMs.
void CudaForward::linear(const bf16* x, int64_t T, const bf16* w, int64_t out, int64_t in, bf16* y) {
    if (T <= kGemvRows) gemv(x, T, w, out, in, y, stream_);
    else gemm_->matmul(x, T, w, out, in, y, stream_);
}

void CudaForward::linear(const bf16* x, int64_t T, const bf16* w, int64_t out, int64_t in, float* y) {
    if (T <= kGemvRows) gemv(x, T, w, out, in, y, stream_);
    else gemm_->matmul(x, T, w, out, in, y, stream_);
}

void CudaForward::mlp(const DevMlp& m, const bf16* x, int64_t T, bf16* out) {
    const int64_t H = c_.hidden_size;
    linear(x, T, m.gate_up.as<bf16>(), 2 * m.ff, H, gu_.as<bf16>());
    if (T <= kGemvRows) return gemv_swiglu(gu_.as<bf16>(), T, m.down.as<bf16>(), H, m.ff, out, stream_);
    silu_mul(gu_.as<bf16>(), gu_.as<bf16>() + m.ff, 2 * m.ff, T, m.ff, act_.as<bf16>(), stream_);
    linear(act_.as<bf16>(), T, m.down.as<bf16>(), H, m.ff, out);
}

bool CudaForward::moe(const DevLayer& l, int64_t T, const float* next_norm) {
    const int64_t H = c_.hidden_size, E = c_.num_experts, k = l.top_k, ff = l.experts.ff, N = T * k;
    const float eps = float(c_.rms_eps);
    if (T <= kDirectMoeTokens) {
        // The attention output is already in x (gemv_add); one launch normalizes, routes, picks the top-k and
        // writes the experts' bf16 input.
        route_decode(x_.as<float>(), l.ffn_norm.as<float>(), eps, l.router.as<bf16>(), T, E, H, k, l.normalize_topk,
                     nullptr, ints(topk_ids_), topk_w_.as<float>(), xn_.as<bf16>(), route_mailbox_.as<float>(), stream_);
    } else {
        add_rms_norm(branch_.as<bf16>(), x_.as<float>(), l.ffn_norm.as<float>(), eps, T, H, xn_.as<bf16>(), stream_);
        router_logits(x_.as<float>(), l.ffn_norm.as<float>(), eps, l.router.as<bf16>(), T, E, H, router_.as<float>(), stream_);
        route_topk(router_.as<float>(), T, E, k, l.normalize_topk, ints(topk_ids_), topk_w_.as<float>(), stream_);
    }
    const bf16* x = xn_.as<bf16>();
    const int32_t* slot_rows = nullptr;  // the direct products' rows are in (token, slot) order
    if (T <= kDirectMoeTokens) {
        // Each (token, slot) row multiplies its expert directly, in assignment order: no permutation kernels.
        direct_expert_gemv(x, k, ints(topk_ids_), N, l.experts.gate_up.as<bf16>(), 2 * ff, H, false, gu_.as<bf16>(), stream_);
        direct_expert_gemv(gu_.as<bf16>(), 1, ints(topk_ids_), N, l.experts.down.as<bf16>(), H, ff, true, y_.as<bf16>(), stream_);
        if (!l.has_shared && gemv_rms_supported(T, H)) {
            // The combine and residual add over many blocks; the next layer's q|k|v product (or the final norm)
            // normalizes x. (One block per token doing the norm as well was a 5.6 µs chain of its own.)
            add_combined_rows(y_.as<bf16>(), slot_rows, topk_w_.as<float>(), T, k, H, x_.as<float>(), stream_);
            return false;
        }
    } else {
        grouped_experts(l, x, T);
        slot_rows = ints(slot_row_);
    }
    if (!l.has_shared && T <= kFusedCombineTokens) {  // combine + residual add + the next norm in one launch
        combine_add_rms_norm(y_.as<bf16>(), slot_rows, topk_w_.as<float>(), k, x_.as<float>(), next_norm, eps, T, H,
                             xn_.as<bf16>(), stream_);
        return true;
    }
    float* out = moe_out_.as<float>();
    combine_rows(y_.as<bf16>(), slot_rows, topk_w_.as<float>(), T, k, H, false, out, stream_);
    if (l.has_shared) {
        mlp(l.shared, x, T, shared_.as<bf16>());
        const float* gate = nullptr;
        if (l.shared_gate.get()) {
            linear(x, T, l.shared_gate.as<bf16>(), 1, H, shared_gate_.as<float>());
            gate = shared_gate_.as<float>();
        }
        add_gated(out, shared_.as<bf16>(), gate, T, H, stream_);
    }
    add_rms_norm(out, x_.as<float>(), next_norm, eps, T, H, xn_.as<bf16>(), stream_);
    return true;
}

void CudaForward::grouped_experts(const DevLayer& l, const bf16* x, int64_t T) {
    const int64_t H = c_.hidden_size, E = c_.num_experts, k = l.top_k, ff = l.experts.ff, N = T * k;
    int32_t* active = ints(offsets_) + E + 1;  // offsets_ holds [E + 1] offsets, then the [E] active experts
    moe_permute(ints(topk_ids_), T, k, E, ints(perm_ws_), ints(offsets_), active, ints(row_token_), ints(slot_row_),
                stream_);
    const bf16* Wgu = l.experts.gate_up.as<bf16>();
    const bf16* Wd = l.experts.down.as<bf16>();
    bf16 *gu = gu_.as<bf16>(), *act = act_.as<bf16>(), *y = y_.as<bf16>();
    if (N < kGroupedRowsPerExpert * E) {
        grouped_gemv(x, ints(row_token_), ints(offsets_), active, E, N, Wgu, 2 * ff, H, false, gu, stream_);
        grouped_gemv(gu, nullptr, ints(offsets_), active, E, N, Wd, H, ff, true, y, stream_);
    } else {
        // A row per expert or more (prefill, decode of ≥ 16 sequences): one grouped tensor-core GEMM per projection
        // over the active experts (SwiGLU in the gate|up one's epilogue), which finds its row ranges on the device
        // (no host sync). Measured on H100 with the 30B-A3B shape from 16 sequences (1 row an expert) on, against
        // grouped_gemv: 2.2K -> 2.5K decode tok/s at 16, 3.3K -> 4.7K at 32.
        grouped_gemm_swiglu(x, ints(row_token_), ints(offsets_), E, N, Wgu, ff, H, act, stream_);
        grouped_gemm(act, nullptr, ints(offsets_), E, N, Wd, H, ff, y, stream_);
    }
}

void CudaForward::run(const Dims& d, CudaKv& kv, int64_t block_size) {
    const int64_t T = d.T, H = c_.hidden_size, nh = c_.num_heads, nkv = c_.num_kv_heads, hd = c_.head_dim;
    const int64_t qw = nh * hd, kvw = nkv * hd;
    const float eps = float(c_.rms_eps);
    const int32_t* ids = ints(meta_);
    const int32_t* positions = ids + T;
    const int32_t* token_seq = positions + T;
    const int32_t* ctx_lens = token_seq + T;
    const int32_t* logit_rows = ctx_lens + T;
    const int32_t* tables = logit_rows + d.R;
    const auto* tiles = reinterpret_cast<const PrefillTile*>(tables + d.S * d.max_blocks);
    float* x = x_.as<float>();
    bf16* xn = xn_.as<bf16>();
    const PagedKv pk{tables, d.max_blocks, block_size, nkv, hd};

    embed_rows(embed_.as<bf16>(), ids, ints(summary_), T, H, x, stream_);
    // normed: xn holds this layer's attention norm of x. Otherwise decode-sized steps fold the norm into the q|k|v
    // product (gemv_rms), larger ones run it first.
    const bool fold = gemv_rms_supported(T, H);
    bool normed = false;
    for (size_t li = 0; li < layers_.size(); ++li) {
        const DevLayer& l = layers_[li];
        if (!normed && fold) {
            gemv_rms(x, l.attn_norm.as<float>(), eps, T, l.qkv.as<bf16>(), qw + 2 * kvw, H, qkv_.as<bf16>(), stream_);
        } else {
            if (!normed) rms_norm(x, l.attn_norm.as<float>(), eps, T, H, xn, stream_);
            linear(xn, T, l.qkv.as<bf16>(), qw + 2 * kvw, H, qkv_.as<bf16>());
        }
        QkvPost post;
        post.bias = l.qkv_bias.get() ? l.qkv_bias.as<float>() : nullptr;
        post.qk_norm = l.qk_norm == QkNorm::PerHead ? QkNormKind::PerHead
                       : l.qk_norm == QkNorm::Full  ? QkNormKind::Full
                                                    : QkNormKind::None;
        post.q_norm = l.q_norm.get() ? l.q_norm.as<float>() : nullptr;
        post.k_norm = l.k_norm.get() ? l.k_norm.as<float>() : nullptr;
        post.eps = eps;
        post.inv_freq = inv_freq_.as<float>();
        post.interleaved = rope_interleaved_;
        qkv_rope_write_kv(qkv_.as<bf16>(), T, nh, positions, token_seq, post, pk, q_.as<bf16>(), kv.k(li), kv.v(li),
                          stream_);
        DecodeAttentionArgs a{q_.as<bf16>(), ctx_lens, T, nh, c_.sliding_window, float(1.0 / std::sqrt(double(hd))),
                              d.max_ctx, d.splits, attn_ws_.as<float>(),
                              attn_.as<bf16>()};
        a.query_seq = token_seq;
        a.split_heads = choose_decode_split_heads(T, nkv, num_sms_);
        a.fresh_keys = d.fresh;
        if (d.tiles > 0) {
            const PrefillAttentionArgs pa{q_.as<bf16>(), tiles, d.tiles, nh, c_.sliding_window, a.scale, attn_.as<bf16>()};
            paged_prefill_attention(pa, pk, kv.k(li), kv.v(li), stream_);
        } else {
            paged_decode_attention(a, pk, kv.k(li), kv.v(li), stream_);
        }
        // Decode sizes add the output projection into the residual stream directly: moe() routes from x, and a
        // dense MLP normalizes x inside its gate|up product.
        if ((l.is_moe && T <= kDirectMoeTokens) || (!l.is_moe && fold))
            gemv_add(attn_.as<bf16>(), T, l.o.as<bf16>(), H, qw, x, stream_);
        else
            linear(attn_.as<bf16>(), T, l.o.as<bf16>(), H, qw, branch_.as<bf16>());
        const float* next_norm = li + 1 < layers_.size() ? layers_[li + 1].attn_norm.as<float>() : final_norm_.as<float>();
        if (l.is_moe) {
            normed = moe(l, T, next_norm);
        } else if (fold) {  // norm → gate|up → SwiGLU → down, added into x; the next product normalizes x
            const DevMlp& m = l.mlp;
            gemv_rms(x, l.ffn_norm.as<float>(), eps, T, m.gate_up.as<bf16>(), 2 * m.ff, H, gu_.as<bf16>(), stream_);
            gemv_swiglu_add(gu_.as<bf16>(), T, m.down.as<bf16>(), H, m.ff, x, stream_);
            normed = false;
        } else {
            add_rms_norm(branch_.as<bf16>(), x, l.ffn_norm.as<float>(), eps, T, H, xn, stream_);
            mlp(l.mlp, xn, T, branch_.as<bf16>());
            add_rms_norm(branch_.as<bf16>(), x, next_norm, eps, T, H, xn, stream_);
            normed = true;
        }
    }
    const bf16* lm_head = (tied_ ? embed_ : lm_head_).as<bf16>();
    if (!normed && fold && d.identity_rows) {
        // Decode: the logits of every row, the final norm folded into the lm_head product (no norm, no gather).
        gemv_rms(x, final_norm_.as<float>(), eps, T, lm_head, c_.vocab_size, H, logits_.as<float>(), stream_);
        return;
    }
    if (!normed) rms_norm(x, final_norm_.as<float>(), eps, T, H, xn, stream_);
    // xn now holds every row after the final norm; the lm_head reads only the requested ones.
    gather_rows(xn, logit_rows, d.R, H, rows_.as<bf16>(), stream_);
    linear(rows_.as<bf16>(), d.R, lm_head, c_.vocab_size, H, logits_.as<float>());
}

void CudaForward::launch(const Batch& batch, DeviceKv& kv_base, float* logits, RowSummary* summaries) {
    MOEINFER_CUDA_CHECK(cudaSetDevice(opt_.device));
    auto& kv = static_cast<CudaKv&>(kv_base);
    const int64_t T = batch.num_tokens(), S = static_cast<int64_t>(batch.block_tables.size());
    const int64_t R = static_cast<int64_t>(batch.logit_rows.size()), V = c_.vocab_size, bs = kv.block_size();
    if (launched_ - finished_ >= 2) throw std::logic_error("CudaForward: at most two steps may be launched and not finished");
    for (int64_t t = 0; t < T; ++t)
        if (batch.token_ids[t] < -summary_rows_)
            throw std::invalid_argument("token id " + std::to_string(batch.token_ids[t]) + " names a row the previous step (" +
                                        std::to_string(summary_rows_) + " summary rows) does not have");
    Slot& slot = slots_[launched_ % 2];
    const int ev = int(launched_ % 4);
    if (T == 0) {  // nothing to run, but finish() pairs with every launch
        MOEINFER_CUDA_CHECK(cudaEventRecord(started_[ev], stream_));
        return end_launch(nullptr, nullptr, 0);
    }
    std::vector<int64_t> need(S, 0);  // blocks each sequence's table must provide this step
    int64_t max_ctx = 0;
    for (int64_t t = 0; t < T; ++t) {
        const int64_t pos = batch.positions[t];
        need[batch.token_seq[t]] = std::max(need[batch.token_seq[t]], pos / bs + 1);
        max_ctx = std::max(max_ctx, pos + 1);
    }
    // A uniform step — every sequence L consecutive tokens, sequence after sequence (decode: L = 1; speculative
    // verification: L = k + 1), logits for every row or for each sequence's last — is replayed from a graph
    // captured for its padded size.
    const int64_t L = T % S == 0 ? T / S : 0;
    bool graphed = opt_.graphs && L >= 1 && L <= kMaxGraphChunk && T <= kMaxGraphTokens;
    const bool all_rows = R == T;
    for (int64_t t = 0; graphed && t < T; ++t)
        graphed = batch.token_seq[t] == t / L && (t % L == 0 || batch.positions[t] == batch.positions[t - 1] + 1);
    for (int64_t r = 0; graphed && r < R; ++r)
        graphed = (all_rows || R == S) && batch.logit_rows[r] == (all_rows ? r : r * L + L - 1);
    Dims d;
    if (graphed) {
        d.S = 1;
        while (d.S < S) d.S *= 2;
        d.T = d.S * L;
        d.R = all_rows ? d.T : d.S;
        d.max_ctx = 256;
        while (d.max_ctx < max_ctx) d.max_ctx *= 2;
        d.max_blocks = (d.max_ctx + bs - 1) / bs;
        d.graphed = true;
        d.fresh = L;
        d.identity_rows = d.R == d.T;  // every row's logits (or L = 1): rows[r] = r below
    } else {
        d.T = T, d.R = R, d.S = S, d.max_ctx = max_ctx;
        d.identity_rows = R == T;
        for (int64_t r = 0; d.identity_rows && r < R; ++r) d.identity_rows = batch.logit_rows[r] == r;
        d.fresh = T;
        d.max_blocks = *std::max_element(need.begin(), need.end());
    }
    d.splits = choose_decode_splits(d.T, c_.num_kv_heads, d.max_ctx, bs, num_sms_);
    // Prefill-sized steps: tiles of ≤ 64 consecutive tokens of one sequence for the tensor-core kernel.
    std::vector<PrefillTile> tiles;
    if (!graphed && T >= kPrefillKernelTokens && prefill_attention_supported(c_.head_dim)) {
        for (int64_t t = 0; t < T; ++t) {
            PrefillTile* last = tiles.empty() ? nullptr : &tiles.back();
            if (last && last->seq_row == batch.token_seq[t] && last->count < 64 &&
                last->first_pos + last->count == batch.positions[t]) {
                ++last->count;
            } else {
                tiles.push_back({int32_t(t), 1, batch.token_seq[t], batch.positions[t]});
            }
        }
        if (int64_t(tiles.size()) * kPrefillTileTokens > T) tiles.clear();
        d.tiles = static_cast<int64_t>(tiles.size());
    }
    reserve(d);

    // Metadata, packed as run() reads it; padding sequences (graphs) use token 0 at positions 0..L-1, their tables
    // point at the cache's scratch block, they attend to nothing and their logits are not copied back.
    const int64_t words = 4 * d.T + d.R + d.S * d.max_blocks + 4 * d.tiles;
    auto* h = static_cast<int32_t*>(slot.meta.get(size_t(words) * 4));
    int32_t *ids = h, *pos = h + d.T, *seq = pos + d.T, *ctx = seq + d.T, *rows = ctx + d.T, *tab = rows + d.R;
    for (int64_t t = 0; t < d.T; ++t) {  // padding sequence s ≥ S: L tokens at positions 0..L-1
        const bool real = t < T;
        ids[t] = real ? batch.token_ids[t] : 0;
        pos[t] = real ? batch.positions[t] : int32_t(t % std::max<int64_t>(L, 1));
        seq[t] = real ? batch.token_seq[t] : int32_t(t / std::max<int64_t>(L, 1));
        ctx[t] = real ? batch.positions[t] + 1 : 0;
    }
    for (int64_t r = 0; r < d.R; ++r)
        rows[r] = r < R ? batch.logit_rows[r] : int32_t(d.R == d.T ? r : r * L + L - 1);
    std::fill(tab, tab + d.S * d.max_blocks, kv.scratch_block());
    for (int64_t s = 0; s < S; ++s) std::copy_n(batch.block_tables[s], need[s], tab + s * d.max_blocks);
    std::memcpy(tab + d.S * d.max_blocks, tiles.data(), tiles.size() * sizeof(PrefillTile));
    // The step's device work starts here: what the host did before this point, since the previous step's end, is
    // the device's idle gap (none when this launch was queued while the previous step computed).
    MOEINFER_CUDA_CHECK(cudaEventRecord(started_[ev], stream_));
    MOEINFER_CUDA_CHECK(cudaMemcpyAsync(meta_.get(), h, size_t(words) * 4, cudaMemcpyHostToDevice, stream_));

    if (!graphed) {
        run(d, kv, bs);
    } else {
        const GraphKey key{d.T, d.R, d.max_ctx, kv.id()};
        auto it = graphs_.find(key);
        if (it != graphs_.end()) {
            MOEINFER_CUDA_CHECK(cudaGraphLaunch(it->second, stream_));
        } else {
            // First time: run eagerly (plans and heuristics get cached), then capture the same work for next time.
            run(d, kv, bs);
            cudaGraph_t graph = nullptr;
            cudaGraphExec_t exec = nullptr;
            MOEINFER_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
            try {
                run(d, kv, bs);
            } catch (...) {
                cudaStreamEndCapture(stream_, &graph);
                if (graph) cudaGraphDestroy(graph);
                throw;
            }
            MOEINFER_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
            MOEINFER_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
            cudaGraphDestroy(graph);
            // Graphs of caches that are gone are never replayed again; bound what they hold.
            if (graphs_.size() >= kMaxGraphs) drop_graphs();
            graphs_.emplace(key, exec);
        }
    }
    // Host buffer: [R] tokens, [R] logprobs, then the logits when asked for; then the summaries' inputs: parameters,
    // and the rows' logit adjustments with their offsets.
    int64_t num_adjust = 0;
    for (int64_t r = 0; summaries && r < R; ++r) num_adjust += summaries[r].num_adjust;
    const size_t logits_bytes = logits ? size_t(R * V) * 4 : 0, params_at = size_t(R) * 8 + logits_bytes;
    const size_t offsets_at = params_at + size_t(R) * 4 * kSummaryParams, adjust_at = offsets_at + size_t(R + 1) * 4;
    auto* host = static_cast<char*>(slot.out.get(adjust_at + size_t(num_adjust) * sizeof(LogitAdjust)));
    if (logits && R > 0)  // before the summaries, which adjust rows in place
        MOEINFER_CUDA_CHECK(cudaMemcpyAsync(host + R * 8, logits_.get(), logits_bytes, cudaMemcpyDeviceToHost, stream_));
    if (summaries && R > 0) {
        auto* params = reinterpret_cast<float*>(host + params_at);
        for (int64_t r = 0; r < R; ++r) {
            const RowSummary& q = summaries[r];
            const float row[kSummaryParams] = {q.temperature, q.min_p, q.u, float(q.top_k), q.top_p};
            std::copy_n(row, kSummaryParams, params + kSummaryParams * r);
        }
        float* dparams = summary_.as<float>() + 2 * R;
        MOEINFER_CUDA_CHECK(cudaMemcpyAsync(dparams, params, size_t(R) * 4 * kSummaryParams, cudaMemcpyHostToDevice, stream_));
        SummarizeArgs sa{logits_.as<float>(), R, V, dparams};
        sa.all_greedy = std::all_of(summaries, summaries + R, [](const RowSummary& q) { return q.temperature <= 0.0f; });
        if (num_adjust > 0) {
            auto* offsets = reinterpret_cast<int32_t*>(host + offsets_at);
            auto* adjust = reinterpret_cast<LogitAdjust*>(host + adjust_at);
            offsets[0] = 0;
            for (int64_t r = 0; r < R; ++r) {
                std::copy_n(summaries[r].adjust, summaries[r].num_adjust, adjust + offsets[r]);
                offsets[r + 1] = offsets[r] + summaries[r].num_adjust;
            }
            const size_t need = size_t(R + 1) * 4 + size_t(num_adjust) * (sizeof(LogitAdjust) + 4);
            if (adjust_.bytes() < need) {
                MOEINFER_CUDA_CHECK(cudaStreamSynchronize(stream_));  // a queued step may still read the old one
                adjust_ = DeviceBuffer(need * 2);
            }
            auto* dadjust = adjust_.as<LogitAdjust>();
            MOEINFER_CUDA_CHECK(cudaMemcpyAsync(dadjust, adjust, size_t(num_adjust) * sizeof(LogitAdjust),
                                                cudaMemcpyHostToDevice, stream_));
            auto* doffsets = reinterpret_cast<int32_t*>(dadjust + num_adjust);
            MOEINFER_CUDA_CHECK(cudaMemcpyAsync(doffsets, offsets, size_t(R + 1) * 4, cudaMemcpyHostToDevice, stream_));
            sa.adjust = dadjust;
            sa.adjust_offsets = doffsets;
            sa.adjust_raw = reinterpret_cast<float*>(doffsets + R + 1);
        }
        sa.workspace = summary_ws_.get();
        sa.token = ints(summary_);
        sa.logprob = summary_.as<float>() + R;
        summarize_rows(sa, stream_);
        MOEINFER_CUDA_CHECK(cudaMemcpyAsync(host, summary_.get(), size_t(R) * 8, cudaMemcpyDeviceToHost, stream_));
    }
    end_launch(logits, summaries, R);
}

void CudaForward::end_launch(float* logits, RowSummary* summaries, int64_t R) {
    MOEINFER_CUDA_CHECK(cudaEventRecord(done_[launched_ % 4], stream_));
    Slot& slot = slots_[launched_ % 2];
    slot.logits = logits;
    slot.summaries = summaries;
    slot.R = R;
    summary_rows_ = summaries ? R : 0;
    ++launched_;
}

void CudaForward::finish() {
    if (finished_ == launched_) return;
    MOEINFER_CUDA_CHECK(cudaSetDevice(opt_.device));
    Slot& slot = slots_[finished_ % 2];
    const int ev = int(finished_ % 4);
    MOEINFER_CUDA_CHECK(cudaEventSynchronize(done_[ev]));
    last_gap_ = -1;
    float ms = 0;
    if (finished_ > 0 && cudaEventElapsedTime(&ms, done_[(finished_ - 1) % 4], started_[ev]) == cudaSuccess)
        last_gap_ = std::max(0.0f, ms) * 1e-3;
    ++finished_;
    const int64_t R = slot.R, V = c_.vocab_size;
    const char* host = static_cast<const char*>(slot.out.get(0));
    if (slot.logits && R > 0) std::memcpy(slot.logits, host + R * 8, size_t(R * V) * 4);
    for (int64_t r = 0; slot.summaries && r < R; ++r) {
        std::memcpy(&slot.summaries[r].token, host + r * 4, 4);
        std::memcpy(&slot.summaries[r].logprob, host + (R + r) * 4, 4);
    }
}

}  // namespace

std::unique_ptr<DeviceForward> make_cuda_forward(const Model& model, const CudaForwardOptions& options) {
    return std::make_unique<CudaForward>(model, options);
}

}  // namespace moeinfer::cuda
