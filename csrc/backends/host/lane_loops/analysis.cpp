// Reading a kernel for the splitter: its statements and declarations, where its
// threads meet, which names differ between threads, what has side effects.
#include "backends/host/lane_loops/splitter.h"

namespace mps_shim::host::lane_loops {

bool Splitter::scan_tokens(size_t open, size_t close) {
  static const std::set<std::string_view> unmodelled = {"goto", "struct", "class", "union", "enum",
                                                        "typedef", "using", "asm", "__asm__"};
  for (size_t i = open + 1; i < close; ++i) {
    const Token& tk = t_[i];
    if (!tk.is_identifier()) continue;
    if (unmodelled.count(tk.text)) return fail(std::string("the kernel uses '") + std::string(tk.text) + "'");
    if (!(at(i + 1, "(") || at(i + 1, "<"))) continue;
    if (is_barrier_name(tk.text)) {
      barriers_.insert(i);
      syncs_.insert(i);
      continue;
    }
    switch (r_.call_kind(tk.text)) {
      case CallKind::Plain: break;
      case CallKind::Simd: syncs_.insert(i); break;
      case CallKind::Wait:  // inlined if it is a library function called as a statement
        syncs_.insert(i);
        waits_.insert(i);
        break;
    }
  }
  return true;
}

bool Splitter::has_sync(size_t first, size_t last) const {
  auto it = syncs_.lower_bound(first);
  return it != syncs_.end() && *it <= last;
}

std::string Splitter::first_sync(const Stmt& s) const {
  const size_t k = *syncs_.lower_bound(s.head_open);
  return "'" + std::string(t_[k].text) + "'" +
         (waits_.count(k) ? " (which polls an atomic or reaches a barrier)" : " (a SIMD-group function)");
}

bool Splitter::mentions_barrier(size_t first, size_t last) const {
  auto it = barriers_.lower_bound(first);
  return it != barriers_.end() && *it <= last;
}

bool Splitter::is_barrier_statement(const Stmt& s) const {
  size_t k = s.first;
  if (at(k, "::")) ++k;
  if (at(k, "metal") && at(k + 1, "::")) k += 2;
  if (!barriers_.count(k) || !at(k + 1, "(")) return false;
  return matching_bracket(t_, k + 1) + 1 == s.last;
}

std::optional<Declaration> Splitter::declaration(const Stmt& s) const {
  if (s.kind != StmtKind::Simple) return std::nullopt;
  static const std::set<std::string_view> not_types = {"return", "break", "continue", "delete", "new",
                                                       "throw", "sizeof", "co_return", "co_await"};
  if (not_types.count(t_[s.first].text)) return std::nullopt;
  for (size_t k = s.first + 1; k < s.last; ++k) {
    const Token& tk = t_[k];
    if (tk.is("(") || tk.is("[") || tk.is("{")) return std::nullopt;  // a call or an index before any name
    if (!tk.is_identifier()) continue;
    const Token& prev = t_[k - 1];
    const bool after_type = (prev.is_identifier() && !not_types.count(prev.text)) || prev.is(">") ||
                            prev.is("*") || prev.is("&") || prev.is("&&");
    const Token& next = t_[k + 1];
    const bool declarator =
        next.is("=") || next.is(";") || next.is("[") || next.is(",") || next.is("{") || next.is("(");
    if (!after_type || !declarator) continue;
    if (!type_shaped(s.first, k - 1)) return std::nullopt;
    Declaration d{s.first, k - 1, k, true};
    for (size_t j = k + 1; j < s.last; ++j) {
      if (t_[j].is("(") || t_[j].is("[") || t_[j].is("{")) j = matching_bracket(t_, j);
      else if (t_[j].is(",")) d.single = false;
    }
    return d;
  }
  return std::nullopt;
}

bool Splitter::type_shaped(size_t first, size_t last) const {
  if (!(t_[first].is_identifier() || t_[first].is("::"))) return false;
  for (size_t k = first; k <= last; ++k) {
    const Token& tk = t_[k];
    if (!(tk.is_identifier() || tk.kind == TokenKind::Number || tk.is("::") || tk.is("<") || tk.is(">") ||
          tk.is(">>") || tk.is(",") || tk.is("*") || tk.is("&") || tk.is("&&")))
      return false;
  }
  return true;
}

bool Splitter::is_threadgroup_declaration(const Declaration& d) const {
  for (size_t k = d.type_first; k <= d.type_last; ++k)
    if (t_[k].is("threadgroup") && r_.replacements[k] && r_.replacements[k]->find("static") != std::string::npos)
      return true;
  return false;
}

bool Splitter::has_token(const Declaration& d, std::string_view s) const {
  for (size_t k = d.type_first; k <= d.type_last; ++k)
    if (t_[k].is(s)) return true;
  return false;
}

void Splitter::collect_declared(const Stmt& s) {
  if (auto d = declaration(s)) {
    for (auto [a, b] : split_commas(d->name, s.last - 1, false)) {
      if (!t_[a].is_identifier()) continue;
      if (at(a + 1, "[") && !is_threadgroup_declaration(*d)) local_arrays_ = true;
      const bool lambda = d->single && at(a + 1, "=") && at(a + 2, "[") && !uses_varying(a + 2, s.last - 1);
      const bool shared =
          is_threadgroup_declaration(*d) || has_token(*d, "constexpr") || group_constant(*d, s) || lambda;
      if (lambda && has_sync(a + 2, s.last - 1)) {
        waiting_lambdas_.insert(std::string(t_[a].text));
        frame_->lambdas[std::string(t_[a].text)] = {a + 2, s.last - 1};
      }
      if (shared) shared_.insert(s.first);
      else frame_->varying.insert(std::string(t_[a].text));
      frame_->body_types.insert(std::string(t_[a].text));
    }
  }
  for (const Stmt& c : s.children) collect_declared(c);
}

bool Splitter::group_constant(const Declaration& d, const Stmt& s) const {
  if (!d.single || !has_token(d, "const") || has_token(d, "*") || has_token(d, "&") || !at(d.name + 1, "="))
    return false;
  return !uses_varying(d.name + 2, s.last - 1) && side_effect_free(d.name + 2, s.last - 1) &&
         !has_sync(d.name + 2, s.last - 1);
}

bool Splitter::may_point_into_locals() const {
  if (local_arrays_) return true;
  for (size_t k = r_.body_open + 1; k < r_.body_close; ++k)
    if (t_[k].is("&") && t_[k + 1].is_identifier() && frame_->varying.count(std::string(t_[k + 1].text)) &&
        !(t_[k - 1].is_identifier() || t_[k - 1].is(")") || t_[k - 1].is("]") || t_[k - 1].kind == TokenKind::Number))
      return true;
  return false;
}

void Splitter::collect_names(const Stmt& s, std::set<std::string>& names) const {
  if (auto d = declaration(s)) names.insert(std::string(t_[d->name].text));
  if (s.kind == StmtKind::For) {
    Stmt init;
    init.first = s.head_open + 1;
    init.last = s.semi1;
    if (auto d = declaration(init)) names.insert(std::string(t_[d->name].text));
  }
  for (const Stmt& c : s.children) collect_names(c, names);
}

bool Splitter::uses_varying(size_t first, size_t last) const {
  for (size_t k = first; k <= last; ++k)
    if (t_[k].is_identifier() && frame_->varying.count(std::string(t_[k].text)) &&
        !(k > 0 && (t_[k - 1].is(".") || t_[k - 1].is("->"))))
      return true;
  return false;
}

std::vector<Splitter::Role> Splitter::roles(const std::vector<Stmt>& stmts) const {
  std::vector<Role> r(stmts.size(), Role::Lanes);
  size_t region_end = stmts.size();
  for (size_t i = stmts.size(); i-- > 0;) {
    const auto d = declaration(stmts[i]);
    if (shared_.count(stmts[i].first)) r[i] = Role::Shared;  // a lambda may hold SIMD calls: shared first
    else if (has_sync(stmts[i])) r[i] = Role::Sync;
    else if (d && is_auto(*d) && !plain_auto(*d) && used_after(t_[d->name].text, stmts, region_end))
      r[i] = Role::LaneValue;
    if (r[i] != Role::Lanes) region_end = i;
  }
  return r;
}

bool Splitter::plain_auto(const Declaration& d) const {
  if (!d.single || !at(d.name + 1, "=") || at(d.name + 2, "[") || points_into_locals_) return false;
  for (size_t k = d.type_first; k <= d.type_last; ++k)
    if (!t_[k].is("auto") && !t_[k].is("const")) return false;
  return true;
}

bool Splitter::side_effect_free(size_t first, size_t last) const {
  for (size_t k = first; k <= last; ++k) {
    const Token& tk = t_[k];
    if (is_assignment(tk.text) || tk.is("++") || tk.is("--") || tk.text.rfind("atomic_", 0) == 0) return false;
    if (tk.is_identifier() && at(k + 1, "(") && !pure_function(tk.text)) return false;
  }
  return true;
}

bool Splitter::pure_function(std::string_view name) const {
  const std::string key(name);
  if (auto it = purity_.find(key); it != purity_.end()) return it->second;
  purity_[key] = true;  // recursion: assume pure while looking
  bool pure = true;
  for (const FunctionBody& b : r_.bodies) {
    if (b.name != name || !pure) continue;
    size_t rp = b.open - 1;
    while (rp > 0 && !t_[rp].is(")")) --rp;
    const size_t lp = matching_open_paren(t_, rp, 0);
    for (auto [a, e] : split_commas(lp + 1, rp - 1, true)) {
      bool is_const = false, is_ref = false;
      for (size_t k = a; k <= e; ++k) {
        is_const = is_const || t_[k].is("const");
        is_ref = is_ref || t_[k].is("&") || t_[k].is("&&");
      }
      if (is_ref && !is_const) pure = false;
    }
    for (size_t k = b.open + 1; k < b.close && pure; ++k) {
      const Token& tk = t_[k];
      if (tk.text.rfind("atomic_", 0) == 0) pure = false;
      else if (tk.is_identifier() && at(k + 1, "(") && tk.text != name && !pure_function(tk.text)) pure = false;
      else if (tk.is("++") || tk.is("--")) pure = !(t_[k - 1].is("]") || at(k + 1, "*") || at(k + 1, "("));
      else if (is_assignment(tk.text)) {
        for (size_t j = k; j-- > b.open;) {  // the target, back to the statement's start
          if (t_[j].is(";") || t_[j].is("{") || t_[j].is("}") || t_[j].is(",") || t_[j].is("(")) break;
          if (t_[j].is("]") || t_[j].is("*") || t_[j].is("->")) pure = false;
        }
      }
    }
  }
  purity_[key] = pure;
  return pure;
}

bool Splitter::mentions(size_t first, size_t last, std::string_view name) const {
  for (size_t k = first; k <= last; ++k)
    if (t_[k].is(name)) return true;
  return false;
}

std::vector<std::pair<size_t, size_t>> Splitter::split_commas(size_t first, size_t last, bool angles) const {
  std::vector<std::pair<size_t, size_t>> parts;
  if (first > last) return parts;
  size_t start = first;
  int depth = 0;
  for (size_t k = first; k <= last; ++k) {
    if (t_[k].is("(") || t_[k].is("[") || t_[k].is("{")) {
      k = matching_bracket(t_, k);
      continue;
    }
    if (angles && t_[k].is("<")) ++depth;
    else if (angles && t_[k].is(">")) --depth;
    else if (angles && t_[k].is(">>")) depth -= 2;
    else if (depth == 0 && t_[k].is(",")) {
      parts.push_back({start, k - 1});
      start = k + 1;
    }
  }
  parts.push_back({start, last});
  return parts;
}

bool Splitter::modified_in(std::string_view name, const Stmt& s) const {
  for (size_t k = s.first; k <= s.last; ++k) {
    if (!t_[k].is(name)) continue;
    if (k + 1 < t_.size() && (is_assignment(t_[k + 1].text) || t_[k + 1].is("++") || t_[k + 1].is("--")))
      return true;
    if (k > 0 && (t_[k - 1].is("++") || t_[k - 1].is("--"))) return true;
    if (k > 1 && t_[k - 1].is("&") && !(t_[k - 2].is_identifier() || t_[k - 2].is(")") || t_[k - 2].is("]") ||
                                        t_[k - 2].kind == TokenKind::Number))
      return true;
  }
  return false;
}

bool Splitter::used_after(std::string_view name, const std::vector<Stmt>& stmts, size_t from) const {
  for (size_t j = from; j < stmts.size(); ++j)
    for (size_t k = stmts[j].first; k <= stmts[j].last; ++k)
      if (t_[k].is(name) && !(t_[k - 1].is(".") || t_[k - 1].is("->"))) return true;
  return false;
}

}  // namespace mps_shim::host::lane_loops
