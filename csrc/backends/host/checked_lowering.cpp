#include "backends/host/checked_lowering.h"

#include <set>
#include <string>

#include "util/error.h"

namespace mps_shim::host {

using frontend::Token;
using frontend::TokenEdits;

namespace {

constexpr const char* kPointer = "mps_host::checked::dptr<";

bool is_space(const Token& t) { return t.is("device") || t.is("constant"); }

std::string current(const std::vector<Token>& toks, const TokenEdits& edits, size_t k) {
  return edits[k] ? *edits[k] : std::string(toks[k].text);
}

// Tokens [first, end) spell `[const] space [const] TYPE [const] *` with one `*`
// at the end and no atomic pointee; returns the `*`'s index or 0.
size_t pointer_type(const std::vector<Token>& toks, size_t first, size_t end, bool group = false) {
  bool space = false;
  size_t star = 0;
  for (size_t k = first; k < end; ++k) {
    const Token& t = toks[k];
    if (is_space(t) || (group && t.is("threadgroup"))) {
      space = true;
    } else if (t.is("<")) {
      const size_t close = frontend::matching_bracket(toks, k);
      if (close >= end) return 0;
      for (size_t j = k; j < close; ++j)
        if (toks[j].is_identifier() && toks[j].text.find("atomic") != std::string_view::npos) return 0;
      k = close;
    } else if (t.is("*")) {
      if (star) return 0;  // T**: left plain
      star = k;
    } else if (t.is_identifier()) {
      if (star || t.text.find("atomic") != std::string_view::npos || t.is("thread") || t.is("threadgroup")) return 0;
    } else if (!t.is("::")) {
      return 0;
    }
  }
  return space && star + 1 == end ? star : 0;
}

void wrap(const std::vector<Token>& toks, TokenEdits& edits, size_t first, size_t star) {
  edits[first] = kPointer + current(toks, edits, first);
  edits[star] = std::string(">");
}

// A kernel's parameter list (lparen, rparen): each `space T* name [[...]]`; their names go to `names`.
void wrap_params(const std::vector<Token>& toks, TokenEdits& edits, size_t lparen, size_t rparen,
                 std::vector<std::string_view>& names) {
  size_t start = lparen + 1;
  int depth = 0;
  for (size_t k = lparen + 1; k <= rparen; ++k) {
    const Token& t = toks[k];
    if (k < rparen && (t.is("(") || t.is("[") || t.is("{"))) ++depth;
    else if (k < rparen && (t.is(")") || t.is("]") || t.is("}"))) --depth;
    else if (k < rparen && t.is("<")) k = frontend::matching_bracket(toks, k);
    if (k < rparen && !(depth == 0 && t.is(","))) continue;
    size_t end = k;  // the parameter: [start, end); its name is the last identifier before `[[`
    for (size_t j = start; j + 1 < k; ++j)
      if (toks[j].is("[") && toks[j + 1].is("[")) {
        end = j;
        break;
      }
    if (end > start + 1 && toks[end - 1].is_identifier()) {
      size_t type_end = end - 1;
      if (toks[type_end - 1].is("const")) --type_end;  // `T* const p`: the wrapper is const
      // `threadgroup T* p [[threadgroup(n)]]` too: bounded by the length set for n
      bool group_param = false;
      for (size_t j = end; j + 2 < k; ++j) group_param |= toks[j].is("threadgroup") && toks[j + 1].is("(");
      if (const size_t star = pointer_type(toks, start, type_end, group_param)) {
        wrap(toks, edits, start, star);
        names.push_back(toks[end - 1].text);
      }
    }
    start = k + 1;
  }
}

// Token k is a whole argument of a call (`f(a, NAME)`, not a cast's operand,
// sizeof or a control statement's head): where a template may deduce `T*`
// from it, which a class cannot give.
bool call_argument(const std::vector<Token>& toks, size_t k, size_t floor) {
  if (!(toks[k - 1].is("(") || toks[k - 1].is(",")) || !(toks[k + 1].is(")") || toks[k + 1].is(","))) return false;
  if (toks[k - 1].is(".") || toks[k - 1].is("->")) return false;
  int depth = 0;
  size_t open = k;
  for (size_t j = k; j-- > floor;) {
    if (toks[j].is(")") || toks[j].is("]") || toks[j].is("}")) ++depth;
    else if (toks[j].is("(") || toks[j].is("[") || toks[j].is("{")) {
      if (depth == 0) {
        open = j;
        break;
      }
      --depth;
    }
  }
  if (open == k || !toks[open].is("(") || open == 0) return false;
  const Token& callee = toks[open - 1];
  static const std::set<std::string_view> not_calls = {"if", "while", "for", "switch", "return", "sizeof",
                                                       "alignof", "decltype", "static_assert"};
  if (callee.is(">")) {  // `f<T>(x)`, but not a cast's operand
    const size_t lt = frontend::matching_open_paren(toks, open - 1, floor);
    (void)lt;
    for (size_t j = open - 1; j > floor && j + 40 > open; --j)
      if (toks[j].is("reinterpret_cast") || toks[j].is("static_cast") || toks[j].is("const_cast")) return false;
    return true;
  }
  return callee.is_identifier() && !not_calls.count(callee.text);
}

// Uses of `name` in tokens (from, to) as whole call arguments read the plain pointer.
void plain_in_calls(const std::vector<Token>& toks, TokenEdits& edits, std::string_view name, size_t from, size_t to,
                    const char* suffix) {
  for (size_t k = from + 1; k < to; ++k)
    if (toks[k].is_identifier() && toks[k].text == name && !edits[k] && call_argument(toks, k, from))
      edits[k] = std::string(name) + suffix;
}

bool expression_start(const Token& t) {
  return t.is_identifier() || t.kind == frontend::TokenKind::Number || t.is("(") || t.is("&") || t.is("*") ||
         t.is("-") || t.is("+");
}

}  // namespace

void wrap_device_pointers(const frontend::LexedSource& source, const frontend::ParsedLibrary& library,
                          const std::vector<frontend::KernelDecl>& kernels, TokenEdits& edits) {
  const std::vector<Token>& toks = source.tokens;
  std::set<size_t> bodies;
  for (const frontend::KernelDecl& k : kernels) bodies.insert(k.body_open);
  for (const frontend::KernelDefinition& d : library.definitions) {
    if (!bodies.count(d.body_open)) continue;
    std::vector<std::string_view> names;
    wrap_params(toks, edits, d.lparen, d.rparen, names);
    // `[const] space T* name =` at the start of a statement of the kernel's body.
    for (size_t k = d.body_open + 1; k < d.last; ++k) {
      const Token& prev = toks[k - 1];
      if (!(prev.is(";") || prev.is("{") || prev.is("}") || (prev.is("(") && k >= 2 && toks[k - 2].is("for"))))
        continue;
      if (!is_space(toks[k]) && !(toks[k].is("const") && is_space(toks[k + 1]))) continue;
      size_t j = k;
      while (j < d.last && !toks[j].is("*") && !toks[j].is(";") && !toks[j].is("=")) {
        if (toks[j].is("<")) j = frontend::matching_bracket(toks, j);
        ++j;
      }
      if (j >= d.last || !toks[j].is("*")) continue;
      size_t name = j + 1;
      if (toks[name].is("const")) ++name;
      if (!toks[name].is_identifier() || !(toks[name + 1].is("=") || toks[name + 1].is(";"))) continue;
      if (const size_t star = pointer_type(toks, k, j + 1)) {
        wrap(toks, edits, k, star);
        names.push_back(toks[name].text);
      }
    }
    // A checked pointer passed to a function reaches it as the plain pointer (a template deduces `T*`).
    for (std::string_view n : names) plain_in_calls(toks, edits, n, d.body_open, d.last, ".p");
  }
  // Casts to address-space pointers, anywhere: `(space T*) x`, `reinterpret_cast<space T*>(x)`.
  for (size_t k = 0; k + 3 < toks.size(); ++k) {
    if (toks[k].is("(") && is_space(toks[k + 1])) {
      const size_t close = frontend::matching_bracket(toks, k);
      if (close >= toks.size() || close + 1 >= toks.size() || !expression_start(toks[close + 1])) continue;
      if (k > 0 && (toks[k - 1].is_identifier() || toks[k - 1].is(">"))) continue;  // a call or declarator list
      if (const size_t star = pointer_type(toks, k + 1, close)) wrap(toks, edits, k + 1, star);
    } else if ((toks[k].is("reinterpret_cast") || toks[k].is("static_cast")) && toks[k + 1].is("<")) {
      const size_t close = frontend::matching_bracket(toks, k + 1);
      if (close >= toks.size() || !toks[close + 1].is("(")) continue;
      if (const size_t star = pointer_type(toks, k + 2, close)) {
        edits[k] = std::string("mps_host::checked::cast");
        wrap(toks, edits, k + 2, star);
      }
    }
  }
}

void wrap_threadgroup_arrays(const frontend::LexedSource& source, const frontend::ParsedLibrary& library,
                             TokenEdits& edits) {
  const std::vector<Token>& toks = source.tokens;
  for (const frontend::ThreadgroupDecl& d : library.threadgroup_decls) {
    if (!d.function || d.objects.size() != 1) continue;  // namespace scope, or `a[N], b[M]`: left plain
    const std::string& name = d.objects[0].name;
    size_t at = 0;
    for (size_t k = d.keyword + 1; k + 1 < d.end; ++k)
      if (toks[k].is_identifier() && toks[k].text == name && toks[k + 1].is("[")) {
        at = k;
        break;
      }
    if (!at) continue;
    bool plain = false;
    for (size_t k = d.keyword + 1; k < at; ++k)
      plain |= toks[k].text.find("atomic") != std::string_view::npos || toks[k].is("*") || toks[k].is("&");
    const size_t first_close = frontend::matching_bracket(toks, at + 1);
    if (plain || first_close >= d.end || first_close == at + 2 - 1) continue;
    size_t last = first_close;  // `a[N][M]...`: the element is T[M]...
    while (last + 1 < d.end && toks[last + 1].is("[")) last = frontend::matching_bracket(toks, last + 1);
    if (last + 1 != d.end) continue;
    std::string extent, rest;
    for (size_t k = at + 2; k < first_close; ++k) extent += current(toks, edits, k) + " ";
    for (size_t k = first_close + 1; k <= last; ++k) rest += current(toks, edits, k) + " ";
    if (extent.find_first_not_of(' ') == std::string::npos) continue;  // `a[]`
    const std::string tag = "mps_tg_" + std::to_string(d.keyword);
    edits[d.keyword] = concat("struct ", tag, " { static const char* name() { return \"", name, "\"; } }; ",
                              current(toks, edits, d.keyword), " mps_host::checked::tg_array<");
    edits[at] = concat(rest, ", (", extent, "), ", tag, "> ", name);
    for (size_t k = at + 1; k <= last; ++k) edits[k] = std::string("");
    // Passed to a function, the array is a plain pointer (a template deduces `T*`; writes through it are unseen).
    plain_in_calls(toks, edits, name, d.end, d.block_close, ".escape()");
  }
}

}  // namespace mps_shim::host
