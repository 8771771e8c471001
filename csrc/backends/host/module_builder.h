// Builds host kernel modules: a library read by the front end (ParsedSource)
// and a choice of its kernels and function-constant values are lowered,
// emitted as C++ and compiled by the system compiler into a shared object.
// Lane loops are an optimisation: a translation that does not compile is
// rebuilt with the kernels concerned on fibers (see build).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/host/host_lowering.h"
#include "frontend/kernel_decl.h"
#include "frontend/lexer.h"

namespace mps_shim::host {

// Preprocesses `source` (frontend/preprocess.h) with the include folders.
std::string preprocess_source(const std::string& source, const std::vector<std::string>& include_dirs);

// The front end's reading of one library, kept for the compiles of its
// kernels. The tokens point into `preprocessed`, so it never moves.
struct ParsedSource {
  // Lexes and parses `preprocessed`; throws CompileError at the user's line.
  explicit ParsedSource(std::string preprocessed);
  ParsedSource(const ParsedSource&) = delete;
  ParsedSource& operator=(const ParsedSource&) = delete;

  const std::string preprocessed;
  const frontend::LexedSource lexed;
  const frontend::ParsedLibrary parsed;
};

// The shared object of the module that `options` describes (which kernels,
// which constant values, lane loops or not). Throws CompileError with the
// compiler's diagnostics, at the user's lines. With MPS_SHIM_KEEP_CXX set
// to a folder, the translation is kept there as `<keep_name>.cpp`.
std::string build_module(const ParsedSource& src, LoweringOptions options, const std::string& keep_name);

// Starts precompiling mps_host_metal.h in the background, once per include
// folder, so later kernel compiles load it instead of parsing it.
void start_precompiled_header(const std::string& include_dir);

}  // namespace mps_shim::host
