// Which kernels may reach a barrier or a SIMD-group function. Name-based and
// conservative: a call reaches every function of that name defined in the
// library (overloads and templates alike), so a kernel is never put on the
// sequential path when one of its threads might wait for another.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "frontend/lexer.h"

namespace mps_shim::frontend {

struct FunctionBody {
  std::string name;    // "operator()" for a call operator
  size_t open, close;  // the braces
  // A member function's class, by its name and the aliases the library gives
  // it (`using K = GEMVKernel<T, ...>`); empty for a free function. A call
  // `K::run(...)` reaches only the `run`s of the classes named K, when it
  // names any; otherwise every `run`.
  std::vector<std::string> class_names;
  // Names it calls that do not name the function called: its parameters and
  // non-type template parameters (a function bound by the caller or the
  // instantiation, `template <fn_t f> ... f(x)`), and `x` in `x(...)(...)`
  // (a callable object made and called). Such a call may reach any
  // indirect target.
  std::vector<std::string> indirect_calls;
  // A call operator, or a function named as a value (a template or call
  // argument, `&f`, `= f`): what an indirect call may run.
  bool indirect_target = false;
};

// Bodies of functions defined at namespace or class scope, call operators included.
std::vector<FunctionBody> function_bodies(const LexedSource& source);

// True when the body opening at `body_open` calls, directly or through the
// library's functions, threadgroup_barrier, simdgroup_barrier, a simd_*/quad_* function, or polls
// an atomic (atomic_load_explicit, atomic_compare_exchange_weak_explicit).
bool reaches_threadgroup_functions(const LexedSource& source, const std::vector<FunctionBody>& bodies,
                                   size_t body_open);

// The body at `body_open` and the bodies of every library function it may
// call, directly or through others (name-based, as above), each once.
std::vector<const FunctionBody*> reachable_bodies(const LexedSource& source, const std::vector<FunctionBody>& bodies,
                                                  size_t body_open);

// simdgroup_load, _store, _multiply, _multiply_accumulate: the SIMD-group matrix
// functions that exchange values between lanes (fibers only).
bool is_simdgroup_matrix_function(std::string_view name);

// What a call to `name` may reach, directly or through the library's functions
// of that name.
enum class CallKind {
  Plain,  // none of them
  Simd,   // SIMD-group / quad-group functions only
  Wait,   // a barrier, or atomic polling
};
CallKind call_kind(const LexedSource& source, const std::vector<FunctionBody>& bodies, std::string_view name);

// The Metal function behind one of Apple's internal SIMD-group builtins
// (`__metal_simd_sum` is `simd_sum`; MLX's bf16_math.h wraps them), so that
// every list of Metal's SIMD-group functions counts the builtins too; any
// other name as it is.
std::string_view metal_builtin_name(std::string_view name);

}  // namespace mps_shim::frontend
