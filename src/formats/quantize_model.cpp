// Quantization mixes (see quantize_model.h). The rules restate llama.cpp's llama_tensor_get_type for the file
// types we write, so a model quantized here has the same per-tensor types as one made by llama-quantize.
#include "formats/quantize_model.h"

#include <cstdio>
#include <stdexcept>

#include "models/gguf_export.h"
#include "models/model.h"

namespace moeinfer {

namespace {

struct Names {
    QuantType type;
    const char* name;
    int file_type;  // llama.h LLAMA_FTYPE_MOSTLY_*
    DType base;     // llama_ftype_get_default_type
};

constexpr Names kTypes[] = {
    {QuantType::Q8_0, "Q8_0", 7, DType::Q8_0},     {QuantType::Q4_0, "Q4_0", 2, DType::Q4_0},
    {QuantType::Q4_K_M, "Q4_K_M", 15, DType::Q4_K}, {QuantType::Q4_K_S, "Q4_K_S", 14, DType::Q4_K},
    {QuantType::Q5_K_M, "Q5_K_M", 17, DType::Q5_K}, {QuantType::Q6_K, "Q6_K", 18, DType::Q6_K},
    {QuantType::F16, "F16", 1, DType::F16},         {QuantType::BF16, "BF16", 32, DType::BF16},
};

const Names& entry(QuantType t) {
    for (const Names& n : kTypes)
        if (n.type == t) return n;
    throw std::logic_error("quant type without a table entry");
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

enum class Category { Output, TokenEmbd, AttnV, AttnK, AttnQ, AttnOutput, FfnUp, FfnGate, FfnDown, Other };

// Same precedence as llama.cpp's tensor_get_category (attn_qkv and attn_kv_b count as attn_v).
Category category(const std::string& name) {
    if (name == "output.weight") return Category::Output;
    if (name == "token_embd.weight") return Category::TokenEmbd;
    if (contains(name, "attn_qkv.weight") || contains(name, "attn_kv_b.weight") || contains(name, "attn_v.weight"))
        return Category::AttnV;
    if (contains(name, "attn_k.weight")) return Category::AttnK;
    if (contains(name, "attn_q.weight")) return Category::AttnQ;
    if (contains(name, "attn_output.weight")) return Category::AttnOutput;
    if (contains(name, "ffn_up")) return Category::FfnUp;
    if (contains(name, "ffn_gate")) return Category::FfnGate;
    if (contains(name, "ffn_down")) return Category::FfnDown;
    return Category::Other;
}

// The layers that get more bits: the first and last eighth, and every third layer in between.
bool use_more_bits(int i_layer, int n_layers) {
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

bool is_block_quant(DType t) { return dtype_info(t).block_elems > 1; }

}  // namespace

QuantType parse_quant_type(const std::string& name) {
    for (const Names& n : kTypes)
        if (name == n.name) return n.type;
    std::string all;
    for (const Names& n : kTypes) all += std::string(all.empty() ? "" : ", ") + n.name;
    throw std::invalid_argument("quantize type '" + name + "' is not supported (" + all + ")");
}

const char* quant_type_name(QuantType t) { return entry(t).name; }
int llama_file_type(QuantType t) { return entry(t).file_type; }
DType quant_default_type(QuantType t) { return entry(t).base; }

QuantMixPlanner::QuantMixPlanner(QuantType type, int n_layers, int n_experts, bool tied)
    : type_(type), n_layers_(n_layers), n_experts_(n_experts < 1 ? 1 : n_experts), tied_(tied),
      n_attn_v_(n_layers) {}

DType QuantMixPlanner::choose(const std::string& name, const std::vector<int64_t>& shape, DType requested) {
    // llama.cpp quantizes only 2-D/3-D tensors named *weight, never norms or MoE routers.
    if (shape.size() < 2 || !ends_with(name, "weight") || contains(name, "_norm.weight") ||
        contains(name, "ffn_gate_inp.weight"))
        return requested;
    const DType base = quant_default_type(type_);
    if (!is_block_quant(base)) return base;
    const int64_t cols = shape.back();
    const DType wanted = mix(name, cols, base);
    // Rows that are not a multiple of the block size take the nearest block-32 format of similar size.
    if (cols % dtype_info(wanted).block_elems == 0) return wanted;
    DType fb = DType::F16;
    if (wanted == DType::Q4_K) fb = DType::Q5_0;
    if (wanted == DType::Q5_K) fb = DType::Q5_1;
    if (wanted == DType::Q6_K) fb = DType::Q8_0;
    // llama.cpp stops with an error for a block-32 type here; F16 keeps the tensor usable instead.
    if (cols % dtype_info(fb).block_elems != 0) fb = DType::F16;
    fallbacks_.push_back(name + ": " + dtype_name(wanted) + " -> " + dtype_name(fb) + " (row " + std::to_string(cols) +
                         ")");
    return fb;
}

DType QuantMixPlanner::mix(const std::string& name, int64_t cols, DType t) {
    const QuantType q = type_;
    const Category cat = category(name);
    const bool k_m = q == QuantType::Q4_K_M || q == QuantType::Q5_K_M;
    // The layer index: MoE files are parsed from the name (experts need not be consecutive); dense files count.
    auto layer_of = [&](int counter) {
        if (n_experts_ <= 1) return counter;
        int layer = -1;
        if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1 || layer < 0 || layer >= n_layers_)
            throw std::runtime_error("quantize: cannot tell the layer of tensor '" + name + "'");
        return layer;
    };
    if (cat == Category::Output || (tied_ && cat == Category::TokenEmbd)) {
        // The output projection is the most sensitive matrix: Q6_K unless the file is Q8_0 already.
        if (cols % dtype_info(t).block_elems != 0) return DType::Q8_0;
        return t == DType::Q8_0 ? t : DType::Q6_K;
    }
    if (cat == Category::AttnV) {
        if (k_m && use_more_bits(i_attn_v_, n_attn_v_)) t = DType::Q6_K;
        else if (q == QuantType::Q4_K_S && i_attn_v_ < 4) t = DType::Q5_K;
        if (n_experts_ == 8) t = DType::Q8_0;  // Mixtral-style: attention is a small share of the bytes
        ++i_attn_v_;
    } else if (cat == Category::AttnK) {
        if (n_experts_ == 8) t = DType::Q8_0;
    } else if (cat == Category::FfnDown) {
        const int layer = layer_of(i_ffn_down_);
        if (k_m && use_more_bits(layer, n_layers_)) t = DType::Q6_K;
        else if (q == QuantType::Q4_K_S && layer < n_layers_ / 8) t = DType::Q5_K;
        ++i_ffn_down_;
    } else if (cat == Category::AttnOutput) {
        if (n_experts_ == 8 && (q == QuantType::Q4_K_S || q == QuantType::Q4_K_M)) t = DType::Q5_K;
    }
    return t;
}

QuantizeReport quantize_model(const std::string& in, const std::string& out, QuantType type) {
    auto model = Model::load(in);
    const ModelConfig& c = model->config();
    const bool tied = model->lm_head().data == model->embedding().data;
    QuantMixPlanner planner(type, int(c.num_layers), c.is_moe() ? int(c.num_experts) : 1, tied);
    QuantizeReport report;
    auto choose = [&](const std::string& name, const std::vector<int64_t>& shape, DType requested) {
        const DType t = planner.choose(name, shape, requested);
        ++report.tensors_per_type[dtype_name(t)];
        return t;
    };
    export_gguf(*model, out, quant_default_type(type), choose, llama_file_type(type));
    report.fallbacks = planner.fallbacks();
    return report;
}

}  // namespace moeinfer
