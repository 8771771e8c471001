#include "backends/common/front_end_info.h"

#include "backends/host/cxx_emitter.h"  // address_space_name: the schema's spelling
#include "frontend/function_constants.h"

namespace mps_shim::lowering {

KernelInfo front_end_info(const frontend::KernelDecl& k) {
  KernelInfo info;
  info.name = k.host_name;
  info.max_threads = k.max_threads;
  info.threadgroup_memory = k.threadgroup_memory;
  info.line = k.line;
  info.execution = k.waits ? KernelExecution::Undecided : KernelExecution::Independent;
  for (const frontend::ParamDecl& p : k.params) {
    KernelParam& out = info.params.emplace_back();
    out.name = p.name;
    out.type = p.type;
    out.kind = ParamKind(int(p.role));
    out.binding = p.binding;
    out.attribute = p.attribute;
    out.space = host::address_space_name(p);
    out.reference = p.type.find('&') != std::string::npos;
    out.writable = out.space == "device" && (" " + p.type + " ").find(" const ") == std::string::npos;
    out.line = p.line;
  }
  info.function_constants = k.function_constants;
  return info;
}

FunctionConstantInfo constant_info(const frontend::FunctionConstant& c) {
  FunctionConstantInfo info;
  info.name = c.name;
  info.type = c.type.name;
  info.data_type = c.type.code;
  info.size = c.type.size();
  info.index = c.index;
  info.line = c.line;
  info.required = !c.optional;
  return info;
}

std::vector<std::pair<std::string, std::string>> constant_values(const frontend::ParsedLibrary& library,
                                                                 const FunctionConstantValues& values) {
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t c = 0; c < values.size(); ++c)
    if (values[c])
      out.emplace_back(library.function_constants[c].name,
                       frontend::constant_value_text(library.function_constants[c].type, *values[c]));
  return out;
}

}  // namespace mps_shim::lowering
