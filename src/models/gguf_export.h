// Writes a loaded model as a GGUF file with llama.cpp's architecture names, metadata keys and tensor names, so
// llama.cpp and moeinfer read the same file. Weight matrices are stored in `type`; norms and biases stay F32.
#pragma once
#include <string>

#include "core/dtype.h"

namespace moeinfer {

class Model;

// Throws std::runtime_error when the family has no llama.cpp GGUF architecture or a type cannot hold a tensor.
void export_gguf(const Model& model, const std::string& path, DType type);

}  // namespace moeinfer
