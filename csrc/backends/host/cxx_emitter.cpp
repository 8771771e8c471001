#include "backends/host/cxx_emitter.h"

#include <sstream>

#include "backends/host/lane_loops.h"

namespace mps_shim::host {

using frontend::KernelDecl;
using frontend::ParamDecl;
using frontend::ParamRole;
using frontend::ThreadAttr;

namespace {

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// The entry point `prefix<index>`, running the kernel as `execution` says.
void emit_entry(std::ostringstream& out, const KernelDecl& k, size_t index, KernelDecl::Execution execution,
                const char* prefix) {
  const std::string fn = k.function + k.template_args;
  const std::string traits = "mps_shim_traits_" + std::to_string(index);
  out << "extern \"C\" void " << prefix << index
      << "(const mps_shim_launch* L, uint64_t first, uint64_t end) {\n"
      << "  mps_host::claim_thread_locals();\n";
  for (size_t i = 0; i < k.params.size(); ++i) {
    const ParamDecl& p = k.params[i];
    if (p.role == ParamRole::ThreadPosition) continue;
    out << "  auto&& a" << i << " = mps_host::bind<" << traits << "::arg<" << i << ">>(L->args[" << p.binding << "]);\n";
  }
  using Execution = KernelDecl::Execution;
  if (execution == Execution::LaneLoops)  // the group function loops over the threads between barriers
    out << "  mps_host::run_groups_as_lane_loops(L, first, end, [&](mps_host::GroupLanes& g) "
           "__attribute__((always_inline)) {\n    "
        << k.function << "__mps_lanes" << k.template_args << "(";
  else if (execution == Execution::Fibers)  // threads wait for each other anywhere: one fiber each
    out << "  mps_host::run_groups_as_fibers(L, first, end, [&](const mps_host::ThreadIds& t) {\n    " << fn << "(";
  else
    out << "  mps_host::run_groups<" << (k.uses_threadgroups ? "true" : "false")
        << ">(L, first, end, [&](const mps_host::ThreadIds& t) __attribute__((always_inline)) {\n    " << fn << "(";
  for (size_t i = 0; i < k.params.size(); ++i) {
    const ParamDecl& p = k.params[i];
    if (i) out << ", ";
    if (p.role != ParamRole::ThreadPosition)
      out << "a" << i;
    else if (execution == Execution::LaneLoops)  // each loop declares its thread's own values
      out << "mps_host::thread_value<" << traits << "::arg<" << i << ">>(0u)";
    else
      out << "mps_host::thread_value<" << traits << "::arg<" << i << ">>(t." << thread_ids_member(p.thread_attr) << ")";
  }
  if (execution == Execution::LaneLoops) out << (k.params.empty() ? "" : ", ") << "g";
  out << ");\n  });\n}\n";
}

void emit_kernel(std::ostringstream& out, const KernelDecl& k, size_t index) {
  const std::string fn = k.function + k.template_args;
  const std::string traits = "mps_shim_traits_" + std::to_string(index);
  out << "using " << traits << " = mps_host::fn_traits<decltype(&" << fn << ")>;\n";
  out << "static const mps_shim_param_record mps_shim_params_" << index << "[] = {\n";
  for (size_t i = 0; i < k.params.size(); ++i) {
    const ParamDecl& p = k.params[i];
    const std::string size = p.role == ParamRole::Scalar
                                 ? "mps_host::scalar_size<" + traits + "::arg<" + std::to_string(i) + ">>()"
                                 : "0";
    out << "  {" << quoted(p.name) << ", " << quoted(p.type) << ", " << int(p.role) << ", " << p.binding << ", "
        << quoted(p.attribute) << ", " << size << ", " << p.line << "},\n";
  }
  if (k.params.empty()) out << "  {\"\", \"\", 0, -1, \"\", 0, 0},\n";
  out << "};\n";
  emit_entry(out, k, index, k.execution, "mps_shim_entry_");
  // A lane-loop kernel's original body on fibers, for MPS_SHIM_CROSSCHECK (runtime/crosscheck.cpp).
  if (k.execution == KernelDecl::Execution::LaneLoops)
    emit_entry(out, k, index, KernelDecl::Execution::Fibers, "mps_shim_fiber_entry_");
}

}  // namespace

std::string emit_cxx(const std::string& preprocessed, const HostLibrary& library) {
  std::string code;
  code.reserve(preprocessed.size() + 4096);
  size_t pos = 0;
  for (const frontend::Edit& e : library.edits) {
    code.append(preprocessed, pos, e.offset - pos);
    code += e.replacement;
    pos = e.offset + e.length;
  }
  code.append(preprocessed, pos, std::string::npos);

  std::ostringstream out;
  out << "\n#line 1 \"<mps_shim entry points>\"\n";
  for (size_t i = 0; i < library.kernels.size(); ++i) emit_kernel(out, library.kernels[i], i);
  out << "extern \"C\" MPS_SHIM_ENTRY const uint32_t mps_shim_module_abi = MPS_SHIM_MODULE_ABI;\n";
  out << "extern \"C\" MPS_SHIM_ENTRY const uint32_t mps_shim_kernel_count = " << library.kernels.size() << ";\n";
  out << "extern \"C\" MPS_SHIM_ENTRY const mps_shim_kernel_record mps_shim_kernel_table[] = {\n";
  for (size_t i = 0; i < library.kernels.size(); ++i) {
    const KernelDecl& k = library.kernels[i];
    out << "  {" << quoted(k.host_name) << ", mps_shim_entry_" << i << ", " << k.max_threads << ", "
        << (k.uses_threadgroups ? 1 : 0) << ", " << int(k.execution) << ", " << quoted(k.execution_note) << ", "
        << k.params.size() << ", mps_shim_params_" << i << ", " << k.line << ", "
        << (k.execution == KernelDecl::Execution::LaneLoops ? "mps_shim_fiber_entry_" + std::to_string(i) : "nullptr")
        << "},\n";
  }
  if (library.kernels.empty()) out << "  {\"\", nullptr, 0, 0, 0, \"\", 0, nullptr, 0, nullptr},\n";
  out << "};\n";
  return code + out.str();
}

}  // namespace mps_shim::host
