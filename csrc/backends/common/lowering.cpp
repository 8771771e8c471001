#include "backends/common/lowering.h"

#include <set>
#include <sstream>

#include "frontend/call_graph.h"
#include "util/error.h"

namespace mps_shim::lowering {

void place_threadgroup_memory(const frontend::ParsedLibrary& library, const char* storage,
                              frontend::TokenEdits& edits) {
  const auto& decls = library.threadgroup_decls;
  for (size_t i = 0; i < decls.size(); ++i) {
    const frontend::ThreadgroupDecl& d = decls[i];
    edits[d.keyword] = storage;
    std::string sum;  // the objects still visible here: an earlier branch's arrays are out of scope
    for (size_t j = 0; j <= i; ++j) {
      const frontend::ThreadgroupDecl& e = decls[j];
      if (e.function != d.function || (e.function && (e.block_open > d.keyword || d.keyword > e.block_close))) continue;
      for (const frontend::ThreadgroupObject& o : e.objects) sum += (sum.empty() ? "sizeof(" : " + sizeof(") + o.name + ")";
    }
    if (sum.empty()) continue;  // declarators that are all pointers or references
    edits[d.end] = concat("; static_assert(", sum, " <= 32768, \"threadgroup memory exceeds Metal's 32 KiB limit\");");
  }
}

bool constant_is_true(const frontend::ParsedLibrary& library, const frontend::ConstantValues& constants,
                      const frontend::ParamDecl& p) {
  for (size_t c = 0; c < library.function_constants.size(); ++c) {
    if (library.function_constants[c].name != p.function_constant) continue;
    const std::optional<std::string>& v = c < constants.size() ? constants[c] : std::nullopt;
    return v && v->find_first_not_of('\0') != std::string::npos;
  }
  return false;
}

std::vector<frontend::KernelDecl> module_kernels(const frontend::ParsedLibrary& library, bool all_kernels,
                                                 const std::vector<size_t>& indices,
                                                 const frontend::ConstantValues& constants) {
  std::vector<frontend::KernelDecl> kernels;
  if (all_kernels) kernels = library.kernels;
  else
    for (size_t k : indices) kernels.push_back(library.kernels.at(k));
  for (frontend::KernelDecl& k : kernels)
    for (frontend::ParamDecl& p : k.params)
      p.absent = !p.function_constant.empty() && !constant_is_true(library, constants, p);
  return kernels;
}

void leave_out_other_kernels(const frontend::LexedSource& source, const frontend::ParsedLibrary& library,
                             const std::vector<frontend::KernelDecl>& wanted, frontend::TokenEdits& edits) {
  std::set<size_t> reached;
  for (const frontend::KernelDecl& k : wanted)
    for (const frontend::FunctionBody* b : frontend::reachable_bodies(source, library.bodies, k.body_open))
      reached.insert(b->open);
  for (const frontend::KernelDefinition& d : library.definitions)
    if (!reached.count(d.body_open))
      for (size_t i = d.body_open + 1; i < d.last; ++i) edits[i] = std::string(source.tokens[i].text.size(), ' ');
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string at_kernel_line(const std::string& code, const frontend::KernelDecl& k) {
  const std::string marker = concat("#line ", k.line, " ", quoted(k.file), "\n");
  std::string out;
  for (size_t pos = 0; pos < code.size();) {
    size_t end = code.find('\n', pos);
    end = end == std::string::npos ? code.size() : end + 1;
    out += marker;
    out.append(code, pos, end - pos);
    pos = end;
  }
  return out;
}

std::string apply_edits(const std::string& preprocessed, const std::vector<frontend::Edit>& edits) {
  std::string code;
  code.reserve(preprocessed.size() + 4096);
  size_t pos = 0;
  for (const frontend::Edit& e : edits) {
    code.append(preprocessed, pos, e.offset - pos);
    code += e.replacement;
    pos = e.offset + e.length;
  }
  code.append(preprocessed, pos, std::string::npos);
  return code;
}

std::string max_threads_function(const frontend::KernelDecl& k, size_t index) {
  if (k.max_threads_expr.empty()) return "";
  std::string open, close;
  for (size_t pos = 0; pos < k.scope.size();) {
    const size_t end = k.scope.find("::", pos);
    open += "namespace " + k.scope.substr(pos, end - pos) + " { ";
    close += "} ";
    pos = end + 2;
  }
  std::ostringstream out;
  out << open << "\n#line " << k.max_threads_line << " " << quoted(k.max_threads_file) << "\n"
      << (k.template_header.empty() ? "template <int = 0>" : k.template_header)
      << " constexpr uint32_t mps_shim_max_threads_" << index << "() { constexpr long v = (" << k.max_threads_expr
      << "); static_assert(v >= 1 && v <= 1024, \"max_total_threads_per_threadgroup takes an integer from 1 to "
         "1024\"); return uint32_t(v); }\n#line 1 \"<mps_shim entry points>\"\n"
      << close << "\n";
  return out.str();
}

std::string max_threads_value(const frontend::KernelDecl& k, size_t index) {
  if (k.max_threads_expr.empty()) return std::to_string(k.max_threads);
  return concat("::", k.scope, "mps_shim_max_threads_", index, "<",
                k.template_args.empty() ? ">" : k.template_args.substr(1), "()");
}

}  // namespace mps_shim::lowering
