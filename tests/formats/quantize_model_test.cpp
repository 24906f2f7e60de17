// Quantization mixes: QuantMixPlanner reproduces llama.cpp's per-tensor type choices (llama-quant.cpp) on
// model shapes of real sizes, and quantize_model writes files that load with those types.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "formats/quantize_model.h"

#ifndef MOEINFER_SOURCE_DIR
#define MOEINFER_SOURCE_DIR "."
#endif

namespace moeinfer {
namespace {

std::string blk(int l, const char* t) { return "blk." + std::to_string(l) + "." + t + ".weight"; }

// Dense 32-layer llama (hidden 4096, ffn 14336), in file order as export writes it.
struct Dense {
    QuantMixPlanner p;
    std::vector<DType> attn_v, ffn_down, attn_q;
    DType embd, output;
    Dense(QuantType t, bool tied = false) : p(t, 32, 1, tied) {
        embd = p.choose("token_embd.weight", {128256, 4096}, DType::F16);
        if (!tied) output = p.choose("output.weight", {128256, 4096}, DType::F16);
        for (int l = 0; l < 32; ++l) {
            attn_q.push_back(p.choose(blk(l, "attn_q"), {4096, 4096}, DType::F16));
            attn_v.push_back(p.choose(blk(l, "attn_v"), {1024, 4096}, DType::F16));
            ffn_down.push_back(p.choose(blk(l, "ffn_down"), {4096, 14336}, DType::F16));
        }
    }
};

// llama.cpp's use_more_bits for 32 layers: the first and last 4, then every third from layer 6.
bool more_bits_32(int l) { return l < 4 || l >= 28 || (l - 4) % 3 == 2; }

TEST(QuantMix, Q4KMUsesQ6KOnHalfTheAttnVAndFfnDown) {
    Dense d(QuantType::Q4_K_M);
    EXPECT_EQ(d.output, DType::Q6_K);
    EXPECT_EQ(d.embd, DType::Q4_K);
    int q6 = 0;
    for (int l = 0; l < 32; ++l) {
        const DType want = more_bits_32(l) ? DType::Q6_K : DType::Q4_K;
        EXPECT_EQ(d.attn_v[l], want) << l;
        EXPECT_EQ(d.ffn_down[l], want) << l;
        EXPECT_EQ(d.attn_q[l], DType::Q4_K) << l;
        q6 += d.attn_v[l] == DType::Q6_K;
    }
    EXPECT_EQ(q6, 16);
    EXPECT_TRUE(d.p.fallbacks().empty());
}

TEST(QuantMix, OtherFileTypes) {
    Dense s(QuantType::Q4_K_S);
    for (int l = 0; l < 32; ++l) {
        EXPECT_EQ(s.attn_v[l], l < 4 ? DType::Q5_K : DType::Q4_K) << l;
        EXPECT_EQ(s.ffn_down[l], l < 4 ? DType::Q5_K : DType::Q4_K) << l;
    }
    Dense m5(QuantType::Q5_K_M);
    for (int l = 0; l < 32; ++l) EXPECT_EQ(m5.ffn_down[l], more_bits_32(l) ? DType::Q6_K : DType::Q5_K) << l;
    Dense q8(QuantType::Q8_0);
    EXPECT_EQ(q8.output, DType::Q8_0);
    EXPECT_EQ(q8.attn_v[5], DType::Q8_0);
    Dense q4(QuantType::Q4_0);
    EXPECT_EQ(q4.output, DType::Q6_K);  // llama.cpp promotes the output matrix of every non-Q8_0 file
    EXPECT_EQ(q4.embd, DType::Q4_0);
    Dense f16(QuantType::F16);
    EXPECT_EQ(f16.output, DType::F16);
    Dense bf(QuantType::BF16);
    EXPECT_EQ(bf.attn_v[0], DType::BF16);
    // Tied embeddings: token_embd is the output matrix and gets its type.
    Dense tied(QuantType::Q4_K_M, true);
    EXPECT_EQ(tied.embd, DType::Q6_K);
}

TEST(QuantMix, NeverQuantizedAndFallbacks) {
    QuantMixPlanner p(QuantType::Q4_K_M, 24, 1, false);
    EXPECT_EQ(p.choose("blk.0.ffn_gate_inp.weight", {64, 2048}, DType::F32), DType::F32);
    EXPECT_EQ(p.choose("blk.0.attn_norm.weight", {2048}, DType::F32), DType::F32);
    EXPECT_EQ(p.choose("blk.0.ffn_gate_inp_shexp.weight", {2048}, DType::F32), DType::F32);
    EXPECT_EQ(p.choose("blk.0.attn_q.weight", {2048, 2080}, DType::F16), DType::Q5_0);  // 2080 % 256 != 0
    EXPECT_EQ(p.choose("blk.0.attn_v.weight", {512, 2080}, DType::F16), DType::Q8_0);   // Q6_K falls back
    EXPECT_EQ(p.choose("blk.0.ffn_up.weight", {64, 100}, DType::F16), DType::F16);      // not even % 32
    EXPECT_EQ(p.choose("output.weight", {1000, 2080}, DType::F16), DType::Q8_0);
    EXPECT_EQ(p.fallbacks().size(), 3u);
    EXPECT_EQ(p.fallbacks()[0], "blk.0.attn_q.weight: Q4_K -> Q5_0 (row 2080)");
    QuantMixPlanner p5(QuantType::Q5_K_M, 24, 1, false);
    EXPECT_EQ(p5.choose("blk.3.attn_q.weight", {2048, 2080}, DType::F16), DType::Q5_1);
}

TEST(QuantMix, MoeLayersComeFromNamesAndEightExpertsBumpAttention) {
    QuantMixPlanner p(QuantType::Q4_K_M, 16, 8, false);
    EXPECT_EQ(p.choose(blk(0, "attn_v"), {1024, 4096}, DType::F16), DType::Q8_0);
    EXPECT_EQ(p.choose(blk(0, "attn_k"), {1024, 4096}, DType::F16), DType::Q8_0);
    EXPECT_EQ(p.choose(blk(0, "attn_output"), {4096, 4096}, DType::F16), DType::Q5_K);
    // Layer 5 of 16: (5 - 2) % 3 == 1, no extra bits; layer 7: (7 - 2) % 3 == 2, Q6_K — whatever the order.
    EXPECT_EQ(p.choose(blk(7, "ffn_down_exps"), {8, 4096, 14336}, DType::F16), DType::Q6_K);
    EXPECT_EQ(p.choose(blk(5, "ffn_down_exps"), {8, 4096, 14336}, DType::F16), DType::Q4_K);
    EXPECT_EQ(p.choose(blk(5, "ffn_gate_exps"), {8, 14336, 4096}, DType::F16), DType::Q4_K);
    EXPECT_THROW(p.choose("ffn_down_exps.weight", {8, 4096, 14336}, DType::F16), std::runtime_error);
    QuantMixPlanner q(QuantType::Q4_K_M, 16, 128, false);  // other expert counts keep the dense rules
    EXPECT_EQ(q.choose(blk(0, "attn_k"), {512, 2048}, DType::F16), DType::Q4_K);
}

TEST(QuantMix, NamesAndFileTypes) {
    EXPECT_EQ(parse_quant_type("Q4_K_M"), QuantType::Q4_K_M);
    EXPECT_EQ(llama_file_type(QuantType::Q4_K_M), 15);
    EXPECT_EQ(llama_file_type(QuantType::Q4_K_S), 14);
    EXPECT_EQ(llama_file_type(QuantType::Q5_K_M), 17);
    EXPECT_EQ(llama_file_type(QuantType::Q6_K), 18);
    EXPECT_EQ(llama_file_type(QuantType::Q8_0), 7);
    EXPECT_EQ(llama_file_type(QuantType::Q4_0), 2);
    EXPECT_EQ(llama_file_type(QuantType::BF16), 32);
    try {
        parse_quant_type("Q3_K_L");
        FAIL() << "no exception";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("Q3_K_L"), std::string::npos);
        EXPECT_NE(std::string(e.what()).find("Q4_K_M"), std::string::npos);
    }
}

TEST(QuantizeModel, WritesLoadableMixedFile) {
    const std::string out = testing::TempDir() + "/moeinfer_quantize_q6k.gguf";
    const QuantizeReport r =
        quantize_model(std::string(MOEINFER_SOURCE_DIR) + "/tests/data/goldens/llama", out, QuantType::Q6_K);
    // Rows of 64/128: every Q6_K falls back to Q8_0; output.weight goes to Q8_0 by its own rule, not a fallback.
    EXPECT_EQ(r.tensors_per_type.at("Q8_0"), 16);
    EXPECT_EQ(r.fallbacks.size(), 15u);
    {
        const auto g = GgufFile::open(out);
        EXPECT_EQ(g->tensor("blk.0.attn_norm.weight")->dtype, DType::F32);
        EXPECT_EQ(g->tensor("blk.1.ffn_down.weight")->dtype, DType::Q8_0);
    }
    std::remove(out.c_str());
    EXPECT_THROW(quantize_model("/nonexistent/model", out, QuantType::Q8_0), std::exception);
}

}  // namespace
}  // namespace moeinfer
