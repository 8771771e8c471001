// <metal_logging> (Metal 3.2): os_log. Kernels' log calls are accepted and
// dropped, as on a GPU whose log state is not enabled.
#ifndef MPS_METAL_LOGGING_H
#define MPS_METAL_LOGGING_H

#ifndef MPS_HOST_METAL_H
#error "include mps_host_metal.h instead"
#endif

namespace metal {

struct os_log {
  constexpr os_log() {}
  constexpr os_log(const char*, const char*) {}
  template <typename... Args> void log(const char*, Args...) const {}
  template <typename... Args> void log_debug(const char*, Args...) const {}
  template <typename... Args> void log_info(const char*, Args...) const {}
  template <typename... Args> void log_error(const char*, Args...) const {}
  template <typename... Args> void log_fault(const char*, Args...) const {}
};

}  // namespace metal

#endif
