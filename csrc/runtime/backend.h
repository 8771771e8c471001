// The backend-neutral engine interface: a backend compiles Metal source into a
// library of kernels, launches them over a grid, and owns device memory.
// Backends: host (MSL -> C++ on the CPU); later cuda and metal.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mps_shim_kernel_schema.h"

namespace mps_shim {

namespace ops {
class OpBackend;
}
namespace kernel_checks {
class Sink;
}

enum class ParamKind : int { Buffer = MPS_SHIM_PARAM_BUFFER, Scalar = MPS_SHIM_PARAM_SCALAR,
                              ThreadAttribute = MPS_SHIM_PARAM_THREAD_POSITION,
                              Threadgroup = MPS_SHIM_PARAM_THREADGROUP };
// How a threadgroup's threads run: no thread waits for another; one fiber per
// thread; or loops over the threads between barriers (lane loops).
enum class KernelExecution : int { Independent = MPS_SHIM_EXECUTION_INDEPENDENT, Fibers = MPS_SHIM_EXECUTION_FIBERS,
                                   LaneLoops = MPS_SHIM_EXECUTION_LANE_LOOPS, Undecided = MPS_SHIM_EXECUTION_UNDECIDED };
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
  // Not in the schema (modules do not record them): from the front end.
  // The function constants it may read, as indices into CompiledLibrary::function_constants().
  std::vector<size_t> function_constants;
  // The values of a specialisation, as text for messages and describe: {name, value}.
  std::vector<std::pair<std::string, std::string>> constant_values;
  // False for a kernel not compiled yet: the front end's description, whose
  // parameters' value sizes are 0 and whose execution may be "undecided".
  bool compiled = false;
  // Compiled in checked mode (runtime/checks.h): its dispatches take a check sink.
  bool checked = false;
};

// `constant T name [[function_constant(index)]];`: set when a function is
// made (Metal's MTLFunctionConstantValues). required: the library never tests
// it with is_function_constant_defined, so a kernel that reads it needs a value.
struct FunctionConstantInfo {
  std::string name;
  std::string type;        // Metal's spelling: "short", "float4"
  uint32_t data_type = 0;  // its MTLDataType code (mps_shim.h's MPS_SHIM_DATA_TYPE_*)
  uint32_t size = 0;       // bytes of a value: lanes * scalar size
  uint32_t index = 0;
  int line = 0;
  bool required = true;
};

// One specialisation: per function constant of the library (in the order of
// function_constants()), its value's bytes, or none (undefined).
using FunctionConstantValues = std::vector<std::optional<std::string>>;

// A specialisation's identity: "index=hexbytes;" per defined constant, "" for none.
std::string function_constant_key(const FunctionConstantValues& values, const std::vector<FunctionConstantInfo>& constants);

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
  uint32_t threadgroup_bytes = 0;  // their total
  // By binding: 1 where args[b] holds bytes in host memory (set_arg_bytes),
  // 0 where it is device memory. Backends whose memory is the host's ignore it.
  const uint8_t* host_bytes = nullptr;
  // Checked kernels (KernelInfo::checked): by binding, the bytes from args[b]
  // to the end of its allocation (UINT64_MAX: unknown), and where the
  // threads' reports go.
  const uint64_t* extents = nullptr;
  const uint64_t* extents_before = nullptr;  // bytes of the allocation before args[b]
  const uint32_t* threadgroup_lengths = nullptr;  // by [[threadgroup(n)]] index
  kernel_checks::Sink* check_sink = nullptr;
};

// Which way a copy goes (Backend::copy).
enum class CopyKind { HostToDevice, DeviceToHost, DeviceToDevice };

// Metal's threadgroup memory per threadgroup, static and dynamic together.
constexpr uint32_t kMaxThreadgroupMemory = 32768;
// When a library's kernels compile (the values of mps_shim.h's MPS_SHIM_COMPILE_*).
enum class CompileMode : int {
  Auto = 0,   // eager for small libraries (kMaxEagerKernels kernels or fewer), lazy above
  Eager = 1,  // every kernel when the library is created: errors surface there
  Lazy = 2,   // the library is parsed and its kernels listed; each kernel compiles at first use
};
// Auto compiles a library of at most this many kernels eagerly.
constexpr size_t kMaxEagerKernels = 64;

// How to compile a library: folders searched by #include, in order, after the
// Metal headers (absolute paths; see resolve_compile_options), and when.
struct CompileOptions {
  std::vector<std::string> include_dirs;
  CompileMode mode = CompileMode::Auto;
  // Checked mode (runtime/checks.h): kernels carry the sanitizers.
  bool checked = false;
};

// The caller's include folders, then those of MPS_SHIM_INCLUDE_PATH
// (colon-separated; missing ones skipped), made absolute; `mode`, where it is
// Auto, as MPS_SHIM_EAGER says (1: Eager, 0: Lazy). Throws naming a caller's
// folder that does not exist.
CompileOptions resolve_compile_options(const std::vector<std::string>& include_dirs,
                                       CompileMode mode = CompileMode::Auto);

// One kernel of one specialisation, compiled.
class CompiledKernel {
 public:
  virtual ~CompiledKernel() = default;
  virtual const KernelInfo& info() const = 0;
  // args[b] is the address bound to buffer index b (device memory or scalar bytes).
  virtual void launch(void* const* args, const LaunchGrid& grid, Engine engine = Engine::Native) = 0;
};

// A library as the backend's front end read it. Kernels compile on demand
// (all of them at once with compile_all); each specialisation is compiled and
// cached apart. Thread-safe.
class CompiledLibrary {
 public:
  virtual ~CompiledLibrary() = default;
  // Kernel `index` of kernel_count(), in source order: what its compiled
  // default specialisation recorded where that exists, else the front end's
  // description (compiled false).
  virtual size_t kernel_count() const = 0;
  virtual KernelInfo kernel_info(size_t index) const = 0;
  virtual const std::vector<FunctionConstantInfo>& function_constants() const = 0;
  // Kernel `index` specialised with `values` (already checked against the
  // declarations), compiled on first use; the same object for the same values.
  virtual std::shared_ptr<CompiledKernel> kernel(size_t index, const FunctionConstantValues& values) = 0;
  // Compiles every kernel's default specialisation that is not compiled yet.
  virtual void compile_all() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  // Reads `source` (front-end errors throw CompileError) and, as options.mode
  // says, compiles its kernels now or leaves them to their first use.
  virtual std::unique_ptr<CompiledLibrary> compile(const std::string& source, const CompileOptions& options) = 0;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr) = 0;
  // Device memory a host pointer can read (true on the host backend).
  virtual bool host_addressable() const = 0;
  // Copies `nbytes` (regions may overlap for DeviceToDevice); after the device's earlier work.
  virtual void copy(void* dst, const void* src, size_t nbytes, CopyKind kind) = 0;
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
