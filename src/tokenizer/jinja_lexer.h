// Template-level and expression-level tokenizers of the Jinja subset.
#pragma once
#include <string>
#include <vector>

namespace moeinfer::jinja {

struct TemplateToken {
    enum class Kind { Text, Var, Block } kind;
    std::string text;  // literal text, or the inside of {{ }} / {% %} without delimiters and modifiers
    int line;
};

// Splits source into text and tags applying whitespace control as transformers configures Jinja:
// trim_blocks, lstrip_blocks, '-' / '+' modifiers; comments are dropped; a final newline is removed.
std::vector<TemplateToken> lex_template(const std::string& source);

struct ExprToken {
    enum class Kind { Name, String, Int, Float, Op, End } kind;
    std::string text;
    int line;
};

// Tokenizes the inside of a tag; `line` is where the tag starts.
std::vector<ExprToken> lex_expression(const std::string& src, int line);

}  // namespace moeinfer::jinja
