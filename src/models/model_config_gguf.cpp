// GGUF metadata (llama.cpp key names, `<arch>.*`) → ModelConfig. The GGUF arch string maps to our HF model_type;
// llama.cpp files of the "llama" arch carry Mistral and Mixtral too (Mixtral = llama with experts).
#include <stdexcept>

#include "formats/gguf.h"
#include "models/model_config.h"

namespace moeinfer {

ModelConfig config_from_gguf(const GgufFile& g) {
    const std::string arch = g.require_string("general.architecture");
    const std::string a = arch + ".";
    ModelConfig c;
    const uint64_t experts = g.get_u64(a + "expert_count", 0);
    if (arch == "llama") {
        c.model_type = experts > 0 ? "mixtral" : "llama";
        c.rope.interleaved = true;  // llama.cpp's converter permuted q/k rows for adjacent-pair rotation
        c.norm_topk_prob = true;
    } else if (arch == "qwen2") {
        c.model_type = "qwen2";
        c.attention_bias = true;
    } else if (arch == "qwen3") {
        c.model_type = "qwen3";
    } else if (arch == "qwen3moe") {
        c.model_type = "qwen3_moe";
        c.norm_topk_prob = true;
    } else if (arch == "qwen2moe") {
        c.model_type = "qwen2_moe";
        c.attention_bias = true;
    } else {
        throw std::runtime_error("GGUF '" + g.path() + "': unsupported architecture '" + arch +
                                 "' (supported: llama, qwen2, qwen3, qwen2moe, qwen3moe)");
    }
    c.hidden_size = g.require_u64(a + "embedding_length");
    c.num_layers = g.require_u64(a + "block_count");
    c.num_heads = g.require_u64(a + "attention.head_count");
    c.num_kv_heads = g.get_u64(a + "attention.head_count_kv", c.num_heads);
    c.head_dim = g.get_u64(a + "attention.key_length", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
    c.intermediate_size = g.get_u64(a + "feed_forward_length", 0);
    c.max_position = g.get_u64(a + "context_length", 4096);
    c.rms_eps = g.get_f32(a + "attention.layer_norm_rms_epsilon", 1e-6f);
    c.rope.theta = g.get_f32(a + "rope.freq_base", 10000.0f);
    const std::string scaling = g.get_string(a + "rope.scaling.type", "none");
    if (scaling == "linear") {
        c.rope.scaling = RopeScaling::Linear;
        c.rope.factor = g.get_f32(a + "rope.scaling.factor", 1.0f);
    } else if (scaling != "none") {
        throw std::runtime_error("GGUF '" + g.path() + "': unsupported rope scaling '" + scaling + "'");
    }
    // llama3-style scaling arrives as the `rope_freqs.weight` tensor, which the model applies when present.
    c.sliding_window = g.get_u64(a + "attention.sliding_window", 0);
    c.num_experts = experts;
    c.experts_per_token = g.get_u64(a + "expert_used_count", 0);
    c.moe_intermediate_size = g.get_u64(a + "expert_feed_forward_length", c.intermediate_size);
    c.shared_expert_intermediate_size = g.get_u64(a + "expert_shared_feed_forward_length", 0);
    c.norm_topk_prob = g.get_bool(a + "expert_weights_norm", c.norm_topk_prob);
    // GGUF has no decoder_sparse_step / mlp_only_layers: a layer is sparse exactly when it has a router.
    if (experts > 0)
        for (int64_t l = 0; l < c.num_layers; ++l)
            if (!g.tensor("blk." + std::to_string(l) + ".ffn_gate_inp.weight")) c.mlp_only_layers.push_back(l);
    if (const Tensor* emb = g.tensor("token_embd.weight")) c.vocab_size = emb->dim(0);
    c.vocab_size = g.get_u64(a + "vocab_size", c.vocab_size);
    if (const GgufValue* eos = g.find("tokenizer.ggml.eos_token_id")) c.eos_token_ids.push_back(eos->as_i64());
    if (const GgufValue* bos = g.find("tokenizer.ggml.bos_token_id")) c.bos_token_id = bos->as_i64();
    c.tie_word_embeddings = g.tensor("output.weight") == nullptr;
    c.validate("GGUF '" + g.path() + "'");
    return c;
}

}  // namespace moeinfer
