// CUDA's driver API and NVRTC, loaded with dlopen when first needed, so that
// libmps_shim.so builds and runs on machines without CUDA. Only the entry
// points the backend calls are declared, with the C types of cuda.h/nvrtc.h.
#pragma once

#include <cstddef>
#include <string>

namespace mps_shim::cuda {

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = struct CUctx_st*;
using CUmodule = struct CUmod_st*;
using CUfunction = struct CUfunc_st*;
using CUstream = struct CUstream_st*;
using nvrtcResult = int;
using nvrtcProgram = struct _nvrtcProgram*;

struct DriverApi {
  CUresult (*cuInit)(unsigned);
  CUresult (*cuDriverGetVersion)(int*);
  CUresult (*cuDeviceGet)(CUdevice*, int);
  CUresult (*cuDeviceGetCount)(int*);
  CUresult (*cuDeviceGetName)(char*, int, CUdevice);
  CUresult (*cuDeviceGetAttribute)(int*, int, CUdevice);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext*, CUdevice);
  CUresult (*cuCtxSetCurrent)(CUcontext);
  CUresult (*cuCtxSynchronize)();
  CUresult (*cuMemAlloc)(CUdeviceptr*, size_t);
  CUresult (*cuMemFree)(CUdeviceptr);
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void*, size_t);
  CUresult (*cuMemcpyDtoH)(void*, CUdeviceptr, size_t);
  CUresult (*cuMemcpyDtoD)(CUdeviceptr, CUdeviceptr, size_t);
  CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr, const void*, size_t, CUstream);
  CUresult (*cuMemsetD8)(CUdeviceptr, unsigned char, size_t);
  CUresult (*cuModuleLoadData)(CUmodule*, const void*);
  CUresult (*cuModuleGetFunction)(CUfunction*, CUmodule, const char*);
  CUresult (*cuModuleGetGlobal)(CUdeviceptr*, size_t*, CUmodule, const char*);
  CUresult (*cuFuncSetAttribute)(CUfunction, int, int);
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                             CUstream, void**, void**);
  CUresult (*cuGetErrorString)(CUresult, const char**);
};

struct NvrtcApi {
  nvrtcResult (*nvrtcVersion)(int*, int*);
  nvrtcResult (*nvrtcCreateProgram)(nvrtcProgram*, const char*, const char*, int, const char* const*,
                                    const char* const*);
  nvrtcResult (*nvrtcCompileProgram)(nvrtcProgram, int, const char* const*);
  nvrtcResult (*nvrtcGetProgramLogSize)(nvrtcProgram, size_t*);
  nvrtcResult (*nvrtcGetProgramLog)(nvrtcProgram, char*);
  nvrtcResult (*nvrtcGetCUBINSize)(nvrtcProgram, size_t*);
  nvrtcResult (*nvrtcGetCUBIN)(nvrtcProgram, char*);
  nvrtcResult (*nvrtcGetPTXSize)(nvrtcProgram, size_t*);
  nvrtcResult (*nvrtcGetPTX)(nvrtcProgram, char*);
  nvrtcResult (*nvrtcDestroyProgram)(nvrtcProgram*);
  const char* (*nvrtcGetErrorString)(nvrtcResult);
};

// cuBLAS's strided batched product, for the ATen fallback ops' gemm.
using cublasHandle_t = struct cublasContext*;
using cublasStatus_t = int;
struct CublasApi {
  cublasStatus_t (*cublasCreate)(cublasHandle_t*);
  cublasStatus_t (*cublasGemmStridedBatchedEx)(cublasHandle_t, int transa, int transb, int m, int n, int k,
                                               const void* alpha, const void* a, int a_type, int lda,
                                               long long stride_a, const void* b, int b_type, int ldb,
                                               long long stride_b, const void* beta, void* c, int c_type, int ldc,
                                               long long stride_c, int batch, int compute_type, int algo);
  std::string path;  // the library that loaded, for runtime_info
};

// The loaded APIs, or null with `why` set (once per process; the reason is kept).
const DriverApi* driver_api(std::string* why);
const NvrtcApi* nvrtc_api(std::string* why);
// MPS_SHIM_CUBLAS, else libcublas.so.13 / .12 / libcublas.so.
const CublasApi* cublas_api(std::string* why);

// Throws EngineError naming `what` when `r` is not CUDA_SUCCESS.
void check_cuda(CUresult r, const char* what);

// Folders holding libcu++'s <cuda/std/...> headers, which NVRTC needs: those of
// MPS_SHIM_CUDA_INCLUDE (colon-separated), then $CUDA_HOME's and
// /usr/local/cuda's include (and include/cccl) folders that have them.
const std::string& libcudacxx_include_dirs(std::string* why);

}  // namespace mps_shim::cuda
