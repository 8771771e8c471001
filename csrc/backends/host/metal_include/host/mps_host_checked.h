// Checked mode (MPS_SHIM_CHECKED): the sanitizers' side of a checked kernel
// module. Every kernel runs on fibers, one per Metal thread, so each access
// and each wait knows its thread. What is wrong goes to the runtime as an
// mps_shim_check_report (mps_host_launch.h) with the return addresses of the
// frames that led to it (modules are built with frame pointers and line
// tables); the runtime turns them into Metal source lines (runtime/checks.cpp).
//
// Here: synccheck (threads of a group waiting at different threadgroup
// barriers; a simdgroup_barrier that live lanes of the SIMD-group did not
// reach) and initcheck's SIMD half (a SIMD-group function reading an inactive
// lane), through hooks in the fiber scheduler (mps_host_fibers.h) and in the
// SIMD-group functions (mps_metal_simdgroup.h).
#ifndef MPS_HOST_CHECKED_H
#define MPS_HOST_CHECKED_H
#ifndef MPS_HOST_METAL_H
#error "include mps_host_metal_checked.h instead"
#endif

#pragma GCC visibility push(hidden)

namespace mps_host {
namespace checked {

namespace fib = ::mps_host::fibers;

// ---- threadgroup memory: bounds, racecheck, initcheck ---------------------------------
// A threadgroup array (`threadgroup T a[N];`, checked_lowering.h) is a
// tg_array: its operator[] checks the index and, for elements of up to 16
// bytes, records a touch (the address, the bytes before, where). When the
// thread next waits (barrier, SIMD-group function) or returns, its touches
// are settled: bytes that changed were written, the others read; each
// element's shadow keeps the group run, whether any thread wrote it, and its
// last writer and reader with their epoch (barrier generation, and for lanes
// of one SIMD-group their SIMD operation count). Two threads touching an
// element in one epoch, one writing, is a race; a read of an element no
// thread wrote is uninitialised (arrays are filled with a pattern when a
// group first uses them, so a write nearly always changes bytes). An array
// whose address escaped as a plain pointer in this group (passed to a
// helper, stored) is not initchecked: writes through that pointer are not seen.
struct Shadow {
  uint32_t serial;  // the group run it describes (State::serial); other: nothing yet
  uint32_t w_bar, w_simd, r_bar, r_simd;
  int16_t writer, reader;  // -1: none
  uint8_t written, many_readers;
  void* w_pcs[4];
  void* r_pcs[4];
};

struct Touch {
  unsigned char* addr;
  Shadow* shadow;
  const char* (*name)();
  unsigned char* escaped;  // the array's escape flag for this group
  uint32_t offset, size;
  unsigned char old[16];
  void* pcs[MPS_SHIM_CHECK_MAX_PCS];
  uint32_t n_pcs;
};

constexpr unsigned kMaxTouches = 48;

// A read of an element no thread had written yet: uninitialised only if no
// thread writes it before the epoch ends (else the writer reports the race).
struct PendingRead {
  Shadow* shadow;
  Touch touch;
  unsigned tid;
};
constexpr unsigned kMaxPending = 64;

struct FiberState {
  void* wait_pcs[MPS_SHIM_CHECK_MAX_PCS];  // where it waits (barrier or simdgroup_barrier)
  unsigned n_wait_pcs;
  unsigned wait_line, next_line;  // the barrier call's line; next_*: set by the call, taken by the wait
  const char* wait_file;
  const char* next_file;
  unsigned char at_barrier;    // waits at a threadgroup barrier
  unsigned char user_simd;     // waits at the kernel's own simdgroup_barrier
  unsigned char returned;
  unsigned char touches_lost;  // more touches than kept since the last wait: not settled
  unsigned n_touches;
  Touch touches[kMaxTouches];
};

// The calling OS thread's view: the launch, the threadgroup its fibers run, and each fiber's state.
struct State {
  uint32_t serial;  // group runs on this OS thread: a threadgroup array's contents belong to one
  // Kernels that do not wait run their threads one after another, without
  // fibers: `solo` is set while one runs, as thread `solo_tid` of the group.
  unsigned char solo, solo_group;
  unsigned solo_tid;
  uint32_t lane_epoch;  // lane loops: loops over the group's threads so far (a loop never spans a barrier)
  unsigned n_pending;
  PendingRead pending[kMaxPending];
  // Frames at or above this address are not the module's (the runtime's
  // executor, built without frame pointers): a report's walk stops there.
  // Fibers: the top of the fiber's own stack ends the chain (all ones here).
  const char* walk_limit;
  const mps_shim_launch* L;
  uint3 gid, base, size;
  unsigned n;
  FiberState fibers[fib::kMaxThreads];
};

inline State& state() {
  static thread_local State* s = nullptr;  // ~6 MB: mapped once per OS thread
  if (__builtin_expect(!s, 0)) {
    void* mem = mmap(nullptr, sizeof(State), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    s = static_cast<State*>(mem == MAP_FAILED ? nullptr : mem);
  }
  return *s;
}

// The return addresses of the caller's frames, innermost first (frame
// pointers: the fibers' first frame ends the chain with a null link; on the
// OS thread's stack the entry point's frame, State::walk_limit, ends it).
#define MPS_SHIM_CAPTURE_PCS(out, max, n)                                          \
  do {                                                                             \
    void** fp_ = static_cast<void**>(__builtin_frame_address(0));                  \
    const char* limit_ = state().walk_limit;                                       \
    (n) = 0;                                                                       \
    while (fp_ && (const char*)fp_ < limit_ && (n) < (max)) {                      \
      void* ret_ = fp_[1];                                                         \
      if (!ret_) break;                                                            \
      (out)[(n)++] = ret_;                                                         \
      void** next_ = static_cast<void**>(fp_[0]);                                  \
      if (next_ <= fp_ || (char*)next_ - (char*)fp_ > (1 << 20)) break;            \
      fp_ = next_;                                                                 \
    }                                                                              \
  } while (0)

inline void begin_group(const mps_shim_launch* L, const uint3& gid, const uint3& base, const uint3& size) {
  State& s = state();
  s.L = L;
  s.gid = gid;
  s.base = base;
  s.size = size;
  s.n = size.x * size.y * size.z;
  s.serial += 1;
  s.solo = 0;
  s.n_pending = 0;
  s.walk_limit = reinterpret_cast<const char*>(~uintptr_t(0));
  for (unsigned i = 0; i < s.n; ++i) {
    s.fibers[i].n_touches = 0;
    s.fibers[i].touches_lost = 0;
    s.fibers[i].at_barrier = 0;
    s.fibers[i].user_simd = 0;
    s.fibers[i].returned = 0;
    s.fibers[i].n_wait_pcs = 0;
  }
}

inline unsigned running_tid() {
  if (fib::detail::tls.group) return fib::current_thread_index();
  const State& s = state();
  return s.solo ? s.solo_tid : 0u;
}

// Fills the thread's ids and hands the report to the runtime.
__attribute__((noinline)) inline void send(mps_shim_check_report& r, unsigned tid) {
  State& s = state();
  if (!s.L || !s.L->check_report) return;
  const unsigned x = tid % s.size.x, y = tid / s.size.x % s.size.y, z = tid / (s.size.x * s.size.y);
  r.group[0] = s.gid.x, r.group[1] = s.gid.y, r.group[2] = s.gid.z;
  r.in_group[0] = x, r.in_group[1] = y, r.in_group[2] = z;
  r.in_grid[0] = s.base.x + x, r.in_grid[1] = s.base.y + y, r.in_grid[2] = s.base.z + z;
  r.simd_group = tid / 32;
  r.simd_lane = tid % 32;
  s.L->check_report(s.L->check_sink, &r);
}

inline mps_shim_check_report blank_report(int kind) {
  mps_shim_check_report r;
  __builtin_memset(&r, 0, sizeof(r));
  r.kind = kind;
  r.other_thread = -1;
  r.lane = -1;
  r.buffer = -1;
  r.is_write = -1;
  r.other_is_write = -1;
  return r;
}

// ---- synccheck ---------------------------------------------------------------

__attribute__((noinline)) inline void on_barrier_arrive(unsigned tid) {
  flush(tid);
  FiberState& f = state().fibers[tid];
  MPS_SHIM_CAPTURE_PCS(f.wait_pcs, MPS_SHIM_CHECK_MAX_PCS, f.n_wait_pcs);
  f.wait_line = f.next_line, f.wait_file = f.next_file;
  f.next_line = 0, f.next_file = nullptr;
  f.at_barrier = 1;
}

inline void barrier_place(unsigned line, const char* file) {
  if (!fib::detail::tls.group) return;
  FiberState& f = state().fibers[running_tid()];
  f.next_line = line, f.next_file = file;
}

inline bool same_file(const char* a, const char* b) {
  if (a == b) return true;
  if (!a || !b) return false;
  while (*a && *a == *b) ++a, ++b;
  return *a == *b;
}

inline bool same_place(const FiberState& a, const FiberState& b) {
  if (a.wait_line != b.wait_line || !same_file(a.wait_file, b.wait_file)) return false;
  if (a.n_wait_pcs != b.n_wait_pcs) return false;
  for (unsigned i = 0; i < a.n_wait_pcs; ++i)
    if (a.wait_pcs[i] != b.wait_pcs[i]) return false;
  return true;
}

// Every live thread has arrived: they must all wait at the same barrier. (The
// runtime drops a report whose two places are the same source lines: the
// compiler may copy a barrier's code.)
__attribute__((noinline)) inline void on_barrier_release(fib::detail::Group* g) {
  State& s = state();
  if (s.n_pending) settle_reads();
  int first = -1;
  bool reported = false;
  for (unsigned t = 0; t < g->n && t < s.n; ++t) {
    FiberState& f = s.fibers[t];
    if (!f.at_barrier) continue;
    f.at_barrier = 0;
    if (first < 0) {
      first = int(t);
    } else if (!reported && !same_place(s.fibers[first], f)) {
      reported = true;
      mps_shim_check_report r = blank_report(MPS_SHIM_CHECK_SYNC_BARRIER);
      const FiberState& a = s.fibers[first];
      r.n_pcs = a.n_wait_pcs;
      __builtin_memcpy(r.pcs, a.wait_pcs, sizeof(r.pcs));
      r.n_other_pcs = f.n_wait_pcs;
      __builtin_memcpy(r.other_pcs, f.wait_pcs, sizeof(r.other_pcs));
      r.other_thread = int(t);
      r.line = a.wait_line, r.file = a.wait_file;
      r.other_line = f.wait_line, r.other_file = f.wait_file;
      r.what = "threadgroup_barrier";
      send(r, unsigned(first));
    }
  }
}

inline void on_fiber_return(unsigned tid) {
  flush(tid);
  state().fibers[tid].returned = 1;
}

__attribute__((noinline)) inline void on_simd_arrive(unsigned tid, bool user_barrier) {
  FiberState& f = state().fibers[tid];
  f.user_simd = user_barrier;
  if (user_barrier) {
    MPS_SHIM_CAPTURE_PCS(f.wait_pcs, MPS_SHIM_CHECK_MAX_PCS, f.n_wait_pcs);
    f.wait_line = f.next_line, f.wait_file = f.next_file;
    f.next_line = 0, f.next_file = nullptr;
  }
}

// A SIMD-group operation completes for the lanes `done`: if it is the
// kernel's simdgroup_barrier, every live lane of the SIMD-group must be there.
inline void on_simd_complete(const fib::detail::Simd& sg, uint32_t done) {
  fib::detail::Group* g = fib::detail::tls.group;
  if (!g || !done) return;
  State& s = state();
  const unsigned base = unsigned(&sg - g->simd) * fib::kSimdWidth;
  const unsigned first = base + unsigned(__builtin_ctz(done));
  const bool user = s.fibers[first].user_simd;
  for (uint32_t m = done; m; m &= m - 1) s.fibers[base + unsigned(__builtin_ctz(m))].user_simd = 0;
  if (!user) return;
  for (unsigned l = 0; l < fib::kSimdWidth && base + l < g->n; ++l) {
    const FiberState& f = s.fibers[base + l];
    if ((done >> l) & 1u || f.returned) continue;
    mps_shim_check_report r = blank_report(MPS_SHIM_CHECK_SYNC_SIMD);
    const FiberState& a = s.fibers[first];
    r.n_pcs = a.n_wait_pcs;
    __builtin_memcpy(r.pcs, a.wait_pcs, sizeof(r.pcs));
    r.line = a.wait_line, r.file = a.wait_file;
    if (f.at_barrier || f.user_simd) {  // where the missing lane waits, if it is at a barrier
      r.n_other_pcs = f.n_wait_pcs;
      __builtin_memcpy(r.other_pcs, f.wait_pcs, sizeof(r.other_pcs));
      r.other_line = f.wait_line, r.other_file = f.wait_file;
    }
    r.other_thread = int(base + l);
    r.what = "simdgroup_barrier";
    send(r, first);
    return;
  }
}

// ---- lane loops -----------------------------------------------------------------
// A kernel the lane-loop splitter accepts runs as loops over a group's
// threads, one per stretch between barriers (or part of one): a thread's
// threadgroup accesses are settled when its turn in a loop ends, a loop is
// an epoch of its own (so only accesses within one loop can race: fewer
// races are seen than on fibers, never false ones). Statements that run once
// for the group record no accesses. The splitter leaves kernels with a
// barrier under a divergent condition to fibers in checked mode.
inline void begin_lane_group(const mps_shim_launch* L, const uint3& gid, const uint3& base, const uint3& size,
                             const void* entry_frame) {
  begin_group(L, gid, base, size);
  State& s = state();
  s.lane_epoch += 1;
  s.walk_limit = static_cast<const char*>(entry_frame);
}
inline void lane_pass() {
  State& s = state();
  if (s.n_pending) settle_reads();
  s.lane_epoch += 1;
}
MPS_SHIM_INLINE void lane_enter(unsigned lane) {
  State& s = state();
  s.solo = 1;
  s.solo_tid = lane;
}
MPS_SHIM_INLINE void lane_leave(unsigned lane) {
  State& s = state();
  if (s.fibers[lane].n_touches || s.fibers[lane].touches_lost) flush(lane);
  s.solo = 0;
}

// ---- initcheck: SIMD-group functions -------------------------------------------

// A shuffle, broadcast or fill read lane `lane` of the caller's SIMD-group,
// which is inactive (past a partial SIMD-group's end, returned, or off the
// caller's path): Metal leaves the value undefined.
__attribute__((noinline)) inline void inactive_lane_read(unsigned lane) {
  // A replayed lane-loop statement computes with placeholders until its operation completes.
  if (!fib::detail::tls.group && fib::detail::tls.lanes && fib::detail::tls.lanes->placeholder) return;
  mps_shim_check_report r = blank_report(MPS_SHIM_CHECK_INACTIVE_LANE);
  MPS_SHIM_CAPTURE_PCS(r.pcs, MPS_SHIM_CHECK_MAX_PCS, r.n_pcs);
  r.lane = int(lane);
  send(r, running_tid());
}
__attribute__((noinline)) inline void inactive_lane_read_by(unsigned tid, unsigned lane) {
  mps_shim_check_report r = blank_report(MPS_SHIM_CHECK_INACTIVE_LANE);
  MPS_SHIM_CAPTURE_PCS(r.pcs, MPS_SHIM_CHECK_MAX_PCS, r.n_pcs);
  r.lane = int(lane);
  send(r, tid);
}

struct alignas(64) Scratch {
  unsigned char bytes[4096];
};
inline Scratch& scratch_block() {
  static thread_local Scratch s;
  return s;
}
__attribute__((noinline)) inline void* clear_scratch(uint32_t size) {
  __builtin_memset(scratch_block().bytes, 0, size);
  return scratch_block().bytes;
}

// The epoch of thread tid: barrier generation, and its SIMD-group operations.
inline void epoch_of(unsigned tid, uint32_t& bar, uint32_t& simd) {
  fib::detail::Group* g = fib::detail::tls.group;
  bar = g ? g->gen : state().lane_epoch;
  simd = g ? g->simd[tid / fib::kSimdWidth].served[tid % fib::kSimdWidth] : 0;
}

inline bool same_epoch(unsigned a, uint32_t a_bar, uint32_t a_simd, unsigned b, uint32_t b_bar, uint32_t b_simd) {
  if (a_bar != b_bar) return false;
  return a / fib::kSimdWidth != b / fib::kSimdWidth || a_simd == b_simd;
}

inline void threadgroup_report(int kind, const Touch& t, unsigned tid, int is_write, int other, int other_is_write,
                               void* const* other_pcs, unsigned n_other) {
  mps_shim_check_report r = blank_report(kind);
  r.n_pcs = t.n_pcs;
  __builtin_memcpy(r.pcs, t.pcs, sizeof(r.pcs));
  unsigned n = 0;
  for (; n < n_other && n < MPS_SHIM_CHECK_MAX_PCS && other_pcs[n]; ++n) r.other_pcs[n] = other_pcs[n];
  r.n_other_pcs = n;
  r.is_write = is_write;
  r.other_is_write = other_is_write;
  r.other_thread = other;
  r.offset = t.offset;
  r.access_size = t.size;
  r.what = t.name();
  send(r, tid);
}

// Settles thread tid's touches (see Touch): called before it waits or returns.
__attribute__((noinline)) inline void flush(unsigned tid) {
  State& s = state();
  FiberState& f = s.fibers[tid];
  const unsigned n = f.touches_lost ? 0 : f.n_touches;
  f.n_touches = 0;
  f.touches_lost = 0;
  if (!n) return;
  uint32_t bar, simd;
  epoch_of(tid, bar, simd);
  for (unsigned i = 0; i < n; ++i) {
    const Touch& t = f.touches[i];
    Shadow& e = *t.shadow;
    if (e.serial != s.serial) {
      __builtin_memset(&e, 0, sizeof(e));
      e.serial = s.serial;
      e.writer = e.reader = -1;
    }
    const bool write = __builtin_memcmp(t.addr, t.old, t.size) != 0;
    const bool w_now = e.writer >= 0 && same_epoch(tid, bar, simd, unsigned(e.writer), e.w_bar, e.w_simd);
    const bool r_now = e.reader >= 0 && same_epoch(tid, bar, simd, unsigned(e.reader), e.r_bar, e.r_simd);
    if (write) {
      if (w_now && e.writer != int(tid))
        threadgroup_report(MPS_SHIM_CHECK_RACE, t, tid, 1, e.writer, 1, e.w_pcs, 4);
      else if (r_now && (e.reader != int(tid) || e.many_readers))
        threadgroup_report(MPS_SHIM_CHECK_RACE, t, tid, 1, e.reader, 0, e.r_pcs, 4);
      e.writer = int16_t(tid);
      e.w_bar = bar, e.w_simd = simd;
      e.written = 1;
      for (unsigned k = 0; k < 4; ++k) e.w_pcs[k] = k < t.n_pcs ? t.pcs[k] : nullptr;
    } else {
      if (!e.written && !*t.escaped) {
        if (s.n_pending < kMaxPending) s.pending[s.n_pending++] = PendingRead{&e, t, tid};
      } else if (w_now && e.writer != int(tid))
        threadgroup_report(MPS_SHIM_CHECK_RACE, t, tid, 0, e.writer, 1, e.w_pcs, 4);
      if (!r_now) {
        e.reader = int16_t(tid);
        e.r_bar = bar, e.r_simd = simd;
        e.many_readers = 0;
        for (unsigned k = 0; k < 4; ++k) e.r_pcs[k] = k < t.n_pcs ? t.pcs[k] : nullptr;
      } else if (e.reader != int(tid)) {
        e.many_readers = 1;
      }
    }
  }
}

// An epoch ended (a barrier released, a lane loop or the group ended): reads
// of elements that no thread wrote in it or before are uninitialised.
__attribute__((noinline)) inline void settle_reads() {
  State& s = state();
  const unsigned n = s.n_pending;
  s.n_pending = 0;
  for (unsigned i = 0; i < n; ++i) {
    const PendingRead& p = s.pending[i];
    if (p.shadow->serial == s.serial && !p.shadow->written && !*p.touch.escaped)
      threadgroup_report(MPS_SHIM_CHECK_UNINITIALIZED, p.touch, p.tid, 0, -1, -1, nullptr, 0);
  }
}
inline void end_group() {
  if (state().n_pending) settle_reads();
}

// A chunk of groups of a kernel that does not wait starts (its entry point,
// whose frame ends a report's walk) and ends.
inline void begin_chunk(const void* entry_frame) {
  State& s = state();
  s.solo_group = 0;
  s.walk_limit = static_cast<const char*>(entry_frame);
}
inline void end_chunk() { end_group(); }

// One thread of a kernel that does not wait, run without fibers: its ids for
// reports (a new group starts a new threadgroup run), and its threadgroup
// accesses settled when it ends (no barrier: one epoch for the group).
struct ThreadScope {
  unsigned tid;
  MPS_SHIM_INLINE ThreadScope(const mps_shim_launch* L, const ThreadIds& t) {
    State& s = state();
    const unsigned gx = t.in_grid.x / L->group[0], gy = t.in_grid.y / L->group[1], gz = t.in_grid.z / L->group[2];
    if (!s.solo_group || gx != s.gid.x || gy != s.gid.y || gz != s.gid.z || s.L != L) new_group(s, L, gx, gy, gz);
    const unsigned x = t.in_grid.x - s.base.x, y = t.in_grid.y - s.base.y, z = t.in_grid.z - s.base.z;
    tid = (z * s.size.y + y) * s.size.x + x;
    s.solo = 1;
    s.solo_tid = tid;
    s.fibers[tid].n_touches = 0;
    s.fibers[tid].touches_lost = 0;
  }
  MPS_SHIM_INLINE ~ThreadScope() {
    flush(tid);
    state().solo = 0;
  }
  __attribute__((noinline)) static void new_group(State& s, const mps_shim_launch* L, unsigned gx, unsigned gy,
                                                  unsigned gz) {
    end_group();
    s.L = L;
    s.solo_group = 1;
    s.serial += 1;
    s.gid = uint3(gx, gy, gz);
    s.base = uint3(gx * L->group[0], gy * L->group[1], gz * L->group[2]);
    s.size = uint3(metal::min(L->group[0], L->grid[0] - s.base.x), metal::min(L->group[1], L->grid[1] - s.base.y),
                   metal::min(L->group[2], L->grid[2] - s.base.z));
    s.n = s.size.x * s.size.y * s.size.z;
  }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;
};

__attribute__((noinline)) inline void threadgroup_bounds_fault(const char* name, int64_t offset, uint64_t extent,
                                                               uint32_t size) {
  mps_shim_check_report r = blank_report(MPS_SHIM_CHECK_THREADGROUP_BOUNDS);
  MPS_SHIM_CAPTURE_PCS(r.pcs, MPS_SHIM_CHECK_MAX_PCS, r.n_pcs);
  r.offset = offset;
  r.extent = extent;
  r.access_size = size;
  r.what = name;
  send(r, running_tid());
}

__attribute__((noinline)) inline void record_touch(unsigned char* addr, Shadow* shadow, const char* (*name)(),
                                                   unsigned char* escaped, uint32_t offset, uint32_t size) {
  if (!fib::detail::tls.group && !state().solo) return;
  FiberState& f = state().fibers[running_tid()];
  if (f.n_touches == kMaxTouches) {
    f.touches_lost = 1;
    return;
  }
  Touch& t = f.touches[f.n_touches++];
  t.addr = addr;
  t.shadow = shadow;
  t.name = name;
  t.escaped = escaped;
  t.offset = offset;
  t.size = size;
  __builtin_memcpy(t.old, addr, size);
  MPS_SHIM_CAPTURE_PCS(t.pcs, MPS_SHIM_CHECK_MAX_PCS, t.n_pcs);
}

// `threadgroup T a[N];` in checked code (checked_lowering.h); Tag names it.
// Its size is the array's: the 32 KiB static_assert still holds.
template <typename T, unsigned long N, typename Tag>
struct tg_array {
  T data[N];
  static constexpr bool kTracked = sizeof(T) <= 16 && std::is_trivially_copyable_v<T> && !std::is_array_v<T>;
  struct Group {
    uint32_t serial;
    unsigned char escaped;
  };
  static Shadow* shadow() {
    static thread_local Shadow* s = nullptr;
    if (__builtin_expect(!s, 0)) {
      void* mem = mmap(nullptr, sizeof(Shadow) * N, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      s = static_cast<Shadow*>(mem == MAP_FAILED ? nullptr : mem);
    }
    return s;
  }
  static Group& group() {
    static thread_local Group g;
    return g;
  }
  // The group's first use: uninitialised memory gets a pattern (see Shadow).
  MPS_SHIM_INLINE void begin() {
    Group& g = group();
    const uint32_t serial = state().serial;
    if (__builtin_expect(g.serial != serial, 0)) {
      g.serial = serial;
      g.escaped = 0;
      __builtin_memset(static_cast<void*>(data), 0xA7, sizeof(data));
    }
  }
  template <typename I, typename = std::enable_if_t<std::is_convertible_v<I, long>>>
  MPS_SHIM_INLINE T& operator[](const I& index) {
    begin();
    const long i = long(index);
    if (__builtin_expect(i < 0 || (unsigned long)i >= N, 0)) {
      threadgroup_bounds_fault(Tag::name(), i * long(sizeof(T)), sizeof(data), sizeof(T));
      if (sizeof(T) <= sizeof(Scratch)) return *reinterpret_cast<T*>(clear_scratch(sizeof(T)));
    }
    if constexpr (kTracked) {
      if (Shadow* s = shadow())
        record_touch(reinterpret_cast<unsigned char*>(&data[i]), &s[i], &Tag::name, &group().escaped,
                     uint32_t(i * sizeof(T)), sizeof(T));
    }
    return data[i];
  }
  template <typename I, typename = std::enable_if_t<std::is_convertible_v<I, long>>>
  MPS_SHIM_INLINE const T& operator[](const I& index) const {
    return const_cast<tg_array&>(*this)[index];
  }
  // The array as a plain pointer: accesses through it are not checked.
  MPS_SHIM_INLINE T* escape() {
    begin();
    group().escaped = 1;
    return data;
  }
  MPS_SHIM_INLINE operator T*() { return escape(); }
  MPS_SHIM_INLINE operator const T*() const { return const_cast<tg_array&>(*this); }
};

// ---- memcheck: device and constant buffers -----------------------------------

__attribute__((noinline)) inline void buffer_fault(int kind, int buffer, int64_t offset, uint64_t extent,
                                                   uint32_t size, uint32_t align, int is_write, const char* name,
                                                   uint64_t before) {
  mps_shim_check_report r = blank_report(kind);
  MPS_SHIM_CAPTURE_PCS(r.pcs, MPS_SHIM_CHECK_MAX_PCS, r.n_pcs);
  r.buffer = buffer;
  r.offset = offset;
  r.extent = extent;
  r.access_size = size;
  r.alignment = align;
  r.is_write = is_write;
  r.what = name;
  r.before = before;
  send(r, running_tid());
}

// A device or constant pointer with its buffer's bounds (checked_lowering.h):
// the buffer index and the bytes from the bound address to the end of the
// allocation; from a plain pointer (base null) only alignment is checked.
// It converts to the plain pointer wherever one is needed (unchecked from then on).
template <typename T>
struct dptr {
  using element = T;
  using reference = std::add_lvalue_reference_t<T>;
  T* p = nullptr;
  const unsigned char* base = nullptr;
  uint64_t extent = 0;
  uint64_t before = 0;    // bytes of the allocation before base (a view bound at an offset)
  int buffer = -1;        // buffer index, or [[threadgroup(n)]] index
  bool threadgroup = false;
  const char* name = nullptr;  // a [[threadgroup(n)]] parameter's

  dptr() = default;
  MPS_SHIM_INLINE dptr(T* q) : p(q) {}
  MPS_SHIM_INLINE dptr(decltype(nullptr)) : p(nullptr) {}
  template <typename U, typename = std::enable_if_t<std::is_convertible_v<U*, T*>>>
  MPS_SHIM_INLINE dptr(const dptr<U>& o)
      : p(o.p), base(o.base), extent(o.extent), before(o.before), buffer(o.buffer), threadgroup(o.threadgroup), name(o.name) {}
  // Casts: `(device T*)x`, reinterpret_cast and static_cast keep a checked operand's bounds.
  template <typename U, typename = std::enable_if_t<!std::is_convertible_v<U*, T*>>, typename = void>
  MPS_SHIM_INLINE explicit dptr(const dptr<U>& o)
      : p((T*)(o.p)), base(o.base), extent(o.extent), before(o.before), buffer(o.buffer), threadgroup(o.threadgroup), name(o.name) {}
  template <typename U>
  MPS_SHIM_INLINE explicit dptr(U* q) : p((T*)q) {}

  MPS_SHIM_INLINE operator T*() const { return p; }

  // The address to access for q: q itself, or, outside the buffer, a scratch
  // block of the OS thread (reads see zeros, writes go nowhere), so a checked
  // kernel's bad access is reported without touching the process's memory.
  MPS_SHIM_INLINE T* check(T* q) const {
    constexpr uint32_t size = sizeof(std::conditional_t<std::is_void_v<T>, char, T>);
    constexpr uint32_t align = alignof(std::conditional_t<std::is_void_v<T>, char, T>);
    constexpr int is_write = std::is_const_v<T> ? 0 : -1;
    const unsigned char* a = reinterpret_cast<const unsigned char*>(q);
    if (base) {
      const int64_t off = a - base;
      if (__builtin_expect((off < 0 && uint64_t(-off) > before) || (off >= 0 && uint64_t(off) + size > extent), 0)) {
        buffer_fault(threadgroup ? MPS_SHIM_CHECK_THREADGROUP_BOUNDS : MPS_SHIM_CHECK_OUT_OF_BOUNDS, buffer, off,
                     extent, size, align, is_write, name, before);
        if (size <= sizeof(scratch_block())) return reinterpret_cast<T*>(clear_scratch(size));
      }
    }
    if (__builtin_expect(reinterpret_cast<uintptr_t>(a) % align != 0, 0))
      buffer_fault(MPS_SHIM_CHECK_MISALIGNED, threadgroup ? -1 : buffer, base ? a - base : 0, extent, size, align,
                   is_write, name, before);
    return q;
  }
  MPS_SHIM_INLINE reference operator*() const { return *check(p); }
  MPS_SHIM_INLINE T* operator->() const { return check(p); }
  template <typename I, typename = std::enable_if_t<std::is_convertible_v<I, long>>>
  MPS_SHIM_INLINE reference operator[](const I& i) const {
    return *check(p + long(i));
  }
  template <typename I, typename = std::enable_if_t<std::is_convertible_v<I, long>>>
  MPS_SHIM_INLINE dptr operator+(const I& i) const {
    dptr r = *this;
    r.p = p + long(i);
    return r;
  }
  template <typename I, typename = std::enable_if_t<std::is_convertible_v<I, long>>>
  MPS_SHIM_INLINE friend dptr operator+(const I& i, const dptr& d) { return d + i; }
  template <typename I, typename = std::enable_if_t<std::is_convertible_v<I, long>>>
  MPS_SHIM_INLINE dptr operator-(const I& i) const {
    dptr r = *this;
    r.p = p - long(i);
    return r;
  }
  template <typename U>
  MPS_SHIM_INLINE long operator-(const dptr<U>& o) const { return p - o.p; }
  MPS_SHIM_INLINE long operator-(const T* q) const { return p - q; }
  template <typename I, typename = std::enable_if_t<std::is_convertible_v<I, long>>>
  MPS_SHIM_INLINE dptr& operator+=(const I& i) {
    p += long(i);
    return *this;
  }
  template <typename I, typename = std::enable_if_t<std::is_convertible_v<I, long>>>
  MPS_SHIM_INLINE dptr& operator-=(const I& i) {
    p -= long(i);
    return *this;
  }
  MPS_SHIM_INLINE dptr& operator++() {
    ++p;
    return *this;
  }
  MPS_SHIM_INLINE dptr& operator--() {
    --p;
    return *this;
  }
  MPS_SHIM_INLINE dptr operator++(int) {
    dptr r = *this;
    ++p;
    return r;
  }
  MPS_SHIM_INLINE dptr operator--(int) {
    dptr r = *this;
    --p;
    return r;
  }
};

template <typename P>
struct is_dptr : std::false_type {};
template <typename T>
struct is_dptr<dptr<T>> : std::true_type {};

// `reinterpret_cast<device T*>(x)` / `static_cast<...>(x)` in checked code.
template <typename P, typename X>
MPS_SHIM_INLINE P cast(const X& x) {
  if constexpr (is_dptr<P>::value) return P(x);
  else return reinterpret_cast<P>(x);
}

// A kernel parameter bound at `p` (buffer index `binding`, or [[threadgroup(binding)]]):
// checked pointers get their bounds.
template <typename P>
MPS_SHIM_INLINE P bind(void* p, const mps_shim_launch* L, int binding, bool threadgroup, const char* name) {
  if constexpr (is_dptr<P>::value) {
    P d(static_cast<typename P::element*>(p));
    if (p && binding >= 0) {
      d.base = static_cast<const unsigned char*>(p);
      const uint64_t unknown = ~uint64_t(0);
      d.extent = threadgroup ? (L->threadgroup_lengths ? L->threadgroup_lengths[binding] : unknown)
                             : (L->extents ? L->extents[binding] : unknown);
      d.before = !threadgroup && L->extents_before ? L->extents_before[binding] : 0;
      d.buffer = binding;
      d.threadgroup = threadgroup;
      if (threadgroup) d.name = name;
    }
    return d;
  } else {
    return ::mps_host::bind<P>(p);
  }
}

}  // namespace checked

// What a checked pointer parameter points to (the runtime's binding checks).
template <typename T>
struct param_pointee<checked::dptr<T>> {
  using type = T;
};

}  // namespace mps_host

#pragma GCC visibility pop

#endif  // MPS_HOST_CHECKED_H
