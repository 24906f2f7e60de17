// Host entry points of the CUDA kernels (namespace moeinfer::cuda). All pointers are device pointers; every call is
// asynchronous on `stream` and checks its launch. Activations and weights are bf16, accumulation is fp32, the
// residual stream and router scores are fp32. One .cu per op holds the kernel and its design note.
#pragma once
#include <cstdint>

#include "backends/cuda/common.h"
#include "engine/batch.h"

namespace moeinfer::cuda {

// ---- rms_norm.cu
// y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w[:]. x: [rows, n] fp32; w: [n] fp32; y: [rows, n] bf16.
void rms_norm(const float* x, const float* w, float eps, int64_t rows, int64_t n, bf16* y, cudaStream_t stream);
// Fused residual add: residual[r, :] += delta[r, :], then y[r, :] = rms_norm(residual[r, :]) * w.
// delta: [rows, n] (bf16 from a GEMM, or fp32); residual: [rows, n] fp32, updated in place; y: [rows, n] bf16.
void add_rms_norm(const bf16* delta, float* residual, const float* w, float eps, int64_t rows, int64_t n, bf16* y,
                  cudaStream_t stream);
void add_rms_norm(const float* delta, float* residual, const float* w, float eps, int64_t rows, int64_t n, bf16* y,
                  cudaStream_t stream);
// The same with delta[t, :] = Σ_slot weights[t, slot] · expert_rows[slot_row[t·k + slot], :] (combine_rows fused in;
// the same sums in the same order).
void combine_add_rms_norm(const bf16* expert_rows, const int32_t* slot_row, const float* weights, int64_t k,
                          float* residual, const float* w, float eps, int64_t rows, int64_t n, bf16* y,
                          cudaStream_t stream);

// ---- activation.cu
// out[r, i] = silu(gate[r, i]) * up[r, i]; gate/up rows of stride in_stride (a fused gate_up GEMM output has
// gate = base, up = base + n, in_stride = 2n); out: [rows, n].
void silu_mul(const bf16* gate, const bf16* up, int64_t in_stride, int64_t rows, int64_t n, bf16* out,
              cudaStream_t stream);

// ---- paged KV cache description shared by qkv_rope.cu and the attention kernels.
// Cache layout per layer, for K and for V: [num_blocks, block_size, num_kv_heads, head_dim] bf16 (the CPU layout).
// Block tables are one flat [num_seqs, max_blocks_per_seq] int32 array (row s = block ids of sequence s, in
// position order), so the same buffer can live in a fixed-capacity device arena for CUDA graphs.
struct PagedKv {
    const int32_t* block_tables;  // [num_seqs, max_blocks_per_seq]
    int64_t max_blocks_per_seq;
    int64_t block_size;
    int64_t num_kv_heads, head_dim;
};

// ---- qkv_rope.cu
// Bias add, q/k RMSNorm, RoPE and the paged KV write in one launch: qkv [T, qw + 2·kvw] in, rotated q
// [T, num_heads, head_dim] out, rotated k and v written at each token's position into the paged cache (bf16 after
// each stage). positions, token_seq: [T]; interleaved=false rotates (x[i], x[i + d/2]) (HF), true (x[2i], x[2i+1])
// (GGUF).
enum class QkNormKind : int { None, PerHead, Full };
struct QkvPost {
    const float* bias = nullptr;      // [qw + 2·kvw] or nullptr
    QkNormKind qk_norm = QkNormKind::None;
    const float* q_norm = nullptr;    // [head_dim] (PerHead) or [qw] (Full)
    const float* k_norm = nullptr;    // [head_dim] or [kvw]
    float eps = 1e-6f;
    const float* inv_freq = nullptr;  // [head_dim / 2]
    bool interleaved = false;
};
void qkv_rope_write_kv(const bf16* qkv, int64_t T, int64_t num_heads, const int32_t* positions,
                       const int32_t* token_seq, const QkvPost& post, const PagedKv& kv, bf16* q_out, bf16* k_cache,
                       bf16* v_cache, cudaStream_t stream);

// ---- paged_attention.cu
// Decode attention: one query token per sequence, attending to keys [max(0, len - window), len) of its sequence.
// With query_seq set, query i reads block-table row query_seq[i] and context_lens[i] = its position + 1, which is
// causal attention for any mix of prefill and decode tokens whose K/V are already in the cache (each query re-reads
// its keys: fine for decode and mixed steps of mostly single tokens; prompts go to paged_prefill_attention).
struct DecodeAttentionArgs {
    const bf16* q;                // [num_seqs, num_heads, head_dim]
    const int32_t* context_lens;  // [num_seqs] tokens in the cache, the current one included
    int64_t num_seqs, num_heads;
    int64_t sliding_window;       // 0 = full
    float scale;                  // usually 1/sqrt(head_dim)
    int64_t max_context_len;      // upper bound of context_lens (host-known), sizes the split-K grid
    int num_splits;               // 1 = no split-K; >1 splits each context into that many block ranges
    float* workspace;             // decode_attention_workspace_floats(...) floats when num_splits > 1, else unused
    bf16* out;                    // [num_seqs, num_heads, head_dim]
    const int32_t* query_seq = nullptr;  // [num_seqs] block-table row per query; nullptr: row = query index
    bool split_heads = false;     // a block's warps split the heads rather than the keys (choose_decode_split_heads)
    // The newest fresh_keys positions of every context may be written by the kernel just before (RoPE + KV write):
    // keys older than that may be loaded before waiting for it (launched with PDL). The default waits for every key.
    int64_t fresh_keys = int64_t(1) << 40;
};
int64_t decode_attention_workspace_floats(int64_t num_seqs, int64_t num_heads, int64_t head_dim, int num_splits);
// A split count that spreads a small batch's keys over the device (1 for one-tile contexts or large batches).
int choose_decode_splits(int64_t num_seqs, int64_t num_kv_heads, int64_t max_context_len, int64_t block_size,
                         int num_sms);
// Whether the warps of a block should split the group's heads (few blocks: shorter per-warp chains) rather than
// the keys (many blocks: each K row read once per block).
bool choose_decode_split_heads(int64_t num_seqs, int64_t num_kv_heads, int num_sms);
void paged_decode_attention(const DecodeAttentionArgs& args, const PagedKv& kv, const bf16* k_cache,
                            const bf16* v_cache, cudaStream_t stream);

// ---- prefill_attention.cu
// Causal attention of prefill tokens over the paged cache (their own K/V already written), on tensor cores. The
// batch is cut into tiles of ≤ 64 consecutive tokens of one sequence with consecutive positions.
struct PrefillTile {
    int32_t first_token;  // row of the tile's first token in q / out
    int32_t count;        // tokens in the tile, 1..64
    int32_t seq_row;      // block-table row of its sequence
    int32_t first_pos;    // position of its first token
};
struct PrefillAttentionArgs {
    const bf16* q;             // [T, num_heads, head_dim]
    const PrefillTile* tiles;  // [num_tiles] on the device
    int64_t num_tiles, num_heads;
    int64_t sliding_window;    // 0 = full
    float scale;
    bf16* out;                 // [T, num_heads, head_dim]
};
bool prefill_attention_supported(int64_t head_dim);  // 64 and 128
void paged_prefill_attention(const PrefillAttentionArgs& args, const PagedKv& kv, const bf16* k_cache,
                             const bf16* v_cache, cudaStream_t stream);

// ---- moe_routing.cu
// out[t, e] = rms_norm(x[t, :]) · norm_w · Wr[e, :] in fp32 (x: the fp32 residual stream; Wr: [E, H] bf16).
void router_logits(const float* x, const float* norm_w, float eps, const bf16* Wr, int64_t T, int64_t E, int64_t H,
                   float* out, cudaStream_t stream);
// Mailboxes (mailbox.cuh): fp32 slots through which blocks of one grid hand values over; every slot holds
// kMailboxEmpty between launches. fill_mailbox empties `floats` slots (once, after allocating).
constexpr uint32_t kMailboxEmpty = 0xffffffffu;
void fill_mailbox(float* mailbox, int64_t floats, cudaStream_t stream);
// Decode-sized routing in one launch (T ≤ kRouteDecodeMaxTokens): router_logits into `logits` (may be null), then
// the top-k as route_topk computes it, by each token's first block once every logit has arrived in `mailbox`
// ([T, E] floats, empty before the first launch — fill_mailbox — and left so);
// xn, when not null, receives rms_norm(x) · norm_w in bf16 (the experts' input, as add_rms_norm would write it).
constexpr int64_t kRouteDecodeMaxTokens = 8;
void route_decode(const float* x, const float* norm_w, float eps, const bf16* Wr, int64_t T, int64_t E, int64_t H,
                  int64_t k, bool normalize, float* logits, int32_t* ids, float* weights, bf16* xn, float* mailbox,
                  cudaStream_t stream);
// logits: [T, E] fp32. Softmax over E, the k largest (ties → lower id), weights divided by their sum when
// `normalize`. ids, weights: [T, k], best first. k == E is soft routing. Requires E ≤ 1024 (throws otherwise).
void route_topk(const float* logits, int64_t T, int64_t E, int64_t k, bool normalize, int32_t* ids, float* weights,
                cudaStream_t stream);
// Expert-contiguous order of the N = T·k assignments, stable in token order within an expert (as the CPU's).
// offsets: [E + 1]; active: [E], the experts that have rows in ascending order, then -1s; row_token, slot_row: [N];
// workspace: moe_permute_workspace_ints(N, E) ints.
int64_t moe_permute_workspace_ints(int64_t N, int64_t E);
void moe_permute(const int32_t* ids, int64_t T, int64_t k, int64_t E, int32_t* workspace, int32_t* offsets,
                 int32_t* active, int32_t* row_token, int32_t* slot_row, cudaStream_t stream);
// xp[r, :] = x[row_token[r], :]. x: [T, n]; xp: [N, n].
void gather_rows(const bf16* x, const int32_t* row_token, int64_t N, int64_t n, bf16* xp, cudaStream_t stream);
// out[t, :] (+)= Σ_slot weights[t, slot] · y[slot_row[t·k + slot], :]; y: [N, n] bf16, out: [T, n] fp32. Here and in
// add_combined_rows and combine_add_rms_norm, slot_row == nullptr means row t·k + slot (direct_expert_gemv's order).
void combine_rows(const bf16* y, const int32_t* slot_row, const float* weights, int64_t T, int64_t k, int64_t n,
                  bool accumulate, float* out, cudaStream_t stream);
// residual[t, :] += Σ_slot weights[t, slot] · y[slot_row[t·k + slot], :]: the sum first, then the add, as
// combine_add_rms_norm does it (bit for bit the residual that kernel leaves), without the norm: a decode step's next
// product normalizes the residual itself (gemv_rms), and this launch spreads over the columns.
void add_combined_rows(const bf16* y, const int32_t* slot_row, const float* weights, int64_t T, int64_t k, int64_t n,
                       float* residual, cudaStream_t stream);

// ---- gemv.cu: skinny products for decode (T ≤ ~16 rows), bandwidth-bound on W.
// y[T, out] = x[T, in] · w[out, in]ᵀ; in % 8 == 0, rows 16-byte aligned.
void gemv(const bf16* x, int64_t T, const bf16* w, int64_t out, int64_t in, bf16* y, cudaStream_t stream);
void gemv(const bf16* x, int64_t T, const bf16* w, int64_t out, int64_t in, float* y, cudaStream_t stream);
// y[T, out] += x[T, in] · w[out, in]ᵀ in fp32: an output projection added straight into the residual stream.
void gemv_add(const bf16* x, int64_t T, const bf16* w, int64_t out, int64_t in, float* y, cudaStream_t stream);
// y[T, out] = (silu(gate) · up)[T, in] · w[out, in]ᵀ where gate_up rows are [gate in | up in]: a down projection
// with the SwiGLU activation fused into its input loads (no activation tensor, one launch fewer).
void gemv_swiglu(const bf16* gate_up, int64_t T, const bf16* w, int64_t out, int64_t in, bf16* y, cudaStream_t stream);
// The same added into fp32 y (y += ...): a decode MLP's down projection straight into the residual stream.
void gemv_swiglu_add(const bf16* gate_up, int64_t T, const bf16* w, int64_t out, int64_t in, float* y,
                     cudaStream_t stream);
// y[T, out] = rms_norm(x, norm_w, eps)[T, in] · w[out, in]ᵀ with the norm folded into the product (x: fp32
// residual rows; the normalized rows are rounded to bf16 as rms_norm writes them). gemv_rms_supported says which
// shapes it takes (decode steps: T ≤ 4, in % 256 == 0).
void gemv_rms(const float* x, const float* norm_w, float eps, int64_t T, const bf16* w, int64_t out, int64_t in,
              bf16* y, cudaStream_t stream);
// The same into fp32 y (the lm_head's logits, the final norm folded in).
void gemv_rms(const float* x, const float* norm_w, float eps, int64_t T, const bf16* w, int64_t out, int64_t in,
              float* y, cudaStream_t stream);
bool gemv_rms_supported(int64_t T, int64_t in);
// Grouped over experts: w = E stacked [out, in] matrices; rows [offsets[e], offsets[e+1]) of y [N_rows, out] use
// expert e and read x row row_token[r] (row_token == nullptr: x row r). offsets and active (the experts with
// rows, -1 after the last) live on the device (moe_permute). swiglu: x rows are [gate in | up in] as for gemv_swiglu.
void grouped_gemv(const bf16* x, const int32_t* row_token, const int32_t* offsets, const int32_t* active, int64_t E,
                  int64_t N_rows, const bf16* w, int64_t out, int64_t in, bool swiglu, bf16* y, cudaStream_t stream);
// The same on tensor cores in tiles of up to 128 rows of one expert (grouped_gemm.cu; the model's choice from one
// row per expert on: prefill, batched decode): y rows [offsets[e], offsets[e+1]) = x rows row_token[r] (nullptr: r)
// · w[e]ᵀ; offsets on the device, no host sync. in % 8 == 0.
void grouped_gemm(const bf16* x, const int32_t* row_token, const int32_t* offsets, int64_t E, int64_t N_rows,
                  const bf16* w, int64_t out, int64_t in, bf16* y, cudaStream_t stream);
// The gate|up product with SwiGLU applied: w_gate_up = E stacked [2·ff, in] (gate rows, then up rows), y [N_rows, ff]
// = silu(x · gateᵀ) · (x · upᵀ), bit for bit what grouped_gemm followed by silu_mul gives (no [N_rows, 2·ff] buffer).
void grouped_gemm_swiglu(const bf16* x, const int32_t* row_token, const int32_t* offsets, int64_t E, int64_t N_rows,
                         const bf16* w_gate_up, int64_t ff, int64_t in, bf16* y, cudaStream_t stream);
// Direct (no permutation; decode): y row r = x row (r / x_row_div) · w[expert_of_row[r]]ᵀ. With expert_of_row =
// the [T, k] top-k ids and x_row_div = k, row t·k + j is token t through its j-th expert.
void direct_expert_gemv(const bf16* x, int64_t x_row_div, const int32_t* expert_of_row, int64_t N_rows, const bf16* w,
                        int64_t out, int64_t in, bool swiglu, bf16* y, cudaStream_t stream);

// ---- model_ops.cu: glue of the model forward.
// out[t, :] = table[ids[t], :] as fp32 (the residual stream). An id < 0 is the token previous[-1 - id]: the previous
// step's chosen token for that row, fed without a trip through the host (overlapped steps).
void embed_rows(const bf16* table, const int32_t* ids, const int32_t* previous, int64_t T, int64_t H, float* out,
                cudaStream_t stream);
// out[t, :] += sigmoid(gate_logit[t]) · shared[t, :] (gate_logit == nullptr: gate 1). Shared-expert combine.
void add_gated(float* out, const bf16* shared, const float* gate_logit, int64_t T, int64_t H, cudaStream_t stream);

// ---- summarize.cu: the next token of each logits row and its log-probability under the raw distribution
// (RowSummary's rule, engine/batch.h): params [rows, kSummaryParams] = (temperature, min_p, u, top_k, top_p);
// temperature 0 = argmax (ties → lower id), else the inverse CDF at u of softmax(logits / temperature) over the kept
// tokens, in id order. Decoding on the device: 8 bytes per row cross PCIe instead of the vocab-sized row.
constexpr int kSummaryParams = 5;
struct SummarizeArgs {
    float* logits = nullptr;  // [rows, V]; rows with adjustments are adjusted in place
    int64_t rows = 0, V = 0;
    const float* params = nullptr;
    // Optional (null: none): LogitAdjust entries of row r at [adjust_offsets[r], adjust_offsets[r + 1]), ids unique
    // per row; adjust_raw gets the raw logit of each entry.
    const LogitAdjust* adjust = nullptr;
    const int32_t* adjust_offsets = nullptr;
    float* adjust_raw = nullptr;
    void* workspace = nullptr;  // summarize_workspace_bytes(rows, V)
    int32_t* token = nullptr;
    float* logprob = nullptr;
    // Every row greedy (temperature ≤ 0), as the caller knows from the parameters it uploaded: the passes only
    // sampling needs (the top-k / top-p cut, the kept weights) are not launched.
    bool all_greedy = false;
};
size_t summarize_workspace_bytes(int64_t rows, int64_t V);
void summarize_rows(const SummarizeArgs& args, cudaStream_t stream);
// Reproducible uniform values in [-scale, scale) (random-weight benchmark models).
void fill_random(bf16* x, int64_t n, uint64_t seed, float scale, cudaStream_t stream);

}  // namespace moeinfer::cuda
