"""`mps-shim demo`: runs the bundled example kernels and checks them against numpy."""
import os

import numpy as np

from .shader import compile_shader

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "examples")


def example_source(name):
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
        return f.read()


def _elementwise(rng):
    lib = compile_shader(example_source("elementwise.metal"))
    a, b, c = (rng.standard_normal(100_003).astype(np.float32) for _ in range(3))
    out = np.empty_like(a)
    lib.add(out, a, b)
    yield "add", np.array_equal(out, a + b)
    lib.fma_kernel(out, a, b, c)
    yield "fma", np.allclose(out, a * b + c, rtol=1e-6, atol=1e-6)
    lib.exp_kernel(out, a)
    yield "exp", np.allclose(out, np.exp(a), rtol=2e-7, atol=0)
    y = np.ones(1000, np.float32)
    x = np.arange(1000, dtype=np.float32)
    lib.saxpy(y, x, 0.5, 1000, threads=1000, group_size=96)
    yield "saxpy (partial last threadgroup)", np.array_equal(y, 0.5 * x + 1)


def _templates(rng):
    lib = compile_shader(example_source("templates.metal"))
    xf = rng.uniform(-3, 3, 5000).astype(np.float32)
    out = np.empty_like(xf)
    lib.clamp_scale_float(out, xf, np.float32(-1), np.float32(1))
    yield "template instantiation <float>", np.array_equal(out, np.clip(xf, -1, 1) * 2)
    xi = rng.integers(-10, 10, 5000).astype(np.int32)
    outi = np.empty_like(xi)
    lib.clamp_scale_int(outi, xi, np.int32(-4), np.int32(4))
    yield "template instantiation <int>", np.array_equal(outi, np.clip(xi, -4, 4) * 2)


def _grid2d(rng):
    lib = compile_shader(example_source("grid2d.metal"))
    rows, cols = 37, 53
    m = rng.standard_normal((rows, cols)).astype(np.float32)
    t = np.empty((cols, rows), np.float32)
    lib.transpose(t, m, rows, cols, threads=(cols, rows), group_size=(8, 8))
    yield "2-D transpose, partial edge groups", np.array_equal(t, m.T)
    size_x = np.zeros((rows, cols), np.uint32)
    group_y = np.zeros((rows, cols), np.uint32)
    lib.where_am_i(size_x, group_y, threads=(cols, rows), group_size=(16, 4))
    xs = np.arange(cols)
    expect_size = np.minimum(16, cols - xs // 16 * 16)
    yield "threads_per_threadgroup on edge groups", np.array_equal(size_x, np.broadcast_to(expect_size, (rows, cols)))
    yield "threadgroup_position_in_grid", np.array_equal(group_y, np.repeat(np.arange(rows)[:, None] // 4, cols, 1))


def run_demo(out=print):
    """Runs every example; returns the number of failures."""
    rng = np.random.default_rng(0)
    failures = 0
    for group in (_elementwise, _templates, _grid2d):
        for name, ok in group(rng):
            out(f"{'PASS' if ok else 'FAIL'}  {name}")
            failures += not ok
    return failures
