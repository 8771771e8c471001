"""Element-wise float32 kernels on 16M elements against numpy, same process.

Prints, per operation, the time and effective bandwidth of numpy and of the
host engine, and the ratio numpy_time / engine_time (>= 1 means faster than
numpy). numpy runs single-threaded; the engine uses all cores
(MPS_SHIM_NUM_THREADS overrides).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import best_time  # noqa: E402

import mps_shim  # noqa: E402

SOURCE = """
#include <metal_stdlib>
using namespace metal;
kernel void add(device float* out, constant float* a, constant float* b, uint i [[thread_position_in_grid]]) {
    out[i] = a[i] + b[i];
}
kernel void fma3(device float* out, constant float* a, constant float* b, constant float* c,
                 uint i [[thread_position_in_grid]]) {
    out[i] = a[i] * b[i] + c[i];
}
kernel void exp1(device float* out, constant float* a, uint i [[thread_position_in_grid]]) {
    out[i] = exp(a[i]);
}
kernel void add4(device float4* out, constant float4* a, constant float4* b, uint i [[thread_position_in_grid]]) {
    out[i] = a[i] + b[i];
}
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=16 * 1024 * 1024)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    n = args.n
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
    out, ref = np.empty_like(a), np.empty_like(a)
    lib = mps_shim.compile_shader(SOURCE)
    cases = [
        ("add", 3, lambda: np.add(a, b, out=ref), lambda: lib.add(out, a, b), lambda: a + b),
        ("a*b+c", 4, lambda: np.add(np.multiply(a, b, out=ref), c, out=ref), lambda: lib.fma3(out, a, b, c),
         lambda: a * b + c),
        ("exp", 2, lambda: np.exp(a, out=ref), lambda: lib.exp1(out, a), lambda: np.exp(a)),
        ("add (float4)", 3, lambda: np.add(a, b, out=ref), lambda: lib.add4(out, a, b, threads=n // 4),
         lambda: a + b),
    ]
    info = mps_shim.runtime_info()
    print(f"element-wise float32, n={n}, engine threads={info['threads']}, numpy single-threaded")
    print(f"{'op':<14}{'numpy ms':>10}{'GB/s':>8}{'engine ms':>11}{'GB/s':>8}{'ratio':>8}")
    for name, arrays, ref_fn, eng_fn, expect in cases:
        t_np = best_time(ref_fn, args.repeat)
        t_en = best_time(eng_fn, args.repeat)
        np.testing.assert_allclose(out, expect(), rtol=2e-6, atol=1e-6)
        gb = arrays * n * 4 / 1e9
        print(f"{name:<14}{t_np * 1e3:>10.2f}{gb / t_np:>8.1f}{t_en * 1e3:>11.2f}{gb / t_en:>8.1f}{t_np / t_en:>8.2f}x")


if __name__ == "__main__":
    main()
