// The statement structure of a function body: enough to see where barriers
// sit in its control flow. Expressions and declarations stay token ranges.
#pragma once

#include <cstddef>
#include <vector>

#include "frontend/lexer.h"

namespace mps_shim::frontend {

enum class StmtKind {
  Simple,    // an expression, declaration, return, break, ... up to its `;`
  Compound,  // { ... }
  If,        // if (head) children[0] [else children[1]]
  For,       // for (init; cond; step) children[0]
  While,     // while (head) children[0]
  Do,        // do children[0] while (head);
  Opaque,    // switch, range-for, if constexpr: their insides are not modelled
};

struct Stmt {
  StmtKind kind = StmtKind::Simple;
  size_t first = 0, last = 0;  // tokens, inclusive
  size_t head_open = 0, head_close = 0;  // the parentheses of if/for/while/do
  size_t semi1 = 0, semi2 = 0;           // For: the two `;` inside the head
  std::vector<Stmt> children;
};

// Parses the statements strictly between the braces at `open` and `close`.
// False when the body holds something this parser does not model (a label, a
// stray `else`, an unterminated statement).
bool parse_statements(const std::vector<Token>& tokens, size_t open, size_t close, std::vector<Stmt>& out);

}  // namespace mps_shim::frontend
