// A persistent pool of worker threads that runs one dispatch at a time over
// all cores. Small dispatches run on the calling thread, so a 1-thread kernel
// costs no wake-up.
#pragma once

#include <cstdint>

namespace mps_shim::host {

class Executor {
 public:
  using RangeFn = void (*)(void* ctx, uint64_t first, uint64_t end);

  static Executor& instance();
  unsigned threads() const { return threads_; }
  // Calls fn(ctx, a, b) over disjoint ranges covering [0, total), each at
  // least `grain` long except the last; returns when all are done.
  void parallel_for(uint64_t total, uint64_t grain, RangeFn fn, void* ctx);

 private:
  Executor();
  unsigned threads_;
};

// MPS_SHIM_NUM_THREADS if set to a positive integer, else the cores this process may use.
unsigned configured_threads();

}  // namespace mps_shim::host
