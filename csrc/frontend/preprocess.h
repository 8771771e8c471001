// Stage one of the front end: the C preprocessor, run by the system compiler
// with Metal's predefined macros, so macros that write kernels (templates
// instantiated by INSTANTIATE(T) macros) are expanded before parsing. Its line
// markers keep every token tied to the user's line.
#pragma once

#include <string>
#include <vector>

namespace mps_shim::frontend {

// The name the user's source carries in diagnostics.
constexpr const char* kSourceName = "library.metal";

// Preprocesses the file kSourceName in `work_dir` with `compiler` (argv
// prefix, e.g. {"g++"}). `stub_include_dir` holds empty <metal_stdlib>-style
// headers; `include_dirs` (absolute) are searched after it. Throws
// CompileError with the preprocessor's diagnostics.
std::string preprocess(const std::vector<std::string>& compiler, const std::string& work_dir,
                       const std::string& stub_include_dir, const std::vector<std::string>& include_dirs);

// Predefined macros, as -D flags: __METAL__, __METAL_VERSION__ and friends.
const std::vector<std::string>& metal_predefines();

// The <metal_*> headers that exist as (empty) stubs for preprocessing.
const std::vector<std::string>& metal_header_names();

}  // namespace mps_shim::frontend
