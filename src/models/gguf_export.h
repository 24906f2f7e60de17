// Writes a loaded model as a GGUF file with llama.cpp's architecture names, metadata keys and tensor names, so
// llama.cpp and moeinfer read the same file. Weight matrices are stored in `type`; norms and biases stay F32.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace moeinfer {

class Model;

// Picks the stored type of one weight matrix (quantization mixes). `shape` is outermost first with the row
// length last (e.g. {E, ff, H} for stacked experts); `requested` is what export would use on its own.
using TensorTypeChooser =
    std::function<DType(const std::string& gguf_name, const std::vector<int64_t>& shape, DType requested)>;

// Throws std::runtime_error when the family has no llama.cpp GGUF architecture or a type cannot hold a tensor.
// `file_type` >= 0 is written as general.file_type (llama.cpp's LLAMA_FTYPE numbering).
void export_gguf(const Model& model, const std::string& path, DType type, const TensorTypeChooser& choose = {},
                 int file_type = -1);

}  // namespace moeinfer
