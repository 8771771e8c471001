// generated_model.cpp - a stand-in for the C++ that AOTInductor's cpp_wrapper_mps
// emits for an MPS model, written from the pattern (not copied from PyTorch).
//
// Built as a shared object that is NOT linked against libmps_shim:
//   c++ -std=c++17 -shared -fPIC -Wall -Werror -I<include_dir> generated_model.cpp -o model.so
// Its aoti_torch_* references stay undefined and resolve, at dlopen time, to the
// libmps_shim.so the loading process already has (model_driver links it), so the
// model and its driver share one runtime, one set of handles.
//
// The model: out[i] = 2*buf0[i] - buf0[n-1-i], where buf0[i] = x[i]*w[i%4] + b[i%4]
// and w, b are constants living at element offsets inside one device blob.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "mps_shim.h"

namespace {

// Generated code turns every failed shim call into an exception.
void check(AOTITorchError err, const char* what) {
  if (err != AOTI_TORCH_SUCCESS) throw std::runtime_error(std::string(what) + ": " + mps_shim_last_error());
}
#define SHIM_CHECK(call) check((call), #call)

// ---- kernels: one shader library per kernel, as cpp_wrapper_mps emits them ----
const char* mps_lib_0_source = R"MTL(
#include <metal_stdlib>
using namespace metal;
kernel void generated_kernel(device float* out_ptr0 [[buffer(0)]],
                             constant float* in_ptr0 [[buffer(1)]],
                             constant float* in_ptr1 [[buffer(2)]],
                             constant float* in_ptr2 [[buffer(3)]],
                             constant long& xnumel [[buffer(4)]],
                             uint xindex [[thread_position_in_grid]]) {
  if (long(xindex) < xnumel) {
    int x0 = xindex;
    out_ptr0[x0] = in_ptr0[x0] * in_ptr1[x0 % 4] + in_ptr2[x0 % 4];
  }
}
)MTL";

const char* mps_lib_1_source = R"MTL(
#include <metal_stdlib>
using namespace metal;
kernel void generated_kernel(device float* out_ptr0 [[buffer(0)]],
                             constant float* in_ptr0 [[buffer(1)]],
                             constant long& ks0 [[buffer(2)]],
                             uint xindex [[thread_position_in_grid]]) {
  if (long(xindex) < ks0) {
    int x0 = xindex;
    out_ptr0[x0] = 2.0 * in_ptr0[x0] - in_ptr0[ks0 - 1 - x0];
  }
}
)MTL";

int g_library_creations = 0;
AOTIMetalShaderLibraryHandle g_libraries[2] = {nullptr, nullptr};

struct LibraryDeleter {
  void operator()(AOTIMetalShaderLibraryOpaque* lib) const { aoti_torch_mps_delete_shader_library(lib); }
};
using LibraryPtr = std::unique_ptr<AOTIMetalShaderLibraryOpaque, LibraryDeleter>;

AOTIMetalKernelFunctionHandle load_kernel(int index, const char* source, LibraryPtr& owner) {
  AOTIMetalShaderLibraryHandle lib = nullptr;
  AOTIMetalKernelFunctionHandle fn = nullptr;
  SHIM_CHECK(aoti_torch_mps_create_shader_library(source, &lib));
  owner.reset(lib);  // deleted when this object is unloaded, or at exit
  SHIM_CHECK(aoti_torch_mps_get_kernel_function(lib, "generated_kernel", &fn));
  ++g_library_creations;
  g_libraries[index] = lib;
  return fn;
}

// Function-local statics: each library is compiled on the first call only.
AOTIMetalKernelFunctionHandle get_mps_lib_0_handle() {
  static LibraryPtr library;
  static AOTIMetalKernelFunctionHandle kernel = load_kernel(0, mps_lib_0_source, library);
  return kernel;
}

AOTIMetalKernelFunctionHandle get_mps_lib_1_handle() {
  static LibraryPtr library;
  static AOTIMetalKernelFunctionHandle kernel = load_kernel(1, mps_lib_1_source, library);
  return kernel;
}

// ---- constants: one device blob, each constant a tensor at an element offset ----
// The serialized constants, as the model's data section would hold them: a
// 16-byte header, then w (4 floats), then b (4 floats).
struct SerializedConstants {
  uint8_t header[16];
  float w[4];
  float b[4];
};
const SerializedConstants kConstants = {{'c', 'o', 'n', 's', 't'}, {1.0f, -2.0f, 0.5f, 3.0f}, {0.25f, 1.0f, -1.0f, 2.0f}};

// Created on first use and kept for the life of the loaded model.
struct Constants {
  void* blob = nullptr;
  AtenTensorHandle w = nullptr, b = nullptr;

  Constants() {
    const size_t blob_bytes = 64;  // w at element 2 (byte 8), b at element 8 (byte 32)
    uint8_t* start = const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(&kConstants));
    const int64_t sizes[1] = {4}, strides[1] = {1};
    try {
      SHIM_CHECK(aoti_torch_mps_malloc(&blob, blob_bytes));
      SHIM_CHECK(aoti_torch_mps_memcpy(blob, 8, offsetof(SerializedConstants, w), sizeof kConstants.w, start));
      SHIM_CHECK(aoti_torch_mps_memcpy(blob, 32, offsetof(SerializedConstants, b), sizeof kConstants.b, start));
      SHIM_CHECK(aoti_torch_create_tensor_from_blob_v2(blob, 1, sizes, strides, 2, aoti_torch_dtype_float32(),
                                                       aoti_torch_device_type_mps(), 0, &w,
                                                       aoti_torch_layout_strided(), nullptr, 0));
      SHIM_CHECK(aoti_torch_create_tensor_from_blob_v2(blob, 1, sizes, strides, 8, aoti_torch_dtype_float32(),
                                                       aoti_torch_device_type_mps(), 0, &b,
                                                       aoti_torch_layout_strided(), nullptr, 0));
    } catch (...) {
      release();
      throw;
    }
  }
  ~Constants() { release(); }
  Constants(const Constants&) = delete;
  Constants& operator=(const Constants&) = delete;

 private:
  void release() {
    if (w) aoti_torch_delete_tensor_object(w);
    if (b) aoti_torch_delete_tensor_object(b);
    if (blob) aoti_torch_mps_free(blob);
    w = b = nullptr;
    blob = nullptr;
  }
};

Constants& constants() {
  static Constants c;
  return c;
}

// Owns a tensor handle for the duration of one run (RAIIAtenTensorHandle's role).
struct TensorGuard {
  AtenTensorHandle h = nullptr;
  ~TensorGuard() {
    if (h) aoti_torch_delete_tensor_object(h);
  }
  AtenTensorHandle release() {
    AtenTensorHandle out = h;
    h = nullptr;
    return out;
  }
};

void run_impl(AtenTensorHandle arg0_1, AtenTensorHandle* output) {
  int64_t s0 = 0;
  SHIM_CHECK(aoti_torch_get_size(arg0_1, 0, &s0));
  Constants& c = constants();
  const int64_t sizes[1] = {s0}, strides[1] = {1};

  TensorGuard buf0;
  SHIM_CHECK(aoti_torch_empty_strided(1, sizes, strides, aoti_torch_dtype_float32(), aoti_torch_device_type_mps(), 0,
                                      &buf0.h));
  auto kernel0 = [&](AOTIMetalKernelFunctionHandle handle) {
    aoti_torch_mps_start_encoding(handle);
    aoti_torch_mps_set_arg_tensor(handle, 0, buf0.h);
    aoti_torch_mps_set_arg_tensor(handle, 1, arg0_1);
    aoti_torch_mps_set_arg_tensor(handle, 2, c.w);
    aoti_torch_mps_set_arg_tensor(handle, 3, c.b);
    aoti_torch_mps_set_arg_int(handle, 4, s0);
    aoti_torch_mps_dispatch_single(handle, static_cast<uint64_t>(s0));
  };
  std::function<void(AOTIMetalKernelFunctionHandle)> kernel0_fn = kernel0;
  SHIM_CHECK(aoti_torch_mps_run_command_block(get_mps_lib_0_handle(), aoti_torch_mps_shared_callback, &kernel0_fn));

  TensorGuard buf1;
  SHIM_CHECK(aoti_torch_empty_strided(1, sizes, strides, aoti_torch_dtype_float32(), aoti_torch_device_type_mps(), 0,
                                      &buf1.h));
  auto kernel1 = [&](AOTIMetalKernelFunctionHandle handle) {
    aoti_torch_mps_start_encoding(handle);
    aoti_torch_mps_set_arg_tensor(handle, 0, buf1.h);
    aoti_torch_mps_set_arg_tensor(handle, 1, buf0.h);  // the first kernel's output
    aoti_torch_mps_set_arg_int(handle, 2, s0);
    const uint64_t grid[1] = {static_cast<uint64_t>(s0)}, group[1] = {16};
    aoti_torch_mps_dispatch_array_with_group_size(handle, grid, 1, group, 1);
  };
  std::function<void(AOTIMetalKernelFunctionHandle)> kernel1_fn = kernel1;
  SHIM_CHECK(aoti_torch_mps_run_command_block(get_mps_lib_1_handle(), aoti_torch_mps_shared_callback, &kernel1_fn));

  *output = buf1.release();
}

}  // namespace

extern "C" {

// run: one input [n] float32 mps tensor; returns a new output handle the caller deletes.
__attribute__((visibility("default"))) AOTITorchError model_run(AtenTensorHandle input, AtenTensorHandle* output) {
  try {
    run_impl(input, output);
    return AOTI_TORCH_SUCCESS;
  } catch (const std::exception& e) {
    aoti_torch_warn("model_run", __FILE__, __LINE__, e.what());
    return AOTI_TORCH_FAILURE;
  }
}

__attribute__((visibility("default"))) int model_library_creations(void) { return g_library_creations; }

__attribute__((visibility("default"))) AOTIMetalShaderLibraryHandle model_library(int index) {
  return index >= 0 && index < 2 ? g_libraries[index] : nullptr;
}

// An exception thrown inside the std::function: run_command_block must return 1
// with the message, not let it unwind through the C ABI.
__attribute__((visibility("default"))) AOTITorchError model_run_throwing(AtenTensorHandle input) {
  auto body = [&](AOTIMetalKernelFunctionHandle handle) {
    aoti_torch_mps_start_encoding(handle);
    aoti_torch_mps_set_arg_tensor(handle, 1, input);
    throw std::runtime_error("boom from the generated lambda");
  };
  std::function<void(AOTIMetalKernelFunctionHandle)> fn = body;
  return aoti_torch_mps_run_command_block(get_mps_lib_0_handle(), aoti_torch_mps_shared_callback, &fn);
}

// An empty std::function is reported, not called.
__attribute__((visibility("default"))) AOTITorchError model_run_empty_function(void) {
  std::function<void(AOTIMetalKernelFunctionHandle)> fn;
  return aoti_torch_mps_run_command_block(get_mps_lib_0_handle(), aoti_torch_mps_shared_callback, &fn);
}

// aoti_torch_check(false, ...) throws a std::exception carrying the message, as
// upstream's c10::Error; 1 when it does, 0 otherwise.
__attribute__((visibility("default"))) int model_check_throws(void) {
  try {
    aoti_torch_check(true, __func__, __FILE__, __LINE__, "must not throw");
  } catch (...) {
    return 0;
  }
  try {
    aoti_torch_check(false, __func__, __FILE__, __LINE__, "expected check failure");
  } catch (const std::exception& e) {
    return std::string(e.what()).find("expected check failure") != std::string::npos ? 1 : 0;
  }
  return 0;
}

}  // extern "C"
