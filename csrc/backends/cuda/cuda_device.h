// The process's GPU for the CUDA backend: device 0 and its primary context.
#pragma once

#include <string>

#include "backends/cuda/cuda_api.h"
#include "util/error.h"

namespace mps_shim::cuda {

constexpr int kComputeCapabilityMajor = 75, kComputeCapabilityMinor = 76;  // CUdevice_attribute

// Device 0, its primary context made current on every thread that uses it.
struct Device {
  const DriverApi* api = nullptr;
  CUdevice device = 0;
  CUcontext context = nullptr;
  std::string name, arch;

  static Device& instance() {
    static Device* d = new Device();
    return *d;
  }
  void make_current() const { check_cuda(api->cuCtxSetCurrent(context), "cuCtxSetCurrent"); }

 private:
  Device() {
    std::string why;
    api = driver_api(&why);
    MPS_SHIM_CHECK_AS(EngineError, api != nullptr, "the CUDA backend is unavailable: ", why);
    check_cuda(api->cuDeviceGet(&device, 0), "cuDeviceGet");
    check_cuda(api->cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
    char buf[256] = {};
    api->cuDeviceGetName(buf, sizeof buf, device);
    name = buf;
    int major = 0, minor = 0;
    api->cuDeviceGetAttribute(&major, kComputeCapabilityMajor, device);
    api->cuDeviceGetAttribute(&minor, kComputeCapabilityMinor, device);
    arch = concat("sm_", major, minor);
  }
};

}  // namespace mps_shim::cuda
