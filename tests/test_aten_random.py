"""randint_low_out (aoti_torch_mps_randint_low_out) and mps_shim_manual_seed."""
import numpy as np
import pytest

from mps_shim import MpsShimError, Tensor, aten


def _draw(low, high, size, dtype=np.int64):
    out = Tensor.empty((0,), dtype)
    aten.randint_low_out(out, low, high, size)
    return np.array(out.numpy())


def test_range_shape_and_uniformity():
    aten.manual_seed(1)
    x = _draw(-5, 7, [200, 500])
    assert x.shape == (200, 500) and x.dtype == np.int64
    assert x.min() == -5 and x.max() == 6
    counts = np.bincount(x.ravel() + 5, minlength=12)
    expected = x.size / 12
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))  # about 5 sigma
    # neighbouring draws are not correlated
    assert abs(np.corrcoef(x.ravel()[:-1], x.ravel()[1:])[0, 1]) < 0.01


def test_seed_repeats_and_stream_advances():
    aten.manual_seed(1234)
    a, b = _draw(0, 1 << 40, [1000]), _draw(0, 1 << 40, [1000])
    aten.manual_seed(1234)
    c = _draw(0, 1 << 40, [2000])
    assert np.array_equal(np.concatenate([a, b]), c)  # counter-based: one call of 2000 == two of 1000
    assert not np.array_equal(a, b)
    aten.manual_seed(1235)
    assert not np.array_equal(_draw(0, 1 << 40, [1000]), a)
    assert a.max() > (1 << 39)  # wide ranges use all 64 bits


def test_extreme_range():
    aten.manual_seed(7)
    x = _draw(-(1 << 63), (1 << 63) - 1, [4096])
    assert x.min() < -(1 << 61) and x.max() > (1 << 61)


def test_other_dtypes_and_out_views():
    aten.manual_seed(3)
    for dtype, low, high in [(np.int32, -100, 100), (np.float32, 0, 1 << 24), (np.uint8, 0, 256), (np.bool_, 0, 2)]:
        x = _draw(low, high, [64, 3], dtype)
        assert x.dtype == dtype and x.shape == (64, 3)
        assert x.min() >= low and x.max() <= high - 1
    base = Tensor.zeros((4, 6), np.int64)
    view = base.view((4, 3), (6, 2), 1)  # strided out keeps its shape and layout
    aten.randint_low_out(view, 10, 20, [4, 3])
    b = base.numpy()
    assert np.all(b[:, 0] == 0) and np.all(b[:, 2::2] == 0)
    assert np.all((b[:, 1::2] >= 10) & (b[:, 1::2] < 20))
    assert _draw(0, 3, [0, 5]).shape == (0, 5)
    one = _draw(4, 5, [])
    assert one.shape == () and one == 4


def test_errors():
    out = Tensor.empty((3,), np.int64)
    with pytest.raises(MpsShimError, match=r"randint: random_ expects 'from' to be less than 'to', but got from=5 >= to=5"):
        aten.randint_low_out(out, 5, 5, [3])
    with pytest.raises(MpsShimError, match=r"randint: range \[0, 300\) does not fit out's dtype uint8"):
        aten.randint_low_out(Tensor.empty((3,), np.uint8), 0, 300, [3])
    with pytest.raises(MpsShimError, match=r"randint: negative dimension in size \[-1\]"):
        aten.randint_low_out(out, 0, 5, [-1])
