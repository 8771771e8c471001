#include "frontend/call_graph.h"

#include <algorithm>
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

bool is_control_keyword(const Token& t) {
  return t.is("if") || t.is("while") || t.is("for") || t.is("switch") || t.is("return") || t.is("catch");
}

// The top-level comma-separated items between tokens first and last (inclusive).
std::vector<std::pair<size_t, size_t>> split_items(const std::vector<Token>& t, size_t first, size_t last) {
  std::vector<std::pair<size_t, size_t>> out;
  if (first > last) return out;
  int depth = 0;
  size_t start = first;
  for (size_t i = first; i <= last; ++i) {
    if (t[i].is("(") || t[i].is("[") || t[i].is("{") || t[i].is("<")) ++depth;
    else if (t[i].is(")") || t[i].is("]") || t[i].is("}") || t[i].is(">")) --depth;
    else if (t[i].is(">>")) depth -= 2;
    else if (t[i].is(",") && depth == 0) {
      out.push_back({start, i - 1});
      start = i + 1;
    }
  }
  out.push_back({start, last});
  return out;
}

// The name an item of a parameter list declares (attributes and a default
// dropped), or "" for an unnamed one.
std::string declared_name(const std::vector<Token>& t, size_t first, size_t last) {
  std::vector<size_t> kept;
  for (size_t i = first; i <= last; ++i) {
    if (t[i].is("=")) break;
    if (t[i].is("[") && i + 1 <= last && t[i + 1].is("[")) i = matching_bracket(t, i);
    else kept.push_back(i);
  }
  if (kept.size() < 2 || !t[kept.back()].is_identifier()) return "";
  return std::string(t[kept.back()].text);
}

// The function parameters and non-type template parameters of the body
// opening at `open` (its parameter list closes before `open`, past qualifiers).
std::set<std::string> value_parameters(const std::vector<Token>& t, size_t open) {
  std::set<std::string> names;
  size_t rp = open;
  while (rp > 0 && !t[rp - 1].is(")")) --rp;
  if (rp == 0) return names;
  --rp;
  const size_t lp = matching_open_paren(t, rp, 0);
  for (auto [a, e] : split_items(t, lp + 1, rp - 1))
    if (std::string n = declared_name(t, a, e); !n.empty()) names.insert(n);
  size_t start = lp;
  while (start > 0 && !t[start - 1].is(";") && !t[start - 1].is("}") && !t[start - 1].is("{")) --start;
  if (t[start].is("template") && start + 1 < lp && t[start + 1].is("<")) {
    const size_t close = matching_bracket(t, start + 1);
    for (auto [a, e] : split_items(t, start + 2, close - 1))
      if (!t[a].is("typename") && !t[a].is("class") && !t[a].is("template"))
        if (std::string n = declared_name(t, a, e); !n.empty()) names.insert(n);
  }
  return names;
}

// True when the library function named at token i is not called there but
// passed on as a value, which an indirect call may then run.
bool named_as_value(const std::vector<Token>& t, size_t i) {
  const Token& before = t[i - 1];
  const bool argument = before.is("<") || before.is(",") || before.is("&") || before.is("=") ||
                        (before.is("(") && !(i >= 2 && is_unevaluated(t[i - 2])));
  if (!argument) return false;
  size_t next = i + 1;
  if (next < t.size() && t[next].is("<")) next = matching_bracket(t, next) + 1;
  return next >= t.size() || !t[next].is("(");
}

// Fills in the bodies' indirect calls and targets (FunctionBody).
void find_indirect_calls(const std::vector<Token>& t, std::vector<FunctionBody>& bodies) {
  std::set<std::string> names;
  for (const FunctionBody& b : bodies) names.insert(b.name);
  std::set<std::string> values;
  for (size_t i = 1; i < t.size(); ++i)
    if (t[i].is_identifier() && names.count(std::string(t[i].text)) && named_as_value(t, i))
      values.insert(std::string(t[i].text));
  for (FunctionBody& b : bodies) {
    b.indirect_target = b.name == "operator()" || values.count(b.name);
    const std::set<std::string> params = value_parameters(t, b.open);
    std::set<std::string> indirect;
    for (size_t i = b.open + 1; i + 1 < b.close; ++i) {
      if (!t[i].is("(")) continue;
      if (t[i - 1].is_identifier() && params.count(std::string(t[i - 1].text))) indirect.insert(std::string(t[i - 1].text));
      if (!t[i - 1].is(")")) continue;
      size_t callee = matching_open_paren(t, i - 1, b.open);  // x(...)(...) or x<...>(...)(...)
      if (callee <= b.open + 1) continue;
      --callee;
      if (t[callee].is(">") || t[callee].is(">>")) {
        int depth = 0;
        while (callee > b.open) {
          depth += t[callee].is(">") ? 1 : t[callee].is(">>") ? 2 : t[callee].is("<") ? -1 : 0;
          if (depth <= 0) break;
          --callee;
        }
        --callee;
      }
      if (callee > b.open && t[callee].is_identifier() && !is_control_keyword(t[callee]) && !is_unevaluated(t[callee]))
        indirect.insert(std::string(t[callee].text));
    }
    b.indirect_calls.assign(indirect.begin(), indirect.end());
  }
}

bool is_simd_function(std::string_view name) {
  name = metal_builtin_name(name);
  return name.rfind("simd_", 0) == 0 || name.rfind("quad_", 0) == 0;
}

bool is_waiting_function(std::string_view name) { return is_threadgroup_function(name) && !is_simd_function(name); }

bool names_class(const FunctionBody& b, std::string_view name) {
  for (const std::string& c : b.class_names)
    if (c == name) return true;
  return false;
}

constexpr size_t kNone = ~size_t(0);

// Skips back over a template argument list closing at `close` (`>`); the index of its `<`, or kNone.
size_t template_open(const std::vector<Token>& t, size_t close) {
  int depth = 0;
  for (size_t k = close + 1; k-- > 0;) {
    if (t[k].is(">")) ++depth;
    else if (t[k].is(">>")) depth += 2;
    else if (t[k].is("<") && --depth == 0) return k;
    else if (t[k].is(";") || t[k].is("{") || t[k].is("}")) break;
  }
  return kNone;
}

// `Q` of a call `Q::f(`, `Q<...>::f(` or `Q::template f<`; empty when unqualified.
std::string_view call_qualifier(const std::vector<Token>& t, size_t name) {
  size_t k = name;
  if (k >= 2 && t[k - 1].is("template")) --k;
  if (k < 2 || !t[k - 1].is("::")) return {};
  size_t q = k - 2;
  if (t[q].is(">")) {
    const size_t open = template_open(t, q);
    if (open == kNone || open == 0) return {};
    q = open - 1;
  }
  return t[q].is_identifier() ? t[q].text : std::string_view{};
}

// The class a `{` at `open` opens (`struct S`, `class S<T, 1> : B`), or empty.
std::string_view class_opened(const std::vector<Token>& t, size_t open) {
  for (size_t k = open; k-- > 0;) {
    if (t[k].is(";") || t[k].is("{") || t[k].is("}") || t[k].is(")")) return {};
    if ((t[k].is("struct") || t[k].is("class") || t[k].is("union")) && k + 1 < open) {
      size_t n = k + 1;
      while (n + 1 < open && t[n].is("[") && t[n + 1].is("[")) n = matching_bracket(t, n) + 1;  // [[attributes]]
      return n < open && t[n].is_identifier() ? t[n].text : std::string_view{};
    }
  }
  return {};
}

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
      const std::string_view qualifier = call_qualifier(t, i);
      bool qualified = false;  // some function of that name belongs to a class the qualifier names
      for (auto it = range.first; it != range.second && !qualifier.empty(); ++it)
        qualified |= names_class(*it->second, qualifier);
      for (auto it = range.first; it != range.second; ++it)
        if ((!qualified || names_class(*it->second, qualifier)) && seen.insert(it->second).second)
          work.push_back(it->second);
    }
    if (!b->indirect_calls.empty())
      for (const FunctionBody& target : bodies)
        if (target.indirect_target && seen.insert(&target).second) work.push_back(&target);
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
  // A template parameter may stand for any class: a call qualified by such a name reaches every function of
  // that name, even where an alias elsewhere in the library is spelled the same.
  std::set<std::string_view> parameters;
  for (size_t i = 0; i + 2 < t.size(); ++i)
    if ((t[i].is("typename") || t[i].is("class")) && t[i + 1].is_identifier() &&
        (t[i + 2].is(",") || t[i + 2].is(">") || t[i + 2].is("=")))
      parameters.insert(t[i + 1].text);
  std::multimap<std::string_view, std::string_view> aliases;  // class -> `using A = class<...>` / `typedef class<...> A`
  for (size_t i = 0; i + 3 < t.size(); ++i) {
    if (t[i].is("using") && t[i + 1].is_identifier() && t[i + 2].is("=") && t[i + 3].is_identifier())
      aliases.emplace(t[i + 3].text, t[i + 1].text);
    if (t[i].is("typedef") && t[i + 1].is_identifier()) {
      size_t k = i + 2;
      if (t[k].is("<")) k = matching_bracket(t, k) + 1;
      if (k + 1 < t.size() && t[k].is_identifier() && t[k + 1].is(";")) aliases.emplace(t[i + 1].text, t[k].text);
    }
  }
  std::vector<std::pair<std::string_view, size_t>> classes;  // open classes (name, closing brace), innermost last
  for (size_t i = 0; i < t.size(); ++i) {
    while (!classes.empty() && i > classes.back().second) classes.pop_back();
    if (!t[i].is("{")) continue;
    size_t k = i;
    while (k > 0 && is_qualifier(t[k - 1])) --k;
    if (k == 0 || !t[k - 1].is(")")) {  // a namespace, class or initializer: look inside
      const std::string_view cls = class_opened(t, i);
      if (!cls.empty()) classes.emplace_back(cls, matching_bracket(t, i));
      continue;
    }
    const size_t open = matching_open_paren(t, k - 1, 0);
    const size_t close = matching_bracket(t, i);
    if (close >= t.size()) break;
    std::string name;
    if (open > 0 && t[open - 1].is_identifier()) name = std::string(t[open - 1].text);
    else if (open >= 3 && t[open - 1].is(")") && t[open - 2].is("(") && t[open - 3].is("operator")) name = "operator()";
    if (!name.empty()) {
      FunctionBody body{std::move(name), i, close, {}, {}, false};
      // In a class's braces, or defined outside it as `R S<T>::name(...)`.
      std::string_view cls = classes.empty() ? std::string_view{} : classes.back().first;
      if (const std::string_view q = call_qualifier(t, open - 1); !q.empty()) cls = q;
      if (!cls.empty() && !parameters.count(cls)) {
        body.class_names.emplace_back(cls);
        auto range = aliases.equal_range(cls);
        for (auto it = range.first; it != range.second; ++it)
          if (!parameters.count(it->second)) body.class_names.emplace_back(it->second);
      }
      out.push_back(std::move(body));
    }
    i = close;  // nested braces belong to this body
  }
  find_indirect_calls(t, out);
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
    if (std::find(b.indirect_calls.begin(), b.indirect_calls.end(), name) == b.indirect_calls.end()) continue;
    // whichever function it runs: the most any of them may reach
    for (const FunctionBody& target : bodies) {
      if (!target.indirect_target) continue;
      if (reaches(source, bodies, target.open, is_waiting_function)) return CallKind::Wait;
      if (reaches(source, bodies, target.open, is_threadgroup_function)) kind = CallKind::Simd;
    }
    break;
  }
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
