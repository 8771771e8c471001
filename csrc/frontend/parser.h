// Finds the kernels of a preprocessed Metal library and describes them:
// `kernel void f(...)`, `[[kernel]] void f(...)`, and template kernels
// instantiated as `template [[host_name("n")]] kernel void f<T>(...);` or
// `template [[host_name("n")]] [[kernel]] decltype(f<T>) f<T>;`.
// Throws CompileError, pointing at the user's line, for what it cannot honour.
#pragma once

#include "frontend/kernel_decl.h"
#include "frontend/lexer.h"

namespace mps_shim::frontend {

struct ParseOptions {
  // Split kernels at their barriers into loops over a group's threads where
  // possible (backends/host/lane_loops.h); otherwise every kernel that waits runs on fibers.
  bool lane_loops = true;
  // With lane_loops off: why, as each fibers kernel's execution_note says it.
  std::string lane_loops_off_reason = "lane loops are turned off (MPS_SHIM_LANE_LOOPS=0)";
};

ParsedLibrary parse_library(const LexedSource& source, const ParseOptions& options = {});

// The attribute's enum value, or ThreadAttr::None for a name that is not one.
ThreadAttr thread_attr_from_name(const std::string& name);

}  // namespace mps_shim::frontend
