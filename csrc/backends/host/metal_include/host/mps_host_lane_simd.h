// SIMD-group functions on whole lane vectors, for lane loops. Where a
// statement calls Metal's SIMD-group functions unconditionally, the lane-loop
// translation (backends/host/lane_loops/) collects each call's arguments over the
// group's threads and calls the function here once for the group:
// `v = simd_sum(x)` becomes a loop that stores x per thread, one reduction per
// SIMD-group over a contiguous array (vectorised), and a loop that reads the
// result — instead of replaying the statement once per operation.
//
// Results are bit for bit those of the per-thread functions of
// mps_metal_simdgroup.h (both combine lanes through mps_host::simd's
// combine_values and scan_values, in one tree order, and follow the same lane rules): active lanes are the group's threads that have not returned and
// are not held out by a divergent branch; a lane reading an inactive or
// missing lane gets its own value, or the fill value where the function has one.
#ifndef MPS_HOST_LANE_SIMD_H
#define MPS_HOST_LANE_SIMD_H

#ifndef MPS_HOST_METAL_H
#error "include mps_host_metal.h instead"
#endif

namespace mps_host {
namespace lanes {

// Which threads of a group take part, one 32-bit mask per SIMD-group.
struct ActiveLanes {
  unsigned groups;
  uint32_t mask[32];
  MPS_SHIM_INLINE explicit ActiveLanes(const GroupLanes& g) : groups((g.n + 31) / 32) {
    for (unsigned sg = 0; sg < groups; ++sg) {
      const unsigned first = sg * 32, lanes = g.n - first < 32 ? g.n - first : 32;
      uint32_t m = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
      if (g.any_returned) m &= ~set_bits(&g.returned[first], lanes);
      if (g.any_off) m &= ~set_bits(&g.off[first], lanes);
      mask[sg] = m;
    }
  }
  // Bit l set where flags[l] is (branch-free: the compiler compares 32 bytes at once).
  static MPS_SHIM_INLINE uint32_t set_bits(const unsigned char* flags, unsigned lanes) {
    uint32_t bits = 0;
    for (unsigned l = 0; l < lanes; ++l) bits |= uint32_t(flags[l] != 0) << l;
    return bits;
  }
  // The active lanes of lane's W-lane group (W = 32: its SIMD-group; 4: its quad), as bits of the SIMD-group.
  template <unsigned W>
  MPS_SHIM_INLINE uint32_t group_of(unsigned lane) const {
    const uint32_t m = mask[lane / 32];
    return W == 32 ? m : m & (((1u << W) - 1u) << (lane % 32 / W * W));
  }
};

// One value per SIMD-group, read per thread: out[lane] is its SIMD-group's.
template <typename T>
struct PerSimdGroup {
  T v[32];
  MPS_SHIM_INLINE const T& operator[](unsigned lane) const { return v[lane / 32]; }
};

// The element type of per-thread values (lane_data, mps_host_engine.h).
template <typename V>
using element_t = std::remove_pointer_t<decltype(lane_data(std::declval<V&>()))>;

// An argument that is the same for every thread (a literal, a group-wide
// value): evaluated once, read by every lane.
template <typename T>
struct Uniform {
  T value;
};
template <typename T>
MPS_SHIM_INLINE Uniform<T> uniform(const T& v) { return Uniform<T>{v}; }
template <typename V>
MPS_SHIM_INLINE decltype(auto) lane_at(V& x, unsigned lane) { return lane_data(x)[lane]; }
template <typename T>
MPS_SHIM_INLINE const T& lane_at(const Uniform<T>& x, unsigned) { return x.value; }
template <typename T>
MPS_SHIM_INLINE const T& lane_at(Uniform<T>& x, unsigned) { return x.value; }
template <typename V>
using lane_values_t = LaneValues<element_t<V>, 1024>;

// A reduction over each SIMD-group (W = 32) or quad (W = 4).
template <unsigned W, typename Op, typename V>
MPS_SHIM_INLINE auto reduce(GroupLanes& g, V& values) {
  using T = element_t<V>;
  const T* x = lane_data(values);
  const ActiveLanes a(g);
  if constexpr (W == 32) {
    PerSimdGroup<T> out;
    for (unsigned sg = 0; sg < a.groups; ++sg)
      if (a.mask[sg]) out.v[sg] = simd::combine_values<32>(&x[sg * 32], a.mask[sg], Op());
    return out;
  } else {  // one result per quad, read by its lanes
    lane_values_t<V> out;
    for (unsigned first = 0; first < g.n; first += W) {
      const uint32_t m = a.group_of<W>(first) >> (first % 32);
      if (!m) continue;
      const T r = simd::combine_values<W>(&x[first], m, Op());
      for (unsigned l = first; l < first + W; ++l) out.v[l] = r;
    }
    return out;
  }
}

// Inclusive or exclusive scans, starting from `identity`, in the order of
// simd::scan_values (one pass per SIMD-group or quad; simd::scan computes the
// same lane by lane).
template <unsigned W, bool kInclusive, typename Op, typename V>
__attribute__((noinline)) lane_values_t<V> scan(GroupLanes& g, V& values, element_t<V> identity) {
  using T = element_t<V>;
  const T* x = lane_data(values);
  const ActiveLanes a(g);
  lane_values_t<V> out;
  for (unsigned first = 0; first < g.n; first += W) {
    const uint32_t m = a.group_of<W>(first) >> (first % 32);
    if (!m) continue;
    T inclusive[W];
    uint32_t any_below;  // bit l: some lane <= l is active
    simd::scan_values<W>(&x[first], m, inclusive, &any_below, Op());
    for (unsigned l = 0; l < W; ++l) {
      if (kInclusive) out.v[first + l] = inclusive[l];
      else out.v[first + l] = l > 0 && ((any_below >> (l - 1)) & 1u) ? inclusive[l - 1] : identity;
    }
  }
  return out;
}

// The value of lane `src` of the caller's W-lane group (an index within it), or `fallback`.
template <unsigned W, typename T>
MPS_SHIM_INLINE const T& pick(const ActiveLanes& a, const T* x, unsigned lane, long src, const T& fallback) {
  if (src < 0 || src >= long(W)) return fallback;
  const unsigned from = lane / W * W + unsigned(src);
#ifdef MPS_SHIM_CHECKED
  if (!((a.mask[lane / 32] >> (from % 32)) & 1u)) checked::inactive_lane_read_by(lane, from % 32);
#endif
  return (a.mask[lane / 32] >> (from % 32)) & 1u ? x[from] : fallback;
}

// out[lane] = f(lane, index in group) for the running threads. Out of line
// (scans too): scalar per lane anyway, and inlined into the group function the
// shuffles of a SIMD-heavy kernel tripled g++'s time.
template <unsigned W, typename V, typename F>
__attribute__((noinline)) lane_values_t<V> per_lane(GroupLanes& g, F f) {
  const ActiveLanes a(g);
  lane_values_t<V> out;
  for (unsigned lane = 0; lane < g.n; ++lane)
    if ((a.mask[lane / 32] >> (lane % 32)) & 1u) out.v[lane] = f(a, lane, long(lane % W));
  return out;
}

template <typename S>
MPS_SHIM_INLINE long delta_of(S& d, unsigned lane) { return long((unsigned short)(lane_at(d, lane))); }

// Which of a library function's overloads the compiler picks, and the type
// template arguments it deduced: the lane-loop translation declares one
// `f__mps_lanes_N_select(params) -> decltype(choose<I, T...>(RET*))` per
// definition I (same template header, so the same overload resolution and
// SFINAE) and calls the lane version of the one chosen.
template <unsigned J, class H, class... R>
struct nth_type { using type = typename nth_type<J - 1, R...>::type; };
template <class H, class... R>
struct nth_type<0, H, R...> { using type = H; };
template <int I, class... T>
struct Choice {
  static constexpr int index = I;
  template <unsigned J>
  using type = typename nth_type<J, T...>::type;
};
template <int I, class... T, class R>
Choice<I, T...> choose(R*);

// simd_shuffle_and_fill_down / _up, as mps_metal_simdgroup.h defines them per
// thread: data from lane +/- delta within each `modulo`-lane segment, else the
// filling from the segment's other end; an inactive source gives the caller's filling.
template <unsigned W, bool kDown, typename V, typename F, typename D, typename M>
MPS_SHIM_INLINE auto shuffle_and_fill(GroupLanes& g, V& data, F& filling, D& delta, M* modulo) {
  // Without a modulo the segment is the group: W, a constant (no division per lane).
  using T = element_t<V>;
  const T* d = lane_data(data);
  // The filling of lane `from` (the caller's where from is inactive or outside the group).
  auto fill_from = [&](const ActiveLanes& a, unsigned l, long src) __attribute__((always_inline)) -> T {
    if constexpr (std::is_same_v<F, Uniform<T>>) {
      return filling.value;
    } else {
      const unsigned from = l / W * W + unsigned(src);
      const bool ok = src >= 0 && src < long(W) && ((a.mask[l / 32] >> (from % 32)) & 1u);
#ifdef MPS_SHIM_CHECKED
      if (src >= 0 && src < long(W) && !ok) checked::inactive_lane_read_by(l, from % 32);
#endif
      return T(lane_at(filling, ok ? from : l));
    }
  };
  return per_lane<W, V>(g, [&](const ActiveLanes& a, unsigned l, long idx) __attribute__((always_inline)) {
    const long step = delta_of(delta, l);
    long mod = long(W);
    if constexpr (!std::is_same_v<M, std::nullptr_t>) mod = delta_of(*modulo, l);
    const long seg = idx / mod * mod;
    const T own_fill = T(lane_at(filling, l));
    if (kDown) {
      if (idx - seg + step < mod) return pick<W>(a, d, l, idx + step, own_fill);
      return fill_from(a, l, idx + step - mod);
    }
    if (idx - seg >= step) return pick<W>(a, d, l, idx - step, own_fill);
    return fill_from(a, l, seg + mod - (step - (idx - seg)));
  });
}

}  // namespace lanes
}  // namespace mps_host

// The group-level forms of metal's SIMD-group and quad-group functions, same
// names: mps_host::lanes::simd_sum(g, x) for simd_sum(x).
#define MPS_LANE_FUNCTIONS(P, W)                                                                              \
  template <typename V> MPS_SHIM_INLINE auto P##_sum(GroupLanes& g, V& x) { return reduce<W, simd::Sum>(g, x); } \
  template <typename V> MPS_SHIM_INLINE auto P##_product(GroupLanes& g, V& x) { return reduce<W, simd::Product>(g, x); } \
  template <typename V> MPS_SHIM_INLINE auto P##_min(GroupLanes& g, V& x) { return reduce<W, simd::Min>(g, x); } \
  template <typename V> MPS_SHIM_INLINE auto P##_max(GroupLanes& g, V& x) { return reduce<W, simd::Max>(g, x); } \
  template <typename V> MPS_SHIM_INLINE auto P##_and(GroupLanes& g, V& x) { return reduce<W, simd::And>(g, x); } \
  template <typename V> MPS_SHIM_INLINE auto P##_or(GroupLanes& g, V& x) { return reduce<W, simd::Or>(g, x); }   \
  template <typename V> MPS_SHIM_INLINE auto P##_xor(GroupLanes& g, V& x) { return reduce<W, simd::Xor>(g, x); } \
  template <typename V>                                                                                        \
  MPS_SHIM_INLINE lane_values_t<V> P##_prefix_inclusive_sum(GroupLanes& g, V& x) {                                           \
    return scan<W, true, simd::Sum>(g, x, element_t<V>(0));                                                   \
  }                                                                                                           \
  template <typename V>                                                                                        \
  MPS_SHIM_INLINE lane_values_t<V> P##_prefix_exclusive_sum(GroupLanes& g, V& x) {                                           \
    return scan<W, false, simd::Sum>(g, x, element_t<V>(0));                                                  \
  }                                                                                                           \
  template <typename V>                                                                                        \
  MPS_SHIM_INLINE lane_values_t<V> P##_prefix_inclusive_product(GroupLanes& g, V& x) {                                       \
    return scan<W, true, simd::Product>(g, x, element_t<V>(1));                                               \
  }                                                                                                           \
  template <typename V>                                                                                        \
  MPS_SHIM_INLINE lane_values_t<V> P##_prefix_exclusive_product(GroupLanes& g, V& x) {                                       \
    return scan<W, false, simd::Product>(g, x, element_t<V>(1));                                              \
  }                                                                                                           \
  template <typename V, typename S>                                                                           \
  MPS_SHIM_INLINE auto P##_shuffle(GroupLanes& g, V& x, S& src) {                                                \
    return per_lane<W, V>(g, [&](const ActiveLanes& a, unsigned l, long) __attribute__((always_inline)) {     \
      return pick<W>(a, lane_data(x), l, delta_of(src, l), lane_data(x)[l]);                                                   \
    });                                                                                                       \
  }                                                                                                           \
  template <typename V, typename S>                                                                           \
  MPS_SHIM_INLINE auto P##_broadcast(GroupLanes& g, V& x, S& src) { return P##_shuffle(g, x, src); }             \
  template <typename V, typename S>                                                                           \
  MPS_SHIM_INLINE auto P##_shuffle_up(GroupLanes& g, V& x, S& d) {                                               \
    return per_lane<W, V>(g, [&](const ActiveLanes& a, unsigned l, long i) __attribute__((always_inline)) {   \
      return pick<W>(a, lane_data(x), l, i - delta_of(d, l), lane_data(x)[l]);                                                 \
    });                                                                                                       \
  }                                                                                                           \
  template <typename V, typename S>                                                                           \
  MPS_SHIM_INLINE auto P##_shuffle_down(GroupLanes& g, V& x, S& d) {                                             \
    return per_lane<W, V>(g, [&](const ActiveLanes& a, unsigned l, long i) __attribute__((always_inline)) {   \
      return pick<W>(a, lane_data(x), l, i + delta_of(d, l), lane_data(x)[l]);                                                 \
    });                                                                                                       \
  }                                                                                                           \
  template <typename V, typename S>                                                                           \
  MPS_SHIM_INLINE auto P##_shuffle_xor(GroupLanes& g, V& x, S& d) {                                              \
    return per_lane<W, V>(g, [&](const ActiveLanes& a, unsigned l, long i) __attribute__((always_inline)) {   \
      return pick<W>(a, lane_data(x), l, long(unsigned(i) ^ (unsigned short)(lane_at(d, l))), lane_data(x)[l]);                          \
    });                                                                                                       \
  }                                                                                                           \
  template <typename V, typename F, typename D>                                                                \
  MPS_SHIM_INLINE auto P##_shuffle_and_fill_down(GroupLanes& g, V& x, F& fill, D& d) {                       \
    return shuffle_and_fill<W, true>(g, x, fill, d, (std::nullptr_t*)nullptr);                                             \
  }                                                                                                           \
  template <typename V, typename F, typename D, typename M>                                                    \
  MPS_SHIM_INLINE auto P##_shuffle_and_fill_down(GroupLanes& g, V& x, F& fill, D& d, M& mod) {               \
    return shuffle_and_fill<W, true>(g, x, fill, d, &mod);                                                    \
  }                                                                                                           \
  template <typename V, typename F, typename D>                                                                \
  MPS_SHIM_INLINE auto P##_shuffle_and_fill_up(GroupLanes& g, V& x, F& fill, D& d) {                         \
    return shuffle_and_fill<W, false>(g, x, fill, d, (std::nullptr_t*)nullptr);                                            \
  }                                                                                                           \
  template <typename V, typename F, typename D, typename M>                                                    \
  MPS_SHIM_INLINE auto P##_shuffle_and_fill_up(GroupLanes& g, V& x, F& fill, D& d, M& mod) {                 \
    return shuffle_and_fill<W, false>(g, x, fill, d, &mod);                                                   \
  }                                                                                                           \
  template <typename V>                                                                                        \
  MPS_SHIM_INLINE auto P##_broadcast_first(GroupLanes& g, V& x) {                                                \
    return per_lane<W, V>(g, [&](const ActiveLanes& a, unsigned l, long) __attribute__((always_inline)) {     \
      return lane_data(x)[l / 32 * 32 + unsigned(__builtin_ctz(a.group_of<W>(l)))];                                    \
    });                                                                                                       \
  }

namespace mps_host {
namespace lanes {
MPS_LANE_FUNCTIONS(simd, 32)
MPS_LANE_FUNCTIONS(quad, 4)
}  // namespace lanes
}  // namespace mps_host
#undef MPS_LANE_FUNCTIONS

#endif
