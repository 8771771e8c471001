#include "backends/cuda/cuda_translation.h"

#include <cctype>
#include <set>
#include <sstream>

#include "backends/common/lowering.h"
#include "backends/host/lane_loops.h"  // thread_ids_member: the ThreadIds fields are the host's names
#include "util/error.h"

namespace mps_shim::cuda {

using frontend::KernelDecl;
using frontend::ParamDecl;
using frontend::ParamRole;

namespace {

// CUDA declares these at global scope (its vector types and its math
// library), so after `using namespace metal` an unqualified use is ambiguous:
// the translation names Metal's own.
const std::set<std::string>& cuda_global_vector_types() {
  static const std::set<std::string> names = [] {
    std::set<std::string> s;
    for (const char* t : {"char", "uchar", "short", "ushort", "int", "uint", "long", "ulong", "float"})
      for (int n = 2; n <= 4; ++n) s.insert(concat(t, n));
    return s;
  }();
  return names;
}
const std::set<std::string>& cuda_global_functions() {
  static const std::set<std::string> names = {
      "abs",   "acos",  "acosh",     "asin",  "asinh", "atan",   "atan2", "atanh",    "cbrt",      "ceil",
      "copysign", "cos", "cosh",     "cospi", "erf",   "erfc",   "exp",   "exp10",    "exp2",      "expm1",
      "fabs",  "fdim",  "floor",     "fma",   "fmax",  "fmin",   "fmod",  "frexp",    "hypot",     "ilogb",
      "isfinite", "isinf", "isnan",  "ldexp", "lgamma", "log",   "log10", "log1p",    "log2",      "logb",
      "max",   "min",   "modf",      "nextafter", "pow", "remainder", "rint", "round",  "rsqrt",     "signbit",
      "sin",   "sincos", "sinh",     "sinpi", "sqrt",  "tan",    "tanh",  "tanpi",    "tgamma",    "trunc",
      "all",   "any",   "clamp",     "saturate"};
  return names;
}

// CUDA's float math (`expf`, `expm1f`, ...): a library that defines one itself
// (PyTorch's c10 defines expm1f) gets its own under another name, since Metal
// has no such function and CUDA's would collide with it.
bool cuda_float_function(const std::string& name) {
  return name.size() > 1 && name.back() == 'f' && cuda_global_functions().count(name.substr(0, name.size() - 1));
}

// `text` (edits' replacements, template arguments) with CUDA's vector type
// names written ::metal::float4: whole identifiers not already qualified.
std::string qualify_vector_names(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (!(std::isalpha(static_cast<unsigned char>(c)) || c == '_')) {
      out += c;
      ++i;
      continue;
    }
    size_t end = i;
    while (end < text.size() && (std::isalnum(static_cast<unsigned char>(text[end])) || text[end] == '_')) ++end;
    const std::string word = text.substr(i, end - i);
    const bool qualified = out.size() >= 2 && out.compare(out.size() - 2, 2, "::") == 0;
    const bool member = !out.empty() && out.back() == '.';
    out += !qualified && !member && cuda_global_vector_types().count(word) ? "::metal::" + word : word;
    i = end;
  }
  return out;
}

// A call `name(`, not a declaration `type name(...)` of a variable.
bool is_call(const frontend::LexedSource& src, size_t i) {
  if (i + 1 >= src.tokens.size() || !src.tokens[i + 1].is("(")) return false;
  if (i == 0 || !src.tokens[i - 1].is_identifier()) return true;
  static const std::set<std::string_view> keywords = {"return", "case", "else", "do", "throw", "co_return"};
  return keywords.count(src.tokens[i - 1].text) > 0;
}

bool after_member_access(const frontend::LexedSource& src, size_t i) {
  if (i == 0) return false;
  const std::string_view prev = src.tokens[i - 1].text;
  return prev == "." || prev == "->" || prev == "::";
}

// The namespace around each `{` of the source ("a::b", "" for the global one).
std::vector<std::string> namespaces_at_braces(const frontend::LexedSource& src) {
  std::vector<std::string> at(src.tokens.size());
  std::vector<std::string> stack;  // per open brace: its namespace path
  std::string pending;             // `namespace a::b` read, its `{` not yet
  bool in_namespace_head = false;
  for (size_t i = 0; i < src.tokens.size(); ++i) {
    const frontend::Token& t = src.tokens[i];
    const std::string current = stack.empty() ? "" : stack.back();
    if (t.is("namespace")) {
      in_namespace_head = true;
      pending = current;
    } else if (in_namespace_head && t.is_identifier()) {
      pending += (pending.empty() ? "" : "::") + std::string(t.text);
    } else if (t.is("{")) {
      at[i] = current;
      stack.push_back(in_namespace_head ? pending : current);
      in_namespace_head = false;
    } else if (t.is("}")) {
      if (!stack.empty()) stack.pop_back();
    } else if (in_namespace_head && !t.is("::")) {
      in_namespace_head = false;  // `namespace x = y;`, `using namespace x;`
    }
  }
  return at;
}

// Qualifies the user's unqualified uses of the names CUDA also declares.
void qualify_cuda_clashes(const frontend::LexedSource& src, const frontend::ParsedLibrary& library,
                          frontend::TokenEdits& edits) {
  // Functions the library defines outside namespace metal keep their overload
  // set (a qualified call would miss them); those it adds to namespace metal
  // (MLX's bfloat math) are found by a qualified call like Metal's own, and
  // those of metal::fast or metal::precise are never called unqualified.
  const std::vector<std::string> ns = namespaces_at_braces(src);
  std::set<std::string> own;
  for (const frontend::FunctionBody& b : library.bodies)
    if (ns[b.open] != "metal" && ns[b.open].rfind("metal::", 0) != 0) own.insert(b.name);
  for (size_t i = 0; i < src.tokens.size(); ++i) {
    const frontend::Token& t = src.tokens[i];
    if (edits[i]) {
      *edits[i] = qualify_vector_names(*edits[i]);
      continue;
    }
    if (t.kind != frontend::TokenKind::Identifier) continue;
    const std::string name(t.text);
    if (own.count(name) && cuda_float_function(name) && (i == 0 || !src.tokens[i - 1].is(".")) &&
        (i == 0 || !src.tokens[i - 1].is("->"))) {
      edits[i] = "mps_library_" + name;
      continue;
    }
    if (after_member_access(src, i)) continue;
    if (cuda_global_vector_types().count(name) ||
        (cuda_global_functions().count(name) && !own.count(name) && is_call(src, i)))
      edits[i] = "::metal::" + name;
  }
}

// `c ? NAN : x` (NAN preprocessed to __builtin_nanf("")): the NaN becomes a
// mps_cuda::nan_operand, which takes x's type (mps_cuda_platform.h says why).
void type_conditional_nans(const frontend::LexedSource& src, frontend::TokenEdits& edits) {
  const std::vector<frontend::Token>& t = src.tokens;
  for (size_t i = 1; i + 4 < t.size(); ++i) {
    if (!t[i].is("__builtin_nanf") || !t[i - 1].is("?") || !t[i + 1].is("(") ||
        t[i + 2].kind != frontend::TokenKind::String || !t[i + 3].is(")") || !t[i + 4].is(":"))
      continue;
    if (edits[i] || edits[i + 1] || edits[i + 2] || edits[i + 3]) continue;
    edits[i] = "::mps_cuda::nan_operand{}";
    edits[i + 1] = edits[i + 2] = edits[i + 3] = "";
  }
}

void emit_entry(std::ostringstream& final_out, const KernelDecl& k, size_t index) {
  std::ostringstream out;
  const std::string fn = k.function + qualify_vector_names(k.template_args);
  const std::string traits = "mps_shim_traits_" + std::to_string(index);
  out << "using " << traits << " = mps_cuda::fn_traits<decltype(&" << fn << ")>;\n";
  out << "extern \"C\" __global__ void ";
  const std::string max_threads = qualify_vector_names(lowering::max_threads_value(k, index));
  out << "__launch_bounds__(" << max_threads << ") ";
  out << "mps_shim_entry_" << index << "(";
  std::vector<std::string> args;
  for (size_t i = 0; i < k.params.size(); ++i) {
    const ParamDecl& p = k.params[i];
    const std::string arg = concat(traits, "::arg<", i, ">");
    if (p.role == ParamRole::ThreadPosition) {
      args.push_back(concat("mps_cuda::thread_value<", arg, ">(mps_t.", host::thread_ids_member(p.thread_attr), ")"));
    } else if (p.role == ParamRole::Threadgroup) {
      out << "unsigned mps_o" << i << ", ";
      args.push_back(concat("(", arg, ")(mps_cuda::dynamic_threadgroup_memory + mps_o", i, ")"));
    } else if (p.type.find('&') != std::string::npos) {
      out << "const void* mps_p" << i << ", mps_cuda::value_bytes<" << arg << "> mps_v" << i << ", ";
      args.push_back(concat("mps_cuda::bind_reference<", arg, ">(mps_p", i, ", mps_v", i, ")"));
    } else {
      out << "void* mps_p" << i << ", ";
      args.push_back(concat("(", arg, ")mps_p", i));
    }
  }
  out << "mps_cuda::Grid mps_grid) {\n  mps_cuda::ThreadIds mps_t;\n"
      << "  if (!mps_cuda::thread_ids(mps_grid, mps_t)) return;\n  " << fn << "(";
  for (size_t i = 0; i < args.size(); ++i) out << (i ? ", " : "") << args[i];
  out << ");\n}\n";
  // What the host's kernel table records, worked out by the compiler (kernel_facts).
  out << "extern \"C\" __device__ const unsigned mps_shim_facts_" << index << "[] = {"
      << max_threads;
  for (size_t i = 0; i < k.params.size(); ++i) {
    if (k.params[i].role == ParamRole::ThreadPosition) {
      out << ", 0, 0, 0";
      continue;
    }
    const std::string arg = concat(traits, "::arg<", i, ">");
    out << ", mps_host::param_value_size<" << arg << ">(), mps_host::param_is_reference<" << arg
        << ">(), mps_host::param_writable<" << arg << ">()";
  }
  out << "};\n";
  final_out << lowering::max_threads_function(k, index) << lowering::at_kernel_line(out.str(), k);
}

}  // namespace

std::vector<EntryParamInfo> entry_params(const KernelDecl& k) {
  std::vector<EntryParamInfo> out;
  for (const ParamDecl& p : k.params) {
    if (p.role == ParamRole::ThreadPosition) continue;
    if (p.role == ParamRole::Threadgroup) {
      out.push_back({EntryParam::ThreadgroupOffset, p.binding, p.absent});
    } else if (p.type.find('&') != std::string::npos) {
      out.push_back({EntryParam::ReferenceAddress, p.binding, p.absent});
      out.push_back({EntryParam::ReferenceValue, p.binding, p.absent});
    } else {
      out.push_back({EntryParam::Address, p.binding, p.absent});
    }
  }
  return out;
}

CudaTranslation translate_for_cuda(const std::string& preprocessed, const frontend::LexedSource& source,
                                   const frontend::ParsedLibrary& library, bool all_kernels,
                                   const std::vector<size_t>& indices, const frontend::ConstantValues& constants) {
  frontend::TokenEdits edits = library.edits;
  lowering::place_threadgroup_memory(library, "__shared__", edits);
  CudaTranslation out;
  out.kernels = lowering::module_kernels(library, all_kernels, indices, constants);
  frontend::specialise_function_constants(source, library, constants, edits);
  if (!all_kernels) lowering::leave_out_other_kernels(source, library, out.kernels, edits);
  qualify_cuda_clashes(source, library, edits);
  type_conditional_nans(source, edits);
  std::ostringstream entries;
  entries << "\n#line 1 " << lowering::quoted("<mps_shim entry points>") << "\n";
  for (size_t i = 0; i < out.kernels.size(); ++i) emit_entry(entries, out.kernels[i], i);
  out.source = "#include \"cuda_engine/mps_cuda_metal.h\"\n" +
               lowering::apply_edits(preprocessed, frontend::source_edits(source, edits)) + entries.str();
  return out;
}

}  // namespace mps_shim::cuda
