// Writing the group function: loops over a group's threads between meeting
// points, per-thread arrays, replayed SIMD statements, masked branches.
#include "backends/host/lane_loops/splitter.h"

#include "backends/host/simd_sites.h"

#include <algorithm>

namespace mps_shim::host::lane_loops {

// A threadgroup declaration's keyword in the group function: memory local to
// it (the host's `static thread_local` dropped), or checked mode's array class
// (checked_lowering.h) with its tag.
static std::string group_local(const std::string& replacement, size_t width) {
  const size_t at = replacement.find("mps_host::checked::tg_array<");
  if (at == std::string::npos) return std::string(width, ' ');
  std::string out = replacement;
  const std::string storage = "static thread_local ";
  const size_t st = out.find(storage);
  if (st != std::string::npos) out.erase(st, storage.size());
  return out;
}

LaneLoopResult Splitter::run() {
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
  for (const ParamDecl& p : r_.params) kernel.params.insert(p.name);
  describe_frame(kernel, r_.body_open, r_.body_close, body);
  for (const ParamDecl& p : r_.params) {
    if (p.name.empty() || kernel.declared.count(p.name)) continue;  // a local of that name may hide it
    if (p.space == AddressSpace::Device || p.space == AddressSpace::Constant) kernel.memory[p.name] = kDeviceMemory;
    if (p.space == AddressSpace::Threadgroup) kernel.memory[p.name] = kGroupMemory;
  }
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
  return LaneLoopResult{out_, "", insertions_};
}

bool Splitter::fail(const std::string& why) {
  if (why_.empty()) why_ = why;
  return false;
}

std::string Splitter::render(size_t first, size_t last, const std::map<size_t, size_t>& returns) const {
  std::map<size_t, std::string> own;
  for (size_t k = first; k <= last; ++k) {
    auto r = returns.find(k);
    if (r != returns.end() && !frame_->callee) {
      own[k] = "return true";
    } else if (r != returns.end()) {
      const bool value = r->second > k + 1, braced = value && t_[k + 1].is("{");  // `return {a, b};`
      own[k] = !value ? "{ "
               : braced ? "{ " + frame_->result + "[mps_lane] = " + result_type() + " "
                        : "{ " + frame_->result + "[mps_lane] = (";
      own[r->second] = std::string(value && !braced ? ")" : "") +
                       (k == frame_->final_return ? "; return false; }" : "; mps_host::hold_out(mps_g, mps_lane); return false; }");
    } else if (auto h = hoisted_.find(k); h != hoisted_.end() && !own.count(k)) {
      own[k] = h->second;
    } else if (t_[k].is("decltype") && k + 3 <= last && t_[k + 1].is("(") && t_[k + 3].is(")") &&
               lane_var(t_[k + 2].text) && !own.count(k)) {
      // A thread's variable is a reference to its array element here: its declared type is the element's.
      own[k] = "std::remove_reference_t<decltype";
      own[k + 3] = ")>";
    } else if (t_[k].is("threadgroup") && r_.replacements[k] && !own.count(k)) {
      own[k] = group_local(*r_.replacements[k], t_[k].text.size());
    }
  }
  return rewritten_text(r_.source, r_.replacements, first, last, &own);
}

std::string Splitter::declare_thread_value(const ParamDecl& p, const std::string& ids) {
  return "[[maybe_unused]] " + p.type + " " + p.name + " = mps_host::thread_value<" + p.type + ">(" + ids + "." +
         thread_ids_member(p.thread_attr) + ");\n";
}

bool Splitter::block(const std::vector<Stmt>& stmts) {
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
        for (; j < stmts.size(); ++j) {
          if (role[j] == Role::Lanes) {
            region.push_back(&stmts[j]);
          } else if (role[j] == Role::Shared && movable_group_declaration(stmts[j], region)) {
            out_ += line_marker(stmts[j].first) + render(stmts[j].first, stmts[j].last) + "\n";  // ahead of the loop
          } else {
            break;
          }
        }
        if (!lane_loop(region, stmts, j, arrays)) return false;
        i = j;
        continue;
      }
      case Role::Shared: out_ += line_marker(s.first) + render(s.first, s.last) + "\n"; break;
      case Role::LaneValue:
        if (uniform_statements({&s})[0]) emit_uniform({&s});
        else if (!lane_value(s, *declaration(s), false)) return false;
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

namespace {

const char* const kShifted =
    "a statement calls SIMD-group functions under a conditional operator and after it (replayed, a thread "
    "that skips one would meet the next call's operation early)";

// Metal's SIMD-group and quad-group functions that mps_host::lanes computes for
// a whole group (mps_host_lane_simd.h), with their number of arguments.
int lane_vector_arity(std::string_view name) {
  static const std::map<std::string_view, int> arity = {
      {"sum", 1}, {"product", 1}, {"min", 1}, {"max", 1}, {"and", 1}, {"or", 1}, {"xor", 1},
      {"prefix_inclusive_sum", 1}, {"prefix_exclusive_sum", 1}, {"prefix_inclusive_product", 1},
      {"prefix_exclusive_product", 1}, {"broadcast_first", 1}, {"shuffle", 2}, {"broadcast", 2},
      {"shuffle_up", 2}, {"shuffle_down", 2}, {"shuffle_xor", 2}, {"shuffle_and_fill_down", 3},
      {"shuffle_and_fill_up", 3}};  // and_fill: 3 arguments, or 4 with a modulo
  name = frontend::metal_builtin_name(name);
  for (std::string_view prefix : {"simd_", "quad_"})
    if (name.rfind(prefix, 0) == 0) {
      auto it = arity.find(name.substr(prefix.size()));
      return it == arity.end() ? -1 : it->second;
    }
  return -1;
}

}  // namespace

std::optional<Splitter::LambdaShape> Splitter::lambda_shape(size_t first, size_t last) const {
  // Captures would be names of the scope that made the lambda: only `[]` is inlined.
  if (!t_[first].is("[") || !at(first + 1, "]")) return std::nullopt;
  const size_t captures = first + 1;
  if (!at(captures + 1, "(")) return std::nullopt;
  const size_t rparen = matching_bracket(t_, captures + 1), open = rparen + 1;
  if (!at(open, "{") || matching_bracket(t_, open) != last || !at(open + 1, "return") || !t_[last - 1].is(";") ||
      open + 2 > last - 2)
    return std::nullopt;
  LambdaShape shape{{}, open + 2, last - 2};
  if (rparen > captures + 2)
    for (auto [a, b] : split_commas(captures + 2, rparen - 1, true)) {
      if (b <= a || !t_[b].is_identifier()) return std::nullopt;
      std::vector<size_t> type;
      for (size_t k = a; k < b; ++k) type.push_back(k);
      shape.params.push_back({type, b});
    }
  return shape;
}

bool Splitter::hoistable_calls(size_t first, size_t last, std::vector<HoistedCall>& calls, int depth) const {
  if (depth > 4) return false;
  for (size_t k = first; k <= last; ++k)  // every call must run: no conditional operand, no lambda
    if (t_[k].is("?") || t_[k].is("&&") || t_[k].is("||") || t_[k].is("{")) return false;
  for (auto it = syncs_.lower_bound(first); it != syncs_.end() && *it <= last; ++it) {
    const size_t k = *it;
    const std::string name(t_[k].text);
    if (at(k + 1, "<") && lane_vector_arity(name) < 0 && !library_functions_.count(name))
      continue;  // a type named like a SIMD function (c10's `simd_type_t<T>`)
    if (!at(k + 1, "(") || matching_bracket(t_, k + 1) > last) return false;
    const size_t close = matching_bracket(t_, k + 1);
    const size_t n_args = close == k + 2 ? 0 : split_commas(k + 2, close - 1, false).size();
    if (auto l = frame_->lambdas.find(name); l != frame_->lambdas.end()) {  // a lambda called through its name
      if (k > first && (t_[k - 1].is("::") || t_[k - 1].is(".") || t_[k - 1].is("->"))) return false;
      const auto shape = lambda_shape(l->second.first, l->second.second);
      std::vector<HoistedCall> inner;
      if (!shape || shape->params.size() != n_args ||
          !hoistable_calls(shape->expr_first, shape->expr_last, inner, depth + 1))
        return false;
      calls.push_back({k, k, close, true});
      continue;
    }
    const size_t start = metal_call_start(t_, k, first, library_functions_);
    if (start == std::string_view::npos) return false;
    const int arity = lane_vector_arity(name);
    if (arity != int(n_args) && !(arity == 3 && n_args == 4 && name.find("and_fill") != std::string::npos))
      return false;
    calls.push_back({k, start, close, false});
  }
  return true;
}

std::string Splitter::hoist_call(const HoistedCall& c) {
  const std::string id = "mps_simd_" + std::to_string(next_array_++);
  std::vector<std::pair<size_t, size_t>> args;
  if (c.close > c.name + 2) args = split_commas(c.name + 2, c.close - 1, false);
  std::optional<LambdaShape> shape;
  if (c.lambda) {
    const auto& range = frame_->lambdas.at(std::string(t_[c.name].text));
    shape = lambda_shape(range.first, range.second);
  }
  std::vector<std::string> arrays;
  for (size_t j = 0; j < args.size(); ++j) {  // each argument collected over the threads (as the parameter's type)
    if (!shape && args[j].first == args[j].second) {
      if (const LaneVar* v = lane_var(t_[args[j].first].text); v && !hoisted_.count(args[j].first)) {
        arrays.push_back(v->array);  // a thread's variable: its array as it is
        continue;
      }
    }
    const std::string array = id + "_" + std::to_string(j);
    bool rewritten = false;  // reads a hoisted result or a lambda's parameter
    for (size_t k = args[j].first; k <= args[j].second; ++k) rewritten = rewritten || hoisted_.count(k);
    if (!shape && j > 0 && !rewritten && !uses_varying(args[j].first, args[j].second) &&
        side_effect_free(args[j].first, args[j].second)) {  // a lane index, delta or fill: the same for all
      out_ += "auto " + array + " = mps_host::lanes::uniform(" + render(args[j].first, args[j].second) + ");\n";
      arrays.push_back(array);
      continue;
    }
    const std::string type = shape ? "std::decay_t<" + tokens_text(shape->params[j].first) + ">" : "auto";
    out_ += "auto " + array + " = mps_host::collect_lanes<" + std::to_string(r_.max_threads) + ", false>(mps_g, " +
            lane_lambda_open("", type) + "return " + render(args[j].first, args[j].second) + ";\n});\n";
    arrays.push_back(array);
  }
  if (!shape) {
    std::string call = "auto " + id + " = mps_host::lanes::" + std::string(frontend::metal_builtin_name(t_[c.name].text)) + "(mps_g";
    for (const std::string& a : arrays) call += ", " + a;
    out_ += line_marker(c.name) + call + ");\n";  // the call's own line (checked mode's reports name it)
    return id + "[mps_lane]";
  }
  // A lambda: its expression with the parameters read from the collected arguments.
  std::map<size_t, std::string> saved;
  std::swap(saved, hoisted_);
  for (size_t k = shape->expr_first; k <= shape->expr_last; ++k)
    for (size_t j = 0; j < shape->params.size(); ++j)
      if (t_[k].is(t_[shape->params[j].second].text) &&
          !(t_[k - 1].is(".") || t_[k - 1].is("->") || t_[k - 1].is("::")))
        hoisted_[k] = arrays[j] + "[mps_lane]";
  std::vector<HoistedCall> inner;
  hoistable_calls(shape->expr_first, shape->expr_last, inner, 0);
  std::sort(inner.begin(), inner.end(), [](const HoistedCall& a, const HoistedCall& b) { return a.close < b.close; });
  for (const HoistedCall& i : inner) {
    const std::string replaced = hoist_call(i);
    hoisted_[i.start] = replaced;
    for (size_t k = i.start + 1; k <= i.close; ++k) hoisted_[k] = "";
  }
  const std::string value = "(" + render(shape->expr_first, shape->expr_last) + ")";
  std::swap(saved, hoisted_);
  return value;
}

bool Splitter::hoist_simd_calls(size_t first, size_t last) {
  std::vector<HoistedCall> calls;
  if (!hoistable_calls(first, last, calls, 0) || calls.empty()) return false;
  std::sort(calls.begin(), calls.end(), [](const HoistedCall& a, const HoistedCall& b) { return a.close < b.close; });
  for (const HoistedCall& c : calls) {  // innermost first: an outer call's arguments read the inner result
    const std::string replaced = hoist_call(c);
    hoisted_[c.start] = replaced;
    for (size_t k = c.start + 1; k <= c.close; ++k) hoisted_[k] = "";
  }
  return true;
}

bool Splitter::movable_group_declaration(const Stmt& s, const std::vector<const Stmt*>& before) const {
  const auto d = declaration(s);
  if (!d || !is_threadgroup_declaration(*d) || has_token(*d, "=")) return false;
  for (size_t k = d->name; k < s.last; ++k)
    if (t_[k].is("=") || t_[k].is("{") || t_[k].is("(")) return false;
  for (const Stmt* b : before)
    if (mentions(b->first, b->last, t_[d->name].text)) return false;
  return true;
}

bool Splitter::shifted_simd_calls(size_t first, size_t last) const {
  std::vector<size_t> calls;
  std::vector<bool> in_args(last - first + 1);  // inside a SIMD call's arguments: evaluated before the call
  for (auto it = syncs_.lower_bound(first); it != syncs_.end() && *it <= last; ++it) {
    calls.push_back(*it);
    if (at(*it + 1, "("))
      for (size_t k = *it + 1, e = std::min(matching_bracket(t_, *it + 1), last); k <= e; ++k) in_args[k - first] = true;
  }
  if (calls.size() < 2) return false;
  size_t question = 0, colon = 0, n_questions = 0, n_colons = 0;
  bool logical = false;
  for (size_t k = first, depth = 0; k <= last; ++k) {
    if (t_[k].is("(") || t_[k].is("[") || t_[k].is("{")) ++depth;
    if (t_[k].is(")") || t_[k].is("]") || t_[k].is("}")) --depth;
    if (in_args[k - first]) continue;
    if (t_[k].is("&&") || t_[k].is("||")) logical = true;
    if (t_[k].is("?")) n_questions++, question = depth == 0 ? k : 0;
    if (t_[k].is(":")) n_colons++, colon = depth == 0 ? k : 0;
  }
  if (!logical && n_questions == 0) return false;
  // `c ? f(x) : g(y)`: each thread runs one of two calls, one operation each.
  if (!logical && n_questions == 1 && n_colons == 1 && question && colon > question &&
      !has_sync(first, question) && calls.size() == 2 && calls[0] < colon && calls[1] > colon)
    return false;
  return true;
}

bool Splitter::simd_statement(const Stmt& s) {
  struct Done {  // the hoisted calls' rewrites end with the statement
    std::map<size_t, std::string>& h;
    ~Done() { h.clear(); }
  } done{hoisted_};
  if (try_inline_simd_call(s)) return true;
  if (t_[s.first].is("return")) {  // the last statement of an inlined function
    if (frame_->result.empty() || !side_effect_free(s.first + 1, s.last - 1))
      return fail("a SIMD-group function in a return statement of a kernel or void function");
    const std::string values = "mps_lane_" + std::to_string(next_array_++) + "_value";
    const std::string hold = s.first == frame_->final_return ? "" : "mps_host::hold_out(mps_g, mps_lane);\n";
    out_ += line_marker(s.first);
    const bool replay = !hoist_simd_calls(s.first + 1, s.last - 1);
    if (replay && shifted_simd_calls(s.first + 1, s.last - 1)) return fail(kShifted);
    if (!replay) {  // the thread's result in one pass
      out_ += lane_lambda_open("mps_host::for_each_lane(mps_g, ", "bool") + frame_->result + "[mps_lane] = " +
              (t_[s.first + 1].is("{") ? result_type() + " " : "") + render(s.first + 1, s.last - 1) + ";\n" + hold +
              "return false;\n});\n";
      return true;
    }
    out_ += "auto " + values + " = mps_host::collect_lanes<" + std::to_string(r_.max_threads) + ", " +
            (replay ? "true" : "false") + ">(mps_g, " + lane_lambda_open("", "auto") + "return " +
            (t_[s.first + 1].is("{") ? result_type() + " " : "") + render(s.first + 1, s.last - 1) + ";\n});\n";
    out_ += lane_lambda_open("mps_host::for_each_lane(mps_g, ", "bool") + frame_->result + "[mps_lane] = " + values +
            "[mps_lane];\n" + hold + "return false;\n});\n";
    return true;
  }
  if (auto d = declaration(s)) {
    const size_t init = d->name + 1;
    if (!d->single || !t_[init].is("=") || !side_effect_free(init + 1, s.last - 1) ||
        mentions(init + 1, s.last - 1, t_[d->name].text))
      return fail("a SIMD-group function in a statement other than `[type] x = expr;` or `lvalue = expr;` "
                  "free of side effects");
    out_ += line_marker(s.first);
    const bool replay = !hoist_simd_calls(init + 1, s.last - 1);
    if (replay && shifted_simd_calls(init + 1, s.last - 1)) return fail(kShifted);
    return lane_value(s, *d, replay);
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
  out_ += line_marker(s.first);
  const bool replay = !hoist_simd_calls(eq + 1, s.last - 1);
  if (replay && shifted_simd_calls(eq + 1, s.last - 1)) return fail(kShifted);
  if (!replay && eq == s.first + 1 && t_[s.first].is_identifier()) {  // `x op= expr;` on the thread's own x: one pass
    out_ += lane_lambda_open("mps_host::for_each_lane(mps_g, ", "bool") + render(s.first, s.last) +
            "\nreturn false;\n});\n";
    return true;
  }
  out_ += "auto " + values + " = mps_host::collect_lanes<" + std::to_string(r_.max_threads) + ", " +
          (replay ? "true" : "false") + ">(mps_g, " + lane_lambda_open("", "auto") + "return " +
          render(eq + 1, s.last - 1) + ";\n});\n";
  out_ += line_marker(s.first) + lane_lambda_open("mps_host::for_each_lane(mps_g, ", "bool") + render(s.first, eq) +
          " " + values + "[mps_lane];\nreturn false;\n});\n";
  return true;
}

std::string Splitter::tokens_text(const std::vector<size_t>& toks) const {
  std::string s;
  for (size_t k : toks)
    s += (t_[k].is("threadgroup") ? group_local(r_.replacements[k] ? *r_.replacements[k] : "", 0) : render(k, k)) + " ";
  return s;
}

bool Splitter::lane_value(const Stmt& s, const Declaration& d, bool replay) {
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

const Splitter::LaneVar* Splitter::lane_var(std::string_view name) const {
  if (region_vars_)
    for (size_t k = region_vars_->size(); k-- > 0;)
      if ((*region_vars_)[k].name == name) return &(*region_vars_)[k];
  for (size_t k = lane_vars_.size(); k-- > frame_->lane_vars_begin;)
    if (lane_vars_[k].name == name) return &lane_vars_[k];
  return nullptr;
}

std::string Splitter::lane_lambda_open(const std::string& prefix, const std::string& ret) const {
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

bool Splitter::group_statement(const Stmt& s) {
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

bool Splitter::group_wide_loop_head(const Stmt& s) {
  if (has_sync(s.head_open, s.head_close)) return fail(first_sync(s) + " in a loop head");
  if (uses_varying(s.head_open, s.head_close))
    return fail("a barrier in a loop whose trip count differs between threads");
  return true;
}

bool Splitter::loop_body(const Stmt& s, const std::string& open, const std::string& close) {
  out_ += line_marker(s.first) + open;
  if (!block({s.children[0]})) return false;
  out_ += close;
  return true;
}

bool Splitter::masked_if(const Stmt& s) {
  if (r_.checked) {
    const auto w = waits_.lower_bound(s.first);
    if (mentions_barrier(s.first, s.last) || (w != waits_.end() && *w <= s.last))
      return fail("checked mode: a barrier under a condition that differs between threads (synccheck runs it on fibers)");
  }
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

bool Splitter::add_return(size_t k, std::map<size_t, size_t>& returns) {
  size_t end = k + 1;
  while (end < t_.size() && !t_[end].is(";")) {
    if (t_[end].is("(") || t_[end].is("[") || t_[end].is("{")) end = matching_bracket(t_, end);
    ++end;
  }
  if (end > k + 1 && frame_->result.empty()) return fail("a return with a value from a kernel or void function");
  returns[k] = end;
  return true;
}

bool Splitter::check_region_statement(const Stmt& s, bool in_loop, std::map<size_t, size_t>& returns) {
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

bool Splitter::lane_loop(const std::vector<const Stmt*>& all, const std::vector<Stmt>& block, size_t after,
                         std::string& arrays) {
  std::map<size_t, size_t> returns;
  for (const Stmt* s : all)
    if (!check_region_statement(*s, false, returns)) return false;
  const std::vector<bool> uniform = uniform_statements(all);
  std::vector<const Stmt*> region, once;
  for (size_t i = 0; i < all.size(); ++i) (uniform[i] ? once : region).push_back(all[i]);
  if (!once.empty()) emit_uniform(once);
  if (region.empty()) return true;
  std::string body, before;  // before: the types of auto variables, ahead of the loop
  std::string locals;        // the loop's own declarations so far, for those types
  std::vector<LaneVar> declared_here;
  struct Scope {  // render() sees the loop's own per-thread variables while it is written
    const std::vector<LaneVar>*& vars;
    ~Scope() { vars = nullptr; }
  } scope{region_vars_};
  region_vars_ = &declared_here;
  for (const Stmt* s : region) {
    const auto d = declaration(*s);
    bool kept = false;  // a declarator used after the loop
    const auto declarators = d ? split_commas(d->name, s->last - 1, false) : decltype(split_commas(0, 0, false))();
    for (auto [a, b] : declarators) kept = kept || used_after(t_[a].text, block, after);
    if (!kept) {
      body += line_marker(s->first) + render(s->first, s->last, returns) + "\n";
      if (d) locals += render(s->first, s->last) + "\n";
      continue;
    }
    std::string type;
    const bool deduced = is_auto(*d) && plain_auto(*d);
    if (deduced) {  // the type of the initializer, from a lambda that is never called
      const std::string fn = "mps_type_" + std::to_string(next_array_++);
      before += line_marker(s->first) + "[[maybe_unused]] auto " + fn + " = " + lane_lambda_open("", "auto");
      for (const LaneVar& v : declared_here) before += "[[maybe_unused]] auto& " + v.name + " = " + v.array + "[mps_lane];\n";
      before += locals + "return " + render(d->name + 2, s->last - 1, returns) + ";\n};\n";
      type = "std::decay_t<decltype(" + fn + "(0u, mps_g.uniform))>";
    } else if (!lane_var_type(*d, type)) {
      return false;
    }
    body += line_marker(s->first);
    for (auto [a, b] : declarators) {  // `T a = 1, b;` as one statement per declarator
      const std::string name(t_[a].text);
      if (!t_[a].is_identifier() || at(a + 1, "["))
        return fail("the declaration of '" + name + "' lives across a barrier and is not `T name [= init]`");
      if (!used_after(name, block, after)) {
        body += render(d->type_first, d->type_last) + " " + render(a, b, returns) + ";";
        locals += render(d->type_first, d->type_last) + " " + render(a, b) + ";\n";
        continue;
      }
      const LaneVar v{name, "mps_lane_" + std::to_string(next_array_++) + "_" + name};
      (deduced ? before : arrays) +=
          line_marker(s->first) + type + " " + v.array + "[" + std::to_string(r_.max_threads) + "];\n";
      body += "auto& " + name + " = " + v.array + "[mps_lane];";
      if (at(a + 1, "=")) body += " " + name + " = " + render(a + 2, b, returns) + ";";
      else if (at(a + 1, "(") || at(a + 1, "{")) body += " " + name + " = " + type + render(a + 1, b, returns) + ";";
      declared_here.push_back(v);
    }
    body += "\n";
  }
  out_ += before + line_marker(region.front()->first) + lane_lambda_open("mps_host::for_each_lane(mps_g, ", "bool");
  out_ += "{\n" + body + "}\nreturn false;\n});\n";
  lane_vars_.insert(lane_vars_.end(), declared_here.begin(), declared_here.end());
  return true;
}

bool Splitter::lane_var_type(const Declaration& d, std::string& type) {
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

}  // namespace mps_shim::host::lane_loops

namespace mps_shim::host {

using frontend::LexedSource;
using frontend::Token;

LaneLoopResult split_at_barriers(const LaneLoopRequest& request) { return lane_loops::Splitter(request).run(); }

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

}  // namespace mps_shim::host
