// The instruction sets a build was compiled for against the CPU it runs on. With MOEINFER_NATIVE (not the default) the
// compiler may use any extension of the build machine anywhere, so a binary copied to a CPU without one would die
// of SIGILL somewhere inside a kernel. A check compiled for the x86-64 baseline runs before any other static
// initializer (cpu_isa.cpp) and exits with one line naming what is missing and how to rebuild.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace moeinfer {

// The extensions this build's kernels were compiled with (GCC names, as __builtin_cpu_supports spells them).
std::vector<std::string> compiled_isa();
// The running CPU's support for each extension this project checks: (name, supported).
std::vector<std::pair<std::string, bool>> cpu_isa();
// The entries of `compiled` that `cpu` lists as unsupported, in compiled order.
std::vector<std::string> missing_isa(const std::vector<std::string>& compiled,
                                     const std::vector<std::pair<std::string, bool>>& cpu);

}  // namespace moeinfer
