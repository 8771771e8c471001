// Call sites of Metal's SIMD-group functions, told to the engine: every call
// of one of Metal's own gets a first argument `mps_host::simd::Site<N>()`
// (N grows with the position in the source), so that the fiber engine matches
// a SIMD-group's operations by call site rather than by arrival order: lanes
// on a divergent path (`if (t < 1) r = simd_max(v); s = simd_sum(v);`) do not
// pair up with the others' call.
#pragma once

#include <optional>
#include <set>
#include <string_view>
#include <string>
#include <vector>

#include "frontend/call_graph.h"
#include "frontend/lexer.h"

namespace mps_shim::host {

using frontend::FunctionBody;
using frontend::LexedSource;

// A call of one of Metal's own functions named at token k — `f(`, `metal::f(`
// or `::metal::f(` (not `c10::metal::f(`), where an unqualified f is no member and no function of the
// library's (c10 defines `simd_sum` wrappers of its own) — from its first
// token; npos otherwise. Tokens before `first` are not looked at.
size_t metal_call_start(const std::vector<frontend::Token>& t, size_t k, size_t first,
                        const std::set<std::string_view>& library_functions);

// Rewrites the `(` of each such call in `replacements` (left alone where it has one).
void tag_simd_call_sites(const LexedSource& source, const std::vector<FunctionBody>& bodies,
                         std::vector<std::optional<std::string>>& replacements);

// Where a divergent path ends: after each if/for/while/do that calls SIMD-group
// functions (directly or through the library's functions), the fiber engine
// waits until the SIMD-group's active lanes all got there
// (`mps_host::simd::reconverge<N>()`), as a GPU reconverges lanes after a
// branch; so lanes that finished a branch early do not meet the others' calls
// of a later iteration. Applied to the kernels' and functions' own text only:
// call it after the lane-loop copies were written.
void add_reconvergence_points(const LexedSource& source, const std::vector<FunctionBody>& bodies,
                              std::vector<std::optional<std::string>>& replacements);

}  // namespace mps_shim::host
