// CUDA's part of SIMD-group matrices (metal/mps_metal_simdgroup_matrix.h):
// the lane is the warp lane, and a product gathers the lanes' elements with
// warp shuffles (an inactive lane's read as zeros, as on the host).
#ifndef MPS_CUDA_SIMDGROUP_MATRIX_H
#define MPS_CUDA_SIMDGROUP_MATRIX_H

#include "../metal/mps_metal_simdgroup_matrix.h"

namespace mps_host {
namespace simdgroup_matrix {

MPS_SHIM_INLINE unsigned lane() { return threadIdx.x & 31u; }

template <typename T>
MPS_SHIM_INLINE void gather(const metal::vec<T, 2>& mine, float out[8][8]) {
  const uint32_t active = __activemask();
  const float own[2] = {float(mine[0]), float(mine[1])};
  for (unsigned l = 0; l < 32; ++l) {
    const float a = __shfl_sync(active, own[0], int(l)), b = __shfl_sync(active, own[1], int(l));
    const bool present = (active >> l) & 1u;
    out[row_of(l)][col_of(l)] = present ? a : 0.0f;
    out[row_of(l)][col_of(l) + 1] = present ? b : 0.0f;
  }
}

}  // namespace simdgroup_matrix
}  // namespace mps_host

#endif
