// KvCache::copy_block (copy-on-write for beams): copies one block's K and V rows in every layer, whatever the
// layer's width, and touches no other block.
#include <gtest/gtest.h>

#include "kv/kv_cache.h"

namespace moeinfer {
namespace {

TEST(KvCache, CopyBlockCopiesEveryLayerKAndVOnly) {
    const int32_t blocks = 5, bs = 3;
    const std::vector<int64_t> widths = {4, 7};  // layers of different width (MLA-style latent vs heads)
    KvCache kv(blocks, bs, widths);
    for (size_t l = 0; l < widths.size(); ++l)
        for (int64_t i = 0; i < blocks * bs * widths[l]; ++i) {
            kv.k(l)[i] = float(1000 * l + i);
            kv.v(l)[i] = -float(1000 * l + i);
        }
    kv.copy_block(1, 3);
    for (size_t l = 0; l < widths.size(); ++l) {
        const int64_t per = bs * widths[l];
        for (int64_t b = 0; b < blocks; ++b)
            for (int64_t i = 0; i < per; ++i) {
                const float want = float(1000 * l + (b == 3 ? 1 : b) * per + i);
                ASSERT_EQ(kv.k(l)[b * per + i], want) << "layer " << l << " block " << b;
                ASSERT_EQ(kv.v(l)[b * per + i], -want) << "layer " << l << " block " << b;
            }
    }
    EXPECT_THROW(kv.copy_block(0, blocks), std::logic_error);
}

}  // namespace
}  // namespace moeinfer
