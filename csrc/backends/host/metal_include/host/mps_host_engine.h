// The host execution engine: thread ids, argument binding and the loops that
// run a kernel's threadgroups (flat, as lane loops, or on fibers). Follows
// metal/mps_metal_stdlib.h (it uses its types); reached only through
// mps_host_metal.h.
#ifndef MPS_HOST_ENGINE_H
#define MPS_HOST_ENGINE_H
#ifndef MPS_HOST_METAL_H
#error "include mps_host_metal.h instead"
#endif

#include "../mps_param_facts.h"

// ---- execution ---------------------------------------------------------------
namespace mps_host {

using metal::uint3;

// Every thread-position value a kernel may ask for.
struct ThreadIds {
  uint3 in_grid;            // thread_position_in_grid
  uint3 in_group;           // thread_position_in_threadgroup
  uint3 group;              // threadgroup_position_in_grid
  uint3 grid_size;          // threads_per_grid
  uint3 group_size;         // threads_per_threadgroup (the edge group's actual size)
  uint3 groups;             // threadgroups_per_grid
  uint3 dispatch_group;     // dispatch_threads_per_threadgroup (as requested)
  uint index_in_group;      // thread_index_in_threadgroup
  uint simd_lane, simd_group, simd_groups, dispatch_simd_groups;  // 32-lane SIMD-groups
  uint quad_lane, quad_group, quad_groups, dispatch_quad_groups;  // 4-lane quads
  uint simd_width;          // threads_per_simdgroup, thread_execution_width
};

#ifdef MPS_SHIM_CHECKED
// Checked mode's hooks into the engine's loops (defined in mps_host_checked.h).
namespace checked {
void begin_lane_group(const mps_shim_launch* L, const uint3& gid, const uint3& base, const uint3& size,
                      const void* entry_frame);
void lane_pass();                 // a loop over the group's threads starts
void lane_enter(unsigned lane);   // thread `lane` runs a stretch
void lane_leave(unsigned lane);
void end_group();                 // the group's last epoch ended
}  // namespace checked
#endif

// Fills the ids of thread (x, y, z) of a threadgroup at `base` of actual size `size`.
MPS_SHIM_INLINE void set_group_ids(ThreadIds& t, const uint3& gid, const uint3& base, const uint3& size,
                                   const uint3& grid, const uint3& group, const uint3& groups, uint x, uint y, uint z) {
  t.in_grid = uint3(base.x + x, base.y + y, base.z + z);
  t.in_group = uint3(x, y, z);
  t.group = gid;
  t.grid_size = grid;
  t.group_size = size;
  t.groups = groups;
  t.dispatch_group = group;
  t.index_in_group = (z * size.y + y) * size.x + x;
  const uint actual = size.x * size.y * size.z, requested = group.x * group.y * group.z;
  t.simd_lane = t.index_in_group % 32;
  t.simd_group = t.index_in_group / 32;
  t.simd_groups = (actual + 31) / 32;
  t.dispatch_simd_groups = (requested + 31) / 32;
  t.quad_lane = t.index_in_group % 4;
  t.quad_group = t.index_in_group / 4;
  t.quad_groups = (actual + 3) / 4;
  t.dispatch_quad_groups = (requested + 3) / 4;
  t.simd_width = 32;
}

template <typename P>
MPS_SHIM_INLINE P thread_value(const uint3& v) {
  if constexpr (metal::is_vector<P>::value) {
    using E = decltype(P().x);
    if constexpr (std::is_same_v<P, metal::vec<E, 2>>) return P(E(v.x), E(v.y));
    else return P(E(v.x), E(v.y), E(v.z));
  } else {
    return P(v.x);
  }
}
template <typename P>
MPS_SHIM_INLINE P thread_value(uint v) { return P(v); }

template <typename F> struct fn_traits;
template <typename R, typename... A>
struct fn_traits<R (*)(A...)> {
  template <size_t I, typename Head, typename... Tail>
  struct pick { using type = typename pick<I - 1, Tail...>::type; };
  template <typename Head, typename... Tail>
  struct pick<0, Head, Tail...> { using type = Head; };
  template <size_t I>
  using arg = typename pick<I, A...>::type;
};

// The value of a buffer or scalar parameter of type P bound at address p.
template <typename P>
MPS_SHIM_INLINE P bind(void* p) {
  if constexpr (std::is_pointer_v<P>) return static_cast<P>(p);
  else return *static_cast<std::remove_reference_t<P>*>(p);
}

// The memory of [[threadgroup(n)]] parameters: one block per worker thread,
// Metal's 32 KiB, since a worker runs one threadgroup at a time (its fibers or
// lane loops all on this thread); the runtime placed each index in it.
MPS_SHIM_INLINE void* threadgroup_block(const mps_shim_launch* L, unsigned index) {
  alignas(64) static thread_local unsigned char block[32768];
  return block + L->threadgroup_offsets[index];
}

// param_value_size and friends: mps_param_facts.h (shared with the CUDA engine).

// Calls body(ids) for every thread of threadgroups [first, end). Kernels that
// use no threadgroup value on a 1-D grid run as one flat, vectorisable loop.
template <bool kUsesGroups, typename Body>
MPS_SHIM_INLINE void run_groups(const mps_shim_launch* L, uint64_t first, uint64_t end, Body&& body) {
  const uint3 grid(L->grid[0], L->grid[1], L->grid[2]);
  const uint3 group(L->group[0], L->group[1], L->group[2]);
  const uint3 groups(L->groups[0], L->groups[1], L->groups[2]);
  if constexpr (!kUsesGroups) {
    if (grid.y == 1 && grid.z == 1) {
      const uint x0 = uint(first * group.x);
      const uint x1 = uint(end * group.x < grid.x ? end * group.x : grid.x);
      for (uint x = x0; x < x1; ++x) {
        ThreadIds t;
        t.in_grid = uint3(x, 0u, 0u);
        t.grid_size = grid;
        body(t);
      }
      return;
    }
  }
  for (uint64_t g = first; g < end; ++g) {
    const uint3 gid(uint(g % groups.x), uint(g / groups.x % groups.y), uint(g / (uint64_t(groups.x) * groups.y)));
    const uint3 base(gid.x * group.x, gid.y * group.y, gid.z * group.z);
    const uint3 size(metal::min(group.x, grid.x - base.x), metal::min(group.y, grid.y - base.y),
                     metal::min(group.z, grid.z - base.z));
    for (uint z = 0; z < size.z; ++z)
      for (uint y = 0; y < size.y; ++y)
        for (uint x = 0; x < size.x; ++x) {
          ThreadIds t;
          set_group_ids(t, gid, base, size, grid, group, groups, x, y, z);
          body(t);
        }
  }
}

// One threadgroup run as lane loops (backends/host/lane_loops.h): its group function
// calls for_each_lane once per stretch of code between barriers, so a barrier
// is simply the end of one loop over the group's threads.
struct GroupLanes {
  uint3 gid, base, size, grid, group, groups;
  unsigned n;         // threads in the group
  ThreadIds uniform;  // the group-wide attributes (thread 0's ids)
  bool any_returned;  // a thread returned: later loops skip it
  bool any_off;       // a condition that differs between threads holds some of them out (LaneMask)
  bool any_held;      // threads returned from the inlined function running now (hold_out)
  unsigned char returned[1024];
  unsigned char off[1024];
  unsigned char held[1024];
  // The threads still running, in index order, while some are out; rebuilt
  // after any change to returned/off, so that a stretch where few threads
  // run (c10's second-level reduction: 32 of 1024) visits only those.
  bool running_valid;
  unsigned running_n;
  unsigned short running[1024];
};

// Calls f(lane, ids) for every thread of the group that has not returned and
// is not held out, in index order; f returns true when the thread returned.
// Visits one thread of the group: its ids, f, and the record of its return.
template <typename F>
MPS_SHIM_INLINE void visit_lane(GroupLanes& g, F& f, unsigned lane, uint x, uint y, uint z) {
  ThreadIds t;
  set_group_ids(t, g.gid, g.base, g.size, g.grid, g.group, g.groups, x, y, z);
  t.index_in_group = lane;  // the same value, in a form the vectoriser sees
#ifdef MPS_SHIM_CHECKED
  checked::lane_enter(lane);
  const bool returned = f(lane, t);
  checked::lane_leave(lane);
  if (returned) {
#else
  if (f(lane, t)) {
#endif
    if (!g.any_returned) __builtin_memset(g.returned, 0, sizeof(g.returned));
    g.any_returned = true;
    g.returned[lane] = 1;
    g.running_valid = false;
  }
}

// Lists the threads that have not returned and are not held out (out of
// line: it runs once per change of returned/off, not once per pass).
__attribute__((noinline)) inline void list_running(GroupLanes& g) {
  unsigned n = 0;
  for (unsigned lane = 0; lane < g.n; ++lane) {
    g.running[n] = (unsigned short)lane;
    n += !((g.any_returned && g.returned[lane]) || (g.any_off && g.off[lane]));
  }
  g.running_n = n;
  g.running_valid = true;
}

// Whether a thread of the group still runs here (not returned, not held out):
// group-uniform statements run once for the group, and only then.
MPS_SHIM_INLINE bool any_running(GroupLanes& g) {
  if (!g.any_returned && !g.any_off) return g.n != 0;
  if (!g.running_valid) list_running(g);
  return g.running_n != 0;
}

// One flat loop over the threads. In a group that extends along one axis (the
// usual 1-D group, and Inductor's {1, R}) the position is linear in the lane,
// so a stretch like `acc[lane] = 0` or `v[lane] = in[pos.y]` is a plain array
// loop the compiler can vectorise.
template <typename F>
MPS_SHIM_INLINE void for_each_lane(GroupLanes& g, F&& f) {
#ifdef MPS_SHIM_CHECKED
  checked::lane_pass();
#endif
  const bool skip_returned = g.any_returned, skip_off = g.any_off;
  auto skipped = [&](unsigned lane) __attribute__((always_inline)) {
    return (skip_returned && g.returned[lane]) || (skip_off && g.off[lane]);
  };
  const bool linear = g.size.x == g.n || g.size.y == g.n || g.size.z == g.n;
  const uint mx = g.size.x == g.n, my = !mx && g.size.y == g.n, mz = linear && !mx && !my;
  if (skip_returned || skip_off) {
    if (!g.running_valid) list_running(g);
    if (g.running_n * 2 <= g.n) {  // few run: visit just those
      for (unsigned i = 0, n = g.running_n; i < n; ++i) {
        const unsigned lane = g.running[i];
        if (linear) visit_lane(g, f, lane, lane * mx, lane * my, lane * mz);
        else visit_lane(g, f, lane, lane % g.size.x, lane / g.size.x % g.size.y, lane / (g.size.x * g.size.y));
      }
      return;
    }
  }
  if (linear) {
    for (unsigned lane = 0; lane < g.n; ++lane)
      if (!skipped(lane)) visit_lane(g, f, lane, lane * mx, lane * my, lane * mz);
    return;
  }
  uint x = 0, y = 0, z = 0;
  for (unsigned lane = 0; lane < g.n; ++lane) {
    if (!skipped(lane)) visit_lane(g, f, lane, x, y, z);
    if (++x == g.size.x) {
      x = 0;
      if (++y == g.size.y) y = 0, ++z;
    }
  }
}

// Kernels are built with TLS descriptors on x86-64 (toolchain.cpp): code
// that reads a thread_local assumes the lookup preserves every register, but
// before glibc 2.39 the lookup that first allocates a thread's copy of a
// dlopen'ed module's thread_locals clobbers vector registers. Each entry point
// calls this first, so that allocation happens here, with nothing live.
__attribute__((noinline)) inline void claim_thread_locals() {
  __asm__ volatile("" : : "r"(&fibers::detail::tls) : "memory");
}

MPS_SHIM_INLINE fibers::detail::LaneExchange& lane_exchange_state() {
  static thread_local fibers::detail::LaneExchange x;  // dynamic TLS, allocated on first use
  return x;
}

// for_each_lane for a statement with SIMD-group functions (see LaneExchange).
// Out of line, one function per statement: a replayed pass cannot be
// vectorised, so a call per pass costs nothing next to its rounds, while
// inlining every such pass (and its three loops) into the group function made
// g++'s time grow faster than the code (ggml's dsv4_hc_comb: 13 replayed
// passes, 14 s). f is taken by value: the closure's references are then
// registers in the loops, not loads through a pointer the stores may alias.
template <typename F>
__attribute__((noinline)) void for_each_lane_replayed(GroupLanes& g, F f) {
  fibers::detail::LaneExchange* xp = &lane_exchange_state();
  __asm__("" : "+r"(xp));  // keep the address: recomputing it is a __tls_get_addr call per thread
  fibers::detail::LaneExchange& x = *xp;
  x.replaying = true;
  x.resolved = 0;
  for (;;) {
    x.deposited = false;
    __builtin_memset(x.arrived, 0, g.n);
    if (x.resolved < x.n_ops) __builtin_memset(x.ops[x.resolved]->combined, 0, sizeof(x.ops[0]->combined));
    for_each_lane(g, [&](unsigned lane, const ThreadIds& t) __attribute__((always_inline)) {
      x.lane = lane;
      x.op = 0;
      return f(lane, t);
    });
    if (!x.deposited) break;
    fibers::detail::close_deposits(&x, g.n);
    ++x.resolved;
  }
  x.replaying = false;
}

// One value per thread of a group, from a lane loop.
template <typename T, unsigned N>
struct LaneValues {
  T v[N];
  MPS_SHIM_INLINE T& operator[](unsigned lane) { return v[lane]; }
};

// The values f(lane, ids) of the group's threads (kReplay: f calls SIMD-group functions).
template <unsigned N, bool kReplay, typename F>
MPS_SHIM_INLINE auto collect_lanes(GroupLanes& g, F&& f) {
  LaneValues<decltype(f(0u, g.uniform)), N> out;
  auto store = [&](unsigned lane, const ThreadIds& t) __attribute__((always_inline)) {
    out.v[lane] = f(lane, t);
    return false;
  };
  if constexpr (kReplay) for_each_lane_replayed(g, store);
  else for_each_lane(g, store);
  return out;
}

// Per-thread values arrive as collected LaneValues<T, N> or as a thread
// variable's own array T[N]: their first element.
template <typename T, unsigned N>
MPS_SHIM_INLINE T* lane_data(LaneValues<T, N>& x) { return x.v; }
template <typename T, size_t N>
MPS_SHIM_INLINE T* lane_data(T (&x)[N]) { return x; }
template <typename V> struct lane_count;  // N
template <typename T, unsigned N> struct lane_count<LaneValues<T, N>> { static constexpr unsigned value = N; };
template <typename T, size_t N> struct lane_count<T[N]> { static constexpr unsigned value = unsigned(N); };

// The values as T: the same array when they are T already, else a converted copy.
template <typename T, typename V>
MPS_SHIM_INLINE decltype(auto) lane_cast(GroupLanes& g, V& values) {
  if constexpr (std::is_same_v<T, std::remove_pointer_t<decltype(lane_data(values))>>) {
    return (values);
  } else {
    return collect_lanes<lane_count<V>::value, false>(g, [&](unsigned lane, const ThreadIds&) __attribute__((always_inline)) -> T {
      return lane_data(values)[lane];
    });
  }
}

// `if (cond)` around code with barriers or SIMD-group functions, where cond
// differs between threads: while the mask lives, threads whose condition is
// not `want` sit out, as the GPU masks off the lanes of a divergent branch.
class LaneMask {
 public:
  // An inlined function's scope: threads that return from it (hold_out) sit
  // out until it ends, however many branch masks end before that.
  // Who runs does not change here (held threads are out through g.off too),
  // so the list of running threads stays valid.
  MPS_SHIM_INLINE explicit LaneMask(GroupLanes& g) : g_(g), function_(true), any_off_(g.any_off), any_held_(g.any_held) {
    if (any_off_) __builtin_memcpy(saved_off_, g.off, g.n);
    if (any_held_) __builtin_memcpy(saved_held_, g.held, g.n);
    g.any_held = false;
  }
  template <typename Cond>
  MPS_SHIM_INLINE LaneMask(GroupLanes& g, Cond& cond, bool want) : g_(g), function_(false), any_off_(g.any_off) {
    if (any_off_) __builtin_memcpy(saved_off_, g.off, g.n);
    else __builtin_memset(g.off, 0, g.n);
    for (unsigned l = 0; l < g.n; ++l) g.off[l] |= bool(cond[l]) != want;
    g.any_off = true;
    g.running_valid = false;
  }
  MPS_SHIM_INLINE ~LaneMask() {
    if (function_ && !g_.any_held) {  // no thread returned from the function: off and held are as they were
      g_.any_held = any_held_;
      return;
    }
    g_.running_valid = false;
    g_.any_off = any_off_;
    if (any_off_) __builtin_memcpy(g_.off, saved_off_, g_.n);
    if (function_) {
      g_.any_held = any_held_;
      if (any_held_) __builtin_memcpy(g_.held, saved_held_, g_.n);
    } else if (g_.any_held) {  // a branch ended: who returned inside it stays out
      if (!g_.any_off) __builtin_memset(g_.off, 0, g_.n);
      for (unsigned l = 0; l < g_.n; ++l) g_.off[l] |= g_.held[l];
      g_.any_off = true;
    }
  }
  LaneMask(const LaneMask&) = delete;
  LaneMask& operator=(const LaneMask&) = delete;

 private:
  GroupLanes& g_;
  const bool function_;
  bool any_off_, any_held_ = false;
  unsigned char saved_off_[1024];
  unsigned char saved_held_[1024];
};

// A thread that returned from an inlined function sits out until its end.
MPS_SHIM_INLINE void hold_out(GroupLanes& g, unsigned lane) {
  if (!g.any_off) __builtin_memset(g.off, 0, g.n);
  if (!g.any_held) __builtin_memset(g.held, 0, g.n);
  g.any_off = g.any_held = true;
  g.off[lane] = g.held[lane] = 1;
  g.running_valid = false;
}

}  // namespace mps_host

#include "mps_host_lane_simd.h"

namespace mps_host {

// One threadgroup's group function, out of line: a function per kernel
// rather than the whole group function inlined into the loop over groups
// (which roughly doubled g++'s time on long group functions for nothing).
template <typename Body>
__attribute__((noinline)) void run_group_lanes(Body& body, GroupLanes& g) {
  body(g);
}

// Runs threadgroups [first, end), each through body(GroupLanes&).
template <typename Body>
MPS_SHIM_INLINE void run_groups_as_lane_loops(const mps_shim_launch* L, uint64_t first, uint64_t end, Body&& body) {
  fibers::detail::LaneExchange& x = lane_exchange_state();
  x.replaying = false;
  x.failed = false;
  x.no_memory = false;
  x.site = 0;
  fibers::detail::tls.lanes = &x;
  GroupLanes g;
  g.grid = uint3(L->grid[0], L->grid[1], L->grid[2]);
  g.group = uint3(L->group[0], L->group[1], L->group[2]);
  g.groups = uint3(L->groups[0], L->groups[1], L->groups[2]);
  for (uint64_t n = first; n < end; ++n) {
    g.gid = uint3(uint(n % g.groups.x), uint(n / g.groups.x % g.groups.y), uint(n / (uint64_t(g.groups.x) * g.groups.y)));
    g.base = uint3(g.gid.x * g.group.x, g.gid.y * g.group.y, g.gid.z * g.group.z);
    g.size = uint3(metal::min(g.group.x, g.grid.x - g.base.x), metal::min(g.group.y, g.grid.y - g.base.y),
                   metal::min(g.group.z, g.grid.z - g.base.z));
    set_group_ids(g.uniform, g.gid, g.base, g.size, g.grid, g.group, g.groups, 0, 0, 0);
    g.n = g.size.x * g.size.y * g.size.z;
    g.any_returned = false;
    g.any_off = false;
    g.any_held = false;
    g.running_valid = false;
#ifdef MPS_SHIM_CHECKED
    checked::begin_lane_group(L, g.gid, g.base, g.size, __builtin_frame_address(0));  // inlined: the entry's frame
#endif
    run_group_lanes(body, g);
#ifdef MPS_SHIM_CHECKED
    checked::end_group();
#endif
    if (x.failed || x.no_memory) break;
  }
  fibers::detail::tls.lanes = nullptr;
  if (x.failed) __atomic_store_n(L->failure, MPS_SHIM_LAUNCH_LANE_EXCHANGE, __ATOMIC_RELAXED);
  else if (x.no_memory) __atomic_store_n(L->failure, MPS_SHIM_LAUNCH_NO_MEMORY, __ATOMIC_RELAXED);
}

// Runs threadgroups [first, end) with each group's threads as fibers on this
// OS thread, for kernels with barriers or SIMD-group functions. A group whose
// threads wait for each other forever is abandoned and reported through
// L->failure; the dispatch then fails with that error.
#ifdef MPS_SHIM_CHECKED
namespace checked {
// The launch and threadgroup the calling OS thread runs now (mps_host_checked.h).
void begin_group(const mps_shim_launch* L, const uint3& gid, const uint3& base, const uint3& size);
}  // namespace checked
#endif

template <typename Body>
inline void run_groups_as_fibers(const mps_shim_launch* L, uint64_t first, uint64_t end, Body&& body) {
  const uint3 grid(L->grid[0], L->grid[1], L->grid[2]);
  const uint3 group(L->group[0], L->group[1], L->group[2]);
  const uint3 groups(L->groups[0], L->groups[1], L->groups[2]);
  struct Ctx {
    Body* body;
    uint3 gid, base, size, grid, group, groups;
  };
  const fibers::DeadlockHandler handler{nullptr, nullptr, 0};
  fibers::detail::shared_slot = L->fiber_slot;
  for (uint64_t g = first; g < end; ++g) {
    if (__atomic_load_n(L->failure, __ATOMIC_RELAXED) != MPS_SHIM_LAUNCH_OK) return;
    Ctx ctx{&body, uint3(uint(g % groups.x), uint(g / groups.x % groups.y), uint(g / (uint64_t(groups.x) * groups.y))),
            uint3(0u), uint3(0u), grid, group, groups};
    ctx.base = uint3(ctx.gid.x * group.x, ctx.gid.y * group.y, ctx.gid.z * group.z);
    ctx.size = uint3(metal::min(group.x, grid.x - ctx.base.x), metal::min(group.y, grid.y - ctx.base.y),
                     metal::min(group.z, grid.z - ctx.base.z));
    const unsigned n = ctx.size.x * ctx.size.y * ctx.size.z;
#ifdef MPS_SHIM_CHECKED
    checked::begin_group(L, ctx.gid, ctx.base, ctx.size);
#endif
    const int rc = fibers::run_group(
        n,
        [](void* c, unsigned tid) {
          const Ctx& x = *static_cast<const Ctx*>(c);
          ThreadIds t;
          set_group_ids(t, x.gid, x.base, x.size, x.grid, x.group, x.groups, tid % x.size.x,
                        tid / x.size.x % x.size.y, tid / (x.size.x * x.size.y));
          (*x.body)(t);
        },
        &ctx, &handler);
#ifdef MPS_SHIM_CHECKED
    checked::end_group();
#endif
    if (rc != fibers::kOk) {
      __atomic_store_n(L->failure, rc == fibers::kDeadlock ? MPS_SHIM_LAUNCH_DEADLOCK : MPS_SHIM_LAUNCH_NO_MEMORY,
                       __ATOMIC_RELAXED);
      return;
    }
  }
}

}  // namespace mps_host

#endif  // MPS_HOST_ENGINE_H
