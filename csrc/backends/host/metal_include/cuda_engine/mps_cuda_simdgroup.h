// Barriers and SIMD-group / quad-group functions on CUDA: a Metal SIMD-group
// is a warp (32 lanes, formed from the threadgroup's linear thread index as
// warps are), a threadgroup barrier is __syncthreads. The active lanes are
// the warp's converged lanes (__activemask): lanes of a partial group, or
// whose threads returned, take no part, as on Apple's GPUs.
//
// Reductions and scans follow metal/mps_metal_simd_order.h exactly, so they
// round as the host engine does: a full group with one shuffle per level, a
// partial one by gathering the active lanes' values and running the shared
// tree. Shuffles do not wrap: a lane whose source is outside its group or
// inactive keeps its own value (the fill value for the *_and_fill_* forms).
#ifndef MPS_CUDA_SIMDGROUP_H
#define MPS_CUDA_SIMDGROUP_H

#ifndef MPS_HOST_METAL_H
#error "include mps_cuda_metal.h instead"
#endif

namespace mps_cuda {
namespace simd {

using mps_host::simd::And;
using mps_host::simd::Max;
using mps_host::simd::Min;
using mps_host::simd::Or;
using mps_host::simd::Product;
using mps_host::simd::Sum;
using mps_host::simd::Xor;

inline unsigned lane_id() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z) & 31u; }

// Any value of up to 16 bytes, shuffled as 32-bit words.
template <typename T>
__forceinline__ T shuffle_from(uint32_t mask, const T& v, unsigned src) {
  static_assert(sizeof(T) <= 16, "SIMD-group functions carry values of at most 16 bytes");
  constexpr unsigned kWords = (sizeof(T) + 3) / 4;
  uint32_t w[kWords] = {};
  memcpy(w, &v, sizeof(T));
  for (unsigned i = 0; i < kWords; ++i) w[i] = __shfl_sync(mask, w[i], int(src));
  T r;
  memcpy(&r, w, sizeof(T));
  return r;
}

// The caller's W-lane group within the warp (W = 32 or 4): its first lane and its active lanes, from bit 0.
template <unsigned W>
struct Group {
  uint32_t warp_mask;  // every active lane of the warp: all of them take part in each shuffle
  unsigned base, lane;
  uint32_t mask;
  __forceinline__ Group() : warp_mask(__activemask()), base(lane_id() / W * W), lane(lane_id() - base) {
    mask = (warp_mask >> base) & (W == 32 ? 0xffffffffu : (1u << W) - 1u);
  }
  // Every lane of the warp active, so every group full. The path a function
  // takes must be the same for the whole warp: a __shfl_sync whose mask names
  // lanes that are at another call site is undefined (a partial quad beside
  // full ones lost values when each took its own path).
  __forceinline__ bool warp_full() const { return warp_mask == 0xffffffffu; }
  __forceinline__ bool active(long src) const { return src >= 0 && src < long(W) && ((mask >> src) & 1u); }
};

// vals[l]: lane l's value for the active lanes of the group, the first active one's elsewhere.
template <unsigned W, typename T>
__forceinline__ void gather(const Group<W>& g, const T& x, T* vals) {
  const unsigned first = unsigned(__ffs(int(g.mask)) - 1);
  for (unsigned l = 0; l < W; ++l) vals[l] = shuffle_from(g.warp_mask, x, g.base + ((g.mask >> l) & 1u ? l : first));
}

template <unsigned W, typename T, typename Op>
__forceinline__ T reduce(const T& x, Op op) {
  const Group<W> g;
  if (g.warp_full()) {  // level k: aligned blocks of 2^k lanes, left block first
    T v = x;
    for (unsigned d = 1; d < W; d *= 2) {
      const T other = shuffle_from(g.warp_mask, v, (g.base + g.lane) ^ d);
      v = g.lane & d ? op(other, v) : op(v, other);
    }
    return v;
  }
  T vals[W];
  gather<W>(g, x, vals);
  return mps_host::simd::partial_tree<W>(vals, g.mask, op);
}

// Inclusive (or exclusive) scan of the active lanes below the caller; `identity` where there are none.
template <unsigned W, bool kInclusive, typename T, typename Op>
__forceinline__ T scan(const T& x, T identity, Op op) {
  const Group<W> g;
  if (g.warp_full()) {  // Kogge-Stone
    T v = x;
    for (unsigned d = 1; d < W; d *= 2) {
      const T left = shuffle_from(g.warp_mask, v, g.base + (g.lane >= d ? g.lane - d : g.lane));
      if (g.lane >= d) v = op(left, v);
    }
    if (kInclusive) return v;
    const T before = shuffle_from(g.warp_mask, v, g.base + (g.lane ? g.lane - 1 : 0));
    return g.lane ? before : identity;
  }
  T vals[W];
  gather<W>(g, x, vals);
  if (!kInclusive && g.lane == 0) return identity;
  T out;
  return mps_host::simd::scan_lane<W == 32 ? 5 : 2>(vals, g.mask, kInclusive ? g.lane : g.lane - 1, out, op) ? out
                                                                                                            : identity;
}

// Lane `src` of the caller's group, or `fallback` when it is outside the group or inactive.
template <unsigned W, typename T>
__forceinline__ T pick(const Group<W>& g, const T& x, long src, const T& fallback) {
  const T v = shuffle_from(g.warp_mask, x, g.base + (g.active(src) ? unsigned(src) : g.lane));
  return g.active(src) ? v : fallback;
}

}  // namespace simd
}  // namespace mps_cuda

namespace metal {

// The ballot of a SIMD-group: bit l set when lane l is active and voted true.
struct simd_vote {
  using vote_t = ulong;
  vote_t value;
  constexpr explicit simd_vote(vote_t v = 0) : value(v) {}
  constexpr explicit operator vote_t() const { return value; }
  constexpr bool any() const { return value != 0; }
  constexpr bool all() const { return value == active_; }
  vote_t active_ = 0;
};
typedef simd_vote quad_vote;

// Threads that returned no longer take part (sm_70 and later count exited warps out).
__forceinline__ void threadgroup_barrier(mem_flags = mem_flags::mem_none) { __syncthreads(); }
__forceinline__ void simdgroup_barrier(mem_flags = mem_flags::mem_none) { __syncwarp(__activemask()); }

#define MPS_CUDA_GROUP_FUNCTIONS(P, W)                                                                     \
  template <typename T> __forceinline__ T P##_sum(T x) { return mps_cuda::simd::reduce<W>(x, mps_cuda::simd::Sum()); } \
  template <typename T> __forceinline__ T P##_product(T x) {                                               \
    return mps_cuda::simd::reduce<W>(x, mps_cuda::simd::Product());                                        \
  }                                                                                                        \
  template <typename T> __forceinline__ T P##_min(T x) { return mps_cuda::simd::reduce<W>(x, mps_cuda::simd::Min()); } \
  template <typename T> __forceinline__ T P##_max(T x) { return mps_cuda::simd::reduce<W>(x, mps_cuda::simd::Max()); } \
  template <typename T> __forceinline__ T P##_and(T x) { return mps_cuda::simd::reduce<W>(x, mps_cuda::simd::And()); } \
  template <typename T> __forceinline__ T P##_or(T x) { return mps_cuda::simd::reduce<W>(x, mps_cuda::simd::Or()); }   \
  template <typename T> __forceinline__ T P##_xor(T x) { return mps_cuda::simd::reduce<W>(x, mps_cuda::simd::Xor()); } \
  template <typename T> __forceinline__ T P##_prefix_inclusive_sum(T x) {                                  \
    return mps_cuda::simd::scan<W, true>(x, T(0), mps_cuda::simd::Sum());                                  \
  }                                                                                                        \
  template <typename T> __forceinline__ T P##_prefix_exclusive_sum(T x) {                                  \
    return mps_cuda::simd::scan<W, false>(x, T(0), mps_cuda::simd::Sum());                                 \
  }                                                                                                        \
  template <typename T> __forceinline__ T P##_prefix_inclusive_product(T x) {                              \
    return mps_cuda::simd::scan<W, true>(x, T(1), mps_cuda::simd::Product());                              \
  }                                                                                                        \
  template <typename T> __forceinline__ T P##_prefix_exclusive_product(T x) {                              \
    return mps_cuda::simd::scan<W, false>(x, T(1), mps_cuda::simd::Product());                             \
  }                                                                                                        \
  template <typename T> __forceinline__ T P##_shuffle(T x, ushort lane) {                                  \
    const mps_cuda::simd::Group<W> g;                                                                      \
    return mps_cuda::simd::pick(g, x, long(lane), x);                                                      \
  }                                                                                                        \
  template <typename T> __forceinline__ T P##_broadcast(T x, ushort lane) { return P##_shuffle(x, lane); } \
  template <typename T> __forceinline__ T P##_shuffle_up(T x, ushort delta) {                              \
    const mps_cuda::simd::Group<W> g;                                                                      \
    return mps_cuda::simd::pick(g, x, long(g.lane) - delta, x);                                            \
  }                                                                                                        \
  template <typename T> __forceinline__ T P##_shuffle_down(T x, ushort delta) {                            \
    const mps_cuda::simd::Group<W> g;                                                                      \
    return mps_cuda::simd::pick(g, x, long(g.lane) + delta, x);                                            \
  }                                                                                                        \
  template <typename T> __forceinline__ T P##_shuffle_xor(T x, ushort mask) {                              \
    const mps_cuda::simd::Group<W> g;                                                                      \
    return mps_cuda::simd::pick(g, x, long(g.lane ^ mask), x);                                             \
  }                                                                                                        \
  template <typename T> __forceinline__ T P##_shuffle_rotate_up(T x, ushort delta) {                       \
    const mps_cuda::simd::Group<W> g;                                                                      \
    return mps_cuda::simd::pick(g, x, long((g.lane + W - delta % W) % W), x);                              \
  }                                                                                                        \
  template <typename T> __forceinline__ T P##_shuffle_rotate_down(T x, ushort delta) {                     \
    const mps_cuda::simd::Group<W> g;                                                                      \
    return mps_cuda::simd::pick(g, x, long((g.lane + delta) % W), x);                                      \
  }                                                                                                        \
  template <typename T> __forceinline__ T P##_shuffle_and_fill_up(T data, T filling, ushort delta, ushort modulo = W) { \
    const mps_cuda::simd::Group<W> g;                                                                      \
    const long idx = long(g.lane), seg = idx / modulo * modulo;                                            \
    const bool inside = idx - seg >= long(delta);                                                          \
    const T d = mps_cuda::simd::pick(g, data, inside ? idx - delta : -1, filling);                         \
    const T f = mps_cuda::simd::pick(g, filling, inside ? -1 : seg + modulo - (long(delta) - (idx - seg)), filling); \
    return inside ? d : f;                                                                                 \
  }                                                                                                        \
  template <typename T> __forceinline__ T P##_shuffle_and_fill_down(T data, T filling, ushort delta, ushort modulo = W) { \
    const mps_cuda::simd::Group<W> g;                                                                      \
    const long idx = long(g.lane), seg = idx / modulo * modulo;                                            \
    const bool inside = idx - seg + long(delta) < long(modulo);                                            \
    const T d = mps_cuda::simd::pick(g, data, inside ? idx + delta : -1, filling);                         \
    const T f = mps_cuda::simd::pick(g, filling, inside ? -1 : idx + long(delta) - modulo, filling);       \
    return inside ? d : f;                                                                                 \
  }                                                                                                        \
  template <typename T> __forceinline__ T P##_broadcast_first(T x) {                                       \
    const mps_cuda::simd::Group<W> g;                                                                      \
    return mps_cuda::simd::pick(g, x, long(__ffs(int(g.mask)) - 1), x);                                    \
  }                                                                                                        \
  __forceinline__ simd_vote P##_ballot(bool vote) {                                                        \
    const mps_cuda::simd::Group<W> g;                                                                      \
    simd_vote r(ulong((__ballot_sync(g.warp_mask, vote) >> g.base) & g.mask));                             \
    r.active_ = ulong(g.mask);                                                                             \
    return r;                                                                                              \
  }                                                                                                        \
  __forceinline__ bool P##_all(bool x) { return P##_and(int(x)) != 0; }                                    \
  __forceinline__ bool P##_any(bool x) { return P##_or(int(x)) != 0; }                                     \
  __forceinline__ bool P##_is_first() {                                                                    \
    const mps_cuda::simd::Group<W> g;                                                                      \
    return unsigned(__ffs(int(g.mask)) - 1) == g.lane;                                                     \
  }                                                                                                        \
  __forceinline__ simd_vote P##_active_threads_mask() { return P##_ballot(true); }
MPS_CUDA_GROUP_FUNCTIONS(simd, 32)
MPS_CUDA_GROUP_FUNCTIONS(quad, 4)
#undef MPS_CUDA_GROUP_FUNCTIONS

__forceinline__ simd_vote simd_vote_all(bool x) { return simd_ballot(x); }

}  // namespace metal

#endif
