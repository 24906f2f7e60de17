// Building a Tokenizer from tokenizer.json (+ tokenizer_config.json) or from a GGUF vocabulary.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace moeinfer {

namespace fs = std::filesystem;

class TokenizerLoader {
public:
    static void post_processor(Tokenizer& t, const json::Value& pp);
    static std::unique_ptr<Tokenizer> make() { return std::unique_ptr<Tokenizer>(new Tokenizer()); }
};

// The token string of a config entry: "bos_token": "<s>" or {"content": "<s>", ...}.
static std::string token_string(const json::Value* v) {
    if (!v || v->is_null()) return "";
    if (v->is_string()) return v->as_string();
    if (v->is_object()) return v->get_string("content", "");
    return "";
}

void TokenizerLoader::post_processor(Tokenizer& t, const json::Value& pp) {
    if (pp.is_null()) return;
    std::string type = pp.get_string("type", "");
    if (type == "Sequence") {
        for (const auto& p : pp.at("processors").as_array()) post_processor(t, p);
    } else if (type == "TemplateProcessing") {
        const auto& specials = pp.at("special_tokens");
        bool after_sequence = false;
        for (const auto& item : pp.at("single").as_array()) {
            if (item.contains("Sequence")) {
                after_sequence = true;
                continue;
            }
            const std::string& name = item.at("SpecialToken").at("id").as_string();
            const json::Value* st = specials.find(name);
            if (!st) throw std::runtime_error("tokenizer.json: post_processor names unknown special token '" + name + "'");
            for (const auto& id : st->at("ids").as_array())
                (after_sequence ? t.suffix_ids_ : t.prefix_ids_).push_back(int32_t(id.as_int()));
        }
    } else if (type == "BertProcessing" || type == "RobertaProcessing") {
        t.prefix_ids_.push_back(int32_t(pp.at("cls")[1].as_int()));
        t.suffix_ids_.push_back(int32_t(pp.at("sep")[1].as_int()));
    } else if (type != "ByteLevel") {
        throw std::runtime_error("tokenizer.json: unsupported post_processor type '" + type + "'");
    }
}

static bool has_type(const json::Value& v, const std::string& type, const char* list_key) {
    if (v.is_null()) return false;
    if (v.get_string("type", "") == type) return true;
    if (const auto* list = v.find(list_key))
        for (const auto& x : list->as_array())
            if (has_type(x, type, list_key)) return true;
    return false;
}

std::unique_ptr<Tokenizer> Tokenizer::from_json(const json::Value& tj, const json::Value& config) {
    auto t = TokenizerLoader::make();
    const auto& m = tj.at("model");
    std::string type = m.get_string("type", "BPE");
    if (type != "BPE") throw std::runtime_error("tokenizer.json: unsupported model type '" + type + "' (only BPE)");
    if (!m.get_string("continuing_subword_prefix", "").empty() || !m.get_string("end_of_word_suffix", "").empty())
        throw std::runtime_error("tokenizer.json: BPE continuing_subword_prefix/end_of_word_suffix are not supported");

    std::vector<std::string> tokens;
    for (const auto& [tok, idv] : m.at("vocab").as_object()) {
        int64_t id = idv.as_int();
        if (id < 0 || id > (1 << 24)) throw std::runtime_error("tokenizer.json: bad id for token '" + tok + "'");
        if (size_t(id) >= tokens.size()) tokens.resize(id + 1);
        tokens[id] = tok;
    }
    std::vector<std::pair<std::string, std::string>> merges;
    if (const auto* mv = m.find("merges")) {
        merges.reserve(mv->size());
        for (const auto& e : mv->as_array()) {
            if (e.is_array()) {
                merges.emplace_back(e[0].as_string(), e[1].as_string());
            } else {
                const std::string& s = e.as_string();
                size_t sp = s.find(' ', 1);
                if (sp == std::string::npos) throw std::runtime_error("tokenizer.json: bad merge '" + s + "'");
                merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
            }
        }
    }
    BpeOptions opt;
    opt.byte_level = has_type(tj.at("pre_tokenizer"), "ByteLevel", "pretokenizers") ||
                     has_type(tj.at("decoder"), "ByteLevel", "decoders");
    opt.byte_fallback = m.get_bool("byte_fallback", false);
    opt.fuse_unk = m.get_bool("fuse_unk", false);
    opt.ignore_merges = m.get_bool("ignore_merges", false);
    std::string unk = m.get_string("unk_token", "");

    for (const auto& a : tj.at("added_tokens").as_array()) {
        AddedToken at;
        at.id = int32_t(a.at("id").as_int());
        at.content = a.at("content").as_string();
        at.special = a.get_bool("special", false);
        at.lstrip = a.get_bool("lstrip", false);
        at.rstrip = a.get_bool("rstrip", false);
        at.normalized = a.get_bool("normalized", !at.special);
        at.single_word = a.get_bool("single_word", false);
        t->added_.push_back(at);
    }
    if (!unk.empty()) {
        auto it = std::find(tokens.begin(), tokens.end(), unk);
        if (it != tokens.end()) opt.unk_id = int32_t(it - tokens.begin());
    }
    t->model_ = std::make_unique<BpeModel>(std::move(tokens), merges, std::vector<float>{}, opt);
    t->normalizer_ = Normalizer::from_json(tj.at("normalizer"));
    t->pre_tokenizer_ = PreTokenizer::from_json(tj.at("pre_tokenizer"));
    t->decoder_ = Decoder::from_json(tj.at("decoder"));
    TokenizerLoader::post_processor(*t, tj.at("post_processor"));
    t->finish_setup();

    if (config.is_object()) {
        t->chat_ = chat_template_from_config(config);
        if (const auto* ab = config.find("add_bos_token"); ab && ab->is_bool()) t->config_add_bos_ = ab->as_bool();
        if (!t->chat_.bos_token.empty()) t->bos_id_ = t->token_id(t->chat_.bos_token);
        if (!t->chat_.eos_token.empty())
            if (auto id = t->token_id(t->chat_.eos_token)) t->eos_ids_.push_back(*id);
    }
    if (!t->bos_id_ && !t->prefix_ids_.empty()) t->bos_id_ = t->prefix_ids_[0];
    return t;
}

static std::string read_text(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open " + path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::unique_ptr<Tokenizer> Tokenizer::from_file(const std::string& path) {
    if (path.size() > 5 && path.compare(path.size() - 5, 5, ".gguf") == 0 && fs::is_regular_file(path)) {
        auto f = GgufFile::open(path);
        return from_gguf_vocab(read_gguf_vocab(*f));
    }
    fs::path dir, file;
    if (fs::is_directory(path)) {
        dir = path;
        file = dir / "tokenizer.json";
    } else {
        file = path;
        dir = file.parent_path();
    }
    if (!fs::exists(file)) throw std::runtime_error("tokenizer: " + file.string() + " does not exist");
    json::Value tj;
    try {
        tj = json::parse_file(file.string());
    } catch (const std::exception& e) {
        throw std::runtime_error(std::string("tokenizer: ") + e.what());
    }
    json::Value config;
    fs::path cfg = dir / "tokenizer_config.json";
    if (fs::exists(cfg)) config = json::parse_file(cfg.string());
    std::unique_ptr<Tokenizer> t;
    try {
        t = from_json(tj, config);
    } catch (const json::JsonError& e) {
        throw std::runtime_error(file.string() + ": " + e.what());
    } catch (const std::runtime_error& e) {
        throw std::runtime_error(file.string() + ": " + e.what());
    }
    if (fs::exists(dir / "chat_template.jinja")) t->chat_.template_text = read_text((dir / "chat_template.jinja").string());
    fs::path gen = dir / "generation_config.json";
    if (fs::exists(gen)) {
        json::Value g = json::parse_file(gen.string());
        if (const auto* e = g.find("eos_token_id")) {
            std::vector<int32_t> ids;
            if (e->is_array())
                for (const auto& x : e->as_array()) ids.push_back(int32_t(x.as_int()));
            else if (e->is_number())
                ids.push_back(int32_t(e->as_int()));
            for (int32_t id : ids)
                if (std::find(t->eos_ids_.begin(), t->eos_ids_.end(), id) == t->eos_ids_.end()) t->eos_ids_.push_back(id);
        }
    }
    return t;
}

ChatTemplateSource chat_template_from_config(const json::Value& config) {
    ChatTemplateSource s;
    s.bos_token = token_string(config.find("bos_token"));
    s.eos_token = token_string(config.find("eos_token"));
    if (const auto* ct = config.find("chat_template")) {
        if (ct->is_string()) {
            s.template_text = ct->as_string();
        } else if (ct->is_array()) {
            for (const auto& e : ct->as_array())
                if (e.get_string("name", "") == "default") s.template_text = e.get_string("template", "");
        }
    }
    return s;
}

ChatTemplateSource chat_template_from_path(const std::string& path) {
    fs::path p = path, dir = fs::is_directory(p) ? p : p.parent_path();
    fs::path cfg = fs::is_directory(p) ? p / "tokenizer_config.json" : p;
    ChatTemplateSource s;
    if (fs::exists(cfg)) s = chat_template_from_config(json::parse_file(cfg.string()));
    if (fs::exists(dir / "chat_template.jinja")) s.template_text = read_text((dir / "chat_template.jinja").string());
    return s;
}

}  // namespace moeinfer
