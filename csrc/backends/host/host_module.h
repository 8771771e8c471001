// A compiled kernel module loaded with dlopen: its kernel table becomes the
// runtime's KernelInfo list, and launches run its entry points on the executor.
#pragma once

#include <memory>
#include <string>

#include "runtime/backend.h"

namespace mps_shim::host {

// Loads the module at `path`; throws when it is not a valid module.
std::unique_ptr<CompiledLibrary> load_module(const std::string& path);

}  // namespace mps_shim::host
