// What the shared Metal standard-library headers (metal/) take from the
// compiler, for NVRTC. The host compiles them with g++, whose builtins they
// call; NVRTC has CUDA's math library instead, no _Float16 and no C or C++
// library headers (the std_shim/ folder maps the few they include onto
// libcu++). Every function is a device function: NVRTC compiles with
// -default-device.
#ifndef MPS_CUDA_PLATFORM_H
#define MPS_CUDA_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include <limits>
#include <type_traits>
#include <utility>

#define MPS_SHIM_INLINE __forceinline__
#define MPS_SHIM_KERNEL static __forceinline__
// ptxas fails on some calls of out-of-line device functions (C7600): inline.
#define MPS_SHIM_OUT_OF_LINE __forceinline__

// ---- GCC builtins the headers call, as CUDA's functions ----------------------
#define __builtin_sinf sinf
#define __builtin_cosf cosf
#define __builtin_tanf tanf
#define __builtin_asinf asinf
#define __builtin_acosf acosf
#define __builtin_atanf atanf
#define __builtin_atan2f atan2f
#define __builtin_sinhf sinhf
#define __builtin_coshf coshf
#define __builtin_tanhf tanhf
#define __builtin_asinhf asinhf
#define __builtin_acoshf acoshf
#define __builtin_atanhf atanhf
#define __builtin_powf powf
#define __builtin_exp10f exp10f
#define __builtin_sqrtf sqrtf
#define __builtin_sqrt sqrt
#define __builtin_fabsf fabsf
#define __builtin_rintf rintf
#define __builtin_truncf truncf
#define __builtin_floorf floorf
#define __builtin_ceilf ceilf
#define __builtin_fmodf fmodf
#define __builtin_fmaf fmaf
#define __builtin_fma fma
#define __builtin_copysignf copysignf
#define __builtin_isfinite isfinite
#define __builtin_memcpy memcpy
#define __builtin_huge_valf() __builtin_bit_cast(float, 0x7f800000u)
#define __builtin_inff() __builtin_bit_cast(float, 0x7f800000u)
#define __builtin_nanf(s) __builtin_bit_cast(float, 0x7fc00000u)
#define __builtin_clz(x) __clz(int(x))
#define __builtin_clzl(x) __clzll((long long)(x))
#define __builtin_ctz(x) (__ffs(int(x)) - 1)
#define __builtin_ctzl(x) (__ffsll((long long)(x)) - 1)
#define __builtin_popcount(x) __popc(unsigned(x))
#define __builtin_popcountl(x) __popcll((unsigned long long)(x))
#define __builtin_bswap32(x) __byte_perm(unsigned(x), 0u, 0x0123u)
#define __builtin_bswap64(x) mps_cuda::bswap64(x)

namespace mps_cuda {
inline uint64_t bswap64(uint64_t v) {
  return (uint64_t(__byte_perm(unsigned(v), 0u, 0x0123u)) << 32) | __byte_perm(unsigned(v >> 32), 0u, 0x0123u);
}
template <typename T> inline bool add_overflow(T x, T y, T* r) {
  using U = std::make_unsigned_t<T>;
  *r = T(U(x) + U(y));
  return std::is_signed_v<T> ? ((x >= 0) == (y >= 0) && (*r >= 0) != (x >= 0)) : U(*r) < U(x);
}
template <typename T> inline bool sub_overflow(T x, T y, T* r) {
  using U = std::make_unsigned_t<T>;
  *r = T(U(x) - U(y));
  return std::is_signed_v<T> ? ((x >= 0) != (y >= 0) && (*r >= 0) != (x >= 0)) : U(x) < U(y);
}
}  // namespace mps_cuda
#define __builtin_add_overflow(x, y, r) mps_cuda::add_overflow(x, y, r)
#define __builtin_sub_overflow(x, y, r) mps_cuda::sub_overflow(x, y, r)

// ---- GCC's __atomic builtins, as CUDA's atomics (device scope) --------------
// Every access is a hardware atomic of 4 or 8 bytes; orders stronger than
// relaxed add a device-wide fence (CUDA's atomics are relaxed).
#define __ATOMIC_RELAXED 0
#define __ATOMIC_CONSUME 1
#define __ATOMIC_ACQUIRE 2
#define __ATOMIC_RELEASE 3
#define __ATOMIC_ACQ_REL 4
#define __ATOMIC_SEQ_CST 5
namespace mps_cuda {
template <typename T> struct atomic_word {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "CUDA atomics hold 4- or 8-byte values");
  using type = std::conditional_t<sizeof(T) == 4, unsigned, unsigned long long>;
};
template <typename T> using word_t = typename atomic_word<T>::type;
inline void fence_for(int order) {
  if (order != __ATOMIC_RELAXED) __threadfence();
}
template <typename T> inline void atomic_load(const volatile T* p, T* out, int order) {
  *out = __builtin_bit_cast(T, *reinterpret_cast<const volatile word_t<T>*>(p));
  fence_for(order);
}
template <typename T> inline void atomic_store(volatile T* p, T* value, int order) {
  fence_for(order);
  *reinterpret_cast<volatile word_t<T>*>(p) = __builtin_bit_cast(word_t<T>, *value);
  fence_for(order);
}
template <typename T> inline bool atomic_compare_exchange(volatile T* p, T* expected, T* desired, bool, int order, int) {
  fence_for(order);
  const word_t<T> want = __builtin_bit_cast(word_t<T>, *expected);
  const word_t<T> seen = atomicCAS(const_cast<word_t<T>*>(reinterpret_cast<volatile word_t<T>*>(p)), want,
                                   __builtin_bit_cast(word_t<T>, *desired));
  fence_for(order);
  if (seen == want) return true;
  *expected = __builtin_bit_cast(T, seen);
  return false;
}
template <typename T> inline void atomic_exchange(volatile T* p, T* value, T* old, int order) {
  fence_for(order);
  *old = __builtin_bit_cast(T, atomicExch(const_cast<word_t<T>*>(reinterpret_cast<volatile word_t<T>*>(p)),
                                          __builtin_bit_cast(word_t<T>, *value)));
  fence_for(order);
}
// Integer read-modify-write on CUDA's unsigned words (two's complement makes
// signed add and sub the same operation).
#define MPS_CUDA_FETCH(name, call)                                                                   \
  template <typename T> inline T atomic_fetch_##name(volatile T* p, T v, int order) {                \
    fence_for(order);                                                                                \
    word_t<T>* w = const_cast<word_t<T>*>(reinterpret_cast<volatile word_t<T>*>(p));                 \
    const T old = T(call(w, word_t<T>(v)));                                                          \
    fence_for(order);                                                                                \
    return old;                                                                                      \
  }
MPS_CUDA_FETCH(add, atomicAdd)
MPS_CUDA_FETCH(sub, [](auto* w, auto v) { return atomicAdd(w, decltype(v)(0) - v); })
MPS_CUDA_FETCH(and, atomicAnd)
MPS_CUDA_FETCH(or, atomicOr)
MPS_CUDA_FETCH(xor, atomicXor)
#undef MPS_CUDA_FETCH
}  // namespace mps_cuda
#define __atomic_load(p, out, order) mps_cuda::atomic_load(p, out, order)
#define __atomic_store(p, value, order) mps_cuda::atomic_store(p, value, order)
#define __atomic_compare_exchange(p, e, d, weak, s, f) mps_cuda::atomic_compare_exchange(p, e, d, weak, s, f)
#define __atomic_exchange(p, value, old, order) mps_cuda::atomic_exchange(p, value, old, order)
#define __atomic_fetch_add(p, v, order) mps_cuda::atomic_fetch_add(p, v, order)
#define __atomic_fetch_sub(p, v, order) mps_cuda::atomic_fetch_sub(p, v, order)
#define __atomic_fetch_and(p, v, order) mps_cuda::atomic_fetch_and(p, v, order)
#define __atomic_fetch_or(p, v, order) mps_cuda::atomic_fetch_or(p, v, order)
#define __atomic_fetch_xor(p, v, order) mps_cuda::atomic_fetch_xor(p, v, order)
#define __atomic_thread_fence(order) __threadfence()

// ---- half: IEEE binary16, stored as bits ------------------------------------
// Arithmetic is done in float and rounded once, which is exactly binary16
// arithmetic (float carries more than twice half's precision), and it mixes
// with float like Metal's half: half op float is float.
namespace mps_cuda {
constexpr uint16_t float_to_half_bits(float f) {
  const uint32_t u = __builtin_bit_cast(uint32_t, f);
  const uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN, payload kept
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);                         // overflows to inf
  if (a >= 0x38800000u) {                                                         // normal
    const uint32_t r = a - 0x38000000u;
    return uint16_t(sign | ((r + 0xfffu + ((r >> 13) & 1u)) >> 13));
  }
  if (a < 0x33000000u) return uint16_t(sign);  // below half the smallest subnormal
  const uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u, shift = 126u - e;
  const uint32_t q = m >> shift, rest = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
  return uint16_t(sign | (q + (rest > halfway || (rest == halfway && (q & 1u)))));
}
constexpr float half_bits_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0x1f) return __builtin_bit_cast(float, sign | 0x7f800000u | (m << 13));
  if (e != 0) return __builtin_bit_cast(float, sign | ((e + 112u) << 23) | (m << 13));
  return m == 0 ? __builtin_bit_cast(float, sign) : (sign ? -1.0f : 1.0f) * float(m) * 0x1p-24f;
}
}  // namespace mps_cuda

struct half {
  uint16_t bits;
  half() = default;
  constexpr half(float f) : bits(mps_cuda::float_to_half_bits(f)) {}
  template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T>>>
  constexpr half(T v) : half(float(v)) {}
  constexpr operator float() const { return mps_cuda::half_bits_to_float(bits); }
};
#define MPS_HALF_BINARY(op)                                                                       \
  constexpr half operator op(half a, half b) { return half(float(a) op float(b)); }               \
  constexpr float operator op(half a, float b) { return float(a) op b; }                          \
  constexpr float operator op(float a, half b) { return a op float(b); }                          \
  constexpr double operator op(half a, double b) { return double(float(a)) op b; }                \
  constexpr double operator op(double a, half b) { return a op double(float(b)); }                \
  template <typename I, typename = std::enable_if_t<std::is_integral_v<I>>>                      \
  constexpr half operator op(half a, I b) { return half(float(a) op float(b)); }                  \
  template <typename I, typename = std::enable_if_t<std::is_integral_v<I>>>                      \
  constexpr half operator op(I a, half b) { return half(float(a) op float(b)); }                  \
  constexpr half& operator op##=(half & a, half b) { return a = a op b; }                         \
  constexpr half& operator op##=(half & a, float b) { return a = half(float(a) op b); }
MPS_HALF_BINARY(+)
MPS_HALF_BINARY(-)
MPS_HALF_BINARY(*)
MPS_HALF_BINARY(/)
#undef MPS_HALF_BINARY
#define MPS_HALF_COMPARE(op)                                                                      \
  constexpr bool operator op(half a, half b) { return float(a) op float(b); }                     \
  constexpr bool operator op(half a, float b) { return float(a) op b; }                           \
  constexpr bool operator op(float a, half b) { return a op float(b); }
MPS_HALF_COMPARE(<)
MPS_HALF_COMPARE(>)
MPS_HALF_COMPARE(<=)
MPS_HALF_COMPARE(>=)
MPS_HALF_COMPARE(==)
MPS_HALF_COMPARE(!=)
#undef MPS_HALF_COMPARE
constexpr half operator-(half a) { half r = a; r.bits ^= 0x8000u; return r; }
constexpr half operator+(half a) { return a; }
inline half& operator++(half& a) { return a = a + 1; }
inline half& operator--(half& a) { return a = a - 1; }

namespace mps_cuda {
// Metal's NAN is a float, so `c ? NAN : h` with h a half (c10's max and min)
// is a float there; with half a class that converts to and from float, C++
// finds that conditional ambiguous. The translation writes a NAN that is a
// conditional's second operand as nan_operand{}: it converts to the other
// operand's type and nothing converts to it, so the conditional takes that
// type (a half NaN for a half: what Metal's float NaN becomes on return).
struct nan_operand {
  template <typename T>
  constexpr operator T() const { return T(__builtin_bit_cast(float, 0x7fc00000u)); }
};
}  // namespace mps_cuda

// The fiber engine's hook for spinning threads: on a GPU every thread runs.
namespace mps_host::fibers {
inline void yield_for_spin() {}
}  // namespace mps_host::fibers

#endif
