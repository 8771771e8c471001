#include "frontend/clang_dialect.h"

#include "frontend/diagnostics.h"

namespace mps_shim::frontend {

namespace {

// Tokens [first, end) as edited so far (literals already made Metal's types).
std::string joined(const std::vector<Token>& t, const std::vector<std::optional<std::string>>& repl, size_t first,
                   size_t end) {
  std::string s;
  for (size_t k = first; k < end; ++k) s += concat(s.empty() ? "" : " ", repl[k] ? *repl[k] : std::string(t[k].text));
  return s;
}

// `NAME [..]... = { [ FIRST ... LAST ] = VALUE }` with `=` at k: the initializer
// becomes `{}` and a loop stores VALUE over the range after the declaration's `;`.
void rewrite_range_designator(const LexedSource& src, size_t eq, std::vector<std::optional<std::string>>& repl) {
  const std::vector<Token>& t = src.tokens;
  const size_t open = eq + 1;
  if (open + 1 >= t.size() || !t[open].is("{") || !t[open + 1].is("[")) return;
  const size_t close_index = matching_bracket(t, open + 1);
  const size_t close = matching_bracket(t, open);
  if (close >= t.size() || close_index >= close || !t[close_index + 1].is("=")) return;
  size_t dots = open + 2;
  while (dots < close_index && !t[dots].is("...")) ++dots;
  if (dots == close_index) return;
  for (size_t k = close_index + 2; k < close; ++k)
    if (t[k].is(",") || t[k].is("[")) {
      if (t[k].is(",") && k + 1 == close) break;  // a trailing comma
      error_at(src, t[k], "a GNU range designator must be the whole initializer here "
                          "(`T a[N] = { [first ... last] = value };`)");
    }
  // The declared name: before the `[extent]` groups ending at `=`.
  size_t name = eq;
  while (name > 0 && t[name - 1].is("]")) {
    size_t k = name - 1;
    int depth = 0;
    for (; k > 0; --k) {
      if (t[k].is("]")) ++depth;
      else if (t[k].is("[") && --depth == 0) break;
    }
    name = k;
  }
  if (name == 0 || !t[name - 1].is_identifier() || close + 1 >= t.size() || !t[close + 1].is(";"))
    error_at(src, t[open + 1], "a GNU range designator is supported in `T name[N] = { [first ... last] = value };`");
  const std::string var(t[name - 1].text);
  const std::string first = joined(t, repl, open + 2, dots), last = joined(t, repl, dots + 1, close_index);
  const std::string value = joined(t, repl, close_index + 2, t[close - 1].is(",") ? close - 1 : close);
  repl[open] = "{";
  for (size_t k = open + 1; k < close; ++k) repl[k] = "";
  repl[close + 1] = concat("; for (long mps_i = (", first, "); mps_i <= (", last, "); ++mps_i) ", var,
                           "[mps_i] = (", value, ");");
}

// Clang accepts `template <>` specialising a member function template inside
// its class; C++ does not. Without it the member is a plain overload, which
// overload resolution prefers for the same arguments, as the specialisation.
void rewrite_member_specialisation(const LexedSource& src, size_t k, std::vector<std::optional<std::string>>& repl) {
  const std::vector<Token>& t = src.tokens;
  if (k + 2 >= t.size() || !t[k + 1].is("<") || !t[k + 2].is(">") || enclosing_class(t, k) >= t.size()) return;
  for (size_t j = k; j <= k + 2; ++j) repl[j] = "";
}

}  // namespace

void rewrite_clang_dialect(const LexedSource& source, std::vector<std::optional<std::string>>& replacements) {
  const std::vector<Token>& t = source.tokens;
  for (size_t k = 0; k + 2 < t.size(); ++k) {
    if (t[k].is("=") && t[k + 1].is("{") && t[k + 2].is("[")) rewrite_range_designator(source, k, replacements);
    if (t[k].is("template")) rewrite_member_specialisation(source, k, replacements);
  }
}

}  // namespace mps_shim::frontend
