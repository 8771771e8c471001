#include "frontend/fission.h"

#include <map>
#include <set>

#include "frontend/statements.h"

namespace mps_shim::frontend {

namespace {

bool is_barrier_name(std::string_view s) { return s == "threadgroup_barrier" || s == "simdgroup_barrier"; }

// Thread attributes with one value for the whole threadgroup.
bool is_group_wide(ThreadAttr a) {
  switch (a) {
    case ThreadAttr::ThreadgroupPositionInGrid:
    case ThreadAttr::ThreadsPerGrid:
    case ThreadAttr::ThreadsPerThreadgroup:
    case ThreadAttr::ThreadgroupsPerGrid:
    case ThreadAttr::DispatchThreadsPerThreadgroup:
    case ThreadAttr::ThreadsPerSimdgroup:
    case ThreadAttr::ThreadExecutionWidth:
    case ThreadAttr::SimdgroupsPerThreadgroup:
    case ThreadAttr::DispatchSimdgroupsPerThreadgroup:
    case ThreadAttr::QuadgroupsPerThreadgroup:
    case ThreadAttr::DispatchQuadgroupsPerThreadgroup: return true;
    default: return false;
  }
}

bool is_assignment(std::string_view s) {
  return s == "=" || s == "+=" || s == "-=" || s == "*=" || s == "/=" || s == "%=" || s == "&=" || s == "|=" ||
         s == "^=" || s == "<<=" || s == ">>=";
}

// A declaration statement `TYPE name [= init | (args) | {args}];`, found by shape.
struct Declaration {
  size_t type_first, type_last;  // inclusive
  size_t name;                   // token index
  bool single = true;            // one declarator
};

// The function whose statements are being split: the kernel, or a function it
// calls that reaches a barrier, inlined at group level.
struct Frame {
  const std::vector<ParamDecl>* thread_params = nullptr;  // the kernel's; none in a callee
  size_t lane_vars_begin = 0;    // per-thread arrays of enclosing frames are not visible
  std::set<std::string> varying;     // names whose value differs between threads
  std::set<std::string> body_types;  // names the body declares (not usable as array types)
  bool callee = false;
  std::string result;                // a callee's per-thread results (non-void callees)
};

class Splitter {
 public:
  explicit Splitter(const FissionRequest& r) : r_(r), t_(r.source.tokens) {}

  FissionResult run() {
    std::vector<Stmt> body;
    if (!parse_statements(t_, r_.body_open, r_.body_close, body))
      return no("the kernel holds a statement the splitter does not model (a label or case)");
    if (!scan_tokens(r_.body_open, r_.body_close)) return no(why_);
    if (syncs_.empty()) return no("the kernel has no barrier or SIMD-group function");
    Frame kernel;
    kernel.thread_params = &r_.params;
    frame_ = &kernel;
    for (const ParamDecl& p : r_.params) {
      if (p.role == ParamRole::ThreadPosition && !is_group_wide(p.thread_attr)) kernel.varying.insert(p.name);
      for (const Stmt& s : body)  // one copy serves the whole group
        if (!p.name.empty() && modified_in(p.name, s)) return no("the kernel changes its parameter '" + p.name + "'");
    }
    for (const Stmt& s : body) collect_declared(s);  // after the thread positions: they make values vary
    for (size_t k = r_.body_open + 1; k < r_.body_close; ++k)  // calls of a lambda that calls SIMD functions
      if (waiting_lambdas_.count(std::string(t_[k].text)) && at(k + 1, "(") && !(t_[k - 1].is(".") || t_[k - 1].is("->")))
        syncs_.insert(k);
    points_into_locals_ = may_point_into_locals();
    out_ = "{\n{\n";
    for (const ParamDecl& p : r_.params)
      if (p.role == ParamRole::ThreadPosition && is_group_wide(p.thread_attr) && !p.name.empty())
        out_ += declare_thread_value(p, "mps_g.uniform");
    if (!block(body)) return no(why_);
    out_ += "}\n}\n";
    return FissionResult{out_, "", insertions_};
  }

 private:
  FissionResult no(const std::string& why) { return FissionResult{std::nullopt, why, {}}; }
  bool fail(const std::string& why) {
    if (why_.empty()) why_ = why;
    return false;
  }
  bool at(size_t i, std::string_view s) const { return i < t_.size() && t_[i].is(s); }

  // Constructs the splitter cannot reason about; where threads meet.
  bool scan_tokens(size_t open, size_t close) {
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

  // Holds a barrier or a SIMD-group function: the threads must meet there.
  bool has_sync(size_t first, size_t last) const {
    auto it = syncs_.lower_bound(first);
    return it != syncs_.end() && *it <= last;
  }
  bool has_sync(const Stmt& s) const { return has_sync(s.first, s.last); }
  // "'atomic_load_explicit' (which polls an atomic or reaches a barrier)" for the first meeting point of a head.
  std::string first_sync(const Stmt& s) const {
    const size_t k = *syncs_.lower_bound(s.head_open);
    return "'" + std::string(t_[k].text) + "'" +
           (waits_.count(k) ? " (which polls an atomic or reaches a barrier)" : " (a SIMD-group function)");
  }
  bool mentions_barrier(size_t first, size_t last) const {
    auto it = barriers_.lower_bound(first);
    return it != barriers_.end() && *it <= last;
  }

  // `[::][metal::]threadgroup_barrier(...);`
  bool is_barrier_statement(const Stmt& s) const {
    size_t k = s.first;
    if (at(k, "::")) ++k;
    if (at(k, "metal") && at(k + 1, "::")) k += 2;
    if (!barriers_.count(k) || !at(k + 1, "(")) return false;
    return matching_bracket(t_, k + 1) + 1 == s.last;
  }

  std::optional<Declaration> declaration(const Stmt& s) const {
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

  // Names, `::`, template brackets and arguments, `*` and `&`: `x += y * z` is no declaration.
  bool type_shaped(size_t first, size_t last) const {
    if (!(t_[first].is_identifier() || t_[first].is("::"))) return false;
    for (size_t k = first; k <= last; ++k) {
      const Token& tk = t_[k];
      if (!(tk.is_identifier() || tk.kind == TokenKind::Number || tk.is("::") || tk.is("<") || tk.is(">") ||
            tk.is(">>") || tk.is(",") || tk.is("*") || tk.is("&") || tk.is("&&")))
        return false;
    }
    return true;
  }

  bool is_threadgroup_declaration(const Declaration& d) const {
    for (size_t k = d.type_first; k <= d.type_last; ++k)
      if (t_[k].is("threadgroup") && r_.replacements[k] && r_.replacements[k]->find("static") != std::string::npos)
        return true;
    return false;
  }

  bool has_token(const Declaration& d, std::string_view s) const {
    for (size_t k = d.type_first; k <= d.type_last; ++k)
      if (t_[k].is(s)) return true;
    return false;
  }

  // Every name a statement of the body declares, at any depth: a thread's own
  // values (threadgroup arrays and compile-time constants excepted).
  void collect_declared(const Stmt& s) {
    if (auto d = declaration(s)) {
      for (auto [a, b] : split_commas(d->name, s.last - 1, false)) {
        if (!t_[a].is_identifier()) continue;
        if (at(a + 1, "[") && !is_threadgroup_declaration(*d)) local_arrays_ = true;
        const bool lambda = d->single && at(a + 1, "=") && at(a + 2, "[") && !uses_varying(a + 2, s.last - 1);
        const bool shared =
            is_threadgroup_declaration(*d) || has_token(*d, "constexpr") || group_constant(*d, s) || lambda;
        if (lambda && has_sync(a + 2, s.last - 1)) waiting_lambdas_.insert(std::string(t_[a].text));
        if (shared) shared_.insert(s.first);
        else frame_->varying.insert(std::string(t_[a].text));
        frame_->body_types.insert(std::string(t_[a].text));
      }
    }
    for (const Stmt& c : s.children) collect_declared(c);
  }

  // `const T n = expr;` whose value is the same for every thread (the group
  // computes it once, so it can size a threadgroup array).
  bool group_constant(const Declaration& d, const Stmt& s) const {
    if (!d.single || !has_token(d, "const") || has_token(d, "*") || has_token(d, "&") || !at(d.name + 1, "="))
      return false;
    return !uses_varying(d.name + 2, s.last - 1) && side_effect_free(d.name + 2, s.last - 1) &&
           !has_sync(d.name + 2, s.last - 1);
  }

  // Pointers into a thread's own locals (`&x`, a local array) would dangle in
  // a per-thread array once the loop that owns the local ends.
  bool may_point_into_locals() const {
    if (local_arrays_) return true;
    for (size_t k = r_.body_open + 1; k < r_.body_close; ++k)
      if (t_[k].is("&") && t_[k + 1].is_identifier() && frame_->varying.count(std::string(t_[k + 1].text)) &&
          !(t_[k - 1].is_identifier() || t_[k - 1].is(")") || t_[k - 1].is("]") || t_[k - 1].kind == TokenKind::Number))
        return true;
    return false;
  }

  // Every name a statement declares, at any depth (for-loop variables included).
  void collect_names(const Stmt& s, std::set<std::string>& names) const {
    if (auto d = declaration(s)) names.insert(std::string(t_[d->name].text));
    if (s.kind == StmtKind::For) {
      Stmt init;
      init.first = s.head_open + 1;
      init.last = s.semi1;
      if (auto d = declaration(init)) names.insert(std::string(t_[d->name].text));
    }
    for (const Stmt& c : s.children) collect_names(c, names);
  }

  bool uses_varying(size_t first, size_t last) const {
    for (size_t k = first; k <= last; ++k)
      if (t_[k].is_identifier() && frame_->varying.count(std::string(t_[k].text)) &&
          !(k > 0 && (t_[k - 1].is(".") || t_[k - 1].is("->"))))
        return true;
    return false;
  }

  // A threadgroup array is a plain local of the group function; `return;` ends a thread.
  // In the kernel `return;` ends the thread (the lane lambda returns true); in
  // an inlined function `return v;` stores v and holds the thread out until
  // the function's end.
  std::string render(size_t first, size_t last, const std::map<size_t, size_t>& returns = {}) const {
    std::map<size_t, std::string> own;
    for (size_t k = first; k <= last; ++k) {
      auto r = returns.find(k);
      if (r != returns.end() && !frame_->callee) {
        own[k] = "return true";
      } else if (r != returns.end()) {
        const bool value = r->second > k + 1;
        own[k] = value ? "{ " + frame_->result + "[mps_lane] = (" : "{ ";
        own[r->second] = std::string(value ? ")" : "") + "; mps_host::hold_out(mps_g, mps_lane); return false; }";
      } else if (t_[k].is("threadgroup") && r_.replacements[k] && !own.count(k)) {
        own[k] = std::string(t_[k].text.size(), ' ');
      }
    }
    return rewritten_text(r_.source, r_.replacements, first, last, &own);
  }

  std::string line_marker(size_t tok) const { return line_directive(r_.source, tok, true); }

  static std::string declare_thread_value(const ParamDecl& p, const std::string& ids) {
    return "[[maybe_unused]] " + p.type + " " + p.name + " = mps_host::thread_value<" + p.type + ">(" + ids + "." +
           thread_ids_member(p.thread_attr) + ");\n";
  }

  struct LaneVar {
    std::string name, array;
  };

  // Statements of one block in which barriers sit.
  enum class Role {
    Lanes,      // runs in a loop over the threads with its neighbours
    Shared,     // a threadgroup array or constexpr: declared once for the group
    LaneValue,  // an auto variable used past the next meeting point: its own loop collects it
    Sync,       // a barrier, a SIMD-group statement, or control flow holding one
  };

  bool is_auto(const Declaration& d) const { return has_token(d, "auto"); }

  // Roles of a block's statements; an auto variable needs its own loop only
  // when it is used past the end of the loop it would otherwise share.
  std::vector<Role> roles(const std::vector<Stmt>& stmts) const {
    std::vector<Role> r(stmts.size(), Role::Lanes);
    size_t region_end = stmts.size();
    for (size_t i = stmts.size(); i-- > 0;) {
      const auto d = declaration(stmts[i]);
      if (shared_.count(stmts[i].first)) r[i] = Role::Shared;  // a lambda may hold SIMD calls: shared first
      else if (has_sync(stmts[i])) r[i] = Role::Sync;
      else if (d && is_auto(*d) && used_after(t_[d->name].text, stmts, region_end)) r[i] = Role::LaneValue;
      if (r[i] != Role::Lanes) region_end = i;
    }
    return r;
  }

  bool block(const std::vector<Stmt>& stmts) {
    const size_t scope_mark = lane_vars_.size();
    const size_t arrays_at = out_.size();
    std::string arrays;  // the block's per-thread arrays, declared at its start
    const std::vector<Role> role = roles(stmts);
    for (size_t i = 0; i < stmts.size();) {
      const Stmt& s = stmts[i];
      switch (role[i]) {
        case Role::Lanes: {
          std::vector<const Stmt*> region;
          size_t j = i;
          while (j < stmts.size() && role[j] == Role::Lanes) region.push_back(&stmts[j++]);
          if (!lane_loop(region, stmts, j, arrays)) return false;
          i = j;
          continue;
        }
        case Role::Shared: out_ += line_marker(s.first) + render(s.first, s.last) + "\n"; break;
        case Role::LaneValue:
          if (!lane_value(s, *declaration(s), false)) return false;
          break;
        case Role::Sync:
          if (!group_statement(s)) return false;
          break;
      }
      ++i;
    }
    out_.insert(arrays_at, arrays);
    lane_vars_.resize(scope_mark);
    return true;
  }

  // No assignment, increment or atomic: safe to evaluate once per SIMD operation.
  // Nor a call to a library function that writes memory or touches an atomic.
  bool side_effect_free(size_t first, size_t last) const {
    for (size_t k = first; k <= last; ++k) {
      const Token& tk = t_[k];
      if (is_assignment(tk.text) || tk.is("++") || tk.is("--") || tk.text.rfind("atomic_", 0) == 0) return false;
      if (tk.is_identifier() && at(k + 1, "(") && !pure_function(tk.text)) return false;
    }
    return true;
  }

  // A library function of this name (every overload) writes no memory beyond
  // its own locals: no atomics, no store through `[`, `*` or `->`, no
  // non-const reference parameter, and calls only such functions.
  bool pure_function(std::string_view name) const {
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

  bool mentions(size_t first, size_t last, std::string_view name) const {
    for (size_t k = first; k <= last; ++k)
      if (t_[k].is(name)) return true;
    return false;
  }

  // A statement with SIMD-group functions: `[type] x = expr;` or `lvalue = expr;`,
  // replayed once per SIMD operation (see LaneExchange in mps_host_metal.h).
  bool simd_statement(const Stmt& s) {
    if (t_[s.first].is("return")) {  // the last statement of an inlined function
      if (frame_->result.empty() || !side_effect_free(s.first + 1, s.last - 1))
        return fail("a SIMD-group function in a return statement of a kernel or void function");
      const std::string values = "mps_lane_" + std::to_string(next_array_++) + "_value";
      out_ += line_marker(s.first) + "auto " + values + " = mps_host::collect_lanes<" +
              std::to_string(r_.max_threads) + ", true>(mps_g, " + lane_lambda_open("", "auto") + "return " +
              render(s.first + 1, s.last - 1) + ";\n});\n";
      out_ += lane_lambda_open("mps_host::for_each_lane(mps_g, ", "bool") + frame_->result + "[mps_lane] = " + values +
              "[mps_lane];\nmps_host::hold_out(mps_g, mps_lane);\nreturn false;\n});\n";
      return true;
    }
    if (auto d = declaration(s)) {
      const size_t init = d->name + 1;
      if (!d->single || !t_[init].is("=") || !side_effect_free(init + 1, s.last - 1) ||
          mentions(init + 1, s.last - 1, t_[d->name].text))
        return fail("a SIMD-group function in a statement other than `[type] x = expr;` or `lvalue = expr;` "
                    "free of side effects");
      return lane_value(s, *d, true);
    }
    // `lvalue op= expr;`: the values of expr first (replayed), then one plain store per thread.
    size_t eq = s.first;
    for (; eq < s.last && !is_assignment(t_[eq].text); ++eq)
      if (t_[eq].is("(") || t_[eq].is("[") || t_[eq].is("{")) eq = matching_bracket(t_, eq);
    if (eq >= s.last || eq == s.first || has_sync(s.first, eq) || !side_effect_free(s.first, eq - 1) ||
        !side_effect_free(eq + 1, s.last - 1))
      return fail("a SIMD-group function in a statement other than `[type] x = expr;` or `lvalue = expr;` "
                  "free of side effects");
    const std::string values = "mps_lane_" + std::to_string(next_array_++) + "_value";
    out_ += line_marker(s.first) + "auto " + values + " = mps_host::collect_lanes<" + std::to_string(r_.max_threads) +
            ", true>(mps_g, " + lane_lambda_open("", "auto") + "return " + render(eq + 1, s.last - 1) + ";\n});\n";
    out_ += line_marker(s.first) + lane_lambda_open("mps_host::for_each_lane(mps_g, ", "bool") + render(s.first, eq) +
            " " + values + "[mps_lane];\nreturn false;\n});\n";
    return true;
  }

  // Splits [first, last] at commas outside brackets (angle brackets too when `angles`).
  std::vector<std::pair<size_t, size_t>> split_commas(size_t first, size_t last, bool angles) const {
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

  std::string tokens_text(const std::vector<size_t>& toks) const {
    std::string s;
    for (size_t k : toks) s += (t_[k].is("threadgroup") ? std::string() : render(k, k)) + " ";
    return s;
  }

  // A library function that reaches a barrier, called as `[type] x = f(args);`
  // or `f(args);`: its body is split in place with a frame of its own. An
  // argument that is the same for every thread binds once for the group; the
  // others bind per thread. Template parameters are deduced from parameters
  // declared as exactly `T name`.
  bool inline_call(const Stmt& s, size_t w) {
    const std::string name(t_[w].text);
    const std::string cannot = "cannot inline '" + name + "': ";
    if (inline_depth_ >= 4) return fail(cannot + "calls that reach a barrier nest too deeply");
    size_t k = w + 1;
    std::vector<std::string> explicit_args;
    if (at(k, "<")) {
      const size_t close = matching_bracket(t_, k);
      if (close >= s.last) return fail(cannot + "unbalanced template arguments");
      for (auto [a, b] : split_commas(k + 1, close - 1, true)) explicit_args.push_back(render(a, b));
      k = close + 1;
    }
    if (!at(k, "(") || matching_bracket(t_, k) + 1 != s.last)
      return fail(cannot + "only `[type] x = f(args);` and `f(args);` calls are inlined");
    const size_t lparen = k, rparen = matching_bracket(t_, k);
    size_t q = w;
    while (q >= s.first + 2 && t_[q - 1].is("::") && t_[q - 2].is_identifier()) q -= 2;
    if (q > s.first && t_[q - 1].is("::")) --q;
    std::optional<Declaration> caller_decl;
    std::optional<size_t> assigned;  // `x = f(args);`
    if (q == s.first + 2 && t_[s.first].is_identifier() && t_[s.first + 1].is("=")) {
      assigned = s.first;
    } else if (q != s.first) {
      caller_decl = declaration(s);
      if (!caller_decl || !caller_decl->single || caller_decl->name + 2 != q || !t_[caller_decl->name + 1].is("="))
        return fail(cannot + "only `[type] x = f(args);`, `x = f(args);` and `f(args);` calls are inlined");
    }
    // The definition: [template <typename T, ...>] [specifiers] RET name(params) [qualifiers] { body }
    const FunctionBody* def = nullptr;
    for (const FunctionBody& b : r_.bodies)
      if (b.name == name) {
        if (def) return fail(cannot + "it has several definitions");
        def = &b;
      }
    if (!def) return fail(cannot + "no definition in the library");
    size_t rp = def->open - 1;
    while (rp > 0 && !t_[rp].is(")")) --rp;
    const size_t lp = matching_open_paren(t_, rp, 0);
    if (lp == 0 || !t_[lp - 1].is(name) || (lp >= 2 && t_[lp - 2].is("::")))
      return fail(cannot + "its definition is not understood");
    size_t start = lp - 1;
    while (start > 0 && !t_[start - 1].is(";") && !t_[start - 1].is("}") && !t_[start - 1].is("{")) --start;
    std::vector<std::string> tparams;
    if (t_[start].is("template") && at(start + 1, "<")) {
      const size_t close = matching_bracket(t_, start + 1);
      for (auto [a, b] : split_commas(start + 2, close - 1, true)) {
        if (b != a + 1 || !(t_[a].is("typename") || t_[a].is("class")))
          return fail(cannot + "only type template parameters without defaults are deduced");
        tparams.push_back(std::string(t_[b].text));
      }
      start = close + 1;
    }
    std::vector<size_t> ret;
    static const std::set<std::string_view> specifiers = {"inline", "static", "constexpr", "extern", "METAL_FUNC"};
    for (size_t i = start; i + 1 < lp; ++i) {
      if (t_[i].is("__attribute__") && at(i + 1, "(")) i = matching_bracket(t_, i + 1);
      else if (t_[i].is("[") && at(i + 1, "[")) i = matching_bracket(t_, i);
      else if (!specifiers.count(t_[i].text) && !is_address_space(t_[i])) ret.push_back(i);
    }
    const bool is_void = ret.size() == 1 && t_[ret[0]].is("void");
    for (size_t i : ret)
      if (t_[i].is("auto") || t_[i].is("decltype")) return fail(cannot + "its return type is deduced");
    struct Param {
      std::vector<size_t> type;
      std::string name;
    };
    std::vector<Param> params;
    for (auto [a, b] : split_commas(lp + 1, rp - 1, true)) {
      Param p;
      for (size_t i = a; i <= b; ++i) {
        if (t_[i].is("[") && at(i + 1, "[")) i = matching_bracket(t_, i);
        else p.type.push_back(i);
      }
      if (p.type.empty() || !t_[p.type.back()].is_identifier()) return fail(cannot + "a parameter without a name");
      p.name = std::string(t_[p.type.back()].text);
      p.type.pop_back();
      bool is_const = false, is_ref = false;
      for (size_t i : p.type) {
        if (t_[i].is("=")) return fail(cannot + "a default argument");
        if (t_[i].is("const")) is_const = true;
        if (t_[i].is("&") || t_[i].is("&&")) is_ref = true;
      }
      if (is_ref && !is_const) return fail(cannot + "parameter '" + p.name + "' is a reference the function may write");
      std::vector<size_t> kept;  // by value: `const T&` reads like `T`
      for (size_t i : p.type)
        if (!t_[i].is("&") && !t_[i].is("&&")) kept.push_back(i);
      p.type = kept;
      params.push_back(p);
    }
    const auto args = split_commas(lparen + 1, rparen - 1, false);
    if ((rparen == lparen + 1 ? 0 : args.size()) != params.size()) return fail(cannot + "the argument count differs");
    std::vector<Stmt> body;
    if (!parse_statements(t_, def->open, def->close, body)) return fail(cannot + "a statement it holds is not modelled");
    if (!scan_tokens(def->open, def->close)) return false;
    const std::optional<std::string> ns = namespace_path(def->open);
    if (!ns) return fail(cannot + "it is not defined at namespace scope");
    for (const FunctionBody& b : r_.bodies)
      if (b.open > def->close)
        for (size_t i = def->open + 1; i < def->close; ++i)
          if (waits_.count(i) && t_[i].is(b.name)) return fail(cannot + "it calls a function defined after it");

    // The call, in the caller's frame: per-thread arguments are collected first.
    const std::string id = std::to_string(r_.body_open) + "_" + std::to_string(next_array_++);
    const std::string n = std::to_string(r_.max_threads);
    const std::string fn = name + "__mps_lanes_" + id;
    std::vector<bool> uniform(params.size());
    std::vector<std::string> passed(params.size());
    std::set<std::string> simd_params;  // bound to a lambda that calls SIMD-group functions
    for (size_t i = 0; i < params.size(); ++i) {
      const auto [a, b] = args[i];
      const bool lambda = t_[a].is("[") && !uses_varying(a, b);
      if (has_sync(a, b) && !lambda) return fail(cannot + "an argument calls a SIMD-group function");
      if (has_sync(a, b)) simd_params.insert(params[i].name);
      bool changed = false;  // one copy cannot serve threads that change it
      for (const Stmt& st : body) changed = changed || modified_in(params[i].name, st);
      uniform[i] = lambda || (!uses_varying(a, b) && side_effect_free(a, b) && !changed);
      if (uniform[i]) {
        passed[i] = render(a, b);
        continue;
      }
      passed[i] = "mps_lane_" + std::to_string(next_array_++) + "_arg";
      out_ += line_marker(a) + "auto " + passed[i] + " = mps_host::collect_lanes<" + n + ", false>(mps_g, " +
              lane_lambda_open("", "auto") + "return " + render(a, b) + ";\n});\n";
    }
    out_ += line_marker(s.first) + (is_void ? "" : "auto mps_call_" + id + " = ") + *ns + fn + "(mps_g";
    for (const std::string& x : passed) out_ += ", " + x;
    out_ += ");\n";
    for (size_t i = def->open + 1; i < def->close; ++i)  // calls through those parameters meet like SIMD functions
      if (simd_params.count(std::string(t_[i].text)) && at(i + 1, "(") && !(t_[i - 1].is(".") || t_[i - 1].is("->")))
        syncs_.insert(i);

    // The function, after the definition (so in its namespace): `template <class A0, ...> auto f__mps_lanes(g, a0, ...)`.
    std::string caller_out;
    std::swap(out_, caller_out);
    if (!params.empty()) {
      out_ += "template <";
      for (size_t i = 0; i < params.size(); ++i) out_ += (i ? ", class A" : "class A") + std::to_string(i);
      out_ += ">\n";
    }
    out_ += "MPS_SHIM_INLINE auto " + fn + "(mps_host::GroupLanes& mps_g";
    for (size_t i = 0; i < params.size(); ++i) out_ += ", A" + std::to_string(i) + "&& mps_arg_" + std::to_string(i);
    out_ += ") {\n";
    for (size_t j = 0; j < tparams.size(); ++j) {
      if (j < explicit_args.size()) {  // spelled in the caller's scope: only plain types are safe here
        out_ += "using " + tparams[j] + " = " + explicit_args[j] + ";\n";
        continue;
      }
      size_t from = params.size();
      bool through_pointer = false;  // `T* p` rather than `T v`
      for (size_t i = 0; i < params.size() && from == params.size(); ++i) {
        std::vector<size_t> bare;
        for (size_t x : params[i].type)
          if (!t_[x].is("const") && !is_address_space(t_[x])) bare.push_back(x);
        if (bare.empty() || !t_[bare[0]].is(tparams[j])) continue;
        if (bare.size() == 1) from = i;
        if (bare.size() == 2 && t_[bare[1]].is("*")) from = i, through_pointer = true;
      }
      if (from == params.size()) return fail(cannot + "template parameter '" + tparams[j] + "' is not deduced");
      const std::string arg_type = "std::decay_t<decltype(mps_arg_" + std::to_string(from) + (uniform[from] ? "" : "[0]") + ")>";
      out_ += "using " + tparams[j] + " = " +
              (through_pointer ? "std::remove_cv_t<std::remove_pointer_t<" + arg_type + ">>" : arg_type) + ";\n";
    }
    Frame callee;
    callee.callee = true;
    callee.lane_vars_begin = lane_vars_.size();
    if (!is_void) callee.result = "mps_result";
    out_ += "mps_host::LaneMask mps_scope(mps_g);  // a return holds its thread out until here\n";
    if (!is_void) out_ += "mps_host::LaneValues<" + tokens_text(ret) + ", " + n + "> mps_result;\n";
    Frame* caller = frame_;
    frame_ = &callee;
    for (size_t i = 0; i < params.size(); ++i) {
      const std::string arg = "mps_arg_" + std::to_string(i);
      if (uniform[i]) {
        out_ += tokens_text(params[i].type) + params[i].name + " = " + arg + ";\n";
        continue;
      }
      std::vector<size_t> value_type;  // top-level const dropped for per-thread arrays
      bool pointer = false;
      for (size_t x : params[i].type) pointer = pointer || t_[x].is("*");
      for (size_t x : params[i].type)
        if (!(t_[x].is("const") && (!pointer || x == params[i].type.back()))) value_type.push_back(x);
      const std::string array = "mps_param_" + std::to_string(i);
      out_ += "auto&& " + array + " = mps_host::lane_cast<" + tokens_text(value_type) + ">(mps_g, " + arg + ");\n";
      callee.varying.insert(params[i].name);
      lane_vars_.push_back({params[i].name, array});
    }
    for (const Stmt& st : body) collect_declared(st);
    ++inline_depth_;
    const bool ok = block(body);
    --inline_depth_;
    frame_ = caller;
    lane_vars_.resize(callee.lane_vars_begin);
    if (!ok) return false;
    if (!is_void) out_ += "return mps_result;\n";
    out_ += "}\n";
    insertions_.push_back({def->close, out_});
    std::swap(out_, caller_out);

    if (assigned) {
      if (is_void) return fail(cannot + "it returns nothing");
      out_ += lane_lambda_open("mps_host::for_each_lane(mps_g, ", "bool") + std::string(t_[*assigned].text) +
              " = mps_call_" + id + "[mps_lane];\nreturn false;\n});\n";
    }
    if (caller_decl) {
      const std::string var(t_[caller_decl->name].text);
      if (is_void) return fail(cannot + "it returns nothing");
      if (is_auto(*caller_decl)) {
        lane_vars_.push_back({var, "mps_call_" + id});
      } else {
        std::string type;
        if (!lane_var_type(*caller_decl, type)) return false;
        const LaneVar v{var, "mps_lane_" + std::to_string(next_array_++) + "_" + var};
        out_ += "auto&& " + v.array + " = mps_host::lane_cast<" + type + ">(mps_g, mps_call_" + id + ");\n";
        lane_vars_.push_back(v);
      }
    }
    return true;
  }

  // `::a::b::` for a token inside namespaces only; nullopt inside a class,
  // function or anonymous namespace.
  std::optional<std::string> namespace_path(size_t tok) const {
    std::vector<std::optional<std::string>> scopes;
    for (size_t k = 0; k < tok; ++k) {
      if (t_[k].is("{")) {
        std::string name;
        size_t j = k;
        while (j >= 2 && t_[j - 1].is_identifier() && (t_[j - 2].is("::") || t_[j - 2].is("namespace"))) {
          name = std::string(t_[j - 1].text) + (name.empty() ? "" : "::" + name);
          if (t_[j - 2].is("namespace")) break;
          j -= 2;
        }
        const bool is_ns = j >= 2 && t_[j - 2].is("namespace") && !name.empty();
        scopes.push_back(is_ns ? std::optional<std::string>(name) : std::nullopt);
      } else if (t_[k].is("}") && !scopes.empty()) {
        scopes.pop_back();
      }
    }
    std::string path = "::";
    for (const auto& sc : scopes) {
      if (!sc) return std::nullopt;
      path += *sc + "::";
    }
    return path;
  }

  // `[type|auto] x = expr;` as an array of per-thread values filled by its own loop.
  bool lane_value(const Stmt& s, const Declaration& d, bool replay) {
    const std::string name(t_[d.name].text);
    std::string type;
    if (!d.single) return fail("'" + name + "' lives across a barrier and shares its declaration with others");
    if (at(d.name + 1, "=") && at(d.name + 2, "["))
      return fail("the lambda '" + name + "' lives across a barrier and uses per-thread values");
    if (is_auto(d) && points_into_locals_)
      return fail("the auto variable '" + name + "' lives across a barrier and may point into a thread's locals");
    if (is_auto(d)) type = "auto";
    else if (!lane_var_type(d, type)) return false;
    if (is_auto(d) && (!d.single || has_token(d, "&") || has_token(d, "&&") || !t_[d.name + 1].is("=")))
      return fail("'" + name + "' is an auto reference or has no `=` initializer");
    const LaneVar v{name, "mps_lane_" + std::to_string(next_array_++) + "_" + name};
    const std::string init = t_[d.name + 1].is("=") ? render(d.name + 2, s.last - 1)
                                                    : type + render(d.name + 1, s.last - 1);
    out_ += line_marker(s.first) + "auto " + v.array + " = mps_host::collect_lanes<" +
            std::to_string(r_.max_threads) + ", " + (replay ? "true" : "false") + ">(mps_g, " +
            lane_lambda_open("", type) + "return " + init + ";\n});\n";
    lane_vars_.push_back(v);
    return true;
  }

  // `prefix[&](lane, ids) -> ret {` with the thread's own values and the
  // per-thread variables in scope declared.
  std::string lane_lambda_open(const std::string& prefix, const std::string& ret) const {
    std::string s = prefix + "[&](unsigned mps_lane, const mps_host::ThreadIds& mps_ids) "
                             "__attribute__((always_inline)) -> " + ret + " {\n(void)mps_lane; (void)mps_ids;\n";
    if (frame_->thread_params)
      for (const ParamDecl& p : *frame_->thread_params)
        if (p.role == ParamRole::ThreadPosition && !is_group_wide(p.thread_attr) && !p.name.empty())
          s += declare_thread_value(p, "mps_ids");
    std::set<std::string> shadowed;
    for (size_t k = lane_vars_.size(); k-- > frame_->lane_vars_begin;)  // the innermost of two with one name
      if (shadowed.insert(lane_vars_[k].name).second)
        s += "[[maybe_unused]] auto& " + lane_vars_[k].name + " = " + lane_vars_[k].array + "[mps_lane];\n";
    return s;
  }

  // A statement that holds a barrier: run once for the group.
  bool group_statement(const Stmt& s) {
    switch (s.kind) {
      case StmtKind::Simple:
        if (is_barrier_statement(s)) return true;  // every thread finished the loop before it
        if (mentions_barrier(s.first, s.last)) return fail("a barrier inside an expression");
        if (auto w = waits_.lower_bound(s.first); w != waits_.end() && *w <= s.last) return inline_call(s, *w);
        return simd_statement(s);
      case StmtKind::Compound:
        out_ += "{\n";
        if (!block(s.children)) return false;
        out_ += "}\n";
        return true;
      case StmtKind::If: {
        if (has_sync(s.head_open, s.head_close)) return fail(first_sync(s) + " in a condition");
        if (uses_varying(s.head_open, s.head_close)) return masked_if(s);
        out_ += line_marker(s.first) + "if " + render(s.head_open, s.head_close) + " {\n";
        if (!block({s.children[0]})) return false;
        out_ += "}\n";
        if (s.children.size() > 1) {
          out_ += "else {\n";
          if (!block({s.children[1]})) return false;
          out_ += "}\n";
        }
        return true;
      }
      case StmtKind::For: {
        if (!group_wide_loop_head(s)) return false;
        Stmt init;
        init.first = s.head_open + 1;
        init.last = s.semi1;
        if (auto d = declaration(init))
          if (modified_in(t_[d->name].text, s.children[0])) return fail("a loop variable that threads change");
        return loop_body(s, "for " + render(s.head_open, s.head_close) + " {\n", "}\n");
      }
      case StmtKind::While:
        return group_wide_loop_head(s) && loop_body(s, "while " + render(s.head_open, s.head_close) + " {\n", "}\n");
      case StmtKind::Do:
        return group_wide_loop_head(s) && loop_body(s, "do {\n", "} while " + render(s.head_open, s.head_close) + ";\n");
      case StmtKind::Opaque: break;
    }
    return fail("a barrier inside a switch, range-for or if constexpr");
  }

  // A loop around barriers runs once for the group: the same trip count for every thread.
  bool group_wide_loop_head(const Stmt& s) {
    if (has_sync(s.head_open, s.head_close)) return fail(first_sync(s) + " in a loop head");
    if (uses_varying(s.head_open, s.head_close))
      return fail("a barrier in a loop whose trip count differs between threads");
    return true;
  }

  bool loop_body(const Stmt& s, const std::string& open, const std::string& close) {
    out_ += line_marker(s.first) + open;
    if (!block({s.children[0]})) return false;
    out_ += close;
    return true;
  }

  // `if (cond)` where cond differs between threads: each branch runs with the
  // threads whose condition does not select it held out (LaneMask).
  bool masked_if(const Stmt& s) {
    const std::string id = std::to_string(next_array_++);
    out_ += line_marker(s.first) + "{\nauto mps_cond_" + id + " = mps_host::collect_lanes<" +
            std::to_string(r_.max_threads) + ", false>(mps_g, " + lane_lambda_open("", "bool") + "return bool" +
            render(s.head_open, s.head_close) + ";\n});\n";
    for (size_t branch = 0; branch < s.children.size(); ++branch) {
      out_ += "{\nmps_host::LaneMask mps_mask_" + id + "(mps_g, mps_cond_" + id + ", " +
              (branch == 0 ? "true" : "false") + ");\n";
      if (!block({s.children[branch]})) return false;
      out_ += "}\n";
    }
    out_ += "}\n";
    return true;
  }

  // True when a statement assigns `name` or takes its address.
  bool modified_in(std::string_view name, const Stmt& s) const {
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

  // Referenced by a statement of the block after `from`?
  bool used_after(std::string_view name, const std::vector<Stmt>& stmts, size_t from) const {
    for (size_t j = from; j < stmts.size(); ++j)
      for (size_t k = stmts[j].first; k <= stmts[j].last; ++k)
        if (t_[k].is(name) && !(t_[k - 1].is(".") || t_[k - 1].is("->"))) return true;
    return false;
  }

  bool add_return(size_t k, std::map<size_t, size_t>& returns) {
    size_t end = k + 1;
    while (end < t_.size() && !t_[end].is(";")) {
      if (t_[end].is("(") || t_[end].is("[") || t_[end].is("{")) end = matching_bracket(t_, end);
      ++end;
    }
    if (end > k + 1 && frame_->result.empty()) return fail("a return with a value from a kernel or void function");
    returns[k] = end;
    return true;
  }

  // `break`/`continue` that would leave the thread's loop, `return;` that ends
  // the thread, threadgroup declarations hidden inside a conditional.
  bool check_region_statement(const Stmt& s, bool in_loop, std::map<size_t, size_t>& returns) {
    if (s.kind == StmtKind::Simple) {
      if (!in_loop && (t_[s.first].is("break") || t_[s.first].is("continue")))
        return fail("a break or continue that crosses a barrier");
      if (t_[s.first].is("return") && !add_return(s.first, returns)) return false;
      for (size_t k = s.first; k <= s.last; ++k)
        if (t_[k].is("threadgroup") && r_.replacements[k] && r_.replacements[k]->find("static") != std::string::npos)
          return fail("a threadgroup variable declared inside a conditional");
      return true;
    }
    const bool loop = s.kind == StmtKind::For || s.kind == StmtKind::While || s.kind == StmtKind::Do ||
                      s.kind == StmtKind::Opaque;
    if (s.kind == StmtKind::Opaque) {  // switch/range-for: break binds inside; return still ends the thread
      for (size_t k = s.first; k <= s.last; ++k)
        if (t_[k].is("return") && !add_return(k, returns)) return false;
      return true;
    }
    for (const Stmt& c : s.children)
      if (!check_region_statement(c, in_loop || loop, returns)) return false;
    return true;
  }

  // One loop over the group's threads running `region`; its declarations used
  // after it become per-thread arrays.
  bool lane_loop(const std::vector<const Stmt*>& region, const std::vector<Stmt>& block, size_t after,
                 std::string& arrays) {
    std::map<size_t, size_t> returns;
    for (const Stmt* s : region)
      if (!check_region_statement(*s, false, returns)) return false;
    std::string body;
    std::vector<LaneVar> declared_here;
    for (const Stmt* s : region) {
      const auto d = declaration(*s);
      bool kept = false;  // a declarator used after the loop
      const auto declarators = d ? split_commas(d->name, s->last - 1, false) : decltype(split_commas(0, 0, false))();
      for (auto [a, b] : declarators) kept = kept || used_after(t_[a].text, block, after);
      if (!kept) {
        body += line_marker(s->first) + render(s->first, s->last, returns) + "\n";
        continue;
      }
      std::string type;
      if (!lane_var_type(*d, type)) return false;
      body += line_marker(s->first);
      for (auto [a, b] : declarators) {  // `T a = 1, b;` as one statement per declarator
        const std::string name(t_[a].text);
        if (!t_[a].is_identifier() || at(a + 1, "["))
          return fail("the declaration of '" + name + "' lives across a barrier and is not `T name [= init]`");
        if (!used_after(name, block, after)) {
          body += render(d->type_first, d->type_last) + " " + render(a, b, returns) + ";";
          continue;
        }
        const LaneVar v{name, "mps_lane_" + std::to_string(next_array_++) + "_" + name};
        arrays += line_marker(s->first) + type + " " + v.array + "[" + std::to_string(r_.max_threads) + "];\n";
        body += "auto& " + name + " = " + v.array + "[mps_lane];";
        if (at(a + 1, "=")) body += " " + name + " = " + render(a + 2, b, returns) + ";";
        else if (at(a + 1, "(") || at(a + 1, "{")) body += " " + name + " = " + type + render(a + 1, b, returns) + ";";
        declared_here.push_back(v);
      }
      body += "\n";
    }
    out_ += line_marker(region.front()->first) + lane_lambda_open("mps_host::for_each_lane(mps_g, ", "bool");
    out_ += "{\n" + body + "}\nreturn false;\n});\n";
    lane_vars_.insert(lane_vars_.end(), declared_here.begin(), declared_here.end());
    return true;
  }

  // The element type of a per-thread array: the declared type, top-level const dropped.
  bool lane_var_type(const Declaration& d, std::string& type) {
    const std::string name(t_[d.name].text);
    if (at(d.name + 1, "[")) return fail("the per-thread array '" + name + "' lives across a barrier");
    bool pointer = false;
    for (size_t k = d.type_first; k <= d.type_last; ++k) {
      const Token& tk = t_[k];
      if (tk.is("auto") || tk.is("decltype") || tk.is("&") || tk.is("&&") || tk.is("static") || tk.is("(") ||
          (tk.is_identifier() && frame_->body_types.count(std::string(tk.text))))
        return fail("'" + name + "' lives across a barrier and its type is not spelled out (auto, a reference, "
                    "or a type declared in the kernel)");
      if (tk.is("*")) pointer = true;
    }
    if (pointer && points_into_locals_)
      return fail("the pointer '" + name + "' lives across a barrier and may point into a thread's locals");
    for (size_t k = d.type_first; k <= d.type_last; ++k) {
      const bool top_const = t_[k].is("const") && (!pointer || k == d.type_last);
      if (top_const) continue;
      type += render(k, k);
      type += ' ';
    }
    return true;
  }

  const FissionRequest& r_;
  const std::vector<Token>& t_;
  std::set<size_t> barriers_;              // barrier call tokens
  std::set<size_t> syncs_;                 // barrier and SIMD-group call tokens
  Frame* frame_ = nullptr;
  std::set<size_t> waits_;                 // calls of library functions that reach a barrier
  std::vector<std::pair<size_t, std::string>> insertions_;  // lane versions of inlined functions
  std::set<size_t> shared_;                // declarations the group makes once (first token)
  mutable std::map<std::string, bool> purity_;  // pure_function, by name
  std::set<std::string> waiting_lambdas_;  // group-level lambdas that call SIMD functions
  bool local_arrays_ = false;              // the kernel declares a per-thread array
  bool points_into_locals_ = false;
  int inline_depth_ = 0;
  std::vector<LaneVar> lane_vars_;         // per-thread arrays in scope, outermost first
  size_t next_array_ = 0;
  std::string out_;
  std::string why_;
};

}  // namespace

FissionResult split_at_barriers(const FissionRequest& request) { return Splitter(request).run(); }

std::string rewritten_text(const LexedSource& source, const std::vector<std::optional<std::string>>& replacements,
                           size_t first, size_t last, const std::map<size_t, std::string>* overrides) {
  const std::vector<Token>& t = source.tokens;
  std::string s;
  const char* base = t[first].text.data();
  size_t pos = 0;
  for (size_t k = first; k <= last; ++k) {
    const size_t off = size_t(t[k].text.data() - base);
    s.append(base + pos, off - pos);
    auto it = overrides ? overrides->find(k) : decltype(overrides->end())();
    if (overrides && it != overrides->end()) s += it->second;
    else if (replacements[k]) s += *replacements[k];
    else s += t[k].text;
    pos = off + t[k].text.size();
  }
  return s;
}

std::string line_directive(const LexedSource& source, size_t tok, bool copy) {
  const Token& tk = source.tokens[tok];
  std::string file;
  for (char c : source.files[size_t(tk.file)]) {
    if (c == '"' || c == '\\') file += '\\';
    file += c;
  }
  if (copy) file += kCopySuffix;
  return "\n#line " + std::to_string(tk.line) + " \"" + file + "\"\n";
}

}  // namespace mps_shim::frontend
