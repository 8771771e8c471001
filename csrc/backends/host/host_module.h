// A compiled kernel module loaded with dlopen: its kernel table becomes the
// runtime's KernelInfo, and launches run its entry points on the executor. A
// module holds one kernel (compiled on first use) or several (a library, or a
// part of one, compiled at once).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/backend.h"

namespace mps_shim::host {

class HostModule {
 public:
  virtual ~HostModule() = default;
  // What the module recorded about each kernel of its table (compiled true).
  virtual const std::vector<KernelInfo>& kernels() const = 0;
  virtual void launch(size_t index, void* const* args, const LaunchGrid& grid, Engine engine) = 0;
};

// Loads the module at `path`; throws when it is not a valid module.
std::shared_ptr<HostModule> load_module(const std::string& path);

// Kernel `index` of `module`, with `info` (the module's record, completed
// with what the front end knows).
std::shared_ptr<CompiledKernel> module_kernel(std::shared_ptr<HostModule> module, size_t index, KernelInfo info);

}  // namespace mps_shim::host
