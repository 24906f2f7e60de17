// GGUF vocabularies: metadata I/O, and the Tokenizer built from one (the same pipeline pieces as tokenizer.json:
// a `gpt2` vocab is byte-level BPE split by the pattern `pre` names; a `llama` vocab is SentencePiece BPE
// ranked by token scores, with byte fallback and the U+2581 space marker).
#include "tokenizer/gguf_vocab.h"

#include <algorithm>
#include <stdexcept>

#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace moeinfer {

static const char* const kSpaceMarker = "\xE2\x96\x81";

GgufVocab read_gguf_vocab(const GgufFile& f) {
    GgufVocab v;
    try {
        v.model = f.require_string("tokenizer.ggml.model");
        v.pre = f.get_string("tokenizer.ggml.pre", "default");
        v.tokens = f.require("tokenizer.ggml.tokens").string_array();
        if (const auto* s = f.find("tokenizer.ggml.scores")) v.scores = s->float_array();
        if (const auto* t = f.find("tokenizer.ggml.token_type"))
            for (int64_t x : t->int_array()) v.types.push_back(int32_t(x));
        if (const auto* m = f.find("tokenizer.ggml.merges")) v.merges = m->string_array();
        auto opt_id = [&](const char* key, std::optional<int32_t>& out) {
            if (const auto* x = f.find(key)) out = int32_t(x->as_i64());
        };
        opt_id("tokenizer.ggml.bos_token_id", v.bos_id);
        opt_id("tokenizer.ggml.eos_token_id", v.eos_id);
        opt_id("tokenizer.ggml.unknown_token_id", v.unk_id);
        opt_id("tokenizer.ggml.eot_token_id", v.eot_id);
        v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token", v.model == "llama");
        v.add_eos = f.get_bool("tokenizer.ggml.add_eos_token", false);
        v.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix", v.model == "llama");
        v.chat_template = f.get_string("tokenizer.chat_template", "");
    } catch (const std::exception& e) {
        throw std::runtime_error("GGUF '" + f.path() + "': tokenizer: " + e.what());
    }
    return v;
}

void write_gguf_vocab(GgufWriter& w, const GgufVocab& v) {
    w.add_string("tokenizer.ggml.model", v.model);
    w.add_string("tokenizer.ggml.pre", v.pre);
    w.add_array("tokenizer.ggml.tokens", v.tokens);
    if (!v.scores.empty()) w.add_array("tokenizer.ggml.scores", v.scores);
    if (!v.types.empty()) w.add_array("tokenizer.ggml.token_type", v.types);
    if (!v.merges.empty()) w.add_array("tokenizer.ggml.merges", v.merges);
    if (v.bos_id) w.add_u32("tokenizer.ggml.bos_token_id", uint32_t(*v.bos_id));
    if (v.eos_id) w.add_u32("tokenizer.ggml.eos_token_id", uint32_t(*v.eos_id));
    if (v.unk_id) w.add_u32("tokenizer.ggml.unknown_token_id", uint32_t(*v.unk_id));
    if (v.eot_id) w.add_u32("tokenizer.ggml.eot_token_id", uint32_t(*v.eot_id));
    w.add_bool("tokenizer.ggml.add_bos_token", v.add_bos);
    w.add_bool("tokenizer.ggml.add_eos_token", v.add_eos);
    if (v.model == "llama") w.add_bool("tokenizer.ggml.add_space_prefix", v.add_space_prefix);
    if (!v.chat_template.empty()) w.add_string("tokenizer.chat_template", v.chat_template);
}

std::unique_ptr<Tokenizer> Tokenizer::from_gguf_vocab(const GgufVocab& v) {
    if (v.model != "gpt2" && v.model != "llama")
        throw std::runtime_error("GGUF: unsupported tokenizer.ggml.model '" + v.model + "' (gpt2 or llama)");
    if (v.tokens.empty()) throw std::runtime_error("GGUF: tokenizer.ggml.tokens is empty");
    if (!v.types.empty() && v.types.size() != v.tokens.size())
        throw std::runtime_error("GGUF: tokenizer.ggml.token_type has " + std::to_string(v.types.size()) +
                                 " entries for " + std::to_string(v.tokens.size()) + " tokens");
    std::unique_ptr<Tokenizer> t(new Tokenizer());
    const bool llama = v.model == "llama";
    std::vector<std::pair<std::string, std::string>> merges;
    for (size_t r = 0; r < v.merges.size(); ++r) {
        size_t sp = v.merges[r].find(' ', 1);
        if (sp == std::string::npos) throw std::runtime_error("GGUF: bad tokenizer.ggml.merges entry " + std::to_string(r));
        merges.emplace_back(v.merges[r].substr(0, sp), v.merges[r].substr(sp + 1));
    }
    std::vector<std::string> tokens = v.tokens;
    for (size_t id = 0; id < v.types.size(); ++id) {
        int32_t ty = v.types[id];
        if (ty == kTokControl || ty == kTokUserDefined) {
            AddedToken a;
            a.id = int32_t(id);
            a.content = v.tokens[id];
            a.special = ty == kTokControl;
            a.normalized = false;
            t->added_.push_back(a);
        }
    }
    BpeOptions opt;
    opt.byte_level = !llama;
    opt.byte_fallback = llama;
    opt.merge_by_score = llama && merges.empty();
    // tiktoken-derived vocabularies emit a piece that is itself a token whole (HF `ignore_merges`); GGUF does
    // not store the flag, so it follows from the pre-tokenizer name, as in llama.cpp.
    opt.ignore_merges = !llama && (v.pre == "llama-bpe" || v.pre == "llama3" || v.pre == "llama-v3" ||
                                   v.pre == "gpt-4o" || v.pre == "o200k" || v.pre == "gpt-oss");
    if (v.unk_id) opt.unk_id = v.unk_id;
    if (llama && v.scores.size() != tokens.size())
        throw std::runtime_error("GGUF: llama vocabulary needs one tokenizer.ggml.scores entry per token");
    t->model_ = std::make_unique<BpeModel>(std::move(tokens), merges, v.scores, opt);
    if (llama) {
        Normalizer::Step rep{Normalizer::Kind::Replace};
        rep.pattern = " ";
        rep.content = kSpaceMarker;
        if (v.add_space_prefix) {
            Normalizer::Step pre{Normalizer::Kind::Prepend};
            pre.content = kSpaceMarker;
            t->normalizer_.add(pre);
        }
        t->normalizer_.add(rep);
        Decoder::Step d{Decoder::Kind::Replace};
        d.pattern = kSpaceMarker;
        d.content = " ";
        t->decoder_.add(d);
        t->decoder_.add({Decoder::Kind::ByteFallback});
        t->decoder_.add({Decoder::Kind::Fuse});
        if (v.add_space_prefix) {
            Decoder::Step s{Decoder::Kind::Strip};
            s.content = " ";
            s.start = 1;
            t->decoder_.add(s);
        }
    } else {
        t->pre_tokenizer_ = pre_tokenizer_for_gguf(v.pre);
        // Qwen's tokenizer.json normalizes to NFC; GGUF drops normalizers, so restore it to keep ids equal.
        if (v.pre == "qwen2" || v.pre == "qwen3") t->normalizer_.add({Normalizer::Kind::Nfc});
        t->decoder_.add({Decoder::Kind::ByteLevel});
    }
    if (v.add_bos && v.bos_id) t->prefix_ids_.push_back(*v.bos_id);
    t->config_add_bos_ = v.add_bos && v.bos_id;
    if (v.add_eos && v.eos_id) t->suffix_ids_.push_back(*v.eos_id);
    t->finish_setup();
    t->bos_id_ = v.bos_id;
    if (v.eos_id) t->eos_ids_.push_back(*v.eos_id);
    if (v.eot_id && v.eot_id != v.eos_id) t->eos_ids_.push_back(*v.eot_id);
    t->chat_.template_text = v.chat_template;
    if (v.bos_id && *v.bos_id >= 0 && size_t(*v.bos_id) < v.tokens.size()) t->chat_.bos_token = v.tokens[*v.bos_id];
    if (v.eos_id && *v.eos_id >= 0 && size_t(*v.eos_id) < v.tokens.size()) t->chat_.eos_token = v.tokens[*v.eos_id];
    return t;
}

GgufVocab Tokenizer::to_gguf_vocab() const {
    GgufVocab v;
    const BpeOptions& opt = model_->options();
    v.model = opt.byte_level ? "gpt2" : "llama";
    v.pre = "default";
    if (opt.byte_level) {
        v.pre = gguf_pre_name(pre_tokenizer_);
        if (v.pre.empty()) throw std::runtime_error("GGUF export: the pre-tokenizer matches no known tokenizer.ggml.pre");
    }
    int32_t n = vocab_size();
    v.tokens.resize(n);
    v.types.assign(n, kTokNormal);
    for (int32_t id = 0; id < model_->size(); ++id) {
        v.tokens[id] = model_->token(id);
        if (v.tokens[id].empty()) v.types[id] = kTokUnused;
        if (!opt.byte_level && v.tokens[id].size() == 6 && v.tokens[id].compare(0, 3, "<0x") == 0) v.types[id] = kTokByte;
    }
    for (const auto& a : added_) {
        v.tokens[a.id] = a.content;
        v.types[a.id] = a.special ? kTokControl : kTokUserDefined;
    }
    if (opt.unk_id) {
        v.unk_id = opt.unk_id;
        v.types[*opt.unk_id] = kTokUnknown;
    }
    if (opt.byte_level) {
        for (const auto& [a, b] : model_->merges()) v.merges.push_back(a + " " + b);
    } else {
        // Score = minus the rank of the first merge that makes the token, so ranking by score replays merges;
        // tokens no merge makes get the lowest score so that concatenation never prefers them.
        v.scores.assign(n, -1e9f);
        std::vector<bool> seen(n, false);
        const auto& ms = model_->merges();
        for (size_t r = 0; r < ms.size(); ++r) {
            auto id = token_id(ms[r].first + ms[r].second);
            if (id && !seen[*id]) v.scores[*id] = -float(r + 1), seen[*id] = true;
        }
        v.add_space_prefix = normalizer_.has_prepend();
    }
    v.bos_id = bos_id_;
    if (!eos_ids_.empty()) v.eos_id = eos_ids_[0];
    v.add_bos = !prefix_ids_.empty();
    if (v.add_bos && !v.bos_id) v.bos_id = prefix_ids_[0];
    v.add_eos = !suffix_ids_.empty();
    v.chat_template = chat_.template_text;
    return v;
}

}  // namespace moeinfer
