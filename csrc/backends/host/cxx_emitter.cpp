#include "backends/host/cxx_emitter.h"

#include <sstream>

#include "mps_shim_kernel_schema.h"

#include "backends/common/lowering.h"
#include "backends/host/lane_loops.h"
#include "util/error.h"

namespace mps_shim::host {

using frontend::KernelDecl;
using frontend::ParamDecl;
using frontend::ParamRole;
using frontend::ThreadAttr;

static_assert(int(ParamRole::Buffer) == MPS_SHIM_PARAM_BUFFER && int(ParamRole::Scalar) == MPS_SHIM_PARAM_SCALAR &&
              int(ParamRole::ThreadPosition) == MPS_SHIM_PARAM_THREAD_POSITION &&
              int(ParamRole::Threadgroup) == MPS_SHIM_PARAM_THREADGROUP);
static_assert(int(KernelDecl::Execution::Independent) == MPS_SHIM_EXECUTION_INDEPENDENT &&
              int(KernelDecl::Execution::Fibers) == MPS_SHIM_EXECUTION_FIBERS &&
              int(KernelDecl::Execution::LaneLoops) == MPS_SHIM_EXECUTION_LANE_LOOPS);

namespace {

// The entry point `prefix<index>`, running the kernel as `execution` says.
void emit_entry(std::ostringstream& out, const KernelDecl& k, size_t index, KernelDecl::Execution execution,
                const char* prefix, bool checked) {
  const std::string fn = k.function + k.template_args;
  const std::string traits = "mps_shim_traits_" + std::to_string(index);
  out << "extern \"C\" void " << prefix << index
      << "(const mps_shim_launch* L, uint64_t first, uint64_t end) {\n"
      << "  mps_host::claim_thread_locals();\n";
  for (size_t i = 0; i < k.params.size(); ++i) {
    const ParamDecl& p = k.params[i];
    if (p.role == ParamRole::ThreadPosition) continue;
    const std::string address = p.absent ? std::string("nullptr")  // not in this specialisation
                                : p.role == ParamRole::Threadgroup ? concat("mps_host::threadgroup_block(L, ", p.binding, ")")
                                                                  : concat("L->args[", p.binding, "]");
    if (checked)  // checked pointers carry their buffer's (or threadgroup memory's) bounds
      out << "  auto&& a" << i << " = mps_host::checked::bind<" << traits << "::arg<" << i << ">>(" << address
          << ", L, " << p.binding << ", " << (p.role == ParamRole::Threadgroup ? "true, " : "false, ")
          << lowering::quoted(p.name) << ");\n";
    else
      out << "  auto&& a" << i << " = mps_host::bind<" << traits << "::arg<" << i << ">>(" << address << ");\n";
  }
  using Execution = KernelDecl::Execution;
  if (execution == Execution::LaneLoops)  // the group function loops over the threads between barriers
    out << "  mps_host::run_groups_as_lane_loops(L, first, end, [&](mps_host::GroupLanes& g) "
           "__attribute__((always_inline)) {\n    "
        << k.function << "__mps_lanes" << k.template_args << "(";
  else if (execution == Execution::Fibers)  // threads wait for each other anywhere: one fiber each
    out << "  mps_host::run_groups_as_fibers(L, first, end, [&](const mps_host::ThreadIds& t) {\n    " << fn << "(";
  else if (checked)  // each thread's reports name it; its threadgroup accesses are settled when it ends
    out << "  mps_host::checked::begin_chunk(__builtin_frame_address(0));\n  mps_host::run_groups<" << (k.uses_threadgroups ? "true" : "false")
        << ">(L, first, end, [&](const mps_host::ThreadIds& t) __attribute__((always_inline)) {\n"
        << "    const mps_host::checked::ThreadScope mps_scope(L, t);\n    " << fn << "(";
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
  out << ");\n  });\n";
  if (checked && execution == Execution::Independent) out << "  mps_host::checked::end_chunk();\n";
  out << "}\n";
}

size_t present_params(const KernelDecl& k) {
  size_t n = 0;
  for (const ParamDecl& p : k.params) n += p.absent ? 0 : 1;
  return n;
}

// Each schema field (mps_shim_kernel_schema.h) of a parameter or kernel as a C initializer.
// The type facts (value_size, reference, writable) are C++ expressions over
// the parameter's declared type, so the compiler works them out.
struct ParamFields {
  const ParamDecl& p;
  std::string arg_type;  // "traits::arg<i>", or "" for the placeholder record
  std::string name() const { return lowering::quoted(p.name); }
  std::string type() const { return lowering::quoted(p.type); }
  std::string kind() const { return std::to_string(int(p.role)); }
  std::string binding() const { return std::to_string(p.binding); }
  std::string attribute() const { return lowering::quoted(p.attribute); }
  std::string space() const { return lowering::quoted(address_space_name(p)); }
  std::string fact(const char* what) const {
    return bound() ? concat("mps_host::param_", what, "<", arg_type, ">()") : "0";
  }
  std::string value_size() const { return fact("value_size"); }
  std::string reference() const { return fact("is_reference"); }
  std::string writable() const { return fact("writable"); }
  std::string line() const { return std::to_string(p.line); }
  bool bound() const { return !arg_type.empty() && p.role != ParamRole::ThreadPosition; }
};

struct KernelFields {
  const KernelDecl& k;
  size_t index;
  std::string name() const { return lowering::quoted(k.host_name); }
  std::string max_threads() const { return lowering::max_threads_value(k, index); }
  std::string threadgroup_memory() const { return std::to_string(k.threadgroup_memory); }
  std::string line() const { return std::to_string(k.line); }
  std::string execution() const { return std::to_string(int(k.execution)); }
  std::string execution_note() const { return lowering::quoted(k.execution_note); }
};

// `, value` for each field, in the schema's order.
#define MPS_SHIM_EMIT_FIELD(type, field, json_key) << ", " << f.field()

void emit_param_record(std::ostringstream& out, const ParamFields& f) {
  std::ostringstream fields;
  fields MPS_SHIM_PARAM_FIELDS(MPS_SHIM_EMIT_FIELD);
  out << "  {" << fields.str().substr(2) << "},\n";
}

void emit_kernel(std::ostringstream& final_out, const KernelDecl& k, size_t index, bool checked) {
  final_out << lowering::max_threads_function(k, index);
  std::ostringstream out;
  const std::string fn = k.function + k.template_args;
  const std::string traits = "mps_shim_traits_" + std::to_string(index);
  out << "using " << traits << " = mps_host::fn_traits<decltype(&" << fn << ")>;\n";
  out << "static const mps_shim_param_record mps_shim_params_" << index << "[] = {\n";
  for (size_t i = 0; i < k.params.size(); ++i)  // a parameter absent from this specialisation has no record
    if (!k.params[i].absent)
      emit_param_record(out, ParamFields{k.params[i], traits + "::arg<" + std::to_string(i) + ">"});
  const ParamDecl none;
  if (present_params(k) == 0) emit_param_record(out, ParamFields{none, ""});
  out << "};\n";
  emit_entry(out, k, index, k.execution, "mps_shim_entry_", checked);
  // A lane-loop kernel's original body on fibers, for MPS_SHIM_CROSSCHECK (runtime/crosscheck.cpp).
  if (k.execution == KernelDecl::Execution::LaneLoops)
    emit_entry(out, k, index, KernelDecl::Execution::Fibers, "mps_shim_fiber_entry_", checked);
  final_out << lowering::at_kernel_line(out.str(), k);
}

}  // namespace

const char* address_space_name(const ParamDecl& p) {
  using frontend::AddressSpace;
  return p.role == ParamRole::ThreadPosition    ? ""
         : p.space == AddressSpace::Threadgroup ? "threadgroup"
         : p.space == AddressSpace::Device      ? "device"
         : p.space == AddressSpace::Constant    ? "constant"
                                                : "";
}

std::string emit_cxx(const std::string& preprocessed, const HostLibrary& library) {
  const std::string code = lowering::apply_edits(preprocessed, library.edits);

  std::ostringstream out;
  out << "\n#line 1 \"<mps_shim entry points>\"\n";
  for (size_t i = 0; i < library.kernels.size(); ++i) emit_kernel(out, library.kernels[i], i, library.checked);
  out << "#line 1 \"<mps_shim kernel table>\"\n";
  out << "extern \"C\" MPS_SHIM_ENTRY const uint32_t mps_shim_module_abi = MPS_SHIM_MODULE_ABI;\n";
  out << "extern \"C\" MPS_SHIM_ENTRY const uint32_t mps_shim_kernel_count = " << library.kernels.size() << ";\n";
  out << "extern \"C\" MPS_SHIM_ENTRY const mps_shim_kernel_record mps_shim_kernel_table[] = {\n";
  for (size_t i = 0; i < library.kernels.size(); ++i) {
    const KernelDecl& k = library.kernels[i];
    const KernelFields f{k, i};
    out << "  {mps_shim_entry_" << i << ", "
        << (k.execution == KernelDecl::Execution::LaneLoops ? "mps_shim_fiber_entry_" + std::to_string(i) : "nullptr")
        << ", " << (k.uses_threadgroups ? 1 : 0) << ", " << present_params(k) << ", mps_shim_params_" << i
        MPS_SHIM_KERNEL_FIELDS(MPS_SHIM_EMIT_FIELD) << "},\n";
  }
  if (library.kernels.empty()) out << "  {},\n";
  out << "};\n";
  return code + out.str();
}

}  // namespace mps_shim::host
