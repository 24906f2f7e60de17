// `moeinfer quantize IN OUT --type T`: HF directory or GGUF → GGUF with llama.cpp's names and type mixes.
#include <cstdio>
#include <stdexcept>

#include "args.h"
#include "commands.h"
#include "formats/quantize_model.h"

namespace moeinfer::cli {

int cmd_quantize(int argc, char** argv) {
    Args args(argc, argv, {"type"}, {});
    if (args.positional().size() != 2)
        throw std::invalid_argument("quantize: expected IN and OUT paths, got " +
                                    std::to_string(args.positional().size()) + " positional arguments");
    const QuantType type = parse_quant_type(args.get_or("type", "Q4_K_M"));
    const std::string& in = args.positional()[0];
    const std::string& out = args.positional()[1];
    const QuantizeReport report = quantize_model(in, out, type);
    for (const std::string& note : report.fallbacks) std::fprintf(stderr, "fallback: %s\n", note.c_str());
    std::string mix;
    for (const auto& [name, count] : report.tensors_per_type)
        mix += (mix.empty() ? "" : ", ") + std::to_string(count) + " " + name;
    // Counts weight matrices only; 1-D tensors (norms, biases) are always F32.
    std::printf("wrote %s (%s; matrices: %s; 1-D tensors F32)\n", out.c_str(), quant_type_name(type), mix.c_str());
    return 0;
}

}  // namespace moeinfer::cli
