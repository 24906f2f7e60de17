// Jinja filters used by chat templates (trim, tojson, join, map, selectattr, default, length, ...).
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "tokenizer/jinja_interp.h"

namespace moeinfer::jinja {

using K = Value::Kind;

namespace {

// Attribute path "a.b" of an item, as map/selectattr/sort accept.
Value attr_path(const Value& item, const std::string& path, int line) {
    Value cur = item;
    size_t i = 0;
    while (i <= path.size()) {
        size_t j = path.find('.', i);
        if (j == std::string::npos) j = path.size();
        std::string part = path.substr(i, j - i);
        bool digits = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
        cur = digits ? get_item(cur, Value::integer(std::stoll(part)), line) : get_item(cur, Value::string(part), line);
        i = j + 1;
    }
    return cur;
}

std::string html_escape(const std::string& s) {
    std::string r;
    for (char c : s) {
        switch (c) {
            case '&': r += "&amp;"; break;
            case '<': r += "&lt;"; break;
            case '>': r += "&gt;"; break;
            case '"': r += "&#34;"; break;
            case '\'': r += "&#39;"; break;
            default: r += c;
        }
    }
    return r;
}

int compare_values(const Value& a, const Value& b) {
    if (a.is_number() && b.is_number()) return a.as_double() < b.as_double() ? -1 : a.as_double() > b.as_double();
    std::string x = a.str(), y = b.str();
    return x < y ? -1 : x > y;
}

}  // namespace

Value apply_filter(Interpreter& in, const std::string& name, const Value& v, Args& args, int line) {
    (void)in;
    auto items = [&] { return iterate(v, line); };
    if (name == "trim" || name == "strip") {
        Args a;
        a.pos.push_back(args.get(0, "chars", Value()));
        Value f = get_attr(Value::string(v.str()), "strip", line);
        return (*f.fn)(a);
    }
    if (name == "length" || name == "count") {
        if (v.is_string()) return Value::integer(int64_t(items().size()));
        if (v.is_array()) return Value::integer(int64_t(v.arr->size()));
        if (v.is_object()) return Value::integer(int64_t(v.obj->size()));
        if (v.is_undefined()) return Value::integer(0);
        eval_error(line, std::string("object of type '") + v.type_name() + "' has no len()");
    }
    if (name == "tojson") {
        Value ind = args.get(0, "indent", Value::none());
        int indent = ind.is_none() ? -1 : int(ind.i);
        std::string item_sep = indent >= 0 ? "," : ", ", key_sep = ": ";
        Value seps = args.get(99, "separators", Value::none());
        if (seps.is_array() && seps.arr->size() == 2) item_sep = (*seps.arr)[0].str(), key_sep = (*seps.arr)[1].str();
        try {
            return Value::string(to_json(v, indent, item_sep, key_sep, args.get(99, "sort_keys", Value::boolean(false)).truthy()));
        } catch (const std::runtime_error& e) {
            eval_error(line, e.what());
        }
    }
    if (name == "join") {
        std::string sep = args.get(0, "d", Value::string("")).str(), r;
        Value attr = args.get(1, "attribute", Value::none());
        auto xs = items();
        for (size_t k = 0; k < xs.size(); ++k) r += (k ? sep : "") + (attr.is_none() ? xs[k] : attr_path(xs[k], attr.str(), line)).str();
        return Value::string(r);
    }
    if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
        Value f = get_attr(Value::string(v.str()), name, line);
        Args a;
        return (*f.fn)(a);
    }
    if (name == "replace") {
        Value f = get_attr(Value::string(v.str()), "replace", line);
        return (*f.fn)(args);
    }
    if (name == "first" || name == "last") {
        auto xs = items();
        if (xs.empty()) return Value();
        return name == "first" ? xs.front() : xs.back();
    }
    if (name == "reverse") {
        auto xs = items();
        std::reverse(xs.begin(), xs.end());
        if (v.is_string()) {
            std::string s;
            for (const auto& c : xs) s += c.s;
            return Value::string(s);
        }
        return Value::array(std::move(xs));
    }
    if (name == "list") return Value::array(items());
    if (name == "default" || name == "d") {
        bool boolean = args.get(1, "boolean", Value::boolean(false)).truthy();
        if (v.is_undefined() || (boolean && !v.truthy())) return args.get(0, "default_value", Value::string(""));
        return v;
    }
    if (name == "items") {
        if (!v.is_object()) eval_error(line, "items filter needs a mapping");
        Array r;
        for (const auto& [k, x] : *v.obj) r.push_back(Value::tuple({Value::string(k), x}));
        return Value::array(std::move(r));
    }
    if (name == "string") return Value::string(v.str());
    if (name == "safe") return v;
    if (name == "e" || name == "escape") return Value::string(html_escape(v.str()));
    if (name == "int") {
        if (v.kind == K::Float) return Value::integer(int64_t(v.f));
        if (v.is_number()) return Value::integer(v.kind == K::Bool ? v.b : v.i);
        try {
            return Value::integer(std::stoll(v.str()));
        } catch (...) {
            return args.get(0, "default", Value::integer(0));
        }
    }
    if (name == "float") {
        if (v.is_number()) return Value::number(v.as_double());
        try {
            return Value::number(std::stod(v.str()));
        } catch (...) {
            return args.get(0, "default", Value::number(0));
        }
    }
    if (name == "abs") {
        if (v.kind == K::Float) return Value::number(std::fabs(v.f));
        return Value::integer(std::llabs(v.i));
    }
    if (name == "round") {
        int64_t prec = args.get(0, "precision", Value::integer(0)).i;
        double m = std::pow(10.0, double(prec));
        return Value::number(std::round(v.as_double() * m) / m);
    }
    if (name == "map") {
        Array r;
        Value attr = args.get(99, "attribute", Value::none());
        for (const auto& x : items()) {
            if (!attr.is_none()) {
                Value y = attr_path(x, attr.str(), line);
                if (y.is_undefined()) y = args.get(99, "default", Value());
                r.push_back(y);
            } else {
                Args rest;
                rest.pos.assign(args.pos.begin() + std::min<size_t>(1, args.pos.size()), args.pos.end());
                rest.kw = args.kw;
                r.push_back(apply_filter(in, args.get(0, "filter").str(), x, rest, line));
            }
        }
        return Value::array(std::move(r));
    }
    if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
        bool by_attr = name == "selectattr" || name == "rejectattr", keep_if = name == "select" || name == "selectattr";
        size_t t = by_attr ? 1 : 0;
        Array r;
        for (const auto& x : items()) {
            Value subject = by_attr ? attr_path(x, args.get(0, "attr").str(), line) : x;
            bool ok;
            if (args.pos.size() > t) {
                Args targs;
                targs.pos.assign(args.pos.begin() + t + 1, args.pos.end());
                ok = apply_test(args.pos[t].str(), subject, targs, line);
            } else {
                ok = subject.truthy();
            }
            if (ok == keep_if) r.push_back(x);
        }
        return Value::array(std::move(r));
    }
    if (name == "unique") {
        Array r;
        for (const auto& x : items())
            if (std::none_of(r.begin(), r.end(), [&](const Value& y) { return equal(x, y); })) r.push_back(x);
        return Value::array(std::move(r));
    }
    if (name == "sort" || name == "dictsort") {
        auto xs = name == "dictsort" ? iterate(apply_filter(in, "items", v, args, line), line) : items();
        bool rev = args.get(name == "sort" ? 0 : 99, "reverse", Value::boolean(false)).truthy();
        Value attr = args.get(99, "attribute", Value::none());
        std::stable_sort(xs.begin(), xs.end(), [&](const Value& a, const Value& b) {
            Value x = name == "dictsort" ? (*a.arr)[0] : attr.is_none() ? a : attr_path(a, attr.str(), line);
            Value y = name == "dictsort" ? (*b.arr)[0] : attr.is_none() ? b : attr_path(b, attr.str(), line);
            int c = compare_values(x, y);
            return rev ? c > 0 : c < 0;
        });
        return Value::array(std::move(xs));
    }
    if (name == "sum") {
        Value acc = Value::integer(0);
        for (const auto& x : items()) {
            if (acc.kind == K::Int && x.kind == K::Int) acc = Value::integer(acc.i + x.i);
            else acc = Value::number(acc.as_double() + x.as_double());
        }
        return acc;
    }
    if (name == "min" || name == "max") {
        auto xs = items();
        if (xs.empty()) return Value();
        auto it = std::min_element(xs.begin(), xs.end(), [&](const Value& a, const Value& b) {
            int c = compare_values(a, b);
            return name == "min" ? c < 0 : c > 0;
        });
        return *it;
    }
    if (name == "indent") {
        Value w = args.get(0, "width", Value::integer(4));
        std::string pad = w.is_string() ? w.s : std::string(size_t(std::max<int64_t>(0, w.i)), ' ');
        bool first = args.get(1, "first", Value::boolean(false)).truthy();
        bool blank = args.get(2, "blank", Value::boolean(false)).truthy();
        std::string s = v.str(), r;
        size_t i = 0;
        bool first_line = true;
        while (i <= s.size()) {
            size_t j = s.find('\n', i);
            std::string ln = s.substr(i, j == std::string::npos ? std::string::npos : j - i);
            if ((!first_line || first) && (blank || !ln.empty())) r += pad;
            r += ln;
            if (j == std::string::npos) break;
            r += '\n';
            i = j + 1;
            first_line = false;
        }
        return Value::string(r);
    }
    if (name == "format") {
        Value tup = Value::tuple(args.pos);
        return Value::string(percent_format(v.str(), args.pos.size() == 1 && !args.pos[0].is_tuple ? args.pos[0] : tup, line));
    }
    if (name == "wordcount") {
        Args a;
        Value f = get_attr(Value::string(v.str()), "split", line);
        return Value::integer(int64_t((*f.fn)(a).arr->size()));
    }
    eval_error(line, "unknown filter '" + name + "'");
}

std::string percent_format(const std::string& fmt, const Value& args, int line) {
    std::vector<Value> list = args.is_tuple ? *args.arr : std::vector<Value>{args};
    size_t next = 0;
    std::string out;
    for (size_t i = 0; i < fmt.size(); ++i) {
        if (fmt[i] != '%') {
            out += fmt[i];
            continue;
        }
        size_t j = i + 1;
        std::string spec = "%";
        while (j < fmt.size() && std::string("-+ #0").find(fmt[j]) != std::string::npos) spec += fmt[j++];
        while (j < fmt.size() && (isdigit(static_cast<unsigned char>(fmt[j])) || fmt[j] == '.')) spec += fmt[j++];
        if (j >= fmt.size()) eval_error(line, "incomplete format");
        char conv = fmt[j];
        i = j;
        if (conv == '%') {
            out += '%';
            continue;
        }
        if (next >= list.size()) eval_error(line, "not enough arguments for format string");
        const Value& a = list[next++];
        char buf[512];
        switch (conv) {
            case 's':
            case 'r': {
                std::string text = conv == 's' ? a.str() : a.repr();
                snprintf(buf, sizeof buf, (spec + "s").c_str(), text.c_str());
                out += text.size() < 400 ? std::string(buf) : text;
                break;
            }
            case 'd':
            case 'i':
            case 'x':
            case 'X':
            case 'o':
            case 'c':
                if (!a.is_number()) eval_error(line, std::string("%") + conv + " format: a real number is required, not " + a.type_name());
                snprintf(buf, sizeof buf, (spec + "ll" + (conv == 'i' ? 'd' : conv)).c_str(),
                         (long long)(a.kind == Value::Kind::Float ? (long long)a.f : a.kind == Value::Kind::Bool ? a.b : a.i));
                out += buf;
                break;
            case 'f':
            case 'F':
            case 'e':
            case 'E':
            case 'g':
            case 'G':
                if (!a.is_number()) eval_error(line, std::string("must be real number, not ") + a.type_name());
                snprintf(buf, sizeof buf, (spec + conv).c_str(), a.as_double());
                out += buf;
                break;
            default: eval_error(line, std::string("unsupported format character '") + conv + "'");
        }
    }
    if (next < list.size() && args.is_tuple) eval_error(line, "not all arguments converted during string formatting");
    return out;
}

}  // namespace moeinfer::jinja
