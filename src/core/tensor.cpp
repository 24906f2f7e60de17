// Out-of-line Tensor helpers (formatting for error messages and logs).
#include "core/tensor.h"

namespace moeinfer {

std::string Tensor::shape_str() const {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

}  // namespace moeinfer
