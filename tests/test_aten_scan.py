"""cumsum and cumprod (aoti_torch_mps_cumsum/_cumprod) against torch CPU eager."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mps_shim import MpsShimError, Tensor, aten  # noqa: E402
from torch_convert import to_shim as _shim, to_torch as _torch  # noqa: E402

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int32, torch.int64, torch.int8,
          torch.uint8, torch.int16, torch.bool]
CODES = {torch.float32: 6, torch.float16: 5, torch.bfloat16: 15, torch.float64: 7, torch.int64: 4, torch.int32: 3}


def _sample(shape, dtype, prod=False):
    g = torch.Generator().manual_seed(0)
    if dtype == torch.bool:
        return torch.rand(shape, generator=g) > 0.5
    if dtype.is_floating_point:
        x = torch.rand(shape, generator=g, dtype=torch.float64) * 0.5 + 0.75 if prod else torch.randn(shape, generator=g, dtype=torch.float64)
        return x.to(dtype)
    return torch.randint(-3 if dtype != torch.uint8 else 0, 4, shape, generator=g).to(dtype)


def _check(op, x, dim, dtype=None, strided=False):
    expect = getattr(torch, op)(x, dim, dtype=dtype)
    got = _torch(getattr(aten, op)(_shim(x, strided), dim, None if dtype is None else CODES[dtype]))
    assert got.dtype == expect.dtype and got.shape == expect.shape
    if expect.dtype.is_floating_point:
        tol = {torch.float16: 2e-3, torch.bfloat16: 1e-2}.get(expect.dtype, 1e-6)
        torch.testing.assert_close(got.double(), expect.double(), rtol=tol, atol=tol, equal_nan=True)
    else:
        assert torch.equal(got, expect)


@pytest.mark.parametrize("op", ["cumsum", "cumprod"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dtypes_and_dims(op, dtype):
    x = _sample((3, 4, 5), dtype, prod=op == "cumprod")
    for dim in (0, 1, 2, -1, -3):
        _check(op, x, dim)
    _check(op, x, 1, strided=True)


@pytest.mark.parametrize("op", ["cumsum", "cumprod"])
def test_dtype_argument(op):
    x = _sample((4, 6), torch.int32, prod=op == "cumprod")
    _check(op, x, 1, dtype=torch.float32)
    _check(op, _sample((4, 6), torch.float32, prod=True), 0, dtype=torch.float64)
    _check(op, _sample((4, 6), torch.float32, prod=True), 1, dtype=torch.float16)
    _check(op, _sample((4, 6), torch.float64, prod=True), 1, dtype=torch.int64)


def test_edge_shapes():
    _check("cumsum", torch.tensor(2.5), 0)
    _check("cumsum", torch.tensor(3, dtype=torch.int32), -1)
    _check("cumprod", torch.zeros(0, 3), 0)
    _check("cumsum", torch.randn(1, 1), 1)
    _check("cumsum", torch.randn(7), 0, strided=True)


def test_large_parallel_and_int_wrap():
    x = torch.randn(64, 300, 70)
    _check("cumsum", x, 1)
    _check("cumsum", x, 2)
    _check("cumsum", x, 0)
    big = torch.full((70,), 3, dtype=torch.int64)
    _check("cumprod", big, 0)  # 3**70 wraps in int64, as torch's does


def test_nan_and_inf_propagate():
    x = torch.tensor([1.0, float("nan"), 2.0, float("inf"), -float("inf")])
    _check("cumsum", x, 0)
    _check("cumprod", x, 0)


def test_errors():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(MpsShimError, match=r"cumsum: dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"):
        aten.cumsum(x, 2, None)
    with pytest.raises(MpsShimError, match=r"cumprod: dimension out of range"):
        aten.cumprod(np.array(1.0, np.float32), 1, None)
    with pytest.raises(MpsShimError, match="cumsum: unsupported dtype code 99"):
        aten.cumsum(x, 0, 99)
