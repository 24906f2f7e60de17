// Weights: format detection, HF↔GGUF name translation, shape checks, expert views (see weights.h).
#include "models/weights.h"

#include <filesystem>
#include <map>
#include <stdexcept>

#include "formats/dequant.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"

namespace moeinfer {
namespace fs = std::filesystem;

namespace {

std::string shape_string(const std::vector<int64_t>& s) {
    Tensor t;
    t.shape = s;
    return t.shape_str();
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::string gguf_tensor_name(const std::string& hf) {
    static const std::map<std::string, std::string> kGlobal = {
        {"model.embed_tokens.weight", "token_embd.weight"},
        {"model.norm.weight", "output_norm.weight"},
        {"lm_head.weight", "output.weight"},
    };
    static const std::map<std::string, std::string> kLayer = {
        {"input_layernorm.weight", "attn_norm.weight"},
        {"post_attention_layernorm.weight", "ffn_norm.weight"},
        {"self_attn.q_proj.weight", "attn_q.weight"},
        {"self_attn.k_proj.weight", "attn_k.weight"},
        {"self_attn.v_proj.weight", "attn_v.weight"},
        {"self_attn.o_proj.weight", "attn_output.weight"},
        {"self_attn.q_proj.bias", "attn_q.bias"},
        {"self_attn.k_proj.bias", "attn_k.bias"},
        {"self_attn.v_proj.bias", "attn_v.bias"},
        {"self_attn.q_norm.weight", "attn_q_norm.weight"},
        {"self_attn.k_norm.weight", "attn_k_norm.weight"},
        {"mlp.gate_proj.weight", "ffn_gate.weight"},
        {"mlp.up_proj.weight", "ffn_up.weight"},
        {"mlp.down_proj.weight", "ffn_down.weight"},
        {"mlp.gate.weight", "ffn_gate_inp.weight"},
        {"block_sparse_moe.gate.weight", "ffn_gate_inp.weight"},
        {"mlp.shared_expert.gate_proj.weight", "ffn_gate_shexp.weight"},
        {"mlp.shared_expert.up_proj.weight", "ffn_up_shexp.weight"},
        {"mlp.shared_expert.down_proj.weight", "ffn_down_shexp.weight"},
        {"mlp.shared_expert_gate.weight", "ffn_gate_inp_shexp.weight"},
    };
    if (auto it = kGlobal.find(hf); it != kGlobal.end()) return it->second;
    const std::string prefix = "model.layers.";
    if (hf.rfind(prefix, 0) != 0) return "";
    const size_t dot = hf.find('.', prefix.size());
    if (dot == std::string::npos) return "";
    const std::string layer = hf.substr(prefix.size(), dot - prefix.size());
    if (auto it = kLayer.find(hf.substr(dot + 1)); it != kLayer.end()) return "blk." + layer + "." + it->second;
    return "";
}

Weights::~Weights() = default;

std::unique_ptr<Weights> Weights::open(const std::string& path) {
    std::unique_ptr<Weights> w(new Weights());
    w->path_ = path;
    std::error_code ec;
    if (!fs::exists(path, ec)) throw std::runtime_error("model path '" + path + "' does not exist");
    if (fs::is_directory(path, ec)) {
        const fs::path cfg = fs::path(path) / "config.json";
        if (!fs::exists(cfg)) {
            // A directory holding exactly one GGUF file is accepted as that file.
            for (const auto& e : fs::directory_iterator(path))
                if (e.path().extension() == ".gguf") return open(e.path().string());
            throw std::runtime_error("model directory '" + path + "' has no config.json and no .gguf file");
        }
        w->config_ = config_from_hf(json::parse_file(cfg.string()), cfg.string());
        w->safetensors_ = SafetensorsSet::open(path);
    } else if (ends_with(path, ".gguf")) {
        w->gguf_ = GgufFile::open(path);
        w->config_ = config_from_gguf(*w->gguf_);
    } else if (ends_with(path, ".safetensors")) {
        const fs::path cfg = fs::path(path).parent_path() / "config.json";
        if (!fs::exists(cfg)) throw std::runtime_error("no config.json beside '" + path + "'");
        w->config_ = config_from_hf(json::parse_file(cfg.string()), cfg.string());
        w->safetensors_ = SafetensorsSet::open(path);
    } else {
        // Not named like a model file: sniff the GGUF magic before giving up.
        w->gguf_ = GgufFile::open(path);
        w->config_ = config_from_gguf(*w->gguf_);
    }
    return w;
}

std::unique_ptr<Weights> Weights::synthetic(const std::string& config_path) {
    std::unique_ptr<Weights> w(new Weights());
    std::error_code ec;
    const fs::path cfg = fs::is_directory(config_path, ec) ? fs::path(config_path) / "config.json" : fs::path(config_path);
    if (!fs::exists(cfg, ec)) throw std::runtime_error("config '" + cfg.string() + "' does not exist");
    w->path_ = cfg.string();
    w->config_ = config_from_hf(json::parse_file(cfg.string()), cfg.string());
    w->synthetic_ = true;
    return w;
}

std::string Weights::file_name(const std::string& hf_name) const {
    return gguf_ ? gguf_tensor_name(hf_name) : hf_name;
}

const Tensor* Weights::find(const std::string& hf_name) const {
    if (synthetic_) return nullptr;  // optional tensors are absent; required ones are made up by require()
    const std::string name = file_name(hf_name);
    if (name.empty()) return nullptr;
    return gguf_ ? gguf_->tensor(name) : safetensors_->tensor(name);
}

const std::vector<Tensor>& Weights::all_tensors() const {
    if (synthetic_) return made_up_list_;
    return gguf_ ? gguf_->tensors() : safetensors_->tensors();
}

const Tensor& Weights::require(const std::string& hf_name, const std::vector<int64_t>& shape) const {
    if (synthetic_) {
        made_up_list_.push_back(Tensor{hf_name, DType::BF16, shape, nullptr});
        return made_up_.emplace_back(made_up_list_.back());
    }
    const Tensor* t = find(hf_name);
    const std::string name = file_name(hf_name);
    if (!t) throw std::runtime_error(where() + ": missing tensor '" + (name.empty() ? hf_name : name) + "'");
    if (t->shape != shape)
        throw std::runtime_error(where() + ": tensor '" + name + "' has shape " + t->shape_str() + ", expected " +
                                 shape_string(shape));
    if (!dtype_info(t->dtype).supported)
        throw std::runtime_error(where() + ": tensor '" + name + "' has unsupported dtype " + dtype_name(t->dtype));
    return *t;
}

std::vector<float> Weights::require_f32(const std::string& hf_name, const std::vector<int64_t>& shape) const {
    const Tensor& t = require(hf_name, shape);
    // Made-up norms are ones (identity) and made-up biases zeros.
    if (synthetic_) return std::vector<float>(t.numel(), hf_name.find("norm") != std::string::npos ? 1.f : 0.f);
    std::vector<float> out(t.numel());
    for (int64_t r = 0; r < t.rows(); ++r) dequantize_row(t.dtype, t.row(r), out.data() + r * t.cols(), t.cols());
    return out;
}

std::vector<Tensor> Weights::experts(const std::string& prefix, const std::string& proj, const std::string& proj_name,
                                     int64_t num_experts, int64_t rows, int64_t cols) const {
    auto slices = [&](const Tensor& stacked, int64_t row_offset) {
        std::vector<Tensor> out(num_experts);
        const int64_t stride_rows = stacked.dim(1);
        for (int64_t e = 0; e < num_experts; ++e) {
            Tensor& t = out[e];
            t.name = stacked.name + "[" + std::to_string(e) + "]";
            t.dtype = stacked.dtype;
            t.shape = {rows, cols};
            t.data = stacked.row(e * stride_rows + row_offset);
        }
        return out;
    };
    if (synthetic_) {
        std::vector<Tensor> out;
        for (int64_t e = 0; e < num_experts; ++e)
            out.push_back(require(prefix + "." + std::to_string(e) + "." + proj_name + ".weight", {rows, cols}));
        return out;
    }
    if (gguf_) {
        // prefix is "model.layers.N.<...>.experts"; GGUF stacks all experts of a projection in one tensor.
        const std::string layer = prefix.substr(13, prefix.find('.', 13) - 13);
        const std::string name = "blk." + layer + ".ffn_" + proj + "_exps.weight";
        const Tensor* t = gguf_->tensor(name);
        if (!t) throw std::runtime_error(where() + ": missing tensor '" + name + "'");
        if (t->shape != std::vector<int64_t>{num_experts, rows, cols})
            throw std::runtime_error(where() + ": tensor '" + name + "' has shape " + t->shape_str() + ", expected " +
                                     shape_string({num_experts, rows, cols}));
        if (!dtype_info(t->dtype).supported)
            throw std::runtime_error(where() + ": tensor '" + name + "' has unsupported dtype " + dtype_name(t->dtype));
        return slices(*t, 0);
    }
    if (find(prefix + ".0." + proj_name + ".weight")) {
        std::vector<Tensor> out;
        for (int64_t e = 0; e < num_experts; ++e)
            out.push_back(require(prefix + "." + std::to_string(e) + "." + proj_name + ".weight", {rows, cols}));
        return out;
    }
    if (proj == "down") return slices(require(prefix + ".down_proj", {num_experts, rows, cols}), 0);
    const Tensor& fused = require(prefix + ".gate_up_proj", {num_experts, 2 * rows, cols});
    return slices(fused, proj == "gate" ? 0 : rows);
}

}  // namespace moeinfer
