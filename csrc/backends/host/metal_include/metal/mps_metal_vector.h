// Metal's vector types: vec<T, N> (N = 2, 3, 4) with .xyzw/.rgba components,
// swizzles on read and write, Metal's constructors, component-wise operators
// with scalar broadcast, and packed_vec<T, N>.
//
// Swizzles are proxy members in a union over the lanes: `v.zyx` converts to
// vec<T, 3>; assigning to it writes lanes 2, 1, 0 (repeated lanes cannot be
// assigned). Operators are non-template hidden friends of vec, so a swizzle
// or a scalar converts implicitly the way Metal's built-in operators allow.
#ifndef MPS_METAL_VECTOR_H
#define MPS_METAL_VECTOR_H

namespace metal {
namespace types {  // as bfloat (mps_metal_stdlib.h): lookup from a vector finds only its operators

template <typename T, int N>
struct vec;
template <typename T, int N>
struct packed_vec;

namespace detail {

template <int N>
constexpr int storage_lanes = N == 3 ? 4 : N;  // vec<T, 3> has the size of vec<T, 4>

template <int... I>
constexpr bool distinct_lanes() {
  constexpr int lanes[] = {I...};
  for (unsigned a = 0; a < sizeof...(I); ++a)
    for (unsigned b = a + 1; b < sizeof...(I); ++b)
      if (lanes[a] == lanes[b]) return false;
  return true;
}

// Lanes I... of a vector whose storage holds S elements of T. V (the result
// type) is a template argument so that argument-dependent lookup finds vec's
// operators; only member bodies use it, since V may still be incomplete here.
template <typename V, typename T, int S, int... I>
struct swizzle {
  // Every vector type holds hundreds of these, so they declare as few members
  // as possible (instantiation cost); the rest are free templates below.
  T lanes_[S];

  MPS_SHIM_INLINE constexpr operator V() const { return V(lanes_[I]...); }
  MPS_SHIM_INLINE swizzle& operator=(const V& r) {
    static_assert(distinct_lanes<I...>(), "a swizzle that repeats a component cannot be assigned to");
    int k = 0;
    ((lanes_[I] = r[k++]), ...);
    return *this;
  }
  // Not the implicit copy: that would copy every lane, not just I...
  MPS_SHIM_INLINE swizzle& operator=(const swizzle& o) { return *this = V(o); }
};

template <typename V, typename T, int S, int... I>
MPS_SHIM_INLINE constexpr V swizzle_value(const swizzle<V, T, S, I...>& s) {
  return V(s.lanes_[I]...);
}

#define MPS_SWIZZLE_COMPOUND(op)                                                               \
  template <typename V, typename T, int S, int... I, typename U>                               \
  MPS_SHIM_INLINE swizzle<V, T, S, I...>& operator op##=(swizzle<V, T, S, I...>& s, const U& o) { \
    return s = swizzle_value(s) op o;                                                          \
  }
MPS_SWIZZLE_COMPOUND(+)
MPS_SWIZZLE_COMPOUND(-)
MPS_SWIZZLE_COMPOUND(*)
MPS_SWIZZLE_COMPOUND(/)
#undef MPS_SWIZZLE_COMPOUND

template <typename T, int S, int... I>
using swz = swizzle<vec<T, int(sizeof...(I))>, T, S, I...>;

// How many lanes an argument of a vector constructor contributes.
template <typename A>
struct lanes_of {
  static constexpr int value = 1;
};
template <typename U, int M>
struct lanes_of<vec<U, M>> {
  static constexpr int value = M;
};
template <typename U, int M>
struct lanes_of<packed_vec<U, M>> {
  static constexpr int value = M;
};
template <typename V, typename T, int S, int... I>
struct lanes_of<swizzle<V, T, S, I...>> {
  static constexpr int value = sizeof...(I);
};

template <typename A>
struct is_vector_like : std::false_type {};
template <typename U, int M>
struct is_vector_like<vec<U, M>> : std::true_type {};
template <typename U, int M>
struct is_vector_like<packed_vec<U, M>> : std::true_type {};
template <typename V, typename T, int S, int... I>
struct is_vector_like<swizzle<V, T, S, I...>> : std::true_type {};

template <typename U, int M>
MPS_SHIM_INLINE constexpr const vec<U, M>& vector_value(const vec<U, M>& v) { return v; }
template <typename U, int M>
MPS_SHIM_INLINE constexpr vec<U, M> vector_value(const packed_vec<U, M>& v) { return v; }
template <typename V, typename T, int S, int... I>
MPS_SHIM_INLINE constexpr V vector_value(const swizzle<V, T, S, I...>& v) { return swizzle_value(v); }

// Appends the lanes of one constructor argument (a scalar or any vector).
template <typename T, typename A>
MPS_SHIM_INLINE constexpr void put(T* out, int& k, const A& a) {
  if constexpr (!is_vector_like<A>::value) {
    out[k++] = T(a);
  } else {
    const auto v = vector_value(a);
    for (int i = 0; i < lanes_of<A>::value; ++i) out[k++] = T(v[i]);
  }
}

}  // namespace detail

// Lane lists for generating swizzle members: F(letter, lane, extra...) per lane.
// Each nesting depth needs its own macro, because a macro cannot expand inside itself.
#define MPS_L2_XY_1(F, ...) F(x, 0, __VA_ARGS__) F(y, 1, __VA_ARGS__)
#define MPS_L2_XY_2(F, ...) F(x, 0, __VA_ARGS__) F(y, 1, __VA_ARGS__)
#define MPS_L2_XY_3(F, ...) F(x, 0, __VA_ARGS__) F(y, 1, __VA_ARGS__)
#define MPS_L2_XY_4(F, ...) F(x, 0, __VA_ARGS__) F(y, 1, __VA_ARGS__)
#define MPS_L2_RG_1(F, ...) F(r, 0, __VA_ARGS__) F(g, 1, __VA_ARGS__)
#define MPS_L2_RG_2(F, ...) F(r, 0, __VA_ARGS__) F(g, 1, __VA_ARGS__)
#define MPS_L2_RG_3(F, ...) F(r, 0, __VA_ARGS__) F(g, 1, __VA_ARGS__)
#define MPS_L2_RG_4(F, ...) F(r, 0, __VA_ARGS__) F(g, 1, __VA_ARGS__)
#define MPS_L3_XYZ_1(F, ...) F(x, 0, __VA_ARGS__) F(y, 1, __VA_ARGS__) F(z, 2, __VA_ARGS__)
#define MPS_L3_XYZ_2(F, ...) F(x, 0, __VA_ARGS__) F(y, 1, __VA_ARGS__) F(z, 2, __VA_ARGS__)
#define MPS_L3_XYZ_3(F, ...) F(x, 0, __VA_ARGS__) F(y, 1, __VA_ARGS__) F(z, 2, __VA_ARGS__)
#define MPS_L3_XYZ_4(F, ...) F(x, 0, __VA_ARGS__) F(y, 1, __VA_ARGS__) F(z, 2, __VA_ARGS__)
#define MPS_L3_RGB_1(F, ...) F(r, 0, __VA_ARGS__) F(g, 1, __VA_ARGS__) F(b, 2, __VA_ARGS__)
#define MPS_L3_RGB_2(F, ...) F(r, 0, __VA_ARGS__) F(g, 1, __VA_ARGS__) F(b, 2, __VA_ARGS__)
#define MPS_L3_RGB_3(F, ...) F(r, 0, __VA_ARGS__) F(g, 1, __VA_ARGS__) F(b, 2, __VA_ARGS__)
#define MPS_L3_RGB_4(F, ...) F(r, 0, __VA_ARGS__) F(g, 1, __VA_ARGS__) F(b, 2, __VA_ARGS__)
#define MPS_L4_XYZW_1(F, ...) F(x, 0, __VA_ARGS__) F(y, 1, __VA_ARGS__) F(z, 2, __VA_ARGS__) F(w, 3, __VA_ARGS__)
#define MPS_L4_XYZW_2(F, ...) F(x, 0, __VA_ARGS__) F(y, 1, __VA_ARGS__) F(z, 2, __VA_ARGS__) F(w, 3, __VA_ARGS__)
#define MPS_L4_XYZW_3(F, ...) F(x, 0, __VA_ARGS__) F(y, 1, __VA_ARGS__) F(z, 2, __VA_ARGS__) F(w, 3, __VA_ARGS__)
#define MPS_L4_XYZW_4(F, ...) F(x, 0, __VA_ARGS__) F(y, 1, __VA_ARGS__) F(z, 2, __VA_ARGS__) F(w, 3, __VA_ARGS__)
#define MPS_L4_RGBA_1(F, ...) F(r, 0, __VA_ARGS__) F(g, 1, __VA_ARGS__) F(b, 2, __VA_ARGS__) F(a, 3, __VA_ARGS__)
#define MPS_L4_RGBA_2(F, ...) F(r, 0, __VA_ARGS__) F(g, 1, __VA_ARGS__) F(b, 2, __VA_ARGS__) F(a, 3, __VA_ARGS__)
#define MPS_L4_RGBA_3(F, ...) F(r, 0, __VA_ARGS__) F(g, 1, __VA_ARGS__) F(b, 2, __VA_ARGS__) F(a, 3, __VA_ARGS__)
#define MPS_L4_RGBA_4(F, ...) F(r, 0, __VA_ARGS__) F(g, 1, __VA_ARGS__) F(b, 2, __VA_ARGS__) F(a, 3, __VA_ARGS__)

#define MPS_SWZ_2(b, j, a, i) detail::swz<T, S, i, j> a##b;
#define MPS_SWZ_2_OUTER(a, i, L2) L2(MPS_SWZ_2, a, i)
#define MPS_SWZ_3(c, k, a, i, b, j) detail::swz<T, S, i, j, k> a##b##c;
#define MPS_SWZ_3_MID(b, j, a, i, L3) L3(MPS_SWZ_3, a, i, b, j)
#define MPS_SWZ_3_OUTER(a, i, L2, L3) L2(MPS_SWZ_3_MID, a, i, L3)
#define MPS_SWZ_4(d, l, a, i, b, j, c, k) detail::swz<T, S, i, j, k, l> a##b##c##d;
#define MPS_SWZ_4_IN(c, k, a, i, b, j, L4) L4(MPS_SWZ_4, a, i, b, j, c, k)
#define MPS_SWZ_4_MID(b, j, a, i, L3, L4) L3(MPS_SWZ_4_IN, a, i, b, j, L4)
#define MPS_SWZ_4_OUTER(a, i, L2, L3, L4) L2(MPS_SWZ_4_MID, a, i, L3, L4)
// Every swizzle of 2, 3 and 4 letters over one lane list.
#define MPS_SWIZZLES(L)                     \
  L##_1(MPS_SWZ_2_OUTER, L##_2)             \
  L##_1(MPS_SWZ_3_OUTER, L##_2, L##_3)      \
  L##_1(MPS_SWZ_4_OUTER, L##_2, L##_3, L##_4)

// The union members of each size: the lanes, named components, swizzles.
#define MPS_VEC_MEMBERS_2 \
  struct { T x, y; };     \
  struct { T r, g; };     \
  MPS_SWIZZLES(MPS_L2_XY) MPS_SWIZZLES(MPS_L2_RG)
#define MPS_VEC_MEMBERS_3 \
  struct { T x, y, z; };  \
  struct { T r, g, b; };  \
  MPS_SWIZZLES(MPS_L3_XYZ) MPS_SWIZZLES(MPS_L3_RGB)
#define MPS_VEC_MEMBERS_4   \
  struct { T x, y, z, w; }; \
  struct { T r, g, b, a; }; \
  MPS_SWIZZLES(MPS_L4_XYZW) MPS_SWIZZLES(MPS_L4_RGBA)

// Component-wise operators: non-template hidden friends, found through the
// vector type (also for swizzle operands) and open to implicit conversions.
#define MPS_VEC_ARITH(op)                                                                               \
  friend MPS_SHIM_INLINE constexpr vec operator op(const vec& p, const vec& q) {                         \
    vec r;                                                                                              \
    for (int i = 0; i < N; ++i) r.lanes_[i] = T(p.lanes_[i] op q.lanes_[i]);                            \
    return r;                                                                                           \
  }                                                                                                     \
  friend MPS_SHIM_INLINE constexpr vec operator op(const vec& p, T s) { return p op vec(s); }           \
  friend MPS_SHIM_INLINE constexpr vec operator op(T s, const vec& q) { return vec(s) op q; }           \
  MPS_SHIM_INLINE constexpr vec& operator op##=(const vec& o) { return *this = *this op o; }            \
  MPS_SHIM_INLINE constexpr vec& operator op##=(T s) { return *this = *this op vec(s); }
#define MPS_VEC_COMPARE(op)                                                                             \
  friend MPS_SHIM_INLINE constexpr vec<bool, N> operator op(const vec& p, const vec& q) {                \
    vec<bool, N> r;                                                                                     \
    for (int i = 0; i < N; ++i) r.lanes_[i] = p.lanes_[i] op q.lanes_[i];                               \
    return r;                                                                                           \
  }                                                                                                     \
  friend MPS_SHIM_INLINE constexpr vec<bool, N> operator op(const vec& p, T s) { return p op vec(s); }  \
  friend MPS_SHIM_INLINE constexpr vec<bool, N> operator op(T s, const vec& q) { return vec(s) op q; }

#define MPS_VEC_BODY(N_)                                                                                \
  using element_type = T;                                                                               \
  static constexpr int N = N_;                                                                          \
  static constexpr int S = detail::storage_lanes<N_>;                                                   \
  union {                                                                                               \
    T lanes_[S];                                                                                        \
    MPS_VEC_MEMBERS_##N_                                                                                \
  };                                                                                                    \
  vec() = default;                                                                                      \
  MPS_SHIM_INLINE constexpr vec(const vec& o) : lanes_{} {                                              \
    for (int i = 0; i < S; ++i) lanes_[i] = o.lanes_[i];                                                \
  }                                                                                                     \
  MPS_SHIM_INLINE constexpr vec& operator=(const vec& o) {                                              \
    for (int i = 0; i < S; ++i) lanes_[i] = o.lanes_[i];                                                \
    return *this;                                                                                       \
  }                                                                                                     \
  /* splat: float4(1.0f) and `float4 v = 1.0f;` */                                                      \
  MPS_SHIM_INLINE constexpr vec(T s) : lanes_{} {                                                       \
    for (int i = 0; i < N; ++i) lanes_[i] = s;                                                          \
  }                                                                                                     \
  /* `bfloat4 v = 0;`: a scalar to bfloat is a class conversion already, so the splat above would be */ \
  /* a second one, which C++ does not chain */                                                          \
  template <typename U, typename = std::enable_if_t<std::is_class_v<T> && !std::is_same_v<U, T> &&     \
                                                    (std::is_arithmetic_v<U> || std::is_same_v<U, half>)>> \
  MPS_SHIM_INLINE constexpr vec(U s) : vec(T(s)) {}                                                     \
  /* lanes from scalars and vectors, e.g. float4(v.xy, z, 1.0f); N lanes in all */                      \
  template <typename... A,                                                                              \
            typename = std::enable_if_t<(sizeof...(A) >= 2) && ((detail::lanes_of<A>::value + ...) == N_)>> \
  MPS_SHIM_INLINE constexpr vec(const A&... a) : lanes_{} {                                             \
    int k = 0;                                                                                          \
    (detail::put(lanes_, k, a), ...);                                                                   \
  }                                                                                                     \
  /* braces of scalars of one type, as Metal's (clang's) vector initialisers: the lanes in order, those \
     past the list 0 (uint4 k = {a, b, c} leaves w 0; float4 v = {1.0f} is (1, 0, 0, 0), not a splat) */ \
  template <typename U, typename = std::enable_if_t<!detail::is_vector_like<U>::value &&                 \
                                                    std::is_constructible_v<T, const U&>>>              \
  MPS_SHIM_INLINE constexpr vec(std::initializer_list<U> l) : lanes_{} {                                \
    int i = 0;                                                                                          \
    for (const U& u : l)                                                                                \
      if (i < N_) lanes_[i++] = T(u);                                                                   \
  }                                                                                                     \
  /* conversions between element types are explicit, as in Metal: half3(float3), half3(f.xyz) */       \
  template <typename A, typename = std::enable_if_t<detail::is_vector_like<A>::value &&                 \
                                                    detail::lanes_of<A>::value == N_ &&                 \
                                                    !std::is_same_v<A, vec> &&                          \
                                                    !std::is_convertible_v<const A&, vec>>>             \
  MPS_SHIM_INLINE constexpr explicit vec(const A& o) : lanes_{} {                                       \
    int k = 0;                                                                                          \
    detail::put(lanes_, k, o);                                                                          \
  }                                                                                                     \
  MPS_SHIM_INLINE constexpr T& operator[](int i) { return lanes_[i]; }                                  \
  MPS_SHIM_INLINE constexpr const T& operator[](int i) const { return lanes_[i]; }                      \
  MPS_VEC_ARITH(+)                                                                                      \
  MPS_VEC_ARITH(-)                                                                                      \
  MPS_VEC_ARITH(*)                                                                                      \
  MPS_VEC_ARITH(/)                                                                                      \
  MPS_VEC_ARITH(%)                                                                                      \
  MPS_VEC_ARITH(&)                                                                                      \
  MPS_VEC_ARITH(|)                                                                                      \
  MPS_VEC_ARITH(^)                                                                                      \
  MPS_VEC_ARITH(<<)                                                                                     \
  MPS_VEC_ARITH(>>)                                                                                     \
  MPS_VEC_COMPARE(==)                                                                                   \
  MPS_VEC_COMPARE(!=)                                                                                   \
  MPS_VEC_COMPARE(<)                                                                                    \
  MPS_VEC_COMPARE(<=)                                                                                   \
  MPS_VEC_COMPARE(>)                                                                                    \
  MPS_VEC_COMPARE(>=)                                                                                   \
  MPS_VEC_COMPARE(&&)                                                                                   \
  MPS_VEC_COMPARE(||)                                                                                   \
  friend MPS_SHIM_INLINE constexpr vec operator-(const vec& p) {                                        \
    vec r;                                                                                              \
    for (int i = 0; i < N; ++i) r.lanes_[i] = T(-p.lanes_[i]);                                          \
    return r;                                                                                           \
  }                                                                                                     \
  friend MPS_SHIM_INLINE constexpr vec operator+(const vec& p) { return p; }                            \
  friend MPS_SHIM_INLINE constexpr vec operator~(const vec& p) {                                        \
    vec r;                                                                                              \
    for (int i = 0; i < N; ++i) r.lanes_[i] = T(~p.lanes_[i]);                                          \
    return r;                                                                                           \
  }                                                                                                     \
  friend MPS_SHIM_INLINE constexpr vec<bool, N> operator!(const vec& p) {                               \
    vec<bool, N> r;                                                                                     \
    for (int i = 0; i < N; ++i) r.lanes_[i] = !p.lanes_[i];                                             \
    return r;                                                                                           \
  }                                                                                                     \
  MPS_SHIM_INLINE constexpr vec& operator++() { return *this += T(1); }                                 \
  MPS_SHIM_INLINE constexpr vec& operator--() { return *this -= T(1); }                                 \
  MPS_SHIM_INLINE constexpr vec operator++(int) { vec old = *this; *this += T(1); return old; }         \
  MPS_SHIM_INLINE constexpr vec operator--(int) { vec old = *this; *this -= T(1); return old; }

template <typename T>
struct alignas(2 * sizeof(T)) vec<T, 2> {
  MPS_VEC_BODY(2)
};
template <typename T>
struct alignas(4 * sizeof(T)) vec<T, 3> {
  MPS_VEC_BODY(3)
};
template <typename T>
struct alignas(4 * sizeof(T)) vec<T, 4> {
  MPS_VEC_BODY(4)
};

// packed_vec: the lanes without vec's alignment padding (packed_float3 is 12
// bytes). It converts to and from vec, and computes as vec.
#define MPS_PACKED_BODY(N_, ...)                                                                   \
  using element_type = T;                                                                          \
  union {                                                                                          \
    T lanes_[N_];                                                                                  \
    struct { T __VA_ARGS__; };                                                                           \
  };                                                                                               \
  packed_vec() = default;                                                                          \
  MPS_SHIM_INLINE constexpr packed_vec(const vec<T, N_>& v) : lanes_{} {                           \
    for (int i = 0; i < N_; ++i) lanes_[i] = v[i];                                                 \
  }                                                                                                \
  template <typename... A, typename = std::enable_if_t<(sizeof...(A) >= 2)>>                       \
  MPS_SHIM_INLINE constexpr packed_vec(const A&... a) : packed_vec(vec<T, N_>(a...)) {}            \
  /* from a swizzle or another vector of the same lanes, e.g. packed_float3 p = v.xyz; */          \
  template <typename A, typename = std::enable_if_t<detail::is_vector_like<A>::value &&            \
                                                    detail::lanes_of<A>::value == N_>>             \
  MPS_SHIM_INLINE constexpr packed_vec(const A& a) : lanes_{} {                                    \
    int k = 0;                                                                                     \
    detail::put(lanes_, k, a);                                                                     \
  }                                                                                                \
  MPS_SHIM_INLINE constexpr operator vec<T, N_>() const {                                          \
    vec<T, N_> v;                                                                                  \
    for (int i = 0; i < N_; ++i) v[i] = lanes_[i];                                                 \
    return v;                                                                                      \
  }                                                                                                \
  MPS_SHIM_INLINE constexpr T& operator[](int i) { return lanes_[i]; }                             \
  MPS_SHIM_INLINE constexpr const T& operator[](int i) const { return lanes_[i]; }

template <typename T>
struct packed_vec<T, 2> {
  MPS_PACKED_BODY(2, x, y)
};
template <typename T>
struct packed_vec<T, 3> {
  MPS_PACKED_BODY(3, x, y, z)
};
template <typename T>
struct packed_vec<T, 4> {
  MPS_PACKED_BODY(4, x, y, z, w)
};
}  // namespace types

using types::packed_vec;
using types::vec;

}  // namespace metal

#endif
