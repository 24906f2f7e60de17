// The CUDA model forward (issue 7), exposed to host code without CUDA headers: make_cuda_forward uploads a loaded
// Model's weights as bf16 (or fills a synthetic model's with random values on the device) and returns the
// DeviceForward that Model::set_device takes. Decode steps run as CUDA graphs keyed by padded batch size.
#pragma once
#include <cstdint>
#include <memory>

#include "models/device_forward.h"

namespace moeinfer {
class Model;
}

namespace moeinfer::cuda {

struct CudaForwardOptions {
    int device = 0;
    bool graphs = true;      // capture decode steps (every sequence one token) as CUDA graphs
    uint64_t seed = 1;       // random weights of synthetic models
};

// Throws std::runtime_error when no CUDA device can be used or the weights do not fit.
std::unique_ptr<DeviceForward> make_cuda_forward(const Model& model, const CudaForwardOptions& options = {});

}  // namespace moeinfer::cuda
