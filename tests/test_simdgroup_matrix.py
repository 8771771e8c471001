"""SIMD-group matrices (<metal_simdgroup_matrix>), as ggml's mul_mm and MLX's steel GEMM use them."""
import numpy as np
import pytest

import mps_shim

SOURCE = r"""
#include <metal_stdlib>
#include <metal_simdgroup_matrix>
using namespace metal;

// C = A * B, one 8x8 tile per SIMD-group, over K in steps of 8 (ggml's shape).
kernel void tiled(device const float* a, device const float* b, device float* c, constant uint& n,
                  uint2 tg [[threadgroup_position_in_grid]]) {
    simdgroup_float8x8 acc = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
    const uint row = tg.y * 8, col = tg.x * 8;
    for (uint k = 0; k < n; k += 8) {
        simdgroup_float8x8 A, B;
        simdgroup_load(A, a, n, ulong2(k, row));
        simdgroup_load(B, b, n, ulong2(col, k));
        simdgroup_multiply_accumulate(acc, A, B, acc);
    }
    simdgroup_store(acc, c, n, ulong2(col, row));
}

// Half inputs, a transposed load, a float product.
kernel void transposed(device const half* a, device const half* b, device float* c) {
    simdgroup_half8x8 A, B;
    simdgroup_load(A, a, 8, ulong2(0), true);
    simdgroup_load(B, b);
    simdgroup_float8x8 C;
    simdgroup_multiply(C, A, B);
    simdgroup_store(C, c);
}

// MLX's steel fragments: each lane fills its two elements through thread_elements(), at the
// coordinates MLX computes for lane l, then D = A * B + C and each lane stores its own two.
kernel void by_lanes(device const float* a, device const float* b, device const float* c, device float* d,
                     ushort l [[thread_index_in_simdgroup]]) {
    const short qid = l / 4;
    const short fm = (qid & 4) + ((l / 2) % 4);
    const short fn = (qid & 2) * 2 + (l % 2) * 2;
    simdgroup_float8x8 A, B, C, D;
    A.thread_elements() = float2(a[fm * 8 + fn], a[fm * 8 + fn + 1]);
    B.thread_elements() = float2(b[fm * 8 + fn], b[fm * 8 + fn + 1]);
    C.thread_elements() = float2(c[fm * 8 + fn], c[fm * 8 + fn + 1]);
    simdgroup_multiply_accumulate(D, A, B, C);
    d[fm * 8 + fn] = D.thread_elements()[0];
    d[fm * 8 + fn + 1] = D.thread_elements()[1];
}
"""


@pytest.fixture(scope="module")
def lib():
    return mps_shim.compile_shader(SOURCE)


@pytest.mark.parametrize("n", [8, 32])
def test_tiled_product(lib, n):
    rng = np.random.default_rng(n)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    c = np.zeros((n, n), np.float32)
    lib.tiled(a, b, c, np.uint32(n), threads=(n // 8 * 32, n // 8), group_size=(32, 1))
    assert np.allclose(c, a.astype(np.float64) @ b, atol=1e-4)


def test_half_inputs_and_a_transposed_load(lib):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((8, 8)).astype(np.float16)
    b = rng.standard_normal((8, 8)).astype(np.float16)
    c = np.zeros((8, 8), np.float32)
    lib.transposed(a, b, c, threads=32, group_size=32)
    assert np.allclose(c, a.T.astype(np.float32) @ b.astype(np.float32), atol=1e-5)


def test_thread_elements_follow_the_gpu_layout(lib):
    rng = np.random.default_rng(2)
    a, b, c = (rng.integers(-4, 5, (8, 8)).astype(np.float32) for _ in range(3))
    d = np.zeros((8, 8), np.float32)
    lib.by_lanes(a, b, c, d, threads=32, group_size=32)
    assert np.array_equal(d, a @ b + c)


def test_matrices_run_on_fibers(lib):
    info = lib.library.kernels["tiled"]
    if mps_shim.backend_name() != "host":
        pytest.skip("the host engine's choice of fibers; the cuda backend runs warps")
    assert info["execution"] == "fibers" and "SIMD-group matrices" in info["execution_note"]
