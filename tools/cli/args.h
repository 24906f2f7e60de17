// Command-line flags: `--name value`, `--name=value`, boolean `--flag`, and positional arguments.
// Unknown flags and malformed values are errors that name the flag.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace moeinfer::cli {

class Args {
public:
    // value_flags take a value; bool_flags do not. Throws std::invalid_argument on unknown or incomplete flags.
    Args(int argc, char** argv, const std::set<std::string>& value_flags, const std::set<std::string>& bool_flags);

    bool has(const std::string& name) const { return values_.count(name) > 0; }
    std::optional<std::string> get(const std::string& name) const;
    std::string get_or(const std::string& name, const std::string& def) const;
    std::string require(const std::string& name) const;
    int64_t get_int(const std::string& name, int64_t def) const;
    double get_double(const std::string& name, double def) const;
    const std::vector<std::string>& positional() const { return positional_; }

private:
    std::map<std::string, std::string> values_;
    std::vector<std::string> positional_;
};

// "1,2,3" → {1,2,3}; throws std::invalid_argument naming `what` on a bad entry.
std::vector<int32_t> parse_id_list(const std::string& text, const std::string& what);

}  // namespace moeinfer::cli
