// Functions overloaded on address space. Metal allows
//     float load(device const float* p);   float load(threadgroup const float* p);
// and member functions qualified `const device` / `const threadgroup`; once the
// host engine erases address spaces (it has one memory), such overloads would
// be redefinitions. Where their bodies are identical after erasure they mean
// the same thing here, so all but the first are dropped; where the bodies
// differ there is no faithful translation and it is a compile error. The same
// holds for class template specialisations on an address space
// (`struct pointer_element<device T*>`).
#pragma once

#include <vector>

#include "frontend/lexer.h"

namespace mps_shim::frontend {

struct TokenRange {
  size_t first, last;  // inclusive
};

// The definitions to drop. Throws CompileError for overloads that differ.
std::vector<TokenRange> redundant_address_space_overloads(const LexedSource& source);

}  // namespace mps_shim::frontend
