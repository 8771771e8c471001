// Checks mps_host_fibers.h: threadgroup barriers, early returns, SIMD-group
// functions, per-thread state, the progress guard.
//   fiber_test          run every check; exit 0 when all pass
//   fiber_test bench    print ns per work-item per barrier and per lane per simd_sum
//   fiber_test overflow recurse until the stack overflows (must die on SIGSEGV)
#include "mps_host_fibers.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

namespace fb = mps_host::fibers;

static std::atomic<int> g_failures{0};
static std::atomic<int> g_checks{0};

#define CHECK(cond, ...)                                   \
  do {                                                     \
    g_checks.fetch_add(1, std::memory_order_relaxed);      \
    if (!(cond)) {                                         \
      if (g_failures.fetch_add(1) < 40) {                  \
        std::fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
        std::fprintf(stderr, __VA_ARGS__);                 \
        std::fprintf(stderr, "\n");                        \
      }                                                    \
    }                                                      \
  } while (0)

// run_group with a std::function body.
static int run(unsigned n, const std::function<void(unsigned)>& fn, const fb::DeadlockHandler* h = nullptr) {
  return fb::run_group(
      n, [](void* ctx, unsigned tid) { (*static_cast<const std::function<void(unsigned)>*>(ctx))(tid); },
      const_cast<std::function<void(unsigned)>*>(&fn), h);
}

// ---- barriers --------------------------------------------------------------

// Tree reduction through a shared array; also checks after every barrier that
// every thread has arrived at it (arrivals[k] == n).
static void test_tree_reduction(unsigned n) {
  std::vector<long long> sh(n);
  std::vector<int> arrivals(64, 0);
  long long result = -1;
  int bad = 0;
  int rc = run(n, [&](unsigned tid) {
    sh[tid] = tid + 1;
    int k = 0;
    arrivals[k]++;
    fb::barrier();
    if (arrivals[k] != int(n)) bad++;
    unsigned stride = 1;
    while (stride < n) stride <<= 1;
    for (stride >>= 1; stride > 0; stride >>= 1) {
      if (tid < stride && tid + stride < n) sh[tid] += sh[tid + stride];
      ++k;
      arrivals[k]++;
      fb::barrier();
      if (arrivals[k] != int(n)) bad++;
    }
    if (tid == 0) result = sh[0];
  });
  CHECK(rc == fb::kOk, "n=%u rc=%d", n, rc);
  CHECK(result == (long long)n * (n + 1) / 2, "n=%u result=%lld", n, result);
  CHECK(bad == 0, "n=%u: %d threads passed a barrier early", n, bad);
}

// Half the threads return before the second barrier; the others keep using
// barriers and must not wait for them.
static void test_early_return(unsigned n) {
  std::vector<long long> sh(n, 0);
  std::vector<int> arrivals(64, 0);
  unsigned stayers = (n + 1) / 2;  // even tids
  long long result = -1;
  int bad = 0;
  int rc = run(n, [&](unsigned tid) {
    sh[tid] = tid;
    arrivals[0]++;
    fb::barrier();
    if (arrivals[0] != int(n)) bad++;
    if (tid % 2 == 1) return;
    // Reduce the even entries among the even threads, 5 barriers per round.
    for (int round = 1; round <= 5; ++round) {
      arrivals[round]++;
      fb::barrier();
      if (arrivals[round] != int(stayers)) bad++;
    }
    unsigned idx = tid / 2;  // 0 .. stayers-1
    std::vector<long long>* v = &sh;
    (*v)[tid] = tid;  // even value
    fb::barrier();
    for (unsigned stride = 1; stride < stayers; stride <<= 1) {
      if (idx % (2 * stride) == 0 && idx + stride < stayers) (*v)[tid] += (*v)[tid + 2 * stride];
      fb::barrier();
    }
    if (tid == 0) result = (*v)[0];
  });
  long long expect = 0;
  for (unsigned t = 0; t < n; t += 2) expect += t;
  CHECK(rc == fb::kOk, "n=%u rc=%d", n, rc);
  CHECK(result == expect, "n=%u result=%lld expect=%lld", n, result, expect);
  CHECK(bad == 0, "n=%u: %d early passes", n, bad);
}

// Threads return at staggered points (tid % 4 barriers in), others carry on.
static void test_staggered_return(unsigned n) {
  std::vector<int> arrivals(16, 0);
  int bad = 0;
  int rc = run(n, [&](unsigned tid) {
    unsigned stop = (tid % 5 == 0) ? 100 : tid % 4;  // every 5th stays to the end
    for (unsigned k = 0; k < 8; ++k) {
      if (k == stop) return;
      arrivals[k]++;
      fb::barrier();
      unsigned expect = 0;  // threads still present at barrier k
      for (unsigned t = 0; t < n; ++t) {
        unsigned s = (t % 5 == 0) ? 100 : t % 4;
        if (s > k) expect++;
      }
      if (arrivals[k] != int(expect)) bad++;
    }
  });
  CHECK(rc == fb::kOk, "n=%u rc=%d", n, rc);
  CHECK(bad == 0, "n=%u: %d wrong barrier counts", n, bad);
}

// Barriers inside noinline helpers, loops and recursion.
__attribute__((noinline)) static long long block_sum(long long* sh, unsigned tid, unsigned n, long long v) {
  fb::barrier();  // protect sh from the previous use
  sh[tid] = v;
  fb::barrier();
  for (unsigned stride = 1; stride < n; stride <<= 1) {
    long long add = (tid + stride < n && tid % (2 * stride) == 0) ? sh[tid + stride] : 0;
    fb::barrier();
    sh[tid] += add;
    fb::barrier();
  }
  long long r = sh[0];
  return r;
}

__attribute__((noinline)) static long long recurse(long long* sh, unsigned tid, unsigned n, int depth) {
  volatile char pad[256];  // real stack use at every level
  pad[0] = char(depth);
  if (depth == 0) return block_sum(sh, tid, n, tid);
  long long r = recurse(sh, tid, n, depth - 1);
  fb::barrier();
  return r + pad[0] - depth + block_sum(sh, tid, n, 1);
}

static void test_nested(unsigned n) {
  std::vector<long long> sh(n);
  std::vector<long long> out(n, -1);
  int rc = run(n, [&](unsigned tid) {
    long long acc = 0;
    for (int i = 0; i < 3; ++i) {
      acc += recurse(sh.data(), tid, n, 6);
      if (tid % 3 == 0) continue;  // divergent control flow between uniform barriers
      acc += 0;
    }
    out[tid] = acc;
  });
  long long per = (long long)n * (n - 1) / 2 + 6LL * n;
  CHECK(rc == fb::kOk, "n=%u rc=%d", n, rc);
  for (unsigned t = 0; t < n; ++t) CHECK(out[t] == 3 * per, "n=%u tid=%u got %lld want %lld", n, t, out[t], 3 * per);
}

// Values live in callee-saved registers (x86-64: rbx, rbp, r12-r15; AArch64:
// x19-x28, d8-d15) across barriers must survive the other fibers' use of them.
__attribute__((noinline)) static double keep_live(unsigned tid, int rounds) {
  double d0 = tid * 1.5, d1 = d0 + 0.25, d2 = d0 + 0.5, d3 = d0 + 0.75, d4 = d0 + 1, d5 = d0 + 1.25, d6 = d0 + 1.5,
         d7 = d0 + 1.75, d8 = d0 + 2, d9 = d0 + 2.25, d10 = d0 + 2.5, d11 = d0 + 2.75;
  long x0 = long(tid) * 1000, x1 = x0 + 1, x2 = x0 + 2, x3 = x0 + 3, x4 = x0 + 4, x5 = x0 + 5, x6 = x0 + 6,
       x7 = x0 + 7, x8 = x0 + 8, x9 = x0 + 9;
  for (int r = 0; r < rounds; ++r) {
    fb::barrier();
    d0 += 1; d1 += 1; d2 += 1; d3 += 1; d4 += 1; d5 += 1; d6 += 1; d7 += 1; d8 += 1; d9 += 1; d10 += 1; d11 += 1;
    x0 += 3; x1 += 3; x2 += 3; x3 += 3; x4 += 3; x5 += 3; x6 += 3; x7 += 3; x8 += 3; x9 += 3;
  }
  return d0 + d1 + d2 + d3 + d4 + d5 + d6 + d7 + d8 + d9 + d10 + d11 +
         double(x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9);
}

static void test_registers(unsigned n) {
  std::vector<double> out(n);
  run(n, [&](unsigned tid) { out[tid] = keep_live(tid, 5); });
  int bad = 0;
  for (unsigned t = 0; t < n; ++t) {
    double s = 0;
    for (int i = 0; i < 12; ++i) s += t * 1.5 + i * 0.25 + 5;
    long xs = 0;
    for (int i = 0; i < 10; ++i) xs += long(t) * 1000 + i + 15;
    s += double(xs);
    bad += out[t] != s;
  }
  CHECK(bad == 0, "n=%u: %d fibers lost register values", n, bad);
}

// ---- SIMD-group ------------------------------------------------------------

static float val(unsigned tid, int step) { return float(int((tid * 7 + step * 13) % 23) - 11); }

// Expected results of one SIMD operation on the lanes of one SIMD-group.
struct Expect {
  float sum, max;
  int prefix[32];
  float down1[32], down5[32], down31[32];
  float bcast;
  uint64_t ballot;
};

static Expect expect_for(const std::vector<bool>& act, unsigned base, int step, unsigned bsrc) {
  Expect e{};
  bool first = true;
  for (unsigned l = 0; l < 32; ++l) {
    if (!act[l]) continue;
    float x = val(base + l, step);
    e.sum = first ? x : e.sum + x;
    e.max = first ? x : (x > e.max ? x : e.max);
    first = false;
    if (int(x) > 0) e.ballot |= uint64_t(1) << l;
  }
  int run_sum = 0;
  for (unsigned l = 0; l < 32; ++l) {
    e.prefix[l] = run_sum;
    if (act[l]) run_sum += int(val(base + l, step)) * 3;
  }
  const unsigned deltas[3] = {1, 5, 31};
  float* outs[3] = {e.down1, e.down5, e.down31};
  for (int d = 0; d < 3; ++d)
    for (unsigned l = 0; l < 32; ++l) {
      unsigned s = l + deltas[d];
      outs[d][l] = (s < 32 && act[s]) ? val(base + s, step) : val(base + l, step);
    }
  e.bcast = val(base + bsrc, step);
  return e;
}

// n threads; lanes with returns_at(tid) <= step have returned before step.
static void test_simd(unsigned n, unsigned (*returns_at)(unsigned tid), const char* label) {
  const int steps = 6;
  struct Got {
    float sum, max, d1, d5, d31, bc;
    int prefix;
    uint64_t ballot;
    bool ran;
  };
  std::vector<Got> got(n * steps);
  int rc = run(n, [&](unsigned tid) {
    const unsigned lane = tid % 32;
    const unsigned base = tid - lane;
    for (int step = 0; step < steps; ++step) {
      if (returns_at(tid) <= unsigned(step)) return;
      float x = val(tid, step);
      // Broadcast source: the lowest lane of this SIMD-group still active at this step.
      unsigned bsrc = 0;
      while (base + bsrc >= n || returns_at(base + bsrc) <= unsigned(step)) bsrc++;
      Got& r = got[tid * steps + step];
      r.sum = fb::simd_sum(x);
      r.max = fb::simd_max(x);
      r.prefix = fb::simd_prefix_exclusive_sum(int(x) * 3);
      r.d1 = fb::simd_shuffle_down(x, 1);
      r.d5 = fb::simd_shuffle_down(x, 5);
      r.d31 = fb::simd_shuffle_down(x, 31);
      r.bc = fb::simd_broadcast(x, (unsigned short)bsrc);
      r.ballot = fb::simd_ballot(x > 0.0f);
      r.ran = true;
    }
  });
  CHECK(rc == fb::kOk, "%s n=%u rc=%d", label, n, rc);
  int bad = 0;
  for (unsigned tid = 0; tid < n; ++tid) {
    const unsigned lane = tid % 32, base = tid - lane;
    for (int step = 0; step < steps; ++step) {
      const Got& r = got[tid * steps + step];
      bool should_run = returns_at(tid) > unsigned(step);
      if (!should_run) {
        if (r.ran) bad++;
        continue;
      }
      std::vector<bool> act(32);
      unsigned bsrc = 32;
      for (unsigned l = 0; l < 32; ++l) {
        act[l] = base + l < n && returns_at(base + l) > unsigned(step);
        if (act[l] && bsrc == 32) bsrc = l;
      }
      Expect e = expect_for(act, base, step, bsrc);
      bool ok = r.ran && r.sum == e.sum && r.max == e.max && r.prefix == e.prefix[lane] && r.d1 == e.down1[lane] &&
                r.d5 == e.down5[lane] && r.d31 == e.down31[lane] && r.bc == e.bcast && r.ballot == e.ballot;
      if (!ok && bad++ < 5)
        std::fprintf(stderr,
                     "  %s n=%u tid=%u step=%d: sum %g/%g max %g/%g prefix %d/%d down1 %g/%g down5 %g/%g "
                     "down31 %g/%g bcast %g/%g ballot %llx/%llx\n",
                     label, n, tid, step, r.sum, e.sum, r.max, e.max, r.prefix, e.prefix[lane], r.d1,
                     e.down1[lane], r.d5, e.down5[lane], r.d31, e.down31[lane], r.bc, e.bcast,
                     (unsigned long long)r.ballot, (unsigned long long)e.ballot);
    }
  }
  CHECK(bad == 0, "%s n=%u: %d wrong SIMD results", label, n, bad);
}

static unsigned never(unsigned) { return 1000; }
static unsigned every_third_at_0(unsigned tid) { return tid % 3 == 0 ? 0 : 1000; }
static unsigned staggered(unsigned tid) { return tid % 5 == 1 ? 2 : tid % 7 == 3 ? 4 : tid % 11 == 0 ? 1 : 1000; }
static unsigned all_but_lane7(unsigned tid) { return tid % 32 == 7 ? 1000 : 3; }

// A chain of shuffles where lanes run ahead between operations (the slower
// lanes still read the previous operation's slots): exercises the two
// alternating slot buffers. Simulated lane by lane.
static void test_simd_chain(unsigned n) {
  const int steps = 40;
  std::vector<float> out(n, 0.f);
  int rc = run(n, [&](unsigned tid) {
    float v = float(tid);
    for (int k = 0; k < steps; ++k) {
      unsigned short d = (unsigned short)(k % 4 + 1);
      v = fb::simd_shuffle_down(v, d) * 0.5f + float(tid % 32) + fb::simd_broadcast(v, (unsigned short)(k % 3)) * 0.25f;
      if (tid % 2) {  // odd lanes do extra, uneven work between SIMD ops
        volatile float w = 0;
        for (unsigned i = 0; i < tid % 7 * 10; ++i) w = w + 1;
      }
    }
    out[tid] = v;
  });
  CHECK(rc == fb::kOk, "chain n=%u rc=%d", n, rc);
  // Simulate.
  std::vector<float> v(n), nv(n);
  for (unsigned t = 0; t < n; ++t) v[t] = float(t);
  for (int k = 0; k < steps; ++k) {
    unsigned d = k % 4 + 1;
    for (unsigned t = 0; t < n; ++t) {
      unsigned lane = t % 32, base = t - lane;
      unsigned s = lane + d;
      float sh = (s < 32 && base + s < n) ? v[base + s] : v[t];
      unsigned b = k % 3;
      float bc = base + b < n ? v[base + b] : v[t];
      nv[t] = sh * 0.5f + float(lane) + bc * 0.25f;
    }
    v.swap(nv);
  }
  int bad = 0;
  for (unsigned t = 0; t < n; ++t) bad += out[t] != v[t];
  CHECK(bad == 0, "chain n=%u: %d lanes differ", n, bad);
}

// Solo groups (n == 1) run without fibers; the API still works.
static void test_solo() {
  float s = -1, m = -1, d = -1, b = -1;
  int p = -1;
  uint64_t bal = 0;
  unsigned idx = 99;
  int rc = run(1, [&](unsigned tid) {
    fb::barrier();
    s = fb::simd_sum(3.5f);
    m = fb::simd_max(-2.0f);
    p = fb::simd_prefix_exclusive_sum(7);
    d = fb::simd_shuffle_down(4.0f, 1);
    b = fb::simd_broadcast(5.0f, 0);
    bal = fb::simd_ballot(true);
    idx = tid;
  });
  CHECK(rc == fb::kOk && s == 3.5f && m == -2.0f && p == 0 && d == 4.0f && b == 5.0f && bal == 1 && idx == 0,
        "solo rc=%d s=%g m=%g p=%d d=%g b=%g bal=%llx", rc, s, m, p, d, b, (unsigned long long)bal);
}

// ---- per-thread state, pool reuse -----------------------------------------

static void worker(int which, int* errors) {
  const unsigned sizes[] = {2, 7, 32, 33, 64, 100, 256, 513, 1024};
  for (int rep = 0; rep < 30; ++rep) {
    for (unsigned n : sizes) {
      unsigned nn = n - (which + rep) % 2;  // the two threads run different sizes
      if (nn < 2) nn = 2;
      std::vector<long long> sh(nn);
      std::vector<float> sums(nn);
      long long result = -1;
      int rc = run(nn, [&](unsigned tid) {
        sh[tid] = tid;
        sums[tid] = fb::simd_sum(1.0f);
        for (unsigned stride = 1; stride < nn; stride <<= 1) {
          fb::barrier();
          long long add = (tid % (2 * stride) == 0 && tid + stride < nn) ? sh[tid + stride] : 0;
          fb::barrier();
          sh[tid] += add;
          if (rep % 3 == 0) std::this_thread::yield();  // invite the OS to interleave the two threads
        }
        if (tid == 0) result = sh[0];
      });
      if (rc != fb::kOk || result != (long long)nn * (nn - 1) / 2) ++*errors;
      for (unsigned t = 0; t < nn; ++t) {
        unsigned lanes = (t / 32 + 1) * 32 <= nn ? 32 : nn % 32;
        if (sums[t] != float(lanes)) ++*errors;
      }
    }
  }
  if (fb::pooled_stacks() != 1024) ++*errors;  // reused, never grown past the largest group
}

static void test_two_threads() {
  int e1 = 0, e2 = 0;
  std::thread t1(worker, 0, &e1), t2(worker, 1, &e2);
  t1.join();
  t2.join();
  CHECK(e1 == 0 && e2 == 0, "errors %d %d", e1, e2);
}

static void test_pool_reuse() {
  unsigned before = fb::pooled_stacks();
  for (int i = 0; i < 200; ++i) run(256, [](unsigned) { fb::barrier(); });
  unsigned after = fb::pooled_stacks();
  CHECK(after >= 256 && (before < 256 || after == before), "pool %u -> %u", before, after);
  CHECK(fb::run_group(1025, [](void*, unsigned) {}, nullptr) == fb::kTooManyThreads, "1025 threads accepted");
  CHECK(fb::run_group(0, [](void*, unsigned) {}, nullptr) == fb::kOk, "0 threads");
  int nested = 1;
  run(4, [&](unsigned tid) {
    if (tid == 2) nested = fb::run_group(2, [](void*, unsigned) {}, nullptr);
  });
  CHECK(nested == fb::kNested, "nested run_group returned %d", nested);
}

// ---- progress guard -------------------------------------------------------

struct HandlerLog {
  int calls = 0;
  fb::DeadlockInfo last{};
};

static void on_deadlock(void* user, const fb::DeadlockInfo* info) {
  HandlerLog* log = static_cast<HandlerLog*>(user);
  log->calls++;
  log->last = *info;
}

static void test_deadlock() {
  HandlerLog log;
  fb::DeadlockHandler h{on_deadlock, &log, 20000};

  // Thread 0 spins for a flag that thread 1 sets only after a barrier that
  // thread 0 never reaches.
  {
    volatile int flag = 0;
    int after = 0;
    int rc = run(64, [&](unsigned tid) {
      if (tid == 0)
        while (!flag) fb::yield_for_spin();
      fb::barrier();
      if (tid == 1) flag = 1;
      after++;
    }, &h);
    CHECK(rc == fb::kDeadlock, "spin deadlock rc=%d", rc);
    CHECK(log.calls == 1 && log.last.kind == fb::kSpinLimit && log.last.tid == 0 && log.last.live == 64 &&
              log.last.at_barrier == 63 && log.last.n_threads == 64,
          "calls=%d kind=%d tid=%u live=%u at_barrier=%u", log.calls, log.last.kind, log.last.tid, log.last.live,
          log.last.at_barrier);
    CHECK(after == 0, "threads passed the barrier: %d", after);
  }
  // A spin-wait that does complete: thread 0 waits for thread 5, which sets
  // the flag without any barrier.
  {
    log = HandlerLog();
    volatile int flag = 0;
    int rc = run(8, [&](unsigned tid) {
      if (tid == 0)
        while (!flag) fb::yield_for_spin();
      if (tid == 5) flag = 1;
      fb::barrier();
    }, &h);
    CHECK(rc == fb::kOk && log.calls == 0, "completing spin rc=%d calls=%d", rc, log.calls);
  }
  // Divergence: lanes 0..15 run a SIMD op while lanes 16..31 wait at the
  // barrier. As on the GPU, the op combines only the lanes that execute it.
  {
    log = HandlerLog();
    float sums[32] = {};
    int rc = run(32, [&](unsigned tid) {
      if (tid < 16) sums[tid] = fb::simd_sum(1.0f);
      fb::barrier();
    }, &h);
    CHECK(rc == fb::kOk && log.calls == 0, "divergent simd op rc=%d calls=%d", rc, log.calls);
    for (unsigned t = 0; t < 16; ++t) CHECK(sums[t] == 16.0f, "divergent simd_sum lane %u: %g", t, sums[t]);
  }
  // Solo group: the handler fires and the body is abandoned (it never sees a false).
  {
    log = HandlerLog();
    long spins = 0;
    int rc = run(1, [&](unsigned) {
      volatile int never_set = 0;
      while (!never_set) {
        if (!fb::yield_for_spin()) break;  // never taken: the guard jumps out
        spins++;
      }
      spins = -1;  // not reached
    }, &h);
    CHECK(rc == fb::kDeadlock && log.calls == 1 && log.last.kind == fb::kSpinLimit && spins == 20000,
          "solo rc=%d calls=%d spins=%ld", rc, log.calls, spins);
  }
  // The module-wide default handler.
  {
    log = HandlerLog();
    fb::set_default_deadlock_handler(&h);
    int rc = run(3, [&](unsigned tid) {
      if (tid == 1) for (;;) fb::yield_for_spin();
    });
    fb::set_default_deadlock_handler(nullptr);
    CHECK(rc == fb::kDeadlock && log.calls == 1 && log.last.tid == 1, "default handler rc=%d calls=%d", rc, log.calls);
  }
  // The thread's state is usable after an abandoned group.
  test_tree_reduction(300);
  test_simd(64, staggered, "after-deadlock");
}

// Floating-point control state travels with each fiber.
static void test_fp_control() {
#if defined(__x86_64__)
  unsigned saved;
  __asm__ volatile("stmxcsr %0" : "=m"(saved));
  unsigned ftz = saved | 0x8040u;  // FTZ + DAZ
  __asm__ volatile("ldmxcsr %0" : : "m"(ftz));
  std::vector<unsigned> seen(40);
  run(40, [&](unsigned tid) {
    unsigned m;
    if (tid == 3) {  // this fiber alone switches to round-toward-zero
      unsigned rz = ftz | 0x6000u;
      __asm__ volatile("ldmxcsr %0" : : "m"(rz));
    }
    fb::barrier();
    __asm__ volatile("stmxcsr %0" : "=m"(m));
    seen[tid] = m;
  });
  __asm__ volatile("ldmxcsr %0" : : "m"(saved));
  int bad = 0;
  for (unsigned t = 0; t < 40; ++t) bad += (seen[t] & 0xffc0u) != ((t == 3 ? ftz | 0x6000u : ftz) & 0xffc0u);
  CHECK(bad == 0, "%d fibers saw the wrong MXCSR", bad);
#endif
}

// ---- bench / overflow -----------------------------------------------------

static double now_ns() {
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

static int bench() {
  for (unsigned n : {32u, 256u, 1024u}) {
    const unsigned iters = 1000;
    double best = 1e30;
    for (int rep = 0; rep < 7; ++rep) {
      double t0 = now_ns();
      run(n, [&](unsigned) {
        for (unsigned i = 0; i < iters; ++i) fb::barrier();
      });
      double t = now_ns() - t0;
      if (t < best) best = t;
    }
    std::printf("barrier: n=%u, %u barriers: %.2f ns per work-item per barrier\n", n, iters, best / (double(n) * iters));
  }
  for (unsigned n : {32u, 256u}) {
    const unsigned iters = 1000;
    double best = 1e30;
    float sink = 0;
    for (int rep = 0; rep < 7; ++rep) {
      double t0 = now_ns();
      run(n, [&](unsigned tid) {
        float acc = 0, x = float(tid);
        for (unsigned i = 0; i < iters; ++i) acc += fb::simd_sum(x);
        if (tid == 0) sink += acc;
      });
      double t = now_ns() - t0;
      if (t < best) best = t;
    }
    std::printf("simd_sum: n=%u, %u ops: %.2f ns per lane per simd_sum (%g)\n", n, iters, best / (double(n) * iters),
                double(sink) * 0);
  }
  {
    const unsigned n = 256, iters = 1000;
    double best = 1e30;
    for (int rep = 0; rep < 7; ++rep) {
      double t0 = now_ns();
      run(n, [&](unsigned tid) {
        float x = float(tid);
        for (unsigned i = 0; i < iters; ++i) x = fb::simd_shuffle_down(x, 1);
        if (x < -1) std::printf("x");
      });
      double t = now_ns() - t0;
      if (t < best) best = t;
    }
    std::printf("simd_shuffle_down: n=%u, %u ops: %.2f ns per lane per op\n", n, iters, best / (double(n) * iters));
  }
  {
    const unsigned n = 256, iters = 200;
    double best = 1e30;
    for (int rep = 0; rep < 7; ++rep) {
      double t0 = now_ns();
      for (unsigned i = 0; i < iters; ++i) run(n, [](unsigned) {});
      double t = now_ns() - t0;
      if (t < best) best = t;
    }
    std::printf("group start+finish: n=%u: %.2f ns per work-item\n", n, best / (double(n) * iters));
  }
  return 0;
}

__attribute__((noinline)) static int deep(int d) {
  volatile char buf[1024];
  buf[0] = char(d);
  if (d == 0) return buf[0];
  return deep(d - 1) + buf[0];
}

static int overflow() {
  // 64 KiB stacks: 1000 frames of > 1 KiB must hit the guard page.
  volatile int r = 0;
  run(4, [&](unsigned) { r = r + deep(1000); });
  std::printf("no overflow detected (r=%d)\n", r);
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "bench") == 0) return bench();
  if (argc > 1 && std::strcmp(argv[1], "overflow") == 0) return overflow();

  for (unsigned n : {1u, 2u, 7u, 32u, 33u, 256u, 1000u, 1024u}) test_tree_reduction(n);
  for (unsigned n : {2u, 3u, 7u, 32u, 45u, 256u, 1000u, 1024u}) test_early_return(n);
  for (unsigned n : {5u, 32u, 77u, 1024u}) test_staggered_return(n);
  for (unsigned n : {1u, 7u, 32u, 33u, 256u}) test_nested(n);
  for (unsigned n : {2u, 33u, 300u}) test_registers(n);
  for (unsigned n : {32u, 45u, 64u, 1024u}) test_simd(n, never, "full");
  for (unsigned n : {32u, 45u, 100u}) test_simd(n, every_third_at_0, "every-third-returned");
  for (unsigned n : {32u, 45u, 96u, 1000u}) test_simd(n, staggered, "staggered-returns");
  for (unsigned n : {32u, 45u}) test_simd(n, all_but_lane7, "one-lane-left");
  for (unsigned n : {32u, 45u, 256u, 1000u}) test_simd_chain(n);
  test_solo();
  test_pool_reuse();
  test_fp_control();
  test_deadlock();
  test_two_threads();

  int failures = g_failures.load();
  std::printf("%d checks, %d failed\n", g_checks.load(), failures);
  return failures ? 1 : 0;
}
