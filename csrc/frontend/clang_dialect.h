// Metal's compiler is Clang; g++ rejects some of what Clang accepts. Each
// rewrite here turns one such construct into the standard C++ that means the
// same, token by token (kept on its line, so diagnostics still point there).
//   - GNU range designators: `float s[N] = { [0 ... N-1] = 0.0f };` becomes
//     `float s[N] = {}; for (...) s[i] = 0.0f;` (elements outside the range
//     are zero, as in Clang).
//   - Explicit specialisation of a member function template inside its class
//     (`template <> complex64_t operator()(complex64_t, complex64_t)`): the
//     `template <>` goes, leaving an overload that wins for the same arguments.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "frontend/lexer.h"

namespace mps_shim::frontend {

// Sets replacement texts for the tokens of Clang-only constructs; runs after
// the parser's own token edits, whose texts it keeps.
void rewrite_clang_dialect(const LexedSource& source, std::vector<std::optional<std::string>>& replacements);

}  // namespace mps_shim::frontend
