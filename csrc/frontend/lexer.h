// Tokens of preprocessed Metal source. Line markers (`# 12 "file"`) written by
// the preprocessor are consumed here, so each token knows its line in the
// user's own source; other directive lines (#pragma) are skipped.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mps_shim::frontend {

enum class TokenKind { Identifier, Number, String, Char, Punct };

struct Token {
  TokenKind kind;
  std::string_view text;  // points into the lexed buffer
  size_t offset;          // byte offset in that buffer
  int line;               // line in `file`
  int file;               // index into LexedSource::files
  bool is(std::string_view s) const { return text == s; }
  bool is_identifier() const { return kind == TokenKind::Identifier; }
};

struct LexedSource {
  std::vector<Token> tokens;
  std::vector<std::string> files;  // names from line markers; files[0] is the main file
};

// `main_file` names the user's source in line markers.
LexedSource lex(std::string_view text, const std::string& main_file);

// Index of the token closing the bracket ( [ { or < opened at `open`, or
// tokens.size() when it is unbalanced. `>>` closes two angle brackets.
size_t matching_bracket(const std::vector<Token>& tokens, size_t open);

// Index of the `(` matching the `)` at `close`, searching no further back than
// `floor`; `floor` itself when there is none.
size_t matching_open_paren(const std::vector<Token>& tokens, size_t close, size_t floor);

// Metal's address-space qualifiers.
bool is_address_space(const Token& token);

// The name token of the class whose body holds token i (directly, not inside a
// function body), or tokens.size() when i is not in a class body.
size_t enclosing_class(const std::vector<Token>& tokens, size_t i);

// True when the address space at token i qualifies a constructor
// (`constexpr complex_t(U x) constant : ...`): C++ has no cv-qualified
// constructors, so such a qualifier is erased, not made `const`.
bool qualifies_constructor(const std::vector<Token>& tokens, size_t i);

}  // namespace mps_shim::frontend
