// SIMD-group matrices (<metal_simdgroup_matrix>): an 8x8 matrix spread over the
// 32 lanes of a SIMD-group, two elements per lane, as on Apple GPUs: lane l
// holds row (l/4 & 4) + (l/2 % 4), columns (l/4 & 2)*2 + (l%2)*2 and the one
// after (the layout thread_elements() exposes, on which MLX's steel kernels
// rely). Loads and stores are each lane's own; a product gathers the lanes'
// elements of both factors. Products accumulate in float (double for float
// inputs would differ from the GPU's float arithmetic), k ascending, then add c.
//
// Each engine defines, after this header, mps_host::simdgroup_matrix::lane()
// (the caller's lane) and gather(mine, out[8][8]) (every lane's two elements;
// an inactive lane's as zeros): the host's on fibers
// (host/mps_metal_simdgroup_matrix.h), CUDA's with warp shuffles
// (cuda_engine/mps_cuda_simdgroup_matrix.h).
#ifndef MPS_METAL_SIMDGROUP_MATRIX_SHARED_H
#define MPS_METAL_SIMDGROUP_MATRIX_SHARED_H

namespace mps_host {
namespace simdgroup_matrix {

MPS_SHIM_INLINE unsigned row_of(unsigned l) { return (l / 4 & 4) + (l / 2 % 4); }
MPS_SHIM_INLINE unsigned col_of(unsigned l) { return (l / 4 & 2) * 2 + (l % 2) * 2; }
MPS_SHIM_INLINE unsigned lane();
template <typename T>
MPS_SHIM_INLINE void gather(const metal::vec<T, 2>& mine, float out[8][8]);

}  // namespace simdgroup_matrix
}  // namespace mps_host

namespace metal {

template <typename T, int Cols, int Rows = Cols>
struct simdgroup_matrix {
  static_assert(Cols == 8 && Rows == 8, "the host engine has 8x8 SIMD-group matrices");
  vec<T, 2> elements_;
  simdgroup_matrix() = default;
  MPS_SHIM_INLINE vec<T, 2>& thread_elements() { return elements_; }
  MPS_SHIM_INLINE const vec<T, 2>& thread_elements() const { return elements_; }
};

typedef simdgroup_matrix<float, 8, 8> simdgroup_float8x8;
typedef simdgroup_matrix<half, 8, 8> simdgroup_half8x8;
typedef simdgroup_matrix<bfloat, 8, 8> simdgroup_bfloat8x8;

template <typename T, int Cols, int Rows = Cols>
MPS_SHIM_INLINE simdgroup_matrix<T, Cols, Rows> make_filled_simdgroup_matrix(T value) {
  simdgroup_matrix<T, Cols, Rows> m;
  m.elements_ = vec<T, 2>(value, value);
  return m;
}

// Element (r, c) of the matrix is src[(origin.y + r) * elements_per_row + origin.x + c],
// or with transpose_matrix, src[(origin.y + c) * elements_per_row + origin.x + r].
template <typename T, int C, int R, typename U>
MPS_SHIM_INLINE void simdgroup_load(simdgroup_matrix<T, C, R>& d, const U* src, ulong elements_per_row = C,
                                    ulong2 matrix_origin = ulong2(0), bool transpose_matrix = false) {
  const unsigned l = mps_host::simdgroup_matrix::lane();
  const unsigned r = mps_host::simdgroup_matrix::row_of(l), c = mps_host::simdgroup_matrix::col_of(l);
  for (unsigned j = 0; j < 2; ++j) {
    const ulong row = transpose_matrix ? c + j : r, col = transpose_matrix ? r : c + j;
    d.elements_[j] = T(src[(matrix_origin.y + row) * elements_per_row + matrix_origin.x + col]);
  }
}

template <typename T, int C, int R, typename U>
MPS_SHIM_INLINE void simdgroup_store(const simdgroup_matrix<T, C, R>& a, U* dst, ulong elements_per_row = C,
                                     ulong2 matrix_origin = ulong2(0), bool transpose_matrix = false) {
  const unsigned l = mps_host::simdgroup_matrix::lane();
  const unsigned r = mps_host::simdgroup_matrix::row_of(l), c = mps_host::simdgroup_matrix::col_of(l);
  for (unsigned j = 0; j < 2; ++j) {
    const ulong row = transpose_matrix ? c + j : r, col = transpose_matrix ? r : c + j;
    dst[(matrix_origin.y + row) * elements_per_row + matrix_origin.x + col] = U(a.elements_[j]);
  }
}

// d = a * b + c
template <typename TD, typename TA, typename TB, typename TC, int C, int R>
MPS_SHIM_INLINE void simdgroup_multiply_accumulate(simdgroup_matrix<TD, C, R>& d, const simdgroup_matrix<TA, C, R>& a,
                                                   const simdgroup_matrix<TB, C, R>& b,
                                                   const simdgroup_matrix<TC, C, R>& c) {
  float A[8][8], B[8][8];
  mps_host::simdgroup_matrix::gather(a.elements_, A);
  mps_host::simdgroup_matrix::gather(b.elements_, B);
  const unsigned l = mps_host::simdgroup_matrix::lane();
  const unsigned r = mps_host::simdgroup_matrix::row_of(l), col = mps_host::simdgroup_matrix::col_of(l);
  vec<TD, 2> out;
  for (unsigned j = 0; j < 2; ++j) {
    float acc = 0.0f;
    for (unsigned k = 0; k < 8; ++k) acc += A[r][k] * B[k][col + j];
    out[j] = TD(acc + float(c.elements_[j]));
  }
  d.elements_ = out;
}

template <typename TD, typename TA, typename TB, int C, int R>
MPS_SHIM_INLINE void simdgroup_multiply(simdgroup_matrix<TD, C, R>& d, const simdgroup_matrix<TA, C, R>& a,
                                        const simdgroup_matrix<TB, C, R>& b) {
  simdgroup_multiply_accumulate(d, a, b, make_filled_simdgroup_matrix<TD, C, R>(TD(0)));
}

}  // namespace metal

#endif
