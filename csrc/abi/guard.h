// The ABI boundary: every extern "C" body runs inside guard(), which turns any
// exception into AOTI_TORCH_FAILURE plus this thread's last error (message and
// kind), marks the enclosing command block failed, and records the failure as
// the process's pending failure unless one is already pending (generated code
// ignores return codes; mps_shim_synchronize reports it). Nothing throws across
// the ABI.
#pragma once

#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "mps_shim.h"
#include "runtime/handles.h"
#include "runtime/library.h"
#include "runtime/tensor.h"

namespace mps_shim::abi {

// Records the exception being handled; call it only inside a catch block. With
// MPS_SHIM_ABORT_ON_ERROR set, prints the message and aborts instead of returning.
void record_exception(const char* api) noexcept;

const char* last_error_message() noexcept;
int32_t last_error_kind() noexcept;
// Moves the pending failure into this thread's last error and clears the slot;
// false when none is pending.
bool take_pending_error() noexcept;
// This thread's last error has been read (reported to the caller): if it is the
// pending failure, the slot is cleared.
void mark_last_error_read() noexcept;

template <typename F>
AOTITorchError guard(const char* api, F&& body) noexcept {
  try {
    body();
    return AOTI_TORCH_SUCCESS;
  } catch (...) {
    record_exception(api);
  }
  return AOTI_TORCH_FAILURE;
}

HandleRegistry<Tensor>& tensors();
HandleRegistry<ShaderLibrary>& libraries();
HandleRegistry<KernelFunction>& kernel_functions();

template <typename T>
void check_out(T* out, const char* name) {
  MPS_SHIM_CHECK(out != nullptr, "null output pointer '", name, "'");
}

// Reads `source` with the include folders (and MPS_SHIM_INCLUDE_PATH's),
// compiling it now or kernel by kernel as `mode` says, and registers the
// library as a handle.
void create_library(const char* source, const std::vector<std::string>& include_dirs,
                    AOTIMetalShaderLibraryHandle* library_handle, CompileMode mode = CompileMode::Auto);

// The kernel function `name` of the library (compiled on first use) as a
// registered handle.
void get_function(AOTIMetalShaderLibraryHandle library_handle, const char* name,
                  const std::vector<ConstantSetting>& constants, AOTIMetalKernelFunctionHandle* function_handle);

}  // namespace mps_shim::abi
