// NVRTC: the CUDA translation of a library (cuda_translation.h) compiled to
// a cubin for one GPU architecture, cached on disk like host modules.
#pragma once

#include <string>

namespace mps_shim::cuda {

// The cubin of `source` for `arch` ("sm_90"). Throws CompileError with
// NVRTC's diagnostics (they name library.metal's lines), or EngineError when
// NVRTC or libcu++'s headers are missing.
std::string compile_cuda(const std::string& source, const std::string& arch);

// NVRTC's version, "12.9", or "" when it does not load.
std::string nvrtc_version();

}  // namespace mps_shim::cuda
