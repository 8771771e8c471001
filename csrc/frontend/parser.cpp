#include "frontend/parser.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "frontend/diagnostics.h"
#include "frontend/function_constants.h"
#include "frontend/call_graph.h"
#include "frontend/clang_dialect.h"
#include "frontend/overloads.h"

namespace mps_shim::frontend {

namespace {

struct AttrInfo {
  const char* name;
  ThreadAttr attr;
  bool needs_threadgroups;
};

const AttrInfo kThreadAttrs[] = {
    {"thread_position_in_grid", ThreadAttr::ThreadPositionInGrid, false},
    {"thread_position_in_threadgroup", ThreadAttr::ThreadPositionInThreadgroup, true},
    {"threadgroup_position_in_grid", ThreadAttr::ThreadgroupPositionInGrid, true},
    {"threads_per_grid", ThreadAttr::ThreadsPerGrid, false},
    {"threads_per_threadgroup", ThreadAttr::ThreadsPerThreadgroup, true},
    {"threadgroups_per_grid", ThreadAttr::ThreadgroupsPerGrid, true},
    {"thread_index_in_threadgroup", ThreadAttr::ThreadIndexInThreadgroup, true},
    {"dispatch_threads_per_threadgroup", ThreadAttr::DispatchThreadsPerThreadgroup, true},
    {"thread_index_in_simdgroup", ThreadAttr::ThreadIndexInSimdgroup, true},
    {"simdgroup_index_in_threadgroup", ThreadAttr::SimdgroupIndexInThreadgroup, true},
    {"threads_per_simdgroup", ThreadAttr::ThreadsPerSimdgroup, true},
    {"simdgroups_per_threadgroup", ThreadAttr::SimdgroupsPerThreadgroup, true},
    {"thread_execution_width", ThreadAttr::ThreadExecutionWidth, true},
    {"dispatch_simdgroups_per_threadgroup", ThreadAttr::DispatchSimdgroupsPerThreadgroup, true},
    {"thread_index_in_quadgroup", ThreadAttr::ThreadIndexInQuadgroup, true},
    {"quadgroup_index_in_threadgroup", ThreadAttr::QuadgroupIndexInThreadgroup, true},
    {"quadgroups_per_threadgroup", ThreadAttr::QuadgroupsPerThreadgroup, true},
    {"dispatch_quadgroups_per_threadgroup", ThreadAttr::DispatchQuadgroupsPerThreadgroup, true},
};

// Metal attributes with no meaning for a compute dispatch here.
const std::set<std::string> kUnsupportedAttrs = {"grid_origin", "grid_size", "stage_in"};

// Metal types the engine has no equivalent for; naming one is a compile error.
const std::map<std::string, const char*> kUnsupportedTypes = {
    {"texture1d", "textures"}, {"texture1d_array", "textures"}, {"texture2d", "textures"},
    {"texture2d_array", "textures"}, {"texture3d", "textures"}, {"texturecube", "textures"},
    {"texturecube_array", "textures"}, {"texture2d_ms", "textures"}, {"texture2d_ms_array", "textures"},
    {"texture_buffer", "textures"}, {"depth2d", "depth textures"}, {"depth2d_array", "depth textures"},
    {"depthcube", "depth textures"}, {"depthcube_array", "depth textures"}, {"depth2d_ms", "depth textures"},
    {"depth2d_ms_array", "depth textures"}, {"sampler", "samplers"}, {"imageblock", "image blocks"},
    {"visible_function_table", "function tables"}, {"intersection_function_table", "function tables"},
    {"acceleration_structure", "ray tracing"}, {"intersector", "ray tracing"}};

struct Attr {
  std::string name;
  std::string arg;  // text inside the parentheses, if any
  size_t first, last;  // token range [first, last] of the whole [[...]]
  size_t name_token;
  size_t arg_first = 0, arg_end = 0;  // token range [arg_first, arg_end) of the argument
};

struct Decl {
  size_t first = 0, last = 0;  // token range, `;` or closing `}` included
  bool is_template = false, is_instantiation = false, is_definition = false;
  std::string name, template_args;
  size_t targs_open = 0, targs_close = 0;  // an instantiation's `<` and `>` (0: none)
  std::string scope;  // enclosing namespaces, "a::b::"
  size_t name_token = 0;
  size_t body_open = 0;  // the definition's `{`
  std::optional<size_t> kernel_token;
  std::vector<Attr> attrs;  // on the declaration head
  std::vector<ParamDecl> params;
  std::vector<std::pair<size_t, size_t>> param_attr_ranges;
  // A parameter the engine cannot bind; an error only if this declaration is
  // the definition (forward declarations may leave out attributes).
  std::optional<std::pair<size_t, std::string>> unbindable;
};

class Parser {
 public:
  explicit Parser(const LexedSource& src) : src_(src), t_(src.tokens), repl_(src.tokens.size()) {}

  ParsedLibrary run() {
    std::vector<Decl> decls;
    std::vector<std::string> scopes;  // one entry per open brace: a namespace name or ""
    for (size_t i = 0; i < t_.size(); ++i) {
      if (t_[i].is("{")) {
        const bool named_ns = i >= 2 && t_[i - 2].is("namespace") && t_[i - 1].is_identifier();
        scopes.push_back(named_ns ? std::string(t_[i - 1].text) : "");
        continue;
      }
      if (t_[i].is("}")) {
        if (!scopes.empty()) scopes.pop_back();
        continue;
      }
      if (!is_kernel_marker(i)) continue;
      size_t first = i;
      while (first > 0 && !t_[first - 1].is(";") && !t_[first - 1].is("}") && !t_[first - 1].is("{")) --first;
      decls.push_back(parse_decl(first));
      for (const std::string& ns : scopes)
        if (!ns.empty()) decls.back().scope += ns + "::";
      i = decls.back().last;
    }
    for (const TokenRange& r : redundant_address_space_overloads(src_)) blank(r.first, r.last);
    bodies_ = function_bodies(src_);
    ParsedLibrary out;
    out.kernels = build_kernels(decls);
    for (KernelDecl& k : out.kernels) k.waits = reaches_threadgroup_functions(src_, bodies_, k.body_open);
    for (const Decl& d : decls) mark_decl_edits(d);
    rewrite_tokens();
    rewrite_clang_dialect(src_, repl_);
    const std::map<size_t, uint64_t> threadgroup_bytes = check_threadgroup_totals(decls);
    for (KernelDecl& k : out.kernels)
      if (auto it = threadgroup_bytes.find(k.body_open); it != threadgroup_bytes.end())
        k.threadgroup_memory = uint32_t(std::min<uint64_t>(it->second, UINT32_MAX));
    for (const Decl& d : decls)
      if (d.is_definition) out.definitions.push_back(definition(d));
    out.threadgroup_decls = std::move(threadgroup_decls_);
    out.bodies = std::move(bodies_);
    out.edits = std::move(repl_);
    return out;
  }

 private:
  [[noreturn]] void error(size_t tok, const std::string& msg) const { error_at(src_, t_[std::min(tok, t_.size() - 1)], msg); }

  bool at(size_t i, std::string_view s) const { return i < t_.size() && t_[i].is(s); }

  bool is_kernel_marker(size_t i) const {
    if (t_[i].is("kernel")) return true;
    return at(i, "[") && at(i + 1, "[") && at(i + 2, "kernel") && at(i + 3, "]") && at(i + 4, "]");
  }

  // Index of the token closing the bracket opened at `open`.
  size_t match(size_t open) const {
    const size_t close = matching_bracket(t_, open);
    if (close >= t_.size()) error(open, concat("unbalanced '", t_[open].text, "'"));
    return close;
  }

  std::string text(size_t first, size_t end) const {  // tokens [first, end) joined
    std::string s;
    for (size_t i = first; i < end; ++i) {
      const bool glue = s.empty() || t_[i].is(",") || t_[i].is(")") || t_[i].is(">") || t_[i].is("::") ||
                        t_[i - 1].is("::") || t_[i - 1].is("(") || t_[i - 1].is("<") || t_[i].is("(") ||
                        t_[i].is("<") || t_[i].is("*") || t_[i].is("&");
      if (!glue) s += ' ';
      s += t_[i].text;
    }
    return s;
  }

  // Parses `[[a, b(x)]]` at i; returns the index of the last `]`.
  size_t parse_attrs(size_t i, std::vector<Attr>& attrs) {
    const size_t close = match(i);
    for (size_t k = i + 2; k < close - 1; ++k) {
      if (!t_[k].is_identifier()) continue;
      Attr a{std::string(t_[k].text), "", i, close, k};
      if (at(k + 1, "(")) {
        const size_t rp = match(k + 1);
        a.arg = text(k + 2, rp);
        a.arg_first = k + 2;
        a.arg_end = rp;
        k = rp;
      }
      attrs.push_back(a);
    }
    return close;
  }

  Decl parse_decl(size_t first) {
    Decl d;
    d.first = first;
    size_t k = first;
    if (at(k, "template")) {
      if (at(k + 1, "<")) {
        d.is_template = true;
        k = match(k + 1) + 1;
      } else {
        d.is_instantiation = true;
        ++k;
      }
    }
    std::optional<size_t> lparen;
    for (; k < t_.size(); ++k) {
      if (at(k, "[") && at(k + 1, "[")) { k = parse_attrs(k, d.attrs); continue; }
      if (t_[k].is("kernel")) { d.kernel_token = k; continue; }
      if (t_[k].is("decltype") && at(k + 1, "(")) { k = match(k + 1); continue; }
      if (t_[k].is(";") || t_[k].is("{")) break;
      if (!t_[k].is_identifier()) continue;
      if (at(k + 1, "<")) {
        d.name = std::string(t_[k].text);
        d.name_token = k;
        const size_t close = match(k + 1);
        d.template_args = text(k + 1, close + 1);
        d.targs_open = k + 1;
        d.targs_close = close;
        k = close;
        if (at(k + 1, "(")) { lparen = k + 1; break; }
      } else if (at(k + 1, "(")) {
        d.name = std::string(t_[k].text);
        d.name_token = k;
        lparen = k + 1;
        break;
      }
    }
    if (d.name.empty()) error(first, "cannot find the name of this kernel declaration");
    if (!lparen) {  // decltype(f<T>) f<T>;
      if (!d.is_instantiation || !at(k, ";")) error(d.name_token, concat("kernel '", d.name, "' has no parameter list"));
      d.last = k;
      return d;
    }
    const size_t rparen = match(*lparen);
    parse_params(d, *lparen, rparen);
    k = rparen + 1;
    while (k < t_.size() && !t_[k].is("{") && !t_[k].is(";")) ++k;
    if (k >= t_.size()) error(rparen, concat("kernel '", d.name, "' is not terminated"));
    d.is_definition = t_[k].is("{");
    d.body_open = d.is_definition ? k : 0;
    d.last = d.is_definition ? match(k) : k;
    if (d.is_definition && d.unbindable) error(d.unbindable->first, d.unbindable->second);
    return d;
  }

  void parse_params(Decl& d, size_t lparen, size_t rparen) {
    size_t start = lparen + 1;
    int depth = 0;
    for (size_t k = lparen + 1; k <= rparen; ++k) {
      const Token& tk = t_[k];
      if (k == rparen || (depth == 0 && tk.is(","))) {
        if (k > start) d.params.push_back(parse_param(d, start, k));
        start = k + 1;
        continue;
      }
      if (tk.is("(") || tk.is("[") || tk.is("{") || tk.is("<")) ++depth;
      else if (tk.is(")") || tk.is("]") || tk.is("}") || tk.is(">")) --depth;
      else if (tk.is(">>")) depth -= 2;
    }
  }

  ParamDecl parse_param(Decl& d, size_t first, size_t end) {
    ParamDecl p;
    p.line = t_[first].line;
    std::vector<Attr> attrs;
    std::vector<size_t> body;  // tokens without attributes
    for (size_t k = first; k < end; ++k) {
      if (at(k, "[") && at(k + 1, "[")) {
        const size_t close = parse_attrs(k, attrs);
        d.param_attr_ranges.push_back({k, close});
        k = close;
        continue;
      }
      body.push_back(k);
    }
    bool pointer = false, reference = false;
    // `constant const int64_t strides[2]`: an array parameter is a pointer, as in C++
    while (body.size() >= 3 && t_[body.back()].is("]")) {
      size_t open = body.size() - 1;
      while (open > 0 && !t_[body[open]].is("[")) --open;
      if (open == 0) break;
      body.resize(open);
      pointer = true;
    }
    for (size_t k : body) {
      const Token& tk = t_[k];
      if (tk.is("device")) p.space = AddressSpace::Device;
      else if (tk.is("constant")) p.space = AddressSpace::Constant;
      else if (tk.is("threadgroup")) p.space = AddressSpace::Threadgroup;
      else if (tk.is("thread")) p.space = AddressSpace::Thread;
      else if (tk.is("*")) pointer = true;
      else if (tk.is("&") || tk.is("&&")) reference = true;
    }
    size_t type_end = body.empty() ? first : body.back() + 1;
    if (body.size() >= 2 && t_[body.back()].is_identifier() && !t_[body[body.size() - 2]].is("::")) {
      p.name = std::string(t_[body.back()].text);
      type_end = body.back();
    }
    p.type = body.empty() ? "" : text(body.front(), type_end);
    const std::string who = concat("parameter '", p.name, "' of kernel '", d.name, "'");
    for (const Attr& a : attrs) {
      if (a.name == "buffer") {
        p.attribute = concat("buffer(", a.arg, ")");
        char* endp = nullptr;
        const long idx = std::strtol(a.arg.c_str(), &endp, 0);
        if (a.arg.empty() || *endp != '\0' || idx < 0 || idx > 30)
          error(a.name_token, concat(who, ": buffer index '", a.arg, "' must be an integer from 0 to 30"));
        p.binding = int(idx);
      } else if (ThreadAttr ta = thread_attr_from_name(a.name); ta != ThreadAttr::None) {
        p.attribute = a.name;
        p.thread_attr = ta;
      } else if (a.name == "function_constant") {  // present only where the constant is true
        p.function_constant = a.arg;
      } else if (kUnsupportedAttrs.count(a.name)) {
        error(a.name_token, concat(who, ": [[", a.name, "]] is not supported by the host engine"));
      } else if (a.name == "threadgroup") {
        p.attribute = concat("threadgroup(", a.arg, ")");
        char* endp = nullptr;
        const long idx = std::strtol(a.arg.c_str(), &endp, 0);
        if (a.arg.empty() || *endp != '\0' || idx < 0 || idx > 30)
          error(a.name_token, concat(who, ": threadgroup index '", a.arg, "' must be an integer from 0 to 30"));
        if (p.space != AddressSpace::Threadgroup)
          error(a.name_token, concat(who, ": [[threadgroup(n)]] needs a threadgroup pointer or reference"));
        p.binding = int(idx);
      } else if (a.name == "texture" || a.name == "sampler") {
        error(a.name_token, concat(who, ": textures and samplers are not supported"));
      }
    }
    if (p.thread_attr != ThreadAttr::None) {
      p.role = ParamRole::ThreadPosition;
    } else if (p.space == AddressSpace::Threadgroup) {
      if (p.binding < 0 || !(pointer || reference))
        error(first, concat(who, ": a threadgroup kernel parameter is a pointer or reference with "
                                 "[[threadgroup(n)]]; the host sets its length per dispatch"));
      p.role = ParamRole::Threadgroup;
    } else if (pointer && (p.space == AddressSpace::Device || p.space == AddressSpace::Constant)) {
      p.role = ParamRole::Buffer;
    } else if (reference && p.space == AddressSpace::Device) {
      p.role = ParamRole::Buffer;
    } else if (reference && p.space == AddressSpace::Constant) {
      p.role = ParamRole::Scalar;
    } else if (!d.unbindable) {
      d.unbindable = {first, concat(who, " (", p.type, ") must be a device or constant pointer or reference, "
                                         "or carry a thread-position attribute such as [[thread_position_in_grid]]")};
    }
    return p;
  }

  // Splits the tokens (open, close) of a template parameter or argument list at its top-level commas.
  std::vector<std::pair<size_t, size_t>> list_items(size_t open, size_t close) const {
    std::vector<std::pair<size_t, size_t>> items;
    size_t start = open + 1;
    for (size_t k = open + 1; k <= close; ++k) {
      if (k == close || t_[k].is(",")) {
        if (k > start) items.emplace_back(start, k);
        start = k + 1;
      } else if (t_[k].is("(") || t_[k].is("[") || t_[k].is("{") || t_[k].is("<")) {
        k = match(k);
      }
    }
    return items;
  }

  // Whether an explicit instantiation's template arguments can be those of the template
  // kernel `def`: as many as it has parameters (fewer where they have defaults), each a type
  // where the parameter is a type and a value where it is a value, as far as the arguments'
  // spelling tells (a literal is a value; a scalar or vector type, or a type the library
  // declares, is a type; anything else may be either).
  bool template_args_fit(const Decl& def, const Decl& inst, const std::set<std::string_view>& type_names) const {
    if (!inst.targs_open) return true;
    const auto params = list_items(def.first + 1, match(def.first + 1));
    const auto args = list_items(inst.targs_open, inst.targs_close);
    bool pack = false;
    size_t required = 0;
    for (const auto& [a, b] : params) {
      bool has_default = false;
      for (size_t k = a; k < b; ++k) {
        if (t_[k].is("...")) pack = true;
        if (t_[k].is("=")) has_default = true;
        if (t_[k].is("<")) k = match(k);
      }
      if (!has_default && !pack) ++required;
    }
    if (args.size() < required || (!pack && args.size() > params.size())) return false;
    for (size_t i = 0; i < args.size() && i < params.size(); ++i) {
      const auto [pa, pb] = params[i];
      if (std::any_of(t_.begin() + pa, t_.begin() + pb, [](const Token& t) { return t.is("..."); })) break;
      const bool type_param = t_[pa].is("typename") || t_[pa].is("class") || t_[pa].is("template");
      const Token& a = t_[args[i].first];
      const bool value = a.kind == TokenKind::Number || a.kind == TokenKind::Char || a.is("true") ||
                         a.is("false") || a.is("-") || a.is("(") || a.is("!");
      const bool type = !value && (a.is("const") || a.is("unsigned") || a.is("signed") ||
                                   (a.is_identifier() && type_names.count(a.text)));
      if ((type_param && value) || (!type_param && type)) return false;
    }
    return true;
  }

  // Names the library declares as types, and Metal's scalar and vector type names.
  std::set<std::string_view> library_type_names() const {
    static const char* const kScalars[] = {"bool", "char", "uchar", "short", "ushort", "int", "uint", "long",
                                           "ulong", "half", "float", "double", "bfloat", "void", "size_t",
                                           "int8_t", "uint8_t", "int16_t", "uint16_t", "int32_t", "uint32_t",
                                           "int64_t", "uint64_t", "bfloat16_t", "float16_t"};
    std::set<std::string_view> names;
    for (const char* s : kScalars) names.insert(s);
    for (size_t i = 0; i + 1 < t_.size(); ++i) {
      const Token& t = t_[i];
      if ((t.is("struct") || t.is("class") || t.is("union") || t.is("enum")) && t_[i + 1].is_identifier())
        names.insert(t_[i + 1].text);
      else if (t.is("using") && t_[i + 1].is_identifier() && i + 2 < t_.size() && t_[i + 2].is("="))
        names.insert(t_[i + 1].text);
      else if (t.is("typedef")) {
        for (size_t k = i + 1; k < t_.size() && !t_[k].is(";"); ++k)
          if (t_[k].is_identifier() && k + 1 < t_.size() && t_[k + 1].is(";")) names.insert(t_[k].text);
      } else if (t.is_identifier() && t.text.size() > 1 && (t.text.back() >= '2' && t.text.back() <= '4')) {
        const std::string_view base = t.text.substr(0, t.text.size() - 1);
        for (const char* s : kScalars)
          if (base == s) names.insert(t.text);  // float4, uchar2, ...
      }
    }
    return names;
  }

  std::vector<KernelDecl> build_kernels(const std::vector<Decl>& decls) const {
    std::multimap<std::string, const Decl*> definitions;  // by qualified name
    for (const Decl& d : decls) {
      if (!d.is_definition) continue;
      // Templates may overload (MLX's steel_gemm_masked.h: two block_masked_gemm templates with different
      // template parameters); each instantiation names one of them.
      auto same = definitions.equal_range(d.scope + d.name);
      for (auto it = same.first; it != same.second; ++it)
        if (!d.is_template || !it->second->is_template)
          error(d.name_token, concat("kernel '", d.name, "' is defined twice; overloaded kernels are not supported"));
      definitions.emplace(d.scope + d.name, &d);
    }
    std::optional<std::set<std::string_view>> type_names;  // made when an instantiation must choose
    auto template_for = [&](const Decl& inst) -> const Decl* {
      auto range = definitions.equal_range(inst.scope + inst.name);
      std::vector<const Decl*> fits;
      for (auto it = range.first; it != range.second; ++it) fits.push_back(it->second);
      if (fits.size() > 1) {
        if (!type_names) type_names = library_type_names();
        fits.erase(std::remove_if(fits.begin(), fits.end(),
                                  [&](const Decl* def) { return !template_args_fit(*def, inst, *type_names); }),
                   fits.end());
        if (fits.size() != 1)
          error(inst.name_token, concat("explicit instantiation of '", inst.name, inst.template_args, "' matches ",
                                        fits.empty() ? "none" : std::to_string(fits.size()), " of the ",
                                        std::distance(range.first, range.second), " template kernels named '",
                                        inst.name, "'; the front end picks an overload by its template "
                                        "parameters' number and kinds (type or value) only"));
      }
      return fits.empty() ? nullptr : fits.front();
    };
    std::vector<KernelDecl> kernels;
    std::map<std::string, size_t> host_names;
    auto add = [&](KernelDecl k, size_t tok) {
      if (!host_names.emplace(k.host_name, tok).second)
        error(tok, concat("two kernels share the host name '", k.host_name, "'"));
      kernels.push_back(std::move(k));
    };
    for (const Decl& d : decls) {
      if (d.is_definition && !d.is_template) {
        add(describe(d, d, d.name), d.name_token);
      } else if (d.is_instantiation) {
        const Decl* def = template_for(d);
        if (!def || !def->is_template)
          error(d.name_token, concat("explicit instantiation of '", d.name, d.template_args,
                                     "' has no matching template kernel definition before it"));
        const Attr* hn = find_attr(d, "host_name");
        if (!hn) error(d.name_token, concat("explicit instantiation of kernel '", d.name, d.template_args,
                                            "' needs [[host_name(\"...\")]]"));
        add(describe(*def, d, string_literal(*hn)), d.name_token);
      } else if (!d.is_definition && !d.is_template && !definitions.count(d.scope + d.name)) {
        error(d.name_token, concat("kernel '", d.name, "' is declared but never defined"));
      }
    }
    return kernels;
  }

  // The value of an attribute argument made of adjacent string literals ("a" "b" is "ab").
  std::string string_literal(const Attr& a) const {
    std::string value;
    for (size_t k = a.arg_first; k < a.arg_end; ++k) {
      const std::string_view s = t_[k].text;
      if (t_[k].kind != TokenKind::String || s.size() < 2 || s.front() != '"')
        error(a.name_token, concat(a.name, " takes a string literal"));
      for (size_t i = 1; i + 1 < s.size(); ++i) {
        if (s[i] == '\\' && i + 2 < s.size()) ++i;
        value += s[i];
      }
    }
    if (a.arg_first == a.arg_end) error(a.name_token, concat(a.name, " takes a string literal"));
    return value;
  }

  static const Attr* find_attr(const Decl& d, const char* name) {
    for (const Attr& a : d.attrs)
      if (a.name == name) return &a;
    return nullptr;
  }

  KernelDecl describe(const Decl& def, const Decl& inst, const std::string& host_name) const {
    KernelDecl k;
    k.host_name = host_name;
    k.function = "::" + def.scope + def.name;
    k.template_args = inst.is_instantiation ? inst.template_args : "";
    k.params = def.params;
    k.line = t_[inst.name_token].line;
    k.file = src_.files[size_t(t_[inst.name_token].file)];
    k.body_open = def.body_open;
    for (const Decl* d : {&def, &inst}) {
      if (const Attr* a = find_attr(*d, "max_total_threads_per_threadgroup")) {
        if (a->arg.empty()) error(a->name_token, "max_total_threads_per_threadgroup takes an integer from 1 to 1024");
        char* endp = nullptr;
        const long n = std::strtol(a->arg.c_str(), &endp, 0);
        if (*endp == '\0') {
          if (n < 1 || n > 1024) error(a->name_token, "max_total_threads_per_threadgroup takes an integer from 1 to 1024");
          k.max_threads = uint32_t(n);
          k.max_threads_expr.clear();
        } else {  // `WM * WN * 32`: the compiler works it out, per instantiation
          k.max_threads_expr = a->arg;
          k.max_threads_line = t_[a->name_token].line;
          k.max_threads_file = src_.files[size_t(t_[a->name_token].file)];
          k.template_header = def.is_template ? text(def.first, match(def.first + 1) + 1) : "";
          k.scope = def.scope;
        }
      }
    }
    assign_bindings(k, def);
    for (const ParamDecl& p : k.params)
      for (const AttrInfo& info : kThreadAttrs)
        if (p.thread_attr == info.attr && info.needs_threadgroups) k.uses_threadgroups = true;
    return k;
  }

  // Explicit [[buffer(n)]] indices first; the others take the lowest free index in order.
  void assign_bindings(KernelDecl& k, const Decl& def) const {
    std::set<int> used, threadgroup_used;  // buffer and threadgroup indices are separate
    for (const ParamDecl& p : k.params) {
      const bool group = p.role == ParamRole::Threadgroup;
      if (p.role != ParamRole::ThreadPosition && p.binding >= 0 && !(group ? threadgroup_used : used).insert(p.binding).second)
        error(def.name_token, concat("kernel '", k.host_name, "': two parameters use [[", group ? "threadgroup" : "buffer",
                                     "(", p.binding, ")]]"));
    }
    int next = 0;
    for (ParamDecl& p : k.params) {
      if (p.role == ParamRole::ThreadPosition || p.role == ParamRole::Threadgroup || p.binding >= 0) continue;
      while (used.count(next)) ++next;
      p.binding = next;
      used.insert(next);
    }
  }

  void set(size_t tok, std::string text) {
    if (!repl_[tok]) repl_[tok] = std::move(text);
  }
  void blank(size_t first, size_t last) {
    for (size_t i = first; i <= last; ++i) set(i, std::string(t_[i].text.size(), ' '));
  }

  void mark_decl_edits(const Decl& d) {
    if (d.is_instantiation) {  // the backend instantiates the template itself
      blank(d.first, d.last);
      return;
    }
    for (const Attr& a : d.attrs) {
      if (a.name == "kernel") set(a.first, "MPS_SHIM_KERNEL");
      blank(a.first, a.last);
    }
    if (d.kernel_token) set(*d.kernel_token, "MPS_SHIM_KERNEL");
    for (const auto& r : d.param_attr_ranges) blank(r.first, r.second);
  }

  // Metal spellings that C++ reads differently: address spaces and literals.
  void rewrite_tokens() {
    for (size_t i = 0; i < t_.size(); ++i) {
      const Token& tk = t_[i];
      if (tk.is("[") && at(i + 1, "[") && !repl_[i]) {
        // An attribute outside a kernel's declaration (a typedef'd kernel type's
        // `[[threadgroup(0)]]`): Metal's mean nothing to the host compiler, and
        // their words (`threadgroup`) must not be read as code.
        const size_t close = match(i);
        if (close < t_.size() && t_[close - 1].is("]")) {
          blank(i, close);
          i = close;
          continue;
        }
      }
      if (tk.is("?")) rewrite_conditional_zero(i);
      if (tk.kind == TokenKind::Number) {
        rewrite_number(i);
      } else if (tk.is("device") || tk.is("thread")) {
        set(i, std::string(tk.text.size(), ' '));
      } else if (tk.is("constant")) {  // read-only; avoid `const const`; constructors take no qualifier
        const bool has_const = declares_const(i) || qualifies_constructor(t_, i);
        set(i, has_const ? "        " : "const   ");
      } else if (tk.is("threadgroup") && !repl_[i] && i > 1 &&
                 (t_[i - 1].is(")") || (t_[i - 1].is("const") && t_[i - 2].is(")")))) {
        set(i, std::string(tk.text.size(), ' '));  // a member function's qualifier: `operator bool() const threadgroup`
      } else if (tk.is("threadgroup") && !repl_[i]) {
        read_threadgroup_decl(i);
      } else if (tk.is_identifier() && !repl_[i]) {
        if (auto it = kUnsupportedTypes.find(std::string(tk.text)); it != kUnsupportedTypes.end())
          error(i, concat("'", tk.text, "': ", it->second, " are not supported by the host engine"));
      }
    }
  }

  KernelDefinition definition(const Decl& d) const {
    KernelDefinition def;
    def.name = d.name;
    def.first = d.first;
    def.template_close = d.is_template ? match(d.first + 1) : 0;
    def.lparen = d.name_token + 1;
    def.rparen = at(def.lparen, "(") ? match(def.lparen) : def.lparen;
    def.body_open = d.body_open;
    def.last = d.last;
    def.specialisation = !d.template_args.empty() || !at(d.name_token + 1, "(");
    def.params = d.params;
    return def;
  }

  // `threadgroup T x[N];` declares memory shared by one threadgroup's threads:
  // recorded for the backend, which decides where that memory lives. A
  // threadgroup pointer or reference is plain (the address space is erased).
  void read_threadgroup_decl(size_t i) {
    size_t k = i + 1;
    for (; k < t_.size(); ++k) {
      const Token& x = t_[k];
      if (x.is("<")) {
        k = match(k);
        continue;
      }
      if (x.is("*") || x.is("&") || x.is("&&") || x.is("(") || x.is(")")) {
        set(i, std::string(t_[i].text.size(), ' '));
        return;
      }
      if (x.is("[") || x.is(";") || x.is("=") || x.is(",")) break;
    }
    if (k >= t_.size() || !t_[k - 1].is_identifier()) error(i, "cannot parse this threadgroup declaration");
    if (t_[k].is("=")) error(i, "threadgroup variables cannot have initializers");
    size_t end = k;
    while (end < t_.size() && !t_[end].is(";")) ++end;
    if (end >= t_.size()) error(i, "unterminated threadgroup declaration");
    // Metal's limit: 32 KiB of threadgroup memory, checked per function by the
    // backend and across the functions a kernel calls in check_threadgroup_totals.
    ThreadgroupDecl decl{i, end, enclosing_body(i), 0, 0, {}};
    if (decl.function) {
      decl.block_open = innermost_block(i);
      decl.block_close = match(decl.block_open);
    }
    std::vector<ThreadgroupObject>& objects = decl.objects;
    for (size_t first = k - 1; first < end;) {  // each declarator of `T a[N], b, *p;`
      size_t last = first;
      bool storage = t_[first].is_identifier();
      for (; last < end && !t_[last].is(","); ++last) {
        if (t_[last].is("[") || t_[last].is("(")) last = match(last);
        if (t_[last].is("*") || t_[last].is("&") || t_[last].is("&&")) storage = false;
      }
      if (storage) objects.push_back({std::string(t_[first].text), threadgroup_bytes(i + 1, k - 1, first, last)});
      first = last + 1;
    }
    threadgroup_decls_.push_back(std::move(decl));
  }

  // Bytes of the declarator `NAME[N]...` (tokens name..end-1) of type
  // type_first..type_end-1, when the type is a Metal scalar or vector and the
  // extents are literals; else none.
  std::optional<uint64_t> threadgroup_bytes(size_t type_first, size_t type_end, size_t name, size_t end) const {
    static const std::map<std::string, uint64_t, std::less<>> kScalar = {
        {"bool", 1}, {"char", 1}, {"uchar", 1}, {"short", 2}, {"ushort", 2}, {"half", 2}, {"bfloat", 2},
        {"int", 4}, {"uint", 4}, {"float", 4}, {"long", 8}, {"ulong", 8}, {"atomic_int", 4}, {"atomic_uint", 4},
        {"atomic_float", 4}};
    size_t k = type_first;
    while (k < type_end && (t_[k].is("const") || t_[k].is("volatile"))) ++k;
    if (at(k, "metal") && at(k + 1, "::")) k += 2;
    if (k + 1 != type_end || !t_[k].is_identifier()) return std::nullopt;
    std::string type(t_[k].text);
    uint64_t lanes = 1;
    if (const char last = type.back(); last >= '2' && last <= '4' && !kScalar.count(type)) {
      lanes = last == '3' ? 4 : uint64_t(last - '0');  // a 3-vector is as large as a 4-vector
      type.pop_back();
    }
    auto scalar = kScalar.find(type);
    if (scalar == kScalar.end() || (lanes > 1 && type.rfind("atomic_", 0) == 0)) return std::nullopt;
    uint64_t bytes = scalar->second * lanes;
    for (k = name + 1; k < end; k += 3) {
      if (!t_[k].is("[") || k + 2 >= end || t_[k + 1].kind != TokenKind::Number || !t_[k + 2].is("]"))
        return std::nullopt;
      const std::string digits(t_[k + 1].text);
      if (digits.empty() || digits.find_first_not_of("0123456789uU") != std::string::npos || digits[0] == '0' ||
          digits.size() > 9)
        return std::nullopt;
      bytes = std::min<uint64_t>(bytes * std::stoull(digits), uint64_t(1) << 40);  // past the limit either way
    }
    return bytes;
  }

  // Metal counts the threadgroup memory of a kernel and every function it
  // calls together. Counted where the frontend knows the sizes and which
  // function a call reaches (one definition of that name), so the check never
  // rejects a kernel that fits.
  // Returns each kernel definition's known total, by its body's `{`.
  std::map<size_t, uint64_t> check_threadgroup_totals(const std::vector<Decl>& decls) const {
    std::map<size_t, uint64_t> totals;
    std::map<std::string, int> definitions;
    for (const FunctionBody& b : bodies_) ++definitions[b.name];
    std::map<size_t, std::vector<const ThreadgroupObject*>> objects_in;  // by function body
    for (const ThreadgroupDecl& decl : threadgroup_decls_)
      for (const ThreadgroupObject& o : decl.objects) objects_in[decl.function].push_back(&o);
    for (const Decl& d : decls) {
      if (!d.is_definition || d.is_instantiation) continue;
      uint64_t total = 0;
      std::string parts;
      int functions = 0;
      for (const FunctionBody* b : reachable_bodies(src_, bodies_, d.body_open)) {
        auto objects = objects_in.find(b->open);
        if (objects == objects_in.end()) continue;
        if (b->open != d.body_open && definitions[b->name] != 1) continue;
        uint64_t bytes = 0;
        for (const ThreadgroupObject* o : objects->second) bytes += o->bytes.value_or(0);
        if (!bytes) continue;
        total += bytes;
        ++functions;
        parts += concat(parts.empty() ? "" : ", ", bytes, " in '", b->name, "'");
      }
      totals[d.body_open] = total;
      if (total > 32768 && functions > 1)
        error(d.name_token, concat("kernel '", t_[d.name_token].text, "' needs ", total,
                                   " bytes of threadgroup memory with the functions it calls (", parts,
                                   "); Metal allows 32768"));
    }
    return totals;
  }

  // The function body (its opening brace) that contains token i, or 0.
  // The `{` of the innermost block holding token i (i inside some function body).
  size_t innermost_block(size_t i) const {
    int depth = 0;
    for (size_t k = i; k-- > 0;) {
      if (t_[k].is("}")) ++depth;
      else if (t_[k].is("{") && depth-- == 0) return k;
    }
    return 0;
  }

  size_t enclosing_body(size_t i) const {
    for (const auto& b : bodies_)
      if (b.open < i && i < b.close) return b.open;
    return 0;
  }

  // True when the specifiers around the `constant` at i already say const
  // (MLX's `static constant constexpr const int N = ...`).
  bool declares_const(size_t i) const {
    auto specifier = [&](size_t k) {
      return t_[k].is("static") || t_[k].is("constexpr") || t_[k].is("inline") || t_[k].is("volatile") ||
             t_[k].is("thread_local");
    };
    for (size_t k = i + 1; k < t_.size() && (specifier(k) || t_[k].is("const")); ++k)
      if (t_[k].is("const")) return true;
    for (size_t k = i; k-- > 0 && (specifier(k) || t_[k].is("const"));)
      if (t_[k].is("const")) return true;
    return false;
  }

  // `c ? x : 0`: Metal gives x's type when x is a bfloat or a vector (its usual
  // arithmetic conversions, with the scalar broadcast); C++ finds int -> bfloat and
  // bfloat -> float -> int both possible and rejects the expression. A literal 0
  // that is a whole operand of `?:`, the other operand not one, becomes
  // metal::detail::literal_zero, which converts one way only, to the other
  // operand's type (mps_metal_stdlib.h). Other literals are left as they are: a
  // narrower other operand (ushort, bool) would take them in its own type, where
  // Metal promotes both to int; 0 is the same value in every type.
  void rewrite_conditional_zero(size_t q) {
    size_t colon = 0;
    int depth = 0, nested = 0;
    for (size_t k = q + 1; k < t_.size() && !colon; ++k) {
      const Token& x = t_[k];
      if (x.is("(") || x.is("[") || x.is("{")) ++depth;
      else if (x.is(")") || x.is("]") || x.is("}")) {
        if (--depth < 0) return;
      } else if (depth == 0 && x.is(";")) return;
      else if (depth == 0 && x.is("?")) ++nested;
      else if (depth == 0 && x.is(":") && nested-- == 0) colon = k;
    }
    if (!colon || colon + 2 >= t_.size()) return;
    auto zero = [&](size_t k) { return t_[k].kind == TokenKind::Number && t_[k].is("0"); };
    const bool second = colon == q + 2 && zero(q + 1);
    const size_t end = colon + 2;  // the token after a one-token third operand
    const bool third = zero(colon + 1) && (t_[end].is(";") || t_[end].is(",") || t_[end].is(")") ||
                                           t_[end].is("]") || t_[end].is("}") || t_[end].is(":"));
    if (second == third) return;
    set(second ? q + 1 : colon + 1, "::metal::detail::literal_zero{}");
  }

  // An unsuffixed floating literal is float in Metal; `h` makes half.
  void rewrite_number(size_t i) {
    const std::string s(t_[i].text);
    const bool hex = s.size() > 1 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
    const bool floating = hex ? s.find_first_of("pP") != std::string::npos : s.find_first_of(".eE") != std::string::npos;
    if (!floating) return;
    const char last = s.back();
    if (last == 'h' || last == 'H') set(i, concat("half(", s.substr(0, s.size() - 1), "f)"));
    else if (std::isdigit(static_cast<unsigned char>(last)) || last == '.') set(i, s + "f");
  }

  const LexedSource& src_;
  const std::vector<Token>& t_;
  TokenEdits repl_;
  std::vector<FunctionBody> bodies_;
  std::vector<ThreadgroupDecl> threadgroup_decls_;  // in source order
};

}  // namespace

ThreadAttr thread_attr_from_name(const std::string& name) {
  for (const AttrInfo& info : kThreadAttrs)
    if (name == info.name) return info.attr;
  return ThreadAttr::None;
}

ParsedLibrary parse_library(const LexedSource& source) {
  ParsedLibrary library = Parser(source).run();
  find_function_constants(source, library);
  return library;
}

std::vector<Edit> source_edits(const LexedSource& source, const TokenEdits& edits) {
  std::vector<Edit> out;
  for (size_t i = 0; i < edits.size(); ++i)
    if (edits[i]) out.push_back({source.tokens[i].offset, source.tokens[i].text.size(), *edits[i]});
  return out;
}

}  // namespace mps_shim::frontend
