// Evaluation of a parsed Jinja template: scopes, statements, operators; filters, tests and Python-style
// methods live in jinja_builtins.cpp.
#pragma once
#include <string>
#include <vector>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_value.h"

namespace moeinfer::jinja {

[[noreturn]] void eval_error(int line, const std::string& what);

class Interpreter {
public:
    // Renders `body` with `globals` as the outermost scope (messages, tools, bos_token, functions ...).
    std::string render(const Body& body, const Object& globals);
    Value eval(const Expr& e);

private:
    enum class Flow { Normal, Break, Continue };
    Flow exec(const Body& body, std::string& out);
    Flow exec_for(const Node& n, std::string& out);
    Value lookup(const std::string& name) const;
    void assign(const std::string& name, Value v);
    Value binary(const Expr& e);
    Value call(const Expr& e);
    Value make_macro(const Node& n);

    std::vector<Object> scopes_;
};

// Jinja's attribute lookup: Python methods of str/list/dict first, then dict keys; missing keys are Undefined.
Value get_attr(const Value& v, const std::string& name, int line);
Value get_item(const Value& v, const Value& key, int line);
Value apply_filter(Interpreter& in, const std::string& name, const Value& v, Args& args, int line);
bool apply_test(const std::string& name, const Value& v, Args& args, int line);
std::vector<Value> iterate(const Value& v, int line);  // list items, dict keys or str characters
// Python's `fmt % args` (printf-style: %s %r %d %i %f %e %g %x %o %c %%, flags, width, precision).
std::string percent_format(const std::string& fmt, const Value& args, int line);
Value slice(const Value& v, const Value& start, const Value& stop, const Value& step, int line);

}  // namespace moeinfer::jinja
