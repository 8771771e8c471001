/*
 * mps_shim.h - the public C interface of libmps_shim.
 *
 * It declares PyTorch AOTInductor's MPS shim (aoti_torch_mps_*) and the generic
 * tensor subset that AOTInductor-generated code calls, with upstream's exact
 * names, signatures and integer codes, plus a few extensions named mps_shim_*.
 *
 * The header compiles as C99 and as C++17. Every AOTITorchError function
 * returns AOTI_TORCH_SUCCESS (0) or AOTI_TORCH_FAILURE (1); after a failure,
 * mps_shim_last_error() returns this thread's message, "[function] what went
 * wrong", and mps_shim_last_error_kind() its kind, one of MPS_SHIM_ERROR_*.
 *
 * Failures stick. AOTInductor-generated code ignores every return code, so each
 * failure is also recorded as the process's pending failure, unless one is
 * already pending: the first one since the slot was last cleared is kept.
 * mps_shim_synchronize() and mps_shim_take_pending_error() report it (return 1,
 * with its message and kind as this thread's last error) and clear it. A caller
 * that checks a return code itself still finds that failure pending at the next
 * synchronize, unless it calls mps_shim_mark_last_error_read() (Python's
 * bindings do, for every failure they raise).
 *
 * With the environment variable MPS_SHIM_ABORT_ON_ERROR set to a value other
 * than "" or "0", a failing call prints its message to stderr and aborts the
 * process instead of returning, for hosts that never check.
 *
 * Build-time note: build_ffi.py feeds the part between the two CDEF markers to
 * cffi, so that part holds plain declarations only (no macros, no #if).
 */
#ifndef MPS_SHIM_H
#define MPS_SHIM_H

#include <stddef.h>
#include <stdint.h>
#ifndef __cplusplus
#include <stdbool.h>
#endif

#if defined(__GNUC__)
#define AOTI_TORCH_EXPORT __attribute__((__visibility__("default")))
#else
#define AOTI_TORCH_EXPORT
#endif
#define MPS_SHIM_EXPORT AOTI_TORCH_EXPORT

#define AOTI_TORCH_SUCCESS 0
#define AOTI_TORCH_FAILURE 1

#ifdef __cplusplus
extern "C" {
#endif

/* CDEF-BEGIN */
typedef int32_t AOTITorchError;

/* Error kinds, returned by mps_shim_last_error_kind(). The values are stable. */
enum mps_shim_error_kind {
  MPS_SHIM_ERROR_NONE = 0,             /* no failure recorded on this thread */
  MPS_SHIM_ERROR_RUNTIME = 1,          /* a failure with no finer kind: tensor arguments, I/O... */
  MPS_SHIM_ERROR_INVALID_HANDLE = 2,   /* null, deleted or foreign handle or device buffer */
  MPS_SHIM_ERROR_ARGUMENT = 3,         /* a kernel argument bound badly: index, tensor vs value, size */
  MPS_SHIM_ERROR_COMPILE = 4,          /* Metal source did not compile; the message has the diagnostics */
  MPS_SHIM_ERROR_KERNEL_NOT_FOUND = 5, /* no kernel of that name in the library */
  MPS_SHIM_ERROR_DISPATCH = 6,         /* a dispatch rejected or stopped: grid, threadgroup size,
                                          unbound argument, earlier failure in the block, deadlock */
  MPS_SHIM_ERROR_COMMAND_BLOCK = 7,    /* run_command_block failed because a call inside it failed */
  MPS_SHIM_ERROR_OUT_OF_MEMORY = 8,    /* an allocation failed or exceeds the device's memory */
  MPS_SHIM_ERROR_OP = 9,               /* an ATen fallback op rejected its arguments */
  MPS_SHIM_ERROR_ENGINE = 10,          /* the engine could not run a kernel: an engine limit, a bad module */
  MPS_SHIM_ERROR_INTERNAL = 11,        /* an exception that is not mps_shim's own (a C++ callback's) */
  MPS_SHIM_ERROR_SIZE = 12,            /* a grid or threadgroup size out of range (a kind of dispatch error) */
  MPS_SHIM_ERROR_KERNEL_REPORTED = 13, /* a kernel reported an error in c10's error buffer (TORCH_REPORT_ERROR) */
  MPS_SHIM_ERROR_KERNEL_CHECK = 14     /* checked mode found problems in a dispatch (mps_shim_set_checked) */
};

typedef struct AtenTensorOpaque AtenTensorOpaque;
typedef AtenTensorOpaque* AtenTensorHandle;
typedef struct AOTIMetalShaderLibraryOpaque AOTIMetalShaderLibraryOpaque;
typedef AOTIMetalShaderLibraryOpaque* AOTIMetalShaderLibraryHandle;
typedef struct AOTIMetalKernelFunctionOpaque AOTIMetalKernelFunctionOpaque;
typedef AOTIMetalKernelFunctionOpaque* AOTIMetalKernelFunctionHandle;

/* ---- shader libraries and kernel functions (shim_mps.h) ---- */
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_create_shader_library(
    const char* metal_shader_source, AOTIMetalShaderLibraryHandle* library_handle);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_delete_shader_library(
    AOTIMetalShaderLibraryHandle library_handle);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_get_kernel_function(
    AOTIMetalShaderLibraryHandle library_handle, const char* kernel_name,
    AOTIMetalKernelFunctionHandle* function_handle);

MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_start_encoding(AOTIMetalKernelFunctionHandle func);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_set_arg_tensor(
    AOTIMetalKernelFunctionHandle func, unsigned idx, AtenTensorHandle tensor);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_set_arg_int(
    AOTIMetalKernelFunctionHandle func, unsigned idx, int64_t val);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_dispatch_single(
    AOTIMetalKernelFunctionHandle func, uint64_t length);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_dispatch_single_with_group_size(
    AOTIMetalKernelFunctionHandle func, uint64_t length, uint64_t group_size);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_dispatch_array(
    AOTIMetalKernelFunctionHandle func, const uint64_t* length, size_t length_size);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_dispatch_array_with_group_size(
    AOTIMetalKernelFunctionHandle func, const uint64_t* length, size_t length_size,
    const uint64_t* group_size, size_t group_size_size);

MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_malloc(void** buffer, size_t num_bytes);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_free(void* ptr);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_memcpy(
    void* buffer, size_t constant_offset, size_t bytes_read, size_t data_size,
    uint8_t* constants_start);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_copy_buffer(
    void* src_buffer, void* dst_buffer, size_t data_size, size_t src_offset, size_t dst_offset);

typedef void (*aoti_torch_mps_command_block_callback_t)(
    AOTIMetalKernelFunctionHandle func, void* user_data);
/* user_data must point at a std::function<void(AOTIMetalKernelFunctionHandle)>. */
MPS_SHIM_EXPORT void aoti_torch_mps_shared_callback(
    AOTIMetalKernelFunctionHandle func, void* user_data);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_mps_run_command_block(
    AOTIMetalKernelFunctionHandle func, aoti_torch_mps_command_block_callback_t callback,
    void* user_data);

/* ---- generic shim subset (shim.h) ---- */
MPS_SHIM_EXPORT int32_t aoti_torch_device_type_cpu(void);
MPS_SHIM_EXPORT int32_t aoti_torch_device_type_cuda(void);
MPS_SHIM_EXPORT int32_t aoti_torch_device_type_mps(void);

MPS_SHIM_EXPORT int32_t aoti_torch_dtype_bfloat16(void);
MPS_SHIM_EXPORT int32_t aoti_torch_dtype_float16(void);
MPS_SHIM_EXPORT int32_t aoti_torch_dtype_float32(void);
MPS_SHIM_EXPORT int32_t aoti_torch_dtype_float64(void);
MPS_SHIM_EXPORT int32_t aoti_torch_dtype_uint8(void);
MPS_SHIM_EXPORT int32_t aoti_torch_dtype_uint16(void);
MPS_SHIM_EXPORT int32_t aoti_torch_dtype_uint32(void);
MPS_SHIM_EXPORT int32_t aoti_torch_dtype_uint64(void);
MPS_SHIM_EXPORT int32_t aoti_torch_dtype_int8(void);
MPS_SHIM_EXPORT int32_t aoti_torch_dtype_int16(void);
MPS_SHIM_EXPORT int32_t aoti_torch_dtype_int32(void);
MPS_SHIM_EXPORT int32_t aoti_torch_dtype_int64(void);
MPS_SHIM_EXPORT int32_t aoti_torch_dtype_bool(void);
/* 0 for a dtype code this library does not know. */
MPS_SHIM_EXPORT size_t aoti_torch_dtype_element_size(int32_t dtype);
MPS_SHIM_EXPORT int32_t aoti_torch_layout_strided(void);

MPS_SHIM_EXPORT bool aoti_torch_grad_mode_is_enabled(void);
MPS_SHIM_EXPORT void aoti_torch_grad_mode_set_enabled(bool enabled);

MPS_SHIM_EXPORT AOTITorchError aoti_torch_empty_strided(
    int64_t ndim, const int64_t* sizes_ptr, const int64_t* strides_ptr, int32_t dtype,
    int32_t device_type, int32_t device_index, AtenTensorHandle* ret_new_tensor);
/* The tensor borrows data: the caller keeps it alive for the tensor's life. */
MPS_SHIM_EXPORT AOTITorchError aoti_torch_create_tensor_from_blob(
    void* data, int64_t ndim, const int64_t* sizes_ptr, const int64_t* strides_ptr,
    int64_t storage_offset, int32_t dtype, int32_t device_type, int32_t device_index,
    AtenTensorHandle* ret);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_create_tensor_from_blob_v2(
    void* data, int64_t ndim, const int64_t* sizes_ptr, const int64_t* strides_ptr,
    int64_t storage_offset, int32_t dtype, int32_t device_type, int32_t device_index,
    AtenTensorHandle* ret, int32_t layout, const uint8_t* opaque_metadata,
    int64_t opaque_metadata_size);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_delete_tensor_object(AtenTensorHandle tensor);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_new_tensor_handle(
    AtenTensorHandle orig_handle, AtenTensorHandle* new_handle);
MPS_SHIM_EXPORT AOTITorchError aoti_torch__reinterpret_tensor(
    AtenTensorHandle self, int64_t ndim, const int64_t* sizes_ptr, const int64_t* strides_ptr,
    int64_t storage_offset, AtenTensorHandle* ret_new_tensor);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_as_strided(
    AtenTensorHandle self, const int64_t* sizes_ptr, const int64_t* strides_ptr,
    AtenTensorHandle* ret);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_clone(AtenTensorHandle self, AtenTensorHandle* ret);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_clone_preserve_strides(
    AtenTensorHandle self, AtenTensorHandle* ret);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_copy_(
    AtenTensorHandle self, AtenTensorHandle src, int32_t non_blocking);

MPS_SHIM_EXPORT AOTITorchError aoti_torch_get_data_ptr(AtenTensorHandle tensor, void** ret_data_ptr);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_get_sizes(AtenTensorHandle tensor, int64_t** ret_sizes);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_get_strides(AtenTensorHandle tensor, int64_t** ret_strides);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_get_size(AtenTensorHandle tensor, int64_t d, int64_t* ret_size);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_get_stride(AtenTensorHandle tensor, int64_t d, int64_t* ret_stride);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_get_dim(AtenTensorHandle tensor, int64_t* ret_dim);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_get_numel(AtenTensorHandle tensor, int64_t* ret_numel);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_get_storage_offset(
    AtenTensorHandle tensor, int64_t* ret_storage_offset);
/* In bytes, as upstream. */
MPS_SHIM_EXPORT AOTITorchError aoti_torch_get_storage_size(AtenTensorHandle tensor, int64_t* ret_size);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_get_dtype(AtenTensorHandle tensor, int32_t* ret_dtype);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_get_device_type(AtenTensorHandle tensor, int32_t* ret_device_type);
MPS_SHIM_EXPORT AOTITorchError aoti_torch_get_device_index(AtenTensorHandle tensor, int32_t* ret_device_index);

/* aoti_torch_warn logs to stderr. aoti_torch_check throws std::runtime_error when cond is false,
 * as upstream throws c10::Error (C++ callers only: generated wrappers catch std::exception). */
MPS_SHIM_EXPORT void aoti_torch_warn(const char* func, const char* file, uint32_t line, const char* msg);
MPS_SHIM_EXPORT void aoti_torch_check(
    bool cond, const char* func, const char* file, uint32_t line, const char* msg);

/* ---- mps_shim extensions ---- */
/* This thread's last error message; "" if none. Valid until this thread's next call. */
MPS_SHIM_EXPORT const char* mps_shim_last_error(void);
/* The kind of this thread's last error: an MPS_SHIM_ERROR_* code (MPS_SHIM_ERROR_NONE if none). */
MPS_SHIM_EXPORT int32_t mps_shim_last_error_kind(void);
/* Waits until all dispatched work has completed, then reports the pending failure: returns 1 if
 * one is pending, moving its message and kind into this thread's last error and clearing it;
 * returns 0 if none is. */
MPS_SHIM_EXPORT AOTITorchError mps_shim_synchronize(void);
/* As mps_shim_synchronize, without waiting. */
MPS_SHIM_EXPORT AOTITorchError mps_shim_take_pending_error(void);
/* Marks this thread's last error as read: if it is the pending failure, the slot is cleared, so a
 * failure the caller has already handled is not reported again by mps_shim_synchronize. */
MPS_SHIM_EXPORT void mps_shim_mark_last_error_read(void);
/* The backend MPS_SHIM_BACKEND selects: "host" (the default), later "cuda" or "metal". "" on error. */
MPS_SHIM_EXPORT const char* mps_shim_backend_name(void);
/* 1 when device memory (mps tensors, aoti_torch_mps_malloc) is host memory a host pointer can
 * read (the host backend), 0 when it lives on a device (cuda), -1 on error. */
MPS_SHIM_EXPORT int32_t mps_shim_device_memory_is_host(void);
/* Compiles source (with n_include_dirs folders for #include) for `backend_name` without running
 * it, where that backend can do so without its device ("cuda": NVRTC, for MPS_SHIM_CUDA_ARCH,
 * default compute_90: PTX, without ptxas). Fails with kind MPS_SHIM_ERROR_COMPILE where it does not compile, ENGINE where
 * the backend has no such check or lacks its compiler here. Setting MPS_SHIM_COMPILE_CHECK=cuda
 * runs this check on every library created. */
MPS_SHIM_EXPORT AOTITorchError mps_shim_compile_check(const char* backend_name, const char* source,
                                                      const char* const* include_dirs, size_t n_include_dirs);
/* Copies nbytes between host memory and device memory (an mps tensor's data, a malloc'd buffer)
 * after the device's earlier work: to the device, or from it. */
MPS_SHIM_EXPORT AOTITorchError mps_shim_copy_to_device(void* device_dst, const void* host_src, size_t nbytes);
MPS_SHIM_EXPORT AOTITorchError mps_shim_copy_from_device(void* host_dst, const void* device_src, size_t nbytes);
/* As Metal's setBytes: binds nbytes (1..4096) copied from data to a parameter the kernel only
 * reads (constant T& or T*, device const T& or T*); at least one value of the parameter's type. */
MPS_SHIM_EXPORT AOTITorchError mps_shim_set_arg_bytes(
    AOTIMetalKernelFunctionHandle func, unsigned idx, const void* data, size_t nbytes);
/* As aoti_torch_mps_create_shader_library, with folders that #include searches (after Metal's
 * headers, before those of MPS_SHIM_INCLUDE_PATH, a colon-separated list read at every library
 * creation, whose missing folders are skipped). A folder given here must exist. */
MPS_SHIM_EXPORT AOTITorchError mps_shim_create_shader_library_with_includes(
    const char* source, const char* const* include_dirs, size_t num_include_dirs,
    AOTIMetalShaderLibraryHandle* library_handle);
/* Binds the runtime's error buffer, a c10::metal::ErrorMessages (c10/metal/error.h), at idx. After
 * each dispatch of this function the runtime reads it: an error a kernel reported there with
 * TORCH_REPORT_ERROR fails the dispatch, and so the command block, with the kernel's message
 * (kind MPS_SHIM_ERROR_KERNEL_REPORTED), and the buffer is emptied. */
MPS_SHIM_EXPORT AOTITorchError mps_shim_set_arg_error_buffer(AOTIMetalKernelFunctionHandle func, unsigned idx);
/* Metal's setThreadgroupMemoryLength: the bytes (a multiple of 16) of the kernel's
 * `threadgroup T* p [[threadgroup(idx)]]` parameter, for the dispatches after it until the next
 * start_encoding. Every such parameter needs one; with the kernel's own threadgroup arrays they
 * may total 32 KiB. Each threadgroup gets its own memory, uninitialised, as on the GPU. As Metal,
 * a length at an index (0..30) the kernel has no parameter for is accepted and unused. */
MPS_SHIM_EXPORT AOTITorchError mps_shim_set_threadgroup_memory_length(
    AOTIMetalKernelFunctionHandle func, unsigned idx, size_t nbytes);
/* JSON describing the library: {"kernels": [...], "function_constants": [...]}. Each kernel has the
 * kernel record's fields (mps_shim_kernel_schema.h) with its "params", "compiled" and the names of the
 * "function_constants" it may read; a kernel not compiled yet is described by the front end (parameter
 * sizes 0; "execution" "undecided" where lane loops or fibers is decided when it compiles). Each function
 * constant has "name", "type", "data_type" (MPS_SHIM_DATA_TYPE_*), "size", "index", "line" and
 * "required" (not tested by is_function_constant_defined anywhere). Owned by the library, valid until
 * its next kernel compiles (get_kernel_function, mps_shim_compile_all) or it is deleted. NULL on error. */
MPS_SHIM_EXPORT const char* mps_shim_library_describe(AOTIMetalShaderLibraryHandle library_handle);
/* When a library's kernels compile (mps_shim_library_options.compile). */
enum mps_shim_compile_mode {
  MPS_SHIM_COMPILE_AUTO = 0,  /* MPS_SHIM_EAGER=1 / =0 if set, else EAGER for a library of at most 64 kernels
                                 (compile errors surface at creation, as upstream) and LAZY above */
  MPS_SHIM_COMPILE_EAGER = 1, /* every kernel at creation */
  MPS_SHIM_COMPILE_LAZY = 2   /* creation preprocesses and parses the source and lists its kernels; each
                                 kernel compiles at its first get_kernel_function (errors only the C++
                                 compiler finds surface there) */
};
typedef struct mps_shim_library_options {
  const char* const* include_dirs; /* folders #include searches, as for ..._with_includes; may be NULL */
  size_t num_include_dirs;
  int32_t compile;                 /* an mps_shim_compile_mode */
} mps_shim_library_options;
/* As aoti_torch_mps_create_shader_library, with options (NULL: the defaults, all zero). */
MPS_SHIM_EXPORT AOTITorchError mps_shim_create_shader_library_with_options(
    const char* source, const mps_shim_library_options* options, AOTIMetalShaderLibraryHandle* library_handle);
/* Compiles every kernel of the library not compiled yet (their default specialisations), the work
 * spread over the worker threads (MPS_SHIM_NUM_THREADS); a compile error fails it. */
MPS_SHIM_EXPORT AOTITorchError mps_shim_compile_all(AOTIMetalShaderLibraryHandle library_handle);

/* The types of function-constant values: the codes of Metal's MTLDataType. */
enum mps_shim_data_type {
  MPS_SHIM_DATA_TYPE_NONE = 0, /* the constant's declared type */
  MPS_SHIM_DATA_TYPE_FLOAT = 3, MPS_SHIM_DATA_TYPE_FLOAT2 = 4,
  MPS_SHIM_DATA_TYPE_FLOAT3 = 5, MPS_SHIM_DATA_TYPE_FLOAT4 = 6,
  MPS_SHIM_DATA_TYPE_HALF = 16, MPS_SHIM_DATA_TYPE_HALF2 = 17,
  MPS_SHIM_DATA_TYPE_HALF3 = 18, MPS_SHIM_DATA_TYPE_HALF4 = 19,
  MPS_SHIM_DATA_TYPE_INT = 29, MPS_SHIM_DATA_TYPE_INT2 = 30,
  MPS_SHIM_DATA_TYPE_INT3 = 31, MPS_SHIM_DATA_TYPE_INT4 = 32,
  MPS_SHIM_DATA_TYPE_UINT = 33, MPS_SHIM_DATA_TYPE_UINT2 = 34,
  MPS_SHIM_DATA_TYPE_UINT3 = 35, MPS_SHIM_DATA_TYPE_UINT4 = 36,
  MPS_SHIM_DATA_TYPE_SHORT = 37, MPS_SHIM_DATA_TYPE_SHORT2 = 38,
  MPS_SHIM_DATA_TYPE_SHORT3 = 39, MPS_SHIM_DATA_TYPE_SHORT4 = 40,
  MPS_SHIM_DATA_TYPE_USHORT = 41, MPS_SHIM_DATA_TYPE_USHORT2 = 42,
  MPS_SHIM_DATA_TYPE_USHORT3 = 43, MPS_SHIM_DATA_TYPE_USHORT4 = 44,
  MPS_SHIM_DATA_TYPE_CHAR = 45, MPS_SHIM_DATA_TYPE_CHAR2 = 46,
  MPS_SHIM_DATA_TYPE_CHAR3 = 47, MPS_SHIM_DATA_TYPE_CHAR4 = 48,
  MPS_SHIM_DATA_TYPE_UCHAR = 49, MPS_SHIM_DATA_TYPE_UCHAR2 = 50,
  MPS_SHIM_DATA_TYPE_UCHAR3 = 51, MPS_SHIM_DATA_TYPE_UCHAR4 = 52,
  MPS_SHIM_DATA_TYPE_BOOL = 53, MPS_SHIM_DATA_TYPE_BOOL2 = 54,
  MPS_SHIM_DATA_TYPE_BOOL3 = 55, MPS_SHIM_DATA_TYPE_BOOL4 = 56,
  MPS_SHIM_DATA_TYPE_LONG = 81, MPS_SHIM_DATA_TYPE_LONG2 = 82,
  MPS_SHIM_DATA_TYPE_LONG3 = 83, MPS_SHIM_DATA_TYPE_LONG4 = 84,
  MPS_SHIM_DATA_TYPE_ULONG = 85, MPS_SHIM_DATA_TYPE_ULONG2 = 86,
  MPS_SHIM_DATA_TYPE_ULONG3 = 87, MPS_SHIM_DATA_TYPE_ULONG4 = 88,
  MPS_SHIM_DATA_TYPE_BFLOAT = 121, MPS_SHIM_DATA_TYPE_BFLOAT2 = 122,
  MPS_SHIM_DATA_TYPE_BFLOAT3 = 123, MPS_SHIM_DATA_TYPE_BFLOAT4 = 124
};
/* A function constant's value, as MTLFunctionConstantValues sets one. */
typedef struct mps_shim_function_constant {
  const char* name;   /* the constant's name; NULL: it is the one declared [[function_constant(index)]] */
  uint32_t index;
  uint32_t type;      /* an mps_shim_data_type: the declared type, or NONE */
  const void* value;  /* the value: bool 1 byte, then the type's scalars in order (a 3-vector 3 of them) */
  size_t size;        /* bytes at value: the type's size */
} mps_shim_function_constant;
/* As aoti_torch_mps_get_kernel_function, specialised with function-constant values (Metal's
 * newFunctionWithName:constantValues:). Each specialisation is a kernel function of its own, compiled
 * once and cached apart (in the library and on disk); the same values give the same handle, and no
 * values the same as aoti_torch_mps_get_kernel_function. A constant without a value is undefined:
 * is_function_constant_defined is false and it reads as zero (Metal leaves the value undefined). Fails
 * (MPS_SHIM_ERROR_ARGUMENT) for a name or index the library does not declare (Metal ignores values for
 * constants a function lacks; a constant of the library that the kernel does not read is accepted here
 * too, but a name no declaration has is taken for a mistake), a type other than the declared one, a
 * size other than the type's, a constant given twice, and a constant the kernel reads that has no value
 * and that the library never tests with is_function_constant_defined (Metal's required constants). */
MPS_SHIM_EXPORT AOTITorchError mps_shim_get_kernel_function_with_constants(
    AOTIMetalShaderLibraryHandle library_handle, const char* kernel_name, const mps_shim_function_constant* constants,
    size_t num_constants, AOTIMetalKernelFunctionHandle* function_handle);
/* JSON describing one kernel function, as an entry of mps_shim_library_describe (compiled), plus its
 * specialisation's "constants" ({name: value as text}); owned by the function. NULL on error. */
MPS_SHIM_EXPORT const char* mps_shim_kernel_function_describe(AOTIMetalKernelFunctionHandle func);
/* JSON: version, the registered backends ({"name": "available" or why not}), the selected backend, its
 * compiler, cache folder, worker threads. Static storage; NULL on error (an unknown MPS_SHIM_BACKEND). */
MPS_SHIM_EXPORT const char* mps_shim_runtime_info(void);
/* Checked mode: Metal kernel sanitizers (memcheck, racecheck, initcheck, synccheck). A library created
 * while it is on compiles checked kernels (cached apart from normal ones; every kernel runs one fiber per
 * thread, slower). A dispatch of a checked kernel whose threads did something wrong fails (kind
 * MPS_SHIM_ERROR_KERNEL_CHECK) with a message listing the problems (kernel, Metal source line, thread,
 * buffer and byte offset...), deduplicated by line and kind, the first MPS_SHIM_CHECKED_MAX_REPORTS
 * (default 10); with WARN the dispatch succeeds and they are printed to stderr. The default is
 * MPS_SHIM_CHECKED (1: ON, warn: WARN, unset or 0: OFF). */
enum mps_shim_checked_mode {
  MPS_SHIM_CHECKED_OFF = 0,
  MPS_SHIM_CHECKED_ON = 1,
  MPS_SHIM_CHECKED_WARN = 2
};
/* Sets the mode (an mps_shim_checked_mode) for libraries created from now on and for the handling of
 * later dispatches' reports; returns the previous mode, or -1 for an unknown mode. */
MPS_SHIM_EXPORT int32_t mps_shim_set_checked(int32_t mode);
MPS_SHIM_EXPORT int32_t mps_shim_checked_mode(void);
/* The reports of checked dispatches since the last call (at most 1000), as a JSON list of objects; they
 * are cleared. Valid until this thread's next call of it. */
MPS_SHIM_EXPORT const char* mps_shim_take_check_reports(void);
/* CDEF-END */

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MPS_SHIM_H */
