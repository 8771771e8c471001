// mps_host_vmath.h -- branch-free, auto-vectorisable float32 math kernels.
//
// Intended for generated host-engine loops such as
//     for (size_t i = 0; i < n; ++i) out[i] = mps_host::vmath::expf(a[i]);
// which g++ vectorises at -O3 (no -ffast-math needed; -fno-math-errno and
// -fno-trapping-math recommended). Every function is straight-line code:
// special cases are handled with value selects, never branches.
//
// Accuracy, measured exhaustively over all 2^32 inputs (g++ 12, with and
// without FMA):
//   expf, exp2f : max 0.77 ulp (0.63 ulp where the result is normal; the
//                 extra comes from double rounding into subnormals); float
//                 arithmetic, FMA used when the target has it.
//   logf, log2f : max 0.5005 ulp (computed in double, rounded once).
// Do not compile users of this header with -ffast-math / -ffinite-math-only /
// -fassociative-math: the error-compensation steps and NaN/inf selects
// rely on IEEE semantics.
// Special cases follow IEEE/C99: exp(-inf)=0, exp(+inf)=+inf, overflow->+inf,
// gradual underflow to subnormals, exp(0)=1, log(0)=-inf, log(x<0)=NaN,
// log(+inf)=+inf, NaN in -> NaN out. Rounding mode is assumed to be
// round-to-nearest-even (the default).
#pragma once

#include <cstdint>

namespace mps_host {
namespace vmath {

#define MPS_VMATH_INLINE static inline __attribute__((always_inline))

#if defined(__FMA__) || defined(__ARM_FEATURE_FMA) || defined(__aarch64__) || defined(__CUDACC_RTC__)
#define MPS_VMATH_HAVE_FMA 1
#else
#define MPS_VMATH_HAVE_FMA 0
#endif

namespace detail {

MPS_VMATH_INLINE uint32_t as_u32(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, sizeof u);
  return u;
}

MPS_VMATH_INLINE float as_f32(uint32_t u) {
  float f;
  __builtin_memcpy(&f, &u, sizeof f);
  return f;
}

// a*b + c, fused (one rounding) when the target has hardware FMA; otherwise
// two roundings (never a libm call, so loops still vectorise).
MPS_VMATH_INLINE float fmadd(float a, float b, float c) {
#if MPS_VMATH_HAVE_FMA
  return __builtin_fmaf(a, b, c);
#else
  return a * b + c;
#endif
}

MPS_VMATH_INLINE double fma_d(double a, double b, double c) {
#if MPS_VMATH_HAVE_FMA
  return __builtin_fma(a, b, c);
#else
  return a * b + c;
#endif
}

// 2^k as a float, for integer k in [-126, 127].
MPS_VMATH_INLINE float pow2i(int32_t k) {
  return as_f32((static_cast<uint32_t>(k) + 127u) << 23);
}

// p * 2^n for p in [0.5, 2) and n in [-152, 130], with a single rounding
// (only the second multiply can round: into the subnormal range or to inf).
MPS_VMATH_INLINE float scale2(float p, int32_t n) {
  int32_t n1 = n >> 1;  // arithmetic shift
  int32_t n2 = n - n1;
  return (p * pow2i(n1)) * pow2i(n2);
}

// Adding then subtracting 1.5*2^23 rounds |t| < 2^22 to the nearest integer
// (ties to even); the integer also appears in the low mantissa bits.
constexpr float kRoundShift = 0x1.8p23f;

constexpr float kInf = __builtin_inff();
constexpr float kNaN = __builtin_nanf("");

// q(r) ~= (e^r - 1 - r) / r^2 on |r| <= ln2/2 (near-minimax, degree 5).
MPS_VMATH_INLINE float expm1_q(float r) {
  float q = fmadd(r, 0x1.a125f6p-13f, 0x1.6d444ap-10f);
  q = fmadd(q, r, 0x1.1110e0p-7f);
  q = fmadd(q, r, 0x1.5554e8p-5f);
  q = fmadd(q, r, 0x1.555556p-3f);
  q = fmadd(q, r, 0x1.000000p-1f);
  return q;
}

// e^(a+b) * 2^n, where a + b is the reduced argument (|a+b| <= ln2/2, |b|
// well below |a| or both tiny) and n in [-152, 130].
MPS_VMATH_INLINE float exp_finish(float a, float b, int32_t n) {
  // Renormalise (Fast2Sum): r + d == a + b exactly, |d| <= ulp(r)/2.
  float r = a + b;
  float d = (a - r) + b;
  // e^(r+d) - 1 - r ~= d + d*r + r^2 q(r)  (dropped terms are < 2^-50)
  float t = fmadd(r * r, expm1_q(r), fmadd(d, r, d));
  // 1 + r as an exact hi + lo pair (Fast2Sum, |r| < 1), then one rounding.
  float hi = 1.0f + r;
  float lo = (1.0f - hi) + r;
  float p = hi + (lo + t);
  return scale2(p, n);
}

}  // namespace detail

// e^x, <= 1 ulp.
MPS_VMATH_INLINE float expf(float x) {
  using namespace detail;
  constexpr float kLog2e = 0x1.715476p+0f;
#if MPS_VMATH_HAVE_FMA
  // x - n*kLn2Hi is exact via FMA.
  constexpr float kLn2Hi = 0x1.62e430p-1f;
  constexpr float kLn2Lo = -0x1.05c610p-29f;
#else
  // Cody-Waite: kLn2Hi has 12 significant bits and |n| <= 150, so n*kLn2Hi
  // and x - n*kLn2Hi are exact.
  constexpr float kLn2Hi = 0x1.62ep-1f;
  constexpr float kLn2Lo = 0x1.0bfbe8p-15f;
#endif
  // Clamp: below -104 the result rounds to 0, above 89 it overflows to inf.
  // NaN fails both comparisons and propagates through the arithmetic.
  // (Both selects test x itself: g++ then emits 2 compares + 2 blends.)
  float xc = x < -104.0f ? -104.0f : x;
  xc = x > 89.0f ? 89.0f : xc;

  float kf = fmadd(xc, kLog2e, kRoundShift);
  int32_t n = static_cast<int32_t>(as_u32(kf) - as_u32(kRoundShift));
  float nf = kf - kRoundShift;

  float rh = fmadd(nf, -kLn2Hi, xc);  // exact
  float rl = nf * -kLn2Lo;
  return exp_finish(rh, rl, n);
}

// 2^x, <= 1 ulp.
MPS_VMATH_INLINE float exp2f(float x) {
  using namespace detail;
  // Clamp: below -151 the result rounds to 0, above 129 it overflows to inf.
  float xc = x < -151.0f ? -151.0f : x;
  xc = x > 129.0f ? 129.0f : xc;

  float kf = xc + kRoundShift;
  int32_t n = static_cast<int32_t>(as_u32(kf) - as_u32(kRoundShift));
  float r = xc - (kf - kRoundShift);  // exact, |r| <= 1/2

  // a + b ~= r * ln2 to ~2^-45 relative.
#if MPS_VMATH_HAVE_FMA
  constexpr float kLn2Hi = 0x1.62e430p-1f;
  constexpr float kLn2Lo = -0x1.05c610p-29f;
  float a = r * kLn2Hi;
  float b = fmadd(r, kLn2Hi, -a) + r * kLn2Lo;
#else
  // Dekker split of r into 12 + 12 bits; kLn2Hi has 12 significant bits,
  // so both partial products with it are exact.
  constexpr float kLn2Hi = 0x1.62ep-1f;
  constexpr float kLn2Lo = 0x1.0bfbe8p-15f;
  float rs = r * 4097.0f;
  float r_hi = rs - (rs - r);
  float r_lo = r - r_hi;
  float a = r_hi * kLn2Hi;
  float b = r_lo * kLn2Hi + r * kLn2Lo;
#endif
  return exp_finish(a, b, n);
}

namespace detail {

// Splits finite x > 0 into x = m * 2^e with m in [sqrt(1/2), sqrt(2)).
// Subnormals are pre-scaled by 2^23. Other inputs give garbage (callers
// override them with selects).
MPS_VMATH_INLINE void log_reduce(float x, double& m_minus_1, double& e) {
  bool sub = x < 0x1p-126f;
  float xs = sub ? x * 0x1p23f : x;
  int32_t ebias = sub ? -23 : 0;
  uint32_t ix = as_u32(xs);
  uint32_t t = ix - 0x3f3504f3u;  // bits of ~sqrt(1/2)
  int32_t k = static_cast<int32_t>(t) >> 23;  // arithmetic shift
  float m = as_f32(ix - (t & 0xff800000u));
  m_minus_1 = static_cast<double>(m) - 1.0;  // exact
  e = static_cast<double>(k + ebias);
}

// log(1+f) for f in [sqrt(1/2)-1, sqrt(2)-1], in double: f + f^2 Q(f) with
// Q near-minimax of degree 11 (relative error < 2^-34).
MPS_VMATH_INLINE double log1p_reduced(double f) {
  double q = fma_d(f, 0x1.b9cb992343c89p-5, -0x1.904f4692d7c22p-4);
  q = fma_d(q, f, 0x1.9687a82c44c38p-4);
  q = fma_d(q, f, -0x1.96fa44d04ac20p-4);
  q = fma_d(q, f, 0x1.c3b70bc6ff007p-4);
  q = fma_d(q, f, -0x1.ffed7eba6da68p-4);
  q = fma_d(q, f, 0x1.24a4708b2a831p-3);
  q = fma_d(q, f, -0x1.555629129eb24p-3);
  q = fma_d(q, f, 0x1.99994a3b36e2dp-3);
  q = fma_d(q, f, -0x1.fffffce368f47p-3);
  q = fma_d(q, f, 0x1.55555586cb198p-2);
  q = fma_d(q, f, -0x1.0000000062955p-1);
  return fma_d(f * f, q, f);
}

MPS_VMATH_INLINE float log_specials(float x, float y) {
  y = x < 0.0f ? kNaN : y;
  y = x == 0.0f ? -kInf : y;
  y = x == kInf ? kInf : y;
  y = x != x ? x + x : y;
  return y;
}

}  // namespace detail

// Natural log, ~0.5 ulp.
MPS_VMATH_INLINE float logf(float x) {
  using namespace detail;
  double f, e;
  log_reduce(x, f, e);
  double y = e * 0x1.62e42fefa39efp-1 + log1p_reduced(f);
  return log_specials(x, static_cast<float>(y));
}

// Base-2 log, ~0.5 ulp; exact for powers of two.
MPS_VMATH_INLINE float log2f(float x) {
  using namespace detail;
  double f, e;
  log_reduce(x, f, e);
  double y = e + log1p_reduced(f) * 0x1.71547652b82fep+0;
  return log_specials(x, static_cast<float>(y));
}

}  // namespace vmath
}  // namespace mps_host
