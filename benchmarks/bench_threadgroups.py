"""Threadgroup execution: barrier cost, a row-sum reduction and a single-kernel softmax,
each on lane loops (the default) and on fibers (MPS_SHIM_LANE_LOOPS=0).

- barrier cost: a 256-thread group passing 200 barriers, in ns per work-item per barrier;
- row sum of 1024 x 4096 float32 in Inductor's reduction shape (threadgroups of
  {1, R}, simd_sum then threadgroup memory) against numpy's sum(axis=1);
- softmax over the rows in one kernel (max, sum of exp, normalise) against the
  numpy expression it replaces;
- one SIMD reduction statement (`v = simd_sum(v) * c`, SIMD_STATEMENTS of them in a
  row per thread, minus the same kernel without them), in ns CPU time per thread
  per statement;
- Inductor's own kernels, generated at run time by exporting small torch modules
  with mps_shim.aoti (_inductor_kernels; needs torch 2.13, cached after the first
  run): the int64 row sum (x.sum(1), c10 threadgroup_sum on long), layer norm and
  RMS norm over 1024 x 4096 with affine weights, each dispatched as the generated
  wrapper does and checked against numpy, timed against the numpy equivalent.
Ratios are numpy time / engine time, same run (>= 1: faster than numpy).
Unless MPS_SHIM_NUM_THREADS is set, the script then runs itself again with
MPS_SHIM_NUM_THREADS=1 (the executor reads it when the library loads) and prints
the one-core figures under their own heading.
"""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import best_time  # noqa: E402
from _inductor_kernels import Unavailable, bind_args, inductor_kernels  # noqa: E402

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


# Inductor's reduction kernel for x.sum(1) on a 1024 x 4096 float32 tensor, with
# PyTorch's own c10/metal/reduction_utils.h (needs torch for the header).
INDUCTOR_ROW_SUM = r"""
[[max_total_threads_per_threadgroup(1024)]]
kernel void inductor_row_sum(device float* out_ptr0, constant float* in_ptr0,
                             uint2 thread_pos [[thread_position_in_grid]],
                             uint2 group_pos [[thread_position_in_threadgroup]]) {
    auto xindex = thread_pos.x;
    auto r0_index = thread_pos.y;
    int x0 = xindex;
    threadgroup float tmp_acc_0[32];
    float tmp_acc_1 = 0;
    for (auto r0_0_cnt = 0; r0_0_cnt < 4; ++r0_0_cnt) {
        int r0_0 = 4 * r0_index + r0_0_cnt;
        if (r0_0 >= 4096) break;
        auto tmp0 = in_ptr0[r0_0 + 4096 * x0];
        tmp_acc_1 += tmp0;
    }
    auto tmp1 = c10::metal::threadgroup_sum(tmp_acc_0, tmp_acc_1, r0_index * 1, 1024);
    if (r0_index == 0) out_ptr0[x0] = static_cast<float>(tmp1);
}
"""


# SIMD reductions in a row: each statement depends on the one before, so none can be dropped or
# merged. 16 statements, not 64: the lane-loop translation's compile time grows faster than
# linearly with SIMD statements in one block (8: ~1.4 s, 16: ~4 s, 32: ~25 s, 64: ~80 s cold).
SIMD_STATEMENTS = 16
SIMD_SOURCE = r"""
#include <metal_stdlib>
using namespace metal;

kernel void simd_statements(device float* out, constant float* x, uint i [[thread_position_in_grid]]) {
    float v = x[i];
%s
    out[i] = v;
}

kernel void simd_baseline(device float* out, constant float* x, uint i [[thread_position_in_grid]]) {
    float v = x[i];
    out[i] = v;
}
""" % "\n".join(["    v = simd_sum(v) * 0.03125f;"] * SIMD_STATEMENTS)


def compile_both(source):
    """The library as lane loops (the default) and as fibers (MPS_SHIM_LANE_LOOPS=0)."""
    lanes = mps_shim.compile_shader(source)
    os.environ["MPS_SHIM_LANE_LOOPS"] = "0"
    try:
        fibers = mps_shim.compile_shader(source)
    finally:
        del os.environ["MPS_SHIM_LANE_LOOPS"]
    return {"lane loops": lanes, "fibers": fibers}


def c10_header_source():
    try:
        from pathlib import Path

        import torch
        from torch.utils._cpp_embed_headers import _embed_headers
    except ImportError:
        return None
    include = Path(torch.__file__).parent / "include"
    if not (include / "c10" / "metal" / "reduction_utils.h").exists():
        return None
    return _embed_headers(["#include <c10/metal/reduction_utils.h>\n"], [include], set())


def error_line(exc):
    return f"error: {' '.join(str(exc).split())}"


def inductor_lines(x):
    """The Inductor kernels: int64 row sum, layer norm, RMS norm (compiled from the exported wrapper's source)."""
    rows, cols = x.shape
    labels = {"sum_int64": f"Inductor int64 row sum (c10 threadgroup_sum on long) {rows}x{cols}",
              "layer_norm": f"Inductor layer norm (affine) {rows}x{cols}",
              "rms_norm": f"Inductor RMS norm (affine) {rows}x{cols}"}
    specs = inductor_kernels(list(labels))
    rng = np.random.default_rng(2)
    w, b = (rng.standard_normal(cols).astype(np.float32) for _ in range(2))
    xi = np.random.default_rng(3).integers(-1000, 1000, (rows, cols), dtype=np.int64)
    ln_eps, rms_eps = 1e-5, float(np.finfo(np.float32).eps)  # nn.LayerNorm's default; RMSNorm's eps=None

    def numpy_layer_norm():
        xc = x - x.mean(axis=1, keepdims=True)
        return xc / np.sqrt((xc * xc).mean(axis=1, keepdims=True) + ln_eps) * w + b

    def numpy_rms_norm():
        return x / np.sqrt((x * x).mean(axis=1, keepdims=True) + rms_eps) * w

    cases = {  # input, output, reference (the numpy equivalent), constants by the wrapper's names
        "sum_int64": (xi, np.zeros(rows, np.int64), lambda: xi.sum(axis=1), {}),
        "layer_norm": (x, np.zeros_like(x), numpy_layer_norm, {"weight": w, "bias": b}),
        "rms_norm": (x, np.zeros_like(x), numpy_rms_norm, {"weight": w}),
    }
    for case, label in labels.items():
        spec = specs[case]
        if isinstance(spec, Unavailable):
            print(f"{label}: skipped ({spec})")
            continue
        x_in, out, reference, extra = cases[case]
        if len(spec["launches"]) != 1:
            print(f"{label}: error: the exported model launches {len(spec['launches'])} kernels, expected one")
            continue
        launch = spec["launches"][0]
        try:
            args = bind_args(launch, {("input", 0): x_in, ("output", 0): out, **extra})
        except (KeyError, ValueError) as exc:
            print(f"{label}: error: cannot bind the wrapper's arguments ({exc!r}): {launch['args']}")
            continue
        threads, group = tuple(launch["threads"]), launch["group_size"] and tuple(launch["group_size"])
        shape = f"groups of {'x'.join(map(str, group))}" if group else "default groups"
        expected = reference()
        t_np = best_time(reference, 5)
        try:
            libs = compile_both(spec["libraries"][launch["lib"]])
        except mps_shim.MpsShimError as exc:
            print(f"{label} ({shape}): {error_line(exc)}")
            continue
        for engine, lib in libs.items():
            kernel = getattr(lib, launch["kernel"])
            out.fill(0)
            try:
                t_en = best_time(lambda: kernel(*args, threads=threads, group_size=group), 5, budget=1.0)
            except mps_shim.MpsShimError as exc:
                print(f"[{engine}] {label} ({shape}): {error_line(exc)}")
                continue
            if out.dtype.kind == "i":
                np.testing.assert_array_equal(out, expected)
            else:
                np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
            print(f"[{engine}] {label} ({shape}): numpy {t_np * 1e3:.2f} ms, engine {t_en * 1e3:.2f} ms, "
                  f"ratio {t_np / t_en:.2f}x")


def one_core_rerun():
    """The same figures on one worker thread: MPS_SHIM_NUM_THREADS is read when the library loads."""
    if os.environ.get("MPS_SHIM_NUM_THREADS") or mps_shim.runtime_info()["threads"] == 1:
        return
    print("\n--- one core (MPS_SHIM_NUM_THREADS=1, same script in a subprocess) ---", flush=True)
    env = dict(os.environ, MPS_SHIM_NUM_THREADS="1")
    code = subprocess.call([sys.executable, os.path.abspath(__file__)], env=env)
    if code != 0:
        print(f"one-core run: error: exit status {code}")


def main():
    libs = compile_both(SOURCE)
    threads = mps_shim.runtime_info()["threads"]
    print(f"CPU time = wall time x {threads} worker threads (MPS_SHIM_NUM_THREADS=1 gives the single-core figure)")
    groups, rounds = 64, 200
    out = np.zeros(groups * 256, np.float32)
    for engine, lib in libs.items():
        for name in ("bare_barriers", "barriers"):
            kernel = getattr(lib, name)
            t = best_time(lambda: kernel(out, np.uint32(rounds), threads=groups * 256, group_size=256), 5)
            what = "barrier alone" if name == "bare_barriers" else "barrier + threadgroup-memory exchange"
            print(f"[{engine}] {what}: {t / (groups * 256 * rounds) * 1e9 * threads:.2f} ns CPU time "
                  "per work-item per barrier")

    simd_libs = compile_both(SIMD_SOURCE)
    groups = 256
    x = np.random.default_rng(4).standard_normal(groups * 256).astype(np.float32)
    out = np.zeros_like(x)
    for engine, lib in simd_libs.items():
        t_base = best_time(lambda: lib.simd_baseline(out, x, threads=groups * 256, group_size=256), 7)
        t = best_time(lambda: lib.simd_statements(out, x, threads=groups * 256, group_size=256), 7)
        np.testing.assert_allclose(out, np.repeat(x.reshape(-1, 32).mean(1), 32), rtol=1e-4, atol=1e-5)
        print(f"[{engine}] SIMD reduction statement (simd_sum, {SIMD_STATEMENTS} in a row): "
              f"{(t - t_base) / (groups * 256 * SIMD_STATEMENTS) * 1e9 * threads:.2f} ns CPU time per thread "
              "per statement")

    groups = 4096
    x = np.random.default_rng(1).standard_normal(groups * 256).astype(np.float32)
    sums = np.zeros(groups, np.float32)
    for engine, lib in libs.items():
        t = best_time(lambda: lib.tree_reduce(sums, x, threads=groups * 256, group_size=256), 7)
        np.testing.assert_allclose(sums, x.reshape(groups, 256).sum(1), rtol=1e-4, atol=1e-4)
        print(f"[{engine}] 256-thread tree reduction: {t / (groups * 256 * 9) * 1e9 * threads:.2f} ns CPU time "
              "per work-item per barrier (all work included)")

    rows, cols = 1024, 4096
    x = np.random.default_rng(0).standard_normal((rows, cols)).astype(np.float32)
    sums = np.zeros(rows, np.float32)
    group = 256
    t_np = best_time(lambda: x.sum(axis=1), 7)
    for engine, lib in libs.items():
        t_en = best_time(lambda: lib.row_sum(sums, x, cols, threads=(rows, group), group_size=(1, group)), 7)
        np.testing.assert_allclose(sums, x.sum(axis=1), rtol=1e-4, atol=1e-3)
        print(f"[{engine}] row sum {rows}x{cols}: numpy {t_np * 1e3:.2f} ms, engine {t_en * 1e3:.2f} ms, "
              f"ratio {t_np / t_en:.2f}x")

    header = c10_header_source()
    if header is None:
        print("Inductor row sum: skipped (needs torch 2.13's c10/metal headers: pip install torch==2.13.0)")
    else:
        for engine, lib in compile_both(header + INDUCTOR_ROW_SUM).items():
            t_en = best_time(lambda: lib.inductor_row_sum(sums, x, threads=(rows, 1024), group_size=(1, 1024)), 7)
            np.testing.assert_allclose(sums, x.sum(axis=1), rtol=1e-4, atol=1e-3)
            print(f"[{engine}] Inductor row sum (c10 threadgroup_sum, groups of 1024) {rows}x{cols}: "
                  f"numpy {t_np * 1e3:.2f} ms, engine {t_en * 1e3:.2f} ms, ratio {t_np / t_en:.2f}x")

    def numpy_softmax():
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    y = np.zeros_like(x)
    t_np = best_time(numpy_softmax, 5)
    for engine, lib in libs.items():
        t_en = best_time(lambda: lib.softmax(y, x, cols, threads=(rows, group), group_size=(1, group)), 5)
        np.testing.assert_allclose(y, numpy_softmax(), rtol=1e-5, atol=1e-8)
        print(f"[{engine}] softmax {rows}x{cols}: numpy {t_np * 1e3:.2f} ms, engine {t_en * 1e3:.2f} ms, "
              f"ratio {t_np / t_en:.2f}x")

    inductor_lines(x)
    sys.stdout.flush()
    one_core_rerun()


if __name__ == "__main__":
    main()
