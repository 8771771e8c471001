#include "frontend/lexer.h"

#include <cctype>
#include <cstdlib>

namespace mps_shim::frontend {

namespace {

bool ident_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == '$'; }
bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$'; }

// Longest first, so "<<=" wins over "<<" and "<".
const char* const kPuncts[] = {"<<=", ">>=", "...", "->*", "::", "->", "++", "--", "<<", ">>", "<=", ">=", "==",
                               "!=", "&&", "||", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "##", ".*"};

class Lexer {
 public:
  Lexer(std::string_view text, const std::string& main_file) : s_(text) { out_.files.push_back(main_file); }

  LexedSource run() {
    bool line_start = true;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c == '\n') { ++line_; ++i_; line_start = true; continue; }
      if (std::isspace(static_cast<unsigned char>(c))) { ++i_; continue; }
      if (line_start && c == '#') { directive(); continue; }
      line_start = false;
      if (c == '/' && peek(1) == '/') { while (i_ < s_.size() && s_[i_] != '\n') ++i_; continue; }
      if (c == '/' && peek(1) == '*') { block_comment(); continue; }
      const size_t start = i_;
      if (ident_start(c)) {
        while (i_ < s_.size() && ident_char(s_[i_])) ++i_;
        // Prefixed literals: u8"...", L'x', R"(...)"
        if (i_ < s_.size() && (s_[i_] == '"' || s_[i_] == '\'')) {
          const std::string_view prefix = s_.substr(start, i_ - start);
          if (prefix == "u8" || prefix == "u" || prefix == "U" || prefix == "L") { quoted(start); continue; }
        }
        push(TokenKind::Identifier, start);
      } else if (std::isdigit(static_cast<unsigned char>(c)) || (c == '.' && std::isdigit(static_cast<unsigned char>(peek(1))))) {
        number();
        push(TokenKind::Number, start);
      } else if (c == '"' || c == '\'') {
        quoted(start);
      } else {
        size_t len = 1;
        for (const char* p : kPuncts) {
          const std::string_view pv(p);
          if (s_.substr(i_, pv.size()) == pv) { len = pv.size(); break; }
        }
        i_ += len;
        push(TokenKind::Punct, start);
      }
    }
    return std::move(out_);
  }

 private:
  char peek(size_t k) const { return i_ + k < s_.size() ? s_[i_ + k] : '\0'; }

  void push(TokenKind kind, size_t start) {
    out_.tokens.push_back({kind, s_.substr(start, i_ - start), start, line_, file_});
  }

  // pp-number, as C++ defines it: a sign may follow e, E, p or P.
  void number() {
    ++i_;
    while (i_ < s_.size()) {
      const char c = s_[i_], prev = s_[i_ - 1];
      const bool exponent_sign = (c == '+' || c == '-') && (prev == 'e' || prev == 'E' || prev == 'p' || prev == 'P');
      if (!(exponent_sign || ident_char(c) || c == '.' || c == '\'')) break;
      ++i_;
    }
  }

  void quoted(size_t start) {
    const char q = s_[i_];
    ++i_;
    while (i_ < s_.size() && s_[i_] != q && s_[i_] != '\n') {
      if (s_[i_] == '\\') ++i_;
      ++i_;
    }
    if (i_ < s_.size() && s_[i_] == q) ++i_;
    push(q == '"' ? TokenKind::String : TokenKind::Char, start);
  }

  void block_comment() {
    i_ += 2;
    while (i_ + 1 < s_.size() && !(s_[i_] == '*' && s_[i_ + 1] == '/')) {
      if (s_[i_] == '\n') ++line_;
      ++i_;
    }
    i_ = std::min(i_ + 2, s_.size());
  }

  // `# <line> "<file>" flags` sets the position of the next line; other
  // directives (#pragma ...) are passed over, continuation lines included.
  void directive() {
    size_t j = i_ + 1;
    while (j < s_.size() && (s_[j] == ' ' || s_[j] == '\t')) ++j;
    if (s_.compare(j, 4, "line") == 0) j += 4;
    while (j < s_.size() && (s_[j] == ' ' || s_[j] == '\t')) ++j;
    const bool marker = j < s_.size() && std::isdigit(static_cast<unsigned char>(s_[j]));
    int new_line = 0;
    std::string name;
    if (marker) {
      new_line = std::atoi(s_.data() + j);
      while (j < s_.size() && std::isdigit(static_cast<unsigned char>(s_[j]))) ++j;
      while (j < s_.size() && (s_[j] == ' ' || s_[j] == '\t')) ++j;
      if (j < s_.size() && s_[j] == '"') {
        const size_t close = s_.find('"', j + 1);
        if (close != std::string_view::npos) name = std::string(s_.substr(j + 1, close - j - 1));
      }
    }
    while (i_ < s_.size() && s_[i_] != '\n') {
      if (s_[i_] == '\\' && peek(1) == '\n') { ++i_; ++line_; }
      ++i_;
    }
    if (marker) {
      line_ = new_line - 1;  // the newline that ends this directive brings it to new_line
      if (!name.empty()) file_ = file_index(name);
    }
  }

  int file_index(const std::string& name) {
    for (size_t k = 0; k < out_.files.size(); ++k)
      if (out_.files[k] == name) return int(k);
    out_.files.push_back(name);
    return int(out_.files.size() - 1);
  }

  std::string_view s_;
  size_t i_ = 0;
  int line_ = 1;
  int file_ = 0;
  LexedSource out_;
};

}  // namespace

LexedSource lex(std::string_view text, const std::string& main_file) { return Lexer(text, main_file).run(); }

size_t matching_bracket(const std::vector<Token>& tokens, size_t open) {
  const std::string_view o = tokens[open].text;
  const std::string_view c = o == "(" ? ")" : o == "[" ? "]" : o == "{" ? "}" : ">";
  int depth = 0;
  for (size_t i = open; i < tokens.size(); ++i) {
    if (tokens[i].is(o)) ++depth;
    else if (tokens[i].is(c)) --depth;
    else if (o == "<" && tokens[i].is(">>")) depth -= 2;
    if (depth <= 0) return i;
  }
  return tokens.size();
}

size_t matching_open_paren(const std::vector<Token>& tokens, size_t close, size_t floor) {
  int depth = 0;
  for (size_t i = close; i > floor; --i) {
    if (tokens[i].is(")")) ++depth;
    else if (tokens[i].is("(") && --depth == 0) return i;
  }
  return floor;
}

bool is_address_space(const Token& t) {
  return t.is("device") || t.is("constant") || t.is("threadgroup") || t.is("thread") || t.is("threadgroup_imageblock") ||
         t.is("ray_data") || t.is("object_data");
}

size_t enclosing_class(const std::vector<Token>& t, size_t i) {
  int depth = 0;
  size_t k = i;
  while (k-- > 0) {
    if (t[k].is("}")) ++depth;
    else if (t[k].is("{") && depth-- == 0) break;
  }
  if (k == size_t(-1)) return t.size();
  for (size_t j = k; j-- > 0 && !t[j].is(";") && !t[j].is("{") && !t[j].is("}");)
    if ((t[j].is("struct") || t[j].is("class") || t[j].is("union")) && j + 1 < k && t[j + 1].is_identifier())
      return j + 1;
  return t.size();
}

bool qualifies_constructor(const std::vector<Token>& t, size_t i) {
  if (i < 3 || !is_address_space(t[i]) || !t[i - 1].is(")")) return false;
  const size_t open = matching_open_paren(t, i - 1, 0);
  if (open == 0 || !t[open - 1].is_identifier()) return false;
  const size_t name = enclosing_class(t, open - 1);
  return name < t.size() && t[name].text == t[open - 1].text;
}

}  // namespace mps_shim::frontend
