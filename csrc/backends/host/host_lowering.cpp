#include "backends/host/host_lowering.h"

#include <algorithm>
#include <map>
#include <set>

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
// is exactly the group's memory. Each declaration is followed by a check of
// its function's threadgroup objects so far against Metal's 32 KiB: those
// still visible there (an earlier branch's arrays are out of scope; the
// front end's per-kernel total counts them all where it knows the sizes).
void place_threadgroup_memory(const ParsedLibrary& library, TokenEdits& edits) {
  const auto& decls = library.threadgroup_decls;
  for (size_t i = 0; i < decls.size(); ++i) {
    const frontend::ThreadgroupDecl& d = decls[i];
    edits[d.keyword] = "static thread_local";
    std::string sum;
    for (size_t j = 0; j <= i; ++j) {
      const frontend::ThreadgroupDecl& e = decls[j];
      if (e.function != d.function || (e.function && (e.block_open > d.keyword || d.keyword > e.block_close))) continue;
      for (const frontend::ThreadgroupObject& o : e.objects) sum += (sum.empty() ? "sizeof(" : " + sizeof(") + o.name + ")";
    }
    if (sum.empty()) continue;  // declarators that are all pointers or references
    edits[d.end] = concat("; static_assert(", sum, " <= 32768, \"threadgroup memory exceeds Metal's 32 KiB limit\");");
  }
}

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
        [&](std::string_view name) { return frontend::call_kind(src, library.bodies, name); }, library.bodies};
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

// A [[function_constant(c)]] parameter exists where c is true.
bool constant_is_true(const ParsedLibrary& library, const LoweringOptions& options, const frontend::ParamDecl& p) {
  for (size_t c = 0; c < library.function_constants.size(); ++c) {
    if (library.function_constants[c].name != p.function_constant) continue;
    const std::optional<std::string>& v = c < options.constants.size() ? options.constants[c] : std::nullopt;
    return v && v->find_first_not_of('\0') != std::string::npos;
  }
  return false;
}

// `{ ... }` of a kernel the module does not hold (and its kernels do not
// call) becomes `{}`: the compiler neither checks nor instantiates it.
void leave_out_body(const frontend::LexedSource& source, const KernelDefinition& d, TokenEdits& edits) {
  for (size_t i = d.body_open + 1; i < d.last; ++i) edits[i] = std::string(source.tokens[i].text.size(), ' ');
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
  place_threadgroup_memory(library, edits);
  tag_simd_call_sites(source, library.bodies, edits);
  std::vector<KernelDecl> kernels;
  if (options.all_kernels) kernels = library.kernels;
  for (size_t k : options.kernels)
    if (!options.all_kernels) kernels.push_back(library.kernels.at(k));
  std::set<size_t> wanted;  // the definitions of the module's kernels, by body
  for (KernelDecl& k : kernels) {
    if (k.waits) k.execution = KernelDecl::Execution::Fibers;
    for (frontend::ParamDecl& p : k.params)
      p.absent = !p.function_constant.empty() && !constant_is_true(library, options, p);
    wanted.insert(k.body_open);
  }
  for (const KernelDefinition& d : library.definitions)
    if (wanted.count(d.body_open)) add_lane_loop_function(source, library, d, options, edits, kernels);
  add_reconvergence_points(source, library.bodies, edits);  // after the lane-loop copies: the fiber engine's alone
  frontend::specialise_function_constants(source, library, options.constants, edits);
  if (!options.all_kernels) {  // the other kernels' bodies are left out, unless the module's kernels call them
    std::set<size_t> reached;
    for (size_t body : wanted)
      for (const frontend::FunctionBody* b : frontend::reachable_bodies(source, library.bodies, body))
        reached.insert(b->open);
    for (const KernelDefinition& d : library.definitions)
      if (!reached.count(d.body_open)) leave_out_body(source, d, edits);
  }
  return {std::move(kernels), frontend::source_edits(source, edits)};
}

}  // namespace mps_shim::host
