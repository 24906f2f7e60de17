// `moeinfer convert`: any loadable model → GGUF with llama.cpp names (weights in --type, default F16).
#include <cstdio>
#include <stdexcept>

#include "args.h"
#include "commands.h"
#include "models/gguf_export.h"
#include "models/model.h"

namespace moeinfer::cli {

int cmd_convert(int argc, char** argv) {
    Args args(argc, argv, {"model", "out", "type"}, {});
    const std::string type_name = args.get_or("type", "F16");
    DType type = DType::Unknown;
    for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0})
        if (type_name == dtype_name(t)) type = t;
    if (type == DType::Unknown)
        throw std::invalid_argument("--type " + type_name + " is not supported (F32, F16, BF16, Q8_0, Q4_0)");
    auto model = Model::load(args.require("model"));
    const std::string out = args.require("out");
    export_gguf(*model, out, type);
    std::printf("wrote %s (%s)\n", out.c_str(), type_name.c_str());
    return 0;
}

}  // namespace moeinfer::cli
