// The contract between libmps_shim and a kernel module compiled by the host
// backend. Both sides include this file; bump MPS_SHIM_MODULE_ABI on any change.
#ifndef MPS_HOST_LAUNCH_H
#define MPS_HOST_LAUNCH_H

#include <stdint.h>

#include "mps_shim_kernel_schema.h"

#define MPS_SHIM_MODULE_ABI 10

extern "C" {

// Checked mode (MPS_SHIM_CHECKED, runtime/checks.h): what a checked module
// found wrong in one thread's access or wait, as it tells the runtime. The
// runtime turns return addresses into Metal source lines.
#define MPS_SHIM_CHECK_SYNC_BARRIER 1    // synccheck: threads of a group waited at different threadgroup_barriers
#define MPS_SHIM_CHECK_SYNC_SIMD 2       // synccheck: a simdgroup_barrier some live lanes of the SIMD-group did not reach
#define MPS_SHIM_CHECK_INACTIVE_LANE 3   // initcheck: a SIMD-group function read an inactive lane
#define MPS_SHIM_CHECK_OUT_OF_BOUNDS 4   // memcheck: outside a bound buffer (or bound bytes)
#define MPS_SHIM_CHECK_MISALIGNED 5      // memcheck: an access not aligned to its type
#define MPS_SHIM_CHECK_THREADGROUP_BOUNDS 6  // memcheck: outside a threadgroup allocation
#define MPS_SHIM_CHECK_RACE 7            // racecheck: two threads, one threadgroup byte, no barrier between
#define MPS_SHIM_CHECK_UNINITIALIZED 8   // initcheck: a read of threadgroup memory no thread wrote
#define MPS_SHIM_CHECK_MAX_PCS 8

struct mps_shim_check_report {
  int32_t kind;               // MPS_SHIM_CHECK_*
  uint32_t group[3];          // threadgroup_position_in_grid of the thread
  uint32_t in_group[3];       // thread_position_in_threadgroup
  uint32_t in_grid[3];        // thread_position_in_grid
  uint32_t simd_group, simd_lane;
  int32_t other_thread;       // the other thread's index in the group (race, synccheck), -1: none
  int32_t lane;               // the lane read (inactive lane), -1: none
  int32_t buffer;             // buffer index, or [[threadgroup(n)]] index; -1: none
  int32_t is_write;           // 1 write, 0 read, -1 unknown
  int32_t other_is_write;
  int64_t offset;             // bytes from the start of the buffer or allocation
  uint64_t extent;            // its bytes from the bound address
  uint64_t before;            // bytes of its allocation before the bound address (a view's storage)
  uint32_t access_size;       // bytes accessed
  uint32_t alignment;         // required alignment (misaligned)
  const char* what;           // static text: the SIMD-group function, the threadgroup array
  // Source places the module knows itself (barriers: the call's line), 0 / null where unknown.
  uint32_t line, other_line;
  const char* file;
  const char* other_file;
  uint32_t n_pcs, n_other_pcs;
  void* pcs[MPS_SHIM_CHECK_MAX_PCS];        // return addresses, innermost first
  void* other_pcs[MPS_SHIM_CHECK_MAX_PCS];  // the other party's (where it waited, or accessed)
};

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
  // Checked modules only (null otherwise): bytes from each args[b] to the end
  // of its allocation (UINT64_MAX: unknown) and from the allocation's start to
  // args[b] (a view bound at an offset may read before it), and where reports go.
  const uint64_t* extents;
  const uint64_t* extents_before;
  const uint32_t* threadgroup_lengths;  // by [[threadgroup(n)]] index: its bytes this dispatch
  void* check_sink;
  void (*check_report)(void* sink, const struct mps_shim_check_report* report);
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
