// Finds the kernels of a preprocessed Metal library and describes them:
// `kernel void f(...)`, `[[kernel]] void f(...)`, and template kernels
// instantiated as `template [[host_name("n")]] kernel void f<T>(...);` or
// `template [[host_name("n")]] [[kernel]] decltype(f<T>) f<T>;`.
// Throws CompileError, pointing at the user's line, for what it cannot honour.
#pragma once

#include "frontend/kernel_decl.h"
#include "frontend/lexer.h"

namespace mps_shim::frontend {

ParsedLibrary parse_library(const LexedSource& source);

// The attribute's enum value, or ThreadAttr::None for a name that is not one.
ThreadAttr thread_attr_from_name(const std::string& name);

}  // namespace mps_shim::frontend
