// The runtime's description of a kernel and a function constant (runtime/backend.h)
// from the front end's, before any backend compiles them.
#pragma once

#include "frontend/kernel_decl.h"
#include "runtime/backend.h"

namespace mps_shim::lowering {

// Parameter value sizes are 0 (the compiled module records them), reference-ness
// and writability are read from the declared type, and a kernel that may wait
// is "undecided" (its backend decides how its threads run).
KernelInfo front_end_info(const frontend::KernelDecl& k);
FunctionConstantInfo constant_info(const frontend::FunctionConstant& c);
// A specialisation's values as {name, value as text} (KernelInfo::constant_values).
std::vector<std::pair<std::string, std::string>> constant_values(const frontend::ParsedLibrary& library,
                                                                 const FunctionConstantValues& values);

}  // namespace mps_shim::lowering
