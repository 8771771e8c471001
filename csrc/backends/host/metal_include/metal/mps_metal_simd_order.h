// The order in which SIMD-group functions combine lanes, and the combining
// operations: shared by every engine (the host's fibers and lane loops, the
// CUDA engine's warps), so that reductions and scans round alike everywhere.
#ifndef MPS_METAL_SIMD_ORDER_H
#define MPS_METAL_SIMD_ORDER_H

#ifndef MPS_HOST_METAL_H
#error "include mps_host_metal.h instead"
#endif

namespace mps_host {
namespace simd {

// The combining operations, shared by both engines so that they round alike.
struct Sum { template <typename T> MPS_SHIM_INLINE T operator()(T a, T b) const { return T(a + b); } };
struct Product { template <typename T> MPS_SHIM_INLINE T operator()(T a, T b) const { return T(a * b); } };
struct Min { template <typename T> MPS_SHIM_INLINE T operator()(T a, T b) const { return T(metal::min(a, b)); } };
struct Max { template <typename T> MPS_SHIM_INLINE T operator()(T a, T b) const { return T(metal::max(a, b)); } };
struct And { template <typename T> MPS_SHIM_INLINE T operator()(T a, T b) const { return T(a & b); } };
struct Or { template <typename T> MPS_SHIM_INLINE T operator()(T a, T b) const { return T(a | b); } };
// (Floating-point scalars by their bits: Apple's __metal_simd_xor takes a float,
// as MLX's bf16_math.h calls it.)
struct Xor {
  template <typename T>
  MPS_SHIM_INLINE T operator()(T a, T b) const {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, half> || std::is_same_v<T, metal::bfloat>) {
      using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint16_t>;
      return __builtin_bit_cast(T, U(__builtin_bit_cast(U, a) ^ __builtin_bit_cast(U, b)));
    } else {
      return T(a ^ b);
    }
  }
};

// The order in which SIMD-group and quad-group functions combine lanes, one
// for both engines (docs/architecture.md, "Order of SIMD-group reductions and
// scans"): a tree of neighbours, as a shuffle-xor butterfly with offsets 1, 2,
// 4, 8, 16 combines them. A reduction over N lanes (32, or 4 for a quad)
// pairs lanes (2i, 2i + 1), then those pairs' results (2i, 2i + 1), ...: level
// k combines the aligned blocks of 2^k lanes, left block first. So quad_sum is
// the first two levels of simd_sum. An inactive lane is left out: a block with
// one side inactive passes the other side on unchanged (as an exact identity
// would). Scans use the same levels the other way round (Kogge-Stone, see
// scan_values) and the last lane's inclusive scan of a full group is simd_sum.

// The tree over the lanes of `present` (bits of vals[0..N)); present != 0.
template <unsigned N, typename T, typename Op>
MPS_SHIM_OUT_OF_LINE T partial_tree(const T* vals, uint32_t present, Op op) {
  T a[N];
  for (unsigned i = 0; i < N; ++i) a[i] = vals[i];
  for (unsigned d = 1; d < N; d *= 2)
    for (unsigned i = 0; i < N; i += 2 * d) {
      const bool left = (present >> i) & 1u, right = (present >> (i + d)) & 1u;
      if (left && right) a[i] = op(a[i], a[i + d]);
      else if (right) a[i] = a[i + d];
      present |= uint32_t(right) << i;
    }
  return a[0];
}

// scan_values' out[lane] (level K of it), computed for that lane alone: the
// same operations on the lanes <= lane only. False: no lane <= lane is active.
template <unsigned K, typename T, typename Op>
MPS_SHIM_INLINE bool scan_lane(const T* vals, uint32_t mask, unsigned lane, T& out, Op op) {
  if constexpr (K == 0) {
    out = vals[lane];
    return (mask >> lane) & 1u;
  } else {
    constexpr unsigned d = 1u << (K - 1);
    T right;
    const bool has_right = scan_lane<K - 1>(vals, mask, lane, right, op);
    if (lane < d) {
      out = right;
      return has_right;
    }
    T left;
    const bool has_left = scan_lane<K - 1>(vals, mask, lane - d, left, op);
    out = has_left && has_right ? op(left, right) : has_right ? right : left;
    return has_left || has_right;
  }
}

}  // namespace simd
}  // namespace mps_host

#endif
