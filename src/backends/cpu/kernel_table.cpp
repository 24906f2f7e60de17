// One level's table of kernel pointers (kernel_table.h), compiled per level like the kernels themselves.
#include "backends/cpu/kernel_table.h"

#include "backends/cpu/kernel_variant.h"

namespace moeinfer::cpu::MOEINFER_KERNEL_NS {

extern const CpuKernels kKernels;
const CpuKernels kKernels = {
#define MOEINFER_KERNEL_ADDRESS(ret, name, params, args) &name,
    MOEINFER_CPU_KERNELS(MOEINFER_KERNEL_ADDRESS)
#undef MOEINFER_KERNEL_ADDRESS
};

}  // namespace moeinfer::cpu::MOEINFER_KERNEL_NS
