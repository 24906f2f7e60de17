// `moeinfer quantize`: a loaded model (HF directory or GGUF) → GGUF in one of llama.cpp's file types, with
// llama.cpp's per-tensor type mixes (e.g. Q4_K_M keeps output.weight and half the attn_v / ffn_down at Q6_K).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace moeinfer {

enum class QuantType { Q8_0, Q4_0, Q4_K_M, Q4_K_S, Q5_K_M, Q6_K, F16, BF16 };

QuantType parse_quant_type(const std::string& name);  // throws std::invalid_argument listing the valid names
const char* quant_type_name(QuantType t);
int llama_file_type(QuantType t);  // LLAMA_FTYPE_* number written as general.file_type
DType quant_default_type(QuantType t);

// llama.cpp's tensor-type rules (llama-quant.cpp, 2026-11) for our file types, applied tensor by tensor in
// file order (some rules count attn_v tensors as they go). Architecture-specific rules for Falcon and
// llama's 70B-size bump are not modelled.
class QuantMixPlanner {
public:
    // n_experts: 0 or 1 for dense models. tied: the file has no output.weight (token_embd serves as output).
    QuantMixPlanner(QuantType type, int n_layers, int n_experts, bool tied);

    // Type for one 2-D/3-D tensor; `shape` is outermost first with the row length last; `requested` is kept for
    // tensors llama.cpp never quantizes (routers, norms, vectors).
    DType choose(const std::string& name, const std::vector<int64_t>& shape, DType requested);

    // Tensors whose row length forced another type, as "name: Q4_K -> Q5_0 (row 64)".
    const std::vector<std::string>& fallbacks() const { return fallbacks_; }

private:
    DType mix(const std::string& name, int64_t cols, DType t);

    QuantType type_;
    int n_layers_, n_experts_;
    bool tied_;
    int n_attn_v_, i_attn_v_ = 0, i_ffn_down_ = 0;
    std::vector<std::string> fallbacks_;
};

struct QuantizeReport {
    std::map<std::string, int> tensors_per_type;  // dtype name → count of matrices stored in it
    std::vector<std::string> fallbacks;  // as QuantMixPlanner::fallbacks()
};

// Throws std::runtime_error naming the file / tensor at fault.
QuantizeReport quantize_model(const std::string& in, const std::string& out, QuantType type);

}  // namespace moeinfer
