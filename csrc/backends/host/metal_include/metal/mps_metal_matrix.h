// Metal's matrix types: matrix<T, C, R> has C columns of vec<T, R>
// (floatCxR), indexed m[column][row], built column by column or from C*R
// scalars in column-major order, or as a diagonal from one scalar.
#ifndef MPS_METAL_MATRIX_H
#define MPS_METAL_MATRIX_H

namespace metal {

template <typename T, int C, int R>
struct matrix {
  using element_type = T;
  vec<T, R> columns_[C];

  matrix() = default;
  // A diagonal matrix: float3x3(1.0f) is the identity.
  MPS_SHIM_INLINE constexpr explicit matrix(T diagonal) : columns_{} {
    for (int c = 0; c < C; ++c)
      for (int r = 0; r < R; ++r) columns_[c][r] = c == r ? diagonal : T(0);
  }
  // C columns, or C*R scalars (column-major), or any mix adding up to C*R lanes.
  template <typename... A,
            typename = std::enable_if_t<(sizeof...(A) >= 2) && ((types::detail::lanes_of<A>::value + ...) == C * R)>>
  MPS_SHIM_INLINE constexpr matrix(const A&... a) : columns_{} {
    T flat[C * R] = {};
    int k = 0;
    (types::detail::put(flat, k, a), ...);
    for (int c = 0; c < C; ++c)
      for (int r = 0; r < R; ++r) columns_[c][r] = flat[c * R + r];
  }
  template <typename U, typename = std::enable_if_t<!std::is_same_v<U, T>>>
  MPS_SHIM_INLINE constexpr explicit matrix(const matrix<U, C, R>& o) : columns_{} {
    for (int c = 0; c < C; ++c) columns_[c] = vec<T, R>(o.columns_[c]);
  }

  MPS_SHIM_INLINE constexpr vec<T, R>& operator[](int c) { return columns_[c]; }
  MPS_SHIM_INLINE constexpr const vec<T, R>& operator[](int c) const { return columns_[c]; }

  friend MPS_SHIM_INLINE constexpr matrix operator+(const matrix& a, const matrix& b) {
    matrix m;
    for (int c = 0; c < C; ++c) m.columns_[c] = a.columns_[c] + b.columns_[c];
    return m;
  }
  friend MPS_SHIM_INLINE constexpr matrix operator-(const matrix& a, const matrix& b) {
    matrix m;
    for (int c = 0; c < C; ++c) m.columns_[c] = a.columns_[c] - b.columns_[c];
    return m;
  }
  friend MPS_SHIM_INLINE constexpr matrix operator-(const matrix& a) {
    matrix m;
    for (int c = 0; c < C; ++c) m.columns_[c] = -a.columns_[c];
    return m;
  }
  friend MPS_SHIM_INLINE constexpr matrix operator*(const matrix& a, T s) {
    matrix m;
    for (int c = 0; c < C; ++c) m.columns_[c] = a.columns_[c] * s;
    return m;
  }
  friend MPS_SHIM_INLINE constexpr matrix operator*(T s, const matrix& a) { return a * s; }
  // matrix * column vector: a linear combination of the columns.
  friend MPS_SHIM_INLINE constexpr vec<T, R> operator*(const matrix& m, const vec<T, C>& v) {
    vec<T, R> out(T(0));
    for (int c = 0; c < C; ++c) out += m.columns_[c] * v[c];
    return out;
  }
  // row vector * matrix: one dot product per column.
  friend MPS_SHIM_INLINE constexpr vec<T, C> operator*(const vec<T, R>& v, const matrix& m) {
    vec<T, C> out(T(0));
    for (int c = 0; c < C; ++c)
      for (int r = 0; r < R; ++r) out[c] += v[r] * m.columns_[c][r];
    return out;
  }
  MPS_SHIM_INLINE constexpr matrix& operator+=(const matrix& o) { return *this = *this + o; }
  MPS_SHIM_INLINE constexpr matrix& operator-=(const matrix& o) { return *this = *this - o; }
  MPS_SHIM_INLINE constexpr matrix& operator*=(T s) { return *this = *this * s; }
};

// (K columns x R rows) * (C columns x K rows) = C columns x R rows.
template <typename T, int K, int R, int C>
MPS_SHIM_INLINE constexpr matrix<T, C, R> operator*(const matrix<T, K, R>& a, const matrix<T, C, K>& b) {
  matrix<T, C, R> m;
  for (int c = 0; c < C; ++c) m[c] = a * b[c];
  return m;
}

template <typename T, int C, int R>
MPS_SHIM_INLINE constexpr matrix<T, R, C> transpose(const matrix<T, C, R>& m) {
  matrix<T, R, C> t;
  for (int c = 0; c < C; ++c)
    for (int r = 0; r < R; ++r) t[r][c] = m[c][r];
  return t;
}

template <typename T>
MPS_SHIM_INLINE constexpr T determinant(const matrix<T, 2, 2>& m) {
  return m[0][0] * m[1][1] - m[1][0] * m[0][1];
}
template <typename T>
MPS_SHIM_INLINE constexpr T determinant(const matrix<T, 3, 3>& m) {
  return m[0][0] * (m[1][1] * m[2][2] - m[2][1] * m[1][2]) - m[1][0] * (m[0][1] * m[2][2] - m[2][1] * m[0][2]) +
         m[2][0] * (m[0][1] * m[1][2] - m[1][1] * m[0][2]);
}
template <typename T>
MPS_SHIM_INLINE constexpr T determinant(const matrix<T, 4, 4>& m) {
  T det = T(0);
  for (int c = 0; c < 4; ++c) {  // expansion along row 0
    matrix<T, 3, 3> minor;
    for (int cc = 0, k = 0; cc < 4; ++cc) {
      if (cc == c) continue;
      for (int r = 1; r < 4; ++r) minor[k][r - 1] = m[cc][r];
      ++k;
    }
    det += (c % 2 ? T(-1) : T(1)) * m[c][0] * determinant(minor);
  }
  return det;
}

#define MPS_MATRIX_ALIASES(T, name)                                                       \
  typedef matrix<T, 2, 2> name##2x2;                                                      \
  typedef matrix<T, 2, 3> name##2x3;                                                      \
  typedef matrix<T, 2, 4> name##2x4;                                                      \
  typedef matrix<T, 3, 2> name##3x2;                                                      \
  typedef matrix<T, 3, 3> name##3x3;                                                      \
  typedef matrix<T, 3, 4> name##3x4;                                                      \
  typedef matrix<T, 4, 2> name##4x2;                                                      \
  typedef matrix<T, 4, 3> name##4x3;                                                      \
  typedef matrix<T, 4, 4> name##4x4;
MPS_MATRIX_ALIASES(float, float)
MPS_MATRIX_ALIASES(half, half)
#undef MPS_MATRIX_ALIASES

}  // namespace metal

#endif
