// Loop fission: a kernel whose barriers all sit in uniform control flow runs a
// threadgroup as a sequence of loops over its threads ("lane loops"), one loop
// per stretch of code between barriers, instead of one fiber per thread. A
// barrier then costs nothing: every thread has finished the loop before it
// when the next loop starts. Metal requires every thread of a group to reach
// a barrier inside a conditional or loop if any does, so the conditions around
// barriers are evaluated once per group.
//
// What the splitter accepts (anything else keeps the kernel on fibers):
// - threadgroup_barrier / simdgroup_barrier as statements, directly in the
//   kernel body, inside blocks, if/else, for, while and do-while whose heads
//   use only group-wide names (buffer and scalar parameters, group-wide thread
//   attributes such as threads_per_threadgroup, loop variables of such loops);
// - no SIMD-group function, atomic polling or call to a function that reaches
//   a barrier (those need threads that can wait for each other);
// - a thread's variables that live across a barrier are declared with an
//   explicit type (not auto, not a reference, not an array) and one declarator:
//   they become one array element per thread;
// - threadgroup arrays are declared at block level, not inside a conditional.
// A `return;` between barriers ends that thread: later loops skip it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "frontend/call_graph.h"
#include "frontend/kernel_decl.h"
#include "frontend/lexer.h"

namespace mps_shim::host {

struct LaneLoopRequest {
  const frontend::LexedSource& source;
  const std::vector<std::optional<std::string>>& replacements;  // the parser's token rewrites
  size_t body_open, body_close;  // the kernel definition's braces
  const std::vector<frontend::ParamDecl>& params;
  uint32_t max_threads;  // the group's thread limit: size of the per-thread arrays
  // What a call may reach: SIMD-group functions (run as replayed statements),
  // or a barrier / atomic polling inside a statement (needs fibers).
  std::function<frontend::CallKind(std::string_view name)> call_kind;
  const std::vector<frontend::FunctionBody>& bodies;  // the library's functions, for inlining
  // Checked mode (runtime/checks.h): a barrier under a condition that differs
  // between threads is refused, so that such a kernel runs on fibers, where
  // synccheck sees which threads reach it.
  bool checked = false;
};

struct LaneLoopResult {
  std::optional<std::string> body;  // the group function's body, `{ ... }`
  std::string why_not;              // when there is no body
  // Lane versions of the library functions the kernel calls that reach a
  // barrier, each to be inserted after the token (its definition's `}`).
  std::vector<std::pair<size_t, std::string>> insertions;
};

LaneLoopResult split_at_barriers(const LaneLoopRequest& request);

// The preprocessed source of tokens [first, last] with `replacements` applied,
// its layout (so its line numbers) kept.
// `overrides` (may be null) take precedence over `replacements`.
std::string rewritten_text(const frontend::LexedSource& source, const std::vector<std::optional<std::string>>& replacements,
                           size_t first, size_t last, const std::map<size_t, std::string>* overrides = nullptr);

// A `#line` directive (on a line of its own) naming the line of token `tok`;
// `copy` names the file with kCopySuffix: the code is a lane-loop copy of the
// user's, whose diagnostics repeat those of the original.
std::string line_directive(const frontend::LexedSource& source, size_t tok, bool copy = false);
inline constexpr const char* kCopySuffix = " (lane loops)";

// The mps_host::ThreadIds member that holds an attribute's value in generated code.
const char* thread_ids_member(frontend::ThreadAttr attr);

}  // namespace mps_shim::host
