#include "backends/host/host_lowering.h"

#include <algorithm>
#include <map>
#include <set>

#include "backends/common/lowering.h"
#include "backends/host/checked_lowering.h"
#include "backends/host/lane_loops.h"
#include "backends/host/simd_sites.h"
#include "frontend/call_graph.h"
#include "util/error.h"

namespace mps_shim::host {

using frontend::KernelDecl;
using frontend::KernelDefinition;
using frontend::ParsedLibrary;
using frontend::TokenEdits;

namespace {

// A threadgroup's threads all run on one OS thread and one threadgroup runs
// on an OS thread at a time, so a function-local `static thread_local` object
// is exactly the group's memory.
constexpr const char* kThreadgroupStorage = "static thread_local";

// True when the body or a function it may call names a SIMD-group matrix
// function (mps_metal_simdgroup_matrix.h), which only fibers run.
bool uses_simdgroup_matrices(const frontend::LexedSource& src, const ParsedLibrary& library, size_t body_open) {
  for (const frontend::FunctionBody* b : frontend::reachable_bodies(src, library.bodies, body_open))
    for (size_t k = b->open; k < b->close; ++k) {
      if (frontend::is_simdgroup_matrix_function(src.tokens[k].text) && k + 1 < b->close &&
          src.tokens[k + 1].is("("))
        return true;
    }
  return false;
}

// Kernels of definition `d` that need their threads to wait for each other
// run as lane loops when the splitter accepts the body: the group function
// `NAME__mps_lanes(params..., mps_host::GroupLanes&)` follows the definition.
void add_lane_loop_function(const frontend::LexedSource& src, const ParsedLibrary& library, const KernelDefinition& d,
                            const LoweringOptions& options, TokenEdits& edits, std::vector<KernelDecl>& kernels) {
  std::vector<KernelDecl*> mine;
  uint32_t max_threads = 1;
  for (KernelDecl& k : kernels)
    if (k.body_open == d.body_open && k.execution == KernelDecl::Execution::Fibers) {
      mine.push_back(&k);
      max_threads = std::max(max_threads, k.max_threads);
    }
  if (mine.empty()) return;
  LaneLoopResult split;
  const int first_line = src.tokens[d.body_open].line, last_line = src.tokens[d.last].line;
  const bool copy_failed = std::any_of(options.lane_loop_error_lines.begin(), options.lane_loop_error_lines.end(),
                                       [&](int line) { return line >= first_line && line <= last_line; });
  if (!options.lane_loops) {
    split.why_not = options.lane_loops_off_reason;
  } else if (copy_failed) {
    split.why_not = concat("its lane-loop translation did not compile (", options.lane_loop_error, ")");
  } else if (d.specialisation) {
    split.why_not = "an explicit specialisation";
  } else if (uses_simdgroup_matrices(src, library, d.body_open)) {
    split.why_not = "it uses SIMD-group matrices (their products gather lanes on fibers)";
  } else {
    const LaneLoopRequest request{
        src, edits, d.body_open, d.last, d.params, max_threads,
        [&](std::string_view name) { return frontend::call_kind(src, library.bodies, name); }, library.bodies,
        options.checked};
    split = split_at_barriers(request);
  }
  if (!split.body) {
    for (KernelDecl* k : mine) k->execution_note = split.why_not;
    return;
  }
  std::string fn = "}\n";
  if (d.template_close) fn += rewritten_text(src, edits, d.first, d.template_close) + "\n";
  fn += concat("MPS_SHIM_KERNEL void ", d.name, "__mps_lanes", rewritten_text(src, edits, d.lparen, d.rparen - 1),
               d.rparen > d.lparen + 1 ? ", " : "", "mps_host::GroupLanes& mps_g)");
  fn += *split.body + line_directive(src, d.last);
  edits[d.last] = fn;
  for (const auto& [tok, text] : split.insertions)  // after the definitions of the functions it inlines
    edits[tok] = (edits[tok] ? *edits[tok] : std::string(src.tokens[tok].text)) + "\n" + text +
                 line_directive(src, tok);
  for (KernelDecl* k : mine) k->execution = KernelDecl::Execution::LaneLoops;
}

}  // namespace

const char* thread_ids_member(frontend::ThreadAttr attr) {
  using frontend::ThreadAttr;
  switch (attr) {
    case ThreadAttr::ThreadPositionInGrid: return "in_grid";
    case ThreadAttr::ThreadPositionInThreadgroup: return "in_group";
    case ThreadAttr::ThreadgroupPositionInGrid: return "group";
    case ThreadAttr::ThreadsPerGrid: return "grid_size";
    case ThreadAttr::ThreadsPerThreadgroup: return "group_size";
    case ThreadAttr::ThreadgroupsPerGrid: return "groups";
    case ThreadAttr::ThreadIndexInThreadgroup: return "index_in_group";
    case ThreadAttr::DispatchThreadsPerThreadgroup: return "dispatch_group";
    case ThreadAttr::ThreadIndexInSimdgroup: return "simd_lane";
    case ThreadAttr::SimdgroupIndexInThreadgroup: return "simd_group";
    case ThreadAttr::ThreadsPerSimdgroup: return "simd_width";
    case ThreadAttr::ThreadExecutionWidth: return "simd_width";
    case ThreadAttr::SimdgroupsPerThreadgroup: return "simd_groups";
    case ThreadAttr::DispatchSimdgroupsPerThreadgroup: return "dispatch_simd_groups";
    case ThreadAttr::ThreadIndexInQuadgroup: return "quad_lane";
    case ThreadAttr::QuadgroupIndexInThreadgroup: return "quad_group";
    case ThreadAttr::QuadgroupsPerThreadgroup: return "quad_groups";
    case ThreadAttr::DispatchQuadgroupsPerThreadgroup: return "dispatch_quad_groups";
    case ThreadAttr::None: break;
  }
  return "";
}

HostLibrary lower_for_host(const frontend::LexedSource& source, const ParsedLibrary& library,
                           const LoweringOptions& options) {
  TokenEdits edits = library.edits;
  lowering::place_threadgroup_memory(library, kThreadgroupStorage, edits);
  tag_simd_call_sites(source, library.bodies, edits);
  std::vector<KernelDecl> kernels =
      lowering::module_kernels(library, options.all_kernels, options.kernels, options.constants);
  std::set<size_t> wanted;  // the definitions of the module's kernels, by body
  for (KernelDecl& k : kernels) {
    if (k.waits) k.execution = KernelDecl::Execution::Fibers;
    wanted.insert(k.body_open);
  }
  // Checked mode's classes go in first: the lane-loop copies carry them too.
  if (options.checked && options.check_buffers) {
    wrap_device_pointers(source, library, kernels, edits);
    wrap_threadgroup_arrays(source, library, edits);
  }
  for (const KernelDefinition& d : library.definitions)
    if (wanted.count(d.body_open)) add_lane_loop_function(source, library, d, options, edits, kernels);
  if (options.checked && !options.check_buffers)
    for (KernelDecl& k : kernels)
      k.execution_note = concat(k.execution_note, k.execution_note.empty() ? "" : "; ",
                                "checked mode: its memory accesses are not checked (", options.buffers_unchecked_reason, ")");
  add_reconvergence_points(source, library.bodies, edits);  // after the lane-loop copies: the fiber engine's alone
  frontend::specialise_function_constants(source, library, options.constants, edits);
  if (!options.all_kernels) lowering::leave_out_other_kernels(source, library, kernels, edits);
  return {std::move(kernels), options.checked, frontend::source_edits(source, edits)};
}

}  // namespace mps_shim::host
