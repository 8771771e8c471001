// mps_metal_builtins.h -- Apple's internal builtins behind Metal's math and
// SIMD-group functions, for libraries that call them directly: MLX's
// bf16_math.h defines the bfloat math of namespace metal as
// `static_cast<bfloat16_t>(__metal_fabs(static_cast<float>(x), __METAL_MAYBE_FAST_MATH__))`
// and its bfloat SIMD-group functions on `__metal_simd_sum` and friends.
//
// Part of mps_host_metal.h, after mps_metal_math.h and mps_metal_simdgroup.h.
// Each builtin forwards to the metal:: function of its name, so it takes the
// types that function takes. The math ones take Apple's trailing fast-math
// flag and ignore it (metal::fast:: and metal::precise:: are one set here).
// The SIMD-group ones are Metal's SIMD-group functions to the translation too
// (frontend::metal_builtin_name): their calls are tagged with a call site and
// make a kernel wait like calls of simd_sum do.
#ifndef MPS_METAL_BUILTINS_H
#define MPS_METAL_BUILTINS_H

#ifndef MPS_HOST_METAL_H
#error "mps_metal_builtins.h is part of mps_host_metal.h; include that instead"
#endif

#define __METAL_FAST_MATH__ true
#define __METAL_PRECISE_MATH__ false
#define __METAL_MAYBE_FAST_MATH__ false

#define MPS_BUILTIN_1(name) \
  template <typename T>     \
  MPS_SHIM_INLINE auto __metal_##name(T x, bool = false)->decltype(metal::name(x)) { return metal::name(x); }
#define MPS_BUILTIN_2(name)                                                              \
  template <typename T>                                                                  \
  MPS_SHIM_INLINE auto __metal_##name(T x, T y, bool = false)->decltype(metal::name(x, y)) { \
    return metal::name(x, y);                                                            \
  }
#define MPS_BUILTIN_3(name)                                                                       \
  template <typename T>                                                                           \
  MPS_SHIM_INLINE auto __metal_##name(T x, T y, T z, bool = false)->decltype(metal::name(x, y, z)) { \
    return metal::name(x, y, z);                                                                  \
  }
MPS_BUILTIN_1(fabs) MPS_BUILTIN_1(acos) MPS_BUILTIN_1(acosh) MPS_BUILTIN_1(asin) MPS_BUILTIN_1(asinh)
MPS_BUILTIN_1(atan) MPS_BUILTIN_1(atanh) MPS_BUILTIN_1(ceil) MPS_BUILTIN_1(cos) MPS_BUILTIN_1(cosh)
MPS_BUILTIN_1(cospi) MPS_BUILTIN_1(exp) MPS_BUILTIN_1(exp10) MPS_BUILTIN_1(exp2) MPS_BUILTIN_1(floor)
MPS_BUILTIN_1(fract) MPS_BUILTIN_1(log) MPS_BUILTIN_1(log10) MPS_BUILTIN_1(log2) MPS_BUILTIN_1(rint)
MPS_BUILTIN_1(round) MPS_BUILTIN_1(rsqrt) MPS_BUILTIN_1(sin) MPS_BUILTIN_1(sinh) MPS_BUILTIN_1(sinpi)
MPS_BUILTIN_1(sqrt) MPS_BUILTIN_1(tan) MPS_BUILTIN_1(tanh) MPS_BUILTIN_1(tanpi) MPS_BUILTIN_1(trunc)
MPS_BUILTIN_1(saturate) MPS_BUILTIN_1(sign)
MPS_BUILTIN_2(atan2) MPS_BUILTIN_2(divide) MPS_BUILTIN_2(fdim) MPS_BUILTIN_2(fmax) MPS_BUILTIN_2(fmin)
MPS_BUILTIN_2(fmod) MPS_BUILTIN_2(nextafter) MPS_BUILTIN_2(pow) MPS_BUILTIN_2(powr) MPS_BUILTIN_2(copysign)
MPS_BUILTIN_3(fma) MPS_BUILTIN_3(fmax3) MPS_BUILTIN_3(fmin3) MPS_BUILTIN_3(fmedian3)
#undef MPS_BUILTIN_1
#undef MPS_BUILTIN_2
#undef MPS_BUILTIN_3
template <typename T>
MPS_SHIM_INLINE auto __metal_frexp(T x, int* e)->decltype(metal::frexp(x, *e)) { return metal::frexp(x, *e); }
template <typename T>
MPS_SHIM_INLINE auto __metal_ldexp(T x, int k, bool = false)->decltype(metal::ldexp(x, k)) { return metal::ldexp(x, k); }

// The SIMD-group builtins, also with the call site the translation passes first.
#define MPS_BUILTIN_SIMD(name)                                                                  \
  template <typename... A>                                                                      \
  MPS_SHIM_INLINE auto __metal_##name(A&&... a)->decltype(metal::name(static_cast<A&&>(a)...)) { \
    return metal::name(static_cast<A&&>(a)...);                                                \
  }
#define MPS_BUILTIN_GROUP(P)                                                                                  \
  MPS_BUILTIN_SIMD(P##_sum) MPS_BUILTIN_SIMD(P##_product) MPS_BUILTIN_SIMD(P##_min)                           \
  MPS_BUILTIN_SIMD(P##_max) MPS_BUILTIN_SIMD(P##_and) MPS_BUILTIN_SIMD(P##_or) MPS_BUILTIN_SIMD(P##_xor)      \
  MPS_BUILTIN_SIMD(P##_prefix_inclusive_sum) MPS_BUILTIN_SIMD(P##_prefix_exclusive_sum)                       \
  MPS_BUILTIN_SIMD(P##_prefix_inclusive_product) MPS_BUILTIN_SIMD(P##_prefix_exclusive_product)               \
  MPS_BUILTIN_SIMD(P##_shuffle) MPS_BUILTIN_SIMD(P##_broadcast) MPS_BUILTIN_SIMD(P##_shuffle_up)              \
  MPS_BUILTIN_SIMD(P##_shuffle_down) MPS_BUILTIN_SIMD(P##_shuffle_xor) MPS_BUILTIN_SIMD(P##_shuffle_rotate_up) \
  MPS_BUILTIN_SIMD(P##_shuffle_rotate_down) MPS_BUILTIN_SIMD(P##_shuffle_and_fill_up)                         \
  MPS_BUILTIN_SIMD(P##_shuffle_and_fill_down) MPS_BUILTIN_SIMD(P##_broadcast_first)
MPS_BUILTIN_GROUP(simd)
MPS_BUILTIN_GROUP(quad)
#undef MPS_BUILTIN_GROUP
#undef MPS_BUILTIN_SIMD

// The SIMD-group's width; the argument only picks the result type.
template <typename T>
MPS_SHIM_INLINE constexpr T __metal_get_simdgroup_size(T) { return T(32); }

#endif  // MPS_METAL_BUILTINS_H
