// --device (see device.h).
#include "device.h"

#include <cstdlib>
#include <stdexcept>

#ifdef MOEINFER_WITH_CUDA
#include "backends/cuda/cuda_forward.h"
#endif

namespace moeinfer::cli {

void use_device(Model& model, const std::string& device) {
    if (device == "cpu") {
        if (model.synthetic())
            throw std::invalid_argument("--random-weights models run on a GPU only (add --device cuda)");
        return;
    }
    if (device != "cuda" && device.rfind("cuda:", 0) != 0)
        throw std::invalid_argument("--device: expected cpu, cuda or cuda:N, got '" + device + "'");
#ifdef MOEINFER_WITH_CUDA
    cuda::CudaForwardOptions o;
    if (device.size() > 5) {
        try {
            o.device = std::stoi(device.substr(5));
        } catch (const std::exception&) {
            throw std::invalid_argument("--device: bad GPU index in '" + device + "'");
        }
    }
    // MOEINFER_CUDA_GRAPHS=0 replays nothing from graphs (for measuring what they save).
    if (const char* g = std::getenv("MOEINFER_CUDA_GRAPHS")) o.graphs = std::string(g) != "0";
    model.set_device(cuda::make_cuda_forward(model, o));
#else
    throw std::invalid_argument("--device " + device + ": this moeinfer was built without the CUDA backend "
                                "(build it with `make build-cuda`, binary build-cuda/moeinfer)");
#endif
}

std::unique_ptr<Model> load_model_on(const std::string& path, const std::string& device, bool synthetic) {
    auto model = synthetic ? Model::load_synthetic(path) : Model::load(path);
    use_device(*model, device);
    return model;
}

}  // namespace moeinfer::cli
