// The contract between libmps_shim and a kernel module compiled by the host
// backend. Both sides include this file; bump MPS_SHIM_MODULE_ABI on any change.
#ifndef MPS_HOST_LAUNCH_H
#define MPS_HOST_LAUNCH_H

#include <stdint.h>

#define MPS_SHIM_MODULE_ABI 5

extern "C" {

struct mps_shim_launch {
  void* const* args;   // the address bound to each buffer index
  uint32_t grid[3];    // threads per grid (exact)
  uint32_t group[3];   // requested threads per threadgroup
  uint32_t groups[3];  // threadgroups per grid
  int32_t* failure;    // set (atomically) to an MPS_SHIM_LAUNCH_* code when a threadgroup fails
};

#define MPS_SHIM_LAUNCH_OK 0
#define MPS_SHIM_LAUNCH_DEADLOCK 1     // threads waited for each other forever
#define MPS_SHIM_LAUNCH_NO_MEMORY 2    // no memory for the threadgroup's fiber stacks or lane exchange
#define MPS_SHIM_LAUNCH_LANE_EXCHANGE 3  // lane loops met a SIMD-group operation they had not prepared (a bug)

#define MPS_SHIM_EXECUTION_INDEPENDENT 0  // no thread waits for another
#define MPS_SHIM_EXECUTION_FIBERS 1       // one fiber per thread
#define MPS_SHIM_EXECUTION_LANE_LOOPS 2   // loops over the threads between barriers

// Runs threadgroups [first_group, end_group), numbered x-fastest.
typedef void (*mps_shim_entry_fn)(const struct mps_shim_launch* launch, uint64_t first_group, uint64_t end_group);

struct mps_shim_param_record {
  const char* name;
  const char* type;
  int32_t role;  // ParamRole: 0 buffer, 1 scalar, 2 thread position
  int32_t binding;
  const char* attribute;
  uint32_t scalar_size;  // sizeof the referenced type, for scalars
  int32_t line;
};

struct mps_shim_kernel_record {
  const char* name;
  mps_shim_entry_fn entry;
  uint32_t max_threads;
  uint32_t uses_threadgroups;
  uint32_t execution;           // MPS_SHIM_EXECUTION_*: how a threadgroup's threads run
  const char* execution_note;   // why a fibers kernel could not run as lane loops, or ""

  uint32_t param_count;
  const struct mps_shim_param_record* params;
  int32_t line;
  // A lane-loop kernel's original body run with one fiber per thread, for the
  // engine cross-check (MPS_SHIM_CROSSCHECK); null for the other executions.
  mps_shim_entry_fn fiber_entry;
};

}  // extern "C"

#endif
