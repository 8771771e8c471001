// Lane versions of library functions that reach a barrier or SIMD-group functions, for the splitter.
#include "backends/host/lane_loops/splitter.h"

#include <algorithm>

namespace mps_shim::host::lane_loops {

std::optional<Splitter::Definition> Splitter::read_definition(const FunctionBody& b, const std::string& cannot,
                                                              bool overloaded) {
  // [template <typename T, ...>] [specifiers] RET name(params) [qualifiers] { body }
  Definition d;
  d.body = &b;
  size_t rp = b.open - 1;
  while (rp > 0 && !t_[rp].is(")")) --rp;
  const size_t lp = matching_open_paren(t_, rp, 0);
  if (lp == 0 || !t_[lp - 1].is(b.name) || (lp >= 2 && t_[lp - 2].is("::"))) {
    fail(cannot + "its definition is not understood");
    return std::nullopt;
  }
  d.lp = lp, d.rp = rp;
  size_t start = lp - 1;
  while (start > 0 && !t_[start - 1].is(";") && !t_[start - 1].is("}") && !t_[start - 1].is("{")) --start;
  if (t_[start].is("template") && at(start + 1, "<")) {
    const size_t close = matching_bracket(t_, start + 1);
    d.template_first = start, d.template_close = close;
    for (auto [a, e] : split_commas(start + 2, close - 1, true)) {
      const bool type_param = e == a + 1 && (t_[a].is("typename") || t_[a].is("class"));
      bool defaulted = false;  // `enable_if_t<..., bool> = true`: only there to remove the overload
      for (size_t k = a; k <= e; ++k) defaulted = defaulted || t_[k].is("=");
      if (type_param) d.tparams.push_back(std::string(t_[e].text));
      else if (!(overloaded && defaulted)) {
        fail(cannot + "only type template parameters without defaults are deduced");
        return std::nullopt;
      }
    }
    start = close + 1;
  }
  static const std::set<std::string_view> specifiers = {"inline", "static", "constexpr", "extern", "METAL_FUNC"};
  for (size_t i = start; i + 1 < lp; ++i) {
    if (t_[i].is("__attribute__") && at(i + 1, "(")) i = matching_bracket(t_, i + 1);
    else if (t_[i].is("[") && at(i + 1, "[")) i = matching_bracket(t_, i);
    else if (!specifiers.count(t_[i].text) && !is_address_space(t_[i])) d.ret.push_back(i);
  }
  d.is_void = d.ret.size() == 1 && t_[d.ret[0]].is("void");
  for (size_t i : d.ret)
    if (t_[i].is("auto") || t_[i].is("decltype")) {
      fail(cannot + "its return type is deduced");
      return std::nullopt;
    }
  for (auto [a, e] : split_commas(lp + 1, rp - 1, true)) {
    if (rp == lp + 1) break;
    FunctionParam p;
    for (size_t i = a; i <= e; ++i) {
      if (t_[i].is("[") && at(i + 1, "[")) i = matching_bracket(t_, i);
      else p.type.push_back(i);
    }
    if (p.type.empty() || !t_[p.type.back()].is_identifier()) {
      fail(cannot + "a parameter without a name");
      return std::nullopt;
    }
    p.name = std::string(t_[p.type.back()].text);
    p.type.pop_back();
    bool is_const = false, is_ref = false;
    for (size_t i : p.type) {
      if (t_[i].is("=")) {
        fail(cannot + "a default argument");
        return std::nullopt;
      }
      if (t_[i].is("const")) is_const = true;
      if (t_[i].is("&") || t_[i].is("&&")) is_ref = true;
    }
    if (is_ref && !is_const) {
      fail(cannot + "parameter '" + p.name + "' is a reference the function may write");
      return std::nullopt;
    }
    std::vector<size_t> kept;  // by value: `const T&` reads like `T`
    for (size_t i : p.type)
      if (!t_[i].is("&") && !t_[i].is("&&")) kept.push_back(i);
    p.type = kept;
    d.params.push_back(p);
  }
  if (!parse_statements(t_, b.open, b.close, d.statements)) {
    fail(cannot + "a statement it holds is not modelled");
    return std::nullopt;
  }
  if (!scan_tokens(b.open, b.close)) return std::nullopt;
  const std::optional<std::string> ns = namespace_path(b.open);
  if (!ns) {
    fail(cannot + "it is not defined at namespace scope");
    return std::nullopt;
  }
  d.ns = *ns;
  for (const FunctionBody& later : r_.bodies)
    if (later.open > b.close)
      for (size_t i = b.open + 1; i < b.close; ++i)
        if (waits_.count(i) && t_[i].is(later.name)) {
          fail(cannot + "it calls a function defined after it");
          return std::nullopt;
        }
  return d;
}

bool Splitter::inline_call(const Stmt& s, size_t w) {
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
  const bool returned = q == s.first + 1 && t_[s.first].is("return") && !frame_->result.empty();  // `return f(args);`
  if (q == s.first + 2 && t_[s.first].is_identifier() && t_[s.first + 1].is("=")) {
    assigned = s.first;
  } else if (returned) {
  } else if (q != s.first) {
    caller_decl = declaration(s);
    if (!caller_decl || !caller_decl->single || caller_decl->name + 2 != q || !t_[caller_decl->name + 1].is("="))
      return fail(cannot + "only `[type] x = f(args);`, `x = f(args);` and `f(args);` calls are inlined");
  }
  const auto args = split_commas(lparen + 1, rparen - 1, false);
  const size_t n_args = rparen == lparen + 1 ? 0 : args.size();
  // Every definition of the name that takes as many arguments: with several,
  // the compiler picks one (a selector declared after them, see Choice).
  size_t n_defs = 0;
  for (const FunctionBody& b : r_.bodies) n_defs += b.name == name;
  if (!n_defs) return fail(cannot + "no definition in the library");
  const bool overloaded = n_defs > 1;
  if (overloaded && !explicit_args.empty()) return fail(cannot + "explicit template arguments to an overload set");
  std::vector<Definition> defs;
  for (const FunctionBody& b : r_.bodies) {
    if (b.name != name) continue;
    if (b.open > r_.body_open) return fail(cannot + "a definition follows the kernel");
    std::optional<Definition> d = read_definition(b, cannot, overloaded);
    if (!d) return false;
    if (d->params.size() != n_args) continue;
    if (!defs.empty() && (d->ns != defs[0].ns || d->is_void != defs[0].is_void))
      return fail(cannot + "its overloads differ in namespace or in returning a value");
    defs.push_back(std::move(*d));
  }
  if (defs.empty()) return fail(cannot + "the argument count differs");
  const bool is_void = defs[0].is_void;

  // The call, in the caller's frame: per-thread arguments are collected first.
  const std::string id = std::to_string(r_.body_open) + "_" + std::to_string(next_array_++);
  const std::string n = std::to_string(r_.max_threads);
  const std::string fn = name + "__mps_lanes_" + id;
  std::vector<bool> uniform(n_args);
  std::vector<std::string> passed(n_args);
  std::set<std::string> simd_params;  // bound to a lambda that calls SIMD-group functions
  std::map<std::string, std::pair<size_t, size_t>> lambdas;  // their tokens
  for (size_t i = 0; i < n_args; ++i) {
    const auto [a, b] = args[i];
    const bool lambda = t_[a].is("[") && !uses_varying(a, b);
    if (has_sync(a, b) && !lambda) return fail(cannot + "an argument calls a SIMD-group function");
    bool changed = false;  // one copy cannot serve threads that change it
    for (const Definition& d : defs) {
      const std::string& param = d.params[i].name;
      if (has_sync(a, b)) simd_params.insert(param);
      if (has_sync(a, b) && lambda) lambdas[param] = {a, b};
      for (const Stmt& st : d.statements) changed = changed || modified_in(param, st);
    }
    // With overloads the selector reads each argument's type from one element.
    uniform[i] = lambda || (!overloaded && !uses_varying(a, b) && side_effect_free(a, b) && !changed);
    if (uniform[i]) {
      passed[i] = render(a, b);
      continue;
    }
    if (const LaneVar* v = a == b ? lane_var(t_[a].text) : nullptr; v && !changed) {
      passed[i] = v->array;  // a thread's variable the callee only reads: its array as it is
      continue;
    }
    passed[i] = "mps_lane_" + std::to_string(next_array_++) + "_arg";
    out_ += line_marker(a) + "auto " + passed[i] + " = mps_host::collect_lanes<" + n + ", false>(mps_g, " +
            lane_lambda_open("", "auto") + "return " + render(a, b) + ";\n});\n";
  }
  std::string call_args = "(mps_g";
  for (const std::string& x : passed) call_args += ", " + x;
  call_args += ")";
  out_ += line_marker(s.first) + (is_void ? "" : "auto mps_call_" + id + " = ");
  if (!overloaded) {
    out_ += defs[0].ns + fn + call_args + ";\n";
  } else {  // the lane version of the definition the compiler picks for the threads' argument types
    std::string probe;
    for (size_t i = 0; i < n_args; ++i)
      probe += std::string(i ? ", " : "") + "std::declval<decltype(" + passed[i] + (uniform[i] ? "" : "[0]") + ")>()";
    out_ += "[&](auto mps_choice) __attribute__((always_inline)) -> decltype(auto) {\n"
            "using mps_c = decltype(mps_choice);\n";
    for (size_t i = 0; i < defs.size(); ++i)
      out_ += std::string(i ? "else " : "") + "if constexpr (mps_c::index == " + std::to_string(i) + ") return " +
              defs[0].ns + fn + "_" + std::to_string(i) + "<mps_c>" + call_args + ";\n";
    out_ += "}(decltype(" + defs[0].ns + fn + "_select(" + probe + ")){});\n";
  }
  for (const Definition& d : defs)  // calls through lambda parameters meet like SIMD functions
    for (size_t i = d.body->open + 1; i < d.body->close; ++i)
      if (simd_params.count(std::string(t_[i].text)) && at(i + 1, "(") && !(t_[i - 1].is(".") || t_[i - 1].is("->")))
        syncs_.insert(i);
  for (size_t i = 0; i < defs.size(); ++i)
    if (!write_lane_version(defs[i], overloaded ? fn + "_" + std::to_string(i) : fn, uniform, explicit_args,
                            lambdas, overloaded))
      return false;
  if (overloaded) {  // the selector: one declaration per definition, after the last of them
    std::string selectors;
    size_t last = 0;
    for (size_t i = 0; i < defs.size(); ++i) {
      const Definition& d = defs[i];
      last = std::max(last, d.body->close);
      std::string types;
      for (const std::string& tp : d.tparams) types += ", " + tp;
      if (d.template_close) selectors += render(d.template_first, d.template_close) + "\n";
      selectors += "auto " + fn + "_select(" + (d.rp > d.lp + 1 ? render(d.lp + 1, d.rp - 1) : "") +
                   ") -> decltype(mps_host::lanes::choose<" + std::to_string(i) + types +
                   ">((std::add_pointer_t<" + tokens_text(d.ret) + ">)nullptr));\n";
    }
    insertions_.push_back({last, selectors});
  }

  if (returned) {  // the caller's own result, as simd_statement's `return expr;`
    if (is_void) return fail(cannot + "it returns nothing");
    out_ += lane_lambda_open("mps_host::for_each_lane(mps_g, ", "bool") + frame_->result + "[mps_lane] = mps_call_" +
            id + "[mps_lane];\n" + (s.first == frame_->final_return ? "" : "mps_host::hold_out(mps_g, mps_lane);\n") +
            "return false;\n});\n";
  }
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

bool Splitter::write_lane_version(const Definition& d, const std::string& fn, const std::vector<bool>& uniform,
                                  const std::vector<std::string>& explicit_args,
                                  const std::map<std::string, std::pair<size_t, size_t>>& lambdas, bool choice) {
  const std::string cannot = "cannot inline '" + d.body->name + "': ";
  const std::string n = std::to_string(r_.max_threads);
  const auto& params = d.params;
  // After the definition (so in its namespace): `template <class A0, ...> auto f__mps_lanes(g, a0, ...)`.
  std::string caller_out;
  std::swap(out_, caller_out);
  struct Restore {  // the caller's text comes back however this ends
    std::string& out;
    std::string& saved;
    ~Restore() { std::swap(out, saved); }
  } restore{out_, caller_out};
  std::vector<std::string> template_params;
  if (choice) template_params.push_back("class Mps_Choice");
  for (size_t i = 0; i < params.size(); ++i) template_params.push_back("class A" + std::to_string(i));
  if (!template_params.empty()) {
    out_ += "template <";
    for (size_t i = 0; i < template_params.size(); ++i) out_ += (i ? ", " : "") + template_params[i];
    out_ += ">\n";
  }
  out_ += "MPS_SHIM_INLINE auto " + fn + "(mps_host::GroupLanes& mps_g";
  for (size_t i = 0; i < params.size(); ++i) out_ += ", A" + std::to_string(i) + "&& mps_arg_" + std::to_string(i);
  out_ += ") {\n";
  for (size_t j = 0; j < d.tparams.size(); ++j) {
    const std::string& tp = d.tparams[j];
    if (choice) {  // as the compiler deduced them for the overload it picked
      out_ += "using " + tp + " = typename Mps_Choice::template type<" + std::to_string(j) + ">;\n";
      continue;
    }
    if (j < explicit_args.size()) {  // spelled in the caller's scope: only plain types are safe here
      out_ += "using " + tp + " = " + explicit_args[j] + ";\n";
      continue;
    }
    size_t from = params.size();
    bool through_pointer = false;  // `T* p` rather than `T v`
    for (size_t i = 0; i < params.size() && from == params.size(); ++i) {
      std::vector<size_t> bare;
      for (size_t x : params[i].type)
        if (!t_[x].is("const") && !is_address_space(t_[x])) bare.push_back(x);
      if (bare.empty() || !t_[bare[0]].is(tp)) continue;
      if (bare.size() == 1) from = i;
      if (bare.size() == 2 && t_[bare[1]].is("*")) from = i, through_pointer = true;
    }
    if (from == params.size()) return fail(cannot + "template parameter '" + tp + "' is not deduced");
    const std::string arg_type =
        "std::decay_t<decltype(mps_arg_" + std::to_string(from) + (uniform[from] ? "" : "[0]") + ")>";
    out_ += "using " + tp + " = " +
            (through_pointer ? "std::remove_cv_t<std::remove_pointer_t<" + arg_type + ">>" : arg_type) + ";\n";
  }
  Frame callee;
  callee.callee = true;
  callee.lambdas = lambdas;
  callee.lane_vars_begin = lane_vars_.size();
  if (!d.is_void) callee.result = "mps_result";
  if (!d.statements.empty() && t_[d.statements.back().first].is("return"))
    callee.final_return = d.statements.back().first;
  out_ += "mps_host::LaneMask mps_scope(mps_g);  // a return holds its thread out until here\n";
  if (!d.is_void) out_ += "mps_host::LaneValues<" + tokens_text(d.ret) + ", " + n + "> mps_result;\n";
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
  for (const Stmt& st : d.statements) collect_declared(st);
  for (const FunctionParam& p : params) callee.params.insert(p.name);
  describe_frame(callee, d.body->open, d.body->close, d.statements);
  for (const FunctionParam& p : params) {
    if (callee.declared.count(p.name)) continue;  // a local of that name may hide it
    for (size_t x : p.type) {
      if (t_[x].is("threadgroup")) callee.memory[p.name] = kGroupMemory;
      if (t_[x].is("device") || t_[x].is("constant")) callee.memory[p.name] = kDeviceMemory;
    }
  }
  ++inline_depth_;
  const bool ok = block(d.statements);
  --inline_depth_;
  frame_ = caller;
  lane_vars_.resize(callee.lane_vars_begin);
  if (!ok) return false;
  if (!d.is_void) out_ += "return mps_result;\n";
  out_ += "}\n";
  insertions_.push_back({d.body->close, out_});
  return true;
}

bool Splitter::try_inline_simd_call(const Stmt& s) {
  auto w = syncs_.lower_bound(s.first);
  if (w == syncs_.end() || *w > s.last || (std::next(w) != syncs_.end() && *std::next(w) <= s.last)) return false;
  const std::string name(t_[*w].text);
  bool library = false;
  for (const FunctionBody& b : r_.bodies) library = library || b.name == name;
  if (!library || inline_depth_ >= 4) return false;
  // Undone if it fails: the statement is then replayed.
  const std::string out = out_, why = why_;
  const size_t n_insertions = insertions_.size(), n_lane_vars = lane_vars_.size();
  const std::set<size_t> syncs = syncs_, waits = waits_;
  if (inline_call(s, *w)) return true;
  out_ = out, why_ = why;
  insertions_.resize(n_insertions);
  lane_vars_.resize(n_lane_vars);
  syncs_ = syncs, waits_ = waits;
  return false;
}

std::optional<std::string> Splitter::namespace_path(size_t tok) const {
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

}  // namespace mps_shim::host::lane_loops
