// header_cxx_test.cpp - mps_shim.h must compile on its own as C++17, and declare
// upstream's exact types and signatures (torch/csrc/inductor/aoti_torch/c/shim_mps.h
// and shim.h). Compile only: c++ -std=c++17 -Wall -Wextra -Werror -c header_cxx_test.cpp
#include "mps_shim.h"
#include "mps_shim_aten.h"  // first: the header must not lean on anything included before it

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace {

template <typename A, typename B>
constexpr bool same = std::is_same<A, B>::value;

// Codes and the error type.
static_assert(same<AOTITorchError, int32_t>, "AOTITorchError is int32_t");
static_assert(AOTI_TORCH_SUCCESS == 0 && AOTI_TORCH_FAILURE == 1, "error codes");

// Handles are pointers to distinct incomplete structs.
static_assert(same<AtenTensorHandle, AtenTensorOpaque*>, "tensor handle");
static_assert(same<AOTIMetalShaderLibraryHandle, AOTIMetalShaderLibraryOpaque*>, "library handle");
static_assert(same<AOTIMetalKernelFunctionHandle, AOTIMetalKernelFunctionOpaque*>, "kernel function handle");
static_assert(!same<AtenTensorHandle, AOTIMetalKernelFunctionHandle>, "handles are distinct types");
static_assert(!same<AOTIMetalShaderLibraryHandle, AOTIMetalKernelFunctionHandle>, "handles are distinct types");

using Lib = AOTIMetalShaderLibraryHandle;
using Fn = AOTIMetalKernelFunctionHandle;
using T = AtenTensorHandle;
using E = AOTITorchError;

#define SIGNATURE(name, type) static_assert(same<decltype(&name), type>, #name " has upstream's signature")

// shim_mps.h
SIGNATURE(aoti_torch_mps_create_shader_library, E (*)(const char*, Lib*));
SIGNATURE(aoti_torch_mps_delete_shader_library, E (*)(Lib));
SIGNATURE(aoti_torch_mps_get_kernel_function, E (*)(Lib, const char*, Fn*));
SIGNATURE(aoti_torch_mps_start_encoding, E (*)(Fn));
SIGNATURE(aoti_torch_mps_set_arg_tensor, E (*)(Fn, unsigned, T));
SIGNATURE(aoti_torch_mps_set_arg_int, E (*)(Fn, unsigned, int64_t));
SIGNATURE(aoti_torch_mps_dispatch_single, E (*)(Fn, uint64_t));
SIGNATURE(aoti_torch_mps_dispatch_single_with_group_size, E (*)(Fn, uint64_t, uint64_t));
SIGNATURE(aoti_torch_mps_dispatch_array, E (*)(Fn, const uint64_t*, size_t));
SIGNATURE(aoti_torch_mps_dispatch_array_with_group_size, E (*)(Fn, const uint64_t*, size_t, const uint64_t*, size_t));
SIGNATURE(aoti_torch_mps_malloc, E (*)(void**, size_t));
SIGNATURE(aoti_torch_mps_free, E (*)(void*));
SIGNATURE(aoti_torch_mps_memcpy, E (*)(void*, size_t, size_t, size_t, uint8_t*));
SIGNATURE(aoti_torch_mps_copy_buffer, E (*)(void*, void*, size_t, size_t, size_t));
static_assert(same<aoti_torch_mps_command_block_callback_t, void (*)(Fn, void*)>, "callback type");
SIGNATURE(aoti_torch_mps_shared_callback, void (*)(Fn, void*));
SIGNATURE(aoti_torch_mps_run_command_block, E (*)(Fn, aoti_torch_mps_command_block_callback_t, void*));
// The shared callback is itself a valid command-block callback.
static_assert(std::is_convertible<decltype(&aoti_torch_mps_shared_callback), aoti_torch_mps_command_block_callback_t>::value,
              "shared_callback fits run_command_block");

// shim.h subset
SIGNATURE(aoti_torch_device_type_cpu, int32_t (*)());
SIGNATURE(aoti_torch_device_type_cuda, int32_t (*)());
SIGNATURE(aoti_torch_device_type_mps, int32_t (*)());
SIGNATURE(aoti_torch_dtype_bfloat16, int32_t (*)());
SIGNATURE(aoti_torch_dtype_float16, int32_t (*)());
SIGNATURE(aoti_torch_dtype_float32, int32_t (*)());
SIGNATURE(aoti_torch_dtype_float64, int32_t (*)());
SIGNATURE(aoti_torch_dtype_uint8, int32_t (*)());
SIGNATURE(aoti_torch_dtype_uint16, int32_t (*)());
SIGNATURE(aoti_torch_dtype_uint32, int32_t (*)());
SIGNATURE(aoti_torch_dtype_uint64, int32_t (*)());
SIGNATURE(aoti_torch_dtype_int8, int32_t (*)());
SIGNATURE(aoti_torch_dtype_int16, int32_t (*)());
SIGNATURE(aoti_torch_dtype_int32, int32_t (*)());
SIGNATURE(aoti_torch_dtype_int64, int32_t (*)());
SIGNATURE(aoti_torch_dtype_bool, int32_t (*)());
SIGNATURE(aoti_torch_dtype_element_size, size_t (*)(int32_t));
SIGNATURE(aoti_torch_layout_strided, int32_t (*)());
SIGNATURE(aoti_torch_grad_mode_is_enabled, bool (*)());
SIGNATURE(aoti_torch_grad_mode_set_enabled, void (*)(bool));
SIGNATURE(aoti_torch_empty_strided, E (*)(int64_t, const int64_t*, const int64_t*, int32_t, int32_t, int32_t, T*));
SIGNATURE(aoti_torch_create_tensor_from_blob,
          E (*)(void*, int64_t, const int64_t*, const int64_t*, int64_t, int32_t, int32_t, int32_t, T*));
SIGNATURE(aoti_torch_create_tensor_from_blob_v2,
          E (*)(void*, int64_t, const int64_t*, const int64_t*, int64_t, int32_t, int32_t, int32_t, T*, int32_t,
                const uint8_t*, int64_t));
SIGNATURE(aoti_torch_delete_tensor_object, E (*)(T));
SIGNATURE(aoti_torch_new_tensor_handle, E (*)(T, T*));
SIGNATURE(aoti_torch__reinterpret_tensor, E (*)(T, int64_t, const int64_t*, const int64_t*, int64_t, T*));
SIGNATURE(aoti_torch_as_strided, E (*)(T, const int64_t*, const int64_t*, T*));
SIGNATURE(aoti_torch_clone, E (*)(T, T*));
SIGNATURE(aoti_torch_clone_preserve_strides, E (*)(T, T*));
SIGNATURE(aoti_torch_copy_, E (*)(T, T, int32_t));
SIGNATURE(aoti_torch_get_data_ptr, E (*)(T, void**));
SIGNATURE(aoti_torch_get_sizes, E (*)(T, int64_t**));
SIGNATURE(aoti_torch_get_strides, E (*)(T, int64_t**));
SIGNATURE(aoti_torch_get_size, E (*)(T, int64_t, int64_t*));
SIGNATURE(aoti_torch_get_stride, E (*)(T, int64_t, int64_t*));
SIGNATURE(aoti_torch_get_dim, E (*)(T, int64_t*));
SIGNATURE(aoti_torch_get_numel, E (*)(T, int64_t*));
SIGNATURE(aoti_torch_get_storage_offset, E (*)(T, int64_t*));
SIGNATURE(aoti_torch_get_storage_size, E (*)(T, int64_t*));
SIGNATURE(aoti_torch_get_dtype, E (*)(T, int32_t*));
SIGNATURE(aoti_torch_get_device_type, E (*)(T, int32_t*));
SIGNATURE(aoti_torch_get_device_index, E (*)(T, int32_t*));
SIGNATURE(aoti_torch_warn, void (*)(const char*, const char*, uint32_t, const char*));
SIGNATURE(aoti_torch_check, void (*)(bool, const char*, const char*, uint32_t, const char*));

// mps_shim extensions
SIGNATURE(mps_shim_last_error, const char* (*)());
SIGNATURE(mps_shim_synchronize, E (*)());
SIGNATURE(mps_shim_backend_name, const char* (*)());
SIGNATURE(mps_shim_set_arg_bytes, E (*)(Fn, unsigned, const void*, size_t));
SIGNATURE(mps_shim_library_describe, const char* (*)(Lib));
SIGNATURE(mps_shim_runtime_info, const char* (*)());

#undef SIGNATURE

}  // namespace

// The declarations have C linkage: a C++ definition with the same name and
// parameters would clash rather than overload; this only needs to compile.
extern "C" AOTITorchError aoti_torch_mps_start_encoding(AOTIMetalKernelFunctionHandle func);
