// --device for the commands that run a model: "cpu" (default), "cuda" or "cuda:N". Builds without the CUDA
// backend answer "cuda" with an error that says how to get one.
#pragma once
#include <memory>
#include <string>

#include "models/model.h"

namespace moeinfer::cli {

// Loads `path` (or, with synthetic, only the shapes of the config.json at `path`) and moves it to `device`.
std::unique_ptr<Model> load_model_on(const std::string& path, const std::string& device, bool synthetic = false);
// Moves an already loaded model to `device`; "cpu" leaves it where it is. Throws std::invalid_argument naming the
// flag on an unknown device.
void use_device(Model& model, const std::string& device);

}  // namespace moeinfer::cli
