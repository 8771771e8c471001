"""Checked mode's cost: Inductor's reduction kernels (layer norm, RMS norm, int64 row sum) and a
pointwise kernel in Inductor's form, each timed normal and checked (mps_shim.checked(): every
kernel on fibers with the sanitizers). Prints both times and the factor checked / normal; the
issue's budget is 30x. Checked kernels must report nothing here (they are correct).

    python benchmarks/bench_checked.py
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import best_time  # noqa: E402
from _inductor_kernels import Unavailable, bind_args, inductor_kernels  # noqa: E402

import mps_shim  # noqa: E402

POINTWISE = r"""
#include <metal_stdlib>
kernel void generated_kernel(device float* out_ptr0, constant float* in_ptr0, constant float* in_ptr1,
                             uint xindex [[thread_position_in_grid]]) {
    int x0 = xindex;
    auto tmp0 = in_ptr0[x0];
    auto tmp1 = in_ptr1[x0];
    auto tmp2 = tmp0 * tmp1 + metal::exp(tmp0);
    out_ptr0[x0] = static_cast<float>(tmp2);
}
"""


def time_both(label, source, kernel_name, make_call, check):
    times = {}
    for mode in ("normal", "checked"):
        if mode == "checked":
            with mps_shim.checked() as c:
                lib = mps_shim.compile_shader(source)
            kernel = getattr(lib, kernel_name)
        else:
            lib = mps_shim.compile_shader(source)
            kernel = getattr(lib, kernel_name)
        call = make_call(kernel)
        call()
        check()
        times[mode] = best_time(call, 5, budget=5.0)
        if mode == "checked":
            assert mps_shim.take_check_reports() == [], f"{label}: checked mode reported problems"
    factor = times["checked"] / times["normal"]
    print(f"{label}: normal {times['normal'] * 1e3:.2f} ms, checked {times['checked'] * 1e3:.2f} ms, "
          f"factor {factor:.1f}x")
    return factor


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1 << 22, help="pointwise elements")
    args = parser.parse_args()
    rows, cols = 1024, 4096  # the shape the Inductor kernels were exported for (_inductor_kernels.py)
    rng = np.random.default_rng(0)
    factors = {}

    a, b = (rng.standard_normal(args.n).astype(np.float32) for _ in range(2))
    out = np.zeros_like(a)
    factors["pointwise"] = time_both(
        f"Inductor-style pointwise a*b+exp(a), n={args.n}", POINTWISE, "generated_kernel",
        lambda k: (lambda: k(out, a, b)),
        lambda: np.testing.assert_allclose(out, a * b + np.exp(a), rtol=1e-5, atol=1e-5))

    x = rng.standard_normal((rows, cols)).astype(np.float32)
    w, bias = (rng.standard_normal(cols).astype(np.float32) for _ in range(2))
    xi = rng.integers(-1000, 1000, (rows, cols), dtype=np.int64)
    cases = {
        "sum_int64": (xi, np.zeros(rows, np.int64), lambda: xi.sum(axis=1), {}),
        "layer_norm": (x, np.zeros_like(x), lambda: ((x - x.mean(1, keepdims=True)) /
                       np.sqrt(x.var(1, keepdims=True) + 1e-5)) * w + bias, {"weight": w, "bias": bias}),
        "rms_norm": (x, np.zeros_like(x), lambda: x / np.sqrt((x * x).mean(1, keepdims=True) +
                     float(np.finfo(np.float32).eps)) * w, {"weight": w}),
    }
    specs = inductor_kernels(list(cases))
    for case, (x_in, result, reference, extra) in cases.items():
        spec = specs[case]
        if isinstance(spec, Unavailable) or len(spec["launches"]) != 1:
            print(f"{case}: skipped ({spec if isinstance(spec, Exception) else 'more than one launch'})")
            continue
        launch = spec["launches"][0]
        call_args = bind_args(launch, {("input", 0): x_in, ("output", 0): result, **extra})
        threads = tuple(launch["threads"])
        group = launch["group_size"] and tuple(launch["group_size"])
        expected = reference()

        def check(result=result, expected=expected):
            if result.dtype.kind == "i":
                np.testing.assert_array_equal(result, expected)
            else:
                np.testing.assert_allclose(result, expected, rtol=1e-3, atol=1e-3)

        factors[case] = time_both(
            f"Inductor {case} {rows}x{cols}", spec["libraries"][launch["lib"]], launch["kernel"],
            lambda k, call_args=call_args, threads=threads, group=group: (
                lambda: k(*call_args, threads=threads, group_size=group)), check)
    print("largest factor: %.1fx (budget 30x)" % max(factors.values()))


if __name__ == "__main__":
    main()
