// A small valid GGUF file shared by the round-trip and corruption tests (three tensors, a few keys).
#pragma once
#include <string>
#include <vector>

#include "core/half.h"
#include "formats/dequant.h"
#include "formats/gguf.h"

namespace moeinfer::test {

struct GgufSample {
    std::vector<float> f32;     // token_embd.weight [3, 64]
    std::vector<float> q8_src;  // blk.0.attn_q.weight [4, 64] before quantization
    std::vector<uint8_t> q8;
    std::vector<uint16_t> f16;  // blk.0.ffn_up_exps.weight [2, 3, 32]
};

inline GgufSample write_gguf_sample(const std::string& path) {
    GgufSample s;
    for (int i = 0; i < 3 * 64; ++i) s.f32.push_back(static_cast<float>(i) * 0.25f - 7.0f);
    for (int i = 0; i < 4 * 64; ++i) s.q8_src.push_back(static_cast<float>((i * 37) % 101) / 25.0f - 2.0f);
    s.q8.resize(dtype_row_bytes(DType::Q8_0, 4 * 64));
    quantize_row(DType::Q8_0, s.q8_src.data(), s.q8.data(), 4 * 64);
    for (int i = 0; i < 2 * 3 * 32; ++i) s.f16.push_back(fp32_to_fp16(static_cast<float>(i) / 8.0f));
    GgufWriter w;
    w.add_string("general.architecture", "llama");
    w.add_u32("llama.block_count", 1);
    w.add_array("tokenizer.ggml.tokens", std::vector<std::string>{"<s>", "hello", "world"});
    w.add_array("tokenizer.ggml.scores", std::vector<float>{0.0f, -1.0f, -2.0f});
    w.add_tensor("token_embd.weight", DType::F32, {3, 64}, s.f32.data(), s.f32.size() * 4);
    w.add_tensor("blk.0.attn_q.weight", DType::Q8_0, {4, 64}, s.q8.data(), s.q8.size());
    w.add_tensor("blk.0.ffn_up_exps.weight", DType::F16, {2, 3, 32}, s.f16.data(), s.f16.size() * 2);
    w.write(path);
    return s;
}

}  // namespace moeinfer::test
