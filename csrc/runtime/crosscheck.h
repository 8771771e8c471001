// The engine cross-check (MPS_SHIM_CROSSCHECK=1): a lane-loop kernel also runs
// on fibers, and the two engines' results must agree bit for bit.
#pragma once

#include <cstddef>
#include <vector>

#include "runtime/backend.h"

namespace mps_shim {

// A tensor bound to a buffer index: the kernel may write from `address` to `end` (its storage's end).
struct CrosscheckBuffer {
  unsigned binding;
  const KernelParam* param;
  unsigned char* address;
  unsigned char* end;
};

// True when MPS_SHIM_CROSSCHECK is set to 1; read at every dispatch, so tests can switch it.
bool crosscheck_enabled();

// Runs a lane-loop kernel on fibers, then (from the same inputs) on lane
// loops, and throws DispatchError naming the first differing byte. The
// buffers keep the lane-loop results.
void crosscheck_launch(CompiledKernel& kernel, void* const* args, const LaunchGrid& grid,
                       const std::vector<CrosscheckBuffer>& buffers);

}  // namespace mps_shim
