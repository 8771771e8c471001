// error_kinds_test.cpp - error kinds and sticky failures, seen from a C++ host
// that, like AOTInductor-generated code, ignores return codes.
//
// Build: c++ -std=c++17 -pthread -I<include_dir> error_kinds_test.cpp -L<lib dir> -lmps_shim -Wl,-rpath,<lib dir>
// Exits 0 and prints "all checks passed" when every check holds.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <thread>

#include "mps_shim.h"

namespace {

void fail_at(int line, const char* what) {
  std::fflush(stdout);
  std::fprintf(stderr, "error_kinds_test.cpp:%d: CHECK FAILED: %s\n    last error (kind %d): \"%s\"\n", line, what,
               int(mps_shim_last_error_kind()), mps_shim_last_error());
  std::exit(1);
}
#define CHECK(cond) \
  do {              \
    if (!(cond)) fail_at(__LINE__, #cond); \
  } while (0)

// The pending failure is reported once, with this kind and this phrase in its message.
void expect_pending(int line, int32_t kind, const char* phrase) {
  if (mps_shim_synchronize() != 1) fail_at(line, "mps_shim_synchronize() should report a pending failure");
  if (mps_shim_last_error_kind() != kind) fail_at(line, "unexpected kind of the pending failure");
  if (std::strstr(mps_shim_last_error(), phrase) == nullptr) fail_at(line, phrase);
  if (mps_shim_synchronize() != 0) fail_at(line, "a reported failure must not be reported again");
}
#define EXPECT_PENDING(kind, phrase) expect_pending(__LINE__, kind, phrase)

const char* kSource = R"MTL(
#include <metal_stdlib>
using namespace metal;
kernel void fill(device float* out [[buffer(0)]], constant float& v [[buffer(1)]],
                 uint i [[thread_position_in_grid]]) {
  out[i] = v;
}
)MTL";

using Encoder = std::function<void(AOTIMetalKernelFunctionHandle)>;

}  // namespace

int main() {
  CHECK(mps_shim_last_error_kind() == MPS_SHIM_ERROR_NONE);
  CHECK(mps_shim_synchronize() == 0);
  CHECK(mps_shim_take_pending_error() == 0);

  AOTIMetalShaderLibraryHandle lib = nullptr, broken = nullptr;
  AOTIMetalKernelFunctionHandle fill = nullptr, missing = nullptr;
  CHECK(aoti_torch_mps_create_shader_library(kSource, &lib) == 0);
  CHECK(aoti_torch_mps_get_kernel_function(lib, "fill", &fill) == 0);
  const int64_t size = 4, stride = 1;
  AtenTensorHandle out = nullptr;
  CHECK(aoti_torch_empty_strided(1, &size, &stride, aoti_torch_dtype_float32(), aoti_torch_device_type_mps(), 0,
                                 &out) == 0);

  // Generated code ignores these codes; the first failure sticks, later ones do not replace it.
  aoti_torch_mps_create_shader_library("kernel void broken(device float* p", &broken);
  CHECK(mps_shim_last_error_kind() == MPS_SHIM_ERROR_COMPILE);
  aoti_torch_mps_get_kernel_function(lib, "no_such_kernel", &missing);
  CHECK(mps_shim_last_error_kind() == MPS_SHIM_ERROR_KERNEL_NOT_FOUND);
  CHECK(std::strstr(mps_shim_last_error(), "[aoti_torch_mps_get_kernel_function]") != nullptr);
  EXPECT_PENDING(MPS_SHIM_ERROR_COMPILE, "[aoti_torch_mps_create_shader_library]");

  // A failure the caller marks as read is not pending; one it does not mark stays pending.
  aoti_torch_mps_get_kernel_function(lib, "no_such_kernel", &missing);
  mps_shim_mark_last_error_read();
  CHECK(mps_shim_take_pending_error() == 0);
  aoti_torch_delete_tensor_object(nullptr);                                 // pending, not read
  aoti_torch_mps_get_kernel_function(lib, "no_such_kernel", &missing);      // read
  mps_shim_mark_last_error_read();
  EXPECT_PENDING(MPS_SHIM_ERROR_INVALID_HANDLE, "null tensor handle");

  // A dispatch error inside a command block, as cpp_wrapper_mps encodes it.
  Encoder bad_group = [&](AOTIMetalKernelFunctionHandle h) {
    aoti_torch_mps_start_encoding(h);
    aoti_torch_mps_set_arg_tensor(h, 0, out);
    const float v = 1.0f;
    mps_shim_set_arg_bytes(h, 1, &v, sizeof v);
    aoti_torch_mps_dispatch_single_with_group_size(h, 4, 2048);
  };
  CHECK(aoti_torch_mps_run_command_block(fill, aoti_torch_mps_shared_callback, &bad_group) == 1);
  CHECK(mps_shim_last_error_kind() == MPS_SHIM_ERROR_COMMAND_BLOCK);
  EXPECT_PENDING(MPS_SHIM_ERROR_SIZE, "Threadgroup size exceeds");

  // A value bound to a buffer parameter.
  Encoder bad_arg = [&](AOTIMetalKernelFunctionHandle h) {
    aoti_torch_mps_start_encoding(h);
    aoti_torch_mps_set_arg_int(h, 0, 7);
  };
  aoti_torch_mps_run_command_block(fill, aoti_torch_mps_shared_callback, &bad_arg);
  EXPECT_PENDING(MPS_SHIM_ERROR_ARGUMENT, "[aoti_torch_mps_set_arg_int]");

  // An exception of the host's own, thrown by its callback.
  Encoder throws = [](AOTIMetalKernelFunctionHandle) { throw std::logic_error("the host's own exception"); };
  CHECK(aoti_torch_mps_run_command_block(fill, aoti_torch_mps_shared_callback, &throws) == 1);
  EXPECT_PENDING(MPS_SHIM_ERROR_INTERNAL, "the host's own exception");

  // Out of memory; bad tensor arguments.
  void* buffer = nullptr;
  CHECK(aoti_torch_mps_malloc(&buffer, SIZE_MAX / 2) == 1);
  EXPECT_PENDING(MPS_SHIM_ERROR_OUT_OF_MEMORY, "cannot allocate");
  const int64_t negative = -3;
  AtenTensorHandle t = nullptr;
  CHECK(aoti_torch_empty_strided(1, &negative, nullptr, aoti_torch_dtype_float32(), aoti_torch_device_type_mps(), 0,
                                 &t) == 1);
  EXPECT_PENDING(MPS_SHIM_ERROR_RUNTIME, "negative size");

  // A failure on another thread is pending for every thread; its message moves to the reader.
  std::thread other([] { aoti_torch_mps_free(reinterpret_cast<void*>(16)); });
  other.join();
  CHECK(mps_shim_last_error_kind() == MPS_SHIM_ERROR_RUNTIME);  // this thread's own is unchanged
  CHECK(mps_shim_take_pending_error() == 1);
  CHECK(mps_shim_last_error_kind() == MPS_SHIM_ERROR_INVALID_HANDLE);
  CHECK(std::strstr(mps_shim_last_error(), "[aoti_torch_mps_free]") != nullptr);
  CHECK(mps_shim_take_pending_error() == 0);

  // Working calls leave nothing pending.
  Encoder good = [&](AOTIMetalKernelFunctionHandle h) {
    aoti_torch_mps_start_encoding(h);
    aoti_torch_mps_set_arg_tensor(h, 0, out);
    const float v = 2.5f;
    mps_shim_set_arg_bytes(h, 1, &v, sizeof v);
    aoti_torch_mps_dispatch_single(h, 4);
  };
  CHECK(aoti_torch_mps_run_command_block(fill, aoti_torch_mps_shared_callback, &good) == 0);
  CHECK(mps_shim_synchronize() == 0);
  void* data = nullptr;
  CHECK(aoti_torch_get_data_ptr(out, &data) == 0);
  CHECK(static_cast<float*>(data)[3] == 2.5f);

  aoti_torch_delete_tensor_object(out);
  aoti_torch_mps_delete_shader_library(lib);
  CHECK(mps_shim_synchronize() == 0);
  std::puts("all checks passed");
  return 0;
}
