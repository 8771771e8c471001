// Checked mode's lowering (runtime/checks.h): device and constant pointers
// the translation can see become checked pointers (mps_host::checked::dptr,
// metal_include/host/mps_host_checked.h) that carry their buffer's bounds:
// - the module's kernels' pointer parameters (`device T* p`, `constant T* p`),
//   bound with the buffer index and the bytes from the bound address to the
//   end of its allocation;
// - casts to address-space pointers, `(device T*)x` and
//   `reinterpret_cast<device T*>(x)` / `static_cast`, which keep the bounds
//   of a checked operand (and check alignment for the new type);
// - local `device T* p = ...;` declarations in the kernels' bodies.
// A checked pointer converts to a plain one wherever one is needed (calling
// a helper, storing into a plain pointer): accesses through that plain
// pointer are not checked. Atomic pointees stay plain (atomic functions take
// plain pointers). A translation the compiler rejects is rebuilt without
// these edits (module_builder.cpp), so checked mode never fails a kernel.
#pragma once

#include <vector>

#include "frontend/kernel_decl.h"
#include "frontend/lexer.h"

namespace mps_shim::host {

// `threadgroup T a[N];` (one array per declaration, in a function, not atomic)
// becomes mps_host::checked::tg_array<T, (N), Tag>: bounds, racecheck and
// initcheck on its elements. Runs after place_threadgroup_memory.
void wrap_threadgroup_arrays(const frontend::LexedSource& source, const frontend::ParsedLibrary& library,
                             frontend::TokenEdits& edits);

void wrap_device_pointers(const frontend::LexedSource& source, const frontend::ParsedLibrary& library,
                          const std::vector<frontend::KernelDecl>& kernels, frontend::TokenEdits& edits);

}  // namespace mps_shim::host
