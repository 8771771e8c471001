#include "backends/cuda/cuda_api.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <vector>

#include "util/error.h"

namespace mps_shim::cuda {

namespace {

// The first library of `names` that loads (MPS_SHIM_NVRTC / a name on the
// loader's path), or null with the loader's last message in `why`.
void* open_first(const std::vector<std::string>& names, std::string& why) {
  for (const std::string& n : names) {
    if (n.empty()) continue;
    if (void* h = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL)) return h;
    const char* e = dlerror();
    why = e ? e : n + " did not load";
  }
  return nullptr;
}

template <typename Api, typename Fill>
const Api* load_once(std::once_flag& once, Api& api, std::string& reason, bool& ok, Fill fill, std::string* why) {
  std::call_once(once, [&] { ok = fill(api, reason); });
  if (!ok && why) *why = reason;
  return ok ? &api : nullptr;
}

// Binds each `field` of `api` to the symbol `name` (or `name` + suffix `_v2`).
#define MPS_CUDA_BIND(handle, api, field, name, missing)                                     \
  do {                                                                                        \
    *reinterpret_cast<void**>(&(api).field) = dlsym(handle, name);                            \
    if (!(api).field) missing += std::string(missing.empty() ? "" : ", ") + name;            \
  } while (0)

bool load_driver(DriverApi& api, std::string& why) {
  void* h = open_first({"libcuda.so.1", "libcuda.so"}, why);
  if (!h) {
    why = "no CUDA driver (libcuda.so.1 did not load: " + why + ")";
    return false;
  }
  std::string missing;
  MPS_CUDA_BIND(h, api, cuInit, "cuInit", missing);
  MPS_CUDA_BIND(h, api, cuDriverGetVersion, "cuDriverGetVersion", missing);
  MPS_CUDA_BIND(h, api, cuDeviceGet, "cuDeviceGet", missing);
  MPS_CUDA_BIND(h, api, cuDeviceGetCount, "cuDeviceGetCount", missing);
  MPS_CUDA_BIND(h, api, cuDeviceGetName, "cuDeviceGetName", missing);
  MPS_CUDA_BIND(h, api, cuDeviceGetAttribute, "cuDeviceGetAttribute", missing);
  MPS_CUDA_BIND(h, api, cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", missing);
  MPS_CUDA_BIND(h, api, cuCtxSetCurrent, "cuCtxSetCurrent", missing);
  MPS_CUDA_BIND(h, api, cuCtxSynchronize, "cuCtxSynchronize", missing);
  MPS_CUDA_BIND(h, api, cuMemAlloc, "cuMemAlloc_v2", missing);
  MPS_CUDA_BIND(h, api, cuMemFree, "cuMemFree_v2", missing);
  MPS_CUDA_BIND(h, api, cuMemcpyHtoD, "cuMemcpyHtoD_v2", missing);
  MPS_CUDA_BIND(h, api, cuMemcpyDtoH, "cuMemcpyDtoH_v2", missing);
  MPS_CUDA_BIND(h, api, cuMemcpyDtoD, "cuMemcpyDtoD_v2", missing);
  MPS_CUDA_BIND(h, api, cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2", missing);
  MPS_CUDA_BIND(h, api, cuMemsetD8, "cuMemsetD8_v2", missing);
  MPS_CUDA_BIND(h, api, cuModuleLoadData, "cuModuleLoadData", missing);
  MPS_CUDA_BIND(h, api, cuModuleGetFunction, "cuModuleGetFunction", missing);
  MPS_CUDA_BIND(h, api, cuModuleGetGlobal, "cuModuleGetGlobal_v2", missing);
  MPS_CUDA_BIND(h, api, cuFuncSetAttribute, "cuFuncSetAttribute", missing);
  MPS_CUDA_BIND(h, api, cuLaunchKernel, "cuLaunchKernel", missing);
  MPS_CUDA_BIND(h, api, cuGetErrorString, "cuGetErrorString", missing);
  if (!missing.empty()) {
    why = "the CUDA driver lacks " + missing;
    return false;
  }
  if (const CUresult r = api.cuInit(0); r != 0) {
    const char* s = nullptr;
    api.cuGetErrorString(r, &s);
    why = concat("the CUDA driver did not initialise (cuInit: ", s ? s : "error", " ", r, ")");
    return false;
  }
  int count = 0;
  if (api.cuDeviceGetCount(&count) != 0 || count == 0) {
    why = "the CUDA driver sees no GPU";
    return false;
  }
  return true;
}

bool load_nvrtc(NvrtcApi& api, std::string& why) {
  const char* env = std::getenv("MPS_SHIM_NVRTC");
  void* h = open_first({env ? env : "", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"}, why);
  if (!h) {
    why = "no NVRTC (set MPS_SHIM_NVRTC to libnvrtc.so, or pip install nvidia-cuda-nvrtc-cu12: " + why + ")";
    return false;
  }
  std::string missing;
  MPS_CUDA_BIND(h, api, nvrtcVersion, "nvrtcVersion", missing);
  MPS_CUDA_BIND(h, api, nvrtcCreateProgram, "nvrtcCreateProgram", missing);
  MPS_CUDA_BIND(h, api, nvrtcCompileProgram, "nvrtcCompileProgram", missing);
  MPS_CUDA_BIND(h, api, nvrtcGetProgramLogSize, "nvrtcGetProgramLogSize", missing);
  MPS_CUDA_BIND(h, api, nvrtcGetProgramLog, "nvrtcGetProgramLog", missing);
  MPS_CUDA_BIND(h, api, nvrtcGetCUBINSize, "nvrtcGetCUBINSize", missing);
  MPS_CUDA_BIND(h, api, nvrtcGetCUBIN, "nvrtcGetCUBIN", missing);
  MPS_CUDA_BIND(h, api, nvrtcGetPTXSize, "nvrtcGetPTXSize", missing);
  MPS_CUDA_BIND(h, api, nvrtcGetPTX, "nvrtcGetPTX", missing);
  MPS_CUDA_BIND(h, api, nvrtcDestroyProgram, "nvrtcDestroyProgram", missing);
  MPS_CUDA_BIND(h, api, nvrtcGetErrorString, "nvrtcGetErrorString", missing);
  if (!missing.empty()) {
    why = "NVRTC lacks " + missing;
    return false;
  }
  return true;
}

bool load_cublas(CublasApi& api, std::string& why) {
  const char* env = std::getenv("MPS_SHIM_CUBLAS");
  void* h = open_first({env ? env : "", "libcublas.so.13", "libcublas.so.12", "libcublas.so"}, why);
  if (!h) {
    why = "no cuBLAS (set MPS_SHIM_CUBLAS to libcublas.so: " + why + ")";
    return false;
  }
  std::string missing;
  MPS_CUDA_BIND(h, api, cublasCreate, "cublasCreate_v2", missing);
  MPS_CUDA_BIND(h, api, cublasGemmStridedBatchedEx, "cublasGemmStridedBatchedEx", missing);
  if (!missing.empty()) {
    why = "cuBLAS lacks " + missing;
    return false;
  }
  char path[4096] = "";
  if (dlinfo(h, RTLD_DI_ORIGIN, path) == 0) api.path = path;
  return true;
}

bool has_libcudacxx(const std::string& dir) {
  return access((dir + "/cuda/std/type_traits").c_str(), R_OK) == 0;
}

}  // namespace

const DriverApi* driver_api(std::string* why) {
  static std::once_flag once;
  static DriverApi api{};
  static std::string reason;
  static bool ok = false;
  return load_once(once, api, reason, ok, load_driver, why);
}

const NvrtcApi* nvrtc_api(std::string* why) {
  static std::once_flag once;
  static NvrtcApi api{};
  static std::string reason;
  static bool ok = false;
  return load_once(once, api, reason, ok, load_nvrtc, why);
}

const CublasApi* cublas_api(std::string* why) {
  static std::once_flag once;
  static CublasApi api{};
  static std::string reason;
  static bool ok = false;
  return load_once(once, api, reason, ok, load_cublas, why);
}

void check_cuda(CUresult r, const char* what) {
  if (r == 0) return;
  const char* s = nullptr;
  if (const DriverApi* api = driver_api(nullptr)) api->cuGetErrorString(r, &s);
  throw EngineError(concat(what, " failed: ", s ? s : "CUDA error", " (", r, ")"));
}

const std::string& libcudacxx_include_dirs(std::string* why) {
  static const std::string dirs = [] {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("MPS_SHIM_CUDA_INCLUDE"))
      for (size_t pos = 0;;) {
        const size_t end = std::string(env).find(':', pos);
        candidates.push_back(std::string(env).substr(pos, end - pos));
        if (end == std::string::npos) break;
        pos = end + 1;
      }
    for (const char* home : std::initializer_list<const char*>{std::getenv("CUDA_HOME"), std::getenv("CUDA_PATH"), "/usr/local/cuda"})
      if (home) {
        candidates.push_back(std::string(home) + "/include");
        candidates.push_back(std::string(home) + "/include/cccl");
      }
    for (const std::string& d : candidates)
      if (!d.empty() && has_libcudacxx(d)) return d;
    return std::string();
  }();
  if (dirs.empty() && why)
    *why = "no libcu++ headers (<cuda/std/type_traits>): set MPS_SHIM_CUDA_INCLUDE, or pip install nvidia-cuda-cccl-cu12";
  return dirs;
}

}  // namespace mps_shim::cuda
