// Syntax tree, lexer and parser of the Jinja subset used by chat templates (if/for/set/macro/break/continue,
// expressions with filters, tests, calls, slices, conditionals), with transformers' trim_blocks/lstrip_blocks.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace moeinfer::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
    enum class Kind { Literal, Name, List, Dict, Tuple, Attr, Index, Slice, Call, Filter, Test, Unary, Binary, Cond };
    Kind kind;
    int line = 0;
    Value literal;            // Literal
    std::string name;         // Name, Attr, Filter, Test, Unary/Binary operator
    bool negated = false;     // Test: `is not`
    std::vector<ExprPtr> kids;  // operands: Attr/Index/Filter/Test/Call target first; List items; Dict k,v,k,v..
                                // Slice: target, start, stop, step (null when omitted); Cond: then, cond, else
    std::vector<std::pair<std::string, ExprPtr>> kwargs;  // Call / Filter / Test keyword arguments
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

struct Node {
    enum class Kind { Text, Output, If, For, Set, SetBlock, Macro, Break, Continue };
    Kind kind;
    int line = 0;
    std::string text;                                  // Text
    ExprPtr expr;                                      // Output; Set value; For iterable
    std::vector<std::pair<ExprPtr, Body>> branches;    // If: (condition, body) for if/elif
    Body body, else_body;                              // For/SetBlock/Macro body; If/For else
    std::vector<std::string> targets;                  // For loop variables; Set names (a, b = ...)
    std::string target_attr;                           // Set ns.attr: targets[0] = "ns", target_attr = "attr"
    ExprPtr cond;                                      // For ... if cond
    std::string name;                                  // Macro name
    std::vector<std::pair<std::string, ExprPtr>> params;  // Macro parameters with defaults (null = none)
};

// Parses a template; throws std::runtime_error("chat template line N: ...") on syntax errors.
Body parse_template(const std::string& source);

}  // namespace moeinfer::jinja
