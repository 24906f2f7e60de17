// Batch assembly (see batch.h).
#include "engine/batch.h"

namespace moeinfer {

int32_t Batch::add_sequence(const int32_t* ids, int64_t n, int64_t start, const int32_t* block_table,
                            bool want_all_logits) {
    const int32_t seq = static_cast<int32_t>(block_tables.size());
    block_tables.push_back(block_table);
    for (int64_t i = 0; i < n; ++i) {
        token_ids.push_back(ids[i]);
        positions.push_back(static_cast<int32_t>(start + i));
        token_seq.push_back(seq);
        if (want_all_logits || i == n - 1) logit_rows.push_back(static_cast<int32_t>(token_ids.size() - 1));
    }
    return seq;
}

}  // namespace moeinfer
