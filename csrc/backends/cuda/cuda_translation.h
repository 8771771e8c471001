// Turns a parsed Metal library into one CUDA C++ translation unit for NVRTC:
// the user's code with the front end's edits (line markers kept, so
// diagnostics name the user's lines), threadgroup memory as __shared__, and
// one __global__ entry point per kernel (`mps_shim_entry_<i>`) that works out
// the thread's Metal ids and calls the kernel function. The standard library
// is the host engine's metal/ headers on the CUDA platform layer
// (metal_include/cuda_engine/).
#pragma once

#include <string>
#include <vector>

#include "frontend/function_constants.h"
#include "frontend/kernel_decl.h"
#include "frontend/lexer.h"

namespace mps_shim::cuda {

struct CudaTranslation {
  std::string source;
  std::vector<frontend::KernelDecl> kernels;  // entry point i is kernels[i]
};

// The module of `indices` (all kernels when `all_kernels`) specialised with `constants`.
CudaTranslation translate_for_cuda(const std::string& preprocessed, const frontend::LexedSource& source,
                                   const frontend::ParsedLibrary& library, bool all_kernels,
                                   const std::vector<size_t>& indices, const frontend::ConstantValues& constants);

// The entry point's kernel parameters, in order, for the launcher: each
// buffer-index parameter passes a device address; a reference to a value
// (`constant T& p`) passes an address (a tensor bound to it, else null) and
// then the value's bytes; a [[threadgroup(n)]] parameter passes its offset in
// the group's dynamic shared memory; the last parameter is the grid.
enum class EntryParam { Address, ReferenceAddress, ReferenceValue, ThreadgroupOffset };
struct EntryParamInfo {
  EntryParam kind;
  int binding;  // buffer index, or threadgroup index for ThreadgroupOffset
  bool absent;  // not in this specialisation: null, or zero bytes
};
std::vector<EntryParamInfo> entry_params(const frontend::KernelDecl& k);

// The module's `mps_shim_facts_<i>` array for entry point i: its max threads
// per threadgroup, then per kernel parameter its value size, reference-ness
// and writability (mps_param_facts.h; zeros for thread-position parameters).
constexpr int kFactsPerParam = 3;

}  // namespace mps_shim::cuda
