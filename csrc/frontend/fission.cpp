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

class Splitter {
 public:
  explicit Splitter(const FissionRequest& r) : r_(r), t_(r.source.tokens) {}

  FissionResult run() {
    std::vector<Stmt> body;
    if (!parse_statements(t_, r_.body_open, r_.body_close, body))
      return no("the kernel holds a statement the splitter does not model (a label or case)");
    if (!scan_tokens()) return no(why_);
    for (const Stmt& s : body) collect_declared(s);
    for (const ParamDecl& p : r_.params)
      if (p.role == ParamRole::ThreadPosition && !is_group_wide(p.thread_attr)) varying_.insert(p.name);
    out_ = "{\n{\n";
    for (const ParamDecl& p : r_.params)
      if (p.role == ParamRole::ThreadPosition && is_group_wide(p.thread_attr) && !p.name.empty())
        out_ += declare_thread_value(p, "mps_g.uniform");
    if (!block(body)) return no(why_);
    out_ += "}\n}\n";
    return FissionResult{out_, ""};
  }

 private:
  FissionResult no(const std::string& why) { return FissionResult{std::nullopt, why}; }
  bool fail(const std::string& why) {
    if (why_.empty()) why_ = why;
    return false;
  }
  bool at(size_t i, std::string_view s) const { return i < t_.size() && t_[i].is(s); }

  // Constructs the splitter cannot reason about, and calls that need fibers.
  bool scan_tokens() {
    static const std::set<std::string_view> unmodelled = {"goto", "struct", "class", "union", "enum",
                                                          "typedef", "using", "asm", "__asm__"};
    for (size_t i = r_.body_open + 1; i < r_.body_close; ++i) {
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
        case CallKind::Wait:
          return fail(std::string("the kernel calls '") + std::string(tk.text) +
                      "', which reaches a barrier or polls an atomic inside a statement");
      }
    }
    return !syncs_.empty() || fail("the kernel has no barrier or SIMD-group function");
  }

  // Holds a barrier or a SIMD-group function: the threads must meet there.
  bool has_sync(size_t first, size_t last) const {
    auto it = syncs_.lower_bound(first);
    return it != syncs_.end() && *it <= last;
  }
  bool has_sync(const Stmt& s) const { return has_sync(s.first, s.last); }
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
      if (!is_threadgroup_declaration(*d) && !has_token(*d, "constexpr")) varying_.insert(std::string(t_[d->name].text));
      body_types_.insert(std::string(t_[d->name].text));
    }
    for (const Stmt& c : s.children) collect_declared(c);
  }

  bool uses_varying(size_t first, size_t last) const {
    for (size_t k = first; k <= last; ++k)
      if (t_[k].is_identifier() && varying_.count(std::string(t_[k].text)) &&
          !(k > 0 && (t_[k - 1].is(".") || t_[k - 1].is("->"))))
        return true;
    return false;
  }

  // A threadgroup array is a plain local of the group function; `return;` ends a thread.
  std::string render(size_t first, size_t last, const std::set<size_t>& returns = {}) const {
    std::map<size_t, std::string> own;
    for (size_t k = first; k <= last; ++k) {
      if (returns.count(k)) own[k] = "return true";
      else if (t_[k].is("threadgroup") && r_.replacements[k]) own[k] = std::string(t_[k].text.size(), ' ');
    }
    return rewritten_text(r_.source, r_.replacements, first, last, &own);
  }

  std::string line_marker(size_t tok) const { return line_directive(r_.source, tok); }

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
      if (has_sync(stmts[i])) r[i] = Role::Sync;
      else if (d && (is_threadgroup_declaration(*d) || has_token(*d, "constexpr"))) r[i] = Role::Shared;
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
  bool side_effect_free(size_t first, size_t last) const {
    for (size_t k = first; k <= last; ++k) {
      const Token& tk = t_[k];
      if (is_assignment(tk.text) || tk.is("++") || tk.is("--") || tk.text.rfind("atomic_", 0) == 0) return false;
    }
    return true;
  }

  bool mentions(size_t first, size_t last, std::string_view name) const {
    for (size_t k = first; k <= last; ++k)
      if (t_[k].is(name)) return true;
    return false;
  }

  // A statement with SIMD-group functions: `[type] x = expr;` or `lvalue = expr;`,
  // replayed once per SIMD operation (see LaneExchange in mps_host_metal.h).
  bool simd_statement(const Stmt& s) {
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

  // `[type|auto] x = expr;` as an array of per-thread values filled by its own loop.
  bool lane_value(const Stmt& s, const Declaration& d, bool replay) {
    const std::string name(t_[d.name].text);
    std::string type;
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
    for (const ParamDecl& p : r_.params)
      if (p.role == ParamRole::ThreadPosition && !is_group_wide(p.thread_attr) && !p.name.empty())
        s += declare_thread_value(p, "mps_ids");
    std::set<std::string> shadowed;
    for (size_t k = lane_vars_.size(); k-- > 0;)  // the innermost of two with one name
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
        return simd_statement(s);
      case StmtKind::Compound:
        out_ += "{\n";
        if (!block(s.children)) return false;
        out_ += "}\n";
        return true;
      case StmtKind::If: {
        if (has_sync(s.head_open, s.head_close)) return fail("a SIMD-group function in a condition");
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
        if (has_sync(s.head_open, s.head_close)) return fail("a SIMD-group function in a loop head");
        if (uses_varying(s.head_open, s.head_close)) return fail("a barrier in a loop whose trip count differs between threads");
        Stmt init;
        init.first = s.head_open + 1;
        init.last = s.semi1;
        if (auto d = declaration(init))
          if (modified_in(t_[d->name].text, s.children[0])) return fail("a loop variable that threads change");
        out_ += line_marker(s.first) + "for " + render(s.head_open, s.head_close) + " {\n";
        if (!block({s.children[0]})) return false;
        out_ += "}\n";
        return true;
      }
      case StmtKind::While:
        if (has_sync(s.head_open, s.head_close)) return fail("a SIMD-group function in a loop head");
        if (uses_varying(s.head_open, s.head_close)) return fail("a barrier in a loop whose trip count differs between threads");
        out_ += line_marker(s.first) + "while " + render(s.head_open, s.head_close) + " {\n";
        if (!block({s.children[0]})) return false;
        out_ += "}\n";
        return true;
      case StmtKind::Do:
        if (has_sync(s.head_open, s.head_close)) return fail("a SIMD-group function in a loop head");
        if (uses_varying(s.head_open, s.head_close)) return fail("a barrier in a loop whose trip count differs between threads");
        out_ += line_marker(s.first) + "do {\n";
        if (!block({s.children[0]})) return false;
        out_ += "} while " + render(s.head_open, s.head_close) + ";\n";
        return true;
      case StmtKind::Opaque: break;
    }
    return fail("a barrier inside a switch, range-for or if constexpr");
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

  // `break`/`continue` that would leave the thread's loop, `return;` that ends
  // the thread, threadgroup declarations hidden inside a conditional.
  bool check_region_statement(const Stmt& s, bool in_loop, std::set<size_t>& returns) {
    if (s.kind == StmtKind::Simple) {
      if (!in_loop && (t_[s.first].is("break") || t_[s.first].is("continue")))
        return fail("a break or continue that crosses a barrier");
      if (t_[s.first].is("return")) {
        if (!at(s.first + 1, ";")) return fail("a return with a value");
        returns.insert(s.first);
      }
      for (size_t k = s.first; k <= s.last; ++k)
        if (t_[k].is("threadgroup") && r_.replacements[k] && r_.replacements[k]->find("static") != std::string::npos)
          return fail("a threadgroup variable declared inside a conditional");
      return true;
    }
    const bool loop = s.kind == StmtKind::For || s.kind == StmtKind::While || s.kind == StmtKind::Do ||
                      s.kind == StmtKind::Opaque;
    if (s.kind == StmtKind::Opaque) {  // switch/range-for: break binds inside; return still ends the thread
      for (size_t k = s.first; k <= s.last; ++k)
        if (t_[k].is("return") && at(k + 1, ";")) returns.insert(k);
        else if (t_[k].is("return")) return fail("a return with a value");
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
    std::set<size_t> returns;
    for (const Stmt* s : region)
      if (!check_region_statement(*s, false, returns)) return false;
    std::string body;
    std::vector<LaneVar> declared_here;
    for (const Stmt* s : region) {
      const auto d = declaration(*s);
      const std::string name = d ? std::string(t_[d->name].text) : "";
      if (!d || !used_after(name, block, after)) {
        body += line_marker(s->first) + render(s->first, s->last, returns) + "\n";
        continue;
      }
      std::string type;
      if (!lane_var_type(*d, type)) return false;
      const LaneVar v{name, "mps_lane_" + std::to_string(next_array_++) + "_" + name};
      arrays += type + " " + v.array + "[" + std::to_string(r_.max_threads) + "];\n";
      body += line_marker(s->first) + "auto& " + name + " = " + v.array + "[mps_lane];";
      const Token& next = t_[d->name + 1];
      if (next.is("=")) body += " " + name + " = " + render(d->name + 2, s->last, returns);
      else if (next.is("(") || next.is("{")) body += " " + name + " = " + type + render(d->name + 1, s->last, returns);
      body += "\n";
      declared_here.push_back(v);
    }
    out_ += line_marker(region.front()->first) + lane_lambda_open("mps_host::for_each_lane(mps_g, ", "bool");
    out_ += "{\n" + body + "}\nreturn false;\n});\n";
    lane_vars_.insert(lane_vars_.end(), declared_here.begin(), declared_here.end());
    return true;
  }

  // The element type of a per-thread array: the declared type, top-level const dropped.
  bool lane_var_type(const Declaration& d, std::string& type) {
    const std::string name(t_[d.name].text);
    if (!d.single) return fail("'" + name + "' lives across a barrier and shares its declaration with others");
    if (at(d.name + 1, "[")) return fail("the per-thread array '" + name + "' lives across a barrier");
    bool pointer = false;
    for (size_t k = d.type_first; k <= d.type_last; ++k) {
      const Token& tk = t_[k];
      if (tk.is("auto") || tk.is("decltype") || tk.is("&") || tk.is("&&") || tk.is("static") || tk.is("(") ||
          (tk.is_identifier() && body_types_.count(std::string(tk.text))))
        return fail("'" + name + "' lives across a barrier and its type is not spelled out (auto, a reference, "
                    "or a type declared in the kernel)");
      if (tk.is("*")) pointer = true;
    }
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
  std::set<std::string> varying_;          // names whose value differs between threads
  std::set<std::string> body_types_;       // names the body declares (not usable as array types)
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

std::string line_directive(const LexedSource& source, size_t tok) {
  const Token& tk = source.tokens[tok];
  std::string file;
  for (char c : source.files[size_t(tk.file)]) {
    if (c == '"' || c == '\\') file += '\\';
    file += c;
  }
  return "\n#line " + std::to_string(tk.line) + " \"" + file + "\"\n";
}

}  // namespace mps_shim::frontend
