// Beam search scoring (see beam_search.h). Mirrors HF transformers' vectorized beam search: each step keeps
// max(2, 1 + #eos) × W candidates, the best W that did not finish keep running, and a finishing candidate is
// recorded only if it ranks in the top W, length-normalized by its generated length.
#include "engine/beam_search.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "backends/cpu/elementwise.h"
#include "core/check.h"

namespace moeinfer {

BeamSearch::BeamSearch(int32_t width, double length_penalty, EarlyStopping early_stopping, int64_t max_new,
                       std::vector<int32_t> eos)
    : width_(width), length_penalty_(length_penalty), early_stopping_(early_stopping), max_new_(max_new),
      eos_(std::move(eos)) {
    std::sort(eos_.begin(), eos_.end());
    eos_.erase(std::unique(eos_.begin(), eos_.end()), eos_.end());
    MOE_CHECK(width_ >= 1 && max_new_ >= 1, "beam search needs a width and at least one new token");
}

std::vector<BeamSearch::Next> BeamSearch::step(const std::vector<const float*>& rows, int64_t V,
                                               const std::vector<std::vector<int32_t>>& history) {
    MOE_CHECK(!done_, "beam search step after it finished");
    MOE_CHECK(rows.size() == running_.size() && history.size() == running_.size(), "one row per running beam");
    const int64_t keep = std::max<int64_t>(2, 1 + static_cast<int64_t>(eos_.size())) * width_;
    struct Cand {
        double score;
        int32_t beam, token;
    };
    std::vector<Cand> cands;
    std::vector<float> lp(V);
    std::vector<int32_t> idx(V);
    const int64_t per_beam = std::min<int64_t>(keep, V);  // the global top `keep` has at most that many per beam
    for (size_t b = 0; b < rows.size(); ++b) {
        std::copy(rows[b], rows[b] + V, lp.begin());
        cpu::log_softmax_row(lp.data(), V);
        std::iota(idx.begin(), idx.end(), 0);
        std::partial_sort(idx.begin(), idx.begin() + per_beam, idx.end(),
                          [&](int32_t a, int32_t c) { return lp[a] > lp[c] || (lp[a] == lp[c] && a < c); });
        for (int64_t i = 0; i < per_beam; ++i)
            cands.push_back({running_[b] + lp[idx[i]], static_cast<int32_t>(b), idx[i]});
    }
    // Ties go to the lower flat (beam, token) index, as a stable top-k over HF's [W × V] row would.
    std::stable_sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& c) { return a.score > c.score; });
    if (static_cast<int64_t>(cands.size()) > keep) cands.resize(keep);

    const int64_t len = generated_ + 1;  // generated tokens once this step's token is appended
    auto hits = [&](const Cand& c) {
        return len >= max_new_ || std::binary_search(eos_.begin(), eos_.end(), c.token);
    };
    const bool full = static_cast<int32_t>(finished_.size()) == width_;
    if (improvable_ && !(full && early_stopping_ == EarlyStopping::Always)) {
        // Only the top W candidates may finish; the rest only back up the running set.
        for (size_t i = 0; i < cands.size() && i < static_cast<size_t>(width_); ++i) {
            if (!hits(cands[i])) continue;
            BeamHypothesis h;
            h.tokens = history[cands[i].beam];
            h.tokens.push_back(cands[i].token);
            h.score = cands[i].score / std::pow(static_cast<double>(len), length_penalty_);
            finished_.push_back(std::move(h));
        }
        std::stable_sort(finished_.begin(), finished_.end(),
                         [](const BeamHypothesis& a, const BeamHypothesis& c) { return a.score > c.score; });
        if (static_cast<int32_t>(finished_.size()) > width_) finished_.resize(width_);
    }

    std::vector<Next> next;
    std::vector<double> running;
    bool all_hit = true;
    for (const Cand& c : cands) {
        if (hits(c)) continue;
        all_hit = false;
        if (static_cast<int32_t>(next.size()) == width_) continue;
        next.push_back({c.beam, c.token});
        running.push_back(c.score);
    }
    generated_ = len;
    running_ = std::move(running);
    const bool now_full = static_cast<int32_t>(finished_.size()) == width_;
    if (!running_.empty()) {
        // Could the best running beam still beat the worst finished one?
        const double best_len = early_stopping_ == EarlyStopping::Never && length_penalty_ > 0
                                    ? static_cast<double>(max_new_) : static_cast<double>(len);
        const double best = running_[0] / std::pow(best_len, length_penalty_);
        const double worst = now_full ? finished_.back().score : -1.0e9;
        improvable_ = improvable_ && best > worst;
    }
    done_ = all_hit || running_.empty() || !improvable_ || (now_full && early_stopping_ == EarlyStopping::Always);
    if (done_) return {};
    return next;
}

}  // namespace moeinfer
