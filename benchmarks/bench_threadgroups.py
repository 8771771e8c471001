"""Threadgroup execution: barrier cost, a row-sum reduction and a single-kernel softmax.

- barrier cost: a 256-thread group passing 200 barriers, in ns per work-item per barrier;
- row sum of 1024 x 4096 float32 in Inductor's reduction shape (threadgroups of
  {1, R}, simd_sum then threadgroup memory) against numpy's sum(axis=1);
- softmax over the rows in one kernel (max, sum of exp, normalise) against the
  numpy expression it replaces.
Ratios are numpy time / engine time, same run (>= 1: faster than numpy).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import best_time  # noqa: E402

import mps_shim  # noqa: E402

SOURCE = r"""
#include <metal_stdlib>
using namespace metal;

kernel void bare_barriers(device float* out, constant uint& rounds, uint t [[thread_index_in_threadgroup]],
                          uint g [[threadgroup_position_in_grid]]) {
    for (uint r = 0; r < rounds; ++r) threadgroup_barrier(mem_flags::mem_none);
    out[g * 256 + t] = float(t);
}

kernel void barriers(device float* out, constant uint& rounds, uint t [[thread_index_in_threadgroup]],
                     uint g [[threadgroup_position_in_grid]]) {
    threadgroup float cell[256];
    float v = float(t);
    for (uint r = 0; r < rounds; ++r) {
        cell[t] = v;
        threadgroup_barrier(mem_flags::mem_threadgroup);
        v = cell[(t + 1) & 255];
    }
    out[g * 256 + t] = v;
}

// The classic tree reduction: 1 + log2(256) = 9 barriers per group.
kernel void tree_reduce(device float* out, constant float* x, uint t [[thread_index_in_threadgroup]],
                        uint g [[threadgroup_position_in_grid]], uint i [[thread_position_in_grid]]) {
    threadgroup float cell[256];
    cell[t] = x[i];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint s = 128; s > 0; s >>= 1) {
        if (t < s) cell[t] += cell[t + s];
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    if (t == 0) out[g] = cell[0];
}

// Shared by both reductions: simd_sum, then one partial per SIMD-group in threadgroup memory.
template <typename F>
inline float group_reduce(float v, uint t, uint n, threadgroup float* partial, float identity, F combine) {
    v = combine(v);
    if (t % 32 == 0) partial[t / 32] = v;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    float r = t < (n + 31) / 32 ? partial[t] : identity;
    r = combine(r);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (t == 0) partial[0] = r;  // SIMD-group 0 holds the result: share it
    threadgroup_barrier(mem_flags::mem_threadgroup);
    r = partial[0];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    return r;
}

[[max_total_threads_per_threadgroup(1024)]]
kernel void row_sum(device float* out, constant float* x, constant long& cols,
                    uint2 pos [[thread_position_in_grid]], uint2 tid [[thread_position_in_threadgroup]],
                    uint2 size [[threads_per_threadgroup]]) {
    threadgroup float partial[32];
    const long row = pos.x;
    float acc = 0;
    for (long c = tid.y; c < cols; c += size.y) acc += x[row * cols + c];
    const float s = group_reduce(acc, tid.y, size.y, partial, 0.0f, [](float v) { return simd_sum(v); });
    if (tid.y == 0) out[row] = s;
}

[[max_total_threads_per_threadgroup(1024)]]
kernel void softmax(device float* out, constant float* x, constant long& cols,
                    uint2 pos [[thread_position_in_grid]], uint2 tid [[thread_position_in_threadgroup]],
                    uint2 size [[threads_per_threadgroup]]) {
    threadgroup float partial[32];
    const long base = long(pos.x) * cols;
    float m = -INFINITY;
    for (long c = tid.y; c < cols; c += size.y) m = max(m, x[base + c]);
    m = group_reduce(m, tid.y, size.y, partial, -INFINITY, [](float v) { return simd_max(v); });
    float s = 0;
    for (long c = tid.y; c < cols; c += size.y) s += exp(x[base + c] - m);
    s = group_reduce(s, tid.y, size.y, partial, 0.0f, [](float v) { return simd_sum(v); });
    const float inv = 1.0f / s;
    for (long c = tid.y; c < cols; c += size.y) out[base + c] = exp(x[base + c] - m) * inv;
}
"""


def main():
    lib = mps_shim.compile_shader(SOURCE)
    groups, rounds = 64, 200
    out = np.zeros(groups * 256, np.float32)
    threads = mps_shim.runtime_info()["threads"]
    for name in ("bare_barriers", "barriers"):
        kernel = getattr(lib, name)
        t = best_time(lambda: kernel(out, np.uint32(rounds), threads=groups * 256, group_size=256), 5)
        what = "barrier alone" if name == "bare_barriers" else "barrier + threadgroup-memory exchange"
        print(f"{what}: {t / (groups * 256 * rounds) * 1e9 * threads:.2f} ns per work-item per barrier "
              f"(CPU time: wall time x {threads} worker threads; "
              "MPS_SHIM_NUM_THREADS=1 gives the single-core figure)")

    groups = 4096
    x = np.random.default_rng(1).standard_normal(groups * 256).astype(np.float32)
    sums = np.zeros(groups, np.float32)
    t = best_time(lambda: lib.tree_reduce(sums, x, threads=groups * 256, group_size=256), 7)
    np.testing.assert_allclose(sums, x.reshape(groups, 256).sum(1), rtol=1e-4, atol=1e-4)
    print(f"256-thread tree reduction: {t / (groups * 256 * 9) * 1e9 * threads:.2f} ns per work-item per barrier "
          f"(all work included; CPU time)")

    rows, cols = 1024, 4096
    x = np.random.default_rng(0).standard_normal((rows, cols)).astype(np.float32)
    sums = np.zeros(rows, np.float32)
    group = 256
    t_np = best_time(lambda: x.sum(axis=1), 7)
    t_en = best_time(lambda: lib.row_sum(sums, x, cols, threads=(rows, group), group_size=(1, group)), 7)
    np.testing.assert_allclose(sums, x.sum(axis=1), rtol=1e-4, atol=1e-3)
    print(f"row sum {rows}x{cols}: numpy {t_np * 1e3:.2f} ms, engine {t_en * 1e3:.2f} ms, ratio {t_np / t_en:.2f}x")

    def numpy_softmax():
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    y = np.zeros_like(x)
    t_np = best_time(numpy_softmax, 5)
    t_en = best_time(lambda: lib.softmax(y, x, cols, threads=(rows, group), group_size=(1, group)), 5)
    np.testing.assert_allclose(y, numpy_softmax(), rtol=1e-5, atol=1e-8)
    print(f"softmax {rows}x{cols}: numpy {t_np * 1e3:.2f} ms, engine {t_en * 1e3:.2f} ms, ratio {t_np / t_en:.2f}x")


if __name__ == "__main__":
    main()
