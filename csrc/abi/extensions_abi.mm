// mps_shim_*: our extensions beside the upstream ABI.
#include "abi/guard.h"
#include "runtime/backend_registry.h"
#include "runtime/checks.h"
#include "runtime/command_queue.h"
#include "util/error.h"
#include "version.h"

#include <mutex>
#include <string>
#include <vector>

using namespace mps_shim;
using mps_shim::abi::guard;

static_assert(int(kernel_checks::Mode::Off) == MPS_SHIM_CHECKED_OFF && int(kernel_checks::Mode::On) == MPS_SHIM_CHECKED_ON &&
              int(kernel_checks::Mode::WarnOnly) == MPS_SHIM_CHECKED_WARN);
static_assert(int(CompileMode::Auto) == MPS_SHIM_COMPILE_AUTO && int(CompileMode::Eager) == MPS_SHIM_COMPILE_EAGER &&
              int(CompileMode::Lazy) == MPS_SHIM_COMPILE_LAZY);

namespace {

std::vector<std::string> include_folders(const char* const* include_dirs, size_t num_include_dirs) {
  MPS_SHIM_CHECK(include_dirs != nullptr || num_include_dirs == 0, "null include_dirs with num_include_dirs ",
                 num_include_dirs);
  std::vector<std::string> dirs;
  for (size_t i = 0; i < num_include_dirs; ++i) {
    MPS_SHIM_CHECK(include_dirs[i] != nullptr, "include_dirs[", i, "] is null");
    dirs.emplace_back(include_dirs[i]);
  }
  return dirs;
}

}  // namespace

extern "C" {

const char* mps_shim_last_error(void) { return abi::last_error_message(); }
int32_t mps_shim_last_error_kind(void) { return abi::last_error_kind(); }

AOTITorchError mps_shim_take_pending_error(void) {
  return abi::take_pending_error() ? AOTI_TORCH_FAILURE : AOTI_TORCH_SUCCESS;
}

// A failure while waiting becomes the pending one unless an earlier one is pending.
AOTITorchError mps_shim_synchronize(void) {
  guard(__func__, [] { backend().synchronize(); });
  return mps_shim_take_pending_error();
}

void mps_shim_mark_last_error_read(void) { abi::mark_last_error_read(); }

const char* mps_shim_backend_name(void) {
  const char* name = "";
  guard(__func__, [&] { name = backend().name(); });
  return name;
}

int32_t mps_shim_device_memory_is_host(void) {
  int32_t is_host = -1;
  guard(__func__, [&] { is_host = backend().host_addressable() ? 1 : 0; });
  return is_host;
}

AOTITorchError mps_shim_compile_check(const char* backend_name, const char* source, const char* const* include_dirs,
                                      size_t n_include_dirs) {
  return guard(__func__, [&] {
    MPS_SHIM_CHECK_AS(ArgumentError, backend_name && source, "null backend name or source");
    MPS_SHIM_CHECK_AS(ArgumentError, n_include_dirs == 0 || include_dirs, "null include_dirs");
    std::vector<std::string> dirs;
    for (size_t i = 0; i < n_include_dirs; ++i) {
      MPS_SHIM_CHECK_AS(ArgumentError, include_dirs[i], "include_dirs[", i, "] is null");
      dirs.push_back(include_dirs[i]);
    }
    compile_check(backend_name, source, resolve_compile_options(dirs));
  });
}

AOTITorchError mps_shim_copy_to_device(void* device_dst, const void* host_src, size_t nbytes) {
  return guard(__func__, [&] {
    if (nbytes == 0) return;
    MPS_SHIM_CHECK_AS(ArgumentError, device_dst && host_src, "null pointer");
    backend().copy(device_dst, host_src, nbytes, CopyKind::HostToDevice);
  });
}

AOTITorchError mps_shim_copy_from_device(void* host_dst, const void* device_src, size_t nbytes) {
  return guard(__func__, [&] {
    if (nbytes == 0) return;
    MPS_SHIM_CHECK_AS(ArgumentError, host_dst && device_src, "null pointer");
    backend().copy(host_dst, device_src, nbytes, CopyKind::DeviceToHost);
  });
}

AOTITorchError mps_shim_set_arg_bytes(AOTIMetalKernelFunctionHandle func, unsigned idx, const void* data, size_t nbytes) {
  return guard(__func__, [&] {
    std::lock_guard<std::recursive_mutex> lock(CommandQueue::mutex());
    abi::kernel_functions().get(func)->set_bytes(idx, data, nbytes);
  });
}

AOTITorchError mps_shim_create_shader_library_with_includes(const char* source, const char* const* include_dirs,
                                                            size_t num_include_dirs,
                                                            AOTIMetalShaderLibraryHandle* library_handle) {
  return guard(__func__,
               [&] { abi::create_library(source, include_folders(include_dirs, num_include_dirs), library_handle); });
}

AOTITorchError mps_shim_create_shader_library_with_options(const char* source, const mps_shim_library_options* options,
                                                          AOTIMetalShaderLibraryHandle* library_handle) {
  return guard(__func__, [&] {
    const mps_shim_library_options none{};
    const mps_shim_library_options& o = options ? *options : none;
    MPS_SHIM_CHECK(o.compile >= MPS_SHIM_COMPILE_AUTO && o.compile <= MPS_SHIM_COMPILE_LAZY,
                   "unknown compile mode ", o.compile, " (MPS_SHIM_COMPILE_AUTO, _EAGER or _LAZY)");
    abi::create_library(source, include_folders(o.include_dirs, o.num_include_dirs), library_handle,
                        CompileMode(o.compile));
  });
}

AOTITorchError mps_shim_compile_all(AOTIMetalShaderLibraryHandle library_handle) {
  return guard(__func__, [&] { abi::libraries().get(library_handle)->compile_all(); });
}

AOTITorchError mps_shim_get_kernel_function_with_constants(AOTIMetalShaderLibraryHandle library_handle,
                                                          const char* kernel_name,
                                                          const mps_shim_function_constant* constants,
                                                          size_t num_constants,
                                                          AOTIMetalKernelFunctionHandle* function_handle) {
  return guard(__func__, [&] {
    MPS_SHIM_CHECK(constants != nullptr || num_constants == 0, "null constants with num_constants ", num_constants);
    std::vector<ConstantSetting> settings;
    for (size_t i = 0; i < num_constants; ++i) {
      const mps_shim_function_constant& c = constants[i];
      MPS_SHIM_CHECK_AS(ArgumentError, c.value != nullptr || c.size == 0, "constants[", i, "]: null value");
      settings.push_back({c.name ? c.name : "", c.index, c.type,
                          std::string(static_cast<const char*>(c.value), c.value ? c.size : 0)});
      MPS_SHIM_CHECK_AS(ArgumentError, !c.name || *c.name, "constants[", i, "]: an empty name (NULL selects by index)");
    }
    abi::get_function(library_handle, kernel_name, settings, function_handle);
  });
}

const char* mps_shim_kernel_function_describe(AOTIMetalKernelFunctionHandle func) {
  const char* out = nullptr;
  guard(__func__, [&] { out = abi::kernel_functions().get(func)->describe_json().c_str(); });
  return out;
}

AOTITorchError mps_shim_set_arg_error_buffer(AOTIMetalKernelFunctionHandle func, unsigned idx) {
  return guard(__func__, [&] {
    std::lock_guard<std::recursive_mutex> lock(CommandQueue::mutex());
    abi::kernel_functions().get(func)->set_error_buffer(idx);
  });
}

AOTITorchError mps_shim_set_threadgroup_memory_length(AOTIMetalKernelFunctionHandle func, unsigned idx, size_t nbytes) {
  return guard(__func__, [&] {
    std::lock_guard<std::recursive_mutex> lock(CommandQueue::mutex());
    abi::kernel_functions().get(func)->set_threadgroup_memory_length(idx, nbytes);
  });
}

const char* mps_shim_library_describe(AOTIMetalShaderLibraryHandle library_handle) {
  const char* out = nullptr;
  guard(__func__, [&] { out = abi::libraries().get(library_handle)->describe_json().c_str(); });
  return out;
}

const char* mps_shim_runtime_info(void) {
  static std::mutex m;
  static std::string info;  // kept once it is complete; a failed backend selection is reported at every call
  std::lock_guard<std::mutex> lock(m);
  if (info.empty()) {
    std::string s;
    guard(__func__, [&] {
      s = concat("{\"version\": \"", MPS_SHIM_VERSION, "\", ", backends_json(), ", \"backend\": \"", backend().name(),
                 "\", ", backend().info_json(), "}");
    });
    info = s;
  }
  return info.empty() ? nullptr : info.c_str();
}

int32_t mps_shim_set_checked(int32_t mode) {
  if (mode < MPS_SHIM_CHECKED_OFF || mode > MPS_SHIM_CHECKED_WARN) return -1;
  return int32_t(kernel_checks::set_mode(kernel_checks::Mode(mode)));
}

int32_t mps_shim_checked_mode(void) { return int32_t(kernel_checks::mode()); }

const char* mps_shim_take_check_reports(void) {
  static thread_local std::string json;
  guard(__func__, [&] { json = kernel_checks::take_reports_json(); });
  return json.c_str();
}

}  // extern "C"
