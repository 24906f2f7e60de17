// Command-line flag parsing (see args.h).
#include "args.h"

#include <charconv>
#include <stdexcept>

namespace moeinfer::cli {

Args::Args(int argc, char** argv, const std::set<std::string>& value_flags, const std::set<std::string>& bool_flags) {
    for (int i = 0; i < argc; ++i) {
        std::string a = argv[i];
        if (a.size() < 2 || a[0] != '-' || a == "-") {
            positional_.push_back(a);
            continue;
        }
        std::string name = a.substr(a[1] == '-' ? 2 : 1);
        std::optional<std::string> inline_value;
        if (auto eq = name.find('='); eq != std::string::npos) {
            inline_value = name.substr(eq + 1);
            name = name.substr(0, eq);
        }
        if (bool_flags.count(name)) {
            if (inline_value) throw std::invalid_argument("flag --" + name + " takes no value");
            values_[name] = "1";
        } else if (value_flags.count(name)) {
            if (inline_value) {
                values_[name] = *inline_value;
            } else {
                if (i + 1 >= argc) throw std::invalid_argument("flag --" + name + " needs a value");
                values_[name] = argv[++i];
            }
        } else {
            throw std::invalid_argument("unknown flag " + a);
        }
    }
}

std::optional<std::string> Args::get(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end()) return std::nullopt;
    return it->second;
}

std::string Args::get_or(const std::string& name, const std::string& def) const { return get(name).value_or(def); }

std::string Args::require(const std::string& name) const {
    auto v = get(name);
    if (!v) throw std::invalid_argument("missing required flag --" + name);
    return *v;
}

int64_t Args::get_int(const std::string& name, int64_t def) const {
    auto v = get(name);
    if (!v) return def;
    int64_t out = 0;
    auto r = std::from_chars(v->data(), v->data() + v->size(), out);
    if (r.ec != std::errc() || r.ptr != v->data() + v->size())
        throw std::invalid_argument("flag --" + name + " expects an integer, got '" + *v + "'");
    return out;
}

double Args::get_double(const std::string& name, double def) const {
    auto v = get(name);
    if (!v) return def;
    double out = 0;
    auto r = std::from_chars(v->data(), v->data() + v->size(), out);
    if (r.ec != std::errc() || r.ptr != v->data() + v->size())
        throw std::invalid_argument("flag --" + name + " expects a number, got '" + *v + "'");
    return out;
}

std::vector<int32_t> parse_id_list(const std::string& text, const std::string& what) {
    std::vector<int32_t> ids;
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t end = text.find(',', pos);
        if (end == std::string::npos) end = text.size();
        std::string item = text.substr(pos, end - pos);
        while (!item.empty() && item.front() == ' ') item.erase(item.begin());
        while (!item.empty() && item.back() == ' ') item.pop_back();
        int64_t v = 0;
        auto r = std::from_chars(item.data(), item.data() + item.size(), v);
        if (item.empty() || r.ec != std::errc() || r.ptr != item.data() + item.size() || v < 0 || v > INT32_MAX)
            throw std::invalid_argument(what + ": '" + item + "' is not a valid token id");
        ids.push_back(static_cast<int32_t>(v));
        pos = end + 1;
    }
    return ids;
}

}  // namespace moeinfer::cli
