// The host engine's metal_stdlib: Metal's types and functions as plain C++,
// force-included before every translated library. It includes no C library
// header, so POSIX names such as `select` or the C `exp(double)` never compete
// with Metal's overloads; math goes through GCC builtins.
//
// This part is Metal's standard library (types, functions, built-in names);
// the execution engine is host/mps_host_engine.h. Reached only through
// mps_host_metal.h (which defines MPS_HOST_METAL_H first).
#ifndef MPS_METAL_STDLIB_H
#define MPS_METAL_STDLIB_H
#ifndef MPS_HOST_METAL_H
#error "include mps_host_metal.h instead"
#endif

#ifdef MPS_SHIM_CUDA
#include "../cuda_engine/mps_cuda_platform.h"
#include "mps_host_vmath.h"
#else
#include <stddef.h>
#include <stdint.h>

#include <initializer_list>
#include <limits>
#include <type_traits>
#include <utility>

#include "../host/mps_host_launch.h"
#include "mps_host_vmath.h"
#include "../host/mps_host_fibers.h"

#define MPS_SHIM_INLINE inline __attribute__((always_inline))
#define MPS_SHIM_KERNEL static inline __attribute__((always_inline))
#define MPS_SHIM_ENTRY __attribute__((visibility("default")))
// Rare paths kept out of the callers' code.
#define MPS_SHIM_OUT_OF_LINE __attribute__((noinline))
#endif
// Declares a library overload on one concrete vector type as a template with no
// deducible parameter: it converts arguments exactly like the non-template
// overload Metal has (nothing is deduced from them), but its body, and so the
// vector type with its hundreds of swizzle members, is instantiated only if a
// kernel calls it. That keeps the compatibility header cheap to compile.
#define MPS_VECTOR_OVERLOAD template <int = 0> MPS_SHIM_INLINE

// ---- scalar types ----------------------------------------------------------
typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;
#ifndef MPS_SHIM_CUDA  // the CUDA platform header defines half
typedef _Float16 half;
#endif

namespace metal {

// Metal's built-in types that C++ has no type for are classes here (bfloat;
// the vectors in mps_metal_vector.h), in a namespace of their own that holds
// nothing but them and their operators: as for Apple's built-in types,
// argument-dependent lookup then finds no other function (a call
// `simd_max(x)` on a bfloat inside c10::metal sees c10's own simd_max only,
// never metal::simd_max too).
namespace types {

// bfloat16: stored as the top half of a float, rounded to nearest even.
// Constant expressions like Apple's built-in type (MLX's complex.h
// static_asserts on bfloat arithmetic).
struct bfloat {
  uint16_t bits;
  bfloat() = default;
  MPS_SHIM_INLINE constexpr bfloat(float f) : bits(round_bits(__builtin_bit_cast(uint32_t, f))) {}
  template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T> || std::is_same_v<T, half>>>
  MPS_SHIM_INLINE constexpr bfloat(T v) : bfloat(float(v)) {}
  MPS_SHIM_INLINE constexpr operator float() const { return __builtin_bit_cast(float, uint32_t(bits) << 16); }

 private:
  static constexpr uint16_t round_bits(uint32_t u) {
    return (u & 0x7fffffffu) > 0x7f800000u ? uint16_t((u >> 16) | 0x40u)
                                           : uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
};

#define MPS_BF_BINARY(op)                                                                                      \
  MPS_SHIM_INLINE constexpr bfloat operator op(bfloat a, bfloat b) { return bfloat(float(a) op float(b)); }    \
  MPS_SHIM_INLINE constexpr float operator op(bfloat a, float b) { return float(a) op b; }                     \
  MPS_SHIM_INLINE constexpr float operator op(float a, bfloat b) { return a op float(b); }                     \
  template <typename I, typename = std::enable_if_t<std::is_integral_v<I>>>                                   \
  MPS_SHIM_INLINE constexpr bfloat operator op(bfloat a, I b) { return bfloat(float(a) op float(b)); }         \
  template <typename I, typename = std::enable_if_t<std::is_integral_v<I>>>                                   \
  MPS_SHIM_INLINE constexpr bfloat operator op(I a, bfloat b) { return bfloat(float(a) op float(b)); }         \
  MPS_SHIM_INLINE constexpr bfloat& operator op##=(bfloat & a, bfloat b) { return a = a op b; }
MPS_BF_BINARY(+)
MPS_BF_BINARY(-)
MPS_BF_BINARY(*)
MPS_BF_BINARY(/)
#undef MPS_BF_BINARY
#define MPS_BF_COMPARE(op)                                                                                     \
  MPS_SHIM_INLINE constexpr bool operator op(bfloat a, bfloat b) { return float(a) op float(b); }              \
  MPS_SHIM_INLINE constexpr bool operator op(bfloat a, float b) { return float(a) op b; }                      \
  MPS_SHIM_INLINE constexpr bool operator op(float a, bfloat b) { return a op float(b); }
MPS_BF_COMPARE(<)
MPS_BF_COMPARE(>)
MPS_BF_COMPARE(<=)
MPS_BF_COMPARE(>=)
MPS_BF_COMPARE(==)
MPS_BF_COMPARE(!=)
#undef MPS_BF_COMPARE
MPS_SHIM_INLINE constexpr bfloat operator-(bfloat a) { bfloat r = a; r.bits ^= 0x8000u; return r; }

}  // namespace types

using types::bfloat;

namespace detail {

// A literal 0 that is a whole operand of `?:` whose other operand is not a
// literal (the front end rewrites it: parser.cpp): it converts to the other
// operand's type (a bfloat, a vector, any arithmetic or enumeration type, a
// pointer) and
// nothing converts to it, so the conditional takes that type, as Metal's usual
// arithmetic conversions give a bfloat or vector operand.
struct literal_zero {
  template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T> || std::is_same_v<T, half> ||
                                                    std::is_enum_v<T> ||
                                                    (std::is_class_v<T> && std::is_constructible_v<T, int>)>>
  MPS_SHIM_INLINE constexpr operator T() const { return T(0); }
  template <typename T>
  MPS_SHIM_INLINE constexpr operator T*() const { return nullptr; }
};

}  // namespace detail

}  // namespace metal

#include "mps_metal_vector.h"
#include "mps_metal_matrix.h"

namespace metal {

template <typename T> struct is_vector : std::false_type {};
template <typename T, int N> struct is_vector<vec<T, N>> : std::true_type {};

// Element type and lane count of a vector; a scalar is its own element, 1 lane.
template <typename V> struct vector_traits { using element = V; static constexpr int size = 1; };
template <typename T, int N> struct vector_traits<vec<T, N>> { using element = T; static constexpr int size = N; };

// Applies f lane by lane.
template <typename T, int N, typename F>
MPS_SHIM_INLINE auto lanes(F f, const vec<T, N>& a) {
  vec<decltype(f(a[0])), N> r;
  for (int i = 0; i < N; ++i) r[i] = f(a[i]);
  return r;
}
template <typename T, int N, typename F>
MPS_SHIM_INLINE auto lanes(F f, const vec<T, N>& a, const vec<T, N>& b) {
  vec<decltype(f(a[0], b[0])), N> r;
  for (int i = 0; i < N; ++i) r[i] = f(a[i], b[i]);
  return r;
}
template <typename T, int N, typename F>
MPS_SHIM_INLINE auto lanes(F f, const vec<T, N>& a, const vec<T, N>& b, const vec<T, N>& c) {
  vec<decltype(f(a[0], b[0], c[0])), N> r;
  for (int i = 0; i < N; ++i) r[i] = f(a[i], b[i], c[i]);
  return r;
}

#define MPS_VEC_ALIASES(T, name)      \
  typedef vec<T, 2> name##2;          \
  typedef vec<T, 3> name##3;          \
  typedef vec<T, 4> name##4;          \
  typedef packed_vec<T, 2> packed_##name##2; \
  typedef packed_vec<T, 3> packed_##name##3; \
  typedef packed_vec<T, 4> packed_##name##4;
MPS_VEC_ALIASES(float, float)
MPS_VEC_ALIASES(half, half)
MPS_VEC_ALIASES(bfloat, bfloat)
MPS_VEC_ALIASES(int, int)
MPS_VEC_ALIASES(uint, uint)
MPS_VEC_ALIASES(short, short)
MPS_VEC_ALIASES(ushort, ushort)
MPS_VEC_ALIASES(char, char)
MPS_VEC_ALIASES(uchar, uchar)
MPS_VEC_ALIASES(long, long)
MPS_VEC_ALIASES(ulong, ulong)
MPS_VEC_ALIASES(bool, bool)
#undef MPS_VEC_ALIASES

}  // namespace metal

#include "mps_metal_traits.h"
#include "mps_metal_integer.h"
#include "mps_metal_atomic.h"

namespace metal {

// Reinterprets the bits of a value as another type of the same size.
template <typename To, typename From>
MPS_SHIM_INLINE constexpr To as_type(const From& v) {
  static_assert(sizeof(To) == sizeof(From), "as_type needs types of equal size");
  if constexpr (std::is_trivially_copyable_v<To> && std::is_trivially_copyable_v<From>) {
    return __builtin_bit_cast(To, v);  // usable in constant expressions
  } else {  // vectors: their swizzle members make copying non-trivial
    To r;
    __builtin_memcpy(&r, &v, sizeof(To));
    return r;
  }
}


enum class mem_flags { mem_none = 0, mem_device = 1, mem_threadgroup = 2, mem_texture = 4 };

// <metal_uniform>: uniform<T> promises Apple's compiler that every thread holds the same value (a
// scheduling hint there); here a uniform value is simply the value, with all of T's operations.
template <typename T>
using uniform = T;
template <typename T>
MPS_SHIM_INLINE constexpr T make_uniform(const T& v) { return v; }


}  // namespace metal

// Metal's common, math, relational and geometric functions.
#include "mps_metal_math.h"
#include "mps_metal_simd_order.h"
#ifdef MPS_SHIM_CUDA
#include "../cuda_engine/mps_cuda_simdgroup.h"
#else
#include "../host/mps_metal_simdgroup.h"
#endif
// Apple's internal builtins (__metal_fabs, __metal_simd_sum, ...).
#include "mps_metal_builtins.h"

// Metal's built-in type names (and the as_type operator) work without
// `using namespace metal`.
using metal::as_type;
using metal::bfloat;
using metal::matrix;
using metal::packed_vec;
using metal::vec;
typedef metal::bfloat bfloat16_t;
#define MPS_GLOBAL_PACKED_VEC(name)                                                            \
  using metal::packed_##name##2;                                                               \
  using metal::packed_##name##3;                                                               \
  using metal::packed_##name##4;
#define MPS_GLOBAL_VEC(name)                                                                   \
  using metal::name##2;                                                                        \
  using metal::name##3;                                                                        \
  using metal::name##4;                                                                        \
  MPS_GLOBAL_PACKED_VEC(name)
// CUDA declares float4, int2, ... at global scope itself: there the CUDA
// translation names Metal's as metal::float4 instead (cuda_lowering.cpp).
#ifdef MPS_SHIM_CUDA
#define MPS_GLOBAL_VEC_CUDA_CLASH MPS_GLOBAL_PACKED_VEC
#else
#define MPS_GLOBAL_VEC_CUDA_CLASH MPS_GLOBAL_VEC
#endif
#define MPS_GLOBAL_MATRIX(name)                                                                \
  using metal::name##2x2;                                                                      \
  using metal::name##2x3;                                                                      \
  using metal::name##2x4;                                                                      \
  using metal::name##3x2;                                                                      \
  using metal::name##3x3;                                                                      \
  using metal::name##3x4;                                                                      \
  using metal::name##4x2;                                                                      \
  using metal::name##4x3;                                                                      \
  using metal::name##4x4;
MPS_GLOBAL_MATRIX(float)
MPS_GLOBAL_MATRIX(half)
#undef MPS_GLOBAL_MATRIX
MPS_GLOBAL_VEC_CUDA_CLASH(float)
MPS_GLOBAL_VEC(half)
MPS_GLOBAL_VEC(bfloat)
MPS_GLOBAL_VEC_CUDA_CLASH(int)
MPS_GLOBAL_VEC_CUDA_CLASH(uint)
MPS_GLOBAL_VEC_CUDA_CLASH(short)
MPS_GLOBAL_VEC_CUDA_CLASH(ushort)
MPS_GLOBAL_VEC_CUDA_CLASH(char)
MPS_GLOBAL_VEC_CUDA_CLASH(uchar)
MPS_GLOBAL_VEC_CUDA_CLASH(long)
MPS_GLOBAL_VEC_CUDA_CLASH(ulong)
MPS_GLOBAL_VEC(bool)
#undef MPS_GLOBAL_VEC
#undef MPS_GLOBAL_VEC_CUDA_CLASH
#undef MPS_GLOBAL_PACKED_VEC

#endif  // MPS_METAL_STDLIB_H
