// aoti_torch_mps_*: shader libraries, kernel functions, encoding and device
// memory, with upstream's names and semantics (see docs/architecture.md).
#include <cstring>
#include <functional>
#include <string>

#include "abi/guard.h"
#include "runtime/allocator.h"
#include "runtime/backend.h"
#include "runtime/command_queue.h"
#include "util/error.h"

using namespace mps_shim;
using mps_shim::abi::guard;

namespace {

KernelFunction& kernel(AOTIMetalKernelFunctionHandle h) { return *abi::kernel_functions().get(h); }

// Encoding calls may come from any thread, inside a command block or not.
template <typename F>
AOTITorchError encode(const char* api, AOTIMetalKernelFunctionHandle h, F&& body) {
  return guard(api, [&] {
    std::lock_guard<std::recursive_mutex> lock(CommandQueue::mutex());
    body(kernel(h));
  });
}

}  // namespace

extern "C" {

AOTITorchError aoti_torch_mps_create_shader_library(const char* source, AOTIMetalShaderLibraryHandle* library_handle) {
  return guard(__func__, [&] { abi::create_library(source, {}, library_handle); });
}

AOTITorchError aoti_torch_mps_delete_shader_library(AOTIMetalShaderLibraryHandle library_handle) {
  return guard(__func__, [&] {
    std::lock_guard<std::recursive_mutex> lock(CommandQueue::mutex());
    ShaderLibrary* lib = abi::libraries().get(library_handle);
    for (KernelFunction* f : lib->functions()) abi::kernel_functions().remove(f);
    abi::libraries().remove(lib);
    delete lib;
  });
}

AOTITorchError aoti_torch_mps_get_kernel_function(AOTIMetalShaderLibraryHandle library_handle, const char* kernel_name,
                                                  AOTIMetalKernelFunctionHandle* function_handle) {
  return guard(__func__, [&] { abi::get_function(library_handle, kernel_name, {}, function_handle); });
}

AOTITorchError aoti_torch_mps_start_encoding(AOTIMetalKernelFunctionHandle func) {
  return encode(__func__, func, [](KernelFunction& k) { k.start_encoding(); });
}

AOTITorchError aoti_torch_mps_set_arg_tensor(AOTIMetalKernelFunctionHandle func, unsigned idx, AtenTensorHandle tensor) {
  return encode(__func__, func, [&](KernelFunction& k) { k.set_tensor(idx, *abi::tensors().get(tensor)); });
}

// Binds 8 bytes: kernels declare sizes as `constant long&`.
AOTITorchError aoti_torch_mps_set_arg_int(AOTIMetalKernelFunctionHandle func, unsigned idx, int64_t val) {
  return encode(__func__, func, [&](KernelFunction& k) { k.set_bytes(idx, &val, sizeof val); });
}

AOTITorchError aoti_torch_mps_dispatch_single(AOTIMetalKernelFunctionHandle func, uint64_t length) {
  return encode(__func__, func, [&](KernelFunction& k) { k.dispatch_single(length, std::nullopt); });
}

AOTITorchError aoti_torch_mps_dispatch_single_with_group_size(AOTIMetalKernelFunctionHandle func, uint64_t length,
                                                              uint64_t group_size) {
  return encode(__func__, func, [&](KernelFunction& k) { k.dispatch_single(length, group_size); });
}

AOTITorchError aoti_torch_mps_dispatch_array(AOTIMetalKernelFunctionHandle func, const uint64_t* length,
                                             size_t length_size) {
  return encode(__func__, func, [&](KernelFunction& k) { k.dispatch(length, length_size, nullptr, 0); });
}

AOTITorchError aoti_torch_mps_dispatch_array_with_group_size(AOTIMetalKernelFunctionHandle func, const uint64_t* length,
                                                             size_t length_size, const uint64_t* group_size,
                                                             size_t group_size_size) {
  return encode(__func__, func, [&](KernelFunction& k) {
    MPS_SHIM_CHECK_AS(DispatchError, group_size != nullptr, "null group_size array");
    k.dispatch(length, length_size, group_size, group_size_size);
  });
}

AOTITorchError aoti_torch_mps_malloc(void** buffer, size_t num_bytes) {
  return guard(__func__, [&] {
    abi::check_out(buffer, "buffer");
    *buffer = device_malloc(num_bytes);
  });
}

AOTITorchError aoti_torch_mps_free(void* ptr) {
  return guard(__func__, [&] { device_free(ptr); });
}

AOTITorchError aoti_torch_mps_memcpy(void* buffer, size_t constant_offset, size_t bytes_read, size_t data_size,
                                     uint8_t* constants_start) {
  return guard(__func__, [&] {
    if (data_size == 0) return;
    const Allocation a = find_allocation(buffer, "buffer");
    MPS_SHIM_CHECK(constant_offset <= a.size && data_size <= a.size - constant_offset, "copying ", data_size,
                   " bytes at offset ", constant_offset, " overruns the ", a.size, "-byte buffer");
    MPS_SHIM_CHECK(constants_start != nullptr, "null constants_start");
    backend().copy(a.base + constant_offset, constants_start + bytes_read, data_size, CopyKind::HostToDevice);
  });
}

AOTITorchError aoti_torch_mps_copy_buffer(void* src_buffer, void* dst_buffer, size_t data_size, size_t src_offset,
                                          size_t dst_offset) {
  return guard(__func__, [&] {
    if (data_size == 0) return;
    const Allocation src = find_allocation(src_buffer, "source buffer");
    const Allocation dst = find_allocation(dst_buffer, "destination buffer");
    MPS_SHIM_CHECK(src_offset <= src.size && data_size <= src.size - src_offset, "reading ", data_size,
                   " bytes at offset ", src_offset, " overruns the ", src.size, "-byte source buffer");
    MPS_SHIM_CHECK(dst_offset <= dst.size && data_size <= dst.size - dst_offset, "writing ", data_size,
                   " bytes at offset ", dst_offset, " overruns the ", dst.size, "-byte destination buffer");
    backend().copy(dst.base + dst_offset, src.base + src_offset, data_size, CopyKind::DeviceToDevice);
  });
}

void aoti_torch_mps_shared_callback(AOTIMetalKernelFunctionHandle func, void* user_data) {
  // Reports through the block (it returns no code): run_command_block fails.
  guard(__func__, [&] {
    MPS_SHIM_CHECK(user_data != nullptr, "null user_data: expected a std::function<void(AOTIMetalKernelFunctionHandle)>*");
    auto* fn = static_cast<std::function<void(AOTIMetalKernelFunctionHandle)>*>(user_data);
    MPS_SHIM_CHECK(static_cast<bool>(*fn), "empty std::function in user_data");
    (*fn)(func);
  });
}

AOTITorchError aoti_torch_mps_run_command_block(AOTIMetalKernelFunctionHandle func,
                                                aoti_torch_mps_command_block_callback_t callback, void* user_data) {
  return guard(__func__, [&] {
    kernel(func);  // validates the handle before anything runs
    MPS_SHIM_CHECK_AS(CommandBlockError, callback != nullptr, "null callback");
    CommandQueue::Block block;
    try {
      callback(func, user_data);
    } catch (...) {
      abi::record_exception("command block callback");
    }
    block.finish();
  });
}

}  // extern "C"
