// Barriers and SIMD-group / quad-group functions, on the fiber core
// (mps_host_fibers.h): a kernel that reaches any of them runs each
// threadgroup's threads as fibers (see run_groups_as_fibers), so a barrier
// switches to the next thread and a SIMD-group function exchanges values with
// the other active lanes of its 32-lane SIMD-group (or 4-lane quad).
//
// Apple's semantics: only active lanes take part (a partial SIMD-group, or
// lanes whose threads returned), reductions and scans combine the active
// lanes in a tree (combine_values, scan_values: one order for both engines),
// shuffles do not wrap (a lane whose source is outside the group or inactive
// keeps its own value), and the *_and_fill_* shuffles take the fill value
// where the source falls off the group (or is inactive).
#ifndef MPS_METAL_SIMDGROUP_H
#define MPS_METAL_SIMDGROUP_H

#ifndef MPS_HOST_METAL_H
#error "include mps_host_metal.h instead"
#endif

namespace mps_host {
namespace simd {

namespace fib = ::mps_host::fibers;

// The combining operations and the tree order: metal/mps_metal_simd_order.h.

// Values travel as bytes: vectors are not trivially copyable (swizzle members).
template <typename T>
struct Bytes {
  static_assert(sizeof(T) <= fib::kSlotBytes, "SIMD-group functions carry values of at most 16 bytes");
  unsigned char b[sizeof(T)];
};
template <typename T>
MPS_SHIM_INLINE Bytes<T> pack(const T& v) {
  Bytes<T> r;
  __builtin_memcpy(r.b, &v, sizeof(T));
  return r;
}
template <typename T>
MPS_SHIM_INLINE T at(const fib::SimdView& view, unsigned lane) {
  const Bytes<T> b = view.get<Bytes<T>>(lane);
  T v;
  __builtin_memcpy(&v, b.b, sizeof(T));
  return v;
}

// The active lanes of the caller's W-lane group (W = 32: SIMD-group, 4: quad).
template <unsigned W>
MPS_SHIM_INLINE uint32_t group_mask(const fib::SimdView& v) {
  if (W == 32) return v.mask;
  const unsigned base = v.lane / W * W;
  return v.mask & (((1u << W) - 1u) << base);
}

#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)  // g++ 12 and later, clang
#define MPS_SHIM_VECTOR_TREE 1
#endif
#endif
#ifdef MPS_SHIM_VECTOR_TREE
// A level of pairs (2i, 2i + 1) over the lanes of lo, then hi (GCC vectors): even lanes op odd ones.
template <typename V, typename Op, size_t... I>
MPS_SHIM_INLINE auto pair_lanes(V lo, V hi, Op op, std::index_sequence<I...>) {
  return op(__builtin_shufflevector(lo, hi, 2 * I...), __builtin_shufflevector(lo, hi, 2 * I + 1 ...));
}
template <typename V, typename Op>
MPS_SHIM_INLINE auto pair_lanes(V lo, V hi, Op op) {
  return pair_lanes(lo, hi, op, std::make_index_sequence<sizeof(V) / sizeof(lo[0])>());
}
// The levels left within one vector, down to its last pair.
template <typename V, typename Op>
MPS_SHIM_INLINE auto vector_tree(V v, Op op) {
  if constexpr (sizeof(V) / sizeof(v[0]) == 2)
    return op(v[0], v[1]);
  else
    return vector_tree(pair_lanes(v, v, op, std::make_index_sequence<sizeof(V) / sizeof(v[0]) / 2>()), op);
}
// The levels over C vectors of consecutive lanes, then within the last one.
template <unsigned C, typename V, typename Op>
MPS_SHIM_INLINE auto chunk_tree(const V* chunks, Op op) {
  if constexpr (C == 1) {
    return vector_tree(chunks[0], op);
  } else {
    V next[C / 2];
    for (unsigned i = 0; i < C / 2; ++i) next[i] = pair_lanes(chunks[2 * i], chunks[2 * i + 1], op);
    return chunk_tree<C / 2>(next, op);
  }
}
#endif
// Sums and products of numbers apply lane by lane to GCC vectors, one rounding per lane as on scalars.
template <typename Op, typename T>
constexpr bool kLaneWiseOp = (std::is_arithmetic_v<T> || std::is_same_v<T, _Float16>) && !std::is_same_v<T, bool> &&
                             (std::is_same_v<Op, Sum> || std::is_same_v<Op, Product>) && sizeof(T) <= 8;
template <unsigned N, typename T, typename Op>
MPS_SHIM_INLINE void pair_level(const T* in, T* out, Op op) {
  for (unsigned i = 0; i < N / 2; ++i) out[i] = op(in[2 * i], in[2 * i + 1]);
}
template <unsigned N, typename T, typename Op>
MPS_SHIM_INLINE T full_tree(const T* in, Op op) {
#ifdef MPS_SHIM_VECTOR_TREE
  if constexpr (N == 32 && kLaneWiseOp<Op, T>) {
    // In 32-byte vectors (no 512-bit instructions, which slow a core's clock)
    // and registers: vectorised inside lane loops too, where g++ left the
    // array form scalar.
    constexpr unsigned kLanes = 32 / sizeof(T), kChunks = 32 / kLanes;
    typedef T V __attribute__((vector_size(32)));
    V chunks[kChunks];
    __builtin_memcpy(chunks, in, sizeof(chunks));
    return T(chunk_tree<kChunks>(chunks, op));
  } else
#endif
  if constexpr (N == 2) {
    return op(in[0], in[1]);
  } else {
    T half_tree[N / 2];  // one array per level: vectorises (in place it did not)
    pair_level<N>(in, half_tree, op);
    return full_tree<N / 2>(half_tree, op);
  }
}
// Combines vals[l] of the lanes l in `mask` (N-lane group, N = 32 or 4; mask != 0).
template <unsigned N, typename T, typename Op>
MPS_SHIM_INLINE T combine_values(const T* vals, uint32_t mask, Op op) {
  constexpr uint32_t all = N == 32 ? 0xffffffffu : (1u << N) - 1u;
  if (mask == all) return full_tree<N>(vals, op);
  return partial_tree<N>(vals, mask, op);
}

// Inclusive scans of the lanes of `mask` (N-lane group, as combine_values):
// Kogge-Stone, out[l] after level k combines lanes (l - 2^k, l] from out of
// level k - 1 at l - 2^(k-1) (left) and at l. Inactive lanes are left out as
// in partial_tree; out_mask bit l says whether any lane <= l is active.
// scan_lane computes one lane's value with the same operations.
template <unsigned N, typename T, typename Op>
__attribute__((noinline)) void scan_values(const T* vals, uint32_t mask, T* out, uint32_t* out_mask, Op op) {
  constexpr uint32_t all = N == 32 ? 0xffffffffu : (1u << N) - 1u;
  T a[N], b[N];
  for (unsigned i = 0; i < N; ++i) a[i] = vals[i];
  T* cur = a;
  T* next = b;
  if (mask == all) {
    for (unsigned d = 1; d < N; d *= 2) {
      for (unsigned i = 0; i < d; ++i) next[i] = cur[i];
      for (unsigned i = d; i < N; ++i) next[i] = op(cur[i - d], cur[i]);
      T* t = cur;
      cur = next, next = t;
    }
  } else {
    for (unsigned d = 1; d < N; d *= 2) {
      const uint32_t before = mask;
      for (unsigned i = 0; i < d; ++i) next[i] = cur[i];
      for (unsigned i = d; i < N; ++i) {
        const bool left = (before >> (i - d)) & 1u, right = (before >> i) & 1u;
        next[i] = left && right ? op(cur[i - d], cur[i]) : right ? cur[i] : cur[i - d];
        mask |= uint32_t(left) << i;
      }
      T* t = cur;
      cur = next, next = t;
    }
  }
  for (unsigned i = 0; i < N; ++i) out[i] = cur[i];
  *out_mask = mask;
}

// The deposits of the W-lane group from lane `base` (an inactive lane reads as the first active one's).
template <unsigned W, typename T>
MPS_SHIM_INLINE void gather(const fib::SimdView& v, unsigned base, uint32_t mask, T* vals) {
  const T first = at<T>(v, base + unsigned(__builtin_ctz(mask)));
  for (unsigned l = 0; l < W; ++l) vals[l] = (mask >> l) & 1u ? at<T>(v, base + l) : first;
}
// Combines the active lanes of the caller's group (combine_values); same result
// on every lane, computed once per SIMD-group for the SIMD-group (W = 32).
template <unsigned W, typename T, typename Op>
MPS_SHIM_INLINE T combine(const fib::SimdView& v, Op op) {
  const unsigned base = v.lane / W * W;
  const uint32_t mask = group_mask<W>(v) >> base;
  T vals[W];
  gather<W>(v, base, mask, vals);
  return combine_values<W>(vals, mask, op);
}
template <unsigned W, typename T, typename Op>
MPS_SHIM_INLINE T reduce(const T& x, Op op) {
  if constexpr (W == 32) {
    const Bytes<T> r = fib::simd_collective<Bytes<T>>(pack(x), [&](const fib::SimdView& v) {
      return pack(combine<W, T>(v, op));
    });
    T out;
    __builtin_memcpy(&out, r.b, sizeof(T));
    return out;
  } else {  // quads: one result per quad, so each lane combines its own
    return combine<W, T>(fib::simd_exchange(pack(x)), op);
  }
}

// Combines the active lanes of the group below the caller (inclusive: and the
// caller) in scan_values' order; `identity` where there are none.
template <unsigned W, bool kInclusive, typename T, typename Op>
__attribute__((noinline)) T scan(const T& x, T identity, Op op) {
  const fib::SimdView v = fib::simd_exchange(pack(x));
  const unsigned base = v.lane / W * W, lane = v.lane - base;
  const uint32_t mask = group_mask<W>(v) >> base;
  if (!kInclusive && lane == 0) return identity;
  T vals[W];
  gather<W>(v, base, mask, vals);
  T out;
  return scan_lane<W == 32 ? 5 : 2>(vals, mask, kInclusive ? lane : lane - 1, out, op) ? out : identity;
}

// The value of lane `src` (an index within the caller's group) or `fallback`.
template <unsigned W, typename T>
MPS_SHIM_INLINE T pick(const fib::SimdView& v, long src, const T& fallback) {
  if (src < 0 || src >= long(W)) return fallback;
  const unsigned lane = v.lane / W * W + unsigned(src);
#ifdef MPS_SHIM_CHECKED
  if (!v.active(lane)) ::mps_host::checked::inactive_lane_read(lane);
#endif
  return v.active(lane) ? at<T>(v, lane) : fallback;
}

template <unsigned W>
MPS_SHIM_INLINE unsigned index_in_group(const fib::SimdView& v) { return v.lane % W; }

// A call site of a SIMD-group function, passed first by the translation
// (backends/host/simd_sites.cpp) so that the fiber engine matches operations by
// call site: the running fiber carries it for the length of the call.
template <unsigned S>
struct Site {};
class __attribute__((visibility("hidden"))) SiteScope {  // holds the fiber core's hidden types
 public:
  MPS_SHIM_INLINE explicit SiteScope(uint32_t site) {
    fib::detail::ThreadSlots& slots = fib::detail::tls;
    fiber_ = slots.group ? slots.group->running : nullptr;
    lanes_ = slots.group ? nullptr : slots.lanes;
    if (fiber_) saved_ = fiber_->site, fiber_->site = site;
    if (lanes_) saved_ = lanes_->site, lanes_->site = site;
  }
  MPS_SHIM_INLINE ~SiteScope() {
    if (fiber_) fiber_->site = saved_;
    if (lanes_) lanes_->site = saved_;
  }
  SiteScope(const SiteScope&) = delete;
  SiteScope& operator=(const SiteScope&) = delete;

 private:
  fib::detail::Fiber* fiber_;
  fib::detail::LaneExchange* lanes_;  // lane loops: the exchange tells operations apart by site
  uint32_t saved_ = 0;
};

// The end of a divergent branch or loop holding SIMD-group functions
// (backends/host/simd_sites.h): on fibers, the SIMD-group's active lanes meet here.
template <unsigned S>
MPS_SHIM_INLINE void reconverge() {
  if (!fib::detail::tls.group) return;
  const SiteScope site(S);
  fib::simd_barrier();
}


}  // namespace simd
}  // namespace mps_host

namespace metal {

// The ballot of a SIMD-group: bit l set when lane l is active and voted true.
struct simd_vote {
  using vote_t = ulong;
  vote_t value;
  MPS_SHIM_INLINE constexpr explicit simd_vote(vote_t v = 0) : value(v) {}
  MPS_SHIM_INLINE constexpr explicit operator vote_t() const { return value; }
  MPS_SHIM_INLINE constexpr bool any() const { return value != 0; }
  MPS_SHIM_INLINE constexpr bool all() const { return value == active_; }
  vote_t active_ = 0;
};
typedef simd_vote quad_vote;

#ifdef MPS_SHIM_CHECKED
// The call's place goes with the wait: two barriers whose code the compiler
// merged are still told apart (synccheck).
MPS_SHIM_INLINE void threadgroup_barrier(mem_flags = mem_flags::mem_none, unsigned line = __builtin_LINE(),
                                         const char* file = __builtin_FILE()) {
  __asm__ volatile("" ::: "memory");
  mps_host::checked::barrier_place(line, file);
  mps_host::fibers::barrier();
}
MPS_SHIM_INLINE void simdgroup_barrier(mem_flags = mem_flags::mem_none, unsigned line = __builtin_LINE(),
                                       const char* file = __builtin_FILE()) {
  __asm__ volatile("" ::: "memory");
  mps_host::checked::barrier_place(line, file);
  mps_host::fibers::simd_barrier(true);
}
#else
MPS_SHIM_INLINE void threadgroup_barrier(mem_flags = mem_flags::mem_none) {
  __asm__ volatile("" ::: "memory");
  mps_host::fibers::barrier();
}
MPS_SHIM_INLINE void simdgroup_barrier(mem_flags = mem_flags::mem_none) {
  __asm__ volatile("" ::: "memory");
  mps_host::fibers::simd_barrier(true);
}
#endif

// Every function exists for the SIMD-group (W = 32) and the quad (W = 4).
#define MPS_GROUP_FUNCTIONS(P, W)                                                                            \
  template <typename T>                                                                                      \
  MPS_SHIM_INLINE T P##_sum(T x) { return mps_host::simd::reduce<W>(x, mps_host::simd::Sum()); } \
  template <typename T>                                                                                      \
  MPS_SHIM_INLINE T P##_product(T x) { return mps_host::simd::reduce<W>(x, mps_host::simd::Product()); } \
  template <typename T>                                                                                      \
  MPS_SHIM_INLINE T P##_min(T x) { return mps_host::simd::reduce<W>(x, mps_host::simd::Min()); } \
  template <typename T>                                                                                      \
  MPS_SHIM_INLINE T P##_max(T x) { return mps_host::simd::reduce<W>(x, mps_host::simd::Max()); } \
  template <typename T>                                                                                      \
  MPS_SHIM_INLINE T P##_and(T x) { return mps_host::simd::reduce<W>(x, mps_host::simd::And()); } \
  template <typename T>                                                                                      \
  MPS_SHIM_INLINE T P##_or(T x) { return mps_host::simd::reduce<W>(x, mps_host::simd::Or()); }  \
  template <typename T>                                                                                      \
  MPS_SHIM_INLINE T P##_xor(T x) { return mps_host::simd::reduce<W>(x, mps_host::simd::Xor()); } \
  template <typename T>                                                                                      \
  MPS_SHIM_INLINE T P##_prefix_inclusive_sum(T x) {                                                          \
    return mps_host::simd::scan<W, true>(x, T(0), mps_host::simd::Sum());                        \
  }                                                                                                          \
  template <typename T>                                                                                      \
  MPS_SHIM_INLINE T P##_prefix_exclusive_sum(T x) {                                                          \
    return mps_host::simd::scan<W, false>(x, T(0), mps_host::simd::Sum());                       \
  }                                                                                                          \
  template <typename T>                                                                                      \
  MPS_SHIM_INLINE T P##_prefix_inclusive_product(T x) {                                                      \
    return mps_host::simd::scan<W, true>(x, T(1), mps_host::simd::Product());                        \
  }                                                                                                          \
  template <typename T>                                                                                      \
  MPS_SHIM_INLINE T P##_prefix_exclusive_product(T x) {                                                      \
    return mps_host::simd::scan<W, false>(x, T(1), mps_host::simd::Product());                       \
  }                                                                                                          \
  template <typename T>                                                                                      \
  MPS_SHIM_INLINE T P##_shuffle(T x, ushort lane) {                                                          \
    const auto v = mps_host::fibers::simd_exchange(mps_host::simd::pack(x));                                 \
    return mps_host::simd::pick<W>(v, long(lane), x);                                                        \
  }                                                                                                          \
  template <typename T>                                                                                      \
  MPS_SHIM_INLINE T P##_broadcast(T x, ushort lane) { return P##_shuffle(x, lane); }                         \
  template <typename T>                                                                                      \
  MPS_SHIM_INLINE T P##_shuffle_up(T x, ushort delta) {                                                      \
    const auto v = mps_host::fibers::simd_exchange(mps_host::simd::pack(x));                                 \
    return mps_host::simd::pick<W>(v, long(mps_host::simd::index_in_group<W>(v)) - delta, x);                \
  }                                                                                                          \
  template <typename T>                                                                                      \
  MPS_SHIM_INLINE T P##_shuffle_down(T x, ushort delta) {                                                    \
    const auto v = mps_host::fibers::simd_exchange(mps_host::simd::pack(x));                                 \
    return mps_host::simd::pick<W>(v, long(mps_host::simd::index_in_group<W>(v)) + delta, x);                \
  }                                                                                                          \
  template <typename T>                                                                                      \
  MPS_SHIM_INLINE T P##_shuffle_xor(T x, ushort mask) {                                                      \
    const auto v = mps_host::fibers::simd_exchange(mps_host::simd::pack(x));                                 \
    return mps_host::simd::pick<W>(v, long(mps_host::simd::index_in_group<W>(v) ^ mask), x);                 \
  }                                                                                                          \
  template <typename T>                                                                                      \
  MPS_SHIM_INLINE T P##_shuffle_rotate_up(T x, ushort delta) {                                               \
    const auto v = mps_host::fibers::simd_exchange(mps_host::simd::pack(x));                                 \
    return mps_host::simd::pick<W>(v, long((mps_host::simd::index_in_group<W>(v) + W - delta % W) % W), x);  \
  }                                                                                                          \
  template <typename T>                                                                                      \
  MPS_SHIM_INLINE T P##_shuffle_rotate_down(T x, ushort delta) {                                             \
    const auto v = mps_host::fibers::simd_exchange(mps_host::simd::pack(x));                                 \
    return mps_host::simd::pick<W>(v, long((mps_host::simd::index_in_group<W>(v) + delta) % W), x);         \
  }                                                                                                          \
  /* data from lane - delta; below the start of each `modulo`-lane segment, filling from the segment's end */ \
  template <typename T>                                                                                      \
  MPS_SHIM_INLINE T P##_shuffle_and_fill_up(T data, T filling, ushort delta, ushort modulo = W) {            \
    const auto dv = mps_host::fibers::simd_exchange(mps_host::simd::pack(data));                             \
    const T d = [&] {                                                                                        \
      const long idx = long(mps_host::simd::index_in_group<W>(dv)), seg = idx / modulo * modulo;             \
      return idx - seg >= long(delta) ? mps_host::simd::pick<W>(dv, idx - delta, filling) : filling;         \
    }();                                                                                                     \
    const auto fv = mps_host::fibers::simd_exchange(mps_host::simd::pack(filling));                          \
    const long idx = long(mps_host::simd::index_in_group<W>(fv)), seg = idx / modulo * modulo;               \
    if (idx - seg >= long(delta)) return d;                                                                  \
    return mps_host::simd::pick<W>(fv, seg + modulo - (long(delta) - (idx - seg)), filling);                 \
  }                                                                                                          \
  /* data from lane + delta; past the end of each `modulo`-lane segment, filling from its start */           \
  template <typename T>                                                                                      \
  MPS_SHIM_INLINE T P##_shuffle_and_fill_down(T data, T filling, ushort delta, ushort modulo = W) {          \
    const auto dv = mps_host::fibers::simd_exchange(mps_host::simd::pack(data));                             \
    const long idx = long(mps_host::simd::index_in_group<W>(dv)), seg = idx / modulo * modulo;               \
    const bool inside = idx - seg + long(delta) < long(modulo);                                              \
    const T d = inside ? mps_host::simd::pick<W>(dv, idx + delta, filling) : filling;                        \
    const auto fv = mps_host::fibers::simd_exchange(mps_host::simd::pack(filling));                          \
    if (inside) return d;                                                                                    \
    return mps_host::simd::pick<W>(fv, idx + long(delta) - modulo, filling);                                 \
  }                                                                                                          \
  template <typename T>                                                                                      \
  MPS_SHIM_INLINE T P##_broadcast_first(T x) {                                                               \
    const auto v = mps_host::fibers::simd_exchange(mps_host::simd::pack(x));                                 \
    return mps_host::simd::at<T>(v, unsigned(__builtin_ctz(mps_host::simd::group_mask<W>(v))));             \
  }                                                                                                          \
  MPS_SHIM_INLINE simd_vote P##_ballot(bool vote) {                                                          \
    const auto v = mps_host::fibers::simd_exchange(mps_host::simd::pack(vote));                              \
    const uint32_t group = mps_host::simd::group_mask<W>(v);                                                 \
    const unsigned base = W == 32 ? 0u : v.lane / W * W;                                                     \
    simd_vote r(0);                                                                                          \
    for (uint32_t m = group; m; m &= m - 1) {                                                                \
      const unsigned l = unsigned(__builtin_ctz(m));                                                         \
      if (mps_host::simd::at<bool>(v, l)) r.value |= ulong(1) << (l - base);                                 \
    }                                                                                                        \
    r.active_ = ulong(group >> base);                                                                        \
    return r;                                                                                                \
  }                                                                                                          \
  MPS_SHIM_INLINE bool P##_all(bool x) { return P##_and(int(x)) != 0; }                                      \
  MPS_SHIM_INLINE bool P##_any(bool x) { return P##_or(int(x)) != 0; }                                       \
  MPS_SHIM_INLINE bool P##_is_first() {                                                                      \
    const auto v = mps_host::fibers::simd_exchange(mps_host::simd::pack(true));                              \
    return unsigned(__builtin_ctz(mps_host::simd::group_mask<W>(v))) == v.lane;                              \
  }                                                                                                          \
  MPS_SHIM_INLINE simd_vote P##_active_threads_mask() { return P##_ballot(true); }
MPS_GROUP_FUNCTIONS(simd, 32)
MPS_GROUP_FUNCTIONS(quad, 4)
#undef MPS_GROUP_FUNCTIONS

MPS_SHIM_INLINE simd_vote simd_vote_all(bool x) { return simd_ballot(x); }

// f(Site<S>, args...): f(args...) called from call site S.
#define MPS_SITED(F)                                                                                   \
  template <unsigned S, typename... A>                                                                \
  MPS_SHIM_INLINE auto F(mps_host::simd::Site<S>, A&&... a)->decltype(F(static_cast<A&&>(a)...)) {   \
    const mps_host::simd::SiteScope site(S);                                                          \
    return F(static_cast<A&&>(a)...);                                                                 \
  }
#define MPS_SITED_GROUP(P)                                                                             \
  MPS_SITED(P##_sum) MPS_SITED(P##_product) MPS_SITED(P##_min) MPS_SITED(P##_max) MPS_SITED(P##_and) \
  MPS_SITED(P##_or) MPS_SITED(P##_xor) MPS_SITED(P##_prefix_inclusive_sum)                           \
  MPS_SITED(P##_prefix_exclusive_sum) MPS_SITED(P##_prefix_inclusive_product)                        \
  MPS_SITED(P##_prefix_exclusive_product) MPS_SITED(P##_shuffle) MPS_SITED(P##_broadcast)            \
  MPS_SITED(P##_shuffle_up) MPS_SITED(P##_shuffle_down) MPS_SITED(P##_shuffle_xor)                   \
  MPS_SITED(P##_shuffle_rotate_up) MPS_SITED(P##_shuffle_rotate_down)                                \
  MPS_SITED(P##_shuffle_and_fill_up) MPS_SITED(P##_shuffle_and_fill_down)                            \
  MPS_SITED(P##_broadcast_first) MPS_SITED(P##_ballot) MPS_SITED(P##_all) MPS_SITED(P##_any)         \
  MPS_SITED(P##_is_first) MPS_SITED(P##_active_threads_mask)
MPS_SITED_GROUP(simd)
MPS_SITED_GROUP(quad)
MPS_SITED(simd_vote_all)
#undef MPS_SITED_GROUP
#undef MPS_SITED

}  // namespace metal

#endif
