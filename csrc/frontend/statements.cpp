#include "frontend/statements.h"

namespace mps_shim::frontend {

namespace {

class StatementParser {
 public:
  StatementParser(const std::vector<Token>& t, size_t end) : t_(t), end_(end) {}

  // Parses the statement starting at i into s; false when not understood.
  bool statement(size_t i, Stmt& s) {
    if (i >= end_) return false;
    s.first = i;
    const Token& tk = t_[i];
    if (tk.is("{")) {
      const size_t close = matching_bracket(t_, i);
      if (close >= end_) return false;
      s.kind = StmtKind::Compound;
      s.last = close;
      return list(i + 1, close, s.children);
    }
    if (tk.is("if")) {
      if (at(i + 1, "constexpr")) return opaque_with_head(i + 2, s, true);
      if (!head(i + 1, s)) return false;
      s.kind = StmtKind::If;
      Stmt then;
      if (!statement(s.head_close + 1, then)) return false;
      s.last = then.last;
      s.children.push_back(std::move(then));
      if (at(s.last + 1, "else")) {
        Stmt other;
        if (!statement(s.last + 2, other)) return false;
        s.last = other.last;
        s.children.push_back(std::move(other));
      }
      return true;
    }
    if (tk.is("for")) {
      if (!head(i + 1, s)) return false;
      size_t semis[2], n = 0;
      for (size_t k = s.head_open + 1; k < s.head_close; ++k) {
        if (t_[k].is("(") || t_[k].is("[") || t_[k].is("{")) {
          k = matching_bracket(t_, k);
          if (k >= s.head_close) return false;
        } else if (t_[k].is(";")) {
          if (n == 2) return false;
          semis[n++] = k;
        }
      }
      if (n == 0) return opaque_with_head(i + 1, s, false);  // range-for
      if (n != 2) return false;
      s.kind = StmtKind::For;
      s.semi1 = semis[0];
      s.semi2 = semis[1];
      return body(s.head_close + 1, s);
    }
    if (tk.is("while")) {
      if (!head(i + 1, s)) return false;
      s.kind = StmtKind::While;
      return body(s.head_close + 1, s);
    }
    if (tk.is("do")) {
      Stmt b;
      if (!statement(i + 1, b) || !at(b.last + 1, "while") || !head(b.last + 2, s) || !at(s.head_close + 1, ";"))
        return false;
      s.kind = StmtKind::Do;
      s.last = s.head_close + 1;
      s.children.push_back(std::move(b));
      return true;
    }
    if (tk.is("switch")) return opaque_with_head(i + 1, s, false);
    if (tk.is("else") || tk.is("case") || tk.is("default") || (tk.is_identifier() && at(i + 1, ":")))
      return false;  // labels and stray else
    // Up to the `;` outside any bracket (lambdas and braced initializers included).
    for (size_t k = i; k < end_; ++k) {
      if (t_[k].is("(") || t_[k].is("[") || t_[k].is("{")) {
        k = matching_bracket(t_, k);
        if (k >= end_) return false;
      } else if (t_[k].is(";")) {
        s.kind = StmtKind::Simple;
        s.last = k;
        return true;
      }
    }
    return false;
  }

  bool list(size_t first, size_t end, std::vector<Stmt>& out) {
    for (size_t i = first; i < end;) {
      Stmt s;
      if (!statement(i, s) || s.last >= end) return false;
      i = s.last + 1;
      out.push_back(std::move(s));
    }
    return true;
  }

 private:
  bool at(size_t i, const char* s) const { return i < end_ && t_[i].is(s); }

  bool head(size_t open, Stmt& s) {
    if (!at(open, "(")) return false;
    s.head_open = open;
    s.head_close = matching_bracket(t_, open);
    return s.head_close < end_;
  }

  bool body(size_t i, Stmt& s) {
    Stmt b;
    if (!statement(i, b)) return false;
    s.last = b.last;
    s.children.push_back(std::move(b));
    return true;
  }

  // switch (..) S, for (x : r) S, if constexpr (..) S [else S]: extent only.
  bool opaque_with_head(size_t open, Stmt& s, bool may_have_else) {
    if (!head(open, s)) return false;
    Stmt b;
    if (at(s.head_close + 1, "{")) {  // a switch body holds case labels: extent only
      b.last = matching_bracket(t_, s.head_close + 1);
      if (b.last >= end_) return false;
    } else if (!statement(s.head_close + 1, b)) {
      return false;
    }
    s.kind = StmtKind::Opaque;
    s.last = b.last;
    if (may_have_else && at(s.last + 1, "else")) {
      Stmt other;
      if (!statement(s.last + 2, other)) return false;
      s.last = other.last;
    }
    return true;
  }

  const std::vector<Token>& t_;
  size_t end_;
};

}  // namespace

bool parse_statements(const std::vector<Token>& tokens, size_t open, size_t close, std::vector<Stmt>& out) {
  StatementParser p(tokens, close);
  return p.list(open + 1, close, out);
}

}  // namespace mps_shim::frontend
