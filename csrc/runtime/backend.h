// The backend-neutral engine interface: a backend compiles Metal source into a
// library of kernels, launches them over a grid, and owns device memory.
// Backends: host (MSL -> C++ on the CPU); later cuda and metal.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mps_shim_kernel_schema.h"

namespace mps_shim {

namespace ops {
class OpBackend;
}

enum class ParamKind : int { Buffer = MPS_SHIM_PARAM_BUFFER, Scalar = MPS_SHIM_PARAM_SCALAR,
                              ThreadAttribute = MPS_SHIM_PARAM_THREAD_POSITION,
                              Threadgroup = MPS_SHIM_PARAM_THREADGROUP };
// How a threadgroup's threads run: no thread waits for another; one fiber per
// thread; or loops over the threads between barriers (lane loops).
enum class KernelExecution : int { Independent = MPS_SHIM_EXECUTION_INDEPENDENT, Fibers = MPS_SHIM_EXECUTION_FIBERS,
                                   LaneLoops = MPS_SHIM_EXECUTION_LANE_LOOPS };
// Their names in JSON ("buffer", "lane_loops"...), from the schema; "unknown" out of range.
const char* kind_name(ParamKind kind);
const char* execution_name(KernelExecution execution);

// The schema's fields (mps_shim_kernel_schema.h) as C++ members.
#define MPS_SHIM_CXX_string std::string
#define MPS_SHIM_CXX_int int
#define MPS_SHIM_CXX_uint uint32_t
#define MPS_SHIM_CXX_param_kind ParamKind
#define MPS_SHIM_CXX_execution KernelExecution
#define MPS_SHIM_CXX_FIELD(type, field, json_key) MPS_SHIM_CXX_##type field{};

struct KernelParam {
  MPS_SHIM_PARAM_FIELDS(MPS_SHIM_CXX_FIELD)
};

struct KernelInfo {
  MPS_SHIM_KERNEL_FIELDS(MPS_SHIM_CXX_FIELD)
  std::vector<KernelParam> params;
};

// Which code runs a dispatch: the kernel's own execution, or (lane-loop
// kernels only) its original body with one fiber per thread, which the
// engine cross-check (runtime/crosscheck.h) compares against lane loops.
enum class Engine { Native, Fibers };

// One dispatch: the exact grid and the requested threadgroup size per dimension.
struct LaunchGrid {
  uint32_t grid[3];
  uint32_t group[3];
  // The offset of each [[threadgroup(n)]] parameter's memory in a group's dynamic
  // block (kMaxThreadgroupMemory in all), by n; null when the kernel has none.
  const uint32_t* threadgroup_offsets = nullptr;
};

// Metal's threadgroup memory per threadgroup, static and dynamic together.
constexpr uint32_t kMaxThreadgroupMemory = 32768;

// How to compile a library: folders searched by #include, in order, after the
// Metal headers (absolute paths; see resolve_compile_options).
struct CompileOptions {
  std::vector<std::string> include_dirs;
};

// The caller's include folders, then those of MPS_SHIM_INCLUDE_PATH
// (colon-separated; missing ones skipped), made absolute. Throws naming a
// caller's folder that does not exist.
CompileOptions resolve_compile_options(const std::vector<std::string>& include_dirs);

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
  virtual std::unique_ptr<CompiledLibrary> compile(const std::string& source, const CompileOptions& options) = 0;
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
