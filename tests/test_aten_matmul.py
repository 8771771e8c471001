"""Matrix products (mm_out, addmm_out, bmm_out, baddbmm_out, addmv) against numpy, through the C ABI."""
import numpy as np
import pytest

import mps_shim
from mps_shim import Tensor, aten

RNG = np.random.default_rng(7)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def as_dtype(array, dtype):
    """A library tensor of `dtype` ("bfloat16" too) holding `array`'s values."""
    t = Tensor.empty(array.shape, dtype)
    t.copy_(np.ascontiguousarray(array, np.float32))
    return t


def to_float(t):
    out = np.empty(t.shape, np.float32)
    Tensor.from_numpy(out).copy_(t)
    return out


def rounded(array, dtype):
    return to_float(as_dtype(array, dtype))


TOL = {np.float32: 1e-4, np.float16: 2e-2, "bfloat16": 1e-1}


@pytest.mark.parametrize("dtype", [np.float32, np.float16, "bfloat16"])
def test_mm_matches_numpy_for_each_float_dtype(dtype):
    a, b = rounded(rand(33, 17), dtype), rounded(rand(17, 9), dtype)
    out = Tensor.empty((33, 9), dtype)
    aten.mm_out(out, as_dtype(a, dtype), as_dtype(b, dtype))
    np.testing.assert_allclose(to_float(out), a @ b, rtol=TOL[dtype], atol=TOL[dtype])


def test_mm_reads_transposed_sliced_and_offset_views():
    base = rand(40, 50)
    a = base[3:23:2, 5:35].T          # [30, 10], column-major with an offset
    b = rand(10, 8)[:, ::2]           # every other column: no BLAS layout, copied
    out = np.zeros((30, 4), np.float32)
    aten.mm_out(out, Tensor.from_numpy(base).view(a.shape, (1, 100), 3 * 50 + 5), b)
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)


def test_mm_writes_a_strided_output_view_and_nothing_else():
    storage = np.full((6, 10), -7.0, np.float32)
    a, b = rand(6, 3), rand(3, 4)
    out = Tensor.from_numpy(storage).view((4, 6), (1, 10), 2)   # a transposed window of storage
    aten.mm_out(out, b.T.copy(), a.T.copy())
    np.testing.assert_allclose(storage[:, 2:6], a @ b, rtol=1e-5, atol=1e-5)
    assert (storage[:, :2] == -7).all() and (storage[:, 6:] == -7).all()


def test_addmm_broadcasts_self_and_scales():
    bias, m1, m2 = rand(5), rand(4, 3), rand(3, 5)
    out = np.empty((4, 5), np.float32)
    aten.addmm_out(out, bias, m1, m2, 0.5, 2.0)
    np.testing.assert_allclose(out, 0.5 * bias + 2.0 * (m1 @ m2), rtol=1e-5, atol=1e-5)


def test_addmm_with_beta_zero_ignores_nan_in_self_and_out():
    out = np.full((2, 2), np.nan, np.float32)
    m1, m2 = rand(2, 3), rand(3, 2)
    aten.addmm_out(out, np.full((2, 2), np.nan, np.float32), m1, m2, 0.0, 1.0)
    np.testing.assert_allclose(out, m1 @ m2, rtol=1e-5)


def test_addmm_in_place_on_self():
    acc, m1, m2 = rand(3, 3), rand(3, 4), rand(4, 3)
    expected = acc + m1 @ m2
    aten.addmm_out(acc, acc, m1, m2, 1.0, 1.0)
    np.testing.assert_allclose(acc, expected, rtol=1e-5, atol=1e-5)


def test_out_that_aliases_a_factor_gets_the_right_product():
    a = rand(4, 4)
    expected = a @ a
    aten.mm_out(a, a, a.copy())
    np.testing.assert_allclose(a, expected, rtol=1e-5, atol=1e-5)


def test_bmm_and_baddbmm():
    b1, b2 = rand(3, 5, 6), rand(3, 6, 2)
    out = np.empty((3, 5, 2), np.float32)
    aten.bmm_out(out, b1, b2)
    np.testing.assert_allclose(out, b1 @ b2, rtol=1e-5, atol=1e-5)
    bias = rand(1, 5, 1)
    aten.baddbmm_out(out, bias, b1, b2, 2.0, -1.0)
    np.testing.assert_allclose(out, 2 * bias - b1 @ b2, rtol=1e-5, atol=1e-5)


def test_bmm_on_permuted_views():
    q = rand(2, 7, 3)                     # [B, L, E] read as [B, E, L] through strides
    qt = Tensor.from_numpy(q).view((2, 3, 7), (21, 1, 3), 0)
    out = np.empty((2, 7, 7), np.float32)
    aten.bmm_out(out, q, qt)
    np.testing.assert_allclose(out, q @ q.transpose(0, 2, 1), rtol=1e-5, atol=1e-5)


def test_addmv():
    s, m, v = rand(6), rand(6, 4), rand(4)
    r = aten.addmv(s, m, v, 3.0, 0.5)
    np.testing.assert_allclose(r.numpy(), 3 * s + 0.5 * (m @ v), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(aten.addmv(s[:1], m, v[::-1].copy(), 1.0, 1.0).numpy(), s[0] + m @ v[::-1],
                               rtol=1e-5, atol=1e-5)


def test_integer_mm():
    a = RNG.integers(-50, 50, (5, 6)).astype(np.int32)
    b = RNG.integers(-50, 50, (6, 3)).astype(np.int32)
    out = np.empty((5, 3), np.int32)
    aten.mm_out(out, a, b)
    np.testing.assert_array_equal(out, a @ b)


def test_empty_inner_dimension_gives_beta_times_self():
    out = np.empty((2, 3), np.float32)
    aten.mm_out(out, np.empty((2, 0), np.float32), np.empty((0, 3), np.float32))
    np.testing.assert_array_equal(out, 0)
    s = rand(2, 3)
    aten.addmm_out(out, s, np.empty((2, 0), np.float32), np.empty((0, 3), np.float32), 2.0, 1.0)
    np.testing.assert_allclose(out, 2 * s)


def test_out_of_the_wrong_shape_is_resized_like_torch():
    out = Tensor.empty((0,), np.float32)
    a, b = rand(3, 4), rand(4, 2)
    aten.mm_out(out, a, b)
    assert out.shape == (3, 2) and out.strides == (2, 1)
    np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-5, atol=1e-5)


def test_borrowed_out_too_small_cannot_grow():
    with pytest.raises(mps_shim.MpsShimError, match="cannot resize out from \\[2, 2\\] to \\[3, 2\\]"):
        aten.mm_out(np.empty((2, 2), np.float32), rand(3, 4), rand(4, 2))


@pytest.mark.parametrize("call, message", [
    (lambda: aten.mm_out(np.empty((2, 2), np.float32), rand(2, 3), rand(2, 2)),
     r"mm: mat1 and mat2 shapes cannot be multiplied \(2x3 and 2x2\)"),
    (lambda: aten.mm_out(np.empty((2, 2), np.float32), rand(2, 3, 1), rand(3, 2)), r"mat1 must be a 2-D tensor"),
    (lambda: aten.mm_out(np.empty((2, 2), np.float32), rand(2, 3), rand(3, 2, dtype=np.float16)),
     "must have one dtype, got float32 and float16"),
    (lambda: aten.mm_out(np.empty((2, 2), np.float64), rand(2, 3), rand(3, 2)),
     "expected out to have dtype float32, got float64"),
    (lambda: aten.mm_out(np.empty((2, 2), bool), rand(2, 3).astype(bool), rand(3, 2).astype(bool)),
     "mat1 has dtype bool"),
    (lambda: aten.bmm_out(np.empty((2, 2, 2), np.float32), rand(2, 2, 3), rand(3, 3, 2)),
     "same batch size, got 2 and 3"),
    (lambda: aten.addmm_out(np.empty((2, 2), np.float32), rand(3), rand(2, 3), rand(3, 2), 1.0, 1.0),
     r"self of shape \[3\] cannot broadcast to \[2, 2\]"),
    (lambda: aten.addmv(rand(2), rand(2, 3), rand(4), 1.0, 1.0), r"addmv: size mismatch"),
])
def test_bad_arguments_name_the_op_and_the_mismatch(call, message):
    with pytest.raises(mps_shim.MpsShimError, match=message):
        call()


def test_cpu_out_tensor_is_accepted_on_the_host_backend():
    a, b = rand(2, 2), rand(2, 2)
    out = Tensor.from_numpy(np.empty((2, 2), np.float32), device="cpu")
    aten.mm_out(out, a, b)
    np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-5)


def test_runtime_info_names_the_gemm_provider():
    assert mps_shim.runtime_info()["gemm"].startswith(("cblas: ", "builtin loops"))
