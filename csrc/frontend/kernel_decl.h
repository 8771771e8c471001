// The front end's backend-neutral description of a Metal library: its kernels,
// their parameters and bindings, the token edits that turn the Metal dialect
// into C++ (address spaces erased, literals typed, kernel markers removed), and
// what a backend's lowerings need to find in the source (kernel definitions,
// threadgroup declarations, function bodies). Backends lower it further
// (backends/host/host_lowering.h); nothing here is specific to one of them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "frontend/call_graph.h"

namespace mps_shim::frontend {

enum class AddressSpace { None, Device, Constant, Threadgroup, Thread };

// Where a thread-position parameter gets its value. Tables in the backends
// are indexed by this enum: keep the order.
enum class ThreadAttr {
  None,
  ThreadPositionInGrid,
  ThreadPositionInThreadgroup,
  ThreadgroupPositionInGrid,
  ThreadsPerGrid,
  ThreadsPerThreadgroup,
  ThreadgroupsPerGrid,
  ThreadIndexInThreadgroup,
  DispatchThreadsPerThreadgroup,
  ThreadIndexInSimdgroup,
  SimdgroupIndexInThreadgroup,
  ThreadsPerSimdgroup,
  SimdgroupsPerThreadgroup,
  ThreadExecutionWidth,
  DispatchSimdgroupsPerThreadgroup,
  ThreadIndexInQuadgroup,
  QuadgroupIndexInThreadgroup,
  QuadgroupsPerThreadgroup,
  DispatchQuadgroupsPerThreadgroup,
};

enum class ParamRole { Buffer, Scalar, ThreadPosition, Threadgroup };

struct ParamDecl {
  std::string name;
  std::string type;  // as written, attributes dropped
  AddressSpace space = AddressSpace::None;
  ParamRole role = ParamRole::Buffer;
  ThreadAttr thread_attr = ThreadAttr::None;
  int binding = -1;       // buffer index for Buffer and Scalar, threadgroup index for Threadgroup
  std::string attribute;  // the attribute as written, e.g. "buffer(2)"
  int line = 0;
  // [[function_constant(c)]]: the parameter exists only in specialisations
  // where the function constant c is true; `absent` is set by a backend's
  // lowering for one where it is not (the kernel then receives a null binding).
  std::string function_constant;
  bool absent = false;
};

struct KernelDecl {
  std::string host_name;      // the name get_kernel_function looks up
  std::string function;       // the C++ function to call
  std::string template_args;  // "<float>" for template instantiations
  std::vector<ParamDecl> params;
  uint32_t max_threads = 1024;
  // [[max_total_threads_per_threadgroup(EXPR)]] with a constant expression (not a
  // literal): its text, the attribute's line, and what the backend needs to evaluate
  // it where the kernel is defined: `template <...>` (templates) and the namespaces.
  std::string max_threads_expr;
  int max_threads_line = 0;
  std::string max_threads_file;
  std::string template_header;
  std::string scope;  // "a::b::"
  uint32_t threadgroup_memory = 0;  // bytes of the threadgroup arrays of known size it reaches
  int line = 0;
  std::string file;  // where `line` is: the kernel's instantiation (or definition)
  // True when a parameter needs the threadgroup structure (group ids or sizes);
  // otherwise a backend may iterate the grid directly.
  bool uses_threadgroups = false;
  // The kernel may reach a barrier, SIMD-group function or atomic polling
  // (call_graph.h): its threads may wait for each other.
  bool waits = false;
  // How a threadgroup's threads run: the backend decides (the front end leaves
  // Independent). Keep the values: modules record them.
  enum class Execution : int {
    Independent = 0,  // no thread waits for another: one after another (vectorisable)
    Fibers = 1,       // threads may wait for each other anywhere: one fiber per thread
    LaneLoops = 2,    // barriers in uniform control flow only: <function>__mps_lanes runs
                      // one loop over the threads per stretch between barriers (backends/host/lane_loops.h)
  };
  Execution execution = Execution::Independent;
  std::string execution_note;  // for Fibers: why the kernel could not run as lane loops
  size_t body_open = 0;  // token index of the definition's body, for analyses
  // The function constants it may read (indices into ParsedLibrary::function_constants).
  std::vector<size_t> function_constants;
};

struct Edit {
  size_t offset;
  size_t length;
  std::string replacement;
};

// One optional replacement text per token of the lexed source.
using TokenEdits = std::vector<std::optional<std::string>>;

// A kernel's definition (template or not), by token index.
struct KernelDefinition {
  std::string name;
  size_t first = 0;           // the declaration's first token (`template` for templates)
  size_t template_close = 0;  // the `>` closing the template header; 0 for a plain function
  size_t lparen = 0, rparen = 0, body_open = 0, last = 0;  // parameter list and body (last: its `}`)
  bool specialisation = false;  // an explicit specialisation: `kernel void f<float>(...)`
  std::vector<ParamDecl> params;
};

// A threadgroup object, with its size in bytes when the front end knows it
// (Metal scalar and vector types, literal extents).
struct ThreadgroupObject {
  std::string name;
  std::optional<uint64_t> bytes;
};

// `threadgroup T a[N], b;`: memory shared by one threadgroup's threads.
// Threadgroup pointers and references are erased by the edits instead.
struct ThreadgroupDecl {
  size_t keyword = 0, end = 0;  // the `threadgroup` token and the declaration's `;`
  size_t function = 0;          // the enclosing function body's `{` (0 at namespace scope)
  size_t block_open = 0, block_close = 0;  // the innermost enclosing block's `{` and `}`: where the names are visible
  std::vector<ThreadgroupObject> objects;
};

// A Metal scalar or vector type a function constant may have, by its
// MTLDataType code (the values of mps_shim.h's MPS_SHIM_DATA_TYPE_*).
struct ConstantType {
  uint32_t code = 0;   // MTLDataType: MTLDataTypeShort = 37, ...
  std::string name;    // Metal's spelling: "short", "float4"
  char scalar = 0;     // 'b' bool, 'i' signed, 'u' unsigned, 'h' half, 'B' bfloat, 'f' float
  uint32_t scalar_size = 0;
  uint32_t lanes = 1;  // 1 for scalars; a value holds `lanes` packed scalars (a 3-vector 3)
  uint32_t size() const { return scalar_size * lanes; }
};

struct FunctionConstant {
  std::string name;
  std::string type_text;  // as declared: "int32_t"
  ConstantType type;
  uint32_t index = 0;
  int line = 0;
  size_t first = 0, last = 0;  // the declaration's tokens, `constant` ... `;`
  bool optional = false;       // named by is_function_constant_defined somewhere in the library
};

// `is_function_constant_defined(name)`: tokens [first, last] and which constant.
struct DefinedCheck {
  size_t first = 0, last = 0;
  size_t constant = 0;  // index into ParsedLibrary::function_constants
};

struct ParsedLibrary {
  std::vector<KernelDecl> kernels;
  std::vector<KernelDefinition> definitions;
  std::vector<ThreadgroupDecl> threadgroup_decls;  // in source order
  std::vector<FunctionBody> bodies;  // the library's functions (call_graph.h)
  TokenEdits edits;  // Metal -> C++ spelling, per token
  std::vector<FunctionConstant> function_constants;  // in source order (function_constants.h)
  std::vector<DefinedCheck> defined_checks;          // is_function_constant_defined calls
};

// The edits as (offset, length, text) of the preprocessed source, sorted, never overlapping.
std::vector<Edit> source_edits(const LexedSource& source, const TokenEdits& edits);

}  // namespace mps_shim::frontend
