// NVRTC: the CUDA translation of a library (cuda_translation.h) compiled to
// a cubin for one GPU architecture, cached on disk like host modules.
#pragma once

#include <string>

namespace mps_shim::cuda {

// The cubin of `source` for a real architecture `arch` ("sm_90"), or its PTX
// for a virtual one ("compute_90": NVRTC's front end and code generation,
// without ptxas; the driver assembles PTX when it loads it). Throws CompileError with
// NVRTC's diagnostics (they name library.metal's lines), or EngineError when
// NVRTC or libcu++'s headers are missing.
// unoptimised_ptxas assembles with ptxas -O0: for code that ptxas's register
// allocator rejects (C7600, NVRTC 12.9 and 13.0 on sm_90; see cuda_backend.cpp).
std::string compile_cuda(const std::string& source, const std::string& arch, bool unoptimised_ptxas = false);

// Whether a CompileError's message is ptxas failing on NVRTC's own output.
bool is_ptxas_failure(const std::string& message);

// NVRTC's version, "12.9", or "" when it does not load.
std::string nvrtc_version();

}  // namespace mps_shim::cuda
