// The host engine's part of SIMD-group matrices (metal/mps_metal_simdgroup_matrix.h):
// a product gathers the lanes' elements through SIMD exchanges
// (mps_host_fibers.h), so a kernel that uses these runs on fibers
// (host_lowering.cpp keeps it off lane loops).
#ifndef MPS_METAL_SIMDGROUP_MATRIX_H
#define MPS_METAL_SIMDGROUP_MATRIX_H

#ifndef MPS_HOST_METAL_H
#error "include mps_host_metal.h instead"
#endif

#include "../metal/mps_metal_simdgroup_matrix.h"

namespace mps_host {
namespace simdgroup_matrix {

// The calling thread's lane in its SIMD-group.
MPS_SHIM_INLINE unsigned lane() {
  const auto* g = fibers::detail::tls.group;
  return g ? g->running->tid % 32u : 0u;
}

// All 64 elements of a matrix, from every lane's two.
template <typename T>
MPS_SHIM_INLINE void gather(const metal::vec<T, 2>& mine, float out[8][8]) {
  struct Pair { unsigned char b[2 * sizeof(T)]; };  // as bytes: Metal's types are not all trivially copyable
  Pair p;
  const T own[2] = {mine[0], mine[1]};
  __builtin_memcpy(p.b, own, sizeof own);
  const fibers::SimdView v = fibers::simd_exchange(p);
  for (unsigned l = 0; l < 32; ++l) {
    T two[2] = {T(0), T(0)};
    if (v.active(l)) {
      const Pair q = v.get<Pair>(l);
      __builtin_memcpy(two, q.b, sizeof two);
    }
    out[row_of(l)][col_of(l)] = float(two[0]);
    out[row_of(l)][col_of(l) + 1] = float(two[1]);
  }
}

}  // namespace simdgroup_matrix
}  // namespace mps_host

#endif
