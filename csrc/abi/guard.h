// The ABI boundary: every extern "C" body runs inside guard(), which turns any
// exception into AOTI_TORCH_FAILURE plus this thread's last-error message, and
// marks the enclosing command block failed. Nothing throws across the ABI.
#pragma once

#include <exception>
#include <string>

#include "mps_shim.h"
#include "runtime/handles.h"
#include "runtime/library.h"
#include "runtime/tensor.h"

namespace mps_shim::abi {

void set_last_error(const char* api, const char* message);
const char* last_error_message();

template <typename F>
AOTITorchError guard(const char* api, F&& body) noexcept {
  try {
    body();
    return AOTI_TORCH_SUCCESS;
  } catch (const std::exception& e) {
    set_last_error(api, e.what());
  } catch (...) {
    set_last_error(api, "unknown C++ exception");
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

}  // namespace mps_shim::abi
