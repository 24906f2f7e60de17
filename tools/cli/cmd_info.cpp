// `moeinfer info`: architecture, dimensions, parameter count, weight dtypes, KV-cache bytes per token, the CPU
// kernel level in use and those this CPU could run (backends/cpu/kernel_isa.h), and any extensions the rest of the
// build was compiled for (core/cpu_isa.h: none beyond x86-64 unless built with MOEINFER_NATIVE).
#include <cstdio>
#include <map>

#include "args.h"
#include "commands.h"
#include "backends/cpu/f32_gemm.h"
#include "backends/cpu/kernel_isa.h"
#include "core/cpu_isa.h"
#include "models/model.h"

namespace moeinfer::cli {

int cmd_info(int argc, char** argv) {
    Args args(argc, argv, {"model"}, {});
    auto model = Model::load(args.require("model"));
    const ModelConfig& c = model->config();
    std::map<std::string, int64_t> dtypes;  // dtype → parameters stored in it
    for (const Tensor& t : model->weights().all_tensors()) dtypes[dtype_name(t.dtype)] += t.numel();
    std::printf("model:        %s (%s)\n", args.require("model").c_str(), model->weights().is_gguf() ? "GGUF" : "safetensors");
    std::printf("architecture: %s\n", c.model_type.c_str());
    std::printf("parameters:   %lld\n", static_cast<long long>(model->parameter_count()));
    std::printf("vocab %lld, hidden %lld, layers %lld, heads %lld (kv %lld, head_dim %lld), ffn %lld, context %lld\n",
                (long long)c.vocab_size, (long long)c.hidden_size, (long long)c.num_layers, (long long)c.num_heads,
                (long long)c.num_kv_heads, (long long)c.head_dim, (long long)c.intermediate_size,
                (long long)c.max_position);
    if (c.is_moe()) {
        int64_t sparse = 0;
        for (int64_t l = 0; l < c.num_layers; ++l) sparse += c.layer_is_moe(l);
        std::printf("experts:      %lld, top-%lld, expert ffn %lld, shared ffn %lld, norm_topk_prob %s, sparse layers %lld\n",
                    (long long)c.num_experts, (long long)c.experts_per_token, (long long)c.moe_intermediate_size,
                    (long long)c.shared_expert_intermediate_size, c.norm_topk_prob ? "true" : "false", (long long)sparse);
    }
    std::printf("rope:         theta %g%s%s\n", c.rope.theta,
                c.rope.scaling == RopeScaling::Llama3 ? ", llama3 scaling" : c.rope.scaling == RopeScaling::Linear ? ", linear scaling" : "",
                c.rope.interleaved ? ", interleaved pairs" : "");
    if (c.sliding_window) std::printf("sliding window: %lld\n", (long long)c.sliding_window);
    std::printf("dtypes:      ");
    for (const auto& [name, n] : dtypes) std::printf(" %s=%lld", name.c_str(), (long long)n);
    std::printf("\nKV cache:     %lld bytes per token (fp32)\n", (long long)c.kv_bytes_per_token());
    std::printf("CPU kernels:  %s (this CPU runs:", cpu::kernel_isa_name(cpu::active_kernel_isa()));
    for (cpu::KernelIsa isa : cpu::supported_kernel_isas()) std::printf(" %s", cpu::kernel_isa_name(isa));
    std::printf("; MOEINFER_CPU_KERNELS picks one), AMX tiles %s\nbuild ISA:   ",
                cpu::amx_available() ? "for bf16 prefill" : "no");
    for (const std::string& isa : compiled_isa()) std::printf(" %s", isa.c_str());
    std::printf("%s\n", compiled_isa().empty() ? " x86-64 baseline" : "");
    return 0;
}

}  // namespace moeinfer::cli
