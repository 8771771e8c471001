// Lane versions of library functions that reach a barrier, for the splitter.
#include "frontend/fission/splitter.h"

namespace mps_shim::frontend::fission {

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
  std::map<std::string, std::pair<size_t, size_t>> lambdas;  // their tokens
  for (size_t i = 0; i < params.size(); ++i) {
    const auto [a, b] = args[i];
    const bool lambda = t_[a].is("[") && !uses_varying(a, b);
    if (has_sync(a, b) && !lambda) return fail(cannot + "an argument calls a SIMD-group function");
    if (has_sync(a, b)) simd_params.insert(params[i].name);
    if (has_sync(a, b) && lambda) lambdas[params[i].name] = {a, b};
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
  callee.lambdas = lambdas;
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
  for (const Param& p : params) callee.params.insert(p.name);
  describe_frame(callee, def->open, def->close, body);
  for (const Param& p : params) {
    if (callee.declared.count(p.name)) continue;  // a local of that name may hide it
    for (size_t x : p.type) {
      if (t_[x].is("threadgroup")) callee.memory[p.name] = kGroupMemory;
      if (t_[x].is("device") || t_[x].is("constant")) callee.memory[p.name] = kDeviceMemory;
    }
  }
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

}  // namespace mps_shim::frontend::fission
