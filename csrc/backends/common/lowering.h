// Lowerings every backend applies to the front end's description of a library
// (frontend/kernel_decl.h), each with its own spelling where they differ.
#pragma once

#include "frontend/function_constants.h"
#include "frontend/kernel_decl.h"
#include "frontend/lexer.h"

namespace mps_shim::lowering {

// `threadgroup T x[N];` becomes `<storage> T x[N];` (the host: a function-local
// `static thread_local`; CUDA: `__shared__`), each declaration followed by a
// check against Metal's 32 KiB of its function's threadgroup objects visible
// there (the front end's per-kernel total counts them all where it knows the sizes).
void place_threadgroup_memory(const frontend::ParsedLibrary& library, const char* storage,
                              frontend::TokenEdits& edits);

// A [[function_constant(c)]] parameter exists where c is true.
bool constant_is_true(const frontend::ParsedLibrary& library, const frontend::ConstantValues& constants,
                      const frontend::ParamDecl& p);

// The kernels a module holds, with the parameters absent in its specialisation marked.
std::vector<frontend::KernelDecl> module_kernels(const frontend::ParsedLibrary& library, bool all_kernels,
                                                 const std::vector<size_t>& indices,
                                                 const frontend::ConstantValues& constants);

// The bodies of the kernels outside `wanted` (by body), unless a wanted one
// calls them, become `{}`: the compiler neither checks nor instantiates them.
void leave_out_other_kernels(const frontend::LexedSource& source, const frontend::ParsedLibrary& library,
                             const std::vector<frontend::KernelDecl>& wanted, frontend::TokenEdits& edits);

// Generated code for kernel `k` (its entry point, records) with every line
// marked as the kernel's line: what the compiler finds wrong there (a
// parameter type, an instantiation that names no function) is reported at the
// kernel's declaration in the user's source.
std::string at_kernel_line(const std::string& code, const frontend::KernelDecl& k);

// [[max_total_threads_per_threadgroup(EXPR)]] with a constant expression: a
// constexpr function `mps_shim_max_threads_<index>` evaluating it where the
// kernel is defined (its namespaces, its template parameters), checked at the
// attribute's line; "" for a literal count.
std::string max_threads_function(const frontend::KernelDecl& k, size_t index);
// The kernel's max threads as a C++ expression: the literal, or a call of that function.
std::string max_threads_value(const frontend::KernelDecl& k, size_t index);

// `s` as a C++ string literal (for generated code: names, file names in #line).
std::string quoted(const std::string& s);

// The preprocessed text with `edits` applied.
std::string apply_edits(const std::string& preprocessed, const std::vector<frontend::Edit>& edits);

}  // namespace mps_shim::lowering
