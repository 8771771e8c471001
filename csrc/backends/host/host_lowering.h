// The host backend's lowerings of the front end's neutral description
// (frontend/kernel_decl.h), applied before the C++ emitter:
// - threadgroup memory: `threadgroup T x[N];` becomes a function-local
//   `static thread_local` object, with Metal's 32 KiB checked by static_assert;
// - the execution of each kernel that waits: lane loops (lane_loops.h: a group
//   function `NAME__mps_lanes` after the kernel, lane versions of the library
//   functions it inlines after theirs) where the splitter accepts it, else fibers;
// - SIMD-group call sites and reconvergence points for the fiber engine (simd_sites.h);
// - one specialisation of the function constants (frontend/function_constants.h);
// - a module of some of the library's kernels: only those get entry points and
//   lane-loop functions, and the bodies of the other kernels are left out, so
//   the compiler neither generates nor checks them.
#pragma once

#include <string>
#include <vector>

#include "frontend/function_constants.h"
#include "frontend/kernel_decl.h"
#include "frontend/lexer.h"

namespace mps_shim::host {

struct LoweringOptions {
  // Split kernels at their barriers into loops over a group's threads where
  // possible (lane_loops.h); otherwise every kernel that waits runs on fibers.
  bool lane_loops = true;
  // With lane_loops off: why, as each fibers kernel's execution_note says it.
  std::string lane_loops_off_reason = "lane loops are turned off (MPS_SHIM_LANE_LOOPS=0)";
  // Lines of library.metal where a lane-loop copy did not compile, with the
  // first error: the kernels whose bodies hold them run on fibers.
  std::vector<int> lane_loop_error_lines;
  std::string lane_loop_error;
  // The kernels the module holds (indices into the parsed library's kernels),
  // in the order of its kernel table; all of them when `all_kernels`.
  bool all_kernels = true;
  std::vector<size_t> kernels;
  // The values of the library's function constants (none: all undefined).
  frontend::ConstantValues constants;
  // Checked mode (runtime/checks.h): every kernel runs on fibers, one per
  // Metal thread, and the module carries the sanitizers (mps_host_checked.h).
  bool checked = false;
  // Checked mode: device and constant pointers become checked pointers
  // (checked_lowering.h); off when that translation did not compile, and why.
  bool check_buffers = true;
  std::string buffers_unchecked_reason;
};

// What the emitter writes: the module's kernels with their execution decided
// (and parameters absent in this specialisation marked), and the source edits
// (the front end's and the host's).
struct HostLibrary {
  std::vector<frontend::KernelDecl> kernels;
  bool checked = false;  // entry points bind checked pointers (LoweringOptions::checked)
  std::vector<frontend::Edit> edits;  // sorted by offset, never overlapping
};

HostLibrary lower_for_host(const frontend::LexedSource& source, const frontend::ParsedLibrary& library,
                           const LoweringOptions& options);

}  // namespace mps_shim::host
