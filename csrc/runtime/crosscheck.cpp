// The engine cross-check. Kernels that wait for each other run on one of two
// engines: lane loops (the host backend's loop fission, backends/host/lane_loops/: fast but a
// translation with many special cases) or fibers (the kernel body as written,
// one fiber per thread: slow, but it needs no translation). Lane loops are
// meant to be bit-identical to fibers for every kernel they accept; with
// MPS_SHIM_CROSSCHECK=1 every lane-loop dispatch proves it. The test suite
// turns it on for its threadgroup kernels (tests/conftest.py), so a
// translation bug shows as a failing dispatch instead of a subtly wrong number.
//
// Kernels write only through their buffers, so comparing the bytes every bound
// tensor can reach (bound address to the end of its storage) after each engine
// compares everything a kernel can change. Bindings may share or overlap
// memory, so snapshots are taken over the union of those ranges.
#include "runtime/crosscheck.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "util/error.h"

namespace mps_shim {

namespace {

struct Range {
  unsigned char* begin;
  unsigned char* end;
  std::vector<unsigned char> saved;  // before the dispatch, then the fibers' result
};

// The disjoint union of the buffers' ranges, in address order.
std::vector<Range> merge_ranges(const std::vector<CrosscheckBuffer>& buffers) {
  std::vector<std::pair<unsigned char*, unsigned char*>> spans;
  for (const CrosscheckBuffer& b : buffers)
    if (b.address && b.end > b.address) spans.emplace_back(b.address, b.end);
  std::sort(spans.begin(), spans.end());
  std::vector<Range> out;
  for (const auto& [begin, end] : spans) {
    if (!out.empty() && begin <= out.back().end)
      out.back().end = std::max(out.back().end, end);
    else
      out.push_back({begin, end, {}});
  }
  return out;
}

std::string hex_bytes(const unsigned char* p, size_t n) {
  std::string s;
  char buf[4];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%s%02x", i ? " " : "", p[i]);
    s += buf;
  }
  return s;
}

}  // namespace

bool crosscheck_enabled() {
  const char* env = std::getenv("MPS_SHIM_CROSSCHECK");
  return env && std::strcmp(env, "1") == 0;
}

void crosscheck_launch(CompiledKernel& kernel, void* const* args, const LaunchGrid& grid,
                       const std::vector<CrosscheckBuffer>& buffers) {
  const std::string& name = kernel.info().name;
  std::vector<Range> ranges = merge_ranges(buffers);
  for (Range& r : ranges) r.saved.assign(r.begin, r.end);

  std::string fiber_error;
  try {
    kernel.launch(args, grid, Engine::Fibers);
  } catch (const Error& e) {
    fiber_error = e.what();
  }
  for (Range& r : ranges) {  // swap: memory gets the inputs back, `saved` keeps the fibers' result
    for (size_t i = 0, n = size_t(r.end - r.begin); i < n; ++i) std::swap(r.begin[i], r.saved[i]);
  }

  kernel.launch(args, grid);  // lane loops: its own failure is reported as usual
  MPS_SHIM_CHECK_AS(DispatchError, fiber_error.empty(), "kernel '", name,
                    "': engine cross-check (MPS_SHIM_CROSSCHECK): lane loops completed but on fibers the dispatch "
                    "failed: ", fiber_error);

  for (const Range& r : ranges) {
    const size_t n = size_t(r.end - r.begin);
    if (std::memcmp(r.begin, r.saved.data(), n) == 0) continue;
    size_t first = 0;
    while (r.begin[first] == r.saved[first]) ++first;
    size_t differing = 0;
    for (size_t i = first; i < n; ++i) differing += r.begin[i] != r.saved[i];
    unsigned char* at = r.begin + first;
    // Name the binding that starts closest below the difference (the innermost of overlapping views).
    const CrosscheckBuffer* owner = nullptr;
    for (const CrosscheckBuffer& b : buffers)
      if (b.address <= at && at < b.end && (!owner || b.address > owner->address)) owner = &b;
    const size_t offset = size_t(at - owner->address);
    // An 8-byte window, aligned from the binding's start, holding the first difference.
    const size_t window = offset / 8 * 8;
    const size_t len = std::min<size_t>(8, size_t(owner->end - owner->address) - window);
    const size_t in_range = size_t(owner->address + window - r.begin);
    fail<DispatchError>("kernel '", name, "': engine cross-check (MPS_SHIM_CROSSCHECK): lane loops and fibers "
                        "differ in buffer ", owner->binding, " ('", owner->param->name, "', ", owner->param->type,
                        ") at byte offset ", offset, " (", differing, " differing bytes in all); bytes ",
                        window, "..", window + len - 1, ": fibers ", hex_bytes(r.saved.data() + in_range, len),
                        ", lane loops ", hex_bytes(r.begin + in_range, len));
  }
}

}  // namespace mps_shim
