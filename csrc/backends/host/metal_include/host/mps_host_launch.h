// The contract between libmps_shim and a kernel module compiled by the host
// backend. Both sides include this file; bump MPS_SHIM_MODULE_ABI on any change.
#ifndef MPS_HOST_LAUNCH_H
#define MPS_HOST_LAUNCH_H

#include <stdint.h>

#include "mps_shim_kernel_schema.h"

#define MPS_SHIM_MODULE_ABI 9

extern "C" {

struct mps_shim_launch {
  void* const* args;   // the address bound to each buffer index
  uint32_t grid[3];    // threads per grid (exact)
  uint32_t group[3];   // requested threads per threadgroup
  uint32_t groups[3];  // threadgroups per grid
  int32_t* failure;    // set (atomically) to an MPS_SHIM_LAUNCH_* code when a threadgroup fails
  // Where each [[threadgroup(n)]] parameter's memory starts in a threadgroup's
  // dynamic block (bytes, 16-aligned; the runtime checked the lengths).
  const uint32_t* threadgroup_offsets;
  // The calling OS thread's slot for the fiber engine's state (stacks), kept by
  // the runtime, so that every module loaded shares one pool per thread
  // (mps_host_fibers.h) instead of mapping its own.
  void** (*fiber_slot)(void);
};

#define MPS_SHIM_LAUNCH_OK 0
#define MPS_SHIM_LAUNCH_DEADLOCK 1     // threads waited for each other forever
#define MPS_SHIM_LAUNCH_NO_MEMORY 2    // no memory for the threadgroup's fiber stacks or lane exchange
#define MPS_SHIM_LAUNCH_LANE_EXCHANGE 3  // lane loops met a SIMD-group operation they had not prepared (a bug)

// Runs threadgroups [first_group, end_group), numbered x-fastest.
typedef void (*mps_shim_entry_fn)(const struct mps_shim_launch* launch, uint64_t first_group, uint64_t end_group);

// The schema's fields (mps_shim_kernel_schema.h) as C members.
#define MPS_SHIM_C_string const char*
#define MPS_SHIM_C_int int32_t
#define MPS_SHIM_C_uint uint32_t
#define MPS_SHIM_C_param_kind int32_t
#define MPS_SHIM_C_execution uint32_t
#define MPS_SHIM_C_FIELD(type, field, json_key) MPS_SHIM_C_##type field;

struct mps_shim_param_record {
  MPS_SHIM_PARAM_FIELDS(MPS_SHIM_C_FIELD)
};

// The host's launch fields, then the schema's.
struct mps_shim_kernel_record {
  mps_shim_entry_fn entry;
  // A lane-loop kernel's original body run with one fiber per thread, for the
  // engine cross-check (MPS_SHIM_CROSSCHECK); null for the other executions.
  mps_shim_entry_fn fiber_entry;
  uint32_t uses_threadgroups;
  uint32_t param_count;
  const struct mps_shim_param_record* params;
  MPS_SHIM_KERNEL_FIELDS(MPS_SHIM_C_FIELD)
};

}  // extern "C"

#endif
