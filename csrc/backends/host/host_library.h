// A Metal library on the host backend. Creating one preprocesses and parses
// the source and lists its kernels; kernels compile when asked for, each
// specialisation (kernel + function-constant values) into a module of its
// own, cached on disk, or all at once (compile_all: the library's kernels in
// one module, or in one module per worker thread compiled side by side).
// Small libraries compile eagerly (CompileMode::Auto), as PyTorch's shim does.
#pragma once

#include <memory>
#include <string>

#include "runtime/backend.h"

namespace mps_shim::host {

// Throws CompileError for what the front end finds wrong, and, when the
// library compiles at once, for what the compiler finds.
std::unique_ptr<CompiledLibrary> open_host_library(const std::string& source, const CompileOptions& options);

}  // namespace mps_shim::host
