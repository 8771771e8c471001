// Metal's integer functions (MSL specification §6.3, Table 6.2, <metal_integer>)
// for char, uchar, short, ushort, int, uint, long, ulong and their vec<T, 2|3|4>.
//
// Every public function is a non-template overload of one concrete type, as in
// Metal: arguments convert implicitly the way Metal's overloads accept them
// (a scalar broadcasts through vec's splat constructor, a swizzle through its
// conversion to vec), and mixing types that no single overload takes exactly,
// such as min(uint, int), is ambiguous here as it is in Metal.
//
// The bodies are width-generic templates in mps_host::integer. No signed
// operation in them can overflow (wrapping sums, negations and left shifts go
// through the unsigned type, exact products through a wider one), so -O3
// cannot turn an edge case such as abs(INT_MIN) into undefined behaviour.
//
// Where the specification leaves a result undefined (extract_bits/insert_bits
// with offset + bits beyond the width, mul24/mad24 outside 24-bit operands) the
// result is still deterministic: the field is cut at the top bit, and mul24
// multiplies the low 24 bits (sign-extended for int), as the table describes.
#ifndef MPS_METAL_INTEGER_H
#define MPS_METAL_INTEGER_H

#ifndef MPS_HOST_METAL_H
#error "mps_metal_integer.h is part of mps_host_metal.h; include that instead"
#endif

namespace mps_host {
namespace integer {

using schar = signed char;

template <typename T>
struct info {
  using U = std::make_unsigned_t<T>;
  static constexpr unsigned bits = sizeof(T) * 8;
  static constexpr bool is_signed = std::is_signed_v<T>;
  static constexpr T max = std::numeric_limits<T>::max();
  static constexpr T min = std::numeric_limits<T>::min();
};

// A type at least twice as wide as T with T's signedness (for exact products).
template <typename T>
using wide_t = std::conditional_t<(sizeof(T) <= 4), std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>,
                                  std::conditional_t<std::is_signed_v<T>, __int128, unsigned __int128>>;

template <typename T>
MPS_SHIM_INLINE constexpr T abs(T x) {
  using U = typename info<T>::U;
  if constexpr (info<T>::is_signed) return T(x < 0 ? U(U(0) - U(x)) : U(x));  // abs(MIN) wraps to MIN
  else return x;
}

template <typename T>
MPS_SHIM_INLINE constexpr typename info<T>::U absdiff(T x, T y) {
  using U = typename info<T>::U;
  return x > y ? U(U(x) - U(y)) : U(U(y) - U(x));
}

template <typename T>
MPS_SHIM_INLINE T addsat(T x, T y) {
  T r;
  if (!__builtin_add_overflow(x, y, &r)) return r;
  if constexpr (info<T>::is_signed) return y > 0 ? info<T>::max : info<T>::min;
  else return info<T>::max;
}

template <typename T>
MPS_SHIM_INLINE T subsat(T x, T y) {
  T r;
  if (!__builtin_sub_overflow(x, y, &r)) return r;
  if constexpr (info<T>::is_signed) return y < 0 ? info<T>::max : info<T>::min;
  else return T(0);
}

// (x + y) >> 1 and (x + y + 1) >> 1 without forming the sum: the halves cannot
// overflow, and the dropped low bits contribute at most 1. >> on a negative
// value is arithmetic in GCC, so signed results round toward -infinity.
template <typename T>
MPS_SHIM_INLINE constexpr T hadd(T x, T y) {
  return T((x >> 1) + (y >> 1) + (x & y & 1));
}
template <typename T>
MPS_SHIM_INLINE constexpr T rhadd(T x, T y) {
  return T((x >> 1) + (y >> 1) + ((x | y) & 1));
}

template <typename T>
MPS_SHIM_INLINE constexpr T mulhi(T x, T y) {
  using W = wide_t<T>;
  return T((W(x) * W(y)) >> info<T>::bits);
}

template <typename T>
MPS_SHIM_INLINE constexpr T madhi(T a, T b, T c) {
  using U = typename info<T>::U;
  return T(U(U(mulhi(a, b)) + U(c)));
}

// a * b + c computed exactly in the wide type, then saturated.
template <typename T>
MPS_SHIM_INLINE constexpr T madsat(T a, T b, T c) {
  using W = wide_t<T>;
  const W r = W(a) * W(b) + W(c);
  return r > W(info<T>::max) ? info<T>::max : r < W(info<T>::min) ? info<T>::min : T(r);
}

MPS_SHIM_INLINE constexpr int mul24(int x, int y) {
  const int64_t a = int32_t(uint32_t(x) << 8) >> 8;  // low 24 bits, sign-extended
  const int64_t b = int32_t(uint32_t(y) << 8) >> 8;
  return int(uint32_t(uint64_t(a * b)));
}
MPS_SHIM_INLINE constexpr uint mul24(uint x, uint y) {
  return uint(uint64_t(x & 0xffffffu) * uint64_t(y & 0xffffffu));
}

template <typename T>
MPS_SHIM_INLINE constexpr T clz(T x) {
  using U = typename info<T>::U;
  const U u = U(x);
  if (u == 0) return T(info<T>::bits);
  if constexpr (sizeof(T) == 8) return T(__builtin_clzl(u));
  else return T(__builtin_clz(unsigned(u)) - int(32 - info<T>::bits));
}

template <typename T>
MPS_SHIM_INLINE constexpr T ctz(T x) {
  using U = typename info<T>::U;
  const U u = U(x);
  if (u == 0) return T(info<T>::bits);
  if constexpr (sizeof(T) == 8) return T(__builtin_ctzl(u));
  else return T(__builtin_ctz(unsigned(u)));
}

template <typename T>
MPS_SHIM_INLINE constexpr T popcount(T x) {
  using U = typename info<T>::U;
  if constexpr (sizeof(T) == 8) return T(__builtin_popcountl(U(x)));
  else return T(__builtin_popcount(unsigned(U(x))));
}

// Rotates left by i modulo the width (a negative i rotates right by -i).
template <typename T>
MPS_SHIM_INLINE constexpr T rotate(T v, T i) {
  using U = typename info<T>::U;
  constexpr unsigned W = info<T>::bits;
  const unsigned s = unsigned(U(i) & U(W - 1));
  const U u = U(v);
  return s == 0 ? v : T(U(U(u << s) | U(u >> (W - s))));
}

template <typename T>
MPS_SHIM_INLINE constexpr T extract_bits(T x, uint offset, uint bits) {
  using U = typename info<T>::U;
  constexpr unsigned W = info<T>::bits;
  if (bits == 0 || offset >= W) return T(0);
  if (bits > W - offset) bits = W - offset;
  const U top = U(U(x) << (W - offset - bits));  // the field's top bit becomes the sign bit
  if constexpr (info<T>::is_signed) return T(T(top) >> (W - bits));
  else return T(top >> (W - bits));
}

template <typename T>
MPS_SHIM_INLINE constexpr T insert_bits(T base, T insert, uint offset, uint bits) {
  using U = typename info<T>::U;
  constexpr unsigned W = info<T>::bits;
  if (bits == 0 || offset >= W) return base;
  if (bits > W - offset) bits = W - offset;
  const U mask = U(U(U(~U(0)) >> (W - bits)) << offset);
  return T(U(U(U(base) & U(~mask)) | U(U(U(insert) << offset) & mask)));
}

MPS_SHIM_INLINE constexpr uint32_t reverse32(uint32_t v) {
  v = ((v >> 1) & 0x55555555u) | ((v & 0x55555555u) << 1);
  v = ((v >> 2) & 0x33333333u) | ((v & 0x33333333u) << 2);
  v = ((v >> 4) & 0x0f0f0f0fu) | ((v & 0x0f0f0f0fu) << 4);
  return __builtin_bswap32(v);
}
MPS_SHIM_INLINE constexpr uint64_t reverse64(uint64_t v) {
  v = ((v >> 1) & 0x5555555555555555ul) | ((v & 0x5555555555555555ul) << 1);
  v = ((v >> 2) & 0x3333333333333333ul) | ((v & 0x3333333333333333ul) << 2);
  v = ((v >> 4) & 0x0f0f0f0f0f0f0f0ful) | ((v & 0x0f0f0f0f0f0f0f0ful) << 4);
  return __builtin_bswap64(v);
}
template <typename T>
MPS_SHIM_INLINE constexpr T reverse_bits(T x) {
  using U = typename info<T>::U;
  if constexpr (sizeof(T) == 8) return T(reverse64(U(x)));
  else return T(U(reverse32(uint32_t(U(x))) >> (32 - info<T>::bits)));
}

template <typename T>
MPS_SHIM_INLINE constexpr T min(T x, T y) { return y < x ? y : x; }
template <typename T>
MPS_SHIM_INLINE constexpr T max(T x, T y) { return x < y ? y : x; }
template <typename T>
MPS_SHIM_INLINE constexpr T median3(T x, T y, T z) {
  return max(min(x, y), min(max(x, y), z));
}

}  // namespace integer
}  // namespace mps_host

namespace metal {

#define MPS_INT_SCALAR(T, U)                                                                                   \
  MPS_SHIM_INLINE constexpr T abs(T x) { return mps_host::integer::abs(x); }                                   \
  MPS_SHIM_INLINE constexpr U absdiff(T x, T y) { return mps_host::integer::absdiff(x, y); }                   \
  MPS_SHIM_INLINE T addsat(T x, T y) { return mps_host::integer::addsat(x, y); }                               \
  MPS_SHIM_INLINE T subsat(T x, T y) { return mps_host::integer::subsat(x, y); }                               \
  MPS_SHIM_INLINE constexpr T hadd(T x, T y) { return mps_host::integer::hadd(x, y); }                         \
  MPS_SHIM_INLINE constexpr T rhadd(T x, T y) { return mps_host::integer::rhadd(x, y); }                       \
  MPS_SHIM_INLINE constexpr T mulhi(T x, T y) { return mps_host::integer::mulhi(x, y); }                       \
  MPS_SHIM_INLINE constexpr T madhi(T a, T b, T c) { return mps_host::integer::madhi(a, b, c); }               \
  MPS_SHIM_INLINE constexpr T madsat(T a, T b, T c) { return mps_host::integer::madsat(a, b, c); }             \
  MPS_SHIM_INLINE constexpr T clz(T x) { return mps_host::integer::clz(x); }                                   \
  MPS_SHIM_INLINE constexpr T ctz(T x) { return mps_host::integer::ctz(x); }                                   \
  MPS_SHIM_INLINE constexpr T popcount(T x) { return mps_host::integer::popcount(x); }                         \
  MPS_SHIM_INLINE constexpr T reverse_bits(T x) { return mps_host::integer::reverse_bits(x); }                 \
  MPS_SHIM_INLINE constexpr T rotate(T v, T i) { return mps_host::integer::rotate(v, i); }                     \
  MPS_SHIM_INLINE constexpr T extract_bits(T x, uint offset, uint bits) {                                      \
    return mps_host::integer::extract_bits(x, offset, bits);                                                   \
  }                                                                                                            \
  MPS_SHIM_INLINE constexpr T insert_bits(T base, T insert, uint offset, uint bits) {                          \
    return mps_host::integer::insert_bits(base, insert, offset, bits);                                         \
  }                                                                                                            \
  MPS_SHIM_INLINE constexpr T min(T x, T y) { return mps_host::integer::min(x, y); }                           \
  MPS_SHIM_INLINE constexpr T max(T x, T y) { return mps_host::integer::max(x, y); }                           \
  MPS_SHIM_INLINE constexpr T clamp(T x, T minval, T maxval) {                                                 \
    return mps_host::integer::min(mps_host::integer::max(x, minval), maxval);                                  \
  }                                                                                                            \
  MPS_SHIM_INLINE constexpr T min3(T x, T y, T z) { return mps_host::integer::min(x, mps_host::integer::min(y, z)); } \
  MPS_SHIM_INLINE constexpr T max3(T x, T y, T z) { return mps_host::integer::max(x, mps_host::integer::max(y, z)); } \
  MPS_SHIM_INLINE constexpr T median3(T x, T y, T z) { return mps_host::integer::median3(x, y, z); }

MPS_INT_SCALAR(char, uchar)
MPS_INT_SCALAR(uchar, uchar)
MPS_INT_SCALAR(short, ushort)
MPS_INT_SCALAR(ushort, ushort)
MPS_INT_SCALAR(int, uint)
MPS_INT_SCALAR(uint, uint)
MPS_INT_SCALAR(long, ulong)
MPS_INT_SCALAR(ulong, ulong)
// Metal's int8_t is char; here <stdint.h> makes it signed char, a distinct type,
// which would otherwise promote to the int overloads.
MPS_INT_SCALAR(mps_host::integer::schar, uchar)
#undef MPS_INT_SCALAR

MPS_SHIM_INLINE constexpr int mul24(int x, int y) { return mps_host::integer::mul24(x, y); }
MPS_SHIM_INLINE constexpr uint mul24(uint x, uint y) { return mps_host::integer::mul24(x, y); }
MPS_SHIM_INLINE constexpr int mad24(int x, int y, int z) { return int(uint(mul24(x, y)) + uint(z)); }
MPS_SHIM_INLINE constexpr uint mad24(uint x, uint y, uint z) { return mul24(x, y) + z; }

// Vector overloads, lane by lane through the scalar ones above (lazily
// instantiated; see MPS_VECTOR_OVERLOAD).
#define MPS_INT_VECTOR(T, U, N)                                                                                \
  MPS_VECTOR_OVERLOAD vec<T, N> abs(const vec<T, N>& x) { return lanes([](T a) { return abs(a); }, x); }           \
  MPS_VECTOR_OVERLOAD vec<U, N> absdiff(const vec<T, N>& x, const vec<T, N>& y) {                                  \
    return lanes([](T a, T b) { return absdiff(a, b); }, x, y);                                                \
  }                                                                                                            \
  MPS_VECTOR_OVERLOAD vec<T, N> addsat(const vec<T, N>& x, const vec<T, N>& y) {                                   \
    return lanes([](T a, T b) { return addsat(a, b); }, x, y);                                                 \
  }                                                                                                            \
  MPS_VECTOR_OVERLOAD vec<T, N> subsat(const vec<T, N>& x, const vec<T, N>& y) {                                   \
    return lanes([](T a, T b) { return subsat(a, b); }, x, y);                                                 \
  }                                                                                                            \
  MPS_VECTOR_OVERLOAD vec<T, N> hadd(const vec<T, N>& x, const vec<T, N>& y) {                                     \
    return lanes([](T a, T b) { return hadd(a, b); }, x, y);                                                   \
  }                                                                                                            \
  MPS_VECTOR_OVERLOAD vec<T, N> rhadd(const vec<T, N>& x, const vec<T, N>& y) {                                    \
    return lanes([](T a, T b) { return rhadd(a, b); }, x, y);                                                  \
  }                                                                                                            \
  MPS_VECTOR_OVERLOAD vec<T, N> mulhi(const vec<T, N>& x, const vec<T, N>& y) {                                    \
    return lanes([](T a, T b) { return mulhi(a, b); }, x, y);                                                  \
  }                                                                                                            \
  MPS_VECTOR_OVERLOAD vec<T, N> madhi(const vec<T, N>& a, const vec<T, N>& b, const vec<T, N>& c) {                \
    return lanes([](T p, T q, T r) { return madhi(p, q, r); }, a, b, c);                                       \
  }                                                                                                            \
  MPS_VECTOR_OVERLOAD vec<T, N> madsat(const vec<T, N>& a, const vec<T, N>& b, const vec<T, N>& c) {               \
    return lanes([](T p, T q, T r) { return madsat(p, q, r); }, a, b, c);                                      \
  }                                                                                                            \
  MPS_VECTOR_OVERLOAD vec<T, N> clz(const vec<T, N>& x) { return lanes([](T a) { return clz(a); }, x); }           \
  MPS_VECTOR_OVERLOAD vec<T, N> ctz(const vec<T, N>& x) { return lanes([](T a) { return ctz(a); }, x); }           \
  MPS_VECTOR_OVERLOAD vec<T, N> popcount(const vec<T, N>& x) { return lanes([](T a) { return popcount(a); }, x); } \
  MPS_VECTOR_OVERLOAD vec<T, N> reverse_bits(const vec<T, N>& x) {                                                 \
    return lanes([](T a) { return reverse_bits(a); }, x);                                                      \
  }                                                                                                            \
  MPS_VECTOR_OVERLOAD vec<T, N> rotate(const vec<T, N>& v, const vec<T, N>& i) {                                   \
    return lanes([](T a, T b) { return rotate(a, b); }, v, i);                                                 \
  }                                                                                                            \
  MPS_VECTOR_OVERLOAD vec<T, N> extract_bits(const vec<T, N>& x, uint offset, uint bits) {                         \
    return lanes([=](T a) { return extract_bits(a, offset, bits); }, x);                                       \
  }                                                                                                            \
  MPS_VECTOR_OVERLOAD vec<T, N> insert_bits(const vec<T, N>& base, const vec<T, N>& insert, uint offset,           \
                                        uint bits) {                                                           \
    return lanes([=](T a, T b) { return insert_bits(a, b, offset, bits); }, base, insert);                     \
  }                                                                                                            \
  MPS_VECTOR_OVERLOAD vec<T, N> min(const vec<T, N>& x, const vec<T, N>& y) {                                      \
    return lanes([](T a, T b) { return min(a, b); }, x, y);                                                    \
  }                                                                                                            \
  MPS_VECTOR_OVERLOAD vec<T, N> max(const vec<T, N>& x, const vec<T, N>& y) {                                      \
    return lanes([](T a, T b) { return max(a, b); }, x, y);                                                    \
  }                                                                                                            \
  MPS_VECTOR_OVERLOAD vec<T, N> clamp(const vec<T, N>& x, const vec<T, N>& minval, const vec<T, N>& maxval) {      \
    return lanes([](T a, T lo, T hi) { return clamp(a, lo, hi); }, x, minval, maxval);                         \
  }                                                                                                            \
  MPS_VECTOR_OVERLOAD vec<T, N> min3(const vec<T, N>& x, const vec<T, N>& y, const vec<T, N>& z) {                 \
    return lanes([](T a, T b, T c) { return min3(a, b, c); }, x, y, z);                                        \
  }                                                                                                            \
  MPS_VECTOR_OVERLOAD vec<T, N> max3(const vec<T, N>& x, const vec<T, N>& y, const vec<T, N>& z) {                 \
    return lanes([](T a, T b, T c) { return max3(a, b, c); }, x, y, z);                                        \
  }                                                                                                            \
  MPS_VECTOR_OVERLOAD vec<T, N> median3(const vec<T, N>& x, const vec<T, N>& y, const vec<T, N>& z) {              \
    return lanes([](T a, T b, T c) { return median3(a, b, c); }, x, y, z);                                     \
  }
#define MPS_INT_VECTORS(T, U) MPS_INT_VECTOR(T, U, 2) MPS_INT_VECTOR(T, U, 3) MPS_INT_VECTOR(T, U, 4)
MPS_INT_VECTORS(char, uchar)
MPS_INT_VECTORS(uchar, uchar)
MPS_INT_VECTORS(short, ushort)
MPS_INT_VECTORS(ushort, ushort)
MPS_INT_VECTORS(int, uint)
MPS_INT_VECTORS(uint, uint)
MPS_INT_VECTORS(long, ulong)
MPS_INT_VECTORS(ulong, ulong)
#undef MPS_INT_VECTORS
#undef MPS_INT_VECTOR

#define MPS_INT24_VECTOR(T, N)                                                                                 \
  MPS_VECTOR_OVERLOAD vec<T, N> mul24(const vec<T, N>& x, const vec<T, N>& y) {                                    \
    return lanes([](T a, T b) { return mul24(a, b); }, x, y);                                                  \
  }                                                                                                            \
  MPS_VECTOR_OVERLOAD vec<T, N> mad24(const vec<T, N>& x, const vec<T, N>& y, const vec<T, N>& z) {                \
    return lanes([](T a, T b, T c) { return mad24(a, b, c); }, x, y, z);                                       \
  }
MPS_INT24_VECTOR(int, 2)
MPS_INT24_VECTOR(int, 3)
MPS_INT24_VECTOR(int, 4)
MPS_INT24_VECTOR(uint, 2)
MPS_INT24_VECTOR(uint, 3)
MPS_INT24_VECTOR(uint, 4)
#undef MPS_INT24_VECTOR

}  // namespace metal

#endif
