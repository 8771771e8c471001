#include "backends/host/simd_sites.h"

#include <set>
#include <string_view>

#include "frontend/statements.h"

namespace mps_shim::host {

using frontend::CallKind;
using frontend::Stmt;
using frontend::StmtKind;
using frontend::Token;

namespace {

bool metal_simd_function(std::string_view name) {
  static const std::set<std::string_view> functions = {
      "sum", "product", "min", "max", "and", "or", "xor", "prefix_inclusive_sum", "prefix_exclusive_sum",
      "prefix_inclusive_product", "prefix_exclusive_product", "shuffle", "broadcast", "shuffle_up", "shuffle_down",
      "shuffle_xor", "shuffle_rotate_up", "shuffle_rotate_down", "shuffle_and_fill_up", "shuffle_and_fill_down",
      "broadcast_first", "ballot", "all", "any", "is_first", "active_threads_mask"};
  name = frontend::metal_builtin_name(name);
  if (name == "simd_vote_all") return true;
  for (std::string_view prefix : {"simd_", "quad_"})
    if (name.rfind(prefix, 0) == 0) return functions.count(name.substr(prefix.size())) != 0;
  return false;
}

}  // namespace

size_t metal_call_start(const std::vector<Token>& t, size_t k, size_t first,
                        const std::set<std::string_view>& library_functions) {
  if (k > first && (t[k - 1].is(".") || t[k - 1].is("->"))) return std::string_view::npos;
  if (!(k > first && t[k - 1].is("::"))) return library_functions.count(t[k].text) ? std::string_view::npos : k;
  if (k < first + 2 || !t[k - 2].is("metal")) return std::string_view::npos;
  if (!(k - 2 > first && t[k - 3].is("::"))) return k - 2;
  // `ns::metal::f(` (c10::metal::simd_sum) is another namespace's function; `::metal::f(` is Metal's.
  return k - 3 > first && (t[k - 4].is_identifier() || t[k - 4].is(">")) ? std::string_view::npos : k - 3;
}

void tag_simd_call_sites(const LexedSource& source, const std::vector<FunctionBody>& bodies,
                         std::vector<std::optional<std::string>>& replacements) {
  const std::vector<Token>& t = source.tokens;
  std::set<std::string_view> defined;  // the library's own functions
  for (const FunctionBody& b : bodies) defined.insert(b.name);
  for (size_t k = 1; k + 1 < t.size(); ++k) {
    if (!t[k].is_identifier() || !t[k + 1].is("(") || replacements[k + 1] || !metal_simd_function(t[k].text)) continue;
    if (metal_call_start(t, k, 0, defined) == std::string_view::npos) continue;
    const bool no_args = k + 2 < t.size() && t[k + 2].is(")");
    replacements[k + 1] = "(mps_host::simd::Site<" + std::to_string(k) + ">()" + (no_args ? "" : ", ");
  }
}

namespace {

void wrap_divergent(const std::vector<Token>& t, const std::vector<Stmt>& stmts, const std::vector<bool>& calls_simd,
                    std::vector<std::optional<std::string>>& repl) {
  for (const Stmt& s : stmts) {
    wrap_divergent(t, s.children, calls_simd, repl);
    const bool branching = s.kind == StmtKind::If || s.kind == StmtKind::For || s.kind == StmtKind::While ||
                           s.kind == StmtKind::Do;
    bool simd = false;
    for (size_t k = s.first; k <= s.last && !simd; ++k) simd = calls_simd[k];
    if (!branching || !simd) continue;
    auto text = [&](size_t k) { return repl[k] ? *repl[k] : std::string(t[k].text); };
    repl[s.first] = "{ " + text(s.first);  // a block: the statement may be another one's body
    repl[s.last] = text(s.last) + " mps_host::simd::reconverge<" + std::to_string(s.last) + ">(); }";
  }
}

}  // namespace

void add_reconvergence_points(const LexedSource& source, const std::vector<FunctionBody>& bodies,
                              std::vector<std::optional<std::string>>& replacements) {
  const std::vector<Token>& t = source.tokens;
  std::vector<bool> calls_simd(t.size());  // a call of a SIMD-group function, or of a function that reaches one
  for (size_t k = 0; k + 1 < t.size(); ++k)
    calls_simd[k] = t[k].is_identifier() && t[k + 1].is("(") && frontend::call_kind(source, bodies, t[k].text) == CallKind::Simd;
  for (const FunctionBody& b : bodies) {
    std::vector<Stmt> stmts;
    if (frontend::parse_statements(t, b.open, b.close, stmts)) wrap_divergent(t, stmts, calls_simd, replacements);
  }
}

}  // namespace mps_shim::host
