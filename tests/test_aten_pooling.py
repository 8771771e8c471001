"""avg_pool2d, max_pool2d_with_indices and _adaptive_avg_pool2d against torch CPU eager."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mps_shim import MpsShimError, Tensor, aten  # noqa: E402
from torch_convert import to_shim as _shim, to_torch as _torch  # noqa: E402

TOL = {torch.float16: 2e-3, torch.bfloat16: 1e-2, torch.float32: 1e-6, torch.float64: 1e-12}
# (kernel, stride, padding, dilation, ceil_mode)
WINDOWS = [([2, 2], [], [0, 0], [1, 1], False), ([3], [2], [1], [1], False), ([3, 2], [2, 1], [1, 0], [1, 1], True),
           ([3, 3], [2, 2], [1, 1], [2, 1], True), ([1, 1], [1, 1], [0, 0], [1, 1], False), ([2, 3], [3, 2], [1, 1], [1, 2], True)]


def _close(got, expect):
    assert got.dtype == expect.dtype and got.shape == expect.shape
    t = TOL.get(expect.dtype, 0)
    torch.testing.assert_close(got.double(), expect.double(), rtol=t, atol=t, equal_nan=True)


@pytest.mark.parametrize("w", range(len(WINDOWS)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_max_pool2d(w, dtype):
    k, s, p, d, ceil = WINDOWS[w]
    x = torch.randn(2, 3, 9, 8).to(dtype)
    x[0, 0, 1, 1] = float("nan")
    x[1, 2, 4:, :] = -float("inf")
    ev, ei = torch.ops.aten.max_pool2d_with_indices(x, k, s, p, d, ceil)
    for strided in (False, True):
        v, i = aten.max_pool2d_with_indices(_shim(x, strided), k, s, p, d, int(ceil))
        _close(_torch(v), ev)
        assert torch.equal(_torch(i), ei)
    v, i = aten.max_pool2d_with_indices(_shim(x[0]), k, s, p, d, int(ceil))  # 3-D input
    _close(_torch(v), ev[0])
    assert torch.equal(_torch(i), ei[0])


@pytest.mark.parametrize("w", range(len(WINDOWS)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_avg_pool2d(w, dtype):
    k, s, p, _, ceil = WINDOWS[w]
    x = torch.randn(2, 3, 9, 8).to(dtype)
    for count_include_pad in (True, False):
        for divisor in (None, 3):
            expect = torch.ops.aten.avg_pool2d(x, k, s, p, ceil, count_include_pad, divisor)
            got = _torch(aten.avg_pool2d(_shim(x, True), k, s, p, int(ceil), int(count_include_pad), divisor))
            _close(got, expect)


def test_avg_pool2d_int64():
    x = torch.randint(-50, 50, (1, 2, 6, 6))
    expect = torch.ops.aten.avg_pool2d(x, [3, 3], [2, 2], [1, 1], False, False, None)
    assert torch.equal(_torch(aten.avg_pool2d(_shim(x), [3, 3], [2, 2], [1, 1], 0, 0, None)), expect)


@pytest.mark.parametrize("out", [[1, 1], [3, 3], [4, 5], [9, 8], [5, 16], [0, 2]])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_adaptive_avg_pool2d(out, dtype):
    x = torch.randn(2, 3, 9, 8).to(dtype)
    expect = torch.ops.aten._adaptive_avg_pool2d(x, out)
    _close(_torch(aten._adaptive_avg_pool2d(_shim(x, True), out)), expect)
    _close(_torch(aten._adaptive_avg_pool2d(_shim(x[1]), out)), expect[1])


def test_channels_last_layout_kept():
    x = torch.randn(2, 4, 8, 8).contiguous(memory_format=torch.channels_last)
    s = _shim(x.permute(0, 2, 3, 1).contiguous()).view(x.shape, x.stride())
    for got, expect in [(aten._adaptive_avg_pool2d(s, [2, 2]), torch.ops.aten._adaptive_avg_pool2d(x, [2, 2])),
                        (aten.avg_pool2d(s, [2, 2], [], [0, 0], 0, 1, None), torch.ops.aten.avg_pool2d(x, [2, 2])),
                        (aten.max_pool2d_with_indices(s, [2, 2], [], [0, 0], [1, 1], 0)[1],
                         torch.ops.aten.max_pool2d_with_indices(x, [2, 2])[1])]:
        assert got.strides == expect.stride()
        if expect.is_floating_point():
            _close(_torch(got), expect)
        else:
            assert torch.equal(_torch(got), expect)


def test_large_parallel():
    x = torch.randn(8, 64, 56, 56)
    ev, ei = torch.ops.aten.max_pool2d_with_indices(x, [3, 3], [2, 2], [1, 1])
    v, i = aten.max_pool2d_with_indices(_shim(x), [3, 3], [2, 2], [1, 1], [1, 1], 0)
    _close(_torch(v), ev)
    assert torch.equal(_torch(i), ei)


def test_errors():
    x = np.zeros((1, 2, 5, 5), np.float32)
    with pytest.raises(MpsShimError, match=r"max_pool2d_with_indices: pad should be at most half of effective kernel size, but got pad=\(2, 2\), kernel_size=\(3, 3\)"):
        aten.max_pool2d_with_indices(x, [3, 3], [1, 1], [2, 2], [1, 1], 0)
    with pytest.raises(MpsShimError, match=r"avg_pool2d: expected 3D or 4D \(batch mode\) tensor for input, got shape \[5, 5\]"):
        aten.avg_pool2d(np.zeros((5, 5), np.float32), [2], [], [0], 0, 1, None)
    with pytest.raises(MpsShimError, match=r"avg_pool2d: given input size \[1, 2, 5, 5\], the calculated output size \(0x0\) is too small"):
        aten.avg_pool2d(x, [6, 6], [1, 1], [0, 0], 0, 1, None)
    with pytest.raises(MpsShimError, match="avg_pool2d: divisor must be not zero"):
        aten.avg_pool2d(x, [2], [], [0], 0, 1, 0)
    with pytest.raises(MpsShimError, match="kernel_size must either be a single int, or a tuple of two ints"):
        aten.avg_pool2d(x, [2, 2, 2], [], [0], 0, 1, None)
    with pytest.raises(MpsShimError, match="stride should be greater than zero"):
        aten.max_pool2d_with_indices(x, [2, 2], [0, 1], [0, 0], [1, 1], 0)
    with pytest.raises(MpsShimError, match="adaptive_avg_pool2d: output_size must be 2, got 1 values"):
        aten._adaptive_avg_pool2d(x, [2])
    with pytest.raises(MpsShimError, match="self must be a floating tensor"):
        aten._adaptive_avg_pool2d(np.zeros((1, 2, 5, 5), np.bool_), [2, 2])
