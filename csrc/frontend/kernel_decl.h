// The front end's backend-neutral description of a Metal library: its kernels,
// their parameters and bindings, and the source edits that turn the Metal
// dialect into the C++ a backend compiles.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mps_shim::frontend {

enum class AddressSpace { None, Device, Constant, Threadgroup, Thread };

// Where a thread-position parameter gets its value. Tables in the backends
// are indexed by this enum: keep the order.
enum class ThreadAttr {
  None,
  ThreadPositionInGrid,
  ThreadPositionInThreadgroup,
  ThreadgroupPositionInGrid,
  ThreadsPerGrid,
  ThreadsPerThreadgroup,
  ThreadgroupsPerGrid,
  ThreadIndexInThreadgroup,
  DispatchThreadsPerThreadgroup,
  ThreadIndexInSimdgroup,
  SimdgroupIndexInThreadgroup,
  ThreadsPerSimdgroup,
  SimdgroupsPerThreadgroup,
  ThreadExecutionWidth,
  DispatchSimdgroupsPerThreadgroup,
  ThreadIndexInQuadgroup,
  QuadgroupIndexInThreadgroup,
  QuadgroupsPerThreadgroup,
  DispatchQuadgroupsPerThreadgroup,
};

// The mps_host::ThreadIds member that holds an attribute's value in generated code.
const char* thread_ids_member(ThreadAttr attr);

enum class ParamRole { Buffer, Scalar, ThreadPosition };

struct ParamDecl {
  std::string name;
  std::string type;  // as written, attributes dropped
  AddressSpace space = AddressSpace::None;
  ParamRole role = ParamRole::Buffer;
  ThreadAttr thread_attr = ThreadAttr::None;
  int binding = -1;       // buffer index for Buffer and Scalar
  std::string attribute;  // the attribute as written, e.g. "buffer(2)"
  int line = 0;
};

struct KernelDecl {
  std::string host_name;      // the name get_kernel_function looks up
  std::string function;       // the C++ function to call
  std::string template_args;  // "<float>" for template instantiations
  std::vector<ParamDecl> params;
  uint32_t max_threads = 1024;
  int line = 0;
  // True when a parameter needs the threadgroup structure (group ids or sizes);
  // otherwise a backend may iterate the grid directly.
  bool uses_threadgroups = false;
  // How a threadgroup's threads run. Keep the values: modules record them.
  enum class Execution : int {
    Independent = 0,  // no thread waits for another: one after another (vectorisable)
    Fibers = 1,       // threads may wait for each other anywhere: one fiber per thread
    LaneLoops = 2,    // barriers in uniform control flow only: <function>__mps_lanes runs
                      // one loop over the threads per stretch between barriers (backends/host/lane_loops.h)
  };
  Execution execution = Execution::Independent;
  std::string execution_note;  // for Fibers: why the kernel could not run as lane loops
  size_t body_open = 0;  // token index of the definition's body, for analyses
};

struct Edit {
  size_t offset;
  size_t length;
  std::string replacement;
};

struct ParsedLibrary {
  std::vector<KernelDecl> kernels;
  std::vector<Edit> edits;  // sorted by offset, never overlapping
};

}  // namespace mps_shim::frontend
