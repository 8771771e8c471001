// The backend-neutral engine interface: a backend compiles Metal source into a
// library of kernels, launches them over a grid, and owns device memory.
// Backends: host (MSL -> C++ on the CPU); later cuda and metal.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mps_shim {

namespace ops {
class OpBackend;
}

enum class ParamKind : int { Buffer = 0, Scalar = 1, ThreadAttribute = 2 };

struct KernelParam {
  std::string name;       // as declared; may be empty
  std::string type;       // declared type, address space included
  ParamKind kind;
  int binding;            // buffer index for Buffer/Scalar, -1 otherwise
  std::string attribute;  // e.g. "thread_position_in_grid", "buffer"
  uint32_t scalar_size;   // sizeof the referenced type for Scalar
  int line;               // in the user's source
};

struct KernelInfo {
  std::string name;  // host name: what get_kernel_function looks up
  uint32_t max_threads;  // [[max_total_threads_per_threadgroup]] or 1024
  std::vector<KernelParam> params;
  int line;
  // How a threadgroup's threads run: "independent" (no thread waits for
  // another), "lane_loops" (barriers split the kernel into loops over the
  // threads) or "fibers" (one fiber per thread); with the reason a kernel
  // could not use lane loops.
  std::string execution;
  std::string execution_note;
};

// Which code runs a dispatch: the kernel's own execution, or (lane-loop
// kernels only) its original body with one fiber per thread, which the
// engine cross-check (runtime/crosscheck.h) compares against lane loops.
enum class Engine { Native, Fibers };

// One dispatch: the exact grid and the requested threadgroup size per dimension.
struct LaunchGrid {
  uint32_t grid[3];
  uint32_t group[3];
};

class CompiledLibrary {
 public:
  virtual ~CompiledLibrary() = default;
  virtual const std::vector<KernelInfo>& kernels() const = 0;
  // args[b] is the address bound to buffer index b (device memory or scalar bytes).
  virtual void launch(size_t kernel_index, void* const* args, const LaunchGrid& grid,
                      Engine engine = Engine::Native) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual std::unique_ptr<CompiledLibrary> compile(const std::string& source) = 0;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr) = 0;
  // Device memory a host pointer can read (true on the host backend).
  virtual bool host_addressable() const = 0;
  virtual void synchronize() = 0;
  // The ATen fallback ops' compute on this backend (csrc/ops/op_backend.h).
  virtual ops::OpBackend& ops() = 0;
  // Extra fields for mps_shim_runtime_info, as `"key": value` JSON members.
  virtual std::string info_json() const = 0;
};

// The process's one backend, created on first use: the registered backend
// MPS_SHIM_BACKEND names, "host" by default (runtime/backend_registry.h).
Backend& backend();

}  // namespace mps_shim
