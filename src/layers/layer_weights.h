// Weights of the shared decoder building blocks (attention, dense MLP, MoE). Tensors are views into the model
// file in their stored dtype; small vectors (norms, biases) are fp32 copies. Family files fill these in.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace moeinfer {

enum class QkNorm {
    None,
    PerHead,  // RMSNorm over each head's head_dim (Qwen3, Qwen3-MoE)
    Full,     // RMSNorm over the whole q / k projection before splitting heads (OLMoE)
};

struct AttentionWeights {
    Tensor q, k, v, o;                        // [nh·hd, H], [nkv·hd, H], [nkv·hd, H], [H, nh·hd]
    std::vector<float> q_bias, k_bias, v_bias;  // empty, or [nh·hd], [nkv·hd], [nkv·hd]
    QkNorm qk_norm = QkNorm::None;
    std::vector<float> q_norm, k_norm;        // [hd] (PerHead) or [nh·hd] / [nkv·hd] (Full)
};

struct MlpWeights {
    Tensor gate, up, down;  // [ff, H], [ff, H], [H, ff]
};

struct MoeWeights {
    Tensor router;                             // [E, H]
    std::vector<Tensor> gate, up, down;        // per expert: [ff, H], [ff, H], [H, ff]
    int64_t top_k = 0;
    bool normalize_topk = false;               // renormalize the chosen experts' weights to sum to 1
    bool has_shared = false;
    MlpWeights shared;                         // shared expert, run on every token
    Tensor shared_gate;                        // [1, H]: sigmoid gate on the shared expert (Qwen2-MoE); may be empty
};

struct DecoderLayerWeights {
    std::vector<float> attn_norm, ffn_norm;  // [H]
    AttentionWeights attn;
    bool is_moe = false;
    MlpWeights mlp;  // when !is_moe
    MoeWeights moe;  // when is_moe
};

}  // namespace moeinfer
