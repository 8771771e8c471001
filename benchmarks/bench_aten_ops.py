"""ATen fallback ops against their CPU references, same process.

- mm_out 1024^3 float32 against numpy.matmul (both on BLAS, all cores);
- convolution 64->64, 3x3, 56x56 (batch 1 and 8), and its depthwise form (groups 64), float32
  against torch CPU's conv2d;
- scaled dot-product attention (B=1, H=12, L=128, E=64) against torch CPU's
  scaled_dot_product_attention (which returns no weights; ours also writes them).

Prints best-of-N times and the ratio reference_time / our_time (>= 1 means
faster than the reference). Lines needing torch are skipped without it. Each
side runs all its repeats in a row, then sleeps briefly: torch's OpenMP threads
and OpenBLAS's threads spin after a call and would slow the other side down.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import best_time  # noqa: E402

from mps_shim import aten  # noqa: E402

try:
    import torch
except ImportError:
    torch = None


def timed(fn, repeat):
    t = best_time(fn, repeat)
    time.sleep(0.2)
    return t


def report(name, flops, t_ref, t_ours, ref_name):
    print(f"{name:<34}{ref_name:>8}{t_ref * 1e3:>10.3f}{t_ours * 1e3:>11.3f}"
          f"{flops / t_ours / 1e9:>9.1f}{t_ref / t_ours:>8.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'op':<34}{'ref':>8}{'ref ms':>10}{'ours ms':>11}{'GFLOP/s':>9}{'ratio':>8}")

    n = 1024
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    out, ref = np.empty((n, n), np.float32), np.empty((n, n), np.float32)
    t_ref = timed(lambda: np.matmul(a, b, out=ref), args.repeat)
    t_ours = timed(lambda: aten.mm_out(out, a, b), args.repeat)
    np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-3)
    report("mm_out 1024^3 f32", 2 * n ** 3, t_ref, t_ours, "numpy")

    if torch is None:
        print("conv2d, sdpa: skipped (no torch)")
        return
    F = torch.nn.functional
    for batch, groups in ((1, 1), (8, 1), (1, 64)):
        x = rng.standard_normal((batch, 64, 56, 56)).astype(np.float32)
        w = rng.standard_normal((64, 64 // groups, 3, 3)).astype(np.float32)
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        with torch.no_grad():
            t_ref = timed(lambda: F.conv2d(tx, tw, padding=1, groups=groups), args.repeat)
            expect = F.conv2d(tx, tw, padding=1, groups=groups).numpy()
        t_ours = timed(lambda: aten.convolution(x, w, None, [1], [1], [1], 0, [0], groups), args.repeat)
        got = aten.convolution(x, w, None, [1], [1], [1], 0, [0], groups).numpy()
        np.testing.assert_allclose(got, expect, rtol=1e-3, atol=1e-3)
        name = f"conv2d 64->64 3x3 56x56 N={batch}" + (" dw" if groups > 1 else "")
        report(name, 2 * batch * 64 * (64 // groups) * 9 * 56 * 56, t_ref, t_ours, "torch")

    B, H, L, E = 1, 12, 128, 64
    q, k, v = (rng.standard_normal((B, H, L, E)).astype(np.float32) for _ in range(3))
    tq, tk, tv = (torch.from_numpy(t) for t in (q, k, v))
    with torch.no_grad():
        t_ref = timed(lambda: F.scaled_dot_product_attention(tq, tk, tv), args.repeat)
        expect = F.scaled_dot_product_attention(tq, tk, tv).numpy()
    sdpa = aten._scaled_dot_product_attention_math_for_mps
    t_ours = timed(lambda: sdpa(q, k, v, None, 0.0, 0, None, None), args.repeat)
    np.testing.assert_allclose(sdpa(q, k, v, None, 0.0, 0, None, None)[0].numpy(), expect, rtol=1e-4, atol=1e-4)
    report(f"sdpa B={B} H={H} L={L} E={E}", 4 * B * H * L * L * E, t_ref, t_ours, "torch")


if __name__ == "__main__":
    main()
