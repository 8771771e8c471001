// A stand-in for a generated kernel module: includes mps_host_fibers.h, built
// like the host engine builds modules (-O3 -march=native -fPIC -shared) and
// dlopen'ed. test_fibers.py links two translation units of this file
// (MODULE_PART 1 and 2) into one module and loads two such modules at once.
#include "mps_host_fibers.h"

#include <chrono>

#ifndef MODULE_PART
#define MODULE_PART 1
#endif
#define FM_CAT2(a, b) a##b
#define FM_CAT(a, b) FM_CAT2(a, b)
#define FM_NAME(x) FM_CAT(x, MODULE_PART)

namespace fb = mps_host::fibers;

namespace {
struct ReduceCtx {
  unsigned n;
  long long sh[1024];
  float simd[1024];
};

void reduce_body(void* p, unsigned tid) {
  ReduceCtx* c = static_cast<ReduceCtx*>(p);
  c->sh[tid] = tid;
  c->simd[tid] = fb::simd_sum(1.0f);
  for (unsigned stride = 1; stride < c->n; stride <<= 1) {
    fb::barrier();
    long long add = (tid % (2 * stride) == 0 && tid + stride < c->n) ? c->sh[tid + stride] : 0;
    fb::barrier();
    c->sh[tid] += add;
  }
}

struct BenchCtx {
  unsigned iters;
  float sink;
};

void barrier_body(void* p, unsigned) {
  BenchCtx* c = static_cast<BenchCtx*>(p);
  for (unsigned i = 0; i < c->iters; ++i) fb::barrier();
}

void simd_body(void* p, unsigned tid) {
  BenchCtx* c = static_cast<BenchCtx*>(p);
  float acc = 0, x = float(tid);
  for (unsigned i = 0; i < c->iters; ++i) acc += fb::simd_sum(x);
  if (tid == 0) c->sink += acc;
}

double best_ns(unsigned n, void (*body)(void*, unsigned), BenchCtx* c) {
  double best = 1e30;
  for (int rep = 0; rep < 7; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    fb::run_group(n, body, c);
    double t = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    if (t < best) best = t;
  }
  return best / (double(n) * c->iters);
}
}  // namespace

// Sum of 0..n-1 through barriers; -1 on a wrong SIMD result, the run_group
// error if it failed. `reps` groups in a row.
extern "C" long long FM_NAME(fm_reduce)(unsigned n, unsigned reps) {
  static thread_local ReduceCtx c;
  long long r = 0;
  for (unsigned k = 0; k < reps; ++k) {
    c.n = n;
    int rc = fb::run_group(n, reduce_body, &c);
    if (rc != fb::kOk) return rc;
    for (unsigned t = 0; t < n; ++t) {
      unsigned lanes = (t / 32 + 1) * 32 <= n ? 32 : n % 32;
      if (c.simd[t] != float(lanes)) return -1000;
    }
    r = c.sh[0];
  }
  return r;
}

// ns per work-item per barrier / per lane per simd_sum, as the engine would see them.
extern "C" double FM_NAME(fm_bench_barrier)(unsigned n, unsigned iters) {
  BenchCtx c{iters, 0};
  return best_ns(n, barrier_body, &c);
}

extern "C" double FM_NAME(fm_bench_simd_sum)(unsigned n, unsigned iters) {
  BenchCtx c{iters, 0};
  return best_ns(n, simd_body, &c);
}
