#include "frontend/function_constants.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "frontend/call_graph.h"
#include "frontend/diagnostics.h"

namespace mps_shim::frontend {

namespace {

struct ScalarInfo {
  const char* name;  // Metal's spelling
  uint32_t code;     // MTLDataType of the scalar; vectors of N lanes are code + N - 1
  char kind;
  uint32_t size;
  const char* aliases[4];
};

// Metal's scalar types with their MTLDataType codes.
const ScalarInfo kScalars[] = {
    {"bool", 53, 'b', 1, {}},
    {"char", 45, 'i', 1, {"int8_t", "signed char"}},
    {"uchar", 49, 'u', 1, {"uint8_t", "unsigned char"}},
    {"short", 37, 'i', 2, {"int16_t", "signed short"}},
    {"ushort", 41, 'u', 2, {"uint16_t", "unsigned short"}},
    {"int", 29, 'i', 4, {"int32_t", "signed", "signed int"}},
    {"uint", 33, 'u', 4, {"uint32_t", "unsigned", "unsigned int"}},
    {"long", 81, 'i', 8, {"int64_t", "signed long"}},
    {"ulong", 85, 'u', 8, {"uint64_t", "unsigned long", "size_t"}},
    {"half", 16, 'h', 2, {}},
    {"bfloat", 121, 'B', 2, {"bfloat16_t"}},
    {"float", 3, 'f', 4, {}},
};

ConstantType make_type(const ScalarInfo& s, uint32_t lanes) {
  ConstantType t;
  t.code = s.code + lanes - 1;
  t.name = lanes == 1 ? s.name : concat(s.name, lanes);
  t.scalar = s.kind;
  t.scalar_size = s.size;
  t.lanes = lanes;
  return t;
}

bool is_qualifier_word(const Token& t) {
  return t.is("constant") || t.is("constexpr") || t.is("const") || t.is("static") || t.is("volatile");
}

// An integer constant expression of literals: + - * / % << >> & | ^ ~ ! and
// parentheses, as macros such as `FC_BIN + 2` leave them.
class IndexExpression {
 public:
  IndexExpression(const std::vector<Token>& t, size_t first, size_t end) : t_(t), pos_(first), end_(end) {}
  std::optional<int64_t> value() {
    const std::optional<int64_t> v = binary(0);
    return pos_ == end_ ? v : std::nullopt;
  }

 private:
  static int precedence(std::string_view op) {
    static const std::map<std::string_view, int> kOps = {{"|", 1}, {"^", 2}, {"&", 3}, {"<<", 4}, {">>", 4},
                                                         {"+", 5}, {"-", 5}, {"*", 6}, {"/", 6}, {"%", 6}};
    auto it = kOps.find(op);
    return it == kOps.end() ? 0 : it->second;
  }
  std::optional<int64_t> binary(int min_precedence) {
    std::optional<int64_t> lhs = unary();
    while (lhs && pos_ < end_) {
      const std::string_view op = t_[pos_].text;
      const int p = precedence(op);
      if (p == 0 || p <= min_precedence) break;
      ++pos_;
      const std::optional<int64_t> rhs = binary(p);
      if (!rhs) return std::nullopt;
      const int64_t a = *lhs, b = *rhs;
      if ((op == "/" || op == "%") && b == 0) return std::nullopt;
      lhs = op == "|" ? a | b : op == "^" ? a ^ b : op == "&" ? a & b : op == "<<" ? a << (b & 63)
          : op == ">>" ? a >> (b & 63) : op == "+" ? a + b : op == "-" ? a - b : op == "*" ? a * b
          : op == "/" ? a / b : a % b;
    }
    return lhs;
  }
  std::optional<int64_t> unary() {
    if (pos_ >= end_) return std::nullopt;
    const Token& tk = t_[pos_];
    if (tk.is("-") || tk.is("+") || tk.is("~") || tk.is("!")) {
      ++pos_;
      const std::optional<int64_t> v = unary();
      if (!v) return v;
      return tk.is("-") ? -*v : tk.is("~") ? ~*v : tk.is("!") ? int64_t(!*v) : *v;
    }
    if (tk.is("(")) {
      ++pos_;
      const std::optional<int64_t> v = binary(0);
      if (!v || pos_ >= end_ || !t_[pos_].is(")")) return std::nullopt;
      ++pos_;
      return v;
    }
    if (tk.kind != TokenKind::Number) return std::nullopt;
    ++pos_;
    std::string digits(tk.text);
    while (!digits.empty() && std::strchr("uUlL", digits.back())) digits.pop_back();
    if (digits.empty() || digits.find_first_of(".eEpP") != std::string::npos) return std::nullopt;
    const bool hex = digits.size() > 1 && (digits[1] == 'x' || digits[1] == 'X');
    const bool binary_literal = digits.size() > 1 && (digits[1] == 'b' || digits[1] == 'B');
    const int base = hex ? 16 : binary_literal ? 2 : digits[0] == '0' ? 8 : 10;
    char* endp = nullptr;
    const char* begin = digits.c_str() + (hex || binary_literal ? 2 : 0);
    const unsigned long long v = std::strtoull(begin, &endp, base);
    if (*endp != '\0') return std::nullopt;
    return int64_t(v);
  }

  const std::vector<Token>& t_;
  size_t pos_, end_;
};

class ConstantFinder {
 public:
  ConstantFinder(const LexedSource& src, ParsedLibrary& lib) : src_(src), t_(src.tokens), lib_(lib) {}

  void run() {
    scan_namespace_scope();
    if (lib_.function_constants.empty()) {
      for (size_t i = 0; i < t_.size(); ++i)
        if (t_[i].is("is_function_constant_defined"))
          error(i, "is_function_constant_defined names a function constant, but this library declares none");
      return;
    }
    find_defined_checks();
    for (KernelDecl& k : lib_.kernels) k.function_constants = used_by(k);
  }

 private:
  [[noreturn]] void error(size_t tok, const std::string& msg) const {
    error_at(src_, t_[std::min(tok, t_.size() - 1)], msg);
  }

  std::string text(size_t first, size_t end) const {
    std::string s;
    for (size_t i = first; i < end; ++i) {
      if (!s.empty() && t_[i].is_identifier() && t_[i - 1].is_identifier()) s += ' ';
      s += t_[i].text;
    }
    return s;
  }

  // Statements at namespace scope (outside functions, classes and
  // initializers): function constant declarations, and variables whose
  // initializers may read them.
  void scan_namespace_scope() {
    size_t statement = 0;                // first token of the current namespace-scope statement
    for (size_t i = 0; i < t_.size(); ++i) {
      const Token& tk = t_[i];
      if (tk.is("{")) {
        size_t k = i;  // `namespace a::b {`, `namespace {`, `extern "C" {`
        while (k > 0 && (t_[k - 1].is_identifier() || t_[k - 1].is("::")) && !t_[k - 1].is("namespace")) --k;
        const bool ns = (k > 0 && t_[k - 1].is("namespace")) || (i >= 1 && t_[i - 1].kind == TokenKind::String);
        if (!ns) {  // a function body, class or initializer: skip it whole
          const size_t close = matching_bracket(t_, i);
          if (close >= t_.size()) return;
          i = close;
          if (close + 1 < t_.size() && !t_[close + 1].is(";") && !t_[close + 1].is(",")) statement = close + 1;
          continue;
        }
        statement = i + 1;
        continue;
      }
      if (tk.is("}")) {  // a namespace's end
        statement = i + 1;
        continue;
      }
      if (tk.is("(") || tk.is("[")) {  // attributes, parameter lists: read as a whole below
        const size_t close = matching_bracket(t_, i);
        if (close >= t_.size()) return;
        i = close;
        continue;
      }
      if (tk.is(";")) {
        read_statement(statement, i);
        statement = i + 1;
      }
    }
  }

  // The namespace-scope statement of tokens [first, semicolon].
  void read_statement(size_t first, size_t semicolon) {
    for (size_t k = first; k + 4 < semicolon; ++k)
      if (t_[k].is("[") && t_[k + 1].is("[") && t_[k + 2].is("function_constant") && t_[k + 3].is("(")) {
        declare(first, k, semicolon);
        return;
      }
    // `constant T x = <expr>;`: x carries the constants its initializer names. Only an `=` of the
    // declaration itself: not a template parameter's default (`template <class A = B<T>> struct S {...};`)
    // nor one inside a class body, which would make every name of that body the initializer's.
    int angles = 0;
    for (size_t k = first + 1; k < semicolon; ++k) {
      if (t_[k].is("{") || t_[k].is("(") || t_[k].is("[")) {
        k = matching_bracket(t_, k);
        continue;
      }
      if (t_[k].is("<")) ++angles;
      else if (t_[k].is(">")) --angles;
      else if (t_[k].is(">>")) angles -= 2;
      if (!t_[k].is("=") || angles > 0) continue;
      if (!t_[k - 1].is_identifier()) return;
      std::set<std::string> names;
      for (size_t j = k + 1; j < semicolon; ++j)
        if (t_[j].is_identifier()) names.insert(std::string(t_[j].text));
      initializers_[std::string(t_[k - 1].text)] = std::move(names);
      return;
    }
  }

  // `constant T name [[function_constant(index)]];` with `[[` at `attr`.
  void declare(size_t first, size_t attr, size_t semicolon) {
    size_t k = first;
    while (k < attr && is_qualifier_word(t_[k])) ++k;
    if (attr < k + 2 || !t_[attr - 1].is_identifier())
      error(attr, "a function constant is declared as `constant T name [[function_constant(index)]];`");
    FunctionConstant c;
    c.name = std::string(t_[attr - 1].text);
    c.type_text = text(k, attr - 1);
    c.first = first;
    c.last = semicolon;
    c.line = t_[attr - 1].line;
    const size_t lparen = attr + 3, rparen = matching_bracket(t_, lparen);
    const size_t attr_close = matching_bracket(t_, attr);
    if (rparen >= t_.size() || attr_close >= t_.size() || attr_close + 1 != semicolon)
      error(attr, concat("function constant '", c.name, "': `;` expected after its attribute (Metal gives a "
                                                         "function constant no initializer; its value is set when "
                                                         "a function is made)"));
    const std::optional<int64_t> index = IndexExpression(t_, lparen + 1, rparen).value();
    if (!index || *index < 0 || *index > 65535)
      error(lparen + 1, concat("function constant '", c.name, "': the index '", text(lparen + 1, rparen),
                               "' is not an integer constant from 0 to 65535"));
    c.index = uint32_t(*index);
    const std::optional<ConstantType> type = constant_type_from_name(c.type_text);
    if (!type)
      error(attr - 1, concat("function constant '", c.name, "' has type '", c.type_text,
                             "'; a function constant is a Metal scalar or vector (bool, char, short, int, long and "
                             "their unsigned forms, half, bfloat, float; 2 to 4 lanes)"));
    c.type = *type;
    for (const FunctionConstant& other : lib_.function_constants) {
      if (other.index == c.index)
        error(attr - 1, concat("function constants '", other.name, "' (line ", other.line, ") and '", c.name,
                               "' share the index ", c.index));
      if (other.name == c.name)
        error(attr - 1, concat("function constant '", c.name, "' is declared twice (line ", other.line, ")"));
    }
    by_name_[c.name] = lib_.function_constants.size();
    lib_.function_constants.push_back(std::move(c));
  }

  void find_defined_checks() {
    for (size_t i = 0; i + 3 < t_.size(); ++i) {
      if (!t_[i].is("is_function_constant_defined")) continue;
      if (!t_[i + 1].is("(") || !t_[i + 2].is_identifier() || !t_[i + 3].is(")"))
        error(i, "is_function_constant_defined takes the name of a function constant");
      auto it = by_name_.find(std::string(t_[i + 2].text));
      if (it == by_name_.end())
        error(i + 2, concat("is_function_constant_defined: '", t_[i + 2].text, "' is not a function constant"));
      lib_.function_constants[it->second].optional = true;
      lib_.defined_checks.push_back({i, i + 3, it->second});
    }
  }

  // The constants a kernel may read: named in the bodies it may reach, in its
  // parameters' attributes, or through namespace-scope variables' initializers.
  std::vector<size_t> used_by(const KernelDecl& k) {
    auto memo = used_by_body_.find(k.body_open);
    if (memo == used_by_body_.end()) {
      std::set<std::string> names;
      for (const FunctionBody* b : reachable_bodies(src_, lib_.bodies, k.body_open))
        for (size_t i = b->open + 1; i < b->close; ++i)
          if (t_[i].is_identifier()) names.insert(std::string(t_[i].text));
      std::vector<std::string> work(names.begin(), names.end());
      while (!work.empty()) {  // through the variables they name
        auto it = initializers_.find(work.back());
        work.pop_back();
        if (it == initializers_.end()) continue;
        for (const std::string& n : it->second)
          if (names.insert(n).second) work.push_back(n);
      }
      std::set<size_t> used;
      for (const std::string& n : names)
        if (auto c = by_name_.find(n); c != by_name_.end()) used.insert(c->second);
      memo = used_by_body_.emplace(k.body_open, std::move(used)).first;
    }
    std::set<size_t> used = memo->second;
    for (const ParamDecl& p : k.params) {
      if (p.function_constant.empty()) continue;
      auto c = by_name_.find(p.function_constant);
      if (c == by_name_.end())
        error_at(src_, t_[k.body_open], concat("kernel '", k.host_name, "': parameter '", p.name, "' is declared with "
                                               "[[function_constant(", p.function_constant, ")]], which names no "
                                               "function constant of the library"));
      used.insert(c->second);
    }
    return {used.begin(), used.end()};
  }

  const LexedSource& src_;
  const std::vector<Token>& t_;
  ParsedLibrary& lib_;
  std::map<std::string, size_t> by_name_;
  std::map<std::string, std::set<std::string>> initializers_;  // namespace-scope variable -> names it reads
  std::map<size_t, std::set<size_t>> used_by_body_;           // by kernel definition
};

std::string hex(uint64_t v) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  do {
    s.insert(s.begin(), digits[v & 15]);
    v >>= 4;
  } while (v);
  return "0x" + s;
}

uint64_t lane_bits(const ConstantType& type, const std::string& value, uint32_t lane) {
  uint64_t bits = 0;
  std::memcpy(&bits, value.data() + size_t(lane) * type.scalar_size, type.scalar_size);  // little-endian hosts
  return bits;
}

int64_t sign_extend(uint64_t bits, uint32_t size) {
  const unsigned shift = 64 - 8 * size;
  return int64_t(bits << shift) >> shift;
}

// One lane as a C++ expression of the scalar type.
std::string lane_cxx(const ConstantType& type, const std::string& value, uint32_t lane) {
  const uint64_t bits = lane_bits(type, value, lane);
  const std::string scalar = constant_type_from_code(type.code - type.lanes + 1)->name;
  switch (type.scalar) {
    case 'b': return bits ? "true" : "false";
    case 'i': {
      const int64_t v = sign_extend(bits, type.scalar_size);
      return v == INT64_MIN ? concat(scalar, "(-9223372036854775807LL - 1)") : concat(scalar, "(", v, "LL)");
    }
    case 'u': return concat(scalar, "(", bits, "ULL)");
    case 'h': return concat("__builtin_bit_cast(half, (unsigned short)", hex(bits), "u)");
    case 'B': return concat("metal::bfloat(__builtin_bit_cast(float, ", hex(bits << 16), "u))");  // exact
    default: return concat("__builtin_bit_cast(float, ", hex(bits), "u)");
  }
}

}  // namespace

std::optional<ConstantType> constant_type_from_code(uint32_t code) {
  for (const ScalarInfo& s : kScalars)
    if (code >= s.code && code < s.code + 4) return make_type(s, code - s.code + 1);
  return std::nullopt;
}

std::optional<ConstantType> constant_type_from_name(const std::string& text) {
  std::string t = text;
  if (t.rfind("metal::", 0) == 0) t = t.substr(7);
  for (const ScalarInfo& s : kScalars) {
    if (t == s.name) return make_type(s, 1);
    for (const char* alias : s.aliases)
      if (alias && t == alias) return make_type(s, 1);
    const size_t n = std::strlen(s.name);
    if (t.size() == n + 1 && t.compare(0, n, s.name) == 0 && t[n] >= '2' && t[n] <= '4')
      return make_type(s, uint32_t(t[n] - '0'));
  }
  return std::nullopt;
}

void find_function_constants(const LexedSource& source, ParsedLibrary& library) {
  ConstantFinder(source, library).run();
}

void specialise_function_constants(const LexedSource& source, const ParsedLibrary& library, const ConstantValues& values,
                                   TokenEdits& edits) {
  const std::vector<Token>& t = source.tokens;
  auto blank = [&](size_t first, size_t last) {
    for (size_t i = first; i <= last; ++i) edits[i] = std::string(t[i].text.size(), ' ');
  };
  for (size_t c = 0; c < library.function_constants.size(); ++c) {
    const FunctionConstant& fc = library.function_constants[c];
    const std::optional<std::string>& value = c < values.size() ? values[c] : std::nullopt;
    // bfloat and the vector types are not literal types: their constants are const, not constexpr.
    const bool literal = fc.type.lanes == 1 && fc.type.scalar != 'B';
    std::string decl = concat(literal ? "constexpr " : "const ", fc.type_text, " ", fc.name);
    if (!value) {  // undefined: Metal leaves its value undefined; here it is zero
      decl += "{};";
    } else {
      std::string lanes;
      for (uint32_t l = 0; l < fc.type.lanes; ++l) lanes += (l ? ", " : "") + lane_cxx(fc.type, *value, l);
      decl += concat(" = ", fc.type.lanes == 1 ? lanes : concat("metal::", fc.type.name, "(", lanes, ")"), ";");
    }
    blank(fc.first, fc.last);
    edits[fc.first] = decl;
  }
  for (const DefinedCheck& d : library.defined_checks) {
    blank(d.first, d.last);
    const bool defined = d.constant < values.size() && values[d.constant].has_value();
    edits[d.first] = defined ? "true" : "false";
  }
}

std::string constant_value_text(const ConstantType& type, const std::string& value) {
  std::string out;
  for (uint32_t l = 0; l < type.lanes; ++l) {
    const uint64_t bits = lane_bits(type, value, l);
    std::string v;
    if (type.scalar == 'b') v = bits ? "true" : "false";
    else if (type.scalar == 'i') v = std::to_string(sign_extend(bits, type.scalar_size));
    else if (type.scalar == 'u') v = std::to_string(bits);
    else if (type.scalar == 'f') {
      float f;
      const uint32_t b32 = uint32_t(bits);
      std::memcpy(&f, &b32, 4);
      v = concat(f);
    } else {
      v = hex(bits);  // half, bfloat: their bits
    }
    out += (l ? ", " : "") + v;
  }
  return type.lanes == 1 ? out : "(" + out + ")";
}

}  // namespace mps_shim::frontend
