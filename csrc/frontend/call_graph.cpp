#include "frontend/call_graph.h"

#include <map>
#include <set>

namespace mps_shim::frontend {

bool is_simdgroup_matrix_function(std::string_view name) {
  return name == "simdgroup_load" || name == "simdgroup_store" || name == "simdgroup_multiply" ||
         name == "simdgroup_multiply_accumulate";
}

namespace {

bool is_qualifier(const Token& t) {
  return t.is("const") || t.is("volatile") || is_address_space(t) || t.is("noexcept") || t.is("override");
}

// Barriers and SIMD-group functions; and polling an atomic, since a thread
// may spin until another thread of its group stores (only fibers can let the
// other one run, and bound a wait that never ends).
bool is_threadgroup_function(std::string_view name) {
  name = metal_builtin_name(name);
  return name == "threadgroup_barrier" || name == "simdgroup_barrier" || is_simdgroup_matrix_function(name) ||
         name.rfind("simd_", 0) == 0 ||
         name.rfind("quad_", 0) == 0 || name == "atomic_load_explicit" ||
         name == "atomic_compare_exchange_weak_explicit";
}

bool is_unevaluated(const Token& t) {
  return t.is("decltype") || t.is("sizeof") || t.is("alignof") || t.is("noexcept") || t.is("typeid") ||
         t.is("__typeof__");
}

bool is_simd_function(std::string_view name) {
  name = metal_builtin_name(name);
  return name.rfind("simd_", 0) == 0 || name.rfind("quad_", 0) == 0;
}

bool is_waiting_function(std::string_view name) { return is_threadgroup_function(name) && !is_simd_function(name); }

// Walks the calls of the body at body_open and of every library function they
// may reach (each body once, the start first, into *reached when given) until
// stop(name) is true for a called name; returns whether it was.
template <typename Stop>
bool walk_calls(const LexedSource& source, const std::vector<FunctionBody>& bodies, size_t body_open, Stop stop,
                std::vector<const FunctionBody*>* reached = nullptr) {
  const std::vector<Token>& t = source.tokens;
  std::multimap<std::string, const FunctionBody*> by_name;
  const FunctionBody* start = nullptr;
  for (const FunctionBody& b : bodies) {
    by_name.emplace(b.name, &b);
    if (b.open == body_open) start = &b;
  }
  if (!start) return false;
  std::vector<const FunctionBody*> work{start};
  std::set<const FunctionBody*> seen{start};
  while (!work.empty()) {
    const FunctionBody* b = work.back();
    work.pop_back();
    if (reached) reached->push_back(b);
    for (size_t i = b->open + 1; i < b->close; ++i) {
      if (!t[i].is_identifier() || !(t[i + 1].is("(") || t[i + 1].is("<"))) continue;
      if (is_unevaluated(t[i]) && t[i + 1].is("(")) {  // names a call it never makes
        i = matching_bracket(t, i + 1);
        continue;
      }
      if (stop(t[i].text)) return true;
      auto range = by_name.equal_range(std::string(t[i].text));
      for (auto it = range.first; it != range.second; ++it)
        if (seen.insert(it->second).second) work.push_back(it->second);
    }
  }
  return false;
}

bool reaches(const LexedSource& source, const std::vector<FunctionBody>& bodies, size_t body_open,
             bool (*is_target)(std::string_view)) {
  return walk_calls(source, bodies, body_open, is_target);
}

}  // namespace

std::string_view metal_builtin_name(std::string_view name) {
  constexpr std::string_view kPrefix = "__metal_";
  if (name.rfind(kPrefix, 0) != 0) return name;
  const std::string_view rest = name.substr(kPrefix.size());
  return rest.rfind("simd_", 0) == 0 || rest.rfind("quad_", 0) == 0 ? rest : name;
}

std::vector<FunctionBody> function_bodies(const LexedSource& source) {
  const std::vector<Token>& t = source.tokens;
  std::vector<FunctionBody> out;
  for (size_t i = 0; i < t.size(); ++i) {
    if (!t[i].is("{")) continue;
    size_t k = i;
    while (k > 0 && is_qualifier(t[k - 1])) --k;
    if (k == 0 || !t[k - 1].is(")")) continue;  // a namespace, class or initializer: look inside
    const size_t open = matching_open_paren(t, k - 1, 0);
    const size_t close = matching_bracket(t, i);
    if (close >= t.size()) break;
    if (open > 0 && t[open - 1].is_identifier()) out.push_back({std::string(t[open - 1].text), i, close});
    i = close;  // nested braces belong to this body
  }
  return out;
}

bool reaches_threadgroup_functions(const LexedSource& source, const std::vector<FunctionBody>& bodies,
                                   size_t body_open) {
  return reaches(source, bodies, body_open, is_threadgroup_function);
}

CallKind call_kind(const LexedSource& source, const std::vector<FunctionBody>& bodies, std::string_view name) {
  if (is_waiting_function(name)) return CallKind::Wait;
  CallKind kind = is_simd_function(name) ? CallKind::Simd : CallKind::Plain;
  for (const FunctionBody& b : bodies) {
    if (b.name != name) continue;
    if (reaches(source, bodies, b.open, is_waiting_function)) return CallKind::Wait;
    if (reaches(source, bodies, b.open, is_threadgroup_function)) kind = CallKind::Simd;
  }
  return kind;
}

std::vector<const FunctionBody*> reachable_bodies(const LexedSource& source, const std::vector<FunctionBody>& bodies,
                                                  size_t body_open) {
  std::vector<const FunctionBody*> reached;
  walk_calls(source, bodies, body_open, [](std::string_view) { return false; }, &reached);
  return reached;
}

}  // namespace mps_shim::frontend
