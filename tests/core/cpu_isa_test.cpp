// The start-up instruction-set check (core/cpu_isa.h).
#include "core/cpu_isa.h"

#include <gtest/gtest.h>

namespace moeinfer {
namespace {

TEST(CpuIsa, MissingListsCompiledExtensionsTheCpuLacks) {
    const std::vector<std::pair<std::string, bool>> cpu = {{"avx2", true}, {"avx512f", false}, {"avx512bf16", false}};
    EXPECT_EQ(missing_isa({"avx2", "avx512f", "avx512bf16"}, cpu), (std::vector<std::string>{"avx512f", "avx512bf16"}));
    EXPECT_TRUE(missing_isa({"avx2"}, cpu).empty());
    EXPECT_TRUE(missing_isa({}, cpu).empty());
}

// This binary runs here, so whatever it was compiled for, this CPU has (else the check would have exited), and
// every compiled extension is one the check knows how to ask the CPU about.
TEST(CpuIsa, ThisBuildRunsOnThisCpu) {
    const auto compiled = compiled_isa();
    const auto cpu = cpu_isa();
    EXPECT_TRUE(missing_isa(compiled, cpu).empty());
    for (const std::string& name : compiled) {
        bool known = false;
        for (const auto& [n, ok] : cpu) known |= n == name;
        EXPECT_TRUE(known) << name;
    }
#if defined(__AVX512F__)
    EXPECT_FALSE(compiled.empty());
#endif
}

}  // namespace
}  // namespace moeinfer
