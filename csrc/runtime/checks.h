// Checked mode: Metal kernel sanitizers (memcheck, racecheck, initcheck,
// synccheck). A library created while checked mode is on (MPS_SHIM_CHECKED,
// mps_shim_set_checked) compiles checked kernels (cached apart); each of
// their dispatches gets a Sink, which collects what the kernel's threads
// report (the backend's engine finds it; backends/host/metal_include/host/
// mps_host_checked.h), turns return addresses into Metal source lines,
// deduplicates by line and kind, keeps the first few, and then fails the
// dispatch with KernelCheckError listing them (or, warn-only, prints them).
// Every dispatch's reports are also kept as data for mps_shim_take_check_reports.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace mps_shim::kernel_checks {

// The values of mps_shim.h's MPS_SHIM_CHECKED_*.
enum class Mode : int32_t { Off = 0, On = 1, WarnOnly = 2 };

// The process's mode: set_mode's, else MPS_SHIM_CHECKED ("1": on, "warn": warn-only; unset, "" or "0": off).
Mode mode();
// Sets the mode for libraries created from now on and for the handling of
// later dispatches' reports; returns the previous one.
Mode set_mode(Mode m);

// What a report is about: the values of the host module ABI's
// MPS_SHIM_CHECK_* (mps_host_launch.h; host_module.cpp checks they agree).
enum class CheckKind : int {
  Barrier = 1,            // synccheck: threadgroup_barrier reached at different places
  SimdBarrier = 2,        // synccheck: simdgroup_barrier not reached by live lanes
  InactiveLane = 3,       // initcheck: a SIMD-group function read an inactive lane
  OutOfBounds = 4,        // memcheck: outside a bound buffer or bound bytes
  Misaligned = 5,         // memcheck
  ThreadgroupBounds = 6,  // memcheck: outside a threadgroup array or [[threadgroup(n)]] length
  Race = 7,               // racecheck
  Uninitialized = 8,      // initcheck: threadgroup memory no thread wrote
};

// What one thread of a checked kernel reported (the module ABI's
// mps_shim_check_report, backend-neutral).
struct RawReport {
  CheckKind kind = CheckKind::Barrier;
  uint32_t group[3] = {}, in_group[3] = {}, in_grid[3] = {};
  uint32_t simd_group = 0, simd_lane = 0;
  int other_thread = -1, lane = -1, buffer = -1, is_write = -1, other_is_write = -1;
  int64_t offset = 0;
  uint64_t extent = 0, before = 0;
  uint32_t access_size = 0, alignment = 0;
  std::string what;
  int line = 0, other_line = 0;  // places the engine knew itself (barriers); 0: from the return addresses
  std::string file, other_file;
  std::vector<void*> pcs, other_pcs;  // return addresses in the module, innermost first
};

// A report as the user reads it.
struct Report {
  std::string kernel, kind, check;  // kind: memcheck/racecheck/initcheck/synccheck; check: its case
  std::string file;
  int line = 0;
  std::string other_file;  // the other thread's place (race, synccheck), "" if none
  int other_line = 0;
  RawReport raw;
  std::string param;  // the buffer's parameter name
  uint64_t count = 1;  // reports of this line and kind in the dispatch
  std::string message;
};

// One dispatch's reports. add() is called from the engine's worker threads.
class Sink {
 public:
  void add(RawReport r);
  bool empty() const;
  // Resolves lines, deduplicates by (line, kind), keeps the first `max_reports`.
  // param_name(b): the name of the parameter at buffer index b ("" if none).
  std::vector<Report> finish(const std::string& kernel, const std::function<std::string(int)>& param_name) const;

 private:
  mutable std::mutex mutex_;
  std::vector<RawReport> raw_;
  std::vector<uint64_t> counts_;
  uint64_t dropped_ = 0;
};

// After a checked dispatch: records the reports for take_reports_json() and,
// unless warn-only, throws KernelCheckError listing them (warn-only prints
// them to stderr). `also`: a failure of the dispatch itself, appended.
void conclude(const std::string& kernel, const std::vector<Report>& reports, const std::string& also = "");

// The reports recorded since the last call, as a JSON list of objects (at most 1000 kept).
std::string take_reports_json();

}  // namespace mps_shim::kernel_checks
